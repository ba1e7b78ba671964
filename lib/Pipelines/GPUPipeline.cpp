//===- GPUPipeline.cpp - attn -> host LLVM + an embedded NVIDIA binary ----===//

#include "attn/Pipelines/Pipelines.h"

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "attn/Pipelines/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Utils.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

/// attn ops on tensors -> gpu.launch kernels on buffers, one stream per call.
static void addAttnToGPU(OpPassManager &pm,
                         const attn::NVVMPipelineOptions &options) {
  attn::addPrimitiveOpsPasses(pm, options.fuse);
  if (options.runtimeChecks) {
    // The index tensors are device memory: a kernel checks their values
    // (convert-attn-to-gpu, validate-index-values; docs/ABI.md, Status).
    attn::AttnInsertEntryChecksOptions checks;
    checks.indexValues = false;
    pm.addPass(attn::createAttnInsertEntryChecks(checks));
  }
  // Prepended: the size checks go first.
  if (options.abiChecks)
    pm.addPass(attn::createAttnInsertABIChecks());
  attn::ConvertAttnToGPUOptions toGPU;
  toGPU.smCount = options.smCount;
  toGPU.maxSplits = options.maxSplits;
  // wgmma exists on sm_90a only.
  toGPU.wgmma = options.wgmma && options.chip == "sm_90a";
  toGPU.validateIndexValues = options.runtimeChecks;
  toGPU.gptqGemv = options.gptqGemv;
  pm.addPass(attn::createConvertAttnToGPU(toGPU));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Kernels and allocations ordered on one stream per call.
  pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
  // After the stream is threaded through: a failed check skips it all.
  pm.addPass(attn::createAttnEntryStatus());
  // Entry points of one layer share their kernels and host code (the ABI,
  // status included, is final here, so a copy can call it).
  pm.addPass(attn::createAttnMergeIdenticalFunctions());
}

/// The CUDA toolkit that gpu-module-to-binary takes ptxas and libdevice
/// (f64 cos/sin, exp2) from: `toolkit`, else upstream's choice
/// ($CUDA_ROOT / $CUDA_HOME / $CUDA_PATH, the one found when MLIR was built),
/// else /usr/local/cuda. Without libdevice the kernels keep unresolved
/// __nv_* calls.
static std::string cudaToolkit(const attn::NVVMPipelineOptions &options) {
  if (!options.toolkit.empty())
    return options.toolkit;
  StringRef upstream = NVVM::getCUDAToolkitPath();
  return upstream.empty() ? "/usr/local/cuda" : upstream.str();
}

/// The number of an `sm_XY[a]` chip name (0 if it has none).
static int64_t chipVersion(StringRef chip) {
  int64_t version = 0;
  chip.consume_front("sm_");
  chip = chip.take_while([](char c) { return llvm::isDigit(c); });
  return chip.getAsInteger(10, version) ? 0 : version;
}

/// Upstream's gpu-lower-to-nvvm-pipeline (GPUToNVVMPipeline.cpp) at opt-level
/// 3, spelled out so that gpu-module-to-binary gets the toolkit as an option.
static void addGPUToNVVM(OpPassManager &pm,
                         const attn::NVVMPipelineOptions &options) {
  pm.addPass(createConvertNVGPUToNVVMPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(target));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  ConvertIndexToLLVMPassOptions indexToLLVM;
  indexToLLVM.indexBitwidth = 64;
  pm.addPass(createConvertIndexToLLVMPass(indexToLLVM));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  // Kernels.
  ConvertGpuOpsToNVVMOpsOptions gpuToNVVM;
  gpuToNVVM.indexBitwidth = 64;
  pm.addNestedPass<gpu::GPUModuleOp>(createConvertGpuOpsToNVVMOps(gpuToNVVM));
  pm.addNestedPass<gpu::GPUModuleOp>(createCanonicalizerPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createCSEPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createReconcileUnrealizedCastsPass());
  pm.addNestedPass<gpu::GPUModuleOp>(attn::createAttnGridConstantTensorMaps());
  if (options.dependentLaunch && chipVersion(options.chip) >= 90)
    pm.addNestedPass<gpu::GPUModuleOp>(attn::createAttnDependentLaunch());

  // Host.
  pm.addPass(createGpuToLLVMConversionPass());
  GpuModuleToBinaryPassOptions toBinary;
  toBinary.compilationTarget = options.format;
  toBinary.toolkitPath = cudaToolkit(options);
  pm.addPass(createGpuModuleToBinaryPass(toBinary));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void attn::buildLowerToNVVMPipeline(OpPassManager &pm,
                                    const NVVMPipelineOptions &options) {
  addAttnToGPU(pm, options);
  addGPUToNVVM(pm, options);
}

void attn::registerLowerToNVVMPipeline() {
  PassPipelineRegistration<NVVMPipelineOptions>(
      "attn-lower-to-nvvm",
      "Lower attn IR to host LLVM code launching GPU kernels (tensor-core "
      "flash attention and projections) from an embedded sm_90a binary",
      buildLowerToNVVMPipeline);
}
