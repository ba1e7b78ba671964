//===- BufferViewPatterns.cpp - tensor views to buffer views --------------===//
//
// The ops that launch no kernel: shape casts and dims become the same ops on
// the buffers, the paged cache and quantised weights are only bookkeeping,
// and tensor constants (RoPE tables) are embedded by their readers.
//
//===----------------------------------------------------------------------===//

#include "Patterns.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::attn;
using gpu_lowering::KernelEmitter;

namespace {

/// Tensor constants are folded RoPE tables; each reader embeds its table.
struct TensorConstantPattern : OpAttnToGPUPattern<arith::ConstantOp> {
  LogicalResult lowerOp(arith::ConstantOp c, BufferAssignment &,
                        KernelEmitter &, ImplicitLocOpBuilder &) const override {
    for (Operation *user : c->getUsers()) {
      if (auto fused = dyn_cast<RopeStoreOp>(user);
          fused && fused.getFreqs() == c.getResult())
        continue;
      if (!isa<RopeOp>(user) || cast<RopeOp>(user).getFreqs() != c.getResult())
        return c.emitOpError("tensor constants are only supported as RoPE "
                             "tables on the GPU");
    }
    return success();
  }
};

struct DimPattern : OpAttnToGPUPattern<tensor::DimOp> {
  LogicalResult lowerOp(tensor::DimOp d, BufferAssignment &buffers,
                        KernelEmitter &,
                        ImplicitLocOpBuilder &b) const override {
    buffers.map(d.getResult(),
                b.createOrFold<memref::DimOp>(buffers.lookup(d.getSource()),
                                              buffers.lookup(d.getIndex())));
    return success();
  }
};

struct CastPattern : OpAttnToGPUPattern<tensor::CastOp> {
  LogicalResult lowerOp(tensor::CastOp c, BufferAssignment &buffers,
                        KernelEmitter &,
                        ImplicitLocOpBuilder &b) const override {
    buffers.map(c.getResult(),
                memref::CastOp::create(b, bufferType(c.getType()),
                                       buffers.lookup(c.getSource())));
    return success();
  }
};

struct CollapseShapePattern : OpAttnToGPUPattern<tensor::CollapseShapeOp> {
  LogicalResult lowerOp(tensor::CollapseShapeOp c, BufferAssignment &buffers,
                        KernelEmitter &,
                        ImplicitLocOpBuilder &b) const override {
    buffers.map(c.getResult(),
                memref::CollapseShapeOp::create(b, buffers.lookup(c.getSrc()),
                                                c.getReassociationIndices()));
    return success();
  }
};

struct ExpandShapePattern : OpAttnToGPUPattern<tensor::ExpandShapeOp> {
  LogicalResult lowerOp(tensor::ExpandShapeOp c, BufferAssignment &buffers,
                        KernelEmitter &,
                        ImplicitLocOpBuilder &b) const override {
    SmallVector<OpFoldResult> shape;
    for (OpFoldResult s : c.getMixedOutputShape())
      shape.push_back(isa<Attribute>(s)
                          ? s
                          : OpFoldResult(buffers.lookup(cast<Value>(s))));
    buffers.map(c.getResult(),
                memref::ExpandShapeOp::create(
                    b, bufferType(c.getType()), buffers.lookup(c.getSrc()),
                    c.getReassociationIndices(), shape));
    return success();
  }
};

struct PagedCacheMakePattern : OpAttnToGPUPattern<PagedCacheMakeOp> {
  LogicalResult lowerOp(PagedCacheMakeOp m, BufferAssignment &buffers,
                        KernelEmitter &,
                        ImplicitLocOpBuilder &) const override {
    buffers.mapCache(m.getResult(), {buffers.lookup(m.getBlocks()),
                                     buffers.lookup(m.getCacheLengths()),
                                     buffers.lookup(m.getLookupTable())});
    return success();
  }
};

struct PagedCachePartsPattern : OpAttnToGPUPattern<PagedCachePartsOp> {
  LogicalResult lowerOp(PagedCachePartsOp p, BufferAssignment &buffers,
                        KernelEmitter &,
                        ImplicitLocOpBuilder &) const override {
    ArrayRef<Value> parts = buffers.cacheParts(p.getCache());
    if (parts.empty())
      return p.emitOpError("needs the cache made by attn.paged_cache.make "
                           "in the same function on the GPU");
    for (auto [res, part] : llvm::zip(p->getResults(), parts))
      buffers.map(res, part);
    return success();
  }
};

/// Bookkeeping only: the projections read the parts of the weight from
/// the op itself.
struct QuantizedWeightPattern : OpAttnToGPUPattern<QuantizedWeightOp> {
  LogicalResult lowerOp(QuantizedWeightOp, BufferAssignment &, KernelEmitter &,
                        ImplicitLocOpBuilder &) const override {
    return success();
  }
};

} // namespace

void mlir::attn::populateBufferViewPatterns(AttnToGPUPatternSet &patterns) {
  patterns.add<TensorConstantPattern, DimPattern, CastPattern,
               CollapseShapePattern, ExpandShapePattern, PagedCacheMakePattern,
               PagedCachePartsPattern, QuantizedWeightPattern>();
}
