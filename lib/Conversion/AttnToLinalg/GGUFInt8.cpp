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
/// Activation rows per weight-row pass of the multi-row kernel: 8 rows cost
/// 9.6-9.9 ms (Q4_K, 14336 x 4096, one thread) against 10.3-10.6 ms as two
/// blocks of 4.
constexpr int64_t kRows = 8;

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

/// The dot products of one super-block of a weight row with rows of Q8_K.
struct Int8Kernel {
  Value blocks;
  Q8K q8;
  GGUFType type;
  int64_t bytes;
  Int8Dot dot;

  /// The f32 accumulators (8 lanes each) of weight row `n` with the
  /// activation `rows` after super-block `sb`. The weights are unpacked once
  /// for all rows.
  SmallVector<Value> superBlock(IB &b, ArrayRef<Value> rows, Value n, Idx sb,
                                ValueRange acc) const {
    Idx base = sb * bytes;
    return type == GGUFType::Q4_K ? q4K(b, rows, n, base, sb, acc)
                                  : q6K(b, rows, n, base, sb, acc);
  }

  /// Activations `run * 32 ..` of super-block `sb` of `row`, loaded where
  /// they are used (the load folds into the product instruction).
  Value quants(IB &b, Value row, Idx sb, int64_t run) const {
    return readVector(b, q8.quants, {row, sb * kSuperBlock + run * kBytes},
                      kBytes);
  }
  Value sums(IB &b, Value row, Idx sb) const {
    return readVector(b, q8.sums, {row, sb * (kSuperBlock / kSumRun)},
                      kSuperBlock / kSumRun);
  }
  /// `sum_j weights[2j] sums[2j] + weights[2j+1] sums[2j+1]` per lane j
  /// (vpmaddwd) of the 16 i16 `weights` and the Q8_K sums of `row`.
  Value weightedSums(IB &b, Value weights, Value row, Idx sb) const {
    return intrinsic(b, "llvm.x86.avx2.pmadd.wd", vecType(b.getI32Type(), {8}),
                     {weights, sums(b, row, sb)});
  }
  Value d8(IB &b, Value row, Idx sb) const {
    return tensor::ExtractOp::create(b, q8.scales, ValueRange{row, sb});
  }

  /// i32 accumulators: two chains for a single row (latency), one per row
  /// otherwise (the rows interleave).
  static int64_t chainsOf(ArrayRef<Value> rows) { return rows.size() == 1 ? 2 : 1; }
  SmallVector<Value> integerSums(IB &b, ArrayRef<Value> rows) const {
    return SmallVector<Value>(rows.size() * chainsOf(rows),
                              zero(b, vecType(b.getI32Type(), {8})));
  }
  /// The i32 sum of row `r`'s chains.
  Value integerSum(IB &b, ArrayRef<Value> isum, int64_t r, int64_t chains) const {
    Value total = isum[r * chains];
    for (int64_t c = 1; c < chains; ++c)
      total = arith::AddIOp::create(b, total, isum[r * chains + c]);
    return total;
  }

  /// Q4_K: d (f16) at 0, dmin at 2, the 6-bit scales and mins of the eight
  /// 32-element sub-blocks in bytes 4..15, then qs: sub-block 2c the low,
  /// 2c + 1 the high nibbles of qs[32 c ..]. The mins multiply the sums of
  /// 32 activations (two Q8_K sums).
  SmallVector<Value> q4K(IB &b, ArrayRef<Value> rows, Value n, Idx base, Idx sb,
                         ValueRange acc) const {
    auto [sc, m] = q4KScalesMins(b, n, base);
    Value scales = arith::TruncIOp::create(b, vecType(b.getI16Type(), {8}), sc);
    int64_t chains = chainsOf(rows);
    SmallVector<Value> isum = integerSums(b, rows);
    for (int64_t c = 0; c < 4; ++c) {
      Value qs = readVector(b, blocks, {n, base + 16 + c * kBytes}, kBytes);
      Value low = arith::AndIOp::create(b, qs, splatI8(b, 15));
      Value high = arith::ShRUIOp::create(b, qs, splatI8(b, 4));
      Value halves[] = {low, high};
      for (auto [half, nibbles] : llvm::enumerate(halves)) {
        int64_t j = 2 * c + half;
        Value scale = vector::ShuffleOp::create(b, scales, scales,
                                                SmallVector<int64_t>(16, j));
        for (auto [r, row] : llvm::enumerate(rows)) {
          Value &sum = isum[r * chains + half % chains];
          sum = dotAdd(b, sum, productPairs(b, nibbles, quants(b, row, sb, j)),
                       scale);
        }
      }
    }
    // sum_j m_j (sums[2j] + sums[2j+1]) per lane j: each min twice, one
    // vpmaddwd with the Q8_K sums.
    Value mins = arith::TruncIOp::create(b, vecType(b.getI16Type(), {8}), m);
    SmallVector<int64_t> twice;
    for (int64_t j = 0; j < 8; ++j)
      twice.append(2, j);
    Value minPairs = vector::ShuffleOp::create(b, mins, mins, twice);
    Value d = ggufF16(b, blocks, n, base);
    Value dmin = ggufF16(b, blocks, n, base + 2);
    SmallVector<Value> next;
    for (auto [r, row] : llvm::enumerate(rows)) {
      Value msum = weightedSums(b, minPairs, row, sb);
      Value scale8 = d8(b, row, sb);
      Value a = fma(b, integerSum(b, isum, r, chains),
                    arith::MulFOp::create(b, d, scale8), acc[r]);
      next.push_back(fma(
          b, msum, arith::NegFOp::create(b, arith::MulFOp::create(b, dmin, scale8)),
          a));
    }
    return next;
  }

  /// (sc, m) of the eight sub-blocks as i32 lanes from scales s[0..12):
  /// j < 4: s[j] & 63, s[j + 4] & 63; else (s[j + 4] & 15) | (s[j - 4] >> 6)
  /// << 4, (s[j + 4] >> 4) | (s[j] >> 6) << 4.
  std::pair<Value, Value> q4KScalesMins(IB &b, Value n, Idx base) const {
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
  SmallVector<Value> q6K(IB &b, ArrayRef<Value> rows, Value n, Idx base, Idx sb,
                         ValueRange acc) const {
    auto i16x16 = vecType(b.getI16Type(), {16});
    Value scales = arith::ExtSIOp::create(
        b, i16x16, readVector(b, blocks, {n, base + 192}, 16));
    int64_t chains = chainsOf(rows);
    SmallVector<Value> isum = integerSums(b, rows);
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
        for (auto [i, row] : llvm::enumerate(rows)) {
          Value &sum = isum[i * chains + r % chains];
          sum = dotAdd(b, sum, productPairs(b, q, quants(b, row, sb, 4 * h + r)),
                       scale);
        }
      }
    }
    Value d = ggufF16(b, blocks, n, base + 208);
    SmallVector<Value> next;
    for (auto [i, row] : llvm::enumerate(rows)) {
      Value offsets = weightedSums(b, scales, row, sb);
      Value total = arith::SubIOp::create(
          b, integerSum(b, isum, i, chains),
          arith::ShLIOp::create(b, offsets, splat(b, cI32(b, 5), 8)));
      next.push_back(
          fma(b, total, arith::MulFOp::create(b, d, d8(b, row, sb)), acc[i]));
    }
    return next;
  }

  /// Pair sums `u[2i] s[2i] + u[2i+1] s[2i+1]` (vpmaddubsw) of the unsigned
  /// bytes `u` and the signed bytes `s`.
  Value productPairs(IB &b, Value u, Value s) const {
    return intrinsic(b, "llvm.x86.avx2.pmadd.ub.sw", vecType(b.getI16Type(), {16}),
                     {u, s});
  }

  /// `acc + (pair sums of p * scale)` in 32-bit lanes.
  Value dotAdd(IB &b, Value acc, Value p, Value scale) const {
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
  Value intrinsic(IB &b, StringRef name, Type result, ValueRange args) const {
    auto module =
        Value(blocks).getParentRegion()->getParentOp()->getParentOfType<ModuleOp>();
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

/// The kernel on blocks of `rowBlock` rows (tail rows repeat the last row and
/// write the same values as it): one weight row at a time along all of K, a
/// single stream per thread. Two or four weight rows in step (sharing the
/// activation loads) ran 1.7-2.2x slower once the weights come from memory
/// (one thread, 14336 x 4096).
static Value int8Rows(IB &b, const Int8Kernel &kernel, Value tokens, int64_t n,
                      int64_t depth, int64_t rowBlock, Value init) {
  Value zeros = zero(b, vecType(b.getF32Type(), {8}));
  auto block = [&](IB &ib, const ProjectionBlock &blk, Value col0,
                   Value out) -> Value {
    BuilderScope scope(ib);
    Value col = Idx(col0) + Idx(blk.col);
    SmallVector<Value> start(blk.rows.size(), zeros);
    SmallVector<Value> dots = forLoop(
        ib, cIndex(ib, 0), cIndex(ib, depth / kSuperBlock), 1, start,
        [&](IB &i3, Idx sb, ValueRange acc) {
          return kernel.superBlock(i3, blk.rows, col, sb, acc);
        });
    for (auto [row, sum] : llvm::zip(blk.rows, dots)) {
      Value total = vector::ReductionOp::create(ib, vector::CombiningKind::ADD, sum);
      out = tensor::InsertOp::create(ib, total, out, ValueRange{row, blk.col});
    }
    return out;
  };
  return projectionLoops(b, init, tokens, n, linearChunk(n), depth, depth,
                         rowBlock, /*colStep=*/1, [](IB &, Value) {}, block);
}

Value linalg_lowering::int8Linear(IB &b, Value x, Value blocks,
                                  GGUFAttr encoding, int64_t n, int64_t depth,
                                  Int8Dot dot, Value init) {
  Int8Kernel kernel{blocks, quantizeQ8K(b, x, depth), encoding.getType(),
                    encoding.getBlockBytes(), dot};
  Value tokens = dim(b, x, 0);
  BuilderScope scope(b);
  // One row: no repeated tail rows. More: each weight row unpacked once per
  // kRows rows.
  return ifElse(
      b, Idx(tokens) == 1, init.getType(),
      [&](IB &tb) -> SmallVector<Value> {
        return {int8Rows(tb, kernel, tokens, n, depth, 1, init)};
      },
      [&](IB &eb) -> SmallVector<Value> {
        return {int8Rows(eb, kernel, tokens, n, depth, kRows, init)};
      })[0];
}
