//===- GGUFInt8.cpp - GGUF projections on int8 dots -----------------------===//
//
// K-quants (Q4_K, Q6_K): Q8_K activations as llama.cpp's quantize_row_q8_K
// writes them (per 256 elements: iscale = 127 / max|x|, q =
// round-half-even(iscale x), d8 = 1 / iscale; llama.cpp divides by the signed
// maximum, which negates q and d8 together and leaves every product d8 q
// unchanged) and the sums of 16 consecutive q. The dot kernel multiplies the
// unsigned weight quants with them by vpmaddubsw (no pair of products
// saturates: 2 * 63 * 127 < 2^15), weights the 16-bit pair sums by the
// sub-block scale with vpdpwssd (AVX512-VNNI) or vpmaddwd (AVX2) into 32-bit
// lanes, and applies the super-block factors in f32; the per-scale-run vpdpwssd
// replaces the vpdpbusd + vpmulld pair a direct 4-way byte dot would need.
// Q4_K with AVX512-VNNI (one row or blocks of rows) instead transposes each
// weight super-block into sub-block lanes shared by the rows and takes one
// vpdpbusd per 32 products (`q4KLanes`).
//
// Q4_0, Q8_0: Q8_0 activations as llama.cpp's x86 quantize_row_q8_0 writes
// them (per 32 elements: d = f16(max|x| / 127), q = round-half-even(x 127 /
// max|x|)); per block the unsigned weight bytes u (Q4_0 nibbles, Q8_0 bytes
// xor 0x80, so w = u - c with c = 8 or 128) times q by vpdpbusd into 32-bit
// lanes, each lane started at -c times the sum of its 4 quants (computed once
// per activation row), then `d_w d` times the lanes in f32. AVX2 has no
// vpdpbusd: vpmaddubsw + vpmaddwd by ones, where Q8_0's bytes (up to 255)
// would saturate the pair sums, so Q8_0 multiplies |w| by q signed as w
// (vpsignb), as llama.cpp does.
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

#include <numeric>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

/// Elements of a Q8_K block (and of a K-quant super-block).
constexpr int64_t kSuperBlock = 256;
/// Elements per Q8_K block sum.
constexpr int64_t kSumRun = 16;
/// Elements of a Q4_0 / Q8_0 weight block and of a Q8_0 activation block.
constexpr int64_t kBlock = 32;
/// Quants per 32-bit lane of vpdpbusd.
constexpr int64_t kLane = 4;
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

static bool isKQuant(GGUFType type) {
  return type == GGUFType::Q4_K || type == GGUFType::Q6_K;
}

int64_t linalg_lowering::int8RowLimit(GGUFAttr encoding, int64_t maxRows) {
  return isKQuant(encoding.getType()) ? maxRows
                                      : std::min<int64_t>(maxRows, 16);
}

namespace {

/// Activations quantised per block of `run` elements: `quants [T, K] i8`,
/// `scales [T, K / run] f32`, and `sums`: for Q8_K `[T, K / 16] i16`, the sums
/// of 16 quants (|sum| <= 16 * 127); for Q8_0 `[T, K / 4] i32`, -c times the
/// sums of 4 quants (null where the kernel subtracts no offset c).
struct Activations {
  Value quants, scales, sums;
};

/// `[T, K / run]` of `f(v)` per element of `v [T, K / run]`.
Value perBlock(IB &b, Value v, Type type, function_ref<Value(IB &, Value)> f) {
  AffineExpr t, blk;
  bindDims(b.getContext(), t, blk);
  AffineMap block2 = map(b.getContext(), 2, {t, blk});
  return generic(b,
                 emptyTensor(b, tensor::getMixedSizes(b, b.getLoc(), v), type),
                 {v}, {block2, block2}, iterators(2),
                 [&](OpBuilder &ob, Location loc, ValueRange a) {
                   IB ib(loc, ob);
                   linalg::YieldOp::create(ib, ValueRange{f(ib, a[0])});
                 });
}

/// `[T, K / run]` of `combine(acc, element)` over each run of `x [T, K]`,
/// from `initial`.
Value reduceRuns(
    IB &b, Value x, int64_t depth, int64_t run, Value initial,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, blk, e;
  bindDims(ctx, t, blk, e);
  return generic(
      b, filled(b, {dim(b, x, 0), b.getIndexAttr(depth / run)}, initial),
      {splitRows(b, x, depth, run)},
      {map(ctx, 3, {t, blk, e}), map(ctx, 3, {t, blk})}, iterators(2, 1),
      [&](OpBuilder &ob, Location loc, ValueRange a) {
        linalg::YieldOp::create(ob, loc,
                                ValueRange{combine(ob, loc, a[1], a[0])});
      });
}

/// `numerator / v` where v > 0, else 0 (an all-zero block: d = q = 0).
Value inverse(IB &b, Value v, double numerator) {
  return perBlock(b, v, b.getF32Type(), [&](IB &ib, Value a) -> Value {
    Value zeroF = cF32(ib, 0.0);
    Value positive =
        arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT, a, zeroF);
    Value ratio = arith::DivFOp::create(ib, cF32(ib, numerator), a);
    return arith::SelectOp::create(ib, positive, ratio, zeroF);
  });
}

/// Each run of `x [T, K]` (f32) as quants `round-half-even(iscale x)`
/// ([T, K] i8) and its maximum magnitude `[T, K / run]`.
std::pair<Value, Value> roundRuns(IB &b, Value x, int64_t depth, int64_t run,
                                  function_ref<Value(Value)> iscaleOf) {
  MLIRContext *ctx = b.getContext();
  AffineExpr t, blk, e;
  bindDims(ctx, t, blk, e);
  Value amax =
      reduceRuns(b, x, depth, run, cF32(b, 0.0),
                 [](OpBuilder &ob, Location loc, Value acc, Value v) -> Value {
                   Value abs = math::AbsFOp::create(ob, loc, v);
                   return arith::MaximumFOp::create(ob, loc, acc, abs);
                 });
  Value iscale = iscaleOf(amax);
  Value quants3 = generic(
      b,
      emptyTensor(
          b, {dim(b, x, 0), b.getIndexAttr(depth / run), b.getIndexAttr(run)},
          b.getI8Type()),
      {splitRows(b, x, depth, run), iscale},
      {map(ctx, 3, {t, blk, e}), map(ctx, 3, {t, blk}),
       map(ctx, 3, {t, blk, e})},
      iterators(3), [&](OpBuilder &ob, Location loc, ValueRange a) {
        Value scaled = arith::MulFOp::create(ob, loc, a[0], a[1]);
        Value rounded = math::RoundEvenOp::create(ob, loc, scaled);
        linalg::YieldOp::create(
            ob, loc,
            ValueRange{arith::FPToSIOp::create(ob, loc, ob.getI8Type(), rounded)});
      });
  Value quants = tensor::CollapseShapeOp::create(
      b, quants3, SmallVector<ReassociationIndices>{{0}, {1, 2}});
  return {quants, amax};
}

/// `[T, K / run]` of `factor` times the sums of each run of `quants` as
/// `type` integers.
Value quantSums(IB &b, Value quants, int64_t depth, int64_t run, Type type,
                int64_t factor) {
  Value zeroI = arith::ConstantOp::create(b, b.getIntegerAttr(type, 0));
  return reduceRuns(
      b, quants, depth, run, zeroI,
      [&](OpBuilder &ob, Location loc, Value acc, Value q) -> Value {
        Value wide = arith::ExtSIOp::create(ob, loc, type, q);
        if (factor != 1)
          wide = arith::MulIOp::create(
              ob, loc, wide,
              arith::ConstantOp::create(ob, loc,
                                        ob.getIntegerAttr(type, factor)));
        return arith::AddIOp::create(ob, loc, acc, wide);
      });
}

/// quantize_row_q8_K of every row of `x [T, K]` f32, as linalg generics.
Activations quantizeQ8K(IB &b, Value x, int64_t depth) {
  Activations q8;
  std::tie(q8.quants, std::ignore) =
      roundRuns(b, x, depth, kSuperBlock, [&](Value amax) {
        Value iscale = inverse(b, amax, 127.0);
        q8.scales = inverse(b, iscale, 1.0);
        return iscale;
      });
  q8.sums = quantSums(b, q8.quants, depth, kSumRun, b.getI16Type(), 1);
  return q8;
}

/// llama.cpp's x86 quantize_row_q8_0 of every row of `x [T, K]` f32 (d
/// rounded to f16 and back), and -`offset` times the sums of 4 quants.
Activations quantizeQ80(IB &b, Value x, int64_t depth, int64_t offset) {
  Activations q8;
  Value amax;
  std::tie(q8.quants, amax) = roundRuns(
      b, x, depth, kBlock, [&](Value m) { return inverse(b, m, 127.0); });
  q8.scales = perBlock(b, amax, b.getF32Type(), [](IB &ib, Value m) -> Value {
    Value d = arith::DivFOp::create(ib, m, cF32(ib, 127.0));
    return toF32(ib, arith::TruncFOp::create(ib, ib.getF16Type(), d));
  });
  if (offset)
    q8.sums = quantSums(b, q8.quants, depth, kLane, b.getI32Type(), -offset);
  return q8;
}

/// Q8_K activations `q8` reordered for the sub-block-lane Q4_K kernel: in
/// each super-block, 32-byte piece t holds in 32-bit lane j the quants
/// 4t..4t+3 of sub-block j (element 32 j + 4 t + e moves to 32 t + 4 j + e);
/// `sums` the f32 sums of each sub-block's 32 quants `[T, K / 32]`.
Activations subBlockLanes(IB &b, Activations q8, int64_t depth) {
  MLIRContext *ctx = b.getContext();
  Value tokens = dim(b, q8.quants, 0);
  SmallVector<int64_t> shape = {ShapedType::kDynamic, depth / kSuperBlock, 8, 8,
                                kLane};
  SmallVector<OpFoldResult> sizes = {
      tokens, b.getIndexAttr(depth / kSuperBlock), b.getIndexAttr(8),
      b.getIndexAttr(8), b.getIndexAttr(kLane)};
  SmallVector<ReassociationIndices> groups = {{0}, {1, 2, 3, 4}};
  Value split = tensor::ExpandShapeOp::create(
      b, RankedTensorType::get(shape, b.getI8Type()), q8.quants, groups, sizes);
  AffineExpr t, sb, piece, lane, e;
  bindDims(ctx, t, sb, piece, lane, e);
  Value moved =
      generic(b, emptyTensor(b, sizes, b.getI8Type()), {split},
              {map(ctx, 5, {t, sb, lane, piece, e}),
               map(ctx, 5, {t, sb, piece, lane, e})},
              iterators(5), [](OpBuilder &ob, Location loc, ValueRange a) {
                linalg::YieldOp::create(ob, loc, ValueRange{a[0]});
              });
  Activations lanes = q8;
  lanes.quants = tensor::CollapseShapeOp::create(b, moved, groups);
  lanes.sums =
      reduceRuns(b, q8.quants, depth, kBlock, cF32(b, 0.0),
                 [](OpBuilder &ob, Location loc, Value acc, Value q) -> Value {
                   Value v =
                       arith::SIToFPOp::create(ob, loc, ob.getF32Type(), q);
                   return arith::AddFOp::create(ob, loc, acc, v);
                 });
  return lanes;
}

/// The dot products of one step along K (a K-quant super-block, or
/// `blocksPerStep` Q4_0 / Q8_0 blocks) of a weight row with rows of
/// quantised activations.
struct Int8Kernel {
  Value blocks;
  Activations q8;
  GGUFType type;
  int64_t bytes;
  Int8Dot dot;
  int64_t blocksPerStep;
  /// Q4_K with vpdpbusd on `subBlockLanes` activations (blocks of rows).
  bool subBlockLanes = false;

  /// Elements of K per step.
  int64_t step() const {
    return isKQuant(type) ? kSuperBlock : kBlock * blocksPerStep;
  }
  /// f32 accumulators (8 lanes) per activation row: Q4_0 / Q8_0 add one
  /// product per block, so a single row alternates two (latency); K-quants
  /// chain in i32 within a super-block.
  int64_t accumulators(ArrayRef<Value> rows) const {
    return !isKQuant(type) && rows.size() == 1 && blocksPerStep > 1 ? 2 : 1;
  }

  /// The accumulators `acc` of weight row `n` with the activation `rows`
  /// after step `s`. The weights are unpacked once for all rows.
  SmallVector<Value> accumulate(IB &b, ArrayRef<Value> rows, Value n, Idx s,
                                ValueRange acc) const {
    if (type == GGUFType::Q4_K)
      return subBlockLanes ? q4KLanes(b, rows, n, s * bytes, s, acc)
                           : q4K(b, rows, n, s * bytes, s, acc);
    if (type == GGUFType::Q6_K)
      return q6K(b, rows, n, s * bytes, s, acc);
    SmallVector<Value> next(acc);
    int64_t chains = accumulators(rows);
    for (int64_t j = 0; j < blocksPerStep; ++j)
      block32(b, rows, n, s * blocksPerStep + j, j % chains, next);
    return next;
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
    // Per row `(d I - dmin M) d8` on 8 lanes: d and -dmin splat once for all
    // rows, d8's splat folds into the last multiply-add.
    Value dSplat = splat(b, d, 8);
    Value negDmin = splat(b, arith::NegFOp::create(b, dmin), 8);
    SmallVector<Value> next;
    for (auto [r, row] : llvm::enumerate(rows)) {
      Value scaled = arith::MulFOp::create(
          b, toFloat(b, integerSum(b, isum, r, chains)), dSplat);
      Value msum = toFloat(b, weightedSums(b, minPairs, row, sb));
      Value term = vector::FMAOp::create(b, msum, negDmin, scaled);
      next.push_back(
          vector::FMAOp::create(b, term, splat(b, d8(b, row, sb), 8), acc[r]));
    }
    return next;
  }

  /// Q4_K on `subBlockLanes` activations: the nibbles of the eight
  /// sub-blocks (32-bit lanes 0..7 of each) transposed, so that piece t holds
  /// in lane j four nibbles of sub-block j; vpdpbusd of the pieces with the
  /// reordered quants leaves in lane j the sub-block's sum of products. Then
  /// per row `sum_j d8 (d sc_j I_j - dmin m_j S_j)` on 8 f32 lanes (S_j the
  /// Q8_K sums of sub-block j): one byte-dot instruction per 32 products,
  /// against two (vpmaddubsw, vpdpwssd) in `q4K`; the transpose is shared by
  /// the rows. 512-bit vectors, two pieces each: 6.5-6.7 ms against 7.0 ms
  /// with 256-bit ones (8 rows, 14336 x 4096, one thread), fewer instructions.
  SmallVector<Value> q4KLanes(IB &b, ArrayRef<Value> rows, Value n, Idx base,
                              Idx sb, ValueRange acc) const {
    auto i32x16 = vecType(b.getI32Type(), {16});
    // [S0 | S2], [S1 | S3], [S4 | S6], [S5 | S7]: sub-block j's nibbles S_j
    // from two 64-byte loads.
    SmallVector<Value> sources;
    for (int64_t c = 0; c < 2; ++c) {
      Value qs =
          readVector(b, blocks, {n, base + 16 + c * 2 * kBytes}, 2 * kBytes);
      Value low = arith::AndIOp::create(b, qs, splatI8(b, 15, 2 * kBytes));
      Value high = arith::ShRUIOp::create(b, qs, splatI8(b, 4, 2 * kBytes));
      sources.push_back(vector::BitCastOp::create(b, i32x16, low));
      sources.push_back(vector::BitCastOp::create(b, i32x16, high));
    }
    // Pieces 2k and 2k + 1 (lane j of piece t: S_j[t]) in two steps of
    // two-source lane permutes: S0..S3 (S4..S7) at four positions, then
    // both halves at two.
    auto mask = [](ArrayRef<int64_t> starts, int64_t first) {
      SmallVector<int64_t> m;
      for (int64_t t = first; t < first + int64_t(16 / starts.size()); ++t)
        for (int64_t start : starts)
          m.push_back(start + t);
      return m;
    };
    SmallVector<Value> halves[2];
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t first : {0, 4})
        halves[h].push_back(
            vector::ShuffleOp::create(b, sources[2 * h], sources[2 * h + 1],
                                      mask({0, 16, 8, 24}, first)));
    SmallVector<Value> isum(rows.size(), zero(b, i32x16));
    for (int64_t k = 0; k < 4; ++k) {
      SmallVector<int64_t> pick;
      for (int64_t t = 2 * (k % 2); t < 2 * (k % 2) + 2; ++t)
        for (int64_t j = 0; j < 8; ++j)
          pick.push_back(4 * t + j % 4 + (j < 4 ? 0 : 16));
      Value piece = vector::ShuffleOp::create(b, halves[0][k / 2],
                                              halves[1][k / 2], pick);
      Value bytes = vector::BitCastOp::create(
          b, vecType(b.getI8Type(), {2 * kBytes}), piece);
      for (auto [r, row] : llvm::enumerate(rows)) {
        Value q = readVector(
            b, q8.quants, {row, sb * kSuperBlock + k * 2 * kBytes}, 2 * kBytes);
        isum[r] = intrinsic(b, "llvm.x86.avx512.vpdpbusd.512", i32x16,
                            {isum[r], bytes, q});
      }
    }
    // Lanes j and j + 8 both hold sub-block j.
    for (Value &sum : isum)
      sum = arith::AddIOp::create(
          b, vector::ExtractStridedSliceOp::create(b, sum, 0, 8, 1),
          vector::ExtractStridedSliceOp::create(b, sum, 8, 8, 1));
    auto [sc, m] = q4KScalesMins(b, n, base);
    Value d = ggufF16(b, blocks, n, base);
    Value dmin = ggufF16(b, blocks, n, base + 2);
    Value dScales = arith::MulFOp::create(b, splat(b, d, 8), toFloat(b, sc));
    Value negDminMins = arith::MulFOp::create(
        b, splat(b, arith::NegFOp::create(b, dmin), 8), toFloat(b, m));
    SmallVector<Value> next;
    for (auto [r, row] : llvm::enumerate(rows)) {
      Value sums =
          readVector(b, q8.sums, {row, sb * (kSuperBlock / kBlock)}, 8);
      Value term = vector::FMAOp::create(
          b, sums, negDminMins,
          arith::MulFOp::create(b, toFloat(b, isum[r]), dScales));
      next.push_back(
          vector::FMAOp::create(b, term, splat(b, d8(b, row, sb), 8), acc[r]));
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
    Value dSplat = splat(b, d, 8);
    SmallVector<Value> next;
    for (auto [i, row] : llvm::enumerate(rows)) {
      Value offsets = weightedSums(b, scales, row, sb);
      Value total = arith::SubIOp::create(
          b, integerSum(b, isum, i, chains),
          arith::ShLIOp::create(b, offsets, splat(b, cI32(b, 5), 8)));
      Value term = arith::MulFOp::create(b, toFloat(b, total), dSplat);
      next.push_back(
          vector::FMAOp::create(b, term, splat(b, d8(b, row, sb), 8), acc[i]));
    }
    return next;
  }

  /// Q4_0 (d at 0, qs at 2: element l < 16 the low, l + 16 the high nibble
  /// of qs[l], minus 8) or Q8_0 (d at 0, int8 quants at 2) block `blk` of
  /// weight row `n` into accumulator `chain` of each row.
  void block32(IB &b, ArrayRef<Value> rows, Value n, Idx blk, int64_t chain,
               SmallVector<Value> &acc) const {
    Idx base = blk * bytes;
    Value unsignedQuants, signs;
    if (type == GGUFType::Q4_0) {
      Value qs = readVector(b, blocks, {n, base + 2}, kBlock / 2);
      Value low = arith::AndIOp::create(b, qs, splatI8(b, 15, kBlock / 2));
      Value high = arith::ShRUIOp::create(b, qs, splatI8(b, 4, kBlock / 2));
      unsignedQuants = vector::ShuffleOp::create(
          b, low, high, llvm::to_vector(llvm::seq<int64_t>(0, kBlock)));
    } else {
      Value qs = readVector(b, blocks, {n, base + 2}, kBlock);
      if (dot == Int8Dot::AVX512VNNI) {
        unsignedQuants = arith::XOrIOp::create(b, qs, splatI8(b, -128));
      } else {
        unsignedQuants = math::AbsIOp::create(b, qs);
        signs = qs;
      }
    }
    // d_w d8 as a vector product: the splat of d8 folds into the multiply
    // (an embedded broadcast with AVX-512), one instruction per row.
    Value d = splat(b, ggufF16(b, blocks, n, base), 8);
    int64_t chains = accumulators(rows);
    for (auto [r, row] : llvm::enumerate(rows)) {
      Value q = readVector(b, q8.quants, {row, blk * kBlock}, kBlock);
      Value d8 = tensor::ExtractOp::create(b, q8.scales, ValueRange{row, blk});
      Value factor = arith::MulFOp::create(b, d, splat(b, d8, 8));
      Value lanes =
          toFloat(b, blockLanes(b, unsignedQuants, signs, q, row, blk));
      Value &sum = acc[r * chains + chain];
      sum = vector::FMAOp::create(b, lanes, factor, sum);
    }
  }

  /// The 8 i32 lanes of `sum_l w_l q_l` of one block: lane i the 4 products
  /// 4i..4i+3 of `u` (w + c) and the activation quants `q`, plus the row's
  /// -c sums; with `signs` (AVX2 Q8_0, c = 0), `u` is |w| and q takes w's
  /// signs.
  Value blockLanes(IB &b, Value u, Value signs, Value q, Value row,
                   Idx blk) const {
    auto i32x8 = vecType(b.getI32Type(), {8});
    Value offsets = q8.sums
                        ? readVector(b, q8.sums, {row, blk * (kBlock / kLane)},
                                     kBlock / kLane)
                        : Value();
    if (dot == Int8Dot::AVX512VNNI)
      return intrinsic(b, "llvm.x86.avx512.vpdpbusd.256", i32x8,
                       {offsets, u, q});
    if (signs)
      q = intrinsic(b, "llvm.x86.avx2.psign.b", q.getType(), {q, signs});
    Value ones = splat(b, arith::ConstantOp::create(b, b.getI16IntegerAttr(1)),
                       kBytes / 2);
    Value lanes = intrinsic(b, "llvm.x86.avx2.pmadd.wd", i32x8,
                            {productPairs(b, u, q), ones});
    return offsets ? arith::AddIOp::create(b, lanes, offsets).getResult()
                   : lanes;
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

  /// The 8 i32 lanes `sum` as f32.
  static Value toFloat(IB &b, Value sum) {
    return arith::SIToFPOp::create(b, vecType(b.getF32Type(), {8}), sum);
  }

  static Value splatI8(IB &b, int64_t v, int64_t width = kBytes) {
    return splat(b, arith::ConstantOp::create(b, b.getI8IntegerAttr(v)), width);
  }
};

} // namespace

/// `x [T, K]` with its last row repeated up to a multiple of `rowBlock`
/// rows, so that a block of rows reads its activations at constant offsets
/// from its first row (one address register instead of one per row).
static Value padRows(IB &b, Value x, int64_t depth, int64_t rowBlock) {
  MLIRContext *ctx = b.getContext();
  Value tokens = dim(b, x, 0);
  Value last = Idx(tokens) - 1;
  Value padded = ceilDiv(b, tokens, rowBlock) * rowBlock;
  AffineExpr t, k;
  bindDims(ctx, t, k);
  return generic(
      b, emptyTensor(b, {padded, b.getIndexAttr(depth)}, b.getF32Type()), {},
      {map(ctx, 2, {t, k})}, iterators(2),
      [&](OpBuilder &ob, Location loc, ValueRange) {
        IB ib(loc, ob);
        Value row = min(ib, linalg::IndexOp::create(ib, 0), last);
        Value col = linalg::IndexOp::create(ib, 1);
        linalg::YieldOp::create(ib, ValueRange{tensor::ExtractOp::create(
                                        ib, x, ValueRange{row, col})});
      });
}

/// The kernel on blocks of `rowBlock` rows (tail rows repeat the last row and
/// write the same values as it; with more than one row the activations are
/// padded, `padRows`): one weight row at a time along all of K, a single
/// stream per thread. Two or four weight rows in step (sharing the
/// activation loads) ran 1.7-2.2x slower once the weights come from memory
/// (one thread, 14336 x 4096).
static Value int8Rows(IB &b, const Int8Kernel &kernel, Value tokens, int64_t n,
                      int64_t depth, int64_t rowBlock, Value init) {
  Value zeros = zero(b, vecType(b.getF32Type(), {8}));
  auto block = [&](IB &ib, const ProjectionBlock &blk, Value col0,
                   Value out) -> Value {
    BuilderScope scope(ib);
    Value col = Idx(col0) + Idx(blk.col);
    SmallVector<Value> padded;
    for (int64_t r = 0; r < int64_t(blk.rows.size()); ++r)
      padded.push_back(Idx(blk.rows[0]) + r);
    int64_t chains = kernel.accumulators(blk.rows);
    SmallVector<Value> start(blk.rows.size() * chains, zeros);
    SmallVector<Value> dots =
        forLoop(ib, cIndex(ib, 0), cIndex(ib, depth / kernel.step()), 1, start,
                [&](IB &i3, Idx s, ValueRange acc) {
                  return kernel.accumulate(i3, padded, col, s, acc);
                });
    for (auto [r, row] : llvm::enumerate(blk.rows)) {
      Value sum = dots[r * chains];
      for (int64_t c = 1; c < chains; ++c)
        sum = arith::AddFOp::create(ib, sum, dots[r * chains + c]);
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
  GGUFType type = encoding.getType();
  // Q4_0 / Q8_0: up to 8 blocks per step, so that K need only be a multiple
  // of 32; the lanes start at -c sums unless AVX2 multiplies Q8_0 signed.
  int64_t blocksPerStep = std::gcd(depth / kBlock, int64_t(8));
  int64_t offset = type == GGUFType::Q4_0                                 ? 8
                   : type == GGUFType::Q8_0 && dot == Int8Dot::AVX512VNNI ? 128
                                                                          : 0;
  // Q4_K with AVX512-VNNI: the sub-block-lane kernel, for one row too.
  auto kernelOf = [&](IB &kb, Value rows) {
    Activations q8 = isKQuant(type) ? quantizeQ8K(kb, rows, depth)
                                    : quantizeQ80(kb, rows, depth, offset);
    Int8Kernel kernel{blocks, q8,           type, encoding.getBlockBytes(),
                      dot,    blocksPerStep};
    if (type == GGUFType::Q4_K && dot == Int8Dot::AVX512VNNI) {
      kernel.q8 = subBlockLanes(kb, kernel.q8, depth);
      kernel.subBlockLanes = true;
    }
    return kernel;
  };
  Value tokens = dim(b, x, 0);
  BuilderScope scope(b);
  // One row: no repeated tail rows. More: each weight row unpacked once per
  // kRows rows.
  return ifElse(
      b, Idx(tokens) == 1, init.getType(),
      [&](IB &tb) -> SmallVector<Value> {
        return {int8Rows(tb, kernelOf(tb, x), tokens, n, depth, 1, init)};
      },
      [&](IB &eb) -> SmallVector<Value> {
        Int8Kernel kernel = kernelOf(eb, padRows(eb, x, depth, kRows));
        return {int8Rows(eb, kernel, tokens, n, depth, kRows, init)};
      })[0];
}
