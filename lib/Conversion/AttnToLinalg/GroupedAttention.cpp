//===- GroupedAttention.cpp - attention per (sequence, kv head) -----------===//
//
// scf.forall over sequences x kv heads; per query tile (query rows x the
// GQA group) an online-softmax scf.for runs over the key tiles the tile can
// see. Three schedules share that loop and differ in its step: the prefill
// tile (key / value panels packed once per pair, register blocks), the
// decode tile (one query row, cache rows read in place) and, where D or the
// key tile is not a multiple of 8, the linalg fallback.
//
//===----------------------------------------------------------------------===//

#include "AttentionKernels.h"
#include "QueryTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

static bool useVectorPath(const AttentionParams &p, const KVSource &kv) {
  return kv.readRow && p.headDim % kLanes == 0 && kv.tileSize % kLanes == 0;
}

std::pair<Value, Value> QueryTile::visibleKeys(IB &b, Value row,
                                               Value keyBase) const {
  BuilderScope scope(b);
  Idx qpos = Idx(firstPos) + Idx(row) / group;
  Idx end = kvLen;
  if (causal())
    end = min(b, end, qpos + 1);
  Idx begin = cIndex(b, 0);
  if (windowed())
    begin = qpos - (params.mask.getWindow() - 1);
  auto local = [&](Idx v) {
    return clamp(b, v - keyBase, cIndex(b, 0), cIndex(b, kv.tileSize));
  };
  return {local(begin), local(end)};
}

std::pair<Value, Value> QueryTile::blockKeys(IB &b, Value r0,
                                             Value keyBase) const {
  BuilderScope scope(b);
  Idx last = Idx(r0) + (rowBlock - 1);
  return {visibleKeys(b, r0, keyBase).first,
          visibleKeys(b, last, keyBase).second};
}

namespace {
/// How the query tiles of a (sequence, kv head) are computed.
enum class TileSchedule { Prefill, PrefillPacked, Decode, Generic };

/// One (sequence, kv head): the group's `[qLen, G, D]` output rows.
struct GroupAttention {
  const AttentionParams &p;
  const KVSource &kv;
  Value query, qStart, qLen, kvLen, kvHead;
  /// The position of the first query row (queries are the last qLen keys).
  Value posBase;
  int64_t group;
  Value qScale, negInf;

  Value queryTiles(IB &b, int64_t rowsPerTile, TileSchedule schedule,
                   Value init) const;
  Value loadQueryTile(IB &b, const QueryTile &t, bool vector, Idx r0,
                      Idx lastRow) const;
  std::pair<Value, Value> visibleKeyTiles(IB &b, Idx firstPos,
                                          Idx validRows) const;
  Value writeOutputTile(IB &b, Value acc, Value l, int64_t rows,
                        int64_t rowsPerTile, Value r0, Value validRows,
                        Value into) const;
};
} // namespace

/// q tile `[rows, D]` in f32, scaled (by scale * log2 e for exp2 in the
/// linalg fallback). Rows past the tile's valid rows repeat the last query.
Value GroupAttention::loadQueryTile(IB &b, const QueryTile &t, bool vector,
                                    Idx r0, Idx lastRow) const {
  int64_t headDim = p.headDim;
  auto queryRow = [&](IB &g, Value row) -> std::pair<Value, Value> {
    BuilderScope scope(g);
    Idx qi = Idx(row) / group;
    Idx gi = Idx(row) % group;
    Idx rowIdx = Idx(qStart) + min(g, r0 + qi, lastRow);
    Idx head = Idx(kvHead) * group + gi;
    return {rowIdx, head};
  };
  Value init = emptyTensor(
      b, {b.getIndexAttr(t.rows), b.getIndexAttr(headDim)}, b.getF32Type());
  if (!vector)
    return genericQueryTile(b, t, query, init, queryRow);
  // Whole rows as vectors.
  return forLoop(b, cIndex(b, 0), cIndex(b, t.rows), 1, ValueRange{init},
                 [&](IB &g, Idx row, ValueRange state) -> SmallVector<Value> {
                   auto [rowIdx, head] = queryRow(g, row);
                   Value zero = cIndex(g, 0);
                   Value v = vecToF32(
                       g, readVector(g, query, {rowIdx, head, zero}, headDim));
                   v = arith::MulFOp::create(g, v, splat(g, t.qScale, headDim));
                   return {writeVector(g, v, state[0], {row, zero})};
                 })[0];
}

/// The key tiles [lo, hi) that can hold a key visible to the query rows at
/// firstPos .. firstPos + validRows - 1.
std::pair<Value, Value> GroupAttention::visibleKeyTiles(IB &b, Idx firstPos,
                                                        Idx validRows) const {
  Idx lastPos = firstPos + validRows - 1;
  Idx zero = cIndex(b, 0);
  Idx kvHi = kvLen;
  if (p.mask.getKind() != MaskKind::None)
    kvHi = clamp(b, lastPos + 1, zero, kvLen);
  Idx kvLo = zero;
  if (p.mask.getKind() == MaskKind::SlidingWindow)
    kvLo = max(b, firstPos - (p.mask.getWindow() - 1), zero);
  Idx tileLo = divSigned(b, kvLo, kv.tileSize);
  Idx tileHi = ceilDivSigned(b, kvHi, kv.tileSize);
  return {tileLo, max(b, tileHi, tileLo)};
}

/// o = acc / l (0 for rows that saw no key) in the output type, its valid
/// rows inserted into `into` at query row r0.
Value GroupAttention::writeOutputTile(IB &b, Value acc, Value l, int64_t rows,
                                      int64_t rowsPerTile, Value r0,
                                      Value validRows, Value into) const {
  MLIRContext *ctx = b.getContext();
  int64_t headDim = p.headDim;
  AffineExpr r, c;
  bindDims(ctx, r, c);
  Value outTile = generic(
      b, emptyTensor(b, {b.getIndexAttr(rows), b.getIndexAttr(headDim)},
                     p.elementType),
      {acc, l}, {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
      iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
        IB g(gl, gb);
        // l == 0: the row saw no key (zeros). Unordered: a NaN l (a NaN
        // score or value the row sees) gives NaN, not a silent zero row.
        Value seen = arith::CmpFOp::create(g, arith::CmpFPredicate::UGT, a[1],
                                           cF32(g, 0.0));
        Value o = arith::SelectOp::create(
            g, seen, arith::DivFOp::create(g, a[0], a[1]), cF32(g, 0.0));
        linalg::YieldOp::create(g, ValueRange{fromF32(g, gl, o, p.elementType)});
      });
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  int64_t validTileRows = rowsPerTile * group;
  if (rows != validTileRows)
    outTile = tensor::ExtractSliceOp::create(
        b, outTile, ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{b.getIndexAttr(validTileRows),
                               b.getIndexAttr(headDim)},
        ArrayRef<OpFoldResult>{one, one});
  auto tile3d =
      RankedTensorType::get({rowsPerTile, group, headDim}, p.elementType);
  Value expanded = tensor::ExpandShapeOp::create(
      b, tile3d, outTile, SmallVector<ReassociationIndices>{{0, 1}, {2}});
  SmallVector<OpFoldResult> sizes = {validRows, b.getIndexAttr(group),
                                     b.getIndexAttr(headDim)};
  SmallVector<OpFoldResult> unit(3, one);
  Value valid = tensor::ExtractSliceOp::create(
      b, expanded, ArrayRef<OpFoldResult>{zero, zero, zero}, sizes, unit);
  return tensor::InsertSliceOp::create(
      b, valid, into, ArrayRef<OpFoldResult>{r0, zero, zero}, sizes, unit);
}

/// The query tiles of `rowsPerTile` query rows, each an online softmax over
/// the key tiles it can see, written into `init`.
Value GroupAttention::queryTiles(IB &b, int64_t rowsPerTile,
                                 TileSchedule schedule, Value init) const {
  BuilderScope scope(b);
  bool vector = schedule != TileSchedule::Generic;
  bool decode = schedule == TileSchedule::Decode;
  int64_t validTileRows = rowsPerTile * group;
  // Register blocks of rows x columns f32 accumulators. AVX-512 (32
  // registers): 6 rows x 64 columns, 24 accumulators fed by 4 vector loads
  // and 6 broadcasts per 24 FMAs -- fewer instructions per FMA than 8 x 32
  // (10 per 16), which kept the 4-wide front end saturated; measured on the
  // Xeon build machine, f32 causal H=8: S=2048 137 -> 153 GFLOP/s, S=4096
  // 157 -> 170 (12 x 32: 143 / 163; 4 x 64: 145 / 156). AVX2 (16
  // registers): 4 x 16. Decode tiles use 4-row blocks.
  int64_t rowBlock = !decode && p.vectorLanes >= 16 ? 6 : kRowBlock;
  int64_t blockColumns = p.vectorLanes >= 16 ? 64 : 16;
  // The vector kernels work on blocks of rows; extra rows repeat the last
  // query and are dropped at the end.
  int64_t rows = vector ? llvm::alignTo(validTileRows, rowBlock) : validTileRows;
  QueryTile tile{p,      kv,     kvHead, kvLen, Value(),  Value(),
                 qScale, negInf, group,  rows,  rowBlock, blockColumns};
  Idx numTiles = ceilDivSigned(b, qLen, rowsPerTile);
  std::optional<PackedTiles> packed;
  if (schedule == TileSchedule::PrefillPacked)
    packed = packVisibleTiles(b, tile, posBase);
  auto step = [&](IB &k, Value kt, Value keyBase, const SoftmaxState &s) {
    switch (schedule) {
    case TileSchedule::Generic:
      return genericKeyTileStep(k, tile, kt, keyBase, s);
    case TileSchedule::Decode:
      return decodeKeyTileStep(k, tile, kt, keyBase, s);
    default:
      return prefillKeyTileStep(k, tile, packed ? &*packed : nullptr, kt,
                                keyBase, s);
    }
  };
  Idx zero = cIndex(b, 0);
  return forLoop(
      b, zero, numTiles, 1, ValueRange{init},
      [&](IB &ib, Idx qt, ValueRange out) -> SmallVector<Value> {
        Idx r0 = qt * rowsPerTile;
        Idx validRows = min(ib, cIndex(ib, rowsPerTile), Idx(qLen) - r0);
        Idx lastRow = Idx(qLen) - 1;
        tile.q = loadQueryTile(ib, tile, vector, r0, lastRow);
        tile.firstPos = Idx(posBase) + r0;
        auto [tileLo, tileHi] = visibleKeyTiles(ib, tile.firstPos, validRows);
        SoftmaxState init{
            filled(ib, {ib.getIndexAttr(rows)}, negInf),
            filled(ib, {ib.getIndexAttr(rows)}, cF32(ib, 0.0)),
            filled(ib, {ib.getIndexAttr(rows), ib.getIndexAttr(p.headDim)},
                   cF32(ib, 0.0))};
        SmallVector<Value> final = forLoop(
            ib, tileLo, tileHi, 1, init.values(),
            [&](IB &k, Idx kt, ValueRange s) -> SmallVector<Value> {
              Idx keyBase = kt * kv.tileSize;
              return step(k, kt, keyBase, {s[0], s[1], s[2]}).values();
            });
        return {writeOutputTile(ib, final[2], final[1], rows, rowsPerTile, r0,
                                validRows, out[0])};
      })[0];
}

SoftmaxState linalg_lowering::vectorSoftmaxUpdate(IB &b, const QueryTile &t,
                                                  Value scores, Value values,
                                                  Value keyBase,
                                                  const SoftmaxState &state,
                                                  bool blocked) {
  auto visible = [&](IB &g, Value row) {
    return t.visibleKeys(g, row, keyBase);
  };
  auto blockKeys = [&](IB &g, Value r0) { return t.blockKeys(g, r0, keyBase); };
  auto [probs, m, l, alpha] = vectorSoftmaxStep(b, scores, state.m, state.l,
                                                t.rows, t.kv.tileSize, visible);
  Value acc = vectorAccumulate(
      b, state.acc, alpha, probs, values, t.rows, t.kv.tileSize,
      t.params.headDim, t.rowBlock, t.blockColumns,
      blocked ? BlockKeysFn(blockKeys) : BlockKeysFn());
  return {m, l, acc};
}

/// Attention of one sequence and one kv head: decode rows (one query per
/// sequence) get a tile of one query row; prefill over several query tiles
/// packs the key and value panels once for all of them (so that every query
/// tile streams contiguous panels instead of re-reading head-strided rows),
/// one query tile packs each key tile as it goes (the panels stay in cache;
/// a buffer of all of them would not).
static Value attendOneGroup(IB &b, const AttentionParams &p,
                            const KVSource &kv, Value query, Value qStart,
                            Value qLen, Value kvLen, Value kvHead) {
  BuilderScope scope(b);
  int64_t group = p.numHeads / p.kvHeads;
  Idx posBase = Idx(kvLen) - qLen;
  Value init = emptyTensor(
      b, {qLen, b.getIndexAttr(group), b.getIndexAttr(p.headDim)},
      p.elementType);
  bool vector = useVectorPath(p, kv);
  // The linalg fallback uses exp2 (scale folded with log2 e), the vector
  // kernels exp, which has a polynomial approximation that vectorises.
  double log2e = 1.4426950408889634;
  Value qScale = cF32(b, vector ? p.scale : p.scale * log2e);
  GroupAttention attention{p,      kv,    query, qStart, qLen,         kvLen,
                           kvHead, posBase, group, qScale, negInfF32(b)};
  // Tiles of one query row with a small GQA group read keys in place.
  TileSchedule oneRow = !vector      ? TileSchedule::Generic
                        : group <= 8 ? TileSchedule::Decode
                                     : TileSchedule::Prefill;
  int64_t prefillRows = std::max<int64_t>(1, p.queryTileRows / group);
  if (prefillRows == 1)
    return attention.queryTiles(b, 1, oneRow, init);
  auto tiles = [&](int64_t rowsPerTile, TileSchedule schedule) {
    return [&, rowsPerTile, schedule](IB &ib) -> SmallVector<Value> {
      return {attention.queryTiles(ib, rowsPerTile, schedule, init)};
    };
  };
  return ifElse(b, Idx(qLen) <= 1, TypeRange{init.getType()}, tiles(1, oneRow),
                [&](IB &ib) -> SmallVector<Value> {
                  if (!vector)
                    return tiles(prefillRows, TileSchedule::Generic)(ib);
                  return ifElse(ib, Idx(qLen) > prefillRows,
                                TypeRange{init.getType()},
                                tiles(prefillRows, TileSchedule::PrefillPacked),
                                tiles(prefillRows, TileSchedule::Prefill));
                })[0];
}

Value linalg_lowering::buildGroupedAttention(IB &b, const AttentionParams &p,
                                             Value query, Value batch,
                                             SeqBoundsFn seqBounds,
                                             SourceFn sourceFor) {
  int64_t group = p.numHeads / p.kvHeads;
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), query);
  Value init = filled(b, sizes, fromF32(b, b.getLoc(), cF32(b, 0.0), p.elementType));
  SmallVector<OpFoldResult> ubs = {batch, b.getIndexAttr(p.kvHeads)};
  auto forall = scf::ForallOp::create(b, ubs, ValueRange{init}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  BuilderScope scope(b);
  Value seq = forall.getInductionVar(0), kvHead = forall.getInductionVar(1);
  auto [qStart, qLen, kvLen] = seqBounds(b, seq);
  KVSource source = sourceFor(b, seq);
  Value rows = attendOneGroup(b, p, source, query, qStart, qLen, kvLen, kvHead);
  Idx headOffset = Idx(kvHead) * group;
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  SmallVector<OpFoldResult> offsets = {qStart, headOffset, b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sliceSizes = {qLen, b.getIndexAttr(group),
                                          b.getIndexAttr(p.headDim)};
  SmallVector<OpFoldResult> unit(3, b.getIndexAttr(1));
  tensor::ParallelInsertSliceOp::create(b, rows, forall.getRegionOutArgs()[0],
                                        offsets, sliceSizes, unit);
  return forall.getResult(0);
}
