//===- AttnOps.td - attn operations ------------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNOPS_TD
#define ATTN_DIALECT_ATTN_IR_ATTNOPS_TD

include "attn/Dialect/Attn/IR/AttnBase.td"
include "attn/Dialect/Attn/IR/AttnAttrs.td"
include "attn/Dialect/Attn/IR/AttnTypes.td"
include "attn/Dialect/Attn/IR/AttnOpInterfaces.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// The cache layer of an op: a static attribute or a run-time operand
// (Attn_CacheLayerOpInterface); exactly one is set.
def Attn_LayerIndex : AnyTypeOf<[Index, I32], "index or i32">;
defvar Attn_StaticLayer = OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>;
defvar Attn_BlocksNumLayers = [{
    ::mlir::Value getCacheBlocks() { return getBlocks(); }
    std::optional<int64_t> getStaticNumLayers() {
      int64_t layers = getBlocks().getType().getDimSize(2);
      if (::mlir::ShapedType::isDynamic(layers))
        return std::nullopt;
      return layers;
    }
}];

//===----------------------------------------------------------------------===//
// Paged cache collection
//===----------------------------------------------------------------------===//

def Attn_PagedCacheMakeOp : Attn_Op<"paged_cache.make", [Pure]> {
  let summary = "Builds the opaque paged KV cache from its tensors";
  let description = [{
    Packs blocks, cache lengths and lookup table into one
    `!attn.paged_kv_cache` value (MAX's opaque collection). The blocks shape
    must agree with the cache parameters of the result type.

    ```mlir
    %cache = attn.paged_cache.make %blocks, %lengths, %lookup
        : tensor<?x2x32x128x8x128xbf16>, tensor<?xi32>, tensor<?x?xi32>
        -> !attn.paged_kv_cache<#attn.kv_cache<page_size = 128, num_layers = 32,
                                kv_heads = 8, head_dim = 128, dtype = bf16>>
    ```
  }];
  let arguments = (ins Attn_Float6D:$blocks, Attn_IndexVector:$cache_lengths,
                       Attn_LookupTable:$lookup_table);
  let results = (outs Attn_PagedKVCacheType:$cache);
  let assemblyFormat = [{
    $blocks `,` $cache_lengths `,` $lookup_table attr-dict `:`
    type($blocks) `,` type($cache_lengths) `,` type($lookup_table) `->` qualified(type($cache))
  }];
  let hasVerifier = 1;
}

def Attn_PagedCachePartsOp : Attn_Op<"paged_cache.parts",
    [Pure, DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "Takes the opaque paged KV cache apart";
  let description = [{
    Returns the blocks `[P, 2, L, page, Hkv, D]`, cache lengths `[B]` and
    lookup table `[B, max_pages]` of a cache; `P`, `B` and `max_pages` are
    dynamic. Canonicalisation forwards the operands of a matching
    `attn.paged_cache.make`.

    ```mlir
    %blocks, %lengths, %lookup = attn.paged_cache.parts %cache
        : !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 1,
                                kv_heads = 2, head_dim = 64, dtype = f32>>
    ```
  }];
  let arguments = (ins Attn_PagedKVCacheType:$cache);
  let results = (outs Attn_Float6D:$blocks, Attn_IndexVector:$cache_lengths,
                      Attn_LookupTable:$lookup_table);
  let assemblyFormat = "$cache attr-dict `:` qualified(type($cache))";
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Projections
//===----------------------------------------------------------------------===//

def Attn_QuantizedWeightOp : Attn_Op<"quantized_weight", [Pure]> {
  let summary = "Bundles the parts of a quantised weight";
  let description = [{
    Makes an `!attn.quantized_weight` from the tensors its encoding lists, in
    that order (GPTQ: qweight, scales[, perm]; float8: weight, weight_scale[,
    input_scale]; GGUF: the block bytes). The encoding checks their shapes
    and element types against the weight's `rows x cols`.

    ```mlir
    %w = attn.quantized_weight(%qweight, %scales)
        : (tensor<512x4096xi32>, tensor<32x4096xf16>)
        -> !attn.quantized_weight<4096x4096, #attn.gptq<group_size = 128>>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$parts);
  let results = (outs Attn_QuantizedWeightType:$weight);
  let assemblyFormat = [{
    `(` $parts `)` attr-dict `:` functional-type($parts, $weight)
  }];
  let hasVerifier = 1;
}

def Attn_QKVProjectionOp : Attn_Op<"qkv_projection",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "Projects hidden states to per-head q, k and v";
  let description = [{
    `qkv = input @ concat(Wq, Wk, Wv)^T (+ concat(bq, bk, bv))`, split into
    `q [T, H, D]`, `k [T, Hkv, D]` and `v [T, Hkv, D]`. The weights are one
    stacked `[(H + 2 Hkv) D, hidden]` tensor or three (`Wq [H D, hidden]`,
    `Wk` and `Wv [Hkv D, hidden]`), in `nn.Linear` layout; biases, when
    present, come in the same form. `clip` clamps the weights (not the
    activations) to `[-clip, clip]` before use. Head counts and the head dim
    are read from the result types and must be static.

    A weight may be an `!attn.quantized_weight` (GPTQ, float8, GGUF); each
    weight is decoded as its encoding says, the results are the same. Such
    weights take no `clip`, and a bias only where the encoding allows it.

    ```mlir
    %q, %k, %v = attn.qkv_projection %x weights(%wqkv) clip 8.0
        : tensor<?x3072xbf16>, (tensor<9216x3072xbf16>)
        -> tensor<?x32x96xbf16>, tensor<?x32x96xbf16>, tensor<?x32x96xbf16>
    ```
  }];
  let arguments = (ins Attn_Float2D:$input,
                       Variadic<Attn_Weight>:$weights,
                       Variadic<Attn_Float1D>:$biases,
                       OptionalAttr<F64Attr>:$clip);
  let results = (outs Attn_Float3D:$q, Attn_Float3D:$k, Attn_Float3D:$v);
  let assemblyFormat = [{
    $input `weights` `(` $weights `)` (`bias` `(` $biases^ `)`)?
    (`clip` $clip^)? attr-dict `:` type($input) `,` `(` type($weights) `)`
    (`,` `(` type($biases)^ `)`)? `->` type($q) `,` type($k) `,` type($v)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    bool isStacked() { return getWeights().size() == 1; }
    int64_t getNumHeads() { return getQ().getType().getDimSize(1); }
    int64_t getNumKVHeads() { return getK().getType().getDimSize(1); }
    int64_t getHeadDim() { return getQ().getType().getDimSize(2); }
  }];
}

def Attn_LinearOp : Attn_Op<"linear", [Pure]> {
  let summary = "A dense layer: input @ weight^T (+ bias)";
  let description = [{
    `result [T, N] = input [T, K] @ weight [N, K]^T (+ bias [N])`, the
    `nn.Linear` layout; used for the output projection. `clip` clamps the
    weight elements to `[-clip, clip]` before use, as in
    `attn.qkv_projection`. The weight may be an `!attn.quantized_weight`, as
    in `attn.qkv_projection`.

    ```mlir
    %out = attn.linear %o, %wo
        : tensor<?x4096xbf16>, tensor<4096x4096xbf16> -> tensor<?x4096xbf16>
    ```
  }];
  let arguments = (ins Attn_Float2D:$input, Attn_Weight:$weight,
                       Optional<Attn_Float1D>:$bias,
                       OptionalAttr<F64Attr>:$clip);
  let results = (outs Attn_Float2D:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? (`clip` $clip^)? attr-dict `:`
    type($input) `,` type($weight) (`,` type($bias)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Norm and position embedding
//===----------------------------------------------------------------------===//

def Attn_RMSNormOp : Attn_Op<"rms_norm",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "RMS norm over the last dimension (per-head qk norm)";
  let description = [{
    For every row of the last dimension `D`, in f32:
    `y = x * rsqrt(mean(x^2) + eps) * gamma` with `gamma : [D]` shared by
    all heads. Used on q and k before RoPE (Qwen3's `use_qk_norm`).

    ```mlir
    %qn = attn.rms_norm %q, %gamma eps 1.0e-06
        : tensor<?x32x128xbf16>, tensor<128xbf16>
    ```
  }];
  let arguments = (ins Attn_FloatTensor:$input, Attn_Float1D:$gamma,
                       DefaultValuedAttr<F64Attr, "1.0e-6">:$eps);
  let results = (outs Attn_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $gamma (`eps` $eps^)? attr-dict `:` type($input) `,` type($gamma)
  }];
  let hasVerifier = 1;
}

def Attn_RopeFreqsOp : Attn_Op<"rope_freqs", [Pure, ConstantLike]> {
  let summary = "The RoPE cos/sin table of a rope attribute";
  let description = [{
    `result[p, 2i] = m cos(p inv_freq[i])`, `result[p, 2i+1] = m sin(...)`
    for positions `p < N` (MAX's `freqs_cis`), with the scaling's inverse
    frequencies and magnitude `m`. The result is `tensor<N x D x f32>` with
    static `N` and even `D`. Small tables fold to constants.

    ```mlir
    %freqs = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<4096x128xf32>
    ```
  }];
  let arguments = (ins Attn_RopeAttr:$rope);
  let results = (outs StaticShapeTensorOf<[F32]>:$result);
  let assemblyFormat = "qualified($rope) attr-dict `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
  // The greedy driver does not fold operand-less ops; a pattern does.
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// Tables up to this many elements fold to a constant.
    static constexpr int64_t kMaxFoldedElements = 1 << 16;
    /// The table as a constant, or null when it has more elements than that.
    ::mlir::DenseElementsAttr computeTable();
  }];
}

def Attn_RopeOp : Attn_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Rotary position embedding of q or k";
  let description = [{
    Rotates every head of `input [T, Hx, D]` by the angles of its position:
    row `r` of sequence `b` sits at `cache_lengths[b] + (r - row_offsets[b])`
    and reads row `pos` of the `freqs [N, D]` table (`attn.rope_freqs`).
    `interleaved` pairs `(x[2i], x[2i+1])`; otherwise `(x[i], x[i + D/2])`.

    ```mlir
    %qr = attn.rope %q, %freqs positions(%row_offsets, %cache_lengths)
        : tensor<?x32x128xbf16>, tensor<8192x128xf32>, tensor<?xi32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Attn_Float3D:$input, Attn_Float2D:$freqs,
                       Attn_IndexVector:$row_offsets,
                       Attn_IndexVector:$cache_lengths,
                       UnitAttr:$interleaved);
  let results = (outs Attn_Float3D:$result);
  let assemblyFormat = [{
    $input `,` $freqs `positions` `(` $row_offsets `,` $cache_lengths `)`
    (`interleaved` $interleaved^)? attr-dict `:` type($input) `,` type($freqs)
    `,` type($row_offsets) `,` type($cache_lengths)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// KV cache and attention
//===----------------------------------------------------------------------===//

def Attn_KVCacheStoreOp : Attn_Op<"kv_cache_store", [Pure,
    DestinationStyleOpInterface, Attn_CacheLayerOpInterface,
    AllTypesMatch<["blocks", "result"]>]> {
  let summary = "Writes new keys and values into the paged cache";
  let description = [{
    For row `r` of sequence `b` at position
    `pos = cache_lengths[b] + (r - row_offsets[b])`:
    `blocks[lookup_table[b, pos / page], 0, layer, pos % page] = key[r]` and
    likewise `value` at index 1 of axis 1. Nothing else changes; the result
    is the updated blocks. `blocks` is the destination (the op is
    destination-passing style), so bufferisation writes the cache in place.
    The layer is a constant (`layer 3`) or a run-time value
    (`layer(%l : i32)`, an `index` or `i32` in `[0, L)`).

    ```mlir
    %blocks2 = attn.kv_cache_store %k, %v into %blocks layer 3
        positions(%row_offsets, %cache_lengths) pages(%lookup)
        : tensor<?x8x128xbf16>, tensor<?x8x128xbf16>, tensor<?xi32>,
          tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x32x128x8x128xbf16>
    ```
  }];
  let arguments = (ins Attn_Float3D:$key, Attn_Float3D:$value,
                       Attn_IndexVector:$row_offsets,
                       Attn_IndexVector:$cache_lengths,
                       Attn_LookupTable:$lookup_table,
                       Attn_Float6D:$blocks,
                       Optional<Attn_LayerIndex>:$layer_index,
                       Attn_StaticLayer:$layer);
  let results = (outs Attn_Float6D:$result);
  let assemblyFormat = [{
    $key `,` $value `into` $blocks
    custom<Layer>($layer_index, type($layer_index), $layer)
    `positions` `(` $row_offsets `,` $cache_lengths `)`
    `pages` `(` $lookup_table `)` attr-dict `:`
    type($key) `,` type($value) `,` type($row_offsets) `,`
    type($cache_lengths) `,` type($lookup_table) `,` type($blocks)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = Attn_BlocksNumLayers # [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getBlocksMutable();
    }
  }];
}

def Attn_FlashAttentionOp : Attn_Op<"flash_attention",
    [Pure, AllTypesMatch<["query", "result"]>]> {
  let summary = "Attention over explicit ragged keys and values";
  let description = [{
    Sequence `b` owns query rows `[q_row_offsets[b], q_row_offsets[b+1])` and
    key/value rows `[kv_row_offsets[b], kv_row_offsets[b+1])`. Query row `i`
    sits at position `kv_len - q_len + i` (the last query sees the last key),
    key `j` at `j`. `s = scale <q, k>` in f32 (default `1/sqrt(D)`), masked
    keys excluded exactly, `o = softmax(s) v`; a query with no visible key
    gives zeros. Query head `h` reads kv head `h / (H / Hkv)`.

    ```mlir
    %o = attn.flash_attention %q, %k, %v rows(%q_offsets, %kv_offsets)
        {mask = #attn.mask<causal>}
        : tensor<?x32x128xf32>, tensor<?x8x128xf32>, tensor<?x8x128xf32>,
          tensor<?xi32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Attn_Float3D:$query, Attn_Float3D:$key,
                       Attn_Float3D:$value, Attn_IndexVector:$q_row_offsets,
                       Attn_IndexVector:$kv_row_offsets,
                       DefaultValuedAttr<Attn_MaskAttr,
                           "::mlir::attn::MaskAttr::getCausal($_builder.getContext())">:$mask,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs Attn_Float3D:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value `rows` `(` $q_row_offsets `,` $kv_row_offsets `)`
    attr-dict `:` type($query) `,` type($key) `,` type($value) `,`
    type($q_row_offsets) `,` type($kv_row_offsets)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The softmax scale: the attribute or 1/sqrt(D).
    double getScaleOrDefault();
  }];
}

def Attn_PagedFlashAttentionOp : Attn_Op<"paged_flash_attention",
    [Pure, Attn_CacheLayerOpInterface, AllTypesMatch<["query", "result"]>]> {
  let summary = "Attention reading keys and values from the paged cache";
  let description = [{
    Sequence `b` attends to the keys `j < cache_lengths[b] + q_len` of layer
    `layer` of the cache (the old tokens and the ones just stored; a constant
    or a run-time value, as in `attn.kv_cache_store`), found
    through `lookup_table`; its query row `i` sits at
    `cache_lengths[b] + i`. Masking, scale, GQA and empty rows as in
    `attn.flash_attention`.

    ```mlir
    %o = attn.paged_flash_attention %q, %blocks layer 0
        positions(%row_offsets, %cache_lengths) pages(%lookup)
        {mask = #attn.mask<sliding_window = 4096>}
        : tensor<?x32x128xbf16>, tensor<?x2x32x16x8x128xbf16>, tensor<?xi32>,
          tensor<?xi32>, tensor<?x?xi32>
    ```
  }];
  let arguments = (ins Attn_Float3D:$query, Attn_Float6D:$blocks,
                       Attn_IndexVector:$row_offsets,
                       Attn_IndexVector:$cache_lengths,
                       Attn_LookupTable:$lookup_table,
                       Optional<Attn_LayerIndex>:$layer_index,
                       Attn_StaticLayer:$layer,
                       DefaultValuedAttr<Attn_MaskAttr,
                           "::mlir::attn::MaskAttr::getCausal($_builder.getContext())">:$mask,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs Attn_Float3D:$result);
  let assemblyFormat = [{
    $query `,` $blocks
    custom<Layer>($layer_index, type($layer_index), $layer)
    `positions` `(` $row_offsets `,` $cache_lengths `)`
    `pages` `(` $lookup_table `)` attr-dict `:` type($query) `,` type($blocks)
    `,` type($row_offsets) `,` type($cache_lengths) `,` type($lookup_table)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = Attn_BlocksNumLayers # [{
    double getScaleOrDefault();
  }];
}

//===----------------------------------------------------------------------===//
// Fused RoPE + cache store
//===----------------------------------------------------------------------===//

def Attn_RopeStoreOp : Attn_Op<"rope_store", [Pure,
    AttrSizedOperandSegments, DestinationStyleOpInterface,
    Attn_CacheLayerOpInterface, AllTypesMatch<["q", "q_result"]>, AllTypesMatch<["blocks", "result"]>]> {
  let summary = "RoPE of q and k fused with the KV-cache store";
  let description = [{
    Does in one pass over the projection output what `attn.rms_norm` (when
    `qk_norm` is given), `attn.rope` of q and k and `attn.kv_cache_store`
    do apart (MAX's rope-split-store): every row of `k [T, Hkv, D]` is
    normalised with `gamma_k` (if present), rotated with the angles of its
    position and written straight into the cache with the row of
    `v [T, Hkv, D]`, and `q [T, H, D]` is normalised with `gamma_q` and
    rotated into the first result. Positions, the `freqs [N, D]` table,
    `interleaved` pairs and the page lookup are those of `attn.rope` and
    `attn.kv_cache_store`; the norm is `attn.rms_norm` with `eps`.
    `attn-fuse-rope-store` and `attn-fuse-qk-norm-rope` create it.

    The op is destination-passing style with two inits: `q` (rotated in
    place, like the outs of a linalg op) and `blocks` (the cache, written in
    place); the results are the rotated q and the updated blocks.

    ```mlir
    %qr, %blocks2 = attn.rope_store %q, %k, %v into %blocks layer 0
        freqs(%freqs) positions(%row_offsets, %cache_lengths) pages(%lookup)
        qk_norm(%gamma_q, %gamma_k) eps 1.0e-06
        : tensor<?x32x128xbf16>, tensor<?x8x128xbf16>, tensor<?x8x128xbf16>,
          tensor<8192x128xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>,
          tensor<?x2x32x16x8x128xbf16>, tensor<128xbf16>, tensor<128xbf16>
    ```
  }];
  let arguments = (ins Attn_Float3D:$k, Attn_Float3D:$v, Attn_Float2D:$freqs,
                       Attn_IndexVector:$row_offsets,
                       Attn_IndexVector:$cache_lengths,
                       Attn_LookupTable:$lookup_table,
                       Attn_Float3D:$q, Attn_Float6D:$blocks,
                       Optional<Attn_Float1D>:$gamma_q,
                       Optional<Attn_Float1D>:$gamma_k,
                       Optional<Attn_LayerIndex>:$layer_index,
                       Attn_StaticLayer:$layer,
                       UnitAttr:$interleaved,
                       OptionalAttr<F64Attr>:$eps);
  let results = (outs Attn_Float3D:$q_result, Attn_Float6D:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v `into` $blocks
    custom<Layer>($layer_index, type($layer_index), $layer)
    `freqs` `(` $freqs `)`
    `positions` `(` $row_offsets `,` $cache_lengths `)`
    `pages` `(` $lookup_table `)`
    (`qk_norm` `(` $gamma_q^ `,` $gamma_k `)`)? (`eps` $eps^)?
    (`interleaved` $interleaved^)? attr-dict `:`
    type($q) `,` type($k) `,` type($v) `,` type($freqs) `,`
    type($row_offsets) `,` type($cache_lengths) `,` type($lookup_table) `,`
    type($blocks) (`,` type($gamma_q)^ `,` type($gamma_k))?
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = Attn_BlocksNumLayers # [{
    /// The inits: q and blocks (operands 6 and 7).
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), 6, 2);
    }
    bool hasQKNorm() { return static_cast<bool>(getGammaQ()); }
  }];
}

//===----------------------------------------------------------------------===//
// The composite layer
//===----------------------------------------------------------------------===//

def Attn_AttentionWithRopeOp : Attn_Op<"attention_with_rope",
    [Pure, AttrSizedOperandSegments, Attn_CacheLayerOpInterface,
     AllTypesMatch<["input", "output"]>,
     AllTypesMatch<["kv_collection", "updated_kv_collection"]>]> {
  let summary = "One attention layer with RoPE and a paged KV cache";
  let description = [{
    The whole `AttentionWithRope` layer of MAX. Its attributes mirror the
    constructor: `num_attention_heads`, `num_key_value_heads`, `hidden_size`,
    `layer_idx`, `rope` (with `max_seq_len`, the size of the cos/sin table),
    `clip_qkv`, `rms_norm_eps`, `scale` and `mask`; `kv_params` is the
    parameter of the cache type. The layer is `layer_idx` or, for one
    function serving every layer, a run-time `layer(%l)` operand (`index` or
    `i32`, as MAX's `__call__(layer_idx, ...)`). `stacked_qkv`, `has_bias` and
    `use_qk_norm` follow from the operands: one or three `qkv` weights,
    `bias(...)` present, `q_norm`/`k_norm` present.

    RoPE reads its cos/sin from `freqs(%table)` when given: the
    `tensor<max_seq_len x head_dim x f32>` table of `attn.rope_freqs` (MAX's
    `freqs_cis`), computed once per model and passed to every layer; `rope`
    still gives the pairing, and positions must stay below `max_seq_len`.
    Without it, a table too large to fold into a constant (more than 65536
    elements) is not built: each call recomputes its rows' cos/sin from
    `rope` in f64 (per row on the CPU, per row and head on the GPU), which
    costs more than reading them (docs/performance.md, "The RoPE table").

    Quantised layers take `!attn.quantized_weight` operands where MAX's
    constructors take quantised weights: `GPTQAttentionWithRope` is q, k, v
    and o_proj in `#attn.gptq` (desc_act: each weight carries its `perm`),
    `float8_config` is `#attn.float8` weights, `GGUFQAttentionWithRope`
    `#attn.gguf` ones (f32 activations, so an f32 cache). Each weight is
    checked as in `attn.qkv_projection`; in addition a float8 qkv with bias
    must be three weights (MAX concatenates q, k and v biases).

    The op returns the layer output and the cache with this step's keys and
    values written (the caller advances `cache_lengths`).
    `attn-expand-composite` turns it into the primitive ops.

    ```mlir
    %out, %cache2 = attn.attention_with_rope %x, %row_offsets, %cache
        qkv(%wq, %wk, %wv) o_proj(%wo)
        {num_attention_heads = 32 : i64, num_key_value_heads = 8 : i64,
         hidden_size = 4096 : i64, layer_idx = 0 : i64, max_seq_len = 8192 : i64,
         rope = #attn.rope<theta = 500000.0>}
        : (tensor<?x4096xbf16>, tensor<?xi32>, !attn.paged_kv_cache<...>,
           tensor<4096x4096xbf16>, tensor<1024x4096xbf16>,
           tensor<1024x4096xbf16>, tensor<4096x4096xbf16>)
        -> (tensor<?x4096xbf16>, !attn.paged_kv_cache<...>)
    ```
  }];
  let arguments = (ins
    Attn_Float2D:$input,
    Attn_IndexVector:$input_row_offsets,
    Attn_PagedKVCacheType:$kv_collection,
    Optional<Attn_LayerIndex>:$layer_index,
    Variadic<Attn_Weight>:$qkv_weights,
    Variadic<Attn_Float1D>:$qkv_biases,
    Optional<Attn_Float1D>:$q_norm_weight,
    Optional<Attn_Float1D>:$k_norm_weight,
    Attn_Weight:$o_proj_weight,
    Optional<Attn_Float2D>:$freqs,
    ConfinedAttr<I64Attr, [IntPositive]>:$num_attention_heads,
    ConfinedAttr<I64Attr, [IntPositive]>:$num_key_value_heads,
    ConfinedAttr<I64Attr, [IntPositive]>:$hidden_size,
    Attn_StaticLayer:$layer_idx,
    Attn_RopeAttr:$rope,
    ConfinedAttr<I64Attr, [IntPositive]>:$max_seq_len,
    OptionalAttr<F64Attr>:$clip_qkv,
    DefaultValuedAttr<F64Attr, "1.0e-6">:$rms_norm_eps,
    OptionalAttr<F64Attr>:$scale,
    DefaultValuedAttr<Attn_MaskAttr,
        "::mlir::attn::MaskAttr::getCausal($_builder.getContext())">:$mask);
  let results = (outs Attn_Float2D:$output,
                      Attn_PagedKVCacheType:$updated_kv_collection);
  let assemblyFormat = [{
    $input `,` $input_row_offsets `,` $kv_collection
    (`layer` `(` $layer_index^ `)`)?
    `qkv` `(` $qkv_weights `)` (`bias` `(` $qkv_biases^ `)`)?
    (`q_norm` `(` $q_norm_weight^ `)`)? (`k_norm` `(` $k_norm_weight^ `)`)?
    `o_proj` `(` $o_proj_weight `)` (`freqs` `(` $freqs^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    ::mlir::IntegerAttr getLayerAttr() { return getLayerIdxAttr(); }
    void setLayerAttr(::mlir::IntegerAttr layer) { setLayerIdxAttr(layer); }
    std::optional<int64_t> getStaticNumLayers() {
      return getKVParams().getNumLayers();
    }
    ::mlir::Value getCacheBlocks() { return {}; }
    bool isStackedQKV() { return getQkvWeights().size() == 1; }
    bool hasBias() { return !getQkvBiases().empty(); }
    bool usesQKNorm() { return getQNormWeight() != nullptr; }
    ::mlir::attn::KVCacheAttr getKVParams() {
      return ::llvm::cast<PagedKVCacheType>(getKvCollection().getType())
          .getParams();
    }
    int64_t getHeadDim() { return getKVParams().getHeadDim(); }
  }];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNOPS_TD
