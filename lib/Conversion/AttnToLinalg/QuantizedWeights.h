//===- QuantizedWeights.h - quantised weights in the kernels ---*- C++ -*-===//
//
// The projection kernels read their weight through a WeightReader; float
// weights are widened (Projections.cpp), float8 and GGUF ones decoded in
// registers from the parts of their `attn.quantized_weight` (here,
// GGUFWeights.cpp). GPTQ weights have their own kernel (GPTQLanes.h).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_QUANTIZEDWEIGHTS_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_QUANTIZEDWEIGHTS_H

#include "Builders.h"

#include "attn/Dialect/Attn/IR/AttnAttrs.h"

#include <memory>

namespace mlir::attn::linalg_lowering {

/// How a projection kernel reads its weight W [N, K]: f32 vectors
/// W[n, k .. k + width), k a multiple of width. `prepare` runs once where a
/// kernel starts (loop-invariant values), `row` inside its loops.
struct WeightReader {
  virtual ~WeightReader() = default;
  virtual void prepare(IB &b, int64_t width) {}
  virtual Value row(IB &b, Value n, Value k, int64_t width) = 0;
  /// K elements decoded together best (a quantisation block): a kernel that
  /// steps along K by a multiple of it reads W[n, kBlock + offset ..) with
  /// `rowAt`, the offset a constant, so that per-block work is shared.
  virtual int64_t blockElements() const { return 1; }
  virtual Value rowAt(IB &b, Value n, Value kBlock, int64_t offset,
                      int64_t width) {
    BuilderScope scope(b);
    return row(b, n, Idx(kBlock) + offset, width);
  }
};

/// A projection of a quantised weight as the kernels take it: the
/// activations they multiply ([T, K]: permuted to f32 for GPTQ desc_act,
/// rounded to E4M3 values in f32 for float8, else the input), a factor per
/// row of the product ([T] f32: float8's input scale; null otherwise) and
/// the reader decoding W (null for GPTQ, whose kernel reads the parts
/// itself: GPTQLanes.h).
struct QuantizedProjection {
  Value input;
  Value rowScale;
  std::unique_ptr<WeightReader> weights;
};

/// The reader of GGUF `blocks` [N, K / elements * bytes] (GGUFWeights.cpp).
std::unique_ptr<WeightReader> makeGGUFReader(Value blocks, GGUFAttr encoding);

/// The little-endian f16 at byte `offset` of row `n` of GGUF `blocks`, in
/// f32.
Value ggufF16(IB &b, Value blocks, Value n, Value offset);

/// `weight` is an `attn.quantized_weight` result; `x` the [T, K] input.
QuantizedProjection prepareQuantizedProjection(IB &b, Value x, Value weight);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_QUANTIZEDWEIGHTS_H
