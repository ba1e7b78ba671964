//===- MPIToLLVM.cpp - mpi ops alone to LLVM ------------------------------===//
//
// attn-convert-mpi-to-llvm; see Passes.td.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Conversion/MPIToLLVM/MPIToLLVM.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCONVERTMPITOLLVM
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;

namespace {

struct AttnConvertMPIToLLVMPass
    : attn::impl::AttnConvertMPIToLLVMBase<AttnConvertMPIToLLVMPass> {
  void runOnOperation() override {
    MLIRContext *context = &getContext();
    LLVMTypeConverter converter(context);
    RewritePatternSet patterns(context);
    mpi::populateMPIToLLVMConversionPatterns(converter, patterns);
    ConversionTarget target(*context);
    target.addIllegalDialect<mpi::MPIDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      return signalPassFailure();
    renameOpenMPISum();
  }

  /// LLVM 22's OpenMPI lowering names MPI_SUM `ompi_mpi_sum`; OpenMPI's
  /// mpi.h defines it as `ompi_mpi_op_sum` (the library has no other name).
  void renameOpenMPISum() {
    ModuleOp module = getOperation();
    auto global = module.lookupSymbol<LLVM::GlobalOp>("ompi_mpi_sum");
    if (!global)
      return;
    auto name = StringAttr::get(&getContext(), "ompi_mpi_op_sum");
    if (failed(SymbolTable::replaceAllSymbolUses(global, name, module)))
      return signalPassFailure();
    global.setSymName(name);
  }
};

} // namespace
