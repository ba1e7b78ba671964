// attn-compile --timing: where the compile time goes, on stderr: parsing,
// each pass of the lowering pipeline, LLVM IR translation, LLVM O3, object
// emission and linking. --mlir-timing is the same switch.
// RUN: attn-compile --target=cpu --timing %s -o %t.so 2>&1 | FileCheck %s
// RUN: attn-compile --target=cpu --mlir-timing %s -o %t.so 2>&1 | FileCheck %s
// CHECK: Execution time report
// CHECK: Parse input
// CHECK: Lowering pipeline
// CHECK:   ConvertAttnToLinalg
// CHECK:   OneShotBufferizePass
// CHECK:   AttnMergeIdenticalFunctions
// CHECK: Translate to LLVM IR
// CHECK: LLVM O3
// CHECK: LLVM code generation (object)
// CHECK: Link shared library
// CHECK: Total
//
// The list display sums each phase over the tree; --emit=llvm writes the
// optimised IR instead of emitting code.
// RUN: attn-compile --target=cpu --timing --mlir-timing-display=list --emit=llvm %s -o %t.ll 2>&1 | FileCheck %s --check-prefix=LIST
// LIST: ----Name----
// LIST-DAG: Lowering pipeline
// LIST-DAG: LLVM O3
// LIST-DAG: Write LLVM IR
// LIST-NOT: Link shared library
//
// Without it, nothing is reported.
// RUN: attn-compile --target=cpu %s -o %t.so 2>&1 | count 0
//
// The two identical entry points compile once: the second calls the first.
// RUN: attn-compile --target=cpu --emit=mlir %s -o - | FileCheck %s --check-prefix=MERGED
// MERGED: llvm.func @proj(
// MERGED: llvm.load
// MERGED: llvm.func @proj_again(
// MERGED-NOT: llvm.load
// MERGED: llvm.call @proj({{.*}}) {no_inline}
// MERGED-NEXT: llvm.return

func.func @proj(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  %y = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

func.func @proj_again(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  %y = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
