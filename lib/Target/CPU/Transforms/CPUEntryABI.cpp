//===- CPUEntryABI.cpp - C ABI of bufferised entry points -----------------===//

#include "attn/Target/CPU/Transforms/Passes.h"

#include "attn/Conversion/EntryABI.h"

#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCPUENTRYABI
#include "attn/Target/CPU/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;

namespace {
struct AttnCPUEntryABIPass
    : attn::impl::AttnCPUEntryABIBase<AttnCPUEntryABIPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Upstream leaves public functions alone; privatise them meanwhile.
    SmallVector<func::FuncOp> entries;
    for (auto func : module.getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal()) {
        entries.push_back(func);
        func.setPrivate();
      }
    if (failed(bufferization::dropEquivalentBufferResults(module)))
      return signalPassFailure();
    bufferization::BufferResultsToOutParamsOpts options;
    options.hoistStaticAllocs = true;
    options.hoistDynamicAllocs = true;
    // Strided copies stay in generated code (memref.copy would call into an
    // MLIR runtime library).
    options.memCpyFn = [](OpBuilder &b, Location loc, Value from, Value to) {
      linalg::CopyOp::create(b, loc, from, to);
      return success();
    };
    if (failed(bufferization::promoteBufferResultsToOutParams(module, options)))
      return signalPassFailure();
    // Same for the copies bufferisation made.
    module.walk([](memref::CopyOp copy) {
      OpBuilder b(copy);
      linalg::CopyOp::create(b, copy.getLoc(), copy.getSource(),
                             copy.getTarget());
      copy.erase();
    });
    for (func::FuncOp func : entries) {
      func.setPublic();
      attn::exportCInterface(func);
    }
  }
};
} // namespace
