//===- NormRope.cpp - attn.rms_norm / attn.rope(_freqs) to linalg ---------===//
//
// The RMS norm as an f32 sum-of-squares reduction and a scaling generic;
// RoPE with per-row positions from the row offsets and cache lengths and
// cos/sin computed in f64 from the rope attribute (or gathered from a
// table operand), one rotation generic; attn.rope_freqs tables as one
// generic where something other than attn.rope reads them.
//
//===----------------------------------------------------------------------===//

#include "NormRope.h"
#include "Patterns.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

//===----------------------------------------------------------------------===//
// RMS norm
//===----------------------------------------------------------------------===//

Value linalg_lowering::buildRMSNorm(IB &b, Value input, Value gamma,
                                    double epsValue) {
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

namespace {

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

} // namespace

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

namespace {

/// Inverse frequencies of a rope as an f64 constant `[D/2]`; LongRoPE gets a
/// second one for positions from `original_max_position` on.
struct InvFreqTables {
  Value base, longFactors;
  int64_t switchPosition = 0;
  double magnitude = 1.0;
};

} // namespace

static InvFreqTables buildInvFreqTables(IB &b, RopeAttr rope, int64_t headDim) {
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
static std::pair<Value, Value> buildRowCosSin(IB &b, Value positions,
                                              int64_t headDim, RopeAttr rope,
                                              Value table) {
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
        BuilderScope scope(ib);
        Idx col = Value(linalg::IndexOp::create(ib, 1));
        Value cosV, sinV;
        if (table) {
          Idx rows = dim(ib, table, 0);
          Idx pos = indexCast(ib, args[0], ib.getIndexType());
          pos = clamp(ib, pos, cIndex(ib, 0), rows - 1);
          Idx even = col * 2;
          Idx odd = even + 1;
          cosV = tensor::ExtractOp::create(ib, table, ValueRange{pos, even});
          sinV = tensor::ExtractOp::create(ib, table, ValueRange{pos, odd});
        } else {
          InvFreqTables tables = buildInvFreqTables(ib, rope, headDim);
          Value invFreq = tensor::ExtractOp::create(ib, tables.base, col);
          if (tables.longFactors) {
            Value longInv = tensor::ExtractOp::create(ib, tables.longFactors, col);
            Idx isLong = Idx(args[0]) >= tables.switchPosition;
            invFreq = select(ib, isLong, longInv, invFreq);
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

std::pair<Value, Value>
linalg_lowering::ropeCosSin(IB &b, Value freqs, Value rowOffsets,
                            Value cacheLengths, Value tokens, int64_t headDim) {
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
static Value rotateElement(IB &ib, Value src, Value row, Value head, Value col,
                           Value x, Value cosV, Value sinV, bool interleaved,
                           int64_t half, Type elementType) {
  BuilderScope scope(ib);
  // Partner of `col` in its pair and whether `col` comes first.
  Value partner, first;
  if (interleaved) {
    first = Idx(col) % 2 == 0;
    partner = Idx(col) ^ 1;
  } else {
    first = ult(ib, col, cIndex(ib, half));
    partner = select(ib, first, Idx(col) + half, Idx(col) - half);
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

Value linalg_lowering::buildRope(IB &b, Value input, Value cosT, Value sinT,
                                 bool interleaved) {
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

namespace {

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
                          IB ib(loc, ob);
                          Value idx = linalg::IndexOp::create(ib, 0);
                          linalg::YieldOp::create(
                              ib, ValueRange{indexCast(ib, idx,
                                                       ib.getI32Type())});
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
          BuilderScope scope(ib);
          Idx col = Value(linalg::IndexOp::create(ib, 1));
          Idx even = col % 2 == 0;
          linalg::YieldOp::create(ib,
                                  ValueRange{select(ib, even, args[0], args[1])});
        });
    rewriter.replaceOp(op, out);
    return success();
  }
};

} // namespace

void linalg_lowering::populateNormRopePatterns(RewritePatternSet &patterns) {
  patterns.add<LowerRMSNorm, LowerRope>(patterns.getContext());
}

void linalg_lowering::populateRopeTablePatterns(RewritePatternSet &patterns) {
  patterns.add<LowerRopeFreqs>(patterns.getContext());
}
