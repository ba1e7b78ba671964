//===- GenericAttention.cpp - the linalg fallback of grouped attention ----===//
//
// Where D or the key tile is not a multiple of 8, a query tile runs on
// linalg generics: s = q k^T, the mask, the online-softmax update with exp2
// (the scale folded with log2 e into q) and acc' = alpha acc + p v.
//
//===----------------------------------------------------------------------===//

#include "QueryTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

Value linalg_lowering::genericQueryTile(
    IB &b, const QueryTile &t, Value query, Value init,
    function_ref<std::pair<Value, Value>(IB &, Value row)> queryRow) {
  MLIRContext *ctx = b.getContext();
  AffineExpr r, c;
  bindDims(ctx, r, c);
  return generic(b, init, {}, {map(ctx, 2, {r, c})}, iterators(2),
                 [&](OpBuilder &gb, Location gl, ValueRange) {
                   IB g(gl, gb);
                   auto [row, head] =
                       queryRow(g, linalg::IndexOp::create(g, 0));
                   Value d = linalg::IndexOp::create(g, 1);
                   Value v = tensor::ExtractOp::create(
                       g, query, ValueRange{row, head, d});
                   linalg::YieldOp::create(
                       g, ValueRange{arith::MulFOp::create(
                              g, toF32(g, gl, v), t.qScale)});
                 });
}

/// The scores of keys a row cannot see (past the sequence, in the future,
/// out of the window) become -inf.
static Value maskScores(IB &b, const QueryTile &t, Value scores,
                        Value keyBase) {
  MLIRContext *ctx = b.getContext();
  AffineExpr r, c;
  bindDims(ctx, r, c);
  Value negInf = t.negInf;
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(t.rows),
                                     b.getIndexAttr(t.kv.tileSize)};
  return generic(
      b, emptyTensor(b, sizes, b.getF32Type()), {scores},
      {map(ctx, 2, {r, c}), map(ctx, 2, {r, c})}, iterators(2),
      [&](OpBuilder &gb, Location gl, ValueRange a) {
        IB g(gl, gb);
        BuilderScope scope(g);
        Idx row = Value(linalg::IndexOp::create(g, 0));
        Idx column = Value(linalg::IndexOp::create(g, 1));
        Idx key = Idx(keyBase) + column;
        Idx qpos = Idx(t.firstPos) + row / t.group;
        Idx valid = key < t.kvLen;
        if (t.causal())
          valid = valid & (key <= qpos);
        if (t.windowed())
          valid = valid & (qpos - key < t.params.mask.getWindow());
        linalg::YieldOp::create(g, ValueRange{select(g, valid, a[0], negInf)});
      });
}

SoftmaxState linalg_lowering::genericKeyTileStep(IB &b, const QueryTile &t,
                                                 Value kt, Value keyBase,
                                                 const SoftmaxState &state) {
  MLIRContext *ctx = b.getContext();
  int64_t rows = t.rows;
  Type f32 = b.getF32Type();
  Value negInf = t.negInf;
  AffineExpr r, c, d;
  bindDims(ctx, r, c, d);
  Value keys = t.kv.loadTile(b, kt, 0, t.kvHead, t.kvLen);
  Value values = t.kv.loadTile(b, kt, 1, t.kvHead, t.kvLen);
  SmallVector<OpFoldResult> scoreSizes = {b.getIndexAttr(rows),
                                          b.getIndexAttr(t.kv.tileSize)};
  SmallVector<OpFoldResult> rowSizes = {b.getIndexAttr(rows)};
  SmallVector<OpFoldResult> accSizes = {b.getIndexAttr(rows),
                                        b.getIndexAttr(t.params.headDim)};
  AffineMap rc2 = map(ctx, 2, {r, c}), r2 = map(ctx, 2, {r});
  AffineMap r1 = map(ctx, 1, {r});
  auto multiply = [](OpBuilder &gb, Location gl, ValueRange a) {
    linalg::YieldOp::create(
        gb, gl, ValueRange{arith::MulFOp::create(gb, gl, a[0], a[1])});
  };
  auto multiplyAdd = [](OpBuilder &gb, Location gl, ValueRange a) {
    Value prod = arith::MulFOp::create(gb, gl, a[0], a[1]);
    linalg::YieldOp::create(
        gb, gl, ValueRange{arith::AddFOp::create(gb, gl, a[2], prod)});
  };
  // s = q k^T
  Value scores = generic(
      b, filled(b, scoreSizes, cF32(b, 0.0)), {t.q, keys},
      {map(ctx, 3, {r, d}), map(ctx, 3, {c, d}), map(ctx, 3, {r, c})},
      iterators(2, 1), multiplyAdd);
  scores = maskScores(b, t, scores, keyBase);
  // m' = max(m, rowmax(s)) and alpha = exp2(m - m'), which rescales what
  // was accumulated (1 while nothing was seen).
  Value tileMax = generic(
      b, filled(b, rowSizes, negInf), {scores}, {rc2, r2}, iterators(1, 1),
      [&](OpBuilder &gb, Location gl, ValueRange a) {
        linalg::YieldOp::create(
            gb, gl, ValueRange{arith::MaximumFOp::create(gb, gl, a[1], a[0])});
      });
  auto rowType = RankedTensorType::get({rows}, f32);
  auto update = linalg::GenericOp::create(
      b, TypeRange{rowType, rowType}, ValueRange{state.m, tileMax},
      ValueRange{emptyTensor(b, rowSizes, f32), emptyTensor(b, rowSizes, f32)},
      {r1, r1, r1, r1}, iterators(1),
      [&](OpBuilder &gb, Location gl, ValueRange a) {
        IB g(gl, gb);
        Value mn = arith::MaximumFOp::create(g, a[0], a[1]);
        Value none =
            arith::CmpFOp::create(g, arith::CmpFPredicate::OEQ, mn, negInf);
        Value e = math::Exp2Op::create(g, arith::SubFOp::create(g, a[0], mn));
        linalg::YieldOp::create(
            g, ValueRange{mn, arith::SelectOp::create(g, none, cF32(g, 1.0), e)});
      });
  Value m = update.getResult(0), alpha = update.getResult(1);
  // p = exp2(s - m'), 0 where the row has seen nothing yet.
  Value probs = generic(
      b, emptyTensor(b, scoreSizes, f32), {scores, m}, {rc2, r2, rc2},
      iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
        IB g(gl, gb);
        Value none =
            arith::CmpFOp::create(g, arith::CmpFPredicate::OEQ, a[1], negInf);
        Value e = math::Exp2Op::create(g, arith::SubFOp::create(g, a[0], a[1]));
        linalg::YieldOp::create(
            g, ValueRange{arith::SelectOp::create(g, none, cF32(g, 0.0), e)});
      });
  Value lScaled = generic(b, emptyTensor(b, rowSizes, f32), {state.l, alpha},
                          {r1, r1, r1}, iterators(1), multiply);
  Value l = generic(b, lScaled, {probs}, {rc2, r2}, iterators(1, 1),
                    [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl,
                          ValueRange{arith::AddFOp::create(gb, gl, a[1], a[0])});
                    });
  Value accScaled = generic(b, emptyTensor(b, accSizes, f32), {state.acc, alpha},
                            {rc2, r2, rc2}, iterators(2), multiply);
  // acc' = alpha acc + p v  (dims: r, d, c)
  Value acc = generic(
      b, accScaled, {probs, values},
      {map(ctx, 3, {r, d}), map(ctx, 3, {d, c}), map(ctx, 3, {r, c})},
      iterators(2, 1), multiplyAdd);
  return {m, l, acc};
}
