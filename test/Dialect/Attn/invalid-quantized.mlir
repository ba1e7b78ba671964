// RUN: attn-opt %s -split-input-file -verify-diagnostics

// One case per verifier branch of the quantised weight encodings, their
// type, attn.quantized_weight and the projections taking them.

//===--- #attn.gptq ---===//

// expected-error @+1 {{GPTQ with 8 bits is not supported (4 only, as MAX)}}
func.func private @gptq_bits(!attn.quantized_weight<64x128, #attn.gptq<bits = 8, group_size = 128>>)

// -----

// expected-error @+1 {{asymmetric GPTQ (sym = false) is not supported (MAX decodes with the zero point 8)}}
func.func private @gptq_asymmetric(!attn.quantized_weight<64x128, #attn.gptq<group_size = 128, sym = false>>)

// -----

// expected-error @+1 {{expects a positive GPTQ group size that is a multiple of 8, got 0}}
func.func private @gptq_group_zero(!attn.quantized_weight<64x128, #attn.gptq<group_size = 0>>)

// -----

func.func @gptq_part_count(%qw: tensor<16x64xi32>, %s: tensor<1x64xf16>) {
  // expected-error @+1 {{expects 3 parts for #attn.gptq<group_size = 128, desc_act = true> (qweight, scales, perm), got 2}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<16x64xi32>, tensor<1x64xf16>) -> !attn.quantized_weight<64x128, #attn.gptq<group_size = 128, desc_act = true>>
  return
}

// -----

// expected-error @+1 {{expects a positive GPTQ group size that is a multiple of 8, got 12}}
func.func private @gptq_group_straddles_words(!attn.quantized_weight<64x128, #attn.gptq<group_size = 12>>)

// -----

func.func @gptq_k_not_packed(%qw: tensor<1x64xi32>, %s: tensor<1x64xf16>) {
  // expected-error @+1 {{expects K (12) to be a multiple of the int4 values per word (8)}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<1x64xi32>, tensor<1x64xf16>) -> !attn.quantized_weight<64x12, #attn.gptq<group_size = 8>>
  return
}

// -----

func.func @gptq_k_not_grouped(%qw: tensor<25x64xi32>, %s: tensor<1x64xf16>) {
  // expected-error @+1 {{expects K (200) to be a multiple of the group size (128)}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<25x64xi32>, tensor<1x64xf16>) -> !attn.quantized_weight<64x200, #attn.gptq<group_size = 128>>
  return
}

// -----

func.func @gptq_qweight_shape(%qw: tensor<64x16xi32>, %s: tensor<1x64xf16>) {
  // expected-error @+1 {{expects qweight of shape [16, 64], got 'tensor<64x16xi32>'}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<64x16xi32>, tensor<1x64xf16>) -> !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>
  return
}

// -----

func.func @gptq_column_blocks_n(%qw: tensor<1x16x72xi32>, %s: tensor<1x72xf16>) {
  // expected-error @+1 {{expects N (72) to be a multiple of 32 with layout = column_blocks}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<1x16x72xi32>, tensor<1x72xf16>) -> !attn.quantized_weight<72x128, #attn.gptq<group_size = 128, layout = column_blocks>>
  return
}

// -----

func.func @gptq_column_blocks_shape(%qw: tensor<16x128xi32>, %s: tensor<1x128xf16>) {
  // expected-error @+1 {{expects qweight of shape [4, 16, 32], got 'tensor<16x128xi32>'}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<16x128xi32>, tensor<1x128xf16>) -> !attn.quantized_weight<128x128, #attn.gptq<group_size = 128, layout = column_blocks>>
  return
}

// -----

func.func @gptq_column_blocks_scales(%qw: tensor<4x16x32xi32>, %s: tensor<1x128xf16>) {
  // expected-error @+1 {{expects scales of shape [4, 1, 32], got 'tensor<1x128xf16>'}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<4x16x32xi32>, tensor<1x128xf16>) -> !attn.quantized_weight<128x128, #attn.gptq<group_size = 128, layout = column_blocks>>
  return
}

// -----

// expected-error @+2 {{expected ::mlir::attn::GPTQLayout to be one of: checkpoint, column_blocks}}
// expected-error @+1 {{failed to parse Attn_GPTQAttr parameter 'layout'}}
func.func private @gptq_layout_name(!attn.quantized_weight<64x128, #attn.gptq<group_size = 128, layout = tiles>>)

// -----

func.func @gptq_scales_shape(%qw: tensor<16x64xi32>, %s: tensor<2x64xf16>) {
  // expected-error @+1 {{expects scales of shape [1, 64], got 'tensor<2x64xf16>'}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<16x64xi32>, tensor<2x64xf16>) -> !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>
  return
}

// -----

func.func @gptq_scales_type(%qw: tensor<16x64xi32>, %s: tensor<1x64xf32>) {
  // expected-error @+1 {{expects scales of element type 'f16' or 'bf16', got 'f32'}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<16x64xi32>, tensor<1x64xf32>) -> !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>
  return
}

// -----

func.func @gptq_perm_length(%qw: tensor<16x64xi32>, %s: tensor<1x64xf16>, %p: tensor<64xi32>) {
  // expected-error @+1 {{expects perm of shape [128], got 'tensor<64xi32>'}}
  %w = attn.quantized_weight(%qw, %s, %p) : (tensor<16x64xi32>, tensor<1x64xf16>, tensor<64xi32>) -> !attn.quantized_weight<64x128, #attn.gptq<group_size = 128, desc_act = true>>
  return
}

// -----

//===--- #attn.float8 ---===//

// expected-error @+1 {{'upper_bound' bounds a dynamic input scale only}}
func.func private @float8_bound_static(!attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = static, upper_bound = 100.0>>)

// -----

// expected-error @+1 {{'upper_bound' must be positive and finite}}
func.func private @float8_bound_negative(!attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = dynamic, upper_bound = -1.0>>)

// -----

func.func @float8_weight_type(%w8: tensor<64x128xf8E5M2>, %s: tensor<64xf32>) {
  // expected-error @+1 {{expects weight of element type 'f8E4M3FN', got 'f8E5M2'}}
  %w = attn.quantized_weight(%w8, %s) : (tensor<64x128xf8E5M2>, tensor<64xf32>) -> !attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = dynamic>>
  return
}

// -----

func.func @float8_row_scale_shape(%w8: tensor<64x128xf8E4M3FN>, %s: tensor<1xf32>) {
  // expected-error @+1 {{expects weight_scale of shape [64], got 'tensor<1xf32>'}}
  %w = attn.quantized_weight(%w8, %s) : (tensor<64x128xf8E4M3FN>, tensor<1xf32>) -> !attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = dynamic>>
  return
}

// -----

func.func @float8_block_k(%w8: tensor<64x192xf8E4M3FN>, %s: tensor<1x2xf32>) {
  // expected-error @+1 {{expects K (192) to be a multiple of the float8 scale block (128)}}
  %w = attn.quantized_weight(%w8, %s) : (tensor<64x192xf8E4M3FN>, tensor<1x2xf32>) -> !attn.quantized_weight<64x192, #attn.float8<weight_scale = block, input_scale = dynamic>>
  return
}

// -----

func.func @float8_block_scale_shape(%w8: tensor<200x256xf8E4M3FN>, %s: tensor<1x2xf32>) {
  // expected-error @+1 {{expects weight_scale of shape [2, 2], got 'tensor<1x2xf32>'}}
  %w = attn.quantized_weight(%w8, %s) : (tensor<200x256xf8E4M3FN>, tensor<1x2xf32>) -> !attn.quantized_weight<200x256, #attn.float8<weight_scale = block, input_scale = dynamic>>
  return
}

// -----

func.func @float8_static_without_input_scale(%w8: tensor<64x128xf8E4M3FN>, %s: tensor<1xf32>) {
  // expected-error @+1 {{expects 3 parts for #attn.float8<weight_scale = tensor, input_scale = static> (weight, weight_scale, input_scale), got 2}}
  %w = attn.quantized_weight(%w8, %s) : (tensor<64x128xf8E4M3FN>, tensor<1xf32>) -> !attn.quantized_weight<64x128, #attn.float8<weight_scale = tensor, input_scale = static>>
  return
}

// -----

func.func @float8_input_scale_shape(%w8: tensor<64x128xf8E4M3FN>, %s: tensor<1xf32>, %x: tensor<2xf32>) {
  // expected-error @+1 {{expects input_scale of shape [1], got 'tensor<2xf32>'}}
  %w = attn.quantized_weight(%w8, %s, %x) : (tensor<64x128xf8E4M3FN>, tensor<1xf32>, tensor<2xf32>) -> !attn.quantized_weight<64x128, #attn.float8<weight_scale = tensor, input_scale = static>>
  return
}

// -----

//===--- #attn.gguf ---===//

func.func @gguf_k(%b: tensor<64x54xi8>) {
  // expected-error @+1 {{expects K (96) to be a multiple of the GGUF block size (256)}}
  %w = attn.quantized_weight(%b) : (tensor<64x54xi8>) -> !attn.quantized_weight<64x96, #attn.gguf<q4_k>>
  return
}

// -----

func.func @gguf_bytes(%b: tensor<64x72xi8>) {
  // expected-error @+1 {{expects blocks of shape [64, 68], got 'tensor<64x72xi8>'}}
  %w = attn.quantized_weight(%b) : (tensor<64x72xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q8_0>>
  return
}

// -----

func.func @gguf_byte_type(%b: tensor<64x36xi32>) {
  // expected-error @+1 {{expects blocks of element type 'i8', got 'i32'}}
  %w = attn.quantized_weight(%b) : (tensor<64x36xi32>) -> !attn.quantized_weight<64x64, #attn.gguf<q4_0>>
  return
}

// -----

//===--- !attn.quantized_weight ---===//

// expected-error @+1 {{expects weight sizes in [1, 2147483647], got 0x64}}
func.func private @weight_empty(!attn.quantized_weight<0x64, #attn.gguf<q4_0>>)

// -----

// expected-error @+1 {{expects the weight shape as rows x cols}}
func.func private @weight_rank(!attn.quantized_weight<4x64x64, #attn.gguf<q4_0>>)

// -----

//===--- projections ---===//

func.func @linear_quantized_shape(%x: tensor<?x128xbf16>, %w: !attn.quantized_weight<64x256, #attn.gptq<group_size = 128>>) {
  // expected-error @+1 {{expects weight of shape [64, 128], got [64, 256]}}
  %y = attn.linear %x, %w : tensor<?x128xbf16>, !attn.quantized_weight<64x256, #attn.gptq<group_size = 128>> -> tensor<?x64xbf16>
  return
}

// -----

func.func @linear_gptq_f32(%x: tensor<?x128xf32>, %w: !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>) {
  // expected-error @+1 {{expects activations of 'bf16' or 'f16' with #attn.gptq<group_size = 128> weights, got 'f32'}}
  %y = attn.linear %x, %w : tensor<?x128xf32>, !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>> -> tensor<?x64xf32>
  return
}

// -----

func.func @linear_gguf_bf16(%x: tensor<?x256xbf16>, %w: !attn.quantized_weight<64x256, #attn.gguf<q4_k>>) {
  // expected-error @+1 {{expects activations of 'f32' with #attn.gguf<q4_k> weights, got 'bf16'}}
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !attn.quantized_weight<64x256, #attn.gguf<q4_k>> -> tensor<?x64xbf16>
  return
}

// -----

func.func @linear_gptq_bias(%x: tensor<?x128xbf16>, %w: !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>, %b: tensor<64xbf16>) {
  // expected-error @+1 {{expects no bias with #attn.gptq<group_size = 128> weights (MAX has none)}}
  %y = attn.linear %x, %w bias %b : tensor<?x128xbf16>, !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>, tensor<64xbf16> -> tensor<?x64xbf16>
  return
}

// -----

func.func @linear_gguf_bias(%x: tensor<?x256xf32>, %w: !attn.quantized_weight<64x256, #attn.gguf<q4_k>>, %b: tensor<64xf32>) {
  // expected-error @+1 {{expects no bias with #attn.gguf<q4_k> weights (MAX has none)}}
  %y = attn.linear %x, %w bias %b : tensor<?x256xf32>, !attn.quantized_weight<64x256, #attn.gguf<q4_k>>, tensor<64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @linear_quantized_clip(%x: tensor<?x128xbf16>, %w: !attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = dynamic>>) {
  // expected-error @+1 {{expects no clip with quantised weights (the decoded weight is never materialised)}}
  %y = attn.linear %x, %w clip 4.0 : tensor<?x128xbf16>, !attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = dynamic>> -> tensor<?x64xbf16>
  return
}

// -----

func.func @qkv_quantized_rows(%x: tensor<?x256xf32>, %wq: !attn.quantized_weight<256x256, #attn.gguf<q4_k>>,
                              %wkv: !attn.quantized_weight<64x256, #attn.gguf<q4_k>>) {
  // expected-error @+1 {{expects weight of shape [128, 256], got [64, 256]}}
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wkv, %wkv)
      : tensor<?x256xf32>, (!attn.quantized_weight<256x256, #attn.gguf<q4_k>>, !attn.quantized_weight<64x256, #attn.gguf<q4_k>>, !attn.quantized_weight<64x256, #attn.gguf<q4_k>>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return
}

// -----

//===--- attn.attention_with_rope ---===//

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>
!f8 = !attn.quantized_weight<512x256, #attn.float8<weight_scale = row, input_scale = dynamic>>
!f8o = !attn.quantized_weight<256x256, #attn.float8<weight_scale = row, input_scale = dynamic>>

func.func @composite_float8_stacked_bias(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: !f8, %b: tensor<512xf32>, %wo: !f8o) {
  // expected-error @+1 {{expects separate q, k and v weights for a float8 qkv with bias}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) bias(%b) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, !f8, tensor<512xf32>, !f8o) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>
!q4 = !attn.quantized_weight<512x256, #attn.gguf<q4_k>>
!q4o = !attn.quantized_weight<256x256, #attn.gguf<q4_k>>

func.func @composite_gguf_clip(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: !q4, %wo: !q4o) {
  // expected-error @+1 {{expects no clip with quantised weights}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>, clip_qkv = 8.0 : f64}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, !q4, !q4o) -> (tensor<?x256xf32>, !cache)
  return
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>
!q4 = !attn.quantized_weight<512x256, #attn.gguf<q4_k>>
!q4o = !attn.quantized_weight<256x512, #attn.gguf<q4_k>>

func.func @composite_o_proj_shape(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: !q4, %wo: !q4o) {
  // expected-error @+1 {{expects o_proj weight of shape [256, 256], got [256, 512]}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, !q4, !q4o) -> (tensor<?x256xf32>, !cache)
  return
}
