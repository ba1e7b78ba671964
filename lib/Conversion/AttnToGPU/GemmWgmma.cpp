//===- GemmWgmma.cpp - x @ W^T on Hopper's warpgroup MMA ------------------===//
//
// The projections for M above the GEMV's rows on sm_90a: a 128 x 256 output
// tile per block of two warpgroups (64 rows each), 64-deep K steps. Both
// operands are K-major (`x [M, K]`, `W [N, K]`), so each 64-element row of a
// K step is one 128-byte swizzled row, exactly what a wgmma descriptor
// reads. The steps arrive by cp.async into a ring of stages, `kLookahead`
// steps ahead of the tensor cores, and the wgmma of step k runs while the
// copies of step k + kLookahead are issued and step k - 1 drains:
//
//   for k in 0 .. kLookahead - 1:  copy(k)
//   for k in 0 .. numK - 1:
//     wait until copy(k) landed; barrier        (stage k % S is readable and
//                                                stage k - 2 is free)
//     acc = wgmma_async(stage k % S, acc)
//     copy(k + kLookahead)                       (into stage k - 2)
//     wgmma_wait(1)                              (wgmma(k - 1) is done)
//   wgmma_wait(0); epilogue
//
// The weight of each row is selected per row, so a tile may straddle the
// stacked q / k / v weights.
//
//===----------------------------------------------------------------------===//

#include "MatmulKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

constexpr int64_t kBlockM = kWgmmaTileM, kBlockN = kWgmmaTileN, kBlockK = 64;
constexpr int64_t kStages = 4, kLookahead = kStages - 2;
constexpr int64_t kThreads = kWgmmaThreads;
static_assert(kThreads == kBlockM / 64 * 128, "a warpgroup per 64 rows");
/// One K step of a row: one 128-byte swizzled row of 16-bit elements.
constexpr int64_t kRowBytes = kBlockK * 2, kChunksPerRow = kRowBytes / 16;
constexpr int64_t kTileABytes = kBlockM * kRowBytes;
constexpr int64_t kStageBytes = kTileABytes + kBlockN * kRowBytes;

/// Where a block and its warpgroups work.
struct GemmBlock {
  Value smem;     // every stage, as a 1-D element view
  Value smemAddr; // its i64 shared-window address
  Idx rows;       // M
  Idx m0, n0;     // the block's output tile
  WarpLayout w;
  Idx warpgroup; // rows [64 warpgroup, +64) of the tile
};

/// The 1024-byte aligned stages in dynamic shared memory.
void carveStages(IB &b, GemmBlock &blk, Type element) {
  auto wgSpace =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  Value raw = gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), AffineMap(),
                         wgSpace));
  Idx base = Value(memref::ExtractAlignedPointerAsIndexOp::create(b, raw));
  Idx pad = (1024 - base % 1024) % 1024;
  blk.smem = memref::ViewOp::create(
      b,
      MemRefType::get({kStages * kStageBytes / 2}, element, AffineMap(),
                      wgSpace),
      raw, pad, ValueRange{});
  blk.smemAddr = indexCast(
      b, memref::ExtractAlignedPointerAsIndexOp::create(b, blk.smem),
      b.getI64Type());
}

/// 1. Issues the copies of K step `kStep` into `stage`: the A rows of the
/// tile, then its W rows, zeros past M, N and K; one cp.async group.
void copyStage(IB &b, const MatmulArgs &args, const WeightStack &stack,
               const GemmBlock &blk, Idx kStep, Idx stage) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Idx stageBase = stage * (kStageBytes / 2);
  SmallVector<Value> tokens;
  auto copyRows = [&](int64_t tileRows, int64_t tileOffset, auto source) {
    for (int64_t i = 0; i < tileRows * kChunksPerRow / kThreads; ++i) {
      Idx c = blk.w.thread + i * kThreads;
      Idx r = c / kChunksPerRow, chunk = c % kChunksPerRow;
      Idx col = kStep * kBlockK + chunk * 8;
      auto [memref, row, valid] = source(r);
      valid = valid & ult(b, col, cIndex(b, stack.k));
      // Invalid chunks copy 0 bytes from the first element.
      Value bytes = select(b, valid, cIndex(b, 8), cIndex(b, 0));
      SmallVector<Value> at = {select(b, valid, row, cIndex(b, 0)),
                               select(b, valid, col, cIndex(b, 0))};
      Idx dst = stageBase + tileOffset / 2 + swizzled128Index(r, chunk, tileRows);
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, tokenType, blk.smem, ValueRange{dst}, memref, at,
          b.getIndexAttr(8), bytes, b.getUnitAttr()));
    }
  };
  copyRows(kBlockM, 0, [&](Idx r) {
    Idx row = blk.m0 + r;
    return std::make_tuple(args.x, row, ult(b, row, blk.rows));
  });
  copyRows(kBlockN, kTileABytes, [&](Idx r) {
    Idx n = blk.n0 + r;
    BlockWeight weight = selectWeight(b, args, stack, n);
    return std::make_tuple(weight.weight, n - weight.begin,
                           ult(b, n, cIndex(b, stack.n)));
  });
  nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, tokens);
}

/// Commits an empty cp.async group (keeps the group count per step).
void commitNothing(IB &b) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange{});
}

/// 2. Waits until this thread's copies of the oldest step landed, then for
/// the block, and makes them visible to the tensor cores.
void waitOldestStage(IB &b) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Value group =
      nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange{});
  nvgpu::DeviceAsyncWaitOp::create(b, group,
                                   b.getI32IntegerAttr(kLookahead - 1));
  fenceProxyAsync(b);
  gpu::BarrierOp::create(b);
}

/// 3. acc += the warpgroup's 64 rows of A times the 256 W rows of `stage`:
/// four k16 steps, 32 bytes apart along the swizzled rows.
Value multiplyStage(IB &b, const GemmBlock &blk, Type element, Idx stage,
                    Value acc) {
  Value stageAddr = arith::AddIOp::create(
      b, blk.smemAddr, indexCast(b, stage * kStageBytes, b.getI64Type()));
  Value aAddr = arith::AddIOp::create(
      b, stageAddr, indexCast(b, blk.warpgroup * (64 * kRowBytes),
                              b.getI64Type()));
  Value bAddr = arith::AddIOp::create(
      b, stageAddr,
      arith::ConstantIntOp::create(b, kTileABytes, 64).getResult());
  SmallVector<std::pair<Value, Value>> steps;
  for (int64_t k = 0; k < kBlockK / 16; ++k)
    steps.push_back({WgmmaDescriptor{aAddr, k * 32}.build(b),
                     WgmmaDescriptor{bAddr, k * 32}.build(b)});
  return wgmmaAsync(b, element, steps, kBlockN, /*transposeB=*/false, acc);
}

/// 4. The epilogue: accumulator register 4j + r of the warpgroup holds row
/// 16 warp + accRow(r) and column 8j + accCol(r) of its 64 x 256 tile;
/// each pair of columns is stored together.
void storeTile(IB &b, const MatmulArgs &args, const WeightStack &stack,
               const GemmBlock &blk, ArrayRef<Value> acc,
               ArrayRef<OutputSegment> segments) {
  using namespace m16n8k16;
  Idx warpRow = blk.m0 + blk.warpgroup * 64 + blk.w.warp % 4 * 16;
  for (int64_t j = 0; j < kBlockN / 8; ++j) {
    Idx col = blk.n0 + accCol(blk.w, 0) + j * 8;
    ifThen(b, ult(b, col, cIndex(b, stack.n)), [&](IB &cb) {
      BlockWeight weight = selectWeight(cb, args, stack, col);
      for (int64_t h = 0; h < 2; ++h) {
        Idx row = warpRow + accRow(blk.w, 2 * h);
        ifThen(cb, ult(cb, row, blk.rows), [&](IB &sb) {
          storeElements(sb, args, weight, {acc[4 * j + 2 * h],
                                           acc[4 * j + 2 * h + 1]},
                        row, col, stack.n, segments);
        });
      }
    });
  }
}

} // namespace

int64_t gpu_lowering::wgmmaGemmSharedBytes() {
  return kStages * kStageBytes + 1024;
}

bool gpu_lowering::wgmmaGemmApplies(const WeightStack &stack, Type element,
                                    std::optional<double> clip) {
  // Weights are clipped as they are staged, which cp.async cannot do.
  return !clip && (element.isBF16() || element.isF16()) && stack.k % 8 == 0;
}

void gpu_lowering::buildWgmmaGemm(IB &b, const MatmulArgs &args,
                                  const WeightStack &stack,
                                  ArrayRef<OutputSegment> segments) {
  BuilderScope scope(b);
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  GemmBlock blk;
  carveStages(b, blk, element);
  blk.w = WarpLayout::of(threadIdx(b));
  blk.warpgroup = blk.w.warp / 4;
  blk.rows = dim(b, args.x, 0);
  blk.m0 = blockIdx(b, gpu::Dimension::y) * kBlockM;
  blk.n0 = blockIdx(b, gpu::Dimension::x) * kBlockN;
  int64_t numK = llvm::divideCeil(stack.k, kBlockK);

  for (int64_t k = 0; k < kLookahead; ++k) {
    if (k < numK)
      copyStage(b, args, stack, blk, cIndex(b, k), cIndex(b, k));
    else
      commitNothing(b);
  }
  Value zeroAcc = packAccumulators(
      b, SmallVector<Value>(kBlockN / 2, cF32(b, 0.0)));
  Value acc = forLoop(
      b, cIndex(b, 0), cIndex(b, numK), 1, {zeroAcc},
      [&](IB &lb, Idx kStep, ValueRange carried) {
        waitOldestStage(lb);
        Value next = multiplyStage(lb, blk, element, kStep % kStages,
                                   carried[0]);
        Idx ahead = kStep + kLookahead;
        ifThenElse(
            lb, ult(lb, ahead, cIndex(lb, numK)),
            [&](IB &cb) {
              copyStage(cb, args, stack, blk, ahead, ahead % kStages);
            },
            [&](IB &cb) { commitNothing(cb); });
        wgmmaWait(lb, 1);
        return SmallVector<Value>{next};
      })[0];
  wgmmaWait(b, 0);
  storeTile(b, args, stack, blk, unpackAccumulators(b, acc), segments);
}
