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

// -----

// Primitive layers: the same checks before their weights are annotated.
func.func @primitive_kv_heads(%x: tensor<?x64xf32>, %wq: tensor<128x64xf32>, %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>)
    -> (tensor<?x8x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>) {
  // expected-error @+1 {{cannot split 8 query heads and 2 kv heads evenly over 4 devices}}
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x64xf32>, (tensor<128x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>)
      -> tensor<?x8x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
  return %q, %k, %v : tensor<?x8x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
}

// -----

!w = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>

func.func @primitive_gptq(%x: tensor<?x256xbf16>, %wq: !w, %wk: !w, %wv: !w)
    -> (tensor<?x4x64xbf16>, tensor<?x4x64xbf16>, tensor<?x4x64xbf16>) {
  // expected-error @+1 {{tensor parallelism of quantised weights is not supported}}
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x256xbf16>, (!w, !w, !w) -> tensor<?x4x64xbf16>, tensor<?x4x64xbf16>, tensor<?x4x64xbf16>
  return %q, %k, %v : tensor<?x4x64xbf16>, tensor<?x4x64xbf16>, tensor<?x4x64xbf16>
}

// -----

// A stacked weight's q, k and v rows are not one split of its rows.
func.func @primitive_stacked(%x: tensor<?x64xf32>, %w: tensor<256x64xf32>)
    -> (tensor<?x8x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>) {
  // expected-error @+1 {{cannot split a stacked qkv weight by head outside attn.attention_with_rope}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x64xf32>, (tensor<256x64xf32>) -> tensor<?x8x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
  return %q, %k, %v : tensor<?x8x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
}

// -----

// Without the output projection each device would return its heads only.
// expected-error @+1 {{has attention heads that reach no output projection (attn.linear of tensor.collapse_shape)}}
func.func @primitive_no_output_projection(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x64xf32>,
                                          %wv: tensor<64x64xf32>) -> (tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x64xf32>, (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
      -> tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
  return %q, %k, %v : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
}

// -----

// --canonicalize folds a small RoPE table into a constant, which LLVM 22's
// shard-partition cannot partition (it would fail without a diagnostic).
func.func @primitive_folded_table(%x: tensor<?x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %wq: tensor<64x64xf32>,
                                  %wk: tensor<64x64xf32>, %wv: tensor<64x64xf32>, %wo: tensor<64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{cannot be partitioned by shard-partition (LLVM 22 partitions splat constants only); a RoPE table folded by --canonicalize can be a freqs argument of the layer}}
  %freqs = arith.constant dense<[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                                [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]> : tensor<2x16xf32>
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x64xf32>, (tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
      -> tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>
  %qr = attn.rope %q, %freqs positions(%off, %len) : tensor<?x4x16xf32>, tensor<2x16xf32>, tensor<?xi32>, tensor<?xi32>
  %o = attn.flash_attention %qr, %k, %v rows(%off, %off) : tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?x4x16xf32>, tensor<?xi32>, tensor<?xi32>
  %flat = tensor.collapse_shape %o [[0], [1, 2]] : tensor<?x4x16xf32> into tensor<?x64xf32>
  %out = attn.linear %flat, %wo : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}
