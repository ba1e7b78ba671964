// The steps of sharding a layer of primitive attn ops with the upstream shard
// passes: weights annotated (q, k, v rows by head, o_proj columns), the
// shardings propagated, the layer partitioned into the program of each of 2
// devices, the partial o_proj output all-reduced, and the all-reduce lowered
// to MPI.
// RUN: attn-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation,cse))' | FileCheck %s --check-prefix=PROP
// RUN: attn-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition))' | FileCheck %s --check-prefix=PART
// RUN: attn-opt %s --pass-pipeline='builtin.module(func.func(sharding-propagation,shard-partition),attn-lower-all-reduce-to-mpi)' | FileCheck %s --check-prefix=MPI

// 4 query heads, 2 kv heads of 16, hidden 64; biases and qk-norm.
shard.grid @grid(shape = 2)
func.func @layer(%x: tensor<?x64xf32>, %offsets: tensor<?xi32>, %lengths: tensor<?xi32>,
                 %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>,
                 %bq: tensor<64xf32>, %bk: tensor<32xf32>, %bv: tensor<32xf32>,
                 %gq: tensor<16xf32>, %gk: tensor<16xf32>, %wo: tensor<64x64xf32>) -> tensor<?x64xf32> {
  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding
  %wq_s = shard.shard %wq to %rows : tensor<64x64xf32>
  %wk_s = shard.shard %wk to %rows : tensor<32x64xf32>
  %wv_s = shard.shard %wv to %rows : tensor<32x64xf32>
  %wo_s = shard.shard %wo to %cols : tensor<64x64xf32>
  %q, %k, %v = attn.qkv_projection %x weights(%wq_s, %wk_s, %wv_s) bias(%bq, %bk, %bv)
      : tensor<?x64xf32>, (tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>), (tensor<64xf32>, tensor<32xf32>, tensor<32xf32>)
      -> tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>
  %qn = attn.rms_norm %q, %gq : tensor<?x4x16xf32>, tensor<16xf32>
  %kn = attn.rms_norm %k, %gk : tensor<?x2x16xf32>, tensor<16xf32>
  %freqs = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<64x16xf32>
  %qr = attn.rope %qn, %freqs positions(%offsets, %lengths) : tensor<?x4x16xf32>, tensor<64x16xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %kn, %freqs positions(%offsets, %lengths) : tensor<?x2x16xf32>, tensor<64x16xf32>, tensor<?xi32>, tensor<?xi32>
  %o = attn.flash_attention %qr, %kr, %v rows(%offsets, %offsets)
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>
  %flat = tensor.collapse_shape %o [[0], [1, 2]] : tensor<?x4x16xf32> into tensor<?x64xf32>
  %out = attn.linear %flat, %wo_s : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %out : tensor<?x64xf32>
}

// Three shardings: weight rows, dimension 1 (heads, o_proj columns), replicated.
// PROP-LABEL: func.func @layer
// PROP-SAME: (%[[X:[^:]*]]: tensor<?x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>,
// PROP-SAME: %[[BQ:[^:]*]]: tensor<64xf32>, %[[BK:[^:]*]]: tensor<32xf32>, %[[BV:[^:]*]]: tensor<32xf32>, %[[GQ:[^:]*]]: tensor<16xf32>, %[[GK:[^:]*]]: tensor<16xf32>
// PROP-DAG: %[[ROWS:.*]] = shard.sharding @grid split_axes = {{\[\[}}0]] :
// PROP-DAG: %[[DIM1:.*]] = shard.sharding @grid split_axes = {{\[\[}}], [0]] :
// PROP-DAG: %[[REPL:.*]] = shard.sharding @grid split_axes = {{\[\[}}]] :
// PROP-DAG: %[[WQ0:.*]] = shard.shard %{{.*}} to %[[ROWS]] : tensor<64x64xf32>
// PROP-DAG: %[[WO0:.*]] = shard.shard %{{.*}} to %[[DIM1]] : tensor<64x64xf32>
// The projection: x replicated, weights and biases split by rows, q, k and v by heads.
// PROP: %[[XS:.*]] = shard.shard %[[X]] to %[[REPL]] annotate_for_users : tensor<?x64xf32>
// PROP: %[[WQ:.*]] = shard.shard %[[WQ0]] to %[[ROWS]] annotate_for_users : tensor<64x64xf32>
// PROP: %[[WK:.*]] = shard.shard %{{.*}} to %[[ROWS]] annotate_for_users : tensor<32x64xf32>
// PROP: %[[WV:.*]] = shard.shard %{{.*}} to %[[ROWS]] annotate_for_users : tensor<32x64xf32>
// PROP: %[[BQS:.*]] = shard.shard %[[BQ]] to %[[ROWS]] annotate_for_users : tensor<64xf32>
// PROP: %[[BKS:.*]] = shard.shard %[[BK]] to %[[ROWS]] annotate_for_users : tensor<32xf32>
// PROP: %[[BVS:.*]] = shard.shard %[[BV]] to %[[ROWS]] annotate_for_users : tensor<32xf32>
// PROP: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection %[[XS]] weights(%[[WQ]], %[[WK]], %[[WV]]) bias(%[[BQS]], %[[BKS]], %[[BVS]])
// PROP-DAG: shard.shard %[[V]] to %[[DIM1]] : tensor<?x2x16xf32>
// PROP-DAG: shard.shard %[[K]] to %[[DIM1]] : tensor<?x2x16xf32>
// PROP-DAG: shard.shard %[[Q]] to %[[DIM1]] : tensor<?x4x16xf32>
// qk-norm: per head, the gamma replicated.
// PROP: shard.shard %[[GQ]] to %[[REPL]] annotate_for_users : tensor<16xf32>
// PROP: %[[QN:.*]] = attn.rms_norm
// PROP-NEXT: shard.shard %[[QN]] to %[[DIM1]] : tensor<?x4x16xf32>
// PROP: shard.shard %[[GK]] to %[[REPL]] annotate_for_users : tensor<16xf32>
// PROP: %[[KN:.*]] = attn.rms_norm
// PROP-NEXT: shard.shard %[[KN]] to %[[DIM1]] : tensor<?x2x16xf32>
// RoPE: per head; table, row offsets and cache lengths replicated.
// PROP: %[[FREQS:.*]] = attn.rope_freqs
// PROP: %[[FREQSS:.*]] = shard.shard %[[FREQS]] to %[[REPL]] annotate_for_users : tensor<64x16xf32>
// PROP: %[[OFFS:.*]] = shard.shard %[[OFF]] to %[[REPL]] annotate_for_users : tensor<?xi32>
// PROP: %[[LENS:.*]] = shard.shard %[[LEN]] to %[[REPL]] annotate_for_users : tensor<?xi32>
// PROP: %[[QR:.*]] = attn.rope %{{.*}}, %[[FREQSS]] positions(%[[OFFS]], %[[LENS]])
// PROP-NEXT: shard.shard %[[QR]] to %[[DIM1]] : tensor<?x4x16xf32>
// PROP: %[[KR:.*]] = attn.rope %{{.*}}, %[[FREQSS]] positions(%[[OFFS]], %[[LENS]])
// PROP-NEXT: shard.shard %[[KR]] to %[[DIM1]] : tensor<?x2x16xf32>
// Attention on each device's heads; the heads joined; o_proj by columns, its
// output replicated (a partial sum before the partition's all-reduce).
// PROP: %[[O:.*]] = attn.flash_attention
// PROP-NEXT: shard.shard %[[O]] to %[[DIM1]] : tensor<?x4x16xf32>
// PROP: %[[FLAT:.*]] = tensor.collapse_shape
// PROP-NEXT: shard.shard %[[FLAT]] to %[[DIM1]] : tensor<?x64xf32>
// PROP: %[[WO:.*]] = shard.shard %[[WO0]] to %[[DIM1]] annotate_for_users : tensor<64x64xf32>
// PROP: %[[OUT:.*]] = attn.linear %{{.*}}, %[[WO]]
// PROP-NEXT: %[[OUTS:.*]] = shard.shard %[[OUT]] to %[[REPL]] : tensor<?x64xf32>
// PROP-NEXT: return %[[OUTS]]

// Each device: 2 query heads (32 q rows), 1 kv head (16 k and v rows), 32
// o_proj columns; no shard op is left but the all-reduce.
// PART-LABEL: func.func @layer
// PART-SAME: (%[[X:[^:]*]]: tensor<?x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>,
// PART-SAME: %[[WQ:[^:]*]]: tensor<32x64xf32>, %[[WK:[^:]*]]: tensor<16x64xf32>, %[[WV:[^:]*]]: tensor<16x64xf32>,
// PART-SAME: %[[BQ:[^:]*]]: tensor<32xf32>, %[[BK:[^:]*]]: tensor<16xf32>, %[[BV:[^:]*]]: tensor<16xf32>,
// PART-SAME: %[[GQ:[^:]*]]: tensor<16xf32>, %[[GK:[^:]*]]: tensor<16xf32>, %[[WO:[^:]*]]: tensor<64x32xf32>) -> tensor<?x64xf32>
// PART-NOT: shard.shard
// PART-NOT: shard.sharding
// PART: %[[Q:.*]], %[[K:.*]], %[[V:.*]] = attn.qkv_projection %[[X]] weights(%[[WQ]], %[[WK]], %[[WV]]) bias(%[[BQ]], %[[BK]], %[[BV]])
// PART-SAME: -> tensor<?x2x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
// PART: %[[QN:.*]] = attn.rms_norm %[[Q]], %[[GQ]] : tensor<?x2x16xf32>, tensor<16xf32>
// PART: %[[KN:.*]] = attn.rms_norm %[[K]], %[[GK]] : tensor<?x1x16xf32>, tensor<16xf32>
// PART: %[[FREQS:.*]] = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<64x16xf32>
// PART: %[[QR:.*]] = attn.rope %[[QN]], %[[FREQS]] positions(%[[OFF]], %[[LEN]]) : tensor<?x2x16xf32>
// PART: %[[KR:.*]] = attn.rope %[[KN]], %[[FREQS]] positions(%[[OFF]], %[[LEN]]) : tensor<?x1x16xf32>
// PART: %[[O:.*]] = attn.flash_attention %[[QR]], %[[KR]], %[[V]] rows(%[[OFF]], %[[OFF]]) : tensor<?x2x16xf32>, tensor<?x1x16xf32>, tensor<?x1x16xf32>
// PART: %[[FLAT:.*]] = tensor.collapse_shape %[[O]] {{\[}}[0], [1, 2]] : tensor<?x2x16xf32> into tensor<?x32xf32>
// PART: %[[PARTIAL:.*]] = attn.linear %[[FLAT]], %[[WO]] : tensor<?x32xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
// PART: %[[SUM:.*]] = shard.all_reduce %[[PARTIAL]] on @grid grid_axes = [0] : tensor<?x64xf32> -> tensor<?x64xf32>
// PART-NOT: shard.
// PART: return %[[SUM]] : tensor<?x64xf32>

// MPI: module attributes {dlti.map = #dlti.map<"MPI:Implementation" = "OpenMPI">}
// MPI-NOT: shard.grid
// MPI: %[[PARTIAL:.*]] = attn.linear
// MPI: %[[SEND:.*]] = bufferization.to_buffer %[[PARTIAL]]
// MPI: mpi.allreduce(%{{.*}}, %{{.*}}, MPI_SUM, %{{.*}}) : memref<?xf32>, memref<?xf32>
// MPI-NOT: shard.
