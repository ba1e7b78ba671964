//===- EntryChecks.h - helpers of attn-insert-entry-checks ------*- C++ -*-===//
//
// Shared by the checks of sizes and scalars (InsertEntryChecks.cpp) and those
// that read the ragged-batch index tensors' values (IndexValueChecks.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef LIB_DIALECT_ATTN_TRANSFORMS_ENTRYCHECKS_H
#define LIB_DIALECT_ATTN_TRANSFORMS_ENTRYCHECKS_H

#include "attn/Dialect/Attn/Transforms/EntryStatus.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::attn {

/// Asserts `ok` at `b`'s insertion point, reporting `status` when it fails
/// (see EntryStatus.h).
void assertOrReport(OpBuilder &b, Location loc, Value ok, EntryStatus status);

/// The argument `v` is, seen through tensor casts; null if it is computed.
BlockArgument tensorArgument(Value v);

/// Inserts at `b`'s insertion point (the start of `func`) the checks of the
/// values of the index tensors that `func`'s attn ops read: row offsets,
/// cache lengths, the page ids and the RoPE positions each op touches.
/// Fails (reported) when the number of rows an op indexes is not known at
/// the start of the function.
LogicalResult insertIndexValueChecks(func::FuncOp func, OpBuilder &b);

} // namespace mlir::attn

#endif // LIB_DIALECT_ATTN_TRANSFORMS_ENTRYCHECKS_H
