//===- GPUPipeline.cpp - attn -> host LLVM + an embedded NVIDIA binary ----===//

#include "attn/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstdlib>

using namespace mlir;

void attn::buildLowerToNVVMPipeline(OpPassManager &pm,
                                    const NVVMPipelineOptions &options) {
  // gpu-module-to-binary finds ptxas and libdevice (f64 cos/sin, exp2) in
  // the toolkit that CUDA_ROOT / CUDA_HOME / CUDA_PATH name; without one it
  // leaves __nv_* calls unresolved. Name it when the environment does not.
  if (!options.toolkit.getValue().empty())
    setenv("CUDA_ROOT", options.toolkit.getValue().c_str(), /*overwrite=*/1);
  else if (!std::getenv("CUDA_ROOT") && !std::getenv("CUDA_HOME") &&
           !std::getenv("CUDA_PATH"))
    setenv("CUDA_ROOT", "/usr/local/cuda", /*overwrite=*/0);
  std::string pipeline = llvm::formatv(
      "attn-expand-composite,{{FUSION}attn-unpack-cache-arguments,canonicalize,cse,"
      "convert-attn-to-gpu{{sm-count={0} max-splits={1} wgmma={5}},canonicalize,cse,"
      // One stream per call, kernels and allocations ordered on it.
      "func.func(gpu-async-region),"
      "gpu-lower-to-nvvm-pipeline{{cubin-chip={2} cubin-features={3} "
      "cubin-format={4} opt-level=3}",
      options.smCount.getValue(), options.maxSplits.getValue(),
      options.chip.getValue(), options.features.getValue(),
      options.format.getValue(),
      // wgmma exists on sm_90a only.
      options.wgmma.getValue() && options.chip.getValue() == "sm_90a");
  // Fusion works on the primitive ops, before the caches are unpacked.
  llvm::StringRef fusion = options.fuse ? fusionPasses() : "";
  size_t at = pipeline.find("{FUSION}");
  pipeline.replace(at, 8, fusion.str());
  if (failed(parsePassPipeline(pipeline, pm)))
    llvm::report_fatal_error("attn-lower-to-nvvm: bad pipeline text");
}
