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
  Value zero = cIndex(b, 0);
  return forLoop(b, zero, validKeys, 1, ValueRange{init},
                 [&](IB &ib, Idx c, ValueRange keyState) {
                   return forLoop(
                       ib, zero, cIndex(ib, kvHeads), 1, keyState,
                       [&](IB &i1, Idx h, ValueRange headState)
                           -> SmallVector<Value> {
                         SmallVector<Value> rows =
                             blockRows(i1, h * group, group);
                         return {body(i1, c, h, rows, headState[0])};
                       });
                 })[0];
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
  Value zeros = zero(b, vecType(b.getF32Type(), {width}));
  return forKeysAndHeads(
      b, validKeys, kvHeads, group, init,
      [&](IB &i1, Value c, Value h, ArrayRef<Value> rows, Value scores) {
        SmallVector<Value> start(group, zeros);
        SmallVector<Value> dots = forLoop(
            i1, cIndex(i1, 0), cIndex(i1, headDim), width, start,
            [&](IB &i2, Idx d0, ValueRange acc) {
              Value k = readKey(i2, h, c, d0, width);
              SmallVector<Value> next;
              for (int64_t g = 0; g < group; ++g)
                next.push_back(vector::FMAOp::create(
                    i2, readVector(i2, q, {rows[g], d0}, width), k, acc[g]));
              return next;
            });
        for (int64_t g = 0; g < group; ++g) {
          Value sum = vector::ReductionOp::create(i1, vector::CombiningKind::ADD,
                                                  dots[g]);
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
  Value zero = cIndex(b, 0);
  // Rescale what was accumulated.
  Value scaled = forLoop(
      b, zero, cIndex(b, rows), 1, ValueRange{acc},
      [&](IB &ib, Idx r, ValueRange state) -> SmallVector<Value> {
        Value a = splat(ib, tensor::ExtractOp::create(ib, alpha, r), headDim);
        Value row = readVector(ib, state[0], {r, zero}, headDim);
        return {writeVector(ib, arith::MulFOp::create(ib, row, a), state[0],
                            {r, zero})};
      })[0];
  return forKeysAndHeads(
      b, validKeys, kvHeads, group, scaled,
      [&](IB &i1, Value c, Value h, ArrayRef<Value> rowIdx, Value accIn) {
        SmallVector<Value> ps;
        for (Value row : rowIdx)
          ps.push_back(splat(
              i1, tensor::ExtractOp::create(i1, probs, ValueRange{row, c}), width));
        return forLoop(
            i1, zero, cIndex(i1, headDim), width, ValueRange{accIn},
            [&](IB &i2, Idx d0, ValueRange dState) -> SmallVector<Value> {
              Value v = readValue(i2, h, c, d0, width);
              Value out = dState[0];
              for (int64_t g = 0; g < group; ++g) {
                Value sum = vector::FMAOp::create(
                    i2, ps[g], v, readVector(i2, out, {rowIdx[g], d0}, width));
                out = writeVector(i2, sum, out, {rowIdx[g], d0});
              }
              return {out};
            })[0];
      });
}

Value linalg_lowering::allSequencesDecode(IB &b, Value batch,
                                          SeqBoundsFn seqBounds) {
  return forLoop(b, cIndex(b, 0), batch, 1, ValueRange{cBool(b, true)},
                 [&](IB &ib, Idx seq, ValueRange state) -> SmallVector<Value> {
                   Idx qLen = std::get<1>(seqBounds(ib, seq));
                   return {Idx(state[0]) & (qLen <= 1)};
                 })[0];
}

namespace {
/// The key tiles [first, end) that the query row of a sequence can see
/// (none without a query row; from the window's start with a sliding
/// window) and that start, the first key the window lets the row (position
/// kvLen - 1) see, which may be negative (null without a window).
struct VisibleTiles {
  Idx first, end, windowStart;
};

/// Flash decoding: (sequence, chunk of key tiles) work items, then a
/// combine per sequence.
struct SplitDecode {
  const AttentionParams &p;
  int64_t tile;
  Value query, batch;
  SeqBoundsFn seqBounds;
  SourceFn sourceFor;

  int64_t group() const { return p.numHeads / p.kvHeads; }
  VisibleTiles visibleTiles(IB &b, Idx qLen, Idx kvLen) const;
  std::pair<Value, Value> chunks(IB &b, int64_t targetItems) const;
  SoftmaxState workItem(IB &b, Value seq, Value split, Value chunkTiles,
                        Value tokens) const;
  SoftmaxState attendChunk(IB &b, const KVSource &kv, Value q, Idx kvLen,
                           const VisibleTiles &visible, Value tileLo,
                           Value tileHi, const SoftmaxState &init) const;
  Value queryHeads(IB &b, Value row) const;
  Value combine(IB &b, const SoftmaxState &parts, Value splits) const;
  Value combineRow(IB &b, const SoftmaxState &parts, Value splits, Value seq,
                   Value r, Value negInf) const;
};
} // namespace

VisibleTiles SplitDecode::visibleTiles(IB &b, Idx qLen, Idx kvLen) const {
  Idx zero = cIndex(b, 0);
  Idx end = ceilDivSigned(b, select(b, qLen > zero, kvLen, zero), tile);
  if (p.mask.getKind() != MaskKind::SlidingWindow)
    return {zero, end, Idx()};
  Idx start = kvLen - 1 - (p.mask.getWindow() - 1);
  Idx reach = max(b, start, zero);
  return {min(b, divSigned(b, reach, tile), end), end, start};
}

/// The number of chunks and the tiles per chunk: about `targetItems` work
/// items, chunks of whole tiles over the longest visible range.
std::pair<Value, Value> SplitDecode::chunks(IB &b, int64_t targetItems) const {
  Idx zero = cIndex(b, 0), one = cIndex(b, 1);
  Value longest = forLoop(
      b, zero, batch, 1, ValueRange{zero},
      [&](IB &ib, Idx seq, ValueRange state) -> SmallVector<Value> {
        auto [qStart, qLen, kvLen] = seqBounds(ib, seq);
        VisibleTiles visible = visibleTiles(ib, qLen, kvLen);
        return {max(ib, state[0], visible.end - visible.first)};
      })[0];
  Idx maxTiles = max(b, longest, one);
  Idx wanted = ceilDivSigned(b, cIndex(b, targetItems), max(b, batch, one));
  Idx splits = clamp(b, wanted, one, maxTiles);
  Idx chunkTiles = ceilDivSigned(b, maxTiles, splits);
  return {ceilDivSigned(b, maxTiles, chunkTiles), chunkTiles};
}

/// q [Hq, D] f32, scaled, of query row `row`.
Value SplitDecode::queryHeads(IB &b, Value row) const {
  int64_t hq = p.numHeads, headDim = p.headDim;
  Value qScale = cF32(b, p.scale);
  Value init = emptyTensor(b, {b.getIndexAttr(hq), b.getIndexAttr(headDim)},
                           b.getF32Type());
  return forLoop(b, cIndex(b, 0), cIndex(b, hq), 1, ValueRange{init},
                 [&](IB &g, Idx r, ValueRange state) -> SmallVector<Value> {
                   Value v = vecToF32(
                       g, readVector(g, query, {row, r, cIndex(g, 0)}, headDim));
                   v = arith::MulFOp::create(g, v, splat(g, qScale, headDim));
                   return {writeVector(g, v, state[0], {r, cIndex(g, 0)})};
                 })[0];
}

/// The online softmax of the query heads `q` over key tiles [tileLo, tileHi).
SoftmaxState SplitDecode::attendChunk(IB &b, const KVSource &kv, Value q,
                                      Idx kvLen, const VisibleTiles &visible,
                                      Value tileLo, Value tileHi,
                                      const SoftmaxState &init) const {
  int64_t hkv = p.kvHeads, headDim = p.headDim;
  bool windowed = p.mask.getKind() == MaskKind::SlidingWindow;
  SmallVector<Value> state = forLoop(
      b, tileLo, tileHi, 1, init.values(),
      [&](IB &k, Idx kt, ValueRange s) -> SmallVector<Value> {
        Idx keyBase = kt * tile;
        Idx zero = cIndex(k, 0);
        Idx valid = clamp(k, kvLen - keyBase, zero, cIndex(k, tile));
        Value tileBase = kv.prepareTile(k, kt);
        auto reader = [&](int64_t which) {
          return [&, which](IB &g, Value h, Value c, Value d0,
                            int64_t width) -> Value {
            return kv.readRow(g, tileBase, which, h, c, d0, width);
          };
        };
        Value scores = decodeScores(k, q, hkv, group(), tile, headDim, valid,
                                    reader(0));
        // The one query row sees keys [window start, kvLen).
        auto visibleRange = [&](IB &g, Value) -> std::pair<Value, Value> {
          BuilderScope scope(g);
          Idx begin = cIndex(g, 0);
          if (windowed)
            begin = clamp(g, visible.windowStart - keyBase, zero,
                          cIndex(g, tile));
          return {begin, valid};
        };
        auto [probs, m, l, alpha] = vectorSoftmaxStep(
            k, scores, s[0], s[1], p.numHeads, tile, visibleRange);
        Value acc = decodeAccumulate(k, s[2], alpha, probs, hkv, group(),
                                     headDim, p.vectorLanes >= 16 ? 32 : 16,
                                     valid, reader(1));
        return {m, l, acc};
      });
  return {state[0], state[1], state[2]};
}

/// Work item (seq, split): the online-softmax state of its chunk of key
/// tiles (the initial state when the chunk is empty).
SoftmaxState SplitDecode::workItem(IB &b, Value seq, Value split,
                                   Value chunkTiles, Value tokens) const {
  int64_t hq = p.numHeads;
  // Not a structured binding: the lambda below captures these (C++20).
  Value qStart, qLen, kvLen;
  std::tie(qStart, qLen, kvLen) = seqBounds(b, seq);
  KVSource kv = sourceFor(b, seq);
  VisibleTiles visible = visibleTiles(b, qLen, kvLen);
  Idx tileLo = visible.first + Idx(split) * chunkTiles;
  Idx tileHi = min(b, tileLo + chunkTiles, visible.end);
  Value negInf = negInfF32(b);
  SoftmaxState init{
      filled(b, {b.getIndexAttr(hq)}, negInf),
      filled(b, {b.getIndexAttr(hq)}, cF32(b, 0.0)),
      filled(b, {b.getIndexAttr(hq), b.getIndexAttr(p.headDim)}, cF32(b, 0.0))};
  SmallVector<Value> state =
      ifElse(b, tileLo < tileHi, init.values(), [&](IB &ib) {
        // Read only when the sequence has its row.
        Value q = queryHeads(ib, min(ib, qStart, Idx(tokens) - 1));
        return attendChunk(ib, kv, q, kvLen, visible, tileLo, tileHi, init)
            .values();
      });
  return {state[0], state[1], state[2]};
}

/// Row r of sequence seq: o = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M)
/// l_s, M = max_s m_s (0 for a row that saw no key), in the output type.
Value SplitDecode::combineRow(IB &b, const SoftmaxState &parts, Value splits,
                              Value seq, Value r, Value negInf) const {
  int64_t headDim = p.headDim;
  Type f32 = b.getF32Type();
  Value total =
      forLoop(b, cIndex(b, 0), splits, 1, ValueRange{negInf},
              [&](IB &g, Idx s, ValueRange st) -> SmallVector<Value> {
                Value m = tensor::ExtractOp::create(g, parts.m,
                                                    ValueRange{seq, s, r});
                return {arith::MaximumFOp::create(g, st[0], m)};
              })[0];
  Value none =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, total, negInf);
  Value zerosD = zero(b, vecType(f32, {headDim}));
  SmallVector<Value> sums = forLoop(
      b, cIndex(b, 0), splits, 1, ValueRange{cF32(b, 0.0), zerosD},
      [&](IB &g, Idx s, ValueRange st) -> SmallVector<Value> {
        Value m = tensor::ExtractOp::create(g, parts.m, ValueRange{seq, s, r});
        Value l = tensor::ExtractOp::create(g, parts.l, ValueRange{seq, s, r});
        // Chunks that saw nothing (m = -inf) weigh 0.
        Value w = arith::SelectOp::create(
            g, none, cF32(g, 0.0),
            math::ExpOp::create(g, arith::SubFOp::create(g, m, total)));
        Value a = readVector(g, parts.acc, {seq, s, r, cIndex(g, 0)}, headDim);
        return {arith::AddFOp::create(g, st[0], arith::MulFOp::create(g, w, l)),
                vector::FMAOp::create(g, splat(g, w, headDim), a, st[1])};
      });
  Value l = sums[0];
  // Unordered, as in the prefill tiles: a NaN l gives NaN, l == 0 zeros.
  Value seen =
      arith::CmpFOp::create(b, arith::CmpFPredicate::UGT, l, cF32(b, 0.0));
  Value inv = arith::SelectOp::create(
      b, seen, arith::DivFOp::create(b, cF32(b, 1.0), l), cF32(b, 0.0));
  Value o = arith::MulFOp::create(b, sums[1], splat(b, inv, headDim));
  if (!p.elementType.isF32())
    o = arith::TruncFOp::create(b, vecType(p.elementType, {headDim}), o);
  return o;
}

/// The output rows of every sequence from its chunks' partial states.
Value SplitDecode::combine(IB &b, const SoftmaxState &parts,
                           Value splits) const {
  int64_t hq = p.numHeads, headDim = p.headDim;
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), query);
  Value init = filled(b, sizes, fromF32(b, b.getLoc(), cF32(b, 0.0), p.elementType));
  auto forall = scf::ForallOp::create(b, ArrayRef<OpFoldResult>{batch},
                                      ValueRange{init}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  Value seq = forall.getInductionVar(0);
  auto [qStart, qLen, kvLen] = seqBounds(b, seq);
  (void)kvLen;
  Value negInf = negInfF32(b);
  Value rowInit = emptyTensor(
      b, {b.getIndexAttr(1), b.getIndexAttr(hq), b.getIndexAttr(headDim)},
      p.elementType);
  Value rows = forLoop(
      b, cIndex(b, 0), cIndex(b, hq), 1, ValueRange{rowInit},
      [&](IB &ib, Idx r, ValueRange state) -> SmallVector<Value> {
        Value o = combineRow(ib, parts, splits, seq, r, negInf);
        return {writeVector(ib, o, state[0], {cIndex(ib, 0), r, cIndex(ib, 0)})};
      })[0];
  OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> rowSizes = {qLen, b.getIndexAttr(hq),
                                        b.getIndexAttr(headDim)};
  SmallVector<OpFoldResult> unit = {one, one, one};
  rows = tensor::ExtractSliceOp::create(
      b, rows, ArrayRef<OpFoldResult>{zero, zero, zero}, rowSizes, unit);
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(
      b, rows, forall.getRegionOutArgs()[0],
      ArrayRef<OpFoldResult>{qStart, zero, zero}, rowSizes, unit);
  return forall.getResult(0);
}

Value linalg_lowering::buildSplitDecode(IB &b, const AttentionParams &p,
                                        int64_t tile, int64_t targetItems,
                                        Value query, Value batch,
                                        SeqBoundsFn seqBounds,
                                        SourceFn sourceFor) {
  BuilderScope scope(b);
  SplitDecode decode{p, tile, query, batch, seqBounds, sourceFor};
  int64_t hq = p.numHeads, headDim = p.headDim;
  Type f32 = b.getF32Type();
  Idx tokens = dim(b, query, 0);
  auto [splits, chunkTiles] = decode.chunks(b, targetItems);

  // One (sequence, chunk) work item per forall iteration, its online
  // softmax state in the partial results.
  SmallVector<Value> parts = {
      emptyTensor(b, {batch, splits, b.getIndexAttr(hq), b.getIndexAttr(headDim)},
                  f32),
      emptyTensor(b, {batch, splits, b.getIndexAttr(hq)}, f32),
      emptyTensor(b, {batch, splits, b.getIndexAttr(hq)}, f32)};
  auto forall = scf::ForallOp::create(
      b, ArrayRef<OpFoldResult>{batch, splits}, parts, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    Value seq = forall.getInductionVar(0), split = forall.getInductionVar(1);
    SoftmaxState item = decode.workItem(b, seq, split, chunkTiles, tokens);
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    SmallVector<Value> outs(forall.getRegionOutArgs());
    OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1),
                 heads = b.getIndexAttr(hq);
    tensor::ParallelInsertSliceOp::create(
        b, item.acc, outs[0], ArrayRef<OpFoldResult>{seq, split, zero, zero},
        ArrayRef<OpFoldResult>{one, one, heads, b.getIndexAttr(headDim)},
        SmallVector<OpFoldResult>(4, one));
    Value rowStates[] = {item.m, item.l};
    for (auto [value, out] : llvm::zip(rowStates, ArrayRef(outs).drop_front()))
      tensor::ParallelInsertSliceOp::create(
          b, value, out, ArrayRef<OpFoldResult>{seq, split, zero},
          ArrayRef<OpFoldResult>{one, one, heads},
          SmallVector<OpFoldResult>(3, one));
  }
  SoftmaxState partial{forall.getResult(1), forall.getResult(2),
                       forall.getResult(0)};
  return decode.combine(b, partial, splits);
}
