//===- WarpMma.h - attention tiles on mma.sync ------------------*- C++ -*-===//
//
// One warp's share of S = Q K^T and O += P V on mma.sync m16n8k16: its 16
// rows of Q as A fragments (in registers up to head dim 128, else loaded
// from shared memory at each use), K (n-major) and V (k-major, loaded
// transposed) as B fragments through ldmatrix from padded shared tiles.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_WARPMMA_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_WARPMMA_H

#include "Problem.h"

namespace mlir::attn::gpu_lowering::attention {

/// The padded [rows][D + 8] shared tiles of the mma.sync kernels: K and V
/// of 64 keys, and the query tile when Q stays in shared memory
/// (`Problem::queryInShared`; else Q is staged through K).
struct MmaTiles {
  Value k, v, q;

  /// Where the query tile is staged.
  Value query() const { return q ? q : k; }
};

/// Dynamic shared memory of the mma.sync kernels for `queryRows`-row query
/// tiles when Q is in shared memory (K, V, Q and the alignment slack), else
/// 0: K and V are static workgroup buffers.
int64_t mmaSharedBytes(const Problem &p, int64_t queryRows);

/// The tiles: the static `workgroup` buffers (K, V), or carved from dynamic
/// shared memory when there are none.
MmaTiles mmaTiles(IB &b, const Problem &p, int64_t queryRows,
                  ValueRange workgroup);

/// Rows [warpRow, warpRow + 16) of the query tile as A fragments (one per
/// 16 columns of D): held in registers for the whole key loop, or loaded
/// from the shared query tile at each use.
struct QueryFragments {
  SmallVector<std::array<Value, 4>> held;
  Value smem;
  std::pair<Idx, Idx> at;

  /// The fragment of columns [16 k, 16 k + 16).
  std::array<Value, 4> get(IB &b, int64_t k) const;
};

/// The warp's query fragments once the block has staged the query tile.
QueryFragments loadQuery(IB &b, const MmaTiles &tiles, const Problem &p,
                         const WarpLayout &w, Idx warpRow);

/// This lane's ldmatrix coordinates of K and V tiles.
struct KVCoordinates {
  std::pair<Idx, Idx> key, value;
  static KVCoordinates of(const WarpLayout &w);
};

/// S [16 x keys] = Q K^T over keys [keyBase, keyBase + keys) of the K tile.
SmallVector<Value> mmaScores(IB &b, const Problem &p, const QueryFragments &q,
                             Value smemK, const KVCoordinates &at, Idx keyBase,
                             int64_t keys);

/// acc [16 x D] += P V over keys [keyBase, keyBase + P's columns) of the V
/// tile; P is in the score fragments' layout.
void mmaAccumulate(IB &b, const Problem &p, ArrayRef<Value> probs, Value smemV,
                   const KVCoordinates &at, Idx keyBase,
                   MutableArrayRef<Value> acc);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_WARPMMA_H
