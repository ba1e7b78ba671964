// attn-shard on a layer of primitive ops (attn-expand-composite of a layer
// whose cache comes as blocks): the weights annotated, then the upstream
// sharding-propagation and shard-partition, which attn-shard runs itself
// unless partition=false.
// RUN: attn-opt %s --attn-shard="strategy=tensor devices=2 partition=false" | FileCheck %s --check-prefix=ANNOT
// RUN: attn-opt %s --attn-shard="strategy=tensor devices=2" | FileCheck %s --check-prefix=TP2
// RUN: attn-opt %s --attn-shard="strategy=tensor devices=2 partition=false" \
// RUN:   | attn-opt --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition))' \
// RUN:   | FileCheck %s --check-prefix=TP2
// RUN: attn-opt %s --attn-shard="strategy=data devices=2" | FileCheck %s --check-prefix=DP

// 4 query heads, 2 kv heads of 16, biases and qk-norm, a cache of 2 layers.
func.func @layer(%x: tensor<?x64xf32>, %offsets: tensor<?xi32>, %blocks: tensor<?x2x2x4x2x16xf32>, %lengths: tensor<?xi32>,
                 %lookup: tensor<?x?xi32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>,
                 %bq: tensor<64xf32>, %bk: tensor<32xf32>, %bv: tensor<32xf32>, %gq: tensor<16xf32>, %gk: tensor<16xf32>,
                 %wo: tensor<64x64xf32>) -> (tensor<?x64xf32>, tensor<?x2x2x4x2x16xf32>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv) bias(%bq, %bk, %bv)
      : tensor<?x64xf32>, (tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>), (tensor<64xf32>, tensor<32xf32>, tensor<32xf32>)
      -> tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
  %qn = attn.rms_norm %q, %gq : tensor<?x4x16xf32>, tensor<16xf32>
  %kn = attn.rms_norm %k, %gk : tensor<?x2x16xf32>, tensor<16xf32>
  %freqs = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<64x16xf32>
  %qr = attn.rope %qn, %freqs positions(%offsets, %lengths) : tensor<?x4x16xf32>, tensor<64x16xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %kn, %freqs positions(%offsets, %lengths) : tensor<?x2x16xf32>, tensor<64x16xf32>, tensor<?xi32>, tensor<?xi32>
  %new = attn.kv_cache_store %kr, %v into %blocks layer 1 positions(%offsets, %lengths) pages(%lookup)
      : tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x4x2x16xf32>
  %o = attn.paged_flash_attention %qr, %new layer 1 positions(%offsets, %lengths) pages(%lookup)
      : tensor<?x4x16xf32>, tensor<?x2x2x4x2x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  %flat = tensor.collapse_shape %o [[0], [1, 2]] : tensor<?x4x16xf32> into tensor<?x64xf32>
  %out = attn.linear %flat, %wo : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %out, %new : tensor<?x64xf32>, tensor<?x2x2x4x2x16xf32>
}

// The annotations: q, k and v weight rows, o_proj columns, nothing else.
// ANNOT: shard.grid @attn_devices(shape = 2)
// ANNOT-LABEL: func.func @layer
// ANNOT-SAME: %[[WQ:[^:]*]]: tensor<64x64xf32>, %[[WK:[^:]*]]: tensor<32x64xf32>, %[[WV:[^:]*]]: tensor<32x64xf32>,
// ANNOT-SAME: %[[WO:[^:]*]]: tensor<64x64xf32>)
// ANNOT: %[[ROWS:.*]] = shard.sharding @attn_devices split_axes = {{\[\[}}0]]
// ANNOT-NEXT: %[[WQS:.*]] = shard.shard %[[WQ]] to %[[ROWS]] annotate_for_users : tensor<64x64xf32>
// ANNOT-NEXT: %[[ROWS_K:.*]] = shard.sharding @attn_devices split_axes = {{\[\[}}0]]
// ANNOT-NEXT: %[[WKS:.*]] = shard.shard %[[WK]] to %[[ROWS_K]] annotate_for_users : tensor<32x64xf32>
// ANNOT-NEXT: %[[ROWS_V:.*]] = shard.sharding @attn_devices split_axes = {{\[\[}}0]]
// ANNOT-NEXT: %[[WVS:.*]] = shard.shard %[[WV]] to %[[ROWS_V]] annotate_for_users : tensor<32x64xf32>
// ANNOT-NEXT: attn.qkv_projection %{{.*}} weights(%[[WQS]], %[[WKS]], %[[WVS]]) bias(%arg8, %arg9, %arg10)
// ANNOT-NOT: shard.
// ANNOT: %[[COLS:.*]] = shard.sharding @attn_devices split_axes = {{\[\[}}], [0]]
// ANNOT-NEXT: %[[WOS:.*]] = shard.shard %[[WO]] to %[[COLS]] annotate_for_users : tensor<64x64xf32>
// ANNOT-NEXT: attn.linear %{{.*}}, %[[WOS]]
// ANNOT-NOT: shard.

// After the upstream passes: each device's q, k, v rows and biases, o_proj
// columns and cache blocks of its kv head; the output all-reduced.
// TP2: shard.grid @attn_devices(shape = 2)
// TP2-LABEL: func.func @layer
// TP2-SAME: %{{.*}}: tensor<?x2x2x4x1x16xf32>, %{{.*}}: tensor<?xi32>, %{{.*}}: tensor<?x?xi32>,
// TP2-SAME: %{{.*}}: tensor<32x64xf32>, %{{.*}}: tensor<16x64xf32>, %{{.*}}: tensor<16x64xf32>,
// TP2-SAME: %{{.*}}: tensor<32xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<16xf32>, %{{.*}}: tensor<16xf32>,
// TP2-SAME: %{{.*}}: tensor<64x32xf32>) -> (tensor<?x64xf32>, tensor<?x2x2x4x1x16xf32>)
// TP2: attn.qkv_projection
// TP2-SAME: -> tensor<?x2x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
// TP2: %[[NEW:.*]] = attn.kv_cache_store {{.*}} : tensor<?x1x16xf32>, tensor<?x1x16xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x4x1x16xf32>
// TP2: attn.paged_flash_attention %{{.*}}, %[[NEW]] {{.*}} : tensor<?x2x16xf32>, tensor<?x2x2x4x1x16xf32>
// TP2: %[[PARTIAL:.*]] = attn.linear %{{.*}}, %{{.*}} : tensor<?x32xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
// TP2-NEXT: %[[SUM:.*]] = shard.all_reduce %[[PARTIAL]] on @attn_devices grid_axes = [0] : tensor<?x64xf32> -> tensor<?x64xf32>
// TP2-NEXT: return %[[SUM]], %[[NEW]]

// Data parallel: full replicas, no annotation.
// DP: shard.grid @attn_devices(shape = 2)
// DP-NOT: shard.
// DP: attn.qkv_projection
// DP-SAME: -> tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
// DP-NOT: shard.
