//===- OnlineSoftmax.cpp - the flash-attention softmax in registers -------===//

#include "OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
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

void attention::maskScores(IB &b, const Problem &p, const KeyMask &mask,
                           const WarpLayout &w, Idx keyTile, Idx keyBase,
                           MutableArrayRef<Value> scores) {
  Value negInf = negInfF32(b);
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

/// A row keeps its max, and its accumulators their scale, until the max of
/// its scaled scores exceeds it by more than this (log2 units): its P then
/// stays below 2^8, and acc and l stay relative to the same max, so the
/// result is exact (FlashAttention-4's conditional rescaling). Most key
/// tiles of a long sequence then skip the D / 2 multiplies of acc.
constexpr double kRescaleThreshold = 8.0;

void attention::onlineSoftmax(IB &b, const Problem &p, SoftmaxState &state,
                              MutableArrayRef<Value> scores) {
  Value scale = cF32(b, p.scale * M_LOG2E);
  Value negInf = negInfF32(b);
  // 1. Each row's max of the tile, scaled (the scale is positive), and
  // whether it outgrows the row's max.
  std::array<Value, 2> grows, newM;
  Value anyGrows = cBool(b, false);
  for (int64_t h = 0; h < 2; ++h) {
    Value mx = negInf;
    for (Value *s : rowValues(scores, h))
      mx = arith::MaximumFOp::create(b, mx, *s);
    mx = arith::MaximumFOp::create(b, mx, shuffleXor(b, mx, 1));
    mx = arith::MaximumFOp::create(b, mx, shuffleXor(b, mx, 2));
    mx = arith::MulFOp::create(b, mx, scale);
    Value bound = arith::AddFOp::create(b, state.m[h],
                                        cF32(b, kRescaleThreshold));
    grows[h] =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, mx, bound);
    newM[h] = arith::SelectOp::create(b, grows[h], mx, state.m[h]);
    anyGrows = arith::OrIOp::create(b, anyGrows, grows[h]);
  }
  // 2. Only when a row of the warp grows: its acc and l times
  // alpha = 2^(m_old - m_new) (0 for a row's first visible keys).
  Value warpGrows = NVVM::VoteSyncOp::create(
      b, b.getI1Type(), cI32(b, -1), anyGrows, NVVM::VoteSyncKind::any);
  SmallVector<Value> scaled = state.acc;
  scaled.append({state.l[0], state.l[1]});
  scaled = ifElse(b, warpGrows, scaled, [&](IB &gb) {
    SmallVector<Value> out(scaled);
    MutableArrayRef<Value> acc = MutableArrayRef<Value>(out).drop_back(2);
    for (int64_t h = 0; h < 2; ++h) {
      Value alpha = arith::SelectOp::create(
          gb, grows[h],
          math::Exp2Op::create(gb,
                               arith::SubFOp::create(gb, state.m[h], newM[h])),
          cF32(gb, 1.0));
      for (Value *o : rowValues(acc, h))
        *o = arith::MulFOp::create(gb, *o, alpha);
      out[acc.size() + h] = arith::MulFOp::create(gb, out[acc.size() + h], alpha);
    }
    return out;
  });
  // 3. P = 2^(scale s - m) in one FMA per score; a row with no visible key
  // yet keeps -inf and subtracts 0 instead.
  for (int64_t h = 0; h < 2; ++h) {
    Value isInf =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, newM[h], negInf);
    Value negBase = arith::NegFOp::create(
        b, arith::SelectOp::create(b, isInf, cF32(b, 0.0), newM[h]));
    Value sum = cF32(b, 0.0);
    for (Value *s : rowValues(scores, h)) {
      *s = math::Exp2Op::create(b, math::FmaOp::create(b, *s, scale, negBase));
      sum = arith::AddFOp::create(b, sum, *s);
    }
    state.m[h] = newM[h];
    state.l[h] = arith::AddFOp::create(b, scaled[scaled.size() - 2 + h], sum);
  }
  state.acc.assign(scaled.begin(), scaled.end() - 2);
}
