// Qwen2-7B (Qwen/Qwen2-7B): one attention layer with q/k/v biases, opaque paged KV cache.
//
// From config.json:
//   hidden_size 3584, num_attention_heads 28, num_key_value_heads 4
//   (head dim = 3584 / 28 = 128), num_hidden_layers 28, rope_theta 1000000.0,
//   no rope_scaling, use_sliding_window false (so a plain causal mask),
//   torch_dtype bfloat16. Qwen2 has q_proj/k_proj/v_proj biases (separate
//   bias vectors [3584], [512], [512]) and no o_proj bias.
//   Hugging Face safetensors layout: rotate_half pairs (interleaved = false).
// Not from config.json: page_size 128, max_seq_len 8192, layer_idx 0, causal mask.
// Weights are nn.Linear [out_features, in_features].
//
// Expand:
//   attn-opt examples/qwen2_7b.mlir --attn-expand-composite

!qwen2_cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 128, num_layers = 28, kv_heads = 4, head_dim = 128, dtype = bf16>>

module {
  func.func @qwen2_7b_layer(
      %x: tensor<?x3584xbf16>,
      %input_row_offsets: tensor<?xi32>,
      %kv_collection: !qwen2_cache,
      %q_proj: tensor<3584x3584xbf16>,
      %k_proj: tensor<512x3584xbf16>,
      %v_proj: tensor<512x3584xbf16>,
      %q_bias: tensor<3584xbf16>,
      %k_bias: tensor<512xbf16>,
      %v_bias: tensor<512xbf16>,
      %o_proj: tensor<3584x3584xbf16>)
      -> (tensor<?x3584xbf16>, !qwen2_cache) {
    %out, %cache = attn.attention_with_rope %x, %input_row_offsets, %kv_collection
        qkv(%q_proj, %k_proj, %v_proj) bias(%q_bias, %k_bias, %v_bias) o_proj(%o_proj)
        {num_attention_heads = 28 : i64, num_key_value_heads = 4 : i64,
         hidden_size = 3584 : i64, layer_idx = 0 : i64, max_seq_len = 8192 : i64,
         rope = #attn.rope<theta = 1000000.0>,
         mask = #attn.mask<causal>}
        : (tensor<?x3584xbf16>, tensor<?xi32>, !qwen2_cache,
           tensor<3584x3584xbf16>, tensor<512x3584xbf16>, tensor<512x3584xbf16>,
           tensor<3584xbf16>, tensor<512xbf16>, tensor<512xbf16>,
           tensor<3584x3584xbf16>)
        -> (tensor<?x3584xbf16>, !qwen2_cache)
    return %out, %cache : tensor<?x3584xbf16>, !qwen2_cache
  }
}
