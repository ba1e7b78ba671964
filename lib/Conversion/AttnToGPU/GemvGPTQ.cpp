//===- GemvGPTQ.cpp - the GPTQ GEMV on per-warp TMA rings ----------------===//
//
// Decode's projection of GPTQ int4 weights (`qweight [K/8, N]` i32 words
// along N, `scales [K/g, N]`, or both in 32-column blocks: GPTQPartOrder
// places the boxes): the time is that of reading the packed
// weights once, so the weights must be in flight while the warps decode and
// multiply. Each warp is its own producer: its lane 0 copies whole K units
// (128 k, or the group when smaller) of the block's 64 columns, x's rows
// and the unit's scale rows by TMA (`cp.async.bulk.tensor`, boxes of
// 128-byte swizzled rows, completing on the stage's mbarrier) into the
// warp's ring of `stages` shared-memory stages, `stages - 1` units ahead
// of the one it multiplies. No block barrier is in the loop; warps split K
// unit by unit and meet once at the end.
//
// The decoded weights are the A operand of mma.sync m16n8k16 (16 output
// columns) and x the B operand (n8: 8 rows of x), so one mma serves 16
// columns at M <= 8 (two n8 tiles of x up to 16 rows). A lane of group g,
// quad q reads one word row of each step at columns 4 g .. 4 g + 3 (A row
// g of the four m16 tiles) and 32 + 4 g .. (A row g + 8): word t of each
// 16-byte chunk belongs to tile t. Nibble pairs (j, j + 4) of a word are
// A's k pairs, so x's 8 k of the lane's word row go in the same
// interleaved order; summing over K is order-free.
//
//   per warp w, units u = w, w + warps, ... (count units):
//     for i < stages - 1: copy unit i into stage i
//     for i in 0 .. count - 1:
//       copy unit i + stages - 1 into stage (i - 1) % stages
//       wait stage i % stages (parity i / stages)
//       part = sum over its steps of mma(decode(W), x)
//       acc += part * scale(unit's group, column)
//   barrier; warp 0 sums the warps' acc and stores
//
// Scales multiply the f32 partial sums once per unit (a unit lies in one
// group), so the kernel differs from the reference by f32 accumulation only.
//
//===----------------------------------------------------------------------===//

#include "GemmGPTQ.h"
#include "KernelArguments.h"
#include "TensorMaps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <numeric>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::kb::m16n8k16;

namespace {

/// The kernel's arguments: the GEMM's (x, words, scales, outputs) and the
/// tensor maps of x and of each weight's words and scales.
struct GPTQGemvArgs {
  GPTQGemmArgs tensors;
  Value xMap;
  SmallVector<Value> wordsMaps, scalesMaps;

  template <typename F> void forEach(F f) {
    tensors.forEach(f);
    f(xMap);
    for (Value &v : wordsMaps)
      f(v);
    for (Value &v : scalesMaps)
      f(v);
  }
};

/// Output columns of a block: four m16 tiles, two 32-column halves (a
/// 128-byte row of words each).
constexpr int64_t kColumns = 64, kTiles = 4, kHalfColumns = 32;
/// TMA boxes land as 128-byte rows, swizzled: 16-byte chunk c of a row at
/// byte A (from a 1024-byte boundary) goes to chunk c ^ (A / 128 % 8).
constexpr int64_t kRowBytes = 128, kSwizzleSpan = 1024;

/// The deepest K unit: one group of 128 (64-deep units measured slower).
constexpr int64_t kMaxUnitK = 128;
/// Dynamic shared memory a block may have on sm_90.
constexpr int64_t kMaxSharedBytes = 227 * 1024;

/// Where a stage's boxes lie (bytes from the stage's start): each half's
/// word rows, x's rows in 64-deep boxes.
struct StageLayout {
  int64_t unitK, xRows;

  static StageLayout of(int64_t groupSize, const GPTQGemvShape &shape) {
    return {std::gcd(groupSize, kMaxUnitK), 8 * shape.xTiles};
  }
  int64_t wordRows() const { return unitK / 8; }
  int64_t steps() const { return wordRows() / 4; }
  int64_t wordsOffset(int64_t half) const {
    return half * wordRows() * kRowBytes;
  }
  /// x's k 64 j .. 64 j + 63 (one box: 128-byte rows of 2-byte elements).
  int64_t xBoxes() const { return llvm::divideCeil(unitK, 64); }
  int64_t xOffset(int64_t box) const {
    return wordsOffset(2) + box * xRows * kRowBytes;
  }
  /// Whole 1024-byte spans, so that each stage's swizzle starts afresh.
  int64_t bytes() const { return xOffset(xBoxes()); }
  /// The stage's two scale rows lie apart, in a ring of their own.
  static constexpr int64_t kScaleBytes = 2 * kRowBytes;
  /// Bytes a half's boxes bring, its words and its scale row (TMA fills
  /// rows and columns outside the tensor with zeros).
  int64_t halfBytes() const { return (wordRows() + 1) * kRowBytes; }
  int64_t xBytes() const { return xBoxes() * xRows * kRowBytes; }
};

/// Shared memory of a block: the warps' mbarriers, their rings of stages,
/// their rings of scale rows.
struct SharedLayout {
  int64_t warps, stages, stageBytes;

  int64_t barrierBytes() const {
    return llvm::alignTo(warps * stages * 8, kSwizzleSpan);
  }
  int64_t ringBytes() const { return warps * stages * stageBytes; }
  int64_t scalesStart() const { return barrierBytes() + ringBytes(); }
  int64_t bytes() const {
    return scalesStart() + warps * stages * StageLayout::kScaleBytes;
  }
};

//===----------------------------------------------------------------------===//
// PTX the dialects do not spell with shared addresses as integers
//===----------------------------------------------------------------------===//

void ptx(IB &b, StringRef text, StringRef constraints, ValueRange operands) {
  LLVM::InlineAsmOp::create(b, b.getLoc(), TypeRange{}, operands, text,
                            constraints, /*has_side_effects=*/true,
                            /*is_align_stack=*/false, LLVM::TailCallKind::None,
                            /*asm_dialect=*/nullptr, /*operand_attrs=*/nullptr);
}

Value asI32(IB &b, Idx v) { return indexCast(b, v, b.getI32Type()); }

void initBarrier(IB &b, Idx barrier) {
  ptx(b, "mbarrier.init.shared::cta.b64 [$0], 1;", "r", {asI32(b, barrier)});
}

/// The one arrival of a stage's phase, expecting `bytes` of copies.
void arriveExpecting(IB &b, Idx barrier, Idx bytes) {
  ptx(b, "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;", "r,r",
      {asI32(b, barrier), asI32(b, bytes)});
}

void waitParity(IB &b, Idx barrier, Idx parity) {
  ptx(b,
      "{ .reg .pred done; wait: "
      "mbarrier.try_wait.parity.shared::cta.b64 done, [$0], $1; "
      "@!done bra wait; }",
      "r,r,~{memory}", {asI32(b, barrier), asI32(b, parity)});
}

/// The box of tensor map `map` (a generic address) at element (col, row)
/// into shared `dst`, completing on `barrier`.
void copyBox(IB &b, Idx dst, Value map, Idx col, Idx row, Idx barrier) {
  ptx(b,
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::"
      "complete_tx::bytes [$0], [$1, {$2, $3}], [$4];",
      "r,l,r,r,r,~{memory}",
      {asI32(b, dst), LLVM::PtrToIntOp::create(b, b.getI64Type(), map),
       asI32(b, col), asI32(b, row), asI32(b, barrier)});
}

/// The shared offset of logical byte `offset` of a swizzled region.
Idx swizzled(Idx offset) { return offset ^ ((offset / kRowBytes % 8) * 16); }

//===----------------------------------------------------------------------===//
// The kernel
//===----------------------------------------------------------------------===//

/// One 32-column half of the block: the weight holding it (its words' and
/// scales' tensor maps) and whether the stack has any of its columns.
struct Half {
  BlockWeight weight;
  Value wordsMap, scalesMap;
  Idx column; // of the weight
  Idx inside;
};

struct GemvBlock {
  GPTQGemvShape shape;
  StageLayout layout;
  int64_t groupSize;
  GPTQPartOrder wordOrder, scaleOrder;
  WarpLayout w;
  Idx rows, m0, n0;
  std::array<Half, 2> halves;
  Value xMap;
  // The whole dynamic shared memory as i32 words.
  Value words;
  Idx base;     // its shared-window address
  Idx ring;     // this warp's ring (bytes from base)
  Idx barriers; // this warp's mbarriers (bytes from base)
  Idx scales;   // this warp's scale rows (bytes from base)
  Idx units;    // K / unitK

  Idx stageStart(Idx stage) const { return ring + stage * layout.bytes(); }
  /// Scale row `half` of `stage` (bytes from base).
  Idx scaleRow(Idx stage, int64_t half) const {
    return scales + stage * StageLayout::kScaleBytes + half * kRowBytes;
  }
  Idx barrier(Idx stage) const { return base + barriers + stage * 8; }
  /// This warp's i-th unit.
  Idx unit(Idx i) const { return w.warp + i * shape.warps; }
};

/// Lane 0 copies unit `unit` into `stage`: each half's words and scale
/// row (halves past N: none), x's rows of the unit (rows past M: zeros).
void copyUnit(IB &b, const GemvBlock &blk, Idx unit, Idx stage) {
  const StageLayout &s = blk.layout;
  Idx k0 = unit * s.unitK;
  // The stage was read by this warp's previous unit.
  NVVM::SyncWarpOp::create(b, cI32(b, -1));
  fenceProxyAsync(b);
  ifThen(b, blk.w.lane == 0, [&](IB &tb) {
    Idx start = blk.base + blk.stageStart(stage);
    Idx barrier = blk.barrier(stage);
    Idx halves = select(tb, blk.halves[1].inside, cIndex(tb, 2), cIndex(tb, 1));
    arriveExpecting(tb, barrier, halves * s.halfBytes() + s.xBytes());
    for (int64_t half = 0; half < 2; ++half) {
      const Half &h = blk.halves[half];
      ifThen(tb, h.inside, [&](IB &hb) {
        auto [row, col] = blk.wordOrder.at(k0 / 8, h.column);
        copyBox(hb, start + s.wordsOffset(half), h.wordsMap, col, row, barrier);
        auto [scaleRow, scaleCol] =
            blk.scaleOrder.at(k0 / blk.groupSize, h.column);
        copyBox(hb, blk.base + blk.scaleRow(stage, half), h.scalesMap, scaleCol,
                scaleRow, barrier);
      });
    }
    for (int64_t box = 0; box < s.xBoxes(); ++box)
      copyBox(tb, start + s.xOffset(box), blk.xMap, k0 + box * 64, blk.m0,
              barrier);
  });
}

/// 16 bytes at logical byte `offset` of `stage` as 4 words.
std::array<Value, 4> loadWords(IB &b, const GemvBlock &blk, Idx stage,
                               Idx offset) {
  Value v = vector::LoadOp::create(
      b, VectorType::get({4}, b.getI32Type()), blk.words,
      ValueRange{(blk.stageStart(stage) + swizzled(offset)) / 4},
      /*nontemporal=*/false, llvm::Align(16));
  std::array<Value, 4> words;
  for (int64_t i = 0; i < 4; ++i)
    words[i] = vector::ExtractOp::create(b, v, ArrayRef<int64_t>{i});
  return words;
}

/// Elements (i, i + 4) of 8 16-bit elements held as 4 words (element 2 j
/// in the low half of word j), the order of the decoded nibble pairs.
/// (chunkPairs gives the same pairs from an 8-element vector; this is the
/// form measured on the device, 15 PTX instructions more a unit.)
std::array<Value, 4> interleavedPairs(IB &b, std::array<Value, 4> words) {
  std::array<Value, 4> pairs;
  for (int64_t i = 0; i < 4; ++i) {
    Value lo = words[i / 2], hi = words[i / 2 + 2];
    pairs[i] = i % 2 ? arith::OrIOp::create(
                           b, arith::ShRUIOp::create(b, lo, cI32(b, 16)),
                           arith::AndIOp::create(b, hi, cI32(b, 0xFFFF0000)))
                           .getResult()
                     : arith::OrIOp::create(
                           b, arith::AndIOp::create(b, lo, cI32(b, 0xFFFF)),
                           arith::ShLIOp::create(b, hi, cI32(b, 16)))
                           .getResult();
  }
  return pairs;
}

/// The sums of the unit in `stage`: acc[xt][t] += its scale times the
/// unit's products, which meet in f32 first.
void multiplyUnit(IB &b, const GemvBlock &blk, Type element, Type scaleElement,
                  Idx stage, MutableArrayRef<Value> acc) {
  const StageLayout &s = blk.layout;
  int64_t xTiles = blk.shape.xTiles;
  SmallVector<Value> part(acc.size(), cF32(b, 0.0));
  for (int64_t step = 0; step < s.steps(); ++step) {
    // Quads take word rows 2 q (+ 1, + 8 ..) so that a load phase's lanes
    // (quads 0-3 of groups g, g + 1) hit distinct swizzled chunks.
    Idx row = s.wordRows() >= 8 ? blk.w.quad * 2 + (step % 2 + 8 * (step / 2))
                                : blk.w.quad + 4 * step;
    Idx wordAt = row * kRowBytes + blk.w.group * 16;
    std::array<Value, 4> lo =
        loadWords(b, blk, stage, wordAt + s.wordsOffset(0));
    std::array<Value, 4> hi =
        loadWords(b, blk, stage, wordAt + s.wordsOffset(1));
    // x's k 8 row .. 8 row + 7 of rows g (+ 8): box row / 8, chunk row % 8.
    SmallVector<std::array<Value, 4>> x;
    for (int64_t xt = 0; xt < xTiles; ++xt)
      x.push_back(
          interleavedPairs(b, loadWords(b, blk, stage,
                                        Idx(cIndex(b, 0)) + s.xOffset(0) +
                                            (row / 8) * (s.xRows * kRowBytes) +
                                            (blk.w.group + 8 * xt) * kRowBytes +
                                            (row % 8) * 16)));
    for (int64_t t = 0; t < kTiles; ++t) {
      // k16 half j: A's pairs 2 j (k 2 q, 2 q + 1) and 2 j + 1 (k 2 q + 8, ..).
      for (int64_t j = 0; j < 2; ++j) {
        int64_t p = 2 * j;
        std::array<Value, 4> a = {
            decodeGPTQNibblePair(b, lo[t], p, element),
            decodeGPTQNibblePair(b, hi[t], p, element),
            decodeGPTQNibblePair(b, lo[t], p + 1, element),
            decodeGPTQNibblePair(b, hi[t], p + 1, element)};
        for (int64_t xt = 0; xt < xTiles; ++xt) {
          MutableArrayRef<Value> c =
              MutableArrayRef<Value>(part).slice((xt * kTiles + t) * 4, 4);
          std::array<Value, 4> d =
              mma16816(b, element, a, {x[xt][p], x[xt][p + 1]}, c);
          llvm::copy(d, c.begin());
        }
      }
    }
  }
  // Registers 0, 1 of tile t: column 4 g + t; 2, 3: column 32 + 4 g + t.
  std::array<Value, 2> scales;
  for (int64_t half = 0; half < 2; ++half) {
    Value words = vector::LoadOp::create(
        b, VectorType::get({2}, b.getI32Type()), blk.words,
        ValueRange{swizzled(blk.scaleRow(stage, half) + blk.w.group * 8) / 4},
        /*nontemporal=*/false, llvm::Align(8));
    scales[half] =
        vector::BitCastOp::create(b, VectorType::get({4}, scaleElement), words);
  }
  for (auto [i, sum] : llvm::enumerate(part)) {
    int64_t t = i / 4 % kTiles, r = i % 4;
    Value scale = toF32(
        b, vector::ExtractOp::create(b, scales[r / 2], ArrayRef<int64_t>{t}));
    acc[i] = math::FmaOp::create(b, sum, scale, acc[i]);
  }
}
/// The addresses of the kernel's tensor-map arguments (taken at the top of
/// the body).
struct MapAddresses {
  Value x;
  SmallVector<Value> words, scales;

  static MapAddresses of(IB &b, const GPTQGemvArgs &args) {
    MapAddresses maps{tensorMapAddress(b, args.xMap), {}, {}};
    for (auto [words, scales] : llvm::zip(args.wordsMaps, args.scalesMaps)) {
      maps.words.push_back(tensorMapAddress(b, words));
      maps.scales.push_back(tensorMapAddress(b, scales));
    }
    return maps;
  }
};

/// The block's place: its rows and columns, the weights of its halves, its
/// shared memory and this warp's ring in it.
GemvBlock placeBlock(IB &b, const GPTQGemvArgs &args, const MapAddresses &maps,
                     const WeightStack &stack, const GPTQGemvShape &shape,
                     int64_t groupSize, const SharedLayout &shared) {
  GemvBlock blk;
  blk.shape = shape;
  blk.layout = StageLayout::of(groupSize, shape);
  blk.groupSize = groupSize;
  blk.wordOrder = args.tensors.wordOrder;
  blk.scaleOrder = args.tensors.scaleOrder;
  blk.w = WarpLayout::of(threadIdx(b));
  blk.rows = dim(b, args.tensors.x, 0);
  blk.m0 = blockIdx(b, gpu::Dimension::y) * blk.layout.xRows;
  blk.n0 = blockIdx(b, gpu::Dimension::x) * kColumns;
  blk.xMap = maps.x;
  for (int64_t half = 0; half < 2; ++half) {
    Half &h = blk.halves[half];
    Idx col = blk.n0 + half * kHalfColumns;
    // Every weight but the last spans whole halves (quantizedGemvCanShare).
    h.weight = selectWeight(
        b, MatmulArgs{args.tensors.x, args.tensors.packed, {}, {}, {}}, stack,
        col);
    h.wordsMap = maps.words[0];
    h.scalesMap = maps.scales[0];
    for (auto [w, first] : llvm::enumerate(stack.begin)) {
      if (w == 0)
        continue;
      Idx inside = col >= first;
      h.wordsMap = select(b, inside, maps.words[w], h.wordsMap);
      h.scalesMap = select(b, inside, maps.scales[w], h.scalesMap);
    }
    h.column = col - h.weight.begin;
    h.inside = col < cIndex(b, stack.n);
  }
  AlignedSharedMemory smem = AlignedSharedMemory::get(b, kSwizzleSpan);
  blk.words = smem.view(b, b.getI32Type(), shared.bytes() / 4);
  blk.base =
      Idx(Value(memref::ExtractAlignedPointerAsIndexOp::create(b, smem.raw))) +
      smem.pad;
  blk.barriers = blk.w.warp * (shape.stages * 8);
  blk.ring =
      shared.barrierBytes() + blk.w.warp * (shape.stages * blk.layout.bytes());
  blk.scales = shared.scalesStart() +
               blk.w.warp * (shape.stages * StageLayout::kScaleBytes);
  blk.units = cIndex(b, stack.k / blk.layout.unitK);
  return blk;
}

/// The warps' sums meet in shared memory (the rings' space); warp 0 adds
/// them and stores: register r of x tile xt, m16 tile t is row
/// 8 xt + 2 q + r % 2, column 32 (r / 2) + 4 g + t, so the four tiles'
/// registers r are 4 adjacent columns.
void reduceAndStore(IB &b, const GPTQGemvArgs &args, const GemvBlock &blk,
                    const SharedLayout &shared, ArrayRef<Value> acc,
                    const WeightStack &stack,
                    ArrayRef<OutputSegment> segments) {
  gpu::BarrierOp::create(b);
  int64_t count = acc.size();
  Idx firstWord = cIndex(b, shared.barrierBytes() / 4);
  auto at = [&](Idx warp, int64_t i) {
    return firstWord + (warp * count + i) * 32 + blk.w.lane;
  };
  for (int64_t i = 0; i < count; ++i)
    store(b, LLVM::BitcastOp::create(b, b.getI32Type(), acc[i]), blk.words,
          {at(blk.w.warp, i)});
  gpu::BarrierOp::create(b);
  MatmulArgs out{args.tensors.x, {}, {}, args.tensors.outputs, {}};
  ifThen(b, blk.w.warp == 0, [&](IB &sb) {
    for (int64_t xt = 0; xt < blk.shape.xTiles; ++xt) {
      for (int64_t r = 0; r < 4; ++r) {
        Idx row = blk.m0 + (8 * xt + r % 2) + blk.w.quad * 2;
        Idx col = blk.n0 + (r / 2) * kHalfColumns + blk.w.group * 4;
        ifThen(sb, ult(sb, row, blk.rows) & ult(sb, col, cIndex(sb, stack.n)),
               [&](IB &tb) {
                 SmallVector<Value> values;
                 for (int64_t t = 0; t < kTiles; ++t) {
                   int64_t i = (xt * kTiles + t) * 4 + r;
                   Value sum = acc[i];
                   for (int64_t other = 1; other < blk.shape.warps; ++other)
                     sum = arith::AddFOp::create(
                         tb, sum,
                         LLVM::BitcastOp::create(
                             tb, tb.getF32Type(),
                             load(tb, blk.words, {at(cIndex(tb, other), i)})));
                   values.push_back(sum);
                 }
                 storeElements(tb, out, blk.halves[r / 2].weight, values, row,
                               col, stack.n, segments);
               });
      }
    }
  });
}

/// This warp's units through its ring: the f32 sums of its share of K.
SmallVector<Value> accumulateUnits(IB &b, const GemvBlock &blk,
                                   const GPTQGemvArgs &args) {
  const GPTQGemvShape &shape = blk.shape;
  Type element = cast<MemRefType>(args.tensors.x.getType()).getElementType();
  Type scaleElement =
      cast<MemRefType>(args.tensors.scales[0].getType()).getElementType();
  ifThen(b, blk.w.lane == 0, [&](IB &ib) {
    for (int64_t s = 0; s < shape.stages; ++s)
      initBarrier(ib, blk.barrier(cIndex(ib, s)));
  });
  ptx(b, "fence.mbarrier_init.release.cluster;", "~{memory}", {});
  NVVM::SyncWarpOp::create(b, cI32(b, -1));
  // This warp's units: w, w + warps, ... below `units`.
  Idx count = (blk.units + (shape.warps - 1) - blk.w.warp) / shape.warps;
  for (int64_t i = 0; i + 1 < shape.stages; ++i)
    ifThen(b, cIndex(b, i) < count, [&](IB &ib) {
      copyUnit(ib, blk, blk.unit(cIndex(ib, i)), cIndex(ib, i));
    });
  SmallVector<Value> init(kTiles * 4 * shape.xTiles, cF32(b, 0.0));
  SmallVector<Value> acc = forLoop(
      b, cIndex(b, 0), count, 1, init, [&](IB &lb, Idx i, ValueRange accIn) {
        Idx ahead = i + (shape.stages - 1);
        ifThen(lb, ahead < count, [&](IB &ib) {
          copyUnit(ib, blk, blk.unit(ahead), ahead % shape.stages);
        });
        Idx stage = i % shape.stages;
        waitParity(lb, blk.barrier(stage), (i / shape.stages) % 2);
        SmallVector<Value> accOut(accIn);
        multiplyUnit(lb, blk, element, scaleElement, stage, accOut);
        return accOut;
      });
  return acc;
}

void buildGPTQGemv(IB &b, const GPTQGemvArgs &args, const WeightStack &stack,
                   const GPTQGemvShape &shape, int64_t groupSize,
                   const SharedLayout &shared,
                   ArrayRef<OutputSegment> segments) {
  BuilderScope scope(b);
  MapAddresses maps = MapAddresses::of(b, args);
  // M = 0 (launched for the checks the launch may carry): nothing to read.
  ifThen(b, dim(b, args.tensors.x, 0) != 0, [&](IB &kb) {
    GemvBlock blk = placeBlock(kb, args, maps, stack, shape, groupSize, shared);
    SmallVector<Value> acc = accumulateUnits(kb, blk, args);
    reduceAndStore(kb, args, blk, shared, acc, stack, segments);
  });
}

//===----------------------------------------------------------------------===//
// Host side
//===----------------------------------------------------------------------===//

/// One launch of the GEMV of `shape` (as kernel `name`).
void launchGPTQGemv(KernelEmitter &e, IB &host, const GPTQGemmArgs &gemmArgs,
                    const WeightStack &stack, int64_t groupSize,
                    ArrayRef<OutputSegment> outputs, GPTQGemvShape shape,
                    StringRef name) {
  StageLayout stage = StageLayout::of(groupSize, shape);
  SharedLayout shared{shape.warps, shape.stages, stage.bytes()};
  // Within a block's shared memory (227 KiB on sm_90): fewer stages first.
  auto fits = [&] { return shared.bytes() + kSwizzleSpan <= kMaxSharedBytes; };
  while (!fits() && shared.stages > 2)
    --shared.stages;
  while (!fits() && shared.warps > 1)
    shared.warps /= 2;
  shape.stages = shared.stages;
  shape.warps = shared.warps;
  int64_t reductionBytes = shape.warps * kTiles * 4 * shape.xTiles * 32 * 4;
  assert(reductionBytes <= shared.ringBytes() && "the sums fit the rings");
  (void)reductionBytes;
  GPTQGemvArgs args{gemmArgs, {}, {}, {}};
  Type xElement = cast<MemRefType>(args.tensors.x.getType()).getElementType();
  // M = 0 still launches: the blocks do nothing, but carried index checks
  // run in the extra column.
  args.xMap =
      encodeTensorMap(host, args.tensors.x, tensorMapBox(xElement, stage.xRows),
                      /*maybeEmpty=*/true);
  for (auto [words, scales] :
       llvm::zip(args.tensors.packed, args.tensors.scales)) {
    args.wordsMaps.push_back(encodeTensorMap(
        host, words, tensorMapBox(host.getI32Type(), stage.wordRows())));
    args.scalesMaps.push_back(encodeTensorMap(
        host, scales,
        tensorMapBox(cast<MemRefType>(scales.getType()).getElementType(), 1)));
  }
  int64_t threads = shape.warps * 32;
  auto [kernel, b, kernelArgs] =
      createKernel(e, host.getLoc(), name, args, {}, threads);
  buildGPTQGemv(b, kernelArgs, stack, shape, groupSize, shared, outputs);
  e.launch(host, kernel,
           {cIndex(host, llvm::divideCeil(stack.n, kColumns)),
            ceilDiv(host, dim(host, args.tensors.x, 0), stage.xRows),
            cIndex(host, 1)},
           threads, argumentList(args),
           cI32(host, shared.bytes() + kSwizzleSpan));
}

} // namespace

void gpu_lowering::emitGPTQGemv(KernelEmitter &e, IB &host,
                                const GPTQGemmArgs &args,
                                const WeightStack &stack, int64_t groupSize,
                                ArrayRef<OutputSegment> outputs) {
  // Measured on an H200 (K 4096 x N 14336, 224 blocks, M = 1 / 8 / 16):
  // 4 warps and 3 stages, two blocks a multiprocessor, 15.2 / 15.0 / 17.0
  // us; 8 x 2 15.2 / 15.0 / 19.1; 4 x 4 14.9 / 14.8 / 20.4 (one m16 block a
  // multiprocessor); 5 x 3 17.1 / 17.0 / 26.9. Up to one block a
  // multiprocessor (qkv, o_proj), 8 warps split K.
  GPTQGemvShape shape;
  if (static_cast<int64_t>(llvm::divideCeil(stack.n, kColumns)) >
      e.options().smCount)
    shape.warps = 4;
  ifThenElse(
      host, ule(host, dim(host, args.x, 0), cIndex(host, 8)),
      [&](IB &nb) {
        launchGPTQGemv(e, nb, args, stack, groupSize, outputs, shape,
                       "gemv_gptq");
      },
      [&](IB &wb) {
        GPTQGemvShape wide = shape;
        wide.xTiles = 2;
        launchGPTQGemv(e, wb, args, stack, groupSize, outputs, wide,
                       "gemv_gptq_m16");
      });
}
