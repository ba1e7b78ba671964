//===- Projections.cpp - attn.linear / attn.qkv_projection to linalg ------===//
//
// `x @ W^T` accumulated in f32: with many rows an outer-product GEMM on
// a packed, transposed chunk of `W`, with few rows vector dot products
// (both parallel over column chunks), else linalg.generic contractions.
//
//===----------------------------------------------------------------------===//

#include "Builders.h"
#include "GGUFInt8.h"
#include "GPTQLanes.h"
#include "Patterns.h"
#include "Projections.h"
#include "QuantizedWeights.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

int64_t linalg_lowering::linearChunk(int64_t n) {
  for (int64_t chunk : {64, 32, 16, 8, 4, 2})
    if (n % chunk == 0)
      return chunk;
  return 0;
}

Value linalg_lowering::projectionLoops(
    IB &b, Value init, Value tokens, int64_t n, int64_t chunk, int64_t depth,
    int64_t depthBlock, int64_t rowBlock, int64_t colStep,
    function_ref<void(IB &, Value col0)> prologue,
    function_ref<Value(IB &, const ProjectionBlock &, Value col0, Value tile)>
        block) {
  SmallVector<OpFoldResult> ubs = {b.getIndexAttr(n / chunk)};
  auto forall = scf::ForallOp::create(b, ubs, ValueRange{init}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  BuilderScope scope(b);
  Idx col0 = Idx(forall.getInductionVar(0)) * chunk;
  prologue(b, col0);
  Idx lastRow = Idx(tokens) - 1;
  Value local = filled(b, {tokens, b.getIndexAttr(chunk)}, cF32(b, 0.0));
  Value tile = forLoop(
      b, cIndex(b, 0), cIndex(b, depth), depthBlock, ValueRange{local},
      [&](IB &i0, Idx k0, ValueRange blockState) {
        Idx kEnd = k0 + depthBlock;
        return forLoop(
            i0, cIndex(i0, 0), tokens, rowBlock, blockState,
            [&](IB &ib, Idx r0, ValueRange rowState) {
              SmallVector<Value> rows, rowValid;
              for (Value row : blockRows(ib, r0, rowBlock)) {
                rowValid.push_back(Idx(row) < tokens);
                rows.push_back(min(ib, row, lastRow));
              }
              return forLoop(
                  ib, cIndex(ib, 0), cIndex(ib, chunk), colStep, rowState,
                  [&](IB &i2, Idx c0, ValueRange colState)
                      -> SmallVector<Value> {
                    ProjectionBlock blk{k0, kEnd, rows, rowValid, c0};
                    return {block(i2, blk, col0, colState[0])};
                  });
            });
      })[0];
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0), col0};
  SmallVector<OpFoldResult> sizes = {tokens, b.getIndexAttr(chunk)};
  SmallVector<OpFoldResult> unit(2, b.getIndexAttr(1));
  tensor::ParallelInsertSliceOp::create(b, tile,
                                        forall.getRegionOutArgs()[0], offsets,
                                        sizes, unit);
  return forall.getResult(0);
}

/// The largest of `candidates` below `depth` that divides it and `multiple`.
static int64_t depthBlockOf(int64_t depth, ArrayRef<int64_t> candidates,
                            int64_t multiple) {
  for (int64_t candidate : candidates)
    if (depth > candidate && depth % candidate == 0 && candidate % multiple == 0)
      return candidate;
  return depth;
}

/// Decode projections (few rows): vector dot products. Per K block (so the
/// rows of `x` in use stay in L1 while the chunk's weight rows stream from
/// L2), `rowsPerBlock` rows x `colsPerBlock` columns of `lanes`-wide
/// accumulators per step along K; the horizontal sums are added into the
/// output tile after each block. Tail rows repeat the last row; their sums
/// are discarded.
static Value vectorLinear(IB &b, Value x, int64_t n, int64_t depth,
                          WeightReader &weights, int64_t lanes, Value init,
                          int64_t rowsPerBlock = 4, int64_t colsPerBlock = 2) {
  Value zeros = zero(b, vecType(b.getF32Type(), {lanes}));
  weights.prepare(b, lanes);
  // One step along K covers a quantisation block: its pieces are read at
  // constant offsets (WeightReader::rowAt).
  int64_t step = std::max(lanes, weights.blockElements());
  auto block = [&](IB &ib, const ProjectionBlock &blk, Value col0,
                   Value out) -> Value {
    BuilderScope scope(ib);
    SmallVector<Value> cols;
    for (int64_t j = 0; j < colsPerBlock; ++j)
      cols.push_back(Idx(col0) + (Idx(blk.col) + j));
    SmallVector<Value> start(rowsPerBlock * colsPerBlock, zeros);
    SmallVector<Value> dots = forLoop(
        ib, blk.kBegin, blk.kEnd, step, start,
        [&](IB &i3, Idx k, ValueRange acc) {
          SmallVector<Value> next(acc);
          for (int64_t offset = 0; offset < step; offset += lanes) {
            SmallVector<Value> xs, ws;
            for (Value row : blk.rows)
              xs.push_back(
                  vecToF32(i3, readVector(i3, x, {row, k + offset}, lanes)));
            for (Value col : cols)
              ws.push_back(weights.rowAt(i3, col, k, offset, lanes));
            for (int64_t i = 0; i < rowsPerBlock; ++i)
              for (int64_t j = 0; j < colsPerBlock; ++j)
                next[i * colsPerBlock + j] = vector::FMAOp::create(
                    i3, xs[i], ws[j], next[i * colsPerBlock + j]);
          }
          return next;
        });
    for (int64_t i = 0; i < rowsPerBlock; ++i)
      for (int64_t j = 0; j < colsPerBlock; ++j) {
        Value sum = vector::ReductionOp::create(
            ib, vector::CombiningKind::ADD, dots[i * colsPerBlock + j]);
        Value localCol = Idx(blk.col) + j;
        SmallVector<Value> at = {blk.rows[i], localCol};
        Value partial = tensor::ExtractOp::create(ib, out, at);
        // Tail rows stand in for the last row: they must not add.
        Value updated = arith::SelectOp::create(
            ib, blk.rowValid[i], arith::AddFOp::create(ib, partial, sum), partial);
        out = tensor::InsertOp::create(ib, updated, out, at);
      }
    return out;
  };
  return projectionLoops(b, init, dim(b, x, 0), n, linearChunk(n), depth,
                         rowsPerBlock == 1
                             ? depth
                             : depthBlockOf(depth, {512, 256, 128}, step),
                         rowsPerBlock, colsPerBlock,
                         [](IB &, Value) {}, block);
}

/// Prefill projections (many rows): `x [T, K] (f32) @ w [N, K]^T` as an
/// outer-product GEMM. Per chunk of output columns the chunk of `w` is packed
/// once, transposed to `[K, chunk]` f32 (clipped); then, per block of K (the
/// rows' slice of x in L1, the packed block in L2), register blocks of rows x
/// 16 or 32 accumulators, loaded from and stored back to the output tile, run
/// along K with the x element broadcast and the packed weight row as the
/// vector. Tail rows repeat the last row: they load, add and store the same
/// values as that row, so the result is unchanged.
static Value packedLinear(IB &b, Value x, int64_t n, int64_t depth,
                          WeightReader &weights, int64_t lanes, Value init) {
  int64_t rowBlock = lanes >= 16 ? 8 : kRowBlock;
  int64_t chunk = linearChunk(n);
  int64_t width = blockWidth(chunk, lanes >= 16 ? 32 : 16);
  weights.prepare(b, kLanes);
  Value packed;
  auto pack = [&](IB &pb, Value col0) {
    packed = transposeKeys(pb, chunk, depth, [&](IB &g, Value c, Value d0) {
      BuilderScope scope(g);
      return weights.row(g, Idx(col0) + c, d0, kLanes);
    });
  };
  auto block = [&](IB &ib, const ProjectionBlock &blk, Value,
                   Value out) -> Value {
    SmallVector<Value> start;
    for (Value row : blk.rows)
      start.push_back(readVector(ib, out, {row, blk.col}, width));
    SmallVector<Value> sums = outerProducts(ib, x, packed, blk.rows, blk.col,
                                            depth, width, start, blk.kBegin,
                                            blk.kEnd);
    for (auto [row, sum] : llvm::zip(blk.rows, sums))
      out = writeVector(ib, sum, out, {row, blk.col});
    return out;
  };
  return projectionLoops(b, init, dim(b, x, 0), n, chunk, depth,
                         depthBlockOf(depth, {256, 128, 64}, 1), rowBlock, width,
                         pack, block);
}

/// The dot-product kernel for few rows. A weight decoded by blocks (GGUF)
/// costs more to decode than to multiply: one row (a single sequence's
/// decode step) gets its own kernel of 1 row x 4 columns, which decodes the
/// same weights as 4 x 2 and wastes no products on repeated tail rows; it
/// reads each weight row along all of K (one row of x stays in cache), a
/// stream the prefetchers follow rather than strided K blocks.
static Value fewRowsLinear(IB &b, Value x, int64_t n, int64_t depth,
                           WeightReader &weights, int64_t lanes, Value init) {
  if (weights.blockElements() == 1 || linearChunk(n) % 4 != 0)
    return vectorLinear(b, x, n, depth, weights, lanes, init);
  BuilderScope scope(b);
  Value oneRow = Idx(dim(b, x, 0)) == 1;
  auto ifOp = scf::IfOp::create(
      b, oneRow,
      [&](OpBuilder &tb, Location tl) {
        IB ib(tl, tb);
        scf::YieldOp::create(ib, vectorLinear(ib, x, n, depth, weights, lanes,
                                              init, 1, 4));
      },
      [&](OpBuilder &eb, Location el) {
        IB ib(el, eb);
        scf::YieldOp::create(
            ib, vectorLinear(ib, x, n, depth, weights, lanes, init));
      });
  return ifOp.getResult(0);
}

namespace {
/// A float weight tensor, widened to f32 and clamped to `[-clip, clip]`.
struct FloatWeightReader : WeightReader {
  FloatWeightReader(Value w, std::optional<double> clip) : w(w), clip(clip) {}
  void prepare(IB &b, int64_t width) override {
    clipHi = clip ? splat(b, cF32(b, *clip), width) : Value();
    clipLo = clip ? splat(b, cF32(b, -*clip), width) : Value();
  }
  Value row(IB &b, Value n, Value k, int64_t width) override {
    Value v = vecToF32(b, readVector(b, w, {n, k}, width));
    if (clipHi) {
      v = arith::MaximumFOp::create(b, v, clipLo);
      v = arith::MinimumFOp::create(b, v, clipHi);
    }
    return v;
  }
  Value w;
  std::optional<double> clip;
  Value clipHi, clipLo;
};
} // namespace

/// Whether the vector kernels take `[n, depth]` weights with `lanes`.
static bool vectorKernelsApply(int64_t n, int64_t depth, int64_t lanes) {
  return lanes > 0 && !ShapedType::isDynamic(n) &&
         !ShapedType::isDynamic(depth) && depth % lanes == 0 &&
         linearChunk(n) != 0;
}

/// Quantised weights are decoded by the vector kernels only, from the parts
/// of their `attn.quantized_weight`.
static LogicalResult checkWeights(Operation *op, ValueRange weights,
                                  int64_t lanes) {
  for (Value w : weights) {
    auto quantized = dyn_cast<QuantizedWeightType>(w.getType());
    if (!quantized)
      continue;
    if (!w.getDefiningOp<QuantizedWeightOp>())
      return op->emitError("quantised weight not made by "
                           "attn.quantized_weight in this function");
    if (!vectorKernelsApply(quantized.getRows(), quantized.getCols(), lanes))
      return op->emitError()
             << "quantised weights need the vector kernels: K ("
             << quantized.getCols() << ") a multiple of vector-lanes (" << lanes
             << ") and N (" << quantized.getRows() << ") even";
  }
  return success();
}

/// The GGUF encoding of `w` when its few-row products are to take the int8
/// kernel under `options`, else null.
static GGUFAttr int8Encoding(Value w,
                             const ConvertAttnToLinalgOptions &options) {
  auto quantized = dyn_cast<QuantizedWeightType>(w.getType());
  auto gguf = quantized ? dyn_cast<GGUFAttr>(quantized.getEncoding()) : nullptr;
  if (!gguf || options.int8MaxRows == 0 ||
      parseInt8Dot(options.int8Dot) == Int8Dot::None)
    return nullptr;
  return gguf;
}

/// `x [T, K]` widened to f32 (f32 stays as is).
static Value widenRows(IB &b, Value x) {
  if (cast<RankedTensorType>(x.getType()).getElementType().isF32())
    return x;
  MLIRContext *ctx = b.getContext();
  AffineExpr d0, d1;
  bindDims(ctx, d0, d1);
  return generic(
      b, emptyTensor(b, tensor::getMixedSizes(b, b.getLoc(), x), b.getF32Type()),
      {x}, {map(ctx, 2, {d0, d1}), map(ctx, 2, {d0, d1})}, iterators(2),
      [&](OpBuilder &gb, Location gl, ValueRange a) {
        linalg::YieldOp::create(gb, gl, ValueRange{toF32(gb, gl, a[0])});
      });
}

/// The f32 kernels into a new `[tokens, n]` f32 tensor: the packed GEMM from
/// `packedMinRows` rows (0: never), else dot products, bound by reading the
/// weights once. Both fill one destination, so the result stays one buffer.
static Value floatLinear(IB &b, Value x, Value tokens, int64_t n,
                         int64_t depth, WeightReader &weights, int64_t lanes,
                         int64_t packedMinRows) {
  Value init = emptyTensor(b, {tokens, b.getIndexAttr(n)}, b.getF32Type());
  if (packedMinRows <= 0 || linearChunk(n) % kLanes != 0 ||
      depth % kLanes != 0)
    return fewRowsLinear(b, x, n, depth, weights, lanes, init);
  BuilderScope scope(b);
  auto accType =
      RankedTensorType::get({ShapedType::kDynamic, n}, b.getF32Type());
  return ifElse(
      b, Idx(tokens) >= packedMinRows, accType,
      [&](IB &ib) -> SmallVector<Value> {
        Value r = packedLinear(ib, widenRows(ib, x), n, depth, weights, lanes,
                               init);
        return {ib.createOrFold<tensor::CastOp>(accType, r)};
      },
      [&](IB &ib) -> SmallVector<Value> {
        Value r = fewRowsLinear(ib, x, n, depth, weights, lanes, init);
        return {ib.createOrFold<tensor::CastOp>(accType, r)};
      })[0];
}

/// `x @ w^T` as a linalg.generic contraction in f32 into `sizes`, the
/// weight elements clamped to `[-clip, clip]`: shapes the vector kernels do
/// not take.
static Value genericLinear(IB &b, Value x, Value w, std::optional<double> clip,
                           ArrayRef<OpFoldResult> sizes) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, nn, k;
  bindDims(ctx, t, nn, k);
  Value clipHi = clip ? cF32(b, *clip) : Value();
  Value clipLo = clip ? cF32(b, -*clip) : Value();
  return generic(
      b, filled(b, sizes, cF32(b, 0.0)), {x, w},
      {map(ctx, 3, {t, k}), map(ctx, 3, {nn, k}), map(ctx, 3, {t, nn})},
      iterators(2, 1), [&](OpBuilder &ob, Location loc, ValueRange args) {
        Value a = toF32(ob, loc, args[0]);
        Value wv = toF32(ob, loc, args[1]);
        if (clipHi) {
          wv = arith::MaximumFOp::create(ob, loc, wv, clipLo);
          wv = arith::MinimumFOp::create(ob, loc, wv, clipHi);
        }
        Value prod = arith::MulFOp::create(ob, loc, a, wv);
        linalg::YieldOp::create(
            ob, loc, ValueRange{arith::AddFOp::create(ob, loc, args[2], prod)});
      });
}

/// `acc [T, N]` f32 times `rowScale [T]`, plus `bias [N]` (each optional),
/// as `elementType`.
static Value linearEpilogue(IB &b, Value acc, Value rowScale, Value bias,
                            Type elementType, ArrayRef<OpFoldResult> sizes) {
  if (elementType.isF32() && !bias && !rowScale)
    return acc;
  MLIRContext *ctx = b.getContext();
  AffineExpr t, nn;
  bindDims(ctx, t, nn);
  SmallVector<Value> inputs = {acc};
  SmallVector<AffineMap> maps = {map(ctx, 2, {t, nn})};
  if (rowScale) {
    inputs.push_back(rowScale);
    maps.push_back(map(ctx, 2, {t}));
  }
  if (bias) {
    inputs.push_back(bias);
    maps.push_back(map(ctx, 2, {nn}));
  }
  maps.push_back(map(ctx, 2, {t, nn}));
  Value out = emptyTensor(b, sizes, elementType);
  return generic(b, out, inputs, maps, iterators(2),
                 [&](OpBuilder &ob, Location loc, ValueRange args) {
                   Value v = args[0];
                   if (rowScale)
                     v = arith::MulFOp::create(ob, loc, v, args[1]);
                   if (bias)
                     v = arith::AddFOp::create(
                         ob, loc, v, toF32(ob, loc, args[rowScale ? 2 : 1]));
                   linalg::YieldOp::create(
                       ob, loc, ValueRange{fromF32(ob, loc, v, elementType)});
                 });
}

/// `x [T, K] @ w [N, K]^T (+ bias [N])` as `[T, N] x outType`, accumulated in
/// f32; `clip` clamps the weight elements inside the contraction. A
/// quantised `w` is decoded inside the vector kernels (QuantizedWeights.h);
/// GGUF weights with at most `int8MaxRows` rows take the int8 kernel
/// (GGUFInt8.h), GPTQ weights their own (GPTQLanes.h).
static Value buildLinear(IB &b, Value x, Value w, Value bias,
                         std::optional<double> clip, Type outType,
                         const ConvertAttnToLinalgOptions &options) {
  int64_t lanes = options.vectorLanes;
  Value tokens = dim(b, x, 0);
  std::unique_ptr<WeightReader> weights;
  Value rowScale;
  int64_t n, depth;
  SmallVector<OpFoldResult> sizes;
  auto quantized = dyn_cast<QuantizedWeightType>(w.getType());
  if (quantized) {
    n = quantized.getRows();
    depth = quantized.getCols();
    QuantizedProjection projection = prepareQuantizedProjection(b, x, w);
    x = projection.input;
    rowScale = projection.rowScale;
    weights = std::move(projection.weights);
    sizes = {tokens, b.getIndexAttr(n)};
  } else {
    n = cast<RankedTensorType>(w.getType()).getDimSize(0);
    depth = cast<RankedTensorType>(w.getType()).getDimSize(1);
    weights = std::make_unique<FloatWeightReader>(w, clip);
    sizes = {tokens, tensor::getMixedSize(b, b.getLoc(), w, 0)};
  }
  Type elementType = cast<RankedTensorType>(outType).getElementType();
  GPTQAttr gptq =
      quantized ? dyn_cast<GPTQAttr>(quantized.getEncoding()) : nullptr;
  if (gptq) {
    // GPTQ at any row count: vectors along its words (GPTQLanes.h).
    ValueRange parts = w.getDefiningOp<QuantizedWeightOp>().getParts();
    Value acc = gptqLinear(
        b, x, parts[0], parts[1], gptq, n, depth, lanes,
        emptyTensor(b, {tokens, b.getIndexAttr(n)}, b.getF32Type()));
    return linearEpilogue(b, acc, rowScale, bias, elementType, sizes);
  }
  if (GGUFAttr int8 = int8Encoding(w, options)) {
    // GGUF weights up to int8MaxRows rows (Q4_0 / Q8_0: at most 16): the
    // int8 kernel.
    Value blocks = w.getDefiningOp<QuantizedWeightOp>().getParts()[0];
    BuilderScope scope(b);
    auto accType =
        RankedTensorType::get({ShapedType::kDynamic, n}, b.getF32Type());
    Value acc = ifElse(
        b, Idx(tokens) <= int8RowLimit(int8, options.int8MaxRows), accType,
        [&](IB &tb) -> SmallVector<Value> {
          Value init =
              emptyTensor(tb, {tokens, tb.getIndexAttr(n)}, tb.getF32Type());
          return {int8Linear(tb, x, blocks, int8, n, depth,
                             *parseInt8Dot(options.int8Dot), init)};
        },
        [&](IB &eb) -> SmallVector<Value> {
          Value r = floatLinear(eb, x, tokens, n, depth, *weights, lanes,
                                options.packedMinRows);
          return {eb.createOrFold<tensor::CastOp>(accType, r)};
        })[0];
    return linearEpilogue(b, acc, rowScale, bias, elementType, sizes);
  }
  Value acc = vectorKernelsApply(n, depth, lanes)
                  ? floatLinear(b, x, tokens, n, depth, *weights, lanes,
                                options.packedMinRows)
                  : genericLinear(b, x, w, clip, sizes);
  return linearEpilogue(b, acc, rowScale, bias, elementType, sizes);
}

static std::optional<double> clipValue(std::optional<APFloat> clip) {
  if (!clip)
    return std::nullopt;
  return clip->convertToDouble();
}

namespace {

struct LowerLinear : OpRewritePattern<LinearOp> {
  LowerLinear(MLIRContext *ctx, const ConvertAttnToLinalgOptions &options)
      : OpRewritePattern(ctx), options(options) {}
  ConvertAttnToLinalgOptions options;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    if (failed(checkWeights(op, op.getWeight(), options.vectorLanes)))
      return failure();
    IB b(op.getLoc(), rewriter);
    Value out = buildLinear(b, op.getInput(), op.getWeight(), op.getBias(),
                            clipValue(op.getClip()), op.getType(), options);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
};

struct LowerQKVProjection : OpRewritePattern<QKVProjectionOp> {
  LowerQKVProjection(MLIRContext *ctx, const ConvertAttnToLinalgOptions &options)
      : OpRewritePattern(ctx), options(options) {}
  ConvertAttnToLinalgOptions options;
  LogicalResult matchAndRewrite(QKVProjectionOp op,
                                PatternRewriter &rewriter) const override {
    if (failed(checkWeights(op, op.getWeights(), options.vectorLanes)))
      return failure();
    IB b(op.getLoc(), rewriter);
    std::optional<double> clip = clipValue(op.getClip());
    int64_t headDim = op.getHeadDim();
    SmallVector<int64_t> heads = {op.getNumHeads(), op.getNumKVHeads(),
                                  op.getNumKVHeads()};
    Type elementType = op.getInput().getType().getElementType();
    Value tokens = dim(b, op.getInput(), 0);
    SmallVector<Value> flat;
    if (op.isStacked()) {
      Value bias = op.getBiases().empty() ? Value() : op.getBiases()[0];
      Value all = buildLinear(b, op.getInput(), op.getWeights()[0], bias, clip,
                              RankedTensorType::get({ShapedType::kDynamic, 1},
                                                    elementType),
                              options);
      int64_t column = 0;
      for (int64_t h : heads) {
        SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0),
                                             b.getIndexAttr(column)};
        SmallVector<OpFoldResult> sizes = {tokens, b.getIndexAttr(h * headDim)};
        SmallVector<OpFoldResult> strides = {b.getIndexAttr(1),
                                             b.getIndexAttr(1)};
        flat.push_back(
            tensor::ExtractSliceOp::create(b, all, offsets, sizes, strides));
        column += h * headDim;
      }
    } else {
      for (auto [i, w] : llvm::enumerate(op.getWeights())) {
        Value bias = op.getBiases().empty() ? Value() : op.getBiases()[i];
        flat.push_back(buildLinear(
            b, op.getInput(), w, bias, clip,
            RankedTensorType::get({ShapedType::kDynamic, 1}, elementType),
            options));
      }
    }
    SmallVector<Value> results;
    for (auto [value, h, result] : llvm::zip(flat, heads, op.getResults())) {
      SmallVector<ReassociationIndices> reassociation = {{0}, {1, 2}};
      SmallVector<OpFoldResult> shape = {tokens, b.getIndexAttr(h),
                                         b.getIndexAttr(headDim)};
      auto dynamicType = RankedTensorType::get(
          {ShapedType::kDynamic, h, headDim}, elementType);
      Value expanded = tensor::ExpandShapeOp::create(b, dynamicType, value,
                                                     reassociation, shape);
      results.push_back(
          b.createOrFold<tensor::CastOp>(result.getType(), expanded));
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void linalg_lowering::populateProjectionPatterns(
    RewritePatternSet &patterns, const ConvertAttnToLinalgOptions &options) {
  patterns.add<LowerLinear, LowerQKVProjection>(patterns.getContext(), options);
}
