//===- Projections.h - the loop nest of the projection kernels --*- C++ -*-===//
//
// The parallel loops that the projection kernels (Projections.cpp, the int8
// kernel of GGUFInt8.cpp) share.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_PROJECTIONS_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_PROJECTIONS_H

#include "Builders.h"

namespace mlir::attn::linalg_lowering {

/// Columns of `w` per parallel chunk of the vector projection kernels (0:
/// `n` is odd).
int64_t linearChunk(int64_t n);

/// What one register block of a projection kernel works on.
struct ProjectionBlock {
  Value kBegin, kEnd;        // the block of K
  ArrayRef<Value> rows;      // row indices; tail rows repeat the last row
  ArrayRef<Value> rowValid;  // whether each of them is a real row
  Value col;                 // first column of the block within the chunk
};

/// The loop nest the projection kernels share: an scf.forall over chunks of
/// `chunk` output columns of `init` ([T, N] f32); per chunk `prologue(col0)`
/// runs once, then blocks of K x blocks of `rowBlock` rows x blocks of
/// `colStep` columns call `block` on a zeroed [T, chunk] f32 tile, which is
/// inserted into the result in parallel.
Value projectionLoops(
    IB &b, Value init, Value tokens, int64_t n, int64_t chunk, int64_t depth,
    int64_t depthBlock, int64_t rowBlock, int64_t colStep,
    function_ref<void(IB &, Value col0)> prologue,
    function_ref<Value(IB &, const ProjectionBlock &, Value col0, Value tile)>
        block);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_PROJECTIONS_H
