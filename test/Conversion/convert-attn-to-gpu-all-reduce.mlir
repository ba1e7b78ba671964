// RUN: attn-opt %s --convert-attn-to-gpu -split-input-file -verify-diagnostics | FileCheck %s

// A partial o_proj output of a tensor-parallel layer: the linear writes a
// device temporary, the runtime's NCCL all-reduce sums it into the output
// parameter (bf16: ncclBfloat16 = 9; count = rows * 64), and the grid is gone.
// CHECK-NOT: shard.
// CHECK-LABEL: func.func @partial_o_proj(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x128xbf16>, %[[W:[^:]*]]: memref<64x128xbf16>, %[[OUT:[^:]*]]: memref<?x64xbf16>)
// CHECK: %[[PARTIAL:.*]] = gpu.alloc (%{{.*}}) : memref<?x64xbf16>
// CHECK: gpu.launch_func {{.*}} args(%[[X]] : memref<?x128xbf16>, %[[W]] : memref<64x128xbf16>, %[[PARTIAL]] : memref<?x64xbf16>
// CHECK: %[[ROWS:.*]] = memref.dim %[[PARTIAL]], %c0
// CHECK: %[[COUNT:.*]] = arith.muli %{{.*}}, %c64
// CHECK: %{{.*}}, %[[OFFSET:.*]], %{{.*}}:2, %{{.*}}:2 = memref.extract_strided_metadata %[[PARTIAL]]
// CHECK: %[[BASE:.*]] = memref.extract_aligned_pointer_as_index %[[PARTIAL]]
// CHECK: %[[BYTES:.*]] = arith.muli %[[OFFSET]], %c2
// CHECK: %[[SEND:.*]] = arith.addi %[[BASE]], %[[BYTES]]
// CHECK: %[[SEND64:.*]] = arith.index_cast %[[SEND]] : index to i64
// CHECK: memref.extract_aligned_pointer_as_index %[[OUT]]
// CHECK: %[[RECV64:.*]] = arith.index_cast %{{.*}} : index to i64
// CHECK: %[[COUNT64:.*]] = arith.index_cast %[[COUNT]] : index to i64
// CHECK: call @attnNcclAllReduceSum(%[[SEND64]], %[[RECV64]], %[[COUNT64]], %c9_i32) : (i64, i64, i64, i32) -> ()
// CHECK: gpu.dealloc %[[PARTIAL]]
// CHECK: func.func private @attnNcclAllReduceSum(i64, i64, i64, i32)
shard.grid @attn_devices(shape = 2)
func.func @partial_o_proj(%x: tensor<?x128xbf16>, %w: tensor<64x128xbf16>) -> tensor<?x64xbf16> {
  %partial = attn.linear %x, %w : tensor<?x128xbf16>, tensor<64x128xbf16> -> tensor<?x64xbf16>
  %sum = shard.all_reduce %partial on @attn_devices grid_axes = [0] : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %sum : tensor<?x64xbf16>
}

// -----

shard.grid @attn_devices(shape = 2)
func.func @max(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{expects a sum on the GPU}}
  %sum = shard.all_reduce %x on @attn_devices grid_axes = [0] reduction = max : tensor<?x64xbf16> -> tensor<?x64xbf16>
  return %sum : tensor<?x64xbf16>
}

// -----

shard.grid @attn_devices(shape = 2)
func.func @f64(%x: tensor<?x64xf64>) -> tensor<?x64xf64> {
  // expected-error @+1 {{expects an f32, f16 or bf16 tensor reduced to its own type on the GPU}}
  %sum = shard.all_reduce %x on @attn_devices grid_axes = [0] : tensor<?x64xf64> -> tensor<?x64xf64>
  return %sum : tensor<?x64xf64>
}
