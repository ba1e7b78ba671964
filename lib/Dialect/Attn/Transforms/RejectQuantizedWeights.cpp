//===- RejectQuantizedWeights.cpp - quantised weights unsupported here ----===//
//
// attn-reject-quantized-weights; see Passes.td.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNREJECTQUANTIZEDWEIGHTS
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

struct AttnRejectQuantizedWeightsPass
    : attn::impl::AttnRejectQuantizedWeightsBase<
          AttnRejectQuantizedWeightsPass> {
  using Base::Base;
  void runOnOperation() override {
    if (failed(rejectQuantizedWeights(getOperation(), target)))
      signalPassFailure();
  }
};

} // namespace
