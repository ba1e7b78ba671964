//===- AttnToGPU.cpp - attn functions to host code + GPU kernels ----------===//
//
// Rewrites each function of primitive attn ops on tensors into a host
// function on device buffers (memrefs) that launches one kernel per op
// (see KernelBuilder.h). Buffers are assigned directly, without general
// bufferisation, because the layer is straight-line code: arguments are the
// caller's device buffers, a result written by an op goes straight into its
// out-parameter, the KV-cache store writes the caller's cache in place, and
// intermediates are gpu.alloc'd and freed at the end.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::attn {
#define GEN_PASS_DEF_CONVERTATTNTOGPU
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

MemRefType bufferType(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return MemRefType::get(tensor.getShape(), tensor.getElementType());
}

/// The argument a returned value is (or was updated in place from), if any.
std::optional<unsigned> inPlaceArgument(Value v) {
  while (v) {
    if (auto arg = dyn_cast<BlockArgument>(v))
      return arg.getArgNumber();
    Operation *def = v.getDefiningOp();
    if (auto store = dyn_cast<KVCacheStoreOp>(def)) {
      v = store.getBlocks();
    } else if (auto fused = dyn_cast<RopeStoreOp>(def);
               fused && v == fused.getResult()) {
      v = fused.getBlocks();
    } else if (auto castOp = dyn_cast<tensor::CastOp>(def)) {
      v = castOp.getSource();
    } else if (auto parts = dyn_cast<PagedCachePartsOp>(def)) {
      auto make = parts.getCache().getDefiningOp<PagedCacheMakeOp>();
      v = make ? make->getOperand(cast<OpResult>(v).getResultNumber()) : Value();
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

/// Rewrites one function; see the file comment.
class FunctionLowering {
public:
  FunctionLowering(func::FuncOp func, KernelEmitter &emitter)
      : func(func), emitter(emitter) {}

  LogicalResult run();

private:
  LogicalResult lowerOp(Operation *op, IB &b);
  /// The buffer an op writes `result` into: its out-parameter when the
  /// function returns it, else a new device allocation shaped like
  /// `shapeSource` in the dynamic dims.
  Value destination(IB &b, Value result, Value shapeSource);
  Value lookup(Value v) { return mapping.lookup(v); }
  /// `buffer` viewed as [prod(all dims but the last `keep`), ...].
  Value flattenLeading(IB &b, Value buffer, int64_t keep);
  LogicalResult checkCacheStore(Operation *op, Value blocks);
  RopeFreqs ropeFreqs(Location loc, Value table);

  func::FuncOp func;
  KernelEmitter &emitter;
  IRMapping mapping;
  DenseMap<Value, SmallVector<unsigned, 1>> returnedAt; // value -> out indices
  SmallVector<Value> outParams;             // by out index
  SmallVector<bool> outWritten;
  SmallVector<Value> temporaries;
  DenseMap<Value, SmallVector<Value, 3>> caches; // opaque cache -> parts
};

LogicalResult FunctionLowering::run() {
  if (!func.getBody().hasOneBlock())
    return func.emitOpError("the GPU lowering needs a single-block function");
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());

  SmallVector<Type> argTypes;
  for (BlockArgument arg : body.getArguments()) {
    if (isa<RankedTensorType>(arg.getType()))
      argTypes.push_back(bufferType(arg.getType()));
    else if (arg.getType().isIntOrIndexOrFloat())
      argTypes.push_back(arg.getType());
    else
      return func.emitOpError("argument #")
             << arg.getArgNumber() << " of type " << arg.getType()
             << " cannot cross the GPU entry point (unpack caches first)";
  }
  SmallVector<Type> outTypes;
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    if (inPlaceArgument(v))
      continue;
    if (!isa<RankedTensorType>(v.getType()))
      return ret.emitOpError("result #") << i << " must be a ranked tensor";
    returnedAt[v].push_back(outTypes.size());
    outTypes.push_back(bufferType(v.getType()));
  }

  SmallVector<Type> allTypes(argTypes);
  allTypes.append(outTypes);
  OpBuilder ob(func);
  auto host = func::FuncOp::create(ob, func.getLoc(), func.getName(),
                                   FunctionType::get(func.getContext(), allTypes, {}));
  host.setVisibility(func.getVisibility());
  host->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(), ob.getUnitAttr());
  Block *entry = host.addEntryBlock();
  for (auto [oldArg, newArg] : llvm::zip(body.getArguments(), entry->getArguments()))
    mapping.map(oldArg, newArg);
  outParams.assign(entry->args_begin() + argTypes.size(), entry->args_end());
  outWritten.assign(outParams.size(), false);

  IB b(func.getLoc(), OpBuilder::atBlockEnd(entry));
  for (Operation &op : body.without_terminator()) {
    b.setLoc(op.getLoc());
    if (failed(lowerOp(&op, b))) {
      host.erase();
      return failure();
    }
  }
  b.setLoc(ret.getLoc());
  // Results not computed in place of their out-parameter are copied there.
  for (auto &[v, indices] : returnedAt)
    for (unsigned index : indices)
      if (!outWritten[index])
        gpu::MemcpyOp::create(b, Type(), ValueRange{}, outParams[index], lookup(v));
  for (Value t : temporaries)
    gpu::DeallocOp::create(b, Type(), ValueRange{}, t);
  func::ReturnOp::create(b);
  func.erase();
  return success();
}

Value FunctionLowering::destination(IB &b, Value result, Value shapeSource) {
  auto it = returnedAt.find(result);
  if (it != returnedAt.end() && !outWritten[it->second.front()]) {
    // The first out-parameter; copies of it fill any others.
    outWritten[it->second.front()] = true;
    return outParams[it->second.front()];
  }
  MemRefType type = bufferType(result.getType());
  SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dynamicSizes.push_back(b.createOrFold<memref::DimOp>(shapeSource, d));
  Value buffer = gpu::AllocOp::create(b, type, Type(), ValueRange{}, dynamicSizes,
                                      ValueRange{})
                     .getMemref();
  temporaries.push_back(buffer);
  return buffer;
}

Value FunctionLowering::flattenLeading(IB &b, Value buffer, int64_t keep) {
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

RopeFreqs FunctionLowering::ropeFreqs(Location loc, Value table) {
  RopeFreqs freqs;
  if (auto f = table.getDefiningOp<RopeFreqsOp>()) {
    freqs.rope = f.getRope();
  } else if (auto c = table.getDefiningOp<arith::ConstantOp>()) {
    auto dense = cast<DenseElementsAttr>(c.getValue());
    freqs.constantTable = emitter.addConstant(loc, "attn_rope_table", dense);
    freqs.tableRows = dense.getType().getDimSize(0);
  } else {
    freqs.table = lookup(table);
  }
  return freqs;
}

LogicalResult FunctionLowering::checkCacheStore(Operation *op, Value blocks) {
  for (Operation *user : blocks.getUsers())
    if (user != op && op->isBeforeInBlock(user))
      return op->emitOpError(
          "overwrites the cache blocks in place on the GPU, but they are read "
          "again afterwards; use the store's result instead");
  return success();
}

LogicalResult FunctionLowering::lowerOp(Operation *op, IB &b) {
  // Scalar code (index arithmetic, constants) is host code as it is.
  bool touchesTensors =
      llvm::any_of(op->getOperandTypes(), llvm::IsaPred<TensorType>) ||
      llvm::any_of(op->getResultTypes(), llvm::IsaPred<TensorType>) ||
      llvm::any_of(op->getResultTypes(), llvm::IsaPred<PagedKVCacheType>);
  if (!touchesTensors && op->getNumRegions() == 0 &&
      !isa<RopeFreqsOp>(op)) {
    b.clone(*op, mapping);
    return success();
  }

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](arith::ConstantOp c) -> LogicalResult {
        // Tensor constants are folded rope tables; their readers embed them.
        for (Operation *user : c->getUsers()) {
          if (auto fused = dyn_cast<RopeStoreOp>(user);
              fused && fused.getFreqs() == c.getResult())
            continue;
          if (!isa<RopeOp>(user) || cast<RopeOp>(user).getFreqs() != c.getResult())
            return c.emitOpError("tensor constants are only supported as RoPE "
                                 "tables on the GPU");
        }
        return success();
      })
      .Case([&](RopeFreqsOp f) -> LogicalResult {
        if (llvm::all_of(f->getUsers(), [&](Operation *user) {
              if (auto fused = dyn_cast<RopeStoreOp>(user))
                return fused.getFreqs() == f.getResult();
              return isa<RopeOp>(user);
            }))
          return success(); // each rope recomputes its angles
        Value out = destination(b, f.getResult(), Value());
        emitRopeTable(emitter, b, f.getRope(), out);
        mapping.map(f.getResult(), out);
        return success();
      })
      .Case([&](tensor::DimOp d) {
        mapping.map(d.getResult(), b.createOrFold<memref::DimOp>(
                                       lookup(d.getSource()), lookup(d.getIndex())));
        return success();
      })
      .Case([&](tensor::CastOp c) {
        mapping.map(c.getResult(), memref::CastOp::create(
                                       b, bufferType(c.getType()), lookup(c.getSource())));
        return success();
      })
      .Case([&](tensor::CollapseShapeOp c) {
        mapping.map(c.getResult(),
                    memref::CollapseShapeOp::create(b, lookup(c.getSrc()),
                                                    c.getReassociationIndices()));
        return success();
      })
      .Case([&](tensor::ExpandShapeOp c) {
        SmallVector<OpFoldResult> shape;
        for (OpFoldResult s : c.getMixedOutputShape())
          shape.push_back(isa<Attribute>(s) ? s : OpFoldResult(lookup(cast<Value>(s))));
        mapping.map(c.getResult(),
                    memref::ExpandShapeOp::create(b, bufferType(c.getType()),
                                                  lookup(c.getSrc()),
                                                  c.getReassociationIndices(), shape));
        return success();
      })
      .Case([&](PagedCacheMakeOp m) {
        caches[m.getResult()] = {lookup(m.getBlocks()), lookup(m.getCacheLengths()),
                                 lookup(m.getLookupTable())};
        return success();
      })
      .Case([&](PagedCachePartsOp p) -> LogicalResult {
        auto it = caches.find(p.getCache());
        if (it == caches.end())
          return p.emitOpError("needs the cache made by attn.paged_cache.make "
                               "in the same function on the GPU");
        for (auto [res, part] : llvm::zip(p->getResults(), it->second))
          mapping.map(res, part);
        return success();
      })
      .Case([&](RMSNormOp n) {
        Value in = lookup(n.getInput());
        Value out = destination(b, n.getResult(), in);
        emitRmsNorm(emitter, b, flattenLeading(b, in, 1), lookup(n.getGamma()),
                    flattenLeading(b, out, 1), n.getEps().convertToDouble());
        mapping.map(n.getResult(), out);
        return success();
      })
      .Case([&](RopeOp r) {
        Value in = lookup(r.getInput());
        Value out = destination(b, r.getResult(), in);
        RopeFreqs freqs = ropeFreqs(r.getLoc(), r.getFreqs());
        emitRope(emitter, b, in, freqs, lookup(r.getRowOffsets()),
                 lookup(r.getCacheLengths()), r.getInterleaved(), out);
        mapping.map(r.getResult(), out);
        return success();
      })
      .Case([&](RopeStoreOp s) -> LogicalResult {
        if (failed(checkCacheStore(s, s.getBlocks())))
          return failure();
        Value blocks = lookup(s.getBlocks());
        Value q = lookup(s.getQ());
        Value qOut = destination(b, s.getQResult(), q);
        double eps = s.getEps() ? s.getEps()->convertToDouble() : 0.0;
        emitRopeStore(emitter, b, q, lookup(s.getK()), lookup(s.getV()),
                      ropeFreqs(s.getLoc(), s.getFreqs()),
                      lookup(s.getRowOffsets()), lookup(s.getCacheLengths()),
                      lookup(s.getLookupTable()), blocks, s.getLayer(),
                      s.getInterleaved(),
                      s.hasQKNorm() ? lookup(s.getGammaQ()) : Value(),
                      s.hasQKNorm() ? lookup(s.getGammaK()) : Value(), eps, qOut);
        mapping.map(s.getQResult(), qOut);
        mapping.map(s.getResult(), blocks);
        return success();
      })
      .Case([&](KVCacheStoreOp s) -> LogicalResult {
        if (failed(checkCacheStore(s, s.getBlocks())))
          return failure();
        Value blocks = lookup(s.getBlocks());
        emitKVCacheStore(emitter, b, lookup(s.getKey()), lookup(s.getValue()),
                         lookup(s.getRowOffsets()), lookup(s.getCacheLengths()),
                         lookup(s.getLookupTable()), blocks, s.getLayer());
        mapping.map(s.getResult(), blocks);
        return success();
      })
      .Case([&](QKVProjectionOp p) -> LogicalResult {
        Value x = lookup(p.getInput());
        if (cast<MemRefType>(x.getType()).getDimSize(1) % 8 != 0)
          return p.emitOpError("needs a hidden size that is a multiple of 8 on the GPU");
        int64_t d = p.getHeadDim();
        std::array<int64_t, 3> widths = {p.getNumHeads() * d, p.getNumKVHeads() * d,
                                         p.getNumKVHeads() * d};
        SmallVector<OutputSegment> segments;
        int64_t begin = 0;
        for (auto [res, width] : llvm::zip(p->getResults(), widths)) {
          Value out = destination(b, res, x);
          mapping.map(res, out);
          // [T, H, D] -> [T, H * D] for the GEMM epilogue.
          Value flat = memref::CollapseShapeOp::create(
              b, out, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
          segments.push_back({flat, begin, width});
          begin += width;
        }
        std::optional<double> clip;
        if (p.getClip())
          clip = p.getClip()->convertToDouble();
        auto biases = p.getBiases();
        if (p.isStacked()) {
          emitMatmul(emitter, b, x, lookup(p.getWeights()[0]),
                     biases.empty() ? Value() : lookup(biases[0]), clip, segments);
          return success();
        }
        SmallVector<Value> weights, biasBuffers;
        for (Value w : p.getWeights())
          weights.push_back(lookup(w));
        for (Value bias : biases)
          biasBuffers.push_back(lookup(bias));
        if (matmulCanSplitWeights(weights)) {
          // One launch: each 64-column block reads Wq, Wk or Wv.
          emitMatmul(emitter, b, x, weights, biasBuffers, clip, segments);
          return success();
        }
        for (auto [i, segment] : llvm::enumerate(segments)) {
          OutputSegment alone = {segment.buffer, 0, segment.width};
          emitMatmul(emitter, b, x, lookup(p.getWeights()[i]),
                     biases.empty() ? Value() : lookup(biases[i]), clip, {alone});
        }
        return success();
      })
      .Case([&](LinearOp l) -> LogicalResult {
        Value x = lookup(l.getInput());
        if (cast<MemRefType>(x.getType()).getDimSize(1) % 8 != 0)
          return l.emitOpError("needs an input width that is a multiple of 8 on the GPU");
        Value out = destination(b, l.getResult(), x);
        int64_t n = l.getResult().getType().getDimSize(1);
        std::optional<double> clip;
        if (l.getClip())
          clip = l.getClip()->convertToDouble();
        emitMatmul(emitter, b, x, lookup(l.getWeight()),
                   l.getBias() ? lookup(l.getBias()) : Value(), clip,
                   {OutputSegment{out, 0, n}});
        mapping.map(l.getResult(), out);
        return success();
      })
      .Case([&](FlashAttentionOp a) {
        AttentionSpec spec;
        spec.query = lookup(a.getQuery());
        spec.out = destination(b, a.getResult(), spec.query);
        spec.qRowOffsets = lookup(a.getQRowOffsets());
        spec.key = lookup(a.getKey());
        spec.value = lookup(a.getValue());
        spec.kvRowOffsets = lookup(a.getKvRowOffsets());
        spec.mask = a.getMask();
        spec.scale = a.getScaleOrDefault();
        emitAttention(emitter, b, spec);
        mapping.map(a.getResult(), spec.out);
        return success();
      })
      .Case([&](PagedFlashAttentionOp a) {
        AttentionSpec spec;
        spec.query = lookup(a.getQuery());
        spec.out = destination(b, a.getResult(), spec.query);
        spec.qRowOffsets = lookup(a.getRowOffsets());
        spec.blocks = lookup(a.getBlocks());
        spec.cacheLengths = lookup(a.getCacheLengths());
        spec.lookup = lookup(a.getLookupTable());
        spec.layer = a.getLayer();
        spec.mask = a.getMask();
        spec.scale = a.getScaleOrDefault();
        emitAttention(emitter, b, spec);
        mapping.map(a.getResult(), spec.out);
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitOpError("cannot be lowered to the GPU (run "
                                  "attn-expand-composite first; only attn ops, "
                                  "shape casts and scalar code are supported)");
      });
}

/// Checks what the kernels assume about shapes and element types.
LogicalResult checkSupported(Operation *op) {
  auto fail = [&](const Twine &why) { return op->emitOpError(why); };
  auto halfPrecision = [](Type t) { return t.isBF16() || t.isF16(); };
  auto headDimOk = [](int64_t d) {
    return !ShapedType::isDynamic(d) && d % 16 == 0 && d <= 128;
  };
  // Kernels are specialised on head counts, head dims and weight shapes.
  auto staticDims = [](Type t, ArrayRef<int64_t> dims) {
    auto shaped = cast<ShapedType>(t);
    return llvm::all_of(dims, [&](int64_t d) { return !shaped.isDynamicDim(d); });
  };
  if (auto a = dyn_cast<FlashAttentionOp>(op))
    if (!staticDims(a.getQuery().getType(), {1, 2}) ||
        !staticDims(a.getKey().getType(), {1, 2}))
      return fail("needs static head counts and head dims on the GPU");
  if (auto a = dyn_cast<PagedFlashAttentionOp>(op))
    if (!staticDims(a.getQuery().getType(), {1, 2}) ||
        !staticDims(a.getBlocks().getType(), {3, 4, 5}))
      return fail("needs static head counts, head dims and page size on the GPU");
  if (auto s = dyn_cast<KVCacheStoreOp>(op))
    if (!staticDims(s.getKey().getType(), {1, 2}) ||
        !staticDims(s.getBlocks().getType(), {3, 4, 5}))
      return fail("needs static head counts, head dims and page size on the GPU");
  if (auto r = dyn_cast<RopeStoreOp>(op))
    if (!staticDims(r.getQ().getType(), {1, 2}) ||
        !staticDims(r.getK().getType(), {1, 2}) ||
        !staticDims(r.getBlocks().getType(), {3, 4, 5}))
      return fail("needs static head counts, head dims and page size on the GPU");
  if (isa<QKVProjectionOp, LinearOp>(op))
    for (Value w : op->getOperands().drop_front())
      if (!cast<ShapedType>(w.getType()).hasStaticShape())
        return fail("needs static weight and bias shapes on the GPU");
  if (auto a = dyn_cast<FlashAttentionOp>(op)) {
    auto t = a.getQuery().getType();
    if (!halfPrecision(t.getElementType()))
      return fail("needs bf16 or f16 on the GPU (tensor cores)");
    if (!headDimOk(t.getDimSize(2)))
      return fail("needs a head dim that is a multiple of 16, at most 128, on the GPU");
    int64_t group = t.getDimSize(1) / a.getKey().getType().getDimSize(1);
    if (group > 64)
      return fail("needs at most 64 query heads per kv head on the GPU");
  }
  if (auto a = dyn_cast<PagedFlashAttentionOp>(op)) {
    auto t = a.getQuery().getType();
    if (!halfPrecision(t.getElementType()))
      return fail("needs bf16 or f16 on the GPU (tensor cores)");
    if (!headDimOk(t.getDimSize(2)))
      return fail("needs a head dim that is a multiple of 16, at most 128, on the GPU");
    int64_t group = t.getDimSize(1) / a.getBlocks().getType().getDimSize(4);
    if (group > 64)
      return fail("needs at most 64 query heads per kv head on the GPU");
  }
  if (isa<QKVProjectionOp, LinearOp>(op) &&
      !halfPrecision(cast<ShapedType>(op->getOperand(0).getType()).getElementType()))
    return fail("needs bf16 or f16 on the GPU (tensor cores)");
  if (auto s = dyn_cast<KVCacheStoreOp>(op))
    if (s.getKey().getType().getDimSize(2) % 8 != 0)
      return fail("needs a head dim that is a multiple of 8 on the GPU");
  return success();
}

struct ConvertAttnToGPU
    : public attn::impl::ConvertAttnToGPUBase<ConvertAttnToGPU> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    WalkResult supported = module.walk([](Operation *op) {
      return failed(checkSupported(op)) ? WalkResult::interrupt()
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
    KernelEmitter emitter(module, KernelOptions{smCount, maxSplits, wgmma});
    for (func::FuncOp func : funcs)
      if (failed(FunctionLowering(func, emitter).run()))
        return signalPassFailure();
  }
};

} // namespace
