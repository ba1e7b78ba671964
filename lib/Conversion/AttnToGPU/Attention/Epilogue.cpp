//===- Epilogue.cpp - the attention output of a block ---------------------===//

#include "Epilogue.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

namespace {
/// Row `h` of the lane (tile row warpRow + group + 8 h), normalised by
/// `inv` = 1 / l.
struct OutputRow {
  const SoftmaxState &state;
  const WarpLayout &w;
  int64_t h;
  Idx row, head;
  Value inv;

  /// The row into `dst` at (`prefix`..., row, head, column), rounded to
  /// `element` unless null.
  void write(IB &b, Value dst, ValueRange prefix, Type element) const {
    for (int64_t t = 0; t < static_cast<int64_t>(state.acc.size()) / 4; ++t) {
      Idx col = w.quad * 2 + t * 8;
      for (int64_t e = 0; e < 2; ++e) {
        Value o = arith::MulFOp::create(b, state.acc[t * 4 + 2 * h + e], inv);
        if (element)
          o = fromF32(b, o, element);
        SmallVector<Value> at(prefix);
        at.append({row, head, col + e});
        store(b, o, dst, at);
      }
    }
  }
};
} // namespace

void attention::writeOutput(IB &b, const Problem &p,
                            const AttentionKernelArgs &a, const BlockWork &work,
                            const WarpLayout &w, Idx warpRow,
                            const SoftmaxState &state, Value oneSplit,
                            Idx part) {
  for (int64_t h = 0; h < 2; ++h) {
    Value l = state.l[h];
    l = arith::AddFOp::create(b, l, shuffleXor(b, l, 1));
    l = arith::AddFOp::create(b, l, shuffleXor(b, l, 2));
    TileRow row = work.row(warpRow + m16n8k16::accRow(w, 2 * h));
    Value empty =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, l, cF32(b, 0.0));
    Value inv = arith::SelectOp::create(
        b, empty, cF32(b, 0.0), arith::DivFOp::create(b, cF32(b, 1.0), l));
    OutputRow out{state, w, h, work.qStart + row.qRow, row.head, inv};
    auto writePartial = [&](IB &pb) {
      out.write(pb, a.oPart, {part}, Type());
      // The log2-sum-exp of the split; -inf when it saw no key.
      Value lse =
          arith::AddFOp::create(pb, state.m[h], math::Log2Op::create(pb, l));
      lse = arith::SelectOp::create(pb, empty, negInfF32(pb), lse);
      ifThen(pb, w.quad == 0, [&](IB &fb) {
        store(fb, lse, a.lsePart, {part, out.row, out.head});
      });
    };
    ifThen(b, row.valid, [&](IB &vb) {
      if (!oneSplit)
        return writePartial(vb);
      ifThenElse(
          vb, oneSplit, [&](IB &fb) { out.write(fb, a.out, {}, p.element); },
          writePartial);
    });
  }
}
