// The whole NVVM pipeline with the kernels as PTX text (LLVM's NVPTX
// back-end only: no ptxas needed). attn-lower-to-nvvm-fatbin.mlir runs the
// default fatbin format through ptxas.
// RUN: attn-opt %s --attn-lower-to-nvvm="format=isa" -o %t.mlir
// RUN: FileCheck %s --check-prefix=HOST < %t.mlir
// RUN: FileCheck %s --check-prefix=ONLY-LLVM < %t.mlir
// The PTX is one escaped string attribute of the gpu.binary: unescape its
// newlines and tabs to check it line by line.
// RUN: sed -e 's/\\0A/\n/g' -e 's/\\09/ /g' %t.mlir | FileCheck %s --check-prefix=PTX
// The chip and PTX features options reach the target.
// RUN: attn-opt %s --attn-lower-to-nvvm="format=isa chip=sm_80 features=+ptx70" | sed -e 's/\\0A/\n/g' | FileCheck %s --check-prefix=SM80
// fuse=false: RoPE of q and k and the store as separate kernels.
// RUN: attn-opt %s --attn-lower-to-nvvm="format=isa fuse=false" | FileCheck %s --check-prefix=UNFUSED

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>

// Host code: one stream per call; the q/k/v projection (one GEMM over the
// three weights), the fused RoPE + in-place cache store, attention, the
// combine and the output projection launched in order on it; intermediates
// (and the split partials) allocated and freed on the stream; the stream
// synchronised and destroyed before returning.
// HOST-LABEL: llvm.func @small_layer(
// HOST: [[STREAM:%[0-9]+]] = llvm.call @mgpuStreamCreate() : () -> !llvm.ptr
// HOST: llvm.call @mgpuMemAlloc(%{{[0-9]+}}, [[STREAM]], %{{[0-9]+}}) : (i64, !llvm.ptr, i8) -> !llvm.ptr
// HOST: gpu.launch_func <[[STREAM]] : !llvm.ptr> @attn_kernels::@matmul blocks in
// HOST-NOT: gpu.launch_func
// HOST: gpu.launch_func <[[STREAM]] : !llvm.ptr> @attn_kernels::@rope_store blocks in
// HOST-NOT: gpu.launch_func
// Both attention schedules launch (the one a call does not pick as a single idle block).
// HOST: gpu.launch_func <[[STREAM]] : !llvm.ptr> @attn_kernels::@paged_flash_attention_prefill blocks in
// HOST-SAME: dynamic_shared_memory_size
// HOST: gpu.launch_func <[[STREAM]] : !llvm.ptr> @attn_kernels::@paged_flash_attention_decode blocks in
// HOST: gpu.launch_func <[[STREAM]] : !llvm.ptr> @attn_kernels::@attention_combine blocks in
// HOST-NEXT: llvm.call @mgpuMemFree(%{{[0-9]+}}, [[STREAM]]) : (!llvm.ptr, !llvm.ptr) -> ()
// HOST-NEXT: llvm.call @mgpuMemFree(%{{[0-9]+}}, [[STREAM]]) : (!llvm.ptr, !llvm.ptr) -> ()
// HOST: gpu.launch_func <[[STREAM]] : !llvm.ptr> @attn_kernels::@matmul_0 blocks in
// HOST-NOT: gpu.launch_func
// HOST: llvm.call @mgpuMemFree(%{{[0-9]+}}, [[STREAM]])
// HOST-NOT: gpu.launch_func
// HOST: llvm.call @mgpuStreamSynchronize([[STREAM]]) : (!llvm.ptr) -> ()
// HOST-NEXT: llvm.call @mgpuStreamDestroy([[STREAM]]) : (!llvm.ptr) -> ()
// HOST-NEXT: llvm.return
// The C entry point: the 9 arguments (the cache as its three parts) and the
// out-parameter, all descriptors passed by pointer; the cache is no result.
// HOST-LABEL: llvm.func @_mlir_ciface_small_layer(
// HOST-SAME: %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr,
// HOST-SAME: %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr)
// HOST-SAME: attributes {llvm.emit_c_interface}
// HOST: llvm.call @small_layer(
// HOST: llvm.return
// HOST: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">, properties = {{.*}}, assembly = "
// HOST-DAG: llvm.func @mgpuStreamCreate() -> !llvm.ptr
// HOST-DAG: llvm.func @mgpuMemAlloc(i64, !llvm.ptr, i8) -> !llvm.ptr
// HOST-DAG: llvm.func @mgpuMemFree(!llvm.ptr, !llvm.ptr)
// HOST-DAG: llvm.func @mgpuStreamSynchronize(!llvm.ptr)
// HOST-DAG: llvm.func @mgpuStreamDestroy(!llvm.ptr)

// UNFUSED-LABEL: llvm.func @small_layer(
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@matmul blocks in
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@rope blocks in
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@rope_0 blocks in
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@kv_cache_store blocks in
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@paged_flash_attention_prefill blocks in
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@paged_flash_attention_decode blocks in
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@attention_combine blocks in
// UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@matmul_0 blocks in
// UNFUSED-NOT: gpu.launch_func

// Nothing but the LLVM dialect, the binary and the launches is left.
// ONLY-LLVM-NOT: attn.
// ONLY-LLVM-NOT: func.func
// ONLY-LLVM-NOT: gpu.module
// ONLY-LLVM-NOT: gpu.func
// ONLY-LLVM-NOT: {{[ "](arith|math|memref|scf|vector|nvgpu|cf|tensor|bufferization)\.[a-z_]+}}
// ONLY-LLVM-NOT: unrealized_conversion_cast

// The kernels target sm_90a; every kernel is an entry with its block size; the GEMMs and
// attention on tensor cores (bf16 mma.sync m16n8k16 with f32 accumulators,
// ldmatrix from shared memory, transposed for V), the softmax's butterfly
// shuffles. (exp2 becomes ex2.approx only when libdevice is linked, which
// needs the CUDA toolkit: attn-lower-to-nvvm-fatbin.mlir checks it.)
// PTX: .version 8.0
// PTX-NEXT: .target sm_90a
// PTX-NEXT: .address_size 64
// PTX-LABEL: .visible .entry matmul(
// PTX: .maxntid 128, 1, 1
// PTX-NOT: .entry
// PTX: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX-NOT: .entry
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// The fused RoPE + store: a warp per (row, head), nothing else in between.
// PTX-LABEL: .visible .entry rope_store(
// PTX: .maxntid 256, 1, 1
// Prefill: K/V by cp.async into swizzled tiles, made visible to the tensor
// cores, S = Q K^T and O += P V (V transposed: the last immediate is 1) on
// warpgroup MMA.
// PTX-LABEL: .visible .entry paged_flash_attention_prefill(
// PTX: .maxntid 128, 1, 1
// PTX-NOT: .entry
// PTX-DAG: cp.async.cg.shared.global
// PTX-DAG: fence.proxy.async.shared::cta
// PTX-DAG: wgmma.fence.sync.aligned
// PTX-DAG: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 0;
// PTX-DAG: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 1;
// PTX-DAG: wgmma.wait_group.sync.aligned 0
// PTX-DAG: shfl.sync.bfly.b32
// Decode: keys split across the warps, mma.sync, at most 128 registers.
// PTX-LABEL: .visible .entry paged_flash_attention_decode(
// PTX: .maxntid 128, 1, 1
// PTX-NEXT: .minnctapersm 4
// PTX-NOT: .entry
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// PTX-DAG: shfl.sync.bfly.b32
// PTX-LABEL: .visible .entry attention_combine(
// PTX: .maxntid 256, 1, 1
// PTX-LABEL: .visible .entry matmul_0(
// PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32

// SM80: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx70">
// SM80: .version 7.0
// SM80-NEXT: .target sm_80
// SM80: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
func.func @small_layer(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %c: !cache, %wq: tensor<256x256xbf16>,
                       %wk: tensor<128x256xbf16>, %wv: tensor<128x256xbf16>, %wo: tensor<256x256xbf16>)
    -> (tensor<?x256xbf16>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !cache, tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>, tensor<256x256xbf16>)
      -> (tensor<?x256xbf16>, !cache)
  return %o, %c2 : tensor<?x256xbf16>, !cache
}
