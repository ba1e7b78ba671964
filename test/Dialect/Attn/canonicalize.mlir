// RUN: attn-opt %s -canonicalize -split-input-file | FileCheck %s

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// parts(make(...)) forwards the tensors.
// CHECK-LABEL: func @forward_parts
// CHECK-SAME: (%[[B:.*]]: tensor<?x2x2x16x2x64xf32>, %[[L:.*]]: tensor<?xi32>, %[[T:.*]]: tensor<?x?xi32>)
// CHECK-NOT: attn.paged_cache
// CHECK: return %[[B]], %[[L]], %[[T]]
func.func @forward_parts(%b: tensor<?x2x2x16x2x64xf32>, %l: tensor<?xi32>, %t: tensor<?x?xi32>)
    -> (tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>) {
  %c = attn.paged_cache.make %b, %l, %t : tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32> -> !cache
  %b2, %l2, %t2 = attn.paged_cache.parts %c : !cache
  return %b2, %l2, %t2 : tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// Static tensors are cast to the dynamic part types.
// CHECK-LABEL: func @forward_static_parts
// CHECK-SAME: (%[[B:.*]]: tensor<4x2x2x16x2x64xf32>, %[[L:.*]]: tensor<3xi32>, %[[T:.*]]: tensor<3x2xi32>)
// CHECK-DAG: %[[BC:.*]] = tensor.cast %[[B]] : tensor<4x2x2x16x2x64xf32> to tensor<?x2x2x16x2x64xf32>
// CHECK-DAG: %[[LC:.*]] = tensor.cast %[[L]] : tensor<3xi32> to tensor<?xi32>
// CHECK-DAG: %[[TC:.*]] = tensor.cast %[[T]] : tensor<3x2xi32> to tensor<?x?xi32>
// CHECK: return %[[BC]], %[[LC]], %[[TC]]
func.func @forward_static_parts(%b: tensor<4x2x2x16x2x64xf32>, %l: tensor<3xi32>, %t: tensor<3x2xi32>)
    -> (tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>) {
  %c = attn.paged_cache.make %b, %l, %t : tensor<4x2x2x16x2x64xf32>, tensor<3xi32>, tensor<3x2xi32> -> !cache
  %b2, %l2, %t2 = attn.paged_cache.parts %c : !cache
  return %b2, %l2, %t2 : tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// A cache that comes from outside stays opaque.
// CHECK-LABEL: func @keep_parts_of_argument
// CHECK: attn.paged_cache.parts
func.func @keep_parts_of_argument(%c: !cache) -> tensor<?xi32> {
  %b, %l, %t = attn.paged_cache.parts %c : !cache
  return %l : tensor<?xi32>
}

// -----

// theta = 10000, D = 4: inv_freq = [1, 0.01]; row p = [cos p, sin p, cos 0.01p, sin 0.01p].
// CHECK-LABEL: func @fold_plain_table
// CHECK: arith.constant dense<{{\[}}[1.000000e+00, 0.000000e+00, 1.000000e+00, 0.000000e+00], [0.540302277, 0.841470957, 0.999949991, 0.00999983306], [-0.416146845, 0.909297406, 9.998000e-01, 0.0199986659]]> : tensor<3x4xf32>
// CHECK-NOT: attn.rope_freqs
func.func @fold_plain_table() -> tensor<3x4xf32> {
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// YaRN multiplies cos and sin by 0.1 ln(4) + 1 = 1.13862944.
// CHECK-LABEL: func @fold_yarn_magnitude
// CHECK: arith.constant dense<{{\[}}[1.13862944, 0.000000e+00, 1.13862944, 0.000000e+00]]> : tensor<1x4xf32>
func.func @fold_yarn_magnitude() -> tensor<1x4xf32> {
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.yarn_scaling<factor = 4.0, original_max_position = 2048>> -> tensor<1x4xf32>
  return %0 : tensor<1x4xf32>
}

// -----

// LongRoPE: positions 0, 1 < original (2) use short factors [1, 1]; position 2
// uses long factors [2, 4] (angles 1.0 and 0.005); magnitude sqrt(1 + ln 4 / ln 2) = sqrt 3.
// Values match python/attn/reference.py rope_table rounded to f32.
// CHECK-LABEL: func @fold_longrope
// CHECK: arith.constant dense<{{\[}}[1.73205078, 0.000000e+00, 1.73205078, 0.000000e+00], [0.935831069, 1.45747054, 1.73196423, 0.0173202194], [0.935831069, 1.45747054, 1.7320292, 0.00866021774]]> : tensor<3x4xf32>
func.func @fold_longrope() -> tensor<3x4xf32> {
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<short_factor = [1.0, 1.0], long_factor = [2.0, 4.0], original_max_position = 2, max_position = 8>> -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// Tables above 65536 elements are left for the lowering to compute.
// CHECK-LABEL: func @keep_large_table
// CHECK: attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<1024x128xf32>
func.func @keep_large_table() -> tensor<1024x128xf32> {
  %0 = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<1024x128xf32>
  return %0 : tensor<1024x128xf32>
}

// -----

// A constant layer operand becomes the static layer; one outside the cache
// stays an operand (the run-time check reports it).
// CHECK-LABEL: func @fold_constant_layer
// CHECK-DAG: %[[BIG:.*]] = arith.constant 2 : i32
// CHECK-DAG: %[[NEG:.*]] = arith.constant -1 : index
// CHECK: attn.kv_cache_store %{{.*}}, %{{.*}} into %{{.*}} layer 1 positions
// CHECK: attn.paged_flash_attention %{{.*}}, %{{.*}} layer 0 positions
// CHECK: attn.kv_cache_store %{{.*}}, %{{.*}} into %{{.*}} layer(%[[BIG]] : i32) positions
// CHECK: attn.paged_flash_attention %{{.*}}, %{{.*}} layer(%[[NEG]] : index) positions
func.func @fold_constant_layer(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %b: tensor<?x2x2x16x2x64xf32>,
                               %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>)
    -> (tensor<?x4x64xf32>, tensor<?x4x64xf32>) {
  %one = arith.constant 1 : i32
  %zero = arith.constant 0 : index
  %two = arith.constant 2 : i32
  %neg = arith.constant -1 : index
  %b1 = attn.kv_cache_store %k, %k into %b layer(%one : i32) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  %o1 = attn.paged_flash_attention %q, %b1 layer(%zero : index) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  %b2 = attn.kv_cache_store %k, %k into %b1 layer(%two : i32) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  %o2 = attn.paged_flash_attention %q, %b2 layer(%neg : index) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o1, %o2 : tensor<?x4x64xf32>, tensor<?x4x64xf32>
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// CHECK-LABEL: func @fold_composite_layer
// CHECK: attn.attention_with_rope
// CHECK-NOT: layer(
// CHECK-SAME: layer_idx = 1 : i64
func.func @fold_composite_layer(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %w: tensor<512x256xf32>, %wo: tensor<256x256xf32>)
    -> tensor<?x256xf32> {
  %l = arith.constant 1 : index
  %o, %c2 = attn.attention_with_rope %x, %off, %c layer(%l) qkv(%w) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, index, tensor<512x256xf32>, tensor<256x256xf32>) -> (tensor<?x256xf32>, !cache)
  return %o : tensor<?x256xf32>
}
