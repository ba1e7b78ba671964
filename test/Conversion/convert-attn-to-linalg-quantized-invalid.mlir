// RUN: attn-opt %s --convert-attn-to-linalg -split-input-file -verify-diagnostics

!w = !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>

func.func @weight_argument(%x: tensor<?x128xbf16>, %w: !w) -> tensor<?x64xbf16> {
  // expected-error @+2 {{quantised weight not made by attn.quantized_weight in this function}}
  // expected-error @+1 {{could not lower this op}}
  %y = attn.linear %x, %w : tensor<?x128xbf16>, !w -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

func.func @odd_rows(%x: tensor<?x128xbf16>, %qw: tensor<16x63xi32>, %s: tensor<1x63xf16>) -> tensor<?x63xbf16> {
  // expected-error @+1 {{could not lower this op}}
  %w = attn.quantized_weight(%qw, %s) : (tensor<16x63xi32>, tensor<1x63xf16>) -> !attn.quantized_weight<63x128, #attn.gptq<group_size = 128>>
  // expected-error @+1 {{quantised weights need the vector kernels: K (128) a multiple of vector-lanes (8) and N (63) even}}
  %y = attn.linear %x, %w : tensor<?x128xbf16>, !attn.quantized_weight<63x128, #attn.gptq<group_size = 128>> -> tensor<?x63xbf16>
  return %y : tensor<?x63xbf16>
}
