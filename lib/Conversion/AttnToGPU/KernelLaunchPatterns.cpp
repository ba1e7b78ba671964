//===- KernelLaunchPatterns.cpp - attn ops to GPU kernel launches ---------===//
//
// One pattern per attn compute op: what its kernels assume about shapes and
// element types, and the launch of its kernel (KernelBuilder.h) on the
// buffers of its operands and result.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "MatmulKernel.h"
#include "Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

//===----------------------------------------------------------------------===//
// What the kernels support
//===----------------------------------------------------------------------===//

bool halfPrecision(Type t) { return t.isBF16() || t.isF16(); }

bool headDimOk(int64_t d) {
  return !ShapedType::isDynamic(d) && d % 16 == 0 && d <= 256;
}

/// Kernels are specialised on head counts, head dims and weight shapes.
bool staticDims(Type t, ArrayRef<int64_t> dims) {
  auto shaped = cast<ShapedType>(t);
  return llvm::all_of(dims, [&](int64_t d) { return !shaped.isDynamicDim(d); });
}

/// The tensor-core attention kernels: a query [T, H, D] over `kvHeads`.
LogicalResult checkAttention(Operation *op, RankedTensorType query,
                             int64_t kvHeads) {
  if (!halfPrecision(query.getElementType()))
    return op->emitOpError("needs bf16 or f16 on the GPU (tensor cores)");
  if (!headDimOk(query.getDimSize(2)))
    return op->emitOpError(
        "needs a head dim that is a multiple of 16, at most 256, on the GPU");
  if (query.getDimSize(1) / kvHeads > 64)
    return op->emitOpError(
        "needs at most 64 query heads per kv head on the GPU");
  return success();
}

/// The tensor-core GEMM: static weights and biases, half-precision input;
/// quantised weights (all of them or none) made in the function, in shapes
/// the quantised GEMV takes.
LogicalResult checkMatmul(Operation *op, ValueRange weights) {
  int64_t quantized = 0;
  for (Value w : weights) {
    auto type = dyn_cast<QuantizedWeightType>(w.getType());
    if (!type)
      continue;
    ++quantized;
    if (!w.getDefiningOp<QuantizedWeightOp>())
      return op->emitOpError("needs its quantised weights made by "
                             "attn.quantized_weight in the function on the GPU");
    if (failed(checkQuantizedGemv(op, type)))
      return failure();
  }
  if (quantized != 0 && quantized != static_cast<int64_t>(weights.size()))
    return op->emitOpError(
        "needs all of its weights quantised or none on the GPU");
  for (Value w : op->getOperands().drop_front())
    if (!isa<QuantizedWeightType>(w.getType()) &&
        !cast<ShapedType>(w.getType()).hasStaticShape())
      return op->emitOpError("needs static weight and bias shapes on the GPU");
  if (!halfPrecision(
          cast<ShapedType>(op->getOperand(0).getType()).getElementType()))
    return op->emitOpError("needs bf16 or f16 on the GPU (tensor cores)");
  return success();
}

LogicalResult checkStaticPagedShapes(Operation *op, bool isStatic) {
  if (!isStatic)
    return op->emitOpError(
        "needs static head counts, head dims and page size on the GPU");
  return success();
}

//===----------------------------------------------------------------------===//
// Shared pieces of the launches
//===----------------------------------------------------------------------===//

/// `buffer` viewed as [prod(all dims but the last `keep`), ...].
Value flattenLeading(IB &b, Value buffer, int64_t keep) {
  auto type = cast<MemRefType>(buffer.getType());
  int64_t lead = type.getRank() - keep;
  if (lead == 1)
    return buffer;
  SmallVector<ReassociationIndices> groups(1);
  for (int64_t d = 0; d < lead; ++d)
    groups[0].push_back(d);
  for (int64_t d = lead; d < type.getRank(); ++d)
    groups.push_back({d});
  return memref::CollapseShapeOp::create(b, buffer, groups);
}

/// The cache layer of `op` as a host index, clamped into `blocks` so that
/// no kernel addresses outside the cache (the entry points report a bad
/// layer before any kernel runs).
Value layerIndex(CacheLayerOpInterface op, Value blocks,
                 BufferAssignment &buffers, IB &b) {
  BuilderScope scope(b);
  if (std::optional<int64_t> layer = op.getStaticLayer())
    return cIndex(b, *layer);
  Value layer = buffers.lookup(op.getLayerIndex());
  if (!layer.getType().isIndex())
    layer = indexCast(b, layer, b.getIndexType());
  return clamp(b, layer, cIndex(b, 0), Idx(dim(b, blocks, 2)) - 1);
}

/// Where a RoPE kernel gets the cos / sin of `table`: recomputed from the
/// rope attribute of attn.rope_freqs, a constant embedded in the kernel
/// module, or a device buffer.
RopeFreqs ropeFreqs(KernelEmitter &kernels, BufferAssignment &buffers,
                    Location loc, Value table) {
  RopeFreqs freqs;
  if (auto f = table.getDefiningOp<RopeFreqsOp>()) {
    freqs.rope = f.getRope();
  } else if (auto c = table.getDefiningOp<arith::ConstantOp>()) {
    auto dense = cast<DenseElementsAttr>(c.getValue());
    freqs.constantTable = kernels.addConstant(loc, "attn_rope_table", dense);
    freqs.tableRows = dense.getType().getDimSize(0);
  } else {
    freqs.table = buffers.lookup(table);
  }
  return freqs;
}

/// The buffers of the parts of a quantised `weight` (made by
/// attn.quantized_weight, see checkMatmul).
QuantizedWeightBuffers quantizedBuffers(Value weight,
                                        BufferAssignment &buffers) {
  auto make = weight.getDefiningOp<QuantizedWeightOp>();
  return {make.getWeight().getType(),
          llvm::map_to_vector(make.getParts(),
                              [&](Value v) { return buffers.lookup(v); })};
}

std::optional<double> clipValue(std::optional<APFloat> clip) {
  if (clip)
    return clip->convertToDouble();
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Normalisation and RoPE
//===----------------------------------------------------------------------===//

struct RMSNormPattern : OpAttnToGPUPattern<RMSNormOp> {
  LogicalResult lowerOp(RMSNormOp n, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    Value in = buffers.lookup(n.getInput());
    Value out = buffers.destination(b, n.getResult(), in);
    emitRmsNorm(kernels, b, flattenLeading(b, in, 1),
                buffers.lookup(n.getGamma()), flattenLeading(b, out, 1),
                n.getEps().convertToDouble());
    buffers.map(n.getResult(), out);
    return success();
  }
};

/// A table only when something other than a RoPE reads it: each RoPE
/// kernel recomputes its angles.
struct RopeFreqsPattern : OpAttnToGPUPattern<RopeFreqsOp> {
  LogicalResult lowerOp(RopeFreqsOp f, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    if (llvm::all_of(f->getUsers(), [&](Operation *user) {
          if (auto fused = dyn_cast<RopeStoreOp>(user))
            return fused.getFreqs() == f.getResult();
          return isa<RopeOp>(user);
        }))
      return success();
    Value out = buffers.destination(b, f.getResult(), Value());
    emitRopeTable(kernels, b, f.getRope(), out);
    buffers.map(f.getResult(), out);
    return success();
  }
};

struct RopePattern : OpAttnToGPUPattern<RopeOp> {
  LogicalResult lowerOp(RopeOp r, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    Value in = buffers.lookup(r.getInput());
    Value out = buffers.destination(b, r.getResult(), in);
    RopeFreqs freqs = ropeFreqs(kernels, buffers, r.getLoc(), r.getFreqs());
    emitRope(kernels, b, in, freqs, buffers.lookup(r.getRowOffsets()),
             buffers.lookup(r.getCacheLengths()), r.getInterleaved(), out);
    buffers.map(r.getResult(), out);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// KV-cache stores (in place into the caller's cache)
//===----------------------------------------------------------------------===//

struct RopeStorePattern : OpAttnToGPUPattern<RopeStoreOp> {
  LogicalResult checkOp(RopeStoreOp r) const override {
    return checkStaticPagedShapes(
        r, staticDims(r.getQ().getType(), {1, 2}) &&
               staticDims(r.getK().getType(), {1, 2}) &&
               staticDims(r.getBlocks().getType(), {3, 4, 5}));
  }

  LogicalResult lowerOp(RopeStoreOp s, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    FailureOr<Value> blocks = buffers.updateInPlace(s, s.getBlocks());
    if (failed(blocks))
      return failure();
    Value q = buffers.lookup(s.getQ());
    Value qOut = buffers.destination(b, s.getQResult(), q);
    double eps = s.getEps() ? s.getEps()->convertToDouble() : 0.0;
    auto lookup = [&](Value v) { return buffers.lookup(v); };
    emitRopeStore(kernels, b, q, lookup(s.getK()), lookup(s.getV()),
                  ropeFreqs(kernels, buffers, s.getLoc(), s.getFreqs()),
                  lookup(s.getRowOffsets()), lookup(s.getCacheLengths()),
                  lookup(s.getLookupTable()), *blocks,
                  layerIndex(s, *blocks, buffers, b),
                  s.getInterleaved(),
                  s.hasQKNorm() ? lookup(s.getGammaQ()) : Value(),
                  s.hasQKNorm() ? lookup(s.getGammaK()) : Value(), eps, qOut);
    buffers.map(s.getQResult(), qOut);
    buffers.map(s.getResult(), *blocks);
    return success();
  }
};

struct KVCacheStorePattern : OpAttnToGPUPattern<KVCacheStoreOp> {
  LogicalResult checkOp(KVCacheStoreOp s) const override {
    if (failed(checkStaticPagedShapes(
            s, staticDims(s.getKey().getType(), {1, 2}) &&
                   staticDims(s.getBlocks().getType(), {3, 4, 5}))))
      return failure();
    if (s.getKey().getType().getDimSize(2) % 8 != 0)
      return s.emitOpError("needs a head dim that is a multiple of 8 on the GPU");
    return success();
  }

  LogicalResult lowerOp(KVCacheStoreOp s, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    FailureOr<Value> blocks = buffers.updateInPlace(s, s.getBlocks());
    if (failed(blocks))
      return failure();
    auto lookup = [&](Value v) { return buffers.lookup(v); };
    emitKVCacheStore(kernels, b, lookup(s.getKey()), lookup(s.getValue()),
                     lookup(s.getRowOffsets()), lookup(s.getCacheLengths()),
                     lookup(s.getLookupTable()), *blocks,
                     layerIndex(s, *blocks, buffers, b));
    buffers.map(s.getResult(), *blocks);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Projections (tensor-core GEMMs)
//===----------------------------------------------------------------------===//

struct QKVProjectionPattern : OpAttnToGPUPattern<QKVProjectionOp> {
  LogicalResult checkOp(QKVProjectionOp p) const override {
    return checkMatmul(p, p.getWeights());
  }

  LogicalResult lowerOp(QKVProjectionOp p, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    Value x = buffers.lookup(p.getInput());
    if (cast<MemRefType>(x.getType()).getDimSize(1) % 8 != 0)
      return p.emitOpError(
          "needs a hidden size that is a multiple of 8 on the GPU");
    SmallVector<OutputSegment> segments = outputSegments(p, buffers, b, x);
    std::optional<double> clip = clipValue(p.getClip());
    auto lookup = [&](Value v) { return buffers.lookup(v); };
    auto biases = p.getBiases();
    SmallVector<Value> biasBuffers = llvm::map_to_vector(biases, lookup);
    if (isa<QuantizedWeightType>(p.getWeights()[0].getType())) {
      lowerQuantized(p, buffers, kernels, b, x, biasBuffers, segments);
      return success();
    }
    if (p.isStacked()) {
      emitMatmul(kernels, b, x, lookup(p.getWeights()[0]),
                 biases.empty() ? Value() : lookup(biases[0]), clip, segments);
      return success();
    }
    SmallVector<Value> weights = llvm::map_to_vector(p.getWeights(), lookup);
    if (matmulCanSplitWeights(weights)) {
      // One launch: each 64-column block reads Wq, Wk or Wv.
      emitMatmul(kernels, b, x, weights, biasBuffers, clip, segments);
      return success();
    }
    for (auto [i, segment] : llvm::enumerate(segments)) {
      OutputSegment alone = {segment.buffer, 0, segment.width};
      emitMatmul(kernels, b, x, lookup(p.getWeights()[i]),
                 biases.empty() ? Value() : lookup(biases[i]), clip, {alone});
    }
    return success();
  }

  /// Quantised weights: one launch of the quantised GEMV when the weights
  /// can share it (or are one stacked weight), else one per weight.
  static void lowerQuantized(QKVProjectionOp p, BufferAssignment &buffers,
                             KernelEmitter &kernels, IB &b, Value x,
                             ArrayRef<Value> biases,
                             ArrayRef<OutputSegment> segments) {
    SmallVector<QuantizedWeightBuffers> weights =
        llvm::map_to_vector(p.getWeights(), [&](Value w) {
          return quantizedBuffers(w, buffers);
        });
    if (weights.size() == 1 || quantizedGemvCanShare(weights)) {
      emitQuantizedMatmul(kernels, b, x, weights, biases, segments);
      return;
    }
    for (auto [i, segment] : llvm::enumerate(segments)) {
      OutputSegment alone = {segment.buffer, 0, segment.width};
      emitQuantizedMatmul(kernels, b, x, weights[i],
                          biases.empty() ? ArrayRef<Value>() : biases[i],
                          {alone});
    }
  }

  /// The q, k and v results as column segments of one [T, (H + 2 Hkv) D]
  /// GEMM output.
  static SmallVector<OutputSegment> outputSegments(QKVProjectionOp p,
                                                   BufferAssignment &buffers,
                                                   IB &b, Value x) {
    int64_t d = p.getHeadDim();
    std::array<int64_t, 3> widths = {p.getNumHeads() * d,
                                     p.getNumKVHeads() * d,
                                     p.getNumKVHeads() * d};
    SmallVector<OutputSegment> segments;
    int64_t begin = 0;
    for (auto [res, width] : llvm::zip(p->getResults(), widths)) {
      Value out = buffers.destination(b, res, x);
      buffers.map(res, out);
      // [T, H, D] -> [T, H * D] for the GEMM epilogue.
      Value flat = memref::CollapseShapeOp::create(
          b, out, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
      segments.push_back({flat, begin, width});
      begin += width;
    }
    return segments;
  }
};

struct LinearPattern : OpAttnToGPUPattern<LinearOp> {
  LogicalResult checkOp(LinearOp l) const override {
    return checkMatmul(l, l.getWeight());
  }

  LogicalResult lowerOp(LinearOp l, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    Value x = buffers.lookup(l.getInput());
    if (cast<MemRefType>(x.getType()).getDimSize(1) % 8 != 0)
      return l.emitOpError(
          "needs an input width that is a multiple of 8 on the GPU");
    Value out = buffers.destination(b, l.getResult(), x);
    int64_t n = l.getResult().getType().getDimSize(1);
    if (isa<QuantizedWeightType>(l.getWeight().getType())) {
      SmallVector<Value> biases;
      if (l.getBias())
        biases.push_back(buffers.lookup(l.getBias()));
      emitQuantizedMatmul(kernels, b, x,
                          quantizedBuffers(l.getWeight(), buffers), biases,
                          {OutputSegment{out, 0, n}});
      buffers.map(l.getResult(), out);
      return success();
    }
    emitMatmul(kernels, b, x, buffers.lookup(l.getWeight()),
               l.getBias() ? buffers.lookup(l.getBias()) : Value(),
               clipValue(l.getClip()), {OutputSegment{out, 0, n}});
    buffers.map(l.getResult(), out);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// The query, output, mask and scale of an attention launch; the output is
/// the result's destination.
template <typename AttentionOp>
AttentionSpec querySide(AttentionOp a, BufferAssignment &buffers, IB &b) {
  AttentionSpec spec;
  spec.query = buffers.lookup(a.getQuery());
  spec.out = buffers.destination(b, a.getResult(), spec.query);
  buffers.map(a.getResult(), spec.out);
  spec.mask = a.getMask();
  spec.scale = a.getScaleOrDefault();
  return spec;
}

struct FlashAttentionPattern : OpAttnToGPUPattern<FlashAttentionOp> {
  LogicalResult checkOp(FlashAttentionOp a) const override {
    if (!staticDims(a.getQuery().getType(), {1, 2}) ||
        !staticDims(a.getKey().getType(), {1, 2}))
      return a.emitOpError("needs static head counts and head dims on the GPU");
    return checkAttention(a, a.getQuery().getType(),
                          a.getKey().getType().getDimSize(1));
  }

  LogicalResult lowerOp(FlashAttentionOp a, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    AttentionSpec spec = querySide(a, buffers, b);
    spec.qRowOffsets = buffers.lookup(a.getQRowOffsets());
    spec.key = buffers.lookup(a.getKey());
    spec.value = buffers.lookup(a.getValue());
    spec.kvRowOffsets = buffers.lookup(a.getKvRowOffsets());
    emitAttention(kernels, b, spec);
    return success();
  }
};

struct PagedFlashAttentionPattern : OpAttnToGPUPattern<PagedFlashAttentionOp> {
  LogicalResult checkOp(PagedFlashAttentionOp a) const override {
    if (failed(checkStaticPagedShapes(
            a, staticDims(a.getQuery().getType(), {1, 2}) &&
                   staticDims(a.getBlocks().getType(), {3, 4, 5}))))
      return failure();
    return checkAttention(a, a.getQuery().getType(),
                          a.getBlocks().getType().getDimSize(4));
  }

  LogicalResult lowerOp(PagedFlashAttentionOp a, BufferAssignment &buffers,
                        KernelEmitter &kernels, IB &b) const override {
    AttentionSpec spec = querySide(a, buffers, b);
    spec.qRowOffsets = buffers.lookup(a.getRowOffsets());
    spec.blocks = buffers.lookup(a.getBlocks());
    spec.cacheLengths = buffers.lookup(a.getCacheLengths());
    spec.lookup = buffers.lookup(a.getLookupTable());
    spec.layer = layerIndex(a, spec.blocks, buffers, b);
    emitAttention(kernels, b, spec);
    return success();
  }
};

} // namespace

void mlir::attn::populateKernelLaunchPatterns(AttnToGPUPatternSet &patterns) {
  patterns.add<RMSNormPattern, RopeFreqsPattern, RopePattern, RopeStorePattern,
               KVCacheStorePattern, QKVProjectionPattern, LinearPattern,
               FlashAttentionPattern, PagedFlashAttentionPattern>();
}
