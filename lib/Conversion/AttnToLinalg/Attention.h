//===- Attention.h - flash attention on the CPU -----------------*- C++ -*-===//
//
// What the attention lowering (Attention.cpp) and its two strategies share:
// where the keys and values of a sequence come from, the parameters of an
// attention op, one work item per (sequence, kv head) (GroupedAttention.cpp)
// and the split decode (SplitDecode.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_ATTENTION_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_ATTENTION_H

#include "Builders.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include <functional>
#include <tuple>

namespace mlir::attn::linalg_lowering {

/// Where the keys and values of one sequence come from.
struct KVSource {
  int64_t tileSize;
  /// Emits the `[tileSize, D]` f32 tile `tile` of keys (`kv` = 0) or values
  /// (`kv` = 1) of kv head `kvHead`; rows at or after `kvLen` read as 0.
  std::function<Value(IB &, Value tile, int64_t kv, Value kvHead, Value kvLen)>
      loadTile;
  /// Vector path: values `[tileSize, D]` f32 with rows >= kvLen zeroed.
  std::function<Value(IB &, Value tile, Value kvHead, Value kvLen)> loadValues;
  /// Vector path: `width` f32 values of key (`kv` = 0) or value (1) row `c`
  /// of a tile from column `d0`, read in place; `tileBase` is what
  /// `prepareTile` returned for the tile. Rows past the source are clamped.
  std::function<Value(IB &, Value tile)> prepareTile;
  std::function<Value(IB &, Value tileBase, int64_t kv, Value kvHead, Value c,
                      Value d0, int64_t width)>
      readRow;
};

struct AttentionParams {
  int64_t numHeads, kvHeads, headDim, queryTileRows, vectorLanes;
  MaskAttr mask;
  double scale;
  Type elementType;
};

/// The running state of an online softmax over rows: row max `m`, row sum
/// `l` and the `[rows, D]` f32 accumulator.
struct SoftmaxState {
  Value m, l, acc;
  SmallVector<Value> values() const { return {m, l, acc}; }
};

using SeqBoundsFn =
    function_ref<std::tuple<Value, Value, Value>(IB &, Value seq)>;
using SourceFn = function_ref<KVSource(IB &, Value seq)>;

/// scf.forall over (sequence, kv head) writing each group's rows of `o`.
/// `seqBounds` gives (qStart, qLen, kvLen) of a sequence.
Value buildGroupedAttention(IB &b, const AttentionParams &p, Value query,
                            Value batch, SeqBoundsFn seqBounds,
                            SourceFn sourceFor);

/// True when no sequence has more than one query row.
Value allSequencesDecode(IB &b, Value batch, SeqBoundsFn seqBounds);

/// Decode attention (every sequence has <= 1 query row) as (sequence, key
/// chunk) work items over all kv heads plus a combine step; about
/// `targetItems` items when the keys allow.
Value buildSplitDecode(IB &b, const AttentionParams &p, int64_t tile,
                       int64_t targetItems, Value query, Value batch,
                       SeqBoundsFn seqBounds, SourceFn sourceFor);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_ATTENTION_H
