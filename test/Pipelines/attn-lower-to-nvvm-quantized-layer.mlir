// RUN: attn-opt %s --attn-lower-to-nvvm | FileCheck %s

// A GPTQ layer (Llama-style composite) through the whole NVVM pipeline:
// q, k and v share one launch over the three weights (fusion keeps them
// separate values, no stacked copy): the GEMV up to 64 rows (8 or 16
// rows a block), else the GEMM (64 tokens a block up to 128 rows, else
// 128); o_proj has its own.

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>
!w = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128>>
!wkv = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>

// CHECK-LABEL: llvm.func @composite_gptq(
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemv_gptq blocks
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemv_gptq_m16 blocks
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemm_gptq_wgmma_m128 blocks
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemm_gptq_wgmma blocks
// CHECK-NOT: @attn_kernels::@gem
// CHECK: @attn_kernels::@rope_store blocks
// CHECK-NOT: @attn_kernels::@gem
// CHECK: @attn_kernels::@paged_flash_attention_decode blocks
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemv_gptq_0 blocks
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemv_gptq_m16_0 blocks
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemm_gptq_wgmma_m128_0 blocks
// CHECK: gpu.launch_func {{.*}} @attn_kernels::@gemm_gptq_wgmma_0 blocks
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.binary @attn_kernels
func.func @composite_gptq(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache,
                          %qq: tensor<32x256xi32>, %sq: tensor<2x256xf16>, %qk: tensor<32x128xi32>, %sk: tensor<2x128xf16>,
                          %qv: tensor<32x128xi32>, %sv: tensor<2x128xf16>, %qo: tensor<32x256xi32>, %so: tensor<2x256xf16>)
    -> (tensor<?x256xbf16>, !cache) {
  %wq = attn.quantized_weight(%qq, %sq) : (tensor<32x256xi32>, tensor<2x256xf16>) -> !w
  %wk = attn.quantized_weight(%qk, %sk) : (tensor<32x128xi32>, tensor<2x128xf16>) -> !wkv
  %wv = attn.quantized_weight(%qv, %sv) : (tensor<32x128xi32>, tensor<2x128xf16>) -> !wkv
  %wo = attn.quantized_weight(%qo, %so) : (tensor<32x256xi32>, tensor<2x256xf16>) -> !w
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 0 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, !w, !wkv, !wkv, !w) -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}
