//===- MatmulKernel.cpp - x @ W^T on tensor cores
//--------------------------===//
//
// The projections: a 64 x 64 output tile per block of four warps (2 x 2, each
// 32 x 32), 128-deep K steps staged in shared memory with 16-byte loads
// (deep steps keep 16 loads per thread in flight: skinny decode GEMMs are
// latency-bound), ldmatrix fragments and mma.sync m16n8k16 accumulating in
// f32. Both operands are K-contiguous (`x [M, K]`, `W [N, K]`), which is
// exactly the row-major A / column-major B that mma.sync wants. Weight
// clipping happens as the tile is staged; bias and the split into q / k / v
// in the epilogue. For decode-sized M the same launch runs the GEMV
// (GemvKernel.cpp) instead: the host picks the grid, the kernel the path.
//
//===----------------------------------------------------------------------===//

#include "MatmulKernel.h"
#include "KernelArguments.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::kb::m16n8k16;

namespace {

constexpr int64_t kTileM = 64, kTileN = 64, kTileK = 128, kThreads = 128;
// Row padding of the staged tiles: 16 bytes keeps ldmatrix conflict-free.
constexpr int64_t kPad = 8;
// Each warp's 32 x 32 quarter of the tile: 2 x 4 mma tiles of 16 x 8.
constexpr int64_t kWarpTilesM = 2, kWarpTilesN = 4;
// Elements of one 16-byte staging load.
constexpr int64_t kChunk = 8;

/// Where a block and each of its warps work.
struct MatmulTile {
  Value smemA, smemW;
  Idx rows;   // M
  Idx m0, n0; // the block's output tile
  Idx wm, wn; // the warp's quarter of it
  BlockWeight weight;
  // This lane's ldmatrix coordinates in the warp's rows of A and W.
  std::pair<Idx, Idx> aCoord, wCoord;
};

/// 1. Stages the K step at `k0` of the A (x) and W tiles, 64 rows x 16
/// chunks each, zeros past the edges.
void stageTiles(IB &b, const MatmulArgs &args, const MatmulTile &t, int64_t k,
                std::optional<double> clip, Idx thread, Idx k0) {
  auto chunkType = VectorType::get(
      {kChunk}, cast<MemRefType>(args.x.getType()).getElementType());
  constexpr int64_t chunksPerRow = kTileK / kChunk;
  for (int64_t i = 0; i < kTileM * chunksPerRow / kThreads; ++i) {
    Idx c = thread + i * kThreads;
    Idx r = c / chunksPerRow, kc = c % chunksPerRow * kChunk;
    Idx gk = k0 + kc;
    Idx kOk = ult(b, gk, cIndex(b, k));
    Idx gm = t.m0 + r;
    Idx aOk = kOk & ult(b, gm, t.rows);
    Value a = loadVectorOrZero(
        b, args.x,
        [&](IB &) {
          return SmallVector<Value>{gm, gk};
        },
        aOk, chunkType);
    storeVector(b, a, t.smemA, {r, kc});
    // The row of this block's weight.
    Idx gn = t.n0 - t.weight.begin + r;
    Idx wOk = kOk & ult(b, gn, t.weight.rows);
    Value w = loadVectorOrZero(
        b, t.weight.weight,
        [&](IB &) {
          return SmallVector<Value>{gn, gk};
        },
        wOk, chunkType);
    if (clip)
      w = clipChunk(b, w, *clip);
    storeVector(b, w, t.smemW, {r, kc});
  }
}

/// 2-3. The warp's 32 x 32 quarter of one staged K step: per 16-deep slice,
/// A fragments of its two 16-row tiles and W fragments of its four 8-column
/// tiles via ldmatrix, then mma into `acc` ([mi][ni][register]).
void multiplyTiles(IB &b, const MatmulTile &t, Type element,
                   MutableArrayRef<Value> acc) {
  auto [aRow, aCol] = t.aCoord;
  auto [wRow, wCol] = t.wCoord;
  for (int64_t kk = 0; kk < kTileK / 16; ++kk) {
    std::array<std::array<Value, 4>, kWarpTilesM> a;
    for (int64_t mi = 0; mi < kWarpTilesM; ++mi)
      a[mi] = ldmatrixX4(b, t.smemA, aRow + mi * 16, aCol + kk * 16,
                         /*transpose=*/false);
    // One ldmatrix.x4 holds the fragments of two 8-column tiles.
    for (int64_t np = 0; np < kWarpTilesN / 2; ++np) {
      std::array<Value, 4> wPair = ldmatrixX4(
          b, t.smemW, wRow + np * 16, wCol + kk * 16, /*transpose=*/false);
      for (int64_t half = 0; half < 2; ++half) {
        int64_t ni = 2 * np + half;
        for (int64_t mi = 0; mi < kWarpTilesM; ++mi) {
          MutableArrayRef<Value> c = acc.slice((mi * kWarpTilesN + ni) * 4, 4);
          std::array<Value, 4> d = mma16816(
              b, element, a[mi], {wPair[2 * half], wPair[2 * half + 1]}, c);
          llvm::copy(d, c.begin());
        }
      }
    }
  }
}

/// 4. The epilogue: accumulator register `r` of mma tile (mi, ni) holds
/// output row accRow(r) + 16 mi and column accCol(r) + 8 ni of the warp's
/// quarter.
void storeOutputs(IB &b, const MatmulArgs &args, const MatmulTile &t,
                  const WarpLayout &w, ArrayRef<Value> acc, int64_t n,
                  ArrayRef<OutputSegment> segments) {
  for (int64_t mi = 0; mi < kWarpTilesM; ++mi) {
    for (int64_t ni = 0; ni < kWarpTilesN; ++ni) {
      for (int64_t r = 0; r < 4; ++r) {
        Value v = acc[(mi * kWarpTilesN + ni) * 4 + r];
        Idx row = (t.m0 + t.wm) + (accRow(w, r) + mi * 16);
        Idx col = (t.n0 + t.wn) + (accCol(w, r) + ni * 8);
        Idx inRange = ult(b, row, t.rows) & ult(b, col, cIndex(b, n));
        ifThen(b, inRange, [&](IB &tb) {
          storeElements(tb, args, t.weight, v, row, col, n, segments);
        });
      }
    }
  }
}

/// The tiled GEMM of one 64 x 64 output block.
void buildTiledMatmul(IB &b, gpu::GPUFuncOp kernel, const MatmulArgs &args,
                      const WeightStack &stack, std::optional<double> clip,
                      ArrayRef<OutputSegment> segments) {
  BuilderScope scope(b);
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  WarpLayout w = WarpLayout::of(threadIdx(b));
  MatmulTile t;
  t.smemA = kernel.getWorkgroupAttributions()[0];
  t.smemW = kernel.getWorkgroupAttributions()[1];
  t.rows = dim(b, args.x, 0);
  t.m0 = blockIdx(b, gpu::Dimension::y) * kTileM;
  t.n0 = blockIdx(b, gpu::Dimension::x) * kTileN;
  t.weight = selectWeight(b, args, stack, t.n0);
  t.wm = w.warp / 2 * 32;
  t.wn = w.warp % 2 * 32;
  t.aCoord = aCoord(w.lane, t.wm);
  t.wCoord = bCoordNMajor(w.lane, t.wn);

  SmallVector<Value> init(kWarpTilesM * kWarpTilesN * 4, cF32(b, 0.0));
  SmallVector<Value> acc =
      forLoop(b, cIndex(b, 0), cIndex(b, stack.k), kTileK, init,
              [&](IB &lb, Idx k0, ValueRange accIn) {
                // 1. Stage the A and W tiles of this K step.
                stageTiles(lb, args, t, stack.k, clip, w.thread, k0);
                gpu::BarrierOp::create(lb);
                // 2-3. Fragments via ldmatrix, mma.sync.
                SmallVector<Value> accOut(accIn);
                multiplyTiles(lb, t, element, accOut);
                gpu::BarrierOp::create(lb);
                return accOut;
              });
  // 4. Epilogue: bias, output segments.
  storeOutputs(b, args, t, w, acc, stack.n, segments);
}

/// The GEMV for decode-sized M, else the tiled GEMM (M is uniform, so the
/// whole block takes one path).
void buildMatmul(IB &b, gpu::GPUFuncOp kernel, const MatmulArgs &args,
                 const WeightStack &stack, std::optional<double> clip,
                 ArrayRef<OutputSegment> segments) {
  ifThenElse(
      b, ule(b, dim(b, args.x, 0), cIndex(b, kGemvMaxRows)),
      [&](IB &gb) {
        buildGemv(gb, args, stack, clip, segments,
                  kernel.getWorkgroupAttributions()[2], kThreads);
      },
      [&](IB &mb) {
        buildTiledMatmul(mb, kernel, args, stack, clip, segments);
      });
}

} // namespace

WeightStack WeightStack::of(ArrayRef<Value> weights) {
  WeightStack stack;
  for (Value w : weights) {
    stack.begin.push_back(stack.n);
    stack.rows.push_back(cast<MemRefType>(w.getType()).getDimSize(0));
    stack.n += stack.rows.back();
  }
  stack.k = cast<MemRefType>(weights[0].getType()).getDimSize(1);
  return stack;
}

// Segment boundaries are multiples of the GEMM tile (and so of the GEMV's
// 16 columns).
BlockWeight gpu_lowering::selectWeight(IB &b, const MatmulArgs &args,
                                       const WeightStack &stack, Idx n0) {
  bool hasBias = !args.biases.empty();
  BlockWeight w{args.weights[0], hasBias ? args.biases[0] : Value(),
                cIndex(b, 0), cIndex(b, stack.rows[0])};
  for (size_t s = 1; s < args.weights.size(); ++s) {
    Idx here = ule(b, cIndex(b, stack.begin[s]), n0);
    w.weight = select(b, here, args.weights[s], w.weight);
    if (hasBias)
      w.bias = select(b, here, args.biases[s], w.bias);
    w.begin = select(b, here, cIndex(b, stack.begin[s]), w.begin);
    w.rows = select(b, here, cIndex(b, stack.rows[s]), w.rows);
  }
  return w;
}

Value gpu_lowering::clipChunk(IB &b, Value chunk, double clip) {
  auto type = cast<VectorType>(chunk.getType());
  auto f32Type = VectorType::get(type.getShape(), b.getF32Type());
  auto splat = [&](double v) {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(f32Type, static_cast<float>(v)));
  };
  Value wide = arith::ExtFOp::create(b, f32Type, chunk);
  wide = arith::MaximumFOp::create(b, wide, splat(-clip));
  wide = arith::MinimumFOp::create(b, wide, splat(clip));
  return arith::TruncFOp::create(b, type, wide);
}

/// The four i32 registers of an 8-element chunk, pairs (i, i + 1) or, with
/// `interleave`, (i, i + 4).
std::array<Value, 4> gpu_lowering::chunkPairs(IB &b, Value chunk,
                                              bool interleave) {
  if (interleave)
    chunk = vector::ShuffleOp::create(b, chunk, chunk,
                                      ArrayRef<int64_t>{0, 4, 1, 5, 2, 6, 3, 7});
  Value words =
      vector::BitCastOp::create(b, VectorType::get({4}, b.getI32Type()), chunk);
  std::array<Value, 4> pairs;
  for (int64_t i = 0; i < 4; ++i)
    pairs[i] = vector::ExtractOp::create(b, words, ArrayRef<int64_t>{i});
  return pairs;
}

void gpu_lowering::storeElements(IB &b, const MatmulArgs &args,
                                 const BlockWeight &weight,
                                 ArrayRef<Value> acc, Idx row, Idx col,
                                 int64_t n, ArrayRef<OutputSegment> segments) {
  // `col` is a multiple of acc.size(), so aligned boundaries never split the
  // columns.
  int64_t size = acc.size();
  bool together = n % size == 0 && llvm::all_of(segments, [&](auto &s) {
                    return s.begin % size == 0 && s.width % size == 0;
                  });
  if (!together) {
    for (int64_t i = 0; i < size; ++i)
      ifThen(b, ult(b, col + i, cIndex(b, n)), [&](IB &sb) {
        storeElements(sb, args, weight, acc[i], row, col + i, n, segments);
      });
    return;
  }
  storeInSegment(b, args, segments, finishElements(b, args, weight, acc, col),
                 row, col);
}

void gpu_lowering::storeInSegment(IB &b, const MatmulArgs &args,
                                  ArrayRef<OutputSegment> segments,
                                  Value value, Idx row, Idx col,
                                  llvm::MaybeAlign alignment) {
  for (auto [out, segment] : llvm::zip(args.outputs, segments)) {
    Idx local = col - segment.begin;
    Value buffer = out;
    auto write = [&](IB &sb) {
      if (isa<VectorType>(value.getType()))
        vector::StoreOp::create(sb, value, buffer, ValueRange{row, local},
                                /*nontemporal=*/false, alignment);
      else
        store(sb, value, buffer, {row, local});
    };
    if (segments.size() == 1)
      write(b);
    else
      ifThen(b, ult(b, local, cIndex(b, segment.width)), write);
  }
}

Value gpu_lowering::finishElements(IB &b, const MatmulArgs &args,
                                   const BlockWeight &weight,
                                   ArrayRef<Value> acc, Idx col) {
  int64_t size = acc.size();
  SmallVector<Value> values(acc);
  if (weight.bias)
    for (int64_t i = 0; i < size; ++i)
      values[i] = arith::AddFOp::create(
          b, values[i],
          toF32(b, load(b, weight.bias, col + i - weight.begin)));
  // The outputs' type: x may be a prepared copy (float8's E4M3 values).
  Type element = cast<MemRefType>(args.outputs.front().getType()).getElementType();
  Value finished = size == 1 ? values[0]
                             : vector::FromElementsOp::create(
                                   b, VectorType::get({size}, b.getF32Type()),
                                   values);
  if (!element.isF32())
    finished = arith::TruncFOp::create(
        b, size == 1 ? element : VectorType::get({size}, element), finished);
  return finished;
}

bool gpu_lowering::matmulCanSplitWeights(ArrayRef<Value> weights) {
  if (weights.empty())
    return false;
  int64_t k = cast<MemRefType>(weights[0].getType()).getDimSize(1);
  for (auto [i, w] : llvm::enumerate(weights)) {
    auto type = cast<MemRefType>(w.getType());
    if (!type.hasStaticShape() || type.getDimSize(1) != k)
      return false;
    if (i + 1 < weights.size() && type.getDimSize(0) % kTileN != 0)
      return false;
  }
  return true;
}

/// The tile width (256, 192 or 128) that computes 512 rows of `n` columns
/// soonest: the fewest waves of blocks over the multiprocessors times the
/// time of one tile (about its width); ties go to the wider tile.
static int64_t midTileN(int64_t n, int64_t sms) {
  int64_t best = 256, bestCost = std::numeric_limits<int64_t>::max();
  for (int64_t tileN : {256, 192, 128}) {
    int64_t blocks = llvm::divideCeil(n, tileN) * (512 / 128);
    int64_t cost = llvm::divideCeil(blocks, sms) * tileN;
    if (cost < bestCost) {
      best = tileN;
      bestCost = cost;
    }
  }
  return best;
}

/// Shared memory holds about 200 KB of stages.
static int64_t stagesFor(int64_t tileM, int64_t tileN) {
  return std::min<int64_t>(8, 200 * 1024 / ((tileM + tileN) * 128));
}

/// The wgmma GEMM's shapes on sm_90a, by rows: up to 64 rows, one consumer
/// warpgroup and 64-column tiles (enough blocks to stream the weights at
/// memory speed); up to 128, two on 128 x 64; up to 1024, two on 128 x N
/// tiles with N picked for 512 rows (`midTileN`); beyond, 128 x 256.
static SmallVector<GemmShape> gemmShapes(int64_t n, int64_t sms) {
  SmallVector<GemmShape> shapes = {
      {64, {/*consumers=*/1, /*tileN=*/64, /*stages=*/8}, "gemm_wgmma_m64"},
      {128, {2, 64, 6}, "gemm_wgmma_m128"}};
  int64_t mid = midTileN(n, sms);
  if (mid != 256)
    shapes.push_back({1024, {2, mid, stagesFor(128, mid)}, "gemm_wgmma_m1024"});
  shapes.push_back(
      {std::numeric_limits<int64_t>::max(), {2, 256, 4}, "gemm_wgmma"});
  return shapes;
}

/// On sm_90a: the GEMV kernel for decode-sized M, else the wgmma GEMM of
/// M's shape; the host launches the one that M picks.
static void emitGemvOrWgmmaGemm(KernelEmitter &e, IB &host,
                                const MatmulArgs &args,
                                const WeightStack &stack,
                                ArrayRef<OutputSegment> outputs) {
  Location loc = host.getLoc();
  // The warps of a block split K. As many as keep every block resident at
  // once (about 64 registers a thread: two 16-warp or four 8-warp blocks per
  // multiprocessor): the loads in flight are then the same per
  // multiprocessor, and there is no second, partial wave.
  int64_t gemvBlocks = llvm::divideCeil(stack.n, kGemvColumns);
  int64_t sms = e.options().smCount;
  int64_t gemvThreads = gemvBlocks <= 2 * sms   ? 512
                        : gemvBlocks <= 4 * sms ? 256
                                                : 128;
  auto [gemvKernel, gemvBody, gemvArgs] = createKernel(
      e, loc, "gemv", args,
      {gemvReductionType(host.getContext(), gemvThreads)}, gemvThreads);
  gpu::GPUFuncOp gemv = gemvKernel;
  buildGemv(gemvBody, gemvArgs, stack, /*clip=*/std::nullopt, outputs,
            gemv.getWorkgroupAttributions()[0], gemvThreads);
  Idx rows = dim(host, args.x, 0);
  auto launchShape = [&](IB &lb, const GemmShape &shape) {
    MatmulArgs gemmArgs = args;
    gemmArgs.tensorMaps = wgmmaGemmTensorMaps(lb, shape.cfg, args, stack);
    auto [gemm, body, kernelArgs] = createKernel(e, loc, shape.name, gemmArgs,
                                                 {}, shape.cfg.threads());
    buildWgmmaGemm(body, shape.cfg, kernelArgs, stack, outputs);
    launchWgmmaGemm(e, lb, gemm, shape.cfg, stack.n, rows,
                    argumentList(gemmArgs));
  };
  ifThenElse(
      host, ule(host, rows, cIndex(host, kGemvMaxRows)),
      [&](IB &hb) {
        e.launch(hb, gemv,
                 {cIndex(hb, llvm::divideCeil(stack.n, kGemvColumns)),
                  cIndex(hb, 1), cIndex(hb, 1)},
                 gemvThreads, argumentList(args));
      },
      [&](IB &hb) {
        launchByRows(hb, rows, gemmShapes(stack.n, sms), launchShape);
      });
}

void gpu_lowering::emitMatmul(KernelEmitter &e, IB &host, Value x, Value weight,
                              Value bias, std::optional<double> clip,
                              ArrayRef<OutputSegment> outputs) {
  SmallVector<Value> biases;
  if (bias)
    biases.push_back(bias);
  emitMatmul(e, host, x, ArrayRef<Value>{weight}, biases, clip, outputs);
}

Value gpu_lowering::withDynamicDim(IB &b, Value value, int64_t d) {
  auto type = cast<MemRefType>(value.getType());
  if (type.getRank() <= d)
    return value;
  SmallVector<int64_t> shape(type.getShape());
  shape[d] = ShapedType::kDynamic;
  return memref::CastOp::create(
      b, MemRefType::get(shape, type.getElementType()), value);
}

void gpu_lowering::emitMatmul(KernelEmitter &e, IB &host, Value x,
                              ArrayRef<Value> weights, ArrayRef<Value> biases,
                              std::optional<double> clip,
                              ArrayRef<OutputSegment> outputs) {
  // Every path reads x and W in 16-byte pieces (vector loads, TMA).
  e.requireAligned(x);
  e.requireAligned(weights);
  WeightStack stack = WeightStack::of(weights);
  MatmulArgs args{
      x, SmallVector<Value>(weights), SmallVector<Value>(biases), {}, {}};
  // Several weights are passed with one type, so that the kernel can pick
  // one by selecting between them.
  if (weights.size() > 1) {
    for (Value &w : args.weights)
      w = withDynamicDim(host, w, 0);
    for (Value &bias : args.biases)
      bias = withDynamicDim(host, bias, 0);
  }
  for (const OutputSegment &out : outputs)
    args.outputs.push_back(out.buffer);

  Type element = cast<MemRefType>(x.getType()).getElementType();
  if (e.options().wgmma && wgmmaGemmApplies(args, stack, clip)) {
    emitGemvOrWgmmaGemm(e, host, args, stack, outputs);
    return;
  }
  auto smemType =
      MemRefType::get({kTileM, kTileK + kPad}, element, AffineMap(),
                      gpu::AddressSpaceAttr::get(host.getContext(),
                                                 gpu::AddressSpace::Workgroup));
  auto [kernel, b, kernelArgs] = createKernel(
      e, host.getLoc(), "matmul", args,
      {smemType, smemType, gemvReductionType(host.getContext(), kThreads)},
      kThreads);
  buildMatmul(b, kernel, kernelArgs, stack, clip, outputs);

  // The grid of the path the kernel takes for this M (no host branch: the
  // launches of a call stay on one stream without host synchronisation).
  Idx rows = dim(host, x, 0);
  Idx gemv = ule(host, rows, cIndex(host, kGemvMaxRows));
  Idx gridX =
      select(host, gemv, cIndex(host, llvm::divideCeil(stack.n, kGemvColumns)),
             cIndex(host, llvm::divideCeil(stack.n, kTileN)));
  Idx gridY = select(host, gemv, cIndex(host, 1), ceilDiv(host, rows, kTileM));
  e.launch(host, kernel, {gridX, gridY, cIndex(host, 1)}, kThreads,
           argumentList(args));
}

std::pair<Idx, Idx> gpu_lowering::groupedTile(IB &b, int64_t columnTiles,
                                              int64_t groupRows) {
  // blockIdx.x may exceed columnTiles - 1 only in a block that carries the
  // index checks, which takes no tile.
  Idx rowTiles = gridDim(b, gpu::Dimension::y);
  Idx linear = blockIdx(b, gpu::Dimension::y) * columnTiles +
               blockIdx(b, gpu::Dimension::x);
  int64_t groupBlocks = groupRows * columnTiles;
  Idx firstRow = linear / groupBlocks * groupRows;
  Idx rows = min(b, rowTiles - firstRow, cIndex(b, groupRows));
  Idx inGroup = linear % groupBlocks;
  return {firstRow + inGroup % rows, inGroup / rows};
}
