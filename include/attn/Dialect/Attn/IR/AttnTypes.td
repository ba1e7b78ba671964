//===- AttnTypes.td - attn types ---------------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNTYPES_TD
#define ATTN_DIALECT_ATTN_IR_ATTNTYPES_TD

include "attn/Dialect/Attn/IR/AttnAttrs.td"

def Attn_PagedKVCacheType : Attn_Type<"PagedKVCache", "paged_kv_cache"> {
  let summary = "An opaque paged KV-cache collection";
  let description = [{
    One value that holds the three parts of MAX's opaque paged cache: the
    blocks `[P, 2, L, page, Hkv, D]`, the cache lengths `[B]` and the lookup
    table `[B, max_pages]` (`i32`). `attn.paged_cache.make` builds it from
    tensors and `attn.paged_cache.parts` takes it apart (the NoOpaque flavour
    is the tensors themselves).

    ```mlir
    !attn.paged_kv_cache<#attn.kv_cache<page_size = 128, num_layers = 32,
                                        kv_heads = 8, head_dim = 128, dtype = bf16>>
    ```
  }];
  let parameters = (ins Attn_KVCacheAttr:$params);
  let assemblyFormat = "`<` qualified($params) `>`";
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getBlocksType() const {
      return getParams().getBlocksType();
    }
  }];
}

def Attn_QuantizedWeightType
    : Attn_Type<"QuantizedWeight", "quantized_weight"> {
  let summary = "A projection weight [N, K] in a quantised encoding";
  let description = [{
    The weight `W [rows = N, cols = K]` of `attn.linear` or
    `attn.qkv_projection` (`nn.Linear` layout, as a float weight) stored as
    the encoding says (`#attn.gptq`, `#attn.float8`, `#attn.gguf`). The value
    bundles the encoding's parts (packed values, scales, permutation);
    `attn.quantized_weight` makes it from them, and the lowerings read the
    parts from there, so no op ever holds a decoded copy of W.

    ```mlir
    !attn.quantized_weight<4096x4096, #attn.gptq<group_size = 128>>
    ```
  }];
  let parameters = (ins "int64_t":$rows, "int64_t":$cols,
                        "::mlir::attn::WeightEncodingAttrInterface":$encoding);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
}

// The weight operand of a projection: floats, or a quantised weight.
def Attn_Weight : AnyTypeOf<[Attn_Float2D, Attn_QuantizedWeightType],
                            "2D float tensor or quantised weight">;

#endif // ATTN_DIALECT_ATTN_IR_ATTNTYPES_TD
