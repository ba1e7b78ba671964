//===- BlockWork.h - the query tile and keys of a block ---------*- C++ -*-===//
//
// Block (x, y, z) of an attention kernel handles query tile x of the batch
// (the x-th (sequence, tile) pair, found by walking the row offsets), kv
// head y, and key split z: the z-th share, in whole key tiles, of the keys
// the tile's rows see.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_BLOCKWORK_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_BLOCKWORK_H

#include "Problem.h"

namespace mlir::attn::gpu_lowering::attention {

/// Where tile row m comes from: a (query row, GQA head) pair. Padding rows
/// (past the tile's rows or the sequence) are not `valid`.
struct TileRow {
  Idx qRow, head, valid;
};

/// The query tile, kv head and key split of this block.
struct BlockWork {
  Idx kvHead, split;
  /// The sequence, its first row in the batch and its row count (0 for a
  /// block past the last tile).
  Idx seq, qStart, qLen;
  /// The tile's first query row within the sequence.
  Idx firstRow;
  /// Query rows of a tile (its tile rows / the GQA group).
  int64_t queryRows;
  int64_t group;

  TileRow row(Idx m) const;
};

/// This block's work; a tile has `tileRows` (query row, head) rows.
BlockWork findBlockWork(IB &b, const Problem &p, const AttentionKernelArgs &a,
                        int64_t tileRows);

/// The keys the block's split visits. Query row i sits at key position
/// posBase + i; keys are at 0 .. kvLen - 1.
struct SplitKeys {
  /// Explicit K/V: the sequence's first key row.
  Idx kvStart;
  Idx posBase;
  /// Query rows in this tile.
  Idx rowsHere;
  /// The split's keys [lo, hi), and lo rounded down to a key tile.
  Idx lo, hi, firstTile;
};

SplitKeys findSplitKeys(IB &b, const Problem &p, const AttentionKernelArgs &a,
                        const BlockWork &work);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_BLOCKWORK_H
