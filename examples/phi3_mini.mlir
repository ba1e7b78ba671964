// Phi-3.5-mini (microsoft/Phi-3.5-mini-instruct): one attention layer with a
// stacked qkv weight and LongRoPE, opaque paged KV cache.
//
// From config.json:
//   hidden_size 3072, num_attention_heads 32, num_key_value_heads 32
//   (head dim = 3072 / 32 = 96), num_hidden_layers 32, rope_theta 10000.0,
//   original_max_position_embeddings 4096, max_position_embeddings 131072,
//   rope_scaling {type "longrope", short_factor [48], long_factor [48]}
//   (the published lists, copied verbatim), torch_dtype bfloat16. The
//   checkpoint stores one stacked self_attn.qkv_proj.weight of shape
//   [(32 + 2 * 32) * 96, 3072] = [9216, 3072] and no biases.
//   Hugging Face safetensors layout: rotate_half pairs (interleaved = false).
//   (sliding_window 262144 in config.json is longer than any sequence here,
//   so the mask is plain causal.)
// Not from config.json: page_size 16, max_seq_len 8192 (table rows from 4096
//   on use long_factor), layer_idx 0, causal mask.
// Weights are nn.Linear [out_features, in_features].
//
// Expand:
//   attn-opt examples/phi3_mini.mlir --attn-expand-composite

!phi3_cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 32, kv_heads = 32, head_dim = 96, dtype = bf16>>

module {
  func.func @phi3_mini_layer(
      %x: tensor<?x3072xbf16>,
      %input_row_offsets: tensor<?xi32>,
      %kv_collection: !phi3_cache,
      %qkv_proj: tensor<9216x3072xbf16>,
      %o_proj: tensor<3072x3072xbf16>)
      -> (tensor<?x3072xbf16>, !phi3_cache) {
    %out, %cache = attn.attention_with_rope %x, %input_row_offsets, %kv_collection
        qkv(%qkv_proj) o_proj(%o_proj)
        {num_attention_heads = 32 : i64, num_key_value_heads = 32 : i64,
         hidden_size = 3072 : i64, layer_idx = 0 : i64, max_seq_len = 8192 : i64,
         rope = #attn.rope<theta = 10000.0, scaling = #attn.longrope_scaling<
           short_factor = [1.0, 1.0199999809265137, 1.0299999713897705, 1.0299999713897705,
                1.0499999523162842, 1.0499999523162842, 1.0499999523162842, 1.0499999523162842,
                1.0499999523162842, 1.0699999332427979, 1.0999999046325684, 1.1099998950958252,
                1.1599998474121094, 1.1599998474121094, 1.1699998378753662, 1.2899998426437378,
                1.339999794960022, 1.679999828338623, 1.7899998426437378, 1.8199998140335083,
                1.8499997854232788, 1.8799997568130493, 1.9099997282028198, 1.9399996995925903,
                1.9899996519088745, 2.0199997425079346, 2.0199997425079346, 2.0199997425079346,
                2.0199997425079346, 2.0199997425079346, 2.0199997425079346, 2.0299997329711914,
                2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0299997329711914,
                2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0299997329711914,
                2.0799996852874756, 2.0899996757507324, 2.189999580383301, 2.2199995517730713,
                2.5899994373321533, 2.729999542236328, 2.749999523162842, 2.8399994373321533],
           long_factor = [1.0800000429153442, 1.1100000143051147, 1.1399999856948853, 1.340000033378601,
                1.5899999141693115, 1.600000023841858, 1.6200000047683716, 2.620000123977661,
                3.2300000190734863, 3.2300000190734863, 4.789999961853027, 7.400000095367432,
                7.700000286102295, 9.09000015258789, 12.199999809265137, 17.670000076293945,
                24.46000099182129, 28.57000160217285, 30.420001983642578, 30.840002059936523,
                32.590003967285156, 32.93000411987305, 42.320003509521484, 44.96000289916992,
                50.340003967285156, 50.45000457763672, 57.55000305175781, 57.93000411987305,
                58.21000289916992, 60.1400032043457, 62.61000442504883, 62.62000274658203,
                62.71000289916992, 63.1400032043457, 63.1400032043457, 63.77000427246094,
                63.93000411987305, 63.96000289916992, 63.970001220703125, 64.02999877929688,
                64.06999969482422, 64.08000183105469, 64.12000274658203, 64.41000366210938,
                64.4800033569336, 64.51000213623047, 64.52999877929688, 64.83999633789062],
           original_max_position = 4096, max_position = 131072>>,
         mask = #attn.mask<causal>}
        : (tensor<?x3072xbf16>, tensor<?xi32>, !phi3_cache,
           tensor<9216x3072xbf16>, tensor<3072x3072xbf16>)
        -> (tensor<?x3072xbf16>, !phi3_cache)
    return %out, %cache : tensor<?x3072xbf16>, !phi3_cache
  }
}
