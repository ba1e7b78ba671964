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

#endif // ATTN_DIALECT_ATTN_IR_ATTNTYPES_TD
