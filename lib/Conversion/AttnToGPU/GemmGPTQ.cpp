//===- GemmGPTQ.cpp - x @ W^T of GPTQ int4 weights above 64 rows ----------===//
//
// Marlin-style: the GEMV (GemvGPTQ.cpp) streams W once per 16 rows of x
// (from L2 after the first), so above 64 rows a block owns a tile of x rows
// as well, and each W fragment decoded in registers feeds the mma.sync of
// all the warp's x rows.
// No dequantised weight exists in any memory.
//
// A block's warps form warpsM x warpsN; a warp owns tilesM m16 tiles of x
// rows and 32 output columns as four n8 tiles, interleaved as in the GEMV
// (tile t's column c is the warp's column 4 c + t), so that one 16-byte
// read of a word row gives a lane its word of every tile. K steps of x
// rows and of word rows come into a ring of shared-memory stages by
// cp.async, S - 1 steps ahead of the math:
//
//   start steps 0 .. S - 2 (one cp.async group each)
//   for each group g of K:                       (group_size deep)
//     part = 0
//     for each step i of g:                      (64 deep, 32 for groups of 32)
//       wait until step i landed (cp.async.wait_group S - 2); barrier
//       start step i + S - 1 into the slot step i - 1 used
//       per 16-deep slice: A = ldmatrix(x), B = decode(word bytes),
//                          part += A B (mma.sync m16n8k16, f32)
//     acc += part * scales[g]                    (f32, per column)
//   store acc, rounded, into the q / k / v segments
//
// ldmatrix gives A as pairs of adjacent k, so B must be too: the B
// registers of lane (group, quad) are k (2 quad, 2 quad + 1) and (8 + 2
// quad, 9 + 2 quad) of column `group`, i.e. byte `quad` of the word of k
// 0-7 and of the word of k 8-15. One prmt puts the byte at bits 0-7 and
// the same byte of the word >> 4 at bits 16-23, so that its nibbles sit at
// bits 0-3 and 16-19 for the GEMV's exact decoding.
// The f32 sums of a group are scaled once, as in the GEMV: the kernel
// differs from the reference by f32 accumulation only.
//
//===----------------------------------------------------------------------===//

#include "GemmGPTQ.h"
#include "KernelArguments.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::kb::m16n8k16;

namespace {

/// A warp's output columns: four interleaved n8 tiles.
constexpr int64_t kWarpColumns = 32, kTiles = 4;
/// Padding of a staged x row: 16 bytes keeps ldmatrix conflict-free.
constexpr int64_t kPad = 8;

/// A shape of the GEMM.
struct GPTQGemmConfig {
  int64_t warpsM, warpsN, tilesM, stages;

  int64_t warpRows() const { return tilesM * 16; }
  int64_t tileM() const { return warpsM * warpRows(); }
  int64_t tileN() const { return warpsN * kWarpColumns; }
  int64_t threads() const { return 32 * warpsM * warpsN; }
  int64_t accumulators() const { return tilesM * kTiles * 4; }
};

/// 1. Where a block and its warp work, and the shape of a stage: x rows
/// [tileM, stepK + kPad] (element), then word rows [stepK / 8, tileN] (i32).
struct GemmTile {
  GPTQGemmConfig cfg;
  Type element;
  int64_t stepK, k, groupSize;
  AlignedSharedMemory shared;
  WarpLayout w;
  Idx rows, m0, n0;   // M, the block's first row and column
  Idx warpM, warpN;   // the warp's first row and column in the tile
  BlockWeight weight; // the packed weight holding the warp's columns
  Value scales;       // its scales
  Value byteSelector; // prmt: byte `quad` of a word and of the word >> 4

  int64_t xBytes() const {
    return cfg.tileM() * (stepK + kPad) * element.getIntOrFloatBitWidth() / 8;
  }
  int64_t wordRows() const { return stepK / 8; }
  int64_t stageBytes() const { return xBytes() + wordRows() * cfg.tileN() * 4; }
  int64_t steps() const { return k / stepK; }
};

/// K of a pipeline step: one 16-byte x chunk per row and word row per 8 k;
/// groups are whole steps.
int64_t stepKFor(int64_t groupSize) { return groupSize % 64 == 0 ? 64 : 32; }

int64_t sharedBytes(const GPTQGemmConfig &cfg, int64_t stepK, Type element) {
  GemmTile t;
  t.cfg = cfg;
  t.element = element;
  t.stepK = stepK;
  return cfg.stages * t.stageBytes() + 128;
}

/// The x tile and word tile of ring slot `slot`.
std::pair<Value, Value> stageViews(IB &b, const GemmTile &t, Idx slot) {
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  Idx base = t.shared.pad + slot * t.stageBytes();
  Value x = memref::ViewOp::create(
      b,
      MemRefType::get({t.cfg.tileM(), t.stepK + kPad}, t.element, AffineMap(),
                      space),
      t.shared.raw, base, ValueRange{});
  Value words = memref::ViewOp::create(
      b,
      MemRefType::get({t.wordRows(), t.cfg.tileN()}, b.getI32Type(),
                      AffineMap(), space),
      t.shared.raw, base + t.xBytes(), ValueRange{});
  return {x, words};
}

/// A 16-byte cp.async of `elements`, or zeros where `valid` fails (from a
/// valid address).
void copyChunk(IB &b, Value dst, ValueRange dstAt, Value src, ValueRange srcAt,
               int64_t elements, Idx valid) {
  nvgpu::DeviceAsyncCopyOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), dst, dstAt, src,
      srcAt, b.getIndexAttr(elements),
      select(b, valid, cIndex(b, elements), cIndex(b, 0)), b.getUnitAttr());
}

/// 2. Starts copying K step `step` (if there is one) into its ring slot:
/// the tile's x rows (zeros past M) and word rows (zeros past each
/// weight's columns), then commits a cp.async group (empty past K, so that
/// the waits count alike).
void startStep(IB &b, const GPTQGemmArgs &args, const GemmTile &t,
               const WeightStack &stack, Idx step) {
  int64_t threads = t.cfg.threads();
  ifThen(b, ult(b, step, cIndex(b, t.steps())), [&](IB &sb) {
    Value xTile, words;
    std::tie(xTile, words) = stageViews(sb, t, step % t.cfg.stages);
    Idx k0 = step * t.stepK;
    int64_t xChunksPerRow = t.stepK / 8;
    for (int64_t i = 0; i < t.cfg.tileM() * xChunksPerRow / threads; ++i) {
      Idx c = t.w.thread + i * threads;
      Idx r = c / xChunksPerRow, kc = c % xChunksPerRow * 8;
      Idx row = t.m0 + r;
      Idx valid = ult(sb, row, t.rows);
      copyChunk(sb, xTile, {r, kc}, args.x,
                {select(sb, valid, row, cIndex(sb, 0)), k0 + kc}, 8, valid);
    }
    int64_t wordChunksPerRow = t.cfg.tileN() / 4;
    int64_t wordChunks = t.wordRows() * wordChunksPerRow;
    for (int64_t i = 0; i * threads < wordChunks; ++i) {
      Idx c = t.w.thread + i * threads;
      auto copyWords = [&](IB &cb) {
        Idx r = c / wordChunksPerRow, col = c % wordChunksPerRow * 4;
        BlockWeight weight = selectWeight(
            cb, MatmulArgs{args.x, args.packed, {}, {}, {}}, stack, t.n0 + col);
        Idx local = t.n0 + col - weight.begin;
        Idx valid = ult(cb, local, weight.rows);
        auto [wordRow, wordCol] = args.wordOrder.at(
            k0 / 8 + r, select(cb, valid, local, cIndex(cb, 0)));
        copyChunk(cb, words, {r, col}, weight.weight, {wordRow, wordCol}, 4,
                  valid);
      };
      if ((i + 1) * threads <= wordChunks)
        copyWords(sb);
      else
        ifThen(sb, c < wordChunks, copyWords);
    }
  });
  NVVM::CpAsyncCommitGroupOp::create(b);
}

/// 3. part += the warp's x rows times its decoded columns over one staged
/// step, 16 k at a time: A of each m16 tile by ldmatrix, B of each n8 tile
/// from one 16-byte read per 8 k (the lane's word of all four tiles).
void multiplyStep(IB &b, const GemmTile &t, Value xTile, Value words,
                  MutableArrayRef<Value> part) {
  auto [aRow, aCol] = aCoord(t.w.lane, t.warpM);
  Idx wordCol = t.warpN + t.w.group * 4;
  auto wordsType = VectorType::get({4}, b.getI32Type());
  for (int64_t kk = 0; kk < t.stepK / 16; ++kk) {
    SmallVector<std::array<Value, 4>> a;
    for (int64_t mi = 0; mi < t.cfg.tilesM; ++mi)
      a.push_back(ldmatrixX4(b, xTile, aRow + mi * 16, aCol + kk * 16,
                             /*transpose=*/false));
    std::array<Value, 2> wordRow;
    for (int64_t h = 0; h < 2; ++h)
      wordRow[h] = vector::LoadOp::create(
          b, wordsType, words, ValueRange{cIndex(b, 2 * kk + h), wordCol},
          /*nontemporal=*/false, llvm::MaybeAlign(16));
    for (int64_t tile = 0; tile < kTiles; ++tile) {
      std::array<Value, 2> bFrag;
      for (int64_t h = 0; h < 2; ++h)
        bFrag[h] = decodeGPTQByte(
            b, vector::ExtractOp::create(b, wordRow[h], ArrayRef<int64_t>{tile}),
            t.byteSelector, t.element);
      for (int64_t mi = 0; mi < t.cfg.tilesM; ++mi) {
        MutableArrayRef<Value> c = part.slice((mi * kTiles + tile) * 4, 4);
        std::array<Value, 4> d = mma16816(b, t.element, a[mi], bFrag, c);
        llvm::copy(d, c.begin());
      }
    }
  }
}

/// 4. The K loop: the ring's first S - 1 steps, then per group the f32
/// sums of its steps, scaled once. Register r of tile (mi, t) is column
/// 4 accCol(r) + t of the warp, so the lane's columns are 8 quad .. + 7:
/// one 16-byte load of the group's scales.
SmallVector<Value> accumulate(IB &b, const GPTQGemmArgs &args,
                              const GemmTile &t, const WeightStack &stack) {
  int64_t stages = t.cfg.stages;
  for (int64_t s = 0; s + 1 < stages; ++s)
    startStep(b, args, t, stack, cIndex(b, s));
  Idx scaleCol = t.n0 + t.warpN - t.weight.begin + t.w.quad * 8;
  auto scalesType = VectorType::get(
      {8}, cast<MemRefType>(t.scales.getType()).getElementType());
  SmallVector<Value> zeros(t.cfg.accumulators(), cF32(b, 0.0));
  return forLoop(
      b, cIndex(b, 0), cIndex(b, t.k), t.groupSize, zeros,
      [&](IB &gb, Idx g0, ValueRange accIn) {
        Value scales = loadVectorOrZero(
            gb, t.scales,
            [&](IB &) {
              auto [row, col] = args.scaleOrder.at(g0 / t.groupSize, scaleCol);
              return SmallVector<Value>{row, col};
            },
            ult(gb, scaleCol, t.weight.rows), scalesType);
        SmallVector<Value> part = forLoop(
            gb, g0, g0 + t.groupSize, t.stepK, zeros,
            [&](IB &lb, Idx k0, ValueRange partIn) {
              Idx step = k0 / t.stepK;
              NVVM::CpAsyncWaitGroupOp::create(lb, stages - 2);
              gpu::BarrierOp::create(lb);
              startStep(lb, args, t, stack, step + (stages - 1));
              auto [xTile, words] = stageViews(lb, t, step % stages);
              SmallVector<Value> sums(partIn);
              multiplyStep(lb, t, xTile, words, sums);
              return sums;
            });
        SmallVector<Value> acc;
        for (auto [i, p] : llvm::enumerate(part)) {
          int64_t tile = i / 4 % kTiles, r = i % 4;
          Value scale = toF32(
              gb, vector::ExtractOp::create(
                      gb, scales, ArrayRef<int64_t>{4 * (r % 2) + tile}));
          acc.push_back(math::FmaOp::create(gb, p, scale, accIn[i]));
        }
        return acc;
      });
}

/// 5. The epilogue: the four tiles' registers r of an m16 tile are four
/// adjacent columns of one row, rounded and stored together.
void storeTile(IB &b, const GPTQGemmArgs &args, const GemmTile &t,
               const WeightStack &stack, ArrayRef<Value> acc,
               ArrayRef<OutputSegment> segments) {
  MatmulArgs out{args.x, {}, {}, args.outputs, {}};
  for (int64_t mi = 0; mi < t.cfg.tilesM; ++mi) {
    for (int64_t r = 0; r < 4; ++r) {
      Idx row = t.m0 + t.warpM + (accRow(t.w, r) + mi * 16);
      Idx col = t.n0 + t.warpN + accCol(t.w, r) * 4;
      ifThen(b, ult(b, row, t.rows) & ult(b, col, cIndex(b, stack.n)),
             [&](IB &sb) {
               SmallVector<Value> values;
               for (int64_t tile = 0; tile < kTiles; ++tile)
                 values.push_back(acc[(mi * kTiles + tile) * 4 + r]);
               storeElements(sb, out, t.weight, values, row, col, stack.n,
                             segments);
             });
    }
  }
}

/// One block's tileM x tileN output tile, in the grouped order of
/// groupedTile.
void buildGPTQGemm(IB &b, const GPTQGemmConfig &cfg, int64_t groupSize,
                   const GPTQGemmArgs &args, const WeightStack &stack,
                   ArrayRef<OutputSegment> segments) {
  BuilderScope scope(b);
  GemmTile t;
  t.cfg = cfg;
  t.element = cast<MemRefType>(args.x.getType()).getElementType();
  t.stepK = stepKFor(groupSize);
  t.k = stack.k;
  t.groupSize = groupSize;
  t.shared = AlignedSharedMemory::get(b, 128);
  t.w = WarpLayout::of(threadIdx(b));
  t.rows = dim(b, args.x, 0);
  auto [rowTile, columnTile] =
      groupedTile(b, llvm::divideCeil(stack.n, cfg.tileN()));
  t.m0 = rowTile * cfg.tileM();
  t.n0 = columnTile * cfg.tileN();
  t.warpM = t.w.warp / cfg.warpsN * cfg.warpRows();
  t.warpN = t.w.warp % cfg.warpsN * kWarpColumns;
  // Weights start at multiples of 32 columns: a warp's lie in one.
  Idx warpN0 = t.n0 + t.warpN;
  t.weight = selectWeight(
      b, MatmulArgs{args.x, args.packed, {}, {}, {}}, stack, warpN0);
  t.scales =
      selectWeight(b, MatmulArgs{args.x, args.scales, {}, {}, {}}, stack, warpN0)
          .weight;
  t.byteSelector = gptqByteSelector(b, t.w.quad);
  SmallVector<Value> acc = accumulate(b, args, t, stack);
  storeTile(b, args, t, stack, acc, segments);
}

} // namespace

std::pair<Idx, Idx> GPTQPartOrder::at(Idx r, Idx n) const {
  if (!columnBlocks)
    return {r, n};
  int64_t width = GPTQAttr::kBlockColumns;
  return {n / width * rows + r, n % width};
}

Value gpu_lowering::gptqByteSelector(IB &b, Idx quad) {
  // Result bytes 0, 1 from byte `quad` of the first operand, bytes 2, 3 from
  // byte `quad` of the second (bytes 4-7 of the pool).
  return arith::AddIOp::create(
      b, arith::MulIOp::create(b, indexCast(b, quad, b.getI32Type()),
                               cI32(b, 0x1111)),
      cI32(b, 0x4400));
}

Value gpu_lowering::decodeGPTQByte(IB &b, Value word, Value byteSelector,
                                   Type element) {
  Value shifted = arith::ShRUIOp::create(b, word, cI32(b, 4));
  Value bytes = NVVM::PermuteOp::create(b, b.getI32Type(), word, shifted,
                                        byteSelector,
                                        NVVM::PermuteMode::DEFAULT);
  return decodeGPTQNibbles(
      b, arith::AndIOp::create(b, bytes, cI32(b, 0x000F000F)), element);
}

Value gpu_lowering::decodeGPTQNibblePair(IB &b, Value word, int64_t j,
                                         Type element) {
  Value shifted =
      j ? arith::ShRUIOp::create(b, word, cI32(b, 4 * j)).getResult() : word;
  return decodeGPTQNibbles(
      b, arith::AndIOp::create(b, shifted, cI32(b, 0x000F000F)), element);
}

Value gpu_lowering::decodeGPTQNibbles(IB &b, Value nibbles, Type element) {
  bool bf16 = element.isBF16();
  Value bits = arith::OrIOp::create(b, nibbles,
                                    cI32(b, bf16 ? 0x43004300 : 0x64006400));
  auto pairType = VectorType::get({2}, element);
  Value offset = arith::ConstantOp::create(
      b, DenseElementsAttr::get(pairType, ArrayRef<Attribute>{FloatAttr::get(
                                              element, bf16 ? 136 : 1032)}));
  Value q = arith::SubFOp::create(
      b, LLVM::BitcastOp::create(b, pairType, bits), offset);
  return LLVM::BitcastOp::create(b, b.getI32Type(), q);
}

void gpu_lowering::emitGPTQGemm(KernelEmitter &e, IB &host,
                                const GPTQGemmArgs &args,
                                const WeightStack &stack, int64_t groupSize,
                                ArrayRef<OutputSegment> outputs) {
  // 128 x 128 tiles (2 x 4 warps of 64 x 32), each decoded fragment feeding
  // four m16 tiles; fewer rows go to the GEMV (kGPTQGemvMaxRows).
  GPTQGemmConfig cfg{/*warpsM=*/2, /*warpsN=*/4, /*tilesM=*/4, /*stages=*/4};
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  auto [kernel, b, kernelArgs] =
      createKernel(e, host.getLoc(), "gemm_gptq", args, {}, cfg.threads());
  buildGPTQGemm(b, cfg, groupSize, kernelArgs, stack, outputs);
  e.launch(host, kernel,
           {cIndex(host, llvm::divideCeil(stack.n, cfg.tileN())),
            ceilDiv(host, dim(host, args.x, 0), cfg.tileM()), cIndex(host, 1)},
           cfg.threads(), argumentList(args),
           cI32(host, sharedBytes(cfg, stepKFor(groupSize), element)));
}
