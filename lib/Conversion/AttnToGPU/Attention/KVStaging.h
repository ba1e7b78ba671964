//===- KVStaging.h - Q, K and V tiles into shared memory --------*- C++ -*-===//
//
// The query rows of a tile are loaded once (zeros for padding rows); K and
// V tiles of 64 keys arrive by cp.async, one group per tile, zero-filled
// past the split's keys (0 * garbage would be NaN), from the explicit K/V
// or through the paged cache's lookup table.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_KVSTAGING_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_KVSTAGING_H

#include "BlockWork.h"

namespace mlir::attn::gpu_lowering::attention {

/// A 64-row tile of D-element rows in shared memory: rows padded to D + 8
/// elements for ldmatrix ([64][D + 8]), or 128-byte swizzled for wgmma (a
/// 1-D view).
struct SharedTile {
  Value buffer;
  bool swizzled = false;

  /// The indices of element `col` (a multiple of 8) of row `row`.
  SmallVector<Value> index(Idx row, Idx col) const;
};

/// The tile's query rows into `dst`, `tileRows` (query row, head) rows
/// spread over the block's threads.
void stageQuery(IB &b, const Problem &p, const AttentionKernelArgs &a,
                const BlockWork &work, Idx thread, int64_t tileRows,
                const SharedTile &dst);

/// Where a block's K and V tiles come from and go to.
struct KVStaging {
  const Problem &p;
  const AttentionKernelArgs &a;
  const BlockWork &work;
  const SplitKeys &keys;
  Idx thread;
  SharedTile k, v;
  /// The tiles are read by wgmma (through the async proxy).
  bool forTensorCores = false;
};

/// FlashAttention's loop over the split's key tiles [kt, kt + 64), carrying
/// `init`, with the K and V tiles arriving by cp.async interleaved with the
/// math: V[kt] loads while `scores` (S = Q K^T and the softmax) runs, K[kt +
/// 64] while `accumulate` (O += P V) runs; `accumulate` returns the values
/// carried to the next tile. Returns the loop's results.
SmallVector<Value>
forEachKeyTile(IB &b, const KVStaging &kv, ValueRange init,
               function_ref<void(IB &, Idx kt, ValueRange carried)> scores,
               function_ref<SmallVector<Value>(IB &)> accumulate);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_KVSTAGING_H
