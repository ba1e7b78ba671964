//===- WarpMma.cpp - attention tiles on mma.sync --------------------------===//

#include "WarpMma.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

SmallVector<std::array<Value, 4>>
attention::loadQueryFragments(IB &b, const Problem &p, Value smemQ,
                              const WarpLayout &w, Idx warpRow) {
  SmallVector<std::array<Value, 4>> frags;
  gpu::BarrierOp::create(b);
  auto [row, col] = m16n8k16::aCoord(w.lane, warpRow);
  for (int64_t k = 0; k < p.headDim / 16; ++k)
    frags.push_back(ldmatrixX4(b, smemQ, row, col + k * 16, false));
  // Every warp has its fragments before K overwrites the buffer.
  gpu::BarrierOp::create(b);
  return frags;
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
                                        ArrayRef<std::array<Value, 4>> qFrag,
                                        Value smemK, const KVCoordinates &at,
                                        Idx keyBase, int64_t keys) {
  SmallVector<Value> s(keys / 8 * 4, cF32(b, 0.0));
  auto [row, col] = at.key;
  for (int64_t k = 0; k < p.headDim / 16; ++k) {
    for (int64_t n = 0; n < keys / 16; ++n) {
      std::array<Value, 4> bk =
          ldmatrixX4(b, smemK, row + keyBase + n * 16, col + k * 16, false);
      for (int64_t half = 0; half < 2; ++half) {
        MutableArrayRef<Value> c = tile(s, 2 * n + half);
        llvm::copy(mma16816(b, p.element, qFrag[k],
                            {bk[2 * half], bk[2 * half + 1]}, c),
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
