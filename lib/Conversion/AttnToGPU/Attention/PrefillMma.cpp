//===- PrefillMma.cpp - prefill attention on mma.sync ---------------------===//
//
// FlashAttention-2: a block per (64-row query tile, kv head, key split),
// four warps of 16 rows each. Per 64-key tile: K arrives by cp.async while
// the previous O += P V runs, V while S = Q K^T runs.
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

void attention::buildPrefillMma(IB &b, const Problem &p,
                                const AttentionKernelArgs &a,
                                const MmaTiles &tiles) {
  WarpLayout w = WarpLayout::of(threadIdx(b));
  BlockWork work = findBlockWork(b, p, a, kRows);
  Idx warpRow = w.warp * 16, keyBase = cIndex(b, 0);
  // Whole blocks leave here, before any barrier.
  ifThen(b, work.firstRow < work.qLen, [&](IB &b) {
    SplitKeys keys = findSplitKeys(b, p, a, work);
    SharedTile tileK{tiles.k}, tileV{tiles.v};
    stageQuery(b, p, a, work, w.thread, kRows, SharedTile{tiles.query()});
    QueryFragments q = loadQuery(b, tiles, p, w, warpRow);
    KeyMask mask = buildKeyMask(b, p, work, keys, w, warpRow);
    KVCoordinates at = KVCoordinates::of(w);
    // Warps whose 16 rows are all padding (small GQA groups) skip the math
    // but keep the barriers. Not with Q in shared memory: there the branch,
    // yielding the 128 accumulators and the scores, costs registers (a spill
    // at D 256), and padding rows compute on zeros harmlessly.
    Idx warpActive = p.queryInShared() ? Idx(cBool(b, true))
                                       : warpRow < keys.rowsHere * p.group;

    KVStaging kv{p, a, work, keys, w.thread, tileK, tileV};
    SoftmaxState state = SoftmaxState::initial(b, p.headDim);
    const int64_t probCount = kKeys / 8 * 4;
    SmallVector<Value> probs;
    SmallVector<Value> last = forEachKeyTile(
        b, kv, state.values(),
        [&](IB &lb, Idx kt, ValueRange carried) {
          // S = Q K^T, masked; the online softmax: new (m, l), rescaled
          // acc, and P.
          SmallVector<Value> idle(carried);
          idle.append(probCount, cF32(lb, 0.0));
          SmallVector<Value> soft = ifElse(lb, warpActive, idle, [&](IB &mb) {
            SoftmaxState next = SoftmaxState::fromValues(carried);
            SmallVector<Value> s =
                mmaScores(mb, p, q, tiles.k, at, keyBase, kKeys);
            maskScores(mb, p, mask, w, kt, keyBase, s);
            onlineSoftmax(mb, p, next, s);
            SmallVector<Value> out = next.values();
            out.append(s);
            return out;
          });
          state =
              SoftmaxState::fromValues(ValueRange(soft).drop_back(probCount));
          probs.assign(soft.end() - probCount, soft.end());
        },
        [&](IB &lb) {
          // O += P V.
          state.acc = ifElse(lb, warpActive, state.acc, [&](IB &mb) {
            SmallVector<Value> acc(state.acc);
            mmaAccumulate(mb, p, probs, tiles.v, at, keyBase, acc);
            return acc;
          });
          return state.values();
        });

    Value oneSplit = Idx(a.splits) == 1;
    writeOutput(b, p, a, work, w, warpRow, SoftmaxState::fromValues(last),
                oneSplit, work.split);
  });
}
