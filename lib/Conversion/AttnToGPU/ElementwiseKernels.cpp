//===- ElementwiseKernels.cpp - pieces of the memory-bound kernels --------===//

#include "ElementwiseKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::elementwise;

WarpItem WarpItem::of(IB &b) {
  BuilderScope scope(b);
  Idx thread = threadIdx(b);
  Idx lane = thread % 32;
  return {lane, blockIdx(b, gpu::Dimension::x) * kWarps + thread / 32};
}

void elementwise::launchWarpPerItem(KernelEmitter &e, IB &host,
                                    gpu::GPUFuncOp kernel, Value count,
                                    ValueRange args) {
  e.launch(host, kernel,
           {ceilDiv(host, count, kWarps), cIndex(host, 1), cIndex(host, 1)},
           kThreads, args);
}

CacheSlot CacheSlot::of(IB &b, Value rowOffsets, Value cacheLengths,
                        Value lookup, int64_t pageSize, Idx row, Idx seq) {
  BuilderScope scope(b);
  CacheSlot c;
  c.seq = seq;
  c.pos = loadIndex(b, cacheLengths, c.seq) +
          (row - loadIndex(b, rowOffsets, c.seq));
  c.page = loadIndex(b, lookup, {c.seq, c.pos / pageSize});
  c.slot = c.pos % pageSize;
  return c;
}

SmallVector<Value> CacheSlot::at(IB &b, int64_t kv, Value layer, Value head,
                                 Value col) const {
  return {page, cIndex(b, kv), layer, slot, head, col};
}

Value elementwise::warpSumOfSquares(IB &b, Idx lane, Value width,
                                    function_ref<Value(IB &, Idx)> element) {
  Value total = forLoop(
      b, lane, width, 32, {cF32(b, 0.0)}, [&](IB &lb, Idx c, ValueRange sum) {
        Value x = element(lb, c);
        return SmallVector<Value>{math::FmaOp::create(lb, x, x, sum[0])};
      })[0];
  for (int64_t mask = 16; mask >= 1; mask /= 2)
    total = arith::AddFOp::create(b, total, shuffleXor(b, total, mask));
  return total;
}

Value elementwise::rsqrtPlusEps(IB &b, Value meanSquare, double eps) {
  return math::RsqrtOp::create(
      b, arith::AddFOp::create(b, meanSquare, cF32(b, eps)));
}

Value elementwise::mulF(IB &b, Value x, Value y) {
  return arith::MulFOp::create(b, x, y);
}
