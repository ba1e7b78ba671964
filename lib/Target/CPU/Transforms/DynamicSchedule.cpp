//===- DynamicSchedule.cpp - dynamic schedule for OpenMP loops ------------===//

#include "attn/Target/CPU/Transforms/Passes.h"

#include "mlir/Dialect/OpenMP/OpenMPDialect.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNDYNAMICSCHEDULE
#include "attn/Target/CPU/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;

namespace {
struct AttnDynamicSchedulePass
    : attn::impl::AttnDynamicScheduleBase<AttnDynamicSchedulePass> {
  void runOnOperation() override {
    getOperation()->walk([&](omp::WsloopOp loop) {
      if (!loop.getScheduleKind())
        loop.setScheduleKindAttr(
            omp::ClauseScheduleKindAttr::get(&getContext(),
                                            omp::ClauseScheduleKind::Dynamic));
    });
  }
};
} // namespace
