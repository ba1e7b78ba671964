//===- GemmGPTQ.h - x @ W^T of GPTQ int4 weights above 64 rows -*- C++ -*-===//
//
// The GEMMs of GPTQ weights (GemmGPTQ.cpp, GemmGPTQWgmma.cpp) above
// gptqGemvMaxRows (64, or 32 for wide N), the GEMV (GemvGPTQ.cpp) up to it,
// and the int4 decoding they share.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_GEMMGPTQ_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_GEMMGPTQ_H

#include "MatmulKernel.h"

namespace mlir::attn::gpu_lowering {

/// Where the kernels find row r, column n (of its weight) of a GPTQ part,
/// the words ([K/8, N]) or the scales ([K/g, N]), in the 2-D buffer they
/// read: at [r, n] in checkpoint order. `column_blocks` parts ([N/32, rows,
/// 32]) are collapsed on the host to [N/32 * rows, 32], so the element is at
/// [(n / 32) rows + r, n % 32]: a box of 32 aligned columns is one
/// contiguous run, a chunk of 4 or 8 stays in one.
struct GPTQPartOrder {
  bool columnBlocks = false;
  int64_t rows = 0; // of the part in checkpoint order: K / 8 or K / g

  /// (row, column) in the buffer of row `r`, column `n`.
  std::pair<Idx, Idx> at(Idx r, Idx n) const;
};

/// The GEMM's arguments: x ([M, K], already permuted for desc_act), each
/// weight's packed words and scales (one dynamic-N type when there are
/// several; in the orders given), outputs. GPTQ projections have no bias
/// (as in MAX).
struct GPTQGemmArgs {
  Value x;
  SmallVector<Value> packed, scales, outputs;
  GPTQPartOrder wordOrder, scaleOrder;

  template <typename F> void forEach(F f) {
    f(x);
    for (Value &v : packed)
      f(v);
    for (Value &v : scales)
      f(v);
    for (Value &v : outputs)
      f(v);
  }
};

/// `nibbles` (an i32 holding two 4-bit values q at bits 0-3 and 16-19, the
/// rest zero) as the pair (q - 8) in `element` (bf16 / f16), exactly: the
/// nibbles become the mantissa of 128 (bf16) or 1024 (f16), minus 136 / 1032.
Value decodeGPTQNibbles(IB &b, Value nibbles, Type element);

/// Nibbles j and j + 4 of `word` (its k j and j + 4) as the decoded pair
/// (q - 8) in one i32 of `element`s (nibble j in the low half).
Value decodeGPTQNibblePair(IB &b, Value word, int64_t j, Type element);

/// The prmt selector of decodeGPTQByte for byte `quad` (0-3) of a word.
Value gptqByteSelector(IB &b, Idx quad);
/// Byte `quad` of `word` (its k 2 quad and 2 quad + 1) as the decoded pair
/// in one i32 of `element`s, an mma operand register of those two k: prmt
/// takes the byte into bits 0-7 and the same byte of `word >> 4` into bits
/// 16-23, so that the two nibbles sit at bits 0-3 and 16-19.
Value decodeGPTQByte(IB &b, Value word, Value byteSelector, Type element);

/// The GEMV serves GPTQ up to this many rows, in 16-row slices of x. At 64
/// rows (K 4096 x N 14336, H200) it takes 54 us, the 64 x 64 `mma.sync` GEMM
/// 74-78 us; in the Llama-3-8B 64 x 1024 decode step 159 us against 216.
constexpr int64_t kGPTQGemvMaxRows = 64;

/// From this N, the wgmma GEMM takes GPTQ above kGPTQGemvMaxRowsWide rows.
/// The GEMV's slices run side by side, so 32 rows cost what 16 do, but 64
/// read W four times; the GEMM decodes W once in one wave of 128-feature
/// blocks, about 29 us at K 4096 whatever N. H200, 64 rows, GEMV / GEMM:
/// N 4096 18.7 / 27.8 us, 6144 27.4 / 29.1, 10240 39.3 / 29.5, 14336
/// 53.4 / 30.0; at 32 rows the GEMV wins up to 10240 (24.9 / 29.0).
constexpr int64_t kGPTQWideN = 10240;
constexpr int64_t kGPTQGemvMaxRowsWide = 32;

/// The rows up to which the GEMV serves a GPTQ projection of `n` columns.
inline int64_t gptqGemvMaxRows(bool wgmmaGemm, int64_t n) {
  return wgmmaGemm && n >= kGPTQWideN ? kGPTQGemvMaxRowsWide
                                      : kGPTQGemvMaxRows;
}

/// The host launches the GEMM (M > gptqGemvMaxRows): 128 x 128 tiles.
/// Every N of `stack` but the last is a multiple of 32
/// (quantizedGemvCanShare).
void emitGPTQGemm(KernelEmitter &e, IB &host, const GPTQGemmArgs &args,
                  const WeightStack &stack, int64_t groupSize,
                  ArrayRef<OutputSegment> outputs);

/// Whether the wgmma GEMM (GemmGPTQWgmma.cpp, sm_90a) computes this
/// projection: bf16 / f16 x that TMA can read, groups of multiples of 64.
bool gptqWgmmaGemmApplies(const GPTQGemmArgs &args, int64_t groupSize);

/// The host launches it (M > gptqGemvMaxRows): 128 features x 128 tokens
/// a block (64 tokens up to 128 rows), decoded weights as wgmma's register
/// A operand.
void emitGPTQWgmmaGemm(KernelEmitter &e, IB &host, const GPTQGemmArgs &args,
                       const WeightStack &stack, int64_t groupSize,
                       ArrayRef<OutputSegment> outputs);

/// GPTQ's K step: four word rows (32 k); K and the group size are
/// multiples of it on the GPU (checkQuantizedGemv).
constexpr int64_t kGPTQStepK = 32;

/// A shape of the GPTQ GEMV (GemvGPTQ.cpp): `warps` per block splitting K,
/// `stages` K units (128 k, or the group when smaller) in each warp's ring,
/// `xTiles` n8 tiles of x (8 or 16 rows a block).
struct GPTQGemvShape {
  int64_t warps = 8, stages = 3, xTiles = 1;
};

/// The host launches the GEMV for M <= gptqGemvMaxRows: blocks of 64
/// columns and 8 (M <= 8) or 16 rows of x (grid.y slices M by 16), the
/// shape chosen by the block count. Every N of `stack` but the last is a
/// multiple of 32 (quantizedGemvCanShare).
void emitGPTQGemv(KernelEmitter &e, IB &host, const GPTQGemmArgs &args,
                  const WeightStack &stack, int64_t groupSize,
                  ArrayRef<OutputSegment> outputs);

/// The same projection by the streaming GEMV (GemvGPTQStreaming.cpp, pass
/// option gptq-gemv=streaming): blocks of 32 columns and 8 (M <= 8) or 16
/// rows of x, words loaded straight into registers.
void emitGPTQStreamingGemv(KernelEmitter &e, IB &host, const GPTQGemmArgs &args,
                           const WeightStack &stack, int64_t groupSize,
                           ArrayRef<OutputSegment> outputs);

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_GEMMGPTQ_H
