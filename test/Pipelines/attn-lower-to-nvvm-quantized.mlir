// RUN: attn-opt %s --attn-lower-to-nvvm -split-input-file -verify-diagnostics
// convert-attn-to-gpu alone refuses them too (it is also run on its own).
// RUN: attn-opt %s --convert-attn-to-gpu -split-input-file -verify-diagnostics

// The GPU projection kernels decode GPTQ and float8 weights; GGUF ones get
// a clear diagnostic at the op taking one, before any kernel is built.
func.func @linear_gguf(%x: tensor<?x256xf32>, %b: tensor<64x144xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x144xi8>) -> !attn.quantized_weight<64x256, #attn.gguf<q4_k>>
  // expected-error @+1 {{quantised weights (#attn.gguf<q4_k>) are not supported on cuda yet}}
  %y = attn.linear %x, %w : tensor<?x256xf32>, !attn.quantized_weight<64x256, #attn.gguf<q4_k>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// The GPTQ GEMV steps 32 deep through K, one group scale per step.
func.func @gptq_group_16(%x: tensor<?x256xbf16>, %qw: tensor<32x64xi32>, %s: tensor<16x64xf16>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<32x64xi32>, tensor<16x64xf16>) -> !attn.quantized_weight<64x256, #attn.gptq<group_size = 16>>
  // expected-error @+1 {{'attn.linear' op needs quantised weights with N a multiple of 8 and K of 32 (GPTQ: group size too) or of 16 (float8) on the GPU; got N = 64, K = 256}}
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !attn.quantized_weight<64x256, #attn.gptq<group_size = 16>> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

func.func @float8_n60(%x: tensor<?x256xbf16>, %w8: tensor<60x256xf8E4M3FN>, %s: tensor<60xf32>) -> tensor<?x60xbf16> {
  %w = attn.quantized_weight(%w8, %s) : (tensor<60x256xf8E4M3FN>, tensor<60xf32>)
      -> !attn.quantized_weight<60x256, #attn.float8<weight_scale = row, input_scale = dynamic>>
  // expected-error @+1 {{got N = 60, K = 256}}
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !attn.quantized_weight<60x256, #attn.float8<weight_scale = row, input_scale = dynamic>> -> tensor<?x60xbf16>
  return %y : tensor<?x60xbf16>
}
