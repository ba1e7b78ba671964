//===- Projections.h - recognising x @ W^T in linalg form -------*- C++ -*-===//
//
// Shared by the fusion passes: a `linalg.matmul` that computes the
// `nn.Linear` projection `x [T, K] @ W [N, K]^T` from a zero-filled init.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_DIALECT_ATTN_TRANSFORMS_PROJECTIONS_H
#define ATTN_LIB_DIALECT_ATTN_TRANSFORMS_PROJECTIONS_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Matchers.h"

#include <optional>
#include <utility>

namespace mlir::attn {

/// (x, W) when `op` is a `linalg.matmul` of a zero-filled init computing
/// `x @ W^T`: by `indexing_maps` ((m, k), (n, k), (m, n)), or with the
/// default maps on `linalg.transpose(W)` (permutation [1, 0]); x, W and the
/// result rank-2 tensors of one float element type.
inline std::optional<std::pair<Value, Value>>
matchMatmulProjection(Operation *op) {
  auto matmul = dyn_cast_or_null<linalg::MatmulOp>(op);
  if (!matmul || matmul.getNumDpsInputs() != 2 || matmul->getNumResults() != 1)
    return std::nullopt;
  auto fill = matmul.getDpsInits()[0].getDefiningOp<linalg::FillOp>();
  if (!fill || !matchPattern(fill.getInputs()[0], m_AnyZeroFloat()))
    return std::nullopt;
  Value x = matmul.getDpsInputs()[0], rhs = matmul.getDpsInputs()[1];
  MLIRContext *ctx = op->getContext();
  AffineExpr m, n, k;
  bindDims(ctx, m, n, k);
  SmallVector<AffineMap> transposeB = {
      AffineMap::get(3, 0, {m, k}, ctx), AffineMap::get(3, 0, {n, k}, ctx),
      AffineMap::get(3, 0, {m, n}, ctx)};
  Value weight;
  if (matmul.getIndexingMapsArray() == transposeB) {
    weight = rhs;
  } else if (!matmul.hasUserDefinedMaps()) {
    auto transpose = rhs.getDefiningOp<linalg::TransposeOp>();
    if (!transpose || transpose.getPermutation() != ArrayRef<int64_t>{1, 0})
      return std::nullopt;
    weight = transpose.getInput();
  } else {
    return std::nullopt;
  }
  auto xType = dyn_cast<RankedTensorType>(x.getType());
  auto wType = dyn_cast<RankedTensorType>(weight.getType());
  auto rType = dyn_cast<RankedTensorType>(matmul->getResult(0).getType());
  if (!xType || !wType || !rType || xType.getRank() != 2 ||
      wType.getRank() != 2 || !isa<FloatType>(xType.getElementType()) ||
      wType.getElementType() != xType.getElementType() ||
      rType.getElementType() != xType.getElementType())
    return std::nullopt;
  return std::make_pair(x, weight);
}

} // namespace mlir::attn

#endif // ATTN_LIB_DIALECT_ATTN_TRANSFORMS_PROJECTIONS_H
