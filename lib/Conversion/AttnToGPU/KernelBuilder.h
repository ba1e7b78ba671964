//===- KernelBuilder.h - the GPU kernel emitter and kernels -----*- C++ -*-===//
//
// The attn -> GPU lowering writes each kernel as a gpu.func in one
// gpu.module and launches it from the host function. This header holds the
// emitter that creates and launches kernels (KernelEmitter) and the emit*
// entry point of each kernel. The kernels are written with the kernel
// vocabulary (attn/Conversion/Kernels: index operators, warp layouts,
// mma.sync fragments) and take their arguments as named structs
// (KernelArguments.h).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELBUILDER_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELBUILDER_H

#include "attn/Conversion/Kernels/GPULayouts.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/Transforms/IndexValueChecks.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <array>
#include <optional>

namespace mlir::attn::gpu_lowering {

using namespace kb;

struct IndexValidationArgs;

/// The kernel of GPTQ projections up to gptqGemvMaxRows rows (pass option
/// gptq-gemv): per-warp TMA rings (GemvGPTQ.cpp) or registers streaming
/// the words (GemvGPTQStreaming.cpp).
enum class GPTQGemvKernel { TMARing, Streaming };

/// `name` (tma-ring, streaming) as a GPTQGemvKernel, if it is one.
std::optional<GPTQGemvKernel> parseGPTQGemvKernel(StringRef name);

/// Tunables of the GPU kernels (pass options).
struct KernelOptions {
  int64_t smCount = 132;
  int64_t maxSplits = 64;
  /// Hopper's warpgroup MMA (sm_90a) for prefill attention.
  bool wgmma = true;
  /// Entry points validate their index tensors' values on the device and
  /// the kernels indexing through them skip their work after a refusal.
  bool validateIndexValues = false;
  GPTQGemvKernel gptqGemv = GPTQGemvKernel::TMARing;
};

/// Creates kernels in the module's `@attn_kernels` gpu.module and launches
/// them from the host builder.
class KernelEmitter {
public:
  KernelEmitter(ModuleOp module, KernelOptions options);

  /// A new kernel `name` (uniqued) taking `args`, with static workgroup
  /// buffers `workgroup` and a known block size of `threads`. Returns the
  /// kernel and a builder at the start of its body (before the return).
  std::pair<gpu::GPUFuncOp, IB> createKernel(Location loc, StringRef name,
                                             TypeRange args,
                                             TypeRange workgroup,
                                             int64_t threads);

  /// gpu.launch_func of `kernel` on a (x, y, z) grid of `threads`-wide blocks.
  /// While checks are carried, one more column of blocks in x runs them.
  void launch(IB &host, gpu::GPUFuncOp kernel, std::array<Value, 3> grid,
              int64_t threads, ValueRange args, Value dynamicSmemBytes = {});

  /// Records buffers that kernels read or write in 16-byte pieces (vector
  /// and cp.async accesses, TMA): the entry point checks that the arguments
  /// they view start on a 16-byte boundary (status 9) before any work.
  void requireAligned(ArrayRef<Value> buffers) {
    for (Value buffer : buffers)
      if (buffer)
        alignedBuffers.push_back(buffer);
  }
  /// The buffers recorded since the last call.
  SmallVector<Value> takeAlignedBuffers() {
    return std::exchange(alignedBuffers, {});
  }

  /// Index checks that every `launch` runs in an extra block until reset
  /// (addIndexValidationBlock), or null. Set around the lowering of an op
  /// whose kernels read no index tensor nor gridDim and run in no clusters,
  /// so that each of its launch paths carries the checks.
  void setCarriedChecks(const IndexValidationArgs *checks) {
    carriedChecks = checks;
  }

  /// Ends carrying: the op's launches so far ran on each of its paths (a
  /// prologue that every path starts with), so the checks have run by the
  /// time its later launches do.
  void endCarriedChecks() { carriedChecks = nullptr; }

  /// The number of launches emitted so far.
  unsigned launchCount() const { return launches; }

  /// A constant array in the kernel module (for kernels to read with
  /// memref.get_global); returns its symbol name.
  StringRef addConstant(Location loc, StringRef name, DenseElementsAttr value);

  const KernelOptions &options() const { return opts; }

  /// The module's status word (`memref<1xi32>`, see docs/ABI.md, Status),
  /// created at the first use, in a kernel at `b`.
  Value statusWord(IB &b);

  /// With index validation: the status word, loaded at `b`; null otherwise.
  /// A kernel that indexes through the index tensors loads it before its
  /// first loads and branches on it (`skipIfRefused`) only before the
  /// first access whose address comes from an index value, so that the
  /// word's latency hides behind those loads rather than adding to them.
  Value loadStatus(IB &b);

  /// Wraps the rest of the kernel at `b` in an `scf.if` that runs only
  /// while `status` (from loadStatus; nothing when null) is 0, and moves
  /// `b` inside it, so that a refused call touches no memory through the
  /// index tensors. A uniform branch: every thread loads the same word.
  void skipIfRefused(IB &b, Value status);

private:
  ModuleOp module;
  gpu::GPUModuleOp kernels;
  KernelOptions opts;
  DenseMap<Attribute, StringAttr> constants;
  const IndexValidationArgs *carriedChecks = nullptr;
  SmallVector<Value> alignedBuffers;
  /// The kernels that run carried checks in their last column.
  llvm::SmallPtrSet<Operation *, 4> checkCarriers;
  unsigned launches = 0;
};

/// The sequence owning `row`: the count of `rowOffsets[s + 1] <= row`.
Value sequenceOfRow(IB &b, Value rowOffsets, Value row);

/// The byte address of `buffer`'s first element (its aligned pointer plus
/// its offset), host or device.
Idx firstElementAddress(IB &b, Value buffer);
/// Whether every buffer's first element sits on a multiple of `bytes` (the
/// caller's tensors may be views): a uniform test before vector accesses.
Idx startsAligned(IB &b, ArrayRef<Value> buffers, int64_t bytes);
/// Host: the address of `buffer`'s first element, as i64 (for runtime calls
/// that take device pointers).
Value hostAddress(IB &b, Value buffer);

/// Device: a 16-byte `type` vector of the global memref `src` at `indices`,
/// each at most its `last`, replaced by zeros unless `valid` (as
/// kb::loadVectorClampedOrZero), read once: through the non-coherent path,
/// not kept in L1, and fetched by L2 in 256-byte pieces
/// (`ld.global.nc.L1::no_allocate.L2::256B`). For weights streamed once per
/// call, which no kernel writes while it runs.
Value loadStreamingClampedOrZero(IB &b, Value src, ArrayRef<Idx> indices,
                                 ArrayRef<Idx> last, Value valid,
                                 VectorType type);

//===----------------------------------------------------------------------===//
// Kernels
//===----------------------------------------------------------------------===//

/// `out[r, :] = in[r, :] * rsqrt(mean(in[r, :]^2) + eps) * gamma`, rows of
/// the 2-D views `in` / `out` ([rows, D]).
void emitRmsNorm(KernelEmitter &e, IB &host, Value in, Value gamma, Value out,
                 double eps);

/// Where RoPE gets its cos/sin: computed from a rope attribute, or read from
/// a `[N, D]` table (a device buffer, or a constant in the kernel module).
struct RopeFreqs {
  RopeAttr rope;
  Value table;
  StringRef constantTable;
  int64_t tableRows = 0;
};

void emitRope(KernelEmitter &e, IB &host, Value in, const RopeFreqs &freqs,
              Value rowOffsets, Value cacheLengths, bool interleaved,
              Value out);

/// attn.rope_store: one warp per (row, head) of q and k (H + Hkv per row);
/// lanes stride over the D/2 rotation pairs. With `gammaQ` / `gammaK`, the
/// head is first RMS-normalised (sum of squares reduced across the warp).
/// q heads go to `qOut`; k heads are rotated straight into their cache slot
/// of `blocks` and the matching v head is copied beside them.
void emitRopeStore(KernelEmitter &e, IB &host, Value q, Value k, Value v,
                   const RopeFreqs &freqs, Value rowOffsets,
                   Value cacheLengths, Value lookup, Value blocks,
                   Value layer, bool interleaved, Value gammaQ, Value gammaK,
                   double eps, Value qOut);

/// The `[N, D]` table of `attn.rope_freqs` into `out`.
void emitRopeTable(KernelEmitter &e, IB &host, RopeAttr rope, Value out);

void emitKVCacheStore(KernelEmitter &e, IB &host, Value key, Value value,
                      Value rowOffsets, Value cacheLengths, Value lookup,
                      Value blocks, Value layer);

/// One column segment of a projection's output: columns
/// `[begin, begin + width)` of `x @ W^T` go to the 2-D `buffer`.
struct OutputSegment {
  Value buffer;
  int64_t begin, width;
};

/// `x [M, K] @ W [N, K]^T (+ bias [N])` with weights clamped to
/// `[-clip, clip]` when `clip` is set, on tensor cores.
void emitMatmul(KernelEmitter &e, IB &host, Value x, Value weight, Value bias,
                std::optional<double> clip, ArrayRef<OutputSegment> outputs);

/// The same with W given as row blocks `weights[i] [N_i, K]` (and biases
/// alike, or none): one launch, each 64-column block of the output reading
/// the weight (and bias) that holds its rows. Every `N_i` but the last must
/// be a multiple of 64 (see `matmulCanSplitWeights`).
void emitMatmul(KernelEmitter &e, IB &host, Value x, ArrayRef<Value> weights,
                ArrayRef<Value> biases, std::optional<double> clip,
                ArrayRef<OutputSegment> outputs);

/// Whether one launch can read these weights (all but the last row count
/// a multiple of the 64-column output tile, the same K).
bool matmulCanSplitWeights(ArrayRef<Value> weights);

/// Everything a flash-attention kernel needs to know.
struct AttentionSpec {
  Value query, out;                // [T, H, D]
  Value qRowOffsets;               // [B + 1]
  // Explicit K/V ([Tk, Hkv, D]) with kvRowOffsets [B + 1], or the paged
  // cache (blocks, cacheLengths [B], lookup [B, pages], layer: an index).
  Value key, value, kvRowOffsets;
  Value blocks, cacheLengths, lookup, layer;
  MaskAttr mask;
  double scale = 1.0;
  bool paged() const { return static_cast<bool>(blocks); }
};

void emitAttention(KernelEmitter &e, IB &host, const AttentionSpec &spec);

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELBUILDER_H
