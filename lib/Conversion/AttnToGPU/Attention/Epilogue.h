//===- Epilogue.h - the attention output of a block -------------*- C++ -*-===//
//
// After the last key tile, each row's output is O / l. A block with one
// key split writes it to `out`; each split of several writes its partial
// (normalised the same way) and its log2-sum-exp m + log2 l to the partial
// buffers, merged by the combine kernel.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_EPILOGUE_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_EPILOGUE_H

#include "BlockWork.h"
#include "OnlineSoftmax.h"

namespace mlir::attn::gpu_lowering::attention {

/// Writes the lane's rows `warpRow + group (+ 8)` of the tile: to `out`
/// when `oneSplit` (an i1) holds, else as partial `part`. Without
/// `oneSplit` the result is always a partial.
void writeOutput(IB &b, const Problem &p, const AttentionKernelArgs &a,
                 const BlockWork &work, const WarpLayout &w, Idx warpRow,
                 const SoftmaxState &state, Value oneSplit, Idx part);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_EPILOGUE_H
