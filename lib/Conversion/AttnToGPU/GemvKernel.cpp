//===- GemvKernel.cpp - decode projections streaming the weights ----------===//
//
// For M <= 16 rows (decode) the projection is bound by reading W once from
// memory, so the kernel keeps as many 16-byte weight loads in flight as it
// can and lets the tensor cores do the (tiny) arithmetic: a block owns 16
// output columns (two n8 mma tiles) and its warps split K; per 32-deep k
// step each lane loads 8 consecutive K elements of one W row (through the
// streaming path: read once, not kept in L1) and of the x rows `group` and
// `group + 8`. Summing over K is order-free, so the same
// permutation of K for x and W turns those chunks into m16n8k16 fragments
// directly (no shared-memory staging, no ldmatrix). The warps' partial sums
// meet in shared memory; warp 0 runs the GEMM's epilogue.
//
//===----------------------------------------------------------------------===//

#include "MatmulKernel.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::kb::m16n8k16;

namespace {

/// n8 mma tiles of a block: kGemvColumns columns.
constexpr int64_t kTiles = kGemvColumns / 8;
/// K elements of one lane's 16-byte load, and of one warp's k step.
constexpr int64_t kChunk = 8, kStep = 4 * kChunk;
/// A warp with at most this many k steps loads them all at once; one with
/// more streams them kPipelinedUnroll at a time, the next group's loads out
/// before the current group multiplies. Measured on an H200 (Llama-3-8B,
/// M = 1, CUPTI): qkv (8 warps, 16 steps) 17.3 us in groups of 4 without
/// pipelining, 15.4 us pipelined in pairs; o_proj (16 warps, 8 steps)
/// 11.2 us all at once, 13.1 us pipelined in pairs.
constexpr int64_t kMaxBurstSteps = 8, kPipelinedUnroll = 2;
/// Accumulator registers per lane: 4 per tile.
constexpr int64_t kAcc = kTiles * 4;

/// Where a block and its warps work.
struct GemvBlock {
  WarpLayout w;
  int64_t warps;
  Idx rows; // M
  Idx n0;   // the block's first output column
  BlockWeight weight;
};

/// One lane's chunks of a k step as i32 pairs: x rows group and group + 8,
/// and the W row of each tile's column `group`.
struct StepChunks {
  std::array<Value, 4> xLo, xHi;
  std::array<std::array<Value, 4>, kTiles> w;
};

/// 1. This lane's chunks of the k step at `k0` (zeros past K, past M and
/// past the weight's rows), loaded from clamped positions without branches
/// (behind branches, ptxas kept fewer in flight: 36 -> 20 us measured at
/// 128 threads).
StepChunks loadStep(IB &b, const MatmulArgs &args, const GemvBlock &blk,
                    int64_t k, std::optional<double> clip, Idx k0) {
  auto chunkType = VectorType::get(
      {kChunk}, cast<MemRefType>(args.x.getType()).getElementType());
  Idx gk = k0 + blk.w.quad * kChunk;
  Idx kOk = ult(b, gk, cIndex(b, k));
  Idx lastK = cIndex(b, k - kChunk);
  auto chunk = [&](Value src, Idx row, Idx bound) {
    return loadVectorClampedOrZero(b, src, {row, gk}, {bound - 1, lastK},
                                   kOk & ult(b, row, bound), chunkType);
  };
  StepChunks s;
  s.xLo = chunkPairs(b, chunk(args.x, blk.w.group, blk.rows));
  s.xHi = chunkPairs(b, chunk(args.x, blk.w.group + 8, blk.rows));
  for (int64_t t = 0; t < kTiles; ++t) {
    Idx row = blk.n0 - blk.weight.begin + (t * 8 + blk.w.group);
    Value w = loadStreamingClampedOrZero(
        b, blk.weight.weight, {row, gk}, {blk.weight.rows - 1, lastK},
        kOk & ult(b, row, blk.weight.rows), chunkType);
    if (clip)
      w = clipChunk(b, w, *clip);
    s.w[t] = chunkPairs(b, w);
  }
  return s;
}

/// 2. The step's two m16n8k16 products per tile. The fragments want
/// (k = 2 quad, 2 quad + 1) in register 0 and (2 quad + 8, + 9) in register
/// 1 (B; A alike for its two row halves); reading the lane's chunk pairs
/// (0, 1) and then (2, 3) as those registers maps both operands' K the same
/// way.
void multiplyStep(IB &b, Type element, const StepChunks &s,
                  MutableArrayRef<Value> acc) {
  for (int64_t half = 0; half < 2; ++half) {
    int64_t p = 2 * half;
    std::array<Value, 4> a = {s.xLo[p], s.xHi[p], s.xLo[p + 1], s.xHi[p + 1]};
    for (int64_t t = 0; t < kTiles; ++t) {
      MutableArrayRef<Value> c = acc.slice(t * 4, 4);
      std::array<Value, 4> d =
          mma16816(b, element, a, {s.w[t][p], s.w[t][p + 1]}, c);
      llvm::copy(d, c.begin());
    }
  }
}

/// A group of steps' chunks as loop-carried values, and back.
constexpr int64_t kValuesPerStep = 8 + 4 * kTiles;

void appendStep(SmallVector<Value> &values, const StepChunks &s) {
  llvm::append_range(values, s.xLo);
  llvm::append_range(values, s.xHi);
  for (const auto &w : s.w)
    llvm::append_range(values, w);
}

StepChunks stepOf(ValueRange values) {
  StepChunks s;
  for (int64_t i = 0; i < 4; ++i) {
    s.xLo[i] = values[i];
    s.xHi[i] = values[4 + i];
    for (int64_t t = 0; t < kTiles; ++t)
      s.w[t][i] = values[8 + 4 * t + i];
  }
  return s;
}

/// 1-2. The warp's share of K: steps `warp`, `warp + warps`, ... (K order
/// is free). With few steps a warp loads them all before multiplying; with
/// many it loads a group ahead: the loop carries the next group's chunks.
SmallVector<Value> accumulate(IB &b, const MatmulArgs &args,
                              const GemvBlock &blk, int64_t k,
                              std::optional<double> clip) {
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  int64_t stride = blk.warps * kStep;
  int64_t stepsPerWarp = llvm::divideCeil(k, stride);
  bool pipelined = stepsPerWarp > kMaxBurstSteps;
  int64_t unroll = pipelined ? kPipelinedUnroll : stepsPerWarp;
  // Steps past K read clamped addresses and yield zeros.
  auto loadGroup = [&](IB &lb, Idx k0) {
    SmallVector<Value> values;
    for (int64_t u = 0; u < unroll; ++u)
      appendStep(values, loadStep(lb, args, blk, k, clip,
                                  k0 + blk.w.warp * kStep + u * stride));
    return values;
  };
  auto multiplyGroup = [&](IB &lb, ValueRange values,
                           MutableArrayRef<Value> acc) {
    for (int64_t u = 0; u < unroll; ++u)
      multiplyStep(lb, element,
                   stepOf(values.slice(u * kValuesPerStep, kValuesPerStep)),
                   acc);
  };
  SmallVector<Value> init(kAcc, cF32(b, 0.0));
  if (!pipelined) {
    SmallVector<Value> acc(init);
    multiplyGroup(b, loadGroup(b, cIndex(b, 0)), acc);
    return acc;
  }
  llvm::append_range(init, loadGroup(b, cIndex(b, 0)));
  SmallVector<Value> out = forLoop(
      b, cIndex(b, 0), cIndex(b, k), stride * unroll, init,
      [&](IB &lb, Idx k0, ValueRange carried) {
        SmallVector<Value> next = loadGroup(lb, k0 + stride * unroll);
        SmallVector<Value> acc(carried.take_front(kAcc));
        multiplyGroup(lb, carried.drop_front(kAcc), acc);
        llvm::append_range(acc, next);
        return acc;
      });
  out.resize(kAcc);
  return out;
}

/// 3-4. The warps' partial sums added up through `reduction`; warp 0
/// stores the outputs: accumulator register r of tile t holds row
/// accRow(r) and column n0 + 8 t + accCol(r).
void reduceAndStore(IB &b, const MatmulArgs &args, const GemvBlock &blk,
                    ArrayRef<Value> acc, Value reduction, int64_t n,
                    ArrayRef<OutputSegment> segments) {
  shareWarpSums(b, acc, reduction, blk.w);
  ifThen(b, blk.w.warp == 0, [&](IB &sb) {
    for (int64_t i = 0; i < kAcc; ++i) {
      Value sum = sumOverWarps(sb, acc, reduction, i, blk.warps, blk.w.lane);
      int64_t r = i % 4;
      Idx row = accRow(blk.w, r);
      Idx col = blk.n0 + (i / 4 * 8) + accCol(blk.w, r);
      ifThen(sb, ult(sb, row, blk.rows) & ult(sb, col, cIndex(sb, n)),
             [&](IB &tb) {
               storeElements(tb, args, blk.weight, sum, row, col, n, segments);
             });
    }
  });
}

} // namespace

MemRefType gpu_lowering::gemvReductionType(MLIRContext *context,
                                           int64_t threads) {
  return MemRefType::get(
      {threads / 32, kAcc, 32}, Float32Type::get(context), AffineMap(),
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup));
}

void gpu_lowering::shareWarpSums(IB &b, ArrayRef<Value> acc, Value reduction,
                                 const WarpLayout &w) {
  for (auto [i, sum] : llvm::enumerate(acc))
    store(b, sum, reduction,
          {w.warp, cIndex(b, static_cast<int64_t>(i)), w.lane});
  gpu::BarrierOp::create(b);
}

Value gpu_lowering::sumOverWarps(IB &b, ArrayRef<Value> acc, Value reduction,
                                 int64_t i, int64_t warps, Idx lane) {
  Value sum = acc[i];
  for (int64_t other = 1; other < warps; ++other)
    sum = arith::AddFOp::create(
        b, sum, load(b, reduction, {cIndex(b, other), cIndex(b, i), lane}));
  return sum;
}

void gpu_lowering::buildGemv(IB &b, const MatmulArgs &args,
                             const WeightStack &stack,
                             std::optional<double> clip,
                             ArrayRef<OutputSegment> segments, Value reduction,
                             int64_t threads) {
  BuilderScope scope(b);
  GemvBlock blk;
  blk.w = WarpLayout::of(threadIdx(b));
  blk.warps = threads / 32;
  blk.rows = dim(b, args.x, 0);
  blk.n0 = blockIdx(b, gpu::Dimension::x) * kGemvColumns;
  blk.weight = selectWeight(b, args, stack, blk.n0);
  // (The loads clamp rows to M - 1: no row to clamp to when M is 0.)
  ifThen(b, ult(b, cIndex(b, 0), blk.rows), [&](IB &rb) {
    SmallVector<Value> acc = accumulate(rb, args, blk, stack.k, clip);
    reduceAndStore(rb, args, blk, acc, reduction, stack.n, segments);
  });
}
