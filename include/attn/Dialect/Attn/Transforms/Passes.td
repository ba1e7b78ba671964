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

def AttnFuseProjectionEpilogues : Pass<"attn-fuse-projection-epilogues"> {
  let summary = "Fold bias adds and weight clamps into the projection ops";
  let description = [{
    Two epilogue / prologue forms that frameworks emit around a projection
    become operands or attributes of the projection, so that the kernel adds
    the bias and clamps the weights while the tile is in registers instead of
    writing `[T, N]` and reading it back (bias), or materialising a clamped
    copy of the weights on every call (clip):

    - bias: `linalg.add ins(%y, %bb) outs(%init)` (either operand order)
      where `%y` is a projection whose only user is the add (an
      `attn.linear` without a bias, or a `linalg.matmul` computing
      `x @ W^T` from a zero-filled init, see `attn-fuse-qkv`), and `%bb` is
      a `linalg.broadcast` of a 1-D `%b [N]` along dimension 0. The add
      becomes `attn.linear ... bias %b` (accumulating in f32).
    - clip: a weight operand of `attn.linear` or `attn.qkv_projection` that
      is `arith.minimumf(arith.maximumf(%w, -c), c)` (either nesting) on
      tensors with splat constant bounds, or a `linalg.generic` over `%w`
      (identity maps, `tensor.empty` init) whose body is that clamp with
      scalar constant bounds (the form the CPU pipeline can also run
      unfused), with symmetric bounds, is replaced by `%w` and `c`
      becomes the op's `clip`; a `linalg.matmul` projection of a clamped
      weight becomes an `attn.linear` with that clip. For
      `attn.qkv_projection` every weight must be clamped by the same `c`
      (there is one clip). An op that already has a clip is left alone.
      The clamp stays for its other users.

    Before:
    ```mlir
    %y = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
    %bb = linalg.broadcast ins(%b : tensor<32xf32>) outs(%e : tensor<?x32xf32>) dimensions = [0]
    %z = linalg.add ins(%y, %bb : tensor<?x32xf32>, tensor<?x32xf32>) outs(%e : tensor<?x32xf32>) -> tensor<?x32xf32>
    ```
    After:
    ```mlir
    %z = attn.linear %x, %w bias %b : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
    ```
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect"];
}

def AttnFuseQKV : Pass<"attn-fuse-qkv"> {
  let summary = "Merge the q, k and v projections of one input";
  let description = [{
    Two rewrites, applied in order:

    1. Three projections of the same input, each reshaped by
       `tensor.expand_shape` to `[T, heads, D]`, become one
       `attn.qkv_projection` with separate weights. A projection is an
       `attn.linear`, or a `linalg.matmul` of a zero-filled init whose
       right operand is the weight transposed (`x @ W^T` by
       `indexing_maps`, or a `linalg.transpose` of `W [N, K]`); the fused
       op accumulates in f32 whatever the storage type. Required: the same
       `D`, query heads a multiple of the kv heads, k and v of the same
       shape, one element type, static weight shapes, all with or all
       without bias, the same clip, no other user of a projection than its
       reshape, and exactly three such projections of the input (with
       more, which are q, k and v would be a guess). They are taken in
       program order as q, k, v, the order frameworks emit.
    2. An `attn.qkv_projection` with separate weights that are all constants
       gets one stacked constant weight `concat(Wq, Wk, Wv)` (and one
       stacked bias when the biases are constants too), folded at compile
       time, so that the projection reads one contiguous weight in one
       GEMM.

    Weights that are function arguments are never concatenated at run time:
    that would copy every weight of the layer (tens of MB) on every call,
    far more traffic than the fusion saves. The lowerings instead run the
    separate-weight `attn.qkv_projection` as one kernel (on the GPU one
    GEMM launch whose B-tile loader picks the weight of each 64-column
    block; on the CPU one pass over the shared input per weight).

    Not applied when the inputs differ, element types or head dims differ,
    or a weight shape is dynamic.

    Before:
    ```mlir
    %q = attn.linear %x, %wq : ... -> tensor<?x256xbf16>
    %k = attn.linear %x, %wk : ... -> tensor<?x128xbf16>
    %v = attn.linear %x, %wv : ... -> tensor<?x128xbf16>
    %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 4, 64] : ...
    ...
    ```
    After:
    ```mlir
    %q3, %k3, %v3 = attn.qkv_projection %x weights(%wq, %wk, %wv) : ...
    ```
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect",
                           "::mlir::arith::ArithDialect"];
}

def AttnFuseRopeStore : Pass<"attn-fuse-rope-store"> {
  let summary = "Fuse the RoPE of q and k with the KV-cache store";
  let description = [{
    `attn.rope` of q, `attn.rope` of k and the `attn.kv_cache_store` of the
    rotated k become one `attn.rope_store` that reads q, k and v once,
    writes the rotated k and v straight into the cache and returns the
    rotated q: the rotated k `[T, Hkv, D]` is never written to memory and
    read back. Requires the same freqs table, row offsets, cache lengths
    and interleaving for both ropes and the store, and the rotated k used
    only by the store. The q rope is the one with the same freqs and
    positions in the same block whose input has as many rows; when several
    match, the one defined closest before the store is taken.

    Before:
    ```mlir
    %qr = attn.rope %q, %f positions(%o, %l) : ...
    %kr = attn.rope %k, %f positions(%o, %l) : ...
    %b2 = attn.kv_cache_store %kr, %v into %b layer 0 positions(%o, %l) pages(%p) : ...
    ```
    After:
    ```mlir
    %qr, %b2 = attn.rope_store %q, %k, %v into %b layer 0 freqs(%f)
        positions(%o, %l) pages(%p) : ...
    ```
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect"];
}

def AttnFuseQKNormRope : Pass<"attn-fuse-qk-norm-rope"> {
  let summary = "Fold the qk RMS norm into attn.rope_store";
  let description = [{
    When the q and k of an `attn.rope_store` without norm are both
    `attn.rms_norm` results used only there, with the same `eps`, the norms
    become the op's `qk_norm(gamma_q, gamma_k) eps`: the normalised q and k
    are never written to memory. Norms with different eps are left alone
    (one eps per op, as every model has).

    Before:
    ```mlir
    %qn = attn.rms_norm %q, %gq eps 1.0e-06 : ...
    %kn = attn.rms_norm %k, %gk eps 1.0e-06 : ...
    %qr, %b2 = attn.rope_store %qn, %kn, %v into %b ... : ...
    ```
    After:
    ```mlir
    %qr, %b2 = attn.rope_store %q, %k, %v into %b ...
        qk_norm(%gq, %gk) eps 1.0e-06 : ...
    ```
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect"];
}

def AttnInsertEntryChecks : Pass<"attn-insert-entry-checks", "ModuleOp"> {
  let summary = "Check run-time layer indices and index tensors at the start of entry points";
  let description = [{
    For every public function, asserts at its start that each run-time
    layer index of a cache op (CacheLayerOpInterface) lies in `[0, L)`, `L`
    being the cache's layer count (the blocks argument's dim 2, or static),
    and that the ragged-batch index tensors passed as arguments agree: one
    more row offset than cache lengths, one lookup-table row per sequence
    (status 2; the verifiers check static sizes, and the lowerings read
    `row_offsets[b + 1]` and `lookup_table[b, ...]` for every sequence `b`).
    The asserts are `cf.assert` ops carrying the status code they report as
    `attn.status`; after the entry ABI is fixed, `attn-entry-status` turns
    them into the function's `i32` status result. The layer index must be an
    argument of the function or a cast of one (and the blocks an argument):
    the check runs before any work, so a bad index leaves the cache alone.

    With `index-values` (the default) it also checks the values of the index
    tensors that are arguments, each with a loop (scf.for over
    tensor.extract) folding an `i1`: row offsets start at 0, never decrease
    and end at the rows of every tensor they index (status 3; the rows must
    be an argument's or static, else the pass fails); cache lengths are
    >= 0 (4); for each sequence with new rows, its pages (of positions
    `[cache_length, cache_length + rows)` for a store, `[0, ...)` for
    attention) fit in its lookup-table row (5) and their ids lie in
    `[0, P)` (6); its last position is inside every RoPE table (7). The
    loops read only elements inside the tensors whatever the values.

    Before:
    ```mlir
    func.func @store(%layer: i32, ..., %blocks: tensor<?x2x?x16x2x64xf32>) -> ... {
      %b = attn.kv_cache_store %k, %v into %blocks layer(%layer : i32) ...
    ```
    After:
    ```mlir
    func.func @store(%layer: i32, ..., %blocks: tensor<?x2x?x16x2x64xf32>) -> ... {
      %l = arith.index_cast %layer : i32 to index
      %n = tensor.dim %blocks, %c2 : tensor<?x2x?x16x2x64xf32>
      ...
      cf.assert %ok, "attn: a run-time layer index is outside ..." {attn.status = 1 : i32}
      %b = attn.kv_cache_store %k, %v into %blocks layer(%layer : i32) ...
    ```
  }];
  let options = [
    Option<"indexValues", "index-values", "bool", "true",
           "Also check the values of the index tensors (they must be host "
           "memory when the checks run)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::cf::ControlFlowDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnInsertABIChecks : Pass<"attn-insert-abi-checks", "ModuleOp"> {
  let summary = "Check the sizes of the tensor arguments of entry points against their types";
  let description = [{
    The ABI debug mode (`attn-compile --abi-checks`). A memref descriptor
    carries the sizes of its tensor, but code for an argument of static sizes
    never reads them, so a caller passing a buffer of another shape goes
    unnoticed (and out of bounds). For every public function, each tensor
    argument with a static size becomes dynamic in every dim (the descriptor
    is the same: rank and element type unchanged), is cast back to its type
    for the body, and each static size is asserted at the function's start
    (status 8 of docs/ABI.md; `attn-entry-status` turns the asserts into the
    status). The checks are prepended: run after `attn-insert-entry-checks`,
    they come first. Sizes that are dynamic in the type are checked against each other
    by `attn-insert-entry-checks` (batch and row counts).

    Before:
    ```mlir
    func.func @f(%w: tensor<1024x4096xbf16>, ...) {
      ... uses of %w ...
    ```
    After:
    ```mlir
    func.func @f(%w: tensor<?x?xbf16>, ...) {
      %wc = tensor.cast %w : tensor<?x?xbf16> to tensor<1024x4096xbf16>
      %d0 = tensor.dim %w, %c0 : tensor<?x?xbf16>
      ...
      cf.assert %ok, "attn: a tensor argument's size differs from the function's type" {attn.status = 8 : i32}
      ... uses of %wc ...
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::cf::ControlFlowDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnEntryStatus : Pass<"attn-entry-status", "ModuleOp"> {
  let summary = "Entry points return an i32 status and run only if their checks pass";
  let description = [{
    Runs after the entry ABI is fixed (every result an out-parameter or
    written in place, so entry points return nothing). Each entry point (a
    function exporting a C interface, `llvm.emit_c_interface`) then returns
    an `i32`: 0, or the `attn.status` code of the
    first of its leading `cf.assert` checks that fails, in which case
    nothing after the checks runs (no kernel, no cache write). Functions
    without checks return 0. Code before the last check may only compute the
    conditions (no memory writes).  A module with entry points also gets
    `llvm.func @attnStatusMessage(i32) -> !llvm.ptr`, returning the message
    of each status (a constant C string; "unknown status" for other codes).
    It also gets `llvm.func @attnEntrySignatures() -> !llvm.ptr`: a line per
    entry point, its name and its arguments' types (`guarded i1 memref<4xf32>`),
    for bindings to check a call's arguments against.

    Before:
    ```mlir
    func.func @f(%layer: i32, %blocks: memref<?x2x?x16x2x64xf32>)
        attributes {llvm.emit_c_interface} {
      ...
      cf.assert %ok, "attn: layer index outside the KV cache" {attn.status = 1 : i32}
      <work>
      return
    }
    ```
    After:
    ```mlir
    func.func @f(%layer: i32, %blocks: memref<?x2x?x16x2x64xf32>) -> i32
        attributes {llvm.emit_c_interface} {
      ...
      scf.if %ok {
        <work>
      }
      %status = arith.select %ok, %c0_i32, %c1_i32 : i32
      return %status : i32
    }
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::scf::SCFDialect"];
}

def AttnRejectQuantizedWeights : Pass<"attn-reject-quantized-weights"> {
  let summary = "Diagnose quantised weights on a target that cannot run them yet";
  let description = [{
    Every op taking an `!attn.quantized_weight` gets the error "quantised
    weights (ENCODING) are not supported on TARGET yet" and the pass fails.
    `convert-attn-to-gpu` makes the same check for the encodings its kernels
    do not decode (GGUF).
  }];
  let options = [
    Option<"target", "target", "std::string", "\"cuda\"",
           "Target named in the diagnostic">,
  ];
}

def AttnShard : Pass<"attn-shard", "ModuleOp"> {
  let summary = "Shard attention layers over devices as MAX does (SPMD IR)";
  let description = [{
    Rewrites every function holding `attn.attention_with_rope` layers into
    the program one device of a 1-D grid `@attn_devices` of `devices` runs.

    `strategy=tensor` (MAX's TensorParallelAttentionWithRope): each device
    owns `H/N` query heads and `Hkv/N` kv heads. The layer's weight, bias and
    cache arguments take the per-device types: q, k and v weight rows (and
    biases) of its heads, a stacked qkv weight holding its q, k and v rows in
    that order, the o_proj columns of its heads, a cache of its kv heads.
    qk-norm gammas, row offsets, cache lengths, lookup tables and the RoPE
    table are replicated. Each layer's output is a partial sum over the
    device's heads, completed by `shard.all_reduce` (sum) over the grid.

    `strategy=data` (MAX's DataParallelAttentionWithRope): every device runs
    the whole layer on its own sequences (offsets rebased to 0) and its own
    cache; the IR is unchanged apart from the grid, and no collective runs.

    A layer of primitive ops (`attn-expand-composite`, with the cache blocks
    as tensors) is sharded through the upstream passes: under
    `strategy=tensor` the weights of each `attn.qkv_projection` (separate
    weights) get `shard.shard` row annotations, those of each output
    projection (`attn.linear` of the heads joined by `tensor.collapse_shape`)
    column annotations, and `sharding-propagation` and `shard-partition`
    derive the rest (the attn ops' `ShardingInterface`); `partition=false`
    stops after the annotations.

    Heads that do not divide by `devices`, quantised weights under tensor
    parallelism, and weights or caches that are not function arguments are
    diagnosed.
  }];
  let options = [
    Option<"strategy", "strategy", "std::string", "\"tensor\"",
           "tensor or data">,
    Option<"devices", "devices", "int64_t", "2", "Devices of the grid">,
    Option<"partition", "partition", "bool", "true",
           "Propagate and partition the annotated primitive layers (false: "
           "leave the annotations)">,
  ];
  let dependentDialects = ["::mlir::shard::ShardDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // ATTN_DIALECT_ATTN_TRANSFORMS_PASSES_TD
