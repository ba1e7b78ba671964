// RUN: attn-opt %s --attn-expand-composite -split-input-file | FileCheck %s --check-prefix=EXPAND
// RUN: attn-opt %s --attn-fuse-projection-epilogues --attn-fuse-qkv -split-input-file | FileCheck %s --check-prefix=FUSE

// Quantised weights pass through the expansion and the fusions as values:
// the projections take the same !attn.quantized_weight, nothing decodes,
// concatenates or copies them.

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>
!wq = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128, desc_act = true>>
!wkv = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, desc_act = true>>

// EXPAND-LABEL: func @composite_gptq
// EXPAND: %[[WQ:.*]] = attn.quantized_weight(%{{.*}}, %{{.*}}, %[[P:[^)]*]])
// EXPAND: %[[WK:.*]] = attn.quantized_weight(%{{.*}}, %{{.*}}, %[[P]])
// EXPAND: %[[WV:.*]] = attn.quantized_weight(%{{.*}}, %{{.*}}, %[[P]])
// EXPAND: %[[WO:.*]] = attn.quantized_weight(%{{.*}}, %{{.*}}, %{{.*}})
// EXPAND: attn.qkv_projection %{{.*}} weights(%[[WQ]], %[[WK]], %[[WV]]) : tensor<?x256xbf16>, (!attn.quantized_weight<256x256, #attn.gptq<group_size = 128, desc_act = true>>, !attn.quantized_weight<128x256, {{.*}}>, !attn.quantized_weight<128x256, {{.*}}>) -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
// EXPAND: attn.linear %{{.*}}, %[[WO]] : tensor<?x256xbf16>, !attn.quantized_weight<256x256, #attn.gptq<group_size = 128, desc_act = true>> -> tensor<?x256xbf16>
// EXPAND-NOT: attn.attention_with_rope
func.func @composite_gptq(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %perm: tensor<256xi32>,
                          %qq: tensor<32x256xi32>, %sq: tensor<2x256xf16>, %qk: tensor<32x128xi32>, %sk: tensor<2x128xf16>,
                          %qv: tensor<32x128xi32>, %sv: tensor<2x128xf16>, %qo: tensor<32x256xi32>, %so: tensor<2x256xf16>,
                          %permo: tensor<256xi32>) -> (tensor<?x256xbf16>, !cache) {
  %wq = attn.quantized_weight(%qq, %sq, %perm) : (tensor<32x256xi32>, tensor<2x256xf16>, tensor<256xi32>) -> !wq
  %wk = attn.quantized_weight(%qk, %sk, %perm) : (tensor<32x128xi32>, tensor<2x128xf16>, tensor<256xi32>) -> !wkv
  %wv = attn.quantized_weight(%qv, %sv, %perm) : (tensor<32x128xi32>, tensor<2x128xf16>, tensor<256xi32>) -> !wkv
  %wo = attn.quantized_weight(%qo, %so, %permo) : (tensor<32x256xi32>, tensor<2x256xf16>, tensor<256xi32>) -> !wq
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, !wq, !wkv, !wkv, !wq) -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}

// -----

!wq = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>
!wkv = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>

// Three GPTQ projections of one input: one qkv_projection of the three
// quantised weights (the lowering runs them as one op; nothing is stacked).
// FUSE-LABEL: func @gptq_linears
// FUSE-SAME: (%[[X:[^:]*]]: tensor<?x256xbf16>, %[[WQ:[^:]*]]: !attn.quantized_weight<256x256, {{.*}}>, %[[WK:[^:]*]]: !attn.quantized_weight<128x256, {{.*}}>, %[[WV:[^:]*]]: !attn.quantized_weight<128x256, {{.*}}>)
// FUSE-NOT: attn.linear
// FUSE: attn.qkv_projection %[[X]] weights(%[[WQ]], %[[WK]], %[[WV]]) : tensor<?x256xbf16>, (!attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>, !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>, !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>) -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
// FUSE-NOT: attn.linear
func.func @gptq_linears(%x: tensor<?x256xbf16>, %wq: !wq, %wk: !wkv, %wv: !wkv, %t: index)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %q = attn.linear %x, %wq : tensor<?x256xbf16>, !wq -> tensor<?x256xbf16>
  %k = attn.linear %x, %wk : tensor<?x256xbf16>, !wkv -> tensor<?x128xbf16>
  %v = attn.linear %x, %wv : tensor<?x256xbf16>, !wkv -> tensor<?x128xbf16>
  %q3 = tensor.expand_shape %q [[0], [1, 2]] output_shape [%t, 4, 64] : tensor<?x256xbf16> into tensor<?x4x64xbf16>
  %k3 = tensor.expand_shape %k [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  %v3 = tensor.expand_shape %v [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  return %q3, %k3, %v3 : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

!gptq = !attn.quantized_weight<32x128, #attn.gptq<group_size = 128>>
!f8 = !attn.quantized_weight<32x128, #attn.float8<weight_scale = row, input_scale = dynamic>>

// A bias add folds into a float8 linear, not into a GPTQ one (which takes no
// bias, as in MAX).
// FUSE-LABEL: func @bias_adds
// FUSE: %[[G:.*]] = attn.linear %{{.*}}, %{{.*}} : tensor<?x128xbf16>, !attn.quantized_weight<32x128, #attn.gptq<group_size = 128>> -> tensor<?x32xbf16>
// FUSE: linalg.add ins(%[[G]],
// FUSE: attn.linear %{{.*}}, %{{.*}} bias %{{.*}} : tensor<?x128xbf16>, !attn.quantized_weight<32x128, #attn.float8<weight_scale = row, input_scale = dynamic>>, tensor<32xbf16> -> tensor<?x32xbf16>
// FUSE-NOT: linalg.add
func.func @bias_adds(%x: tensor<?x128xbf16>, %wg: !gptq, %wf: !f8, %b: tensor<32xbf16>, %t: index)
    -> (tensor<?x32xbf16>, tensor<?x32xbf16>) {
  %e = tensor.empty(%t) : tensor<?x32xbf16>
  %bb = linalg.broadcast ins(%b : tensor<32xbf16>) outs(%e : tensor<?x32xbf16>) dimensions = [0]
  %g = attn.linear %x, %wg : tensor<?x128xbf16>, !gptq -> tensor<?x32xbf16>
  %gb = linalg.add ins(%g, %bb : tensor<?x32xbf16>, tensor<?x32xbf16>) outs(%e : tensor<?x32xbf16>) -> tensor<?x32xbf16>
  %f = attn.linear %x, %wf : tensor<?x128xbf16>, !f8 -> tensor<?x32xbf16>
  %fb = linalg.add ins(%f, %bb : tensor<?x32xbf16>, tensor<?x32xbf16>) outs(%e : tensor<?x32xbf16>) -> tensor<?x32xbf16>
  return %gb, %fb : tensor<?x32xbf16>, tensor<?x32xbf16>
}
