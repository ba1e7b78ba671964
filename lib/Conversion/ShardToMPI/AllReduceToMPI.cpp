//===- AllReduceToMPI.cpp - shard.all_reduce -> MPI_Allreduce -------------===//
//
// attn-lower-all-reduce-to-mpi; see Passes.td and docs/Sharding.md.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"

#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNLOWERALLREDUCETOMPI
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;

static constexpr StringLiteral kMPIImplementation = "MPI:Implementation";

namespace {

/// `input` converted elementwise to `elementType`.
Value convertElements(OpBuilder &builder, Location loc, Value input,
                      Type elementType) {
  auto type = cast<RankedTensorType>(input.getType());
  if (type.getElementType() == elementType)
    return input;
  Value init = tensor::EmptyOp::create(
      builder, loc, tensor::getMixedSizes(builder, loc, input), elementType);
  bool widen =
      type.getElementTypeBitWidth() < elementType.getIntOrFloatBitWidth();
  auto map = linalg::MapOp::create(
      builder, loc, ValueRange{input}, init,
      [&](OpBuilder &b, Location l, ValueRange args) {
        Value converted =
            widen
                ? arith::ExtFOp::create(b, l, elementType, args[0]).getResult()
                : arith::TruncFOp::create(b, l, elementType, args[0])
                      .getResult();
        linalg::YieldOp::create(b, l, converted);
      });
  return map.getResult()[0];
}

LogicalResult lowerAllReduce(shard::AllReduceOp op, ModuleOp module) {
  auto type = dyn_cast<RankedTensorType>(op.getInput().getType());
  if (!type || op.getResult().getType() != type ||
      !isa<FloatType>(type.getElementType()))
    return op.emitOpError("expects a float tensor reduced to its own type");
  if (op.getReduction() != shard::ReductionKind::Sum)
    return op.emitOpError("expects a sum");
  auto grid = module.lookupSymbol<shard::GridOp>(op.getGrid());
  if (!grid || grid.getRank() != 1 || op.getGridAxes().size() != 1)
    return op.emitOpError(
        "expects a reduction over all devices of a 1-D grid (one MPI process "
        "per device)");

  OpBuilder builder(op);
  Location loc = op.getLoc();
  Type elementType = type.getElementType();
  Type sumType = elementType.getIntOrFloatBitWidth() < 32 ? builder.getF32Type()
                                                          : elementType;
  Value input = convertElements(builder, loc, op.getInput(), sumType);
  auto bufferType = MemRefType::get(type.getShape(), sumType);
  Value send = bufferization::ToBufferOp::create(builder, loc, bufferType,
                                                 input, /*read_only=*/true);
  SmallVector<Value> dynamicSizes;
  for (int64_t dim : llvm::seq<int64_t>(type.getRank()))
    if (type.isDynamicDim(dim))
      dynamicSizes.push_back(memref::DimOp::create(builder, loc, send, dim));
  Value receive =
      memref::AllocOp::create(builder, loc, bufferType, dynamicSizes);
  // The MPI lowering counts the elements of the first dimension only.
  SmallVector<ReassociationIndices> allDims = {
      llvm::to_vector(llvm::seq<int64_t>(type.getRank()))};
  Value sendFlat = memref::CollapseShapeOp::create(builder, loc, send, allDims);
  Value receiveFlat =
      memref::CollapseShapeOp::create(builder, loc, receive, allDims);
  Value world = mpi::CommWorldOp::create(
      builder, loc, mpi::CommType::get(builder.getContext()));
  mpi::AllReduceOp::create(builder, loc, /*retval=*/Type(), sendFlat,
                           receiveFlat, mpi::MPI_ReductionOpEnum::MPI_SUM,
                           world);
  Value sum = bufferization::ToTensorOp::create(
      builder, loc, type.clone(sumType), receive, /*restrict=*/true,
      /*writable=*/true);
  op.replaceAllUsesWith(convertElements(builder, loc, sum, elementType));
  op.erase();
  return success();
}

struct AttnLowerAllReduceToMPIPass
    : attn::impl::AttnLowerAllReduceToMPIBase<AttnLowerAllReduceToMPIPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<shard::AllReduceOp> reductions;
    module.walk([&](shard::AllReduceOp op) { reductions.push_back(op); });
    for (shard::AllReduceOp op : reductions)
      if (failed(lowerAllReduce(op, module)))
        return signalPassFailure();

    WalkResult leftover = module.walk([](Operation *op) {
      if (isa<shard::ShardDialect>(op->getDialect()) && !isa<shard::GridOp>(op))
        return op->emitOpError("is not supported on the CPU"),
               WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (leftover.wasInterrupted())
      return signalPassFailure();
    for (auto grid : llvm::make_early_inc_range(module.getOps<shard::GridOp>()))
      grid.erase();

    if (!reductions.empty() && !module->hasAttr(DLTIDialect::kMapAttrName)) {
      MLIRContext *context = module.getContext();
      module->setAttr(
          DLTIDialect::kMapAttrName,
          MapAttr::get(context,
                       {DataLayoutEntryAttr::get(
                           StringAttr::get(context, kMPIImplementation),
                           StringAttr::get(context, "OpenMPI"))}));
    }
  }
};

} // namespace
