//===- AttnAsmUtils.h - literal parameters of attn attributes ---*- C++ -*-===//
//
// Parsers and printers for the plain-literal attribute parameters (f64, bool,
// f64 lists) that ODS's struct() format calls.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNASMUTILS_H
#define ATTN_DIALECT_ATTN_IR_ATTNASMUTILS_H

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/SmallVector.h"

namespace mlir::attn {

/// An f64 literal; integers are accepted (`theta = 10000`).
FailureOr<llvm::APFloat> parseF64(AsmParser &parser);
/// Prints the shortest text that parses back to the same double, always as a
/// float literal (`8192.0`, `1.0e-06`).
void printF64(AsmPrinter &printer, const llvm::APFloat &value);
/// parseF64 for an optional parameter that is present.
FailureOr<std::optional<llvm::APFloat>> parseOptionalF64(AsmParser &parser);
FailureOr<bool> parseBool(AsmParser &parser);
FailureOr<SmallVector<llvm::APFloat>> parseF64List(AsmParser &parser);
void printF64List(AsmPrinter &printer, ArrayRef<llvm::APFloat> values);

} // namespace mlir::attn

#endif // ATTN_DIALECT_ATTN_IR_ATTNASMUTILS_H
