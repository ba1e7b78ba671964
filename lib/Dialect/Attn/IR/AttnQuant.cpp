//===- AttnQuant.cpp - quantised weight encodings -------------------------===//
//
// The GPTQ, float8 and GGUF encodings (WeightEncodingAttrInterface), the
// `!attn.quantized_weight` type and the op that bundles a weight's parts.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/IR/DialectImplementation.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;

namespace {
using EmitErrorFn = function_ref<InFlightDiagnostic()>;

/// As every size of the dialect: below 2^31 (see AttnAttrs.cpp).
constexpr int64_t kMaxWeightSize = std::numeric_limits<int32_t>::max();

std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << '[';
  llvm::interleaveComma(shape, os);
  os << ']';
  return text;
}

/// Part `index` of `parts` is a tensor of `shape` with one of `elementTypes`.
LogicalResult expectPart(EmitErrorFn emitError, TypeRange parts,
                         ArrayRef<StringRef> names, size_t index,
                         ArrayRef<int64_t> shape, ArrayRef<Type> elementTypes) {
  auto type = dyn_cast<RankedTensorType>(parts[index]);
  if (!type || type.getShape() != shape)
    return emitError() << "expects " << names[index] << " of shape "
                       << formatShape(shape) << ", got " << parts[index];
  if (!llvm::is_contained(elementTypes, type.getElementType())) {
    InFlightDiagnostic diag = emitError();
    diag << "expects " << names[index] << " of element type ";
    llvm::interleave(elementTypes, diag, " or ");
    return diag << ", got " << type.getElementType();
  }
  return success();
}

LogicalResult expectPartCount(EmitErrorFn emitError, Attribute encoding,
                              TypeRange parts, ArrayRef<StringRef> names) {
  if (parts.size() == names.size())
    return success();
  InFlightDiagnostic diag = emitError();
  diag << "expects " << names.size() << " parts for " << encoding << " (";
  llvm::interleaveComma(names, diag);
  return diag << "), got " << parts.size();
}

/// `cols` (K) must be a multiple of `unit`, named `what`.
LogicalResult expectColsMultiple(EmitErrorFn emitError, int64_t cols,
                                 int64_t unit, StringRef what) {
  if (cols % unit == 0)
    return success();
  return emitError() << "expects K (" << cols << ") to be a multiple of the "
                     << what << " (" << unit << ")";
}

LogicalResult expectActivation(EmitErrorFn emitError, Attribute encoding,
                               Type type, ArrayRef<Type> allowed) {
  if (llvm::is_contained(allowed, type))
    return success();
  InFlightDiagnostic diag = emitError();
  diag << "expects activations of ";
  llvm::interleave(allowed, diag, " or ");
  return diag << " with " << encoding << " weights, got " << type;
}
} // namespace

//===----------------------------------------------------------------------===//
// GPTQAttr
//===----------------------------------------------------------------------===//

LogicalResult GPTQAttr::verify(EmitErrorFn emitError, int64_t bits,
                               int64_t groupSize, bool, bool sym,
                               GPTQLayout) {
  if (bits != 4)
    return emitError() << "GPTQ with " << bits
                       << " bits is not supported "
                          "(4 only, as MAX)";
  if (!sym)
    return emitError() << "asymmetric GPTQ (sym = false) is not supported "
                          "(MAX decodes with the zero point 8)";
  // A packed word (8 values) then never straddles two groups.
  if (groupSize <= 0 || groupSize > kMaxWeightSize || groupSize % 8 != 0)
    return emitError() << "expects a positive GPTQ group size that is a "
                          "multiple of 8, got "
                       << groupSize;
  return success();
}

SmallVector<StringRef> GPTQAttr::getPartNames() const {
  SmallVector<StringRef> names = {"qweight", "scales"};
  if (getDescAct())
    names.push_back("perm");
  return names;
}

LogicalResult GPTQAttr::verifyParts(int64_t rows, int64_t cols, TypeRange parts,
                                    EmitErrorFn emitError) const {
  SmallVector<StringRef> names = getPartNames();
  if (failed(expectPartCount(emitError, *this, parts, names)) ||
      failed(expectColsMultiple(emitError, cols, 8, "int4 values per word")) ||
      failed(expectColsMultiple(emitError, cols, getGroupSize(), "group size")))
    return failure();
  // [K/8, N] and [K/g, N], or both in column blocks: [N/32, K/8 | K/g, 32].
  auto shapeOf = [&](int64_t partRows) -> SmallVector<int64_t> {
    if (hasColumnBlocks())
      return {rows / kBlockColumns, partRows, kBlockColumns};
    return {partRows, rows};
  };
  if (hasColumnBlocks() && rows % kBlockColumns != 0)
    return emitError() << "expects N (" << rows << ") to be a multiple of "
                       << kBlockColumns << " with layout = column_blocks";
  Builder b(getContext());
  if (failed(expectPart(emitError, parts, names, 0, shapeOf(cols / 8),
                        {b.getI32Type()})) ||
      failed(expectPart(emitError, parts, names, 1,
                        shapeOf(cols / getGroupSize()),
                        {b.getF16Type(), b.getBF16Type()})))
    return failure();
  if (getDescAct())
    return expectPart(emitError, parts, names, 2, {cols}, {b.getI32Type()});
  return success();
}

LogicalResult GPTQAttr::verifyActivationType(Type type,
                                             EmitErrorFn emitError) const {
  Builder b(getContext());
  return expectActivation(emitError, *this, type,
                          {b.getBF16Type(), b.getF16Type()});
}

bool GPTQAttr::allowsBias() const { return false; }

//===----------------------------------------------------------------------===//
// Float8Attr
//===----------------------------------------------------------------------===//

LogicalResult Float8Attr::verify(EmitErrorFn emitError, Float8ScaleGranularity,
                                 Float8InputScale inputScale,
                                 std::optional<APFloat> upperBound) {
  if (!upperBound)
    return success();
  if (inputScale != Float8InputScale::Dynamic)
    return emitError() << "'upper_bound' bounds a dynamic input scale only";
  double bound = upperBound->convertToDouble();
  if (!std::isfinite(bound) || bound <= 0)
    return emitError() << "'upper_bound' must be positive and finite";
  return success();
}

SmallVector<StringRef> Float8Attr::getPartNames() const {
  SmallVector<StringRef> names = {"weight", "weight_scale"};
  if (getInputScale() == Float8InputScale::Static)
    names.push_back("input_scale");
  return names;
}

LogicalResult Float8Attr::verifyParts(int64_t rows, int64_t cols,
                                      TypeRange parts,
                                      EmitErrorFn emitError) const {
  SmallVector<StringRef> names = getPartNames();
  if (failed(expectPartCount(emitError, *this, parts, names)))
    return failure();
  Builder b(getContext());
  Type f32 = b.getF32Type();
  if (failed(expectPart(emitError, parts, names, 0, {rows, cols},
                        {b.getType<Float8E4M3FNType>()})))
    return failure();
  SmallVector<int64_t> scaleShape;
  switch (getWeightScale()) {
  case Float8ScaleGranularity::Tensor:
    scaleShape = {1};
    break;
  case Float8ScaleGranularity::Row:
    scaleShape = {rows};
    break;
  case Float8ScaleGranularity::Block:
    if (failed(expectColsMultiple(emitError, cols, kBlockSize,
                                  "float8 scale block")))
      return failure();
    scaleShape = {static_cast<int64_t>(llvm::divideCeil(rows, kBlockSize)),
                  cols / kBlockSize};
    break;
  }
  if (failed(expectPart(emitError, parts, names, 1, scaleShape, {f32})))
    return failure();
  if (getInputScale() == Float8InputScale::Static)
    return expectPart(emitError, parts, names, 2, {1}, {f32});
  return success();
}

LogicalResult Float8Attr::verifyActivationType(Type type,
                                               EmitErrorFn emitError) const {
  Builder b(getContext());
  return expectActivation(emitError, *this, type,
                          {b.getBF16Type(), b.getF16Type(), b.getF32Type()});
}

bool Float8Attr::allowsBias() const { return true; }

//===----------------------------------------------------------------------===//
// GGUFAttr
//===----------------------------------------------------------------------===//

int64_t GGUFAttr::getBlockElements() const {
  switch (getType()) {
  case GGUFType::Q4_0:
  case GGUFType::Q8_0:
    return 32;
  case GGUFType::Q4_K:
  case GGUFType::Q6_K:
    return 256;
  }
  llvm_unreachable("unknown GGUF type");
}

int64_t GGUFAttr::getBlockBytes() const {
  switch (getType()) {
  case GGUFType::Q4_0:
    return 18;
  case GGUFType::Q8_0:
    return 34;
  case GGUFType::Q4_K:
    return 144;
  case GGUFType::Q6_K:
    return 210;
  }
  llvm_unreachable("unknown GGUF type");
}

SmallVector<StringRef> GGUFAttr::getPartNames() const { return {"blocks"}; }

LogicalResult GGUFAttr::verifyParts(int64_t rows, int64_t cols, TypeRange parts,
                                    EmitErrorFn emitError) const {
  SmallVector<StringRef> names = getPartNames();
  if (failed(expectPartCount(emitError, *this, parts, names)) ||
      failed(expectColsMultiple(emitError, cols, getBlockElements(),
                                "GGUF block size")))
    return failure();
  int64_t bytes = cols / getBlockElements() * getBlockBytes();
  return expectPart(emitError, parts, names, 0, {rows, bytes},
                    {IntegerType::get(getContext(), 8)});
}

LogicalResult GGUFAttr::verifyActivationType(Type type,
                                             EmitErrorFn emitError) const {
  return expectActivation(emitError, *this, type,
                          {Float32Type::get(getContext())});
}

bool GGUFAttr::allowsBias() const { return false; }

//===----------------------------------------------------------------------===//
// QuantizedWeightType
//===----------------------------------------------------------------------===//

Type QuantizedWeightType::parse(AsmParser &parser) {
  SmallVector<int64_t> shape;
  WeightEncodingAttrInterface encoding;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/false,
                                /*withTrailingX=*/false) ||
      parser.parseComma() || parser.parseAttribute(encoding) ||
      parser.parseGreater())
    return {};
  if (shape.size() != 2) {
    parser.emitError(loc, "expects the weight shape as rows x cols");
    return {};
  }
  return getChecked([&] { return parser.emitError(loc); }, parser.getContext(),
                    shape[0], shape[1], encoding);
}

void QuantizedWeightType::print(AsmPrinter &printer) const {
  printer << '<' << getRows() << 'x' << getCols() << ", " << getEncoding()
          << '>';
}

LogicalResult
QuantizedWeightType::verify(EmitErrorFn emitError, int64_t rows, int64_t cols,
                            WeightEncodingAttrInterface encoding) {
  for (int64_t size : {rows, cols})
    if (size <= 0 || size > kMaxWeightSize)
      return emitError() << "expects weight sizes in [1, " << kMaxWeightSize
                         << "], got " << rows << "x" << cols;
  if (!encoding)
    return emitError() << "expects a weight encoding";
  return success();
}

//===----------------------------------------------------------------------===//
// QuantizedWeightOp
//===----------------------------------------------------------------------===//

LogicalResult QuantizedWeightOp::verify() {
  QuantizedWeightType type = getWeight().getType();
  return type.getEncoding().verifyParts(type.getRows(), type.getCols(),
                                        getParts().getTypes(),
                                        [&] { return emitOpError(); });
}
