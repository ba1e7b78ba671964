//===- GroupedAttention.cpp - attention per (sequence, kv head) -----------===//
//
// scf.forall over sequences x kv heads; the keys and values of the pair
// are packed once into register-block panels, and per query tile (query
// rows x the GQA group) an online-softmax scf.for runs over the key tiles
// the tile can see, on the vector tile kernels or, where D or the key
// tile is not a multiple of 8, on linalg generics.
//
//===----------------------------------------------------------------------===//

#include "Attention.h"
#include "AttentionKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

static bool useVectorPath(const AttentionParams &p, const KVSource &kv) {
  return kv.readRow && p.headDim % kLanes == 0 && kv.tileSize % kLanes == 0;
}

/// Key tile `kt` of kv head `kvHead` transposed and packed (`[tile / W, D,
/// W]`) and its value tile packed (`[D / W, tile, W]`), f32, value rows past
/// `kvLen` zero. W is the register block's width.
static std::pair<Value, Value> packKeyValueTile(IB &b, const KVSource &kv,
                                                int64_t headDim, Value kvHead,
                                                Value kvLen, Value kt,
                                                int64_t maxWidth) {
  int64_t tile = kv.tileSize;
  Value tileBase = kv.prepareTile(b, kt);
  Value keysT = transposeKeys(b, tile, headDim, [&](IB &g, Value c, Value d0) {
    return kv.readRow(g, tileBase, 0, kvHead, c, d0, kLanes);
  });
  Value values = kv.loadValues(b, kt, kvHead, kvLen);
  return {packColumns(b, keysT, blockWidth(tile, maxWidth)),
          packColumns(b, values, blockWidth(headDim, maxWidth))};
}

/// The key tiles of one (sequence, kv head) that any query row can see,
/// transposed and packed (`[n, tile / W, D, W]`), and its value tiles, packed
/// (`[n, D / W, tile, W]`), f32 with rows past `kvLen` zero in the values;
/// returns them and the index of the first tile (keys before a sliding
/// window's reach are skipped). W is the register block's width.
static std::tuple<Value, Value, Value>
prepareKeyValueTiles(IB &b, const KVSource &kv, int64_t headDim, Value kvHead,
                     Value kvLen, Value posBase, int64_t window,
                     int64_t maxWidth) {
  int64_t tile = kv.tileSize;
  Value zero = cIndex(b, 0);
  Value lo = zero;
  if (window > 0)
    lo = arith::DivSIOp::create(
        b, max(b, arith::SubIOp::create(b, posBase, cIndex(b, window - 1)), zero),
        cIndex(b, tile));
  Value hi = max(b, ceilDivSigned(b, kvLen, tile), lo);
  Value count = arith::SubIOp::create(b, hi, lo);
  Type f32 = b.getF32Type();
  int64_t keyWidth = blockWidth(tile, maxWidth);
  int64_t valueWidth = blockWidth(headDim, maxWidth);
  Value keysInit = emptyTensor(
      b, {count, b.getIndexAttr(tile / keyWidth), b.getIndexAttr(headDim),
          b.getIndexAttr(keyWidth)},
      f32);
  Value valuesInit = emptyTensor(
      b, {count, b.getIndexAttr(headDim / valueWidth), b.getIndexAttr(tile),
          b.getIndexAttr(valueWidth)},
      f32);
  auto insertTile = [](IB &ib, Value t, Value into, Value slot) -> Value {
    auto type = cast<RankedTensorType>(t.getType());
    SmallVector<OpFoldResult> offsets(4, ib.getIndexAttr(0));
    offsets[0] = slot;
    SmallVector<OpFoldResult> sizes = {ib.getIndexAttr(1)};
    for (int64_t size : type.getShape())
      sizes.push_back(ib.getIndexAttr(size));
    SmallVector<OpFoldResult> unit(4, ib.getIndexAttr(1));
    return tensor::InsertSliceOp::create(ib, t, into, offsets, sizes, unit);
  };
  auto loop = scf::ForOp::create(
      b, lo, hi, cIndex(b, 1), ValueRange{keysInit, valuesInit},
      [&](OpBuilder &ob, Location loc, Value kt, ValueRange state) {
        IB ib(loc, ob);
        Value slot = arith::SubIOp::create(ib, kt, lo);
        auto [keysT, values] =
            packKeyValueTile(ib, kv, headDim, kvHead, kvLen, kt, maxWidth);
        scf::YieldOp::create(ib, ValueRange{insertTile(ib, keysT, state[0], slot),
                                            insertTile(ib, values, state[1], slot)});
      });
  return {loop.getResult(0), loop.getResult(1), lo};
}

/// Attention of one sequence and one kv head: the `[qLen, G, D]` output rows
/// of the G query heads of the group.
static Value attendOneGroup(IB &b, const AttentionParams &p, const KVSource &kv,
                            Value query, Value qStart, Value qLen, Value kvLen,
                            Value kvHead) {
  MLIRContext *ctx = b.getContext();
  int64_t group = p.numHeads / p.kvHeads, headDim = p.headDim;
  int64_t tileKeys = kv.tileSize;
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  Value posBase = arith::SubIOp::create(b, kvLen, qLen);
  Value local = emptyTensor(
      b, {qLen, b.getIndexAttr(group), b.getIndexAttr(headDim)}, p.elementType);
  bool causal = p.mask.getKind() != MaskKind::None;
  bool windowed = p.mask.getKind() == MaskKind::SlidingWindow;
  // The generic path uses exp2 (scale folded with log2 e), the vector path
  // exp, which has a polynomial approximation that vectorises.
  double log2e = 1.4426950408889634;
  Value qScale = cF32(b, useVectorPath(p, kv) ? p.scale : p.scale * log2e);
  Value negInf = negInfF32(b);

  // One query tile of `rowsPerTile` query rows x `group` heads.
  bool useVector = useVectorPath(p, kv);
  // Register blocks of rows x columns f32 accumulators. AVX-512 (32
  // registers): 6 rows x 64 columns, 24 accumulators fed by 4 vector loads
  // and 6 broadcasts per 24 FMAs -- fewer instructions per FMA than 8 x 32
  // (10 per 16), which kept the 4-wide front end saturated; measured on the
  // Xeon build machine, f32 causal H=8: S=2048 137 -> 153 GFLOP/s, S=4096
  // 157 -> 170 (12 x 32: 143 / 163; 4 x 64: 145 / 156). AVX2 (16
  // registers): 4 x 16.
  int64_t rowBlock = p.vectorLanes >= 16 ? 6 : kRowBlock;
  int64_t blockColumns = p.vectorLanes >= 16 ? 64 : 16;
  auto tileLoop = [&](IB &lb, int64_t rowsPerTile, bool prepared) -> Value {
    int64_t validTileRows = rowsPerTile * group;
    // The vector kernels work on blocks of rows; extra rows repeat the
    // last query and are dropped at the end.
    // Decode tiles (one query row, a small GQA group) read keys in place.
    bool decode = useVector && rowsPerTile == 1 && validTileRows <= 8;
    int64_t tileRowBlock = decode ? kRowBlock : rowBlock;
    int64_t rows = useVector ? llvm::alignTo(validTileRows, tileRowBlock)
                             : validTileRows;
    Value numTiles = ceilDivSigned(lb, qLen, rowsPerTile);
    // Prefill over several query tiles: keys transposed and values widened
    // to f32 once per (sequence, kv head) rather than once per query tile,
    // so that every query tile streams contiguous panels instead of
    // re-reading head-strided rows. One query tile packs each key tile as it
    // goes (the panels stay in cache; a buffer of all of them would not).
    Value preKeysT, preValues, preLo;
    if (useVector && !decode && prepared)
      std::tie(preKeysT, preValues, preLo) =
          prepareKeyValueTiles(lb, kv, headDim, kvHead, kvLen, posBase,
                               windowed ? p.mask.getWindow() : 0, blockColumns);
    auto loop = scf::ForOp::create(
        lb, zero, numTiles, one, ValueRange{local},
        [&](OpBuilder &ob, Location loc, Value qt, ValueRange args) {
          IB ib(loc, ob);
          Value r0 = arith::MulIOp::create(ib, qt, cIndex(ib, rowsPerTile));
          Value validRows = min(ib, cIndex(ib, rowsPerTile),
                                   arith::SubIOp::create(ib, qLen, r0));
          Value lastRow = arith::SubIOp::create(ib, qLen, one);
          AffineExpr r, c, d;
          bindDims(ctx, r, c, d);
          // q tile [rows, D] in f32, scaled (by scale * log2 e for exp2).
          // Row r is query row r / G of head kvHead * G + r % G.
          auto qRow = [&](IB &g, Value ri) -> std::pair<Value, Value> {
            Value qi = arith::DivUIOp::create(g, ri, cIndex(g, group));
            Value gi = arith::RemUIOp::create(g, ri, cIndex(g, group));
            Value rowIdx = min(g, arith::AddIOp::create(g, r0, qi), lastRow);
            rowIdx = arith::AddIOp::create(g, qStart, rowIdx);
            Value head = arith::AddIOp::create(
                g, arith::MulIOp::create(g, kvHead, cIndex(g, group)), gi);
            return {rowIdx, head};
          };
          Value qInit = emptyTensor(
              ib, {ib.getIndexAttr(rows), ib.getIndexAttr(headDim)}, ib.getF32Type());
          Value qTile;
          if (useVector) {
            // Whole rows as vectors.
            auto rowLoop = scf::ForOp::create(
                ib, zero, cIndex(ib, rows), one, ValueRange{qInit},
                [&](OpBuilder &gb, Location gl, Value ri, ValueRange state) {
                  IB g(gl, gb);
                  auto [rowIdx, head] = qRow(g, ri);
                  Value v = vecToF32(g, readVector(g, query, {rowIdx, head, zero},
                                                   headDim));
                  v = arith::MulFOp::create(g, v, splat(g, qScale, headDim));
                  scf::YieldOp::create(g, writeVector(g, v, state[0], {ri, zero}));
                });
            qTile = rowLoop.getResult(0);
          } else {
            qTile = generic(
                ib, qInit, {}, {map(ctx, 2, {r, c})}, iterators(2),
                [&](OpBuilder &gb, Location gl, ValueRange) {
                  IB g(gl, gb);
                  auto [rowIdx, head] = qRow(g, linalg::IndexOp::create(g, 0));
                  Value di = linalg::IndexOp::create(g, 1);
                  Value v = tensor::ExtractOp::create(g, query,
                                                      ValueRange{rowIdx, head, di});
                  linalg::YieldOp::create(
                      g, ValueRange{arith::MulFOp::create(g, toF32(g, gl, v), qScale)});
                });
          }
          // Key tiles that can hold a visible key for this query tile.
          Value firstPos = arith::AddIOp::create(ib, posBase, r0);
          Value lastPos = arith::SubIOp::create(
              ib, arith::AddIOp::create(ib, firstPos, validRows), one);
          Value kvHi = kvLen;
          if (causal)
            kvHi = clamp(ib, arith::AddIOp::create(ib, lastPos, one), zero, kvLen);
          Value kvLo = zero;
          if (windowed) {
            Value reach = arith::SubIOp::create(
                ib, firstPos, cIndex(ib, p.mask.getWindow() - 1));
            kvLo = max(ib, reach, zero);
          }
          Value tileLo = arith::DivSIOp::create(ib, kvLo, cIndex(ib, tileKeys));
          Value tileHi = ceilDivSigned(ib, kvHi, tileKeys);
          tileHi = max(ib, tileHi, tileLo);

          Value m0 = filled(ib, {ib.getIndexAttr(rows)}, negInf);
          Value l0 = filled(ib, {ib.getIndexAttr(rows)}, cF32(ib, 0.0));
          Value acc0 = filled(ib, {ib.getIndexAttr(rows), ib.getIndexAttr(headDim)},
                              cF32(ib, 0.0));
          auto kvLoop = scf::ForOp::create(
              ib, tileLo, tileHi, one, ValueRange{m0, l0, acc0},
              [&](OpBuilder &kb, Location kl, Value kt, ValueRange state) {
                IB k(kl, kb);
                Value m = state[0], l = state[1], acc = state[2];
                Value keyBase = arith::MulIOp::create(k, kt, cIndex(k, tileKeys));
                if (useVector) {
                  Value scores, validKeys;
                  // Values are copied into an f32 tile either way: their rows
                  // are contiguous there, which the update loop needs.
                  // Row r (query row r / G) sees keys [lo, hi) of the tile.
                  auto visibleRange = [&](IB &g, Value row) -> std::pair<Value, Value> {
                    Value qi = arith::DivUIOp::create(g, row, cIndex(g, group));
                    Value qpos = arith::AddIOp::create(g, firstPos, qi);
                    Value end = kvLen;
                    if (causal)
                      end = min(g, end, arith::AddIOp::create(g, qpos, cIndex(g, 1)));
                    Value begin = cIndex(g, 0);
                    if (windowed)
                      begin = arith::SubIOp::create(
                          g, qpos, cIndex(g, p.mask.getWindow() - 1));
                    auto local = [&](Value v) {
                      return clamp(g, arith::SubIOp::create(g, v, keyBase),
                                      cIndex(g, 0), cIndex(g, tileKeys));
                    };
                    return {local(begin), local(end)};
                  };
                  // Rows r0 .. r0 + n - 1 see the union of their ranges;
                  // positions grow with the row.
                  auto blockKeys = [&](IB &g, Value r0) -> std::pair<Value, Value> {
                    Value last = arith::AddIOp::create(g, r0, cIndex(g, tileRowBlock - 1));
                    return {visibleRange(g, r0).first, visibleRange(g, last).second};
                  };
                  Value vals, tileBase, keyPanels;
                  if (decode) {
                    vals = kv.loadValues(k, kt, kvHead, kvLen);
                    tileBase = kv.prepareTile(k, kt);
                  } else if (prepared) {
                    Value slot = arith::SubIOp::create(k, kt, preLo);
                    keyPanels = panelOf(k, preKeysT, slot);
                    vals = panelOf(k, preValues, slot);
                  } else {
                    std::tie(keyPanels, vals) = packKeyValueTile(
                        k, kv, headDim, kvHead, kvLen, kt, blockColumns);
                  }
                  if (decode) {
                    // Few rows (decode): dot products on the cache rows read
                    // in place, only the sequence's rows.
                    validKeys = clamp(k, arith::SubIOp::create(k, kvLen, keyBase),
                                         cIndex(k, 0), cIndex(k, tileKeys));
                    scores = vectorScoresDot(
                        k, qTile, rows, tileKeys, headDim, validKeys,
                        [&](IB &g, Value c, Value d0, int64_t width) {
                          return kv.readRow(g, tileBase, 0, kvHead, c, d0, width);
                        });
                  } else {
                    scores = vectorScores(k, qTile, keyPanels, rows, tileKeys,
                                          headDim, tileRowBlock, blockKeys);
                  }
                  auto [probs, mNew, lNew, alpha] =
                      vectorSoftmaxStep(k, scores, m, l, rows, tileKeys, visibleRange);
                  Value accNew = vectorAccumulate(
                      k, acc, alpha, probs, vals, rows, tileKeys, headDim, tileRowBlock,
                      blockColumns, decode ? BlockKeysFn() : BlockKeysFn(blockKeys));
                  scf::YieldOp::create(k, ValueRange{mNew, lNew, accNew});
                  return;
                }
                Value keys = kv.loadTile(k, kt, 0, kvHead, kvLen);
                Value values = kv.loadTile(k, kt, 1, kvHead, kvLen);
                SmallVector<OpFoldResult> scoreSizes = {k.getIndexAttr(rows),
                                                        k.getIndexAttr(tileKeys)};
                // s = q k^T
                Value scores = generic(
                    k, filled(k, scoreSizes, cF32(k, 0.0)), {qTile, keys},
                    {map(ctx, 3, {r, d}), map(ctx, 3, {c, d}), map(ctx, 3, {r, c})},
                    iterators(2, 1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      Value prod = arith::MulFOp::create(gb, gl, a[0], a[1]);
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::AddFOp::create(gb, gl, a[2], prod)});
                    });
                // Masked keys become -inf.
                scores = generic(
                    k, emptyTensor(k, scoreSizes, k.getF32Type()), {scores},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r, c})}, iterators(2),
                    [&](OpBuilder &gb, Location gl, ValueRange a) {
                      IB g(gl, gb);
                      Value ri = linalg::IndexOp::create(g, 0);
                      Value ci = linalg::IndexOp::create(g, 1);
                      Value j = arith::AddIOp::create(g, keyBase, ci);
                      Value qi = arith::DivUIOp::create(g, ri, cIndex(g, group));
                      Value qpos = arith::AddIOp::create(g, firstPos, qi);
                      Value valid = arith::CmpIOp::create(
                          g, arith::CmpIPredicate::slt, j, kvLen);
                      if (causal)
                        valid = arith::AndIOp::create(
                            g, valid,
                            arith::CmpIOp::create(g, arith::CmpIPredicate::sle, j, qpos));
                      if (windowed) {
                        Value dist = arith::SubIOp::create(g, qpos, j);
                        valid = arith::AndIOp::create(
                            g, valid,
                            arith::CmpIOp::create(
                                g, arith::CmpIPredicate::slt, dist,
                                cIndex(g, p.mask.getWindow())));
                      }
                      linalg::YieldOp::create(
                          g, ValueRange{arith::SelectOp::create(g, valid, a[0], negInf)});
                    });
                // m' = max(m, rowmax(s)) and alpha = exp2(m - m'), which
                // rescales what was accumulated (1 while nothing was seen).
                Value tileMax = generic(
                    k, filled(k, {k.getIndexAttr(rows)}, negInf), {scores},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r})}, iterators(1, 1),
                    [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl,
                          ValueRange{arith::MaximumFOp::create(gb, gl, a[1], a[0])});
                    });
                auto rowType = RankedTensorType::get({rows}, k.getF32Type());
                auto update = linalg::GenericOp::create(
                    k, TypeRange{rowType, rowType}, ValueRange{m, tileMax},
                    ValueRange{emptyTensor(k, {k.getIndexAttr(rows)}, k.getF32Type()),
                               emptyTensor(k, {k.getIndexAttr(rows)}, k.getF32Type())},
                    {map(ctx, 1, {r}), map(ctx, 1, {r}), map(ctx, 1, {r}),
                     map(ctx, 1, {r})},
                    iterators(1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      IB g(gl, gb);
                      Value mn = arith::MaximumFOp::create(g, a[0], a[1]);
                      Value none = arith::CmpFOp::create(g, arith::CmpFPredicate::OEQ,
                                                         mn, negInf);
                      Value e = math::Exp2Op::create(g, arith::SubFOp::create(g, a[0], mn));
                      linalg::YieldOp::create(
                          g, ValueRange{mn, arith::SelectOp::create(g, none, cF32(g, 1.0), e)});
                    });
                Value mNew = update.getResult(0), alpha = update.getResult(1);
                // p = exp2(s - m'), 0 where the row has seen nothing yet.
                Value probs = generic(
                    k, emptyTensor(k, scoreSizes, k.getF32Type()), {scores, mNew},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
                    iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      IB g(gl, gb);
                      Value none = arith::CmpFOp::create(g, arith::CmpFPredicate::OEQ,
                                                         a[1], negInf);
                      Value e = math::Exp2Op::create(
                          g, arith::SubFOp::create(g, a[0], a[1]));
                      linalg::YieldOp::create(
                          g, ValueRange{arith::SelectOp::create(g, none, cF32(g, 0.0), e)});
                    });
                Value lScaled = generic(
                    k, emptyTensor(k, {k.getIndexAttr(rows)}, k.getF32Type()),
                    {l, alpha}, {map(ctx, 1, {r}), map(ctx, 1, {r}), map(ctx, 1, {r})},
                    iterators(1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::MulFOp::create(gb, gl, a[0], a[1])});
                    });
                Value lNew = generic(
                    k, lScaled, {probs}, {map(ctx, 2, {r, c}), map(ctx, 2, {r})},
                    iterators(1, 1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::AddFOp::create(gb, gl, a[1], a[0])});
                    });
                Value accScaled = generic(
                    k, emptyTensor(k, {k.getIndexAttr(rows), k.getIndexAttr(headDim)},
                                   k.getF32Type()),
                    {acc, alpha},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
                    iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::MulFOp::create(gb, gl, a[0], a[1])});
                    });
                // acc' = alpha acc + p v  (dims: r, d, c)
                Value accNew = generic(
                    k, accScaled, {probs, values},
                    {map(ctx, 3, {r, d}), map(ctx, 3, {d, c}), map(ctx, 3, {r, c})},
                    iterators(2, 1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      Value prod = arith::MulFOp::create(gb, gl, a[0], a[1]);
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::AddFOp::create(gb, gl, a[2], prod)});
                    });
                scf::YieldOp::create(k, ValueRange{mNew, lNew, accNew});
              });
          Value lFinal = kvLoop.getResult(1), accFinal = kvLoop.getResult(2);
          // o = acc / l (0 for rows that saw no key), in the output type.
          Value outTile = generic(
              ib, emptyTensor(ib, {ib.getIndexAttr(rows), ib.getIndexAttr(headDim)},
                              p.elementType),
              {accFinal, lFinal},
              {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
              iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
                IB g(gl, gb);
                Value seen = arith::CmpFOp::create(g, arith::CmpFPredicate::OGT,
                                                   a[1], cF32(g, 0.0));
                Value o = arith::SelectOp::create(
                    g, seen, arith::DivFOp::create(g, a[0], a[1]), cF32(g, 0.0));
                linalg::YieldOp::create(g, ValueRange{fromF32(g, gl, o, p.elementType)});
              });
          if (rows != validTileRows) {
            SmallVector<OpFoldResult> zeros2(2, ib.getIndexAttr(0));
            SmallVector<OpFoldResult> sizes2 = {ib.getIndexAttr(validTileRows),
                                                ib.getIndexAttr(headDim)};
            SmallVector<OpFoldResult> unit2(2, ib.getIndexAttr(1));
            outTile = tensor::ExtractSliceOp::create(ib, outTile, zeros2, sizes2, unit2);
          }
          auto tile3d = RankedTensorType::get({rowsPerTile, group, headDim},
                                              p.elementType);
          Value expanded = tensor::ExpandShapeOp::create(
              ib, tile3d, outTile, SmallVector<ReassociationIndices>{{0, 1}, {2}});
          SmallVector<OpFoldResult> zeros(3, ib.getIndexAttr(0));
          SmallVector<OpFoldResult> sizes = {validRows, ib.getIndexAttr(group),
                                             ib.getIndexAttr(headDim)};
          SmallVector<OpFoldResult> unit(3, ib.getIndexAttr(1));
          Value valid = tensor::ExtractSliceOp::create(ib, expanded, zeros, sizes, unit);
          SmallVector<OpFoldResult> offsets = {r0, ib.getIndexAttr(0),
                                               ib.getIndexAttr(0)};
          Value updated = tensor::InsertSliceOp::create(ib, valid, args[0], offsets,
                                                        sizes, unit);
          scf::YieldOp::create(ib, updated);
        });
    return loop.getResult(0);
  };

  // Decode rows (one query per sequence) get a tile of one query row.
  int64_t prefillRows = std::max<int64_t>(1, p.queryTileRows / group);
  if (prefillRows == 1)
    return tileLoop(b, 1, /*prepared=*/false);
  auto choose = [&](IB &ib, Value cond, function_ref<Value(IB &)> then,
                    function_ref<Value(IB &)> otherwise) -> Value {
    auto ifOp = scf::IfOp::create(
        ib, cond,
        [&](OpBuilder &tb, Location tl) {
          IB t(tl, tb);
          scf::YieldOp::create(t, then(t));
        },
        [&](OpBuilder &eb, Location el) {
          IB e(el, eb);
          scf::YieldOp::create(e, otherwise(e));
        });
    return ifOp.getResult(0);
  };
  Value isDecode = arith::CmpIOp::create(b, arith::CmpIPredicate::sle, qLen, one);
  return choose(
      b, isDecode, [&](IB &ib) { return tileLoop(ib, 1, false); },
      [&](IB &ib) {
        if (!useVector)
          return tileLoop(ib, prefillRows, false);
        Value severalTiles = arith::CmpIOp::create(
            ib, arith::CmpIPredicate::sgt, qLen, cIndex(ib, prefillRows));
        return choose(
            ib, severalTiles, [&](IB &t) { return tileLoop(t, prefillRows, true); },
            [&](IB &t) { return tileLoop(t, prefillRows, false); });
      });
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
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    Value seq = forall.getInductionVar(0), kvHead = forall.getInductionVar(1);
    auto [qStart, qLen, kvLen] = seqBounds(b, seq);
    KVSource source = sourceFor(b, seq);
    Value rows = attendOneGroup(b, p, source, query, qStart, qLen, kvLen, kvHead);
    Value headOffset = arith::MulIOp::create(b, kvHead, cIndex(b, group));
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    SmallVector<OpFoldResult> offsets = {qStart, headOffset, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sliceSizes = {qLen, b.getIndexAttr(group),
                                            b.getIndexAttr(p.headDim)};
    SmallVector<OpFoldResult> unit(3, b.getIndexAttr(1));
    tensor::ParallelInsertSliceOp::create(b, rows, forall.getRegionOutArgs()[0],
                                          offsets, sliceSizes, unit);
  }
  return forall.getResult(0);
}
