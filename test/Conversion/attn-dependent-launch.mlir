// RUN: attn-opt %s --pass-pipeline='builtin.module(gpu.module(attn-dependent-launch))' -split-input-file | FileCheck %s

// Every kernel first lets its successor launch, then waits for the kernel
// before it, then runs its body; the module gets the marker the runtime
// looks for. Functions that are not kernels are left alone.
// CHECK-LABEL: gpu.module @kernels
// CHECK: llvm.mlir.global external constant @attn_dependent_launch(1 : i32) {addr_space = 1 : i32, alignment = 4 : i64} : i32
// CHECK: llvm.func @gemv(%[[X:.+]]: !llvm.ptr<1>) attributes {nvvm.kernel}
// CHECK-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.launch_dependents;", "~{memory}"
// CHECK-NEXT: llvm.inline_asm has_side_effects "griddepcontrol.wait;", "~{memory}"
// CHECK-NEXT: llvm.load %[[X]]
// CHECK: llvm.func @combine() attributes {nvvm.kernel}
// CHECK-NEXT: griddepcontrol.launch_dependents
// CHECK-NEXT: griddepcontrol.wait
// CHECK-NEXT: llvm.return
// CHECK: llvm.func @helper()
// CHECK-NEXT: llvm.return
gpu.module @kernels {
  llvm.func @gemv(%x: !llvm.ptr<1>) attributes {nvvm.kernel} {
    %v = llvm.load %x : !llvm.ptr<1> -> i32
    llvm.return
  }
  llvm.func @combine() attributes {nvvm.kernel} {
    llvm.return
  }
  llvm.func @helper() {
    llvm.return
  }
}

// -----

// A module without kernels gets no marker.
// CHECK-LABEL: gpu.module @no_kernels
// CHECK-NOT: attn_dependent_launch
// CHECK: llvm.func @helper
gpu.module @no_kernels {
  llvm.func @helper() {
    llvm.return
  }
}
