//===- Passes.td - attn conversion passes ------------------*- tablegen -*-===//

#ifndef ATTN_CONVERSION_PASSES_TD
#define ATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertAttnToLinalg : Pass<"convert-attn-to-linalg"> {
  let summary = "Lower the primitive attn ops to linalg, tensor, scf, arith and math";
  let description = [{
    Every primitive op becomes tensor-level code that bufferises in place
    and vectorises:
    - `attn.qkv_projection` / `attn.linear`: `x @ W^T` accumulated in f32 —
      with many rows an outer-product GEMM on a packed, transposed chunk of
      `W`, with few rows vector dot products (both parallel over column
      chunks), or `linalg.generic` contractions where the shapes don't fit;
      weight clipping applied to the weight as it is read, bias added in the
      epilogue, slices and `tensor.expand_shape` to `[T, heads, D]`;
    - `attn.rms_norm`: an f32 sum-of-squares reduction and a scaling generic;
    - `attn.rope`: per-row positions from the row offsets and cache lengths,
      cos/sin computed in f64 from the rope attribute (or gathered from a
      table operand), one rotation generic;
    - `attn.rope_freqs`: the table as one generic;
    - `attn.kv_cache_store`: `scf.for` over sequences and rows inserting
      into the blocks (the destination), so the cache is updated in place;
    - `attn.flash_attention` / `attn.paged_flash_attention`: `scf.forall`
      over sequences x kv heads; per query tile (query rows x the GQA group)
      an online-softmax `scf.for` over key tiles (one cache page, or
      `kv-tile` explicit rows) with exp2 and the scale folded into q; causal
      and sliding-window tiles outside the window are skipped and no S x S
      buffer exists.

    Before:
    ```mlir
    %o = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
    ```
    After:
    ```mlir
    %acc = linalg.generic {indexing_maps = [(t, n, k) -> (t, k), (t, n, k) -> (n, k),
                           (t, n, k) -> (t, n)], iterator_types = ["parallel",
                           "parallel", "reduction"]} ins(%x, %w ...) outs(%zero ...)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
  let options = [
    Option<"queryTileRows", "q-tile-rows", "int64_t", /*default=*/"128",
           "Rows of a flash-attention query tile (query rows x GQA group)">,
    Option<"kvTile", "kv-tile", "int64_t", /*default=*/"128",
           "Keys per tile for attention over explicit K/V">,
    Option<"vectorLanes", "vector-lanes", "int64_t", /*default=*/"8",
           "f32 lanes of the projection kernels' vectors (8: AVX2, 16: "
           "AVX-512; 0 keeps linalg contractions)">,
    Option<"packedMinRows", "packed-min-rows", "int64_t", /*default=*/"16",
           "Rows from which projections use the packed outer-product GEMM "
           "instead of dot products (0: never)">,
  ];
}

#endif // ATTN_CONVERSION_PASSES_TD
