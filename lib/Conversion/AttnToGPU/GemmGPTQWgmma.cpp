//===- GemmGPTQWgmma.cpp - GPTQ's GEMM on wgmma with A in registers -------===//
//
// GPTQ's projection above the GEMV's rows on sm_90a, Machete's scheme: the
// decoded weights are wgmma's A operand in registers and x its B operand in
// shared memory, so a block computes a tile of y^T = W x^T, A's rows being
// output features and B's columns tokens: 128 features by 128 tokens (64
// up to 128 rows). No dequantised weight exists in any memory.
//
// A producer thread loads each 64-deep K step of the block's x rows (one
// TMA box of 128-byte swizzled rows) and its 8 word rows of the block's
// 128 features (four boxes of 32 words) into a ring of stages. Two
// consumer warpgroups own 64 features each; they decode their words into A
// registers and multiply them against the staged x (m64nNk16, N tokens).
//
//   producer thread 0:              consumer warpgroup c (features 64 c ..):
//   for k in 0 .. numK - 1:         a = decode(words of step 0)
//     wait empty[k % S] (k >= S)    for k in 0 .. numK - 1:
//     expect the stage's bytes        part (+)= wgmma(a, x of step k)
//       on full[k % S]                  (from zero at a group's first step)
//     TMA x and the word boxes        a' = decode(words of step k + 1)
//       of step k into k % S          wgmma_wait(0); release step k
//                                     at a group's last step:
//                                       acc += part * scale(group, feature)
//                                     a = a'
//                                   store acc: y[token, feature] pairs
//
// Each consumer decodes the next step while its wgmmas run, and the two
// consumers fill each other's waits. As in the other GPTQ kernels the f32
// sums of a group are scaled once, so the result differs from the
// reference by f32 accumulation only.
//
// A's rows are a permutation of the features: row 16 w + g + 8 h of warp w
// (lane group g, h = 0, 1) is feature 16 w + 2 g + h, so that a lane's two
// features are adjacent words of a staged word row (one 8-byte read) and
// adjacent outputs of a token (stored together). Byte q of a word is its k
// pair (2 q, 2 q + 1): the pair that lane quad q holds in A's layout.
//
//===----------------------------------------------------------------------===//

#include "GemmGPTQ.h"
#include "KernelArguments.h"
#include "TensorMaps.h"
#include "WarpSpecialization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

constexpr int64_t kWarpgroup = 128;
/// A TMA box row: 64 k of x, or 32 words of a word row (128-byte swizzle).
constexpr int64_t kRowBytes = 128, kBoxWords = 32;
/// K of a stage, and its word rows.
constexpr int64_t kStepK = 64, kWordRows = kStepK / 8;
/// Two consumers of wgmma's 64 rows (features) by 128 columns (tokens).
constexpr int64_t kConsumers = 2, kConsumerFeatures = 64;
constexpr int64_t kTileFeatures = kConsumers * kConsumerFeatures;
constexpr int64_t kWordBoxBytes = kWordRows * kRowBytes;

/// A shape of the GEMM, for up to `maxRows` rows: `tokens` a block
/// (wgmma's N), a ring of `stages`, kernel `name`.
struct BlockShape {
  int64_t maxRows, tokens, stages;
  StringRef name;

  /// A stage: x's box, then one box of word rows per 32 features.
  int64_t xBytes() const { return tokens * kRowBytes; }
  int64_t stageBytes() const {
    return xBytes() + kTileFeatures / kBoxWords * kWordBoxBytes;
  }
  /// The stages from a 1024-byte boundary (the swizzle's span).
  int64_t sharedBytes() const { return stages * stageBytes() + 1024; }
};
/// A consumer holds 64 sums, a group's 64 partial sums, and two steps' A
/// registers: the producer gives it registers (128 x 40 + 256 x 232 <=
/// 65536).
constexpr uint32_t kProducerRegisters = 40, kConsumerRegisters = 232;

/// The kernel's arguments: the GEMM's (x, words, scales, outputs) and the
/// tensor maps of x and of each weight's words.
struct GemmArgs {
  GPTQGemmArgs tensors;
  Value xMap;
  SmallVector<Value> wordMaps;

  template <typename F> void forEach(F f) {
    tensors.forEach(f);
    f(xMap);
    for (Value &v : wordMaps)
      f(v);
  }
};

/// 1. Where a block works, and its ring.
struct GemmBlock {
  BlockShape shape;
  Type element;               // of x
  AlignedSharedMemory shared; // the stages, from a 1024-byte boundary
  Value smemAddr;             // their i64 shared-window address
  Value full, empty;          // one mbarrier of each per stage
  WarpLayout w;
  Idx warpgroup; // 0: the producer; c + 1: consumer c
  Idx rows;      // M
  Idx m0, n0;    // the block's first token and feature
  Value xMap;
  SmallVector<Value> wordMaps;
  GPTQPartOrder wordOrder, scaleOrder;
  int64_t steps, groupSteps; // K steps, and of a group
};

void carveStages(IB &b, GemmBlock &blk) {
  blk.shared = AlignedSharedMemory::get(b);
  int64_t stages = blk.shape.stages;
  Value ring = blk.shared.view(b, b.getI8Type(),
                               stages * blk.shape.stageBytes());
  blk.smemAddr = indexCast(
      b, memref::ExtractAlignedPointerAsIndexOp::create(b, ring),
      b.getI64Type());
  auto space =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto barriers =
      nvgpu::MBarrierGroupType::get(b.getContext(), space, stages);
  blk.full = nvgpu::MBarrierCreateOp::create(b, barriers);
  blk.empty = nvgpu::MBarrierCreateOp::create(b, barriers);
  // `full` expects the loading thread, `empty` every consumer warp.
  ifThen(b, blk.w.thread == 0, [&](IB &ib) {
    for (int64_t s = 0; s < stages; ++s) {
      nvgpu::MBarrierInitOp::create(ib, blk.full, cIndex(ib, 1), cIndex(ib, s),
                                    Value());
      nvgpu::MBarrierInitOp::create(
          ib, blk.empty, cIndex(ib, kConsumers * kWarpgroup / 32),
          cIndex(ib, s), Value());
    }
  });
  gpu::BarrierOp::create(b);
}

/// 2. The producer: thread 0 loads every K step into the ring as soon as
/// the consumers release its stage. Word boxes past N read zeros.
void produce(IB &b, const WeightStack &stack, const GemmBlock &blk) {
  int64_t stages = blk.shape.stages, stageBytes = blk.shape.stageBytes();
  MemRefType xBox = tensorMapBox(blk.element, blk.shape.tokens);
  MemRefType wordBox = tensorMapBox(b.getI32Type(), kWordRows);
  ifThen(b, blk.w.thread == 0, [&](IB &tb) {
    forLoop(tb, cIndex(tb, 0), cIndex(tb, blk.steps), 1, [&](IB &lb, Idx k) {
      Idx stage = k % stages;
      ifThen(lb, k >= stages, [&](IB &wb) {
        waitBarrier(wb, blk.empty, stage, k / stages - 1);
      });
      nvgpu::MBarrierArriveExpectTxOp::create(
          lb, blk.full, cIndex(lb, stageBytes), stage, Value());
      Idx start = stage * stageBytes;
      auto load = [&](Value map, MemRefType box, Idx col, Idx row,
                      Idx offset) {
        Value dst = memref::ViewOp::create(lb, box, blk.shared.raw,
                                           blk.shared.pad + offset,
                                           ValueRange{});
        nvgpu::TmaAsyncLoadOp::create(lb, dst, blk.full,
                                      tensorMapDescriptor(lb, map, box),
                                      ValueRange{col, row}, stage, Value(),
                                      Value());
      };
      load(blk.xMap, xBox, k * kStepK, blk.m0, start);
      for (int64_t j = 0; j < kTileFeatures / kBoxWords; ++j) {
        // Weights start at multiples of 32 features: a box lies in one.
        Idx n = blk.n0 + j * kBoxWords;
        BlockWeight map = selectWeight(
            lb, MatmulArgs{Value(), blk.wordMaps, {}, {}, {}}, stack, n);
        auto [row, col] = blk.wordOrder.at(k * kWordRows, n - map.begin);
        load(map.weight, wordBox, col, row,
             start + blk.shape.xBytes() + j * kWordBoxBytes);
      }
    });
  });
}

/// A consumer thread's place: its two features, their staged words, and
/// the descriptor of the ring's first x box.
struct Consumer {
  Idx index;           // 0 or 1
  Idx feature;         // its first feature (the second is next to it)
  BlockWeight weight;  // the packed weight holding both
  Value scales;        // that weight's scales
  Idx localFeature;    // feature - weight.begin
  Idx wordAt;          // i32 index of its words in word row 0 of stage 0
  Value xDescriptor;   // stage 0's x box as wgmma's B
  Value byteSelector;  // prmt: byte `quad` of a word
};

/// A stage's A registers, four per k16 slice s: the lane's words of word
/// rows 2 s and 2 s + 1 decoded at byte `quad`: (feature, k 16 s + 2 quad
/// ..), (feature + 1, same k), then the same 8 k further.
SmallVector<Value> decodeStage(IB &b, const GemmBlock &blk, const Consumer &c,
                               Idx stage) {
  int64_t stageWords = blk.shape.stageBytes() / 4;
  Value words =
      blk.shared.view(b, b.getI32Type(), blk.shape.stages * stageWords);
  auto pairType = VectorType::get({2}, b.getI32Type());
  // The 128-byte swizzle: chunk x of word row r lies at chunk x ^ r (the
  // boxes start at 1024-byte boundaries).
  Idx column = c.wordAt % kBoxWords;
  Idx chunk = column / 4, inChunk = column % 4;
  Idx rowStart = c.wordAt - column + stage * stageWords;
  SmallVector<Value> a;
  for (int64_t s = 0; s < kStepK / 16; ++s) {
    std::array<Value, 2> pairs;
    for (int64_t h = 0; h < 2; ++h) {
      int64_t row = 2 * s + h;
      Idx at = rowStart + row * (kRowBytes / 4) + (chunk ^ row) * 4 + inChunk;
      pairs[h] = vector::LoadOp::create(b, pairType, words, ValueRange{at},
                                        /*nontemporal=*/false,
                                        llvm::MaybeAlign(8));
    }
    for (int64_t r = 0; r < 4; ++r) {
      Value word = vector::ExtractOp::create(b, pairs[r / 2],
                                             ArrayRef<int64_t>{r % 2});
      a.push_back(decodeGPTQByte(b, word, c.byteSelector, blk.element));
    }
  }
  return a;
}

/// 3. part (+)= A x^T over one staged K step: four k16 wgmmas of 32 bytes
/// along x's swizzled rows, without waiting.
Value multiplyStage(IB &b, const GemmBlock &blk, const Consumer &c, Idx stage,
                    ArrayRef<Value> a, Value part, Value accumulate) {
  SmallVector<WgmmaRegisterAStep> steps;
  for (int64_t s = 0; s < kStepK / 16; ++s) {
    Value offset =
        indexCast(b, stage * blk.shape.stageBytes() + s * 32, b.getI64Type());
    steps.push_back({{a[4 * s], a[4 * s + 1], a[4 * s + 2], a[4 * s + 3]},
                     WgmmaDescriptor::advance(b, c.xDescriptor, offset)});
  }
  return wgmmaAsyncRegisterA(b, blk.element, steps, blk.shape.tokens, part,
                             accumulate);
}

/// 4. The K loop of a consumer (the pseudo-code above): its f32 sums, as
/// wgmma's accumulator layout (register 4 j + r: feature + r / 2, token
/// 8 j + 2 quad + r % 2).
SmallVector<Value> accumulate(IB &b, const GemmBlock &blk, const Consumer &c) {
  int64_t sums = blk.shape.tokens / 2, stages = blk.shape.stages;
  auto decodeStep = [&](IB &ib, Idx k) {
    Idx stage = k % stages;
    waitBarrier(ib, blk.full, stage, k / stages);
    return decodeStage(ib, blk, c, stage);
  };
  Type partType = LLVM::LLVMStructType::getLiteral(
      b.getContext(), SmallVector<Type>(sums, b.getF32Type()));
  SmallVector<Value> init = decodeStep(b, cIndex(b, 0));
  int64_t aRegs = init.size();
  init.push_back(LLVM::PoisonOp::create(b, partType));
  init.append(sums, cF32(b, 0.0));
  SmallVector<Value> carried = forLoop(
      b, cIndex(b, 0), cIndex(b, blk.steps), 1, init,
      [&](IB &lb, Idx k, ValueRange state) {
        SmallVector<Value> a(state.take_front(aRegs));
        Value part = state[aRegs];
        SmallVector<Value> acc(state.drop_front(aRegs + 1));
        Idx group = k / blk.groupSteps, inGroup = k % blk.groupSteps;
        // The group's scales, read early: they are used after the wgmmas.
        std::array<Value, 2> scales;
        for (int64_t h = 0; h < 2; ++h) {
          auto [row, col] = blk.scaleOrder.at(group, c.localFeature + h);
          scales[h] = load(lb, c.scales, {row, col});
        }
        part = multiplyStage(lb, blk, c, k % stages, a, part, inGroup != 0);
        // The next step's registers while these wgmmas run (the last step
        // decodes its own stage again, not yet released), fenced so that
        // the compiler cannot sink the decoding past the wait.
        SmallVector<Value> next = fenceIntRegisters(
            lb, decodeStep(lb, min(lb, k + 1, cIndex(lb, blk.steps - 1))));
        wgmmaWait(lb, 0);
        // a stays live until the wgmmas that read it retired.
        fenceIntRegisters(lb, a);
        ifThen(lb, blk.w.lane == 0, [&](IB &rb) {
          arriveBarrier(rb, blk.empty, k % stages);
        });
        SmallVector<Value> promoted = ifElse(
            lb, inGroup == blk.groupSteps - 1, acc, [&](IB &pb) {
              SmallVector<Value> out;
              for (auto [i, p] : llvm::enumerate(unpackAccumulators(pb, part)))
                out.push_back(math::FmaOp::create(
                    pb, p, toF32(pb, scales[i % 4 / 2]), acc[i]));
              return out;
            });
        SmallVector<Value> yielded = next;
        yielded.push_back(part);
        llvm::append_range(yielded, promoted);
        return yielded;
      });
  return SmallVector<Value>(ArrayRef<Value>(carried).drop_front(aRegs + 1));
}

/// 5. The epilogue: per token, the lane's two adjacent features rounded and
/// stored together.
void storeTile(IB &b, const GPTQGemmArgs &args, const WeightStack &stack,
               const GemmBlock &blk, const Consumer &c, ArrayRef<Value> acc,
               ArrayRef<OutputSegment> segments) {
  MatmulArgs out{args.x, {}, {}, args.outputs, {}};
  Idx inside = ult(b, c.feature, cIndex(b, stack.n));
  for (int64_t j = 0; j < blk.shape.tokens / 8; ++j) {
    for (int64_t e = 0; e < 2; ++e) {
      Idx token = blk.m0 + j * 8 + blk.w.quad * 2 + e;
      ifThen(b, inside & ult(b, token, blk.rows), [&](IB &sb) {
        storeElements(sb, out, c.weight, {acc[4 * j + e], acc[4 * j + 2 + e]},
                      token, c.feature, stack.n, segments);
      });
    }
  }
}

/// A consumer warpgroup: its features, the K loop, the epilogue.
void consume(IB &b, const GemmArgs &args, const WeightStack &stack,
             const GemmBlock &blk, ArrayRef<OutputSegment> segments) {
  Consumer c;
  c.index = blk.warpgroup - 1;
  Idx warp = blk.w.warp % 4;
  Idx inTile = c.index * kConsumerFeatures + warp * 16 + blk.w.group * 2;
  c.feature = blk.n0 + inTile;
  const GPTQGemmArgs &t = args.tensors;
  c.weight = selectWeight(b, MatmulArgs{t.x, t.packed, {}, {}, {}}, stack,
                          c.feature);
  c.scales = selectWeight(b, MatmulArgs{t.x, t.scales, {}, {}, {}}, stack,
                          c.feature)
                 .weight;
  // Features past N read (and never store) the weight's first scales.
  c.localFeature = select(b, ult(b, c.feature - c.weight.begin, c.weight.rows),
                          c.feature - c.weight.begin, cIndex(b, 0));
  c.wordAt = (blk.shape.xBytes() + inTile / kBoxWords * kWordBoxBytes) / 4 +
             inTile % kBoxWords;
  c.xDescriptor = WgmmaDescriptor{blk.smemAddr}.build(b);
  c.byteSelector = gptqByteSelector(b, blk.w.quad);
  SmallVector<Value> acc = accumulate(b, blk, c);
  storeTile(b, t, stack, blk, c, acc, segments);
}

/// One block's 128 tokens x 128 features, in the grouped tile order.
void buildGemm(IB &b, const BlockShape &shape, const GemmArgs &args,
               const WeightStack &stack, int64_t groupSize,
               ArrayRef<OutputSegment> segments) {
  BuilderScope scope(b);
  GemmBlock blk;
  blk.shape = shape;
  blk.element = cast<MemRefType>(args.tensors.x.getType()).getElementType();
  blk.w = WarpLayout::of(threadIdx(b));
  carveStages(b, blk);
  // Broadcast from lane 0, so that ptxas knows the role branch is
  // warp-uniform (wgmma in a divergent path is serialised).
  blk.warpgroup = warpUniform(b, blk.w.thread / kWarpgroup);
  blk.rows = dim(b, args.tensors.x, 0);
  auto [tokenTile, featureTile] =
      groupedTile(b, llvm::divideCeil(stack.n, kTileFeatures));
  blk.m0 = tokenTile * blk.shape.tokens;
  blk.n0 = featureTile * kTileFeatures;
  blk.steps = stack.k / kStepK;
  blk.wordOrder = args.tensors.wordOrder;
  blk.scaleOrder = args.tensors.scaleOrder;
  blk.groupSteps = groupSize / kStepK;
  blk.xMap = tensorMapAddress(b, args.xMap);
  for (Value map : args.wordMaps)
    blk.wordMaps.push_back(tensorMapAddress(b, map));
  fixRegistersAtEntry(b);
  ifThenElse(
      b, blk.warpgroup == 0,
      [&](IB &pb) {
        setWarpgroupRegisters(pb, kProducerRegisters, /*increase=*/false);
        produce(pb, stack, blk);
      },
      [&](IB &cb) {
        setWarpgroupRegisters(cb, kConsumerRegisters, /*increase=*/true);
        consume(cb, args, stack, blk, segments);
      });
}

} // namespace

bool gpu_lowering::gptqWgmmaGemmApplies(const GPTQGemmArgs &args,
                                        int64_t groupSize) {
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  return groupSize % kStepK == 0 && isa<BFloat16Type, Float16Type>(element) &&
         hasTensorMapLayout(args.x);
}

/// One launch of the GEMM of `shape`.
static void launchGemm(KernelEmitter &e, IB &host, const GPTQGemmArgs &args,
                       const WeightStack &stack, int64_t groupSize,
                       ArrayRef<OutputSegment> outputs,
                       const BlockShape &shape) {
  GemmArgs gemmArgs{args, {}, {}};
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  gemmArgs.xMap =
      encodeTensorMap(host, args.x, tensorMapBox(element, shape.tokens));
  for (Value words : args.packed)
    gemmArgs.wordMaps.push_back(encodeTensorMap(
        host, words, tensorMapBox(host.getI32Type(), kWordRows)));
  int64_t threads = (1 + kConsumers) * kWarpgroup;
  auto [kernel, b, kernelArgs] =
      createKernel(e, host.getLoc(), shape.name, gemmArgs, {}, threads);
  buildGemm(b, shape, kernelArgs, stack, groupSize, outputs);
  e.launch(host, kernel,
           {cIndex(host, llvm::divideCeil(stack.n, kTileFeatures)),
            ceilDiv(host, dim(host, args.x, 0), shape.tokens), cIndex(host, 1)},
           threads, argumentList(gemmArgs), cI32(host, shape.sharedBytes()));
}

void gpu_lowering::emitGPTQWgmmaGemm(KernelEmitter &e, IB &host,
                                     const GPTQGemmArgs &args,
                                     const WeightStack &stack,
                                     int64_t groupSize,
                                     ArrayRef<OutputSegment> outputs) {
  // Up to 128 rows, 64-token blocks: twice the blocks (Llama-3-8B's qkv
  // has 48 feature tiles for 132 multiprocessors), each decoding as much.
  BlockShape shapes[] = {
      {128, /*tokens=*/64, /*stages=*/8, "gemm_gptq_wgmma_m128"},
      {std::numeric_limits<int64_t>::max(), 128, 8, "gemm_gptq_wgmma"}};
  launchByRows(host, dim(host, args.x, 0), shapes,
               [&](IB &hb, const BlockShape &shape) {
                 launchGemm(e, hb, args, stack, groupSize, outputs, shape);
               });
}
