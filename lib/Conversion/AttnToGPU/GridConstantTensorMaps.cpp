//===- GridConstantTensorMaps.cpp - tensor maps as grid constants ---------===//
//
// See the pass description (include/attn/Conversion/Passes.td) and
// TensorMaps.h.
//
//===----------------------------------------------------------------------===//

#include "TensorMaps.h"

#include "attn/Conversion/Passes.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNGRIDCONSTANTTENSORMAPS
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The local copy of `arg` (the alloca it alone is stored to), if that is its
/// only use.
LLVM::AllocaOp localCopyOf(BlockArgument arg) {
  if (!arg.hasOneUse())
    return {};
  auto store = dyn_cast<LLVM::StoreOp>(*arg.getUsers().begin());
  if (!store || store.getValue() != arg)
    return {};
  return store.getAddr().getDefiningOp<LLVM::AllocaOp>();
}

LogicalResult passAsGridConstants(LLVM::LLVMFuncOp kernel) {
  MLIRContext *context = kernel.getContext();
  Type mapType = gpu_lowering::tensorMapType(context);
  auto ptrType = LLVM::LLVMPointerType::get(context);
  SmallVector<Type> inputs(kernel.getFunctionType().getParams());
  for (BlockArgument arg : kernel.getArguments()) {
    if (arg.getType() != mapType)
      continue;
    LLVM::AllocaOp copy = localCopyOf(arg);
    if (!copy)
      return kernel.emitOpError("takes a tensor map (argument ")
             << arg.getArgNumber()
             << ") that it does not only copy to one local buffer";
    Operation *store = *arg.getUsers().begin();
    store->erase();
    arg.setType(ptrType);
    copy.getResult().replaceAllUsesWith(arg);
    copy.erase();
    unsigned i = arg.getArgNumber();
    inputs[i] = ptrType;
    kernel.setArgAttr(i, LLVM::LLVMDialect::getByValAttrName(),
                      TypeAttr::get(mapType));
    kernel.setArgAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                      IntegerAttr::get(IntegerType::get(context, 32), 64));
    kernel.setArgAttr(i, NVVM::NVVMDialect::getGridConstantAttrName(),
                      UnitAttr::get(context));
  }
  kernel.setFunctionType(LLVM::LLVMFunctionType::get(
      kernel.getFunctionType().getReturnType(), inputs));
  return success();
}

struct AttnGridConstantTensorMapsPass
    : attn::impl::AttnGridConstantTensorMapsBase<
          AttnGridConstantTensorMapsPass> {
  void runOnOperation() override {
    for (auto kernel : getOperation().getOps<LLVM::LLVMFuncOp>())
      if (kernel->hasAttr(NVVM::NVVMDialect::getKernelFuncAttrName()) &&
          failed(passAsGridConstants(kernel)))
        return signalPassFailure();
  }
};

} // namespace
