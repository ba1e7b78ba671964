// RUN: attn-opt %s --attn-expand-composite -split-input-file | FileCheck %s
// RUN: attn-opt %s --attn-expand-composite --canonicalize -split-input-file | FileCheck %s --check-prefix=CANON

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// Separate weights, no bias, no qk norm: the plain Llama layer.
// CHECK-LABEL: func @separate_weights
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xf32>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[C:[^:]*]]: !attn.paged_kv_cache
// CHECK-SAME: %[[WQ:[^:]*]]: tensor<256x256xf32>, %[[WK:[^:]*]]: tensor<128x256xf32>, %[[WV:[^:]*]]: tensor<128x256xf32>, %[[WO:[^:]*]]: tensor<256x256xf32>)
// CHECK: %[[BLOCKS:.*]], %[[LENS:.*]], %[[LUT:.*]] = attn.paged_cache.parts %[[C]]
// CHECK: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection %[[X]] weights(%[[WQ]], %[[WK]], %[[WV]]) :
// CHECK-SAME: -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
// CHECK-NOT: attn.rms_norm
// CHECK: %[[FREQS:.*]] = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<64x64xf32>
// CHECK: %[[QR:.*]] = attn.rope %[[Q]], %[[FREQS]] positions(%[[OFF]], %[[LENS]]) :
// CHECK: %[[KR:.*]] = attn.rope %[[K]], %[[FREQS]] positions(%[[OFF]], %[[LENS]]) :
// CHECK: %[[NEW:.*]] = attn.kv_cache_store %[[KR]], %[[V]] into %[[BLOCKS]] layer 1 positions(%[[OFF]], %[[LENS]]) pages(%[[LUT]])
// CHECK: %[[O:.*]] = attn.paged_flash_attention %[[QR]], %[[NEW]] layer 1 positions(%[[OFF]], %[[LENS]]) pages(%[[LUT]]) :
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[O]] {{\[}}[0], [1, 2]] : tensor<?x4x64xf32> into tensor<?x256xf32>
// CHECK: %[[OUT:.*]] = attn.linear %[[FLAT]], %[[WO]] : tensor<?x256xf32>, tensor<256x256xf32> -> tensor<?x256xf32>
// CHECK: %[[C2:.*]] = attn.paged_cache.make %[[NEW]], %[[LENS]], %[[LUT]]
// CHECK: return %[[OUT]], %[[C2]]
// CHECK-NOT: attn.attention_with_rope
func.func @separate_weights(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %wq: tensor<256x256xf32>,
                            %wk: tensor<128x256xf32>, %wv: tensor<128x256xf32>, %wo: tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<256x256xf32>, tensor<128x256xf32>, tensor<128x256xf32>, tensor<256x256xf32>)
      -> (tensor<?x256xf32>, !cache)
  return %o, %c2 : tensor<?x256xf32>, !cache
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 128, num_layers = 4, kv_heads = 2, head_dim = 64, dtype = bf16>>

// Stacked weight with bias and clip, qk norm, interleaved rope, custom scale
// and a sliding window: every option reaches its primitive op.
// CHECK-LABEL: func @every_option
// CHECK-SAME: %[[W:[^:]*]]: tensor<512x256xbf16>, %[[B:[^:]*]]: tensor<512xbf16>, %[[GQ:[^:]*]]: tensor<64xbf16>, %[[GK:[^:]*]]: tensor<64xbf16>
// CHECK: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection %{{.*}} weights(%[[W]]) bias(%[[B]]) clip 3.000000e+00 :
// CHECK-SAME: -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
// CHECK: %[[QN:.*]] = attn.rms_norm %[[Q]], %[[GQ]] eps 1.000000e-05 : tensor<?x4x64xbf16>, tensor<64xbf16>
// CHECK: %[[KN:.*]] = attn.rms_norm %[[K]], %[[GK]] eps 1.000000e-05 : tensor<?x2x64xbf16>, tensor<64xbf16>
// CHECK: %[[FREQS:.*]] = attn.rope_freqs #attn.rope<theta = 1000000.0, interleaved = true, scaling = #attn.yarn_scaling<factor = 4.0, original_max_position = 32768>> -> tensor<4096x64xf32>
// CHECK: attn.rope %[[QN]], %[[FREQS]] positions({{.*}}) interleaved
// CHECK: %[[KR:.*]] = attn.rope %[[KN]], %[[FREQS]] positions({{.*}}) interleaved
// CHECK: %[[NEW:.*]] = attn.kv_cache_store %[[KR]], %[[V]] into %{{.*}} layer 3
// CHECK: attn.paged_flash_attention %{{.*}}, %[[NEW]] layer 3 {{.*}} {mask = #attn.mask<sliding_window = 1024>, scale = 1.000000e-01 : f64}
func.func @every_option(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xbf16>, %b: tensor<512xbf16>,
                        %gq: tensor<64xbf16>, %gk: tensor<64xbf16>, %wo: tensor<256x256xbf16>) -> (tensor<?x256xbf16>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) bias(%b) q_norm(%gq) k_norm(%gk) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 3 : i64,
       max_seq_len = 4096 : i64, clip_qkv = 3.0 : f64, rms_norm_eps = 1.0e-5 : f64, scale = 0.1 : f64,
       mask = #attn.mask<sliding_window = 1024>,
       rope = #attn.rope<theta = 1.0e6, interleaved = true, scaling = #attn.yarn_scaling<factor = 4.0, original_max_position = 32768>>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, tensor<512x256xbf16>, tensor<512xbf16>, tensor<64xbf16>, tensor<64xbf16>, tensor<256x256xbf16>)
      -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// Two layers in a row: after canonicalisation the cache blocks flow from the
// first store to the second without repacking the cache.
// CHECK-LABEL: func @two_layers
// CHECK-COUNT-2: attn.kv_cache_store
// CANON-LABEL: func @two_layers
// CANON: %[[BLOCKS:.*]], %[[LENS:.*]], %[[LUT:.*]] = attn.paged_cache.parts
// CANON-NOT: attn.paged_cache.parts
// CANON: %[[S0:.*]] = attn.kv_cache_store %{{.*}}, %{{.*}} into %[[BLOCKS]] layer 0
// CANON: %[[S1:.*]] = attn.kv_cache_store %{{.*}}, %{{.*}} into %[[S0]] layer 1
// CANON: attn.paged_flash_attention %{{.*}}, %[[S1]] layer 1
// CANON: %[[C:.*]] = attn.paged_cache.make %[[S1]], %[[LENS]], %[[LUT]]
// CANON: return %{{.*}}, %[[C]]
func.func @two_layers(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>)
    -> (tensor<?x256xf32>, !cache) {
  %h, %c1 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  %o, %c2 = attn.attention_with_rope %h, %off, %c1 qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return %o, %c2 : tensor<?x256xf32>, !cache
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// The caller's cos/sin table (one per model): every layer's rope reads it and
// no layer builds its own.
// CHECK-LABEL: func @caller_table
// CHECK-SAME: %[[F:[^:]*]]: tensor<64x64xf32>)
// CHECK-NOT: attn.rope_freqs
// CHECK: %[[Q0:.*]], %[[K0:.*]], %{{.*}} = attn.qkv_projection
// CHECK: attn.rope %[[Q0]], %[[F]] positions
// CHECK: attn.rope %[[K0]], %[[F]] positions
// CHECK: %[[Q1:.*]], %[[K1:.*]], %{{.*}} = attn.qkv_projection
// CHECK: attn.rope %[[Q1]], %[[F]] positions({{.*}}) interleaved :
// CHECK: attn.rope %[[K1]], %[[F]] positions({{.*}}) interleaved :
// CHECK-NOT: attn.rope_freqs
func.func @caller_table(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>,
                        %freqs: tensor<64x64xf32>) -> (tensor<?x256xf32>, !cache) {
  %h, %c1 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo) freqs(%freqs)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>, tensor<64x64xf32>)
      -> (tensor<?x256xf32>, !cache)
  %o, %c2 = attn.attention_with_rope %h, %off, %c1 qkv(%w) o_proj(%wo) freqs(%freqs)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0, interleaved = true>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>, tensor<64x64xf32>)
      -> (tensor<?x256xf32>, !cache)
  return %o, %c2 : tensor<?x256xf32>, !cache
}
