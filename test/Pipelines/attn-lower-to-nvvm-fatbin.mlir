// The default format of attn-lower-to-nvvm: ptxas (from the CUDA toolkit)
// assembles the kernels into a fatbin embedded in the host module.
// REQUIRES: ptxas
// RUN: attn-opt %s --attn-lower-to-nvvm -o %t.mlir
// RUN: FileCheck %s --check-prefix=CHECK-FATBIN < %t.mlir
// libdevice is linked: gpu-module-to-binary finds it, like ptxas, in the
// pipeline's toolkit (default: the one CUDA_ROOT / CUDA_HOME / CUDA_PATH name,
// which lit passes through, else /usr/local/cuda).
// Without it the kernels call undefined __nv_* functions and ptxas fails with
// "Unresolved extern function '__nv_exp2f'".
// RUN: attn-opt %s --attn-lower-to-nvvm="format=isa" | sed -e 's/\\0A/\n/g' -e 's/\\09/ /g' | FileCheck %s --check-prefix=CHECK-LIBDEVICE

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>

// A fatbin (magic 0xBA55ED50, little-endian) holding an sm_90a ELF cubin
// with every kernel's code and shared memory section; no PTX text is kept.
// CHECK-FATBIN: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx84">, properties = {{.*}}, "P\EDU\BA
// CHECK-FATBIN-SAME: \7FELF
// CHECK-FATBIN-DAG: .text.gemv\00
// CHECK-FATBIN-DAG: .text.gemm_wgmma\00
// CHECK-FATBIN-DAG: .text.gemv_0\00
// CHECK-FATBIN-DAG: .text.gemm_wgmma_0\00
// CHECK-FATBIN-DAG: .text.rope_store\00
// CHECK-FATBIN-DAG: .text.paged_flash_attention_prefill\00
// CHECK-FATBIN-DAG: .text.paged_flash_attention_decode\00
// CHECK-FATBIN-DAG: .nv.shared.paged_flash_attention_decode\00
// CHECK-FATBIN-DAG: .text.attention_combine\00
// CHECK-FATBIN-DAG: -arch sm_90a
// CHECK-FATBIN-NOT: assembly =
// CHECK-FATBIN: llvm.func @mgpuStreamCreate

// CHECK-LIBDEVICE-NOT: .extern .func
// CHECK-LIBDEVICE-LABEL: .visible .entry rope_store(
// CHECK-LIBDEVICE: __cudart_sin_cos_coeffs
// CHECK-LIBDEVICE-LABEL: .visible .entry paged_flash_attention_prefill(
// CHECK-LIBDEVICE: ex2.approx.f32
// CHECK-LIBDEVICE-LABEL: .visible .entry paged_flash_attention_decode(
// CHECK-LIBDEVICE: ex2.approx.f32
// CHECK-LIBDEVICE-LABEL: .visible .entry attention_combine(
// CHECK-LIBDEVICE: ex2.approx.f32
// CHECK-LIBDEVICE-NOT: .extern .func

// max_seq_len 8192 keeps the RoPE table from folding to a constant: the
// RoPE kernels compute cos / sin in f64 (libdevice).
func.func @small_layer(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %wq: tensor<256x256xbf16>,
                       %wk: tensor<128x256xbf16>, %wv: tensor<128x256xbf16>, %wo: tensor<256x256xbf16>)
    -> (tensor<?x256xbf16>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 8192 : i64, rope = #attn.rope<theta = 10000.0>, mask = #attn.mask<causal>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>, tensor<256x256xbf16>)
      -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}
