// attn-compile --target=cuda --timing: gpu-module-to-binary (LLVM for the
// kernels, ptxas, fatbinary) is one pass of the pipeline; the host code then
// goes through LLVM O3, object emission and linking.
// REQUIRES: attn-cuda-runtime, ptxas
// RUN: attn-compile --target=cuda --timing %s -o %t.so 2>&1 | FileCheck %s
// CHECK: Execution time report
// CHECK: Parse input
// CHECK: Lowering pipeline
// CHECK:   ConvertAttnToGPU
// CHECK:   AttnMergeIdenticalFunctions
// CHECK:   GpuModuleToBinaryPass
// CHECK: Translate to LLVM IR
// CHECK: LLVM O3
// CHECK: LLVM code generation (object)
// CHECK: Link shared library
// CHECK: Total
//
// The two identical entry points share one kernel (the binary holds no
// second one) and compile once.
// RUN: attn-compile --target=cuda --emit=mlir %s -o - | FileCheck %s --check-prefix=MERGED
// MERGED: llvm.func @proj(
// MERGED: gpu.launch_func {{.*}} @attn_kernels::@gemv blocks
// MERGED: gpu.launch_func {{.*}} @attn_kernels::@gemm_wgmma blocks
// MERGED: llvm.func @proj_again(
// MERGED-NEXT: llvm.call @proj(
// MERGED-NEXT: llvm.return
// MERGED-NOT: {{gemv_0|gemm_wgmma_0}}
// MERGED: gpu.binary @attn_kernels
// MERGED-NOT: {{gemv_0|gemm_wgmma_0}}

func.func @proj(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>) -> tensor<?x32xbf16> {
  %y = attn.linear %x, %w : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}

func.func @proj_again(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>) -> tensor<?x32xbf16> {
  %y = attn.linear %x, %w : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}
