//===- Shard.cpp - attention layers as per-device (SPMD) programs ---------===//
//
// attn-shard; see Passes.td and docs/Sharding.md. A composite layer is
// rewritten here: its opaque paged cache is not a ranked tensor, so
// `shard.shard` cannot annotate it, and a stacked weight's split per part is
// no split of its dimensions. A layer of primitive ops has its weights
// annotated and goes through sharding-propagation and shard-partition
// (ShardingInterfaceImpl.cpp).
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/IR/AttnTypes.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "attn/Dialect/Attn/Transforms/ShardingInterfaceImpl.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Shard/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNSHARD
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

static constexpr StringLiteral kGridName = "attn_devices";

namespace {

/// Gives `value` the per-device type `type`. Only function arguments can be
/// retyped; a value that already has the type (a cache threaded from an
/// earlier sharded layer, a weight shared by two layers) is left alone.
LogicalResult retype(AttentionWithRopeOp op, Value value, Type type,
                     StringRef what) {
  if (value.getType() == type)
    return success();
  auto argument = dyn_cast<BlockArgument>(value);
  if (!argument || !isa<func::FuncOp>(argument.getOwner()->getParentOp()))
    return op.emitOpError() << "cannot shard the " << what
                            << ": it is not an argument of the function";
  argument.setType(type);
  return success();
}

/// The blocks of a cache of `type`, with as many pages as `blocks`.
RankedTensorType blocksLike(Value blocks, PagedKVCacheType type) {
  return type.getParams().getBlocksType(
      cast<RankedTensorType>(blocks.getType()).getDimSize(0));
}

/// Gives the layer's cache the per-device type: the argument itself, or the
/// blocks argument it is packed from (the NoOpaque form of entry points).
LogicalResult retypeCache(AttentionWithRopeOp op, PagedKVCacheType type) {
  auto make = op.getKvCollection().getDefiningOp<PagedCacheMakeOp>();
  if (!make)
    return retype(op, op.getKvCollection(), type, "cache");
  if (failed(retype(op, make.getBlocks(), blocksLike(make.getBlocks(), type),
                    "cache blocks")))
    return failure();
  make.getCache().setType(type);
  return success();
}

/// The updated cache and the blocks taken from it, in the per-device type.
void retypeUpdatedCache(AttentionWithRopeOp op, PagedKVCacheType type) {
  Value updated = op.getUpdatedKvCollection();
  updated.setType(type);
  for (Operation *user : updated.getUsers())
    if (auto parts = dyn_cast<PagedCachePartsOp>(user))
      parts.getBlocks().setType(blocksLike(parts.getBlocks(), type));
}

RankedTensorType withShape(Value value, ArrayRef<int64_t> shape) {
  return cast<RankedTensorType>(value.getType()).clone(shape);
}

LogicalResult checkHeadsDivide(Operation *op, int64_t heads, int64_t kvHeads,
                               int64_t devices) {
  if (heads % devices == 0 && kvHeads % devices == 0)
    return success();
  return op->emitOpError() << "cannot split " << heads << " query heads and "
                           << kvHeads << " kv heads evenly over " << devices
                           << " devices";
}

LogicalResult rejectQuantized(Operation *op, ValueRange weights) {
  if (llvm::any_of(weights, [](Value weight) {
        return isa<QuantizedWeightType>(weight.getType());
      }))
    return op->emitOpError(
        "tensor parallelism of quantised weights is not supported");
  return success();
}

/// Tensor parallelism: the op and its arguments on `devices`' share of the
/// heads, and an all-reduce of the partial output.
LogicalResult shardTensorParallel(AttentionWithRopeOp op, int64_t devices) {
  int64_t heads = op.getNumAttentionHeads(), kvHeads = op.getNumKeyValueHeads();
  SmallVector<Value> weights(op.getQkvWeights());
  weights.push_back(op.getOProjWeight());
  if (failed(checkHeadsDivide(op, heads, kvHeads, devices)) ||
      failed(rejectQuantized(op, weights)))
    return failure();

  int64_t headDim = op.getHeadDim(), hidden = op.getHiddenSize();
  int64_t qRows = heads / devices * headDim;
  int64_t kvRows = kvHeads / devices * headDim;
  SmallVector<int64_t> rows = {qRows, kvRows, kvRows};
  if (op.isStackedQKV())
    rows = {qRows + 2 * kvRows};
  for (auto [weight, n] : llvm::zip(op.getQkvWeights(), rows))
    if (failed(
            retype(op, weight, withShape(weight, {n, hidden}), "qkv weight")))
      return failure();
  for (auto [bias, n] : llvm::zip(op.getQkvBiases(), rows))
    if (failed(retype(op, bias, withShape(bias, {n}), "qkv bias")))
      return failure();
  Value oProj = op.getOProjWeight();
  if (failed(retype(op, oProj, withShape(oProj, {hidden, qRows}),
                    "o_proj weight")))
    return failure();

  KVCacheAttr params = op.getKVParams();
  auto cacheType = PagedKVCacheType::get(
      op.getContext(),
      KVCacheAttr::get(op.getContext(), params.getPageSize(),
                       params.getNumLayers(), kvHeads / devices, headDim,
                       params.getDtype()));
  if (failed(retypeCache(op, cacheType)))
    return failure();
  retypeUpdatedCache(op, cacheType);
  op.setNumAttentionHeads(heads / devices);
  op.setNumKeyValueHeads(kvHeads / devices);

  OpBuilder builder(op->getContext());
  builder.setInsertionPointAfter(op);
  Value partial = op.getOutput();
  auto sum = shard::AllReduceOp::create(
      builder, op.getLoc(), partial, kGridName, {0}, shard::ReductionKind::Sum);
  partial.replaceAllUsesExcept(sum.getResult(), sum);
  return success();
}

/// An output projection: an attn.linear of the attention heads joined by
/// tensor.collapse_shape.
bool isOutputProjection(LinearOp op) {
  auto heads = op.getInput().getDefiningOp<tensor::CollapseShapeOp>();
  return heads && isa_and_present<FlashAttentionOp, PagedFlashAttentionOp>(
                      heads.getSrc().getDefiningOp());
}

/// Annotates the weights of the primitive layers in `func` as tensor
/// parallelism splits them: q, k and v rows by head, o_proj columns by query
/// head. Returns whether `func` has any such layer.
FailureOr<bool> annotatePrimitiveLayers(func::FuncOp func, int64_t devices) {
  MLIRContext *ctx = func.getContext();
  auto grid = FlatSymbolRefAttr::get(ctx, kGridName);
  auto axes = [&](ArrayRef<shard::GridAxis> axes) {
    return shard::GridAxesAttr::get(ctx, axes);
  };
  shard::Sharding rows = shard::Sharding::get(grid, {axes({0})});
  shard::Sharding columns = shard::Sharding::get(grid, {axes({}), axes({0})});
  OpBuilder builder(ctx);
  bool projections = false, outputProjections = false;
  WalkResult walk = func.walk([&](Operation *op) {
    if (auto qkv = dyn_cast<QKVProjectionOp>(op)) {
      if (failed(checkHeadsDivide(qkv, qkv.getNumHeads(), qkv.getNumKVHeads(),
                                  devices)) ||
          failed(rejectQuantized(qkv, qkv.getWeights())))
        return WalkResult::interrupt();
      if (qkv.isStacked()) {
        qkv.emitOpError("cannot split a stacked qkv weight by head outside "
                        "attn.attention_with_rope");
        return WalkResult::interrupt();
      }
      for (OpOperand &weight : qkv.getWeightsMutable())
        shard::maybeInsertSourceShardingAnnotation(rows, weight, builder);
      projections = true;
    }
    if (auto linear = dyn_cast<LinearOp>(op);
        linear && isOutputProjection(linear)) {
      if (failed(rejectQuantized(linear, linear.getWeight())))
        return WalkResult::interrupt();
      shard::maybeInsertSourceShardingAnnotation(
          columns, linear.getWeightMutable(), builder);
      outputProjections = true;
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  if (projections && !outputProjections)
    return func.emitOpError(
        "has attention heads that reach no output "
        "projection (attn.linear of tensor.collapse_shape)");
  return projections;
}

/// The function type from its (retyped) arguments and returned values.
void updateFunctionType(func::FuncOp func) {
  SmallVector<Type> results;
  func.walk([&](func::ReturnOp ret) {
    results.assign(ret.getOperandTypes().begin(), ret.getOperandTypes().end());
  });
  func.setFunctionType(FunctionType::get(
      func.getContext(), func.front().getArgumentTypes(), results));
}

struct AttnShardPass : attn::impl::AttnShardBase<AttnShardPass> {
  using Base::Base;

  void getDependentDialects(DialectRegistry &registry) const override {
    Base::getDependentDialects(registry);
    registerShardingInterfaceExternalModels(registry);
  }

  /// Tensor parallelism of the primitive layers of `func`, through the
  /// upstream passes.
  LogicalResult partitionPrimitiveLayers(func::FuncOp func) {
    FailureOr<bool> annotated =
        annotatePrimitiveLayers(func, devices.getValue());
    if (failed(annotated) || !*annotated || !partition)
      return annotated;
    // LLVM 22's shard-partition fails on these without a diagnostic.
    WalkResult constants = func.walk([](arith::ConstantOp op) {
      auto value = dyn_cast<DenseIntOrFPElementsAttr>(op.getValue());
      if (!value || value.isSplat())
        return WalkResult::advance();
      op.emitOpError("cannot be partitioned by shard-partition (LLVM 22 "
                     "partitions splat constants only); a RoPE table folded "
                     "by --canonicalize can be a freqs argument of the layer");
      return WalkResult::interrupt();
    });
    if (constants.wasInterrupted())
      return failure();
    OpPassManager pipeline(func::FuncOp::getOperationName());
    pipeline.addPass(shard::createShardingPropagation());
    pipeline.addPass(shard::createPartition());
    return runPipeline(pipeline, func);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (strategy != "tensor" && strategy != "data") {
      module.emitError() << "attn-shard: unknown strategy '" << strategy
                         << "' (expected tensor or data)";
      return signalPassFailure();
    }
    if (devices < 1) {
      module.emitError() << "attn-shard: devices must be positive, got "
                         << devices.getValue();
      return signalPassFailure();
    }
    if (module.lookupSymbol(kGridName)) {
      module.emitError() << "attn-shard: the module is already sharded (@"
                         << kGridName << " exists)";
      return signalPassFailure();
    }

    OpBuilder builder = OpBuilder::atBlockBegin(module.getBody());
    shard::GridOp::create(builder, module.getLoc(), kGridName,
                          ArrayRef<int64_t>{devices.getValue()});

    SetVector<func::FuncOp> layers;
    WalkResult walk = module.walk([&](AttentionWithRopeOp op) {
      if (strategy == "tensor" &&
          failed(shardTensorParallel(op, devices.getValue())))
        return WalkResult::interrupt();
      if (auto func = op->getParentOfType<func::FuncOp>())
        layers.insert(func);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    for (func::FuncOp func : layers)
      updateFunctionType(func);
    if (strategy == "tensor")
      for (auto func : module.getOps<func::FuncOp>())
        if (failed(partitionPrimitiveLayers(func)))
          return signalPassFailure();
  }
};

} // namespace
