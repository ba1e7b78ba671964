//===- Combine.cpp - merge the key splits' partial outputs ----------------===//
//
// Flash-decoding's second step: a thread per (row, head, column) weighs
// each split's normalised partial by its share 2^(lse - max lse) of the
// softmax sum.
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

/// The merged output of (row, head, col).
static Value combineColumn(IB &b, const CombineArgs &a, Idx row, Idx head,
                           Idx col) {
  Value mx = forLoop(b, cIndex(b, 0), a.parts, 1, {negInfF32(b)},
                     [&](IB &lb, Idx part, ValueRange max) {
                       Value lse = load(lb, a.lsePart, {part, row, head});
                       return SmallVector<Value>{
                           arith::MaximumFOp::create(lb, max[0], lse)};
                     })[0];
  Value isInf =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx, negInfF32(b));
  Value base = arith::SelectOp::create(b, isInf, cF32(b, 0.0), mx);
  SmallVector<Value> sums = forLoop(
      b, cIndex(b, 0), a.parts, 1, {cF32(b, 0.0), cF32(b, 0.0)},
      [&](IB &lb, Idx part, ValueRange acc) {
        Value lse = load(lb, a.lsePart, {part, row, head});
        Value weight =
            math::Exp2Op::create(lb, arith::SubFOp::create(lb, lse, base));
        Value o = load(lb, a.oPart, {part, row, head, col});
        return SmallVector<Value>{arith::AddFOp::create(lb, acc[0], weight),
                                  math::FmaOp::create(lb, weight, o, acc[1])};
      });
  Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, sums[0],
                                      cF32(b, 0.0));
  return arith::SelectOp::create(b, empty, cF32(b, 0.0),
                                 arith::DivFOp::create(b, sums[1], sums[0]));
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
