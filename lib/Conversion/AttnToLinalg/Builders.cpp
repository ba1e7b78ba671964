//===- Builders.cpp - shared builders of the attn -> linalg lowering ------===//

#include "Builders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

//===----------------------------------------------------------------------===//
// Small builders
//===----------------------------------------------------------------------===//

std::pair<Value, Value> linalg_lowering::sequenceRows(IB &b, Value rowOffsets,
                                                      Value seq, Value limit) {
  BuilderScope scope(b);
  Value start = clamp(b, loadIndex(b, rowOffsets, {seq}), cIndex(b, 0), limit);
  Value next = Idx(seq) + 1;
  Value end = clamp(b, loadIndex(b, rowOffsets, {next}), start, limit);
  return {start, end};
}

Value linalg_lowering::emptyTensor(IB &b, ArrayRef<OpFoldResult> sizes,
                                   Type elementType) {
  return tensor::EmptyOp::create(b, sizes, elementType);
}

Value linalg_lowering::filled(IB &b, ArrayRef<OpFoldResult> sizes,
                              Value scalar) {
  Value empty = emptyTensor(b, sizes, scalar.getType());
  return linalg::FillOp::create(b, ValueRange{scalar}, ValueRange{empty})
      .getResult(0);
}

SmallVector<IteratorType> linalg_lowering::iterators(int64_t parallel,
                                                     int64_t reduction) {
  SmallVector<IteratorType> its(parallel, IteratorType::parallel);
  its.append(reduction, IteratorType::reduction);
  return its;
}

AffineMap linalg_lowering::map(MLIRContext *ctx, int64_t numDims,
                               ArrayRef<AffineExpr> exprs) {
  return AffineMap::get(numDims, 0, exprs, ctx);
}

Value linalg_lowering::generic(IB &b, Value init, ValueRange inputs,
                               ArrayRef<AffineMap> maps,
                               ArrayRef<IteratorType> its, BodyFn body) {
  return linalg::GenericOp::create(b, TypeRange{init.getType()}, inputs,
                                   ValueRange{init}, maps, its, body)
      .getResult(0);
}

Value linalg_lowering::splitRows(IB &b, Value x, int64_t depth, int64_t run) {
  auto type = cast<RankedTensorType>(x.getType());
  auto split = RankedTensorType::get({ShapedType::kDynamic, depth / run, run},
                                     type.getElementType());
  SmallVector<OpFoldResult> shape = {dim(b, x, 0), b.getIndexAttr(depth / run),
                                     b.getIndexAttr(run)};
  SmallVector<ReassociationIndices> groups = {{0}, {1, 2}};
  return tensor::ExpandShapeOp::create(b, split, x, groups, shape);
}

Value linalg_lowering::rowPositions(IB &b, Value rowOffsets, Value cacheLengths,
                                    Value tokens) {
  Value zeroI32 = arith::ConstantOp::create(b, b.getI32IntegerAttr(0));
  Value init = filled(b, {tokens}, zeroI32);
  Value batch = dim(b, cacheLengths, 0);
  Value one = cIndex(b, 1);
  return forLoop(
      b, cIndex(b, 0), batch, one, ValueRange{init},
      [&](IB &ib, Idx seq, ValueRange rows) {
        auto [start, end] = sequenceRows(ib, rowOffsets, seq, tokens);
        Idx base = loadIndex(ib, cacheLengths, {seq}) - start;
        return forLoop(
            ib, start, end, one, rows,
            [&](IB &ib2, Idx row, ValueRange state) -> SmallVector<Value> {
              Value pos = indexCast(ib2, base + row, ib2.getI32Type());
              return {tensor::InsertOp::create(ib2, pos, state[0], {row})};
            });
      })[0];
}

//===----------------------------------------------------------------------===//
// Vector helpers
//===----------------------------------------------------------------------===//

VectorType linalg_lowering::vecType(Type element, ArrayRef<int64_t> shape) {
  return VectorType::get(shape, element);
}

Value linalg_lowering::vecToF32(IB &b, Value v) {
  auto type = cast<VectorType>(v.getType());
  if (type.getElementType().isF32())
    return v;
  auto f32Type = vecType(b.getF32Type(), type.getShape());
  if (type.getElementType().getIntOrFloatBitWidth() < 32)
    return arith::ExtFOp::create(b, f32Type, v);
  return arith::TruncFOp::create(b, f32Type, v);
}

Value linalg_lowering::splat(IB &b, Value scalar, int64_t n) {
  return vector::BroadcastOp::create(b, vecType(scalar.getType(), {n}), scalar);
}

Value linalg_lowering::readVector(IB &b, Value source, ValueRange indices,
                                  int64_t n) {
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

Value linalg_lowering::writeVector(IB &b, Value vector, Value dest,
                                   ValueRange indices) {
  auto type = cast<RankedTensorType>(dest.getType());
  AffineMap minor = AffineMap::getMinorIdentityMap(type.getRank(), 1,
                                                   b.getContext());
  SmallVector<bool> inBounds = {true};
  return vector::TransferWriteOp::create(b, vector, dest, indices, minor,
                                         ArrayRef<bool>(inBounds))
      .getResult();
}

//===----------------------------------------------------------------------===//
// Register blocks (projection and attention kernels)
//===----------------------------------------------------------------------===//

Value linalg_lowering::transposeKeys(
    IB &b, int64_t tile, int64_t headDim,
    function_ref<Value(IB &, Value c, Value d0)> readRow) {
  Value init = emptyTensor(b, {b.getIndexAttr(headDim), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zero = cIndex(b, 0);
  auto blockType = vecType(b.getF32Type(), {kLanes, kLanes});
  return forLoop(
      b, zero, cIndex(b, tile), kLanes, ValueRange{init},
      [&](IB &ib, Idx c0, ValueRange columns) {
        return forLoop(
            ib, zero, cIndex(ib, headDim), kLanes, columns,
            [&](IB &i2, Idx d0, ValueRange state) -> SmallVector<Value> {
              Value block = kb::zero(i2, blockType);
              for (int64_t i = 0; i < kLanes; ++i)
                block = vector::InsertOp::create(i2, readRow(i2, c0 + i, d0),
                                                 block, ArrayRef<int64_t>{i});
              Value t = vector::TransposeOp::create(i2, block,
                                                    ArrayRef<int64_t>{1, 0});
              SmallVector<bool> allIn = {true, true};
              return {vector::TransferWriteOp::create(
                          i2, t, state[0], ValueRange{d0, c0},
                          AffineMap::getMultiDimIdentityMap(2, i2.getContext()),
                          ArrayRef<bool>(allIn))
                          .getResult()};
            });
      })[0];
}

SmallVector<Value> linalg_lowering::blockRows(IB &b, Value r0, int64_t count) {
  BuilderScope scope(b);
  SmallVector<Value> rows;
  for (int64_t i = 0; i < count; ++i)
    rows.push_back(Idx(r0) + i);
  return rows;
}

SmallVector<Value> linalg_lowering::outerProducts(IB &b, Value lhs, Value rhs,
                                                  ArrayRef<Value> rows,
                                                  Value col0, int64_t depth,
                                                  int64_t width, ValueRange acc,
                                                  Value kBegin, Value kEnd) {
  int64_t rowBlock = acc.size();
  return forLoop(
      b, kBegin ? kBegin : Value(cIndex(b, 0)),
      kEnd ? kEnd : Value(cIndex(b, depth)), 1, acc,
      [&](IB &ib, Idx k, ValueRange state) {
        Value column = readVector(ib, rhs, {k, col0}, width);
        SmallVector<Value> next;
        for (int64_t i = 0; i < rowBlock; ++i) {
          Value scalar = tensor::ExtractOp::create(ib, lhs, ValueRange{rows[i], k});
          next.push_back(vector::FMAOp::create(ib, splat(ib, scalar, width),
                                               column, state[i]));
        }
        return next;
      });
}

int64_t linalg_lowering::blockWidth(int64_t n, int64_t maxWidth) {
  for (int64_t width : {maxWidth, int64_t(16)})
    if (width <= maxWidth && n % width == 0)
      return width;
  return kLanes;
}
