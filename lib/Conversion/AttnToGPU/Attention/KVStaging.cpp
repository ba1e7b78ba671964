//===- KVStaging.cpp - Q, K and V tiles into shared memory ----------------===//

#include "KVStaging.h"

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
  // (Chunks past the tile's rows land in unused rows of the buffer.)
  int64_t chunks = tileRows * (p.headDim / 8);
  for (int64_t i = 0; i < (chunks + kThreads - 1) / kThreads; ++i) {
    Idx m, col;
    std::tie(m, col) = chunkOf(thread + i * kThreads, p.headDim);
    TileRow row = work.row(m);
    Value v = loadVectorOrZero(
        b, a.query,
        [&](IB &) {
          return SmallVector<Value>{work.qStart + row.qRow, row.head, col};
        },
        row.valid, chunkType);
    storeVector(b, v, dst.buffer, dst.index(m, col));
  }
}

void attention::stageKVTile(IB &b, const Problem &p,
                            const AttentionKernelArgs &a, const BlockWork &work,
                            const SplitKeys &keys, Idx thread, Idx tile,
                            KVPart part, const SharedTile &dst) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Value src = p.paged ? a.blocks : (part == KVPart::Key ? a.key : a.value);
  SmallVector<Value> tokens;
  for (int64_t i = 0; i < kKeys * (p.headDim / 8) / kThreads; ++i) {
    auto [r, col] = chunkOf(thread + i * kThreads, p.headDim);
    Idx key = tile + r;
    Idx valid = key < keys.hi;
    // Keys past the range copy 0 bytes from a valid key's address.
    Idx safe = select(b, valid, key, keys.lo);
    Value bytes = select(b, valid, cIndex(b, 8), cIndex(b, 0));
    SmallVector<Value> at;
    if (p.paged) {
      Idx page = loadIndex(b, a.lookup, {work.seq, safe / p.pageSize});
      at = {page, cIndex(b, static_cast<int64_t>(part)), cIndex(b, p.layer),
            safe % p.pageSize, work.kvHead, col};
    } else {
      at = {keys.kvStart + safe, work.kvHead, col};
    }
    tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
        b, tokenType, dst.buffer, dst.index(r, col), src, at,
        b.getIndexAttr(8), bytes, b.getUnitAttr()));
  }
  nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, tokens);
}

void attention::waitKVTiles(IB &b, bool forTensorCores) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Value group =
      nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange{});
  nvgpu::DeviceAsyncWaitOp::create(b, group, b.getI32IntegerAttr(0));
  if (forTensorCores)
    fenceProxyAsync(b);
  gpu::BarrierOp::create(b);
}
