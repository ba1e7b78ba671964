//===- AttnToLinalg.cpp - attn ops to linalg / tensor / scf ---------------===//
//
// Lowers each primitive attn op to tensor-level code. Contractions accumulate
// in f32 whatever the storage type; small static tiles keep everything
// vectorisable and no S x S score buffer is ever built.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

#include <cmath>
#include <numeric>

namespace mlir::attn {
#define GEN_PASS_DEF_CONVERTATTNTOLINALG
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

using IB = ImplicitLocOpBuilder;
using utils::IteratorType;

//===----------------------------------------------------------------------===//
// Small builders
//===----------------------------------------------------------------------===//

Value cIndex(IB &b, int64_t v) { return arith::ConstantIndexOp::create(b, v); }

Value cF32(IB &b, double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(static_cast<float>(v)));
}

Value cNegInfF32(IB &b) {
  return arith::ConstantOp::create(
      b, b.getFloatAttr(b.getF32Type(),
                        APFloat::getInf(APFloat::IEEEsingle(), true)));
}

Value dim(IB &b, Value tensor, int64_t d) {
  return b.createOrFold<tensor::DimOp>(tensor, d);
}

/// Reads an i32 element and returns it as an index.
Value loadIndex(IB &b, Value tensor, ValueRange indices) {
  Value v = tensor::ExtractOp::create(b, tensor, indices);
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}

Value minIdx(IB &b, Value x, Value y) { return arith::MinSIOp::create(b, x, y); }
Value maxIdx(IB &b, Value x, Value y) { return arith::MaxSIOp::create(b, x, y); }

/// `min(max(v, lo), hi)` on indices.
Value clampIdx(IB &b, Value v, Value lo, Value hi) {
  return minIdx(b, maxIdx(b, v, lo), hi);
}

/// Rows [start, end) of sequence `seq` in `rowOffsets` [B+1], clamped to
/// [0, limit) so that malformed offsets cannot index out of bounds.
std::pair<Value, Value> sequenceRows(IB &b, Value rowOffsets, Value seq,
                                     Value limit) {
  Value start = clampIdx(b, loadIndex(b, rowOffsets, {seq}), cIndex(b, 0), limit);
  Value next = arith::AddIOp::create(b, seq, cIndex(b, 1));
  Value end = clampIdx(b, loadIndex(b, rowOffsets, {next}), start, limit);
  return {start, end};
}

Value ceilDiv(IB &b, Value x, int64_t d) {
  return arith::CeilDivSIOp::create(b, x, cIndex(b, d));
}

Value toF32(OpBuilder &b, Location loc, Value v) {
  auto type = cast<FloatType>(v.getType());
  if (type.isF32())
    return v;
  if (type.getWidth() < 32)
    return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  return arith::TruncFOp::create(b, loc, b.getF32Type(), v);
}

Value fromF32(OpBuilder &b, Location loc, Value v, Type to) {
  auto type = cast<FloatType>(to);
  if (type.isF32())
    return v;
  if (type.getWidth() < 32)
    return arith::TruncFOp::create(b, loc, to, v);
  return arith::ExtFOp::create(b, loc, to, v);
}

Value emptyTensor(IB &b, ArrayRef<OpFoldResult> sizes, Type elementType) {
  return tensor::EmptyOp::create(b, sizes, elementType);
}

Value filled(IB &b, ArrayRef<OpFoldResult> sizes, Value scalar) {
  Value empty = emptyTensor(b, sizes, scalar.getType());
  return linalg::FillOp::create(b, ValueRange{scalar}, ValueRange{empty})
      .getResult(0);
}

SmallVector<IteratorType> iterators(int64_t parallel, int64_t reduction = 0) {
  SmallVector<IteratorType> its(parallel, IteratorType::parallel);
  its.append(reduction, IteratorType::reduction);
  return its;
}

AffineMap map(MLIRContext *ctx, int64_t numDims, ArrayRef<AffineExpr> exprs) {
  return AffineMap::get(numDims, 0, exprs, ctx);
}

using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

Value generic(IB &b, Value init, ValueRange inputs, ArrayRef<AffineMap> maps,
              ArrayRef<IteratorType> its, BodyFn body) {
  return linalg::GenericOp::create(b, TypeRange{init.getType()}, inputs,
                                   ValueRange{init}, maps, its, body)
      .getResult(0);
}

/// Row positions: `pos[r] = cache_lengths[b] + r - row_offsets[b]` for the
/// rows of sequence `b` (rows outside every sequence get 0).
Value rowPositions(IB &b, Value rowOffsets, Value cacheLengths, Value tokens) {
  Value zeroI32 = arith::ConstantOp::create(b, b.getI32IntegerAttr(0));
  Value init = filled(b, {tokens}, zeroI32);
  Value batch = dim(b, cacheLengths, 0);
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  auto outer = scf::ForOp::create(
      b, zero, batch, one, ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value seq, ValueRange args) {
        IB ib(loc, ob);
        auto [start, end] = sequenceRows(ib, rowOffsets, seq, tokens);
        Value cached = loadIndex(ib, cacheLengths, {seq});
        Value base = arith::SubIOp::create(ib, cached, start);
        auto inner = scf::ForOp::create(
            ib, start, end, one, ValueRange{args[0]},
            [&](OpBuilder &ob2, Location loc2, Value row, ValueRange args2) {
              IB ib2(loc2, ob2);
              Value pos = arith::AddIOp::create(ib2, base, row);
              Value posI32 =
                  arith::IndexCastOp::create(ib2, ib2.getI32Type(), pos);
              Value updated =
                  tensor::InsertOp::create(ib2, posI32, args2[0], {row});
              scf::YieldOp::create(ib2, updated);
            });
        scf::YieldOp::create(ib, inner.getResult(0));
      });
  return outer.getResult(0);
}

//===----------------------------------------------------------------------===//
// Vector helpers
//===----------------------------------------------------------------------===//

constexpr int64_t kLanes = 8;
constexpr int64_t kRowBlock = 4;

VectorType vecType(Type element, ArrayRef<int64_t> shape) {
  return VectorType::get(shape, element);
}

Value vecToF32(IB &b, Value v) {
  auto type = cast<VectorType>(v.getType());
  if (type.getElementType().isF32())
    return v;
  auto f32Type = vecType(b.getF32Type(), type.getShape());
  if (type.getElementType().getIntOrFloatBitWidth() < 32)
    return arith::ExtFOp::create(b, f32Type, v);
  return arith::TruncFOp::create(b, f32Type, v);
}

Value splat(IB &b, Value scalar, int64_t n) {
  return vector::BroadcastOp::create(b, vecType(scalar.getType(), {n}), scalar);
}

Value readVector(IB &b, Value source, ValueRange indices, int64_t n) {
  auto type = cast<RankedTensorType>(source.getType());
  Value pad = arith::ConstantOp::create(
      b, b.getZeroAttr(type.getElementType()));
  AffineMap minor = AffineMap::getMinorIdentityMap(type.getRank(), 1,
                                                   b.getContext());
  SmallVector<bool> inBounds = {true};
  return vector::TransferReadOp::create(
      b, vecType(type.getElementType(), {n}), source, indices, pad, minor,
      ArrayRef<bool>(inBounds));
}

Value writeVector(IB &b, Value vector, Value dest, ValueRange indices) {
  auto type = cast<RankedTensorType>(dest.getType());
  AffineMap minor = AffineMap::getMinorIdentityMap(type.getRank(), 1,
                                                   b.getContext());
  SmallVector<bool> inBounds = {true};
  return vector::TransferWriteOp::create(b, vector, dest, indices, minor,
                                         ArrayRef<bool>(inBounds))
      .getResult();
}

//===----------------------------------------------------------------------===//
// Projections
//===----------------------------------------------------------------------===//

/// `x [T, K] @ w [N, K]^T (+ bias [N])` as `[T, N] x outType`, accumulated in
/// f32; `clip` clamps the weight elements inside the contraction.
/// `Kt [D, tile]` f32 from 8x8 blocks: eight 8-wide f32 rows from
/// `readRow(c, d0)` (converted to f32 as they are read, so no narrow float
/// vector crosses a loop), transposed in registers.
Value transposeKeys(IB &b, int64_t tile, int64_t headDim,
                    function_ref<Value(IB &, Value c, Value d0)> readRow) {
  Value init = emptyTensor(b, {b.getIndexAttr(headDim), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zero = cIndex(b, 0), step = cIndex(b, kLanes);
  auto blockType = vecType(b.getF32Type(), {kLanes, kLanes});
  auto outer = scf::ForOp::create(
      b, zero, cIndex(b, tile), step, ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value c0, ValueRange args) {
        IB ib(loc, ob);
        auto inner = scf::ForOp::create(
            ib, zero, cIndex(ib, headDim), step, ValueRange{args[0]},
            [&](OpBuilder &ob2, Location loc2, Value d0, ValueRange args2) {
              IB i2(loc2, ob2);
              Value block = arith::ConstantOp::create(
                  i2, DenseElementsAttr::get(blockType, 0.0f));
              for (int64_t i = 0; i < kLanes; ++i) {
                Value c = arith::AddIOp::create(i2, c0, cIndex(i2, i));
                block = vector::InsertOp::create(i2, readRow(i2, c, d0), block,
                                                 ArrayRef<int64_t>{i});
              }
              Value t = vector::TransposeOp::create(i2, block,
                                                    ArrayRef<int64_t>{1, 0});
              SmallVector<bool> allIn = {true, true};
              Value out = vector::TransferWriteOp::create(
                              i2, t, args2[0], ValueRange{d0, c0},
                              AffineMap::getMultiDimIdentityMap(2, i2.getContext()),
                              ArrayRef<bool>(allIn))
                              .getResult();
              scf::YieldOp::create(i2, out);
            });
        scf::YieldOp::create(ib, inner.getResult(0));
      });
  return outer.getResult(0);
}

/// Rows r0 .. r0 + count - 1.
SmallVector<Value> blockRows(IB &b, Value r0, int64_t count) {
  SmallVector<Value> rows;
  for (int64_t i = 0; i < count; ++i)
    rows.push_back(arith::AddIOp::create(b, r0, cIndex(b, i)));
  return rows;
}

/// Accumulates `sum_k lhs[rows[i], k] * rhs[k, col0 : col0 + width]` into the
/// vectors `acc`, one per row i (k in [0, depth), or [kBegin, kEnd)).
SmallVector<Value> outerProducts(IB &b, Value lhs, Value rhs,
                                 ArrayRef<Value> rows, Value col0, int64_t depth,
                                 int64_t width, ValueRange acc,
                                 Value kBegin = {}, Value kEnd = {}) {
  int64_t rowBlock = acc.size();
  auto loop = scf::ForOp::create(
      b, kBegin ? kBegin : cIndex(b, 0), kEnd ? kEnd : cIndex(b, depth),
      cIndex(b, 1), acc,
      [&](OpBuilder &ob, Location loc, Value k, ValueRange state) {
        IB ib(loc, ob);
        Value column = readVector(ib, rhs, {k, col0}, width);
        SmallVector<Value> next;
        for (int64_t i = 0; i < rowBlock; ++i) {
          Value scalar = tensor::ExtractOp::create(ib, lhs, ValueRange{rows[i], k});
          next.push_back(vector::FMAOp::create(ib, splat(ib, scalar, width),
                                               column, state[i]));
        }
        scf::YieldOp::create(ib, next);
      });
  return SmallVector<Value>(loop.getResults());
}

/// Columns per register block: the widest of maxWidth, 16, 8 dividing `n`.
int64_t blockWidth(int64_t n, int64_t maxWidth) {
  for (int64_t width : {maxWidth, int64_t(16)})
    if (width <= maxWidth && n % width == 0)
      return width;
  return kLanes;
}

/// Columns of `w` per parallel chunk of the vector projection kernel.
int64_t linearChunk(int64_t n) {
  for (int64_t chunk : {64, 32, 16, 8, 4, 2})
    if (n % chunk == 0)
      return chunk;
  return 0;
}

/// What one register block of a projection kernel works on.
struct ProjectionBlock {
  Value kBegin, kEnd;        // the block of K
  ArrayRef<Value> rows;      // row indices; tail rows repeat the last row
  ArrayRef<Value> rowValid;  // whether each of them is a real row
  Value col;                 // first column of the block within the chunk
};

/// The loop nest both projection kernels share: an scf.forall over chunks of
/// `chunk` output columns of `init` ([T, N] f32); per chunk `prologue(col0)`
/// runs once, then blocks of K x blocks of `rowBlock` rows x blocks of
/// `colStep` columns call `block` on a zeroed [T, chunk] f32 tile, which is
/// inserted into the result in parallel.
Value projectionLoops(
    IB &b, Value init, Value tokens, int64_t n, int64_t chunk, int64_t depth,
    int64_t depthBlock, int64_t rowBlock, int64_t colStep,
    function_ref<void(IB &, Value col0)> prologue,
    function_ref<Value(IB &, const ProjectionBlock &, Value col0, Value tile)>
        block) {
  SmallVector<OpFoldResult> ubs = {b.getIndexAttr(n / chunk)};
  auto forall = scf::ForallOp::create(b, ubs, ValueRange{init}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forall.getBody());
  Value col0 = arith::MulIOp::create(b, forall.getInductionVar(0), cIndex(b, chunk));
  prologue(b, col0);
  Value lastRow = arith::SubIOp::create(b, tokens, cIndex(b, 1));
  Value local = filled(b, {tokens, b.getIndexAttr(chunk)}, cF32(b, 0.0));
  auto blockLoop = scf::ForOp::create(
      b, cIndex(b, 0), cIndex(b, depth), cIndex(b, depthBlock), ValueRange{local},
      [&](OpBuilder &ob0, Location loc0, Value kb, ValueRange blockState) {
        IB i0(loc0, ob0);
        Value kEnd = arith::AddIOp::create(i0, kb, cIndex(i0, depthBlock));
        auto rowLoop = scf::ForOp::create(
            i0, cIndex(i0, 0), tokens, cIndex(i0, rowBlock),
            ValueRange{blockState[0]},
            [&](OpBuilder &ob, Location loc, Value r0, ValueRange rowState) {
              IB ib(loc, ob);
              SmallVector<Value> rows, rowValid;
              for (Value row : blockRows(ib, r0, rowBlock)) {
                rowValid.push_back(arith::CmpIOp::create(
                    ib, arith::CmpIPredicate::slt, row, tokens));
                rows.push_back(minIdx(ib, row, lastRow));
              }
              auto colLoop = scf::ForOp::create(
                  ib, cIndex(ib, 0), cIndex(ib, chunk), cIndex(ib, colStep),
                  ValueRange{rowState[0]},
                  [&](OpBuilder &ob2, Location loc2, Value c0,
                      ValueRange colState) {
                    IB i2(loc2, ob2);
                    ProjectionBlock blk{kb, kEnd, rows, rowValid, c0};
                    scf::YieldOp::create(i2, block(i2, blk, col0, colState[0]));
                  });
              scf::YieldOp::create(ib, colLoop.getResult(0));
            });
        scf::YieldOp::create(i0, rowLoop.getResult(0));
      });
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0), col0};
  SmallVector<OpFoldResult> sizes = {tokens, b.getIndexAttr(chunk)};
  SmallVector<OpFoldResult> unit(2, b.getIndexAttr(1));
  tensor::ParallelInsertSliceOp::create(b, blockLoop.getResult(0),
                                        forall.getRegionOutArgs()[0], offsets,
                                        sizes, unit);
  return forall.getResult(0);
}

/// The largest of `candidates` below `depth` that divides it and `multiple`.
int64_t depthBlockOf(int64_t depth, ArrayRef<int64_t> candidates,
                     int64_t multiple) {
  for (int64_t candidate : candidates)
    if (depth > candidate && depth % candidate == 0 && candidate % multiple == 0)
      return candidate;
  return depth;
}

/// Decode projections (few rows): vector dot products. Per K block (so the 4
/// rows of `x` in use stay in L1 while the chunk's weight rows stream from
/// L2), 4 rows x 2 columns of `lanes`-wide accumulators per step along K;
/// the horizontal sums are added into the output tile after each block.
/// Tail rows repeat the last row; their sums are discarded.
Value vectorLinear(IB &b, Value x, Value w, std::optional<double> clip,
                   int64_t lanes, Value init) {
  constexpr int64_t rowsPerBlock = 4, colsPerBlock = 2;
  auto wType = cast<RankedTensorType>(w.getType());
  int64_t n = wType.getDimSize(0), depth = wType.getDimSize(1);
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(b.getF32Type(), {lanes}), 0.0f));
  Value clipHi = clip ? splat(b, cF32(b, *clip), lanes) : Value();
  Value clipLo = clip ? splat(b, cF32(b, -*clip), lanes) : Value();
  auto block = [&](IB &ib, const ProjectionBlock &blk, Value col0,
                   Value out) -> Value {
    SmallVector<Value> cols;
    for (int64_t j = 0; j < colsPerBlock; ++j)
      cols.push_back(arith::AddIOp::create(
          ib, col0, arith::AddIOp::create(ib, blk.col, cIndex(ib, j))));
    SmallVector<Value> start(rowsPerBlock * colsPerBlock, zeros);
    auto kLoop = scf::ForOp::create(
        ib, blk.kBegin, blk.kEnd, cIndex(ib, lanes), start,
        [&](OpBuilder &ob, Location loc, Value k, ValueRange acc) {
          IB i3(loc, ob);
          SmallVector<Value> xs, ws;
          for (Value row : blk.rows)
            xs.push_back(vecToF32(i3, readVector(i3, x, {row, k}, lanes)));
          for (Value col : cols) {
            Value wv = vecToF32(i3, readVector(i3, w, {col, k}, lanes));
            if (clipHi) {
              wv = arith::MaximumFOp::create(i3, wv, clipLo);
              wv = arith::MinimumFOp::create(i3, wv, clipHi);
            }
            ws.push_back(wv);
          }
          SmallVector<Value> next;
          for (int64_t i = 0; i < rowsPerBlock; ++i)
            for (int64_t j = 0; j < colsPerBlock; ++j)
              next.push_back(vector::FMAOp::create(i3, xs[i], ws[j],
                                                   acc[i * colsPerBlock + j]));
          scf::YieldOp::create(i3, next);
        });
    for (int64_t i = 0; i < rowsPerBlock; ++i)
      for (int64_t j = 0; j < colsPerBlock; ++j) {
        Value sum = vector::ReductionOp::create(
            ib, vector::CombiningKind::ADD, kLoop.getResult(i * colsPerBlock + j));
        Value localCol = arith::AddIOp::create(ib, blk.col, cIndex(ib, j));
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
                         depthBlockOf(depth, {512, 256, 128}, lanes),
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
Value packedLinear(IB &b, Value x, Value w, std::optional<double> clip,
                   int64_t lanes, Value init) {
  int64_t rowBlock = lanes >= 16 ? 8 : kRowBlock;
  auto wType = cast<RankedTensorType>(w.getType());
  int64_t n = wType.getDimSize(0), depth = wType.getDimSize(1);
  int64_t chunk = linearChunk(n);
  int64_t width = blockWidth(chunk, lanes >= 16 ? 32 : 16);
  Value clipHi = clip ? splat(b, cF32(b, *clip), kLanes) : Value();
  Value clipLo = clip ? splat(b, cF32(b, -*clip), kLanes) : Value();
  Value packed;
  auto pack = [&](IB &pb, Value col0) {
    packed = transposeKeys(pb, chunk, depth, [&](IB &g, Value c, Value d0) {
      Value v = vecToF32(
          g, readVector(g, w, {arith::AddIOp::create(g, col0, c), d0}, kLanes));
      if (clipHi) {
        v = arith::MaximumFOp::create(g, v, clipLo);
        v = arith::MinimumFOp::create(g, v, clipHi);
      }
      return v;
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

/// `packedMinRows`: rows from which the packed GEMM is used (0: never).
Value buildLinear(IB &b, Value x, Value w, Value bias, std::optional<double> clip,
                  Type outType, int64_t lanes, int64_t packedMinRows) {
  MLIRContext *ctx = b.getContext();
  Value tokens = dim(b, x, 0);
  int64_t n = cast<RankedTensorType>(w.getType()).getDimSize(0);
  int64_t depth = cast<RankedTensorType>(w.getType()).getDimSize(1);
  SmallVector<OpFoldResult> sizes = {tokens,
                                     tensor::getMixedSize(b, b.getLoc(), w, 0)};
  AffineExpr t, nn, k;
  bindDims(ctx, t, nn, k);
  Value acc;
  if (lanes > 0 && !ShapedType::isDynamic(n) && !ShapedType::isDynamic(depth) &&
      depth % lanes == 0 && linearChunk(n) != 0) {
    if (packedMinRows > 0 && linearChunk(n) % kLanes == 0 &&
        depth % kLanes == 0) {
      // Many rows (prefill): packed GEMM on f32 rows; few rows (decode):
      // dot products, bound by reading the weights once.
      // Both kernels fill one destination, so the result stays one buffer.
      Value init = emptyTensor(b, {tokens, b.getIndexAttr(n)}, b.getF32Type());
      Value many = arith::CmpIOp::create(b, arith::CmpIPredicate::sge, tokens,
                                         cIndex(b, packedMinRows));
      auto accType = RankedTensorType::get({ShapedType::kDynamic, n},
                                           b.getF32Type());
      auto ifOp = scf::IfOp::create(
          b, many,
          [&](OpBuilder &tb, Location tl) {
            IB ib(tl, tb);
            Value x32 = x;
            if (!cast<RankedTensorType>(x.getType()).getElementType().isF32()) {
              AffineExpr d0, d1;
              bindDims(ctx, d0, d1);
              x32 = generic(
                  ib, emptyTensor(ib, tensor::getMixedSizes(ib, tl, x), ib.getF32Type()),
                  {x}, {map(ctx, 2, {d0, d1}), map(ctx, 2, {d0, d1})}, iterators(2),
                  [&](OpBuilder &gb, Location gl, ValueRange a) {
                    linalg::YieldOp::create(gb, gl, ValueRange{toF32(gb, gl, a[0])});
                  });
            }
            Value r = packedLinear(ib, x32, w, clip, lanes, init);
            scf::YieldOp::create(ib, ib.createOrFold<tensor::CastOp>(accType, r));
          },
          [&](OpBuilder &eb, Location el) {
            IB ib(el, eb);
            Value r = vectorLinear(ib, x, w, clip, lanes, init);
            scf::YieldOp::create(ib, ib.createOrFold<tensor::CastOp>(accType, r));
          });
      acc = ifOp.getResult(0);
    } else {
      acc = vectorLinear(b, x, w, clip, lanes,
                         emptyTensor(b, {tokens, b.getIndexAttr(n)},
                                     b.getF32Type()));
    }
  } else {
  acc = filled(b, sizes, cF32(b, 0.0));
  Value clipHi = clip ? cF32(b, *clip) : Value();
  Value clipLo = clip ? cF32(b, -*clip) : Value();
  acc = generic(
      b, acc, {x, w},
      {map(ctx, 3, {t, k}), map(ctx, 3, {nn, k}), map(ctx, 3, {t, nn})},
      iterators(2, 1), [&](OpBuilder &ob, Location loc, ValueRange args) {
        Value a = toF32(ob, loc, args[0]);
        Value wv = toF32(ob, loc, args[1]);
        if (clipHi) {
          wv = arith::MaximumFOp::create(ob, loc, wv, clipLo);
          wv = arith::MinimumFOp::create(ob, loc, wv, clipHi);
        }
        Value prod = arith::MulFOp::create(ob, loc, a, wv);
        linalg::YieldOp::create(ob, loc,
                                ValueRange{arith::AddFOp::create(ob, loc, args[2], prod)});
      });
  }
  Type elementType = cast<RankedTensorType>(outType).getElementType();
  if (elementType.isF32() && !bias)
    return acc;
  bindDims(ctx, t, nn);
  SmallVector<Value> inputs = {acc};
  SmallVector<AffineMap> maps = {map(ctx, 2, {t, nn})};
  if (bias) {
    inputs.push_back(bias);
    maps.push_back(map(ctx, 2, {nn}));
  }
  maps.push_back(map(ctx, 2, {t, nn}));
  Value out = emptyTensor(b, sizes, elementType);
  return generic(b, out, inputs, maps, iterators(2),
                 [&](OpBuilder &ob, Location loc, ValueRange args) {
                   Value v = args[0];
                   if (bias)
                     v = arith::AddFOp::create(ob, loc, v,
                                               toF32(ob, loc, args[1]));
                   linalg::YieldOp::create(
                       ob, loc, ValueRange{fromF32(ob, loc, v, elementType)});
                 });
}

std::optional<double> clipValue(std::optional<APFloat> clip) {
  if (!clip)
    return std::nullopt;
  return clip->convertToDouble();
}

struct LowerLinear : OpRewritePattern<LinearOp> {
  LowerLinear(MLIRContext *ctx, int64_t lanes, int64_t packedMinRows)
      : OpRewritePattern(ctx), lanes(lanes), packedMinRows(packedMinRows) {}
  int64_t lanes, packedMinRows;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    IB b(op.getLoc(), rewriter);
    Value out = buildLinear(b, op.getInput(), op.getWeight(), op.getBias(),
                            clipValue(op.getClip()), op.getType(), lanes,
                            packedMinRows);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
};

struct LowerQKVProjection : OpRewritePattern<QKVProjectionOp> {
  LowerQKVProjection(MLIRContext *ctx, int64_t lanes, int64_t packedMinRows)
      : OpRewritePattern(ctx), lanes(lanes), packedMinRows(packedMinRows) {}
  int64_t lanes, packedMinRows;
  LogicalResult matchAndRewrite(QKVProjectionOp op,
                                PatternRewriter &rewriter) const override {
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
                              lanes, packedMinRows);
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
            lanes, packedMinRows));
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

//===----------------------------------------------------------------------===//
// RMS norm
//===----------------------------------------------------------------------===//

/// `input * rsqrt(mean(input^2, last dim) + eps) * gamma` in f32, stored
/// in the input's element type.
Value buildRMSNorm(IB &b, Value input, Value gamma, double epsValue) {
    MLIRContext *ctx = b.getContext();
    auto type = cast<RankedTensorType>(input.getType());
    int64_t rank = type.getRank();
    SmallVector<OpFoldResult> prefix;
    for (int64_t d = 0; d < rank - 1; ++d)
      prefix.push_back(tensor::getMixedSize(b, b.getLoc(), input, d));
    SmallVector<AffineExpr> dims, prefixDims;
    for (int64_t d = 0; d < rank; ++d)
      dims.push_back(getAffineDimExpr(d, ctx));
    prefixDims.assign(dims.begin(), dims.end() - 1);
    AffineMap identity = map(ctx, rank, dims);
    AffineMap prefixMap = map(ctx, rank, prefixDims);
    AffineMap lastMap = map(ctx, rank, {dims.back()});

    Value sumSq = generic(b, filled(b, prefix, cF32(b, 0.0)), {input},
                          {identity, prefixMap}, iterators(rank - 1, 1),
                          [&](OpBuilder &ob, Location loc, ValueRange args) {
                            Value v = toF32(ob, loc, args[0]);
                            Value sq = arith::MulFOp::create(ob, loc, v, v);
                            linalg::YieldOp::create(
                                ob, loc,
                                ValueRange{arith::AddFOp::create(ob, loc, args[1], sq)});
                          });
    Value width = arith::UIToFPOp::create(
        b, b.getF32Type(),
        arith::IndexCastUIOp::create(b, b.getI32Type(), dim(b, input, rank - 1)));
    Value eps = cF32(b, epsValue);
    Type elementType = type.getElementType();
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), input);
    Value out = generic(
        b, emptyTensor(b, sizes, elementType), {input, sumSq, gamma},
        {identity, prefixMap, lastMap, identity}, iterators(rank),
        [&](OpBuilder &ob, Location loc, ValueRange args) {
          Value mean = arith::DivFOp::create(ob, loc, args[1], width);
          Value inv = math::RsqrtOp::create(
              ob, loc, arith::AddFOp::create(ob, loc, mean, eps));
          Value y = arith::MulFOp::create(ob, loc, toF32(ob, loc, args[0]), inv);
          y = arith::MulFOp::create(ob, loc, y, toF32(ob, loc, args[2]));
          linalg::YieldOp::create(ob, loc,
                                  ValueRange{fromF32(ob, loc, y, elementType)});
        });
    return out;
}

struct LowerRMSNorm : OpRewritePattern<RMSNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RMSNormOp op,
                                PatternRewriter &rewriter) const override {
    IB b(op.getLoc(), rewriter);
    Value out = buildRMSNorm(b, op.getInput(), op.getGamma(),
                             op.getEps().convertToDouble());
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

/// Inverse frequencies of a rope as an f64 constant `[D/2]`; LongRoPE gets a
/// second one for positions from `original_max_position` on.
struct InvFreqTables {
  Value base, longFactors;
  int64_t switchPosition = 0;
  double magnitude = 1.0;
};

InvFreqTables buildInvFreqTables(IB &b, RopeAttr rope, int64_t headDim) {
  InvFreqTables tables;
  auto tableAt = [&](int64_t position) {
    SmallVector<float> inv = rope.computeInvFreq(headDim, position);
    SmallVector<double> asF64(inv.begin(), inv.end());
    auto type = RankedTensorType::get({headDim / 2}, b.getF64Type());
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(type, ArrayRef<double>(asF64)));
  };
  tables.base = tableAt(0);
  if (auto longRope = dyn_cast_if_present<LongRopeScalingAttr>(rope.getScaling())) {
    tables.switchPosition = longRope.getOriginalMaxPosition();
    tables.longFactors = tableAt(tables.switchPosition);
  }
  tables.magnitude = rope.getMagnitudeScale();
  return tables;
}

/// cos and sin `[T, D/2]` f32 for every row: from the rope attribute (f64
/// trigonometry, as the semantics compute the table) or gathered from a
/// `[N, D]` table operand (`cos` at even, `sin` at odd columns).
std::pair<Value, Value> buildRowCosSin(IB &b, Value positions, int64_t headDim,
                                       RopeAttr rope, Value table) {
  MLIRContext *ctx = b.getContext();
  Value tokens = dim(b, positions, 0);
  SmallVector<OpFoldResult> sizes = {tokens, b.getIndexAttr(headDim / 2)};
  AffineExpr t, i;
  bindDims(ctx, t, i);
  // Separate destinations: one shared empty would force a copy.
  Value cosInit = emptyTensor(b, sizes, b.getF32Type());
  Value sinInit = emptyTensor(b, sizes, b.getF32Type());
  auto op = linalg::GenericOp::create(
      b, TypeRange{cosInit.getType(), sinInit.getType()}, ValueRange{positions},
      ValueRange{cosInit, sinInit},
      {map(ctx, 2, {t}), map(ctx, 2, {t, i}), map(ctx, 2, {t, i})},
      iterators(2), [&](OpBuilder &ob, Location loc, ValueRange args) {
        IB ib(loc, ob);
        Value col = linalg::IndexOp::create(ib, 1);
        Value cosV, sinV;
        if (table) {
          Value rows = dim(ib, table, 0);
          Value pos = arith::IndexCastOp::create(ib, ib.getIndexType(), args[0]);
          pos = clampIdx(ib, pos, cIndex(ib, 0),
                         arith::SubIOp::create(ib, rows, cIndex(ib, 1)));
          Value even = arith::MulIOp::create(ib, col, cIndex(ib, 2));
          Value odd = arith::AddIOp::create(ib, even, cIndex(ib, 1));
          cosV = tensor::ExtractOp::create(ib, table, ValueRange{pos, even});
          sinV = tensor::ExtractOp::create(ib, table, ValueRange{pos, odd});
        } else {
          InvFreqTables tables = buildInvFreqTables(ib, rope, headDim);
          Value invFreq = tensor::ExtractOp::create(ib, tables.base, col);
          if (tables.longFactors) {
            Value longInv = tensor::ExtractOp::create(ib, tables.longFactors, col);
            Value switchPos = arith::ConstantOp::create(
                ib, ib.getI32IntegerAttr(tables.switchPosition));
            Value isLong = arith::CmpIOp::create(
                ib, arith::CmpIPredicate::sge, args[0], switchPos);
            invFreq = arith::SelectOp::create(ib, isLong, longInv, invFreq);
          }
          Value pos = arith::SIToFPOp::create(ib, ib.getF64Type(), args[0]);
          Value angle = arith::MulFOp::create(ib, pos, invFreq);
          Value m = arith::ConstantOp::create(ib, ib.getF64FloatAttr(tables.magnitude));
          cosV = arith::MulFOp::create(ib, m, math::CosOp::create(ib, angle));
          sinV = arith::MulFOp::create(ib, m, math::SinOp::create(ib, angle));
          cosV = arith::TruncFOp::create(ib, ib.getF32Type(), cosV);
          sinV = arith::TruncFOp::create(ib, ib.getF32Type(), sinV);
        }
        linalg::YieldOp::create(ib, ValueRange{cosV, sinV});
      });
  return {op.getResult(0), op.getResult(1)};
}

/// cos and sin `[T, D/2]` of the rows of a `[T, ...]` input: recomputed from
/// the rope attribute when `freqs` is an `attn.rope_freqs`, else gathered.
std::pair<Value, Value> ropeCosSin(IB &b, Value freqs, Value rowOffsets,
                                   Value cacheLengths, Value tokens,
                                   int64_t headDim) {
  Value positions = rowPositions(b, rowOffsets, cacheLengths, tokens);
  // A table made by attn.rope_freqs is recomputed per row instead of read.
  RopeAttr rope;
  Value table = freqs;
  if (auto op = table.getDefiningOp<RopeFreqsOp>()) {
    rope = op.getRope();
    table = Value();
  }
  return buildRowCosSin(b, positions, headDim, rope, table);
}

/// Element `col` of head `head` of row `row` of `src` ([T, H, D]) rotated:
/// `x` is that element, `cosV` / `sinV` the f32 angle of its pair.
Value rotateElement(IB &ib, Value src, Value row, Value head, Value col,
                    Value x, Value cosV, Value sinV, bool interleaved,
                    int64_t half, Type elementType) {
  // Partner of `col` in its pair and whether `col` comes first.
  Value partner, first;
  if (interleaved) {
    Value parity = arith::RemUIOp::create(ib, col, cIndex(ib, 2));
    first = arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, parity,
                                  cIndex(ib, 0));
    partner = arith::XOrIOp::create(ib, col, cIndex(ib, 1));
  } else {
    first = arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, col,
                                  cIndex(ib, half));
    partner = arith::SelectOp::create(
        ib, first, arith::AddIOp::create(ib, col, cIndex(ib, half)),
        arith::SubIOp::create(ib, col, cIndex(ib, half)));
  }
  Value other =
      tensor::ExtractOp::create(ib, src, ValueRange{row, head, partner});
  Location loc = ib.getLoc();
  Value xf = toF32(ib, loc, x);
  Value xp = toF32(ib, loc, other);
  Value xc = arith::MulFOp::create(ib, xf, cosV);
  Value xs = arith::MulFOp::create(ib, xp, sinV);
  Value y = arith::SelectOp::create(ib, first,
                                    arith::SubFOp::create(ib, xc, xs),
                                    arith::AddFOp::create(ib, xc, xs));
  return fromF32(ib, loc, y, elementType);
}

/// RoPE of `input [T, H, D]` with per-row cos/sin `[T, D/2]`.
Value buildRope(IB &b, Value input, Value cosT, Value sinT, bool interleaved) {
  MLIRContext *ctx = b.getContext();
  auto type = cast<RankedTensorType>(input.getType());
  int64_t headDim = type.getDimSize(2), half = headDim / 2;
  AffineExpr t, h, d;
  bindDims(ctx, t, h, d);
  AffineExpr pair = interleaved ? d.floorDiv(2) : d % half;
  Type elementType = type.getElementType();
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), input);
  return generic(
      b, emptyTensor(b, sizes, elementType), {input, cosT, sinT},
      {map(ctx, 3, {t, h, d}), map(ctx, 3, {t, pair}), map(ctx, 3, {t, pair}),
       map(ctx, 3, {t, h, d})},
      iterators(3), [&](OpBuilder &ob, Location loc, ValueRange args) {
        IB ib(loc, ob);
        Value row = linalg::IndexOp::create(ib, 0);
        Value head = linalg::IndexOp::create(ib, 1);
        Value col = linalg::IndexOp::create(ib, 2);
        Value y = rotateElement(ib, input, row, head, col, args[0], args[1],
                                args[2], interleaved, half, elementType);
        linalg::YieldOp::create(ib, ValueRange{y});
      });
}

struct LowerRope : OpRewritePattern<RopeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeOp op,
                                PatternRewriter &rewriter) const override {
    IB b(op.getLoc(), rewriter);
    Value input = op.getInput();
    int64_t headDim = op.getInput().getType().getDimSize(2);
    auto [cosT, sinT] = ropeCosSin(b, op.getFreqs(), op.getRowOffsets(),
                                   op.getCacheLengths(), dim(b, input, 0),
                                   headDim);
    Value out = buildRope(b, input, cosT, sinT, op.getInterleaved());
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
};

struct LowerRopeFreqs : OpRewritePattern<RopeFreqsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeFreqsOp op,
                                PatternRewriter &rewriter) const override {
    // Only tables that something other than attn.rope reads need building.
    if (llvm::all_of(op->getUsers(), [&](Operation *user) {
          if (auto store = dyn_cast<RopeStoreOp>(user))
            return store.getFreqs() == op.getResult();
          return isa<RopeOp>(user);
        }))
      return failure();
    IB b(op.getLoc(), rewriter);
    MLIRContext *ctx = b.getContext();
    auto type = op.getType();
    int64_t positions = type.getDimSize(0), headDim = type.getDimSize(1);
    // Positions 0..N-1 as a row vector, then cos/sin per (p, i), interleaved.
    Value posInit = emptyTensor(b, {b.getIndexAttr(positions)}, b.getI32Type());
    AffineExpr p, i;
    bindDims(ctx, p, i);
    Value pos = generic(b, posInit, {}, {map(ctx, 1, {p})}, iterators(1),
                        [&](OpBuilder &ob, Location loc, ValueRange) {
                          Value idx = linalg::IndexOp::create(ob, loc, 0);
                          linalg::YieldOp::create(
                              ob, loc,
                              ValueRange{arith::IndexCastOp::create(
                                  ob, loc, ob.getI32Type(), idx)});
                        });
    auto [cosT, sinT] = buildRowCosSin(b, pos, headDim, op.getRope(), Value());
    Value out = generic(
        b, emptyTensor(b, {b.getIndexAttr(positions), b.getIndexAttr(headDim)},
                       b.getF32Type()),
        {cosT, sinT},
        {map(ctx, 2, {p, i.floorDiv(2)}), map(ctx, 2, {p, i.floorDiv(2)}),
         map(ctx, 2, {p, i})},
        iterators(2), [&](OpBuilder &ob, Location loc, ValueRange args) {
          IB ib(loc, ob);
          Value col = linalg::IndexOp::create(ib, 1);
          Value parity = arith::RemUIOp::create(ib, col, cIndex(ib, 2));
          Value even = arith::CmpIOp::create(ib, arith::CmpIPredicate::eq,
                                             parity, cIndex(ib, 0));
          linalg::YieldOp::create(
              ib, ValueRange{arith::SelectOp::create(ib, even, args[0], args[1])});
        });
    rewriter.replaceOp(op, out);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// KV cache store
//===----------------------------------------------------------------------===//

/// RoPE applied to the keys on their way into the cache (attn.rope_store).
struct KeyRotation {
  Value cosT, sinT; // [T, D/2] f32
  bool interleaved = false;
  Value gamma;      // [D]: RMS-normalise each head first (qk norm), or null
  double eps = 0.0;
};

/// Row `row` of `key [T, Hkv, D]` rotated and written into the cache slot
/// `blocks[page, 0, layer, slot]` with vector ops: per head one read, the
/// pair partner and the expanded cos / signed sin by static shuffles, one
/// multiply-add and one write into the blocks tensor (in place after
/// bufferisation, no temporary row).
Value storeRotatedKeyRow(IB &b, Value key, Value row, Value blocks,
                         Value page, int64_t layer, Value slot,
                         const KeyRotation &rotation) {
  auto type = cast<RankedTensorType>(key.getType());
  int64_t kvHeads = type.getDimSize(1), headDim = type.getDimSize(2);
  int64_t half = headDim / 2;
  Type elementType = type.getElementType();
  SmallVector<int64_t> partnerMask, expandMask, signMask;
  for (int64_t c = 0; c < headDim; ++c) {
    bool first = rotation.interleaved ? c % 2 == 0 : c < half;
    int64_t pair = rotation.interleaved ? c / 2 : c % half;
    partnerMask.push_back(rotation.interleaved ? (c ^ 1)
                                               : (first ? c + half : c - half));
    expandMask.push_back(pair);
    // Into (sin, -sin): the first of a pair takes -sin.
    signMask.push_back(first ? half + pair : pair);
  }
  Value zero = cIndex(b, 0);
  Value gammaV;
  if (rotation.gamma)
    gammaV = vecToF32(b, readVector(b, rotation.gamma, {zero}, headDim));
  Value cosH = readVector(b, rotation.cosT, {row, zero}, half);
  Value sinH = readVector(b, rotation.sinT, {row, zero}, half);
  Value cosV = vector::ShuffleOp::create(b, cosH, cosH, expandMask);
  Value negSin = arith::NegFOp::create(b, sinH);
  Value sinV = vector::ShuffleOp::create(b, sinH, negSin, signMask);
  auto loop = scf::ForOp::create(
      b, zero, cIndex(b, kvHeads), cIndex(b, 1), ValueRange{blocks},
      [&](OpBuilder &ob, Location loc, Value head, ValueRange args) {
        IB ib(loc, ob);
        Value x = vecToF32(ib, readVector(ib, key, {row, head, cIndex(ib, 0)},
                                          headDim));
        if (gammaV) {
          // x * rsqrt(mean(x^2) + eps) * gamma, in registers.
          Value sq = arith::MulFOp::create(ib, x, x);
          Value sum = vector::ReductionOp::create(ib, vector::CombiningKind::ADD, sq);
          Value mean = arith::MulFOp::create(ib, sum, cF32(ib, 1.0 / headDim));
          Value inv = math::RsqrtOp::create(
              ib, arith::AddFOp::create(ib, mean, cF32(ib, rotation.eps)));
          x = arith::MulFOp::create(
              ib, arith::MulFOp::create(ib, x, splat(ib, inv, headDim)), gammaV);
        }
        Value partner = vector::ShuffleOp::create(ib, x, x, partnerMask);
        Value y = arith::MulFOp::create(ib, x, cosV);
        y = math::FmaOp::create(ib, partner, sinV, y);
        if (!elementType.isF32())
          y = arith::TruncFOp::create(
              ib, vecType(elementType, {headDim}), y);
        Value written = writeVector(
            ib, y, args[0],
            {page, cIndex(ib, 0), cIndex(ib, layer), slot, head, cIndex(ib, 0)});
        scf::YieldOp::create(ib, written);
      });
  return loop.getResult(0);
}

/// The cache writes of attn.kv_cache_store into `blocks` (the result is the
/// updated blocks, written in place after bufferisation). With `rotation`,
/// each key row is rotated straight into its cache slot: a generic whose
/// destination is the slot's slice, so no rotated-key tensor exists.
Value buildCacheStore(IB &b, Value key, Value value, Value rowOffsets,
                      Value lengths, Value lookup, Value blocks, int64_t layer,
                      const KeyRotation *rotation) {
    auto blocksType = cast<RankedTensorType>(blocks.getType());
    auto keyType = cast<RankedTensorType>(key.getType());
    int64_t kvHeads = keyType.getDimSize(1), headDim = keyType.getDimSize(2);
    auto rowType = RankedTensorType::get({kvHeads, headDim},
                                         blocksType.getElementType());
    // A page size of 0 (possible only with a dynamic size) stores nothing.
    Value pageSizeRaw = dim(b, blocks, 3);
    Value hasPages = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt,
                                           pageSizeRaw, cIndex(b, 0));
    Value pageSize = maxIdx(b, pageSizeRaw, cIndex(b, 1));
    Value zero = cIndex(b, 0), one = cIndex(b, 1);
    Value tokens = dim(b, key, 0);
    Value numPages = dim(b, blocks, 0);
    Value batch = dim(b, lengths, 0);
    Value maxPages = dim(b, lookup, 1);
    auto outer = scf::ForOp::create(
        b, zero, batch, one, ValueRange{blocks},
        [&](OpBuilder &ob, Location loc, Value seq, ValueRange args) {
          IB ib(loc, ob);
          auto [start, end] = sequenceRows(ib, rowOffsets, seq, tokens);
          Value base = arith::SubIOp::create(ib, loadIndex(ib, lengths, {seq}), start);
          auto inner = scf::ForOp::create(
              ib, start, end, one, ValueRange{args[0]},
              [&](OpBuilder &ob2, Location loc2, Value row, ValueRange args2) {
                IB ib2(loc2, ob2);
                Value pos = arith::AddIOp::create(ib2, base, row);
                Value pageIdx = arith::DivSIOp::create(ib2, pos, pageSize);
                Value slot = arith::RemSIOp::create(ib2, pos, pageSize);
                // Rows whose page is not in the table or not a real page are
                // dropped rather than written out of bounds.
                Value inTable = arith::AndIOp::create(
                    ib2, hasPages,
                    arith::CmpIOp::create(ib2, arith::CmpIPredicate::sge, pos, zero));
                inTable = arith::AndIOp::create(
                    ib2, inTable,
                    arith::CmpIOp::create(ib2, arith::CmpIPredicate::slt, pageIdx,
                                          maxPages));
                Value safeIdx = clampIdx(ib2, pageIdx, zero,
                                         arith::SubIOp::create(ib2, maxPages, one));
                Value page = loadIndex(ib2, lookup, {seq, safeIdx});
                Value valid = arith::AndIOp::create(
                    ib2, inTable,
                    arith::AndIOp::create(
                        ib2,
                        arith::CmpIOp::create(ib2, arith::CmpIPredicate::sge, page, zero),
                        arith::CmpIOp::create(ib2, arith::CmpIPredicate::slt, page,
                                              numPages)));
                auto ifOp = scf::IfOp::create(
                    ib2, valid,
                    [&](OpBuilder &tb, Location tl) {
                      IB tib(tl, tb);
                      Value updated = args2[0];
                      SmallVector<Value> sources = {key, value};
                      for (auto [kv, source] : llvm::enumerate(sources)) {
                        if (kv == 0 && rotation) {
                          updated = storeRotatedKeyRow(tib, source, row, updated,
                                                       page, layer, slot,
                                                       *rotation);
                          continue;
                        }
                        SmallVector<OpFoldResult> dstOffsets = {
                            page,
                            tib.getIndexAttr(kv),
                            tib.getIndexAttr(layer),
                            slot,
                            tib.getIndexAttr(0),
                            tib.getIndexAttr(0)};
                        SmallVector<OpFoldResult> dstSizes = {
                            tib.getIndexAttr(1), tib.getIndexAttr(1),
                            tib.getIndexAttr(1), tib.getIndexAttr(1),
                            tib.getIndexAttr(kvHeads), tib.getIndexAttr(headDim)};
                        SmallVector<OpFoldResult> dstStrides(6, tib.getIndexAttr(1));
                        SmallVector<OpFoldResult> srcOffsets = {
                            row, tib.getIndexAttr(0), tib.getIndexAttr(0)};
                        SmallVector<OpFoldResult> srcSizes = {
                            tib.getIndexAttr(1), tib.getIndexAttr(kvHeads),
                            tib.getIndexAttr(headDim)};
                        SmallVector<OpFoldResult> unit(3, tib.getIndexAttr(1));
                        Value rowSlice = tensor::ExtractSliceOp::create(
                            tib, rowType, source, srcOffsets, srcSizes, unit);
                        updated = tensor::InsertSliceOp::create(
                            tib, rowSlice, updated, dstOffsets, dstSizes, dstStrides);
                      }
                      scf::YieldOp::create(tib, updated);
                    },
                    [&](OpBuilder &eb, Location el) {
                      scf::YieldOp::create(eb, el, args2[0]);
                    });
                scf::YieldOp::create(ib2, ifOp.getResult(0));
              });
          scf::YieldOp::create(ib, inner.getResult(0));
        });
    return outer.getResult(0);
}

struct LowerKVCacheStore : OpRewritePattern<KVCacheStoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(KVCacheStoreOp op,
                                PatternRewriter &rewriter) const override {
    auto keyType = op.getKey().getType();
    if (ShapedType::isDynamic(keyType.getDimSize(1)) ||
        ShapedType::isDynamic(keyType.getDimSize(2)))
      return rewriter.notifyMatchFailure(op, "needs static kv heads and head dim");
    IB b(op.getLoc(), rewriter);
    Value out = buildCacheStore(b, op.getKey(), op.getValue(),
                                op.getRowOffsets(), op.getCacheLengths(),
                                op.getLookupTable(), op.getBlocks(),
                                op.getLayer(), nullptr);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Fused RoPE + cache store
//===----------------------------------------------------------------------===//

/// attn.rms_norm (optional) + attn.rope of q and k + attn.kv_cache_store:
/// the q path is norm + rope as apart; each k head is normalised (when
/// asked) and rotated in registers and written straight into its cache slot
/// by the store loop. One cos/sin computation serves q and k.
struct LowerRopeStore : OpRewritePattern<RopeStoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeStoreOp op,
                                PatternRewriter &rewriter) const override {
    auto kType = op.getK().getType();
    if (ShapedType::isDynamic(kType.getDimSize(1)))
      return rewriter.notifyMatchFailure(op, "needs static kv heads");
    IB b(op.getLoc(), rewriter);
    Value q = op.getQ(), k = op.getK();
    double eps = op.hasQKNorm() ? op.getEps()->convertToDouble() : 0.0;
    if (op.hasQKNorm())
      q = buildRMSNorm(b, q, op.getGammaQ(), eps);
    int64_t headDim = kType.getDimSize(2);
    auto [cosT, sinT] = ropeCosSin(b, op.getFreqs(), op.getRowOffsets(),
                                   op.getCacheLengths(), dim(b, q, 0), headDim);
    Value qr = buildRope(b, q, cosT, sinT, op.getInterleaved());
    // k rows index the same cos/sin rows (same row count, verified).
    // k is normalised in registers on its way into the cache.
    KeyRotation rotation{cosT, sinT, op.getInterleaved(),
                         op.hasQKNorm() ? op.getGammaK() : Value(), eps};
    Value blocks = buildCacheStore(b, k, op.getV(), op.getRowOffsets(),
                                   op.getCacheLengths(), op.getLookupTable(),
                                   op.getBlocks(), op.getLayer(), &rotation);
    rewriter.replaceOp(
        op, {b.createOrFold<tensor::CastOp>(op.getQResult().getType(), qr),
             b.createOrFold<tensor::CastOp>(op.getResult().getType(), blocks)});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Flash attention
//===----------------------------------------------------------------------===//

/// Where the keys and values of one sequence come from.
struct KVSource {
  int64_t tileSize;
  /// Emits the `[tileSize, D]` f32 tile `tile` of keys (`kv` = 0) or values
  /// (`kv` = 1) of kv head `kvHead`; rows at or after `kvLen` read as 0.
  std::function<Value(IB &, Value tile, int64_t kv, Value kvHead, Value kvLen)>
      loadTile;
  /// Vector path: values `[tileSize, D]` f32 with rows >= kvLen zeroed.
  std::function<Value(IB &, Value tile, Value kvHead, Value kvLen)> loadValues;
  /// Vector path: `width` f32 values of key (`kv` = 0) or value (1) row `c`
  /// of a tile from column `d0`, read in place; `tileBase` is what
  /// `prepareTile` returned for the tile. Rows past the source are clamped.
  std::function<Value(IB &, Value tile)> prepareTile;
  std::function<Value(IB &, Value tileBase, int64_t kv, Value kvHead, Value c,
                      Value d0, int64_t width)>
      readRow;
};


//===----------------------------------------------------------------------===//
// Vector tile kernels (CPU)
//
// Register-blocked kernels for the two contractions of a flash-attention
// tile, written directly in the vector dialect: 4 rows x 8/16 columns of f32
// accumulators, the row operand broadcast from memory, the column operand a
// contiguous vector (keys are transposed once per tile for that). They need
// D and the key tile to be multiples of 8 (the AVX2 f32 width).
//===----------------------------------------------------------------------===//

/// `V [tile, D]` f32: row `c` is `readRow(c)` when `c < valid`, else 0.
Value loadValueRows(IB &b, int64_t tile, int64_t headDim, Value valid,
                    function_ref<Value(IB &, Value)> readRow) {
  Value init = emptyTensor(b, {b.getIndexAttr(tile), b.getIndexAttr(headDim)},
                           b.getF32Type());
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(b.getF32Type(), {headDim}), 0.0f));
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), cIndex(b, tile), cIndex(b, 1), ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value c, ValueRange args) {
        IB ib(loc, ob);
        Value row = vecToF32(ib, readRow(ib, c));
        Value inRange = arith::CmpIOp::create(ib, arith::CmpIPredicate::slt, c, valid);
        row = arith::SelectOp::create(ib, inRange, row, zeros);
        scf::YieldOp::create(ib, writeVector(ib, row, args[0], {c, cIndex(ib, 0)}));
      });
  return loop.getResult(0);
}

/// Loops `r0` over row blocks and `col0` over column blocks of `init`
/// ([rows, cols]), calling `body` for each 4 x `width` block.
Value forBlocks(IB &b, Value init, int64_t rows, int64_t cols, int64_t width,
                int64_t rowBlock,
                function_ref<Value(IB &, Value r0, Value col0, Value acc)> body) {
  auto outer = scf::ForOp::create(
      b, cIndex(b, 0), cIndex(b, rows), cIndex(b, rowBlock), ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value r0, ValueRange args) {
        IB ib(loc, ob);
        auto inner = scf::ForOp::create(
            ib, cIndex(ib, 0), cIndex(ib, cols), cIndex(ib, width),
            ValueRange{args[0]},
            [&](OpBuilder &ob2, Location loc2, Value col0, ValueRange args2) {
              IB i2(loc2, ob2);
              scf::YieldOp::create(i2, body(i2, r0, col0, args2[0]));
            });
        scf::YieldOp::create(ib, inner.getResult(0));
      });
  return outer.getResult(0);
}

/// Panel `index` (`[a, b]`) of `[n, a, b]` packed panels.
Value panelOf(IB &b, Value panels, Value index) {
  auto type = cast<RankedTensorType>(panels.getType());
  auto panelType = RankedTensorType::get(type.getShape().drop_front(),
                                         type.getElementType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  offsets[0] = index;
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1)};
  for (int64_t size : panelType.getShape())
    sizes.push_back(b.getIndexAttr(size));
  SmallVector<OpFoldResult> unit(type.getRank(), b.getIndexAttr(1));
  return tensor::ExtractSliceOp::create(b, panelType, panels, offsets, sizes, unit);
}

/// `[C / W, R, W]` panels of the columns of `src [R, C]` f32: each register
/// block then reads one contiguous panel, which the prefetchers follow.
Value packColumns(IB &b, Value src, int64_t width) {
  auto type = cast<RankedTensorType>(src.getType());
  int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
  Value init = emptyTensor(b, {b.getIndexAttr(cols / width), b.getIndexAttr(rows),
                               b.getIndexAttr(width)},
                           b.getF32Type());
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), cIndex(b, rows), cIndex(b, 1), ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value r, ValueRange state) {
        IB ib(loc, ob);
        Value out = state[0];
        for (int64_t c0 = 0; c0 < cols; c0 += width)
          out = writeVector(ib, readVector(ib, src, {r, cIndex(ib, c0)}, width), out,
                            {cIndex(ib, c0 / width), r, cIndex(ib, 0)});
        scf::YieldOp::create(ib, out);
      });
  return loop.getResult(0);
}

/// The tile-local keys `[begin, end)` that rows r0 .. r0 + rowBlock - 1 of a
/// query tile can see (null: all of them).
using BlockKeysFn = function_ref<std::pair<Value, Value>(IB &, Value r0)>;

/// s = q k^T for a [rows, D] q tile and transposed keys packed as
/// `[tile / W, D, W]` panels (W = the register block's width). Column blocks
/// no row of a register block can see are left at 0 (the mask drops them).
Value vectorScores(IB &b, Value q, Value keyPanels, int64_t rows, int64_t tile,
                   int64_t headDim, int64_t rowBlock, BlockKeysFn blockKeys) {
  int64_t width = cast<RankedTensorType>(keyPanels.getType()).getDimSize(2);
  Value init = emptyTensor(b, {b.getIndexAttr(rows), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(b.getF32Type(), {width}), 0.0f));
  return forBlocks(b, init, rows, tile, width, rowBlock,
                   [&](IB &ib, Value r0, Value c0, Value acc) {
                     SmallVector<Value> start(rowBlock, zeros);
                     auto [begin, end] = blockKeys(ib, r0);
                     Value seen = arith::AndIOp::create(
                         ib,
                         arith::CmpIOp::create(ib, arith::CmpIPredicate::slt, c0, end),
                         arith::CmpIOp::create(
                             ib, arith::CmpIPredicate::sgt,
                             arith::AddIOp::create(ib, c0, cIndex(ib, width)), begin));
                     auto ifOp = scf::IfOp::create(
                         ib, seen,
                         [&](OpBuilder &tb, Location tl) {
                           IB t(tl, tb);
                           Value panel = panelOf(
                               t, keyPanels,
                               arith::DivUIOp::create(t, c0, cIndex(t, width)));
                           scf::YieldOp::create(
                               t, outerProducts(t, q, panel, blockRows(t, r0, rowBlock),
                                                cIndex(t, 0), headDim, width, start));
                         },
                         [&](OpBuilder &eb, Location el) {
                           scf::YieldOp::create(eb, el, start);
                         });
                     SmallVector<Value> sums(ifOp.getResults());
                     for (int64_t i = 0; i < rowBlock; ++i)
                       acc = writeVector(
                           ib, sums[i], acc,
                           {arith::AddIOp::create(ib, r0, cIndex(ib, i)), c0});
                     return acc;
                   });
}

/// s = q k^T for few query rows (decode): dot products of each key row, read
/// in place, with every query row; 4 keys per step keep several cache rows in
/// flight. Keys past the sequence are never read (their scores are masked
/// later); a tail step repeats the last key and rewrites the same scores.
Value vectorScoresDot(IB &b, Value q, int64_t rows, int64_t tile,
                      int64_t headDim, Value validKeys,
                      function_ref<Value(IB &, Value c, Value d0,
                                         int64_t width)> keyRow) {
  constexpr int64_t keysPerStep = 4;
  int64_t width = headDim % 16 == 0 ? 16 : kLanes;
  Value init = emptyTensor(b, {b.getIndexAttr(rows), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(b.getF32Type(), {width}), 0.0f));
  Value lastKey = arith::SubIOp::create(b, validKeys, cIndex(b, 1));
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), validKeys, cIndex(b, keysPerStep), ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value c0, ValueRange state) {
        IB ib(loc, ob);
        SmallVector<Value> keys;
        for (int64_t j = 0; j < keysPerStep; ++j)
          keys.push_back(minIdx(ib, arith::AddIOp::create(ib, c0, cIndex(ib, j)),
                                lastKey));
        SmallVector<Value> start(rows * keysPerStep, zeros);
        auto dLoop = scf::ForOp::create(
            ib, cIndex(ib, 0), cIndex(ib, headDim), cIndex(ib, width), start,
            [&](OpBuilder &ob2, Location loc2, Value d0, ValueRange acc) {
              IB i2(loc2, ob2);
              SmallVector<Value> ks, qs;
              for (Value key : keys)
                ks.push_back(keyRow(i2, key, d0, width));
              for (int64_t r = 0; r < rows; ++r)
                qs.push_back(readVector(i2, q, {cIndex(i2, r), d0}, width));
              SmallVector<Value> next;
              for (int64_t j = 0; j < keysPerStep; ++j)
                for (int64_t r = 0; r < rows; ++r)
                  next.push_back(vector::FMAOp::create(i2, qs[r], ks[j],
                                                       acc[j * rows + r]));
              scf::YieldOp::create(i2, next);
            });
        Value out = state[0];
        for (int64_t j = 0; j < keysPerStep; ++j)
          for (int64_t r = 0; r < rows; ++r) {
            Value sum = vector::ReductionOp::create(
                ib, vector::CombiningKind::ADD, dLoop.getResult(j * rows + r));
            out = tensor::InsertOp::create(ib, sum, out,
                                           ValueRange{cIndex(ib, r), keys[j]});
          }
        scf::YieldOp::create(ib, out);
      });
  return loop.getResult(0);
}

/// acc' = alpha * acc + p v for [rows, tile] probabilities and values
/// `[tile, D]` or packed as `[D / W, tile, W]` panels; with `blockKeys`, each
/// register block runs over the keys its rows can see only.
Value vectorAccumulate(IB &b, Value acc, Value alpha, Value probs, Value values,
                       int64_t rows, int64_t tile, int64_t headDim,
                       int64_t rowBlock, int64_t maxWidth,
                       BlockKeysFn blockKeys = nullptr) {
  auto valuesType = cast<RankedTensorType>(values.getType());
  bool packed = valuesType.getRank() == 3;
  int64_t width = packed ? valuesType.getDimSize(2) : blockWidth(headDim, maxWidth);
  return forBlocks(b, acc, rows, headDim, width, rowBlock,
                   [&](IB &ib, Value r0, Value d0, Value out) {
                     SmallVector<Value> start;
                     for (int64_t i = 0; i < rowBlock; ++i) {
                       Value row = arith::AddIOp::create(ib, r0, cIndex(ib, i));
                       Value a = tensor::ExtractOp::create(ib, alpha, row);
                       start.push_back(arith::MulFOp::create(
                           ib, readVector(ib, out, {row, d0}, width),
                           splat(ib, a, width)));
                     }
                     Value rhs = values, col = d0;
                     if (packed) {
                       rhs = panelOf(ib, values,
                                     arith::DivUIOp::create(ib, d0, cIndex(ib, width)));
                       col = cIndex(ib, 0);
                     }
                     Value begin, end;
                     if (blockKeys)
                       std::tie(begin, end) = blockKeys(ib, r0);
                     SmallVector<Value> sums = outerProducts(
                         ib, probs, rhs, blockRows(ib, r0, rowBlock), col, tile,
                         width, start, begin, end);
                     for (int64_t i = 0; i < rowBlock; ++i)
                       out = writeVector(
                           ib, sums[i], out,
                           {arith::AddIOp::create(ib, r0, cIndex(ib, i)), d0});
                     return out;
                   });
}

/// Online-softmax step per row: masks scores, updates the running max `m`
/// and sum `l`, and returns (p, m', l', alpha). Row `r` sees the tile's keys
/// `[lo, hi)` of `visibleRange(r)` (tile-local, clamped to [0, tile]), so the
/// mask is one i32 compare per lane.
std::array<Value, 4> vectorSoftmaxStep(
    IB &b, Value scores, Value m, Value l, int64_t rows, int64_t tile,
    function_ref<std::pair<Value, Value>(IB &, Value row)> visibleRange) {
  Type f32 = b.getF32Type();
  Value probsInit = emptyTensor(b, {b.getIndexAttr(rows), b.getIndexAttr(tile)}, f32);
  Value mInit = emptyTensor(b, {b.getIndexAttr(rows)}, f32);
  Value lInit = emptyTensor(b, {b.getIndexAttr(rows)}, f32);
  Value alphaInit = emptyTensor(b, {b.getIndexAttr(rows)}, f32);
  Value negInf = cNegInfF32(b);
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), cIndex(b, rows), cIndex(b, 1),
      ValueRange{probsInit, mInit, lInit, alphaInit},
      [&](OpBuilder &ob, Location loc, Value r, ValueRange state) {
        IB ib(loc, ob);
        auto i32 = ib.getI32Type();
        SmallVector<int32_t> iota(tile);
        std::iota(iota.begin(), iota.end(), 0);
        Value keys = arith::ConstantOp::create(
            ib, DenseElementsAttr::get(vecType(i32, {tile}), ArrayRef<int32_t>(iota)));
        auto [lo, hi] = visibleRange(ib, r);
        auto limit = [&](Value v) {
          return splat(ib, arith::IndexCastOp::create(ib, i32, v), tile);
        };
        Value visible = arith::AndIOp::create(
            ib, arith::CmpIOp::create(ib, arith::CmpIPredicate::sge, keys, limit(lo)),
            arith::CmpIOp::create(ib, arith::CmpIPredicate::slt, keys, limit(hi)));
        Value s = readVector(ib, scores, {r, cIndex(ib, 0)}, tile);
        s = arith::SelectOp::create(ib, visible, s, splat(ib, negInf, tile));
        Value tileMax = vector::ReductionOp::create(
            ib, vector::CombiningKind::MAXIMUMF, s);
        Value mOld = tensor::ExtractOp::create(ib, m, r);
        Value mNew = arith::MaximumFOp::create(ib, mOld, tileMax);
        Value none = arith::CmpFOp::create(ib, arith::CmpFPredicate::OEQ, mNew, negInf);
        Value alpha = arith::SelectOp::create(
            ib, none, cF32(ib, 1.0),
            math::ExpOp::create(ib, arith::SubFOp::create(ib, mOld, mNew)));
        Value p = math::ExpOp::create(
            ib, arith::SubFOp::create(ib, s, splat(ib, mNew, tile)));
        Value zeros = arith::ConstantOp::create(
            ib, DenseElementsAttr::get(vecType(f32, {tile}), 0.0f));
        p = arith::SelectOp::create(ib, none, zeros, p);
        Value sum = vector::ReductionOp::create(ib, vector::CombiningKind::ADD, p);
        Value lOld = tensor::ExtractOp::create(ib, l, r);
        Value lNew = arith::AddFOp::create(
            ib, arith::MulFOp::create(ib, lOld, alpha), sum);
        Value probs = writeVector(ib, p, state[0], {r, cIndex(ib, 0)});
        scf::YieldOp::create(
            ib, ValueRange{probs, tensor::InsertOp::create(ib, mNew, state[1], r),
                           tensor::InsertOp::create(ib, lNew, state[2], r),
                           tensor::InsertOp::create(ib, alpha, state[3], r)});
      });
  return {loop.getResult(0), loop.getResult(1), loop.getResult(2),
          loop.getResult(3)};
}

struct AttentionParams {
  int64_t numHeads, kvHeads, headDim, queryTileRows, vectorLanes;
  MaskAttr mask;
  double scale;
  Type elementType;
};

bool useVectorPath(const AttentionParams &p, const KVSource &kv) {
  return kv.readRow && p.headDim % kLanes == 0 && kv.tileSize % kLanes == 0;
}

/// The key tiles of one (sequence, kv head) that any query row can see,
/// transposed and packed (`[n, tile / W, D, W]`), and its value tiles, packed
/// (`[n, D / W, tile, W]`), f32 with rows past `kvLen` zero in the values;
/// returns them and the index of the first tile (keys before a sliding
/// window's reach are skipped). W is the register block's width.
std::tuple<Value, Value, Value>
prepareKeyValueTiles(IB &b, const KVSource &kv, int64_t headDim, Value kvHead,
                     Value kvLen, Value posBase, int64_t window,
                     int64_t maxWidth) {
  int64_t tile = kv.tileSize;
  Value zero = cIndex(b, 0);
  Value lo = zero;
  if (window > 0)
    lo = arith::DivSIOp::create(
        b, maxIdx(b, arith::SubIOp::create(b, posBase, cIndex(b, window - 1)), zero),
        cIndex(b, tile));
  Value hi = maxIdx(b, ceilDiv(b, kvLen, tile), lo);
  Value count = arith::SubIOp::create(b, hi, lo);
  Type f32 = b.getF32Type();
  int64_t keyWidth = blockWidth(tile, maxWidth);
  int64_t valueWidth = blockWidth(headDim, maxWidth);
  Value keysInit = emptyTensor(
      b, {count, b.getIndexAttr(tile / keyWidth), b.getIndexAttr(headDim),
          b.getIndexAttr(keyWidth)},
      f32);
  Value valuesInit = emptyTensor(
      b, {count, b.getIndexAttr(headDim / valueWidth), b.getIndexAttr(tile),
          b.getIndexAttr(valueWidth)},
      f32);
  auto insertTile = [](IB &ib, Value t, Value into, Value slot) -> Value {
    auto type = cast<RankedTensorType>(t.getType());
    SmallVector<OpFoldResult> offsets(4, ib.getIndexAttr(0));
    offsets[0] = slot;
    SmallVector<OpFoldResult> sizes = {ib.getIndexAttr(1)};
    for (int64_t size : type.getShape())
      sizes.push_back(ib.getIndexAttr(size));
    SmallVector<OpFoldResult> unit(4, ib.getIndexAttr(1));
    return tensor::InsertSliceOp::create(ib, t, into, offsets, sizes, unit);
  };
  auto loop = scf::ForOp::create(
      b, lo, hi, cIndex(b, 1), ValueRange{keysInit, valuesInit},
      [&](OpBuilder &ob, Location loc, Value kt, ValueRange state) {
        IB ib(loc, ob);
        Value slot = arith::SubIOp::create(ib, kt, lo);
        Value tileBase = kv.prepareTile(ib, kt);
        Value keysT = transposeKeys(ib, tile, headDim, [&](IB &g, Value c, Value d0) {
          return kv.readRow(g, tileBase, 0, kvHead, c, d0, kLanes);
        });
        Value values = kv.loadValues(ib, kt, kvHead, kvLen);
        keysT = packColumns(ib, keysT, keyWidth);
        values = packColumns(ib, values, valueWidth);
        scf::YieldOp::create(ib, ValueRange{insertTile(ib, keysT, state[0], slot),
                                            insertTile(ib, values, state[1], slot)});
      });
  return {loop.getResult(0), loop.getResult(1), lo};
}

/// Attention of one sequence and one kv head: the `[qLen, G, D]` output rows
/// of the G query heads of the group.
Value attendOneGroup(IB &b, const AttentionParams &p, const KVSource &kv,
                     Value query, Value qStart, Value qLen, Value kvLen,
                     Value kvHead) {
  MLIRContext *ctx = b.getContext();
  int64_t group = p.numHeads / p.kvHeads, headDim = p.headDim;
  int64_t tileKeys = kv.tileSize;
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  Value posBase = arith::SubIOp::create(b, kvLen, qLen);
  Value local = emptyTensor(
      b, {qLen, b.getIndexAttr(group), b.getIndexAttr(headDim)}, p.elementType);
  bool causal = p.mask.getKind() != MaskKind::None;
  bool windowed = p.mask.getKind() == MaskKind::SlidingWindow;
  // The generic path uses exp2 (scale folded with log2 e), the vector path
  // exp, which has a polynomial approximation that vectorises.
  double log2e = 1.4426950408889634;
  Value qScale = cF32(b, useVectorPath(p, kv) ? p.scale : p.scale * log2e);
  Value negInf = cNegInfF32(b);

  // One query tile of `rowsPerTile` query rows x `group` heads.
  bool useVector = useVectorPath(p, kv);
  // Register blocks of rows x columns f32 accumulators. AVX-512 (32
  // registers): 6 rows x 64 columns, 24 accumulators fed by 4 vector loads
  // and 6 broadcasts per 24 FMAs -- fewer instructions per FMA than 8 x 32
  // (10 per 16), which kept the 4-wide front end saturated; measured on the
  // Xeon build machine, f32 causal H=8: S=2048 137 -> 153 GFLOP/s, S=4096
  // 157 -> 170 (12 x 32: 143 / 163; 4 x 64: 145 / 156). AVX2 (16
  // registers): 4 x 16.
  int64_t rowBlock = p.vectorLanes >= 16 ? 6 : kRowBlock;
  int64_t blockColumns = p.vectorLanes >= 16 ? 64 : 16;
  auto tileLoop = [&](IB &lb, int64_t rowsPerTile) -> Value {
    int64_t validTileRows = rowsPerTile * group;
    // The vector kernels work on blocks of rows; extra rows repeat the
    // last query and are dropped at the end.
    // Decode tiles (one query row, a small GQA group) read keys in place.
    bool decode = useVector && rowsPerTile == 1 && validTileRows <= 8;
    int64_t tileRowBlock = decode ? kRowBlock : rowBlock;
    int64_t rows = useVector ? llvm::alignTo(validTileRows, tileRowBlock)
                             : validTileRows;
    Value numTiles = ceilDiv(lb, qLen, rowsPerTile);
    // Prefill: keys transposed and values widened to f32 once per (sequence,
    // kv head) rather than once per query tile, so that every query tile
    // streams contiguous tiles instead of re-reading head-strided rows.
    Value preKeysT, preValues, preLo;
    if (useVector && !decode)
      std::tie(preKeysT, preValues, preLo) =
          prepareKeyValueTiles(lb, kv, headDim, kvHead, kvLen, posBase,
                               windowed ? p.mask.getWindow() : 0, blockColumns);
    auto loop = scf::ForOp::create(
        lb, zero, numTiles, one, ValueRange{local},
        [&](OpBuilder &ob, Location loc, Value qt, ValueRange args) {
          IB ib(loc, ob);
          Value r0 = arith::MulIOp::create(ib, qt, cIndex(ib, rowsPerTile));
          Value validRows = minIdx(ib, cIndex(ib, rowsPerTile),
                                   arith::SubIOp::create(ib, qLen, r0));
          Value lastRow = arith::SubIOp::create(ib, qLen, one);
          AffineExpr r, c, d;
          bindDims(ctx, r, c, d);
          // q tile [rows, D] in f32, scaled (by scale * log2 e for exp2).
          // Row r is query row r / G of head kvHead * G + r % G.
          auto qRow = [&](IB &g, Value ri) -> std::pair<Value, Value> {
            Value qi = arith::DivUIOp::create(g, ri, cIndex(g, group));
            Value gi = arith::RemUIOp::create(g, ri, cIndex(g, group));
            Value rowIdx = minIdx(g, arith::AddIOp::create(g, r0, qi), lastRow);
            rowIdx = arith::AddIOp::create(g, qStart, rowIdx);
            Value head = arith::AddIOp::create(
                g, arith::MulIOp::create(g, kvHead, cIndex(g, group)), gi);
            return {rowIdx, head};
          };
          Value qInit = emptyTensor(
              ib, {ib.getIndexAttr(rows), ib.getIndexAttr(headDim)}, ib.getF32Type());
          Value qTile;
          if (useVector) {
            // Whole rows as vectors.
            auto rowLoop = scf::ForOp::create(
                ib, zero, cIndex(ib, rows), one, ValueRange{qInit},
                [&](OpBuilder &gb, Location gl, Value ri, ValueRange state) {
                  IB g(gl, gb);
                  auto [rowIdx, head] = qRow(g, ri);
                  Value v = vecToF32(g, readVector(g, query, {rowIdx, head, zero},
                                                   headDim));
                  v = arith::MulFOp::create(g, v, splat(g, qScale, headDim));
                  scf::YieldOp::create(g, writeVector(g, v, state[0], {ri, zero}));
                });
            qTile = rowLoop.getResult(0);
          } else {
            qTile = generic(
                ib, qInit, {}, {map(ctx, 2, {r, c})}, iterators(2),
                [&](OpBuilder &gb, Location gl, ValueRange) {
                  IB g(gl, gb);
                  auto [rowIdx, head] = qRow(g, linalg::IndexOp::create(g, 0));
                  Value di = linalg::IndexOp::create(g, 1);
                  Value v = tensor::ExtractOp::create(g, query,
                                                      ValueRange{rowIdx, head, di});
                  linalg::YieldOp::create(
                      g, ValueRange{arith::MulFOp::create(g, toF32(g, gl, v), qScale)});
                });
          }
          // Key tiles that can hold a visible key for this query tile.
          Value firstPos = arith::AddIOp::create(ib, posBase, r0);
          Value lastPos = arith::SubIOp::create(
              ib, arith::AddIOp::create(ib, firstPos, validRows), one);
          Value kvHi = kvLen;
          if (causal)
            kvHi = clampIdx(ib, arith::AddIOp::create(ib, lastPos, one), zero, kvLen);
          Value kvLo = zero;
          if (windowed) {
            Value reach = arith::SubIOp::create(
                ib, firstPos, cIndex(ib, p.mask.getWindow() - 1));
            kvLo = maxIdx(ib, reach, zero);
          }
          Value tileLo = arith::DivSIOp::create(ib, kvLo, cIndex(ib, tileKeys));
          Value tileHi = ceilDiv(ib, kvHi, tileKeys);
          tileHi = maxIdx(ib, tileHi, tileLo);

          Value m0 = filled(ib, {ib.getIndexAttr(rows)}, negInf);
          Value l0 = filled(ib, {ib.getIndexAttr(rows)}, cF32(ib, 0.0));
          Value acc0 = filled(ib, {ib.getIndexAttr(rows), ib.getIndexAttr(headDim)},
                              cF32(ib, 0.0));
          auto kvLoop = scf::ForOp::create(
              ib, tileLo, tileHi, one, ValueRange{m0, l0, acc0},
              [&](OpBuilder &kb, Location kl, Value kt, ValueRange state) {
                IB k(kl, kb);
                Value m = state[0], l = state[1], acc = state[2];
                Value keyBase = arith::MulIOp::create(k, kt, cIndex(k, tileKeys));
                if (useVector) {
                  Value scores, validKeys;
                  // Values are copied into an f32 tile either way: their rows
                  // are contiguous there, which the update loop needs.
                  // Row r (query row r / G) sees keys [lo, hi) of the tile.
                  auto visibleRange = [&](IB &g, Value row) -> std::pair<Value, Value> {
                    Value qi = arith::DivUIOp::create(g, row, cIndex(g, group));
                    Value qpos = arith::AddIOp::create(g, firstPos, qi);
                    Value end = kvLen;
                    if (causal)
                      end = minIdx(g, end, arith::AddIOp::create(g, qpos, cIndex(g, 1)));
                    Value begin = cIndex(g, 0);
                    if (windowed)
                      begin = arith::SubIOp::create(
                          g, qpos, cIndex(g, p.mask.getWindow() - 1));
                    auto local = [&](Value v) {
                      return clampIdx(g, arith::SubIOp::create(g, v, keyBase),
                                      cIndex(g, 0), cIndex(g, tileKeys));
                    };
                    return {local(begin), local(end)};
                  };
                  // Rows r0 .. r0 + n - 1 see the union of their ranges;
                  // positions grow with the row.
                  auto blockKeys = [&](IB &g, Value r0) -> std::pair<Value, Value> {
                    Value last = arith::AddIOp::create(g, r0, cIndex(g, tileRowBlock - 1));
                    return {visibleRange(g, r0).first, visibleRange(g, last).second};
                  };
                  Value vals, tileBase;
                  if (decode) {
                    vals = kv.loadValues(k, kt, kvHead, kvLen);
                    tileBase = kv.prepareTile(k, kt);
                  } else {
                    Value slot = arith::SubIOp::create(k, kt, preLo);
                    vals = panelOf(k, preValues, slot);
                  }
                  if (decode) {
                    // Few rows (decode): dot products on the cache rows read
                    // in place, only the sequence's rows.
                    validKeys = clampIdx(k, arith::SubIOp::create(k, kvLen, keyBase),
                                         cIndex(k, 0), cIndex(k, tileKeys));
                    scores = vectorScoresDot(
                        k, qTile, rows, tileKeys, headDim, validKeys,
                        [&](IB &g, Value c, Value d0, int64_t width) {
                          return kv.readRow(g, tileBase, 0, kvHead, c, d0, width);
                        });
                  } else {
                    Value keysT = panelOf(
                        k, preKeysT, arith::SubIOp::create(k, kt, preLo));
                    scores = vectorScores(k, qTile, keysT, rows, tileKeys, headDim,
                                          tileRowBlock, blockKeys);
                  }
                  auto [probs, mNew, lNew, alpha] =
                      vectorSoftmaxStep(k, scores, m, l, rows, tileKeys, visibleRange);
                  Value accNew = vectorAccumulate(
                      k, acc, alpha, probs, vals, rows, tileKeys, headDim, tileRowBlock,
                      blockColumns, decode ? BlockKeysFn() : BlockKeysFn(blockKeys));
                  scf::YieldOp::create(k, ValueRange{mNew, lNew, accNew});
                  return;
                }
                Value keys = kv.loadTile(k, kt, 0, kvHead, kvLen);
                Value values = kv.loadTile(k, kt, 1, kvHead, kvLen);
                SmallVector<OpFoldResult> scoreSizes = {k.getIndexAttr(rows),
                                                        k.getIndexAttr(tileKeys)};
                // s = q k^T
                Value scores = generic(
                    k, filled(k, scoreSizes, cF32(k, 0.0)), {qTile, keys},
                    {map(ctx, 3, {r, d}), map(ctx, 3, {c, d}), map(ctx, 3, {r, c})},
                    iterators(2, 1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      Value prod = arith::MulFOp::create(gb, gl, a[0], a[1]);
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::AddFOp::create(gb, gl, a[2], prod)});
                    });
                // Masked keys become -inf.
                scores = generic(
                    k, emptyTensor(k, scoreSizes, k.getF32Type()), {scores},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r, c})}, iterators(2),
                    [&](OpBuilder &gb, Location gl, ValueRange a) {
                      IB g(gl, gb);
                      Value ri = linalg::IndexOp::create(g, 0);
                      Value ci = linalg::IndexOp::create(g, 1);
                      Value j = arith::AddIOp::create(g, keyBase, ci);
                      Value qi = arith::DivUIOp::create(g, ri, cIndex(g, group));
                      Value qpos = arith::AddIOp::create(g, firstPos, qi);
                      Value valid = arith::CmpIOp::create(
                          g, arith::CmpIPredicate::slt, j, kvLen);
                      if (causal)
                        valid = arith::AndIOp::create(
                            g, valid,
                            arith::CmpIOp::create(g, arith::CmpIPredicate::sle, j, qpos));
                      if (windowed) {
                        Value dist = arith::SubIOp::create(g, qpos, j);
                        valid = arith::AndIOp::create(
                            g, valid,
                            arith::CmpIOp::create(
                                g, arith::CmpIPredicate::slt, dist,
                                cIndex(g, p.mask.getWindow())));
                      }
                      linalg::YieldOp::create(
                          g, ValueRange{arith::SelectOp::create(g, valid, a[0], negInf)});
                    });
                // m' = max(m, rowmax(s)) and alpha = exp2(m - m'), which
                // rescales what was accumulated (1 while nothing was seen).
                Value tileMax = generic(
                    k, filled(k, {k.getIndexAttr(rows)}, negInf), {scores},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r})}, iterators(1, 1),
                    [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl,
                          ValueRange{arith::MaximumFOp::create(gb, gl, a[1], a[0])});
                    });
                auto rowType = RankedTensorType::get({rows}, k.getF32Type());
                auto update = linalg::GenericOp::create(
                    k, TypeRange{rowType, rowType}, ValueRange{m, tileMax},
                    ValueRange{emptyTensor(k, {k.getIndexAttr(rows)}, k.getF32Type()),
                               emptyTensor(k, {k.getIndexAttr(rows)}, k.getF32Type())},
                    {map(ctx, 1, {r}), map(ctx, 1, {r}), map(ctx, 1, {r}),
                     map(ctx, 1, {r})},
                    iterators(1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      IB g(gl, gb);
                      Value mn = arith::MaximumFOp::create(g, a[0], a[1]);
                      Value none = arith::CmpFOp::create(g, arith::CmpFPredicate::OEQ,
                                                         mn, negInf);
                      Value e = math::Exp2Op::create(g, arith::SubFOp::create(g, a[0], mn));
                      linalg::YieldOp::create(
                          g, ValueRange{mn, arith::SelectOp::create(g, none, cF32(g, 1.0), e)});
                    });
                Value mNew = update.getResult(0), alpha = update.getResult(1);
                // p = exp2(s - m'), 0 where the row has seen nothing yet.
                Value probs = generic(
                    k, emptyTensor(k, scoreSizes, k.getF32Type()), {scores, mNew},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
                    iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      IB g(gl, gb);
                      Value none = arith::CmpFOp::create(g, arith::CmpFPredicate::OEQ,
                                                         a[1], negInf);
                      Value e = math::Exp2Op::create(
                          g, arith::SubFOp::create(g, a[0], a[1]));
                      linalg::YieldOp::create(
                          g, ValueRange{arith::SelectOp::create(g, none, cF32(g, 0.0), e)});
                    });
                Value lScaled = generic(
                    k, emptyTensor(k, {k.getIndexAttr(rows)}, k.getF32Type()),
                    {l, alpha}, {map(ctx, 1, {r}), map(ctx, 1, {r}), map(ctx, 1, {r})},
                    iterators(1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::MulFOp::create(gb, gl, a[0], a[1])});
                    });
                Value lNew = generic(
                    k, lScaled, {probs}, {map(ctx, 2, {r, c}), map(ctx, 2, {r})},
                    iterators(1, 1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::AddFOp::create(gb, gl, a[1], a[0])});
                    });
                Value accScaled = generic(
                    k, emptyTensor(k, {k.getIndexAttr(rows), k.getIndexAttr(headDim)},
                                   k.getF32Type()),
                    {acc, alpha},
                    {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
                    iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::MulFOp::create(gb, gl, a[0], a[1])});
                    });
                // acc' = alpha acc + p v  (dims: r, d, c)
                Value accNew = generic(
                    k, accScaled, {probs, values},
                    {map(ctx, 3, {r, d}), map(ctx, 3, {d, c}), map(ctx, 3, {r, c})},
                    iterators(2, 1), [&](OpBuilder &gb, Location gl, ValueRange a) {
                      Value prod = arith::MulFOp::create(gb, gl, a[0], a[1]);
                      linalg::YieldOp::create(
                          gb, gl, ValueRange{arith::AddFOp::create(gb, gl, a[2], prod)});
                    });
                scf::YieldOp::create(k, ValueRange{mNew, lNew, accNew});
              });
          Value lFinal = kvLoop.getResult(1), accFinal = kvLoop.getResult(2);
          // o = acc / l (0 for rows that saw no key), in the output type.
          Value outTile = generic(
              ib, emptyTensor(ib, {ib.getIndexAttr(rows), ib.getIndexAttr(headDim)},
                              p.elementType),
              {accFinal, lFinal},
              {map(ctx, 2, {r, c}), map(ctx, 2, {r}), map(ctx, 2, {r, c})},
              iterators(2), [&](OpBuilder &gb, Location gl, ValueRange a) {
                IB g(gl, gb);
                Value seen = arith::CmpFOp::create(g, arith::CmpFPredicate::OGT,
                                                   a[1], cF32(g, 0.0));
                Value o = arith::SelectOp::create(
                    g, seen, arith::DivFOp::create(g, a[0], a[1]), cF32(g, 0.0));
                linalg::YieldOp::create(g, ValueRange{fromF32(g, gl, o, p.elementType)});
              });
          if (rows != validTileRows) {
            SmallVector<OpFoldResult> zeros2(2, ib.getIndexAttr(0));
            SmallVector<OpFoldResult> sizes2 = {ib.getIndexAttr(validTileRows),
                                                ib.getIndexAttr(headDim)};
            SmallVector<OpFoldResult> unit2(2, ib.getIndexAttr(1));
            outTile = tensor::ExtractSliceOp::create(ib, outTile, zeros2, sizes2, unit2);
          }
          auto tile3d = RankedTensorType::get({rowsPerTile, group, headDim},
                                              p.elementType);
          Value expanded = tensor::ExpandShapeOp::create(
              ib, tile3d, outTile, SmallVector<ReassociationIndices>{{0, 1}, {2}});
          SmallVector<OpFoldResult> zeros(3, ib.getIndexAttr(0));
          SmallVector<OpFoldResult> sizes = {validRows, ib.getIndexAttr(group),
                                             ib.getIndexAttr(headDim)};
          SmallVector<OpFoldResult> unit(3, ib.getIndexAttr(1));
          Value valid = tensor::ExtractSliceOp::create(ib, expanded, zeros, sizes, unit);
          SmallVector<OpFoldResult> offsets = {r0, ib.getIndexAttr(0),
                                               ib.getIndexAttr(0)};
          Value updated = tensor::InsertSliceOp::create(ib, valid, args[0], offsets,
                                                        sizes, unit);
          scf::YieldOp::create(ib, updated);
        });
    return loop.getResult(0);
  };

  // Decode rows (one query per sequence) get a tile of one query row.
  int64_t prefillRows = std::max<int64_t>(1, p.queryTileRows / group);
  if (prefillRows == 1)
    return tileLoop(b, 1);
  Value isDecode = arith::CmpIOp::create(b, arith::CmpIPredicate::sle, qLen, one);
  auto ifOp = scf::IfOp::create(
      b, isDecode,
      [&](OpBuilder &tb, Location tl) {
        IB ib(tl, tb);
        scf::YieldOp::create(ib, tileLoop(ib, 1));
      },
      [&](OpBuilder &eb, Location el) {
        IB ib(el, eb);
        scf::YieldOp::create(ib, tileLoop(ib, prefillRows));
      });
  return ifOp.getResult(0);
}

//===----------------------------------------------------------------------===//
// Split decode (flash-decoding on the CPU)
//
// When every sequence has at most one query row, the keys of each sequence
// are split into chunks of whole tiles and one parallel work item handles a
// (sequence, chunk) for all kv heads at once: it walks the chunk key by key
// (four at a time), reading the rows of every kv head of a slot together --
// contiguous memory in both cache and K/V layouts -- so the loads stream
// instead of jumping a row of heads per key. Each item keeps its own
// online-softmax state; a second loop combines the chunks of a sequence.
//===----------------------------------------------------------------------===//

using SeqBoundsFn =
    function_ref<std::tuple<Value, Value, Value>(IB &, Value seq)>;
using SourceFn = function_ref<KVSource(IB &, Value seq)>;

/// s [Hq, tile] = q k^T of one tile for all heads; `readKey(h, c, d0, w)`
/// reads `w` f32 of key row `c` of kv head `h`. Keys at or past `validKeys`
/// are not read (their scores are masked later). One key at a time: the
/// rows of all kv heads of a slot are then read as one sequential stream,
/// which the prefetchers follow; stepping 2 or 4 keys (more reuse of q in
/// registers) made several short streams and measured slower for bf16
/// (B=1 L=32768 on the Xeon build machine: 12.1 GB/s with 1 key, 9.9 with 2,
/// 8.9 with 4; f32 within noise).
Value decodeScores(IB &b, Value q, int64_t kvHeads, int64_t group, int64_t tile,
                   int64_t headDim, Value validKeys,
                   function_ref<Value(IB &, Value h, Value c, Value d0, int64_t)>
                       readKey) {
  int64_t width = headDim % 16 == 0 ? 16 : kLanes;
  Value init = emptyTensor(b, {b.getIndexAttr(kvHeads * group), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(b.getF32Type(), {width}), 0.0f));
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  auto keyLoop = scf::ForOp::create(
      b, zero, validKeys, one, ValueRange{init},
      [&](OpBuilder &ob, Location loc, Value c, ValueRange keyState) {
        IB ib(loc, ob);
        auto headLoop = scf::ForOp::create(
            ib, zero, cIndex(ib, kvHeads), one, ValueRange{keyState[0]},
            [&](OpBuilder &hb, Location hl, Value h, ValueRange headState) {
              IB i1(hl, hb);
              SmallVector<Value> rows = blockRows(
                  i1, arith::MulIOp::create(i1, h, cIndex(i1, group)), group);
              SmallVector<Value> start(group, zeros);
              auto dLoop = scf::ForOp::create(
                  i1, zero, cIndex(i1, headDim), cIndex(i1, width), start,
                  [&](OpBuilder &db, Location dl, Value d0, ValueRange acc) {
                    IB i2(dl, db);
                    Value k = readKey(i2, h, c, d0, width);
                    SmallVector<Value> next;
                    for (int64_t g = 0; g < group; ++g)
                      next.push_back(vector::FMAOp::create(
                          i2, readVector(i2, q, {rows[g], d0}, width), k, acc[g]));
                    scf::YieldOp::create(i2, next);
                  });
              Value out = headState[0];
              for (int64_t g = 0; g < group; ++g) {
                Value sum = vector::ReductionOp::create(
                    i1, vector::CombiningKind::ADD, dLoop.getResult(g));
                out = tensor::InsertOp::create(i1, sum, out, ValueRange{rows[g], c});
              }
              scf::YieldOp::create(i1, out);
            });
        scf::YieldOp::create(ib, headLoop.getResult(0));
      });
  return keyLoop.getResult(0);
}

/// acc' = alpha * acc + p v of one tile for all heads (acc [Hq, D] f32);
/// `readValue(h, c, d0, w)` reads `w` f32 of value row `c` of kv head `h`.
/// One key at a time, as the scores.
Value decodeAccumulate(IB &b, Value acc, Value alpha, Value probs, int64_t kvHeads,
                       int64_t group, int64_t headDim, int64_t maxWidth,
                       Value validKeys,
                       function_ref<Value(IB &, Value h, Value c, Value d0, int64_t)>
                           readValue) {
  int64_t rows = kvHeads * group;
  int64_t width = blockWidth(headDim, maxWidth);
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  // Rescale what was accumulated.
  auto scaled = scf::ForOp::create(
      b, zero, cIndex(b, rows), one, ValueRange{acc},
      [&](OpBuilder &ob, Location loc, Value r, ValueRange state) {
        IB ib(loc, ob);
        Value a = splat(ib, tensor::ExtractOp::create(ib, alpha, r), headDim);
        Value row = readVector(ib, state[0], {r, zero}, headDim);
        scf::YieldOp::create(ib, writeVector(ib, arith::MulFOp::create(ib, row, a),
                                             state[0], {r, zero}));
      });
  auto keyLoop = scf::ForOp::create(
      b, zero, validKeys, one, ValueRange{scaled.getResult(0)},
      [&](OpBuilder &ob, Location loc, Value c, ValueRange keyState) {
        IB ib(loc, ob);
        auto headLoop = scf::ForOp::create(
            ib, zero, cIndex(ib, kvHeads), one, ValueRange{keyState[0]},
            [&](OpBuilder &hb, Location hl, Value h, ValueRange headState) {
              IB i1(hl, hb);
              SmallVector<Value> rowIdx = blockRows(
                  i1, arith::MulIOp::create(i1, h, cIndex(i1, group)), group);
              SmallVector<Value> ps;
              for (Value row : rowIdx)
                ps.push_back(splat(
                    i1, tensor::ExtractOp::create(i1, probs, ValueRange{row, c}),
                    width));
              auto dLoop = scf::ForOp::create(
                  i1, zero, cIndex(i1, headDim), cIndex(i1, width),
                  ValueRange{headState[0]},
                  [&](OpBuilder &db, Location dl, Value d0, ValueRange dState) {
                    IB i2(dl, db);
                    Value v = readValue(i2, h, c, d0, width);
                    Value out = dState[0];
                    for (int64_t g = 0; g < group; ++g) {
                      Value sum = vector::FMAOp::create(
                          i2, ps[g], v, readVector(i2, out, {rowIdx[g], d0}, width));
                      out = writeVector(i2, sum, out, {rowIdx[g], d0});
                    }
                    scf::YieldOp::create(i2, out);
                  });
              scf::YieldOp::create(i1, dLoop.getResult(0));
            });
        scf::YieldOp::create(ib, headLoop.getResult(0));
      });
  return keyLoop.getResult(0);
}

/// True when no sequence has more than one query row.
Value allSequencesDecode(IB &b, Value batch, SeqBoundsFn seqBounds) {
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), batch, cIndex(b, 1),
      ValueRange{arith::ConstantIntOp::create(b, 1, 1)},
      [&](OpBuilder &ob, Location loc, Value seq, ValueRange state) {
        IB ib(loc, ob);
        Value qLen = std::get<1>(seqBounds(ib, seq));
        Value one = arith::CmpIOp::create(ib, arith::CmpIPredicate::sle, qLen,
                                          cIndex(ib, 1));
        scf::YieldOp::create(ib, ValueRange{arith::AndIOp::create(ib, state[0], one)});
      });
  return loop.getResult(0);
}

/// Decode attention (every sequence has <= 1 query row) as (sequence, key
/// chunk) work items over all kv heads plus a combine step; about
/// `targetItems` items when the keys allow.
Value buildSplitDecode(IB &b, const AttentionParams &p, int64_t tile,
                       int64_t targetItems, Value query, Value batch,
                       SeqBoundsFn seqBounds, SourceFn sourceFor) {
  int64_t hq = p.numHeads, hkv = p.kvHeads, group = hq / hkv, headDim = p.headDim;
  Type f32 = b.getF32Type();
  Value zero = cIndex(b, 0), one = cIndex(b, 1);
  bool windowed = p.mask.getKind() == MaskKind::SlidingWindow;
  Value tokens = dim(b, query, 0);

  // Chunks of whole tiles: the longest sequence in `splits` chunks.
  auto longest = scf::ForOp::create(
      b, zero, batch, one, ValueRange{zero},
      [&](OpBuilder &ob, Location loc, Value seq, ValueRange state) {
        IB ib(loc, ob);
        scf::YieldOp::create(
            ib, ValueRange{maxIdx(ib, state[0], std::get<2>(seqBounds(ib, seq)))});
      });
  Value maxTiles = maxIdx(b, ceilDiv(b, longest.getResult(0), tile), one);
  Value wanted = arith::CeilDivSIOp::create(b, cIndex(b, targetItems),
                                            maxIdx(b, batch, one));
  Value splits = clampIdx(b, wanted, one, maxTiles);
  Value chunkTiles = arith::CeilDivSIOp::create(b, maxTiles, splits);
  splits = arith::CeilDivSIOp::create(b, maxTiles, chunkTiles);

  Value partAcc = emptyTensor(
      b, {batch, splits, b.getIndexAttr(hq), b.getIndexAttr(headDim)}, f32);
  Value partMax = emptyTensor(b, {batch, splits, b.getIndexAttr(hq)}, f32);
  Value partSum = emptyTensor(b, {batch, splits, b.getIndexAttr(hq)}, f32);
  auto forall = scf::ForallOp::create(
      b, ArrayRef<OpFoldResult>{batch, splits},
      ValueRange{partAcc, partMax, partSum}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    Value seq = forall.getInductionVar(0), split = forall.getInductionVar(1);
    auto [qStart, qLen, kvLen] = seqBounds(b, seq);
    KVSource kv = sourceFor(b, seq);
    // A sequence without a query row attends to nothing.
    Value hasQuery = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, qLen, zero);
    Value keys = arith::SelectOp::create(b, hasQuery, kvLen, zero);
    Value qpos = arith::SubIOp::create(b, kvLen, one);
    Value chunkStart = arith::MulIOp::create(b, split, chunkTiles);
    Value tileLo = chunkStart;
    if (windowed) {
      Value reach = maxIdx(
          b, arith::SubIOp::create(b, qpos, cIndex(b, p.mask.getWindow() - 1)), zero);
      tileLo = maxIdx(b, tileLo, arith::DivSIOp::create(b, reach, cIndex(b, tile)));
    }
    Value tileHi = minIdx(b, arith::AddIOp::create(b, chunkStart, chunkTiles),
                          ceilDiv(b, keys, tile));
    Value negInf = cNegInfF32(b);
    Value m0 = filled(b, {b.getIndexAttr(hq)}, negInf);
    Value l0 = filled(b, {b.getIndexAttr(hq)}, cF32(b, 0.0));
    Value acc0 = filled(b, {b.getIndexAttr(hq), b.getIndexAttr(headDim)}, cF32(b, 0.0));
    Value work = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, tileLo, tileHi);
    auto ifOp = scf::IfOp::create(
        b, work,
        [&](OpBuilder &tb, Location tl) {
          IB ib(tl, tb);
          // q [Hq, D] f32, scaled; read only when the sequence has its row.
          Value qRow = minIdx(ib, qStart, arith::SubIOp::create(ib, tokens, one));
          Value qScale = cF32(ib, p.scale);
          auto qLoop = scf::ForOp::create(
              ib, zero, cIndex(ib, hq), one,
              ValueRange{emptyTensor(ib, {ib.getIndexAttr(hq), ib.getIndexAttr(headDim)},
                                     f32)},
              [&](OpBuilder &gb, Location gl, Value r, ValueRange state) {
                IB g(gl, gb);
                Value v = vecToF32(g, readVector(g, query, {qRow, r, cIndex(g, 0)},
                                                 headDim));
                v = arith::MulFOp::create(g, v, splat(g, qScale, headDim));
                scf::YieldOp::create(g, writeVector(g, v, state[0], {r, cIndex(g, 0)}));
              });
          Value qTile = qLoop.getResult(0);
          auto kvLoop = scf::ForOp::create(
              ib, tileLo, tileHi, one, ValueRange{m0, l0, acc0},
              [&](OpBuilder &kb, Location kl, Value kt, ValueRange state) {
                IB k(kl, kb);
                Value keyBase = arith::MulIOp::create(k, kt, cIndex(k, tile));
                Value valid = clampIdx(k, arith::SubIOp::create(k, kvLen, keyBase),
                                       zero, cIndex(k, tile));
                Value tileBase = kv.prepareTile(k, kt);
                auto reader = [&](int64_t which) {
                  return [&, which](IB &g, Value h, Value c, Value d0,
                                    int64_t width) -> Value {
                    return kv.readRow(g, tileBase, which, h, c, d0, width);
                  };
                };
                Value scores = decodeScores(k, qTile, hkv, group, tile, headDim,
                                            valid, reader(0));
                // The one query row sees keys [window start, kvLen).
                auto visibleRange = [&](IB &g, Value) -> std::pair<Value, Value> {
                  Value begin = cIndex(g, 0);
                  if (windowed)
                    begin = clampIdx(
                        g,
                        arith::SubIOp::create(
                            g, arith::SubIOp::create(g, qpos,
                                                     cIndex(g, p.mask.getWindow() - 1)),
                            keyBase),
                        zero, cIndex(g, tile));
                  return {begin, valid};
                };
                auto [probs, mNew, lNew, alpha] = vectorSoftmaxStep(
                    k, scores, state[0], state[1], hq, tile, visibleRange);
                Value accNew = decodeAccumulate(k, state[2], alpha, probs, hkv, group,
                                                headDim, p.vectorLanes >= 16 ? 32 : 16,
                                                valid, reader(1));
                scf::YieldOp::create(k, ValueRange{mNew, lNew, accNew});
              });
          scf::YieldOp::create(ib, kvLoop.getResults());
        },
        [&](OpBuilder &eb, Location el) {
          scf::YieldOp::create(eb, el, ValueRange{m0, l0, acc0});
        });
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    SmallVector<Value> outs(forall.getRegionOutArgs());
    SmallVector<OpFoldResult> unit4(4, b.getIndexAttr(1)), unit3(3, b.getIndexAttr(1));
    tensor::ParallelInsertSliceOp::create(
        b, ifOp.getResult(2), outs[0],
        ArrayRef<OpFoldResult>{seq, split, b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                               b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        unit4);
    for (int64_t i = 0; i < 2; ++i)
      tensor::ParallelInsertSliceOp::create(
          b, ifOp.getResult(i), outs[1 + i],
          ArrayRef<OpFoldResult>{seq, split, b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                                 b.getIndexAttr(hq)},
          unit3);
  }
  partAcc = forall.getResult(0);
  partMax = forall.getResult(1);
  partSum = forall.getResult(2);

  // Combine: o = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s, M = max_s m_s
  // (0 for a row that saw no key).
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), query);
  Value init = filled(b, sizes, fromF32(b, b.getLoc(), cF32(b, 0.0), p.elementType));
  auto combine = scf::ForallOp::create(b, ArrayRef<OpFoldResult>{batch},
                                       ValueRange{init}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(combine.getBody());
    Value seq = combine.getInductionVar(0);
    auto [qStart, qLen, kvLen] = seqBounds(b, seq);
    (void)kvLen;
    Value negInf = cNegInfF32(b);
    Value rowInit = emptyTensor(
        b, {b.getIndexAttr(1), b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        p.elementType);
    auto rowLoop = scf::ForOp::create(
        b, zero, cIndex(b, hq), one, ValueRange{rowInit},
        [&](OpBuilder &ob, Location loc, Value r, ValueRange state) {
          IB ib(loc, ob);
          auto maxLoop = scf::ForOp::create(
              ib, zero, splits, one, ValueRange{negInf},
              [&](OpBuilder &mb, Location ml, Value s, ValueRange st) {
                IB g(ml, mb);
                Value m = tensor::ExtractOp::create(g, partMax, ValueRange{seq, s, r});
                scf::YieldOp::create(g, ValueRange{arith::MaximumFOp::create(g, st[0], m)});
              });
          Value total = maxLoop.getResult(0);
          Value none = arith::CmpFOp::create(ib, arith::CmpFPredicate::OEQ, total, negInf);
          Value zerosD = arith::ConstantOp::create(
              ib, DenseElementsAttr::get(vecType(f32, {headDim}), 0.0f));
          auto sumLoop = scf::ForOp::create(
              ib, zero, splits, one, ValueRange{cF32(ib, 0.0), zerosD},
              [&](OpBuilder &sb, Location sl, Value s, ValueRange st) {
                IB g(sl, sb);
                Value m = tensor::ExtractOp::create(g, partMax, ValueRange{seq, s, r});
                Value l = tensor::ExtractOp::create(g, partSum, ValueRange{seq, s, r});
                // Chunks that saw nothing (m = -inf) weigh 0.
                Value w = arith::SelectOp::create(
                    g, none, cF32(g, 0.0),
                    math::ExpOp::create(g, arith::SubFOp::create(g, m, total)));
                Value a = readVector(g, partAcc, {seq, s, r, cIndex(g, 0)}, headDim);
                scf::YieldOp::create(
                    g, ValueRange{arith::AddFOp::create(g, st[0],
                                                        arith::MulFOp::create(g, w, l)),
                                  vector::FMAOp::create(g, splat(g, w, headDim), a,
                                                        st[1])});
              });
          Value l = sumLoop.getResult(0);
          Value seen = arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT, l,
                                             cF32(ib, 0.0));
          Value inv = arith::SelectOp::create(
              ib, seen, arith::DivFOp::create(ib, cF32(ib, 1.0), l), cF32(ib, 0.0));
          Value o = arith::MulFOp::create(ib, sumLoop.getResult(1),
                                          splat(ib, inv, headDim));
          if (!p.elementType.isF32())
            o = arith::TruncFOp::create(ib, vecType(p.elementType, {headDim}), o);
          scf::YieldOp::create(ib, writeVector(ib, o, state[0],
                                               {cIndex(ib, 0), r, cIndex(ib, 0)}));
        });
    Value rows = tensor::ExtractSliceOp::create(
        b, rowLoop.getResult(0),
        ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{qLen, b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1), b.getIndexAttr(1)});
    b.setInsertionPointToStart(combine.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        b, rows, combine.getRegionOutArgs()[0],
        ArrayRef<OpFoldResult>{qStart, b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{qLen, b.getIndexAttr(hq), b.getIndexAttr(headDim)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1), b.getIndexAttr(1)});
  }
  return combine.getResult(0);
}

/// scf.forall over (sequence, kv head) writing each group's rows of `o`.
/// `seqBounds` gives (qStart, qLen, kvLen) of a sequence.
Value buildGroupedAttention(IB &b, const AttentionParams &p, Value query,
                            Value batch, SeqBoundsFn seqBounds,
                            SourceFn sourceFor) {
  int64_t group = p.numHeads / p.kvHeads;
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, b.getLoc(), query);
  Value init = filled(b, sizes, fromF32(b, b.getLoc(), cF32(b, 0.0), p.elementType));
  SmallVector<OpFoldResult> ubs = {batch, b.getIndexAttr(p.kvHeads)};
  auto forall = scf::ForallOp::create(b, ubs, ValueRange{init}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(forall.getBody());
    Value seq = forall.getInductionVar(0), kvHead = forall.getInductionVar(1);
    auto [qStart, qLen, kvLen] = seqBounds(b, seq);
    KVSource source = sourceFor(b, seq);
    Value rows = attendOneGroup(b, p, source, query, qStart, qLen, kvLen, kvHead);
    Value headOffset = arith::MulIOp::create(b, kvHead, cIndex(b, group));
    b.setInsertionPointToStart(forall.getTerminator().getBody());
    SmallVector<OpFoldResult> offsets = {qStart, headOffset, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sliceSizes = {qLen, b.getIndexAttr(group),
                                            b.getIndexAttr(p.headDim)};
    SmallVector<OpFoldResult> unit(3, b.getIndexAttr(1));
    tensor::ParallelInsertSliceOp::create(b, rows, forall.getRegionOutArgs()[0],
                                          offsets, sliceSizes, unit);
  }
  return forall.getResult(0);
}

/// Attention of every sequence: the split decode when no sequence has more
/// than one query row (and the vector kernels apply), else one work item per
/// (sequence, kv head). `tile` is the key tile of the sources.
Value buildAttention(IB &b, const AttentionParams &p, int64_t tile,
                     int64_t decodeItems, Value query, Value batch,
                     SeqBoundsFn seqBounds, SourceFn sourceFor) {
  bool vectorKernels = p.headDim % kLanes == 0 && tile % kLanes == 0;
  if (decodeItems <= 0 || !vectorKernels)
    return buildGroupedAttention(b, p, query, batch, seqBounds, sourceFor);
  auto ifOp = scf::IfOp::create(
      b, allSequencesDecode(b, batch, seqBounds),
      [&](OpBuilder &tb, Location tl) {
        IB ib(tl, tb);
        scf::YieldOp::create(ib, buildSplitDecode(ib, p, tile, decodeItems, query,
                                                  batch, seqBounds, sourceFor));
      },
      [&](OpBuilder &eb, Location el) {
        IB ib(el, eb);
        scf::YieldOp::create(
            ib, buildGroupedAttention(ib, p, query, batch, seqBounds, sourceFor));
      });
  return ifOp.getResult(0);
}

/// `[tile, D]` f32 tile whose row `c` is `read(c)` when `c < valid`, else 0.
Value gatherTile(IB &b, int64_t tileRows, int64_t headDim, Value validRows,
                 function_ref<Value(IB &, Value row, Value col)> read) {
  MLIRContext *ctx = b.getContext();
  AffineExpr r, c;
  bindDims(ctx, r, c);
  return generic(
      b, emptyTensor(b, {b.getIndexAttr(tileRows), b.getIndexAttr(headDim)},
                     b.getF32Type()),
      {}, {map(ctx, 2, {r, c})}, iterators(2),
      [&](OpBuilder &gb, Location gl, ValueRange) {
        IB g(gl, gb);
        Value row = linalg::IndexOp::create(g, 0);
        Value col = linalg::IndexOp::create(g, 1);
        Value inRange =
            arith::CmpIOp::create(g, arith::CmpIPredicate::slt, row, validRows);
        Value safeRow = minIdx(
            g, row, maxIdx(g, arith::SubIOp::create(g, validRows, cIndex(g, 1)),
                           cIndex(g, 0)));
        Value v = toF32(g, gl, read(g, safeRow, col));
        linalg::YieldOp::create(
            g, ValueRange{arith::SelectOp::create(g, inRange, v, cF32(g, 0.0))});
      });
}

struct LowerPagedFlashAttention : OpRewritePattern<PagedFlashAttentionOp> {
  LowerPagedFlashAttention(MLIRContext *ctx, int64_t queryTileRows,
                           int64_t vectorLanes, int64_t decodeItems)
      : OpRewritePattern(ctx), queryTileRows(queryTileRows),
        vectorLanes(vectorLanes), decodeItems(decodeItems) {}
  LogicalResult matchAndRewrite(PagedFlashAttentionOp op,
                                PatternRewriter &rewriter) const override {
    IB b(op.getLoc(), rewriter);
    auto queryType = op.getQuery().getType();
    auto blocksType = op.getBlocks().getType();
    AttentionParams p{queryType.getDimSize(1), blocksType.getDimSize(4),
                      queryType.getDimSize(2), queryTileRows, vectorLanes, op.getMask(),
                      op.getScaleOrDefault(), queryType.getElementType()};
    if (ShapedType::isDynamic(p.numHeads) || ShapedType::isDynamic(p.kvHeads) ||
        ShapedType::isDynamic(p.headDim) ||
        ShapedType::isDynamic(blocksType.getDimSize(3)))
      return rewriter.notifyMatchFailure(op, "needs static heads, head dim and page size");
    int64_t pageSize = blocksType.getDimSize(3);
    int64_t layer = op.getLayer();
    Value blocks = op.getBlocks(), lookup = op.getLookupTable();
    Value rowOffsets = op.getRowOffsets(), lengths = op.getCacheLengths();
    Value tokens = dim(b, op.getQuery(), 0);
    Value batch = dim(b, lengths, 0);
    Value numPages = dim(b, blocks, 0);
    Value maxPages = dim(b, lookup, 1);
    Value zero = cIndex(b, 0);

    auto bounds = [&](IB &ib, Value seq) -> std::tuple<Value, Value, Value> {
      auto [start, end] = sequenceRows(ib, rowOffsets, seq, tokens);
      Value qLen = arith::SubIOp::create(ib, end, start);
      Value cached = maxIdx(ib, loadIndex(ib, lengths, {seq}), zero);
      // Keys must stay inside the pages the table lists.
      Value capacity = arith::MulIOp::create(ib, maxPages, cIndex(ib, pageSize));
      Value kvLen = minIdx(ib, arith::AddIOp::create(ib, cached, qLen), capacity);
      return {start, qLen, kvLen};
    };
    auto source = [&](IB &ib, Value seq) -> KVSource {
      KVSource s;
      s.tileSize = pageSize;
      auto pageOf = [=](IB &lb, Value tile) -> Value {
        Value page = loadIndex(lb, lookup, {seq, tile});
        return clampIdx(lb, page, cIndex(lb, 0),
                        arith::SubIOp::create(lb, numPages, cIndex(lb, 1)));
      };
      s.prepareTile = pageOf;
      s.readRow = [=](IB &lb, Value page, int64_t kv, Value kvHead, Value c,
                      Value d0, int64_t width) -> Value {
        return vecToF32(lb, readVector(lb, blocks,
                                       {page, cIndex(lb, kv), cIndex(lb, layer), c,
                                        kvHead, d0},
                                       width));
      };
      s.loadValues = [=](IB &lb, Value tile, Value kvHead, Value kvLen) -> Value {
        Value page = pageOf(lb, tile);
        Value tileStart = arith::MulIOp::create(lb, tile, cIndex(lb, pageSize));
        Value valid = arith::SubIOp::create(lb, kvLen, tileStart);
        return loadValueRows(lb, pageSize, p.headDim, valid,
                             [&](IB &g, Value c) -> Value {
                               return readVector(g, blocks,
                                                 {page, cIndex(g, 1), cIndex(g, layer),
                                                  c, kvHead, cIndex(g, 0)},
                                                 p.headDim);
                             });
      };
      s.loadTile = [=](IB &lb, Value tile, int64_t kv, Value kvHead,
                       Value kvLen) -> Value {
        Value page = pageOf(lb, tile);
        Value tileStart = arith::MulIOp::create(lb, tile, cIndex(lb, pageSize));
        Value valid = arith::SubIOp::create(lb, kvLen, tileStart);
        return gatherTile(lb, pageSize, p.headDim, valid,
                          [&](IB &g, Value row, Value col) -> Value {
                            return tensor::ExtractOp::create(
                                g, blocks,
                                ValueRange{page, cIndex(g, kv), cIndex(g, layer),
                                           row, kvHead, col});
                          });
      };
      return s;
    };
    Value out = buildAttention(b, p, pageSize, decodeItems, op.getQuery(), batch,
                               bounds, source);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
  int64_t queryTileRows, vectorLanes, decodeItems;
};

struct LowerFlashAttention : OpRewritePattern<FlashAttentionOp> {
  LowerFlashAttention(MLIRContext *ctx, int64_t queryTileRows, int64_t kvTile,
                      int64_t vectorLanes, int64_t decodeItems)
      : OpRewritePattern(ctx), queryTileRows(queryTileRows), kvTile(kvTile),
        vectorLanes(vectorLanes), decodeItems(decodeItems) {}
  LogicalResult matchAndRewrite(FlashAttentionOp op,
                                PatternRewriter &rewriter) const override {
    IB b(op.getLoc(), rewriter);
    auto queryType = op.getQuery().getType();
    auto keyType = op.getKey().getType();
    AttentionParams p{queryType.getDimSize(1), keyType.getDimSize(1),
                      queryType.getDimSize(2), queryTileRows, vectorLanes, op.getMask(),
                      op.getScaleOrDefault(), queryType.getElementType()};
    if (ShapedType::isDynamic(p.numHeads) || ShapedType::isDynamic(p.kvHeads) ||
        ShapedType::isDynamic(p.headDim))
      return rewriter.notifyMatchFailure(op, "needs static heads and head dim");
    Value key = op.getKey(), value = op.getValue();
    Value qOffsets = op.getQRowOffsets(), kvOffsets = op.getKvRowOffsets();
    Value tokens = dim(b, op.getQuery(), 0);
    Value keyRows = dim(b, key, 0);
    Value batch = arith::SubIOp::create(b, dim(b, qOffsets, 0), cIndex(b, 1));
    batch = maxIdx(b, batch, cIndex(b, 0));
    auto bounds = [&](IB &ib, Value seq) -> std::tuple<Value, Value, Value> {
      auto [qStart, qEnd] = sequenceRows(ib, qOffsets, seq, tokens);
      auto [kvStart, kvEnd] = sequenceRows(ib, kvOffsets, seq, keyRows);
      return {qStart, arith::SubIOp::create(ib, qEnd, qStart),
              arith::SubIOp::create(ib, kvEnd, kvStart)};
    };
    int64_t tile = kvTile;
    auto source = [&](IB &ib, Value seq) -> KVSource {
      Value kvStart = sequenceRows(ib, kvOffsets, seq, keyRows).first;
      KVSource s;
      s.tileSize = tile;
      s.prepareTile = [=](IB &lb, Value t) -> Value {
        return arith::AddIOp::create(
            lb, kvStart, arith::MulIOp::create(lb, t, cIndex(lb, tile)));
      };
      s.readRow = [=](IB &lb, Value base, int64_t kv, Value kvHead, Value c,
                      Value d0, int64_t width) -> Value {
        Value lastRow = maxIdx(lb, arith::SubIOp::create(lb, keyRows, cIndex(lb, 1)),
                               cIndex(lb, 0));
        Value row = minIdx(lb, arith::AddIOp::create(lb, base, c), lastRow);
        return vecToF32(lb, readVector(lb, kv == 0 ? key : value,
                                       {row, kvHead, d0}, width));
      };
      s.loadValues = [=](IB &lb, Value t, Value kvHead, Value kvLen) -> Value {
        Value tileStart = arith::MulIOp::create(lb, t, cIndex(lb, tile));
        Value valid = arith::SubIOp::create(lb, kvLen, tileStart);
        Value base = arith::AddIOp::create(lb, kvStart, tileStart);
        Value lastRow = maxIdx(lb, arith::SubIOp::create(lb, keyRows, cIndex(lb, 1)),
                               cIndex(lb, 0));
        return loadValueRows(lb, tile, p.headDim, valid,
                             [&](IB &g, Value c) -> Value {
                               Value row = minIdx(g, arith::AddIOp::create(g, base, c),
                                                  lastRow);
                               return readVector(g, value, {row, kvHead, cIndex(g, 0)},
                                                 p.headDim);
                             });
      };
      s.loadTile = [=](IB &lb, Value t, int64_t kv, Value kvHead,
                       Value kvLen) -> Value {
        Value tileStart = arith::MulIOp::create(lb, t, cIndex(lb, tile));
        Value valid = arith::SubIOp::create(lb, kvLen, tileStart);
        Value base = arith::AddIOp::create(lb, kvStart, tileStart);
        Value src = kv == 0 ? key : value;
        return gatherTile(lb, tile, p.headDim, valid,
                          [&](IB &g, Value row, Value col) -> Value {
                            Value r = arith::AddIOp::create(g, base, row);
                            return tensor::ExtractOp::create(
                                g, src, ValueRange{r, kvHead, col});
                          });
      };
      return s;
    };
    Value out = buildAttention(b, p, tile, decodeItems, op.getQuery(), batch,
                               bounds, source);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
  int64_t queryTileRows, kvTile, vectorLanes, decodeItems;
};

struct ConvertAttnToLinalgPass
    : attn::impl::ConvertAttnToLinalgBase<ConvertAttnToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    if (queryTileRows < 1 || kvTile < 1 || vectorLanes < 0 || packedMinRows < 0 ||
        decodeItems < 0) {
      getOperation()->emitError(
          "q-tile-rows and kv-tile must be positive, vector-lanes, "
          "packed-min-rows and decode-items >= 0");
      return signalPassFailure();
    }
    RewritePatternSet patterns(ctx);
    patterns.add<LowerLinear, LowerQKVProjection>(ctx, vectorLanes,
                                                  packedMinRows);
    patterns.add<LowerRMSNorm, LowerRope, LowerKVCacheStore, LowerRopeStore>(
        ctx);
    patterns.add<LowerPagedFlashAttention>(ctx, queryTileRows, vectorLanes,
                                           decodeItems);
    patterns.add<LowerFlashAttention>(ctx, queryTileRows, kvTile, vectorLanes,
                                      decodeItems);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
    // attn.rope reads its table's attribute, so tables are lowered last and
    // only where something else uses them.
    RewritePatternSet tablePatterns(ctx);
    tablePatterns.add<LowerRopeFreqs>(ctx);
    walkAndApplyPatterns(getOperation(), std::move(tablePatterns));
    getOperation()->walk([](RopeFreqsOp op) {
      if (op->use_empty())
        op->erase();
    });
    WalkResult left = getOperation()->walk([](Operation *op) {
      if (isa<AttnDialect>(op->getDialect()) &&
          !isa<PagedCacheMakeOp, PagedCachePartsOp>(op)) {
        op->emitError("could not lower this op");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
