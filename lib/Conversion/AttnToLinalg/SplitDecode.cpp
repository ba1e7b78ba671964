//===- SplitDecode.cpp - flash-decoding on the CPU ------------------------===//
//
// When every sequence has at most one query row, the keys of each sequence
// are split into chunks of whole tiles and one parallel work item handles a
// (sequence, chunk) for all kv heads at once: it walks the chunk key by key,
// reading the rows of every kv head of a slot together --
// contiguous memory in both cache and K/V layouts -- so the loads stream
// instead of jumping a row of heads per key. Each item keeps its own
// online-softmax state; a second loop combines the chunks of a sequence.
//
//===----------------------------------------------------------------------===//

#include "Attention.h"
#include "AttentionKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

/// An scf.for over the keys [0, validKeys) and, inside it, one over the kv
/// heads, threading `init` through both: `body(c, h, rows, state)` gets the
/// key, the kv head, its G query rows and the value so far.
static Value forKeysAndHeads(
    IB &b, Value validKeys, int64_t kvHeads, int64_t group, Value init,
    function_ref<Value(IB &, Value c, Value h, ArrayRef<Value> rows, Value state)>
        body) {
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  auto keyLoop = scf::ForOp::create(
      b, zero, validKeys, one, ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value c, ValueRange keyState) {
        IB ib(loc, ob);
        auto headLoop = scf::ForOp::create(
            ib, zero, cIndex(ib, kvHeads), one, ValueRange{keyState[0]},
            [&](OpBuilder &hb, Location hl, Value h, ValueRange headState) {
              IB i1(hl, hb);
              SmallVector<Value> rows = blockRows(
                  i1, arith::MulIOp::create(i1, h, cIndex(i1, group)), group);
              scf::YieldOp::create(i1, body(i1, c, h, rows, headState[0]));
            });
        scf::YieldOp::create(ib, headLoop.getResult(0));
      });
  return keyLoop.getResult(0);
}

/// s [Hq, tile] = q k^T of one tile for all heads; `readKey(h, c, d0, w)`
/// reads `w` f32 of key row `c` of kv head `h`. Keys at or past `validKeys`
/// are not read (their scores are masked later). One key at a time: the
/// rows of all kv heads of a slot are then read as one sequential stream,
/// which the prefetchers follow; stepping 2 or 4 keys (more reuse of q in
/// registers) made several short streams and measured slower for bf16
/// (B=1 L=32768 on the Xeon build machine: 12.1 GB/s with 1 key, 9.9 with 2,
/// 8.9 with 4; f32 within noise).
static Value decodeScores(
    IB &b, Value q, int64_t kvHeads, int64_t group, int64_t tile,
    int64_t headDim, Value validKeys,
    function_ref<Value(IB &, Value h, Value c, Value d0, int64_t)> readKey) {
  int64_t width = headDim % 16 == 0 ? 16 : kLanes;
  Value init = emptyTensor(b, {b.getIndexAttr(kvHeads * group), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(b.getF32Type(), {width}), 0.0f));
  return forKeysAndHeads(
      b, validKeys, kvHeads, group, init,
      [&](IB &i1, Value c, Value h, ArrayRef<Value> rows, Value scores) {
        SmallVector<Value> start(group, zeros);
        auto dLoop = scf::ForOp::create(
            i1, cIndex(i1, 0), cIndex(i1, headDim), cIndex(i1, width), start,
            [&](OpBuilder &db, Location dl, Value d0, ValueRange acc) {
              IB i2(dl, db);
              Value k = readKey(i2, h, c, d0, width);
              SmallVector<Value> next;
              for (int64_t g = 0; g < group; ++g)
                next.push_back(vector::FMAOp::create(
                    i2, readVector(i2, q, {rows[g], d0}, width), k, acc[g]));
              scf::YieldOp::create(i2, next);
            });
        for (int64_t g = 0; g < group; ++g) {
          Value sum = vector::ReductionOp::create(i1, vector::CombiningKind::ADD,
                                                  dLoop.getResult(g));
          scores = tensor::InsertOp::create(i1, sum, scores, ValueRange{rows[g], c});
        }
        return scores;
      });
}

/// acc' = alpha * acc + p v of one tile for all heads (acc [Hq, D] f32);
/// `readValue(h, c, d0, w)` reads `w` f32 of value row `c` of kv head `h`.
/// One key at a time, as the scores.
static Value decodeAccumulate(
    IB &b, Value acc, Value alpha, Value probs, int64_t kvHeads, int64_t group,
    int64_t headDim, int64_t maxWidth, Value validKeys,
    function_ref<Value(IB &, Value h, Value c, Value d0, int64_t)> readValue) {
  int64_t rows = kvHeads * group;
  int64_t width = blockWidth(headDim, maxWidth);
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  // Rescale what was accumulated.
  auto scaled = scf::ForOp::create(
      b, zero, cIndex(b, rows), one, ValueRange{acc},
      [&](OpBuilder &ob, Location loc, Value r, ValueRange state) {
        IB ib(loc, ob);
        Value a = splat(ib, tensor::ExtractOp::create(ib, alpha, r), headDim);
        Value row = readVector(ib, state[0], {r, zero}, headDim);
        scf::YieldOp::create(ib, writeVector(ib, arith::MulFOp::create(ib, row, a),
                                             state[0], {r, zero}));
      });
  return forKeysAndHeads(
      b, validKeys, kvHeads, group, scaled.getResult(0),
      [&](IB &i1, Value c, Value h, ArrayRef<Value> rowIdx, Value accIn) {
        SmallVector<Value> ps;
        for (Value row : rowIdx)
          ps.push_back(splat(
              i1, tensor::ExtractOp::create(i1, probs, ValueRange{row, c}), width));
        auto dLoop = scf::ForOp::create(
            i1, zero, cIndex(i1, headDim), cIndex(i1, width), ValueRange{accIn},
            [&](OpBuilder &db, Location dl, Value d0, ValueRange dState) {
              IB i2(dl, db);
              Value v = readValue(i2, h, c, d0, width);
              Value out = dState[0];
              for (int64_t g = 0; g < group; ++g) {
                Value sum = vector::FMAOp::create(
                    i2, ps[g], v, readVector(i2, out, {rowIdx[g], d0}, width));
                out = writeVector(i2, sum, out, {rowIdx[g], d0});
              }
              scf::YieldOp::create(i2, out);
            });
        return dLoop.getResult(0);
      });
}

Value linalg_lowering::allSequencesDecode(IB &b, Value batch,
                                          SeqBoundsFn seqBounds) {
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), batch, cIndex(b, 1),
      ValueRange{arith::ConstantIntOp::create(b, 1, 1)},
      [&](OpBuilder &ob, Location loc, Value seq, ValueRange state) {
        IB ib(loc, ob);
        Value qLen = std::get<1>(seqBounds(ib, seq));
        Value one = arith::CmpIOp::create(ib, arith::CmpIPredicate::sle, qLen,
                                          cIndex(ib, 1));
        scf::YieldOp::create(ib, ValueRange{arith::AndIOp::create(ib, state[0], one)});
      });
  return loop.getResult(0);
}

Value linalg_lowering::buildSplitDecode(IB &b, const AttentionParams &p,
                                        int64_t tile, int64_t targetItems,
                                        Value query, Value batch,
                                        SeqBoundsFn seqBounds,
                                        SourceFn sourceFor) {
  int64_t hq = p.numHeads, hkv = p.kvHeads, group = hq / hkv, headDim = p.headDim;
  Type f32 = b.getF32Type();
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  bool windowed = p.mask.getKind() == MaskKind::SlidingWindow;
  Value tokens = dim(b, query, 0);

  // The first key a sliding window lets the query row (position kvLen - 1)
  // see; may be negative.
  auto windowStart = [&](IB &ib, Value kvLen) -> Value {
    Value qpos = arith::SubIOp::create(ib, kvLen, one);
    return arith::SubIOp::create(ib, qpos, cIndex(ib, p.mask.getWindow() - 1));
  };
  // The key tiles [first, end) the query row of a sequence can see (none
  // without a query row; from the window's start with a sliding window) and
  // that start (null without a window).
  auto visibleTiles = [&](IB &ib, Value qLen,
                          Value kvLen) -> std::tuple<Value, Value, Value> {
    Value hasQuery =
        arith::CmpIOp::create(ib, arith::CmpIPredicate::sgt, qLen, zero);
    Value end = ceilDivSigned(ib, arith::SelectOp::create(ib, hasQuery, kvLen, zero), tile);
    Value first = zero, start;
    if (windowed) {
      start = windowStart(ib, kvLen);
      Value reach = max(ib, start, zero);
      first = min(ib, arith::DivSIOp::create(ib, reach, cIndex(ib, tile)), end);
    }
    return {first, end, start};
  };
  // Chunks of whole tiles: the longest visible range in `splits` chunks.
  auto longest = scf::ForOp::create(
      b, zero, batch, one, ValueRange{zero},
      [&](OpBuilder &ob, Location loc, Value seq, ValueRange state) {
        IB ib(loc, ob);
        auto [qStart, qLen, kvLen] = seqBounds(ib, seq);
        auto [first, end, start] = visibleTiles(ib, qLen, kvLen);
        scf::YieldOp::create(
            ib, ValueRange{max(ib, state[0], arith::SubIOp::create(ib, end, first))});
      });
  Value maxTiles = max(b, longest.getResult(0), one);
  Value wanted = arith::CeilDivSIOp::create(b, cIndex(b, targetItems),
                                            max(b, batch, one));
  Value splits = clamp(b, wanted, one, maxTiles);
  Value chunkTiles = arith::CeilDivSIOp::create(b, maxTiles, splits);
  splits = arith::CeilDivSIOp::create(b, maxTiles, chunkTiles);

  Value partAcc = emptyTensor(
      b, {batch, splits, b.getIndexAttr(hq), b.getIndexAttr(headDim)}, f32);
  Value partMax = emptyTensor(b, {batch, splits, b.getIndexAttr(hq)}, f32);
  Value partSum = emptyTensor(b, {batch, splits, b.getIndexAttr(hq)}, f32);
  auto forall = scf::ForallOp::create(
      b, ArrayRef<OpFoldResult>{batch, splits},
      ValueRange{partAcc, partMax, partSum}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    Value seq = forall.getInductionVar(0), split = forall.getInductionVar(1);
    // Not a structured binding: the lambdas below capture these (C++20).
    Value qStart, qLen, kvLen;
    std::tie(qStart, qLen, kvLen) = seqBounds(b, seq);
    KVSource kv = sourceFor(b, seq);
    Value firstTile, endTile, windowBegin;
    std::tie(firstTile, endTile, windowBegin) = visibleTiles(b, qLen, kvLen);
    Value tileLo = arith::AddIOp::create(
        b, firstTile, arith::MulIOp::create(b, split, chunkTiles));
    Value tileHi = min(b, arith::AddIOp::create(b, tileLo, chunkTiles), endTile);
    Value negInf = negInfF32(b);
    Value m0 = filled(b, {b.getIndexAttr(hq)}, negInf);
    Value l0 = filled(b, {b.getIndexAttr(hq)}, cF32(b, 0.0));
    Value acc0 = filled(b, {b.getIndexAttr(hq), b.getIndexAttr(headDim)}, cF32(b, 0.0));
    Value work = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, tileLo, tileHi);
    auto ifOp = scf::IfOp::create(
        b, work,
        [&](OpBuilder &tb, Location tl) {
          IB ib(tl, tb);
          // q [Hq, D] f32, scaled; read only when the sequence has its row.
          Value qRow = min(ib, qStart, arith::SubIOp::create(ib, tokens, one));
          Value qScale = cF32(ib, p.scale);
          auto qLoop = scf::ForOp::create(
              ib, zero, cIndex(ib, hq), one,
              ValueRange{emptyTensor(ib, {ib.getIndexAttr(hq), ib.getIndexAttr(headDim)},
                                     f32)},
              [&](OpBuilder &gb, Location gl, Value r, ValueRange state) {
                IB g(gl, gb);
                Value v = vecToF32(g, readVector(g, query, {qRow, r, cIndex(g, 0)},
                                                 headDim));
                v = arith::MulFOp::create(g, v, splat(g, qScale, headDim));
                scf::YieldOp::create(g, writeVector(g, v, state[0], {r, cIndex(g, 0)}));
              });
          Value qTile = qLoop.getResult(0);
          auto kvLoop = scf::ForOp::create(
              ib, tileLo, tileHi, one, ValueRange{m0, l0, acc0},
              [&](OpBuilder &kb, Location kl, Value kt, ValueRange state) {
                IB k(kl, kb);
                Value keyBase = arith::MulIOp::create(k, kt, cIndex(k, tile));
                Value valid = clamp(k, arith::SubIOp::create(k, kvLen, keyBase),
                                       zero, cIndex(k, tile));
                Value tileBase = kv.prepareTile(k, kt);
                auto reader = [&](int64_t which) {
                  return [&, which](IB &g, Value h, Value c, Value d0,
                                    int64_t width) -> Value {
                    return kv.readRow(g, tileBase, which, h, c, d0, width);
                  };
                };
                Value scores = decodeScores(k, qTile, hkv, group, tile, headDim,
                                            valid, reader(0));
                // The one query row sees keys [window start, kvLen).
                auto visibleRange = [&](IB &g, Value) -> std::pair<Value, Value> {
                  Value begin = cIndex(g, 0);
                  if (windowed)
                    begin = clamp(g, arith::SubIOp::create(g, windowBegin, keyBase),
                                     zero, cIndex(g, tile));
                  return {begin, valid};
                };
                auto [probs, mNew, lNew, alpha] = vectorSoftmaxStep(
                    k, scores, state[0], state[1], hq, tile, visibleRange);
                Value accNew = decodeAccumulate(k, state[2], alpha, probs, hkv, group,
                                                headDim, p.vectorLanes >= 16 ? 32 : 16,
                                                valid, reader(1));
                scf::YieldOp::create(k, ValueRange{mNew, lNew, accNew});
              });
          scf::YieldOp::create(ib, kvLoop.getResults());
        },
        [&](OpBuilder &eb, Location el) {
          scf::YieldOp::create(eb, el, ValueRange{m0, l0, acc0});
        });
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    SmallVector<Value> outs(forall.getRegionOutArgs());
    SmallVector<OpFoldResult> unit4(4, b.getIndexAttr(1)), unit3(3, b.getIndexAttr(1));
    tensor::ParallelInsertSliceOp::create(
        b, ifOp.getResult(2), outs[0],
        ArrayRef<OpFoldResult>{seq, split, b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                               b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        unit4);
    for (int64_t i = 0; i < 2; ++i)
      tensor::ParallelInsertSliceOp::create(
          b, ifOp.getResult(i), outs[1 + i],
          ArrayRef<OpFoldResult>{seq, split, b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                                 b.getIndexAttr(hq)},
          unit3);
  }
  partAcc = forall.getResult(0);
  partMax = forall.getResult(1);
  partSum = forall.getResult(2);

  // Combine: o = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s, M = max_s m_s
  // (0 for a row that saw no key).
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), query);
  Value init = filled(b, sizes, fromF32(b, b.getLoc(), cF32(b, 0.0), p.elementType));
  auto combine = scf::ForallOp::create(b, ArrayRef<OpFoldResult>{batch},
                                       ValueRange{init}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(combine.getBody());
    Value seq = combine.getInductionVar(0);
    auto [qStart, qLen, kvLen] = seqBounds(b, seq);
    (void)kvLen;
    Value negInf = negInfF32(b);
    Value rowInit = emptyTensor(
        b, {b.getIndexAttr(1), b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        p.elementType);
    auto rowLoop = scf::ForOp::create(
        b, zero, cIndex(b, hq), one, ValueRange{rowInit},
        [&](OpBuilder &ob, Location loc, Value r, ValueRange state) {
          IB ib(loc, ob);
          auto maxLoop = scf::ForOp::create(
              ib, zero, splits, one, ValueRange{negInf},
              [&](OpBuilder &mb, Location ml, Value s, ValueRange st) {
                IB g(ml, mb);
                Value m = tensor::ExtractOp::create(g, partMax, ValueRange{seq, s, r});
                scf::YieldOp::create(g, ValueRange{arith::MaximumFOp::create(g, st[0], m)});
              });
          Value total = maxLoop.getResult(0);
          Value none = arith::CmpFOp::create(ib, arith::CmpFPredicate::OEQ, total, negInf);
          Value zerosD = arith::ConstantOp::create(
              ib, DenseElementsAttr::get(vecType(f32, {headDim}), 0.0f));
          auto sumLoop = scf::ForOp::create(
              ib, zero, splits, one, ValueRange{cF32(ib, 0.0), zerosD},
              [&](OpBuilder &sb, Location sl, Value s, ValueRange st) {
                IB g(sl, sb);
                Value m = tensor::ExtractOp::create(g, partMax, ValueRange{seq, s, r});
                Value l = tensor::ExtractOp::create(g, partSum, ValueRange{seq, s, r});
                // Chunks that saw nothing (m = -inf) weigh 0.
                Value w = arith::SelectOp::create(
                    g, none, cF32(g, 0.0),
                    math::ExpOp::create(g, arith::SubFOp::create(g, m, total)));
                Value a = readVector(g, partAcc, {seq, s, r, cIndex(g, 0)}, headDim);
                scf::YieldOp::create(
                    g, ValueRange{arith::AddFOp::create(g, st[0],
                                                        arith::MulFOp::create(g, w, l)),
                                  vector::FMAOp::create(g, splat(g, w, headDim), a,
                                                        st[1])});
              });
          Value l = sumLoop.getResult(0);
          Value seen = arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT, l,
                                             cF32(ib, 0.0));
          Value inv = arith::SelectOp::create(
              ib, seen, arith::DivFOp::create(ib, cF32(ib, 1.0), l), cF32(ib, 0.0));
          Value o = arith::MulFOp::create(ib, sumLoop.getResult(1),
                                          splat(ib, inv, headDim));
          if (!p.elementType.isF32())
            o = arith::TruncFOp::create(ib, vecType(p.elementType, {headDim}), o);
          scf::YieldOp::create(ib, writeVector(ib, o, state[0],
                                               {cIndex(ib, 0), r, cIndex(ib, 0)}));
        });
    Value rows = tensor::ExtractSliceOp::create(
        b, rowLoop.getResult(0),
        ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{qLen, b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1), b.getIndexAttr(1)});
    b.setInsertionPointToStart(combine.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, rows, combine.getRegionOutArgs()[0],
        ArrayRef<OpFoldResult>{qStart, b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{qLen, b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1), b.getIndexAttr(1)});
  }
  return combine.getResult(0);
}
