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
  PassOptions::Option<int64_t> vectorLanes{
      *this, "vector-lanes",
      llvm::cl::desc("f32 lanes of the projection kernels (8: AVX2, 16: "
                     "AVX-512)"),
      llvm::cl::init(8)};
};

/// attn (composite or primitive ops, tensors) -> LLVM dialect for the host
/// CPU: expansion, linalg lowering, vectorisation, one-shot bufferisation
/// with in-place cache writes, the entry-point ABI, OpenMP threads.
void buildLowerToCPUPipeline(OpPassManager &pm,
                             const CPUPipelineOptions &options);

/// Registers `attn-lower-to-cpu`.
void registerPipelines();

} // namespace mlir::attn

#endif // ATTN_PIPELINES_PIPELINES_H
