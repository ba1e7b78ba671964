//===- Passes.td - attn dialect passes ---------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD
#define ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnExpandComposite : Pass<"attn-expand-composite"> {
  let summary = "Expand attn.attention_with_rope into the primitive attn ops";
  let description = [{
    Rewrites every `attn.attention_with_rope` into the steps of the layer:
    the opaque cache is taken apart (`attn.paged_cache.parts`), then
    `attn.qkv_projection` (stacked or separate weights, bias, clip), the
    optional `attn.rms_norm` of q and k, `attn.rope_freqs` + `attn.rope` of q
    and k, `attn.kv_cache_store`, `attn.paged_flash_attention`, a reshape and
    `attn.linear` for `o_proj`; the updated blocks are packed back with
    `attn.paged_cache.make` for the op's second result. Canonicalisation then
    cancels `parts(make(...))` pairs between consecutive layers.

    Before:
    ```mlir
    %out, %c2 = attn.attention_with_rope %x, %offsets, %cache
        qkv(%wqkv) o_proj(%wo) {num_attention_heads = 4 : i64, ...}
        : (...) -> (tensor<?x256xf32>, !attn.paged_kv_cache<...>)
    ```
    After:
    ```mlir
    %blocks, %lengths, %lookup = attn.paged_cache.parts %cache : ...
    %q, %k, %v = attn.qkv_projection %x weights(%wqkv) : ...
    %freqs = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<2048x64xf32>
    %qr = attn.rope %q, %freqs positions(%offsets, %lengths) : ...
    %kr = attn.rope %k, %freqs positions(%offsets, %lengths) : ...
    %blocks2 = attn.kv_cache_store %kr, %v into %blocks layer 0 ... : ...
    %o = attn.paged_flash_attention %qr, %blocks2 layer 0 ... : ...
    %o2 = tensor.collapse_shape %o [[0], [1, 2]] : ...
    %out = attn.linear %o2, %wo : ...
    %c2 = attn.paged_cache.make %blocks2, %lengths, %lookup : ...
    ```
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnUnpackCacheArguments : Pass<"attn-unpack-cache-arguments", "ModuleOp"> {
  let summary = "Pass opaque caches across function boundaries as their tensors";
  let description = [{
    Every `!attn.paged_kv_cache` argument or result of a `func.func` becomes
    three tensors (blocks, cache lengths, lookup table), the NoOpaque form
    that compiled entry points take; calls are updated alike. Inside, the
    arguments are packed with `attn.paged_cache.make` and returned caches
    are taken apart with `attn.paged_cache.parts`, which canonicalisation
    then cancels against the ops of the body.

    Before:
    ```mlir
    func.func @layer(%x: tensor<?x256xf32>, %c: !cache) -> !cache
    ```
    After:
    ```mlir
    func.func @layer(%x: tensor<?x256xf32>, %blocks: tensor<?x2x2x16x2x64xf32>,
                     %lengths: tensor<?xi32>, %lookup: tensor<?x?xi32>)
        -> (tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>)
    ```
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect"];
}

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

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD
