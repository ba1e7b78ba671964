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

enum class KVPart { Key = 0, Value = 1 };

/// Starts copying keys [tile, tile + 64) of K or V into `dst`, one cp.async
/// group.
void stageKVTile(IB &b, const Problem &p, const AttentionKernelArgs &a,
                 const BlockWork &work, const SplitKeys &keys, Idx thread,
                 Idx tile, KVPart part, const SharedTile &dst);

/// Waits for every copy of this thread, then for the whole block; with
/// `forTensorCores` the tiles are then visible to wgmma.
void waitKVTiles(IB &b, bool forTensorCores);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_KVSTAGING_H
