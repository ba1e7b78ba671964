//===- Schedules.h - the flash-attention kernel bodies ----------*- C++ -*-===//
//
// One function per schedule, each the body of its kernel (FlashAttention-2
// on mma.sync, FlashAttention-3's warpgroup MMA on sm_90a), and the combine
// kernel of the key splits (flash-decoding).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_SCHEDULES_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_SCHEDULES_H

#include "Problem.h"

namespace mlir::attn::gpu_lowering::attention {

struct MmaTiles;

/// Whether prefill runs on wgmma: sm_90a and a head dim of 64, 128 or 256.
bool prefillUsesWgmma(const KernelOptions &opts, const Problem &p);
/// Dynamic shared memory of the wgmma prefill: Q, K, V and P tiles, and
/// the slack to align them to 1024 bytes.
int64_t wgmmaSharedBytes(const Problem &p);

/// Prefill on sm_90a: a warpgroup per 64-row tile, S = Q K^T and O += P V
/// on wgmma from 128-byte-swizzled tiles in dynamic shared memory.
void buildPrefillWgmma(IB &b, const Problem &p, const AttentionKernelArgs &a);

/// Prefill on mma.sync: a warp per 16 rows of the 64-row tile, Q fragments
/// in registers (or, above head dim 128, read from shared memory), K and V
/// through ldmatrix from `tiles`.
void buildPrefillMma(IB &b, const Problem &p, const AttentionKernelArgs &a,
                     const MmaTiles &tiles);

/// Decode on mma.sync: one 16-row tile whose four warps split every key
/// tile; each warp's result is a partial of its own.
void buildDecode(IB &b, const Problem &p, const AttentionKernelArgs &a,
                 const MmaTiles &tiles);

/// out[row, head, :] = sum_s w_s oPart[s, row, head, :] / sum_s w_s with
/// w_s = 2^(lse_s - max lse), over `parts` partials (nothing with one).
void emitCombine(KernelEmitter &e, IB &host, const Problem &p, Value oPart,
                 Value lsePart, Value out, Value parts);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_SCHEDULES_H
