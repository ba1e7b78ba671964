//===- AttnQuantAttrs.td - encodings of quantised weights --*- tablegen -*-===//
//
// How a projection weight `W [N, K]` is stored when it is not a plain float
// tensor: GPTQ int4 groups, float8 E4M3 with scales, GGUF blocks. Each
// encoding is an attribute implementing WeightEncodingAttrInterface; the
// weight itself is an `!attn.quantized_weight<N x K, encoding>` value made by
// `attn.quantized_weight` from the tensors ("parts") the encoding lists.
// The decoding is written out in python/attn/reference.py (`decode_*`).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNQUANTATTRS_TD
#define ATTN_DIALECT_ATTN_IR_ATTNQUANTATTRS_TD

include "attn/Dialect/Attn/IR/AttnBase.td"
include "attn/Dialect/Attn/IR/AttnAttrInterfaces.td"
include "mlir/IR/EnumAttr.td"

// An optional f64 literal (Attn_F64Parameter's form when present).
class Attn_OptionalF64Parameter<string desc>
    : OptionalParameter<"std::optional<::llvm::APFloat>", desc> {
  let comparator = "$_lhs.has_value() == $_rhs.has_value() && "
                   "(!$_lhs || $_lhs->bitwiseIsEqual(*$_rhs))";
  let parser = "::mlir::attn::parseOptionalF64($_parser)";
  let printer = "::mlir::attn::printF64($_printer, *$_self)";
}

defvar Attn_WeightEncodingMethods =
    [DeclareAttrInterfaceMethods<Attn_WeightEncodingAttrInterface>];

//===----------------------------------------------------------------------===//
// GPTQ
//===----------------------------------------------------------------------===//

def Attn_GPTQLayout : I32EnumAttr<"GPTQLayout",
    "the order of a GPTQ weight's words and scales", [
    I32EnumAttrCase<"Checkpoint", 0, "checkpoint">,
    I32EnumAttrCase<"ColumnBlocks", 1, "column_blocks">]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

// GPTQAttr's layout, `checkpoint` when absent.
def Attn_GPTQLayoutParameter : EnumParameter<Attn_GPTQLayout> {
  let defaultValue = "::mlir::attn::GPTQLayout::Checkpoint";
}

def Attn_GPTQAttr : Attn_Attr<"GPTQ", "gptq", Attn_WeightEncodingMethods> {
  let summary = "GPTQ int4 weights in groups along K (MAX's QuantizationConfig)";
  let description = [{
    Parts: `qweight : tensor<K/8 x N x i32>` (eight 4-bit values per word,
    the lowest nibble the lowest k), `scales : tensor<K/g x N x f16|bf16>`
    and, with `desc_act`, `perm : tensor<K x i32>`. Decoded
    `W[n, k] = (q[k, n] - 8) * scales[k / g, n]`; with `desc_act` the stored
    rows are in the order `perm` and the product is
    `y[n] = sum_r x[perm[r]] W[n, r]`. Symmetric 4-bit only, as MAX: `bits`
    and `sym` are there so that a checkpoint's config transcribes as it is
    and an unsupported one is rejected by name. Activations bf16 or f16.

    `layout = column_blocks` stores the same words and scales in 32-column
    blocks, `qweight : tensor<N/32 x K/8 x 32 x i32>` and `scales :
    tensor<N/32 x K/g x 32>`, element `[r, n]` of the checkpoint's part at
    `[n / 32, r, n % 32]` (N a multiple of 32): each 32 output columns'
    words, and their scales, are one contiguous run, which the GPU kernels
    read as one stream. The one-time repack is
    `attn.reference.gptq_column_blocks` (docs/ABI.md).

    ```mlir
    #attn.gptq<group_size = 128>
    #attn.gptq<group_size = 128, desc_act = true>
    #attn.gptq<group_size = 128, layout = column_blocks>
    ```
  }];
  let parameters = (ins
    DefaultValuedParameter<"int64_t", "4">:$bits,
    "int64_t":$group_size,
    Attn_BoolParameter<"false", "rows stored in activation order">:$desc_act,
    Attn_BoolParameter<"true", "symmetric (zero point 8)">:$sym,
    Attn_GPTQLayoutParameter:$layout);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Output columns of one block of `column_blocks`.
    static constexpr int64_t kBlockColumns = 32;
    bool hasColumnBlocks() const {
      return getLayout() == GPTQLayout::ColumnBlocks;
    }
  }];
}

//===----------------------------------------------------------------------===//
// float8
//===----------------------------------------------------------------------===//

def Attn_Float8ScaleGranularity : I32EnumAttr<"Float8ScaleGranularity",
    "which elements of a float8 weight share one scale", [
    I32EnumAttrCase<"Tensor", 0, "tensor">,
    I32EnumAttrCase<"Row", 1, "row">,
    I32EnumAttrCase<"Block", 2, "block">]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_Float8InputScale : I32EnumAttr<"Float8InputScale",
    "where the activation scale of a float8 projection comes from", [
    I32EnumAttrCase<"Static", 0, "static">,
    I32EnumAttrCase<"Dynamic", 1, "dynamic">]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_Float8Attr : Attn_Attr<"Float8", "float8", Attn_WeightEncodingMethods> {
  let summary = "float8 E4M3 weights with f32 scales (MAX's Float8Config)";
  let description = [{
    Parts: `weight : tensor<N x K x f8E4M3FN>`, `weight_scale` f32 of shape
    `[1]` (`tensor`), `[N]` (`row`) or `[ceil(N/128), K/128]` (`block`, K a
    multiple of 128) and, for a `static` input scale, `input_scale :
    tensor<1xf32>`. A `dynamic` input scale is `max_k |x[t, k]| / 448` per
    token, `max |x|` clamped to `upper_bound` when given. Activations are
    quantised to E4M3 with it and `y = (x8 . w8) * s_x * s_w` in f32.

    ```mlir
    #attn.float8<weight_scale = row, input_scale = dynamic>
    #attn.float8<weight_scale = block, input_scale = dynamic, upper_bound = 1200.0>
    #attn.float8<weight_scale = tensor, input_scale = static>
    ```
  }];
  let parameters = (ins
    EnumParameter<Attn_Float8ScaleGranularity>:$weight_scale,
    EnumParameter<Attn_Float8InputScale>:$input_scale,
    Attn_OptionalF64Parameter<
        "upper bound of max |x| (dynamic input scale)">:$upper_bound);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Rows and columns of W sharing one `block` scale.
    static constexpr int64_t kBlockSize = 128;
  }];
}

//===----------------------------------------------------------------------===//
// GGUF
//===----------------------------------------------------------------------===//

def Attn_GGUFType : I32EnumAttr<"GGUFType", "a GGUF block type", [
    I32EnumAttrCase<"Q4_0", 2, "q4_0">,
    I32EnumAttrCase<"Q8_0", 8, "q8_0">,
    I32EnumAttrCase<"Q4_K", 12, "q4_k">,
    I32EnumAttrCase<"Q6_K", 14, "q6_k">]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_GGUFAttr : Attn_Attr<"GGUF", "gguf", Attn_WeightEncodingMethods> {
  let summary = "GGUF blocks (llama.cpp checkpoints, MAX's GGUF encodings)";
  let description = [{
    One part, the raw bytes `tensor<N x (K / elements) * bytes x i8>`: each
    row of W is K / elements consecutive blocks along K (elements and bytes
    per block: q4_0 32 / 18, q8_0 32 / 34, q4_k 256 / 144, q6_k 256 / 210;
    the case values are ggml's type ids). Activations f32, as in MAX's
    `GGUFQAttentionWithRope`.

    ```mlir
    #attn.gguf<q4_k>
    ```
  }];
  let parameters = (ins EnumParameter<Attn_GGUFType>:$type);
  let assemblyFormat = "`<` $type `>`";
  let extraClassDeclaration = [{
    /// Weight elements and bytes of one block.
    int64_t getBlockElements() const;
    int64_t getBlockBytes() const;
  }];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNQUANTATTRS_TD
