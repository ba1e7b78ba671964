//===- Patterns.h - the pattern groups of convert-attn-to-gpu ---*- C++ -*-===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_PATTERNS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_PATTERNS_H

#include "attn/Conversion/AttnToGPU/AttnToGPU.h"

namespace mlir::attn {

/// The attn compute ops and RoPE tables: one kernel launch (or a few) each.
void populateKernelLaunchPatterns(AttnToGPUPatternSet &patterns);

/// Tensor constants, dims and shape casts, and the paged cache's make /
/// parts: buffer views and bookkeeping, no kernel.
void populateBufferViewPatterns(AttnToGPUPatternSet &patterns);

/// `shard.all_reduce` of sharded layers: a call into the runtime's NCCL.
void populateCollectivePatterns(AttnToGPUPatternSet &patterns);

} // namespace mlir::attn

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_PATTERNS_H
