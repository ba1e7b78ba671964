//===- Builders.h - shared attn -> linalg builders --------------*- C++ -*-===//
//
// What every attn -> linalg pattern builds with: index and float scalars,
// tensors and linalg.generic, the vector helpers of the CPU kernels and the
// register-block pieces that the projection and attention kernels share.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_BUILDERS_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_BUILDERS_H

#include "attn/Conversion/Kernels/Builder.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::attn::linalg_lowering {

using namespace kb;
using utils::IteratorType;

//===----------------------------------------------------------------------===//
// Small builders
//===----------------------------------------------------------------------===//

/// Rows [start, end) of sequence `seq` in `rowOffsets` [B+1], clamped to
/// [0, limit) so that malformed offsets cannot index out of bounds.
std::pair<Value, Value> sequenceRows(IB &b, Value rowOffsets, Value seq,
                                     Value limit);

Value emptyTensor(IB &b, ArrayRef<OpFoldResult> sizes, Type elementType);
Value filled(IB &b, ArrayRef<OpFoldResult> sizes, Value scalar);
SmallVector<IteratorType> iterators(int64_t parallel, int64_t reduction = 0);
AffineMap map(MLIRContext *ctx, int64_t numDims, ArrayRef<AffineExpr> exprs);

using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

Value generic(IB &b, Value init, ValueRange inputs, ArrayRef<AffineMap> maps,
              ArrayRef<IteratorType> its, BodyFn body);

/// The rows of `x [T, K]` in runs: `x` viewed as `[T, K / run, run]`.
Value splitRows(IB &b, Value x, int64_t depth, int64_t run);

/// Row positions: `pos[r] = cache_lengths[b] + r - row_offsets[b]` for the
/// rows of sequence `b` (rows outside every sequence get 0).
Value rowPositions(IB &b, Value rowOffsets, Value cacheLengths, Value tokens);

//===----------------------------------------------------------------------===//
// Vector helpers
//===----------------------------------------------------------------------===//

constexpr int64_t kLanes = 8;
constexpr int64_t kRowBlock = 4;

VectorType vecType(Type element, ArrayRef<int64_t> shape);
Value vecToF32(IB &b, Value v);
Value splat(IB &b, Value scalar, int64_t n);
Value readVector(IB &b, Value source, ValueRange indices, int64_t n);
Value writeVector(IB &b, Value vector, Value dest, ValueRange indices);

//===----------------------------------------------------------------------===//
// Register blocks (projection and attention kernels)
//===----------------------------------------------------------------------===//

/// `Kt [D, tile]` f32 from 8x8 blocks: eight 8-wide f32 rows from
/// `readRow(c, d0)` (converted to f32 as they are read, so no narrow float
/// vector crosses a loop), transposed in registers.
Value transposeKeys(IB &b, int64_t tile, int64_t headDim,
                    function_ref<Value(IB &, Value c, Value d0)> readRow);

/// Rows r0 .. r0 + count - 1.
SmallVector<Value> blockRows(IB &b, Value r0, int64_t count);

/// Accumulates `sum_k lhs[rows[i], k] * rhs[k, col0 : col0 + width]` into the
/// vectors `acc`, one per row i (k in [0, depth), or [kBegin, kEnd)).
SmallVector<Value> outerProducts(IB &b, Value lhs, Value rhs,
                                 ArrayRef<Value> rows, Value col0, int64_t depth,
                                 int64_t width, ValueRange acc,
                                 Value kBegin = {}, Value kEnd = {});

/// Columns per register block: the widest of maxWidth, 16, 8 dividing `n`.
int64_t blockWidth(int64_t n, int64_t maxWidth);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_BUILDERS_H
