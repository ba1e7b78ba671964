//===- BlockWork.cpp - the query tile and keys of a block -----------------===//

#include "BlockWork.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

TileRow BlockWork::row(Idx m) const {
  TileRow r;
  r.qRow = firstRow + m / group;
  r.head = kvHead * group + m % group;
  r.valid = (m < queryRows * group) & (r.qRow < qLen);
  return r;
}

BlockWork attention::findBlockWork(IB &b, const Problem &p,
                                   const AttentionKernelArgs &a,
                                   int64_t tileRows) {
  BlockWork w;
  w.group = p.group;
  w.queryRows = tileRows / p.group;
  w.split = blockIdx(b, gpu::Dimension::z);
  // Blocks start in x order; x runs over (tile, KV head) with the head
  // fastest and the tiles counted from the end: a causal tile late in its
  // sequence sees the most keys, so the heaviest tiles of every head start
  // first and the last wave is light (longest processing time first; with
  // the heads in y, the last head's heaviest tiles started near the end
  // and ran past the others: 3% of the kernel at 8192 tokens). The floor
  // division leaves out the index checks' block after the tiles.
  Idx block = blockIdx(b, gpu::Dimension::x);
  Idx tiles = gridDim(b, gpu::Dimension::x) / p.kvHeads;
  w.kvHead = block % p.kvHeads;
  // The grid has at most T / rows + B tiles, not B x the longest
  // sequence's tiles: walk the sequences to the work-th.
  Idx work = tiles - 1 - block / p.kvHeads;
  Idx batch = dim(b, a.qRowOffsets, 0) - 1;
  Idx zero = cIndex(b, 0);
  SmallVector<Value> walk =
      forLoop(b, zero, batch, 1, {zero, batch, zero},
              [&](IB &lb, Idx seq, ValueRange state) {
                Idx tilesBefore = state[0];
                Idx len = loadIndex(lb, a.qRowOffsets, {seq + 1}) -
                          loadIndex(lb, a.qRowOffsets, {seq});
                Idx next = tilesBefore + ceilDiv(lb, len, w.queryRows);
                Idx here = (work >= tilesBefore) & (work < next);
                return SmallVector<Value>{
                    next, select(lb, here, seq, state[1]),
                    select(lb, here, work - tilesBefore, state[2])};
              });
  Idx found = Idx(walk[1]) < batch;
  w.seq = select(b, found, walk[1], cIndex(b, 0));
  w.qStart = loadIndex(b, a.qRowOffsets, {w.seq});
  // The walk reads inside qRowOffsets whatever its values; a block of a
  // refused call leaves after it, its status load hidden behind the walk's.
  if (a.status)
    found = found & (Idx(a.status) == 0);
  w.qLen = select(b, found, loadIndex(b, a.qRowOffsets, {w.seq + 1}) - w.qStart,
                  cIndex(b, 0));
  w.firstRow = Idx(walk[2]) * w.queryRows;
  return w;
}

SplitKeys attention::findSplitKeys(IB &b, const Problem &p,
                                   const AttentionKernelArgs &a,
                                   const BlockWork &work) {
  SplitKeys k;
  Idx kvLen;
  if (p.paged) {
    kvLen = loadIndex(b, a.cacheLengths, {work.seq}) + work.qLen;
  } else {
    k.kvStart = loadIndex(b, a.kvRowOffsets, {work.seq});
    kvLen = loadIndex(b, a.kvRowOffsets, {work.seq + 1}) - k.kvStart;
  }
  k.posBase = kvLen - work.qLen;
  k.rowsHere = min(b, cIndex(b, work.queryRows), work.qLen - work.firstRow);
  // The keys some row of the tile sees.
  Idx hi = kvLen, lo = cIndex(b, 0);
  if (p.causal)
    hi = min(b, kvLen, k.posBase + (work.firstRow + k.rowsHere));
  if (p.window)
    lo = max(b, lo, k.posBase + (work.firstRow + (1 - *p.window)));
  // This split's share of them, in whole tiles.
  Idx chunk = ceilDiv(b, max(b, hi - lo, cIndex(b, 0)), Value(a.splits));
  chunk = ceilDiv(b, chunk, kKeys) * kKeys;
  k.lo = lo + work.split * chunk;
  k.hi = min(b, hi, k.lo + chunk);
  k.firstTile = k.lo / kKeys * kKeys;
  return k;
}
