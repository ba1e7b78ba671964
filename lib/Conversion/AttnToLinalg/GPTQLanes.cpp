//===- GPTQLanes.cpp - GPTQ projections with lanes along N ----------------===//
//
// GPTQ packs eight k of one output column n into a word and lays the words
// of a packed row along n. The kernel therefore takes vectors along
// n: one load is `lanes` words, decoded once for all rows of a block.
// Nibble j is decoded where it lies, without a shift (nibbles 4-7 after one
// shift of the word by 16): with the f32 exponent of 2^23 or'ed in, the
// bits `(w & (15 << 4i)) | 0x4B000000` are the float `2^23 + q 2^(4i)`, and
// subtracting `2^23 + 8 2^(4i)` leaves `(q - 8) 2^(4i)` exactly (i = j % 4).
// The activations carry the factor `2^(-4i)` (exact), so each product is
// the reference's `(q - 8) x`; the group's scale multiplies the group's sum.
// Per 16 weights: one and-or (vpternlogd), one subtraction and one FMA per
// row of x.
//
//===----------------------------------------------------------------------===//

#include "GPTQLanes.h"
#include "Projections.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/ADT/bit.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

/// k per int32 word, and nibbles decoded where they lie (per half word).
constexpr int64_t kNibbles = 8;
constexpr int64_t kHalfNibbles = 4;
/// Rows of x per block of the multi-row kernel (the one-row kernel has its
/// own, without repeated tail rows).
constexpr int64_t kRows = 4;

/// Vectors of columns per block: as many as leave the accumulators of all
/// rows in half the vector registers (32 with AVX-512, 16 with AVX2; the
/// instruction set's `maxLanes`). On 14336 x 4096 with AVX-512 (2 threads,
/// Zen 5), 4 rows x 4 vectors took 1.15 ms at 4 rows against 1.44 for 4 x 2,
/// and 8 rows x 2 was slower from 16 rows to 512. With AVX2, 4 x 1 took
/// 1.6-1.8x the time of 4 x 2, whose spills of constants cost less.
static int64_t columnVectors(int64_t rows, int64_t maxLanes, int64_t perChunk) {
  int64_t registers = maxLanes >= 16 ? 32 : 16;
  return std::min(perChunk, std::max<int64_t>(1, registers / 2 / rows));
}

/// The bits of the f32 2^23, whose mantissa's units are 1.
constexpr int64_t kTwoPow23Bits = 0x4B000000;

/// Where nibble j lies in its half word, in bits.
static int64_t nibbleShift(int64_t j) { return 4 * (j % kHalfNibbles); }

/// `x[t, k] 2^(-nibbleShift(k % 8))` in f32 ([T, K]).
static Value nibbleActivations(IB &b, Value x, int64_t depth) {
  MLIRContext *ctx = b.getContext();
  SmallVector<float> factors;
  for (int64_t j = 0; j < kNibbles; ++j)
    factors.push_back(std::ldexp(1.0f, -static_cast<int>(nibbleShift(j))));
  auto factorType = RankedTensorType::get({kNibbles}, b.getF32Type());
  Value factor = arith::ConstantOp::create(
      b, DenseElementsAttr::get(factorType, ArrayRef<float>(factors)));
  Value words = splitRows(b, x, depth, kNibbles);
  AffineExpr t, r, j;
  bindDims(ctx, t, r, j);
  Value scaled = generic(
      b,
      emptyTensor(b, tensor::getMixedSizes(b, b.getLoc(), words),
                  b.getF32Type()),
      {words, factor},
      {map(ctx, 3, {t, r, j}), map(ctx, 3, {j}), map(ctx, 3, {t, r, j})},
      iterators(3), [](OpBuilder &ob, Location loc, ValueRange a) {
        Value v = arith::MulFOp::create(ob, loc, toF32(ob, loc, a[0]), a[1]);
        linalg::YieldOp::create(ob, loc, ValueRange{v});
      });
  return tensor::CollapseShapeOp::create(
      b, scaled, SmallVector<ReassociationIndices>{{0}, {1, 2}});
}

namespace {

/// GPTQ's kernel: what it reads and the constants of its decode.
struct GPTQKernel {
  GPTQKernel(IB &b, Value x, Value qweight, Value scales, GPTQAttr encoding,
             int64_t depth, int64_t lanes);

  /// `lanes` elements of packed row r of `part` (words or scales) from
  /// column `col`: `[r, col]`, or `[col / 32, r, col % 32]` in column blocks.
  Value readPart(IB &b, Value part, Idx r, Idx col) const;
  /// `(q - 8) 16^(j % 4)` of nibble j of `half`, the word's half holding it,
  /// exactly.
  Value nibble(IB &b, Value half, int64_t j) const;
  /// The sums of `(q - 8) x` over `group`'s packed rows, per row of x and
  /// vector of columns (`[row * cols.size() + vector]`).
  SmallVector<Value> groupSums(IB &b, Idx group, ArrayRef<Value> rows,
                               ArrayRef<Idx> cols) const;
  /// `out[rows, tileCols] += s[group, cols] sums`. All reads come before the
  /// writes: tail rows repeat the last row and write the same values.
  Value addScaledSums(IB &b, Value out, Idx group, ArrayRef<Value> rows,
                      ArrayRef<Idx> cols, ArrayRef<Idx> tileCols,
                      ArrayRef<Value> sums) const;
  /// One register block of projectionLoops: its rows x `vectors` vectors of
  /// columns, group by group along K.
  Value block(IB &b, const ProjectionBlock &blk, Value col0, Value out,
              int64_t vectors) const;

  Value activations, qweight, scales;
  int64_t depth, lanes, groupSize;
  bool columnBlocks;
  VectorType f32Type;
  Value zeros, exponent, halfShift;
  SmallVector<Value> masks, offsets;
};

} // namespace

GPTQKernel::GPTQKernel(IB &b, Value x, Value qweight, Value scales,
                       GPTQAttr encoding, int64_t depth, int64_t lanes)
    : activations(nibbleActivations(b, x, depth)), qweight(qweight),
      scales(scales), depth(depth), lanes(lanes),
      groupSize(encoding.getGroupSize()),
      columnBlocks(encoding.hasColumnBlocks()),
      f32Type(vecType(b.getF32Type(), {lanes})) {
  zeros = zero(b, f32Type);
  exponent = splat(b, cI32(b, kTwoPow23Bits), lanes);
  halfShift = splat(b, cI32(b, 16), lanes);
  for (int64_t i = 0; i < kHalfNibbles; ++i) {
    masks.push_back(splat(b, cI32(b, int64_t(15) << (4 * i)), lanes));
    offsets.push_back(
        splat(b, cF32(b, std::ldexp(1.0, 23) + std::ldexp(8.0, 4 * i)), lanes));
  }
}

Value GPTQKernel::readPart(IB &b, Value part, Idx r, Idx col) const {
  BuilderScope scope(b);
  if (!columnBlocks)
    return readVector(b, part, {r, col}, lanes);
  int64_t width = GPTQAttr::kBlockColumns;
  return readVector(b, part, {col / width, r, col % width}, lanes);
}

Value GPTQKernel::nibble(IB &b, Value half, int64_t j) const {
  int64_t i = j % kHalfNibbles;
  Value bits = arith::OrIOp::create(b, arith::AndIOp::create(b, half, masks[i]),
                                    exponent);
  Value biased = arith::BitcastOp::create(b, f32Type, bits);
  return arith::SubFOp::create(b, biased, offsets[i]);
}

SmallVector<Value> GPTQKernel::groupSums(IB &b, Idx group, ArrayRef<Value> rows,
                                         ArrayRef<Idx> cols) const {
  BuilderScope scope(b);
  int64_t vectors = cols.size();
  Idx firstWord = group * (groupSize / kNibbles);
  SmallVector<Value> start(rows.size() * vectors, zeros);
  return forLoop(
      b, firstWord, firstWord + groupSize / kNibbles, 1, start,
      [&](IB &wb, Idx word, ValueRange acc) {
        SmallVector<Value> sums(acc);
        SmallVector<Value> halves[2];
        for (Idx col : cols) {
          Value words = readPart(wb, qweight, word, col);
          halves[0].push_back(words);
          halves[1].push_back(arith::ShRUIOp::create(wb, words, halfShift));
        }
        for (int64_t j = 0; j < kNibbles; ++j) {
          SmallVector<Value> xs;
          for (Value row : rows)
            xs.push_back(splat(
                wb,
                tensor::ExtractOp::create(wb, activations,
                                          ValueRange{row, word * kNibbles + j}),
                lanes));
          for (int64_t c = 0; c < vectors; ++c) {
            Value q = nibble(wb, halves[j / kHalfNibbles][c], j);
            for (auto [i, x] : llvm::enumerate(xs))
              sums[i * vectors + c] =
                  vector::FMAOp::create(wb, x, q, sums[i * vectors + c]);
          }
        }
        return sums;
      });
}

Value GPTQKernel::addScaledSums(IB &b, Value out, Idx group,
                                ArrayRef<Value> rows, ArrayRef<Idx> cols,
                                ArrayRef<Idx> tileCols,
                                ArrayRef<Value> sums) const {
  int64_t vectors = cols.size();
  SmallVector<Value> updated;
  for (int64_t c = 0; c < vectors; ++c) {
    Value scale = vecToF32(b, readPart(b, scales, group, cols[c]));
    for (auto [i, row] : llvm::enumerate(rows)) {
      Value y = readVector(b, out, {row, tileCols[c]}, lanes);
      updated.push_back(
          vector::FMAOp::create(b, scale, sums[i * vectors + c], y));
    }
  }
  for (int64_t c = 0; c < vectors; ++c)
    for (auto [i, row] : llvm::enumerate(rows))
      out =
          writeVector(b, updated[c * rows.size() + i], out, {row, tileCols[c]});
  return out;
}

Value GPTQKernel::block(IB &b, const ProjectionBlock &blk, Value col0,
                        Value out, int64_t vectors) const {
  BuilderScope scope(b);
  SmallVector<Idx> tileCols, cols;
  for (int64_t c = 0; c < vectors; ++c) {
    tileCols.push_back(Idx(blk.col) + c * lanes);
    cols.push_back(Idx(col0) + tileCols.back());
  }
  return forLoop(
      b, cIndex(b, 0), cIndex(b, depth / groupSize), 1, ValueRange{out},
      [&](IB &gb, Idx group, ValueRange tile) -> SmallVector<Value> {
        SmallVector<Value> sums = groupSums(gb, group, blk.rows, cols);
        return {
            addScaledSums(gb, tile[0], group, blk.rows, cols, tileCols, sums)};
      })[0];
}

Value linalg_lowering::gptqLinear(IB &b, Value x, Value qweight, Value scales,
                                  GPTQAttr encoding, int64_t n, int64_t depth,
                                  int64_t maxLanes, Value init) {
  BuilderScope scope(b);
  // A chunk is a power of two from 2 to 64 columns; a column block 32.
  int64_t chunk = linearChunk(n);
  int64_t lanes = llvm::bit_floor(static_cast<uint64_t>(
      std::min({maxLanes, chunk, GPTQAttr::kBlockColumns})));
  GPTQKernel kernel(b, x, qweight, scales, encoding, depth, lanes);
  Value tokens = dim(b, x, 0);
  // Blocks of `rows` rows x `vectors` vectors of columns, along all of K.
  auto loops = [&](IB &ib, int64_t rows, int64_t vectors) -> Value {
    return projectionLoops(
        ib, init, tokens, n, chunk, depth, depth, rows, vectors * lanes,
        [](IB &, Value) {},
        [&](IB &bb, const ProjectionBlock &blk, Value col0, Value out) {
          return kernel.block(bb, blk, col0, out, vectors);
        });
  };
  int64_t perChunk = chunk / lanes;
  return ifElse(
      b, Idx(tokens) == 1, TypeRange{init.getType()},
      [&](IB &ib) -> SmallVector<Value> {
        return {loops(ib, 1, std::min<int64_t>(4, perChunk))};
      },
      [&](IB &ib) -> SmallVector<Value> {
        return {loops(ib, kRows, columnVectors(kRows, maxLanes, perChunk))};
      })[0];
}
