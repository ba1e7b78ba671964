//===- NormRope.h - RMS norm and RoPE builders ------------------*- C++ -*-===//
//
// The pieces of the attn.rms_norm / attn.rope lowering (NormRope.cpp) that
// attn.rope_store (CacheStore.cpp) builds with as well.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_NORMROPE_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_NORMROPE_H

#include "Builders.h"

namespace mlir::attn::linalg_lowering {

/// `input * rsqrt(mean(input^2, last dim) + eps) * gamma` in f32, stored
/// in the input's element type.
Value buildRMSNorm(IB &b, Value input, Value gamma, double epsValue);

/// cos and sin `[T, D/2]` of the rows of a `[T, ...]` input: recomputed from
/// the rope attribute when `freqs` is an `attn.rope_freqs`, else gathered.
std::pair<Value, Value> ropeCosSin(IB &b, Value freqs, Value rowOffsets,
                                   Value cacheLengths, Value tokens,
                                   int64_t headDim);

/// RoPE of `input [T, H, D]` with per-row cos/sin `[T, D/2]`.
Value buildRope(IB &b, Value input, Value cosT, Value sinT, bool interleaved);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_NORMROPE_H
