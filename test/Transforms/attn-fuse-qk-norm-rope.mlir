// RUN: attn-opt %s --attn-fuse-rope-store --attn-fuse-qk-norm-rope -split-input-file | FileCheck %s

// Qwen3's order: norm, rope, store. Both norms fold into the fused op.
// CHECK-LABEL: func @fuse
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<?x4x64xf32>, %[[K:[^:]*]]: tensor<?x2x64xf32>, %[[V:[^:]*]]: tensor<?x2x64xf32>, %[[B:[^:]*]]: tensor<?x2x1x16x2x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>, %[[LUT:[^:]*]]: tensor<?x?xi32>, %[[F:[^:]*]]: tensor<128x64xf32>, %[[GQ:[^:]*]]: tensor<64xf32>, %[[GK:[^:]*]]: tensor<64xf32>)
// CHECK-NOT: attn.rms_norm
// CHECK: attn.rope_store %[[Q]], %[[K]], %[[V]] into %[[B]] layer 0 freqs(%[[F]]) positions(%[[OFF]], %[[LEN]]) pages(%[[LUT]]) qk_norm(%[[GQ]], %[[GK]]) eps 1.000000e-05 :
// CHECK-NOT: attn.rms_norm
func.func @fuse(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>,
                %gq: tensor<64xf32>, %gk: tensor<64xf32>) -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qn = attn.rms_norm %q, %gq eps 1.0e-05 : tensor<?x4x64xf32>, tensor<64xf32>
  %kn = attn.rms_norm %k, %gk eps 1.0e-05 : tensor<?x2x64xf32>, tensor<64xf32>
  %qr = attn.rope %qn, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %kn, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// The normalised k is also returned: the norms stay, the rope/store fusion
// still happens.
// CHECK-LABEL: func @norm_other_user
// CHECK: attn.rms_norm
// CHECK: attn.rms_norm
// CHECK: attn.rope_store
// CHECK-NOT: qk_norm
func.func @norm_other_user(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                           %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>,
                           %gq: tensor<64xf32>, %gk: tensor<64xf32>) -> (tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qn = attn.rms_norm %q, %gq eps 1.0e-05 : tensor<?x4x64xf32>, tensor<64xf32>
  %kn = attn.rms_norm %k, %gk eps 1.0e-05 : tensor<?x2x64xf32>, tensor<64xf32>
  %qr = attn.rope %qn, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %kn, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %kn, %nb : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// Different eps for q and k: one eps per op, so the norms stay.
// CHECK-LABEL: func @different_eps
// CHECK: attn.rms_norm
// CHECK: attn.rms_norm
// CHECK: attn.rope_store
// CHECK-NOT: qk_norm
func.func @different_eps(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                         %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>,
                         %gq: tensor<64xf32>, %gk: tensor<64xf32>) -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qn = attn.rms_norm %q, %gq eps 1.0e-05 : tensor<?x4x64xf32>, tensor<64xf32>
  %kn = attn.rms_norm %k, %gk eps 1.0e-06 : tensor<?x2x64xf32>, tensor<64xf32>
  %qr = attn.rope %qn, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %kn, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// Only q is normalised: the op has one eps and both gammas or none.
// CHECK-LABEL: func @only_q_norm
// CHECK: attn.rms_norm
// CHECK: attn.rope_store
// CHECK-NOT: qk_norm
func.func @only_q_norm(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                       %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>,
                       %gq: tensor<64xf32>) -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qn = attn.rms_norm %q, %gq eps 1.0e-05 : tensor<?x4x64xf32>, tensor<64xf32>
  %qr = attn.rope %qn, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}
