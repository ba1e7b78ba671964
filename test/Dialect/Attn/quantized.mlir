// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

// Quantised weights: the encodings, the weight type, the op bundling the
// parts, and the projections and the composite taking them.

!gptq = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>
!gptq_act = !attn.quantized_weight<128x256, #attn.gptq<group_size = 64, desc_act = true>>
!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>
!cache_f32 = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// CHECK-LABEL: func @gptq_linear
// CHECK: %[[W:.*]] = attn.quantized_weight(%{{.*}}, %{{.*}}) : (tensor<32x256xi32>, tensor<2x256xf16>) -> !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>
// CHECK: attn.linear %{{.*}}, %[[W]] : tensor<?x256xbf16>, !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>> -> tensor<?x256xbf16>
func.func @gptq_linear(%x: tensor<?x256xbf16>, %qw: tensor<32x256xi32>, %s: tensor<2x256xf16>) -> tensor<?x256xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<32x256xi32>, tensor<2x256xf16>) -> !gptq
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !gptq -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// The defaults (bits = 4, sym = true) print only when given otherwise.
// CHECK-LABEL: func @gptq_desc_act
// CHECK: attn.quantized_weight(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<32x128xi32>, tensor<4x128xbf16>, tensor<256xi32>) -> !attn.quantized_weight<128x256, #attn.gptq<group_size = 64, desc_act = true>>
func.func @gptq_desc_act(%qw: tensor<32x128xi32>, %s: tensor<4x128xbf16>, %perm: tensor<256xi32>) -> !gptq_act {
  %w = attn.quantized_weight(%qw, %s, %perm)
      : (tensor<32x128xi32>, tensor<4x128xbf16>, tensor<256xi32>)
      -> !attn.quantized_weight<128x256, #attn.gptq<bits = 4, group_size = 64, desc_act = true, sym = true>>
  return %w : !gptq_act
}

// Column blocks: qweight [N/32, K/8, 32], scales [N/32, K/g, 32];
// `layout = checkpoint` is the default and is not printed.
// CHECK-LABEL: func @gptq_column_blocks
// CHECK: attn.quantized_weight(%{{.*}}, %{{.*}}) : (tensor<4x32x32xi32>, tensor<4x2x32xbf16>) -> !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, layout = column_blocks>>
// CHECK: -> !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>
func.func @gptq_column_blocks(%qb: tensor<4x32x32xi32>, %sb: tensor<4x2x32xbf16>, %qw: tensor<32x128xi32>, %s: tensor<2x128xbf16>) {
  %w = attn.quantized_weight(%qb, %sb)
      : (tensor<4x32x32xi32>, tensor<4x2x32xbf16>)
      -> !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, layout = column_blocks>>
  %c = attn.quantized_weight(%qw, %s)
      : (tensor<32x128xi32>, tensor<2x128xbf16>)
      -> !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, layout = checkpoint>>
  return
}

// CHECK-LABEL: func @float8_granularities
// CHECK: -> !attn.quantized_weight<256x256, #attn.float8<weight_scale = tensor, input_scale = static>>
// CHECK: -> !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>
// CHECK: (tensor<320x256xf8E4M3FN>, tensor<3x2xf32>) -> !attn.quantized_weight<320x256, #attn.float8<weight_scale = block, input_scale = dynamic, upper_bound = 1200.0>>
// CHECK: attn.linear %{{.*}}, %{{.*}} bias %{{.*}} : tensor<?x256xbf16>, !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>, tensor<256xbf16> -> tensor<?x256xbf16>
func.func @float8_granularities(%x: tensor<?x256xbf16>, %w8: tensor<256x256xf8E4M3FN>, %one: tensor<1xf32>,
                                %rows: tensor<256xf32>, %w8b: tensor<320x256xf8E4M3FN>, %blocks: tensor<3x2xf32>,
                                %bias: tensor<256xbf16>) -> tensor<?x256xbf16> {
  %t = attn.quantized_weight(%w8, %one, %one) : (tensor<256x256xf8E4M3FN>, tensor<1xf32>, tensor<1xf32>)
      -> !attn.quantized_weight<256x256, #attn.float8<weight_scale = tensor, input_scale = static>>
  %r = attn.quantized_weight(%w8, %rows) : (tensor<256x256xf8E4M3FN>, tensor<256xf32>)
      -> !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>
  %b = attn.quantized_weight(%w8b, %blocks) : (tensor<320x256xf8E4M3FN>, tensor<3x2xf32>)
      -> !attn.quantized_weight<320x256, #attn.float8<weight_scale = block, input_scale = dynamic, upper_bound = 1200.0>>
  %y = attn.linear %x, %r bias %bias : tensor<?x256xbf16>, !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>, tensor<256xbf16> -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// CHECK-LABEL: func @gguf_blocks
// CHECK: (tensor<64x36xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q4_0>>
// CHECK: (tensor<64x68xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q8_0>>
// CHECK: (tensor<64x288xi8>) -> !attn.quantized_weight<64x512, #attn.gguf<q4_k>>
// CHECK: (tensor<64x420xi8>) -> !attn.quantized_weight<64x512, #attn.gguf<q6_k>>
func.func @gguf_blocks(%a: tensor<64x36xi8>, %b: tensor<64x68xi8>, %c: tensor<64x288xi8>, %d: tensor<64x420xi8>) {
  %0 = attn.quantized_weight(%a) : (tensor<64x36xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q4_0>>
  %1 = attn.quantized_weight(%b) : (tensor<64x68xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q8_0>>
  %2 = attn.quantized_weight(%c) : (tensor<64x288xi8>) -> !attn.quantized_weight<64x512, #attn.gguf<q4_k>>
  %3 = attn.quantized_weight(%d) : (tensor<64x420xi8>) -> !attn.quantized_weight<64x512, #attn.gguf<q6_k>>
  return
}

// Separate q, k, v weights may mix encodings (llama.cpp's Q4_K_M stores v in Q6_K).
// CHECK-LABEL: func @qkv_projection_gguf
// CHECK: attn.qkv_projection %{{.*}} weights(%{{.*}}, %{{.*}}, %{{.*}}) : tensor<?x256xf32>, (!attn.quantized_weight<256x256, #attn.gguf<q4_k>>, !attn.quantized_weight<128x256, #attn.gguf<q4_k>>, !attn.quantized_weight<128x256, #attn.gguf<q6_k>>)
func.func @qkv_projection_gguf(%x: tensor<?x256xf32>, %wq: !attn.quantized_weight<256x256, #attn.gguf<q4_k>>,
                               %wk: !attn.quantized_weight<128x256, #attn.gguf<q4_k>>,
                               %wv: !attn.quantized_weight<128x256, #attn.gguf<q6_k>>)
    -> (tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x256xf32>, (!attn.quantized_weight<256x256, #attn.gguf<q4_k>>,
        !attn.quantized_weight<128x256, #attn.gguf<q4_k>>, !attn.quantized_weight<128x256, #attn.gguf<q6_k>>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return %q, %k, %v : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
}

// GPTQAttentionWithRope: q, k, v and o_proj in GPTQ.
// CHECK-LABEL: func @composite_gptq
// CHECK: attn.attention_with_rope %{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}} qkv(%{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}}) o_proj(%{{[^,)]+}})
// CHECK-SAME: !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>, !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>, !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>, !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>)
func.func @composite_gptq(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %wq: !gptq,
                          %wk: !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>,
                          %wv: !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>,
                          %wo: !gptq) -> (tensor<?x256xbf16>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, !gptq, !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>,
         !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>, !gptq)
      -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}

// float8_config with a bias on separate q, k, v (MAX concatenates the biases).
// CHECK-LABEL: func @composite_float8_bias
// CHECK: attn.attention_with_rope %{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}} qkv(%{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}}) bias(%{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}}) o_proj(%{{[^,)]+}})
func.func @composite_float8_bias(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache_f32,
    %wq: !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>,
    %wkv: !attn.quantized_weight<128x256, #attn.float8<weight_scale = row, input_scale = dynamic>>,
    %bq: tensor<256xf32>, %bkv: tensor<128xf32>,
    %wo: !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>)
    -> (tensor<?x256xf32>, !cache_f32) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wkv, %wkv) bias(%bq, %bkv, %bkv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache_f32,
         !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>,
         !attn.quantized_weight<128x256, #attn.float8<weight_scale = row, input_scale = dynamic>>,
         !attn.quantized_weight<128x256, #attn.float8<weight_scale = row, input_scale = dynamic>>,
         tensor<256xf32>, tensor<128xf32>, tensor<128xf32>,
         !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>)
      -> (tensor<?x256xf32>, !cache_f32)
  return %o, %c2 : tensor<?x256xf32>, !cache_f32
}
