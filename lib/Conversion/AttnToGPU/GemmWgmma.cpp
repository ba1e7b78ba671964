//===- GemmWgmma.cpp - x @ W^T on Hopper's warpgroup MMA ------------------===//
//
// The projections above the GEMV's rows on sm_90a, warp-specialised: one
// producer thread loads 128-byte K steps (64 bf16 / f16 or 128 E4M3
// elements) of the x rows and W rows of a block's output tile with TMA into
// a ring of shared-memory stages, and one or two consumer warpgroups (64
// rows each) multiply them on wgmma. Both operands are K-major (`x [M, K]`,
// `W [N, K]`, as E4M3 wgmma requires): TMA writes each row of a step as one
// 128-byte swizzled row, exactly what a wgmma descriptor reads. Two
// mbarriers per stage hand it over: `full` (its bytes landed: the producer
// expects them, the TMA loads complete them) and `empty` (every consumer
// warp is done reading it).
//
//   producer thread 0:                   consumers:
//   for k in 0 .. numK - 1:              for k in 0 .. numK - 1:
//     wait empty[k % S] (k >= S)           wait full[k % S]
//     expect the stage's bytes             acc = wgmma_async(stage k % S, acc)
//       on full[k % S]                     wgmma_wait(1)  (step k - 1 done)
//     TMA the x box and the W boxes        lane 0: arrive empty[(k - 1) % S]
//       of step k into k % S             wgmma_wait(0); store the tile
//
// The host encodes the tensor maps of x and of each stacked weight for
// every call (TensorMaps.h). W boxes are as tall as the stacked weights'
// boundaries allow (64 rows, or 32 / 16 / 8), so each box lies inside one
// weight and a tile may straddle q / k / v.
//
//===----------------------------------------------------------------------===//

#include "MatmulKernel.h"
#include "TensorMaps.h"
#include "WarpSpecialization.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

/// One K step of a row: one 128-byte swizzled row.
constexpr int64_t kRowBytes = 128;
constexpr int64_t kWarpgroup = 128;
/// With two E4M3 consumers (three warpgroups, 168 registers a thread at
/// launch), the producer gives its registers to the consumers' two sets of
/// step sums: 128 x 40 + 256 x 232 <= 65536.
constexpr uint32_t kProducerRegisters = 40, kConsumerRegisters = 232;
/// An E4M3 consumer's loop trip: this many steps, each into a register set
/// of its own (2; a trip of 1 measured 8-15% slower on the H200).
constexpr int64_t kTripSteps = 2;

/// Where a block and its warpgroups work.
struct GemmBlock {
  WgmmaGemmConfig cfg;
  Type element; // of x and W (as staged)
  AlignedSharedMemory shared; // the stages, from its 1024-byte boundary
  Value smemAddr;             // their i64 shared-window address
  Value full, empty; // one mbarrier of each per stage
  Value turn;        // whose wgmmas go next, one per consumer (takesTurns)
  Idx rows;          // M
  Idx m0, n0;        // the block's output tile
  WarpLayout w;
  Idx warpgroup; // 0: the producer; c + 1: consumer c (rows 64 c ..)
  // The addresses of x's and each weight's tensor map.
  Value xMap;
  SmallVector<Value> weightMaps;
  int64_t weightBoxRows;

  int64_t stageBytes() const { return (cfg.tileM() + cfg.tileN) * kRowBytes; }
  /// K elements of a step.
  int64_t elementBytes() const { return element.getIntOrFloatBitWidth() / 8; }
  int64_t stepK() const { return kRowBytes / elementBytes(); }
  /// Two E4M3 consumers (168 registers a thread at launch) need the
  /// producer's registers for their two sets of step sums.
  bool rebalance() const { return elementBytes() == 1 && cfg.consumers == 2; }
  /// E4M3 consumers add each step's sums to f32 registers while the tensor
  /// cores idle; two of them take turns issuing, so that one adds while the
  /// other's wgmmas run. Not on 64-column tiles, whose trips are too short
  /// for the handoff to pay (measured at 64 rows: 3% slower).
  bool takesTurns() const { return rebalance() && cfg.tileN >= 128; }
};

/// The 1024-byte aligned stages in dynamic shared memory and the stage
/// barriers.
void carveStages(IB &b, GemmBlock &blk) {
  blk.shared = AlignedSharedMemory::get(b);
  Value stages = blk.shared.view(b, b.getI8Type(),
                                 blk.cfg.stages * blk.stageBytes());
  blk.smemAddr = indexCast(
      b, memref::ExtractAlignedPointerAsIndexOp::create(b, stages),
      b.getI64Type());
  auto wgSpace =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  auto barriers = nvgpu::MBarrierGroupType::get(b.getContext(), wgSpace,
                                                blk.cfg.stages);
  blk.full = nvgpu::MBarrierCreateOp::create(b, barriers);
  blk.empty = nvgpu::MBarrierCreateOp::create(b, barriers);
  if (blk.takesTurns())
    blk.turn = nvgpu::MBarrierCreateOp::create(
        b, nvgpu::MBarrierGroupType::get(b.getContext(), wgSpace,
                                         blk.cfg.consumers));
}

/// Thread 0 initialises the barriers: `full` expects the loading thread,
/// `empty` every consumer warp.
void initBarriers(IB &b, const GemmBlock &blk) {
  ifThen(b, blk.w.thread == 0, [&](IB &ib) {
    for (int64_t s = 0; s < blk.cfg.stages; ++s) {
      nvgpu::MBarrierInitOp::create(ib, blk.full, cIndex(ib, 1),
                                    cIndex(ib, s), Value());
      nvgpu::MBarrierInitOp::create(
          ib, blk.empty, cIndex(ib, kWarpgroup / 32 * blk.cfg.consumers),
          cIndex(ib, s), Value());
    }
    if (blk.turn)
      for (int64_t c = 0; c < blk.cfg.consumers; ++c)
        nvgpu::MBarrierInitOp::create(ib, blk.turn, cIndex(ib, kWarpgroup / 32),
                                      cIndex(ib, c), Value());
  });
  gpu::BarrierOp::create(b);
}

/// A consumer warp releases `stage` once (lane 0, after the warp's wgmma
/// wait): one shared-memory arrive per warp instead of 32.
void releaseStage(IB &b, const GemmBlock &blk, Idx stage) {
  ifThen(b, blk.w.lane == 0,
         [&](IB &lb) { arriveBarrier(lb, blk.empty, stage); });
}

/// `rows` x 128 bytes of shared memory at `offsetBytes` past the stages'
/// start, as the destination of a TMA box.
Value boxAt(IB &b, const GemmBlock &blk, MemRefType box, Idx offsetBytes) {
  return memref::ViewOp::create(b, box, blk.shared.raw,
                                blk.shared.pad + offsetBytes, ValueRange{});
}

/// The producer: thread 0 of the warpgroup loads every K step into the ring
/// as soon as the consumers release its stage.
void produce(IB &b, const WeightStack &stack, const GemmBlock &blk,
             int64_t numK) {
  int64_t stages = blk.cfg.stages, tileM = blk.cfg.tileM();
  MemRefType xBox = tensorMapBox(blk.element, tileM);
  MemRefType wBox = tensorMapBox(blk.element, blk.weightBoxRows);
  ifThen(b, blk.w.thread == 0, [&](IB &tb) {
    forLoop(tb, cIndex(tb, 0), cIndex(tb, numK), 1, [&](IB &lb, Idx k) {
      Idx stage = k % stages;
      ifThen(lb, k >= stages, [&](IB &wb) {
        waitBarrier(wb, blk.empty, stage, k / stages - 1);
      });
      nvgpu::MBarrierArriveExpectTxOp::create(
          lb, blk.full, cIndex(lb, blk.stageBytes()), stage, Value());
      Idx col = k * blk.stepK();
      Idx stageStart = stage * blk.stageBytes();
      auto load = [&](Value map, Idx row, MemRefType box, Idx offset) {
        nvgpu::TmaAsyncLoadOp::create(
            lb, boxAt(lb, blk, box, offset), blk.full,
            tensorMapDescriptor(lb, map, box), ValueRange{col, row}, stage,
            Value(), Value());
      };
      load(blk.xMap, blk.m0, xBox, stageStart);
      for (int64_t j = 0; j < blk.cfg.tileN / blk.weightBoxRows; ++j) {
        // Boxes past N read past the last weight's end: zeros.
        Idx n = blk.n0 + j * blk.weightBoxRows;
        BlockWeight map = selectWeight(
            lb, MatmulArgs{Value(), blk.weightMaps, {}, {}, {}}, stack, n);
        load(map.weight, n - map.begin, wBox,
             stageStart + (tileM + j * blk.weightBoxRows) * kRowBytes);
      }
    });
  });
}

/// acc += the consumer's 64 rows of x times the W rows of `stage`: four
/// 32-byte k steps along the swizzled rows (k16 bf16 / f16, k32 E4M3).
/// The descriptors of stage 0 do not change in the loop (hoisted); each
/// step's are those advanced by its offset, an add apiece.
Value multiplyStage(IB &b, const GemmBlock &blk, Type element, Idx consumer,
                    Idx stage, Value acc, bool accumulate = true) {
  auto i64 = [&](Idx v) { return indexCast(b, v, b.getI64Type()); };
  Value aStart = arith::AddIOp::create(b, blk.smemAddr,
                                       i64(consumer * (64 * kRowBytes)));
  Value bStart = arith::AddIOp::create(
      b, blk.smemAddr, i64(cIndex(b, blk.cfg.tileM() * kRowBytes)));
  Value aFirst = WgmmaDescriptor{aStart}.build(b);
  Value bFirst = WgmmaDescriptor{bStart}.build(b);
  SmallVector<std::pair<Value, Value>> steps;
  for (int64_t k = 0; k < kRowBytes / 32; ++k) {
    Value offset = i64(stage * blk.stageBytes() + k * 32);
    steps.push_back({WgmmaDescriptor::advance(b, aFirst, offset),
                     WgmmaDescriptor::advance(b, bFirst, offset)});
  }
  return wgmmaAsync(b, element, steps, blk.cfg.tileN, /*transposeB=*/false,
                    acc, accumulate);
}

/// The weight scales of columns col and col + 1 (< N), from the weight of
/// the stack that holds them.
std::array<Value, 2> columnScales(IB &b, const MatmulArgs &args,
                                  const WeightStack &stack,
                                  const OutputScales &scales, Idx col) {
  BlockWeight weight = selectWeight(
      b, MatmulArgs{args.x, scales.weights, {}, {}, {}}, stack, col);
  std::array<Value, 2> columns;
  for (int64_t i = 0; i < 2; ++i) {
    Idx at = scales.perColumn ? col + i - weight.begin : cIndex(b, 0);
    columns[i] = load(b, weight.weight, {at});
  }
  return columns;
}

/// The epilogue's values: accumulator register 4j + r of a consumer holds
/// row 16 warp + accRow(r) and column 8j + accCol(r) of its 64-row slab;
/// `emit` gets each pair of columns inside M and N (scaled first, for E4M3)
/// with the weight that holds them. A thread's scales are loaded once: its
/// two rows' before the columns, each column pair's before its two rows.
void forEachPair(IB &b, const MatmulArgs &args, const WeightStack &stack,
                 const GemmBlock &blk, Idx consumer, ArrayRef<Value> acc,
                 const OutputScales *scales,
                 function_ref<void(IB &, Idx row, Idx col, const BlockWeight &,
                                   ArrayRef<Value> pair)>
                     emit) {
  using namespace m16n8k16;
  Idx warpRow = blk.m0 + consumer * 64 + blk.w.warp % 4 * 16;
  std::array<Idx, 2> rows = {warpRow + accRow(blk.w, 0),
                             warpRow + accRow(blk.w, 2)};
  // Rows past M read row M - 1's scale and are not stored (M > 16 here).
  std::array<Value, 2> rowScales;
  if (scales)
    for (int64_t h = 0; h < 2; ++h)
      rowScales[h] = load(b, scales->rows, {min(b, rows[h], blk.rows - 1)});
  for (int64_t j = 0; j < blk.cfg.tileN / 8; ++j) {
    Idx col = blk.n0 + accCol(blk.w, 0) + j * 8;
    ifThen(b, ult(b, col, cIndex(b, stack.n)), [&](IB &cb) {
      BlockWeight weight = selectWeight(cb, args, stack, col);
      std::array<Value, 2> colScales;
      if (scales)
        colScales = columnScales(cb, args, stack, *scales, col);
      for (int64_t h = 0; h < 2; ++h) {
        ifThen(cb, ult(cb, rows[h], blk.rows), [&](IB &sb) {
          SmallVector<Value> pair = {acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]};
          if (scales)
            for (auto [v, colScale] : llvm::zip(pair, colScales))
              v = arith::MulFOp::create(
                  sb, v, arith::MulFOp::create(sb, rowScales[h], colScale));
          emit(sb, rows[h], col, weight, pair);
        });
      }
    });
  }
}

/// Output elements in a 16-byte chunk.
int64_t chunkElements(const MatmulArgs &args) {
  auto type = cast<MemRefType>(args.outputs.front().getType());
  return 128 / type.getElementTypeBitWidth();
}

/// Whether a tile can leave through shared memory in 16-byte chunks: no
/// chunk of columns straddles N or two output segments.
bool chunksFit(const MatmulArgs &args, const WeightStack &stack,
               ArrayRef<OutputSegment> segments) {
  int64_t chunk = chunkElements(args);
  return stack.n % chunk == 0 && llvm::all_of(segments, [&](auto &s) {
           return s.begin % chunk == 0 && s.width % chunk == 0;
         });
}

/// Whether every output takes 16-byte stores: its first element and its
/// row pitch are 16-byte aligned (the caller's buffers may be views).
Idx outputsTakeChunks(IB &b, const MatmulArgs &args) {
  Idx all = startsAligned(b, args.outputs, 16);
  for (Value out : args.outputs) {
    auto type = cast<MemRefType>(out.getType());
    auto metadata = memref::ExtractStridedMetadataOp::create(b, out);
    Idx pitch =
        Idx(metadata.getStrides()[0]) * (type.getElementTypeBitWidth() / 8);
    all = all & (pitch % 16 == 0) & (Idx(metadata.getStrides()[1]) == 1);
  }
  return all;
}

/// `bar.sync 1` over the consumer warpgroups (the producer's threads have
/// left or are busy).
void consumersBarrier(IB &b, const GemmBlock &blk) {
  NVVM::BarrierOp::create(b, TypeRange{}, cI32(b, 1),
                          cI32(b, kWarpgroup * blk.cfg.consumers),
                          /*reductionOp=*/nullptr, Value());
}

/// The epilogue through shared memory: the accumulator layout stores two
/// elements of 8 rows per instruction, so each consumer thread writes its
/// finished pairs into a [tileM x tileN] tile over the drained stages (rows
/// padded by one chunk: conflict-free) and the consumers copy the tile out
/// in 16-byte chunks, consecutive threads along a row.
void storeTileThroughShared(IB &b, const MatmulArgs &args,
                            const WeightStack &stack, const GemmBlock &blk,
                            Idx consumer, ArrayRef<Value> acc,
                            ArrayRef<OutputSegment> segments,
                            const OutputScales *scales) {
  int64_t chunk = chunkElements(args);
  int64_t tileM = blk.cfg.tileM(), tileN = blk.cfg.tileN;
  int64_t pitch = tileN + chunk;
  Type element = cast<MemRefType>(args.outputs.front().getType()).getElementType();
  assert(tileM * pitch * element.getIntOrFloatBitWidth() / 8 <=
             blk.cfg.stages * blk.stageBytes() &&
         "the output tile fits in the stages");
  Value tile = blk.shared.view(b, element, tileM * pitch);
  // Every consumer is done reading the stages (its wgmma groups retired)
  // before any overwrites them.
  fenceProxyAsync(b);
  consumersBarrier(b, blk);
  forEachPair(b, args, stack, blk, consumer, acc, scales,
              [&](IB &sb, Idx row, Idx col, const BlockWeight &weight,
                  ArrayRef<Value> pair) {
                Value finished = finishElements(sb, args, weight, pair, col);
                vector::StoreOp::create(
                    sb, finished, tile,
                    ValueRange{(row - blk.m0) * pitch + (col - blk.n0)});
              });
  consumersBarrier(b, blk);
  int64_t threads = kWarpgroup * blk.cfg.consumers;
  int64_t rowChunks = tileN / chunk;
  auto chunkType = VectorType::get({chunk}, element);
  Idx thread = blk.w.thread - kWarpgroup;
  int64_t rounds = llvm::divideCeil(tileM * rowChunks, threads);
  for (int64_t i = 0; i < rounds; ++i) {
    Idx c = thread + i * threads;
    Idx r = c / rowChunks, cc = c % rowChunks * chunk;
    Idx row = blk.m0 + r, col = blk.n0 + cc;
    ifThen(b, ult(b, r, cIndex(b, tileM)) & ult(b, row, blk.rows) &
                  ult(b, col, cIndex(b, stack.n)),
           [&](IB &sb) {
             Value v = vector::LoadOp::create(sb, chunkType, tile,
                                              ValueRange{r * pitch + cc},
                                              /*nontemporal=*/false,
                                              llvm::MaybeAlign(16));
             storeInSegment(sb, args, segments, v, row, col,
                            llvm::MaybeAlign(16));
           });
  }
}

/// The epilogue: through shared memory in 16-byte chunks where the outputs
/// allow it, else each pair of columns stored together.
void storeTile(IB &b, const MatmulArgs &args, const WeightStack &stack,
               const GemmBlock &blk, Idx consumer, ArrayRef<Value> acc,
               ArrayRef<OutputSegment> segments, const OutputScales *scales) {
  auto direct = [&](IB &db) {
    forEachPair(db, args, stack, blk, consumer, acc, scales,
                [&](IB &sb, Idx row, Idx col, const BlockWeight &weight,
                    ArrayRef<Value> pair) {
                  storeElements(sb, args, weight, pair, row, col, stack.n,
                                segments);
                });
  };
  if (!chunksFit(args, stack, segments))
    return direct(b);
  ifThenElse(
      b, outputsTakeChunks(b, args),
      [&](IB &sb) {
        storeTileThroughShared(sb, args, stack, blk, consumer, acc, segments,
                               scales);
      },
      direct);
}

/// The f32 sums of an E4M3 consumer. E4M3 wgmma keeps fewer bits of its
/// running sum than f32, so each step's sums start from zero and are added
/// to f32 registers (DeepGEMM's promotion). A loop trip issues kTripSteps
/// steps into as many register sets, so that the later steps' wgmmas run
/// while the first's are added (shown for 2):
///
///   for k in 0, 2, .. numK - 1:
///     (two consumers: wait for this consumer's turn)
///     a = wgmma(step k); b = wgmma(step k + 1)
///     (hand the turn to the other consumer)
///     wgmma_wait(1); release step k; acc += a
///     wgmma_wait(0); release step k + 1; acc += b
///   the steps past the last whole trip, one at a time
///
/// (no set is in flight across the loop's back edge, where ptxas would
/// serialise the wgmmas).
SmallVector<Value> promotedSums(IB &b, const GemmBlock &blk, Type element,
                                Idx consumer, int64_t numK) {
  int64_t stages = blk.cfg.stages;
  auto issue = [&](IB &ib, Idx k, Value registers) {
    Idx stage = k % stages;
    waitBarrier(ib, blk.full, stage, k / stages);
    return multiplyStage(ib, blk, element, consumer, stage, registers,
                         /*accumulate=*/false);
  };
  // Waits for all but `pending` groups, then adds `sums` (step k's).
  auto retire = [&](IB &ib, int64_t pending, Idx k, Value &sums,
                    SmallVector<Value> &acc) {
    wgmmaWait(ib, pending);
    releaseStage(ib, blk, k % stages);
    SmallVector<Value> done = fenceRegisters(ib, unpackAccumulators(ib, sums));
    for (auto [a, p] : llvm::zip(acc, done))
      a = arith::AddFOp::create(ib, a, p);
    // The sums are taken before the next step reuses `done`'s registers.
    acc = fenceRegisters(ib, acc);
    sums = packAccumulators(ib, fenceRegisters(ib, done));
  };
  Type sumsType = LLVM::LLVMStructType::getLiteral(
      b.getContext(), SmallVector<Type>(blk.cfg.tileN / 2, b.getF32Type()));
  Value poison = LLVM::PoisonOp::create(b, sumsType);
  SmallVector<Value> init(kTripSteps, poison);
  init.append(blk.cfg.tileN / 2, cF32(b, 0.0));
  SmallVector<Value> carried = forLoop(
      b, cIndex(b, 0), cIndex(b, numK / kTripSteps), 1, init,
      [&](IB &lb, Idx i, ValueRange state) {
        Idx k = kTripSteps * i;
        SmallVector<Value> acc(state.drop_front(kTripSteps));
        // Consumer 0 issues trip i after consumer 1 issued trip i - 1;
        // consumer 1 after consumer 0 issued trip i.
        if (blk.turn)
          ifThen(lb, i + consumer >= 1, [&](IB &wb) {
            waitBarrier(wb, blk.turn, consumer, i + consumer - 1);
          });
        SmallVector<Value> next;
        for (int64_t s = 0; s < kTripSteps; ++s)
          next.push_back(issue(lb, k + s, state[s]));
        if (blk.turn)
          ifThen(lb, blk.w.lane == 0, [&](IB &ab) {
            arriveBarrier(ab, blk.turn, 1 - consumer);
          });
        for (int64_t s = 0; s < kTripSteps; ++s)
          retire(lb, kTripSteps - 1 - s, k + s, next[s], acc);
        llvm::append_range(next, acc);
        return next;
      });
  SmallVector<Value> acc(ArrayRef<Value>(carried).drop_front(kTripSteps));
  for (int64_t s = 0; s < numK % kTripSteps; ++s) {
    Idx k = cIndex(b, numK - numK % kTripSteps + s);
    Value a = issue(b, k, carried[s]);
    retire(b, 0, k, a, acc);
  }
  return acc;
}

/// A consumer warpgroup: every K step as it lands, then its slab of the
/// output tile.
void consume(IB &b, const MatmulArgs &args, const WeightStack &stack,
             const GemmBlock &blk, int64_t numK,
             ArrayRef<OutputSegment> segments, const OutputScales *scales) {
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  int64_t stages = blk.cfg.stages;
  Idx consumer = blk.warpgroup - 1;
  if (blk.elementBytes() == 1)
    return storeTile(b, args, stack, blk, consumer,
                     promotedSums(b, blk, element, consumer, numK), segments,
                     scales);
  SmallVector<Value> zeros(blk.cfg.tileN / 2, cF32(b, 0.0));
  Value zero = packAccumulators(b, zeros);
  Value acc = forLoop(
      b, cIndex(b, 0), cIndex(b, numK), 1, {zero},
      [&](IB &lb, Idx k, ValueRange carried) {
        Idx stage = k % stages;
        waitBarrier(lb, blk.full, stage, k / stages);
        Value next =
            multiplyStage(lb, blk, element, consumer, stage, carried[0]);
        wgmmaWait(lb, 1);
        ifThen(lb, k >= 1, [&](IB &ab) {
          releaseStage(ab, blk, (k - 1) % stages);
        });
        return SmallVector<Value>{next};
      })[0];
  wgmmaWait(b, 0);
  storeTile(b, args, stack, blk, consumer, unpackAccumulators(b, acc),
            segments, scales);
}

} // namespace

/// The rows of a W box: the most (up to 64) that every weight's first row
/// is a multiple of, so that no box straddles two weights; 0 if under 8.
static int64_t weightBoxRows(const WeightStack &stack) {
  for (int64_t rows : {64, 32, 16, 8})
    if (llvm::all_of(stack.begin, [&](int64_t b) { return b % rows == 0; }))
      return rows;
  return 0;
}

SmallVector<Value> gpu_lowering::wgmmaGemmTensorMaps(IB &host,
                                                     const WgmmaGemmConfig &cfg,
                                                     const MatmulArgs &args,
                                                     const WeightStack &stack) {
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  SmallVector<Value> maps = {
      encodeTensorMap(host, args.x, tensorMapBox(element, cfg.tileM()))};
  for (Value w : args.weights)
    maps.push_back(encodeTensorMap(
        host, w, tensorMapBox(element, weightBoxRows(stack))));
  return maps;
}

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

bool gpu_lowering::wgmmaGemmApplies(const MatmulArgs &args,
                                    const WeightStack &stack,
                                    std::optional<double> clip) {
  // Weights are clipped as they are staged, which TMA cannot do.
  Type element = cast<MemRefType>(args.x.getType()).getElementType();
  return !clip && isa<BFloat16Type, Float16Type, Float8E4M3FNType>(element) &&
         weightBoxRows(stack) != 0 && hasTensorMapLayout(args.x) &&
         llvm::all_of(args.weights, hasTensorMapLayout);
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
  blk.element = element;
  carveStages(b, blk);
  blk.w = WarpLayout::of(threadIdx(b));
  // Broadcast from lane 0, so that ptxas knows the role branch is
  // warp-uniform (wgmma in a divergent path is serialised).
  blk.warpgroup = warpUniform(b, blk.w.thread / kWarpgroup);
  blk.rows = dim(b, args.x, 0);
  auto [rowTile, columnTile] =
      groupedTile(b, llvm::divideCeil(stack.n, cfg.tileN));
  blk.m0 = rowTile * cfg.tileM();
  blk.n0 = columnTile * cfg.tileN;
  int64_t numK = llvm::divideCeil(stack.k, blk.stepK());
  blk.weightBoxRows = weightBoxRows(stack);
  blk.xMap = tensorMapAddress(b, args.tensorMaps[0]);
  for (Value map : ArrayRef<Value>(args.tensorMaps).drop_front())
    blk.weightMaps.push_back(tensorMapAddress(b, map));
  initBarriers(b, blk);
  if (blk.rebalance())
    fixRegistersAtEntry(b);
  ifThenElse(
      b, blk.warpgroup == 0,
      [&](IB &pb) {
        if (blk.rebalance())
          setWarpgroupRegisters(pb, kProducerRegisters, /*increase=*/false);
        GemmBlock producer = blk;
        producer.w = WarpLayout::of(blk.w.thread % kWarpgroup);
        produce(pb, stack, producer, numK);
      },
      [&](IB &cb) {
        if (blk.rebalance())
          setWarpgroupRegisters(cb, kConsumerRegisters, /*increase=*/true);
        consume(cb, args, stack, blk, numK, segments, scales);
      });
}
