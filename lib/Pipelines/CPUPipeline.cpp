//===- CPUPipeline.cpp - attn -> LLVM for the host CPU --------------------===//

#include "attn/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

llvm::StringRef attn::fusionPasses() {
  return "attn-fuse-projection-epilogues,attn-fuse-qkv,attn-fuse-rope-store,"
         "attn-fuse-qk-norm-rope,";
}

void attn::buildLowerToCPUPipeline(OpPassManager &pm,
                                   const CPUPipelineOptions &options) {
  // Written as text so that every step reads like its attn-opt flag.
  std::string pipeline = llvm::formatv(
      "attn-expand-composite,{{FUSION}attn-unpack-cache-arguments,canonicalize,cse,"
      // No CSE after this point: merged tensor.empty ops would force copies.
      "convert-attn-to-linalg{{q-tile-rows={0} kv-tile={1} vector-lanes={2} "
      "decode-items={3}},canonicalize,"
      "one-shot-bufferize{{bufferize-function-boundaries allow-return-allocs-from-loops "
      "function-boundary-type-conversion=identity-layout-map},"
      // Canonicalising first forwards loop-carried buffers to the arguments.
      "canonicalize,attn-cpu-entry-abi,canonicalize,buffer-deallocation-pipeline,"
      "scf-forall-to-parallel,convert-scf-to-openmp,"
      "attn-approximate-math,convert-vector-to-scf{{full-unroll target-rank=1},"
      "convert-linalg-to-loops,lower-affine,"
      // bf16 arithmetic outside the attn kernels (e.g. an unfused bias add) in f32.
      "arith-emulate-unsupported-floats{{source-types=bf16 target-type=f32},"
      "arith-expand{{include-bf16},expand-strided-metadata,lower-affine,"
      // memref first: it inlines OpenMP's alloca scopes, which must still
      // hold a single block when scf becomes cf.
      "finalize-memref-to-llvm,convert-scf-to-cf,convert-math-to-llvm,"
      "convert-vector-to-llvm{{vector-transpose-lowering=shuffle1d "
      "reassociate-fp-reductions},convert-to-llvm,"
      "reconcile-unrealized-casts",
      options.queryTileRows.getValue(), options.kvTile.getValue(),
      options.vectorLanes.getValue(), options.decodeItems.getValue());
  // Fusion works on the primitive ops, before the caches are unpacked.
  llvm::StringRef fusion = options.fuse ? fusionPasses() : "";
  size_t at = pipeline.find("{FUSION}");
  pipeline.replace(at, 8, fusion.str());
  if (failed(parsePassPipeline(pipeline, pm)))
    llvm::report_fatal_error("attn-lower-to-cpu: bad pipeline text");
}

void attn::registerPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "attn-lower-to-cpu",
      "Lower attn IR to the LLVM dialect for the host CPU (vector units, "
      "OpenMP threads, in-place cache writes, C entry points)",
      buildLowerToCPUPipeline);
  PassPipelineRegistration<NVVMPipelineOptions>(
      "attn-lower-to-nvvm",
      "Lower attn IR to host LLVM code launching GPU kernels (tensor-core "
      "flash attention and projections) from an embedded sm_90a binary",
      buildLowerToNVVMPipeline);
}
