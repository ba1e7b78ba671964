//===- GemvGPTQStreaming.cpp - the GPTQ GEMV streaming words to registers -===//
//
// Decode's projection of GPTQ int4 weights the way the bf16 GEMV
// (GemvKernel.cpp) reads W at 0.90 of copy: every lane keeps several
// 16-byte loads of packed words in flight, straight into registers (read
// once, not kept in L1), from clamped addresses without branches, the next
// group's loads issued before the current group is multiplied; many warps;
// no shared-memory ring. (GemvGPTQ.cpp is the TMA-ring form.)
//
// A block owns 32 output columns; its warps split K in units (128 k, or
// the group when smaller; a unit lies in one group). Per 32-deep step a
// lane of group g, quad q loads the word row 4 step + q at columns
// 4 g .. 4 g + 3 of the block (a warp reads four whole 128-byte rows) and
// x's 8 k of that word row for x row g (and g + 8).
//
// The decoded weights are A of mma.sync m16n8k16 and x is B (n8: 8 rows
// of x), so the order of output columns in A is ours to choose: A rows g
// and g + 8 of tile T are columns 4 g + 2 T and 4 g + 2 T + 1, the lane's
// own words. Nibble pairs (j, j + 4) of a word are A's k pairs, x's chunk
// is read in the same interleaved order (summing over K is order-free).
//
//   per warp w, units u = w, w + warps, ... in groups:
//     load the first group (words, x, scales)
//     for each group: load the next group; for each unit of this one:
//       part = sum over its steps of mma(decode(words), x)
//       acc += part * scale(unit's group, column)
//   the warps' acc meet in shared memory; warp 0 stores
//
//===----------------------------------------------------------------------===//

#include "GemmGPTQ.h"
#include "KernelArguments.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <numeric>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::kb::m16n8k16;

namespace {

/// Output columns of a block (a 128-byte row of words), as two m16 tiles.
constexpr int64_t kColumns = 32, kTiles = 2;
/// K of a step (four word rows, one per quad) and of the deepest unit.
constexpr int64_t kStepK = kGPTQStepK, kMaxUnitK = 128;
/// As GemvKernel.cpp: a warp with at most kMaxBurstSteps steps loads them
/// all before multiplying; one with more streams groups of about
/// kGroupSteps steps, the next group's loads out before the current one
/// multiplies. (Not yet tuned on a GPU.)
constexpr int64_t kMaxBurstSteps = 8, kGroupSteps = 4;

/// The schedule of a launch: `warps` split K in units of `unitSteps` steps,
/// `unitsPerWarp` each (the last ones past K read zeros of x), taken
/// `groupUnits` at a time.
struct Schedule {
  int64_t warps, xTiles, unitSteps, unitsPerWarp, groupUnits;

  static Schedule of(int64_t k, int64_t groupSize, int64_t warps,
                     int64_t xTiles) {
    Schedule s{warps, xTiles, std::gcd(groupSize, kMaxUnitK) / kStepK, 0, 0};
    int64_t units = llvm::divideCeil(k, s.unitK());
    s.unitsPerWarp = llvm::divideCeil(units, warps);
    s.groupUnits = s.unitsPerWarp * s.unitSteps <= kMaxBurstSteps
                       ? s.unitsPerWarp
                       : std::max<int64_t>(1, kGroupSteps / s.unitSteps);
    return s;
  }
  int64_t unitK() const { return unitSteps * kStepK; }
  int64_t groups() const { return llvm::divideCeil(unitsPerWarp, groupUnits); }
  /// f32 sums of a lane: 4 per m16 tile and n8 tile of x.
  int64_t accumulators() const { return 4 * kTiles * xTiles; }
  /// A unit's loads as values: per step the words and x's chunks, then the
  /// scales.
  int64_t valuesPerUnit() const { return unitSteps * (1 + xTiles) + 1; }
};

/// Where a block and this lane work.
struct GemvBlock {
  Schedule schedule;
  int64_t k;
  WarpLayout w;
  Idx rows;   // M
  Idx m0;     // the block's first row of x
  Idx n0;     // the block's first output column
  Idx column; // this lane's first column (4 g) in its weight, clamped
  BlockWeight words, scales;
  GPTQPartOrder wordOrder, scaleOrder;
  int64_t groupSize;
};

/// One unit's loads of this lane.
struct UnitLoads {
  SmallVector<Value> words; // per step: vector<4xi32>, columns 4 g + t
  SmallVector<Value> x;     // per step and x tile: vector<8 x element>
  Value scales;             // vector<4 x scale element>, columns 4 g + t

  void appendTo(SmallVector<Value> &values) const {
    llvm::append_range(values, words);
    llvm::append_range(values, x);
    values.push_back(scales);
  }
  static UnitLoads of(ValueRange values, const Schedule &s) {
    UnitLoads u;
    llvm::append_range(u.words, values.take_front(s.unitSteps));
    llvm::append_range(u.x, values.slice(s.unitSteps, s.unitSteps * s.xTiles));
    u.scales = values[s.valuesPerUnit() - 1];
    return u;
  }
};

/// 1. This lane's loads of the warp's i-th unit: its word rows (streamed),
/// x's chunks of them (zeros past K and past M), the unit's scales.
UnitLoads loadUnit(IB &b, const GemvBlock &blk, Value x, Idx i) {
  const Schedule &s = blk.schedule;
  Idx k0 = (blk.w.warp + i * s.warps) * s.unitK();
  auto xType = cast<MemRefType>(x.getType());
  auto chunkType = VectorType::get({8}, xType.getElementType());
  auto wordsType = VectorType::get({4}, b.getI32Type());
  Idx lastWordRow = dim(b, blk.words.weight, 0) - 1;
  Idx lastWordCol = dim(b, blk.words.weight, 1) - 4;
  UnitLoads u;
  for (int64_t step = 0; step < s.unitSteps; ++step) {
    Idx k = k0 + step * kStepK + blk.w.quad * 8;
    // Word rows past K (units past the end) hold any finite value: x is
    // zero there.
    auto [row, col] = blk.wordOrder.at(k / 8, blk.column);
    u.words.push_back(loadStreamingClampedOrZero(
        b, blk.words.weight, {row, col}, {lastWordRow, lastWordCol},
        cBool(b, true), wordsType));
    for (int64_t xt = 0; xt < s.xTiles; ++xt) {
      Idx m = blk.m0 + blk.w.group + 8 * xt;
      u.x.push_back(loadVectorClampedOrZero(
          b, x, {m, k}, {blk.rows - 1, cIndex(b, blk.k - 8)},
          ult(b, m, blk.rows) & ult(b, k, cIndex(b, blk.k)), chunkType));
    }
  }
  auto [row, col] = blk.scaleOrder.at(k0 / blk.groupSize, blk.column);
  Value scales = blk.scales.weight;
  u.scales = loadVectorClampedOrZero(
      b, scales, {row, col}, {dim(b, scales, 0) - 1, dim(b, scales, 1) - 4},
      cBool(b, true),
      VectorType::get({4},
                      cast<MemRefType>(scales.getType()).getElementType()));
  return u;
}

/// 2. acc += the unit's products, summed in f32 over its steps, times its
/// scales. acc[(xt * kTiles + T) * 4 + r]: register r of m16 tile T and x
/// tile xt, column 4 g + 2 T + r / 2, x row 8 xt + 2 q + r % 2.
void multiplyUnit(IB &b, const Schedule &s, Type element, const UnitLoads &u,
                  MutableArrayRef<Value> acc) {
  SmallVector<Value> part(acc.size(), cF32(b, 0.0));
  for (int64_t step = 0; step < s.unitSteps; ++step) {
    std::array<Value, 4> words;
    for (int64_t t = 0; t < 4; ++t)
      words[t] =
          vector::ExtractOp::create(b, u.words[step], ArrayRef<int64_t>{t});
    for (int64_t xt = 0; xt < s.xTiles; ++xt) {
      std::array<Value, 4> xPairs =
          chunkPairs(b, u.x[step * s.xTiles + xt], /*interleave=*/true);
      for (int64_t tile = 0; tile < kTiles; ++tile) {
        Value rowLo = words[2 * tile], rowHi = words[2 * tile + 1];
        // k16 half j: A's pairs 2 j (k 2 q, 2 q + 1) and 2 j + 1 (k 2 q + 8).
        for (int64_t j = 0; j < 2; ++j) {
          int64_t p = 2 * j;
          std::array<Value, 4> a = {
              decodeGPTQNibblePair(b, rowLo, p, element),
              decodeGPTQNibblePair(b, rowHi, p, element),
              decodeGPTQNibblePair(b, rowLo, p + 1, element),
              decodeGPTQNibblePair(b, rowHi, p + 1, element)};
          MutableArrayRef<Value> c =
              MutableArrayRef<Value>(part).slice((xt * kTiles + tile) * 4, 4);
          std::array<Value, 4> d =
              mma16816(b, element, a, {xPairs[p], xPairs[p + 1]}, c);
          llvm::copy(d, c.begin());
        }
      }
    }
  }
  for (auto [i, sum] : llvm::enumerate(part)) {
    int64_t tile = i / 4 % kTiles, r = i % 4;
    Value scale =
        toF32(b, vector::ExtractOp::create(
                     b, u.scales, ArrayRef<int64_t>{2 * tile + r / 2}));
    acc[i] = math::FmaOp::create(b, sum, scale, acc[i]);
  }
}

/// 1-2. The warp's units, a group ahead: the loop carries the sums and the
/// next group's loads.
SmallVector<Value> accumulate(IB &b, const GemvBlock &blk, Value x) {
  const Schedule &s = blk.schedule;
  Type element = cast<MemRefType>(x.getType()).getElementType();
  auto loadGroup = [&](IB &lb, Idx first) {
    SmallVector<Value> values;
    for (int64_t u = 0; u < s.groupUnits; ++u)
      loadUnit(lb, blk, x, first + u).appendTo(values);
    return values;
  };
  auto multiplyGroup = [&](IB &lb, ValueRange values,
                           MutableArrayRef<Value> acc) {
    for (int64_t u = 0; u < s.groupUnits; ++u)
      multiplyUnit(
          lb, s, element,
          UnitLoads::of(values.slice(u * s.valuesPerUnit(), s.valuesPerUnit()),
                        s),
          acc);
  };
  SmallVector<Value> init(s.accumulators(), cF32(b, 0.0));
  if (s.groups() == 1) {
    SmallVector<Value> acc(init);
    multiplyGroup(b, loadGroup(b, cIndex(b, 0)), acc);
    return acc;
  }
  llvm::append_range(init, loadGroup(b, cIndex(b, 0)));
  SmallVector<Value> out =
      forLoop(b, cIndex(b, 0), cIndex(b, s.groups() * s.groupUnits),
              s.groupUnits, init, [&](IB &lb, Idx first, ValueRange carried) {
                SmallVector<Value> next = loadGroup(lb, first + s.groupUnits);
                SmallVector<Value> acc(carried.take_front(s.accumulators()));
                multiplyGroup(lb, carried.drop_front(s.accumulators()), acc);
                llvm::append_range(acc, next);
                return acc;
              });
  out.resize(s.accumulators());
  return out;
}

/// 3. The warps' sums meet in `reduction`; warp 0 adds them and stores
/// x row 8 xt + 2 q + e at columns 4 g .. 4 g + 3: registers e and e + 2 of
/// both tiles.
void reduceAndStore(IB &b, const GPTQGemmArgs &args, const GemvBlock &blk,
                    ArrayRef<Value> acc, Value reduction, int64_t n,
                    ArrayRef<OutputSegment> segments) {
  const Schedule &s = blk.schedule;
  shareWarpSums(b, acc, reduction, blk.w);
  MatmulArgs out{args.x, {}, {}, args.outputs, {}};
  ifThen(b, blk.w.warp == 0, [&](IB &sb) {
    for (int64_t xt = 0; xt < s.xTiles; ++xt) {
      for (int64_t e = 0; e < 2; ++e) {
        Idx row = blk.m0 + (8 * xt + e) + blk.w.quad * 2;
        Idx col = blk.n0 + blk.w.group * 4;
        ifThen(sb, ult(sb, row, blk.rows) & ult(sb, col, cIndex(sb, n)),
               [&](IB &tb) {
                 SmallVector<Value> values;
                 for (int64_t tile = 0; tile < kTiles; ++tile)
                   for (int64_t r : {e, e + 2})
                     values.push_back(sumOverWarps(tb, acc, reduction,
                                                   (xt * kTiles + tile) * 4 + r,
                                                   s.warps, blk.w.lane));
                 storeElements(tb, out, blk.words, values, row, col, n,
                               segments);
               });
      }
    }
  });
}

/// The block's place: its rows and columns and the weight holding them.
GemvBlock placeBlock(IB &b, const GPTQGemmArgs &args, const WeightStack &stack,
                     const Schedule &schedule, int64_t groupSize) {
  GemvBlock blk;
  blk.schedule = schedule;
  blk.k = stack.k;
  blk.groupSize = groupSize;
  blk.wordOrder = args.wordOrder;
  blk.scaleOrder = args.scaleOrder;
  blk.w = WarpLayout::of(threadIdx(b));
  blk.rows = dim(b, args.x, 0);
  blk.m0 = blockIdx(b, gpu::Dimension::y) * (8 * schedule.xTiles);
  blk.n0 = blockIdx(b, gpu::Dimension::x) * kColumns;
  // Every weight but the last spans whole blocks (quantizedGemvCanShare).
  blk.words = selectWeight(b, MatmulArgs{args.x, args.packed, {}, {}, {}},
                           stack, blk.n0);
  blk.scales = selectWeight(b, MatmulArgs{args.x, args.scales, {}, {}, {}},
                            stack, blk.n0);
  // Columns past N (a 4-aligned chunk lies wholly past it: N is a multiple
  // of 8) read the weight's last chunk and are not stored.
  blk.column =
      min(b, blk.n0 - blk.words.begin + blk.w.group * 4, blk.words.rows - 4);
  return blk;
}

void buildGPTQStreamingGemv(IB &b, const GPTQGemmArgs &args,
                            const WeightStack &stack, const Schedule &schedule,
                            int64_t groupSize, Value reduction,
                            ArrayRef<OutputSegment> segments) {
  BuilderScope scope(b);
  // M = 0 (launched for the checks the launch may carry): no row to clamp
  // x's loads to.
  ifThen(b, dim(b, args.x, 0) != 0, [&](IB &kb) {
    GemvBlock blk = placeBlock(kb, args, stack, schedule, groupSize);
    SmallVector<Value> acc = accumulate(kb, blk, args.x);
    reduceAndStore(kb, args, blk, acc, reduction, stack.n, segments);
  });
}

/// One launch over 8 xTiles rows of x a grid row.
void launchGPTQStreamingGemv(KernelEmitter &e, IB &host,
                             const GPTQGemmArgs &args, const WeightStack &stack,
                             int64_t groupSize, ArrayRef<OutputSegment> outputs,
                             int64_t xTiles, StringRef name) {
  // As the bf16 GEMV: as many warps as keep every block resident at once,
  // so that no second, partial wave runs. ptxas (sm_90a, K 4096) gives
  // the kernel 80 registers a thread at 8 rows, 124 at 16: about 800 and
  // 520 threads a multiprocessor.
  int64_t blocks = llvm::divideCeil(stack.n, kColumns);
  int64_t sms = e.options().smCount;
  int64_t warps = blocks <= sms ? 16 : blocks <= 2 * sms ? 8 : 4;
  Schedule schedule = Schedule::of(stack.k, groupSize, warps, xTiles);
  MLIRContext *context = host.getContext();
  auto reductionType = MemRefType::get(
      {warps, schedule.accumulators(), 32}, Float32Type::get(context),
      AffineMap(),
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup));
  auto [kernel, b, kernelArgs] =
      createKernel(e, host.getLoc(), name, args, {reductionType}, warps * 32);
  buildGPTQStreamingGemv(b, kernelArgs, stack, schedule, groupSize,
                         kernel.getWorkgroupAttributions()[0], outputs);
  e.launch(host, kernel,
           {cIndex(host, blocks),
            ceilDiv(host, dim(host, args.x, 0), 8 * xTiles), cIndex(host, 1)},
           warps * 32, argumentList(args));
}

} // namespace

void gpu_lowering::emitGPTQStreamingGemv(KernelEmitter &e, IB &host,
                                         const GPTQGemmArgs &args,
                                         const WeightStack &stack,
                                         int64_t groupSize,
                                         ArrayRef<OutputSegment> outputs) {
  ifThenElse(
      host, ule(host, dim(host, args.x, 0), cIndex(host, 8)),
      [&](IB &nb) {
        launchGPTQStreamingGemv(e, nb, args, stack, groupSize, outputs, 1,
                                "gemv_gptq_streaming");
      },
      [&](IB &wb) {
        launchGPTQStreamingGemv(e, wb, args, stack, groupSize, outputs, 2,
                                "gemv_gptq_streaming_m16");
      });
}
