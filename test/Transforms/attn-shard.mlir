// RUN: attn-opt %s --attn-shard="strategy=tensor devices=2" -split-input-file | FileCheck %s --check-prefix=TP2
// RUN: attn-opt %s --attn-shard="strategy=tensor devices=4" -split-input-file | FileCheck %s --check-prefix=TP4
// RUN: attn-opt %s --attn-shard="strategy=data devices=2" -split-input-file | FileCheck %s --check-prefix=DP

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 4, num_layers = 2, kv_heads = 4, head_dim = 16, dtype = f32>>

// Separate weights with biases and qk-norm (Qwen-like), 8 query / 4 kv heads.
// TP: each device's q rows, k / v rows and biases of its heads, o_proj
// columns of its heads, a cache of its kv heads; gammas, offsets and the
// RoPE table keep their types; the partial output is all-reduced.
// TP2: shard.grid @attn_devices(shape = 2)
// TP2-LABEL: func.func @separate(
// TP2-SAME: %{{.*}}: tensor<?x96xf32>, %{{.*}}: tensor<?xi32>, %[[C:.*]]: !attn.paged_kv_cache<#attn.kv_cache<page_size = 4, num_layers = 2, kv_heads = 2, head_dim = 16, dtype = f32>>,
// TP2-SAME: tensor<64x96xf32>, %{{.*}}: tensor<32x96xf32>, %{{.*}}: tensor<32x96xf32>, %{{.*}}: tensor<64xf32>, %{{.*}}: tensor<32xf32>, %{{.*}}: tensor<32xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<96x64xf32>, %{{.*}}: tensor<64x16xf32>)
// TP2-SAME: -> (tensor<?x96xf32>, !attn.paged_kv_cache<#attn.kv_cache<page_size = 4, num_layers = 2, kv_heads = 2, head_dim = 16, dtype = f32>>)
// TP2: %[[OUT:.*]], %[[C2:.*]] = attn.attention_with_rope
// TP2-SAME: num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64
// TP2: %[[SUM:.*]] = shard.all_reduce %[[OUT]] on @attn_devices grid_axes = [0] : tensor<?x96xf32> -> tensor<?x96xf32>
// TP2: return %[[SUM]], %[[C2]]

// TP4: shard.grid @attn_devices(shape = 4)
// TP4-LABEL: func.func @separate(
// TP4-SAME: kv_heads = 1,
// TP4-SAME: tensor<32x96xf32>, %{{.*}}: tensor<16x96xf32>, %{{.*}}: tensor<16x96xf32>, %{{.*}}: tensor<32xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<96x32xf32>
// TP4: attn.attention_with_rope
// TP4-SAME: num_attention_heads = 2 : i64, num_key_value_heads = 1 : i64
// TP4: shard.all_reduce

// Data parallel keeps full replicas and adds no collective, only the grid.
// DP: shard.grid @attn_devices(shape = 2)
// DP-LABEL: func.func @separate(
// DP-SAME: kv_heads = 4,
// DP-SAME: tensor<128x96xf32>, %{{.*}}: tensor<64x96xf32>, %{{.*}}: tensor<64x96xf32>, %{{.*}}: tensor<128xf32>
// DP-SAME: tensor<96x128xf32>
// DP: attn.attention_with_rope
// DP-SAME: num_attention_heads = 8 : i64, num_key_value_heads = 4 : i64
// DP-NOT: shard.all_reduce
func.func @separate(%x: tensor<?x96xf32>, %off: tensor<?xi32>, %c: !cache,
    %wq: tensor<128x96xf32>, %wk: tensor<64x96xf32>, %wv: tensor<64x96xf32>,
    %bq: tensor<128xf32>, %bk: tensor<64xf32>, %bv: tensor<64xf32>,
    %gq: tensor<16xf32>, %gk: tensor<16xf32>, %wo: tensor<96x128xf32>,
    %freqs: tensor<64x16xf32>) -> (tensor<?x96xf32>, !cache) {
  %out, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv)
      bias(%bq, %bk, %bv) q_norm(%gq) k_norm(%gk) o_proj(%wo) freqs(%freqs)
      {num_attention_heads = 8 : i64, num_key_value_heads = 4 : i64,
       hidden_size = 96 : i64, layer_idx = 1 : i64, max_seq_len = 64 : i64,
       rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x96xf32>, tensor<?xi32>, !cache, tensor<128x96xf32>,
         tensor<64x96xf32>, tensor<64x96xf32>, tensor<128xf32>, tensor<64xf32>,
         tensor<64xf32>, tensor<16xf32>, tensor<16xf32>, tensor<96x128xf32>,
         tensor<64x16xf32>) -> (tensor<?x96xf32>, !cache)
  return %out, %c2 : tensor<?x96xf32>, !cache
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 4, num_layers = 2, kv_heads = 4, head_dim = 16, dtype = bf16>>

// A stacked qkv weight (Phi-3-like) keeps one weight of the device's q, k
// and v rows: (8 + 2 * 4) / N heads of 16. Two layers threading one cache
// through: the second layer's cache is the first's sharded result; each
// layer's output is reduced before the next layer reads it.
// TP2-LABEL: func.func @stacked_two_layers(
// TP2-SAME: kv_heads = 2,
// TP2-SAME: %[[W:[^:]*]]: tensor<128x96xbf16>, %{{.*}}: tensor<96x64xbf16>)
// TP2: %[[O1:.*]], %[[C1:.*]] = attn.attention_with_rope %{{.*}}, %{{.*}}, %{{.*}} qkv(%[[W]])
// TP2: %[[S1:.*]] = shard.all_reduce %[[O1]] on @attn_devices grid_axes = [0] : tensor<?x96xbf16> -> tensor<?x96xbf16>
// TP2: %[[O2:.*]], %[[C2:.*]] = attn.attention_with_rope %[[S1]], %{{.*}}, %[[C1]] qkv(%[[W]])
// TP2: %[[S2:.*]] = shard.all_reduce %[[O2]]
// TP2: return %[[S2]], %[[C2]]

// TP4-LABEL: func.func @stacked_two_layers(
// TP4-SAME: tensor<64x96xbf16>, %{{.*}}: tensor<96x32xbf16>)
func.func @stacked_two_layers(%x: tensor<?x96xbf16>, %off: tensor<?xi32>, %c: !cache,
    %w: tensor<256x96xbf16>, %wo: tensor<96x128xbf16>) -> (tensor<?x96xbf16>, !cache) {
  %o1, %c1 = attn.attention_with_rope %x, %off, %c qkv(%w) o_proj(%wo)
      {num_attention_heads = 8 : i64, num_key_value_heads = 4 : i64,
       hidden_size = 96 : i64, layer_idx = 0 : i64, max_seq_len = 64 : i64,
       rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x96xbf16>, tensor<?xi32>, !cache, tensor<256x96xbf16>,
         tensor<96x128xbf16>) -> (tensor<?x96xbf16>, !cache)
  %o2, %c2 = attn.attention_with_rope %o1, %off, %c1 qkv(%w) o_proj(%wo)
      {num_attention_heads = 8 : i64, num_key_value_heads = 4 : i64,
       hidden_size = 96 : i64, layer_idx = 1 : i64, max_seq_len = 64 : i64,
       rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x96xbf16>, tensor<?xi32>, !cache, tensor<256x96xbf16>,
         tensor<96x128xbf16>) -> (tensor<?x96xbf16>, !cache)
  return %o2, %c2 : tensor<?x96xbf16>, !cache
}
