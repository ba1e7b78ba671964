//===- KVStaging.cpp - Q, K and V tiles into shared memory ----------------===//

#include "KVStaging.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

SmallVector<Value> SharedTile::index(Idx row, Idx col) const {
  if (swizzled)
    return {swizzled128Index(row, col / 8, kKeys)};
  return {row, col};
}

/// The 16-byte chunks of a [rows x D] tile: chunk `c` is columns
/// [col, col + 8) of row `row`.
static std::pair<Idx, Idx> chunkOf(Idx c, int64_t headDim) {
  int64_t chunksPerRow = headDim / 8;
  return {c / chunksPerRow, c % chunksPerRow * 8};
}

void attention::stageQuery(IB &b, const Problem &p,
                           const AttentionKernelArgs &a, const BlockWork &work,
                           Idx thread, int64_t tileRows,
                           const SharedTile &dst) {
  auto chunkType = VectorType::get({8}, p.element);
  int64_t chunks = tileRows * (p.headDim / 8);
  for (int64_t i = 0; i < (chunks + kThreads - 1) / kThreads; ++i) {
    Idx m, col;
    std::tie(m, col) = chunkOf(thread + i * kThreads, p.headDim);
    auto stage = [&](IB &sb) {
      TileRow row = work.row(m);
      Value v = loadVectorOrZero(
          sb, a.query,
          [&](IB &) {
            return SmallVector<Value>{work.qStart + row.qRow, row.head, col};
          },
          row.valid, chunkType);
      storeVector(sb, v, dst.buffer, dst.index(m, col));
    };
    // A last round the chunks do not fill would write past the tile's rows
    // (unused rows of a K buffer, but past the end of a query tile).
    if ((i + 1) * kThreads <= chunks)
      stage(b);
    else
      ifThen(b, m < tileRows, stage);
  }
}

namespace {
enum class KVPart { Key = 0, Value = 1 };
} // namespace

/// Starts copying keys [tile, tile + 64) of K or V, one cp.async group.
static void stageKVTile(IB &b, const KVStaging &kv, Idx tile, KVPart part) {
  const Problem &p = kv.p;
  const AttentionKernelArgs &a = kv.a;
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Value src = p.paged ? a.blocks : (part == KVPart::Key ? a.key : a.value);
  const SharedTile &dst = part == KVPart::Key ? kv.k : kv.v;
  int64_t chunksPerRow = p.headDim / 8;
  auto [firstRow, firstCol] = chunkOf(kv.thread, p.headDim);
  // Pages of whole key tiles hold the tile's keys in one page. Where the
  // block's threads also cover whole rows, a thread's chunks lie at constant
  // distances from its first one: one index into a flat view of the cache
  // per tile (the 6-D index of `(tile + r) % page` took 9 instructions a
  // chunk, most of the staging's address arithmetic).
  bool tileInOnePage = p.paged && p.pageSize % kKeys == 0;
  bool wholeRows = kThreads % chunksPerRow == 0;
  bool flat = tileInOnePage && wholeRows;
  int64_t rowsPerStep = kThreads / chunksPerRow;
  Idx tilePage;
  if (tileInOnePage)
    tilePage = loadIndex(b, a.lookup, {kv.work.seq, tile / p.pageSize});
  Value flatBlocks;
  Idx firstElement;
  if (flat) {
    flatBlocks = memref::CollapseShapeOp::create(
        b, a.blocks, ArrayRef<ReassociationIndices>{{0, 1, 2, 3, 4, 5}});
    SmallVector<Value> at = {tilePage,
                             cIndex(b, static_cast<int64_t>(part)),
                             a.layer,
                             tile % p.pageSize + firstRow,
                             kv.work.kvHead,
                             firstCol};
    firstElement = cIndex(b, 0);
    for (auto [d, index] : llvm::enumerate(at))
      firstElement = firstElement * dim(b, a.blocks, d) + index;
  }
  // The copies of the tile, one cp.async group; `full`: every key is below
  // hi, so no copy needs its own test.
  auto copyTile = [&](IB &cb, bool full) {
    SmallVector<Value> tokens;
    for (int64_t i = 0; i < kKeys * chunksPerRow / kThreads; ++i) {
      auto [r, col] =
          wholeRows ? std::pair<Idx, Idx>(firstRow + i * rowsPerStep, firstCol)
                    : chunkOf(kv.thread + i * kThreads, p.headDim);
      Idx key = tile + r;
      Value bytes = cIndex(cb, 8);
      Idx safe = key;
      if (!full) {
        // Keys past the range copy 0 bytes from a valid key's address
        // (within the tile's page, every slot is one).
        Idx valid = key < kv.keys.hi;
        safe = select(cb, valid, key, kv.keys.lo);
        bytes = select(cb, valid, cIndex(cb, 8), cIndex(cb, 0));
      }
      Value from = src;
      SmallVector<Value> at;
      if (flat) {
        from = flatBlocks;
        at = {firstElement + i * rowsPerStep * p.kvHeads * p.headDim};
      } else if (p.paged) {
        // (Within the tile's page, every slot is a valid address.)
        Idx slot = tileInOnePage ? key : safe;
        Idx page = tileInOnePage ? tilePage
                                 : loadIndex(cb, a.lookup,
                                             {kv.work.seq, safe / p.pageSize});
        at = {page,
              cIndex(cb, static_cast<int64_t>(part)),
              a.layer,
              slot % p.pageSize,
              kv.work.kvHead,
              col};
      } else {
        at = {kv.keys.kvStart + safe, kv.work.kvHead, col};
      }
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          cb, tokenType, dst.buffer, dst.index(r, col), from, at,
          cb.getIndexAttr(8), bytes, cb.getUnitAttr()));
    }
    nvgpu::DeviceAsyncCreateGroupOp::create(cb, tokenType, tokens);
  };
  // With one index a tile, the tests are most of what is left per copy:
  // tiles whole below hi (all but a block's last) go without them.
  if (flat)
    ifThenElse(
        b, tile + kKeys <= kv.keys.hi,
        [&](IB &fb) { copyTile(fb, /*full=*/true); },
        [&](IB &pb) { copyTile(pb, /*full=*/false); });
  else
    copyTile(b, /*full=*/false);
}

/// Waits for every copy of this thread, then for the whole block.
static void waitKVTiles(IB &b, const KVStaging &kv) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Value group =
      nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange{});
  nvgpu::DeviceAsyncWaitOp::create(b, group, b.getI32IntegerAttr(0));
  if (kv.forTensorCores)
    fenceProxyAsync(b);
  gpu::BarrierOp::create(b);
}

SmallVector<Value> attention::forEachKeyTile(
    IB &b, const KVStaging &kv, ValueRange init,
    function_ref<void(IB &, Idx kt, ValueRange carried)> scores,
    function_ref<SmallVector<Value>(IB &)> accumulate) {
  const SplitKeys &keys = kv.keys;
  ifThen(b, keys.firstTile < keys.hi,
         [&](IB &sb) { stageKVTile(sb, kv, keys.firstTile, KVPart::Key); });
  return forLoop(
      b, keys.firstTile, keys.hi, kKeys, init,
      [&](IB &lb, Idx kt, ValueRange carried) {
        waitKVTiles(lb, kv); // K[kt] is here; every warp is done with V
        stageKVTile(lb, kv, kt, KVPart::Value);
        scores(lb, kt, carried);
        waitKVTiles(lb, kv); // V[kt] is here; every warp is done with K
        Idx next = kt + kKeys;
        ifThen(lb, next < keys.hi,
               [&](IB &sb) { stageKVTile(sb, kv, next, KVPart::Key); });
        return accumulate(lb);
      });
}
