// RUN: attn-opt %s -split-input-file -verify-diagnostics

// One case per verifier branch of the attn attributes and ops. Attribute
// verifiers report at the attribute; a scaling nested in #attn.rope also
// makes the rope parser report that its 'scaling' parameter failed.

//===--- #attn.mask ---===//

// MaskAttr::verify's "only a sliding_window mask has a window" has no case:
// the parser reads a window only after `sliding_window`, so textual IR cannot
// build a none/causal mask with a window.

func.func @mask_unknown_kind(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{expected 'none', 'causal' or 'sliding_window'}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o) {mask = #attn.mask<full>}
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<3xi32>, tensor<3xi32>
  return
}

// -----

func.func @mask_window_zero(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %o: tensor<3xi32>) {
  // expected-error @+1 {{'window' must be in [1, 2147483647], got 0}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o) {mask = #attn.mask<sliding_window = 0>}
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<3xi32>, tensor<3xi32>
  return
}

// -----

//===--- #attn.linear_scaling ---===//

func.func @linear_scaling_factor() {
  // expected-error @+2 {{'factor' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.linear_scaling<factor = 0.0>> -> tensor<8x64xf32>
  return
}

// -----

//===--- #attn.llama3_scaling ---===//

func.func @llama3_factor() {
  // expected-error @+2 {{'factor' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.llama3_scaling<factor = -8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>> -> tensor<8x64xf32>
  return
}

// -----

func.func @llama3_low_freq_factor() {
  // expected-error @+2 {{'low_freq_factor' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.llama3_scaling<factor = 8.0, low_freq_factor = 0.0, high_freq_factor = 4.0, original_max_position = 8192>> -> tensor<8x64xf32>
  return
}

// -----

func.func @llama3_high_freq_factor() {
  // expected-error @+2 {{'high_freq_factor' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.llama3_scaling<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 1.0e400, original_max_position = 8192>> -> tensor<8x64xf32>
  return
}

// -----

func.func @llama3_original_max_position() {
  // expected-error @+2 {{'original_max_position' must be in [1, 2147483647], got 0}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.llama3_scaling<factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 0>> -> tensor<8x64xf32>
  return
}

// -----

func.func @llama3_high_not_above_low() {
  // expected-error @+2 {{'high_freq_factor' must be greater than 'low_freq_factor'}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.llama3_scaling<factor = 8.0, low_freq_factor = 4.0, high_freq_factor = 4.0, original_max_position = 8192>> -> tensor<8x64xf32>
  return
}

// -----

//===--- #attn.yarn_scaling ---===//

func.func @yarn_factor() {
  // expected-error @+2 {{'factor' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.yarn_scaling<factor = 0.0, original_max_position = 32768>> -> tensor<8x64xf32>
  return
}

// -----

func.func @yarn_beta_fast() {
  // expected-error @+2 {{'beta_fast' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.yarn_scaling<factor = 4.0, beta_fast = 0.0, original_max_position = 32768>> -> tensor<8x64xf32>
  return
}

// -----

func.func @yarn_beta_slow() {
  // expected-error @+2 {{'beta_slow' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.yarn_scaling<factor = 4.0, beta_slow = -1.0, original_max_position = 32768>> -> tensor<8x64xf32>
  return
}

// -----

func.func @yarn_original_max_position() {
  // expected-error @+2 {{'original_max_position' must be in [1, 2147483647], got 2147483648}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.yarn_scaling<factor = 4.0, original_max_position = 2147483648>> -> tensor<8x64xf32>
  return
}

// -----

//===--- #attn.longrope_scaling ---===//

func.func @longrope_factor_lengths() {
  // expected-error @+2 {{'short_factor' and 'long_factor' must be non-empty and of the same length}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0], original_max_position = 4096, max_position = 131072>> -> tensor<8x4xf32>
  return
}

// -----

func.func @longrope_factor_positive() {
  // expected-error @+2 {{'factor' must be positive and finite}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0, 0.0], original_max_position = 4096, max_position = 131072>> -> tensor<8x4xf32>
  return
}

// -----

func.func @longrope_original_max_position() {
  // expected-error @+2 {{'original_max_position' must be in [1, 2147483647], got -1}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0, 2.0], original_max_position = -1, max_position = 131072>> -> tensor<8x4xf32>
  return
}

// -----

func.func @longrope_max_position() {
  // expected-error @+2 {{'max_position' must be in [1, 2147483647], got 0}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0, 2.0], original_max_position = 4096, max_position = 0>> -> tensor<8x4xf32>
  return
}

// -----

func.func @longrope_original_below_two() {
  // expected-error @+2 {{'original_max_position' must be at least 2}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'scaling'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0, 2.0], original_max_position = 1, max_position = 131072>> -> tensor<8x4xf32>
  return
}

// -----

//===--- #attn.rope ---===//

func.func @rope_theta() {
  // expected-error @+1 {{'theta' must be finite and greater than 1}}
  %0 = attn.rope_freqs #attn.rope<theta = 1.0> -> tensor<8x64xf32>
  return
}

// -----

func.func @rope_interleaved_not_bool() {
  // expected-error @+2 {{expected 'true' or 'false'}}
  // expected-error @+1 {{failed to parse Attn_RopeAttr parameter 'interleaved'}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, interleaved = yes> -> tensor<8x64xf32>
  return
}

// -----

//===--- #attn.kv_cache ---===//

// expected-error @+2 {{'page_size' must be in [1, 2147483647], got 0}}
// expected-error @+1 {{failed to parse Attn_PagedKVCacheType parameter 'params'}}
func.func @kv_cache_page_size(%c: !attn.paged_kv_cache<#attn.kv_cache<page_size = 0, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>)

// -----

// expected-error @+2 {{'num_layers' must be in [1, 2147483647], got 0}}
// expected-error @+1 {{failed to parse Attn_PagedKVCacheType parameter 'params'}}
func.func @kv_cache_num_layers(%c: !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 0, kv_heads = 2, head_dim = 64, dtype = f32>>)

// -----

// expected-error @+2 {{'kv_heads' must be in [1, 2147483647], got -2}}
// expected-error @+1 {{failed to parse Attn_PagedKVCacheType parameter 'params'}}
func.func @kv_cache_kv_heads(%c: !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = -2, head_dim = 64, dtype = f32>>)

// -----

// expected-error @+2 {{'head_dim' must be in [1, 2147483647], got 4294967296}}
// expected-error @+1 {{failed to parse Attn_PagedKVCacheType parameter 'params'}}
func.func @kv_cache_head_dim(%c: !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 4294967296, dtype = f32>>)

// -----

// expected-error @+2 {{'dtype' must be a floating-point type, got 'i32'}}
// expected-error @+1 {{failed to parse Attn_PagedKVCacheType parameter 'params'}}
func.func @kv_cache_dtype(%c: !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = i32>>)

// -----

//===--- attn.paged_cache.make ---===//

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @make_blocks_shape(%b: tensor<?x2x2x16x4x64xf32>, %l: tensor<?xi32>, %t: tensor<?x?xi32>) {
  // expected-error @+1 {{expects blocks of shape [?, 2, 2, 16, 2, 64], got [?, 2, 2, 16, 4, 64]}}
  %c = attn.paged_cache.make %b, %l, %t : tensor<?x2x2x16x4x64xf32>, tensor<?xi32>, tensor<?x?xi32> -> !cache
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @make_blocks_element_type(%b: tensor<?x2x2x16x2x64xf16>, %l: tensor<?xi32>, %t: tensor<?x?xi32>) {
  // expected-error @+1 {{expects blocks with element type 'f32', got 'f16'}}
  %c = attn.paged_cache.make %b, %l, %t : tensor<?x2x2x16x2x64xf16>, tensor<?xi32>, tensor<?x?xi32> -> !cache
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @make_lookup_rows(%b: tensor<?x2x2x16x2x64xf32>, %l: tensor<3xi32>, %t: tensor<4x8xi32>) {
  // expected-error @+1 {{expects a lookup table row per sequence}}
  %c = attn.paged_cache.make %b, %l, %t : tensor<?x2x2x16x2x64xf32>, tensor<3xi32>, tensor<4x8xi32> -> !cache
  return
}

// -----

//===--- attn.paged_cache.parts (inferred result types) ---===//

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @parts_result_types(%c: !cache) {
  // expected-error @+2 {{'attn.paged_cache.parts' op inferred type(s) 'tensor<?x2x2x16x2x64xf32>', 'tensor<?xi32>', 'tensor<?x?xi32>' are incompatible with return type(s) of operation}}
  // expected-error @+1 {{failed to infer returned types}}
  %b, %l, %t = "attn.paged_cache.parts"(%c) : (!cache) -> (tensor<?x2x2x16x2x32xf32>, tensor<?xi32>, tensor<?x?xi32>)
  return
}

// -----

//===--- attn.qkv_projection ---===//

func.func @qkv_weight_count(%x: tensor<?x256xf32>, %w: tensor<256x256xf32>) {
  // expected-error @+1 {{expects 1 stacked or 3 separate weights, got 2}}
  %q, %k, %v = attn.qkv_projection %x weights(%w, %w)
      : tensor<?x256xf32>, (tensor<256x256xf32>, tensor<256x256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_bias_count(%x: tensor<?x256xf32>, %wq: tensor<256x256xf32>, %wk: tensor<128x256xf32>, %b: tensor<256xf32>) {
  // expected-error @+1 {{expects no biases or one per weight (3), got 1}}
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wk) bias(%b)
      : tensor<?x256xf32>, (tensor<256x256xf32>, tensor<128x256xf32>, tensor<128x256xf32>), (tensor<256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_k_v_types(%x: tensor<?x256xf32>, %w: tensor<512x256xf32>) {
  // expected-error @+1 {{expects k and v of the same type}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<512x256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x1x64xf32>
  return
}

// -----

func.func @qkv_dynamic_heads(%x: tensor<?x256xf32>, %w: tensor<512x256xf32>) {
  // expected-error @+1 {{expects static head counts and head dim in the result types}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<512x256xf32>)
      -> tensor<?x?x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_head_dim(%x: tensor<?x256xf32>, %w: tensor<512x256xf32>) {
  // expected-error @+1 {{expects q and k with the same head dim, got 64 and 32}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<512x256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>
  return
}

// -----

func.func @qkv_heads(%x: tensor<?x256xf32>, %w: tensor<576x256xf32>) {
  // expected-error @+1 {{expects the query heads (4) to be a multiple of the kv heads (3)}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<576x256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x3x64xf32>, tensor<?x3x64xf32>
  return
}

// -----

// A result element type that differs from the input's is reported twice: once
// by the element-type helper and once by the combined row/type message.
func.func @qkv_result_element_type(%x: tensor<?x256xf32>, %w: tensor<512x256xf32>) {
  // expected-error @+1 {{expects results with element type 'f32', got 'f16'}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<512x256xf32>)
      -> tensor<?x4x64xf16>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_result_rows(%x: tensor<7x256xf32>, %w: tensor<512x256xf32>) {
  // expected-error @+1 {{expects q, k and v with one row per input row}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<7x256xf32>, (tensor<512x256xf32>)
      -> tensor<7x4x64xf32>, tensor<8x2x64xf32>, tensor<8x2x64xf32>
  return
}

// -----

func.func @qkv_overflow(%x: tensor<?x256xf32>, %w: tensor<?x256xf32>) {
  // expected-error @+1 {{head counts times head dim overflow}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<?x256xf32>)
      -> tensor<?x4611686018427387904x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_weight_shape(%x: tensor<?x256xf32>, %w: tensor<384x256xf32>) {
  // expected-error @+1 {{expects weight of shape [512, 256], got [384, 256]}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<384x256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_weight_element_type(%x: tensor<?x256xf32>, %w: tensor<512x256xbf16>) {
  // expected-error @+1 {{expects weight with element type 'f32', got 'bf16'}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<512x256xbf16>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_bias_shape(%x: tensor<?x256xf32>, %wq: tensor<256x256xf32>, %wk: tensor<128x256xf32>,
                          %bq: tensor<256xf32>, %bk: tensor<256xf32>) {
  // expected-error @+1 {{expects bias of shape [128], got [256]}}
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wk) bias(%bq, %bk, %bk)
      : tensor<?x256xf32>, (tensor<256x256xf32>, tensor<128x256xf32>, tensor<128x256xf32>),
        (tensor<256xf32>, tensor<256xf32>, tensor<256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_bias_element_type(%x: tensor<?x256xf32>, %w: tensor<512x256xf32>, %b: tensor<512xf16>) {
  // expected-error @+1 {{expects bias with element type 'f32', got 'f16'}}
  %q, %k, %v = attn.qkv_projection %x weights(%w) bias(%b)
      : tensor<?x256xf32>, (tensor<512x256xf32>), (tensor<512xf16>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

func.func @qkv_clip(%x: tensor<?x256xf32>, %w: tensor<512x256xf32>) {
  // expected-error @+1 {{expects a positive, finite clip}}
  %q, %k, %v = attn.qkv_projection %x weights(%w) clip 0.0
      : tensor<?x256xf32>, (tensor<512x256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

//===--- attn.linear ---===//

func.func @linear_weight_shape(%x: tensor<?x256xf32>, %w: tensor<128x128xf32>) {
  // expected-error @+1 {{expects weight of shape [128, 256], got [128, 128]}}
  %0 = attn.linear %x, %w : tensor<?x256xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  return
}

// -----

func.func @linear_result_shape(%x: tensor<?x256xf32>, %w: tensor<128x256xf32>) {
  // expected-error @+1 {{expects result of shape [?, 128], got [?, 256]}}
  %0 = attn.linear %x, %w : tensor<?x256xf32>, tensor<128x256xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @linear_bias_shape(%x: tensor<?x256xf32>, %w: tensor<128x256xf32>, %b: tensor<256xf32>) {
  // expected-error @+1 {{expects bias of shape [128], got [256]}}
  %0 = attn.linear %x, %w bias %b : tensor<?x256xf32>, tensor<128x256xf32>, tensor<256xf32> -> tensor<?x128xf32>
  return
}

// -----

func.func @linear_operand_element_type(%x: tensor<?x256xf32>, %w: tensor<128x256xbf16>) {
  // expected-error @+1 {{expects weight with element type 'f32', got 'bf16'}}
  %0 = attn.linear %x, %w : tensor<?x256xf32>, tensor<128x256xbf16> -> tensor<?x128xf32>
  return
}

// -----

func.func @linear_result_element_type(%x: tensor<?x256xf32>, %w: tensor<128x256xf32>) {
  // expected-error @+1 {{expects result with element type 'f32', got 'f16'}}
  %0 = attn.linear %x, %w : tensor<?x256xf32>, tensor<128x256xf32> -> tensor<?x128xf16>
  return
}

// -----

//===--- attn.rms_norm ---===//

func.func @rms_norm_rank(%x: tensor<f32>, %g: tensor<1xf32>) {
  // expected-error @+1 {{expects an input of rank at least 1}}
  %0 = attn.rms_norm %x, %g : tensor<f32>, tensor<1xf32>
  return
}

// -----

func.func @rms_norm_gamma_shape(%x: tensor<?x4x64xf32>, %g: tensor<128xf32>) {
  // expected-error @+1 {{expects gamma of shape [64], got [128]}}
  %0 = attn.rms_norm %x, %g : tensor<?x4x64xf32>, tensor<128xf32>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<?x4x64xf32>, %g: tensor<64xf32>) {
  // expected-error @+1 {{expects a non-negative, finite eps}}
  %0 = attn.rms_norm %x, %g eps -1.0e-06 : tensor<?x4x64xf32>, tensor<64xf32>
  return
}

// -----

//===--- attn.rope_freqs ---===//

func.func @rope_freqs_rank() {
  // expected-error @+1 {{expects a 2-d [positions, head_dim] result}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<64xf32>
  return
}

// -----

func.func @rope_freqs_no_positions() {
  // expected-error @+1 {{expects at least one position}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<0x64xf32>
  return
}

// -----

func.func @rope_freqs_odd_head_dim() {
  // expected-error @+1 {{rope needs a positive, even head dim, got 63}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<8x63xf32>
  return
}

// -----

func.func @rope_freqs_longrope_factor_count() {
  // expected-error @+1 {{longrope scaling has 2 factors per list but head dim 8 needs 4}}
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0, 2.0], original_max_position = 4096, max_position = 131072>> -> tensor<8x8xf32>
  return
}

// -----

//===--- attn.rope ---===//

func.func @rope_head_dim(%x: tensor<?x4x63xf32>, %f: tensor<128x63xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) {
  // expected-error @+1 {{expects a static, positive, even head dim}}
  %0 = attn.rope %x, %f positions(%off, %len) : tensor<?x4x63xf32>, tensor<128x63xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @rope_freqs_element_type(%x: tensor<?x4x64xf32>, %f: tensor<128x64xf16>, %off: tensor<?xi32>, %len: tensor<?xi32>) {
  // expected-error @+1 {{expects an f32 freqs table}}
  %0 = attn.rope %x, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf16>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @rope_freqs_shape(%x: tensor<?x4x64xf32>, %f: tensor<128x32xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) {
  // expected-error @+1 {{expects freqs of shape [?, 64], got [128, 32]}}
  %0 = attn.rope %x, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x32xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @rope_no_row_offsets(%x: tensor<?x4x64xf32>, %f: tensor<128x64xf32>, %off: tensor<0xi32>, %len: tensor<?xi32>) {
  // expected-error @+1 {{expects at least one row offset}}
  %0 = attn.rope %x, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<0xi32>, tensor<?xi32>
  return
}

// -----

func.func @rope_row_offsets_vs_lengths(%x: tensor<?x4x64xf32>, %f: tensor<128x64xf32>, %off: tensor<3xi32>, %len: tensor<3xi32>) {
  // expected-error @+1 {{expects one more row offset than cache lengths, got 3 and 3}}
  %0 = attn.rope %x, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<3xi32>, tensor<3xi32>
  return
}

// -----

//===--- attn.kv_cache_store ---===//

func.func @store_key_value_types(%k: tensor<?x2x64xf32>, %v: tensor<?x2x32xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                                 %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects key and value of the same type}}
  %0 = attn.kv_cache_store %k, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x32xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @store_blocks_shape(%k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x4x64xf32>,
                              %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects blocks of shape [?, 2, ?, ?, 2, 64], got [?, 2, 2, 16, 4, 64]}}
  %0 = attn.kv_cache_store %k, %k into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x4x64xf32>
  return
}

// -----

func.func @store_layer_range(%k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                             %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{layer 2 is out of range for a cache of 2 layers}}
  %0 = attn.kv_cache_store %k, %k into %b layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @store_blocks_element_type(%k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xbf16>,
                                     %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects blocks with element type 'f32', got 'bf16'}}
  %0 = attn.kv_cache_store %k, %k into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xbf16>
  return
}

// -----

func.func @store_lookup_rows(%k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                             %off: tensor<4xi32>, %len: tensor<3xi32>, %lut: tensor<2x?xi32>) {
  // expected-error @+1 {{expects a lookup table row per sequence}}
  %0 = attn.kv_cache_store %k, %k into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<4xi32>, tensor<3xi32>, tensor<2x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @store_negative_layer(%k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                                %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects a non-negative layer, got -1}}
  %0 = attn.kv_cache_store %k, %k into %b layer -1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

//===--- attn.flash_attention ---===//

func.func @flash_key_value_types(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x1x64xf32>, %o: tensor<?xi32>) {
  // expected-error @+1 {{expects key and value of the same type}}
  %0 = attn.flash_attention %q, %k, %v rows(%o, %o)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @flash_head_dim(%q: tensor<?x4x64xf32>, %k: tensor<?x2x32xf32>, %o: tensor<?xi32>) {
  // expected-error @+1 {{expects query and key with the same head dim, got 64 and 32}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o)
      : tensor<?x4x64xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @flash_heads(%q: tensor<?x4x64xf32>, %k: tensor<?x3x64xf32>, %o: tensor<?xi32>) {
  // expected-error @+1 {{expects the query heads (4) to be a multiple of the kv heads (3)}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o)
      : tensor<?x4x64xf32>, tensor<?x3x64xf32>, tensor<?x3x64xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @flash_key_element_type(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf16>, %o: tensor<?xi32>) {
  // expected-error @+1 {{expects key with element type 'f32', got 'f16'}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o)
      : tensor<?x4x64xf32>, tensor<?x2x64xf16>, tensor<?x2x64xf16>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @flash_scale(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %o: tensor<?xi32>) {
  // expected-error @+1 {{expects a positive, finite scale}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o) {scale = 0x7FF0000000000000 : f64}
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @flash_row_offsets(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %qo: tensor<3xi32>, %ko: tensor<4xi32>) {
  // expected-error @+1 {{expects as many query as key/value row offsets}}
  %0 = attn.flash_attention %q, %k, %k rows(%qo, %ko)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<3xi32>, tensor<4xi32>
  return
}

// -----

//===--- attn.paged_flash_attention ---===//

func.func @paged_heads(%q: tensor<?x3x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                       %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects the query heads (3) to be a multiple of the kv heads (2)}}
  %0 = attn.paged_flash_attention %q, %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x3x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return
}

// -----

func.func @paged_blocks_shape(%q: tensor<?x4x64xf32>, %b: tensor<?x2x2x16x2x32xf32>,
                              %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects blocks of shape [?, 2, ?, ?, 2, 64], got [?, 2, 2, 16, 2, 32]}}
  %0 = attn.paged_flash_attention %q, %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x32xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return
}

// -----

func.func @paged_scale(%q: tensor<?x4x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                       %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects a positive, finite scale}}
  %0 = attn.paged_flash_attention %q, %b layer 0 positions(%off, %len) pages(%lut) {scale = -0.125 : f64}
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return
}

// -----

func.func @paged_row_offsets(%q: tensor<?x4x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                             %off: tensor<2xi32>, %len: tensor<2xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects one more row offset than cache lengths, got 2 and 2}}
  %0 = attn.paged_flash_attention %q, %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<2xi32>, tensor<2xi32>, tensor<?x?xi32>
  return
}

// -----

//===--- attn.attention_with_rope ---===//

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_heads(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<448x256xf32>, %wo: tensor<256x192xf32>) {
  // expected-error @+1 {{expects the query heads (3) to be a multiple of the kv heads (2)}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 3 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<448x256xf32>, tensor<256x192xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_kv_heads(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<768x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{num_key_value_heads (4) differs from the cache's kv_heads (2)}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 4 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<768x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_layer_idx(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{layer 2 is out of range for a cache of 2 layers}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 2 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 63, dtype = f32>>

func.func @awr_odd_head_dim(%x: tensor<?x252xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<504x252xf32>, %wo: tensor<252x252xf32>) {
  // expected-error @+1 {{rope needs a positive, even head dim, got 63}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 252 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x252xf32>, tensor<?xi32>, !cache, tensor<504x252xf32>, tensor<252x252xf32>) -> (tensor<?x252xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_longrope_factor_count(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{longrope scaling has 2 factors per list but head dim 64 needs 32}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64,
       rope = #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0, 2.0], original_max_position = 4096, max_position = 131072>>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_input_element_type(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xbf16>, %wo: tensor<256x256xbf16>) {
  // expected-error @+1 {{expects the input's element type ('bf16') to be the cache dtype ('f32')}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, tensor<512x256xbf16>, tensor<256x256xbf16>) -> (tensor<?x256xbf16>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_input_shape(%x: tensor<?x128xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects input of shape [?, 256], got [?, 128]}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x128xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x128xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_weight_count(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %wq: tensor<256x256xf32>, %wk: tensor<128x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects 1 stacked or 3 separate qkv weights, got 2}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<256x256xf32>, tensor<128x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_bias_count(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %b: tensor<512xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects no qkv biases or one per weight (1), got 2}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) bias(%b, %b) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<512xf32>, tensor<512xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_overflow(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<?x256xf32>, %wo: tensor<256x?xf32>) {
  // expected-error @+1 {{head counts times head dim overflow}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4611686018427387904 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<?x256xf32>, tensor<256x?xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_weight_shape(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %wq: tensor<256x256xf32>, %wk: tensor<128x256xf32>,
                            %wv: tensor<256x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects qkv weight of shape [128, 256], got [256, 256]}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<256x256xf32>, tensor<128x256xf32>, tensor<256x256xf32>, tensor<256x256xf32>)
      -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_weight_element_type(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf16>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects qkv weight with element type 'f32', got 'f16'}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf16>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_bias_shape(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %b: tensor<256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects qkv bias of shape [512], got [256]}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) bias(%b) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_bias_element_type(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %b: tensor<512xbf16>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects qkv bias with element type 'f32', got 'bf16'}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) bias(%b) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<512xbf16>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_q_norm_only(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %g: tensor<64xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects both q_norm and k_norm or neither}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) q_norm(%g) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<64xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_norm_shape(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %g: tensor<64xf32>, %gk: tensor<128xf32>,
                          %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects norm weight of shape [64], got [128]}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) q_norm(%g) k_norm(%gk) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<64xf32>, tensor<128xf32>, tensor<256x256xf32>)
      -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_o_proj_shape(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x128xf32>) {
  // expected-error @+1 {{expects o_proj weight of shape [256, 256], got [256, 128]}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x128xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_o_proj_element_type(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf16>) {
  // expected-error @+1 {{expects o_proj weight with element type 'f32', got 'f16'}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf16>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_freqs_shape(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>, %freqs: tensor<32x64xf32>) {
  // expected-error @+1 {{expects freqs of shape [64, 64], got [32, 64]}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo) freqs(%freqs)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>, tensor<32x64xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>

func.func @awr_freqs_element_type(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xbf16>, %wo: tensor<256x256xbf16>, %freqs: tensor<64x64xbf16>) {
  // expected-error @+1 {{expects freqs with element type 'f32', got 'bf16'}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo) freqs(%freqs)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, tensor<512x256xbf16>, tensor<256x256xbf16>, tensor<64x64xbf16>) -> (tensor<?x256xbf16>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_clip_qkv(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects a positive, finite clip_qkv}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>, clip_qkv = -4.0 : f64}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_rms_norm_eps(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects a non-negative, finite rms_norm_eps}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>, rms_norm_eps = -1.0e-6 : f64}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_scale(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects a positive, finite scale}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>, scale = 0.0 : f64}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_zero_heads(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // The attribute is checked while the custom form is parsed, at the attr-dict.
  // expected-error @+2 {{attribute 'num_attention_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 0 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_negative_layer_idx(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // The attribute is checked while the custom form is parsed, at the attr-dict.
  // expected-error @+2 {{attribute 'layer_idx' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = -1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

// A static zero kv-head count is rejected even when the query heads are dynamic.
func.func @flash_zero_kv_heads(%q: tensor<?x?x64xf32>, %k: tensor<?x0x64xf32>, %o: tensor<?xi32>) {
  // expected-error @+1 {{expects positive head counts, got 0}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o)
      : tensor<?x?x64xf32>, tensor<?x0x64xf32>, tensor<?x0x64xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @flash_zero_head_dim(%q: tensor<?x4x0xf32>, %k: tensor<?x2x0xf32>, %o: tensor<?xi32>) {
  // expected-error @+1 {{expects a positive head dim, got 0}}
  %0 = attn.flash_attention %q, %k, %k rows(%o, %o)
      : tensor<?x4x0xf32>, tensor<?x2x0xf32>, tensor<?x2x0xf32>, tensor<?xi32>, tensor<?xi32>
  return
}

// -----

func.func @qkv_zero_head_dim(%x: tensor<?x256xf32>, %w: tensor<0x256xf32>) {
  // expected-error @+1 {{expects a positive head dim, got 0}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<0x256xf32>)
      -> tensor<?x4x0xf32>, tensor<?x2x0xf32>, tensor<?x2x0xf32>
  return
}

// -----

func.func @paged_zero_head_dim(%q: tensor<?x4x0xf32>, %b: tensor<?x2x2x16x2x0xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects a positive head dim, got 0}}
  %0 = attn.paged_flash_attention %q, %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x4x0xf32>, tensor<?x2x2x16x2x0xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>
func.func @composite_no_row_offsets(%x: tensor<?x256xf32>, %off: tensor<0xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects at least one row offset}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<0xi32>, !cache, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

func.func @store_zero_page_size(%k: tensor<?x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %b: tensor<?x2x2x0x2x64xf32>) {
  // expected-error @+1 {{expects a positive page size, got 0}}
  %0 = attn.kv_cache_store %k, %k into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x0x2x64xf32>
  return
}

// -----

//===--- attn.rope_store ---===//

// -----

func.func @rs_kv_types(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x32xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects k and v of the same type}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x32xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_q_element(%q: tensor<?x4x64xbf16>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects q with element type 'f32', got 'bf16'}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_odd_dim(%q: tensor<?x4x63xf32>, %k: tensor<?x2x63xf32>, %v: tensor<?x2x63xf32>, %f: tensor<128x63xf32>, %b: tensor<?x2x2x16x2x63xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects a static, positive, even head dim}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x63xf32>, tensor<?x2x63xf32>, tensor<?x2x63xf32>, tensor<128x63xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x63xf32>
  return
}

// -----

func.func @rs_head_dims(%q: tensor<?x4x64xf32>, %k: tensor<?x2x32xf32>, %v: tensor<?x2x32xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects q and k with the same head dim, got 64 and 32}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x32xf32>, tensor<?x2x32xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_rows(%q: tensor<3x4x64xf32>, %k: tensor<5x2x64xf32>, %v: tensor<5x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects q and k with the same number of rows}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<3x4x64xf32>, tensor<5x2x64xf32>, tensor<5x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_heads(%q: tensor<?x4x64xf32>, %k: tensor<?x3x64xf32>, %v: tensor<?x3x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x3x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects the query heads (4) to be a multiple of the kv heads (3)}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x3x64xf32>, tensor<?x3x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x3x64xf32>
  return
}

// -----

func.func @rs_freqs_type(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf16>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects an f32 freqs table}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_freqs_shape(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x32xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects freqs of shape [?, 64], got [128, 32]}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x32xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_blocks(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x4x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects blocks of shape [?, 2, ?, ?, 2, 64], got [?, 2, 2, 16, 4, 64]}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x4x64xf32>
  return
}

// -----

func.func @rs_layer(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{layer 2 is out of range for a cache of 2 layers}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 2 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_offsets(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<3xi32>, %len: tensor<3xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects one more row offset than cache lengths, got 3 and 3}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<3xi32>, tensor<3xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_eps_without_norm(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects eps only with qk_norm}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut) eps 1.0e-06
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rs_norm_without_eps(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %gq: tensor<64xf32>, %gk: tensor<64xf32>) {
  // expected-error @+1 {{expects eps with qk_norm}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut) qk_norm(%gq, %gk)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>, tensor<64xf32>, tensor<64xf32>
  return
}

// -----

func.func @rs_norm_shape(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %gq: tensor<32xf32>, %gk: tensor<64xf32>) {
  // expected-error @+1 {{expects qk norm weight of shape [64], got [32]}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut) qk_norm(%gq, %gk) eps 1.0e-06
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>, tensor<32xf32>, tensor<64xf32>
  return
}

// -----

func.func @rs_norm_eps(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %gq: tensor<64xf32>, %gk: tensor<64xf32>) {
  // expected-error @+1 {{expects a non-negative, finite eps}}
  %0, %1 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f) positions(%off, %len) pages(%lut) qk_norm(%gq, %gk) eps -1.0
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>, tensor<64xf32>, tensor<64xf32>
  return
}

// -----

func.func @rs_one_gamma(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %gq: tensor<64xf32>) {
  // expected-error @+1 {{expects both qk norm weights or neither}}
  %0, %1 = "attn.rope_store"(%k, %v, %f, %off, %len, %lut, %q, %b, %gq) <{layer = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0>, eps = 1.0e-06 : f64}>
      : (tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<64xf32>) -> (tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>)
  return
}

// -----

func.func @linear_clip_positive(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) {
  // expected-error @+1 {{expects a positive, finite clip}}
  %y = attn.linear %x, %w clip 0.0 : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @store_layer_twice(%l: i32, %k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                             %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects exactly one of a static layer and a layer index operand}}
  %0 = "attn.kv_cache_store"(%k, %k, %off, %len, %lut, %b, %l) <{layer = 0 : i64}>
      : (tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>, i32) -> tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @attention_no_layer(%q: tensor<?x4x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                              %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expects exactly one of a static layer and a layer index operand}}
  %0 = "attn.paged_flash_attention"(%q, %b, %off, %len, %lut) <{mask = #attn.mask<causal>}>
      : (tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>) -> tensor<?x4x64xf32>
  return
}

// -----

func.func @store_layer_f32(%l: f32, %k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                           %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{operand #6 must be index or i32, but got 'f32'}}
  %0 = attn.kv_cache_store %k, %k into %b layer(%l : f32) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @rope_store_layer_out_of_range(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %f: tensor<128x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                                         %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{layer 2 is out of range for a cache of 2 layers}}
  %0, %1 = attn.rope_store %q, %k, %k into %b layer 2 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

func.func @store_layer_missing_type(%l: i32, %k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                                    %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) {
  // expected-error @+1 {{expected ':'}}
  %0 = attn.kv_cache_store %k, %k into %b layer(%l) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

func.func @awr_two_layers(%l: i32, %x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>) {
  // expected-error @+1 {{expects exactly one of a static layer and a layer index operand}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c layer(%l) qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, i32, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return
}
