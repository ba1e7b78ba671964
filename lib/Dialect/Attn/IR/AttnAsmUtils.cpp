//===- AttnAsmUtils.cpp - literal parameters of attn attributes -----------===//

#include "attn/Dialect/Attn/IR/AttnAsmUtils.h"

#include <charconv>
#include <cmath>

using namespace mlir;

FailureOr<APFloat> attn::parseF64(AsmParser &parser) {
  bool negative = succeeded(parser.parseOptionalMinus());
  double value = 0;
  // Config files write `theta = 10000`; take integers as well.
  uint64_t integer = 0;
  OptionalParseResult asInteger = parser.parseOptionalInteger(integer);
  if (asInteger.has_value()) {
    if (failed(*asInteger))
      return failure();
    value = static_cast<double>(integer);
  } else if (parser.parseFloat(value)) {
    return failure();
  }
  return APFloat(negative ? -value : value);
}

FailureOr<std::optional<APFloat>> attn::parseOptionalF64(AsmParser &parser) {
  FailureOr<APFloat> value = parseF64(parser);
  if (failed(value))
    return failure();
  return std::optional<APFloat>(*value);
}

void attn::printF64(AsmPrinter &printer, const APFloat &apValue) {
  double value = apValue.convertToDouble();
  if (!std::isfinite(value)) {
    // Verifiers reject these; print something readable for diagnostics.
    printer << (std::isnan(value) ? "nan" : (value < 0 ? "-inf" : "inf"));
    return;
  }
  char buffer[64];
  // Plain digits for the usual magnitudes (`500000.0`), exponents otherwise.
  double magnitude = std::fabs(value);
  bool fixed = value == 0 || (magnitude >= 1e-6 && magnitude < 1e17);
  auto [end, ec] =
      fixed ? std::to_chars(buffer, buffer + sizeof(buffer), value,
                            std::chars_format::fixed)
            : std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, ec == std::errc() ? end : buffer);
  // MLIR float literals need a '.' before any exponent.
  size_t exp = text.find_first_of("eE");
  std::string mantissa = text.substr(0, exp);
  if (mantissa.find('.') == std::string::npos)
    mantissa += ".0";
  if (exp == std::string::npos) {
    printer << mantissa;
    return;
  }
  printer << mantissa << "e" << text.substr(exp + 1);
}

FailureOr<bool> attn::parseBool(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(),
                          "expected 'true' or 'false'");
}

FailureOr<SmallVector<APFloat>> attn::parseF64List(AsmParser &parser) {
  SmallVector<APFloat> values;
  if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
        FailureOr<APFloat> value = parseF64(parser);
        if (failed(value))
          return failure();
        values.push_back(*value);
        return success();
      }))
    return failure();
  return values;
}

void attn::printF64List(AsmPrinter &printer, ArrayRef<APFloat> values) {
  printer << '[';
  llvm::interleaveComma(values, printer,
                        [&](const APFloat &value) { printF64(printer, value); });
  printer << ']';
}
