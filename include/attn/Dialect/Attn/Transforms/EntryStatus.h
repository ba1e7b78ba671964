//===- EntryStatus.h - the status codes of compiled entry points -*- C++ -*-===//
//
// Every compiled entry point returns an int32 status (docs/ABI.md). A check
// inserted by attn-insert-entry-checks is a `cf.assert` whose `attn.status`
// attribute is the code reported when it fails; attn-entry-status turns the
// checks into the status result.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_TRANSFORMS_ENTRYSTATUS_H
#define ATTN_DIALECT_ATTN_TRANSFORMS_ENTRYSTATUS_H

#include <cstdint>

namespace mlir::attn {

enum class EntryStatus : int32_t {
  Ok = 0,
  /// A run-time layer index is negative or not below the cache's layer count.
  LayerOutOfRange = 1,
  /// The ragged-batch index tensors disagree: row offsets must hold one more
  /// entry than the cache lengths, the lookup table one row per sequence, the
  /// query and key row offsets of explicit attention as many entries.
  BatchMismatch = 2,
  /// Row offsets do not start at 0, decrease, or do not end at the number of
  /// rows of the tensors they index.
  BadRowOffsets = 3,
  /// A cache length is negative.
  NegativeCacheLength = 4,
  /// A sequence needs more pages (cache length + new tokens) than its lookup
  /// table row holds.
  LookupTableTooNarrow = 5,
  /// A page id the call touches is negative or not below the page count.
  PageOutOfRange = 6,
  /// A position (cache length + new tokens) is beyond the RoPE table.
  PositionOutsideRopeTable = 7,
  /// A descriptor's size differs from a static size of the function's type
  /// (attn-insert-abi-checks).
  SizeMismatch = 8,
  /// (CUDA) A tensor argument that the kernels access in 16-byte pieces
  /// does not start on a 16-byte boundary.
  Misaligned = 9,
};

/// The message of a status, as `attnStatusMessage` returns it (docs/ABI.md).
inline const char *entryStatusMessage(EntryStatus status) {
  switch (status) {
  case EntryStatus::Ok:
    return "success";
  case EntryStatus::LayerOutOfRange:
    return "a run-time layer index is outside the KV cache (not in [0, "
           "num_layers))";
  case EntryStatus::BatchMismatch:
    return "row_offsets, cache_lengths and lookup_table (or the query and key "
           "row offsets) disagree on the batch size";
  case EntryStatus::BadRowOffsets:
    return "row_offsets must start at 0, never decrease and end at the number "
           "of rows";
  case EntryStatus::NegativeCacheLength:
    return "a cache length is negative";
  case EntryStatus::LookupTableTooNarrow:
    return "a sequence needs more pages (cache length + new tokens) than the "
           "lookup table has columns";
  case EntryStatus::PageOutOfRange:
    return "a page id the call touches is negative or not below the number "
           "of pages";
  case EntryStatus::PositionOutsideRopeTable:
    return "a position (cache length + new tokens) is beyond the RoPE table";
  case EntryStatus::SizeMismatch:
    return "a tensor argument's size differs from the function's type";
  case EntryStatus::Misaligned:
    return "a tensor argument the GPU kernels access in 16-byte pieces does "
           "not start on a 16-byte boundary";
  }
  return "unknown status";
}

/// The last status code.
inline constexpr EntryStatus kLastEntryStatus = EntryStatus::Misaligned;

/// The function of every library returning a status's message.
inline constexpr const char *kStatusMessageFunctionName = "attnStatusMessage";
/// `const char *attnEntrySignatures(void)`: one line per entry point, its name
/// then the C arguments' types (docs/ABI.md, "Signatures").
inline constexpr const char *kEntrySignaturesFunctionName =
    "attnEntrySignatures";

/// The attribute of a `cf.assert` naming the status it reports.
inline constexpr const char *kEntryStatusAttrName = "attn.status";

} // namespace mlir::attn

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_ENTRYSTATUS_H
