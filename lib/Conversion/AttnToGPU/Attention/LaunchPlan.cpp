//===- LaunchPlan.cpp - how an attention call is launched -----------------===//

#include "LaunchPlan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

/// Splits of every sequence's keys: enough blocks to fill the GPU when
/// there are few query tiles, one split otherwise. Prefill splits only to
/// fill an idle GPU. Decode, whose blocks stream long caches, takes the
/// most splits that still fit two full waves of resident blocks: whole
/// waves leave no short last wave.
static Idx chooseSplits(IB &b, const KernelOptions &opts, const Problem &p,
                        int64_t queryRows, Idx tokens, Idx batch,
                        Idx keysUpperBound, bool decode) {
  Idx one = cIndex(b, 1);
  Idx cap = min(b, cIndex(b, opts.maxSplits),
                max(b, ceilDiv(b, keysUpperBound, kMinSplitKeys), one));
  if (decode) {
    // Few rows per sequence: about one query tile per non-empty sequence.
    Idx busy = max(b, min(b, tokens, batch), one) * p.kvHeads;
    Idx fit = cIndex(b, 2 * p.decodeBlocksPerSM() * opts.smCount) / busy;
    return max(b, min(b, fit, cap), one);
  }
  Idx qTiles = ceilDiv(b, tokens, queryRows);
  // Blocks that do work: at most one partial tile per sequence beyond the
  // full ones.
  Idx busy = min(b, batch * qTiles, qTiles + batch) * p.kvHeads;
  busy = max(b, busy, one);
  Idx wanted = ceilDiv(b, cIndex(b, 4 * opts.smCount), busy);
  Idx splits = max(b, min(b, wanted, cap), one);
  return select(b, busy >= 2 * opts.smCount, one, splits);
}

LaunchPlan attention::planLaunch(IB &host, const KernelOptions &opts,
                                 const Problem &p, const AttentionSpec &spec) {
  LaunchPlan plan;
  Idx tokens = dim(host, spec.query, 0);
  Idx batch = dim(host, spec.qRowOffsets, 0) - 1;
  Idx keysUpper =
      p.paged ? dim(host, spec.lookup, 1) * p.pageSize : dim(host, spec.key, 0);
  plan.tokens = tokens;
  plan.batch = batch;
  int64_t prefillRows = kRows / p.group, decodeRows = kDecodeRows / p.group;
  plan.hasDecode = decodeRows >= 1;
  Idx decodeMode = cBool(host, false);
  if (plan.hasDecode)
    decodeMode = ule(host, tokens, batch * 4);
  Idx splits = chooseSplits(host, opts, p, prefillRows, tokens, batch,
                            keysUpper, /*decode=*/false);
  Idx queryTiles = ceilDiv(host, tokens, prefillRows) + batch;
  if (plan.hasDecode) {
    splits = select(host, decodeMode,
                    chooseSplits(host, opts, p, decodeRows, tokens, batch,
                                 keysUpper, /*decode=*/true),
                    splits);
    queryTiles = select(host, decodeMode, ceilDiv(host, tokens, decodeRows) + batch,
                   queryTiles);
  }
  plan.decodeMode = decodeMode;
  plan.splits = splits;
  plan.queryTiles = queryTiles;
  plan.parts = select(host, decodeMode, splits * kWarps, splits);
  // Partials exist only when there are several (0 rows otherwise).
  plan.partRows = select(host, ugt(host, plan.parts, cIndex(host, 1)),
                         plan.parts, cIndex(host, 0));
  return plan;
}
