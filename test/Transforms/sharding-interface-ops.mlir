// One annotation per op: what sharding-propagation derives for its other
// operands and results, and the per-device op that shard-partition makes.
// RUN: attn-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation,cse))' -split-input-file | FileCheck %s --check-prefix=PROP
// RUN: attn-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition))' -split-input-file | FileCheck %s --check-prefix=PART

shard.grid @grid(shape = 2)

// Column-parallel: the weight's rows split the output features (and the bias).
// PROP-LABEL: func.func @linear_columns
// PROP-DAG: %[[ROWS:.*]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// PROP-DAG: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]]
// PROP-DAG: %[[X:.*]] = shard.shard %arg0 to %[[REPL]] annotate_for_users : tensor<?x64xf32>
// PROP-DAG: %[[B:.*]] = shard.shard %arg2 to %[[ROWS]] annotate_for_users : tensor<32xf32>
// PROP: %[[Y:.*]] = attn.linear %[[X]], %{{.*}} bias %[[B]]
// PROP-NEXT: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP-NEXT: shard.shard %[[Y]] to %[[DIM1]] : tensor<?x32xf32>
// PART-LABEL: func.func @linear_columns
// PART-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[W:.*]]: tensor<16x64xf32>, %[[B:.*]]: tensor<16xf32>) -> tensor<?x16xf32>
// PART-NEXT: %[[Y:.*]] = attn.linear %[[X]], %[[W]] bias %[[B]] : tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf32> -> tensor<?x16xf32>
// PART-NEXT: return %[[Y]]
func.func @linear_columns(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>) -> tensor<?x32xf32> {
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %w_s = shard.shard %w to %rows annotate_for_users : tensor<32x64xf32>
  %y = attn.linear %x, %w_s bias %b : tensor<?x64xf32>, tensor<32x64xf32>, tensor<32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

shard.grid @grid(shape = 2)

// Row-parallel: the input features split; each device's output is a partial
// sum, replicated after an all-reduce (sum).
// PROP-LABEL: func.func @linear_rows
// PROP: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP: %[[W:.*]] = shard.shard %arg1 to %[[DIM1]] annotate_for_users : tensor<32x64xf32>
// PROP: %[[Y:.*]] = attn.linear %{{.*}}, %[[W]]
// PROP-NEXT: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]]
// PROP-NEXT: shard.shard %[[Y]] to %[[REPL]] : tensor<?x32xf32>
// PART-LABEL: func.func @linear_rows
// PART-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[W:.*]]: tensor<32x32xf32>) -> tensor<?x32xf32>
// PART-NEXT: %[[Y:.*]] = attn.linear %[[X]], %[[W]] : tensor<?x32xf32>, tensor<32x32xf32> -> tensor<?x32xf32>
// PART-NEXT: %[[SUM:.*]] = shard.all_reduce %[[Y]] on @grid grid_axes = [0] : tensor<?x32xf32> -> tensor<?x32xf32>
// PART-NEXT: return %[[SUM]]
func.func @linear_rows(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %x_s = shard.shard %x to %cols annotate_for_users : tensor<?x64xf32>
  %y = attn.linear %x_s, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

shard.grid @grid(shape = 2)

// The k weight's rows split the kv heads of k and v (and Wv's rows); the
// query heads are a loop of their own and stay whole.
// PROP-LABEL: func.func @qkv_kv_heads
// PROP-DAG: %[[ROWS:.*]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// PROP-DAG: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]]
// PROP-DAG: %[[WQ:.*]] = shard.shard %arg1 to %[[REPL]] annotate_for_users : tensor<64x64xf32>
// PROP-DAG: %[[WV:.*]] = shard.shard %arg3 to %[[ROWS]] annotate_for_users : tensor<32x64xf32>
// PROP: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection %{{.*}} weights(%[[WQ]], %{{.*}}, %[[WV]])
// PROP-NEXT: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP-NEXT: shard.shard %[[V]] to %[[DIM1]] : tensor<?x2x16xf32>
// PROP-NEXT: shard.shard %[[K]] to %[[DIM1]] : tensor<?x2x16xf32>
// PROP-NEXT: shard.shard %[[Q]] to %[[REPL]] : tensor<?x4x16xf32>
// PART-LABEL: func.func @qkv_kv_heads
// PART-SAME: %{{.*}}: tensor<64x64xf32>, %{{.*}}: tensor<16x64xf32>, %{{.*}}: tensor<16x64xf32>)
// PART-SAME: -> (tensor<?x4x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>)
// PART: attn.qkv_projection
// PART-SAME: -> tensor<?x4x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
func.func @qkv_kv_heads(%x: tensor<?x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>)
    -> (tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>) {
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %wk_s = shard.shard %wk to %rows annotate_for_users : tensor<32x64xf32>
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk_s, %wv)
      : tensor<?x64xf32>, (tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>)
      -> tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
  return %q, %k, %v : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
}

// -----

shard.grid @grid(shape = 2)

// The hidden features split: q, k and v are partial sums, each all-reduced.
// PROP-LABEL: func.func @qkv_hidden
// PROP: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP-DAG: shard.shard %arg1 to %[[DIM1]] annotate_for_users : tensor<64x32xf32>
// PROP-DAG: shard.shard %arg2 to %[[DIM1]] annotate_for_users : tensor<32x32xf32>
// PROP-DAG: shard.shard %arg3 to %[[DIM1]] annotate_for_users : tensor<32x32xf32>
// PROP: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection
// PROP-NEXT: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]]
// PROP-NEXT: shard.shard %[[V]] to %[[REPL]] : tensor<?x2x16xf32>
// PROP-NEXT: shard.shard %[[K]] to %[[REPL]] : tensor<?x2x16xf32>
// PROP-NEXT: shard.shard %[[Q]] to %[[REPL]] : tensor<?x4x16xf32>
// PART-LABEL: func.func @qkv_hidden
// PART-SAME: (%{{.*}}: tensor<?x16xf32>, %{{.*}}: tensor<64x16xf32>, %{{.*}}: tensor<32x16xf32>, %{{.*}}: tensor<32x16xf32>)
// PART: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection
// PART-DAG: %[[QS:.*]] = shard.all_reduce %[[Q]] on @grid grid_axes = [0] : tensor<?x4x16xf32>
// PART-DAG: %[[KS:.*]] = shard.all_reduce %[[K]] on @grid grid_axes = [0] : tensor<?x2x16xf32>
// PART-DAG: %[[VS:.*]] = shard.all_reduce %[[V]] on @grid grid_axes = [0] : tensor<?x2x16xf32>
// PART: return %[[QS]], %[[KS]], %[[VS]]
func.func @qkv_hidden(%x: tensor<?x32xf32>, %wq: tensor<64x32xf32>, %wk: tensor<32x32xf32>, %wv: tensor<32x32xf32>)
    -> (tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>) {
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %x_s = shard.shard %x to %cols annotate_for_users : tensor<?x32xf32>
  %q, %k, %v = attn.qkv_projection %x_s weights(%wq, %wk, %wv)
      : tensor<?x32xf32>, (tensor<64x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>)
      -> tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
  return %q, %k, %v : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
}

// -----

shard.grid @grid(shape = 2)

// Splitting the kv heads splits the query heads with them (GQA groups of 2
// stay on one device); the row offsets are replicated.
// PROP-LABEL: func.func @flash_attention_groups
// PROP-DAG: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]]
// PROP-DAG: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP-DAG: %[[Q:.*]] = shard.shard %arg0 to %[[DIM1]] annotate_for_users : tensor<?x4x16xf32>
// PROP-DAG: %[[V:.*]] = shard.shard %arg2 to %[[DIM1]] annotate_for_users : tensor<?x2x16xf32>
// PROP-DAG: %[[OFF:.*]] = shard.shard %arg3 to %[[REPL]] annotate_for_users : tensor<?xi32>
// PROP: %[[O:.*]] = attn.flash_attention %[[Q]], %{{.*}}, %[[V]] rows(%[[OFF]], %[[OFF]])
// PROP-NEXT: shard.shard %[[O]] to %[[DIM1]] : tensor<?x4x16xf32>
// PART-LABEL: func.func @flash_attention_groups
// PART-SAME: (%[[Q:.*]]: tensor<?x2x16xf32>, %[[K:.*]]: tensor<?x1x16xf32>, %[[V:.*]]: tensor<?x1x16xf32>, %[[OFF:.*]]: tensor<?xi32>) -> tensor<?x2x16xf32>
// PART-NEXT: attn.flash_attention %[[Q]], %[[K]], %[[V]] rows(%[[OFF]], %[[OFF]]) {mask = #attn.mask<sliding_window = 8>}
func.func @flash_attention_groups(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %off: tensor<?xi32>)
    -> tensor<?x4x16xf32> {
  %heads = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %k_s = shard.shard %k to %heads annotate_for_users : tensor<?x2x16xf32>
  %o = attn.flash_attention %q, %k_s, %v rows(%off, %off) {mask = #attn.mask<sliding_window = 8>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>
  return %o : tensor<?x4x16xf32>
}

// -----

shard.grid @grid(shape = 2)

// RMS norm of rows: the rows split, the gamma replicated.
// PROP-LABEL: func.func @rms_norm_rows
// PROP-DAG: %[[ROWS:.*]] = shard.sharding @grid split_axes = {{\[\[}}0]]
// PROP-DAG: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]]
// PROP-DAG: %[[G:.*]] = shard.shard %arg1 to %[[REPL]] annotate_for_users : tensor<64xf32>
// PROP: %[[Y:.*]] = attn.rms_norm %{{.*}}, %[[G]]
// PROP-NEXT: shard.shard %[[Y]] to %[[ROWS]] : tensor<8x64xf32>
// PART-LABEL: func.func @rms_norm_rows
// PART-SAME: (%[[X:.*]]: tensor<4x64xf32>, %[[G:.*]]: tensor<64xf32>) -> tensor<4x64xf32>
// PART-NEXT: attn.rms_norm %[[X]], %[[G]] eps 1.000000e-05 : tensor<4x64xf32>, tensor<64xf32>
func.func @rms_norm_rows(%x: tensor<8x64xf32>, %gamma: tensor<64xf32>) -> tensor<8x64xf32> {
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %x_s = shard.shard %x to %rows annotate_for_users : tensor<8x64xf32>
  %y = attn.rms_norm %x_s, %gamma eps 1.0e-5 : tensor<8x64xf32>, tensor<64xf32>
  return %y : tensor<8x64xf32>
}

// -----

shard.grid @grid(shape = 2)

// Backwards through the collapse: the joined heads split, so are the heads.
// PROP-LABEL: func.func @collapse_heads
// PROP-DAG: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP-DAG: %[[O:.*]] = shard.shard %arg0 to %[[DIM1]] annotate_for_users : tensor<?x4x16xf32>
// PROP: tensor.collapse_shape %[[O]]
// PART-LABEL: func.func @collapse_heads
// PART-SAME: (%[[O:.*]]: tensor<?x2x16xf32>) -> tensor<?x32xf32>
// PART-NEXT: tensor.collapse_shape %[[O]] {{\[}}[0], [1, 2]] : tensor<?x2x16xf32> into tensor<?x32xf32>
func.func @collapse_heads(%o: tensor<?x4x16xf32>) -> tensor<?x64xf32> {
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %flat = tensor.collapse_shape %o [[0], [1, 2]] : tensor<?x4x16xf32> into tensor<?x64xf32>
  %flat_s = shard.shard %flat to %cols : tensor<?x64xf32>
  return %flat_s : tensor<?x64xf32>
}

// -----

shard.grid @grid(shape = 2)

// Keys and values split by kv head: so are the cache blocks (dimension 4)
// they are written into; positions and pages are replicated.
// PROP-LABEL: func.func @kv_cache_store_heads
// PROP-DAG: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP-DAG: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]]
// PROP-DAG: %[[DIM4:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [], [], [], [0]]
// PROP-DAG: %[[V:.*]] = shard.shard %arg1 to %[[DIM1]] annotate_for_users : tensor<?x2x16xf32>
// PROP-DAG: %[[LUT:.*]] = shard.shard %arg4 to %[[REPL]] annotate_for_users : tensor<?x?xi32>
// PROP-DAG: %[[B:.*]] = shard.shard %arg5 to %[[DIM4]] annotate_for_users : tensor<?x2x1x4x2x16xf32>
// PROP: %[[NEW:.*]] = attn.kv_cache_store %{{.*}}, %[[V]] into %[[B]] layer 0 positions(%{{.*}}, %{{.*}}) pages(%[[LUT]])
// PROP-NEXT: shard.shard %[[NEW]] to %[[DIM4]] : tensor<?x2x1x4x2x16xf32>
// PART-LABEL: func.func @kv_cache_store_heads
// PART-SAME: (%[[K:.*]]: tensor<?x1x16xf32>, %[[V:.*]]: tensor<?x1x16xf32>, %[[OFF:.*]]: tensor<?xi32>, %[[LEN:.*]]: tensor<?xi32>, %[[LUT:.*]]: tensor<?x?xi32>, %[[B:.*]]: tensor<?x2x1x4x1x16xf32>) -> tensor<?x2x1x4x1x16xf32>
// PART-NEXT: attn.kv_cache_store %[[K]], %[[V]] into %[[B]] layer 0 positions(%[[OFF]], %[[LEN]]) pages(%[[LUT]]) : tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x4x1x16xf32>
func.func @kv_cache_store_heads(%k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>,
                                %lut: tensor<?x?xi32>, %blocks: tensor<?x2x1x4x2x16xf32>) -> tensor<?x2x1x4x2x16xf32> {
  %heads = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %k_s = shard.shard %k to %heads annotate_for_users : tensor<?x2x16xf32>
  %new = attn.kv_cache_store %k_s, %v into %blocks layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x4x2x16xf32>
  return %new : tensor<?x2x1x4x2x16xf32>
}

// -----

shard.grid @grid(shape = 2)

// The blocks split by kv head split the query heads with them; the run-time
// layer index is a scalar and needs no annotation.
// PROP-LABEL: func.func @paged_flash_attention_heads
// PROP-DAG: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]]
// PROP-DAG: %[[Q:.*]] = shard.shard %arg0 to %[[DIM1]] annotate_for_users : tensor<?x4x16xf32>
// PROP: %[[O:.*]] = attn.paged_flash_attention %[[Q]], %{{.*}} layer(%arg5 : i32)
// PROP-NEXT: shard.shard %[[O]] to %[[DIM1]] : tensor<?x4x16xf32>
// PART-LABEL: func.func @paged_flash_attention_heads
// PART-SAME: (%[[Q:.*]]: tensor<?x2x16xf32>, %[[B:.*]]: tensor<?x2x2x4x1x16xf32>, %{{.*}}: tensor<?xi32>, %{{.*}}: tensor<?xi32>, %{{.*}}: tensor<?x?xi32>, %[[L:.*]]: i32) -> tensor<?x2x16xf32>
// PART-NEXT: attn.paged_flash_attention %[[Q]], %[[B]] layer(%[[L]] : i32)
// PART-SAME: : tensor<?x2x16xf32>, tensor<?x2x2x4x1x16xf32>
func.func @paged_flash_attention_heads(%q: tensor<?x4x16xf32>, %blocks: tensor<?x2x2x4x2x16xf32>, %off: tensor<?xi32>,
                                       %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %layer: i32) -> tensor<?x4x16xf32> {
  %dim4 = shard.sharding @grid split_axes = [[], [], [], [], [0]] : !shard.sharding
  %blocks_s = shard.shard %blocks to %dim4 annotate_for_users : tensor<?x2x2x4x2x16xf32>
  %o = attn.paged_flash_attention %q, %blocks_s layer(%layer : i32) positions(%off, %len) pages(%lut)
      : tensor<?x4x16xf32>, tensor<?x2x2x4x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x16xf32>
}
