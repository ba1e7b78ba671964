//===- Decode.cpp - decode attention on mma.sync, keys across warps -------===//
//
// Few query rows per sequence: one 16-row tile of (query row, GQA head)
// pairs per block, small enough for four blocks per SM. Its four warps
// split every 64-key tile, 16 keys each (flash-decoding inside the block):
// each warp's output is a partial of its own, merged by the combine kernel.
//
//===----------------------------------------------------------------------===//

#include "BlockWork.h"
#include "Epilogue.h"
#include "KVStaging.h"
#include "OnlineSoftmax.h"
#include "Schedules.h"
#include "WarpMma.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

void attention::buildDecode(IB &b, const Problem &p,
                            const AttentionKernelArgs &a,
                            const MmaTiles &tiles) {
  constexpr int64_t warpKeys = kKeys / kWarps;
  WarpLayout w = WarpLayout::of(threadIdx(b));
  BlockWork work = findBlockWork(b, p, a, kDecodeRows);
  Idx warpRow = cIndex(b, 0), keyBase = w.warp * warpKeys;
  // Whole blocks leave here, before any barrier.
  ifThen(b, work.firstRow < work.qLen, [&](IB &b) {
    SplitKeys keys = findSplitKeys(b, p, a, work);
    SharedTile tileK{tiles.k}, tileV{tiles.v};
    stageQuery(b, p, a, work, w.thread, kDecodeRows, SharedTile{tiles.query()});
    QueryFragments q = loadQuery(b, tiles, p, w, warpRow);
    KeyMask mask = buildKeyMask(b, p, work, keys, w, warpRow);
    KVCoordinates at = KVCoordinates::of(w);

    KVStaging kv{p, a, work, keys, w.thread, tileK, tileV};
    SoftmaxState state = SoftmaxState::initial(b, p.headDim);
    SmallVector<Value> probs;
    SmallVector<Value> last = forEachKeyTile(
        b, kv, state.values(),
        [&](IB &lb, Idx kt, ValueRange carried) {
          // S = Q K^T over this warp's 16 keys, masked; the online
          // softmax: new (m, l), rescaled acc, and P.
          state = SoftmaxState::fromValues(carried);
          probs = mmaScores(lb, p, q, tiles.k, at, keyBase, warpKeys);
          maskScores(lb, p, mask, w, kt, keyBase, probs);
          onlineSoftmax(lb, p, state, probs);
        },
        [&](IB &lb) {
          // O += P V over the same keys.
          mmaAccumulate(lb, p, probs, tiles.v, at, keyBase, state.acc);
          return state.values();
        });

    Idx part = work.split * kWarps + w.warp;
    writeOutput(b, p, a, work, w, warpRow, SoftmaxState::fromValues(last),
                /*oneSplit=*/Value(), part);
  });
}
