//===- Passes.td - passes of the CPU target ----------------*- tablegen -*-===//
//
// Passes of the CPU lowering that touch no attn op: the C ABI of the entry
// points and the vectorisable exp of the kernels.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_TARGET_CPU_TRANSFORMS_PASSES_TD
#define ATTN_TARGET_CPU_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnCPUEntryABI : Pass<"attn-cpu-entry-abi", "ModuleOp"> {
  let summary = "Give bufferised public functions the C ABI of attn-compile";
  let description = [{
    Runs on bufferised code. Results that are the same buffer as an argument
    (the KV-cache blocks written in place) are dropped, every other memref
    result becomes a trailing out-parameter written by the callee, and
    public functions get `llvm.emit_c_interface` so that
    `_mlir_ciface_<name>(descriptors...)` is exported. Copies become
    `linalg.copy` so that strided copies need no MLIR runtime library.
    See docs/ABI.md.

    Before:
    ```mlir
    func.func @f(%blocks: memref<?x2x1x16x2x64xf32>, %x: memref<?x64xf32>)
        -> (memref<?x2x1x16x2x64xf32>, memref<?x64xf32>) {
      ...
      return %blocks, %y : ...
    }
    ```
    After:
    ```mlir
    func.func @f(%blocks: memref<?x2x1x16x2x64xf32>, %x: memref<?x64xf32>,
                 %out: memref<?x64xf32>) attributes {llvm.emit_c_interface}
    ```
  }];
}

def AttnApproximateMath : Pass<"attn-approximate-math"> {
  let summary = "Replace f32 exp by a polynomial approximation that vectorises";
  let description = [{
    `math.exp` on f32 scalars and vectors becomes arithmetic (range reduction
    and a polynomial, upstream's approximation), so that the softmax of the
    CPU flash-attention kernels runs on vector units instead of calling libm
    per element.

    Before:
    ```mlir
    %p = math.exp %s : vector<16xf32>
    ```
    After: `arith` and `math.fma` operations on `vector<16xf32>` only.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

#endif // ATTN_TARGET_CPU_TRANSFORMS_PASSES_TD
