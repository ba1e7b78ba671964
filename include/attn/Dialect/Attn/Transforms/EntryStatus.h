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
  /// entry than the cache lengths, the lookup table one row per sequence.
  BatchMismatch = 2,
};

/// The attribute of a `cf.assert` naming the status it reports.
inline constexpr const char *kEntryStatusAttrName = "attn.status";

} // namespace mlir::attn

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_ENTRYSTATUS_H
