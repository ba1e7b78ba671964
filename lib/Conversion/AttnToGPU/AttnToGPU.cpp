//===- AttnToGPU.cpp - attn functions to host code + GPU kernels ----------===//
//
// Rewrites each function of primitive attn ops on tensors into a host
// function on device buffers (memrefs) that launches one kernel per op
// (see KernelBuilder.h). In two parts: BufferAssignment decides the entry
// ABI and the buffer of each tensor, and one pattern per op kind
// (populateAttnToGPUPatterns) emits the op's host code on those buffers.
//
//===----------------------------------------------------------------------===//

#include "IndexValidation.h"
#include "KernelBuilder.h"
#include "Patterns.h"

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/Transforms/EntryStatus.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::attn {
#define GEN_PASS_DEF_CONVERTATTNTOGPU
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

void AttnToGPUPatternSet::insert(std::unique_ptr<AttnToGPUPattern> pattern) {
  TypeID root = pattern->getRoot();
  bool inserted = patterns.try_emplace(root, std::move(pattern)).second;
  assert(inserted && "one pattern per root");
  (void)inserted;
}

const AttnToGPUPattern *AttnToGPUPatternSet::lookup(Operation *op) const {
  auto it = patterns.find(op->getName().getTypeID());
  return it == patterns.end() ? nullptr : it->second.get();
}

void mlir::attn::populateAttnToGPUPatterns(AttnToGPUPatternSet &patterns) {
  populateKernelLaunchPatterns(patterns);
  populateBufferViewPatterns(patterns);
  populateCollectivePatterns(patterns);
}

namespace {

/// Scalar code (index arithmetic, constants) is host code as it is.
bool isHostCode(Operation *op) {
  bool touchesTensors =
      llvm::any_of(op->getOperandTypes(), llvm::IsaPred<TensorType>) ||
      llvm::any_of(op->getResultTypes(), llvm::IsaPred<TensorType>) ||
      llvm::any_of(op->getResultTypes(), llvm::IsaPred<PagedKVCacheType>);
  return !touchesTensors && op->getNumRegions() == 0 && !isa<RopeFreqsOp>(op);
}

LogicalResult lowerOp(Operation *op, const AttnToGPUPatternSet &patterns,
                      BufferAssignment &buffers, KernelEmitter &kernels,
                      IB &b) {
  if (isHostCode(op)) {
    b.clone(*op, buffers.valueMapping());
    return success();
  }
  if (const AttnToGPUPattern *pattern = patterns.lookup(op))
    return pattern->lower(op, buffers, kernels, b);
  return op->emitOpError("cannot be lowered to the GPU (run "
                         "attn-expand-composite first; only attn ops, "
                         "shape casts and scalar code are supported)");
}

/// The last of the entry checks at the start of `func` (attn-insert-entry-
/// checks), or null.
Operation *lastEntryCheck(func::FuncOp func) {
  Operation *last = nullptr;
  for (Operation &op : func.getBody().front())
    if (op.hasAttr(kEntryStatusAttrName))
      last = &op;
  return last;
}

/// Whether `op` launches only kernels that read no index tensor.
bool readsNoIndexTensor(Operation *op) {
  return isa<RMSNormOp, RopeFreqsOp, QKVProjectionOp, LinearOp>(op);
}

/// Whether each launch path of `op` can carry the index checks: the
/// projections (the checks' block runs beside the blocks of the GEMV or
/// GEMM streaming the weights, or of the quantised weights' x prologue).
bool carriesIndexChecks(Operation *op) {
  return isa<QKVProjectionOp, LinearOp>(op);
}

/// A builder on the host code after `op`, or at the start of `block` when
/// null.
IB hostBuilderAfter(Location loc, Block *block, Operation *op) {
  return op ? IB(loc, OpBuilder(op->getBlock(), std::next(op->getIterator())))
            : IB(loc, OpBuilder::atBlockBegin(block));
}

/// The host function's argument that `buffer` views, when every view
/// between them keeps a 16-byte boundary of the argument's start (reshapes,
/// casts, subviews whose offsets step in multiples of 16 bytes); null for
/// the call's own buffers (allocated aligned) and views it cannot follow.
BlockArgument alignedRoot(Value buffer, Block &host) {
  while (Operation *def = buffer.getDefiningOp()) {
    if (auto subview = dyn_cast<memref::SubViewOp>(def)) {
      MemRefType source = subview.getSourceType();
      int64_t bytes = source.getElementTypeBitWidth() / 8;
      auto [strides, offset] = source.getStridesAndOffset();
      for (auto [d, at] : llvm::enumerate(subview.getStaticOffsets())) {
        if (at == 0)
          continue;
        if (ShapedType::isDynamic(strides[d]))
          return {};
        int64_t step = strides[d] * bytes;
        if ((ShapedType::isDynamic(at) ? step : at * step) % 16 != 0)
          return {};
      }
      buffer = subview.getSource();
    } else if (isa<memref::ExpandShapeOp, memref::CollapseShapeOp,
                   memref::CastOp>(def)) {
      buffer = def->getOperand(0);
    } else {
      return {};
    }
  }
  auto arg = dyn_cast<BlockArgument>(buffer);
  return arg && arg.getOwner() == &host ? arg : BlockArgument();
}

/// Status 9 unless every argument that `buffers` view starts on a 16-byte
/// boundary: a check beside the host's entry checks, before any work.
void checkArgumentsAligned(IB &b, Block &host, ArrayRef<Value> buffers) {
  llvm::SetVector<Value> roots;
  for (Value buffer : buffers)
    if (BlockArgument root = alignedRoot(buffer, host))
      roots.insert(root);
  if (roots.empty())
    return;
  Value aligned = startsAligned(b, roots.getArrayRef(), 16);
  auto check = cf::AssertOp::create(
      b, aligned,
      "attn: " + std::string(entryStatusMessage(EntryStatus::Misaligned)));
  auto code = static_cast<int32_t>(EntryStatus::Misaligned);
  check->setAttr(kEntryStatusAttrName, b.getI32IntegerAttr(code));
}

/// Replaces `func` by its host function; see the file comment.
///
/// An entry point validating its index tensors runs the checks after the
/// host checks, before the first kernel that indexes through the tensors.
/// A kernel of their own costs a launch and its serial loads on the stream,
/// so they ride in one extra block of the first projection's launch when a
/// projection comes first (a layer's q/k/v projection, whose blocks stream
/// the weights meanwhile); otherwise they get their own one-block kernel,
/// emitted where the host checks end.
LogicalResult lowerFunction(func::FuncOp func,
                            const AttnToGPUPatternSet &patterns,
                            KernelEmitter &kernels) {
  std::optional<IndexValueChecks> checks;
  if (kernels.options().validateIndexValues && func.isPublic()) {
    FailureOr<IndexValueChecks> collected = IndexValueChecks::collect(func);
    if (failed(collected))
      return failure();
    if (!collected->empty())
      checks = std::move(*collected);
  }
  FailureOr<BufferAssignment> buffers = BufferAssignment::create(func);
  if (failed(buffers))
    return failure();
  Block &body = func.getBody().front();
  Block &host = buffers->hostBody();
  IB b(func.getLoc(), OpBuilder::atBlockEnd(&host));
  // The checks not run yet, and the host code they would follow.
  std::optional<IndexValidationArgs> pending;
  Operation *hostChecksEnd = nullptr;
  auto defer = [&] {
    if (!checks)
      return;
    pending = IndexValidationArgs::of(
        b, *checks, [&](Value v) { return buffers->lookup(v); });
    hostChecksEnd = host.empty() ? nullptr : &host.back();
  };
  auto launchPending = [&] {
    IB at = hostBuilderAfter(func.getLoc(), &host, hostChecksEnd);
    launchIndexValidation(kernels, at, *pending);
    pending.reset();
  };
  Operation *lastCheck = lastEntryCheck(func);
  if (!lastCheck)
    defer();
  // Where the host's entry checks end (null: at the start).
  Operation *entryChecksEnd = nullptr;
  for (Operation &op : body.without_terminator()) {
    b.setLoc(op.getLoc());
    bool carrier = pending && carriesIndexChecks(&op);
    unsigned launches = kernels.launchCount();
    kernels.setCarriedChecks(carrier ? &*pending : nullptr);
    LogicalResult lowered = lowerOp(&op, patterns, *buffers, kernels, b);
    kernels.setCarriedChecks(nullptr);
    if (failed(lowered)) {
      buffers->discard();
      return failure();
    }
    if (pending && kernels.launchCount() != launches) {
      if (carrier)
        pending.reset();
      else if (!readsNoIndexTensor(&op))
        launchPending();
    }
    if (&op == lastCheck) {
      defer();
      entryChecksEnd = host.empty() ? nullptr : &host.back();
    }
  }
  if (pending)
    launchPending();
  SmallVector<Value> aligned = kernels.takeAlignedBuffers();
  if (kernels.options().validateIndexValues && func.isPublic()) {
    IB at = hostBuilderAfter(func.getLoc(), &host, entryChecksEnd);
    checkArgumentsAligned(at, host, aligned);
  }
  b.setLoc(body.getTerminator()->getLoc());
  buffers->finish(b);
  return success();
}

struct ConvertAttnToGPU
    : public attn::impl::ConvertAttnToGPUBase<ConvertAttnToGPU> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::optional<GPTQGemvKernel> gptqGemvKernel =
        parseGPTQGemvKernel(gptqGemv);
    if (!gptqGemvKernel) {
      module.emitError("gptq-gemv must be tma-ring or streaming, not '")
          << gptqGemv << "'";
      return signalPassFailure();
    }
    // The projections decode GPTQ and float8 (GemvQuantKernel.cpp).
    if (failed(rejectQuantizedWeights(
            module, "cuda", llvm::IsaPred<GPTQAttr, Float8Attr>)))
      return signalPassFailure();
    AttnToGPUPatternSet patterns;
    populateAttnToGPUPatterns(patterns);
    WalkResult supported = module.walk([&](Operation *op) {
      // A constant dim index out of range is undefined; after bufferization
      // upstream's memref.dim folds would read past the sizes.
      if (auto dimOp = dyn_cast<tensor::DimOp>(op)) {
        std::optional<int64_t> index = dimOp.getConstantIndex();
        auto ranked = dyn_cast<RankedTensorType>(dimOp.getSource().getType());
        int64_t rank = ranked ? ranked.getRank() : 0;
        if (ranked && index && (*index < 0 || *index >= rank)) {
          dimOp.emitOpError("index ")
              << *index << " is out of range for a tensor of rank " << rank;
          return WalkResult::interrupt();
        }
      }
      const AttnToGPUPattern *pattern = patterns.lookup(op);
      return pattern && failed(pattern->checkSupported(op))
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    if (supported.wasInterrupted())
      return signalPassFailure();
    SmallVector<func::FuncOp> funcs;
    for (auto func : module.getOps<func::FuncOp>())
      if (!func.isExternal())
        funcs.push_back(func);
    if (funcs.empty())
      return;
    KernelEmitter kernels(module,
                          KernelOptions{smCount, maxSplits, wgmma,
                                        validateIndexValues, *gptqGemvKernel});
    for (func::FuncOp func : funcs)
      if (failed(lowerFunction(func, patterns, kernels)))
        return signalPassFailure();
    // The grid of sharded layers: their collectives are runtime calls now.
    for (auto grid : llvm::make_early_inc_range(module.getOps<shard::GridOp>()))
      grid.erase();
  }
};

} // namespace
