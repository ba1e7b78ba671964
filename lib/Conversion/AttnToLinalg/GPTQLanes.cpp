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

Value linalg_lowering::gptqLinear(IB &b, Value x, Value qweight, Value scales,
                                  GPTQAttr encoding, int64_t n, int64_t depth,
                                  int64_t maxLanes, Value init) {
  BuilderScope scope(b);
  // A chunk is a power of two from 2 to 64 columns; a column block 32.
  int64_t chunk = linearChunk(n);
  int64_t lanes = llvm::bit_floor(static_cast<uint64_t>(
      std::min({maxLanes, chunk, GPTQAttr::kBlockColumns})));
  int64_t groupSize = encoding.getGroupSize();
  int64_t wordsPerGroup = groupSize / kNibbles;
  bool columnBlocks = encoding.hasColumnBlocks();
  Value activations = nibbleActivations(b, x, depth);
  Value tokens = dim(b, x, 0);
  auto f32Type = vecType(b.getF32Type(), {lanes});
  Value zeros = zero(b, f32Type);
  Value exponent = splat(b, cI32(b, kTwoPow23Bits), lanes);
  Value halfShift = splat(b, cI32(b, 16), lanes);
  SmallVector<Value> masks, offsets;
  for (int64_t i = 0; i < kHalfNibbles; ++i) {
    masks.push_back(splat(b, cI32(b, int64_t(15) << (4 * i)), lanes));
    offsets.push_back(
        splat(b, cF32(b, std::ldexp(1.0, 23) + std::ldexp(8.0, 4 * i)), lanes));
  }

  // `lanes` elements of packed row r of a part (words or scales) from
  // column `col`: `[r, col]`, or `[col / 32, r, col % 32]` in column blocks.
  auto readPart = [&](IB &ib, Value part, Idx r, Idx col) {
    if (!columnBlocks)
      return readVector(ib, part, {r, col}, lanes);
    int64_t width = GPTQAttr::kBlockColumns;
    return readVector(ib, part, {col / width, r, col % width}, lanes);
  };
  // `(q - 8) 2^nibbleShift(j)` of nibble j of `half` (the word's half that
  // holds it), exactly.
  auto nibble = [&](IB &ib, Value half, int64_t j) -> Value {
    int64_t i = j % kHalfNibbles;
    Value bits = arith::OrIOp::create(
        ib, arith::AndIOp::create(ib, half, masks[i]), exponent);
    Value biased = arith::BitcastOp::create(ib, f32Type, bits);
    return arith::SubFOp::create(ib, biased, offsets[i]);
  };

  auto kernel = [&](IB &kb, int64_t rows, int64_t vectors) -> Value {
    auto block = [&](IB &ib, const ProjectionBlock &blk, Value col0,
                     Value out) -> Value {
      SmallVector<Idx> tileCols, cols;
      for (int64_t c = 0; c < vectors; ++c) {
        tileCols.push_back(Idx(blk.col) + c * lanes);
        cols.push_back(Idx(col0) + tileCols.back());
      }
      auto at = [&](int64_t i, int64_t c) { return i * vectors + c; };
      return forLoop(
          ib, cIndex(ib, 0), cIndex(ib, depth / groupSize), 1, ValueRange{out},
          [&](IB &gb, Idx group, ValueRange tile) {
            // 1. The group's sums of (q - 8) x, a packed row at a time.
            Idx firstWord = group * wordsPerGroup;
            SmallVector<Value> sums(rows * vectors, zeros);
            sums = forLoop(
                gb, firstWord, firstWord + wordsPerGroup, 1, sums,
                [&](IB &wb, Idx word, ValueRange acc) {
                  SmallVector<Value> next(acc);
                  SmallVector<Value> halves[2];
                  for (Idx col : cols) {
                    Value words = readPart(wb, qweight, word, col);
                    halves[0].push_back(words);
                    halves[1].push_back(
                        arith::ShRUIOp::create(wb, words, halfShift));
                  }
                  for (int64_t j = 0; j < kNibbles; ++j) {
                    SmallVector<Value> xs;
                    for (Value row : blk.rows)
                      xs.push_back(
                          splat(wb,
                                tensor::ExtractOp::create(
                                    wb, activations,
                                    ValueRange{row, word * kNibbles + j}),
                                lanes));
                    for (int64_t c = 0; c < vectors; ++c) {
                      Value q = nibble(wb, halves[j / kHalfNibbles][c], j);
                      for (int64_t i = 0; i < rows; ++i)
                        next[at(i, c)] =
                            vector::FMAOp::create(wb, xs[i], q, next[at(i, c)]);
                    }
                  }
                  return next;
                });
            // 2. y += s sums. All reads before the writes: tail rows repeat
            // the last row and write the same values.
            SmallVector<Value> updated;
            for (int64_t c = 0; c < vectors; ++c) {
              Value scale = vecToF32(gb, readPart(gb, scales, group, cols[c]));
              for (int64_t i = 0; i < rows; ++i) {
                Value y =
                    readVector(gb, tile[0], {blk.rows[i], tileCols[c]}, lanes);
                updated.push_back(
                    vector::FMAOp::create(gb, scale, sums[at(i, c)], y));
              }
            }
            Value result = tile[0];
            for (int64_t c = 0; c < vectors; ++c)
              for (int64_t i = 0; i < rows; ++i)
                result = writeVector(gb, updated[c * rows + i], result,
                                     {blk.rows[i], tileCols[c]});
            return SmallVector<Value>{result};
          })[0];
    };
    return projectionLoops(
        kb, init, tokens, n, chunk, depth, depth, rows, vectors * lanes,
        [](IB &, Value) {}, block);
  };
  int64_t perChunk = chunk / lanes;
  return ifElse(
      b, Idx(tokens) == 1, TypeRange{init.getType()},
      [&](IB &ib) -> SmallVector<Value> {
        return {kernel(ib, 1, std::min<int64_t>(4, perChunk))};
      },
      [&](IB &ib) -> SmallVector<Value> {
        return {kernel(ib, kRows, columnVectors(kRows, maxLanes, perChunk))};
      })[0];
}
