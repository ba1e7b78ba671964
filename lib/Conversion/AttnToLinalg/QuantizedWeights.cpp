//===- QuantizedWeights.cpp - quantised weights decoded in registers ------===//
//
// Decoding as python/attn/reference.py (Float8Weight) writes it: the readers
// produce exactly the decoded f32 weights, so the kernels' only difference
// from the reference is f32 accumulation. GPTQ's activations are prepared
// here (desc_act); its weights have their own kernel (GPTQLanes.cpp).
//
//===----------------------------------------------------------------------===//

#include "QuantizedWeights.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

namespace {

Value splatI32(IB &b, int64_t value, int64_t n) {
  return splat(b, cI32(b, value), n);
}

Value bitcast(IB &b, Type type, Value v) {
  return arith::BitcastOp::create(b, type, v);
}

/// float8 E4M3FN bytes widened to f32 by their bits, times the weight scale
/// of the row or block (`width` divides the 128-wide blocks). The sign-
/// extended byte shifted by 20 holds sign, exponent and mantissa where f32
/// has them; adding 120 to the exponent gives the normal values. A subnormal
/// `m 2^-9` is built as `2^-6 (1 + m / 8) - 2^-6`, which stays clear of f32
/// subnormals (a host flushing them would lose it). 0x7F / 0xFF are NaN.
struct Float8Reader : WeightReader {
  Float8Reader(Value weight, Value scale, Float8ScaleGranularity granularity)
      : weight(weight), scale(scale), granularity(granularity) {}

  Value row(IB &b, Value n, Value k, int64_t width) override {
    BuilderScope scope(b);
    auto i32Type = vecType(b.getI32Type(), {width});
    auto f32Type = vecType(b.getF32Type(), {width});
    auto c = [&](int64_t v) { return splatI32(b, v, width); };
    Value bytes = bitcast(b, vecType(b.getI8Type(), {width}),
                          readVector(b, weight, {n, k}, width));
    Value v = arith::ExtSIOp::create(b, i32Type, bytes);
    Value bits = arith::AndIOp::create(
        b, arith::ShLIOp::create(b, v, c(20)),
        c(static_cast<int32_t>(0x87F00000u)));
    Value isSubnormal = arith::CmpIOp::create(
        b, arith::CmpIPredicate::eq, arith::AndIOp::create(b, v, c(0x78)),
        c(0));
    Value exponentBias =
        arith::SelectOp::create(b, isSubnormal, c(121 << 23), c(120 << 23));
    Value biased =
        bitcast(b, f32Type, arith::AddIOp::create(b, bits, exponentBias));
    // +-2^-6 for subnormals, +-0 (no change) for the others.
    Value sign = arith::AndIOp::create(b, bits,
                                       c(static_cast<int32_t>(0x80000000u)));
    Value offset = bitcast(
        b, f32Type,
        arith::OrIOp::create(
            b, sign,
            arith::SelectOp::create(b, isSubnormal, c(121 << 23), c(0))));
    Value decoded = arith::SubFOp::create(b, biased, offset);
    Value isNaN =
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                              arith::AndIOp::create(b, v, c(0x7F)), c(0x7F));
    decoded = arith::SelectOp::create(
        b, isNaN, splat(b, cF32(b, std::nan("")), width), decoded);
    return arith::MulFOp::create(b, decoded,
                                 splat(b, weightScale(b, n, k), width));
  }

  Value weightScale(IB &b, Value n, Value k) {
    constexpr int64_t block = Float8Attr::kBlockSize;
    switch (granularity) {
    case Float8ScaleGranularity::Tensor:
      return tensor::ExtractOp::create(b, scale, ValueRange{cIndex(b, 0)});
    case Float8ScaleGranularity::Row:
      return tensor::ExtractOp::create(b, scale, ValueRange{n});
    case Float8ScaleGranularity::Block:
      return tensor::ExtractOp::create(
          b, scale, ValueRange{Idx(n) / block, Idx(k) / block});
    }
    llvm_unreachable("unknown float8 scale granularity");
  }

  Value weight, scale;
  Float8ScaleGranularity granularity;
};

/// An f32 tensor of the shape of `x`.
Value emptyF32Like(IB &b, Value x) {
  return emptyTensor(b, tensor::getMixedSizes(b, b.getLoc(), x),
                     b.getF32Type());
}

/// `xp[t, r] = x[t, perm[r]]` in f32 (GPTQ desc_act).
Value permuteColumns(IB &b, Value x, Value perm) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, r;
  bindDims(ctx, t, r);
  return generic(
      b, emptyF32Like(b, x), {perm}, {map(ctx, 2, {r}), map(ctx, 2, {t, r})},
      iterators(2), [&](OpBuilder &ob, Location loc, ValueRange args) {
        Value row = linalg::IndexOp::create(ob, loc, 0);
        Value col =
            arith::IndexCastOp::create(ob, loc, ob.getIndexType(), args[0]);
        Value v = tensor::ExtractOp::create(ob, loc, x, ValueRange{row, col});
        linalg::YieldOp::create(ob, loc, ValueRange{toF32(ob, loc, v)});
      });
}

/// Dynamic float8 input scales `s[t] = min(max_k |x[t, k]|, bound) / 448`.
Value dynamicInputScales(IB &b, Value x, std::optional<APFloat> bound) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, k;
  bindDims(ctx, t, k);
  Value tokens = dim(b, x, 0);
  Value amax =
      generic(b, filled(b, {tokens}, cF32(b, 0.0)), {x},
              {map(ctx, 2, {t, k}), map(ctx, 2, {t})}, iterators(1, 1),
              [&](OpBuilder &ob, Location loc, ValueRange args) {
                Value a =
                    math::AbsFOp::create(ob, loc, toF32(ob, loc, args[0]));
                linalg::YieldOp::create(
                    ob, loc,
                    ValueRange{arith::MaximumFOp::create(ob, loc, args[1], a)});
              });
  return generic(
      b, emptyTensor(b, {tokens}, b.getF32Type()), {amax},
      {map(ctx, 1, {t}), map(ctx, 1, {t})}, iterators(1),
      [&](OpBuilder &ob, Location loc, ValueRange args) {
        Value a = args[0];
        if (bound)
          a = arith::MinimumFOp::create(
              ob, loc, a,
              arith::ConstantOp::create(
                  ob, loc, ob.getF32FloatAttr(bound->convertToDouble())));
        Value max = arith::ConstantOp::create(ob, loc, ob.getF32FloatAttr(448));
        linalg::YieldOp::create(
            ob, loc, ValueRange{arith::DivFOp::create(ob, loc, a, max)});
      });
}

/// `v` (|v| <= 448) rounded to the nearest E4M3 value, ties to even: to a
/// multiple of the quantum `2^(max(e, -6) - 3)` of its binade `e`, scaling
/// by exact powers of two.
Value roundToE4M3(OpBuilder &ob, Location loc, Value v) {
  IB b(loc, ob);
  BuilderScope scope(b);
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  Value bits = bitcast(b, i32, v);
  Value biased = arith::AndIOp::create(
      b, arith::ShRUIOp::create(b, bits, cI32(b, 23)), cI32(b, 0xFF));
  // Biased exponent of the quantum: max(e, 127 - 6) - 3.
  Value quantumExp = arith::SubIOp::create(
      b, arith::MaxUIOp::create(b, biased, cI32(b, 121)), cI32(b, 3));
  Value quantum =
      bitcast(b, f32, arith::ShLIOp::create(b, quantumExp, cI32(b, 23)));
  Value inverse = bitcast(
      b, f32,
      arith::ShLIOp::create(
          b, arith::SubIOp::create(b, cI32(b, 254), quantumExp), cI32(b, 23)));
  Value steps =
      math::RoundEvenOp::create(b, arith::MulFOp::create(b, v, inverse));
  return arith::MulFOp::create(b, steps, quantum);
}

/// `x8[t, k] = E4M3(clamp(x[t, k] / s[t], -448, 448))` as f32 values; a row
/// with `s = 0` (all zeros) gives zeros.
Value quantizeInput(IB &b, Value x, Value scales) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, k;
  bindDims(ctx, t, k);
  return generic(
      b, emptyF32Like(b, x), {x, scales},
      {map(ctx, 2, {t, k}), map(ctx, 2, {t}), map(ctx, 2, {t, k})},
      iterators(2), [&](OpBuilder &ob, Location loc, ValueRange args) {
        Value s = args[1];
        Value zeroF = arith::ConstantOp::create(ob, loc, ob.getF32FloatAttr(0));
        Value hi = arith::ConstantOp::create(ob, loc, ob.getF32FloatAttr(448));
        Value lo = arith::ConstantOp::create(ob, loc, ob.getF32FloatAttr(-448));
        Value positive =
            arith::CmpFOp::create(ob, loc, arith::CmpFPredicate::OGT, s, zeroF);
        Value one = arith::ConstantOp::create(ob, loc, ob.getF32FloatAttr(1));
        Value safe = arith::SelectOp::create(ob, loc, positive, s, one);
        Value v = arith::DivFOp::create(ob, loc, toF32(ob, loc, args[0]), safe);
        v = arith::MinimumFOp::create(
            ob, loc, arith::MaximumFOp::create(ob, loc, v, lo), hi);
        Value q = roundToE4M3(ob, loc, v);
        linalg::YieldOp::create(
            ob, loc,
            ValueRange{arith::SelectOp::create(ob, loc, positive, q, zeroF)});
      });
}

} // namespace

QuantizedProjection linalg_lowering::prepareQuantizedProjection(IB &b, Value x,
                                                                Value weight) {
  auto op = weight.getDefiningOp<QuantizedWeightOp>();
  ValueRange parts = op.getParts();
  WeightEncodingAttrInterface encoding = op.getWeight().getType().getEncoding();
  QuantizedProjection projection;
  projection.input = x;
  if (auto gptq = dyn_cast<GPTQAttr>(encoding)) {
    // Its own kernel reads the parts (GPTQLanes.h).
    if (gptq.getDescAct())
      projection.input = permuteColumns(b, x, parts[2]);
    return projection;
  }
  if (auto gguf = dyn_cast<GGUFAttr>(encoding)) {
    projection.weights = makeGGUFReader(parts[0], gguf);
    return projection;
  }
  auto float8 = cast<Float8Attr>(encoding);
  if (float8.getInputScale() == Float8InputScale::Static)
    projection.rowScale = filled(
        b, {dim(b, x, 0)},
        tensor::ExtractOp::create(b, parts[2], ValueRange{cIndex(b, 0)}));
  else
    projection.rowScale = dynamicInputScales(b, x, float8.getUpperBound());
  projection.input = quantizeInput(b, x, projection.rowScale);
  projection.weights = std::make_unique<Float8Reader>(parts[0], parts[1],
                                                      float8.getWeightScale());
  return projection;
}
