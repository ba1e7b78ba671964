//===- StageBarriers.h - the mbarriers of a TMA stage ring -----*- C++ -*-===//
//
// The wgmma GEMMs hand each shared-memory stage between a producer (TMA
// loads) and consumers through two groups of mbarriers, one of each per
// stage: `full` (its bytes landed) and `empty` (every consumer is done with
// it). A barrier's phases alternate parity, so the n-th use of a stage
// waits for parity n % 2.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_STAGEBARRIERS_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_STAGEBARRIERS_H

#include "KernelBuilder.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

namespace mlir::attn::gpu_lowering {

/// Waits until barrier `index` of `barriers` completes its `use`-th phase.
inline void waitBarrier(IB &b, Value barriers, Idx index, Idx use) {
  Value parity = indexCast(b, use % 2, b.getI1Type());
  nvgpu::MBarrierTryWaitParityOp::create(b, barriers, parity,
                                         cIndex(b, 10000000), index);
}

/// Arrives (once) on barrier `index` of `barriers`.
inline void arriveBarrier(IB &b, Value barriers, Idx index) {
  nvgpu::MBarrierArriveOp::create(
      b, nvgpu::MBarrierTokenType::get(b.getContext()), barriers, index);
}

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_STAGEBARRIERS_H
