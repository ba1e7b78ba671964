//===- MatmulKernel.h - pieces shared by the GEMM and GEMV paths -*- C++
//-*-===//
//
// The projection kernel `x [M, K] @ W [N, K]^T` runs as a tiled tensor-core
// GEMM (MatmulKernel.cpp) or, for decode-sized M, as a weight-streaming
// GEMV (GemvKernel.cpp); both read the same arguments and share the weight
// selection, the weight clipping and the epilogue declared here.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_MATMULKERNEL_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_MATMULKERNEL_H

#include "KernelBuilder.h"

namespace mlir::attn::gpu_lowering {

/// The kernel's arguments: x, the weights (one dynamic-row type when there
/// are several), their biases (none or one per weight), the output buffers,
/// and for the wgmma GEMM the tensor maps of x and of each weight
/// (TensorMaps.h; none for the other kernels).
struct MatmulArgs {
  Value x;
  SmallVector<Value> weights, biases, outputs, tensorMaps;

  template <typename F> void forEach(F f) {
    f(x);
    for (Value &w : weights)
      f(w);
    for (Value &bias : biases)
      f(bias);
    for (Value &out : outputs)
      f(out);
    for (Value &map : tensorMaps)
      f(map);
  }
};

/// The weights stacked along N: where each one's rows start in the output.
struct WeightStack {
  SmallVector<int64_t> rows, begin;
  int64_t n = 0, k = 0;

  static WeightStack of(ArrayRef<Value> weights);
};

/// The weight (and bias) holding a block's output columns, and its rows
/// `[begin, begin + rows)` of the stack.
struct BlockWeight {
  Value weight, bias;
  Idx begin, rows;
};

/// The weight holding output column `n0`: the last one that begins at or
/// before it (a block's columns never straddle two weights).
BlockWeight selectWeight(IB &b, const MatmulArgs &args,
                         const WeightStack &stack, Idx n0);

/// `chunk` with each element clamped to [-clip, clip].
Value clipChunk(IB &b, Value chunk, double clip);

/// Output elements (row, col + i) = the f32 `acc[i]` plus their bias,
/// rounded, into the output segment that holds their columns; columns at or
/// past `n` are not stored. One vector store when no segment boundary (nor
/// `n`) can fall between them.
void storeElements(IB &b, const MatmulArgs &args, const BlockWeight &weight,
                   ArrayRef<Value> acc, Idx row, Idx col, int64_t n,
                   ArrayRef<OutputSegment> segments);
/// The f32 `acc[i]` of columns col + i plus their bias, rounded to the
/// outputs' element type: a scalar for one element, else a vector.
Value finishElements(IB &b, const MatmulArgs &args, const BlockWeight &weight,
                     ArrayRef<Value> acc, Idx col);
/// `value` (a scalar or vector of columns col.. of row `row`, which no
/// segment boundary splits) into the output segment that holds col.
void storeInSegment(IB &b, const MatmulArgs &args,
                    ArrayRef<OutputSegment> segments, Value value, Idx row,
                    Idx col, llvm::MaybeAlign alignment = {});

/// A shape of the wgmma GEMM (GemmWgmma.cpp, sm_90a): a producer
/// warpgroup and `consumers` warpgroups of 64 rows each, `tileN` columns,
/// a ring of `stages` 64-deep K steps.
struct WgmmaGemmConfig {
  int64_t consumers = 2, tileN = 256, stages = 4;

  int64_t tileM() const { return 64 * consumers; }
  int64_t threads() const { return 128 * (consumers + 1); }
};
/// Its dynamic shared memory (the stages and 1024-byte alignment).
int64_t wgmmaGemmSharedBytes(const WgmmaGemmConfig &cfg);
/// Whether it computes this projection: bf16, f16 or E4M3 operands that
/// TMA can read (unit inner stride, 16-byte rows, stacked weights starting
/// at multiples of 8 rows), unclipped weights.
bool wgmmaGemmApplies(const MatmulArgs &args, const WeightStack &stack,
                      std::optional<double> clip);
/// Host: the tensor maps of x and of each weight for `cfg`'s TMA loads
/// (the `tensorMaps` of the GEMM's arguments).
SmallVector<Value> wgmmaGemmTensorMaps(IB &host, const WgmmaGemmConfig &cfg,
                                       const MatmulArgs &args,
                                       const WeightStack &stack);
/// Launches `kernel` (built by buildWgmmaGemm with `cfg`) over the output
/// tiles of `rows` x `n`.
void launchWgmmaGemm(KernelEmitter &e, IB &host, gpu::GPUFuncOp kernel,
                     const WgmmaGemmConfig &cfg, int64_t n, Idx rows,
                     ValueRange args);

/// One wgmma GEMM shape of a launch that picks its shape by M: used for up
/// to `maxRows` rows (the last of a list for any M).
struct GemmShape {
  int64_t maxRows;
  WgmmaGemmConfig cfg;
  StringRef name;
};

/// Host: `launch` of the first of `shapes` whose maxRows holds `rows` (a
/// list of any shape type with a `maxRows`; the last takes any M).
template <typename Shapes, typename Launch>
void launchByRows(IB &host, Idx rows, const Shapes &shapes, Launch &&launch) {
  ArrayRef list(shapes);
  if (list.size() == 1)
    return launch(host, list.front());
  ifThenElse(
      host, ule(host, rows, cIndex(host, list.front().maxRows)),
      [&](IB &hb) { launch(hb, list.front()); },
      [&](IB &nb) { launchByRows(nb, rows, list.drop_front(), launch); });
}

/// This block's output tile (row tile, column tile) of a grid of
/// `columnTiles` x (rows / tileM) work blocks, in groups of `groupRows` row
/// tiles (Triton's grouped order): consecutive blocks walk down a group's
/// row tiles before taking the next column tile. The blocks resident at once
/// then share a few row tiles of x and a band of W, so that each W tile
/// comes from DRAM once per group instead of once per row tile.
std::pair<Idx, Idx> groupedTile(IB &b, int64_t columnTiles,
                                int64_t groupRows = 8);

/// The factors of an E4M3 GEMM's f32 sums: row m, column n of the stack
/// times `rows[m]` (x's per-row scale) and the scale of n's weight (its
/// row n when `perColumn`, else its one tensor scale).
struct OutputScales {
  Value rows;
  SmallVector<Value> weights;
  bool perColumn = false;
};

/// One block's `tileM x tileN` output tile, blockIdx (x, y) = (column,
/// row) tile; bf16, f16 or (with `scales`) E4M3 operands.
void buildWgmmaGemm(IB &b, const WgmmaGemmConfig &cfg, const MatmulArgs &args,
                    const WeightStack &stack, ArrayRef<OutputSegment> segments,
                    const OutputScales *scales = nullptr);

/// `value` (a memref) with dimension `d` dynamic, so that weights of
/// different sizes share one kernel argument type; ranks up to `d` as is.
Value withDynamicDim(IB &b, Value value, int64_t d);

/// The four i32 registers of an 8-element bf16 / f16 chunk: the pairs
/// (i, i + 1) or, with `interleave`, (i, i + 4).
std::array<Value, 4> chunkPairs(IB &b, Value chunk, bool interleave = false);

/// The GEMV path serves M up to this many rows (one m16 mma tile).
constexpr int64_t kGemvMaxRows = 16;
/// Output columns of one GEMV block.
constexpr int64_t kGemvColumns = 16;

/// The workgroup buffer of the GEMV's cross-warp reduction.
MemRefType gemvReductionType(MLIRContext *context, int64_t threads);

/// The GEMVs' cross-warp sums, in a shared `reduction` of [warps, sums, 32]
/// f32: every warp stores its `acc` at [warp, i, lane], then the block
/// meets at a barrier.
void shareWarpSums(IB &b, ArrayRef<Value> acc, Value reduction,
                   const WarpLayout &w);
/// After shareWarpSums: this lane's sum `i` over the `warps` warps (its own
/// `acc[i]` plus the others').
Value sumOverWarps(IB &b, ArrayRef<Value> acc, Value reduction, int64_t i,
                   int64_t warps, Idx lane);

/// The GEMV of one block: columns `[16 blockIdx.x, +16)` of every row of
/// x, the block's `threads / 32` warps splitting K, reduced in `reduction`.
void buildGemv(IB &b, const MatmulArgs &args, const WeightStack &stack,
               std::optional<double> clip, ArrayRef<OutputSegment> segments,
               Value reduction, int64_t threads);

/// Output columns of one block of the float8 GEMV (GemvQuantKernel.cpp;
/// 16 rows per block), and the granularity of weights stacked in one
/// quantised launch (the GPTQ GEMV's 64-column blocks take each 32-column
/// half from its own weight).
constexpr int64_t kQuantGemvColumns = 32;

/// A quantised weight as its encoding and the buffers of its parts (the
/// operands of its `attn.quantized_weight`).
struct QuantizedWeightBuffers {
  QuantizedWeightType type;
  SmallVector<Value> parts;
};

/// Whether the GEMV decodes `type` on the GPU (GPTQ, float8) with these
/// shapes; otherwise emits the reason at `op`.
LogicalResult checkQuantizedGemv(Operation *op, QuantizedWeightType type);

/// Whether one launch can read all of `weights`: one encoding and part
/// types, one prologue (the same desc_act `perm` or static input scale),
/// and every N but the last a multiple of kQuantGemvColumns.
bool quantizedGemvCanShare(ArrayRef<QuantizedWeightBuffers> weights);

/// `x [M, K] @ W^T (+ bias)` with W the quantised `weights` stacked along N
/// (biases alike, or none), decoded in registers: a prologue kernel
/// prepares x once (GPTQ desc_act: permuted; float8: E4M3 values and their
/// per-row scale), then the GEMV, or above its rows (16; GPTQ 64) the
/// float8 wgmma GEMM or the GPTQ GEMM, chosen by M at run time.
void emitQuantizedMatmul(KernelEmitter &e, IB &host, Value x,
                         ArrayRef<QuantizedWeightBuffers> weights,
                         ArrayRef<Value> biases,
                         ArrayRef<OutputSegment> outputs);

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_MATMULKERNEL_H
