//===- EntryABI.h - the C ABI of compiled entry points ----------*- C++ -*-===//
//
// What the CPU (attn-cpu-entry-abi) and GPU (convert-attn-to-gpu) lowerings
// share of the library ABI of docs/ABI.md. Both give an entry point the same
// C signature: arguments in order, results computed in an argument's buffer
// dropped, the other results as trailing out-parameters in result order.
// They decide it at different levels, so only the export is shared: the CPU
// finds in-place results by bufferisation's buffer equivalence and hoists
// allocations into out-parameters with upstream's utilities, after
// bufferisation; the GPU must know the out-parameters before any buffer
// exists (kernels write into them), so it traces the in-place updates on
// tensors (see BufferAssignment.h).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ENTRYABI_H
#define ATTN_CONVERSION_ENTRYABI_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace mlir::attn {

/// Exports `func` as `_mlir_ciface_<name>`, taking and writing memref
/// descriptors by pointer (docs/ABI.md).
inline void exportCInterface(func::FuncOp func) {
  func->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                UnitAttr::get(func.getContext()));
}

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ENTRYABI_H
