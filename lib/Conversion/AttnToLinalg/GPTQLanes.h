//===- GPTQLanes.h - GPTQ projections with lanes along N -------*- C++ -*-===//
//
// Projections of GPTQ weights with few rows (decode batches): vectors along
// the output columns, the order in which GPTQ packs its words, so that a
// vector of words is one load and each word is decoded once for all rows of
// a block (GPTQLanes.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_GPTQLANES_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_GPTQLANES_H

#include "Builders.h"

#include "attn/Dialect/Attn/IR/AttnAttrs.h"

namespace mlir::attn::linalg_lowering {

/// Whether `gptqLanesLinear` takes a GPTQ weight of `n` output columns with
/// vectors of `lanes` f32.
bool gptqLanesApply(int64_t n, int64_t lanes);

/// `x [T, K] @ W^T` into `init` ([T, n] f32) for the GPTQ weight W of
/// `qweight` and `scales` (`x` already permuted for desc_act): per group G of
/// K, `y[t, n] += s[G, n] sum_{k in G} (q[k, n] - 8) x[t, k]`, the nibbles
/// decoded where they lie in the word. Parallel over chunks of columns; one
/// row, or blocks of rows sharing each decoded vector of words.
Value gptqLanesLinear(IB &b, Value x, Value qweight, Value scales,
                      GPTQAttr encoding, int64_t n, int64_t depth,
                      int64_t lanes, Value init);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_GPTQLANES_H
