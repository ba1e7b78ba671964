//===- PrefillTile.cpp - the prefill tile of grouped attention ------------===//
//
// Several query rows x the GQA group against key tiles transposed and packed
// into register-block panels (`[tile / W, D, W]`) and value tiles packed as
// `[D / W, tile, W]`, f32: each register block then streams one contiguous
// panel. Column blocks no row of a block can see are skipped.
//
//===----------------------------------------------------------------------===//

#include "AttentionKernels.h"
#include "QueryTile.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

/// Key tile `kt` transposed and packed and its value tile packed, value rows
/// past the sequence zero.
static std::pair<Value, Value> packKeyValueTile(IB &b, const QueryTile &t,
                                                Value kt) {
  const KVSource &kv = t.kv;
  int64_t tile = kv.tileSize, headDim = t.params.headDim;
  Value tileBase = kv.prepareTile(b, kt);
  Value keysT = transposeKeys(b, tile, headDim, [&](IB &g, Value c, Value d0) {
    return kv.readRow(g, tileBase, 0, t.kvHead, c, d0, kLanes);
  });
  Value values = kv.loadValues(b, kt, t.kvHead, t.kvLen);
  return {packColumns(b, keysT, blockWidth(tile, t.blockColumns)),
          packColumns(b, values, blockWidth(headDim, t.blockColumns))};
}

/// `tile` inserted as slot `slot` of the packed tiles `into`.
static Value insertTile(IB &b, Value tile, Value into, Value slot) {
  auto type = cast<RankedTensorType>(tile.getType());
  SmallVector<OpFoldResult> offsets(4, b.getIndexAttr(0));
  offsets[0] = slot;
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1)};
  for (int64_t size : type.getShape())
    sizes.push_back(b.getIndexAttr(size));
  SmallVector<OpFoldResult> unit(4, b.getIndexAttr(1));
  return tensor::InsertSliceOp::create(b, tile, into, offsets, sizes, unit);
}

PackedTiles linalg_lowering::packVisibleTiles(IB &b, const QueryTile &t,
                                              Value posBase) {
  BuilderScope scope(b);
  int64_t tile = t.kv.tileSize, headDim = t.params.headDim;
  int64_t window = t.windowed() ? t.params.mask.getWindow() : 0;
  Idx zero = cIndex(b, 0);
  Idx lo = zero;
  if (window > 0)
    lo = divSigned(b, max(b, Idx(posBase) - (window - 1), zero), tile);
  Idx hi = max(b, ceilDivSigned(b, t.kvLen, tile), lo);
  Idx count = hi - lo;
  Type f32 = b.getF32Type();
  int64_t keyWidth = blockWidth(tile, t.blockColumns);
  int64_t valueWidth = blockWidth(headDim, t.blockColumns);
  Value keysInit = emptyTensor(
      b, {count, b.getIndexAttr(tile / keyWidth), b.getIndexAttr(headDim),
          b.getIndexAttr(keyWidth)},
      f32);
  Value valuesInit = emptyTensor(
      b, {count, b.getIndexAttr(headDim / valueWidth), b.getIndexAttr(tile),
          b.getIndexAttr(valueWidth)},
      f32);
  SmallVector<Value> packed = forLoop(
      b, lo, hi, 1, ValueRange{keysInit, valuesInit},
      [&](IB &ib, Idx kt, ValueRange state) -> SmallVector<Value> {
        Idx slot = kt - lo;
        auto [keysT, values] = packKeyValueTile(ib, t, kt);
        return {insertTile(ib, keysT, state[0], slot),
                insertTile(ib, values, state[1], slot)};
      });
  return {packed[0], packed[1], lo};
}

SoftmaxState linalg_lowering::prefillKeyTileStep(IB &b, const QueryTile &t,
                                                 const PackedTiles *packed,
                                                 Value kt, Value keyBase,
                                                 const SoftmaxState &state) {
  BuilderScope scope(b);
  Value keyPanels, values;
  if (packed) {
    Idx slot = Idx(kt) - packed->first;
    keyPanels = panelOf(b, packed->keysT, slot);
    values = panelOf(b, packed->values, slot);
  } else {
    std::tie(keyPanels, values) = packKeyValueTile(b, t, kt);
  }
  Value scores = vectorScores(
      b, t.q, keyPanels, t.rows, t.kv.tileSize, t.params.headDim, t.rowBlock,
      [&](IB &g, Value r0) { return t.blockKeys(g, r0, keyBase); });
  return vectorSoftmaxUpdate(b, t, scores, values, keyBase, state,
                             /*blocked=*/true);
}
