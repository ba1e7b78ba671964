//===- WarpMma.h - attention tiles on mma.sync ------------------*- C++ -*-===//
//
// One warp's share of S = Q K^T and O += P V on mma.sync m16n8k16: its 16
// rows of Q as A fragments in registers, K (n-major) and V (k-major, loaded
// transposed) as B fragments through ldmatrix from padded shared tiles.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_WARPMMA_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_WARPMMA_H

#include "Problem.h"

namespace mlir::attn::gpu_lowering::attention {

/// The A fragments (one per 16 columns of D) of rows [warpRow, warpRow +
/// 16) of the query tile in `smemQ`.
SmallVector<std::array<Value, 4>> loadQueryFragments(IB &b, const Problem &p,
                                                     Value smemQ,
                                                     const WarpLayout &w,
                                                     Idx warpRow);

/// This lane's ldmatrix coordinates of K and V tiles.
struct KVCoordinates {
  std::pair<Idx, Idx> key, value;
  static KVCoordinates of(const WarpLayout &w);
};

/// S [16 x keys] = Q K^T over keys [keyBase, keyBase + keys) of the K tile.
SmallVector<Value> mmaScores(IB &b, const Problem &p,
                             ArrayRef<std::array<Value, 4>> qFrag, Value smemK,
                             const KVCoordinates &at, Idx keyBase,
                             int64_t keys);

/// acc [16 x D] += P V over keys [keyBase, keyBase + P's columns) of the V
/// tile; P is in the score fragments' layout.
void mmaAccumulate(IB &b, const Problem &p, ArrayRef<Value> probs, Value smemV,
                   const KVCoordinates &at, Idx keyBase,
                   MutableArrayRef<Value> acc);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_WARPMMA_H
