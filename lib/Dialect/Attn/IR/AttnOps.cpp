//===- AttnOps.cpp - attn operations --------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/Support/CheckedArithmetic.h"

#include <array>
#include <cmath>

using namespace mlir;
using namespace mlir::attn;

//===----------------------------------------------------------------------===//
// Verifier helpers
//===----------------------------------------------------------------------===//

namespace {

bool isCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

std::string shapeToString(ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << '[';
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << '?';
    else
      os << d;
  });
  os << ']';
  return text;
}

RankedTensorType rankedType(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// `value` must have shape `expected` (dynamic entries on either side match).
LogicalResult expectShape(Operation *op, StringRef what, Value value,
                          ArrayRef<int64_t> expected) {
  ArrayRef<int64_t> shape = rankedType(value).getShape();
  if (shape.size() == expected.size() &&
      llvm::all_of(llvm::zip(shape, expected), [](auto pair) {
        return isCompatible(std::get<0>(pair), std::get<1>(pair));
      }))
    return success();
  return op->emitOpError() << "expects " << what << " of shape "
                           << shapeToString(expected) << ", got "
                           << shapeToString(shape);
}

LogicalResult expectElementType(Operation *op, StringRef what, Value value,
                                Type expected) {
  Type actual = rankedType(value).getElementType();
  if (actual == expected)
    return success();
  return op->emitOpError() << "expects " << what << " with element type "
                           << expected << ", got " << actual;
}

LogicalResult verifyScale(Operation *op, std::optional<APFloat> scale) {
  if (!scale)
    return success();
  double value = scale->convertToDouble();
  if (!std::isfinite(value) || value <= 0)
    return op->emitOpError("expects a positive, finite scale");
  return success();
}

LogicalResult verifyHeads(Operation *op, int64_t numHeads, int64_t kvHeads) {
  for (int64_t count : {numHeads, kvHeads})
    if (!ShapedType::isDynamic(count) && count <= 0)
      return op->emitOpError() << "expects positive head counts, got "
                               << count;
  if (ShapedType::isDynamic(numHeads) || ShapedType::isDynamic(kvHeads))
    return success();
  if (numHeads % kvHeads != 0)
    return op->emitOpError() << "expects the query heads (" << numHeads
                             << ") to be a multiple of the kv heads ("
                             << kvHeads << ")";
  return success();
}

LogicalResult verifyHeadDim(Operation *op, int64_t headDim) {
  if (!ShapedType::isDynamic(headDim) && headDim <= 0)
    return op->emitOpError() << "expects a positive head dim, got " << headDim;
  return success();
}

/// row_offsets [B+1], cache_lengths [B], lookup_table [B, pages].
LogicalResult verifyRaggedIndices(Operation *op, Value rowOffsets,
                                  Value cacheLengths, Value lookup = {}) {
  int64_t offsets = rankedType(rowOffsets).getDimSize(0);
  int64_t batch = rankedType(cacheLengths).getDimSize(0);
  if (!ShapedType::isDynamic(offsets) && offsets < 1)
    return op->emitOpError("expects at least one row offset");
  if (!ShapedType::isDynamic(offsets) && !ShapedType::isDynamic(batch) &&
      offsets != batch + 1)
    return op->emitOpError() << "expects one more row offset than cache "
                                "lengths, got "
                             << offsets << " and " << batch;
  if (lookup &&
      !isCompatible(rankedType(lookup).getDimSize(0), batch))
    return op->emitOpError("expects a lookup table row per sequence");
  return success();
}

/// blocks [P, 2, L, page, Hkv, D] read or written at `layer`.
LogicalResult verifyBlocks(Operation *op, Value blocks, int64_t kvHeads,
                           int64_t headDim, Type elementType) {
  RankedTensorType type = rankedType(blocks);
  if (failed(expectShape(op, "blocks", blocks,
                         {ShapedType::kDynamic, 2, ShapedType::kDynamic,
                          ShapedType::kDynamic, kvHeads, headDim})))
    return failure();
  int64_t pageSize = type.getDimSize(3);
  if (!ShapedType::isDynamic(pageSize) && pageSize <= 0)
    return op->emitOpError() << "expects a positive page size, got " << pageSize;
  return expectElementType(op, "blocks", blocks, elementType);
}

/// `a * b` or nullopt on overflow or dynamic operands.
std::optional<int64_t> staticMul(int64_t a, int64_t b) {
  if (ShapedType::isDynamic(a) || ShapedType::isDynamic(b))
    return std::nullopt;
  return llvm::checkedMul(a, b);
}


/// Rows of Wq, Wk/Wv and the stacked Wqkv for `numHeads`, `kvHeads`,
/// `headDim`; nullopt on overflow or dynamic sizes.
std::optional<std::array<int64_t, 3>> qkvRows(int64_t numHeads, int64_t kvHeads,
                                              int64_t headDim) {
  std::optional<int64_t> q = staticMul(numHeads, headDim);
  std::optional<int64_t> kv = staticMul(kvHeads, headDim);
  if (!q || !kv)
    return std::nullopt;
  std::optional<int64_t> twoKv = llvm::checkedMul<int64_t>(*kv, 2);
  std::optional<int64_t> stacked =
      twoKv ? llvm::checkedAdd(*q, *twoKv) : std::nullopt;
  if (!stacked)
    return std::nullopt;
  return std::array<int64_t, 3>{*q, *kv, *stacked};
}

/// Expected weight rows: one stacked weight or Wq, Wk, Wv.
SmallVector<int64_t> weightRows(std::array<int64_t, 3> rows, size_t count) {
  if (count == 1)
    return {rows[2]};
  return {rows[0], rows[1], rows[1]};
}

double defaultScale(int64_t headDim) {
  return 1.0 / std::sqrt(static_cast<double>(headDim));
}

/// `[rows, cols]` of a projection weight, a float tensor or a quantised one.
std::array<int64_t, 2> weightShape(Type type) {
  if (auto quantized = dyn_cast<QuantizedWeightType>(type))
    return {quantized.getRows(), quantized.getCols()};
  ArrayRef<int64_t> shape = cast<RankedTensorType>(type).getShape();
  return {shape[0], shape[1]};
}

/// A projection weight `W [n, k]` for activations of `elementType`: a float
/// tensor of that element type, or a quantised weight whose encoding takes
/// such activations, has no clip and a bias only where it allows one.
LogicalResult verifyWeight(Operation *op, StringRef what, Value weight,
                           int64_t n, int64_t k, Type elementType, bool hasBias,
                           bool hasClip) {
  auto quantized = dyn_cast<QuantizedWeightType>(weight.getType());
  if (!quantized)
    return failure(failed(expectShape(op, what, weight, {n, k})) ||
                   failed(expectElementType(op, what, weight, elementType)));
  if (!isCompatible(quantized.getRows(), n) ||
      !isCompatible(quantized.getCols(), k))
    return op->emitOpError()
           << "expects " << what << " of shape " << shapeToString({n, k})
           << ", got " << shapeToString(weightShape(quantized));
  WeightEncodingAttrInterface encoding = quantized.getEncoding();
  if (failed(encoding.verifyActivationType(elementType,
                                           [&] { return op->emitOpError(); })))
    return failure();
  if (hasBias && !encoding.allowsBias())
    return op->emitOpError()
           << "expects no bias with " << encoding << " weights (MAX has none)";
  if (hasClip)
    return op->emitOpError() << "expects no clip with quantised weights (the "
                                "decoded weight is never materialised)";
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// PagedCacheMakeOp / PagedCachePartsOp
//===----------------------------------------------------------------------===//

LogicalResult PagedCacheMakeOp::verify() {
  KVCacheAttr params = getCache().getType().getParams();
  RankedTensorType expected = params.getBlocksType();
  if (failed(expectShape(*this, "blocks", getBlocks(), expected.getShape())) ||
      failed(expectElementType(*this, "blocks", getBlocks(),
                               params.getDtype())))
    return failure();
  if (!isCompatible(getCacheLengths().getType().getDimSize(0),
                    getLookupTable().getType().getDimSize(0)))
    return emitOpError("expects a lookup table row per sequence");
  return success();
}

LogicalResult PagedCachePartsOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location>, ValueRange operands,
    DictionaryAttr, OpaqueProperties, RegionRange,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  if (operands.size() != 1)
    return failure();
  auto cacheType = dyn_cast<PagedKVCacheType>(operands[0].getType());
  if (!cacheType)
    return failure();
  Type i32 = IntegerType::get(context, 32);
  inferredReturnTypes.push_back(cacheType.getBlocksType());
  inferredReturnTypes.push_back(
      RankedTensorType::get({ShapedType::kDynamic}, i32));
  inferredReturnTypes.push_back(RankedTensorType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic}, i32));
  return success();
}

namespace {
/// parts(make(b, l, t)) -> (b, l, t), cast to the dynamic result types.
struct ForwardMadeCacheParts : OpRewritePattern<PagedCachePartsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PagedCachePartsOp op,
                                PatternRewriter &rewriter) const override {
    auto make = op.getCache().getDefiningOp<PagedCacheMakeOp>();
    if (!make)
      return failure();
    SmallVector<Value> replacements;
    for (auto [result, source] :
         llvm::zip(op->getResults(), make->getOperands())) {
      if (source.getType() == result.getType())
        replacements.push_back(source);
      else
        replacements.push_back(tensor::CastOp::create(
            rewriter, op.getLoc(), result.getType(), source));
    }
    rewriter.replaceOp(op, replacements);
    return success();
  }
};
} // namespace

void PagedCachePartsOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                    MLIRContext *context) {
  results.add<ForwardMadeCacheParts>(context);
}

//===----------------------------------------------------------------------===//
// QKVProjectionOp
//===----------------------------------------------------------------------===//

LogicalResult QKVProjectionOp::verify() {
  size_t numWeights = getWeights().size(), numBiases = getBiases().size();
  if (numWeights != 1 && numWeights != 3)
    return emitOpError() << "expects 1 stacked or 3 separate weights, got "
                         << numWeights;
  if (numBiases != 0 && numBiases != numWeights)
    return emitOpError() << "expects no biases or one per weight ("
                         << numWeights << "), got " << numBiases;
  RankedTensorType qType = getQ().getType(), kType = getK().getType();
  if (getK().getType() != getV().getType())
    return emitOpError("expects k and v of the same type");
  int64_t numHeads = qType.getDimSize(1), kvHeads = kType.getDimSize(1);
  int64_t headDim = qType.getDimSize(2);
  if (ShapedType::isDynamic(numHeads) || ShapedType::isDynamic(kvHeads) ||
      ShapedType::isDynamic(headDim))
    return emitOpError("expects static head counts and head dim in the "
                       "result types");
  if (kType.getDimSize(2) != headDim)
    return emitOpError() << "expects q and k with the same head dim, got "
                         << headDim << " and " << kType.getDimSize(2);
  if (failed(verifyHeads(*this, numHeads, kvHeads)) ||
      failed(verifyHeadDim(*this, headDim)))
    return failure();

  Type elementType = getInput().getType().getElementType();
  int64_t tokens = getInput().getType().getDimSize(0);
  int64_t hidden = getInput().getType().getDimSize(1);
  for (Value result : getResults()) {
    if (failed(expectElementType(*this, "results", result, elementType)))
      return failure();
    if (!isCompatible(rankedType(result).getDimSize(0), tokens))
      return emitOpError("expects q, k and v with one row per input row");
  }

  std::optional<std::array<int64_t, 3>> allRows =
      qkvRows(numHeads, kvHeads, headDim);
  if (!allRows)
    return emitOpError("head counts times head dim overflow");
  SmallVector<int64_t> rows = weightRows(*allRows, numWeights);
  for (auto [weight, n] : llvm::zip(getWeights(), rows))
    if (failed(verifyWeight(*this, "weight", weight, n, hidden, elementType,
                            numBiases != 0, getClip().has_value())))
      return failure();
  for (auto [bias, n] : llvm::zip(getBiases(), rows))
    if (failed(expectShape(*this, "bias", bias, {n})) ||
        failed(expectElementType(*this, "bias", bias, elementType)))
      return failure();

  if (std::optional<APFloat> clip = getClip()) {
    double value = clip->convertToDouble();
    if (!std::isfinite(value) || value <= 0)
      return emitOpError("expects a positive, finite clip");
  }
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  RankedTensorType input = getInput().getType();
  int64_t rows = input.getDimSize(0), k = input.getDimSize(1);
  int64_t n = weightShape(getWeight().getType())[0];
  Type elementType = input.getElementType();
  if (failed(verifyWeight(*this, "weight", getWeight(), n, k, elementType,
                          static_cast<bool>(getBias()),
                          getClip().has_value())) ||
      failed(expectShape(*this, "result", getResult(), {rows, n})) ||
      failed(expectElementType(*this, "result", getResult(), elementType)))
    return failure();
  if (getBias() &&
      (failed(expectShape(*this, "bias", getBias(), {n})) ||
       failed(expectElementType(*this, "bias", getBias(), elementType))))
    return failure();
  if (std::optional<APFloat> clip = getClip()) {
    double value = clip->convertToDouble();
    if (!std::isfinite(value) || value <= 0)
      return emitOpError("expects a positive, finite clip");
  }
  return success();
}

//===----------------------------------------------------------------------===//
// RMSNormOp
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  RankedTensorType input = getInput().getType();
  if (input.getRank() < 1)
    return emitOpError("expects an input of rank at least 1");
  if (failed(expectShape(*this, "gamma", getGamma(),
                         {input.getDimSize(input.getRank() - 1)})))
    return failure();
  double eps = getEps().convertToDouble();
  if (!std::isfinite(eps) || eps < 0)
    return emitOpError("expects a non-negative, finite eps");
  return success();
}

//===----------------------------------------------------------------------===//
// RopeFreqsOp
//===----------------------------------------------------------------------===//

LogicalResult RopeFreqsOp::verify() {
  RankedTensorType type = getResult().getType();
  if (type.getRank() != 2)
    return emitOpError("expects a 2-d [positions, head_dim] result");
  if (type.getDimSize(0) < 1)
    return emitOpError("expects at least one position");
  return getRope().verifyForHeadDim(type.getDimSize(1),
                                    [&] { return emitOpError(); });
}

OpFoldResult RopeFreqsOp::fold(FoldAdaptor) { return computeTable(); }

DenseElementsAttr RopeFreqsOp::computeTable() {
  RankedTensorType type = getResult().getType();
  int64_t positions = type.getDimSize(0), headDim = type.getDimSize(1);
  std::optional<int64_t> elements = llvm::checkedMul(positions, headDim);
  if (!elements || *elements > kMaxFoldedElements)
    return {};
  RopeAttr rope = getRope();
  double magnitude = rope.getMagnitudeScale();
  SmallVector<float> table;
  table.reserve(*elements);
  SmallVector<float> invFreq = rope.computeInvFreq(headDim, 0);
  for (int64_t p = 0; p < positions; ++p) {
    // Only LongRoPE's frequencies depend on the position.
    if (isa_and_nonnull<LongRopeScalingAttr>(rope.getScaling()))
      invFreq = rope.computeInvFreq(headDim, p);
    for (float f : invFreq) {
      double angle = static_cast<double>(p) * static_cast<double>(f);
      table.push_back(static_cast<float>(magnitude * std::cos(angle)));
      table.push_back(static_cast<float>(magnitude * std::sin(angle)));
    }
  }
  return DenseElementsAttr::get(type, ArrayRef<float>(table));
}

namespace {
struct MaterializeRopeTable : OpRewritePattern<RopeFreqsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeFreqsOp op,
                                PatternRewriter &rewriter) const override {
    DenseElementsAttr table = op.computeTable();
    if (!table)
      return failure();
    rewriter.replaceOpWithNewOp<arith::ConstantOp>(op, table);
    return success();
  }
};
} // namespace

void RopeFreqsOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<MaterializeRopeTable>(context);
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

LogicalResult RopeOp::verify() {
  int64_t headDim = getInput().getType().getDimSize(2);
  if (ShapedType::isDynamic(headDim) || headDim <= 0 || headDim % 2 != 0)
    return emitOpError("expects a static, positive, even head dim");
  if (!getFreqs().getType().getElementType().isF32())
    return emitOpError("expects an f32 freqs table");
  if (failed(expectShape(*this, "freqs", getFreqs(),
                         {ShapedType::kDynamic, headDim})))
    return failure();
  return verifyRaggedIndices(*this, getRowOffsets(), getCacheLengths());
}

//===----------------------------------------------------------------------===//
// KVCacheStoreOp
//===----------------------------------------------------------------------===//

LogicalResult KVCacheStoreOp::verify() {
  if (getKey().getType() != getValue().getType())
    return emitOpError("expects key and value of the same type");
  RankedTensorType key = getKey().getType();
  if (failed(verifyBlocks(*this, getBlocks(), key.getDimSize(1),
                          key.getDimSize(2), key.getElementType())))
    return failure();
  return verifyRaggedIndices(*this, getRowOffsets(), getCacheLengths(),
                             getLookupTable());
}

//===----------------------------------------------------------------------===//
// FlashAttentionOp / PagedFlashAttentionOp
//===----------------------------------------------------------------------===//

LogicalResult FlashAttentionOp::verify() {
  RankedTensorType query = getQuery().getType(), key = getKey().getType();
  if (key != getValue().getType())
    return emitOpError("expects key and value of the same type");
  if (!isCompatible(query.getDimSize(2), key.getDimSize(2)))
    return emitOpError() << "expects query and key with the same head dim, got "
                         << query.getDimSize(2) << " and " << key.getDimSize(2);
  if (failed(verifyHeads(*this, query.getDimSize(1), key.getDimSize(1))) ||
      failed(verifyHeadDim(*this, query.getDimSize(2))) ||
      failed(expectElementType(*this, "key", getKey(),
                               query.getElementType())) ||
      failed(verifyScale(*this, getScale())))
    return failure();
  if (!isCompatible(getQRowOffsets().getType().getDimSize(0),
                    getKvRowOffsets().getType().getDimSize(0)))
    return emitOpError("expects as many query as key/value row offsets");
  return success();
}

double FlashAttentionOp::getScaleOrDefault() {
  if (std::optional<APFloat> scale = getScale())
    return scale->convertToDouble();
  return defaultScale(getQuery().getType().getDimSize(2));
}

LogicalResult PagedFlashAttentionOp::verify() {
  RankedTensorType query = getQuery().getType();
  int64_t kvHeads = getBlocks().getType().getDimSize(4);
  if (failed(verifyHeads(*this, query.getDimSize(1), kvHeads)) ||
      failed(verifyHeadDim(*this, query.getDimSize(2))) ||
      failed(verifyBlocks(*this, getBlocks(), kvHeads,
                          query.getDimSize(2), query.getElementType())) ||
      failed(verifyScale(*this, getScale())))
    return failure();
  return verifyRaggedIndices(*this, getRowOffsets(), getCacheLengths(),
                             getLookupTable());
}

double PagedFlashAttentionOp::getScaleOrDefault() {
  if (std::optional<APFloat> scale = getScale())
    return scale->convertToDouble();
  return defaultScale(getQuery().getType().getDimSize(2));
}

//===----------------------------------------------------------------------===//
// RopeStoreOp
//===----------------------------------------------------------------------===//

LogicalResult RopeStoreOp::verify() {
  RankedTensorType q = getQ().getType(), k = getK().getType();
  if (k != getV().getType())
    return emitOpError("expects k and v of the same type");
  if (failed(expectElementType(*this, "q", getQ(), k.getElementType())))
    return failure();
  int64_t headDim = q.getDimSize(2);
  if (ShapedType::isDynamic(headDim) || headDim <= 0 || headDim % 2 != 0)
    return emitOpError("expects a static, positive, even head dim");
  if (k.getDimSize(2) != headDim)
    return emitOpError() << "expects q and k with the same head dim, got "
                         << headDim << " and " << k.getDimSize(2);
  if (!isCompatible(q.getDimSize(0), k.getDimSize(0)))
    return emitOpError("expects q and k with the same number of rows");
  if (failed(verifyHeads(*this, q.getDimSize(1), k.getDimSize(1))))
    return failure();
  if (!getFreqs().getType().getElementType().isF32())
    return emitOpError("expects an f32 freqs table");
  if (failed(expectShape(*this, "freqs", getFreqs(),
                         {ShapedType::kDynamic, headDim})) ||
      failed(verifyBlocks(*this, getBlocks(), k.getDimSize(1),
                          headDim, k.getElementType())) ||
      failed(verifyRaggedIndices(*this, getRowOffsets(), getCacheLengths(),
                                 getLookupTable())))
    return failure();
  if (static_cast<bool>(getGammaQ()) != static_cast<bool>(getGammaK()))
    return emitOpError("expects both qk norm weights or neither");
  if (!hasQKNorm()) {
    if (getEps())
      return emitOpError("expects eps only with qk_norm");
    return success();
  }
  for (Value gamma : {getGammaQ(), getGammaK()})
    if (failed(expectShape(*this, "qk norm weight", gamma, {headDim})))
      return failure();
  if (!getEps())
    return emitOpError("expects eps with qk_norm");
  double eps = getEps()->convertToDouble();
  if (!std::isfinite(eps) || eps < 0)
    return emitOpError("expects a non-negative, finite eps");
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionWithRopeOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionWithRopeOp::verify() {
  KVCacheAttr params = getKVParams();
  int64_t numHeads = getNumAttentionHeads(), kvHeads = getNumKeyValueHeads();
  int64_t hidden = getHiddenSize(), headDim = params.getHeadDim();
  if (failed(verifyHeads(*this, numHeads, kvHeads)))
    return failure();
  if (kvHeads != params.getKvHeads())
    return emitOpError() << "num_key_value_heads (" << kvHeads
                         << ") differs from the cache's kv_heads ("
                         << params.getKvHeads() << ")";
  if (failed(getRope().verifyForHeadDim(headDim,
                                        [&] { return emitOpError(); })))
    return failure();

  int64_t numOffsets = getInputRowOffsets().getType().getDimSize(0);
  if (!ShapedType::isDynamic(numOffsets) && numOffsets < 1)
    return emitOpError("expects at least one row offset");

  Type elementType = getInput().getType().getElementType();
  if (elementType != params.getDtype())
    return emitOpError() << "expects the input's element type (" << elementType
                         << ") to be the cache dtype (" << params.getDtype()
                         << ")";
  if (failed(expectShape(*this, "input", getInput(),
                         {ShapedType::kDynamic, hidden})))
    return failure();

  size_t numWeights = getQkvWeights().size(), numBiases = getQkvBiases().size();
  if (numWeights != 1 && numWeights != 3)
    return emitOpError() << "expects 1 stacked or 3 separate qkv weights, got "
                         << numWeights;
  if (numBiases != 0 && numBiases != numWeights)
    return emitOpError() << "expects no qkv biases or one per weight ("
                         << numWeights << "), got " << numBiases;
  std::optional<std::array<int64_t, 3>> allRows =
      qkvRows(numHeads, kvHeads, headDim);
  if (!allRows)
    return emitOpError("head counts times head dim overflow");
  SmallVector<int64_t> rows = weightRows(*allRows, numWeights);
  int64_t qRows = (*allRows)[0];
  for (auto [weight, n] : llvm::zip(getQkvWeights(), rows))
    if (failed(verifyWeight(*this, "qkv weight", weight, n, hidden, elementType,
                            numBiases != 0, getClipQkv().has_value())))
      return failure();
  // MAX's float8 path concatenates q, k and v biases; a stacked float8
  // weight with a bias has no MAX counterpart.
  if (numWeights == 1 && numBiases != 0)
    if (auto quantized =
            dyn_cast<QuantizedWeightType>(getQkvWeights()[0].getType());
        quantized && isa<Float8Attr>(quantized.getEncoding()))
      return emitOpError("expects separate q, k and v weights for a float8 "
                         "qkv with bias");
  for (auto [bias, n] : llvm::zip(getQkvBiases(), rows))
    if (failed(expectShape(*this, "qkv bias", bias, {n})) ||
        failed(expectElementType(*this, "qkv bias", bias, elementType)))
      return failure();

  if (static_cast<bool>(getQNormWeight()) !=
      static_cast<bool>(getKNormWeight()))
    return emitOpError("expects both q_norm and k_norm or neither");
  for (Value gamma : {getQNormWeight(), getKNormWeight()})
    if (gamma && failed(expectShape(*this, "norm weight", gamma, {headDim})))
      return failure();

  if (failed(verifyWeight(*this, "o_proj weight", getOProjWeight(), hidden,
                          qRows, elementType, /*hasBias=*/false,
                          /*hasClip=*/false)))
    return failure();

  if (Value freqs = getFreqs())
    if (failed(expectShape(*this, "freqs", freqs,
                           {static_cast<int64_t>(getMaxSeqLen()), headDim})) ||
        failed(expectElementType(*this, "freqs", freqs,
                                 Float32Type::get(getContext()))))
      return failure();

  if (std::optional<APFloat> clip = getClipQkv()) {
    double value = clip->convertToDouble();
    if (!std::isfinite(value) || value <= 0)
      return emitOpError("expects a positive, finite clip_qkv");
  }
  double eps = getRmsNormEps().convertToDouble();
  if (!std::isfinite(eps) || eps < 0)
    return emitOpError("expects a non-negative, finite rms_norm_eps");
  return verifyScale(*this, getScale());
}

//===----------------------------------------------------------------------===//
// In-place sources
//===----------------------------------------------------------------------===//

LogicalResult mlir::attn::rejectQuantizedWeights(
    Operation *root, StringRef target,
    function_ref<bool(WeightEncodingAttrInterface)> supported) {
  bool rejected = false;
  root->walk([&](Operation *op) {
    if (isa<QuantizedWeightOp>(op))
      return;
    for (Type type : op->getOperandTypes()) {
      auto quantized = dyn_cast<QuantizedWeightType>(type);
      if (!quantized || (supported && supported(quantized.getEncoding())))
        continue;
      op->emitError() << "quantised weights (" << quantized.getEncoding()
                      << ") are not supported on " << target << " yet";
      rejected = true;
      return;
    }
  });
  return failure(rejected);
}

BlockArgument mlir::attn::inPlaceSource(Value v) {
  while (v && !isa<BlockArgument>(v)) {
    Operation *def = v.getDefiningOp();
    if (auto store = dyn_cast<KVCacheStoreOp>(def)) {
      v = store.getBlocks();
    } else if (auto fused = dyn_cast<RopeStoreOp>(def)) {
      v = v == fused.getResult() ? fused.getBlocks() : Value();
    } else if (auto castOp = dyn_cast<tensor::CastOp>(def)) {
      v = castOp.getSource();
    } else if (auto parts = dyn_cast<PagedCachePartsOp>(def)) {
      auto make = parts.getCache().getDefiningOp<PagedCacheMakeOp>();
      v = make ? make->getOperand(cast<OpResult>(v).getResultNumber())
               : Value();
    } else {
      v = Value();
    }
  }
  return dyn_cast_or_null<BlockArgument>(v);
}

//===----------------------------------------------------------------------===//
// Cache layer ops: a constant layer operand folds into the attribute
//===----------------------------------------------------------------------===//

void KVCacheStoreOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                 MLIRContext *) {
  addFoldConstantLayerPattern(results, getOperationName());
}

void PagedFlashAttentionOp::getCanonicalizationPatterns(
    RewritePatternSet &results, MLIRContext *) {
  addFoldConstantLayerPattern(results, getOperationName());
}

void RopeStoreOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *) {
  addFoldConstantLayerPattern(results, getOperationName());
}

void AttentionWithRopeOp::getCanonicalizationPatterns(
    RewritePatternSet &results, MLIRContext *) {
  addFoldConstantLayerPattern(results, getOperationName());
}

#define GET_OP_CLASSES
#include "attn/Dialect/Attn/IR/AttnOps.cpp.inc"
