// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// CHECK-LABEL: func @cache_parts
// CHECK-SAME: (%[[B:.*]]: tensor<?x2x2x16x2x64xf32>, %[[L:.*]]: tensor<?xi32>, %[[T:.*]]: tensor<?x?xi32>)
// CHECK: %[[C:.*]] = attn.paged_cache.make %[[B]], %[[L]], %[[T]] : tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32> -> !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>
// CHECK: %{{.*}}, %{{.*}}, %{{.*}} = attn.paged_cache.parts %[[C]] : !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>
func.func @cache_parts(%b: tensor<?x2x2x16x2x64xf32>, %l: tensor<?xi32>, %t: tensor<?x?xi32>) -> tensor<?x2x2x16x2x64xf32> {
  %c = attn.paged_cache.make %b, %l, %t : tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32> -> !cache
  %b2, %l2, %t2 = attn.paged_cache.parts %c : !cache
  return %b2 : tensor<?x2x2x16x2x64xf32>
}

// CHECK-LABEL: func @cache_static_parts
// CHECK: attn.paged_cache.make %{{.*}} : tensor<8x2x2x16x2x64xf32>, tensor<3xi32>, tensor<3x4xi32>
func.func @cache_static_parts(%b: tensor<8x2x2x16x2x64xf32>, %l: tensor<3xi32>, %t: tensor<3x4xi32>) -> !cache {
  %c = attn.paged_cache.make %b, %l, %t : tensor<8x2x2x16x2x64xf32>, tensor<3xi32>, tensor<3x4xi32> -> !cache
  return %c : !cache
}

// CHECK-LABEL: func @qkv_separate
// CHECK: attn.qkv_projection %{{.*}} weights(%{{.*}}, %{{.*}}, %{{.*}}) bias(%{{.*}}, %{{.*}}, %{{.*}}) clip 8.500000e+00 : tensor<?x256xbf16>, (tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>), (tensor<256xbf16>, tensor<128xbf16>, tensor<128xbf16>) -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
func.func @qkv_separate(%x: tensor<?x256xbf16>, %wq: tensor<256x256xbf16>, %wk: tensor<128x256xbf16>, %wv: tensor<128x256xbf16>,
                        %bq: tensor<256xbf16>, %bk: tensor<128xbf16>, %bv: tensor<128xbf16>) -> tensor<?x4x64xbf16> {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv) bias(%bq, %bk, %bv) clip 8.5
      : tensor<?x256xbf16>, (tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>),
        (tensor<256xbf16>, tensor<128xbf16>, tensor<128xbf16>)
      -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %q : tensor<?x4x64xbf16>
}

// CHECK-LABEL: func @qkv_stacked
// CHECK: attn.qkv_projection %{{.*}} weights(%{{.*}}) : tensor<7x256xf16>, (tensor<512x256xf16>) -> tensor<7x4x64xf16>, tensor<7x2x64xf16>, tensor<7x2x64xf16>
func.func @qkv_stacked(%x: tensor<7x256xf16>, %w: tensor<512x256xf16>) -> tensor<7x2x64xf16> {
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<7x256xf16>, (tensor<512x256xf16>) -> tensor<7x4x64xf16>, tensor<7x2x64xf16>, tensor<7x2x64xf16>
  return %v : tensor<7x2x64xf16>
}

// CHECK-LABEL: func @linear
// CHECK: attn.linear %{{.*}}, %{{.*}} : tensor<?x256xf32>, tensor<128x256xf32> -> tensor<?x128xf32>
// CHECK: attn.linear %{{.*}}, %{{.*}} bias %{{.*}} : tensor<?x256xf32>, tensor<128x256xf32>, tensor<128xf32> -> tensor<?x128xf32>
func.func @linear(%x: tensor<?x256xf32>, %w: tensor<128x256xf32>, %b: tensor<128xf32>) -> tensor<?x128xf32> {
  %0 = attn.linear %x, %w : tensor<?x256xf32>, tensor<128x256xf32> -> tensor<?x128xf32>
  %1 = attn.linear %x, %w bias %b : tensor<?x256xf32>, tensor<128x256xf32>, tensor<128xf32> -> tensor<?x128xf32>
  return %1 : tensor<?x128xf32>
}

// CHECK-LABEL: func @rms_norm
// CHECK: attn.rms_norm %{{.*}}, %{{.*}} : tensor<?x4x64xbf16>, tensor<64xbf16>
// CHECK: attn.rms_norm %{{.*}}, %{{.*}} eps 1.000000e-05 : tensor<?x4x64xbf16>, tensor<64xf32>
func.func @rms_norm(%x: tensor<?x4x64xbf16>, %g: tensor<64xbf16>, %g32: tensor<64xf32>) -> tensor<?x4x64xbf16> {
  %0 = attn.rms_norm %x, %g : tensor<?x4x64xbf16>, tensor<64xbf16>
  %1 = attn.rms_norm %0, %g32 eps 1.0e-5 : tensor<?x4x64xbf16>, tensor<64xf32>
  return %1 : tensor<?x4x64xbf16>
}

// CHECK-LABEL: func @rope_tables
// CHECK: attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<128x64xf32>
// CHECK: attn.rope_freqs #attn.rope<theta = 500000.0, interleaved = true, scaling = #attn.llama3_scaling<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>> -> tensor<128x64xf32>
// CHECK: attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.linear_scaling<factor = 2.5>> -> tensor<128x64xf32>
// CHECK: attn.rope_freqs #attn.rope<theta = 1000000.0, scaling = #attn.yarn_scaling<factor = 4.0, original_max_position = 32768>> -> tensor<128x64xf32>
// CHECK: attn.rope_freqs #attn.rope<theta = 1000000.0, scaling = #attn.yarn_scaling<factor = 4.0, beta_fast = 16.0, beta_slow = 2.0, original_max_position = 32768>> -> tensor<128x64xf32>
// CHECK: attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0, 1.25, 1.5], long_factor = [2.0, 4.0, 8.0, 16.0], original_max_position = 4096, max_position = 131072>> -> tensor<128x8xf32>
func.func @rope_tables() {
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<128x64xf32>
  %1 = attn.rope_freqs #attn.rope<theta = 500000.0, interleaved = true, scaling = #attn.llama3_scaling<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>> -> tensor<128x64xf32>
  // Integers are accepted where a float is expected.
  %2 = attn.rope_freqs #attn.rope<theta = 10000, interleaved = false, scaling = #attn.linear_scaling<factor = 2.5>> -> tensor<128x64xf32>
  %3 = attn.rope_freqs #attn.rope<theta = 1.0e6, scaling = #attn.yarn_scaling<factor = 4.0, original_max_position = 32768>> -> tensor<128x64xf32>
  %4 = attn.rope_freqs #attn.rope<theta = 1.0e6, scaling = #attn.yarn_scaling<factor = 4.0, beta_fast = 16.0, beta_slow = 2.0, original_max_position = 32768>> -> tensor<128x64xf32>
  %5 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0, 1.25, 1.5], long_factor = [2.0, 4.0, 8.0, 16.0], original_max_position = 4096, max_position = 131072>> -> tensor<128x8xf32>
  return
}

// CHECK-LABEL: func @rope
// CHECK: attn.rope %{{.*}}, %{{.*}} positions(%{{.*}}, %{{.*}}) : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
// CHECK: attn.rope %{{.*}}, %{{.*}} positions(%{{.*}}, %{{.*}}) interleaved : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
func.func @rope(%x: tensor<?x4x64xbf16>, %freqs: tensor<128x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<?x4x64xbf16> {
  %0 = attn.rope %x, %freqs positions(%off, %len) : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %1 = attn.rope %0, %freqs positions(%off, %len) interleaved : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %1 : tensor<?x4x64xbf16>
}

// CHECK-LABEL: func @store_and_attend
// CHECK: %[[NEW:.*]] = attn.kv_cache_store %{{.*}}, %{{.*}} into %{{.*}} layer 1 positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
// CHECK: attn.paged_flash_attention %{{.*}}, %[[NEW]] layer 1 positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>
// CHECK: attn.paged_flash_attention %{{.*}}, %[[NEW]] layer 1 positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) {mask = #attn.mask<sliding_window = 8>, scale = 1.250000e-01 : f64}
// CHECK: attn.paged_flash_attention %{{.*}}, %[[NEW]] layer 1 positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) {mask = #attn.mask<none>}
func.func @store_and_attend(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %blocks: tensor<?x2x2x16x2x64xf32>,
                            %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xf32> {
  %new = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  %o0 = attn.paged_flash_attention %q, %new layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  %o1 = attn.paged_flash_attention %q, %new layer 1 positions(%off, %len) pages(%lut) {mask = #attn.mask<sliding_window = 8>, scale = 0.125 : f64}
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  %o2 = attn.paged_flash_attention %q, %new layer 1 positions(%off, %len) pages(%lut) {mask = #attn.mask<none>}
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o2 : tensor<?x4x64xf32>
}

// CHECK-LABEL: func @flash_explicit
// CHECK: attn.flash_attention %{{.*}}, %{{.*}}, %{{.*}} rows(%{{.*}}, %{{.*}}) : tensor<?x8x128xbf16>, tensor<?x2x128xbf16>, tensor<?x2x128xbf16>, tensor<3xi32>, tensor<3xi32>
// CHECK: attn.flash_attention %{{.*}} rows(%{{.*}}, %{{.*}}) {mask = #attn.mask<none>}
func.func @flash_explicit(%q: tensor<?x8x128xbf16>, %k: tensor<?x2x128xbf16>, %v: tensor<?x2x128xbf16>, %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x8x128xbf16> {
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) : tensor<?x8x128xbf16>, tensor<?x2x128xbf16>, tensor<?x2x128xbf16>, tensor<3xi32>, tensor<3xi32>
  %1 = attn.flash_attention %0, %k, %v rows(%qo, %ko) {mask = #attn.mask<none>} : tensor<?x8x128xbf16>, tensor<?x2x128xbf16>, tensor<?x2x128xbf16>, tensor<3xi32>, tensor<3xi32>
  return %1 : tensor<?x8x128xbf16>
}

// CHECK-LABEL: func @composite
// CHECK: attn.attention_with_rope %{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}} qkv(%{{[^,)]+}}) bias(%{{[^,)]+}}) q_norm(%{{[^,)]+}}) k_norm(%{{[^,)]+}}) o_proj(%{{[^,)]+}})
// CHECK-SAME: clip_qkv = 4.000000e+00 : f64
// CHECK-SAME: mask = #attn.mask<sliding_window = 32>
// CHECK-SAME: rope = #attn.rope<theta = 10000.0, interleaved = true>
func.func @composite(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %b: tensor<512xf32>,
                     %gq: tensor<64xf32>, %gk: tensor<64xf32>, %wo: tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) bias(%b) q_norm(%gq) k_norm(%gk) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0, interleaved = true>, clip_qkv = 4.0 : f64,
       rms_norm_eps = 1.0e-6 : f64, mask = #attn.mask<sliding_window = 32>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<512xf32>, tensor<64xf32>, tensor<64xf32>, tensor<256x256xf32>)
      -> (tensor<?x256xf32>, !cache)
  return %o, %c2 : tensor<?x256xf32>, !cache
}

// CHECK-LABEL: func @composite_freqs
// CHECK-SAME: %[[F:[a-z0-9_]+]]: tensor<64x64xf32>
// CHECK: attn.attention_with_rope %{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}} qkv(%{{[^,)]+}}) o_proj(%{{[^,)]+}}) freqs(%[[F]])
// CHECK-SAME: (tensor<?x256xf32>, tensor<?xi32>, !attn.paged_kv_cache<{{.*}}>, tensor<512x256xf32>, tensor<256x256xf32>, tensor<64x64xf32>)
func.func @composite_freqs(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>,
                           %wo: tensor<256x256xf32>, %freqs: tensor<64x64xf32>) -> (tensor<?x256xf32>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo) freqs(%freqs)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>, tensor<64x64xf32>)
      -> (tensor<?x256xf32>, !cache)
  return %o, %c2 : tensor<?x256xf32>, !cache
}

// CHECK-LABEL: func @rope_store
// CHECK: %{{.*}}, %{{.*}} = attn.rope_store %{{.*}}, %{{.*}}, %{{.*}} into %{{.*}} layer 1 freqs(%{{.*}}) positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
// CHECK: %{{.*}}, %{{.*}} = attn.rope_store %{{.*}}, %{{.*}}, %{{.*}} into %{{.*}} layer 0 freqs(%{{.*}}) positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) qk_norm(%{{.*}}, %{{.*}}) eps 1.000000e-05 interleaved : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>, tensor<64xf32>, tensor<64xf32>
func.func @rope_store(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>,
                      %blocks: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>,
                      %gq: tensor<64xf32>, %gk: tensor<64xf32>) -> (tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>) {
  %qr, %b1 = attn.rope_store %q, %k, %v into %blocks layer 1 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  %qr2, %b2 = attn.rope_store %qr, %k, %v into %b1 layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      qk_norm(%gq, %gk) eps 1.0e-05 interleaved
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>, tensor<64xf32>, tensor<64xf32>
  return %qr2, %b2 : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>
}

// CHECK-LABEL: func @linear_clip
// CHECK: attn.linear %{{.*}}, %{{.*}} bias %{{.*}} clip 4.000000e+00 : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
func.func @linear_clip(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>) -> tensor<?x32xf32> {
  %y = attn.linear %x, %w bias %b clip 4.0 : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// One function for every layer: the layer is a run-time index or i32.
// CHECK-LABEL: func @runtime_layer
// CHECK-SAME: (%[[L:[a-z0-9_]+]]: i32, %[[IDX:[a-z0-9_]+]]: index,
// CHECK: attn.kv_cache_store %{{.*}}, %{{.*}} into %{{.*}} layer(%[[L]] : i32) positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) :
// CHECK: attn.paged_flash_attention %{{.*}}, %{{.*}} layer(%[[IDX]] : index) positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) {mask = #attn.mask<none>} :
// CHECK: attn.rope_store %{{.*}}, %{{.*}}, %{{.*}} into %{{.*}} layer(%[[L]] : i32) freqs(%{{.*}}) positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) qk_norm(%{{.*}}, %{{.*}}) eps 1.000000e-05 :
// CHECK: attn.attention_with_rope %{{[^,)]+}}, %{{[^,)]+}}, %{{[^,)]+}} layer(%[[L]]) qkv(%{{[^,)]+}}) o_proj(%{{[^,)]+}})
// CHECK-NOT: layer_idx
// CHECK-SAME: (tensor<?x256xf32>, tensor<?xi32>, !attn.paged_kv_cache<{{.*}}>, i32, tensor<512x256xf32>, tensor<256x256xf32>)
func.func @runtime_layer(%l: i32, %idx: index, %q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>,
                         %f: tensor<128x64xf32>, %blocks: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>,
                         %lut: tensor<?x?xi32>, %gq: tensor<64xf32>, %gk: tensor<64xf32>, %x: tensor<?x256xf32>, %c: !cache,
                         %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) -> (tensor<?x4x64xf32>, tensor<?x4x64xf32>, tensor<?x256xf32>) {
  %b1 = attn.kv_cache_store %k, %v into %blocks layer(%l : i32) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  %o = attn.paged_flash_attention %q, %b1 layer(%idx : index) positions(%off, %len) pages(%lut) {mask = #attn.mask<none>}
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  %qr, %b2 = attn.rope_store %q, %k, %v into %b1 layer(%l : i32) freqs(%f) positions(%off, %len) pages(%lut)
      qk_norm(%gq, %gk) eps 1.0e-05
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>, tensor<64xf32>, tensor<64xf32>
  %out, %c2 = attn.attention_with_rope %x, %off, %c layer(%l) qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, i32, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return %o, %qr, %out : tensor<?x4x64xf32>, tensor<?x4x64xf32>, tensor<?x256xf32>
}
