// RUN: attn-opt %s --pass-pipeline='builtin.module(gpu.module(attn-grid-constant-tensor-maps))' -split-input-file -verify-diagnostics | FileCheck %s

// A kernel's tensor-map argument becomes a byval pointer to the parameter
// itself (64-byte aligned, nvvm.grid_constant), its local copy is dropped,
// and the TMA load reads through the parameter. Other arguments, and
// functions that are not kernels, keep their types.
// CHECK-LABEL: gpu.module @kernels
// CHECK: llvm.func @gemm(%[[N:.+]]: i64, %[[MAP:.+]]: !llvm.ptr {llvm.align = 64 : i32, llvm.byval = !llvm.array<16 x i64>, nvvm.grid_constant}, %[[DST:.+]]: !llvm.ptr<7>, %[[BAR:.+]]: !llvm.ptr<3>)
// CHECK-SAME: nvvm.kernel
// CHECK-NOT: llvm.alloca
// CHECK-NOT: llvm.store
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global %[[DST]], %[[MAP]], %[[BAR]], box[%{{.+}}, %{{.+}}]
// CHECK: llvm.func @helper(%{{.+}}: !llvm.array<16 x i64>)
gpu.module @kernels {
  llvm.func @gemm(%n: i64, %map: !llvm.array<16 x i64>, %dst: !llvm.ptr<7>, %bar: !llvm.ptr<3>) attributes {nvvm.kernel} {
    %one = llvm.mlir.constant(1 : i64) : i64
    %copy = llvm.alloca %one x !llvm.array<16 x i64> {alignment = 64 : i64} : (i64) -> !llvm.ptr
    llvm.store %map, %copy : !llvm.array<16 x i64>, !llvm.ptr
    %c0 = llvm.mlir.constant(0 : i32) : i32
    nvvm.cp.async.bulk.tensor.shared.cluster.global %dst, %copy, %bar, box[%c0, %c0] : !llvm.ptr<7>, !llvm.ptr
    llvm.return
  }
  llvm.func @helper(%map: !llvm.array<16 x i64>) {
    llvm.return
  }
}

// -----

// A tensor map read any other way than through one local copy cannot be a
// grid constant.
gpu.module @kernels {
  // expected-error @+1 {{'llvm.func' op takes a tensor map (argument 0) that it does not only copy to one local buffer}}
  llvm.func @gemm(%map: !llvm.array<16 x i64>, %out: !llvm.ptr) attributes {nvvm.kernel} {
    llvm.store %map, %out : !llvm.array<16 x i64>, !llvm.ptr
    llvm.return
  }
}
