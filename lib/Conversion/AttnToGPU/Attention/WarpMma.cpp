//===- WarpMma.cpp - attention tiles on mma.sync --------------------------===//

#include "WarpMma.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

/// Bytes of a padded [rows][D + 8] tile.
static int64_t paddedTileBytes(const Problem &p, int64_t rows) {
  return rows * (p.headDim + kPad) * 2;
}

/// The dynamic shared memory's alignment: ldmatrix and 16-byte copies.
constexpr int64_t kMmaTileAlignment = 16;

int64_t attention::mmaSharedBytes(const Problem &p, int64_t queryRows) {
  if (!p.queryInShared())
    return 0;
  return 2 * paddedTileBytes(p, kKeys) + paddedTileBytes(p, queryRows) +
         kMmaTileAlignment;
}

MmaTiles attention::mmaTiles(IB &b, const Problem &p, int64_t queryRows,
                             ValueRange workgroup) {
  if (!workgroup.empty())
    return {workgroup[0], workgroup[1], Value()};
  AlignedSharedMemory smem = AlignedSharedMemory::get(b, kMmaTileAlignment);
  int64_t row = p.headDim + kPad, kvBytes = paddedTileBytes(p, kKeys);
  return {smem.shapedView(b, p.element, {kKeys, row}),
          smem.shapedView(b, p.element, {kKeys, row}, kvBytes),
          smem.shapedView(b, p.element, {queryRows, row}, 2 * kvBytes)};
}

std::array<Value, 4> QueryFragments::get(IB &b, int64_t k) const {
  if (!held.empty())
    return held[k];
  return ldmatrixX4(b, smem, at.first, at.second + k * 16, false);
}

QueryFragments attention::loadQuery(IB &b, const MmaTiles &tiles,
                                    const Problem &p, const WarpLayout &w,
                                    Idx warpRow) {
  QueryFragments q;
  q.smem = tiles.query();
  q.at = m16n8k16::aCoord(w.lane, warpRow);
  // The staged query tile is visible to every warp.
  gpu::BarrierOp::create(b);
  if (tiles.q)
    return q;
  SmallVector<std::array<Value, 4>> held;
  for (int64_t k = 0; k < p.headDim / 16; ++k)
    held.push_back(q.get(b, k));
  q.held = std::move(held);
  // Every warp has its fragments before K overwrites the buffer.
  gpu::BarrierOp::create(b);
  return q;
}

KVCoordinates KVCoordinates::of(const WarpLayout &w) {
  KVCoordinates at;
  at.key = m16n8k16::bCoordNMajor(w.lane);
  at.value = m16n8k16::bCoordKMajorTrans(w.lane);
  return at;
}

/// Tiles `c` (registers 4 t .. 4 t + 3) of the accumulator `acc`.
static MutableArrayRef<Value> tile(MutableArrayRef<Value> acc, int64_t t) {
  return acc.slice(t * 4, 4);
}

SmallVector<Value> attention::mmaScores(IB &b, const Problem &p,
                                        const QueryFragments &q, Value smemK,
                                        const KVCoordinates &at, Idx keyBase,
                                        int64_t keys) {
  SmallVector<Value> s(keys / 8 * 4, cF32(b, 0.0));
  auto [row, col] = at.key;
  for (int64_t k = 0; k < p.headDim / 16; ++k) {
    std::array<Value, 4> qk = q.get(b, k);
    for (int64_t n = 0; n < keys / 16; ++n) {
      std::array<Value, 4> bk =
          ldmatrixX4(b, smemK, row + keyBase + n * 16, col + k * 16, false);
      for (int64_t half = 0; half < 2; ++half) {
        MutableArrayRef<Value> c = tile(s, 2 * n + half);
        llvm::copy(
            mma16816(b, p.element, qk, {bk[2 * half], bk[2 * half + 1]}, c),
            c.begin());
      }
    }
  }
  return s;
}

void attention::mmaAccumulate(IB &b, const Problem &p, ArrayRef<Value> probs,
                              Value smemV, const KVCoordinates &at, Idx keyBase,
                              MutableArrayRef<Value> acc) {
  auto [row, col] = at.value;
  auto pair = [&](int64_t n, int64_t e) {
    return packPair(b, probs[n * 4 + e], probs[n * 4 + e + 1], p.element);
  };
  // P's accumulator registers of two n8 tiles are an A fragment of k16.
  for (int64_t k = 0; k < static_cast<int64_t>(probs.size()) / 8; ++k) {
    SmallVector<Value, 4> aP = {pair(2 * k, 0), pair(2 * k, 2),
                                pair(2 * k + 1, 0), pair(2 * k + 1, 2)};
    for (int64_t n = 0; n < p.headDim / 16; ++n) {
      std::array<Value, 4> bv =
          ldmatrixX4(b, smemV, row + keyBase + k * 16, col + n * 16, true);
      for (int64_t half = 0; half < 2; ++half) {
        MutableArrayRef<Value> c = tile(acc, 2 * n + half);
        llvm::copy(
            mma16816(b, p.element, aP, {bv[2 * half], bv[2 * half + 1]}, c),
            c.begin());
      }
    }
  }
}
