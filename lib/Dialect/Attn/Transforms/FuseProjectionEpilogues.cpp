//===- FuseProjectionEpilogues.cpp - bias add / weight clamp -> op operands ===//
//
// attn-fuse-projection-epilogues; see Passes.td.
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
#define GEN_PASS_DEF_ATTNFUSEPROJECTIONEPILOGUES
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The positive splat float of a constant, if it is one.
std::optional<APFloat> splatOf(Value v) {
  DenseElementsAttr attr;
  if (!matchPattern(v, m_Constant(&attr)) || !attr.isSplat() ||
      !isa<FloatType>(attr.getElementType()))
    return std::nullopt;
  return attr.getSplatValue<APFloat>();
}

/// A scalar float constant.
std::optional<APFloat> scalarOf(Value v) {
  FloatAttr attr;
  if (!matchPattern(v, m_Constant(&attr)))
    return std::nullopt;
  return attr.getValue();
}

/// `hi` of `min(max(x, lo), hi)` / `max(min(x, hi), lo)` with `lo = -hi`,
/// `hi > 0`, where `x` is `arg` and the bounds come from `bound(value)`.
std::optional<double>
symmetricClampOf(Operation *outer, Value arg,
                 function_ref<std::optional<APFloat>(Value)> bound) {
  if (!isa_and_nonnull<arith::MinimumFOp, arith::MaximumFOp>(outer))
    return std::nullopt;
  bool outerIsMin = isa<arith::MinimumFOp>(outer);
  for (int which = 0; which < 2; ++which) {
    std::optional<APFloat> outerBound = bound(outer->getOperand(1 - which));
    Operation *inner = outer->getOperand(which).getDefiningOp();
    if (!outerBound || !inner)
      continue;
    if (outerIsMin ? !isa<arith::MaximumFOp>(inner)
                   : !isa<arith::MinimumFOp>(inner))
      continue;
    for (int w = 0; w < 2; ++w) {
      std::optional<APFloat> innerBound = bound(inner->getOperand(1 - w));
      if (!innerBound || inner->getOperand(w) != arg)
        continue;
      double hi = (outerIsMin ? *outerBound : *innerBound).convertToDouble();
      double lo = (outerIsMin ? *innerBound : *outerBound).convertToDouble();
      if (!std::isfinite(hi) || hi <= 0 || lo != -hi)
        continue;
      return hi;
    }
  }
  return std::nullopt;
}

/// `v` = clamp(w, -c, c) as a `linalg.generic` over `w` with identity maps,
/// parallel iterators and a `tensor.empty` init: (w, c).
std::optional<std::pair<Value, double>> matchGenericClamp(Value v) {
  auto generic = v.getDefiningOp<linalg::GenericOp>();
  if (!generic || generic.getNumDpsInputs() != 1 ||
      generic.getNumDpsInits() != 1 || generic->getNumResults() != 1 ||
      !generic.getDpsInits()[0].getDefiningOp<tensor::EmptyOp>() ||
      generic.getNumReductionLoops() != 0 ||
      !llvm::all_of(generic.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }))
    return std::nullopt;
  Block &body = generic.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  std::optional<double> hi =
      symmetricClampOf(yield.getOperand(0).getDefiningOp(), body.getArgument(0),
                       [](Value b) { return scalarOf(b); });
  if (!hi)
    return std::nullopt;
  return std::make_pair(generic.getDpsInputs()[0], *hi);
}

/// `v` = clamp(w, -c, c) by minimumf/maximumf with splat bounds: (w, c).
std::optional<std::pair<Value, double>> matchClamp(Value v) {
  if (std::optional<std::pair<Value, double>> g = matchGenericClamp(v))
    return g;
  Operation *outer = v.getDefiningOp();
  if (!isa_and_nonnull<arith::MinimumFOp, arith::MaximumFOp>(outer))
    return std::nullopt;
  bool outerIsMin = isa<arith::MinimumFOp>(outer);
  for (int which = 0; which < 2; ++which) {
    Value inner = outer->getOperand(which);
    std::optional<APFloat> outerBound = splatOf(outer->getOperand(1 - which));
    Operation *innerOp = inner.getDefiningOp();
    if (!outerBound || !innerOp)
      continue;
    if (outerIsMin ? !isa<arith::MaximumFOp>(innerOp)
                   : !isa<arith::MinimumFOp>(innerOp))
      continue;
    for (int w = 0; w < 2; ++w) {
      std::optional<APFloat> innerBound = splatOf(innerOp->getOperand(1 - w));
      if (!innerBound)
        continue;
      double hi = (outerIsMin ? *outerBound : *innerBound).convertToDouble();
      double lo = (outerIsMin ? *innerBound : *outerBound).convertToDouble();
      if (!std::isfinite(hi) || hi <= 0 || lo != -hi)
        continue;
      return std::make_pair(innerOp->getOperand(w), hi);
    }
  }
  return std::nullopt;
}

/// `(w, clip)` for a projection weight: a symmetric clamp becomes the clip.
std::pair<Value, FloatAttr> weightAndClip(Builder &b, Value w) {
  if (std::optional<std::pair<Value, double>> clamp = matchClamp(w))
    if (clamp->first.getType() == w.getType())
      return {clamp->first, b.getF64FloatAttr(clamp->second)};
  return {w, FloatAttr()};
}

/// `linalg.add(P, broadcast(b))` -> `attn.linear(x, w, b)` where P is a
/// bias-free `attn.linear` or a `linalg.matmul` projection (whose clamped
/// weight, if any, becomes the clip at the same time).
struct FoldBiasAdd : OpRewritePattern<linalg::AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::AddOp add,
                                PatternRewriter &rewriter) const override {
    if (add.getNumDpsInputs() != 2 || add->getNumResults() != 1)
      return failure();
    for (int which = 0; which < 2; ++which) {
      Value lhs = add.getDpsInputs()[which];
      Value rhs = add.getDpsInputs()[1 - which];
      Operation *proj = lhs.getDefiningOp();
      auto broadcast = rhs.getDefiningOp<linalg::BroadcastOp>();
      if (!proj || !broadcast || !proj->hasOneUse() ||
          broadcast.getDimensions() != ArrayRef<int64_t>{0})
        continue;
      Value x, w;
      FloatAttr clip;
      if (auto linear = dyn_cast<LinearOp>(proj)) {
        auto quantized =
            dyn_cast<QuantizedWeightType>(linear.getWeight().getType());
        if (linear.getBias() ||
            (quantized && !quantized.getEncoding().allowsBias()))
          continue;
        x = linear.getInput();
        w = linear.getWeight();
        clip = linear.getClipAttr();
      } else if (std::optional<std::pair<Value, Value>> xw =
                     matchMatmulProjection(proj)) {
        x = xw->first;
        std::tie(w, clip) = weightAndClip(rewriter, xw->second);
      } else {
        continue;
      }
      Value bias = broadcast.getInput();
      auto biasType = dyn_cast<RankedTensorType>(bias.getType());
      auto resultType = cast<RankedTensorType>(lhs.getType());
      if (!biasType || biasType.getRank() != 1 ||
          biasType.getElementType() != resultType.getElementType())
        continue;
      int64_t n = resultType.getDimSize(1), bn = biasType.getDimSize(0);
      if (ShapedType::isDynamic(n) || n != bn)
        continue;
      auto fused = LinearOp::create(rewriter, add.getLoc(), resultType, x, w,
                                    bias, clip);
      Type addType = add->getResult(0).getType();
      Value replacement = fused.getResult();
      if (addType != resultType)
        replacement = tensor::CastOp::create(rewriter, add.getLoc(), addType,
                                             replacement);
      rewriter.replaceOp(add, replacement);
      rewriter.eraseOp(proj);
      return success();
    }
    return rewriter.notifyMatchFailure(add, "not a projection + broadcast bias");
  }
};

/// A `linalg.matmul` projection of a clamped weight -> `attn.linear` with
/// clip (a bias add after it is then folded by FoldBiasAdd).
struct RaiseClampedMatmul : OpRewritePattern<linalg::MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<std::pair<Value, Value>> xw = matchMatmulProjection(op);
    if (!xw)
      return rewriter.notifyMatchFailure(op, "not a projection");
    auto [w, clip] = weightAndClip(rewriter, xw->second);
    if (!clip)
      return rewriter.notifyMatchFailure(op, "weight not clamped");
    rewriter.replaceOpWithNewOp<LinearOp>(op, op->getResult(0).getType(),
                                          xw->first, w, Value(), clip);
    return success();
  }
};

struct FoldLinearClip : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getClip())
      return rewriter.notifyMatchFailure(op, "already clipped");
    std::optional<std::pair<Value, double>> clamp = matchClamp(op.getWeight());
    if (!clamp || clamp->first.getType() != op.getWeight().getType())
      return rewriter.notifyMatchFailure(op, "weight is not a symmetric clamp");
    rewriter.modifyOpInPlace(op, [&] {
      op.getWeightMutable().assign(clamp->first);
      op.setClipAttr(rewriter.getF64FloatAttr(clamp->second));
    });
    return success();
  }
};

struct FoldQKVClip : OpRewritePattern<QKVProjectionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(QKVProjectionOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getClip())
      return rewriter.notifyMatchFailure(op, "already clipped");
    SmallVector<Value> weights;
    std::optional<double> bound;
    for (Value w : op.getWeights()) {
      std::optional<std::pair<Value, double>> clamp = matchClamp(w);
      if (!clamp || clamp->first.getType() != w.getType() ||
          (bound && *bound != clamp->second))
        return rewriter.notifyMatchFailure(
            op, "weights are not all clamped by the same symmetric bound");
      bound = clamp->second;
      weights.push_back(clamp->first);
    }
    rewriter.modifyOpInPlace(op, [&] {
      op.getWeightsMutable().assign(weights);
      op.setClipAttr(rewriter.getF64FloatAttr(*bound));
    });
    return success();
  }
};

struct AttnFuseProjectionEpiloguesPass
    : attn::impl::AttnFuseProjectionEpiloguesBase<
          AttnFuseProjectionEpiloguesPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseClampedMatmul, FoldBiasAdd, FoldLinearClip, FoldQKVClip>(
        &getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
