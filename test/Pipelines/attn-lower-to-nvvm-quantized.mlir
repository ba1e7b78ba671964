// RUN: attn-opt %s --attn-lower-to-nvvm -split-input-file -verify-diagnostics
// convert-attn-to-gpu alone refuses them too (it is also run on its own).
// RUN: attn-opt %s --convert-attn-to-gpu -split-input-file -verify-diagnostics

// The GPU projection kernels do not decode quantised weights yet: a clear
// diagnostic at the op taking one, before any lowering runs.

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>
!w = !attn.quantized_weight<512x256, #attn.gptq<group_size = 128>>
!wo = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>

func.func @composite_gptq(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %qw: tensor<32x512xi32>,
                          %s: tensor<2x512xf16>, %qo: tensor<32x256xi32>, %so: tensor<2x256xf16>) -> (tensor<?x256xbf16>, !cache) {
  %w = attn.quantized_weight(%qw, %s) : (tensor<32x512xi32>, tensor<2x512xf16>) -> !w
  %wo = attn.quantized_weight(%qo, %so) : (tensor<32x256xi32>, tensor<2x256xf16>) -> !wo
  // expected-error @+1 {{quantised weights (#attn.gptq<group_size = 128>) are not supported on cuda yet}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, !w, !wo) -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}

// -----

func.func @linear_float8(%x: tensor<?x256xbf16>, %w8: tensor<64x256xf8E4M3FN>, %s: tensor<64xf32>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%w8, %s) : (tensor<64x256xf8E4M3FN>, tensor<64xf32>)
      -> !attn.quantized_weight<64x256, #attn.float8<weight_scale = row, input_scale = dynamic>>
  // expected-error @+1 {{quantised weights (#attn.float8<weight_scale = row, input_scale = dynamic>) are not supported on cuda yet}}
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !attn.quantized_weight<64x256, #attn.float8<weight_scale = row, input_scale = dynamic>> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
