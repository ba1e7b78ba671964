//===- AttentionKernels.h - CPU attention tile kernels ----------*- C++ -*-===//
//
// Register-blocked kernels for the two contractions of a flash-attention
// tile, written directly in the vector dialect: rows x columns blocks of f32
// accumulators (6 x 64 with AVX-512, 4 x 16 with AVX2), the row operand
// broadcast from memory, the column operand a contiguous vector of a packed
// panel (keys are transposed and packed once per (sequence, kv head) for
// that); the online-softmax step per row. They need D and the key tile to be
// multiples of 8 (the AVX2 f32 width).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_ATTENTIONKERNELS_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_ATTENTIONKERNELS_H

#include "Builders.h"

#include <array>

namespace mlir::attn::linalg_lowering {

/// Panel `index` (`[a, b]`) of `[n, a, b]` packed panels.
Value panelOf(IB &b, Value panels, Value index);

/// `[C / W, R, W]` panels of the columns of `src [R, C]` f32: each register
/// block then reads one contiguous panel, which the prefetchers follow.
Value packColumns(IB &b, Value src, int64_t width);

/// The tile-local keys `[begin, end)` that rows r0 .. r0 + rowBlock - 1 of a
/// query tile can see (null: all of them).
using BlockKeysFn = function_ref<std::pair<Value, Value>(IB &, Value r0)>;

/// s = q k^T for a [rows, D] q tile and transposed keys packed as
/// `[tile / W, D, W]` panels (W = the register block's width). Column blocks
/// no row of a register block can see are left at 0 (the mask drops them).
Value vectorScores(IB &b, Value q, Value keyPanels, int64_t rows, int64_t tile,
                   int64_t headDim, int64_t rowBlock, BlockKeysFn blockKeys);

/// s = q k^T for few query rows (decode): dot products of each key row, read
/// in place, with every query row; 4 keys per step keep several cache rows in
/// flight. Keys past the sequence are never read (their scores are masked
/// later); a tail step repeats the last key and rewrites the same scores.
Value vectorScoresDot(IB &b, Value q, int64_t rows, int64_t tile,
                      int64_t headDim, Value validKeys,
                      function_ref<Value(IB &, Value c, Value d0,
                                         int64_t width)> keyRow);

/// acc' = alpha * acc + p v for [rows, tile] probabilities and values
/// `[tile, D]` or packed as `[D / W, tile, W]` panels; with `blockKeys`, each
/// register block runs over the keys its rows can see only.
Value vectorAccumulate(IB &b, Value acc, Value alpha, Value probs, Value values,
                       int64_t rows, int64_t tile, int64_t headDim,
                       int64_t rowBlock, int64_t maxWidth,
                       BlockKeysFn blockKeys = nullptr);

/// Online-softmax step per row: masks scores, updates the running max `m`
/// and sum `l`, and returns (p, m', l', alpha). Row `r` sees the tile's keys
/// `[lo, hi)` of `visibleRange(r)` (tile-local, clamped to [0, tile]), so the
/// mask is one i32 compare per lane.
std::array<Value, 4> vectorSoftmaxStep(
    IB &b, Value scores, Value m, Value l, int64_t rows, int64_t tile,
    function_ref<std::pair<Value, Value>(IB &, Value row)> visibleRange);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_ATTENTIONKERNELS_H
