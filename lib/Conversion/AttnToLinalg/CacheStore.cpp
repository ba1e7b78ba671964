//===- CacheStore.cpp - attn.kv_cache_store / attn.rope_store to scf ------===//
//
// scf.for over sequences and rows inserting each row into its cache slot
// of the blocks (the destination), so the cache is updated in place;
// attn.rope_store rotates (and normalises) the keys on their way in.
//
//===----------------------------------------------------------------------===//

#include "Builders.h"
#include "NormRope.h"
#include "Patterns.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

//===----------------------------------------------------------------------===//
// KV cache store
//===----------------------------------------------------------------------===//

namespace {

/// RoPE applied to the keys on their way into the cache (attn.rope_store).
struct KeyRotation {
  Value cosT, sinT; // [T, D/2] f32
  bool interleaved = false;
  Value gamma;      // [D]: RMS-normalise each head first (qk norm), or null
  double eps = 0.0;
};

} // namespace

/// Row `row` of `key [T, Hkv, D]` rotated and written into the cache slot
/// `blocks[page, 0, layer, slot]` with vector ops: per head one read, the
/// pair partner and the expanded cos / signed sin by static shuffles, one
/// multiply-add and one write into the blocks tensor (in place after
/// bufferisation, no temporary row).
static Value storeRotatedKeyRow(IB &b, Value key, Value row, Value blocks,
                                Value page, Value layer, Value slot,
                                const KeyRotation &rotation) {
  auto type = cast<RankedTensorType>(key.getType());
  int64_t kvHeads = type.getDimSize(1), headDim = type.getDimSize(2);
  int64_t half = headDim / 2;
  Type elementType = type.getElementType();
  SmallVector<int64_t> partnerMask, expandMask, signMask;
  for (int64_t c = 0; c < headDim; ++c) {
    bool first = rotation.interleaved ? c % 2 == 0 : c < half;
    int64_t pair = rotation.interleaved ? c / 2 : c % half;
    partnerMask.push_back(rotation.interleaved ? (c ^ 1)
                                               : (first ? c + half : c - half));
    expandMask.push_back(pair);
    // Into (sin, -sin): the first of a pair takes -sin.
    signMask.push_back(first ? half + pair : pair);
  }
  Value zero = cIndex(b, 0);
  Value gammaV;
  if (rotation.gamma)
    gammaV = vecToF32(b, readVector(b, rotation.gamma, {zero}, headDim));
  Value cosH = readVector(b, rotation.cosT, {row, zero}, half);
  Value sinH = readVector(b, rotation.sinT, {row, zero}, half);
  Value cosV = vector::ShuffleOp::create(b, cosH, cosH, expandMask);
  Value negSin = arith::NegFOp::create(b, sinH);
  Value sinV = vector::ShuffleOp::create(b, sinH, negSin, signMask);
  return forLoop(
      b, zero, cIndex(b, kvHeads), 1, ValueRange{blocks},
      [&](IB &ib, Idx head, ValueRange args) -> SmallVector<Value> {
        Value x = vecToF32(ib, readVector(ib, key, {row, head, cIndex(ib, 0)},
                                          headDim));
        if (gammaV) {
          // x * rsqrt(mean(x^2) + eps) * gamma, in registers.
          Value sq = arith::MulFOp::create(ib, x, x);
          Value sum = vector::ReductionOp::create(ib, vector::CombiningKind::ADD, sq);
          Value mean = arith::MulFOp::create(ib, sum, cF32(ib, 1.0 / headDim));
          Value inv = math::RsqrtOp::create(
              ib, arith::AddFOp::create(ib, mean, cF32(ib, rotation.eps)));
          x = arith::MulFOp::create(
              ib, arith::MulFOp::create(ib, x, splat(ib, inv, headDim)), gammaV);
        }
        Value partner = vector::ShuffleOp::create(ib, x, x, partnerMask);
        Value y = arith::MulFOp::create(ib, x, cosV);
        y = math::FmaOp::create(ib, partner, sinV, y);
        if (!elementType.isF32())
          y = arith::TruncFOp::create(
              ib, vecType(elementType, {headDim}), y);
        return {writeVector(ib, y, args[0],
                            {page, cIndex(ib, 0), layer, slot,
                             head, cIndex(ib, 0)})};
      })[0];
}

namespace {
/// Where the rows of a sequence go: page `lookup[seq, pos / pageSize]`, slot
/// `pos % pageSize`.
struct CachePages {
  Value lookup;
  Idx pageSize, numPages, maxPages;
  /// False for a page size of 0 (possible only with a dynamic size) or a
  /// layer outside the cache: then nothing is stored.
  Idx hasPages;

  /// The page and slot of key position `pos` of sequence `seq` and whether
  /// the row may be written: rows whose page is not in the table or not a
  /// real page are dropped rather than written out of bounds.
  std::tuple<Value, Value, Value> slotOf(IB &b, Value seq, Idx pos) const {
    Idx pageIdx = divSigned(b, pos, pageSize);
    Idx slot = remSigned(b, pos, pageSize);
    Idx zero = cIndex(b, 0);
    Idx inTable = hasPages & (pos >= zero);
    inTable = inTable & (pageIdx < maxPages);
    Idx safeIdx = clamp(b, pageIdx, zero, maxPages - 1);
    Idx page = loadIndex(b, lookup, {seq, safeIdx});
    Idx valid = inTable & ((page >= zero) & (page < numPages));
    return {page, slot, valid};
  }
};
} // namespace

/// Row `row` of `source [T, Hkv, D]` (keys: kv = 0, values: 1) inserted as
/// a `rowType` slice into the cache slot `blocks[page, kv, layer, slot]`.
static Value insertRow(IB &b, Value source, Value row, RankedTensorType rowType,
                       Value blocks, Value page, int64_t kv, Value layer,
                       Value slot) {
  int64_t kvHeads = rowType.getDimSize(0), headDim = rowType.getDimSize(1);
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> dstOffsets = {
      page, b.getIndexAttr(kv), getAsOpFoldResult(layer), slot, zero, zero};
  SmallVector<OpFoldResult> dstSizes = {one, one, one, one,
                                        b.getIndexAttr(kvHeads),
                                        b.getIndexAttr(headDim)};
  SmallVector<OpFoldResult> dstStrides(6, one);
  SmallVector<OpFoldResult> srcOffsets = {row, zero, zero};
  SmallVector<OpFoldResult> srcSizes = {one, b.getIndexAttr(kvHeads),
                                        b.getIndexAttr(headDim)};
  SmallVector<OpFoldResult> unit(3, one);
  Value rowSlice = tensor::ExtractSliceOp::create(b, rowType, source,
                                                  srcOffsets, srcSizes, unit);
  return tensor::InsertSliceOp::create(b, rowSlice, blocks, dstOffsets,
                                       dstSizes, dstStrides);
}

/// The cache writes of attn.kv_cache_store into `blocks` (the result is the
/// updated blocks, written in place after bufferisation). With `rotation`,
/// each key row is rotated straight into its cache slot, so no rotated-key
/// tensor exists. A layer outside the cache stores nothing.
static Value buildCacheStore(IB &b, Value key, Value value, Value rowOffsets,
                             Value lengths, Value lookup, Value blocks,
                             Value layer, const KeyRotation *rotation) {
  BuilderScope scope(b);
  auto keyType = cast<RankedTensorType>(key.getType());
  auto rowType = RankedTensorType::get(
      {keyType.getDimSize(1), keyType.getDimSize(2)},
      cast<RankedTensorType>(blocks.getType()).getElementType());
  Idx pageSizeRaw = dim(b, blocks, 3);
  Idx layerInCache = (Idx(layer) >= cIndex(b, 0)) & (Idx(layer) < dim(b, blocks, 2));
  Idx hasPages = (pageSizeRaw > cIndex(b, 0)) & layerInCache;
  CachePages pages{lookup, max(b, pageSizeRaw, cIndex(b, 1)), Idx(), Idx(),
                   hasPages};
  Value tokens = dim(b, key, 0);
  pages.numPages = dim(b, blocks, 0);
  Value batch = dim(b, lengths, 0);
  pages.maxPages = dim(b, lookup, 1);
  auto storeRow = [&](IB &ib, Value seq, Idx pos, Value row, Value into) {
    // (Plain variables: the lambda below captures them.)
    Value page, slot, valid;
    std::tie(page, slot, valid) = pages.slotOf(ib, seq, pos);
    return ifElse(ib, valid, ValueRange{into}, [&](IB &tb) {
      Value updated = into;
      if (rotation)
        updated = storeRotatedKeyRow(tb, key, row, updated, page, layer, slot,
                                     *rotation);
      else
        updated = insertRow(tb, key, row, rowType, updated, page, 0, layer,
                            slot);
      return SmallVector<Value>{
          insertRow(tb, value, row, rowType, updated, page, 1, layer, slot)};
    })[0];
  };
  return forLoop(b, cIndex(b, 0), batch, 1, ValueRange{blocks},
                 [&](IB &ib, Idx seq, ValueRange state) {
                   auto [start, end] =
                       sequenceRows(ib, rowOffsets, seq, tokens);
                   Idx base = loadIndex(ib, lengths, {seq}) - start;
                   return forLoop(
                       ib, start, end, 1, state,
                       [&](IB &ib2, Idx row, ValueRange rowState)
                           -> SmallVector<Value> {
                         return {storeRow(ib2, seq, base + row, row,
                                          rowState[0])};
                       });
                 })[0];
}

namespace {

struct LowerKVCacheStore : OpRewritePattern<KVCacheStoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(KVCacheStoreOp op,
                                PatternRewriter &rewriter) const override {
    auto keyType = op.getKey().getType();
    if (ShapedType::isDynamic(keyType.getDimSize(1)) ||
        ShapedType::isDynamic(keyType.getDimSize(2)))
      return rewriter.notifyMatchFailure(op, "needs static kv heads and head dim");
    IB b(op.getLoc(), rewriter);
    Value out = buildCacheStore(b, op.getKey(), op.getValue(),
                                op.getRowOffsets(), op.getCacheLengths(),
                                op.getLookupTable(), op.getBlocks(),
                                op.buildLayerIndex(b, op.getLoc()), nullptr);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Fused RoPE + cache store
//===----------------------------------------------------------------------===//

/// attn.rms_norm (optional) + attn.rope of q and k + attn.kv_cache_store:
/// the q path is norm + rope as apart; each k head is normalised (when
/// asked) and rotated in registers and written straight into its cache slot
/// by the store loop. One cos/sin computation serves q and k.
struct LowerRopeStore : OpRewritePattern<RopeStoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeStoreOp op,
                                PatternRewriter &rewriter) const override {
    auto kType = op.getK().getType();
    if (ShapedType::isDynamic(kType.getDimSize(1)))
      return rewriter.notifyMatchFailure(op, "needs static kv heads");
    IB b(op.getLoc(), rewriter);
    Value q = op.getQ(), k = op.getK();
    double eps = op.hasQKNorm() ? op.getEps()->convertToDouble() : 0.0;
    if (op.hasQKNorm())
      q = buildRMSNorm(b, q, op.getGammaQ(), eps);
    int64_t headDim = kType.getDimSize(2);
    auto [cosT, sinT] = ropeCosSin(b, op.getFreqs(), op.getRowOffsets(),
                                   op.getCacheLengths(), dim(b, q, 0), headDim);
    Value qr = buildRope(b, q, cosT, sinT, op.getInterleaved());
    // k rows index the same cos/sin rows (same row count, verified).
    // k is normalised in registers on its way into the cache.
    KeyRotation rotation{cosT, sinT, op.getInterleaved(),
                         op.hasQKNorm() ? op.getGammaK() : Value(), eps};
    Value blocks = buildCacheStore(b, k, op.getV(), op.getRowOffsets(),
                                   op.getCacheLengths(), op.getLookupTable(),
                                   op.getBlocks(),
                                   op.buildLayerIndex(b, op.getLoc()), &rotation);
    rewriter.replaceOp(
        op, {b.createOrFold<tensor::CastOp>(op.getQResult().getType(), qr),
             b.createOrFold<tensor::CastOp>(op.getResult().getType(), blocks)});
    return success();
  }
};

} // namespace

void linalg_lowering::populateCacheStorePatterns(RewritePatternSet &patterns) {
  patterns.add<LowerKVCacheStore, LowerRopeStore>(patterns.getContext());
}
