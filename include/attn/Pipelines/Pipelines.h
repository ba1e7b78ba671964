//===- Pipelines.h - attn lowering pipelines --------------------*- C++ -*-===//

#ifndef ATTN_PIPELINES_PIPELINES_H
#define ATTN_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::attn {

struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  PassOptions::Option<int64_t> queryTileRows{
      *this, "q-tile-rows",
      llvm::cl::desc("Rows of a flash-attention query tile"),
      llvm::cl::init(128)};
  PassOptions::Option<int64_t> kvTile{
      *this, "kv-tile",
      llvm::cl::desc("Keys per tile for attention over explicit K/V"),
      llvm::cl::init(128)};
  PassOptions::Option<int64_t> decodeItems{
      *this, "decode-items",
      llvm::cl::desc("Work items of the split decode ((sequence, key chunk) "
                     "pairs over all kv heads; 0: one per sequence and kv "
                     "head)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> vectorLanes{
      *this, "vector-lanes",
      llvm::cl::desc("f32 lanes of the projection kernels (8: AVX2, 16: "
                     "AVX-512)"),
      llvm::cl::init(8)};
  PassOptions::Option<std::string> int8Dot{
      *this, "int8-dot",
      llvm::cl::desc("Integer dot products of GGUF K-quant projections with "
                     "few rows: avx512-vnni, avx2 or none"),
      llvm::cl::init("none")};
  PassOptions::Option<int64_t> int8MaxRows{
      *this, "int8-max-rows",
      llvm::cl::desc("Rows up to which GGUF K-quant projections use the "
                     "int8-dot kernel (activations quantised to Q8_K)"),
      llvm::cl::init(64)};
  PassOptions::Option<bool> fuse{
      *this, "fuse",
      llvm::cl::desc("Run the fusion passes (attn-fuse-projection-epilogues, "
                     "attn-fuse-qkv, attn-fuse-rope-store, "
                     "attn-fuse-qk-norm-rope) after the expansion"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> runtimeChecks{
      *this, "runtime-checks",
      llvm::cl::desc("Check the run-time inputs (layer indices, index "
                     "tensors) at the start of every entry point and return "
                     "a non-zero status for a bad one "
                     "(attn-insert-entry-checks)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> abiChecks{
      *this, "abi-checks",
      llvm::cl::desc("Also check the sizes of the tensor arguments against "
                     "the function's types (attn-insert-abi-checks)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> dependentLaunch{
      *this, "dependent-launch",
      llvm::cl::desc("Kernels may start while the kernel before them "
                     "finishes (attn-dependent-launch; sm_90 and later)"),
      llvm::cl::init(true)};
};

/// attn (composite or primitive ops, tensors) -> LLVM dialect for the host
/// CPU: expansion, fusion (unless `fuse=false`), linalg lowering,
/// vectorisation, one-shot bufferisation with in-place cache writes, the
/// entry-point ABI, OpenMP threads.
void buildLowerToCPUPipeline(OpPassManager &pm,
                             const CPUPipelineOptions &options);

struct NVVMPipelineOptions : public PassPipelineOptions<NVVMPipelineOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip", llvm::cl::desc("GPU architecture of the binary"),
      llvm::cl::init("sm_90a")};
  PassOptions::Option<std::string> features{
      *this, "features", llvm::cl::desc("PTX features (+ptx84: sm_90a needs 8.0, E4M3 mma.sync 8.4)"),
      llvm::cl::init("+ptx84")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Embedded kernels: fatbin, bin (cubin) or isa (PTX)"),
      llvm::cl::init("fatbin")};
  PassOptions::Option<int64_t> smCount{
      *this, "sm-count",
      llvm::cl::desc("Multiprocessors of the target GPU (attention key splits)"),
      llvm::cl::init(132)};
  PassOptions::Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit with ptxas and libdevice, given to "
                     "gpu-module-to-binary (default: upstream's choice, "
                     "$CUDA_ROOT/$CUDA_HOME/$CUDA_PATH, else /usr/local/cuda)"),
      llvm::cl::init("")};
  PassOptions::Option<bool> wgmma{
      *this, "wgmma",
      llvm::cl::desc("Prefill attention on warpgroup MMA (needs sm_90a)"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> maxSplits{
      *this, "max-splits",
      llvm::cl::desc("Most key splits of one attention launch"),
      llvm::cl::init(64)};
  PassOptions::Option<std::string> gptqGemv{
      *this, "gptq-gemv",
      llvm::cl::desc("The GEMV of GPTQ projections: tma-ring or streaming "
                     "(convert-attn-to-gpu's gptq-gemv)"),
      llvm::cl::init("tma-ring")};
  PassOptions::Option<bool> fuse{
      *this, "fuse",
      llvm::cl::desc("Run the fusion passes (attn-fuse-projection-epilogues, "
                     "attn-fuse-qkv, attn-fuse-rope-store, "
                     "attn-fuse-qk-norm-rope) after the expansion"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> runtimeChecks{
      *this, "runtime-checks",
      llvm::cl::desc("Check the run-time inputs (layer indices, index "
                     "tensors) at the start of every entry point and return "
                     "a non-zero status for a bad one "
                     "(attn-insert-entry-checks)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> abiChecks{
      *this, "abi-checks",
      llvm::cl::desc("Also check the sizes of the tensor arguments against "
                     "the function's types (attn-insert-abi-checks)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> dependentLaunch{
      *this, "dependent-launch",
      llvm::cl::desc("Kernels may start while the kernel before them "
                     "finishes (attn-dependent-launch; sm_90 and later)"),
      llvm::cl::init(true)};
};

/// attn (composite or primitive ops, tensors) -> LLVM dialect host code
/// that launches the layer's kernels from an embedded NVIDIA binary
/// (ptxas and libdevice from the `toolkit`), with the entry-point ABI of
/// docs/ABI.md on device buffers.
void buildLowerToNVVMPipeline(OpPassManager &pm,
                              const NVVMPipelineOptions &options);

/// Adds the fusion passes that both pipelines run after the expansion.
void addFusionPasses(OpPassManager &pm);

/// What both pipelines start with: the composite layer expanded, fused
/// (unless `fuse` is off), its caches unpacked at function boundaries and
/// the result canonicalised (`parts(make(...))` pairs cancel, small RoPE
/// tables fold).
void addPrimitiveOpsPasses(OpPassManager &pm, bool fuse);

/// Registers `attn-lower-to-cpu`.
void registerLowerToCPUPipeline();

/// Registers `attn-lower-to-nvvm`.
void registerLowerToNVVMPipeline();

/// Registers `attn-lower-to-cpu`, `attn-lower-to-nvvm` and the passes of
/// attn/Pipelines/Passes.h.
void registerPipelines();

} // namespace mlir::attn

#endif // ATTN_PIPELINES_PIPELINES_H
