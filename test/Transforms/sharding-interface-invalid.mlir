// RUN: attn-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation))' -split-input-file -verify-diagnostics

// Splits the attn ops cannot do, each requested by an annotation.

shard.grid @grid(shape = 2)

// 3 query heads do not divide over 2 devices (their 48 weight rows would).
func.func @heads_do_not_divide(%x: tensor<?x32xf32>, %wq: tensor<48x32xf32>, %wk: tensor<16x32xf32>, %wv: tensor<16x32xf32>)
    -> (tensor<?x3x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>) {
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %wq_s = shard.shard %wq to %rows annotate_for_users : tensor<48x32xf32>
  // expected-error @+1 {{cannot split its 3 query heads evenly over 2 devices}}
  %q, %k, %v = attn.qkv_projection %x weights(%wq_s, %wk, %wv)
      : tensor<?x32xf32>, (tensor<48x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>)
      -> tensor<?x3x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
  return %q, %k, %v : tensor<?x3x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
}

// -----

shard.grid @grid(shape = 2)

// Splitting the query heads splits the kv heads with them (GQA groups stay
// together): one kv head does not divide.
func.func @kv_heads_do_not_divide(%q: tensor<?x4x16xf32>, %k: tensor<?x1x16xf32>, %v: tensor<?x1x16xf32>, %off: tensor<?xi32>)
    -> tensor<?x4x16xf32> {
  %heads = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %q_s = shard.shard %q to %heads annotate_for_users : tensor<?x4x16xf32>
  // expected-error @+1 {{cannot split its 1 kv heads evenly over 2 devices}}
  %o = attn.flash_attention %q_s, %k, %v rows(%off, %off)
      : tensor<?x4x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?xi32>, tensor<?xi32>
  return %o : tensor<?x4x16xf32>
}

// -----

shard.grid @grid(shape = 2)

func.func @flash_attention_keys(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %off: tensor<?xi32>)
    -> tensor<?x4x16xf32> {
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %k_s = shard.shard %k to %rows annotate_for_users : tensor<?x2x16xf32>
  // expected-error @+1 {{cannot be sharded along its keys: the softmax normalises over every key}}
  %o = attn.flash_attention %q, %k_s, %v rows(%off, %off)
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>
  return %o : tensor<?x4x16xf32>
}

// -----

shard.grid @grid(shape = 2)

func.func @rope_rows(%q: tensor<?x4x16xf32>, %freqs: tensor<64x16xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<?x4x16xf32> {
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %q_s = shard.shard %q to %rows annotate_for_users : tensor<?x4x16xf32>
  // expected-error @+1 {{cannot be sharded along its rows: its rows are found through the row offsets}}
  %r = attn.rope %q_s, %freqs positions(%off, %len) : tensor<?x4x16xf32>, tensor<64x16xf32>, tensor<?xi32>, tensor<?xi32>
  return %r : tensor<?x4x16xf32>
}

// -----

shard.grid @grid(shape = 2)

func.func @rope_positions(%q: tensor<?x4x16xf32>, %freqs: tensor<64x16xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<?x4x16xf32> {
  %split = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %len_s = shard.shard %len to %split annotate_for_users : tensor<?xi32>
  // expected-error @+1 {{cannot split dimension 0 of operand #3: the op indexes it by data, not by one of its loops}}
  %r = attn.rope %q, %freqs positions(%off, %len_s) : tensor<?x4x16xf32>, tensor<64x16xf32>, tensor<?xi32>, tensor<?xi32>
  return %r : tensor<?x4x16xf32>
}

// -----

shard.grid @grid(shape = 2)

func.func @rms_norm_normalised_dim(%x: tensor<?x64xf32>, %gamma: tensor<64xf32>) -> tensor<?x64xf32> {
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %x_s = shard.shard %x to %cols annotate_for_users : tensor<?x64xf32>
  // expected-error @+1 {{cannot be sharded along its normalised dimension: its mean square needs every element}}
  %y = attn.rms_norm %x_s, %gamma : tensor<?x64xf32>, tensor<64xf32>
  return %y : tensor<?x64xf32>
}

// -----

shard.grid @grid(shape = 2)

func.func @stacked_weight(%x: tensor<?x32xf32>, %w: tensor<128x32xf32>)
    -> (tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>) {
  %heads = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x32xf32>, (tensor<128x32xf32>) -> tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
  // expected-error @-2 {{cannot be sharded along its query heads: a stacked weight's rows hold q, k and v after each other}}
  %q_s = shard.shard %q to %heads : tensor<?x4x16xf32>
  return %q_s, %k, %v : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
}

// -----

shard.grid @grid(shape = 2)

// Row-parallel with a bias: each device would add the whole bias.
func.func @split_sum_with_bias(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>) -> tensor<?x32xf32> {
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %x_s = shard.shard %x to %cols annotate_for_users : tensor<?x64xf32>
  // expected-error @+1 {{cannot split its input features with a bias: every device would add it to its partial sum}}
  %y = attn.linear %x_s, %w bias %b : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

shard.grid @grid(shape = 2)

!gptq = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>

func.func @quantized_weight(%x: tensor<?x256xbf16>, %w: !gptq) -> tensor<?x256xbf16> {
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %x_s = shard.shard %x to %cols annotate_for_users : tensor<?x256xbf16>
  // expected-error @+1 {{cannot split its input features: operand #1 is not a ranked tensor}}
  %y = attn.linear %x_s, %w : tensor<?x256xbf16>, !gptq -> tensor<?x256xbf16>
  return %y : tensor<?x256xbf16>
}

// -----

shard.grid @grid(shape = 2)

func.func @collapse_inner_dim(%o: tensor<?x4x16xf32>) -> tensor<?x64xf32> {
  %dim = shard.sharding @grid split_axes = [[], [], [0]] : !shard.sharding
  %o_s = shard.shard %o to %dim annotate_for_users : tensor<?x4x16xf32>
  // expected-error @+1 {{cannot be sharded along its source dimension 2: it is an inner dimension of a collapsed group}}
  %flat = tensor.collapse_shape %o_s [[0], [1, 2]] : tensor<?x4x16xf32> into tensor<?x64xf32>
  return %flat : tensor<?x64xf32>
}

// -----

shard.grid @grid(shape = 2)

// The pages of the cache are found through the lookup table.
func.func @cache_pages(%k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>,
                       %lut: tensor<?x?xi32>, %blocks: tensor<?x2x1x4x2x16xf32>) -> tensor<?x2x1x4x2x16xf32> {
  %pages = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %blocks_s = shard.shard %blocks to %pages annotate_for_users : tensor<?x2x1x4x2x16xf32>
  // expected-error @+1 {{cannot split dimension 0 of operand #5: the op indexes it by data, not by one of its loops}}
  %new = attn.kv_cache_store %k, %v into %blocks_s layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x4x2x16xf32>
  return %new : tensor<?x2x1x4x2x16xf32>
}
