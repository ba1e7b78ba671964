// RUN: attn-opt %s --attn-insert-abi-checks | FileCheck %s

// Each tensor argument with a static size becomes dynamic in every dim and is
// cast back for the body after a check of its static sizes (one assert per
// argument); fully dynamic tensors, scalars and private functions stay.
// CHECK-LABEL: func.func @store(
// CHECK-SAME: %[[L:[a-z0-9_]+]]: index, %[[K:[a-z0-9_]+]]: tensor<?x?x?xf32>, %[[B:[a-z0-9_]+]]: tensor<?x?x?x?x?x?xf32>,
// CHECK-SAME: %[[OFF:[a-z0-9_]+]]: tensor<?xi32>, %{{[a-z0-9_]+}}: tensor<?xi32>, %{{[a-z0-9_]+}}: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32>
// CHECK-NEXT: %[[KC:.*]] = tensor.cast %[[K]] : tensor<?x?x?xf32> to tensor<?x2x64xf32>
// CHECK-NEXT: %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT: %[[K1:.*]] = tensor.dim %[[K]], %[[C1]]
// CHECK-NEXT: %[[C2:.*]] = arith.constant 2 : index
// CHECK-NEXT: %[[K1OK:.*]] = arith.cmpi eq, %[[K1]], %[[C2]] : index
// CHECK: %[[K2:.*]] = tensor.dim %[[K]], %{{.*}}
// CHECK-NEXT: %[[C64:.*]] = arith.constant 64 : index
// CHECK-NEXT: %[[K2OK:.*]] = arith.cmpi eq, %[[K2]], %[[C64]] : index
// CHECK-NEXT: %[[KOK:.*]] = arith.andi %[[K1OK]], %[[K2OK]] : i1
// CHECK-NEXT: cf.assert %[[KOK]], "attn: a tensor argument's size differs from the function's type" {attn.status = 8 : i32}
// CHECK-NEXT: %[[BC:.*]] = tensor.cast %[[B]] : tensor<?x?x?x?x?x?xf32> to tensor<?x2x3x16x2x64xf32>
// CHECK-COUNT-5: tensor.dim %[[B]]
// CHECK: cf.assert {{.*}} {attn.status = 8 : i32}
// CHECK-NOT: cf.assert
// CHECK: attn.kv_cache_store %[[KC]], %[[KC]] into %[[BC]] layer(%[[L]] : index) positions(%[[OFF]],
// CHECK-LABEL: func.func private @helper(
// CHECK-SAME: tensor<?x2x64xf32>
// CHECK-NOT: cf.assert
func.func @store(%l: index, %k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                 %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %b = attn.kv_cache_store %k, %k into %blocks layer(%l : index) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}
func.func private @helper(%k: tensor<?x2x64xf32>) -> tensor<?x2x64xf32> {
  return %k : tensor<?x2x64xf32>
}
