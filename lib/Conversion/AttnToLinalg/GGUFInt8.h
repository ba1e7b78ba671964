//===- GGUFInt8.h - GGUF K-quant projections on int8 dots -------*- C++ -*-===//
//
// Projections of GGUF weights with few rows (decode batches, short prefill
// chunks) as llama.cpp computes them: the activations quantised per row (to
// Q8_K for Q4_K / Q6_K, to Q8_0 for Q4_0 / Q8_0), integer dot products of the
// quants per (sub-)block, the block scales applied in f32 (GGUFInt8.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_GGUFINT8_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_GGUFINT8_H

#include "Builders.h"

#include "attn/Dialect/Attn/IR/AttnAttrs.h"

#include <optional>

namespace mlir::attn::linalg_lowering {

/// The instructions of the int8 kernel (the `int8-dot` option).
enum class Int8Dot {
  None,      // no int8 kernel: weights decoded to f32
  AVX2,      // vpmaddubsw, vpmaddwd, vpaddd
  AVX512VNNI // vpmaddubsw, vpdpwssd (256-bit, AVX512-VL)
};

/// `none`, `avx2`, `avx512-vnni`; std::nullopt for any other name.
std::optional<Int8Dot> parseInt8Dot(StringRef name);

/// The most rows with which weights of `encoding` take the int8 kernel under
/// the `int8-max-rows` option `maxRows`: Q4_0 / Q8_0 at most 16 (from 32
/// rows the packed f32 GEMM is faster: 14336 x 4096, one thread, 58 / 50 ms
/// at 32 rows, level at 8 and 16).
int64_t int8RowLimit(GGUFAttr encoding, int64_t maxRows);

/// `x [T, K] (f32) @ W^T` into `init` ([T, n] f32) for W the GGUF `blocks`
/// ([n, K / elements * bytes]). Q4_K / Q6_K: each row of x quantised to
/// Q8_K, then per output element `sum_b d8_b (d_b I_b - dmin_b M_b)` with the
/// integer sums I_b (scaled quant products) and M_b (mins times the Q8_K
/// sums) of super-block b. Q4_0 / Q8_0: each row of x quantised to Q8_0, then
/// `sum_b (d_b d8_b) I_b` with I_b the integer dot product of block b.
/// Parallel over chunks of columns; a single row, or blocks of 8 rows that
/// share each unpacked weight piece.
Value int8Linear(IB &b, Value x, Value blocks, GGUFAttr encoding, int64_t n,
                 int64_t depth, Int8Dot dot, Value init);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_GGUFINT8_H
