//===- Passes.td - passes of both lowering pipelines -------*- tablegen -*-===//
//
// Passes that the CPU and the NVVM pipeline share and that touch no attn op.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_PIPELINES_PASSES_TD
#define ATTN_PIPELINES_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnMergeIdenticalFunctions
    : Pass<"attn-merge-identical-functions", "ModuleOp"> {
  let summary = "Keep one copy of functions that differ only in their name";
  let description = [{
    A module with several entry points of one layer (the composite op, its
    expanded form, a variant) lowers them to the same code. Compiling every
    copy again (LLVM O3 and code generation, NVPTX and ptxas for kernels) is
    most of the compile time of such a module, so each function that equals
    an earlier one (same op, type, attributes and body; locations and the
    symbol name aside) is replaced by it:

    - in a `gpu.module`, the copy is erased and its launches launch the
      first kernel (kernels go first, so host functions that launched
      copies become identical too);
    - at the top level, a private copy is erased and its uses refer to the
      first function; a public `func.func` or `llvm.func` (an entry point,
      whose name is the ABI) keeps its name and attributes, its body becomes
      a call of the first one, marked `no_inline`.

    Before:
    ```mlir
    gpu.module @attn_kernels {
      gpu.func @rope(...) kernel { BODY }
      gpu.func @rope_0(...) kernel { BODY }
    }
    ... gpu.launch_func @attn_kernels::@rope_0 ...
    llvm.func @layer(%a: !llvm.ptr) { BODY2 }
    llvm.func @layer_fused(%a: !llvm.ptr) { BODY2 }
    ```
    After:
    ```mlir
    gpu.module @attn_kernels {
      gpu.func @rope(...) kernel { BODY }
    }
    ... gpu.launch_func @attn_kernels::@rope ...
    llvm.func @layer(%a: !llvm.ptr) { BODY2 }
    llvm.func @layer_fused(%a: !llvm.ptr) {
      llvm.call @layer(%a) : (!llvm.ptr) -> ()
      llvm.return
    }
    ```
  }];
  let dependentDialects = ["LLVM::LLVMDialect"];
}

#endif // ATTN_PIPELINES_PASSES_TD
