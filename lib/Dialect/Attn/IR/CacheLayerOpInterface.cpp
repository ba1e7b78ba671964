//===- CacheLayerOpInterface.cpp - ops addressing a cache layer -----------===//
//
// The layer of a cache op is a static attribute or a run-time operand. This
// file holds what every such op shares: the `layer` syntax, the verifier,
// the layer as an index value, and the fold of a constant operand.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::attn;

#include "attn/Dialect/Attn/IR/AttnOpInterfaces.cpp.inc"

LogicalResult mlir::attn::verifyCacheLayerOp(Operation *op) {
  auto layerOp = cast<CacheLayerOpInterface>(op);
  bool isStatic = static_cast<bool>(layerOp.getLayerAttr());
  bool isDynamic = static_cast<bool>(layerOp.getLayerIndex());
  if (isStatic == isDynamic)
    return op->emitOpError(
        "expects exactly one of a static layer and a layer index operand");
  std::optional<int64_t> layer = layerOp.getStaticLayer();
  std::optional<int64_t> numLayers = layerOp.getStaticNumLayers();
  if (layer && numLayers && *layer >= *numLayers)
    return op->emitOpError() << "layer " << *layer
                             << " is out of range for a cache of "
                             << *numLayers << " layers";
  return success();
}

Value mlir::attn::buildLayerIndex(OpBuilder &b, Location loc,
                                  std::optional<int64_t> layer, Value index) {
  if (layer)
    return arith::ConstantIndexOp::create(b, loc, *layer);
  if (index.getType().isIndex())
    return index;
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), index);
}

//===----------------------------------------------------------------------===//
// `layer 3` or `layer(%l : i32)`
//===----------------------------------------------------------------------===//

ParseResult
mlir::attn::parseLayer(OpAsmParser &parser,
                       std::optional<OpAsmParser::UnresolvedOperand> &index,
                       Type &indexType, IntegerAttr &layer) {
  if (parser.parseKeyword("layer"))
    return failure();
  if (succeeded(parser.parseOptionalLParen())) {
    index.emplace();
    return failure(parser.parseOperand(*index) || parser.parseColon() ||
                   parser.parseType(indexType) || parser.parseRParen());
  }
  int64_t value;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseInteger(value))
    return failure();
  if (value < 0)
    return parser.emitError(loc, "expects a non-negative layer, got ") << value;
  layer = parser.getBuilder().getI64IntegerAttr(value);
  return success();
}

void mlir::attn::printLayer(OpAsmPrinter &printer, Operation *, Value index,
                            Type indexType, IntegerAttr layer) {
  printer << "layer";
  if (index)
    printer << "(" << index << " : " << indexType << ")";
  else if (layer)
    printer << " " << layer.getInt();
}

//===----------------------------------------------------------------------===//
// A constant layer operand becomes the attribute
//===----------------------------------------------------------------------===//

namespace {
struct FoldConstantLayer : RewritePattern {
  FoldConstantLayer(StringRef opName, MLIRContext *ctx)
      : RewritePattern(opName, /*benefit=*/1, ctx) {}
  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    auto layerOp = cast<CacheLayerOpInterface>(op);
    Value index = layerOp.getLayerIndex();
    APInt value;
    if (!index || !matchPattern(index, m_ConstantInt(&value)))
      return failure();
    // A negative or too large constant stays an operand: the run-time check
    // reports it (the verifier only sees static layers).
    std::optional<int64_t> numLayers = layerOp.getStaticNumLayers();
    int64_t layer = value.getSExtValue();
    if (layer < 0 || (numLayers && layer >= *numLayers))
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      layerOp.getLayerIndexMutable().clear();
      layerOp.setLayerAttr(rewriter.getI64IntegerAttr(layer));
    });
    return success();
  }
};
} // namespace

void mlir::attn::addFoldConstantLayerPattern(RewritePatternSet &patterns,
                                             StringRef opName) {
  patterns.add<FoldConstantLayer>(opName, patterns.getContext());
}
