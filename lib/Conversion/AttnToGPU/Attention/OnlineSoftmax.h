//===- OnlineSoftmax.h - flash-attention softmax in registers ---*- C++ -*-===//
//
// Scores live in f32 accumulator fragments of 16 x 8 tiles (mma.sync
// m16n8k16, and the per-warp rows of wgmma m64nNk16): register 4 n + e of
// a lane holds row `group + 8 (e / 2)`, column `8 n + 2 quad + e % 2`. A row
// belongs to the four lanes of a quad, which share its max and sum through
// shuffles. Scores are in log2 units (scaled by scale * log2 e) for exp2.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_ONLINESOFTMAX_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_ONLINESOFTMAX_H

#include "BlockWork.h"

namespace mlir::attn::gpu_lowering::attention {

/// The keys this lane's two rows see, [rowLo, rowHi), and the keys every
/// row of the block sees, [blockLo, blockHi): key tiles inside those skip
/// the mask.
struct KeyMask {
  std::array<Idx, 2> rowLo, rowHi;
  Idx blockLo, blockHi;
};

/// The mask of the lane's rows `warpRow + group (+ 8)` of the tile.
KeyMask buildKeyMask(IB &b, const Problem &p, const BlockWork &work,
                     const SplitKeys &keys, const WarpLayout &w, Idx warpRow);

/// Scores of keys [keyTile + keyBase, ...) set to -inf where the mask hides
/// the key (only on tiles some row does not fully see).
void maskScores(IB &b, const Problem &p, const KeyMask &mask,
                const WarpLayout &w, Idx keyTile, Idx keyBase,
                MutableArrayRef<Value> scores);

/// The running max `m` and sum `l` of this lane's two rows and their
/// output accumulators `acc` (D / 8 tiles of four registers).
struct SoftmaxState {
  std::array<Value, 2> m, l;
  SmallVector<Value> acc;

  /// No key seen yet.
  static SoftmaxState initial(IB &b, int64_t headDim);
  /// As loop-carried values: m, l, acc.
  SmallVector<Value> values() const;
  static SoftmaxState fromValues(ValueRange values);
};

/// One online-softmax step over a tile of raw scores, in log2 units
/// (c = `p.scale` times log2 e): the row max m (kept while the tile's max
/// exceeds it by at most 8; acc and l then rescaled by
/// alpha = 2^(m_old - m_new)), the sum l, and the scores replaced by
/// P = 2^(c s - m). Run by whole warps (a warp vote).
void onlineSoftmax(IB &b, const Problem &p, SoftmaxState &state,
                   MutableArrayRef<Value> scores);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_ONLINESOFTMAX_H
