//===- InsertEntryChecks.cpp - run-time input checks at entry points ------===//

#include "EntryChecks.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNINSERTENTRYCHECKS
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The argument `v` is, seen through integer casts; null if it is computed.
BlockArgument argumentThroughCasts(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
             arith::ExtUIOp>(def))
      return {};
    v = def->getOperand(0);
  }
  return dyn_cast<BlockArgument>(v);
}

/// What one check compares: the layer argument against a static layer
/// count or the dim 2 of a blocks argument.
struct LayerCheck {
  BlockArgument layer;
  BlockArgument blocks;
  int64_t staticLayers = ShapedType::kDynamic;
};

/// The check of `op`'s run-time layer, or failure (reported) when it cannot
/// be made at the function's start.
FailureOr<LayerCheck> layerCheckOf(CacheLayerOpInterface op) {
  LayerCheck check;
  check.layer = argumentThroughCasts(op.getLayerIndex());
  if (!check.layer)
    return op->emitOpError(
        "needs its run-time layer index to be an argument of the entry "
        "function (or a cast of one) to check it before any work; pass "
        "runtime-checks=false to skip the check");
  if (std::optional<int64_t> layers = op.getStaticNumLayers()) {
    check.staticLayers = *layers;
    return check;
  }
  check.blocks = inPlaceSource(op.getCacheBlocks());
  if (!check.blocks)
    return op->emitOpError(
        "has a dynamic layer count and cache blocks that are not an argument "
        "of the entry function; cannot check its run-time layer index");
  return check;
}

/// `0 <= layer < count` asserted at `b`'s insertion point.
void assertLayerInRange(OpBuilder &b, Location loc, const LayerCheck &check) {
  Value layer = check.layer;
  if (!layer.getType().isIndex())
    layer = arith::IndexCastOp::create(b, loc, b.getIndexType(), layer);
  Value count =
      check.blocks
          ? Value(tensor::DimOp::create(b, loc, check.blocks, 2))
          : Value(arith::ConstantIndexOp::create(b, loc, check.staticLayers));
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value notNegative = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge,
                                            layer, zero);
  Value belowCount = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                           layer, count);
  Value ok = arith::AndIOp::create(b, loc, notNegative, belowCount);
  assertOrReport(b, loc, ok, EntryStatus::LayerOutOfRange);
}

/// The index tensors of a ragged batch an op reads: row offsets [B + 1],
/// cache lengths [B] and, for ops that address pages, the lookup table
/// [B, pages].
struct BatchIndices {
  Value rowOffsets, cacheLengths, lookup;
};

std::optional<BatchIndices> batchIndicesOf(Operation *op) {
  return llvm::TypeSwitch<Operation *, std::optional<BatchIndices>>(op)
      .Case<KVCacheStoreOp, PagedFlashAttentionOp, RopeStoreOp>(
          [](auto op) -> std::optional<BatchIndices> {
            return BatchIndices{op.getRowOffsets(), op.getCacheLengths(),
                                op.getLookupTable()};
          })
      .Case([](RopeOp op) -> std::optional<BatchIndices> {
        return BatchIndices{op.getRowOffsets(), op.getCacheLengths(), Value()};
      })
      .Default([](Operation *) { return std::nullopt; });
}

/// Whether `dim(x, 0) == dim(y, 0) + extra`, built at `b`'s insertion point.
Value leadingDimsAgree(OpBuilder &b, Location loc, Value x, Value y,
                       int64_t extra) {
  Value dx = tensor::DimOp::create(b, loc, x, 0);
  Value dy = tensor::DimOp::create(b, loc, y, 0);
  if (extra)
    dy = arith::AddIOp::create(b, loc, dy,
                               arith::ConstantIndexOp::create(b, loc, extra));
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, dx, dy);
}

/// The batch checks of the index tensors that are arguments (the verifiers
/// check static shapes; tensors made inside agree by construction).
void insertBatchChecks(func::FuncOp func, OpBuilder &b) {
  llvm::SetVector<std::pair<Value, Value>> pairs; // (x, y): dim x == dim y + 1
  llvm::SetVector<std::pair<Value, Value>> rows;  // (x, y): dim x == dim y
  func.walk([&](Operation *op) {
    if (auto attention = dyn_cast<FlashAttentionOp>(op)) {
      BlockArgument q = tensorArgument(attention.getQRowOffsets());
      BlockArgument kv = tensorArgument(attention.getKvRowOffsets());
      if (q && kv)
        rows.insert({q, kv});
      return;
    }
    std::optional<BatchIndices> indices = batchIndicesOf(op);
    if (!indices)
      return;
    BlockArgument lengths = tensorArgument(indices->cacheLengths);
    if (!lengths)
      return;
    if (BlockArgument offsets = tensorArgument(indices->rowOffsets))
      pairs.insert({offsets, lengths});
    if (BlockArgument lookup =
            indices->lookup ? tensorArgument(indices->lookup) : BlockArgument())
      rows.insert({lookup, lengths});
  });
  Location loc = func.getLoc();
  auto check = [&](Value x, Value y, int64_t extra) {
    assertOrReport(b, loc, leadingDimsAgree(b, loc, x, y, extra),
                   EntryStatus::BatchMismatch);
  };
  for (auto [x, y] : pairs)
    check(x, y, 1);
  for (auto [x, y] : rows)
    check(x, y, 0);
}

LogicalResult insertChecks(func::FuncOp func, bool indexValues) {
  // One check per (layer, cache) pair, in the order the ops use them.
  llvm::MapVector<std::tuple<Value, Value, int64_t>, LayerCheck> checks;
  WalkResult walk = func.walk([&](CacheLayerOpInterface op) {
    if (!op.getLayerIndex())
      return WalkResult::advance();
    FailureOr<LayerCheck> check = layerCheckOf(op);
    if (failed(check))
      return WalkResult::interrupt();
    checks.insert({{check->layer, check->blocks, check->staticLayers}, *check});
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
  for (auto &[key, check] : checks)
    assertLayerInRange(b, check.layer.getLoc(), check);
  insertBatchChecks(func, b);
  return indexValues ? insertIndexValueChecks(func, b) : success();
}

struct AttnInsertEntryChecksPass
    : attn::impl::AttnInsertEntryChecksBase<AttnInsertEntryChecksPass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal() &&
          failed(insertChecks(func, indexValues)))
        return signalPassFailure();
  }
};

} // namespace

void mlir::attn::assertOrReport(OpBuilder &b, Location loc, Value ok,
                                EntryStatus status) {
  auto assertOp = cf::AssertOp::create(
      b, loc, ok, std::string("attn: ") + entryStatusMessage(status));
  assertOp->setAttr(kEntryStatusAttrName,
                    b.getI32IntegerAttr(static_cast<int32_t>(status)));
}

BlockArgument mlir::attn::tensorArgument(Value v) {
  while (auto castOp = v.getDefiningOp<tensor::CastOp>())
    v = castOp.getSource();
  return dyn_cast<BlockArgument>(v);
}
