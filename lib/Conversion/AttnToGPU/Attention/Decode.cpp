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
                            const AttentionKernelArgs &a, Value smemK,
                            Value smemV) {
  constexpr int64_t warpKeys = kKeys / kWarps;
  WarpLayout w = WarpLayout::of(threadIdx(b));
  BlockWork work = findBlockWork(b, p, a, kDecodeRows);
  Idx warpRow = cIndex(b, 0), keyBase = w.warp * warpKeys;
  // Whole blocks leave here, before any barrier.
  ifThen(b, work.firstRow < work.qLen, [&](IB &b) {
    SplitKeys keys = findSplitKeys(b, p, a, work);
    SharedTile tileK{smemK}, tileV{smemV};
    // Q: global -> shared (the K buffer) -> A fragments in registers.
    stageQuery(b, p, a, work, w.thread, kDecodeRows, tileK);
    SmallVector<std::array<Value, 4>> qFrag =
        loadQueryFragments(b, p, smemK, w, warpRow);
    KeyMask mask = buildKeyMask(b, p, work, keys, w, warpRow);
    KVCoordinates at = KVCoordinates::of(w);
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

          // S = Q K^T over this warp's 16 keys, masked; the online
          // softmax: new (m, l), rescaled acc, and P.
          SoftmaxState next = SoftmaxState::fromValues(state);
          SmallVector<Value> s =
              mmaScores(lb, p, qFrag, smemK, at, keyBase, warpKeys);
          scaleAndMask(lb, p, mask, w, kt, keyBase, s);
          onlineSoftmax(lb, next, s);

          waitKVTiles(lb, false); // V[kt] is here; K[kt] is done with
          Idx nextTile = kt + kKeys;
          ifThen(lb, nextTile < keys.hi,
                 [&](IB &sb) { stage(sb, nextTile, KVPart::Key); });

          // O += P V over the same keys.
          mmaAccumulate(lb, p, s, smemV, at, keyBase, next.acc);
          return next.values();
        });

    Idx part = work.split * kWarps + w.warp;
    writeOutput(b, p, a, work, w, warpRow, SoftmaxState::fromValues(carried),
                /*oneSplit=*/Value(), part);
  });
}
