// Llama-3.1-8B (meta-llama/Llama-3.1-8B): one attention layer, NoOpaque flavour
// (MAX's AttentionWithRopeNoOpaque): the paged KV cache comes in as its three
// tensors instead of one opaque collection.
//
// Same config as llama3_8b.mlir (config.json: hidden_size 4096,
//   num_attention_heads 32, num_key_value_heads 8, head dim 128,
//   num_hidden_layers 32, rope_theta 500000.0, rope_scaling llama3 {factor 8.0,
//   low_freq_factor 1.0, high_freq_factor 4.0, original_max_position_embeddings
//   8192}, bfloat16, no biases; page_size 128, max_seq_len 8192, layer_idx 0,
//   causal are serving choices).
// Cache tensors:
//   kv_blocks     [P, 2, num_layers, page_size, kv_heads, head_dim]
//                 = tensor<?x2x32x128x8x128xbf16> (axis 1: 0 = K, 1 = V)
//   cache_lengths [B] tokens already cached per sequence
//   lookup_table  [B, max_pages] page ids
// attn.paged_cache.make packs them for attn.attention_with_rope and
// attn.paged_cache.parts takes the updated blocks back out.
//
// Expand:
//   attn-opt examples/llama3_8b_noopaque.mlir --attn-expand-composite
// (add --canonicalize to fold the make/parts pairs away).

!llama_cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 128, num_layers = 32, kv_heads = 8, head_dim = 128, dtype = bf16>>

module {
  func.func @llama3_8b_noopaque_layer(
      %x: tensor<?x4096xbf16>,
      %input_row_offsets: tensor<?xi32>,
      %kv_blocks: tensor<?x2x32x128x8x128xbf16>,
      %cache_lengths: tensor<?xi32>,
      %lookup_table: tensor<?x?xi32>,
      %q_proj: tensor<4096x4096xbf16>,
      %k_proj: tensor<1024x4096xbf16>,
      %v_proj: tensor<1024x4096xbf16>,
      %o_proj: tensor<4096x4096xbf16>)
      -> (tensor<?x4096xbf16>, tensor<?x2x32x128x8x128xbf16>) {
    %kv_collection = attn.paged_cache.make %kv_blocks, %cache_lengths, %lookup_table
        : tensor<?x2x32x128x8x128xbf16>, tensor<?xi32>, tensor<?x?xi32> -> !llama_cache
    %out, %cache = attn.attention_with_rope %x, %input_row_offsets, %kv_collection
        qkv(%q_proj, %k_proj, %v_proj) o_proj(%o_proj)
        {num_attention_heads = 32 : i64, num_key_value_heads = 8 : i64,
         hidden_size = 4096 : i64, layer_idx = 0 : i64, max_seq_len = 8192 : i64,
         rope = #attn.rope<theta = 500000.0,
                           scaling = #attn.llama3_scaling<factor = 8.0, low_freq_factor = 1.0,
                                                          high_freq_factor = 4.0,
                                                          original_max_position = 8192>>,
         mask = #attn.mask<causal>}
        : (tensor<?x4096xbf16>, tensor<?xi32>, !llama_cache,
           tensor<4096x4096xbf16>, tensor<1024x4096xbf16>, tensor<1024x4096xbf16>,
           tensor<4096x4096xbf16>)
        -> (tensor<?x4096xbf16>, !llama_cache)
    %new_blocks, %lengths, %lookup = attn.paged_cache.parts %cache : !llama_cache
    return %out, %new_blocks : tensor<?x4096xbf16>, tensor<?x2x32x128x8x128xbf16>
  }
}
