// RUN: attn-opt %s --attn-fuse-qkv -split-input-file | FileCheck %s

// Three linears of one input, split into heads: one qkv_projection with the
// separate (argument) weights; nothing is concatenated at run time.
// CHECK-LABEL: func @linears
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xbf16>, %[[WQ:[^:]*]]: tensor<256x256xbf16>, %[[WK:[^:]*]]: tensor<128x256xbf16>, %[[WV:[^:]*]]: tensor<128x256xbf16>)
// CHECK-NOT: attn.linear
// CHECK-NOT: tensor.expand_shape
// CHECK: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection %[[X]] weights(%[[WQ]], %[[WK]], %[[WV]]) : tensor<?x256xbf16>, (tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>) -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
// CHECK-NOT: tensor.concat
// CHECK: return %[[Q]], %[[K]], %[[V]]
func.func @linears(%x: tensor<?x256xbf16>, %wq: tensor<256x256xbf16>, %wk: tensor<128x256xbf16>, %wv: tensor<128x256xbf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x256xbf16>
  %q = attn.linear %x, %wq : tensor<?x256xbf16>, tensor<256x256xbf16> -> tensor<?x256xbf16>
  %k = attn.linear %x, %wk : tensor<?x256xbf16>, tensor<128x256xbf16> -> tensor<?x128xbf16>
  %v = attn.linear %x, %wv : tensor<?x256xbf16>, tensor<128x256xbf16> -> tensor<?x128xbf16>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 4, 64] : tensor<?x256xbf16> into tensor<?x4x64xbf16>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  return %q3, %k3, %v3 : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

// Biases and the clip carry over.
// CHECK-LABEL: func @bias_clip
// CHECK: attn.qkv_projection %{{.*}} weights(%{{.*}}, %{{.*}}, %{{.*}}) bias(%{{.*}}, %{{.*}}, %{{.*}}) clip 2.000000e+00 :
func.func @bias_clip(%x: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>,
                     %bq: tensor<128xf32>, %bk: tensor<64xf32>, %bv: tensor<64xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>) {
  %q = attn.linear %x, %wq bias %bq clip 2.0 : tensor<?x128xf32>, tensor<128x128xf32>, tensor<128xf32> -> tensor<?x128xf32>
  %k = attn.linear %x, %wk bias %bk clip 2.0 : tensor<?x128xf32>, tensor<64x128xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv bias %bv clip 2.0 : tensor<?x128xf32>, tensor<64x128xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3 : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
}

// -----

// Constant separate weights and biases fold into one stacked constant.
// CHECK-LABEL: func @constant_weights
// CHECK-DAG: %[[W:.*]] = arith.constant dense<{{\[}}[1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00], [7.000000e+00, 8.000000e+00]]> : tensor<4x2xf32>
// CHECK-DAG: %[[B:.*]] = arith.constant dense<[1.000000e+00, 1.000000e+00, 5.000000e-01, 2.500000e-01]> : tensor<4xf32>
// CHECK: attn.qkv_projection %{{.*}} weights(%[[W]]) bias(%[[B]]) : tensor<?x2xf32>, (tensor<4x2xf32>), (tensor<4xf32>) -> tensor<?x2x1xf32>, tensor<?x1x1xf32>, tensor<?x1x1xf32>
func.func @constant_weights(%x: tensor<?x2xf32>) -> (tensor<?x2x1xf32>, tensor<?x1x1xf32>, tensor<?x1x1xf32>) {
  %wq = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %wk = arith.constant dense<[[5.0, 6.0]]> : tensor<1x2xf32>
  %wv = arith.constant dense<[[7.0, 8.0]]> : tensor<1x2xf32>
  %bq = arith.constant dense<1.0> : tensor<2xf32>
  %bk = arith.constant dense<0.5> : tensor<1xf32>
  %bv = arith.constant dense<0.25> : tensor<1xf32>
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv) bias(%bq, %bk, %bv)
      : tensor<?x2xf32>, (tensor<2x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>), (tensor<2xf32>, tensor<1xf32>, tensor<1xf32>)
      -> tensor<?x2x1xf32>, tensor<?x1x1xf32>, tensor<?x1x1xf32>
  return %q, %k, %v : tensor<?x2x1xf32>, tensor<?x1x1xf32>, tensor<?x1x1xf32>
}

// -----

// bf16 constants are concatenated as raw data.
// CHECK-LABEL: func @constant_bf16
// CHECK: %[[W:.*]] = arith.constant dense<{{\[}}[1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00], [5.000000e+00, 6.000000e+00]]> : tensor<3x2xbf16>
// CHECK: attn.qkv_projection %{{.*}} weights(%[[W]]) : tensor<?x2xbf16>, (tensor<3x2xbf16>) ->
func.func @constant_bf16(%x: tensor<?x2xbf16>) -> (tensor<?x1x1xbf16>, tensor<?x1x1xbf16>, tensor<?x1x1xbf16>) {
  %wq = arith.constant dense<[[1.0, 2.0]]> : tensor<1x2xbf16>
  %wk = arith.constant dense<[[3.0, 4.0]]> : tensor<1x2xbf16>
  %wv = arith.constant dense<[[5.0, 6.0]]> : tensor<1x2xbf16>
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x2xbf16>, (tensor<1x2xbf16>, tensor<1x2xbf16>, tensor<1x2xbf16>)
      -> tensor<?x1x1xbf16>, tensor<?x1x1xbf16>, tensor<?x1x1xbf16>
  return %q, %k, %v : tensor<?x1x1xbf16>, tensor<?x1x1xbf16>, tensor<?x1x1xbf16>
}

// -----

// Argument weights are not concatenated (no stacked weight appears), and a
// constant weight set with a non-constant bias is left as it is.
// CHECK-LABEL: func @not_constant
// CHECK-NOT: arith.constant dense<{{.*}}> : tensor<4x2xf32>
// CHECK: attn.qkv_projection %{{.*}} weights(%{{.*}}, %{{.*}}, %{{.*}}) bias(%{{.*}}, %{{.*}}, %{{.*}})
// CHECK: attn.qkv_projection %{{.*}} weights(%{{.*}}, %{{.*}}, %{{.*}}) :
func.func @not_constant(%x: tensor<?x2xf32>, %bq: tensor<2xf32>, %wv: tensor<1x2xf32>)
    -> (tensor<?x2x1xf32>, tensor<?x2x1xf32>) {
  %wq = arith.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %wk = arith.constant dense<[[5.0, 6.0]]> : tensor<1x2xf32>
  %wv2 = arith.constant dense<[[7.0, 8.0]]> : tensor<1x2xf32>
  %bk = arith.constant dense<0.5> : tensor<1xf32>
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv2) bias(%bq, %bk, %bk)
      : tensor<?x2xf32>, (tensor<2x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>), (tensor<2xf32>, tensor<1xf32>, tensor<1xf32>)
      -> tensor<?x2x1xf32>, tensor<?x1x1xf32>, tensor<?x1x1xf32>
  %q2, %k2, %v2 = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x2xf32>, (tensor<2x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>)
      -> tensor<?x2x1xf32>, tensor<?x1x1xf32>, tensor<?x1x1xf32>
  return %q, %q2 : tensor<?x2x1xf32>, tensor<?x2x1xf32>
}

// -----

// Different inputs: no fusion.
// CHECK-LABEL: func @different_inputs
// CHECK-COUNT-3: attn.linear
// CHECK-NOT: attn.qkv_projection
func.func @different_inputs(%x: tensor<?x128xf32>, %y: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>) {
  %q = attn.linear %x, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %k = attn.linear %y, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3 : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
}

// -----

// Mismatched shapes: k and v heads differ (no [T, Hkv, D] pair).
// CHECK-LABEL: func @kv_shapes_differ
// CHECK-NOT: attn.qkv_projection
func.func @kv_shapes_differ(%x: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<128x128xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x2x64xf32>) {
  %q = attn.linear %x, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %k = attn.linear %x, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  return %q3, %k3, %v3 : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x2x64xf32>
}

// -----

// Mismatched head dims between q and k.
// CHECK-LABEL: func @head_dims_differ
// CHECK-NOT: attn.qkv_projection
func.func @head_dims_differ(%x: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>, %t: index)
    -> (tensor<?x4x32xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>) {
  %q = attn.linear %x, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %k = attn.linear %x, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 4, 32] : tensor<?x128xf32> into tensor<?x4x32xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3 : tensor<?x4x32xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
}

// -----

// A dynamic weight shape (rows of Wq unknown).
// CHECK-LABEL: func @dynamic_weight
// CHECK-NOT: attn.qkv_projection
func.func @dynamic_weight(%x: tensor<?x128xf32>, %wq: tensor<?x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>) {
  %q = attn.linear %x, %wq : tensor<?x128xf32>, tensor<?x128xf32> -> tensor<?x128xf32>
  %k = attn.linear %x, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3 : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
}

// -----

// A projection output with another user than its reshape: no fusion.
// CHECK-LABEL: func @other_user
// CHECK-NOT: attn.qkv_projection
func.func @other_user(%x: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>, tensor<?x128xf32>) {
  %q = attn.linear %x, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %k = attn.linear %x, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3, %q : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>, tensor<?x128xf32>
}

// -----

// A bias on only one of the three: no fusion.
// CHECK-LABEL: func @mixed_bias
// CHECK-NOT: attn.qkv_projection
func.func @mixed_bias(%x: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>,
                      %bk: tensor<64xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>) {
  %q = attn.linear %x, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %k = attn.linear %x, %wk bias %bk : tensor<?x128xf32>, tensor<64x128xf32>, tensor<64xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3 : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
}

// -----

// Four head projections of one input: which three are q, k, v is ambiguous.
// CHECK-LABEL: func @four_projections
// CHECK-NOT: attn.qkv_projection
func.func @four_projections(%x: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wv: tensor<64x128xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>) {
  %q = attn.linear %x, %wq : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %k = attn.linear %x, %wk : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %v = attn.linear %x, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %u = attn.linear %x, %wv : tensor<?x128xf32>, tensor<64x128xf32> -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %u3 = tensor.expand_shape %u [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3, %u3 : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
}

// -----

// linalg.matmul projections (zero-filled init): x @ W^T by indexing maps, and
// x @ transpose(W); both become weights of the fused op.
// CHECK-LABEL: func @matmuls
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x128xbf16>, %[[WQ:[^:]*]]: tensor<128x128xbf16>, %[[WK:[^:]*]]: tensor<64x128xbf16>, %[[WV:[^:]*]]: tensor<64x128xbf16>
// CHECK: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection %[[X]] weights(%[[WQ]], %[[WK]], %[[WV]]) : tensor<?x128xbf16>, (tensor<128x128xbf16>, tensor<64x128xbf16>, tensor<64x128xbf16>) -> tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>
// CHECK-NOT: linalg.matmul
// CHECK: return %[[Q]], %[[K]], %[[V]]
func.func @matmuls(%x: tensor<?x128xbf16>, %wq: tensor<128x128xbf16>, %wk: tensor<64x128xbf16>, %wv: tensor<64x128xbf16>, %t: index)
    -> (tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>) {
  %zero = arith.constant 0.0 : bf16
  %eq = tensor.empty(%t) : tensor<?x128xbf16>
  %fq = linalg.fill ins(%zero : bf16) outs(%eq : tensor<?x128xbf16>) -> tensor<?x128xbf16>
  %q = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wq : tensor<?x128xbf16>, tensor<128x128xbf16>) outs(%fq : tensor<?x128xbf16>) -> tensor<?x128xbf16>
  %ek = tensor.empty(%t) : tensor<?x64xbf16>
  %fk = linalg.fill ins(%zero : bf16) outs(%ek : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %et = tensor.empty() : tensor<128x64xbf16>
  %wkt = linalg.transpose ins(%wk : tensor<64x128xbf16>) outs(%et : tensor<128x64xbf16>) permutation = [1, 0]
  %k = linalg.matmul ins(%x, %wkt : tensor<?x128xbf16>, tensor<128x64xbf16>) outs(%fk : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %fv = linalg.fill ins(%zero : bf16) outs(%ek : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %v = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wv : tensor<?x128xbf16>, tensor<64x128xbf16>) outs(%fv : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xbf16> into tensor<?x1x64xbf16>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xbf16> into tensor<?x1x64xbf16>
  return %q3, %k3, %v3 : tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>
}

// -----

// Not projections: a matmul accumulating into a non-zero init (x @ W^T + c),
// and a plain x @ W (no transpose, W would be [K, N]).
// CHECK-LABEL: func @matmuls_negative
// CHECK-NOT: attn.qkv_projection
// CHECK-COUNT-3: linalg.matmul
// CHECK-NOT: attn.qkv_projection
func.func @matmuls_negative(%x: tensor<?x128xf32>, %wq: tensor<128x128xf32>, %wk: tensor<64x128xf32>, %wkn: tensor<128x64xf32>,
                            %c: tensor<?x128xf32>, %t: index)
    -> (tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>) {
  %zero = arith.constant 0.0 : f32
  %q = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wq : tensor<?x128xf32>, tensor<128x128xf32>) outs(%c : tensor<?x128xf32>) -> tensor<?x128xf32>
  %ek = tensor.empty(%t) : tensor<?x64xf32>
  %fk = linalg.fill ins(%zero : f32) outs(%ek : tensor<?x64xf32>) -> tensor<?x64xf32>
  %k = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wk : tensor<?x128xf32>, tensor<64x128xf32>) outs(%fk : tensor<?x64xf32>) -> tensor<?x64xf32>
  %v = linalg.matmul ins(%x, %wkn : tensor<?x128xf32>, tensor<128x64xf32>) outs(%fk : tensor<?x64xf32>) -> tensor<?x64xf32>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 1, 64] : tensor<?x64xf32> into tensor<?x1x64xf32>
  return %q3, %k3, %v3 : tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
}
