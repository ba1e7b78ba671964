//===- WarpSpecialization.h - producer and consumer warpgroups -*- C++ -*-===//
//
// What the warp-specialised wgmma GEMMs share. They hand each shared-memory
// stage between a producer (TMA loads) and consumers through two groups of
// mbarriers, one of each per stage: `full` (its bytes landed) and `empty`
// (every consumer is done with it). A barrier's phases alternate parity, so
// the n-th use of a stage waits for parity n % 2. A producer that needs few
// registers may give them to the consumers (setmaxnreg).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_WARPSPECIALIZATION_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_WARPSPECIALIZATION_H

#include "KernelBuilder.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
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

/// Fixes the registers at entry of the kernel being built at `b` (one block
/// a multiprocessor), as setmaxnreg requires.
inline void fixRegistersAtEntry(IB &b) {
  b.getInsertionBlock()
      ->getParent()
      ->getParentOfType<gpu::GPUFuncOp>()
      ->setAttr("nvvm.minctasm", b.getI32IntegerAttr(1));
}

/// The calling warpgroup's registers a thread: fewer for a producer, more
/// for a consumer (every warp of the warpgroup calls it).
inline void setWarpgroupRegisters(IB &b, uint32_t registers, bool increase) {
  NVVM::SetMaxRegisterOp::create(b, registers,
                                 increase ? NVVM::SetMaxRegisterAction::increase
                                          : NVVM::SetMaxRegisterAction::decrease);
}

} // namespace mlir::attn::gpu_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_WARPSPECIALIZATION_H
