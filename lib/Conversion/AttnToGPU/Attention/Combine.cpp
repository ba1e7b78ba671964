//===- Combine.cpp - merge the key splits' partial outputs ----------------===//
//
// Flash-decoding's second step: a thread per (row, head, column) weighs
// each split's normalised partial by its share 2^(lse - max lse) of the
// softmax sum, in one pass with a running maximum.
//
//===----------------------------------------------------------------------===//

#include "Schedules.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

namespace {
/// The combine kernel's arguments, in launch order.
struct CombineArgs {
  Value oPart, lsePart, out, parts, count;
  SmallVector<Value> operands() const {
    return {oPart, lsePart, out, parts, count};
  }
  static CombineArgs fromOperands(ValueRange v) {
    return {v[0], v[1], v[2], v[3], v[4]};
  }
};
} // namespace

/// Partials merged per trip of the combine loop. Their loads do not depend
/// on each other, so a thread has this many in flight, and its chain of
/// dependent loads is parts / 8 trips long (the partials sit in L2: latency,
/// not bandwidth, is what the combine waits for).
constexpr int64_t kPartsPerTrip = 8;

/// The merged output of (row, head, col): one pass over the partials with a
/// running maximum of their log2-sum-exps, as the online softmax merges key
/// tiles. Parts past the last read the last one and weigh 0.
static Value combineColumn(IB &b, const CombineArgs &a, Idx row, Idx head,
                           Idx col) {
  Idx parts = a.parts, last = parts - 1;
  Value zero = cF32(b, 0.0), negInf = negInfF32(b);
  SmallVector<Value> merged = forLoop(
      b, cIndex(b, 0), parts, kPartsPerTrip, {negInf, zero, zero},
      [&](IB &lb, Idx first, ValueRange state) {
        Value max = state[0];
        SmallVector<Value> lse, o;
        for (int64_t j = 0; j < kPartsPerTrip; ++j) {
          Idx part = first + j, at = min(lb, part, last);
          lse.push_back(select(lb, part < parts,
                               load(lb, a.lsePart, {at, row, head}), negInf));
          o.push_back(load(lb, a.oPart, {at, row, head, col}));
          max = arith::MaximumFOp::create(lb, max, lse.back());
        }
        // While every part so far is empty (-inf), weigh against 0, not
        // -inf (-inf - -inf is NaN).
        Value allEmpty =
            arith::CmpFOp::create(lb, arith::CmpFPredicate::OEQ, max, negInf);
        Value base = arith::SelectOp::create(lb, allEmpty, zero, max);
        auto weightOf = [&](Value v) {
          return math::Exp2Op::create(lb, arith::SubFOp::create(lb, v, base));
        };
        Value rescale = weightOf(state[0]);
        Value sum = arith::MulFOp::create(lb, state[1], rescale);
        Value acc = arith::MulFOp::create(lb, state[2], rescale);
        for (int64_t j = 0; j < kPartsPerTrip; ++j) {
          Value weight = weightOf(lse[j]);
          sum = arith::AddFOp::create(lb, sum, weight);
          acc = math::FmaOp::create(lb, weight, o[j], acc);
        }
        return SmallVector<Value>{max, sum, acc};
      });
  Value sum = merged[1], acc = merged[2];
  Value empty =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, sum, zero);
  return arith::SelectOp::create(b, empty, zero,
                                 arith::DivFOp::create(b, acc, sum));
}

void attention::emitCombine(KernelEmitter &e, IB &host, const Problem &p,
                            Value oPart, Value lsePart, Value out,
                            Value parts) {
  constexpr int64_t threads = 256;
  Idx tokens = dim(host, out, 0);
  // Nothing to combine with one partial.
  Idx count = tokens * (p.heads * p.headDim);
  count =
      select(host, ugt(host, parts, cIndex(host, 1)), count, cIndex(host, 0));
  CombineArgs args{oPart, lsePart, out, parts, count};
  SmallVector<Value> operands = args.operands();
  auto [kernel, b] =
      e.createKernel(host.getLoc(), "attention_combine",
                     ValueRange(operands).getTypes(), {}, threads);
  BuilderScope scope(b);
  Value status = e.loadStatus(b);
  CombineArgs k = CombineArgs::fromOperands(kernel.getArguments());
  Idx item = blockIdx(b, gpu::Dimension::x) * threads + threadIdx(b);
  ifThen(b, ult(b, item, k.count), [&](IB &b) {
    Idx col = item % p.headDim, rowHead = item / p.headDim;
    Idx head = rowHead % p.heads, row = rowHead / p.heads;
    // The partials are read inside their buffers whatever they hold; after
    // a refusal attention wrote none of them, so nothing is stored.
    Value o = combineColumn(b, k, row, head, col);
    e.skipIfRefused(b, status);
    store(b, fromF32(b, o, p.element), k.out, {row, head, col});
  });
  e.launch(host, kernel,
           {ceilDiv(host, count, threads), cIndex(host, 1), cIndex(host, 1)},
           threads, operands);
}
