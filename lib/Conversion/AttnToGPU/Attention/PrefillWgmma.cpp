//===- PrefillWgmma.cpp - prefill attention on Hopper's wgmma -------------===//
//
// FlashAttention-3 style: a warpgroup (four warps) per 64-row query tile.
// Q, K, V and P live in 128-byte-swizzled tiles of dynamic shared memory
// (64 rows of 128 bytes per 64-column block, 1024-byte aligned: the
// swizzle is absolute), which the tensor cores read through descriptors.
// S = Q K^T and O += P V run on wgmma; the softmax runs on each warp's 16
// rows of the accumulators, in the mma.sync fragment layout.
//
//===----------------------------------------------------------------------===//

#include "BlockWork.h"
#include "Epilogue.h"
#include "KVStaging.h"
#include "OnlineSoftmax.h"
#include "Schedules.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

bool attention::prefillUsesWgmma(const KernelOptions &opts, const Problem &p) {
  return opts.wgmma &&
         (p.headDim == 64 || p.headDim == 128 || p.headDim == 256);
}

/// Bytes of a 64-row Q, K or V tile.
static int64_t tileBytes(const Problem &p) { return kRows * p.headDim * 2; }

int64_t attention::wgmmaSharedBytes(const Problem &p) {
  return 3 * tileBytes(p) + kRows * kKeys * 2 + 1024;
}

namespace {
/// The swizzled tiles: 1-D element views and their shared-window byte
/// addresses (i64).
struct WgmmaTiles {
  SharedTile q, k, v;
  Value p;
  Value qAddr, kAddr, vAddr, pAddr;
};
} // namespace

static WgmmaTiles carveTiles(IB &b, const Problem &p) {
  AlignedSharedMemory smem = AlignedSharedMemory::get(b);
  auto view = [&](int64_t offset, int64_t elements) -> Value {
    return smem.view(b, p.element, elements, offset);
  };
  auto addressOf = [&](Value view) -> Value {
    Value index = memref::ExtractAlignedPointerAsIndexOp::create(b, view);
    return indexCast(b, index, b.getI64Type());
  };
  WgmmaTiles t;
  int64_t bytes = tileBytes(p);
  t.q = {view(0, kRows * p.headDim), /*swizzled=*/true};
  t.k = {view(bytes, kKeys * p.headDim), /*swizzled=*/true};
  t.v = {view(2 * bytes, kKeys * p.headDim), /*swizzled=*/true};
  t.p = view(3 * bytes, kRows * kKeys);
  t.qAddr = addressOf(t.q.buffer);
  t.kAddr = addressOf(t.k.buffer);
  t.vAddr = addressOf(t.v.buffer);
  t.pAddr = addressOf(t.p);
  return t;
}

/// S [64 x 64] = Q K^T: both K-major; k16 steps are 32 bytes along a
/// swizzled row, 8 KB between 64-column blocks.
static SmallVector<Value> wgmmaScores(IB &b, const Problem &p,
                                      const WgmmaTiles &t) {
  SmallVector<Value> s(kKeys / 8 * 4, cF32(b, 0.0));
  SmallVector<std::pair<Value, Value>> steps;
  for (int64_t k = 0; k < p.headDim / 16; ++k) {
    int64_t offset = (k / 4) * kRows * 128 + (k % 4) * 32;
    steps.push_back({WgmmaDescriptor{t.qAddr, offset}.build(b),
                     WgmmaDescriptor{t.kAddr, offset}.build(b)});
  }
  wgmma(b, p.element, steps, kKeys, /*transposeB=*/false, s);
  return s;
}

/// O [64 x D] += P V: P K-major; V is [keys x D], MN-major (the transposed
/// B): 16 keys = 2 KB per step, 8 KB between 64-column blocks of D.
static void wgmmaAccumulate(IB &b, const Problem &p, const WgmmaTiles &t,
                            MutableArrayRef<Value> acc) {
  SmallVector<std::pair<Value, Value>> steps;
  for (int64_t k = 0; k < kKeys / 16; ++k)
    steps.push_back(
        {WgmmaDescriptor{t.pAddr, k * 32}.build(b),
         WgmmaDescriptor{t.vAddr, k * 16 * 128, kKeys * 128}.build(b)});
  wgmma(b, p.element, steps, p.headDim, /*transposeB=*/true, acc);
}

/// The warp's rows of P, rounded to the element type, into the P tile.
static void storeProbs(IB &b, const Problem &p, const WgmmaTiles &t,
                       const WarpLayout &w, Idx warpRow,
                       ArrayRef<Value> probs) {
  for (int64_t n = 0; n < static_cast<int64_t>(probs.size()) / 4; ++n) {
    for (int64_t h = 0; h < 2; ++h) {
      Idx row = warpRow + m16n8k16::accRow(w, 2 * h);
      Idx index = swizzled128Index(row, cIndex(b, n), kRows) + w.quad * 2;
      Value pair = vector::FromElementsOp::create(
          b, VectorType::get({2}, b.getF32Type()),
          ValueRange{probs[n * 4 + 2 * h], probs[n * 4 + 2 * h + 1]});
      pair = arith::TruncFOp::create(b, VectorType::get({2}, p.element), pair);
      vector::StoreOp::create(b, pair, t.p, ValueRange{index});
    }
  }
}

void attention::buildPrefillWgmma(IB &b, const Problem &p,
                                  const AttentionKernelArgs &a) {
  WgmmaTiles tiles = carveTiles(b, p);
  WarpLayout w = WarpLayout::of(threadIdx(b));
  BlockWork work = findBlockWork(b, p, a, kRows);
  Idx warpRow = w.warp * 16, keyBase = cIndex(b, 0);
  // Whole blocks leave here, before any barrier.
  ifThen(b, work.firstRow < work.qLen, [&](IB &b) {
    SplitKeys keys = findSplitKeys(b, p, a, work);
    // Q stays in shared memory, read by the tensor cores.
    stageQuery(b, p, a, work, w.thread, kRows, tiles.q);
    fenceProxyAsync(b);
    gpu::BarrierOp::create(b);
    KeyMask mask = buildKeyMask(b, p, work, keys, w, warpRow);

    KVStaging kv{p,
                 a,
                 work,
                 keys,
                 w.thread,
                 tiles.k,
                 tiles.v,
                 /*forTensorCores=*/true};
    SoftmaxState state = SoftmaxState::initial(b, p.headDim);
    SmallVector<Value> last = forEachKeyTile(
        b, kv, state.values(),
        [&](IB &lb, Idx kt, ValueRange carried) {
          // S = Q K^T, masked; the online softmax: new (m, l), rescaled
          // acc, and P into shared memory.
          state = SoftmaxState::fromValues(carried);
          SmallVector<Value> s = wgmmaScores(lb, p, tiles);
          maskScores(lb, p, mask, w, kt, keyBase, s);
          onlineSoftmax(lb, p, state, s);
          storeProbs(lb, p, tiles, w, warpRow, s);
        },
        [&](IB &lb) {
          // O += P V.
          wgmmaAccumulate(lb, p, tiles, state.acc);
          return state.values();
        });

    Value oneSplit = Idx(a.splits) == 1;
    writeOutput(b, p, a, work, w, warpRow, SoftmaxState::fromValues(last),
                oneSplit, work.split);
  });
}
