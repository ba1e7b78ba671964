//===- FuseRopeStore.cpp - rope(q), rope(k), store -> attn.rope_store -----===//
//
// attn-fuse-rope-store and attn-fuse-qk-norm-rope; see Passes.td.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNFUSEROPESTORE
#define GEN_PASS_DEF_ATTNFUSEQKNORMROPE
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// Whether every user of `v` comes after `op` (users nested in later ops
/// count as later).
bool allUsersAfter(Value v, Operation *op) {
  Block *block = op->getBlock();
  for (Operation *user : v.getUsers()) {
    Operation *ancestor = block->findAncestorOpInBlock(*user);
    if (!ancestor || ancestor == op || !op->isBeforeInBlock(ancestor))
      return false;
  }
  return true;
}

bool sameRope(RopeOp a, RopeOp b) {
  return a.getFreqs() == b.getFreqs() &&
         a.getRowOffsets() == b.getRowOffsets() &&
         a.getCacheLengths() == b.getCacheLengths() &&
         a.getInterleaved() == b.getInterleaved();
}

struct FuseRopeStorePattern : OpRewritePattern<KVCacheStoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(KVCacheStoreOp store,
                                PatternRewriter &rewriter) const override {
    auto kRope = store.getKey().getDefiningOp<RopeOp>();
    if (!kRope)
      return rewriter.notifyMatchFailure(store, "key is not an attn.rope");
    if (!kRope->hasOneUse() || store.getValue() == kRope.getResult())
      return rewriter.notifyMatchFailure(store, "the rotated key has other users");
    if (kRope.getRowOffsets() != store.getRowOffsets() ||
        kRope.getCacheLengths() != store.getCacheLengths())
      return rewriter.notifyMatchFailure(store,
                                         "rope and store positions differ");
    if (kRope->getBlock() != store->getBlock())
      return rewriter.notifyMatchFailure(store, "rope in another block");
    // The q rope: same table, positions and pairing, before the store, its
    // users after it; the closest such one.
    RopeOp qRope;
    for (Operation *user : kRope.getFreqs().getUsers()) {
      auto candidate = dyn_cast<RopeOp>(user);
      if (!candidate || candidate == kRope || !sameRope(candidate, kRope) ||
          candidate->getBlock() != store->getBlock() ||
          !candidate->isBeforeInBlock(store) ||
          !allUsersAfter(candidate.getResult(), store))
        continue;
      if (candidate.getInput().getType().getElementType() !=
              kRope.getInput().getType().getElementType() ||
          candidate.getInput().getType().getDimSize(2) !=
              kRope.getInput().getType().getDimSize(2))
        continue;
      int64_t qRows = candidate.getInput().getType().getDimSize(0);
      int64_t kRows = kRope.getInput().getType().getDimSize(0);
      if (!ShapedType::isDynamic(qRows) && !ShapedType::isDynamic(kRows) &&
          qRows != kRows)
        continue;
      int64_t qHeads = candidate.getInput().getType().getDimSize(1);
      int64_t kvHeads = kRope.getInput().getType().getDimSize(1);
      if (kvHeads <= 0 || qHeads % kvHeads != 0)
        continue;
      if (!qRope || qRope->isBeforeInBlock(candidate))
        qRope = candidate;
    }
    if (!qRope)
      return rewriter.notifyMatchFailure(
          store, "no q rope with the same table, positions and pairing");
    auto fused = RopeStoreOp::create(
        rewriter, store.getLoc(),
        TypeRange{qRope.getType(), store.getResult().getType()},
        kRope.getInput(), store.getValue(), kRope.getFreqs(),
        store.getRowOffsets(), store.getCacheLengths(), store.getLookupTable(),
        qRope.getInput(), store.getBlocks(), /*gamma_q=*/Value(),
        /*gamma_k=*/Value(), store.getLayerIndex(), store.getLayerAttr(),
        qRope.getInterleavedAttr(), /*eps=*/FloatAttr());
    rewriter.replaceOp(qRope, fused.getQResult());
    rewriter.replaceOp(store, fused.getResult());
    rewriter.eraseOp(kRope);
    return success();
  }
};

struct FuseQKNormPattern : OpRewritePattern<RopeStoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeStoreOp op,
                                PatternRewriter &rewriter) const override {
    if (op.hasQKNorm())
      return rewriter.notifyMatchFailure(op, "already normalises");
    auto qNorm = op.getQ().getDefiningOp<RMSNormOp>();
    auto kNorm = op.getK().getDefiningOp<RMSNormOp>();
    if (!qNorm || !kNorm || qNorm == kNorm)
      return rewriter.notifyMatchFailure(op, "q and k are not two rms norms");
    if (!qNorm->hasOneUse() || !kNorm->hasOneUse())
      return rewriter.notifyMatchFailure(op, "a norm result has other users");
    if (qNorm.getEps() != kNorm.getEps())
      return rewriter.notifyMatchFailure(op, "the norms' eps differ");
    int64_t headDim = op.getQ().getType().getDimSize(2);
    for (RMSNormOp norm : {qNorm, kNorm})
      if (norm.getGamma().getType().getDimSize(0) != headDim &&
          !ShapedType::isDynamic(norm.getGamma().getType().getDimSize(0)))
        return rewriter.notifyMatchFailure(op, "gamma is not per head dim");
    auto fused = RopeStoreOp::create(
        rewriter, op.getLoc(), op->getResultTypes(), kNorm.getInput(),
        op.getV(), op.getFreqs(), op.getRowOffsets(), op.getCacheLengths(),
        op.getLookupTable(), qNorm.getInput(), op.getBlocks(),
        qNorm.getGamma(), kNorm.getGamma(), op.getLayerIndex(),
        op.getLayerAttr(),
        op.getInterleavedAttr(), qNorm.getEpsAttr());
    rewriter.replaceOp(op, fused->getResults());
    rewriter.eraseOp(qNorm);
    rewriter.eraseOp(kNorm);
    return success();
  }
};

struct AttnFuseRopeStorePass
    : attn::impl::AttnFuseRopeStoreBase<AttnFuseRopeStorePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseRopeStorePattern>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

struct AttnFuseQKNormRopePass
    : attn::impl::AttnFuseQKNormRopeBase<AttnFuseQKNormRopePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseQKNormPattern>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
