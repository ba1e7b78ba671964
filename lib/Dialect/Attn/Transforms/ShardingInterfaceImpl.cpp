//===- ShardingInterfaceImpl.cpp - attn ops under the shard passes --------===//
//
// Each op describes its loops and indexing maps (a LoopNest); the sharding
// option, the annotations and the partition follow from that alike for every
// op. A tensor dimension is indexed by one loop, by `head * D + d` (the rows
// of a projection weight, split with the head loop), or by data (row
// offsets, the RoPE table, the pages, layers and slots of the cache blocks):
// those dimensions stay whole on every device. Splitting a sum loop (the
// contraction of a projection) leaves partial results, which the partition
// all-reduces.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/Transforms/ShardingInterfaceImpl.h"

#include "attn/Dialect/Attn/IR/AttnDialect.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterfaceImpl.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::attn;
using shard::GridAxis;
using shard::ReductionKind;
using shard::Sharding;
using shard::ShardingOption;
using utils::IteratorType;

namespace {

/// One loop of an op's iteration space.
struct Loop {
  std::string name;
  IteratorType type = IteratorType::parallel;
  ReductionKind reduction = ReductionKind::Generic;
  /// Why the loop cannot be split; empty when it can.
  StringRef unshardable = {};

  bool isSplitSum() const {
    return type == IteratorType::reduction && reduction == ReductionKind::Sum;
  }
};

Loop parallel(std::string name) { return {std::move(name)}; }
Loop fixed(std::string name, StringRef why) {
  return {std::move(name), IteratorType::parallel, ReductionKind::Generic, why};
}
Loop sum(std::string name) {
  return {std::move(name), IteratorType::reduction, ReductionKind::Sum};
}
Loop reduction(std::string name, StringRef why) {
  return {std::move(name), IteratorType::reduction, ReductionKind::Generic,
          why};
}

struct LoopNest {
  SmallVector<Loop> loops;
  /// One map per operand, then one per result.
  SmallVector<AffineMap> maps;
  /// Pairs of loops split together (query and kv heads: a GQA group stays on
  /// one device).
  SmallVector<std::pair<unsigned, unsigned>> tied;
  /// Operands added after the contraction (biases): with the contraction
  /// split, every device would add them to its partial sum.
  SmallVector<unsigned> addedAfterSum;

  AffineMap map(MLIRContext *ctx, ArrayRef<AffineExpr> exprs) const {
    return AffineMap::get(loops.size(), 0, exprs, ctx);
  }
  AffineMap readWhole(MLIRContext *ctx) const { return map(ctx, {}); }
};

/// The loop a tensor dimension indexed by `expr` is split with: its only loop,
/// or the outer one of `outer * size + inner` (loops are numbered outer first).
std::optional<unsigned> splitLoop(AffineExpr expr) {
  std::optional<unsigned> outer;
  expr.walk([&](AffineExpr e) {
    if (auto dim = dyn_cast<AffineDimExpr>(e))
      outer = std::min(outer.value_or(dim.getPosition()), dim.getPosition());
  });
  return outer;
}

std::string describeValue(Operation *op, unsigned index) {
  unsigned numOperands = op->getNumOperands();
  return index < numOperands ? "operand #" + std::to_string(index)
                             : "result #" + std::to_string(index - numOperands);
}

Type valueType(Operation *op, unsigned index) {
  unsigned numOperands = op->getNumOperands();
  return index < numOperands ? op->getOperand(index).getType()
                             : op->getResult(index - numOperands).getType();
}

/// Static loop sizes, read from the dimensions each loop indexes alone.
SmallVector<int64_t> loopSizes(Operation *op, const LoopNest &nest) {
  SmallVector<int64_t> sizes(nest.loops.size(), ShapedType::kDynamic);
  for (auto [index, map] : llvm::enumerate(nest.maps)) {
    auto type = dyn_cast<RankedTensorType>(valueType(op, index));
    if (!type)
      continue;
    for (auto [dim, expr] : llvm::enumerate(map.getResults()))
      if (auto loop = dyn_cast<AffineDimExpr>(expr))
        if (!type.isDynamicDim(dim))
          sizes[loop.getPosition()] = type.getDimSize(dim);
  }
  return sizes;
}

/// The loops that `operandShardings` and `resultShardings` split, checked
/// against what the op allows. Splits the op can never do are diagnosed;
/// shardings that disagree with each other only when `diagnoseConflicts`
/// (the propagation tries other combinations).
FailureOr<ShardingOption> assignLoops(Operation *op, const LoopNest &nest,
                                      ArrayRef<Sharding> operandShardings,
                                      ArrayRef<Sharding> resultShardings,
                                      bool diagnoseConflicts = false) {
  ShardingOption option;
  option.shardingArray.resize(nest.loops.size());
  bool annotated = false;
  auto conflict = [&]() -> LogicalResult {
    if (diagnoseConflicts)
      return op->emitOpError("has operands and results sharded along "
                             "different grid axes for one loop");
    return failure();
  };
  auto assign = [&](const Sharding &sharding, unsigned index) -> LogicalResult {
    if (!sharding)
      return success();
    annotated = true;
    if (option.grid && option.grid != sharding.getGridAttr())
      return conflict();
    option.grid = sharding.getGridAttr();
    AffineMap map = nest.maps[index];
    for (auto [dim, axes] : llvm::enumerate(sharding.getSplitAxes())) {
      if (axes.empty())
        continue;
      std::optional<unsigned> loop;
      if (dim < map.getNumResults())
        loop = splitLoop(map.getResult(dim));
      if (!loop)
        return op->emitOpError()
               << "cannot split dimension " << dim << " of "
               << describeValue(op, index)
               << ": the op indexes it by data, not by one of its loops";
      const Loop &info = nest.loops[*loop];
      if (!info.unshardable.empty())
        return op->emitOpError() << "cannot be sharded along its " << info.name
                                 << ": " << info.unshardable;
      SmallVector<GridAxis> &current = option.shardingArray[*loop];
      if (!current.empty() && ArrayRef<GridAxis>(current) != axes.asArrayRef())
        return conflict();
      current.assign(axes.asArrayRef().begin(), axes.asArrayRef().end());
    }
    return success();
  };
  unsigned numOperands = op->getNumOperands();
  for (auto [result, sharding] : llvm::enumerate(resultShardings))
    if (failed(assign(sharding, numOperands + result)))
      return failure();
  for (auto [operand, sharding] : llvm::enumerate(operandShardings))
    if (failed(assign(sharding, operand)))
      return failure();
  if (!annotated)
    return ShardingOption::makeEmpty();

  auto &array = option.shardingArray;
  for (auto [first, second] : nest.tied) {
    if (array[first].empty())
      array[first] = array[second];
    if (array[second].empty())
      array[second] = array[first];
    if (array[first] != array[second])
      return conflict();
  }
  // A grid axis splits at most one dimension of each tensor.
  for (AffineMap map : nest.maps) {
    SmallVector<GridAxis> used;
    for (AffineExpr expr : map.getResults())
      if (std::optional<unsigned> loop = splitLoop(expr))
        for (GridAxis axis : array[*loop]) {
          if (llvm::is_contained(used, axis))
            return conflict();
          used.push_back(axis);
        }
  }

  auto grid =
      SymbolTable::lookupNearestSymbolFrom<shard::GridOp>(op, option.grid);
  assert(grid && "the shard.sharding verifier checks the grid symbol");
  SmallVector<int64_t> sizes = loopSizes(op, nest);
  for (unsigned loop : llvm::seq<unsigned>(array.size())) {
    ArrayRef<GridAxis> axes = array[loop];
    if (axes.empty())
      continue;
    int64_t devices = shard::collectiveProcessGroupSize(axes, grid);
    if (!ShapedType::isDynamic(sizes[loop]) &&
        !ShapedType::isDynamic(devices) && sizes[loop] % devices != 0)
      return op->emitOpError() << "cannot split its " << sizes[loop] << " "
                               << nest.loops[loop].name << " evenly over "
                               << devices << " devices";
    for (auto [index, map] : llvm::enumerate(nest.maps))
      if (!isa<RankedTensorType>(valueType(op, index)) &&
          llvm::any_of(map.getResults(), [&](AffineExpr expr) {
            return splitLoop(expr) == loop;
          }))
        return op->emitOpError()
               << "cannot split its " << nest.loops[loop].name << ": "
               << describeValue(op, index) << " is not a ranked tensor";
    if (nest.loops[loop].isSplitSum() && !nest.addedAfterSum.empty())
      return op->emitOpError()
             << "cannot split its " << nest.loops[loop].name
             << " with a bias: every device would add it to its partial sum";
  }
  shard::removeTrailingEmptySubArray(array);
  return option;
}

/// The sharding of every operand and result under `option` (null for values
/// that are not ranked tensors).
std::vector<Sharding> annotationsFor(Operation *op, const LoopNest &nest,
                                     const ShardingOption &option) {
  std::vector<Sharding> shardings;
  for (auto [index, map] : llvm::enumerate(nest.maps)) {
    auto type = dyn_cast<RankedTensorType>(valueType(op, index));
    if (!type) {
      shardings.emplace_back();
      continue;
    }
    SmallVector<SmallVector<GridAxis>> splitAxes(type.getRank());
    for (auto [dim, expr] : llvm::enumerate(map.getResults())) {
      std::optional<unsigned> loop = splitLoop(expr);
      if (loop && *loop < option.shardingArray.size())
        splitAxes[dim] = option.shardingArray[*loop];
    }
    shard::removeTrailingEmptySubArray(splitAxes);
    SmallVector<shard::GridAxesAttr> attrs =
        llvm::map_to_vector(splitAxes, [&](ArrayRef<GridAxis> axes) {
          return shard::GridAxesAttr::get(op->getContext(), axes);
        });
    shardings.push_back(Sharding::get(option.grid, attrs));
  }
  return shardings;
}

//===----------------------------------------------------------------------===//
// The loop nests
//===----------------------------------------------------------------------===//

constexpr StringLiteral kWholeHeads =
    "each device computes whole heads (the head dim is not split)";

/// result [T, N] = input [T, K] @ weight [N, K]^T (+ bias [N]).
LoopNest describe(LinearOp op) {
  LoopNest nest;
  nest.loops = {parallel("rows"), parallel("output features"),
                sum("input features")};
  MLIRContext *ctx = op.getContext();
  AffineExpr t, n, k;
  bindDims(ctx, t, n, k);
  nest.maps = {nest.map(ctx, {t, k}), nest.map(ctx, {n, k})};
  if (op.getBias()) {
    nest.addedAfterSum.push_back(nest.maps.size());
    nest.maps.push_back(nest.map(ctx, {n}));
  }
  nest.maps.push_back(nest.map(ctx, {t, n}));
  return nest;
}

/// q [T, H, D], k and v [T, Hkv, D] from input [T, C]; the rows of Wq are
/// `h * D + d` (likewise Wk and Wv with the kv heads), so splitting the rows
/// of a weight splits its heads. A stacked weight's rows are q, k and v
/// after each other: no split of them is a split of heads.
LoopNest describe(QKVProjectionOp op) {
  LoopNest nest;
  bool stacked = op.isStacked();
  StringRef whyStacked =
      "a stacked weight's rows hold q, k and v after each other";
  nest.loops = {parallel("rows"),
                stacked ? fixed("query heads", whyStacked)
                        : parallel("query heads"),
                stacked ? fixed("kv heads", whyStacked) : parallel("kv heads"),
                fixed("head dim", kWholeHeads), sum("hidden features")};
  MLIRContext *ctx = op.getContext();
  AffineExpr t, h, hkv, d, c;
  bindDims(ctx, t, h, hkv, d, c);
  if (stacked)
    nest.loops.push_back(fixed("stacked rows", whyStacked));
  AffineExpr qRows = h * op.getHeadDim() + d,
             kvRows = hkv * op.getHeadDim() + d;
  SmallVector<AffineExpr> rows = {qRows, kvRows, kvRows};
  if (stacked)
    rows = {getAffineDimExpr(5, ctx)};
  nest.maps = {nest.map(ctx, {t, c})};
  for (AffineExpr row : rows)
    nest.maps.push_back(nest.map(ctx, {row, c}));
  for (AffineExpr row : ArrayRef(rows).take_front(op.getBiases().size())) {
    nest.addedAfterSum.push_back(nest.maps.size());
    nest.maps.push_back(nest.map(ctx, {row}));
  }
  for (AffineExpr heads : {h, hkv, hkv})
    nest.maps.push_back(nest.map(ctx, {t, heads, d}));
  return nest;
}

/// Normalises the last dimension; every other one is independent.
LoopNest describe(RMSNormOp op) {
  LoopNest nest;
  int64_t rank = cast<RankedTensorType>(op.getInput().getType()).getRank();
  for (int64_t dim = 0; dim + 1 < rank; ++dim)
    nest.loops.push_back(parallel(rank == 3 && dim == 1 ? "heads" : "rows"));
  nest.loops.push_back(
      reduction("normalised dimension", "its mean square needs every element"));
  MLIRContext *ctx = op.getContext();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(rank, ctx);
  nest.maps = {identity, nest.map(ctx, {getAffineDimExpr(rank - 1, ctx)}),
               identity};
  return nest;
}

constexpr StringLiteral kRowsByOffsets =
    "its rows are found through the row offsets";

/// Rotates every head alike; the table and positions are read whole.
LoopNest describe(RopeOp op) {
  LoopNest nest;
  nest.loops = {fixed("rows", kRowsByOffsets), parallel("heads"),
                fixed("head dim", "rotation pairs span it")};
  MLIRContext *ctx = op.getContext();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(3, ctx);
  nest.maps = {identity, nest.readWhole(ctx), nest.readWhole(ctx),
               nest.readWhole(ctx), identity};
  return nest;
}

/// Query head h reads kv head h / (H / Hkv): splitting both head loops alike
/// keeps each GQA group on one device.
LoopNest describe(FlashAttentionOp op) {
  LoopNest nest;
  nest.loops = {fixed("query rows", kRowsByOffsets), parallel("query heads"),
                parallel("kv heads"),
                reduction("keys", "the softmax normalises over every key"),
                fixed("head dim", kWholeHeads)};
  nest.tied = {{1, 2}};
  MLIRContext *ctx = op.getContext();
  AffineExpr t, h, hkv, s, d;
  bindDims(ctx, t, h, hkv, s, d);
  nest.maps = {nest.map(ctx, {t, h, d}),   nest.map(ctx, {s, hkv, d}),
               nest.map(ctx, {s, hkv, d}), nest.readWhole(ctx),
               nest.readWhole(ctx),        nest.map(ctx, {t, h, d})};
  return nest;
}

/// The blocks `[P, 2, L, page, Hkv, D]` of a paged cache: only the kv heads
/// follow a loop; pages, layers and slots are found through the data.
AffineMap blocksMap(const LoopNest &nest, MLIRContext *ctx, AffineExpr kvHeads,
                    AffineExpr headDim) {
  AffineExpr byData = getAffineConstantExpr(0, ctx);
  return nest.map(ctx, {byData, byData, byData, byData, kvHeads, headDim});
}

/// Writes the keys and values of each kv head into that head of the blocks.
LoopNest describe(KVCacheStoreOp op) {
  LoopNest nest;
  nest.loops = {fixed("rows", kRowsByOffsets), parallel("kv heads"),
                fixed("head dim", kWholeHeads)};
  MLIRContext *ctx = op.getContext();
  AffineExpr t, hkv, d;
  bindDims(ctx, t, hkv, d);
  AffineMap rows = nest.map(ctx, {t, hkv, d});
  AffineMap blocks = blocksMap(nest, ctx, hkv, d);
  nest.maps = {rows,
               rows,
               nest.readWhole(ctx),
               nest.readWhole(ctx),
               nest.readWhole(ctx),
               blocks};
  if (op.getLayerIndex())
    nest.maps.push_back(nest.readWhole(ctx));
  nest.maps.push_back(blocks);
  return nest;
}

/// Attention of each query head on its kv head's keys in the blocks; as in
/// attn.flash_attention, the query and kv heads split together.
LoopNest describe(PagedFlashAttentionOp op) {
  LoopNest nest;
  nest.loops = {fixed("query rows", kRowsByOffsets), parallel("query heads"),
                parallel("kv heads"), fixed("head dim", kWholeHeads)};
  nest.tied = {{1, 2}};
  MLIRContext *ctx = op.getContext();
  AffineExpr t, h, hkv, d;
  bindDims(ctx, t, h, hkv, d);
  AffineMap query = nest.map(ctx, {t, h, d});
  nest.maps = {query, blocksMap(nest, ctx, hkv, d), nest.readWhole(ctx),
               nest.readWhole(ctx), nest.readWhole(ctx)};
  if (op.getLayerIndex())
    nest.maps.push_back(nest.readWhole(ctx));
  nest.maps.push_back(query);
  return nest;
}

/// Each result dimension is `outer * stride + ... + inner` of its group of
/// source dimensions: a split of the outer one is a split of the result's.
LoopNest describe(tensor::CollapseShapeOp op) {
  LoopNest nest;
  RankedTensorType source = op.getSrcType();
  MLIRContext *ctx = op.getContext();
  SmallVector<AffineExpr> collapsed;
  for (ReassociationIndices group : op.getReassociationIndices()) {
    AffineExpr expr = getAffineConstantExpr(0, ctx);
    int64_t stride = 1;
    bool staticInner = true;
    for (int64_t dim : llvm::reverse(group)) {
      expr = expr + getAffineDimExpr(dim, ctx) * stride;
      if (dim != group.front())
        staticInner &= !source.isDynamicDim(dim);
      stride *= source.isDynamicDim(dim) ? 1 : source.getDimSize(dim);
    }
    collapsed.push_back(expr);
    for (int64_t dim : group) {
      std::string name = "source dimension " + std::to_string(dim);
      if (dim != group.front())
        nest.loops.push_back(
            fixed(name, "it is an inner dimension of a collapsed group"));
      else if (!staticInner)
        nest.loops.push_back(
            fixed(name, "the inner sizes of its group are dynamic"));
      else
        nest.loops.push_back(parallel(name));
    }
  }
  nest.maps = {AffineMap::getMultiDimIdentityMap(source.getRank(), ctx),
               nest.map(ctx, collapsed)};
  return nest;
}

//===----------------------------------------------------------------------===//
// The interface
//===----------------------------------------------------------------------===//

template <typename OpTy>
struct LoopNestShardingModel
    : shard::ShardingInterface::ExternalModel<LoopNestShardingModel<OpTy>,
                                              OpTy> {
  static LoopNest nestOf(Operation *op) { return describe(cast<OpTy>(op)); }

  SmallVector<IteratorType> getLoopIteratorTypes(Operation *op) const {
    return llvm::map_to_vector(nestOf(op).loops,
                               [](const Loop &loop) { return loop.type; });
  }

  SmallVector<ReductionKind>
  getReductionLoopIteratorKinds(Operation *op) const {
    SmallVector<ReductionKind> kinds;
    for (const Loop &loop : nestOf(op).loops)
      if (loop.type == IteratorType::reduction)
        kinds.push_back(loop.reduction);
    return kinds;
  }

  SmallVector<AffineMap> getIndexingMaps(Operation *op) const {
    return nestOf(op).maps;
  }

  FailureOr<ShardingOption>
  getShardingOption(Operation *op, ArrayRef<Sharding> operandShardings,
                    ArrayRef<Sharding> resultShardings) const {
    return assignLoops(op, nestOf(op), operandShardings, resultShardings);
  }

  FailureOr<std::vector<Sharding>>
  getShardingAnnotations(Operation *op, const ShardingOption &option) const {
    return annotationsFor(op, nestOf(op), option);
  }

  LogicalResult addShardingAnnotations(Operation *op, OpBuilder &builder,
                                       const ShardingOption &option) const {
    std::vector<Sharding> shardings = annotationsFor(op, nestOf(op), option);
    unsigned numOperands = op->getNumOperands();
    for (OpResult result : op->getResults())
      if (const Sharding &sharding =
              shardings[numOperands + result.getResultNumber()]) {
        OpBuilder::InsertionGuard guard(builder);
        shard::maybeInsertTargetShardingAnnotation(sharding, result, builder);
      }
    for (OpOperand &operand : op->getOpOperands())
      if (const Sharding &sharding = shardings[operand.getOperandNumber()]) {
        OpBuilder::InsertionGuard guard(builder);
        shard::maybeInsertSourceShardingAnnotation(sharding, operand, builder);
      }
    return success();
  }

  /// The op on the device's part of every tensor, then an all-reduce of each
  /// result when a sum loop is split.
  LogicalResult partition(Operation *op, ArrayRef<Value> partitionedOperands,
                          ArrayRef<Sharding> operandShardings,
                          ArrayRef<Sharding> resultShardings,
                          IRMapping &partitionMap,
                          SymbolTableCollection &symbolTable,
                          OpBuilder &builder) const {
    LoopNest nest = nestOf(op);
    FailureOr<ShardingOption> option =
        assignLoops(op, nest, operandShardings, resultShardings,
                    /*diagnoseConflicts=*/true);
    if (failed(option))
      return failure();
    std::vector<Sharding> expected = annotationsFor(op, nest, *option);
    std::vector<Sharding> given(operandShardings.begin(),
                                operandShardings.end());
    llvm::append_range(given, resultShardings);
    for (auto [index, want, have] : llvm::enumerate(expected, given))
      if (want && want != have)
        return op->emitOpError()
               << "expects " << describeValue(op, index)
               << " to be split along the same loops as its other operands "
                  "and results";

    shard::partitionTriviallyShardableOperation(
        *op, partitionedOperands, operandShardings, resultShardings,
        partitionMap, symbolTable, builder);
    SmallVector<GridAxis> sumAxes;
    for (auto [loop, axes] : llvm::enumerate(option->shardingArray))
      if (nest.loops[loop].isSplitSum())
        llvm::append_range(sumAxes, axes);
    if (sumAxes.empty())
      return success();
    for (OpResult result : op->getResults()) {
      Value total = shard::AllReduceOp::create(
          builder, op->getLoc(), partitionMap.lookup(result),
          option->grid.getValue(), sumAxes, ReductionKind::Sum);
      partitionMap.map(result, total);
    }
    return success();
  }
};

template <typename... OpTys> void attachModels(MLIRContext *ctx) {
  (OpTys::template attachInterface<LoopNestShardingModel<OpTys>>(*ctx), ...);
}

} // namespace

void mlir::attn::registerShardingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, AttnDialect *) {
    attachModels<LinearOp, QKVProjectionOp, RMSNormOp, RopeOp, FlashAttentionOp,
                 KVCacheStoreOp, PagedFlashAttentionOp>(ctx);
  });
  registry.addExtension(+[](MLIRContext *ctx, tensor::TensorDialect *) {
    attachModels<tensor::CollapseShapeOp>(ctx);
  });
}
