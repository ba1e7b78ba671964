// Qwen3-8B (Qwen/Qwen3-8B): one attention layer with qk-norm, opaque paged KV cache.
//
// From config.json:
//   hidden_size 4096, num_attention_heads 32, num_key_value_heads 8,
//   head_dim 128 (explicit field), num_hidden_layers 36, attention_bias false
//   (separate q_proj/k_proj/v_proj weights, no biases), rope_theta 1000000,
//   no rope_scaling, rms_norm_eps 1e-06 (used by q_norm/k_norm, per-head
//   RMSNorm over head_dim with gammas self_attn.q_norm.weight and
//   self_attn.k_norm.weight of shape [128]), torch_dtype bfloat16.
//   Hugging Face safetensors layout: rotate_half pairs (interleaved = false).
// Not from config.json: page_size 128, max_seq_len 8192 (the model allows
//   40960), layer_idx 0, causal mask.
// Weights are nn.Linear [out_features, in_features].
//
// Expand:
//   attn-opt examples/qwen3_8b.mlir --attn-expand-composite

!qwen3_cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 128, num_layers = 36, kv_heads = 8, head_dim = 128, dtype = bf16>>

module {
  func.func @qwen3_8b_layer(
      %x: tensor<?x4096xbf16>,
      %input_row_offsets: tensor<?xi32>,
      %kv_collection: !qwen3_cache,
      %q_proj: tensor<4096x4096xbf16>,
      %k_proj: tensor<1024x4096xbf16>,
      %v_proj: tensor<1024x4096xbf16>,
      %q_norm: tensor<128xbf16>,
      %k_norm: tensor<128xbf16>,
      %o_proj: tensor<4096x4096xbf16>)
      -> (tensor<?x4096xbf16>, !qwen3_cache) {
    %out, %cache = attn.attention_with_rope %x, %input_row_offsets, %kv_collection
        qkv(%q_proj, %k_proj, %v_proj) q_norm(%q_norm) k_norm(%k_norm) o_proj(%o_proj)
        {num_attention_heads = 32 : i64, num_key_value_heads = 8 : i64,
         hidden_size = 4096 : i64, layer_idx = 0 : i64, max_seq_len = 8192 : i64,
         rope = #attn.rope<theta = 1000000.0>,
         rms_norm_eps = 1.0e-06 : f64,
         mask = #attn.mask<causal>}
        : (tensor<?x4096xbf16>, tensor<?xi32>, !qwen3_cache,
           tensor<4096x4096xbf16>, tensor<1024x4096xbf16>, tensor<1024x4096xbf16>,
           tensor<128xbf16>, tensor<128xbf16>, tensor<4096x4096xbf16>)
        -> (tensor<?x4096xbf16>, !qwen3_cache)
    return %out, %cache : tensor<?x4096xbf16>, !qwen3_cache
  }
}
