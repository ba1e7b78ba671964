//===- Passes.h - passes of the CPU target ----------------------*- C++ -*-===//

#ifndef ATTN_TARGET_CPU_TRANSFORMS_PASSES_H
#define ATTN_TARGET_CPU_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace mlir::attn {

#define GEN_PASS_DECL
#include "attn/Target/CPU/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "attn/Target/CPU/Transforms/Passes.h.inc"

} // namespace mlir::attn

#endif // ATTN_TARGET_CPU_TRANSFORMS_PASSES_H
