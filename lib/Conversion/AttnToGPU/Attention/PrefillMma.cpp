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
                                const AttentionKernelArgs &a, Value smemK,
                                Value smemV) {
  WarpLayout w = WarpLayout::of(threadIdx(b));
  BlockWork work = findBlockWork(b, p, a, kRows);
  Idx warpRow = w.warp * 16, keyBase = cIndex(b, 0);
  // Whole blocks leave here, before any barrier.
  ifThen(b, work.firstRow < work.qLen, [&](IB &b) {
    SplitKeys keys = findSplitKeys(b, p, a, work);
    SharedTile tileK{smemK}, tileV{smemV};
    // Q: global -> shared (the K buffer) -> A fragments in registers.
    stageQuery(b, p, a, work, w.thread, kRows, tileK);
    SmallVector<std::array<Value, 4>> qFrag =
        loadQueryFragments(b, p, smemK, w, warpRow);
    KeyMask mask = buildKeyMask(b, p, work, keys, w, warpRow);
    KVCoordinates at = KVCoordinates::of(w);
    // Warps whose 16 rows are all padding (small GQA groups) skip the math
    // but keep the barriers.
    Idx warpActive = warpRow < keys.rowsHere * p.group;
    auto stage = [&](IB &sb, Idx tile, KVPart part) {
      stageKVTile(sb, p, a, work, keys, w.thread, tile, part,
                  part == KVPart::Key ? tileK : tileV);
    };

    SoftmaxState init = SoftmaxState::initial(b, p.headDim);
    ifThen(b, keys.firstTile < keys.hi,
           [&](IB &sb) { stage(sb, keys.firstTile, KVPart::Key); });
    SmallVector<Value> carried = forLoop(
        b, keys.firstTile, keys.hi, kKeys, init.values(),
        [&](IB &lb, Idx kt, ValueRange state) {
          waitKVTiles(lb, false); // K[kt] is here; V[kt - 64] is done with
          stage(lb, kt, KVPart::Value);

          // S = Q K^T, masked; the online softmax: new (m, l), rescaled
          // acc, and P.
          SmallVector<Value> idle(state);
          idle.append(kKeys / 8 * 4, cF32(lb, 0.0));
          SmallVector<Value> soft = ifElse(lb, warpActive, idle, [&](IB &mb) {
            SoftmaxState next = SoftmaxState::fromValues(state);
            SmallVector<Value> s =
                mmaScores(mb, p, qFrag, smemK, at, keyBase, kKeys);
            scaleAndMask(mb, p, mask, w, kt, keyBase, s);
            onlineSoftmax(mb, next, s);
            SmallVector<Value> out = next.values();
            out.append(s);
            return out;
          });

          waitKVTiles(lb, false); // V[kt] is here; K[kt] is done with
          Idx nextTile = kt + kKeys;
          ifThen(lb, nextTile < keys.hi,
                 [&](IB &sb) { stage(sb, nextTile, KVPart::Key); });

          // O += P V.
          SoftmaxState next = SoftmaxState::fromValues(
              ArrayRef<Value>(soft).drop_back(kKeys / 8 * 4));
          ArrayRef<Value> probs = ArrayRef<Value>(soft).take_back(kKeys / 8 * 4);
          next.acc = ifElse(lb, warpActive, next.acc, [&](IB &mb) {
            SmallVector<Value> acc(next.acc);
            mmaAccumulate(mb, p, probs, smemV, at, keyBase, acc);
            return acc;
          });
          return next.values();
        });

    Value oneSplit = Idx(a.splits) == 1;
    writeOutput(b, p, a, work, w, warpRow,
                SoftmaxState::fromValues(carried), oneSplit, work.split);
  });
}
