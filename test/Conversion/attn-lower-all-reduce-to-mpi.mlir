// RUN: attn-opt %s --attn-lower-all-reduce-to-mpi -split-input-file -verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --attn-lower-all-reduce-to-mpi --attn-convert-mpi-to-llvm -split-input-file -verify-diagnostics | FileCheck %s --check-prefix=LLVM

// f32: MPI_Allreduce from the input's buffer into a new one, flattened (the
// MPI lowering counts the first dimension only); the grid is erased and
// OpenMPI is named for the MPI lowering.
// CHECK: module attributes {dlti.map = #dlti.map<"MPI:Implementation" = "OpenMPI">}
// CHECK-NOT: shard.
// CHECK-LABEL: func.func @sum_f32(
// CHECK-SAME: %[[X:.*]]: tensor<?x64xf32>)
// CHECK: %[[SEND:.*]] = bufferization.to_buffer %[[X]] read_only : tensor<?x64xf32> to memref<?x64xf32>
// CHECK: %[[ROWS:.*]] = memref.dim %[[SEND]], %c0
// CHECK: %[[RECV:.*]] = memref.alloc(%[[ROWS]]) : memref<?x64xf32>
// CHECK: %[[SEND1:.*]] = memref.collapse_shape %[[SEND]] {{\[\[}}0, 1]] : memref<?x64xf32> into memref<?xf32>
// CHECK: %[[RECV1:.*]] = memref.collapse_shape %[[RECV]] {{\[\[}}0, 1]] : memref<?x64xf32> into memref<?xf32>
// CHECK: %[[WORLD:.*]] = mpi.comm_world : !mpi.comm
// CHECK: mpi.allreduce(%[[SEND1]], %[[RECV1]], MPI_SUM, %[[WORLD]]) : memref<?xf32>, memref<?xf32>
// CHECK: %[[SUM:.*]] = bufferization.to_tensor %[[RECV]] restrict writable : memref<?x64xf32> to tensor<?x64xf32>
// CHECK: return %[[SUM]]

// OpenMPI's symbols, MPI_SUM under mpi.h's name.
// LLVM-DAG: llvm.mlir.global external @ompi_mpi_op_sum()
// LLVM-DAG: llvm.mlir.global external @ompi_mpi_float()
// LLVM-DAG: llvm.mlir.global external @ompi_mpi_comm_world()
// LLVM-DAG: llvm.func @MPI_Allreduce(!llvm.ptr, !llvm.ptr, i32, !llvm.ptr, !llvm.ptr, !llvm.ptr) -> i32
// LLVM-NOT: ompi_mpi_sum
// LLVM-LABEL: func.func @sum_f32(
// LLVM-NOT: mpi.
// LLVM: llvm.call @MPI_Allreduce
shard.grid @attn_devices(shape = 2)
func.func @sum_f32(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %0 = shard.all_reduce %x on @attn_devices grid_axes = [0] : tensor<?x64xf32> -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

// bf16 is summed in f32 (OpenMPI has no bf16 sum), rounded once after.
// CHECK-LABEL: func.func @sum_bf16(
// CHECK: %[[WIDE:.*]] = linalg.map { arith.extf } ins(%{{.*}} : tensor<?x8xbf16>) outs(%{{.*}} : tensor<?x8xf32>)
// CHECK: bufferization.to_buffer %[[WIDE]] read_only : tensor<?x8xf32> to memref<?x8xf32>
// CHECK: mpi.allreduce(%{{.*}}, %{{.*}}, MPI_SUM, %{{.*}}) : memref<?xf32>, memref<?xf32>
// CHECK: %[[SUM:.*]] = bufferization.to_tensor %{{.*}} : memref<?x8xf32> to tensor<?x8xf32>
// CHECK: %[[NARROW:.*]] = linalg.map { arith.truncf } ins(%[[SUM]] : tensor<?x8xf32>) outs(%{{.*}} : tensor<?x8xbf16>)
// CHECK: return %[[NARROW]]
shard.grid @attn_devices(shape = 4)
func.func @sum_bf16(%x: tensor<?x8xbf16>) -> tensor<?x8xbf16> {
  %0 = shard.all_reduce %x on @attn_devices grid_axes = [0] : tensor<?x8xbf16> -> tensor<?x8xbf16>
  return %0 : tensor<?x8xbf16>
}

// -----

shard.grid @grid(shape = 2)
func.func @max(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{expects a sum}}
  %0 = shard.all_reduce %x on @grid grid_axes = [0] reduction = max : tensor<4xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

shard.grid @grid(shape = 2x2)
func.func @two_dimensional_grid(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{expects a reduction over all devices of a 1-D grid (one MPI process per device)}}
  %0 = shard.all_reduce %x on @grid grid_axes = [0] : tensor<4xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

shard.grid @grid(shape = 2)
func.func @gather(%x: tensor<4xf32>) -> tensor<8xf32> {
  // expected-error @+1 {{'shard.all_gather' op is not supported on the CPU}}
  %0 = shard.all_gather %x on @grid grid_axes = [0] gather_axis = 0 : tensor<4xf32> -> tensor<8xf32>
  return %0 : tensor<8xf32>
}
