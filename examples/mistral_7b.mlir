// Mistral-7B-v0.1 (mistralai/Mistral-7B-v0.1): one attention layer with a
// sliding-window mask, opaque paged KV cache.
//
// From config.json:
//   hidden_size 4096, num_attention_heads 32, num_key_value_heads 8
//   (head dim = 4096 / 32 = 128), num_hidden_layers 32, rope_theta 10000.0,
//   no rope_scaling, sliding_window 4096, torch_dtype bfloat16, no biases
//   (separate q_proj/k_proj/v_proj weights).
//   Hugging Face safetensors layout: rotate_half pairs (interleaved = false).
// Not from config.json: page_size 16, max_seq_len 8192 (twice the window, so
//   the window actually cuts; the model allows 32768), layer_idx 0.
// Weights are nn.Linear [out_features, in_features].
//
// Expand:
//   attn-opt examples/mistral_7b.mlir --attn-expand-composite

!mistral_cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 32, kv_heads = 8, head_dim = 128, dtype = bf16>>

module {
  func.func @mistral_7b_layer(
      %x: tensor<?x4096xbf16>,
      %input_row_offsets: tensor<?xi32>,
      %kv_collection: !mistral_cache,
      %q_proj: tensor<4096x4096xbf16>,
      %k_proj: tensor<1024x4096xbf16>,
      %v_proj: tensor<1024x4096xbf16>,
      %o_proj: tensor<4096x4096xbf16>)
      -> (tensor<?x4096xbf16>, !mistral_cache) {
    %out, %cache = attn.attention_with_rope %x, %input_row_offsets, %kv_collection
        qkv(%q_proj, %k_proj, %v_proj) o_proj(%o_proj)
        {num_attention_heads = 32 : i64, num_key_value_heads = 8 : i64,
         hidden_size = 4096 : i64, layer_idx = 0 : i64, max_seq_len = 8192 : i64,
         rope = #attn.rope<theta = 10000.0>,
         mask = #attn.mask<sliding_window = 4096>}
        : (tensor<?x4096xbf16>, tensor<?xi32>, !mistral_cache,
           tensor<4096x4096xbf16>, tensor<1024x4096xbf16>, tensor<1024x4096xbf16>,
           tensor<4096x4096xbf16>)
        -> (tensor<?x4096xbf16>, !mistral_cache)
    return %out, %cache : tensor<?x4096xbf16>, !mistral_cache
  }
}
