//===- AttnOpInterfaces.td - attn op interfaces ------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNOPINTERFACES_TD
#define ATTN_DIALECT_ATTN_IR_ATTNOPINTERFACES_TD

include "mlir/IR/OpBase.td"

def Attn_CacheLayerOpInterface : OpInterface<"CacheLayerOpInterface"> {
  let cppNamespace = "::mlir::attn";
  let description = [{
    An op that addresses one layer of the paged KV cache. The layer is either
    a static attribute or a run-time `index` / `i32` operand (one compiled
    function serves every layer of a model, as MAX passes `layer_idx` to
    `__call__`); exactly one of them is set. Canonicalisation folds a
    constant operand into the attribute. Ops implement it with
    `getLayerAttr` / `setLayerAttr` and the `layer_index` operand.
  }];
  let methods = [
    InterfaceMethod<"The static layer, or null when it is a run-time value.",
      "::mlir::IntegerAttr", "getLayerAttr", (ins)>,
    InterfaceMethod<"Sets the static layer.",
      "void", "setLayerAttr", (ins "::mlir::IntegerAttr":$layer)>,
    InterfaceMethod<"The run-time layer operand, or null.",
      "::mlir::Value", "getLayerIndex", (ins)>,
    InterfaceMethod<"The run-time layer operand as a mutable range.",
      "::mlir::MutableOperandRange", "getLayerIndexMutable", (ins)>,
    InterfaceMethod<[{
        The number of layers of the cache, when the types say it statically.
      }], "std::optional<int64_t>", "getStaticNumLayers", (ins)>,
    InterfaceMethod<[{
        The blocks tensor `[P, 2, L, page, Hkv, D]` addressed, or null for
        an opaque cache.
      }], "::mlir::Value", "getCacheBlocks", (ins)>,
  ];
  let extraSharedClassDeclaration = [{
    /// The static layer, if there is one.
    std::optional<int64_t> getStaticLayer() {
      if (::mlir::IntegerAttr attr = $_op.getLayerAttr())
        return attr.getInt();
      return std::nullopt;
    }
    /// The layer as an `index` value built at `b`'s insertion point: a
    /// constant, or the operand (an i32 sign-extended).
    ::mlir::Value buildLayerIndex(::mlir::OpBuilder &b, ::mlir::Location loc) {
      return ::mlir::attn::buildLayerIndex(b, loc, $_op.getStaticLayer(),
                                           $_op.getLayerIndex());
    }
  }];
  let verify = [{ return ::mlir::attn::verifyCacheLayerOp($_op); }];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNOPINTERFACES_TD
