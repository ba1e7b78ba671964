//===- CacheStoreKernels.cpp - K and V rows into the paged cache ----------===//
//
// attn.kv_cache_store: one thread per 16-byte chunk of a key / value row.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseKernels.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::elementwise;

namespace {
struct CacheStoreArgs {
  Value key, value, rowOffsets, cacheLengths, lookup, blocks, layer;

  template <typename F> void forEach(F f) {
    f(key), f(value), f(rowOffsets), f(cacheLengths), f(lookup), f(blocks);
    f(layer);
  }
};
} // namespace

void gpu_lowering::emitKVCacheStore(KernelEmitter &e, IB &host, Value key,
                                    Value value, Value rowOffsets,
                                    Value cacheLengths, Value lookup,
                                    Value blocks, Value layer) {
  BuilderScope scope(host);
  auto type = cast<MemRefType>(key.getType());
  int64_t heads = type.getDimSize(1), headDim = type.getDimSize(2);
  int64_t pageSize = cast<MemRefType>(blocks.getType()).getDimSize(3);
  // 16-byte chunks when rows allow it, else single elements (f32 caches
  // move 32-byte chunks, still aligned to their size).
  int64_t width = headDim % 8 == 0 ? 8 : 1, chunks = headDim / width;
  auto vecType = VectorType::get({width}, type.getElementType());
  llvm::MaybeAlign align(width * type.getElementTypeBitWidth() / 8);
  if (width > 1)
    e.requireAligned({key, value, blocks});
  Idx count = dim(host, key, 0) * (heads * chunks);
  CacheStoreArgs args{key,    value,  rowOffsets, cacheLengths,
                      lookup, blocks, layer};
  emitPerItem(e, host, "kv_cache_store", count, args,
              [&](IB &b, Idx item, const CacheStoreArgs &k) {
                Value status = e.loadStatus(b);
                Idx col = item % chunks * width, rowHead = item / chunks;
                Idx head = rowHead % heads, row = rowHead / heads;
                Idx seq = sequenceOfRow(b, k.rowOffsets, row);
                e.skipIfRefused(b, status);
                CacheSlot slot = CacheSlot::of(b, k.rowOffsets, k.cacheLengths,
                                               k.lookup, pageSize, row, seq);
                std::array<Value, 2> rows = {k.key, k.value};
                for (int64_t kv = 0; kv < 2; ++kv) {
                  Value chunk = vector::LoadOp::create(
                      b, vecType, rows[kv], {row, head, col},
                      /*nontemporal=*/false, align);
                  vector::StoreOp::create(b, chunk, k.blocks,
                                          slot.at(b, kv, k.layer, head, col),
                                          /*nontemporal=*/false, align);
                }
              });
}
