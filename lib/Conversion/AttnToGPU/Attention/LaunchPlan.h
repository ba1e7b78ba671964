//===- LaunchPlan.h - how an attention call is launched ---------*- C++ -*-===//
//
// The host decides per call, from the batch's row counts: the schedule
// (prefill: 64-row tiles with warps splitting rows; decode, few query rows
// per sequence: 16-row tiles with warps splitting keys), the key splits
// (flash-decoding when there are few query tiles), the grid, and the rows
// of the partial buffers.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_LAUNCHPLAN_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_LAUNCHPLAN_H

#include "Problem.h"

namespace mlir::attn::gpu_lowering::attention {

struct LaunchPlan {
  /// Query rows of the batch, and sequences.
  Value tokens, batch;
  /// Whether a decode kernel exists: its 16-row tile holds a GQA group.
  bool hasDecode = false;
  /// i1: the call runs the decode schedule.
  Value decodeMode;
  /// Key splits per (sequence, query tile).
  Value splits;
  /// (sequence, query tile) pairs, at most T / rows + B.
  Value queryTiles;
  /// Partial results per row: the splits, times the warps at decode.
  Value parts;
  /// Rows of the partial buffers: `parts`, or 0 with a single one.
  Value partRows;
};

LaunchPlan planLaunch(IB &host, const KernelOptions &opts, const Problem &p,
                      const AttentionSpec &spec);

} // namespace mlir::attn::gpu_lowering::attention

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_ATTENTION_LAUNCHPLAN_H
