//===- InsertABIChecks.cpp - descriptor sizes checked at entry points -----===//
//
// A memref descriptor carries its sizes, but a function whose argument type
// has static sizes never reads them. Each such argument becomes dynamic in
// every dim (the same descriptor: rank and element type are unchanged) and is
// cast back to its type for the body, after a check of each static size.
//
//===----------------------------------------------------------------------===//

#include "EntryChecks.h"

#include "attn/Dialect/Attn/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNINSERTABICHECKS
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Makes the static sizes of `arg` dynamic, checks them at `b`'s insertion
/// point and casts `arg` back for its uses.
void checkSizes(OpBuilder &b, BlockArgument arg) {
  auto type = dyn_cast<RankedTensorType>(arg.getType());
  if (!type || llvm::all_of(type.getShape(), ShapedType::isDynamic))
    return;
  Location loc = arg.getLoc();
  SmallVector<int64_t> dynamic(type.getRank(), ShapedType::kDynamic);
  arg.setType(type.clone(dynamic));
  auto cast = tensor::CastOp::create(b, loc, type, arg);
  arg.replaceAllUsesExcept(cast, cast);
  Value ok;
  for (auto [d, size] : llvm::enumerate(type.getShape())) {
    if (ShapedType::isDynamic(size))
      continue;
    Value actual = tensor::DimOp::create(b, loc, arg, d);
    Value same = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::eq, actual,
        arith::ConstantIndexOp::create(b, loc, size));
    ok = ok ? arith::AndIOp::create(b, loc, ok, same) : same;
  }
  assertOrReport(b, loc, ok, EntryStatus::SizeMismatch);
}

struct AttnInsertABIChecksPass
    : attn::impl::AttnInsertABIChecksBase<AttnInsertABIChecksPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (!func.isPublic() || func.isExternal())
        continue;
      OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
      for (BlockArgument arg : func.getArguments())
        checkSizes(b, arg);
      func.setFunctionType(FunctionType::get(&getContext(),
                                             func.getBody().getArgumentTypes(),
                                             func.getResultTypes()));
    }
  }
};

} // namespace
