//===- AttentionKernels.cpp - CPU attention tile kernels ------------------===//

#include "AttentionKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <numeric>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

/// Loops `r0` over row blocks and `col0` over column blocks of `init`
/// ([rows, cols]), calling `body` for each 4 x `width` block.
static Value forBlocks(
    IB &b, Value init, int64_t rows, int64_t cols, int64_t width,
    int64_t rowBlock,
    function_ref<Value(IB &, Value r0, Value col0, Value acc)> body) {
  return forLoop(b, cIndex(b, 0), cIndex(b, rows), rowBlock, ValueRange{init},
                 [&](IB &ib, Idx r0, ValueRange rowState) {
                   return forLoop(ib, cIndex(ib, 0), cIndex(ib, cols), width,
                                  rowState,
                                  [&](IB &i2, Idx col0, ValueRange state)
                                      -> SmallVector<Value> {
                                    return {body(i2, r0, col0, state[0])};
                                  });
                 })[0];
}

Value linalg_lowering::panelOf(IB &b, Value panels, Value index) {
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

Value linalg_lowering::packColumns(IB &b, Value src, int64_t width) {
  auto type = cast<RankedTensorType>(src.getType());
  int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
  Value init = emptyTensor(b, {b.getIndexAttr(cols / width), b.getIndexAttr(rows),
                               b.getIndexAttr(width)},
                           b.getF32Type());
  return forLoop(b, cIndex(b, 0), cIndex(b, rows), 1, ValueRange{init},
                 [&](IB &ib, Idx r, ValueRange state) -> SmallVector<Value> {
                   Value out = state[0];
                   for (int64_t c0 = 0; c0 < cols; c0 += width)
                     out = writeVector(
                         ib, readVector(ib, src, {r, cIndex(ib, c0)}, width),
                         out, {cIndex(ib, c0 / width), r, cIndex(ib, 0)});
                   return {out};
                 })[0];
}

Value linalg_lowering::vectorScores(IB &b, Value q, Value keyPanels,
                                    int64_t rows, int64_t tile, int64_t headDim,
                                    int64_t rowBlock, BlockKeysFn blockKeys) {
  int64_t width = cast<RankedTensorType>(keyPanels.getType()).getDimSize(2);
  Value init = emptyTensor(b, {b.getIndexAttr(rows), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zeros = zero(b, vecType(b.getF32Type(), {width}));
  return forBlocks(b, init, rows, tile, width, rowBlock,
                   [&](IB &ib, Value r0, Value c0, Value acc) {
                     BuilderScope scope(ib);
                     SmallVector<Value> start(rowBlock, zeros);
                     auto [begin, end] = blockKeys(ib, r0);
                     Idx seen = (Idx(c0) < end) & (Idx(c0) + width > begin);
                     SmallVector<Value> sums =
                         ifElse(ib, seen, start, [&](IB &t) {
                           Value panel = panelOf(t, keyPanels, Idx(c0) / width);
                           return outerProducts(t, q, panel,
                                                blockRows(t, r0, rowBlock),
                                                cIndex(t, 0), headDim, width,
                                                start);
                         });
                     for (int64_t i = 0; i < rowBlock; ++i)
                       acc = writeVector(ib, sums[i], acc, {Idx(r0) + i, c0});
                     return acc;
                   });
}

Value linalg_lowering::vectorScoresDot(
    IB &b, Value q, int64_t rows, int64_t tile, int64_t headDim,
    Value validKeys,
    function_ref<Value(IB &, Value c, Value d0, int64_t width)> keyRow) {
  constexpr int64_t keysPerStep = 4;
  int64_t width = headDim % 16 == 0 ? 16 : kLanes;
  Value init = emptyTensor(b, {b.getIndexAttr(rows), b.getIndexAttr(tile)},
                           b.getF32Type());
  Value zeros = zero(b, vecType(b.getF32Type(), {width}));
  BuilderScope scope(b);
  Idx lastKey = Idx(validKeys) - 1;
  return forLoop(
      b, cIndex(b, 0), validKeys, keysPerStep, ValueRange{init},
      [&](IB &ib, Idx c0, ValueRange state) -> SmallVector<Value> {
        SmallVector<Value> keys;
        for (int64_t j = 0; j < keysPerStep; ++j)
          keys.push_back(min(ib, c0 + j, lastKey));
        SmallVector<Value> start(rows * keysPerStep, zeros);
        SmallVector<Value> dots = forLoop(
            ib, cIndex(ib, 0), cIndex(ib, headDim), width, start,
            [&](IB &i2, Idx d0, ValueRange acc) {
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
              return next;
            });
        Value out = state[0];
        for (int64_t j = 0; j < keysPerStep; ++j)
          for (int64_t r = 0; r < rows; ++r) {
            Value sum = vector::ReductionOp::create(
                ib, vector::CombiningKind::ADD, dots[j * rows + r]);
            out = tensor::InsertOp::create(ib, sum, out,
                                           ValueRange{cIndex(ib, r), keys[j]});
          }
        return {out};
      })[0];
}

Value linalg_lowering::vectorAccumulate(IB &b, Value acc, Value alpha,
                                        Value probs, Value values, int64_t rows,
                                        int64_t tile, int64_t headDim,
                                        int64_t rowBlock, int64_t maxWidth,
                                        BlockKeysFn blockKeys) {
  auto valuesType = cast<RankedTensorType>(values.getType());
  bool packed = valuesType.getRank() == 3;
  int64_t width = packed ? valuesType.getDimSize(2) : blockWidth(headDim, maxWidth);
  return forBlocks(b, acc, rows, headDim, width, rowBlock,
                   [&](IB &ib, Value r0, Value d0, Value out) {
                     BuilderScope scope(ib);
                     SmallVector<Value> start;
                     for (int64_t i = 0; i < rowBlock; ++i) {
                       Idx row = Idx(r0) + i;
                       Value a = tensor::ExtractOp::create(ib, alpha, row);
                       start.push_back(arith::MulFOp::create(
                           ib, readVector(ib, out, {row, d0}, width),
                           splat(ib, a, width)));
                     }
                     Value rhs = values, col = d0;
                     if (packed) {
                       rhs = panelOf(ib, values, Idx(d0) / width);
                       col = cIndex(ib, 0);
                     }
                     Value begin, end;
                     if (blockKeys)
                       std::tie(begin, end) = blockKeys(ib, r0);
                     SmallVector<Value> sums = outerProducts(
                         ib, probs, rhs, blockRows(ib, r0, rowBlock), col, tile,
                         width, start, begin, end);
                     for (int64_t i = 0; i < rowBlock; ++i)
                       out = writeVector(ib, sums[i], out, {Idx(r0) + i, d0});
                     return out;
                   });
}

std::array<Value, 4> linalg_lowering::vectorSoftmaxStep(
    IB &b, Value scores, Value m, Value l, int64_t rows, int64_t tile,
    function_ref<std::pair<Value, Value>(IB &, Value row)> visibleRange) {
  Type f32 = b.getF32Type();
  Value probsInit = emptyTensor(b, {b.getIndexAttr(rows), b.getIndexAttr(tile)}, f32);
  Value mInit = emptyTensor(b, {b.getIndexAttr(rows)}, f32);
  Value lInit = emptyTensor(b, {b.getIndexAttr(rows)}, f32);
  Value alphaInit = emptyTensor(b, {b.getIndexAttr(rows)}, f32);
  Value negInf = negInfF32(b);
  SmallVector<Value> results = forLoop(
      b, cIndex(b, 0), cIndex(b, rows), 1,
      ValueRange{probsInit, mInit, lInit, alphaInit},
      [&](IB &ib, Idx r, ValueRange state) -> SmallVector<Value> {
        auto i32 = ib.getI32Type();
        SmallVector<int32_t> iota(tile);
        std::iota(iota.begin(), iota.end(), 0);
        Value keys = arith::ConstantOp::create(
            ib, DenseElementsAttr::get(vecType(i32, {tile}), ArrayRef<int32_t>(iota)));
        auto [lo, hi] = visibleRange(ib, r);
        auto limit = [&](Value v) {
          return splat(ib, indexCast(ib, v, i32), tile);
        };
        // Lane compares (not index math): the constant lanes stay the left
        // operand.
        Value atOrAfter = arith::CmpIOp::create(ib, arith::CmpIPredicate::sge,
                                                keys, limit(lo));
        Value visible = arith::AndIOp::create(
            ib, atOrAfter,
            arith::CmpIOp::create(ib, arith::CmpIPredicate::slt, keys,
                                  limit(hi)));
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
        return {probs, tensor::InsertOp::create(ib, mNew, state[1], r),
                tensor::InsertOp::create(ib, lNew, state[2], r),
                tensor::InsertOp::create(ib, alpha, state[3], r)};
      });
  return {results[0], results[1], results[2], results[3]};
}
