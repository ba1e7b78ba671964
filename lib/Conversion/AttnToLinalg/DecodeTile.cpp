//===- DecodeTile.cpp - the decode tile of grouped attention --------------===//
//
// One query row x a small GQA group: dot products on the cache rows read in
// place (only the sequence's rows), no packing.
//
//===----------------------------------------------------------------------===//

#include "AttentionKernels.h"
#include "QueryTile.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

SoftmaxState linalg_lowering::decodeKeyTileStep(IB &b, const QueryTile &t,
                                                Value kt, Value keyBase,
                                                const SoftmaxState &state) {
  BuilderScope scope(b);
  const KVSource &kv = t.kv;
  int64_t tile = kv.tileSize;
  // Values are copied into an f32 tile: their rows are contiguous there,
  // which the update loop needs.
  Value values = kv.loadValues(b, kt, t.kvHead, t.kvLen);
  Value tileBase = kv.prepareTile(b, kt);
  Idx validKeys =
      clamp(b, Idx(t.kvLen) - keyBase, cIndex(b, 0), cIndex(b, tile));
  Value scores = vectorScoresDot(
      b, t.q, t.rows, tile, t.params.headDim, validKeys,
      [&](IB &g, Value c, Value d0, int64_t width) {
        return kv.readRow(g, tileBase, 0, t.kvHead, c, d0, width);
      });
  return vectorSoftmaxUpdate(b, t, scores, values, keyBase, state,
                             /*blocked=*/false);
}
