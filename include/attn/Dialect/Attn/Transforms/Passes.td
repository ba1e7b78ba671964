//===- Passes.td - attn dialect passes ---------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD
#define ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnExpandComposite : Pass<"attn-expand-composite"> {
  let summary = "Expand attn.attention_with_rope into the primitive attn ops";
  let description = [{
    Rewrites every `attn.attention_with_rope` into the steps of the layer:
    the opaque cache is taken apart (`attn.paged_cache.parts`), then
    `attn.qkv_projection` (stacked or separate weights, bias, clip), the
    optional `attn.rms_norm` of q and k, `attn.rope_freqs` + `attn.rope` of q
    and k, `attn.kv_cache_store`, `attn.paged_flash_attention`, a reshape and
    `attn.linear` for `o_proj`; the updated blocks are packed back with
    `attn.paged_cache.make` for the op's second result. Canonicalisation then
    cancels `parts(make(...))` pairs between consecutive layers.

    Before:
    ```mlir
    %out, %c2 = attn.attention_with_rope %x, %offsets, %cache
        qkv(%wqkv) o_proj(%wo) {num_attention_heads = 4 : i64, ...}
        : (...) -> (tensor<?x256xf32>, !attn.paged_kv_cache<...>)
    ```
    After:
    ```mlir
    %blocks, %lengths, %lookup = attn.paged_cache.parts %cache : ...
    %q, %k, %v = attn.qkv_projection %x weights(%wqkv) : ...
    %freqs = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<2048x64xf32>
    %qr = attn.rope %q, %freqs positions(%offsets, %lengths) : ...
    %kr = attn.rope %k, %freqs positions(%offsets, %lengths) : ...
    %blocks2 = attn.kv_cache_store %kr, %v into %blocks layer 0 ... : ...
    %o = attn.paged_flash_attention %qr, %blocks2 layer 0 ... : ...
    %o2 = tensor.collapse_shape %o [[0], [1, 2]] : ...
    %out = attn.linear %o2, %wo : ...
    %c2 = attn.paged_cache.make %blocks2, %lengths, %lookup : ...
    ```
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD
