//===- Problem.cpp - what every flash-attention kernel knows --------------===//

#include "Problem.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::attention;

Problem Problem::of(const AttentionSpec &spec) {
  auto qType = cast<MemRefType>(spec.query.getType());
  Problem p;
  p.element = qType.getElementType();
  p.heads = qType.getDimSize(1);
  p.headDim = qType.getDimSize(2);
  p.paged = spec.paged();
  if (p.paged) {
    auto blocksType = cast<MemRefType>(spec.blocks.getType());
    p.kvHeads = blocksType.getDimSize(4);
    p.pageSize = blocksType.getDimSize(3);
  } else {
    p.kvHeads = cast<MemRefType>(spec.key.getType()).getDimSize(1);
  }
  p.group = p.heads / p.kvHeads;
  p.layer = spec.layer;
  p.scale = spec.scale;
  p.causal = spec.mask.getKind() != MaskKind::None;
  if (spec.mask.getKind() == MaskKind::SlidingWindow)
    p.window = spec.mask.getWindow();
  return p;
}

SmallVector<Value> AttentionKernelArgs::operands(bool paged) const {
  SmallVector<Value> all = {query, out, qRowOffsets};
  if (paged)
    all.append({blocks, cacheLengths, lookup});
  else
    all.append({key, value, kvRowOffsets});
  all.append({oPart, lsePart, splits, mode});
  return all;
}

AttentionKernelArgs AttentionKernelArgs::fromOperands(ValueRange operands,
                                                      bool paged) {
  AttentionKernelArgs a;
  a.query = operands[0];
  a.out = operands[1];
  a.qRowOffsets = operands[2];
  if (paged) {
    a.blocks = operands[3];
    a.cacheLengths = operands[4];
    a.lookup = operands[5];
  } else {
    a.key = operands[3];
    a.value = operands[4];
    a.kvRowOffsets = operands[5];
  }
  a.oPart = operands[6];
  a.lsePart = operands[7];
  a.splits = operands[8];
  a.mode = operands[9];
  return a;
}
