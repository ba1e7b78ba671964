//===- IndexValueChecks.h - what the index-value checks read ----*- C++ -*-===//
//
// The checks of statuses 3-7 (docs/ABI.md) that a function's attn ops need,
// over the index tensors passed as its arguments. attn-insert-entry-checks
// reads them on the host (CPU); convert-attn-to-gpu reads them in a
// validation kernel (CUDA, where the tensors are device memory).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_TRANSFORMS_INDEXVALUECHECKS_H
#define ATTN_DIALECT_ATTN_TRANSFORMS_INDEXVALUECHECKS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::attn {

/// The checks of one function, deduplicated; every value named here is
/// known at the start of the function.
struct IndexValueChecks {
  /// Status 3: `rowOffsets` start at 0, never decrease and end at the rows
  /// (dim 0) of `rows`, a tensor of static rows or an argument.
  struct Rows {
    BlockArgument rowOffsets;
    Value rows;
  };
  /// Statuses 5 and 6: the pages each sequence with new rows touches fit in
  /// its `lookup` row and are below the page count of `blocks`. A store
  /// touches the pages of its new positions, attention those of every key.
  struct Paged {
    BlockArgument rowOffsets, cacheLengths, lookup, blocks;
    bool storeOnly;
  };
  /// Status 7: every position of a sequence with new rows is below the rows
  /// of `table` ([N, D]), a tensor of static rows or an argument.
  struct Rope {
    BlockArgument rowOffsets, cacheLengths;
    Value table;
  };

  SmallVector<Rows> rows;
  /// Status 4: every cache length is >= 0.
  SmallVector<BlockArgument> cacheLengths;
  SmallVector<Paged> paged;
  SmallVector<Rope> rope;

  /// The checks of `func`'s attn ops. Fails (reported) when a count they
  /// compare with is not known at the start of the function.
  static FailureOr<IndexValueChecks> collect(func::FuncOp func);

  bool empty() const {
    return rows.empty() && cacheLengths.empty() && paged.empty() &&
           rope.empty();
  }
};

} // namespace mlir::attn

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_INDEXVALUECHECKS_H
