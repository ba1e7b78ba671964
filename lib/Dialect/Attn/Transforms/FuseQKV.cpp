//===- FuseQKV.cpp - three projections of one input -> attn.qkv_projection ===//
//
// attn-fuse-qkv; see Passes.td.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "Projections.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNFUSEQKV
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// `input [T, K] @ weight [N, K]^T (+ bias)`: an `attn.linear`, or a
/// `linalg.matmul` of a zero-filled init whose right operand is the weight
/// transposed (`indexing_maps` of `x @ W^T`, or a `linalg.transpose` of `W`).
struct Projection {
  Operation *op = nullptr;
  Value input, weight, bias;
  FloatAttr clip;
};

std::optional<Projection> asProjection(Operation *op) {
  if (auto linear = dyn_cast<LinearOp>(op))
    return Projection{op, linear.getInput(), linear.getWeight(),
                      linear.getBias(), linear.getClipAttr()};
  std::optional<std::pair<Value, Value>> xw = matchMatmulProjection(op);
  if (!xw)
    return std::nullopt;
  return Projection{op, xw->first, xw->second, Value(), FloatAttr()};
}

/// A projection whose only user splits its columns into heads: [T, N] ->
/// [T, heads, D].
struct HeadProjection {
  Projection proj;
  tensor::ExpandShapeOp heads;
};

std::optional<HeadProjection> asHeadProjection(Operation *op) {
  std::optional<Projection> proj = asProjection(op);
  if (!proj || !op->hasOneUse())
    return std::nullopt;
  auto expand = dyn_cast<tensor::ExpandShapeOp>(*op->user_begin());
  if (!expand || expand.getResultType().getRank() != 3)
    return std::nullopt;
  SmallVector<ReassociationIndices> groups = expand.getReassociationIndices();
  if (groups.size() != 2 || groups[0] != ReassociationIndices{0} ||
      groups[1] != ReassociationIndices{1, 2})
    return std::nullopt;
  RankedTensorType type = expand.getResultType();
  if (type.isDynamicDim(1) || type.isDynamicDim(2))
    return std::nullopt;
  return HeadProjection{*proj, expand};
}

/// Whether every user of `v` comes after `op` in its block.
bool allUsersAfter(Value v, Operation *op) {
  Block *block = op->getBlock();
  for (Operation *user : v.getUsers()) {
    Operation *ancestor = block->findAncestorOpInBlock(*user);
    if (!ancestor || !op->isBeforeInBlock(ancestor))
      return false;
  }
  return true;
}

/// Merges q, k, v = the three head projections of one input.
LogicalResult fuseLinears(RewriterBase &rewriter,
                          ArrayRef<HeadProjection> projections) {
  HeadProjection q = projections[0], k = projections[1], v = projections[2];
  RankedTensorType qType = q.heads.getResultType();
  RankedTensorType kType = k.heads.getResultType();
  if (kType != v.heads.getResultType() ||
      qType.getDimSize(2) != kType.getDimSize(2) ||
      qType.getElementType() != kType.getElementType() ||
      qType.getDimSize(1) % kType.getDimSize(1) != 0)
    return failure();
  for (HeadProjection p : projections) {
    // Quantised weights have static shapes; the op takes them as they are.
    auto tensorType = dyn_cast<RankedTensorType>(p.proj.weight.getType());
    if (tensorType && !tensorType.hasStaticShape())
      return failure();
    if (static_cast<bool>(p.proj.bias) != static_cast<bool>(q.proj.bias) ||
        p.proj.clip != q.proj.clip)
      return failure();
  }
  // Build after the last linear; every reader of the heads must follow it.
  Operation *last = q.proj.op;
  for (HeadProjection p : projections)
    if (last->isBeforeInBlock(p.proj.op))
      last = p.proj.op;
  for (HeadProjection p : projections)
    if (!allUsersAfter(p.heads.getResult(), last))
      return failure();

  SmallVector<Value> weights, biases;
  for (HeadProjection p : projections) {
    weights.push_back(p.proj.weight);
    if (p.proj.bias)
      biases.push_back(p.proj.bias);
  }
  rewriter.setInsertionPointAfter(last);
  auto fused = QKVProjectionOp::create(
      rewriter, q.proj.op->getLoc(), qType, kType, v.heads.getResultType(),
      q.proj.input, weights, biases, q.proj.clip);
  for (auto [p, result] : llvm::zip(projections, fused->getResults())) {
    rewriter.replaceOp(p.heads, result);
    rewriter.eraseOp(p.proj.op);
  }
  return success();
}

/// `concat(attrs)` along dimension 0, as one constant of `type`.
DenseElementsAttr concatRows(ArrayRef<DenseElementsAttr> attrs,
                             RankedTensorType type) {
  if (llvm::none_of(attrs, [](DenseElementsAttr a) { return a.isSplat(); })) {
    std::vector<char> data;
    for (DenseElementsAttr a : attrs)
      data.insert(data.end(), a.getRawData().begin(), a.getRawData().end());
    return DenseElementsAttr::getFromRawBuffer(type, data);
  }
  SmallVector<APFloat> values;
  for (DenseElementsAttr a : attrs)
    llvm::append_range(values, a.getValues<APFloat>());
  return DenseElementsAttr::get(type, values);
}

/// Constant operands of `values` (all or none).
std::optional<SmallVector<DenseElementsAttr>> constants(ValueRange values) {
  SmallVector<DenseElementsAttr> attrs;
  for (Value v : values) {
    DenseElementsAttr attr;
    if (!matchPattern(v, m_Constant(&attr)))
      return std::nullopt;
    attrs.push_back(attr);
  }
  return attrs;
}

/// Separate constant weights (and biases) -> one stacked constant.
struct StackConstantWeights : OpRewritePattern<QKVProjectionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(QKVProjectionOp op,
                                PatternRewriter &rewriter) const override {
    if (op.isStacked())
      return rewriter.notifyMatchFailure(op, "already stacked");
    std::optional<SmallVector<DenseElementsAttr>> weights =
        constants(op.getWeights());
    if (!weights)
      return rewriter.notifyMatchFailure(op, "a weight is not a constant");
    std::optional<SmallVector<DenseElementsAttr>> biases =
        constants(op.getBiases());
    if (!biases)
      return rewriter.notifyMatchFailure(op, "a bias is not a constant");
    int64_t rows = 0;
    for (DenseElementsAttr w : *weights)
      rows += w.getType().getDimSize(0);
    auto wType = cast<RankedTensorType>((*weights)[0].getType());
    Value stacked = arith::ConstantOp::create(
        rewriter, op.getLoc(),
        concatRows(*weights, RankedTensorType::get({rows, wType.getDimSize(1)},
                                                   wType.getElementType())));
    SmallVector<Value> stackedBias;
    if (!biases->empty()) {
      auto bType = cast<RankedTensorType>((*biases)[0].getType());
      stackedBias.push_back(arith::ConstantOp::create(
          rewriter, op.getLoc(),
          concatRows(*biases,
                     RankedTensorType::get({rows}, bType.getElementType()))));
    }
    rewriter.replaceOpWithNewOp<QKVProjectionOp>(
        op, op->getResultTypes(), op.getInput(), ValueRange{stacked},
        stackedBias, op.getClipAttr());
    return success();
  }
};

struct AttnFuseQKVPass : attn::impl::AttnFuseQKVBase<AttnFuseQKVPass> {
  void runOnOperation() override {
    // 1. Linears of one input, per block, in program order.
    DenseMap<std::pair<Value, Block *>, SmallVector<HeadProjection>> groups;
    SmallVector<std::pair<Value, Block *>> order;
    getOperation()->walk([&](Operation *op) {
      if (!isa<LinearOp, linalg::MatmulOp>(op))
        return;
      std::optional<HeadProjection> p = asHeadProjection(op);
      if (!p)
        return;
      auto key = std::make_pair(p->proj.input, op->getBlock());
      auto [it, inserted] = groups.try_emplace(key);
      if (inserted)
        order.push_back(key);
      it->second.push_back(*p);
    });
    IRRewriter rewriter(&getContext());
    for (auto key : order) {
      SmallVector<HeadProjection> &projections = groups[key];
      // Exactly three: more would leave which three are q, k, v ambiguous.
      if (projections.size() != 3)
        continue;
      llvm::sort(projections, [](const HeadProjection &a, const HeadProjection &b) {
        return a.proj.op->isBeforeInBlock(b.proj.op);
      });
      (void)fuseLinears(rewriter, projections);
    }
    // 2. Constant separate weights -> one stacked constant.
    RewritePatternSet patterns(&getContext());
    patterns.add<StackConstantWeights>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
