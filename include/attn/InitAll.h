//===- InitAll.h - register everything the attn tools use -------*- C++ -*-===//
//
// What attn-opt, attn-compile, attn-reduce, attn-lsp-server and the C API
// register: the attn dialect and passes on top of every upstream dialect,
// extension, LLVM IR translation and pass that the pipelines use.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_INITALL_H
#define ATTN_INITALL_H

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/IR/AttnDialect.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "attn/Dialect/Attn/Transforms/ShardingInterfaceImpl.h"
#include "attn/Pipelines/Pipelines.h"
#include "attn/Target/CPU/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

namespace mlir::attn {

/// The attn dialect and its sharding models, every upstream dialect and
/// extension, and the LLVM IR translations (gpu-module-to-binary and the
/// export to LLVM IR need them).
inline void registerAllDialects(DialectRegistry &registry) {
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<AttnDialect>();
  registerShardingInterfaceExternalModels(registry);
}

/// Every upstream pass, the attn passes and the attn pipelines (once per
/// process: pipelines may not be registered twice).
inline void registerAllPasses() {
  mlir::registerAllPasses();
  registerAttnPasses();
  registerAttnConversionPasses();
  registerAttnCPUPasses();
  registerPipelines();
}

} // namespace mlir::attn

#endif // ATTN_INITALL_H
