//===- DependentLaunch.cpp - kernels a stream may launch early ------------===//
//
// See the pass description (include/attn/Conversion/Passes.td) and
// docs/GPULowering.md, Dependent launch.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"

#include "attn-runtime/CudaRuntime.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNDEPENDENTLAUNCH
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// PTX `griddepcontrol.<action>` as inline assembly that clobbers memory, so
/// that no load is moved above the wait.
void gridDependencyControl(OpBuilder &b, Location loc, StringRef action) {
  LLVM::InlineAsmOp::create(
      b, loc, /*resultTypes=*/TypeRange{}, /*operands=*/ValueRange{},
      ("griddepcontrol." + action + ";").str(), /*constraints=*/"~{memory}",
      /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::TailCallKind::None, /*asm_dialect=*/nullptr,
      /*operand_attrs=*/nullptr);
}

struct AttnDependentLaunchPass
    : attn::impl::AttnDependentLaunchBase<AttnDependentLaunchPass> {
  void runOnOperation() override {
    gpu::GPUModuleOp module = getOperation();
    bool anyKernel = false;
    for (auto kernel : module.getOps<LLVM::LLVMFuncOp>()) {
      if (!kernel->hasAttr(NVVM::NVVMDialect::getKernelFuncAttrName()) ||
          kernel.isExternal())
        continue;
      anyKernel = true;
      OpBuilder b = OpBuilder::atBlockBegin(&kernel.getBody().front());
      gridDependencyControl(b, kernel.getLoc(), "launch_dependents");
      gridDependencyControl(b, kernel.getLoc(), "wait");
    }
    if (!anyKernel || module.lookupSymbol(ATTN_CUDA_DEPENDENT_LAUNCH_SYMBOL))
      return;
    OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
    Type i32 = b.getI32Type();
    LLVM::GlobalOp::create(b, module.getLoc(), i32, /*isConstant=*/true,
                           LLVM::Linkage::External,
                           ATTN_CUDA_DEPENDENT_LAUNCH_SYMBOL,
                           b.getI32IntegerAttr(1), /*alignment=*/4,
                           /*addrSpace=*/1);
  }
};

} // namespace
