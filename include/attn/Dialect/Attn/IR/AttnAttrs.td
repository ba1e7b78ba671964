//===- AttnAttrs.td - attn attributes ----------------------*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNATTRS_TD
#define ATTN_DIALECT_ATTN_IR_ATTNATTRS_TD

include "attn/Dialect/Attn/IR/AttnBase.td"
include "attn/Dialect/Attn/IR/AttnAttrInterfaces.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Mask
//===----------------------------------------------------------------------===//

def Attn_MaskKind : I32EnumAttr<"MaskKind", "attention mask kind", [
    I32EnumAttrCase<"None", 0, "none">,
    I32EnumAttrCase<"Causal", 1, "causal">,
    I32EnumAttrCase<"SlidingWindow", 2, "sliding_window">]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_MaskAttr : Attn_Attr<"Mask", "mask"> {
  let summary = "Which keys a query may see";
  let description = [{
    `none` keeps every key of the sequence; `causal` keeps key `j` for the
    query at position `p` when `j <= p`; `sliding_window = W` is causal and
    also needs `p - j < W` (Mistral).

    ```mlir
    #attn.mask<causal>
    #attn.mask<none>
    #attn.mask<sliding_window = 4096>
    ```
  }];
  let parameters = (ins EnumParameter<Attn_MaskKind>:$kind,
                        DefaultValuedParameter<"int64_t", "0">:$window);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  // Lets ops default the attribute to a C++ expression.
  let constBuilderCall = "$0";
  let extraClassDeclaration = [{
    static MaskAttr getCausal(::mlir::MLIRContext *ctx) {
      return get(ctx, MaskKind::Causal, 0);
    }
  }];
}

//===----------------------------------------------------------------------===//
// RoPE scalings
//===----------------------------------------------------------------------===//

def Attn_LinearScalingAttr : Attn_Attr<"LinearScaling", "linear_scaling",
    [DeclareAttrInterfaceMethods<Attn_RopeScalingAttrInterface>]> {
  let summary = "Linear RoPE scaling: inverse frequencies divided by a factor";
  let description = [{
    ```mlir
    #attn.linear_scaling<factor = 4.0>
    ```
  }];
  let parameters = (ins Attn_F64Parameter<"divisor of every frequency">:$factor);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Attn_Llama3ScalingAttr : Attn_Attr<"Llama3Scaling", "llama3_scaling",
    [DeclareAttrInterfaceMethods<Attn_RopeScalingAttrInterface>]> {
  let summary = "Llama 3.1 RoPE scaling";
  let description = [{
    Wavelengths shorter than `original_max_position / high_freq_factor` keep
    their frequency, longer than `original_max_position / low_freq_factor`
    are divided by `factor`, and the band between is interpolated smoothly.

    ```mlir
    #attn.llama3_scaling<factor = 8.0, low_freq_factor = 1.0,
                         high_freq_factor = 4.0, original_max_position = 8192>
    ```
  }];
  let parameters = (ins
    Attn_F64Parameter<"frequency divisor for long wavelengths">:$factor,
    Attn_F64Parameter<"low frequency factor">:$low_freq_factor,
    Attn_F64Parameter<"high frequency factor">:$high_freq_factor,
    "int64_t":$original_max_position);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Attn_YarnScalingAttr : Attn_Attr<"YarnScaling", "yarn_scaling",
    [DeclareAttrInterfaceMethods<Attn_RopeScalingAttrInterface>]> {
  let summary = "YaRN RoPE scaling";
  let description = [{
    Blends interpolated (`inv_freq / factor`) and extrapolated frequencies
    with a linear ramp between the dimensions given by `beta_fast` and
    `beta_slow`; cos and sin are multiplied by `0.1 ln(factor) + 1`.

    ```mlir
    #attn.yarn_scaling<factor = 4.0, beta_fast = 32.0, beta_slow = 1.0,
                       original_max_position = 32768>
    ```
  }];
  let parameters = (ins
    Attn_F64Parameter<"context extension factor">:$factor,
    Attn_DefaultF64Parameter<"32.0", "fast boundary (rotations)">:$beta_fast,
    Attn_DefaultF64Parameter<"1.0", "slow boundary (rotations)">:$beta_slow,
    "int64_t":$original_max_position);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Attn_LongRopeScalingAttr : Attn_Attr<"LongRopeScaling", "longrope_scaling",
    [DeclareAttrInterfaceMethods<Attn_RopeScalingAttrInterface,
                                 ["verifyForHeadDim"]>]> {
  let summary = "LongRoPE scaling (Phi-3)";
  let description = [{
    Positions below `original_max_position` divide frequency `i` by
    `short_factor[i]`, others by `long_factor[i]` (`D/2` factors each); cos
    and sin are multiplied by
    `sqrt(1 + ln(max_position / original_max_position) / ln(original_max_position))`
    (the Hugging Face form).

    ```mlir
    #attn.longrope_scaling<short_factor = [1.0, 1.1], long_factor = [1.2, 1.5],
                           original_max_position = 4096, max_position = 131072>
    ```
  }];
  let parameters = (ins
    Attn_F64ArrayParameter<"factors below original_max_position">:$short_factor,
    Attn_F64ArrayParameter<"factors from original_max_position on">:$long_factor,
    "int64_t":$original_max_position,
    "int64_t":$max_position);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

def Attn_RopeAttr : Attn_Attr<"Rope", "rope"> {
  let summary = "Rotary position embedding parameters";
  let description = [{
    `theta` is the frequency base (`inv_freq[i] = theta^(-2i/D)`),
    `interleaved` selects the pairing (`true`: `(x[2i], x[2i+1])` as in GGUF
    checkpoints; `false`: `(x[i], x[i+D/2])`, Hugging Face's rotate_half),
    `scaling` is one of the `#attn.*_scaling` attributes or absent.

    ```mlir
    #attn.rope<theta = 500000.0, scaling = #attn.llama3_scaling<factor = 8.0,
      low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position = 8192>>
    #attn.rope<theta = 10000.0, interleaved = true>
    ```
  }];
  let parameters = (ins
    Attn_F64Parameter<"frequency base">:$theta,
    Attn_BoolParameter<"false", "pair x[2i] with x[2i+1]">:$interleaved,
    OptionalParameter<"::mlir::attn::RopeScalingAttrInterface",
                      "frequency scaling">:$scaling);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Inverse frequencies for a token at `position`, as the semantics
    /// define them: computed in f64, rounded to f32.
    ::llvm::SmallVector<float> computeInvFreq(int64_t headDim,
                                              int64_t position) const;
    /// The cos/sin multiplier of the scaling (1 without one).
    double getMagnitudeScale() const;
    /// Checks the rope against a head dim (even, factor list lengths).
    ::llvm::LogicalResult verifyForHeadDim(int64_t headDim,
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError) const;
  }];
}

//===----------------------------------------------------------------------===//
// KV cache parameters
//===----------------------------------------------------------------------===//

def Attn_KVCacheAttr : Attn_Attr<"KVCache", "kv_cache"> {
  let summary = "Paged KV-cache parameters (MAX's KVCacheParams)";
  let description = [{
    The cache of one model: `num_layers` layers of `kv_heads` heads of
    `head_dim` values in `dtype`, stored in pages of `page_size` tokens. The
    blocks tensor is `[P, 2, num_layers, page_size, kv_heads, head_dim]`
    (axis 1: 0 = K, 1 = V) with a dynamic page count `P`.

    ```mlir
    #attn.kv_cache<page_size = 128, num_layers = 32, kv_heads = 8,
                   head_dim = 128, dtype = bf16>
    ```
  }];
  let parameters = (ins "int64_t":$page_size, "int64_t":$num_layers,
                        "int64_t":$kv_heads, "int64_t":$head_dim,
                        "::mlir::Type":$dtype);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// `tensor<Px2xLxpagexHkvxDxdtype>`.
    ::mlir::RankedTensorType getBlocksType(
        int64_t numPages = ::mlir::ShapedType::kDynamic) const;
  }];
}

include "attn/Dialect/Attn/IR/AttnQuantAttrs.td"

#endif // ATTN_DIALECT_ATTN_IR_ATTNATTRS_TD
