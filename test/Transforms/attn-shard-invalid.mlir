// RUN: attn-opt %s --attn-shard="strategy=tensor devices=4" -split-input-file -verify-diagnostics

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 4, num_layers = 1, kv_heads = 2, head_dim = 16, dtype = f32>>

// 8 query heads divide by 4 devices, 2 kv heads do not.
func.func @kv_heads(%x: tensor<?x64xf32>, %off: tensor<?xi32>, %c: !cache,
    %w: tensor<192x64xf32>, %wo: tensor<64x128xf32>) -> (tensor<?x64xf32>, !cache) {
  // expected-error @+1 {{cannot split 8 query heads and 2 kv heads evenly over 4 devices}}
  %out, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 8 : i64, num_key_value_heads = 2 : i64,
       hidden_size = 64 : i64, layer_idx = 0 : i64, max_seq_len = 64 : i64,
       rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x64xf32>, tensor<?xi32>, !cache, tensor<192x64xf32>,
         tensor<64x128xf32>) -> (tensor<?x64xf32>, !cache)
  return %out, %c2 : tensor<?x64xf32>, !cache
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 4, num_layers = 1, kv_heads = 4, head_dim = 16, dtype = f32>>

// A weight computed in the function has no per-device argument to take.
func.func @computed_weight(%x: tensor<?x64xf32>, %off: tensor<?xi32>, %c: !cache,
    %wo: tensor<64x64xf32>) -> (tensor<?x64xf32>, !cache) {
  %w = arith.constant dense<1.0> : tensor<192x64xf32>
  // expected-error @+1 {{cannot shard the qkv weight: it is not an argument of the function}}
  %out, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 4 : i64,
       hidden_size = 64 : i64, layer_idx = 0 : i64, max_seq_len = 64 : i64,
       rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x64xf32>, tensor<?xi32>, !cache, tensor<192x64xf32>,
         tensor<64x64xf32>) -> (tensor<?x64xf32>, !cache)
  return %out, %c2 : tensor<?x64xf32>, !cache
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 1, kv_heads = 4, head_dim = 64, dtype = bf16>>
!w = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>

// GPTQ weights are not split by head (their groups and scales would need it).
func.func @gptq(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache,
    %wq: !w, %wk: !w, %wv: !w, %wo: !w) -> (tensor<?x256xbf16>, !cache) {
  // expected-error @+1 {{tensor parallelism of quantised weights is not supported}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 4 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, !w, !w, !w, !w) -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}
