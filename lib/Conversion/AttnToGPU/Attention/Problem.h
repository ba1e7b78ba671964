//===- Problem.h - what every flash-attention kernel knows ------*- C++ -*-===//
//
// The static facts of one attention op, the tile sizes of its kernels and
// the kernel arguments, named.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_PROBLEM_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_PROBLEM_H

#include "../KernelBuilder.h"

#include <optional>

namespace mlir::attn::gpu_lowering::attention {

/// Query rows of a prefill tile, keys of a K/V tile, threads of a block
/// (four warps), and the row padding of ldmatrix tiles.
constexpr int64_t kRows = 64, kKeys = 64, kThreads = 128, kPad = 8;
constexpr int64_t kWarps = kThreads / 32;
/// Rows of a decode tile (shared by the four warps).
constexpr int64_t kDecodeRows = 16;
/// Keys a split covers at least.
constexpr int64_t kMinSplitKeys = 256;
/// The widest head whose Q the mma.sync kernels hold in registers as A
/// fragments (D / 4 registers beside the D / 2 of the accumulators).
constexpr int64_t kMaxQueryInRegistersHeadDim = 128;

/// The static facts of one attention op.
struct Problem {
  Type element;
  int64_t heads, kvHeads, group, headDim, pageSize = 0;
  double scale = 1.0;
  bool paged = false;
  /// Row i sees keys up to its own position.
  bool causal = false;
  /// ... and at most the last `window` of them.
  std::optional<int64_t> window;

  /// The mma.sync kernels read Q from a shared tile of its own at every
  /// use; their tiles, over the 48 KB of static shared memory, are then
  /// carved from dynamic shared memory.
  bool queryInShared() const { return headDim > kMaxQueryInRegistersHeadDim; }
  /// Decode blocks resident at once per SM (the decode kernel's minctasm):
  /// 4 at 128 registers; 3 when Q is in shared memory, whose 128 f32
  /// accumulators alone (D 256) take a 128-register budget (and whose K,
  /// V and Q tiles, 76 KB at D 256, fit three times in 228 KB).
  int64_t decodeBlocksPerSM() const { return queryInShared() ? 3 : 4; }

  static Problem of(const AttentionSpec &spec);
};

/// The arguments of the attention kernels, in launch order: the query rows,
/// the keys (explicit K/V or the paged cache and its layer), the split
/// partials, the
/// split count and the schedule the call runs (0 prefill, 1 decode).
struct AttentionKernelArgs {
  Value query, out, qRowOffsets;
  Value key, value, kvRowOffsets;
  Value blocks, cacheLengths, lookup, layer;
  Value oPart, lsePart, splits, mode;
  /// In a kernel, with index validation: the status word, loaded first
  /// (KernelEmitter::loadStatus); not an argument. A block of a refused
  /// call finds no work (findBlockWork).
  Value status;

  SmallVector<Value> operands(bool paged) const;
  static AttentionKernelArgs fromOperands(ValueRange operands, bool paged);
};

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_PROBLEM_H
