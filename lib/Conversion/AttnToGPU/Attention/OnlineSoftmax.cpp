//===- OnlineSoftmax.cpp - the flash-attention softmax in registers -------===//

#include "OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

KeyMask attention::buildKeyMask(IB &b, const Problem &p, const BlockWork &work,
                                const SplitKeys &keys, const WarpLayout &w,
                                Idx warpRow) {
  KeyMask mask;
  for (int64_t h = 0; h < 2; ++h) {
    TileRow row = work.row(warpRow + m16n8k16::accRow(w, 2 * h));
    Idx pos = keys.posBase + row.qRow;
    Idx hi = p.causal ? min(b, keys.hi, pos + 1) : keys.hi;
    Idx lo = p.window ? max(b, keys.lo, pos + (1 - *p.window)) : keys.lo;
    mask.rowHi[h] = select(b, row.valid, hi, cIndex(b, 0));
    mask.rowLo[h] = select(b, row.valid, lo, cIndex(b, 1));
  }
  // (Padding rows then see keys too, harmlessly: their q is zero, never
  // written.)
  Idx first = work.firstRow;
  mask.blockHi =
      p.causal ? min(b, keys.hi, keys.posBase + (first + 1)) : keys.hi;
  mask.blockLo =
      p.window ? max(b, keys.lo,
                     keys.posBase + ((first + keys.rowsHere) + -*p.window))
               : keys.lo;
  return mask;
}

void attention::scaleAndMask(IB &b, const Problem &p, const KeyMask &mask,
                             const WarpLayout &w, Idx keyTile, Idx keyBase,
                             MutableArrayRef<Value> scores) {
  Value scaleLog2 = cF32(b, p.scale * M_LOG2E);
  Value negInf = negInfF32(b);
  for (Value &s : scores)
    s = arith::MulFOp::create(b, s, scaleLog2);
  Idx full = (keyTile >= mask.blockLo) & (mask.blockHi >= keyTile + kKeys);
  SmallVector<Value> masked = ifElse(b, full ^ 1, scores, [&](IB &mb) {
    SmallVector<Value> out(scores);
    Idx colBase = keyTile + keyBase + w.quad * 2;
    for (int64_t n = 0; n < static_cast<int64_t>(out.size()) / 4; ++n) {
      for (int64_t e = 0; e < 4; ++e) {
        Idx key = colBase + (n * 8 + e % 2);
        Idx visible = (key >= mask.rowLo[e / 2]) & (key < mask.rowHi[e / 2]);
        out[n * 4 + e] = select(mb, visible, out[n * 4 + e], negInf);
      }
    }
    return out;
  });
  llvm::copy(masked, scores.begin());
}

SoftmaxState SoftmaxState::initial(IB &b, int64_t headDim) {
  SoftmaxState s;
  s.m = {negInfF32(b), negInfF32(b)};
  s.l = {cF32(b, 0.0), cF32(b, 0.0)};
  s.acc.assign(headDim / 8 * 4, cF32(b, 0.0));
  return s;
}

SmallVector<Value> SoftmaxState::values() const {
  SmallVector<Value> v = {m[0], m[1], l[0], l[1]};
  v.append(acc);
  return v;
}

SoftmaxState SoftmaxState::fromValues(ValueRange values) {
  SoftmaxState s;
  s.m = {values[0], values[1]};
  s.l = {values[2], values[3]};
  s.acc.assign(values.begin() + 4, values.end());
  return s;
}

/// The registers of `frag` (tiles of four) holding row `h` of the lane.
static SmallVector<Value *> rowValues(MutableArrayRef<Value> frag, int64_t h) {
  SmallVector<Value *> row;
  for (int64_t t = 0; t < static_cast<int64_t>(frag.size()) / 4; ++t)
    for (int64_t e = 2 * h; e < 2 * h + 2; ++e)
      row.push_back(&frag[t * 4 + e]);
  return row;
}

void attention::onlineSoftmax(IB &b, SoftmaxState &state,
                              MutableArrayRef<Value> scores) {
  for (int64_t h = 0; h < 2; ++h) {
    Value mx = state.m[h];
    for (Value *s : rowValues(scores, h))
      mx = arith::MaximumFOp::create(b, mx, *s);
    mx = arith::MaximumFOp::create(b, mx, shuffleXor(b, mx, 1));
    mx = arith::MaximumFOp::create(b, mx, shuffleXor(b, mx, 2));
    // A row with no visible key yet keeps -inf: subtract 0 instead.
    Value isInf =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx, negInfF32(b));
    Value base = arith::SelectOp::create(b, isInf, cF32(b, 0.0), mx);
    Value alpha =
        math::Exp2Op::create(b, arith::SubFOp::create(b, state.m[h], base));
    Value sum = cF32(b, 0.0);
    for (Value *s : rowValues(scores, h)) {
      *s = math::Exp2Op::create(b, arith::SubFOp::create(b, *s, base));
      sum = arith::AddFOp::create(b, sum, *s);
    }
    state.m[h] = mx;
    state.l[h] = arith::AddFOp::create(
        b, arith::MulFOp::create(b, state.l[h], alpha), sum);
    for (Value *o : rowValues(state.acc, h))
      *o = arith::MulFOp::create(b, *o, alpha);
  }
}
