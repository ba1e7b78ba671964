//===- AttnBase.td - attn dialect definition ---------------*- tablegen -*-===//
//
// The attn dialect and the helpers shared by its attributes, types and ops.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNBASE_TD
#define ATTN_DIALECT_ATTN_IR_ATTNBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::mlir::attn";
  let summary = "The attention block of large language models";
  let description = [{
    The `attn` dialect describes one attention layer of a decoder-only
    language model at the level of Modular MAX's `AttentionWithRope` family:
    QKV projection, optional per-head RMS norm of q and k, rotary position
    embedding, writes into a paged KV cache, flash attention over ragged
    batches with grouped-query heads and masks, and the output projection.

    Ops work on tensors with value semantics. A ragged batch of `B`
    sequences and `T` tokens is a `[T, ...]` tensor plus `row_offsets : [B+1]`;
    both `T` and `B` may be dynamic. The paged KV cache is either one opaque
    `!attn.paged_kv_cache` value or its three tensors (blocks, cache lengths,
    lookup table).
  }];
  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  let hasConstantMaterializer = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
  let extraClassDeclaration = [{
    void registerAttributes();
    void registerTypes();
  }];
}

class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

class Attn_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Attn_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

class Attn_Type<string name, string typeMnemonic, list<Trait> traits = []>
    : TypeDef<Attn_Dialect, name, traits> {
  let mnemonic = typeMnemonic;
}

//===----------------------------------------------------------------------===//
// Attribute parameters that print as plain literals (`theta = 500000.0`).
//===----------------------------------------------------------------------===//

// Stored as APFloat (hashable, compared bitwise); always f64 semantics.
class Attn_F64Parameter<string desc>
    : AttrOrTypeParameter<"::llvm::APFloat", desc> {
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = "::mlir::attn::parseF64($_parser)";
  let printer = "::mlir::attn::printF64($_printer, $_self)";
}

class Attn_DefaultF64Parameter<string value, string desc>
    : Attn_F64Parameter<desc> {
  let defaultValue = "::llvm::APFloat(" # value # ")";
}

class Attn_BoolParameter<string value, string desc>
    : AttrOrTypeParameter<"bool", desc> {
  let parser = "::mlir::attn::parseBool($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
  let defaultValue = value;
}

class Attn_F64ArrayParameter<string desc>
    : ArrayRefParameter<"::llvm::APFloat", desc> {
  let parser = "::mlir::attn::parseF64List($_parser)";
  let printer = "::mlir::attn::printF64List($_printer, $_self)";
}

//===----------------------------------------------------------------------===//
// Operand constraints shared by the ops.
//===----------------------------------------------------------------------===//

// Ragged-batch bookkeeping: row offsets [B+1], cache lengths [B].
def Attn_IndexVector : 1DTensorOf<[I32]>;
// Page ids per sequence: [B, max_pages].
def Attn_LookupTable : 2DTensorOf<[I32]>;
// Activations and weights: floating point for now; quantised weights extend
// the element types (float8, packed int4) together with scale operands.
def Attn_FloatTensor : RankedTensorOf<[AnyFloat]>;
def Attn_Float1D : 1DTensorOf<[AnyFloat]>;
def Attn_Float2D : 2DTensorOf<[AnyFloat]>;
def Attn_Float3D : 3DTensorOf<[AnyFloat]>;
def Attn_Float6D : TensorRankOf<[AnyFloat], [6]>;

#endif // ATTN_DIALECT_ATTN_IR_ATTNBASE_TD
