// Llama-3.1-8B (meta-llama/Llama-3.1-8B): one attention layer, opaque paged KV cache.
//
// From config.json:
//   hidden_size 4096, num_attention_heads 32, num_key_value_heads 8
//   (head dim = 4096 / 32 = 128), num_hidden_layers 32, attention_bias false
//   (separate q_proj/k_proj/v_proj weights, no biases), rope_theta 500000.0,
//   rope_scaling {rope_type "llama3", factor 8.0, low_freq_factor 1.0,
//   high_freq_factor 4.0, original_max_position_embeddings 8192},
//   torch_dtype bfloat16. Hugging Face safetensors layout, so RoPE pairs are
//   rotate_half (interleaved = false, the default).
// Not from config.json: page_size 128 (the serving cache), max_seq_len 8192
//   (size of the cos/sin table; the model allows 131072), layer_idx 0, causal mask.
// Weights are nn.Linear [out_features, in_features].
//
// Expand:
//   attn-opt examples/llama3_8b.mlir --attn-expand-composite

!llama_cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 128, num_layers = 32, kv_heads = 8, head_dim = 128, dtype = bf16>>

module {
  func.func @llama3_8b_layer(
      %x: tensor<?x4096xbf16>,
      %input_row_offsets: tensor<?xi32>,
      %kv_collection: !llama_cache,
      %q_proj: tensor<4096x4096xbf16>,
      %k_proj: tensor<1024x4096xbf16>,
      %v_proj: tensor<1024x4096xbf16>,
      %o_proj: tensor<4096x4096xbf16>)
      -> (tensor<?x4096xbf16>, !llama_cache) {
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
    return %out, %cache : tensor<?x4096xbf16>, !llama_cache
  }
}
