//===- ElementwiseKernels.h - pieces of the memory-bound kernels -*- C++
//-*-===//
//
// What the norm, RoPE and cache-store kernels share: one thread or one warp
// per work item, the cache slot that a row of a ragged batch goes to, and
// the warp-wide sum of squares of an RMS norm.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ELEMENTWISEKERNELS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ELEMENTWISEKERNELS_H

#include "KernelArguments.h"

namespace mlir::attn::gpu_lowering::elementwise {

constexpr int64_t kThreads = 256, kWarps = kThreads / 32;

//===----------------------------------------------------------------------===//
// Work items
//===----------------------------------------------------------------------===//

/// A kernel's arguments followed by the item count.
template <typename Args> struct CountedArgs {
  Args args;
  Value count;

  template <typename F> void forEach(F f) {
    args.forEach(f);
    f(count);
  }
};

/// A kernel `name` with one thread per item in `[0, count)`; `body(b, item,
/// args)` sees the item and the kernel's arguments.
template <typename Args, typename Body>
void emitPerItem(KernelEmitter &e, IB &host, StringRef name, Value count,
                 Args args, Body body) {
  CountedArgs<Args> all{args, count};
  auto [kernel, b, k] = createKernel(e, host.getLoc(), name, all, {}, kThreads);
  {
    BuilderScope scope(b);
    const Args &kernelArgs = k.args;
    Idx item = blockIdx(b, gpu::Dimension::x) * kThreads + threadIdx(b);
    ifThen(b, ult(b, item, k.count),
           [&](IB &tb) { body(tb, item, kernelArgs); });
  }
  e.launch(host, kernel,
           {ceilDiv(host, count, kThreads), cIndex(host, 1), cIndex(host, 1)},
           kThreads, argumentList(all));
}

/// This thread's lane and its warp's item (`block x * warps + warp`), for
/// kernels that give each item a whole warp.
struct WarpItem {
  Idx lane, item;

  static WarpItem of(IB &b);
};

/// Launches a kernel with a warp per item on enough blocks for `count`.
void launchWarpPerItem(KernelEmitter &e, IB &host, gpu::GPUFuncOp kernel,
                       Value count, ValueRange args);

//===----------------------------------------------------------------------===//
// Cache slots
//===----------------------------------------------------------------------===//

/// Where row `row` of sequence `seq` (sequenceOfRow) goes in the paged
/// cache: its position `cacheLengths[s] + row - rowOffsets[s]` there, and the
/// page (through `lookup [B, pages]`) and slot in the page of that position.
/// The sequence comes apart: its search reads inside `rowOffsets` whatever
/// the values, so kernels run it before their status guard.
struct CacheSlot {
  Idx seq, pos, page, slot;

  static CacheSlot of(IB &b, Value rowOffsets, Value cacheLengths, Value lookup,
                      int64_t pageSize, Idx row, Idx seq);

  /// The `blocks` indices of element `col` of head `head` of the key (`kv`
  /// 0) or value (1) row.
  SmallVector<Value> at(IB &b, int64_t kv, Value layer, Value head,
                        Value col) const;
};

//===----------------------------------------------------------------------===//
// RMS norm
//===----------------------------------------------------------------------===//

/// The sum of `element(c)^2` over the columns `c < width`, lanes striding
/// by 32 and the warp reducing the partial sums: every lane gets the total.
Value warpSumOfSquares(IB &b, Idx lane, Value width,
                       function_ref<Value(IB &, Idx)> element);

/// `rsqrt(meanSquare + eps)`.
Value rsqrtPlusEps(IB &b, Value meanSquare, double eps);

Value mulF(IB &b, Value x, Value y);

} // namespace mlir::attn::gpu_lowering::elementwise

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ELEMENTWISEKERNELS_H
