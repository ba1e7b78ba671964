// Projections with many rows use the packed outer-product GEMM, few rows the
// dot-product kernel; the choice is made at run time on the row count.
// RUN: attn-opt %s --convert-attn-to-linalg="packed-min-rows=16" -split-input-file -mlir-print-local-scope | FileCheck %s

// CHECK-LABEL: func.func @linear
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xf32>, %[[W:[^:]*]]: tensor<32x64xf32>)
// CHECK: %[[T:[a-z0-9_#]+]] = tensor.dim %[[X]], %c0
// CHECK: %[[MANY:[a-z0-9_#]+]] = arith.cmpi sge, %[[T]], %c16{{[_0-9]*}} : index
// CHECK: %[[ACC:[a-z0-9_#]+]] = scf.if %[[MANY]] -> (tensor<?x32xf32>) {
// The chunk of w is packed once per parallel chunk: 8-wide rows of w read,
// stacked and transposed into [K, chunk].
// CHECK: scf.forall (%[[CHUNK:[a-z0-9_#]+]]) in (1) shared_outs(%{{.*}}) -> (tensor<?x32xf32>)
// CHECK: vector.transfer_read %[[W]][%{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<32x64xf32>, vector<8xf32>
// CHECK: vector.insert %{{.*}}, %{{.*}} [7] : vector<8xf32> into vector<8x8xf32>
// CHECK: vector.transpose %{{.*}}, [1, 0] : vector<8x8xf32> to vector<8x8xf32>
// Then per row block, accumulators loaded from the output tile, one element
// of x broadcast against a packed row of w, stored back.
// CHECK: scf.for %[[R0:[a-z0-9_#]+]] =
// CHECK: %[[ACC0:[a-z0-9_#]+]] = vector.transfer_read %{{.*}}[%{{.*}}, %[[C0:[a-z0-9_#]+]]], %{{.*}} {in_bounds = [true]} : tensor<?x32xf32>, vector<16xf32>
// CHECK: scf.for %[[K:[a-z0-9_#]+]] =
// CHECK: %[[WROW:[a-z0-9_#]+]] = vector.transfer_read %{{.*}}[%[[K]], %[[C0]]], %{{.*}} {in_bounds = [true]} : tensor<64x32xf32>, vector<16xf32>
// CHECK: %[[XS:[a-z0-9_#]+]] = tensor.extract %[[X]][%{{.*}}, %[[K]]] : tensor<?x64xf32>
// CHECK-NEXT: %[[XB:[a-z0-9_#]+]] = vector.broadcast %[[XS]] : f32 to vector<16xf32>
// CHECK-NEXT: vector.fma %[[XB]], %[[WROW]], %{{.*}} : vector<16xf32>
// CHECK: vector.transfer_write %{{.*}}, %{{.*}}[%{{.*}}, %[[C0]]] {in_bounds = [true]} : vector<16xf32>, tensor<?x32xf32>
// CHECK: } else {
// CHECK: scf.forall
// CHECK: vector.reduction <add>, %{{.*}} : vector<8xf32> into f32
// CHECK: return
func.func @linear(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  %0 = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

// bf16 rows are widened to f32 once, in the packed branch only; clipping
// applies to the weight rows as they are packed.
// CHECK-LABEL: func.func @qkv_bf16_clip
// CHECK: scf.if %{{.*}} -> (tensor<?x128xf32>) {
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<?x64xbf16>) outs(%{{.*}} : tensor<?x64xf32>)
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: vector.transfer_read %{{.*}} : tensor<128x64xbf16>, vector<8xbf16>
// CHECK-NEXT: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK-NEXT: arith.maximumf
// CHECK-NEXT: arith.minimumf
// CHECK: vector.transpose
// CHECK: } else {
func.func @qkv_bf16_clip(%x: tensor<?x64xbf16>, %w: tensor<128x64xbf16>)
    -> (tensor<?x2x32xbf16>, tensor<?x1x32xbf16>, tensor<?x1x32xbf16>) {
  %q, %k, %v = attn.qkv_projection %x weights(%w) clip 2.0
      : tensor<?x64xbf16>, (tensor<128x64xbf16>) -> tensor<?x2x32xbf16>, tensor<?x1x32xbf16>, tensor<?x1x32xbf16>
  return %q, %k, %v : tensor<?x2x32xbf16>, tensor<?x1x32xbf16>, tensor<?x1x32xbf16>
}
