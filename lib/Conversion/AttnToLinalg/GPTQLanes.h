//===- GPTQLanes.h - GPTQ projections with lanes along N -------*- C++ -*-===//
//
// Projections of GPTQ weights: vectors along the output columns, the order
// in which GPTQ packs its words, so that a vector of words is one load and
// each word is decoded once for all rows of a block (GPTQLanes.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_GPTQLANES_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_GPTQLANES_H

#include "Builders.h"

#include "attn/Dialect/Attn/IR/AttnAttrs.h"

namespace mlir::attn::linalg_lowering {

/// `x [T, K] @ W^T` into `init` ([T, n] f32) for the GPTQ weight W of
/// `qweight` and `scales` (`x` already permuted for desc_act): per group G of
/// K, `y[t, n] += s[G, n] sum_{k in G} (q[k, n] - 8) x[t, k]`, the nibbles
/// decoded where they lie in the word, in vectors of at most `maxLanes` f32.
/// Parallel over chunks of columns; one row, or blocks of rows sharing each
/// decoded vector of words. Any row count: from 16 rows to 2048 it is level
/// with or faster than the packed GEMM decoding W into f32 panels.
Value gptqLinear(IB &b, Value x, Value qweight, Value scales, GPTQAttr encoding,
                 int64_t n, int64_t depth, int64_t maxLanes, Value init);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_GPTQLANES_H
