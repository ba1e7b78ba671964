// RUN: attn-opt %s --attn-fuse-projection-epilogues -split-input-file | FileCheck %s

// linear + broadcast bias add -> linear with bias (either operand order).
// CHECK-LABEL: func @bias
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xf32>, %[[W:[^:]*]]: tensor<32x64xf32>, %[[B:[^:]*]]: tensor<32xf32>)
// CHECK: %[[Y:.*]] = attn.linear %[[X]], %[[W]] bias %[[B]] : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
// CHECK-NOT: linalg.add
// CHECK: %[[Z:.*]] = attn.linear %[[X]], %[[W]] bias %[[B]] :
// CHECK-NOT: linalg.add
// CHECK: return %[[Y]], %[[Z]]
func.func @bias(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%t) : tensor<?x32xf32>
  %y = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %bb = linalg.broadcast ins(%b : tensor<32xf32>) outs(%e : tensor<?x32xf32>) dimensions = [0]
  %z = linalg.add ins(%y, %bb : tensor<?x32xf32>, tensor<?x32xf32>) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
  %y2 = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %z2 = linalg.add ins(%bb, %y2 : tensor<?x32xf32>, tensor<?x32xf32>) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
  return %z, %z2 : tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// Not folded: the projection result has another user; the linear already
// has a bias; the bias operand is not a linalg.broadcast along dimension 0
// (a cast of a broadcast along dimension 1).
// CHECK-LABEL: func @bias_negative
// CHECK-COUNT-3: linalg.add
func.func @bias_negative(%x: tensor<?x32xf32>, %w: tensor<32x32xf32>, %b: tensor<32xf32>, %b2: tensor<?xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x32xf32>
  %e = tensor.empty(%t) : tensor<?x32xf32>
  %bb = linalg.broadcast ins(%b : tensor<32xf32>) outs(%e : tensor<?x32xf32>) dimensions = [0]
  %y = attn.linear %x, %w : tensor<?x32xf32>, tensor<32x32xf32> -> tensor<?x32xf32>
  %z = linalg.add ins(%y, %bb : tensor<?x32xf32>, tensor<?x32xf32>) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
  %y2 = attn.linear %x, %w bias %b : tensor<?x32xf32>, tensor<32x32xf32>, tensor<32xf32> -> tensor<?x32xf32>
  %z2 = linalg.add ins(%y2, %bb : tensor<?x32xf32>, tensor<?x32xf32>) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
  %y3 = attn.linear %x, %w : tensor<?x32xf32>, tensor<32x32xf32> -> tensor<?x32xf32>
  %e3 = tensor.empty() : tensor<32x32xf32>
  %bc = linalg.broadcast ins(%b : tensor<32xf32>) outs(%e3 : tensor<32x32xf32>) dimensions = [1]
  %bcd = tensor.cast %bc : tensor<32x32xf32> to tensor<?x32xf32>
  %z3 = linalg.add ins(%y3, %bcd : tensor<?x32xf32>, tensor<?x32xf32>) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
  return %z, %y, %z2, %z3 : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// Weight clamp -> clip, on attn.linear (either nesting) and on all three
// weights of attn.qkv_projection; the clamp stays for its other users.
// CHECK-LABEL: func @clip
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xbf16>, %[[W:[^:]*]]: tensor<32x64xbf16>, %[[WQ:[^:]*]]: tensor<128x64xbf16>, %[[WK:[^:]*]]: tensor<64x64xbf16>, %[[WV:[^:]*]]: tensor<64x64xbf16>)
// CHECK: %[[MIN:.*]] = arith.minimumf
// CHECK: attn.linear %[[X]], %[[W]] clip 8.000000e+00 :
// CHECK: attn.linear %[[X]], %[[W]] clip 8.000000e+00 :
// CHECK: attn.qkv_projection %[[X]] weights(%[[WQ]], %[[WK]], %[[WV]]) clip 8.000000e+00 :
// CHECK: return {{.*}}, %[[MIN]]
func.func @clip(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>, %wq: tensor<128x64xbf16>, %wk: tensor<64x64xbf16>, %wv: tensor<64x64xbf16>)
    -> (tensor<?x32xbf16>, tensor<?x32xbf16>, tensor<?x2x64xbf16>, tensor<32x64xbf16>) {
  %hi = arith.constant dense<8.0> : tensor<32x64xbf16>
  %lo = arith.constant dense<-8.0> : tensor<32x64xbf16>
  %a = arith.maximumf %w, %lo : tensor<32x64xbf16>
  %wc = arith.minimumf %a, %hi : tensor<32x64xbf16>
  %y = attn.linear %x, %wc : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  %m = arith.minimumf %hi, %w : tensor<32x64xbf16>
  %wc2 = arith.maximumf %lo, %m : tensor<32x64xbf16>
  %y2 = attn.linear %x, %wc2 : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  %hq = arith.constant dense<8.0> : tensor<128x64xbf16>
  %lq = arith.constant dense<-8.0> : tensor<128x64xbf16>
  %hk = arith.constant dense<8.0> : tensor<64x64xbf16>
  %lk = arith.constant dense<-8.0> : tensor<64x64xbf16>
  %q1 = arith.maximumf %wq, %lq : tensor<128x64xbf16>
  %wqc = arith.minimumf %q1, %hq : tensor<128x64xbf16>
  %k1 = arith.maximumf %wk, %lk : tensor<64x64xbf16>
  %wkc = arith.minimumf %k1, %hk : tensor<64x64xbf16>
  %v1 = arith.maximumf %wv, %lk : tensor<64x64xbf16>
  %wvc = arith.minimumf %v1, %hk : tensor<64x64xbf16>
  %q, %k, %v = attn.qkv_projection %x weights(%wqc, %wkc, %wvc)
      : tensor<?x64xbf16>, (tensor<128x64xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>)
      -> tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>
  return %y, %y2, %q, %wc : tensor<?x32xbf16>, tensor<?x32xbf16>, tensor<?x2x64xbf16>, tensor<32x64xbf16>
}

// -----

// Not folded: asymmetric bounds; a non-constant bound; only two of three
// qkv weights clamped; an op that already clips.
// CHECK-LABEL: func @clip_negative
// CHECK-NOT: clip
func.func @clip_negative(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %c: tensor<32x64xf32>,
                         %wq: tensor<128x64xf32>, %wk: tensor<64x64xf32>, %wv: tensor<64x64xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x2x64xf32>) {
  %hi = arith.constant dense<8.0> : tensor<32x64xf32>
  %lo = arith.constant dense<-4.0> : tensor<32x64xf32>
  %a = arith.maximumf %w, %lo : tensor<32x64xf32>
  %wc = arith.minimumf %a, %hi : tensor<32x64xf32>
  %y = attn.linear %x, %wc : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %a2 = arith.maximumf %w, %c : tensor<32x64xf32>
  %wc2 = arith.minimumf %a2, %hi : tensor<32x64xf32>
  %y2 = attn.linear %x, %wc2 : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %hq = arith.constant dense<8.0> : tensor<128x64xf32>
  %lq = arith.constant dense<-8.0> : tensor<128x64xf32>
  %hk = arith.constant dense<8.0> : tensor<64x64xf32>
  %lk = arith.constant dense<-8.0> : tensor<64x64xf32>
  %q1 = arith.maximumf %wq, %lq : tensor<128x64xf32>
  %wqc = arith.minimumf %q1, %hq : tensor<128x64xf32>
  %k1 = arith.maximumf %wk, %lk : tensor<64x64xf32>
  %wkc = arith.minimumf %k1, %hk : tensor<64x64xf32>
  %q, %k, %v = attn.qkv_projection %x weights(%wqc, %wkc, %wv)
      : tensor<?x64xf32>, (tensor<128x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>)
      -> tensor<?x2x64xf32>, tensor<?x1x64xf32>, tensor<?x1x64xf32>
  return %y, %y2, %q : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x2x64xf32>
}

// -----

// A clamp under an op that already clips is left alone.
// CHECK-LABEL: func @already_clipped
// CHECK: arith.minimumf
// CHECK: attn.linear %{{.*}}, %{{.*}} clip 2.000000e+00 :
func.func @already_clipped(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  %hi = arith.constant dense<8.0> : tensor<32x64xf32>
  %lo = arith.constant dense<-8.0> : tensor<32x64xf32>
  %a = arith.maximumf %w, %lo : tensor<32x64xf32>
  %wc = arith.minimumf %a, %hi : tensor<32x64xf32>
  %y = attn.linear %x, %wc clip 2.0 : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// The clamp as a linalg.generic over the weight (the form frontends emit and
// the CPU pipeline also runs unfused): folded; asymmetric bounds or an init
// that is not tensor.empty are not.
// CHECK-LABEL: func @generic_clip
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xbf16>, %[[W:[^:]*]]: tensor<32x64xbf16>
// CHECK: attn.linear %[[X]], %[[W]] clip 2.500000e-01 :
// CHECK: attn.linear %[[X]], %{{.*}} :
// CHECK: attn.linear %[[X]], %{{.*}} :
func.func @generic_clip(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>, %init: tensor<32x64xbf16>)
    -> (tensor<?x32xbf16>, tensor<?x32xbf16>, tensor<?x32xbf16>) {
  %e = tensor.empty() : tensor<32x64xbf16>
  %wc = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}
      ins(%w : tensor<32x64xbf16>) outs(%e : tensor<32x64xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    %hi = arith.constant 0.25 : bf16
    %lo = arith.constant -0.25 : bf16
    %m = arith.maximumf %a, %lo : bf16
    %r = arith.minimumf %m, %hi : bf16
    linalg.yield %r : bf16
  } -> tensor<32x64xbf16>
  %y = attn.linear %x, %wc : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  %wa = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}
      ins(%w : tensor<32x64xbf16>) outs(%e : tensor<32x64xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    %hi = arith.constant 0.25 : bf16
    %lo = arith.constant -0.5 : bf16
    %m = arith.maximumf %a, %lo : bf16
    %r = arith.minimumf %m, %hi : bf16
    linalg.yield %r : bf16
  } -> tensor<32x64xbf16>
  %y2 = attn.linear %x, %wa : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  %wi = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}
      ins(%w : tensor<32x64xbf16>) outs(%init : tensor<32x64xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    %hi = arith.constant 0.25 : bf16
    %lo = arith.constant -0.25 : bf16
    %m = arith.maximumf %lo, %a : bf16
    %r = arith.minimumf %hi, %m : bf16
    linalg.yield %r : bf16
  } -> tensor<32x64xbf16>
  %y3 = attn.linear %x, %wi : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  return %y, %y2, %y3 : tensor<?x32xbf16>, tensor<?x32xbf16>, tensor<?x32xbf16>
}

// -----

// linalg.matmul projections (x @ W^T, zero-filled init): with a bias add ->
// attn.linear with bias (and the clamp of its weight as clip); with a clamped
// weight alone -> attn.linear with clip; a matmul whose weight is not clamped
// and that has no bias add is left for attn-fuse-qkv.
// CHECK-LABEL: func @matmul_epilogues
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xf32>, %[[W:[^:]*]]: tensor<32x64xf32>, %[[B:[^:]*]]: tensor<32xf32>
// CHECK: %[[Y:.*]] = attn.linear %[[X]], %[[W]] bias %[[B]] clip 3.000000e+00 : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
// CHECK: %[[Y2:.*]] = attn.linear %[[X]], %[[W]] clip 3.000000e+00 : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
// CHECK: %[[Y3:.*]] = linalg.matmul
// CHECK-NOT: linalg.add
// CHECK: return %[[Y]], %[[Y2]], %[[Y3]]
func.func @matmul_epilogues(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%t) : tensor<?x32xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
  %we = tensor.empty() : tensor<32x64xf32>
  %wc = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}
      ins(%w : tensor<32x64xf32>) outs(%we : tensor<32x64xf32>) {
  ^bb0(%a: f32, %o: f32):
    %hi = arith.constant 3.0 : f32
    %lo = arith.constant -3.0 : f32
    %m = arith.maximumf %a, %lo : f32
    %r = arith.minimumf %m, %hi : f32
    linalg.yield %r : f32
  } -> tensor<32x64xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wc : tensor<?x64xf32>, tensor<32x64xf32>) outs(%f : tensor<?x32xf32>) -> tensor<?x32xf32>
  %bb = linalg.broadcast ins(%b : tensor<32xf32>) outs(%e : tensor<?x32xf32>) dimensions = [0]
  %z = linalg.add ins(%y, %bb : tensor<?x32xf32>, tensor<?x32xf32>) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
  %y2 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %wc : tensor<?x64xf32>, tensor<32x64xf32>) outs(%f : tensor<?x32xf32>) -> tensor<?x32xf32>
  %y3 = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
      ins(%x, %w : tensor<?x64xf32>, tensor<32x64xf32>) outs(%f : tensor<?x32xf32>) -> tensor<?x32xf32>
  return %z, %y2, %y3 : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// Dynamic output width and bias length: not folded (the fold needs a static
// [N] to match the weight rows against).
// CHECK-LABEL: func @dynamic_bias
// CHECK: attn.linear %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x?xf32>
// CHECK: linalg.add
func.func @dynamic_bias(%x: tensor<?x64xf32>, %w: tensor<?x64xf32>, %b: tensor<?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %n = tensor.dim %w, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%t, %n) : tensor<?x?xf32>
  %y = attn.linear %x, %w : tensor<?x64xf32>, tensor<?x64xf32> -> tensor<?x?xf32>
  %bb = linalg.broadcast ins(%b : tensor<?xf32>) outs(%e : tensor<?x?xf32>) dimensions = [0]
  %z = linalg.add ins(%y, %bb : tensor<?x?xf32>, tensor<?x?xf32>) outs(%e : tensor<?x?xf32>) -> tensor<?x?xf32>
  return %z : tensor<?x?xf32>
}
