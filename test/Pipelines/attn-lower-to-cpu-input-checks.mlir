// The input checks in the CPU pipeline: on by default, off with
// runtime-checks=false (attn-compile --no-runtime-checks); the size checks of
// abi-checks=true (attn-compile --abi-checks) come first.
// RUN: attn-opt %s --attn-lower-to-cpu --mlir-print-ir-before=attn-entry-status -o %t.llvm.mlir 2>&1 | FileCheck %s
// RUN: FileCheck %s --check-prefix=LLVM < %t.llvm.mlir
// RUN: attn-opt %s --attn-lower-to-cpu="runtime-checks=false" --mlir-print-ir-before=attn-entry-status -o /dev/null 2>&1 | FileCheck %s --check-prefix=OFF
// RUN: attn-opt %s --attn-lower-to-cpu="abi-checks=true" --mlir-print-ir-before=attn-entry-status -o /dev/null 2>&1 | FileCheck %s --check-prefix=ABI

// After bufferisation the checks read the index buffers (memref.load), then
// the store reads the lookup table (and writes the cache).
// CHECK-LABEL: func.func @store(
// CHECK: scf.for
// CHECK: memref.load
// CHECK: cf.assert {{.*}} {attn.status = 3 : i32}
// CHECK: cf.assert {{.*}} {attn.status = 4 : i32}
// CHECK: cf.assert {{.*}} {attn.status = 5 : i32}
// CHECK: cf.assert {{.*}} {attn.status = 6 : i32}
// CHECK-NOT: cf.assert
// CHECK: memref.load {{.*}} : memref<?x?xi32>
// ABI-LABEL: func.func @store(
// ABI-SAME: memref<?x?x?xf32>, %{{.*}}: memref<?x?x?x?x?x?xf32>
// ABI: cf.assert {{.*}} {attn.status = 8 : i32}
// ABI: cf.assert {{.*}} {attn.status = 8 : i32}
// ABI: cf.assert {{.*}} {attn.status = 3 : i32}
// OFF-LABEL: func.func @store(
// OFF-NOT: cf.assert
// OFF-NOT: scf.for {{.*}} -> (i1)
// OFF: return

// The library's message function: one constant C string per status.
// LLVM-DAG: llvm.mlir.global internal constant @attn_status_0("success\00")
// LLVM-DAG: llvm.mlir.global internal constant @attn_status_6("a page id the call touches is negative or not below the number of pages\00")
// LLVM-DAG: llvm.mlir.global internal constant @attn_status_unknown("unknown status\00")
// LLVM-DAG: llvm.func @attnStatusMessage(%{{.*}}: i32) -> !llvm.ptr
func.func @store(%k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>, %off: tensor<?xi32>,
                 %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %b = attn.kv_cache_store %k, %k into %blocks layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}
