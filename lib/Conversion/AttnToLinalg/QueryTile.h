//===- QueryTile.h - one query tile of grouped attention --------*- C++ -*-===//
//
// What the three key-tile steps of grouped attention share: the query tile
// (query rows x the GQA group of one kv head) and the keys each of its rows
// can see. The steps are the prefill tile (packed key / value panels,
// PrefillTile.cpp), the decode tile (cache rows read in place,
// DecodeTile.cpp) and the linalg fallback (GenericAttention.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_QUERYTILE_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_QUERYTILE_H

#include "Attention.h"

namespace mlir::attn::linalg_lowering {

/// One query tile: `rows` rows, row r being query row r / G of head
/// kvHead * G + r % G (rows past the valid ones repeat the last query).
struct QueryTile {
  const AttentionParams &params;
  const KVSource &kv;
  Value kvHead, kvLen;
  /// The position of the tile's first query row.
  Value firstPos;
  /// The `[rows, D]` f32 queries, scaled by `qScale` (scale * log2 e for
  /// exp2 in the linalg fallback).
  Value q, qScale;
  Value negInf;
  int64_t group, rows;
  /// The register block: rows x columns f32 accumulators.
  int64_t rowBlock, blockColumns;

  bool causal() const { return params.mask.getKind() != MaskKind::None; }
  bool windowed() const {
    return params.mask.getKind() == MaskKind::SlidingWindow;
  }
  /// The keys `[begin, end)` of the key tile at `keyBase` that row `row`
  /// sees, tile-local and clamped to [0, tile].
  std::pair<Value, Value> visibleKeys(IB &b, Value row, Value keyBase) const;
  /// The union of the visible keys of rows r0 .. r0 + rowBlock - 1
  /// (positions grow with the row).
  std::pair<Value, Value> blockKeys(IB &b, Value r0, Value keyBase) const;
};

/// The online-softmax update of the vector tiles on the scores of the key
/// tile at `keyBase` and its `values` (`[tile, D]` or packed panels); with
/// `blocked`, each register block runs over the keys its rows can see only.
SoftmaxState vectorSoftmaxUpdate(IB &b, const QueryTile &t, Value scores,
                                 Value values, Value keyBase,
                                 const SoftmaxState &state, bool blocked);

/// The key and value tiles of a (sequence, kv head) packed once for all its
/// query tiles (`[n, tile / W, D, W]` and `[n, D / W, tile, W]`) and the
/// index of the first (tiles before a sliding window's reach are skipped).
struct PackedTiles {
  Value keysT, values, first;
};

/// Packs the key tiles that any query row at `posBase` and after can see.
PackedTiles packVisibleTiles(IB &b, const QueryTile &t, Value posBase);

/// One online-softmax step of a prefill tile over key tile `kt` (at
/// `keyBase`) on packed panels: those of `packed`, or, when it is null,
/// panels packed here.
SoftmaxState prefillKeyTileStep(IB &b, const QueryTile &t,
                                const PackedTiles *packed, Value kt,
                                Value keyBase, const SoftmaxState &state);

/// One online-softmax step of a decode tile (one query row, a small GQA
/// group) over key tile `kt`, reading the cache rows in place.
SoftmaxState decodeKeyTileStep(IB &b, const QueryTile &t, Value kt,
                               Value keyBase, const SoftmaxState &state);

/// The linalg fallback (D or the key tile not a multiple of 8): the scaled
/// query tile and one online-softmax step with exp2.
Value genericQueryTile(IB &b, const QueryTile &t, Value query, Value init,
                       function_ref<std::pair<Value, Value>(IB &, Value row)>
                           queryRow);
SoftmaxState genericKeyTileStep(IB &b, const QueryTile &t, Value kt,
                                Value keyBase, const SoftmaxState &state);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_QUERYTILE_H
