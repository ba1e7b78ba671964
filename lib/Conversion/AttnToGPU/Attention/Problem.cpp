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
  p.scale = spec.scale;
  p.causal = spec.mask.getKind() != MaskKind::None;
  if (spec.mask.getKind() == MaskKind::SlidingWindow)
    p.window = spec.mask.getWindow();
  return p;
}

SmallVector<Value> AttentionKernelArgs::operands(bool paged) const {
  SmallVector<Value> all = {query, out, qRowOffsets};
  if (paged)
    all.append({blocks, cacheLengths, lookup, layer});
  else
    all.append({key, value, kvRowOffsets});
  all.append({oPart, lsePart, splits, mode});
  return all;
}

AttentionKernelArgs AttentionKernelArgs::fromOperands(ValueRange operands,
                                                      bool paged) {
  AttentionKernelArgs a;
  auto next = operands.begin();
  for (Value *field : {&a.query, &a.out, &a.qRowOffsets})
    *field = *next++;
  if (paged) {
    for (Value *field : {&a.blocks, &a.cacheLengths, &a.lookup, &a.layer})
      *field = *next++;
  } else {
    for (Value *field : {&a.key, &a.value, &a.kvRowOffsets})
      *field = *next++;
  }
  for (Value *field : {&a.oPart, &a.lsePart, &a.splits, &a.mode})
    *field = *next++;
  return a;
}
