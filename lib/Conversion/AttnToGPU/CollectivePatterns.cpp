//===- CollectivePatterns.cpp - shard collectives to NCCL calls -----------===//
//
// `shard.all_reduce` of a sharded layer (attn-shard) becomes a host call of
// the runtime's attnNcclAllReduceSum (attn-runtime/CudaRuntime.h), which
// runs ncclAllReduce on the layer's stream and communicator.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

using namespace mlir;
using namespace mlir::attn;
using gpu_lowering::KernelEmitter;

static constexpr StringLiteral kAllReduceFunction = "attnNcclAllReduceSum";

namespace {

/// nccl.h's ncclDataType_t of a float type.
std::optional<int32_t> ncclType(Type type) {
  if (type.isF32())
    return 7;
  if (type.isF16())
    return 6;
  if (type.isBF16())
    return 9;
  return std::nullopt;
}

/// `void attnNcclAllReduceSum(ptr send, ptr receive, i64 count, i32 type)`,
/// its pointers passed as i64.
func::FuncOp allReduceFunction(ModuleOp module) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(kAllReduceFunction))
    return existing;
  auto b = OpBuilder::atBlockEnd(module.getBody());
  Type i64 = b.getI64Type();
  auto function = func::FuncOp::create(
      b, module.getLoc(), kAllReduceFunction,
      b.getFunctionType({i64, i64, i64, b.getI32Type()}, {}));
  function.setPrivate();
  return function;
}

struct AllReducePattern : OpAttnToGPUPattern<shard::AllReduceOp> {
  LogicalResult checkOp(shard::AllReduceOp op) const override {
    auto type = dyn_cast<RankedTensorType>(op.getInput().getType());
    if (!type || op.getResult().getType() != type ||
        !ncclType(type.getElementType()))
      return op.emitOpError("expects an f32, f16 or bf16 tensor reduced to "
                            "its own type on the GPU");
    if (op.getReduction() != shard::ReductionKind::Sum)
      return op.emitOpError("expects a sum on the GPU");
    auto grid = SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(
        op, op.getGridAttr());
    if (!grid || grid.getRank() != 1 || op.getGridAxes().size() != 1)
      return op.emitOpError("expects a reduction over all devices of a 1-D "
                            "grid (the communicator's ranks) on the GPU");
    return success();
  }

  LogicalResult lowerOp(shard::AllReduceOp op, BufferAssignment &buffers,
                        KernelEmitter &,
                        ImplicitLocOpBuilder &b) const override {
    Value input = buffers.lookup(op.getInput());
    Value output = buffers.destination(b, op.getResult(), input);
    auto type = cast<RankedTensorType>(op.getResult().getType());
    Value count = arith::ConstantIndexOp::create(b, 1);
    for (int64_t dim : llvm::seq<int64_t>(type.getRank()))
      count = arith::MulIOp::create(b, count,
                                    b.createOrFold<memref::DimOp>(input, dim));
    func::CallOp::create(
        b, allReduceFunction(op->getParentOfType<ModuleOp>()),
        ValueRange{gpu_lowering::hostAddress(b, input),
                   gpu_lowering::hostAddress(b, output),
                   arith::IndexCastOp::create(b, b.getI64Type(), count),
                   arith::ConstantIntOp::create(
                       b, *ncclType(type.getElementType()), 32)});
    buffers.map(op.getResult(), output);
    return success();
  }
};

} // namespace

void mlir::attn::populateCollectivePatterns(AttnToGPUPatternSet &patterns) {
  patterns.add<AllReducePattern>();
}
