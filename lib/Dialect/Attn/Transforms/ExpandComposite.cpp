//===- ExpandComposite.cpp - attention_with_rope -> primitive ops ---------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNEXPANDCOMPOSITE
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

struct ExpandAttentionWithRope : OpRewritePattern<AttentionWithRopeOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionWithRopeOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    KVCacheAttr params = op.getKVParams();
    int64_t numHeads = op.getNumAttentionHeads();
    int64_t kvHeads = op.getNumKeyValueHeads();
    int64_t headDim = params.getHeadDim();
    RankedTensorType inputType = op.getInput().getType();
    Type elementType = inputType.getElementType();
    int64_t tokens = inputType.getDimSize(0);
    Value rowOffsets = op.getInputRowOffsets();
    IntegerAttr layer = op.getLayerIdxAttr();
    Value layerIndex = op.getLayerIndex();

    auto parts = PagedCachePartsOp::create(rewriter, loc, op.getKvCollection());
    Value blocks = parts.getBlocks();
    Value cacheLengths = parts.getCacheLengths();
    Value lookup = parts.getLookupTable();

    // 1. QKV projection.
    auto qType =
        RankedTensorType::get({tokens, numHeads, headDim}, elementType);
    auto kvType = RankedTensorType::get({tokens, kvHeads, headDim}, elementType);
    auto qkv = QKVProjectionOp::create(
        rewriter, loc, qType, kvType, kvType, op.getInput(),
        op.getQkvWeights(), op.getQkvBiases(), op.getClipQkvAttr());
    Value q = qkv.getQ(), k = qkv.getK(), v = qkv.getV();

    // 2. qk norm, before RoPE.
    if (op.usesQKNorm()) {
      FloatAttr eps = op.getRmsNormEpsAttr();
      q = RMSNormOp::create(rewriter, loc, q, op.getQNormWeight(), eps);
      k = RMSNormOp::create(rewriter, loc, k, op.getKNormWeight(), eps);
    }

    // 3. RoPE of q and k from one cos/sin table: the caller's, else one of
    // the rope attribute.
    RopeAttr rope = op.getRope();
    Value freqs = op.getFreqs();
    if (!freqs) {
      auto freqsType = RankedTensorType::get(
          {static_cast<int64_t>(op.getMaxSeqLen()), headDim},
          rewriter.getF32Type());
      freqs = RopeFreqsOp::create(rewriter, loc, freqsType, rope);
    }
    UnitAttr interleaved =
        rope.getInterleaved() ? rewriter.getUnitAttr() : UnitAttr();
    q = RopeOp::create(rewriter, loc, q, freqs, rowOffsets, cacheLengths,
                       interleaved);
    k = RopeOp::create(rewriter, loc, k, freqs, rowOffsets, cacheLengths,
                       interleaved);

    // 4. Cache write, 5. attention over the updated cache.
    Value updatedBlocks =
        KVCacheStoreOp::create(rewriter, loc, k, v, rowOffsets, cacheLengths,
                               lookup, blocks, layerIndex, layer);
    Value attention = PagedFlashAttentionOp::create(
        rewriter, loc, q, updatedBlocks, rowOffsets, cacheLengths, lookup,
        layerIndex, layer, op.getMaskAttr(), op.getScaleAttr());

    // 6. Output projection of [T, H*D].
    SmallVector<ReassociationIndices> heads = {{0}, {1, 2}};
    Value flat =
        tensor::CollapseShapeOp::create(rewriter, loc, attention, heads);
    Value output = LinearOp::create(rewriter, loc, inputType, flat,
                                    op.getOProjWeight(), Value(), FloatAttr());
    Value updatedCache = PagedCacheMakeOp::create(
        rewriter, loc, op.getKvCollection().getType(), updatedBlocks,
        cacheLengths, lookup);
    rewriter.replaceOp(op, {output, updatedCache});
    return success();
  }
};

struct AttnExpandCompositePass
    : attn::impl::AttnExpandCompositeBase<AttnExpandCompositePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandAttentionWithRope>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
