//===- GemvQuantKernel.cpp - projections of GPTQ / float8 weights ---------===//
//
// The entry of quantised projections (emitQuantizedMatmul): a prologue
// prepares x once per call (GPTQ desc_act: permuted; float8: E4M3 bytes and
// their per-row scale), then M picks the kernel: GPTQ's GEMV (GemvGPTQ.cpp)
// or GEMM (GemmGPTQ.cpp), float8's GEMV (here) or wgmma GEMM.
//
// The float8 GEMV streams `weight [N, K]` E4M3 bytes once. A block owns 32
// output columns as four n8 mma tiles, interleaved (tile t's column c is
// the block's column 4 c + t, so one lane's 16-byte load feeds all four
// tiles), and 16 rows of x (blockIdx.y: larger M runs one 16-row slice per
// block row, rereading W); its warps split K in spans of consecutive k
// steps. A step is 64 k, 16 per lane quad; both operands go to m16n8k32
// mma.sync on E4M3 as loaded (no conversion in the loop); the loads have no
// branches, weights through the streaming path. Summing over K is
// order-free, so x's fragments are loaded in the same K order as the
// weights. Scales multiply the f32 sums (per 128-deep block, or once on the
// output), so the kernel differs from the reference by f32 accumulation
// only.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseKernels.h"
#include "GemmGPTQ.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::kb::m16n8k16;

namespace {

/// n8 mma tiles of a block, accumulator registers per lane.
constexpr int64_t kTiles = kQuantGemvColumns / 8, kAcc = kTiles * 4;
/// Rows of x per block (one m16 tile).
constexpr int64_t kRows = 16;
constexpr double kE4M3Max = 448.0;

/// The GEMV's arguments: the prepared x ([M, K]: permuted for GPTQ
/// desc_act, E4M3 bytes for float8), float8's per-row input scale
/// ([M] f32), each weight's packed values and scales, biases, outputs.
struct QuantGemvArgs {
  Value x, inputScale;
  SmallVector<Value> packed, scales, biases, outputs;

  template <typename F> void forEach(F f) {
    f(x);
    f(inputScale);
    for (Value &v : packed)
      f(v);
    for (Value &v : scales)
      f(v);
    for (Value &v : biases)
      f(v);
    for (Value &v : outputs)
      f(v);
  }
};

/// Where a block and its warps work.
struct QuantBlock {
  WarpLayout w;
  int64_t warps;
  Idx rows, m0, n0; // M, the block's first row and column
  BlockWeight weight; // the packed part of the weight holding n0
  Value scales;       // its scales part

  /// Column of `weight` of the block's tile t, tile column c.
  Idx column(Idx c, int64_t t) const { return n0 - weight.begin + (c * 4 + t); }
};

/// `acc[i] += part[i] * scale(i)` (f32).
void addScaled(IB &b, ArrayRef<Value> part, MutableArrayRef<Value> acc,
               function_ref<Value(int64_t)> scale) {
  for (int64_t i = 0; i < kAcc; ++i)
    acc[i] = math::FmaOp::create(b, part[i], scale(i), acc[i]);
}

//===----------------------------------------------------------------------===//
// float8
//===----------------------------------------------------------------------===//

struct Float8Steps {
  /// K of one step: 16 k (one 16-byte load per tile) per lane quad.
  static constexpr int64_t kStep = 64;
  /// Steps per span: 2 x 64 bytes of weights per lane in flight at once;
  /// spans of 4 hold too many registers for two 8-warp blocks per SM (H200,
  /// 14336 x 4096 at M = 1: 20.7 us against 28.1 us with 4 steps and one
  /// 16-warp block).
  static constexpr int64_t kSpanSteps = 2;

  Float8ScaleGranularity granularity;

  std::optional<int64_t> scaleSpan() const {
    if (granularity == Float8ScaleGranularity::Block)
      return Float8Attr::kBlockSize;
    return std::nullopt;
  }

  struct Step {
    std::array<Value, 4> xLo, xHi; // words of 4 E4M3 bytes, rows g, g + 8
    std::array<std::array<Value, 4>, kTiles> w; // 16 E4M3 bytes as words
    Value blockScale; // block granularity: the step's scale
  };

  /// 16 bytes of the 2-D byte memref `src` at (row, col) as 4 words, read
  /// without a branch (measured on an H200, K 4096 x N 14336, M = 1: 41.8
  /// us behind branches, 39.0 us without), zeros unless `valid`; a weight
  /// through the streaming path.
  static std::array<Value, 4> loadWords(IB &b, Value src, Idx row, Idx col,
                                        Value valid, bool weight) {
    auto bytesType = VectorType::get(
        {16}, cast<MemRefType>(src.getType()).getElementType());
    SmallVector<Idx> last = {dim(b, src, 0) - 1, dim(b, src, 1) - 16};
    Value bytes =
        weight ? loadStreamingClampedOrZero(b, src, {row, col}, last, valid,
                                            bytesType)
               : loadVectorClampedOrZero(b, src, {row, col}, last, valid,
                                         bytesType);
    return chunkPairs(b, bytes);
  }

  Step load(IB &b, const QuantGemvArgs &args, const QuantBlock &blk, int64_t k,
            Idx k0, bool withScale) const {
    Step s;
    Idx kc = k0 + blk.w.quad * 16;
    Idx kOk = ult(b, kc, cIndex(b, k));
    for (int64_t t = 0; t < kTiles; ++t) {
      Idx row = blk.column(blk.w.group, t);
      s.w[t] = loadWords(b, blk.weight.weight, row, kc,
                         kOk & ult(b, row, blk.weight.rows), /*weight=*/true);
    }
    Idx xRow = blk.m0 + blk.w.group;
    s.xLo = loadWords(b, args.x, xRow, kc, kOk & ult(b, xRow, blk.rows),
                      /*weight=*/false);
    Idx xRowHi = xRow + 8;
    s.xHi = loadWords(b, args.x, xRowHi, kc, kOk & ult(b, xRowHi, blk.rows),
                      /*weight=*/false);
    if (withScale && granularity == Float8ScaleGranularity::Block) {
      // The block's 32 columns lie in one 128-row block; steps past K
      // (whose products are zero) read block 0.
      constexpr int64_t block = Float8Attr::kBlockSize;
      Idx kBlock = select(b, ult(b, k0, cIndex(b, k)), k0, cIndex(b, 0));
      s.blockScale = kb::load(b, blk.scales,
                          {(blk.n0 - blk.weight.begin) / block, kBlock / block});
    }
    return s;
  }

  /// `c + a * b` by mma.sync m16n8k32 on E4M3 operands (sm_89 and later;
  /// no NVVM op for it in MLIR 22): A rows g / g + 8 at k 4 quad .. + 3
  /// (a0, a1) and 16 + 4 quad .. + 3 (a2, a3); B column g at the same k.
  static std::array<Value, 4> mma16832(IB &b, ArrayRef<Value> a,
                                       ArrayRef<Value> bFrag,
                                       ArrayRef<Value> c) {
    Type f32 = b.getF32Type();
    auto resultType = LLVM::LLVMStructType::getLiteral(
        b.getContext(), SmallVector<Type>(4, f32));
    SmallVector<Value> operands(a);
    llvm::append_range(operands, bFrag);
    llvm::append_range(operands, c);
    auto mma = LLVM::InlineAsmOp::create(
        b, b.getLoc(), resultType, operands,
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
        "{$0, $1, $2, $3}, {$4, $5, $6, $7}, {$8, $9}, {$10, $11, $12, $13};",
        "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f", /*has_side_effects=*/false,
        /*is_align_stack=*/false, LLVM::TailCallKind::None,
        /*asm_dialect=*/nullptr, /*operand_attrs=*/nullptr);
    std::array<Value, 4> d;
    for (int64_t i = 0; i < 4; ++i)
      d[i] = LLVM::ExtractValueOp::create(b, mma.getResult(0), i);
    return d;
  }

  /// A lane's 16 bytes of k (x's and W's alike) feed two m16n8k32: mma j
  /// takes words 2 j (its k 4 quad ..) and 2 j + 1 (its k 16 + 4 quad ..).
  /// Summing over K is order-free, so x and W only need the same order.
  void multiply(IB &b, const Step &s, MutableArrayRef<Value> part) const {
    for (int64_t j = 0; j < 2; ++j) {
      std::array<Value, 4> a = {s.xLo[2 * j], s.xHi[2 * j], s.xLo[2 * j + 1],
                                s.xHi[2 * j + 1]};
      for (int64_t t = 0; t < kTiles; ++t) {
        const std::array<Value, 4> &w = s.w[t];
        MutableArrayRef<Value> c = part.slice(t * 4, 4);
        std::array<Value, 4> d = mma16832(b, a, {w[2 * j], w[2 * j + 1]}, c);
        llvm::copy(d, c.begin());
      }
    }
  }

  void applyScale(IB &b, const Step &s, ArrayRef<Value> part,
                  MutableArrayRef<Value> acc) const {
    addScaled(b, part, acc, [&](int64_t) { return s.blockScale; });
  }

  /// `s_x[row]` times the row or tensor weight scale of `col` (a column of
  /// the block's weight).
  Value outputScale(IB &b, const QuantGemvArgs &args, const QuantBlock &blk,
                    Idx row, Idx col) const {
    Value scale = kb::load(b, args.inputScale, {row});
    if (granularity == Float8ScaleGranularity::Block)
      return scale;
    Idx index = granularity == Float8ScaleGranularity::Row ? col : cIndex(b, 0);
    return arith::MulFOp::create(b, scale, kb::load(b, blk.scales, {index}));
  }
};

//===----------------------------------------------------------------------===//
// The kernel
//===----------------------------------------------------------------------===//

/// The warp's share of K: spans `warp`, `warp + warps`, ... of kSpanSteps
/// consecutive steps, all loaded before any is multiplied. Products go
/// straight into the accumulators when the scale applies to the output,
/// else through a partial sum scaled once per span (when one scale covers
/// it) or per step.
template <typename Steps>
SmallVector<Value> accumulate(IB &b, const Steps &steps,
                              const QuantGemvArgs &args, const QuantBlock &blk,
                              int64_t k) {
  constexpr int64_t kUnroll = Steps::kSpanSteps;
  int64_t span = Steps::kStep * kUnroll;
  std::optional<int64_t> scaleSpan = steps.scaleSpan();
  bool scalePerSpan = scaleSpan && *scaleSpan % span == 0;
  SmallVector<Value> init(kAcc, cF32(b, 0.0));
  return forLoop(
      b, cIndex(b, 0), cIndex(b, k), blk.warps * span, init,
      [&](IB &lb, Idx k0, ValueRange accIn) {
        SmallVector<typename Steps::Step> loaded;
        for (int64_t u = 0; u < kUnroll; ++u)
          loaded.push_back(steps.load(
              lb, args, blk, k, k0 + blk.w.warp * span + u * Steps::kStep,
              /*withScale=*/scaleSpan && (u == 0 || !scalePerSpan)));
        SmallVector<Value> acc(accIn);
        if (!scaleSpan) {
          for (const auto &s : loaded)
            steps.multiply(lb, s, acc);
          return acc;
        }
        SmallVector<Value> part(kAcc, cF32(lb, 0.0));
        for (auto [u, s] : llvm::enumerate(loaded)) {
          steps.multiply(lb, s, part);
          if (scalePerSpan && u + 1 < loaded.size())
            continue;
          steps.applyScale(lb, scalePerSpan ? loaded.front() : s, part, acc);
          part.assign(kAcc, cF32(lb, 0.0));
        }
        return acc;
      });
}

/// The warps' partial sums meet in `reduction`; warp 0 scales them and
/// stores the outputs: register r of tile t is row accRow(r), column
/// 4 accCol(r) + t, so the four tiles' registers r are 4 adjacent columns.
template <typename Steps>
void reduceAndStore(IB &b, const Steps &steps, const QuantGemvArgs &args,
                    const QuantBlock &blk, ArrayRef<Value> acc,
                    Value reduction, const WeightStack &stack,
                    ArrayRef<OutputSegment> segments) {
  shareWarpSums(b, ArrayRef<Value>(acc).take_front(kAcc), reduction, blk.w);
  MatmulArgs out{args.x, {}, {}, args.outputs, {}};
  ifThen(b, blk.w.warp == 0, [&](IB &sb) {
    for (int64_t r = 0; r < 4; ++r) {
      Idx row = blk.m0 + accRow(blk.w, r);
      Idx col = blk.n0 + accCol(blk.w, r) * 4;
      ifThen(sb, ult(sb, row, blk.rows) & ult(sb, col, cIndex(sb, stack.n)),
             [&](IB &tb) {
               SmallVector<Value> values;
               for (int64_t t = 0; t < kTiles; ++t) {
                 int64_t i = t * 4 + r;
                 Value sum = sumOverWarps(tb, acc, reduction, i, blk.warps,
                                          blk.w.lane);
                 if (Value scale = steps.outputScale(
                         tb, args, blk, row, col - blk.weight.begin + t))
                   sum = arith::MulFOp::create(tb, sum, scale);
                 values.push_back(sum);
               }
               storeElements(tb, out, blk.weight, values, row, col, stack.n,
                             segments);
             });
    }
  });
}

template <typename Steps>
void buildQuantGemv(IB &b, const Steps &steps, const QuantGemvArgs &args,
                    const WeightStack &stack, ArrayRef<OutputSegment> segments,
                    Value reduction, int64_t threads) {
  BuilderScope scope(b);
  QuantBlock blk;
  blk.w = WarpLayout::of(threadIdx(b));
  blk.warps = threads / 32;
  blk.rows = dim(b, args.x, 0);
  blk.m0 = blockIdx(b, gpu::Dimension::y) * kRows;
  blk.n0 = blockIdx(b, gpu::Dimension::x) * kQuantGemvColumns;
  blk.weight = selectWeight(b, MatmulArgs{args.x, args.packed, args.biases, {}, {}},
                            stack, blk.n0);
  blk.scales =
      selectWeight(b, MatmulArgs{args.x, args.scales, {}, {}, {}}, stack, blk.n0)
          .weight;
  SmallVector<Value> acc = accumulate(b, steps, args, blk, stack.k);
  reduceAndStore(b, steps, args, blk, acc, reduction, stack, segments);
}

//===----------------------------------------------------------------------===//
// Prologues: x prepared once per call
//===----------------------------------------------------------------------===//

struct PermuteArgs {
  Value x, perm, out;

  template <typename F> void forEach(F f) { f(x), f(perm), f(out); }
};

/// `out[t, r] = x[t, perm[r]]`, a thread per element.
void emitPermuteColumns(KernelEmitter &e, IB &host, Value x, Value perm,
                        Value out) {
  int64_t k = cast<MemRefType>(x.getType()).getDimSize(1);
  Idx count = dim(host, x, 0) * k;
  elementwise::emitPerItem(
      e, host, "gptq_permute_x", count, PermuteArgs{x, perm, out},
      [&](IB &b, Idx item, const PermuteArgs &a) {
        Idx t = item / k, r = item % k;
        store(b, load(b, a.x, {t, loadIndex(b, a.perm, {r})}), a.out, {t, r});
      });
}

struct QuantizeInputArgs {
  Value x, staticScale, x8, scale, rows;

  template <typename F> void forEach(F f) {
    f(x), f(staticScale), f(x8), f(scale), f(rows);
  }
};

/// Threads of the x prologue: a block per row, 8 elements per thread and
/// step (a warp per row took about 10 us for one 4096-wide row, a quarter
/// of the decode GEMV it feeds).
constexpr int64_t kQuantizeThreads = 256, kQuantizeChunk = 8;

/// float8's input: per row `s = input_scale` or `min(max |x|, bound) /
/// 448`, and `x8 = E4M3(clamp(x / s, -448, 448))` (round to nearest even,
/// by cvt.satfinite), as E4M3 bytes (the operands of the GEMV's mma.sync
/// and of the GEMM's wgmma); a row with s = 0 gives zeros. A block per row;
/// its warps' maxima meet in `partial`.
void buildQuantizeInput(IB &b, const QuantizeInputArgs &k,
                        std::optional<double> bound, Value partial) {
  BuilderScope scope(b);
  Idx row = blockIdx(b, gpu::Dimension::x), thread = threadIdx(b);
  Idx lane = thread % 32, warp = thread / 32;
  Idx width = dim(b, k.x, 1);
  Type element = cast<MemRefType>(k.x.getType()).getElementType();
  auto chunkType = VectorType::get({kQuantizeChunk}, element);
  auto f32Chunk = VectorType::get({kQuantizeChunk}, b.getF32Type());
  // K is a multiple of 16 (checkQuantizedGemv), so no chunk crosses it;
  // thread t takes chunks t, t + threads, ...
  Idx firstChunk = thread * kQuantizeChunk;
  int64_t chunkStride = kQuantizeThreads * kQuantizeChunk;
  auto loadChunk = [&](IB &lb, Idx c) -> Value {
    Value loaded =
        vector::LoadOp::create(lb, chunkType, k.x, ValueRange{row, c});
    return arith::ExtFOp::create(lb, f32Chunk, loaded);
  };
  ifThen(b, ult(b, row, k.rows), [&](IB &tb) {
    Value s;
    if (k.staticScale) {
      s = load(tb, k.staticScale, {cIndex(tb, 0)});
    } else {
      Value amax = forLoop(
          tb, firstChunk, width, chunkStride, {cF32(tb, 0.0)},
          [&](IB &lb, Idx c, ValueRange m) {
            Value chunkMax = vector::ReductionOp::create(
                lb, vector::CombiningKind::MAXIMUMF,
                math::AbsFOp::create(lb, loadChunk(lb, c)));
            return SmallVector<Value>{
                arith::MaximumFOp::create(lb, m[0], chunkMax)};
          })[0];
      for (int64_t mask = 16; mask >= 1; mask /= 2)
        amax = arith::MaximumFOp::create(tb, amax, shuffleXor(tb, amax, mask));
      ifThen(tb, lane == 0,
             [&](IB &sb) { store(sb, amax, partial, {warp}); });
      gpu::BarrierOp::create(tb);
      amax = load(tb, partial, {cIndex(tb, 0)});
      for (int64_t w = 1; w < kQuantizeThreads / 32; ++w)
        amax = arith::MaximumFOp::create(tb, amax,
                                         load(tb, partial, {cIndex(tb, w)}));
      if (bound)
        amax = arith::MinimumFOp::create(tb, amax, cF32(tb, *bound));
      s = arith::DivFOp::create(tb, amax, cF32(tb, kE4M3Max));
    }
    ifThen(tb, thread == 0, [&](IB &sb) { store(sb, s, k.scale, {row}); });
    Value positive =
        arith::CmpFOp::create(tb, arith::CmpFPredicate::OGT, s, cF32(tb, 0));
    Value safe = select(tb, positive, s, cF32(tb, 1.0));
    auto bytesType = VectorType::get(
        {kQuantizeChunk}, cast<MemRefType>(k.x8.getType()).getElementType());
    TypeAttr e4m3 = TypeAttr::get(tb.getType<Float8E4M3FNType>());
    forLoop(tb, firstChunk, width, chunkStride, [&](IB &lb, Idx c) {
      Value scaled = arith::DivFOp::create(
          lb, loadChunk(lb, c), vector::BroadcastOp::create(lb, f32Chunk, safe));
      SmallVector<Value> bytes;
      for (int64_t i = 0; i < kQuantizeChunk; i += 2) {
        auto at = [&](int64_t j) {
          return vector::ExtractOp::create(lb, scaled, ArrayRef<int64_t>{j});
        };
        // The first operand lands in the upper byte.
        Value pair = NVVM::ConvertF32x2ToF8x2Op::create(
            lb, VectorType::get({2}, lb.getI8Type()), at(i + 1), at(i),
            NVVM::FPRoundingModeAttr::get(lb.getContext(),
                                          NVVM::FPRoundingMode::RN),
            NVVM::SaturationModeAttr::get(lb.getContext(),
                                          NVVM::SaturationMode::SATFINITE),
            /*relu=*/lb.getBoolAttr(false), e4m3);
        for (int64_t j = 0; j < 2; ++j)
          bytes.push_back(
              vector::ExtractOp::create(lb, pair, ArrayRef<int64_t>{j}));
      }
      Value out = vector::BitCastOp::create(
          lb, bytesType,
          vector::FromElementsOp::create(
              lb, VectorType::get({kQuantizeChunk}, lb.getI8Type()), bytes));
      out = select(lb, positive, out, zero(lb, bytesType));
      vector::StoreOp::create(lb, out, k.x8, ValueRange{row, c});
    });
  });
}

void emitQuantizeInput(KernelEmitter &e, IB &host, Value x, Value staticScale,
                       std::optional<double> bound, Value x8, Value scale) {
  QuantizeInputArgs args{x, staticScale, x8, scale, dim(host, x, 0)};
  auto partialType = MemRefType::get(
      {kQuantizeThreads / 32}, host.getF32Type(), AffineMap(),
      gpu::AddressSpaceAttr::get(host.getContext(),
                                 gpu::AddressSpace::Workgroup));
  auto [kernel, b, kernelArgs] =
      createKernel(e, host.getLoc(), "float8_quantize_x", args, {partialType},
                   kQuantizeThreads);
  buildQuantizeInput(b, kernelArgs, bound,
                     kernel.getWorkgroupAttributions()[0]);
  e.launch(host, kernel, {args.rows, cIndex(host, 1), cIndex(host, 1)},
           kQuantizeThreads, argumentList(args));
}

//===----------------------------------------------------------------------===//
// Host side
//===----------------------------------------------------------------------===//

/// A device buffer for the call (freed after the GEMV on the same stream).
Value allocate(IB &b, MemRefType type, ValueRange dynamicSizes) {
  return gpu::AllocOp::create(b, type, Type(), ValueRange{}, dynamicSizes,
                              ValueRange{})
      .getMemref();
}

/// The dimension holding N in each part: GPTQ stores words and scales
/// along N ([K/8, N], [K/g, N]), float8 rows along N.
int64_t columnDim(WeightEncodingAttrInterface encoding) {
  return isa<GPTQAttr>(encoding) ? 1 : 0;
}

/// The stack of quantised weights along N.
WeightStack stackOf(ArrayRef<QuantizedWeightBuffers> weights) {
  WeightStack stack;
  for (const QuantizedWeightBuffers &w : weights) {
    stack.begin.push_back(stack.n);
    stack.rows.push_back(w.type.getRows());
    stack.n += w.type.getRows();
  }
  stack.k = weights[0].type.getCols();
  return stack;
}

/// Part `part` of every weight, with the dimension along N dynamic when
/// several weights share one kernel argument type.
SmallVector<Value> partOfEach(IB &host,
                              ArrayRef<QuantizedWeightBuffers> weights,
                              int64_t part, int64_t nDim) {
  SmallVector<Value> values;
  for (const QuantizedWeightBuffers &w : weights)
    values.push_back(weights.size() > 1 ? withDynamicDim(host, w.parts[part], nDim)
                                        : w.parts[part]);
  return values;
}

/// Part `part` of GPTQ `column_blocks` weights ([N/32, rows, 32]) as the
/// 2-D [N/32 * rows, 32] the kernels read (GPTQPartOrder), rows dynamic when
/// several weights share one kernel argument type.
SmallVector<Value> columnBlocksOfEach(IB &host,
                                      ArrayRef<QuantizedWeightBuffers> weights,
                                      int64_t part) {
  SmallVector<Value> values;
  for (const QuantizedWeightBuffers &w : weights) {
    Value blocks = memref::CollapseShapeOp::create(
        host, w.parts[part], ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    values.push_back(weights.size() > 1 ? withDynamicDim(host, blocks, 0)
                                        : blocks);
  }
  return values;
}

SmallVector<Value> biasesOf(IB &host, ArrayRef<Value> biases,
                            size_t weightCount) {
  SmallVector<Value> values(biases);
  if (weightCount > 1)
    for (Value &v : values)
      v = withDynamicDim(host, v, 0);
  return values;
}

/// float8's x prologue into a new `[M, K]` buffer of E4M3 bytes and its
/// per-row scale; both are appended to `temporaries`.
std::pair<Value, Value> quantizeInput(KernelEmitter &e, IB &host, Value x,
                                      Float8Attr float8, Value staticScale,
                                      int64_t k,
                                      SmallVector<Value> &temporaries) {
  Type element = host.getType<Float8E4M3FNType>();
  Idx rows = dim(host, x, 0);
  Value x8 = allocate(
      host, MemRefType::get({ShapedType::kDynamic, k}, element), {rows});
  Value scale = allocate(
      host, MemRefType::get({ShapedType::kDynamic}, host.getF32Type()), {rows});
  std::optional<double> bound;
  if (float8.getUpperBound())
    bound = float8.getUpperBound()->convertToDouble();
  emitQuantizeInput(e, host, x, staticScale, bound, x8, scale);
  temporaries.append({x8, scale});
  return {x8, scale};
}

void freeAll(IB &host, ArrayRef<Value> temporaries) {
  for (Value t : temporaries)
    gpu::DeallocOp::create(host, Type(), ValueRange{}, t);
}

/// The kernels' arguments, with the prologue run: x as they read it (GPTQ
/// desc_act: permuted; float8: E4M3 bytes, and the per-row scale),
/// in buffers appended to `temporaries`. Every launch path starts with the
/// prologue where there is one, so it alone carries the index checks.
QuantGemvArgs prepareArgs(KernelEmitter &e, IB &host, Value x,
                          ArrayRef<QuantizedWeightBuffers> weights,
                          ArrayRef<Value> biases,
                          ArrayRef<OutputSegment> outputs,
                          SmallVector<Value> &temporaries) {
  WeightEncodingAttrInterface encoding = weights[0].type.getEncoding();
  int64_t k = weights[0].type.getCols();
  ArrayRef<Value> parts = weights[0].parts;
  QuantGemvArgs args;
  args.x = x;
  auto gptq = dyn_cast<GPTQAttr>(encoding);
  if (gptq && gptq.getDescAct()) {
    args.x = allocate(host,
                      MemRefType::get({ShapedType::kDynamic, k},
                                      cast<MemRefType>(x.getType()).getElementType()),
                      {dim(host, x, 0)});
    emitPermuteColumns(e, host, x, parts[2], args.x);
    temporaries.push_back(args.x);
    e.endCarriedChecks();
  }
  if (auto float8 = dyn_cast<Float8Attr>(encoding)) {
    Value staticScale =
        float8.getInputScale() == Float8InputScale::Static ? parts[2] : Value();
    std::tie(args.x, args.inputScale) =
        quantizeInput(e, host, x, float8, staticScale, k, temporaries);
    e.endCarriedChecks();
  }
  // One kernel argument type for several weights.
  int64_t nDim = columnDim(encoding);
  bool blocks = gptq && gptq.hasColumnBlocks();
  auto partsOf = [&](int64_t part) {
    return blocks ? columnBlocksOfEach(host, weights, part)
                  : partOfEach(host, weights, part, nDim);
  };
  args.packed = partsOf(0);
  args.scales = partsOf(1);
  args.biases = biasesOf(host, biases, weights.size());
  for (const OutputSegment &out : outputs)
    args.outputs.push_back(out.buffer);
  return args;
}

/// The GEMV in 16-row slices of x.
void launchFloat8Gemv(KernelEmitter &e, IB &host, const QuantGemvArgs &args,
                      Float8Attr float8, const WeightStack &stack,
                      ArrayRef<OutputSegment> outputs) {
  // Warps per block as measured fastest on an H200 (K 4096 x N 14336, 448
  // blocks, M = 1): 8 warps at two blocks per SM, 20.7 us against 28 us
  // with 16 warps at one. A block count that fits one per multiprocessor
  // takes 16 warps.
  int64_t blocks = llvm::divideCeil(stack.n, kQuantGemvColumns);
  bool fewBlocks = blocks <= e.options().smCount;
  int64_t threads = fewBlocks ? 512 : 256;
  auto reductionType = MemRefType::get(
      {threads / 32, kAcc, 32}, host.getF32Type(), AffineMap(),
      gpu::AddressSpaceAttr::get(host.getContext(),
                                 gpu::AddressSpace::Workgroup));
  auto [kernel, b, kernelArgs] = createKernel(e, host.getLoc(), "gemv_float8",
                                              args, {reductionType}, threads);
  Value reduction = kernel.getWorkgroupAttributions()[0];
  // 8 warps hold about 120 registers a thread unbounded.
  if (!fewBlocks)
    kernel->setAttr("nvvm.minctasm", host.getI32IntegerAttr(2));
  buildQuantGemv(b, Float8Steps{float8.getWeightScale()}, kernelArgs, stack,
                 outputs, reduction, threads);
  e.launch(host, kernel,
           {cIndex(host, blocks), ceilDiv(host, dim(host, args.x, 0), kRows),
            cIndex(host, 1)},
           threads, argumentList(args));
}

/// The E4M3 GEMM's arguments.
struct Float8GemmArgs {
  MatmulArgs matmul;
  Value rowScale;
  SmallVector<Value> weightScales;

  template <typename F> void forEach(F f) {
    matmul.forEach(f);
    f(rowScale);
    for (Value &v : weightScales)
      f(v);
  }
};

/// The wgmma GEMM on E4M3 operands (x quantised by the prologue) with the
/// scales applied to its f32 sums: up to 64 rows one consumer on 64 x 64
/// tiles (eight 16 KB stages: a block moves x's 64 rows and 64 weight rows,
/// as the bf16 GEMM's 64-row shape does), up to 128 rows two on 128 x 64,
/// beyond two on 128 x 128 (the f32 sums beside the wgmma accumulators
/// leave no registers for 256 columns).
void launchFloat8Gemm(KernelEmitter &e, IB &host, const QuantGemvArgs &prepared,
                      Float8Attr float8, const WeightStack &stack,
                      ArrayRef<OutputSegment> outputs) {
  Idx rows = dim(host, prepared.x, 0);
  Float8GemmArgs args;
  args.matmul.x = prepared.x;
  args.rowScale = prepared.inputScale;
  args.matmul.weights = prepared.packed;
  args.weightScales = prepared.scales;
  args.matmul.biases = prepared.biases;
  args.matmul.outputs = prepared.outputs;
  bool perColumn = float8.getWeightScale() == Float8ScaleGranularity::Row;
  auto launchShape = [&](IB &hb, const GemmShape &shape) {
    Float8GemmArgs gemmArgs = args;
    gemmArgs.matmul.tensorMaps =
        wgmmaGemmTensorMaps(hb, shape.cfg, args.matmul, stack);
    auto [kernel, b, kernelArgs] = createKernel(e, hb.getLoc(), shape.name,
                                                gemmArgs, {}, shape.cfg.threads());
    OutputScales scales{kernelArgs.rowScale, kernelArgs.weightScales,
                        perColumn};
    buildWgmmaGemm(b, shape.cfg, kernelArgs.matmul, stack, outputs, &scales);
    launchWgmmaGemm(e, hb, kernel, shape.cfg, stack.n, rows,
                    argumentList(gemmArgs));
  };
  GemmShape shapes[] = {
      {64, {/*consumers=*/1, /*tileN=*/64, /*stages=*/8}, "gemm_float8_m64"},
      {128, {2, 64, 6}, "gemm_float8_m128"},
      {std::numeric_limits<int64_t>::max(), {2, 128, 6}, "gemm_float8"}};
  launchByRows(host, rows, shapes, launchShape);
}

} // namespace

LogicalResult gpu_lowering::checkQuantizedGemv(Operation *op,
                                               QuantizedWeightType type) {
  int64_t n = type.getRows(), k = type.getCols();
  auto fail = [&]() {
    return op->emitOpError("needs quantised weights with ")
           << "N a multiple of 8 and K of 32 (GPTQ: group size too) or of "
              "16 (float8) on the GPU; got N = "
           << n << ", K = " << k;
  };
  bool shapesOk;
  if (auto gptq = dyn_cast<GPTQAttr>(type.getEncoding()))
    shapesOk = k % kGPTQStepK == 0 && gptq.getGroupSize() % kGPTQStepK == 0;
  else if (isa<Float8Attr>(type.getEncoding()))
    shapesOk = k % 16 == 0;
  else
    return op->emitError() << "quantised weights (" << type.getEncoding()
                           << ") are not supported on cuda yet";
  if (shapesOk && n % 8 == 0)
    return success();
  return fail();
}

bool gpu_lowering::quantizedGemvCanShare(
    ArrayRef<QuantizedWeightBuffers> weights) {
  const QuantizedWeightBuffers &first = weights.front();
  WeightEncodingAttrInterface encoding = first.type.getEncoding();
  for (auto [i, w] : llvm::enumerate(weights)) {
    if (w.type.getEncoding() != encoding || w.type.getCols() != first.type.getCols())
      return false;
    if (i + 1 < weights.size() && w.type.getRows() % kQuantGemvColumns != 0)
      return false;
    for (auto [part, firstPart] : llvm::zip(w.parts, first.parts)) {
      auto type = cast<MemRefType>(part.getType());
      auto firstType = cast<MemRefType>(firstPart.getType());
      if (type.getElementType() != firstType.getElementType())
        return false;
    }
    // The prologue's part (desc_act perm, static input scale) is shared.
    if (w.parts.size() > 2 && w.parts[2] != first.parts[2])
      return false;
  }
  return true;
}

void gpu_lowering::emitQuantizedMatmul(KernelEmitter &e, IB &host, Value x,
                                       ArrayRef<QuantizedWeightBuffers> weights,
                                       ArrayRef<Value> biases,
                                       ArrayRef<OutputSegment> outputs) {
  BuilderScope scope(host);
  WeightEncodingAttrInterface encoding = weights[0].type.getEncoding();
  // x (or the prologue's reads of it), the packed weights and GPTQ's
  // scales go in 16-byte pieces.
  e.requireAligned(x);
  int64_t alignedParts = isa<GPTQAttr>(encoding) ? 2 : 1;
  for (const QuantizedWeightBuffers &w : weights)
    e.requireAligned(ArrayRef<Value>(w.parts).take_front(alignedParts));
  WeightStack stack = stackOf(weights);
  SmallVector<Value> temporaries;
  QuantGemvArgs args =
      prepareArgs(e, host, x, weights, biases, outputs, temporaries);
  // GPTQ: the GEMV up to gptqGemvMaxRows, the GEMM beyond: on wgmma
  // (GemmGPTQWgmma.cpp) where it applies, else on mma.sync (GemmGPTQ.cpp).
  // float8: the GEMV up to 16 rows, and in 16-row slices of x wherever the
  // wgmma GEMM cannot run (block scales would need its sums split per
  // 128-deep block).
  auto gptq = dyn_cast<GPTQAttr>(encoding);
  auto float8 = dyn_cast<Float8Attr>(encoding);
  std::function<void(IB &)> gemv, gemm;
  int64_t gemvMaxRows = kGemvMaxRows;
  GPTQGemmArgs gptqArgs{args.x, args.packed, args.scales, args.outputs, {}, {}};
  if (gptq) {
    assert(biases.empty() && "GPTQ projections have no bias (the verifier)");
    bool blocks = gptq.hasColumnBlocks();
    gptqArgs.wordOrder = {blocks, stack.k / 8};
    gptqArgs.scaleOrder = {blocks, stack.k / gptq.getGroupSize()};
    bool wgmmaGemm = e.options().wgmma &&
                     gptqWgmmaGemmApplies(gptqArgs, gptq.getGroupSize());
    gemvMaxRows = gptqGemvMaxRows(wgmmaGemm, stack.n);
    gemv = [&](IB &hb) {
      if (e.options().gptqGemv == GPTQGemvKernel::Streaming)
        emitGPTQStreamingGemv(e, hb, gptqArgs, stack, gptq.getGroupSize(),
                              outputs);
      else
        emitGPTQGemv(e, hb, gptqArgs, stack, gptq.getGroupSize(), outputs);
    };
    gemm = [&, wgmmaGemm](IB &hb) {
      if (wgmmaGemm)
        emitGPTQWgmmaGemm(e, hb, gptqArgs, stack, gptq.getGroupSize(),
                          outputs);
      else
        emitGPTQGemm(e, hb, gptqArgs, stack, gptq.getGroupSize(), outputs);
    };
  } else {
    gemv = [&](IB &hb) {
      launchFloat8Gemv(e, hb, args, float8, stack, outputs);
    };
    if (e.options().wgmma &&
        float8.getWeightScale() != Float8ScaleGranularity::Block)
      gemm = [&](IB &hb) {
        launchFloat8Gemm(e, hb, args, float8, stack, outputs);
      };
  }
  if (gemm)
    ifThenElse(host, ule(host, dim(host, x, 0), cIndex(host, gemvMaxRows)),
               gemv, gemm);
  else
    gemv(host);
  freeAll(host, temporaries);
}
