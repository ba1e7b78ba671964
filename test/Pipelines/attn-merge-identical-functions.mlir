// RUN: attn-opt --attn-merge-identical-functions --split-input-file %s | FileCheck %s

// Kernels that differ only in their name: one is kept, the launches of the
// others launch it. A kernel with another body stays.
// CHECK-LABEL: gpu.module @attn_kernels
// CHECK: gpu.func @scale(
// CHECK-NOT: gpu.func @scale_0(
// CHECK: gpu.func @scale_by_3(
// CHECK-NOT: gpu.func @scale_1(
// CHECK: func.func @host(
// CHECK: gpu.launch_func @attn_kernels::@scale blocks
// CHECK: gpu.launch_func @attn_kernels::@scale blocks
// CHECK: gpu.launch_func @attn_kernels::@scale_by_3 blocks
// CHECK: gpu.launch_func @attn_kernels::@scale blocks
module attributes {gpu.container_module} {
  gpu.module @attn_kernels {
    gpu.func @scale(%p: memref<?xf32>) kernel {
      %c2 = arith.constant 2.0 : f32
      %i = gpu.thread_id x
      %v = memref.load %p[%i] : memref<?xf32>
      %s = arith.mulf %v, %c2 : f32
      memref.store %s, %p[%i] : memref<?xf32>
      gpu.return
    }
    gpu.func @scale_0(%p: memref<?xf32>) kernel {
      %c2 = arith.constant 2.0 : f32
      %i = gpu.thread_id x
      %v = memref.load %p[%i] : memref<?xf32> loc("elsewhere":1:1)
      %s = arith.mulf %v, %c2 : f32
      memref.store %s, %p[%i] : memref<?xf32>
      gpu.return
    }
    gpu.func @scale_by_3(%p: memref<?xf32>) kernel {
      %c3 = arith.constant 3.0 : f32
      %i = gpu.thread_id x
      %v = memref.load %p[%i] : memref<?xf32>
      %s = arith.mulf %v, %c3 : f32
      memref.store %s, %p[%i] : memref<?xf32>
      gpu.return
    }
    gpu.func @scale_1(%p: memref<?xf32>) kernel {
      %c2 = arith.constant 2.0 : f32
      %i = gpu.thread_id x
      %v = memref.load %p[%i] : memref<?xf32>
      %s = arith.mulf %v, %c2 : f32
      memref.store %s, %p[%i] : memref<?xf32>
      gpu.return
    }
  }
  func.func @host(%p: memref<?xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @attn_kernels::@scale blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%p : memref<?xf32>)
    gpu.launch_func @attn_kernels::@scale_0 blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%p : memref<?xf32>)
    gpu.launch_func @attn_kernels::@scale_by_3 blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%p : memref<?xf32>)
    gpu.launch_func @attn_kernels::@scale_1 blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%p : memref<?xf32>)
    return
  }
}

// -----

// Public entry points keep their names (the ABI): a copy calls the first one
// (not to be inlined). A private copy is erased and its callers call the
// first one. Declarations, functions with other attributes or another body
// stay.
// CHECK-LABEL: llvm.func @entry(
// CHECK-NEXT: llvm.mlir.constant(1 : i32)
// CHECK: llvm.func @entry_copy(%[[A:.*]]: !llvm.ptr, %[[B:.*]]: i32) -> i32
// CHECK-NEXT: %[[R:.*]] = llvm.call @entry(%[[A]], %[[B]]) {no_inline} : (!llvm.ptr, i32) -> i32
// CHECK-NEXT: llvm.return %[[R]] : i32
// CHECK: llvm.func @entry_other(
// CHECK-NEXT: llvm.mlir.constant(2 : i32)
// CHECK: llvm.func @entry_c_interface(
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-NEXT: llvm.mlir.constant(1 : i32)
// CHECK: llvm.func private @helper(
// CHECK-NOT: @helper_copy
// CHECK: llvm.func @caller(
// CHECK: llvm.call @helper(
// CHECK: llvm.call @helper(
// CHECK: llvm.func @extern_a(i32)
// CHECK: llvm.func @extern_b(i32)
// CHECK: func.func @negate(
// CHECK: arith.negf
// CHECK: func.func @negate_copy(%[[X:.*]]: memref<4xf32>) -> f32
// CHECK-NEXT: %[[R:.*]] = call @negate(%[[X]]) {no_inline} : (memref<4xf32>) -> f32
// CHECK-NEXT: return %[[R]] : f32
module {
  llvm.func @entry(%p: !llvm.ptr, %x: i32) -> i32 {
    %c = llvm.mlir.constant(1 : i32) : i32
    %y = llvm.add %x, %c : i32
    llvm.store %y, %p : i32, !llvm.ptr
    llvm.return %y : i32
  }
  llvm.func @entry_copy(%p: !llvm.ptr, %x: i32) -> i32 {
    %c = llvm.mlir.constant(1 : i32) : i32
    %y = llvm.add %x, %c : i32
    llvm.store %y, %p : i32, !llvm.ptr
    llvm.return %y : i32
  }
  llvm.func @entry_other(%p: !llvm.ptr, %x: i32) -> i32 {
    %c = llvm.mlir.constant(2 : i32) : i32
    %y = llvm.add %x, %c : i32
    llvm.store %y, %p : i32, !llvm.ptr
    llvm.return %y : i32
  }
  llvm.func @entry_c_interface(%p: !llvm.ptr, %x: i32) -> i32 attributes {llvm.emit_c_interface} {
    %c = llvm.mlir.constant(1 : i32) : i32
    %y = llvm.add %x, %c : i32
    llvm.store %y, %p : i32, !llvm.ptr
    llvm.return %y : i32
  }
  llvm.func private @helper(%x: i32) -> i32 {
    %y = llvm.mul %x, %x : i32
    llvm.return %y : i32
  }
  llvm.func private @helper_copy(%x: i32) -> i32 {
    %y = llvm.mul %x, %x : i32
    llvm.return %y : i32
  }
  llvm.func @caller(%x: i32) -> i32 {
    %a = llvm.call @helper(%x) : (i32) -> i32
    %b = llvm.call @helper_copy(%a) : (i32) -> i32
    llvm.return %b : i32
  }
  llvm.func @extern_a(i32)
  llvm.func @extern_b(i32)
  func.func @negate(%m: memref<4xf32>) -> f32 {
    %c0 = arith.constant 0 : index
    %x = memref.load %m[%c0] : memref<4xf32>
    %y = arith.negf %x : f32
    return %y : f32
  }
  func.func @negate_copy(%m: memref<4xf32>) -> f32 {
    %c0 = arith.constant 0 : index
    %x = memref.load %m[%c0] : memref<4xf32>
    %y = arith.negf %x : f32
    return %y : f32
  }
}
