//===- AttnOps.h - attn operations ------------------------------*- C++ -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNOPS_H
#define ATTN_DIALECT_ATTN_IR_ATTNOPS_H

#include "attn/Dialect/Attn/IR/AttnAttrs.h"
#include "attn/Dialect/Attn/IR/AttnDialect.h"
#include "attn/Dialect/Attn/IR/AttnTypes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::attn {
/// The checks of CacheLayerOpInterface: exactly one of the static layer and
/// the layer operand, and a static layer inside a static layer count.
LogicalResult verifyCacheLayerOp(Operation *op);

/// The value `v` was written in place from, followed back through cache
/// stores (their result is the updated destination), tensor casts and
/// `parts(make(...))` pairs: a block argument, or null if `v` is computed.
BlockArgument inPlaceSource(Value v);

/// Reports each op under `root` that takes a quantised weight (other than
/// attn.quantized_weight, which makes one) as not supported on `target`,
/// unless `supported` accepts its encoding; fails if there is one.
LogicalResult rejectQuantizedWeights(
    Operation *root, StringRef target,
    function_ref<bool(WeightEncodingAttrInterface)> supported = nullptr);

/// `layer` as an index constant, or `index` cast to index (see
/// CacheLayerOpInterface::buildLayerIndex).
Value buildLayerIndex(OpBuilder &b, Location loc, std::optional<int64_t> layer,
                      Value index);

/// The `layer` syntax of cache ops: `3` or `(%l : i32)`.
ParseResult parseLayer(OpAsmParser &parser,
                       std::optional<OpAsmParser::UnresolvedOperand> &index,
                       Type &indexType, IntegerAttr &layer);
void printLayer(OpAsmPrinter &printer, Operation *op, Value index,
                Type indexType, IntegerAttr layer);

/// Canonicalisation of cache op `opName`: a constant layer operand in range
/// becomes the static layer.
void addFoldConstantLayerPattern(RewritePatternSet &patterns, StringRef opName);
} // namespace mlir::attn

#include "attn/Dialect/Attn/IR/AttnOpInterfaces.h.inc"

#define GET_OP_CLASSES
#include "attn/Dialect/Attn/IR/AttnOps.h.inc"

#endif // ATTN_DIALECT_ATTN_IR_ATTNOPS_H
