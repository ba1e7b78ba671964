//===- GGUFInt8.cpp - GGUF K-quant projections on int8 dots ---------------===//
//
// Q8_K activations as llama.cpp's quantize_row_q8_K writes them (per 256
// elements: iscale = 127 / max|x|, q = round-half-even(iscale x), d8 =
// 1 / iscale; llama.cpp divides by the signed maximum, which negates q and
// d8 together and leaves every product d8 q unchanged) and the sums of 16
// consecutive q. The dot kernel multiplies the unsigned weight quants with
// them by vpmaddubsw (no pair of products saturates: 2 * 63 * 127 < 2^15),
// weights the 16-bit pair sums by the sub-block scale with vpdpwssd
// (AVX512-VNNI) or vpmaddwd (AVX2) into 32-bit lanes, and applies the
// super-block factors in f32; the per-scale-run vpdpwssd replaces the
// vpdpbusd + vpmulld pair a direct 4-way byte dot would need.
//
//===----------------------------------------------------------------------===//

#include "GGUFInt8.h"
#include "Projections.h"
#include "QuantizedWeights.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

/// Elements of a Q8_K block (and of a K-quant super-block).
constexpr int64_t kSuperBlock = 256;
/// Elements per Q8_K block sum.
constexpr int64_t kSumRun = 16;
/// Bytes per 256-bit integer vector.
constexpr int64_t kBytes = 32;

std::optional<Int8Dot> linalg_lowering::parseInt8Dot(StringRef name) {
  if (name == "none")
    return Int8Dot::None;
  if (name == "avx2")
    return Int8Dot::AVX2;
  if (name == "avx512-vnni")
    return Int8Dot::AVX512VNNI;
  return std::nullopt;
}

bool linalg_lowering::hasInt8Kernel(GGUFAttr encoding) {
  return encoding.getType() == GGUFType::Q4_K ||
         encoding.getType() == GGUFType::Q6_K;
}

namespace {

/// Q8_K activations: `quants [T, K] i8`, `scales [T, K / 256] f32` (d8),
/// `sums [T, K / 16] i16` (|sum| <= 16 * 127).
struct Q8K {
  Value quants, scales, sums;
};

/// `x [T, K]` viewed as `[T, K / run, run]`.
Value splitRows(IB &b, Value x, int64_t depth, int64_t run) {
  auto type = cast<RankedTensorType>(x.getType());
  auto split = RankedTensorType::get({ShapedType::kDynamic, depth / run, run},
                                     type.getElementType());
  SmallVector<OpFoldResult> shape = {dim(b, x, 0), b.getIndexAttr(depth / run),
                                     b.getIndexAttr(run)};
  SmallVector<ReassociationIndices> groups = {{0}, {1, 2}};
  return tensor::ExpandShapeOp::create(b, split, x, groups, shape);
}

/// quantize_row_q8_K of every row of `x [T, K]` f32, as linalg generics.
Q8K quantizeQ8K(IB &b, Value x, int64_t depth) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, blk, e;
  bindDims(ctx, t, blk, e);
  Value tokens = dim(b, x, 0);
  int64_t blocks = depth / kSuperBlock;
  Value x3 = splitRows(b, x, depth, kSuperBlock);
  AffineMap elements = map(ctx, 3, {t, blk, e}), perBlock = map(ctx, 3, {t, blk});
  AffineMap block2 = map(ctx, 2, {t, blk});
  Value amax = generic(
      b, filled(b, {tokens, b.getIndexAttr(blocks)}, cF32(b, 0.0)), {x3},
      {elements, perBlock}, iterators(2, 1),
      [&](OpBuilder &ob, Location loc, ValueRange a) {
        Value abs = math::AbsFOp::create(ob, loc, a[0]);
        linalg::YieldOp::create(
            ob, loc, ValueRange{arith::MaximumFOp::create(ob, loc, a[1], abs)});
      });
  // `numerator / v` where v > 0, else 0 (an all-zero block: d8 = q = 0).
  auto inverse = [&](Value v, double numerator) {
    return generic(
        b, emptyTensor(b, {tokens, b.getIndexAttr(blocks)}, b.getF32Type()),
        {v}, {block2, block2}, iterators(2),
        [&](OpBuilder &ob, Location loc, ValueRange a) {
          IB ib(loc, ob);
          Value zeroF = cF32(ib, 0.0);
          Value positive = arith::CmpFOp::create(
              ib, arith::CmpFPredicate::OGT, a[0], zeroF);
          Value ratio = arith::DivFOp::create(ib, cF32(ib, numerator), a[0]);
          linalg::YieldOp::create(
              ib, ValueRange{arith::SelectOp::create(ib, positive, ratio, zeroF)});
        });
  };
  Value iscale = inverse(amax, 127.0);
  Q8K q8;
  q8.scales = inverse(iscale, 1.0);
  Value quants3 = generic(
      b, emptyTensor(b, {tokens, b.getIndexAttr(blocks), b.getIndexAttr(kSuperBlock)},
                     b.getI8Type()),
      {x3, iscale}, {elements, perBlock, elements}, iterators(3),
      [&](OpBuilder &ob, Location loc, ValueRange a) {
        Value scaled = arith::MulFOp::create(ob, loc, a[0], a[1]);
        Value rounded = math::RoundEvenOp::create(ob, loc, scaled);
        linalg::YieldOp::create(
            ob, loc,
            ValueRange{arith::FPToSIOp::create(ob, loc, ob.getI8Type(), rounded)});
      });
  q8.quants = tensor::CollapseShapeOp::create(
      b, quants3, SmallVector<ReassociationIndices>{{0}, {1, 2}});
  Value zeroI16 = arith::ConstantOp::create(b, b.getI16IntegerAttr(0));
  q8.sums = generic(
      b, filled(b, {tokens, b.getIndexAttr(depth / kSumRun)}, zeroI16),
      {splitRows(b, q8.quants, depth, kSumRun)}, {elements, perBlock},
      iterators(2, 1), [&](OpBuilder &ob, Location loc, ValueRange a) {
        Value wide = arith::ExtSIOp::create(ob, loc, ob.getI16Type(), a[0]);
        linalg::YieldOp::create(
            ob, loc, ValueRange{arith::AddIOp::create(ob, loc, a[1], wide)});
      });
  return q8;
}

/// The dot products of one super-block of weight rows with a row of Q8_K.
struct Int8Kernel {
  Value blocks;
  Q8K q8;
  GGUFType type;
  int64_t bytes;
  Int8Dot dot;

  /// The f32 accumulators of `cols` (8 lanes each) after super-block `sb` of
  /// activation row `row`.
  SmallVector<Value> superBlock(IB &b, Value row, ArrayRef<Value> cols, Idx sb,
                                ValueRange acc) {
    Value d8 = tensor::ExtractOp::create(b, q8.scales, ValueRange{row, sb});
    // The activations of the super-block, shared by the columns.
    SmallVector<Value> quants;
    for (int64_t run = 0; run < kSuperBlock / kBytes; ++run)
      quants.push_back(
          readVector(b, q8.quants, {row, sb * kSuperBlock + run * kBytes}, kBytes));
    Value sums = readVector(b, q8.sums, {row, sb * (kSuperBlock / kSumRun)},
                            kSuperBlock / kSumRun);
    SmallVector<Value> next;
    for (auto [col, a] : llvm::zip(cols, acc)) {
      Idx base = sb * bytes;
      next.push_back(type == GGUFType::Q4_K
                         ? q4K(b, col, base, d8, quants, sums, a)
                         : q6K(b, col, base, d8, quants, sums, a));
    }
    return next;
  }

  /// Q4_K: d (f16) at 0, dmin at 2, the 6-bit scales and mins of the eight
  /// 32-element sub-blocks in bytes 4..15, then qs: sub-block 2c the low,
  /// 2c + 1 the high nibbles of qs[32 c ..]. The mins multiply the sums of
  /// 32 activations (two Q8_K sums).
  Value q4K(IB &b, Value n, Idx base, Value d8, ArrayRef<Value> quants,
            Value sums, Value acc) {
    auto [sc, m] = q4KScalesMins(b, n, base);
    Value scales = arith::TruncIOp::create(b, vecType(b.getI16Type(), {8}), sc);
    SmallVector<Value> isum(2, zero(b, vecType(b.getI32Type(), {8})));
    for (int64_t c = 0; c < 4; ++c) {
      Value qs = readVector(b, blocks, {n, base + 16 + c * kBytes}, kBytes);
      Value low = arith::AndIOp::create(b, qs, splatI8(b, 15));
      Value high = arith::ShRUIOp::create(b, qs, splatI8(b, 4));
      Value halves[] = {low, high};
      for (auto [half, nibbles] : llvm::enumerate(halves)) {
        int64_t j = 2 * c + half;
        Value scale = vector::ShuffleOp::create(b, scales, scales,
                                                SmallVector<int64_t>(16, j));
        isum[half] = dotAdd(b, isum[half], productPairs(b, nibbles, quants[j]),
                            scale);
      }
    }
    // sum_j m_j (sums[2j] + sums[2j+1]) per lane j: each min twice, one
    // vpmaddwd with the Q8_K sums.
    Value mins = arith::TruncIOp::create(b, vecType(b.getI16Type(), {8}), m);
    SmallVector<int64_t> twice;
    for (int64_t j = 0; j < 8; ++j)
      twice.append(2, j);
    Value msum = intrinsic(b, "llvm.x86.avx2.pmadd.wd", vecType(b.getI32Type(), {8}),
                           {vector::ShuffleOp::create(b, mins, mins, twice), sums});
    Value d = arith::MulFOp::create(b, ggufF16(b, blocks, n, base), d8);
    Value dmin = arith::MulFOp::create(b, ggufF16(b, blocks, n, base + 2), d8);
    acc = fma(b, arith::AddIOp::create(b, isum[0], isum[1]), d, acc);
    return fma(b, msum, arith::NegFOp::create(b, dmin), acc);
  }

  /// (sc, m) of the eight sub-blocks as i32 lanes from scales s[0..12):
  /// j < 4: s[j] & 63, s[j + 4] & 63; else (s[j + 4] & 15) | (s[j - 4] >> 6)
  /// << 4, (s[j + 4] >> 4) | (s[j] >> 6) << 4.
  std::pair<Value, Value> q4KScalesMins(IB &b, Value n, Idx base) {
    auto i32x8 = vecType(b.getI32Type(), {8});
    Value s0 = arith::ExtUIOp::create(b, i32x8, readVector(b, blocks, {n, base + 4}, 8));
    Value s4 = arith::ExtUIOp::create(b, i32x8, readVector(b, blocks, {n, base + 8}, 8));
    Value sLow = vector::ShuffleOp::create(b, s0, s0,
                                           ArrayRef<int64_t>{0, 1, 2, 3, 0, 1, 2, 3});
    auto c = [&](int64_t v) { return splat(b, cI32(b, v), 8); };
    auto top = [&](Value v) {
      return arith::ShLIOp::create(b, arith::ShRUIOp::create(b, v, c(6)), c(4));
    };
    Value first = arith::ConstantOp::create(
        b, DenseElementsAttr::get(vecType(b.getI1Type(), {8}),
                                  ArrayRef<bool>{1, 1, 1, 1, 0, 0, 0, 0}));
    Value sc = arith::SelectOp::create(
        b, first, arith::AndIOp::create(b, s0, c(63)),
        arith::OrIOp::create(b, arith::AndIOp::create(b, s4, c(15)), top(sLow)));
    Value m = arith::SelectOp::create(
        b, first, arith::AndIOp::create(b, s4, c(63)),
        arith::OrIOp::create(b, arith::ShRUIOp::create(b, s4, c(4)), top(s0)));
    return {sc, m};
  }

  /// Q6_K: ql (low nibbles) at 0, qh (top two bits) at 128, sixteen int8
  /// scales at 192, d at 208. Element 128 h + 32 r + l: nibble r / 2 of
  /// ql[64 h + 32 (r % 2) + l], bits 2r of qh[32 h + l], minus 32, times
  /// scale 8 h + 2 r + l / 16. The unsigned quants (0..63) are multiplied,
  /// then 32 times the scaled Q8_K sums subtracted.
  Value q6K(IB &b, Value n, Idx base, Value d8, ArrayRef<Value> quants,
            Value sums, Value acc) {
    auto i16x16 = vecType(b.getI16Type(), {16});
    Value scales = arith::ExtSIOp::create(
        b, i16x16, readVector(b, blocks, {n, base + 192}, 16));
    SmallVector<Value> isum(2, zero(b, vecType(b.getI32Type(), {8})));
    for (int64_t h = 0; h < 2; ++h) {
      Value qh = readVector(b, blocks, {n, base + 128 + h * kBytes}, kBytes);
      for (int64_t r = 0; r < 4; ++r) {
        Value ql = readVector(b, blocks, {n, base + h * 64 + r % 2 * kBytes}, kBytes);
        Value low = r < 2 ? arith::AndIOp::create(b, ql, splatI8(b, 15)).getResult()
                          : arith::ShRUIOp::create(b, ql, splatI8(b, 4)).getResult();
        Value bits = arith::AndIOp::create(
            b, arith::ShRUIOp::create(b, qh, splatI8(b, 2 * r)), splatI8(b, 3));
        Value q = arith::OrIOp::create(
            b, low, arith::ShLIOp::create(b, bits, splatI8(b, 4)));
        int64_t run = 8 * h + 2 * r;
        SmallVector<int64_t> pick(8, run);
        pick.append(8, run + 1);
        Value scale = vector::ShuffleOp::create(b, scales, scales, pick);
        isum[r % 2] = dotAdd(b, isum[r % 2],
                             productPairs(b, q, quants[4 * h + r]), scale);
      }
    }
    Value offsets = intrinsic(b, "llvm.x86.avx2.pmadd.wd",
                              vecType(b.getI32Type(), {8}), {scales, sums});
    Value total = arith::SubIOp::create(
        b, arith::AddIOp::create(b, isum[0], isum[1]),
        arith::ShLIOp::create(b, offsets, splat(b, cI32(b, 5), 8)));
    Value d = arith::MulFOp::create(b, ggufF16(b, blocks, n, base + 208), d8);
    return fma(b, total, d, acc);
  }

  /// Pair sums `u[2i] s[2i] + u[2i+1] s[2i+1]` (vpmaddubsw) of the unsigned
  /// bytes `u` and the signed bytes `s`.
  Value productPairs(IB &b, Value u, Value s) {
    return intrinsic(b, "llvm.x86.avx2.pmadd.ub.sw", vecType(b.getI16Type(), {16}),
                     {u, s});
  }

  /// `acc + (pair sums of p * scale)` in 32-bit lanes.
  Value dotAdd(IB &b, Value acc, Value p, Value scale) {
    if (dot == Int8Dot::AVX512VNNI)
      return intrinsic(b, "llvm.x86.avx512.vpdpwssd.256", acc.getType(),
                       {acc, p, scale});
    return arith::AddIOp::create(
        b, acc,
        intrinsic(b, "llvm.x86.avx2.pmadd.wd", acc.getType(), {p, scale}));
  }

  /// A call of the LLVM intrinsic `name`, through a private declaration of
  /// it in the module: unlike llvm.call_intrinsic, a call passes buffer
  /// deallocation (the declaration becomes the intrinsic, with its
  /// attributes, in LLVM IR). The kernel's enclosing ops may not be in place
  /// yet (region builders), so the module is the one of the weight.
  Value intrinsic(IB &b, StringRef name, Type result, ValueRange args) {
    auto module =
        blocks.getParentRegion()->getParentOp()->getParentOfType<ModuleOp>();
    auto type = FunctionType::get(b.getContext(), TypeRange(args), {result});
    auto callee = module.lookupSymbol<func::FuncOp>(name);
    if (!callee) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToEnd(module.getBody());
      callee = func::FuncOp::create(b, name, type);
      callee.setPrivate();
    }
    return func::CallOp::create(b, callee, args).getResult(0);
  }

  /// `acc + f32(sum) * factor`.
  static Value fma(IB &b, Value sum, Value factor, Value acc) {
    Value wide = arith::SIToFPOp::create(b, vecType(b.getF32Type(), {8}), sum);
    return vector::FMAOp::create(b, wide, splat(b, factor, 8), acc);
  }

  static Value splatI8(IB &b, int64_t v) {
    return splat(b, arith::ConstantOp::create(b, b.getI8IntegerAttr(v)), kBytes);
  }
};

} // namespace

Value linalg_lowering::int8Linear(IB &b, Value x, Value blocks,
                                  GGUFAttr encoding, int64_t n, int64_t depth,
                                  Int8Dot dot, Value init) {
  // One weight row at a time along all of K: a single stream per thread.
  // Two or four rows in step (sharing the activation loads) ran 1.7-2.2x
  // slower once the weights come from memory (one thread, 14336 x 4096).
  constexpr int64_t colsPerBlock = 1;
  Int8Kernel kernel{blocks, quantizeQ8K(b, x, depth), encoding.getType(),
                    encoding.getBlockBytes(), dot};
  Value zeros = zero(b, vecType(b.getF32Type(), {8}));
  auto block = [&](IB &ib, const ProjectionBlock &blk, Value col0,
                   Value out) -> Value {
    BuilderScope scope(ib);
    SmallVector<Value> cols, locals;
    for (int64_t j = 0; j < colsPerBlock; ++j) {
      locals.push_back(Idx(blk.col) + j);
      cols.push_back(Idx(col0) + Idx(locals.back()));
    }
    SmallVector<Value> start(colsPerBlock, zeros);
    SmallVector<Value> dots = forLoop(
        ib, cIndex(ib, 0), cIndex(ib, depth / kSuperBlock), 1, start,
        [&](IB &i3, Idx sb, ValueRange acc) {
          return kernel.superBlock(i3, blk.rows[0], cols, sb, acc);
        });
    for (auto [local, sum] : llvm::zip(locals, dots)) {
      Value total = vector::ReductionOp::create(ib, vector::CombiningKind::ADD, sum);
      out = tensor::InsertOp::create(ib, total, out, ValueRange{blk.rows[0], local});
    }
    return out;
  };
  return projectionLoops(b, init, dim(b, x, 0), n, linearChunk(n), depth,
                         depth, /*rowBlock=*/1, colsPerBlock,
                         [](IB &, Value) {}, block);
}
