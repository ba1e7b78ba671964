//===- GemmWgmma.cpp - x @ W^T on Hopper's warpgroup MMA ------------------===//
//
// The projections above the GEMV's rows on sm_90a, warp-specialised: one
// producer warpgroup copies 128-byte K steps (64 bf16 / f16 or 128 E4M3
// elements) of the x rows and W rows of a block's output tile into a ring
// of shared-memory stages, and one or two consumer warpgroups (64 rows
// each) multiply them on wgmma. Both operands are K-major (`x [M, K]`,
// `W [N, K]`, as E4M3 wgmma requires), so each row of a step is one
// 128-byte swizzled row, exactly what a wgmma descriptor reads. Two
// mbarriers per stage hand it over: `full` (its copies landed) and `empty`
// (the consumers are done reading it).
//
//   producer:                            consumers:
//   for k in 0 .. numK - 1:              for k in 0 .. numK - 1:
//     wait for step k - L's copies         wait full[k % S]
//     arrive full[(k - L) % S]             acc = wgmma_async(stage k % S, acc)
//     wait empty[k % S] (k >= S)           wgmma_wait(1)  (step k - 1 done)
//     cp.async step k into k % S           arrive empty[(k - 1) % S]
//   (the last L steps likewise)          wgmma_wait(0); store the tile
//
// L = S - 1 steps are in flight while the consumers work on the oldest. The
// producer fences its own landed copies into the async proxy before it
// arrives, so the tensor cores see them. The weight of each row is selected
// per row, so a tile may straddle the stacked q / k / v weights.
//
//===----------------------------------------------------------------------===//

#include "MatmulKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

/// One K step of a row: one 128-byte swizzled row, copied in 16-byte
/// chunks.
constexpr int64_t kRowBytes = 128, kChunkBytes = 16;
constexpr int64_t kChunksPerRow = kRowBytes / kChunkBytes;
constexpr int64_t kWarpgroup = 128;

/// Where a block and its warpgroups work.
struct GemmBlock {
  WgmmaGemmConfig cfg;
  int64_t elementBytes; // of x and W
  Value smem;        // every stage, as a 1-D element view
  Value smemAddr;    // its i64 shared-window address
  Value full, empty; // one mbarrier of each per stage
  Idx rows;          // M
  Idx m0, n0;        // the block's output tile
  WarpLayout w;
  Idx warpgroup; // 0: the producer; c + 1: consumer c (rows 64 c ..)

  int64_t stageBytes() const { return (cfg.tileM() + cfg.tileN) * kRowBytes; }
  int64_t lag() const { return cfg.stages - 1; }
  /// K elements of a step and of a copied chunk.
  int64_t stepK() const { return kRowBytes / elementBytes; }
  int64_t chunkElements() const { return kChunkBytes / elementBytes; }
};

/// The 1024-byte aligned stages in dynamic shared memory and the stage
/// barriers.
void carveStages(IB &b, GemmBlock &blk, Type element) {
  blk.smem = AlignedSharedMemory::get(b).view(
      b, element, blk.cfg.stages * blk.stageBytes() / blk.elementBytes);
  blk.smemAddr = indexCast(
      b, memref::ExtractAlignedPointerAsIndexOp::create(b, blk.smem),
      b.getI64Type());
  auto wgSpace =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto barriers = nvgpu::MBarrierGroupType::get(b.getContext(), wgSpace,
                                                blk.cfg.stages);
  blk.full = nvgpu::MBarrierCreateOp::create(b, barriers);
  blk.empty = nvgpu::MBarrierCreateOp::create(b, barriers);
}

/// Thread 0 initialises the barriers: `full` expects every producer
/// thread, `empty` every consumer thread.
void initBarriers(IB &b, const GemmBlock &blk) {
  ifThen(b, blk.w.thread == 0, [&](IB &ib) {
    for (int64_t s = 0; s < blk.cfg.stages; ++s) {
      nvgpu::MBarrierInitOp::create(ib, blk.full, cIndex(ib, kWarpgroup),
                                    cIndex(ib, s), Value());
      nvgpu::MBarrierInitOp::create(
          ib, blk.empty, cIndex(ib, kWarpgroup * blk.cfg.consumers),
          cIndex(ib, s), Value());
    }
  });
  gpu::BarrierOp::create(b);
}

void waitBarrier(IB &b, Value barriers, Idx stage, Idx use) {
  Value parity = indexCast(b, use % 2, b.getI1Type());
  nvgpu::MBarrierTryWaitParityOp::create(b, barriers, parity,
                                         cIndex(b, 10000000), stage);
}

void arriveBarrier(IB &b, Value barriers, Idx stage) {
  nvgpu::MBarrierArriveOp::create(
      b, nvgpu::MBarrierTokenType::get(b.getContext()), barriers, stage);
}

/// Issues this producer thread's copies of K step `kStep` into `stage`:
/// the x rows of the tile, then its W rows, zeros past M, N and K; one
/// cp.async group.
void copyStep(IB &b, const MatmulArgs &args, const WeightStack &stack,
              const GemmBlock &blk, Idx kStep, Idx stage) {
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  int64_t eb = blk.elementBytes, chunkElements = blk.chunkElements();
  Idx stageBase = stage * (blk.stageBytes() / eb);
  SmallVector<Value> tokens;
  auto copyRows = [&](int64_t tileRows, int64_t tileOffset, auto source) {
    for (int64_t i = 0; i < tileRows * kChunksPerRow / kWarpgroup; ++i) {
      Idx c = blk.w.thread + i * kWarpgroup;
      Idx r = c / kChunksPerRow, chunk = c % kChunksPerRow;
      Idx col = kStep * blk.stepK() + chunk * chunkElements;
      auto [memref, row, rowValid] = source(r);
      Idx valid = rowValid & ult(b, col, cIndex(b, stack.k));
      // Invalid chunks copy 0 bytes from the first element.
      Value elements = select(b, valid, cIndex(b, chunkElements), cIndex(b, 0));
      SmallVector<Value> at = {select(b, valid, row, cIndex(b, 0)),
                               select(b, valid, col, cIndex(b, 0))};
      // (swizzled128Index counts 2-byte elements.)
      Idx dst = stageBase + tileOffset / eb +
                swizzled128Index(r, chunk, tileRows) * (2 / eb);
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, tokenType, blk.smem, ValueRange{dst}, memref, at,
          b.getIndexAttr(chunkElements), elements, b.getUnitAttr()));
    }
  };
  int64_t tileM = blk.cfg.tileM();
  copyRows(tileM, 0, [&](Idx r) {
    Idx row = blk.m0 + r;
    return std::make_tuple(args.x, row, ult(b, row, blk.rows));
  });
  copyRows(blk.cfg.tileN, tileM * kRowBytes, [&](Idx r) {
    Idx n = blk.n0 + r;
    BlockWeight weight = selectWeight(b, args, stack, n);
    return std::make_tuple(weight.weight, n - weight.begin,
                           ult(b, n, cIndex(b, stack.n)));
  });
  nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, tokens);
}

/// Once at most `pending` of this thread's copy groups are in flight, the
/// step of the oldest is full: into the async proxy, and tell the consumers.
void markLanded(IB &b, const GemmBlock &blk, int64_t pending, Idx stage) {
  // (nvgpu.device_async_wait needs a group token, and making one commits an
  // empty group, which would make the wait count one short.)
  NVVM::CpAsyncWaitGroupOp::create(b, b.getI32IntegerAttr(pending));
  fenceProxyAsync(b);
  arriveBarrier(b, blk.full, stage);
}

/// The producer warpgroup: every K step into the ring, `lag` steps ahead
/// of marking them landed.
void produce(IB &b, const MatmulArgs &args, const WeightStack &stack,
             const GemmBlock &blk, int64_t numK) {
  int64_t stages = blk.cfg.stages, lag = blk.lag();
  forLoop(b, cIndex(b, 0), cIndex(b, numK), 1, [&](IB &lb, Idx k) {
    // Mark step k - lag first: the consumers release stage k % S only after
    // the step after it landed.
    ifThen(lb, k >= lag, [&](IB &mb) {
      markLanded(mb, blk, lag - 1, (k - lag) % stages);
    });
    Idx stage = k % stages;
    ifThen(lb, k >= stages, [&](IB &wb) {
      waitBarrier(wb, blk.empty, stage, k / stages - 1);
    });
    copyStep(lb, args, stack, blk, k, stage);
  });
  // The last `lag` steps.
  for (int64_t k = std::max<int64_t>(numK - lag, 0); k < numK; ++k)
    markLanded(b, blk, numK - 1 - k, cIndex(b, k % stages));
}

/// acc += the consumer's 64 rows of x times the W rows of `stage`: four
/// 32-byte k steps along the swizzled rows (k16 bf16 / f16, k32 E4M3).
Value multiplyStage(IB &b, const GemmBlock &blk, Type element, Idx consumer,
                    Idx stage, Value acc) {
  Value stageAddr = arith::AddIOp::create(
      b, blk.smemAddr,
      indexCast(b, stage * blk.stageBytes(), b.getI64Type()));
  Value aAddr = arith::AddIOp::create(
      b, stageAddr, indexCast(b, consumer * (64 * kRowBytes), b.getI64Type()));
  Value bAddr = arith::AddIOp::create(
      b, stageAddr,
      arith::ConstantIntOp::create(b, blk.cfg.tileM() * kRowBytes, 64)
          .getResult());
  SmallVector<std::pair<Value, Value>> steps;
  for (int64_t k = 0; k < kRowBytes / 32; ++k)
    steps.push_back({WgmmaDescriptor{aAddr, k * 32}.build(b),
                     WgmmaDescriptor{bAddr, k * 32}.build(b)});
  return wgmmaAsync(b, element, steps, blk.cfg.tileN, /*transposeB=*/false,
                    acc);
}

/// `pair` (columns col, col + 1 of row `row`) times the row's and the
/// columns' scales.
SmallVector<Value> scalePair(IB &b, const MatmulArgs &args,
                             const WeightStack &stack,
                             const OutputScales &scales, Idx row, Idx col,
                             ArrayRef<Value> pair) {
  BlockWeight weight = selectWeight(
      b, MatmulArgs{args.x, scales.weights, {}, {}}, stack, col);
  Value rowScale = load(b, scales.rows, {row});
  SmallVector<Value> scaled;
  for (auto [i, v] : llvm::enumerate(pair)) {
    Idx at = scales.perColumn ? col + int64_t(i) - weight.begin : cIndex(b, 0);
    Value factor =
        arith::MulFOp::create(b, rowScale, load(b, weight.weight, {at}));
    scaled.push_back(arith::MulFOp::create(b, v, factor));
  }
  return scaled;
}

/// The epilogue: accumulator register 4j + r of a consumer holds row
/// 16 warp + accRow(r) and column 8j + accCol(r) of its 64-row slab; each
/// pair of columns is stored together (scaled first, for E4M3).
void storeTile(IB &b, const MatmulArgs &args, const WeightStack &stack,
               const GemmBlock &blk, Idx consumer, ArrayRef<Value> acc,
               ArrayRef<OutputSegment> segments, const OutputScales *scales) {
  using namespace m16n8k16;
  Idx warpRow = blk.m0 + consumer * 64 + blk.w.warp % 4 * 16;
  for (int64_t j = 0; j < blk.cfg.tileN / 8; ++j) {
    Idx col = blk.n0 + accCol(blk.w, 0) + j * 8;
    ifThen(b, ult(b, col, cIndex(b, stack.n)), [&](IB &cb) {
      BlockWeight weight = selectWeight(cb, args, stack, col);
      for (int64_t h = 0; h < 2; ++h) {
        Idx row = warpRow + accRow(blk.w, 2 * h);
        ifThen(cb, ult(cb, row, blk.rows), [&](IB &sb) {
          SmallVector<Value> pair = {acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]};
          if (scales)
            pair = scalePair(sb, args, stack, *scales, row, col, pair);
          storeElements(sb, args, weight, pair, row, col, stack.n, segments);
        });
      }
    });
  }
}

/// A consumer warpgroup: every K step as it lands, then its slab of the
/// output tile.
void consume(IB &b, const MatmulArgs &args, const WeightStack &stack,
             const GemmBlock &blk, int64_t numK,
             ArrayRef<OutputSegment> segments, const OutputScales *scales) {
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  int64_t stages = blk.cfg.stages;
  Idx consumer = blk.warpgroup - 1;
  SmallVector<Value> zeros(blk.cfg.tileN / 2, cF32(b, 0.0));
  Value zero = packAccumulators(b, zeros);
  if (blk.elementBytes == 1) {
    // E4M3 wgmma keeps fewer bits of its running sum than f32: each step's
    // sums start from zero and are added to f32 registers (as DeepGEMM
    // does), which costs the step's overlap with the next one.
    SmallVector<Value> acc = forLoop(
        b, cIndex(b, 0), cIndex(b, numK), 1, zeros,
        [&](IB &lb, Idx k, ValueRange carried) {
          Idx stage = k % stages;
          waitBarrier(lb, blk.full, stage, k / stages);
          Value part = multiplyStage(lb, blk, element, consumer, stage, zero);
          wgmmaWait(lb, 0);
          arriveBarrier(lb, blk.empty, stage);
          SmallVector<Value> sums;
          for (auto [a, p] : llvm::zip(carried, unpackAccumulators(lb, part)))
            sums.push_back(arith::AddFOp::create(lb, a, p));
          return sums;
        });
    return storeTile(b, args, stack, blk, consumer, acc, segments, scales);
  }
  Value acc = forLoop(
      b, cIndex(b, 0), cIndex(b, numK), 1, {zero},
      [&](IB &lb, Idx k, ValueRange carried) {
        Idx stage = k % stages;
        waitBarrier(lb, blk.full, stage, k / stages);
        Value next =
            multiplyStage(lb, blk, element, consumer, stage, carried[0]);
        wgmmaWait(lb, 1);
        ifThen(lb, k >= 1, [&](IB &ab) {
          arriveBarrier(ab, blk.empty, (k - 1) % stages);
        });
        return SmallVector<Value>{next};
      })[0];
  wgmmaWait(b, 0);
  storeTile(b, args, stack, blk, consumer, unpackAccumulators(b, acc),
            segments, scales);
}

} // namespace

int64_t gpu_lowering::wgmmaGemmSharedBytes(const WgmmaGemmConfig &cfg) {
  return cfg.stages * (cfg.tileM() + cfg.tileN) * kRowBytes + 1024;
}

void gpu_lowering::launchWgmmaGemm(KernelEmitter &e, IB &host,
                                   gpu::GPUFuncOp kernel,
                                   const WgmmaGemmConfig &cfg, int64_t n,
                                   Idx rows, ValueRange args) {
  e.launch(host, kernel,
           {cIndex(host, llvm::divideCeil(n, cfg.tileN)),
            ceilDiv(host, rows, cfg.tileM()), cIndex(host, 1)},
           cfg.threads(), args, cI32(host, wgmmaGemmSharedBytes(cfg)));
}

bool gpu_lowering::wgmmaGemmApplies(const WeightStack &stack, Type element,
                                    std::optional<double> clip) {
  // Weights are clipped as they are staged, which cp.async cannot do.
  return !clip && (element.isBF16() || element.isF16()) && stack.k % 8 == 0;
}

void gpu_lowering::buildWgmmaGemm(IB &b, const WgmmaGemmConfig &cfg,
                                  const MatmulArgs &args,
                                  const WeightStack &stack,
                                  ArrayRef<OutputSegment> segments,
                                  const OutputScales *scales) {
  BuilderScope scope(b);
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  GemmBlock blk;
  blk.cfg = cfg;
  blk.elementBytes = element.getIntOrFloatBitWidth() / 8;
  carveStages(b, blk, element);
  blk.w = WarpLayout::of(threadIdx(b));
  // Broadcast from lane 0, so that ptxas knows the role branch is
  // warp-uniform (wgmma in a divergent path is serialised).
  blk.warpgroup = warpUniform(b, blk.w.thread / kWarpgroup);
  blk.rows = dim(b, args.x, 0);
  blk.m0 = blockIdx(b, gpu::Dimension::y) * cfg.tileM();
  blk.n0 = blockIdx(b, gpu::Dimension::x) * cfg.tileN;
  int64_t numK = llvm::divideCeil(stack.k, blk.stepK());
  initBarriers(b, blk);
  ifThenElse(
      b, blk.warpgroup == 0,
      [&](IB &pb) {
        GemmBlock producer = blk;
        producer.w = WarpLayout::of(blk.w.thread % kWarpgroup);
        produce(pb, args, stack, producer, numK);
      },
      [&](IB &cb) {
        consume(cb, args, stack, blk, numK, segments, scales);
      });
}
