// The whole NVVM pipeline with the kernels as PTX text (LLVM's NVPTX
// back-end only: no ptxas needed). attn-lower-to-nvvm-fatbin.mlir runs the
// default fatbin format through ptxas.
// RUN: attn-opt %s --attn-lower-to-nvvm="format=isa" -o %t.mlir
// RUN: FileCheck %s --check-prefix=CHECK-HOST < %t.mlir
// RUN: FileCheck %s --check-prefix=CHECK-ONLY-LLVM < %t.mlir
// The PTX is one escaped string attribute of the gpu.binary: unescape its
// newlines and tabs to check it line by line.
// RUN: sed -e 's/\\0A/\n/g' -e 's/\\09/ /g' %t.mlir | FileCheck %s --check-prefix=CHECK-PTX
// The chip and PTX features options reach the target.
// RUN: attn-opt %s --attn-lower-to-nvvm="format=isa chip=sm_80 features=+ptx70" | sed -e 's/\\0A/\n/g' | FileCheck %s --check-prefix=CHECK-SM80
// fuse=false: RoPE of q and k and the store as separate kernels.
// RUN: attn-opt %s --attn-lower-to-nvvm="format=isa fuse=false" | FileCheck %s --check-prefix=CHECK-UNFUSED

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>

// Host code: one stream per call; the q/k/v projection (one GEMM over the
// three weights), the fused RoPE + in-place cache store, attention, the
// combine and the output projection launched in order on it; intermediates
// (and the split partials) allocated and freed on the stream; the stream
// synchronised and destroyed before returning.
// CHECK-HOST-LABEL: llvm.func @small_layer(
// CHECK-HOST: [[STREAM:%[0-9]+]] = llvm.call @mgpuStreamCreate() : () -> !llvm.ptr
// CHECK-HOST: llvm.call @mgpuMemAlloc(%{{[0-9]+}}, [[STREAM]], %{{[0-9]+}}) : (i64, !llvm.ptr, i8) -> !llvm.ptr
// The projections: the GEMV for at most 16 rows, else the wgmma GEMM of
// M's shape (its stages in dynamic shared memory), picked on the host.
// CHECK-HOST: llvm.cond_br %{{[0-9]+}}, ^[[GEMV:bb[0-9]+]], ^[[GEMM:bb[0-9]+]]
// CHECK-HOST: ^[[GEMV]]:
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemv blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: ^[[GEMM]]:
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma_m64 blocks in
// CHECK-HOST-SAME: dynamic_shared_memory_size
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma_m128 blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma_m1024 blocks in
// CHECK-HOST-NOT: gpu.launch_func
// Each GEMM launch passes the four tensor maps (x, wq, wk, wv) that the
// host encoded just before it by value, then the buffers of the index checks
// (row offsets first) that its extra block runs.
// CHECK-HOST-COUNT-4: llvm.call @attnCudaEncodeTensorMap(
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma blocks in
// CHECK-HOST-SAME: : !llvm.array<16 x i64>, %{{[0-9]+}} : !llvm.array<16 x i64>, %{{[0-9]+}} : !llvm.array<16 x i64>, %{{[0-9]+}} : !llvm.array<16 x i64>, %arg7 : !llvm.ptr, %arg8 : !llvm.ptr,
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@rope_store blocks in
// CHECK-HOST-NOT: gpu.launch_func
// The host picks the attention schedule: only that kernel is launched. The
// branch splits the stream region (each part "creates" the caller's stream
// and waits for it; the runtime makes those waits no-ops, docs/ABI.md).
// CHECK-HOST: llvm.cond_br %{{[0-9]+}}, ^[[DECODE:bb[0-9]+]], ^[[PREFILL:bb[0-9]+]]
// CHECK-HOST: ^[[DECODE]]:
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@paged_flash_attention_decode blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: ^[[PREFILL]]:
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@paged_flash_attention_prefill blocks in
// CHECK-HOST-SAME: dynamic_shared_memory_size
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: [[STREAM2:%[0-9]+]] = llvm.call @mgpuStreamCreate() : () -> !llvm.ptr
// CHECK-HOST-NEXT: gpu.launch_func <[[STREAM2]] : !llvm.ptr> @attn_kernels::@attention_combine blocks in
// CHECK-HOST-NEXT: llvm.call @mgpuMemFree(%{{[0-9]+}}, [[STREAM2]]) : (!llvm.ptr, !llvm.ptr) -> ()
// CHECK-HOST-NEXT: llvm.call @mgpuMemFree(%{{[0-9]+}}, [[STREAM2]]) : (!llvm.ptr, !llvm.ptr) -> ()
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemv_0 blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma_m64_0 blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma_m128_0 blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma_m1024_0 blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: gpu.launch_func <%{{[0-9]+}} : !llvm.ptr> @attn_kernels::@gemm_wgmma_0 blocks in
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: [[STREAM3:%[0-9]+]] = llvm.call @mgpuStreamCreate() : () -> !llvm.ptr
// CHECK-HOST: llvm.call @mgpuMemFree(%{{[0-9]+}}, [[STREAM3]])
// CHECK-HOST-NOT: gpu.launch_func
// CHECK-HOST: llvm.call @mgpuStreamSynchronize([[STREAM3]]) : (!llvm.ptr) -> ()
// CHECK-HOST-NEXT: llvm.call @mgpuStreamDestroy([[STREAM3]]) : (!llvm.ptr) -> ()
// CHECK-HOST: llvm.return
// The C entry point: the 9 arguments (the cache as its three parts) and the
// out-parameter, all descriptors passed by pointer; the cache is no result.
// CHECK-HOST-LABEL: llvm.func @_mlir_ciface_small_layer(
// CHECK-HOST-SAME: %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr,
// CHECK-HOST-SAME: %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr)
// CHECK-HOST-SAME: attributes {llvm.emit_c_interface}
// CHECK-HOST: llvm.call @small_layer(
// CHECK-HOST: llvm.return
// CHECK-HOST: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx84">, properties = {{.*}}, assembly = "
// CHECK-HOST-DAG: llvm.func @mgpuStreamCreate() -> !llvm.ptr
// CHECK-HOST-DAG: llvm.func @mgpuMemAlloc(i64, !llvm.ptr, i8) -> !llvm.ptr
// CHECK-HOST-DAG: llvm.func @mgpuMemFree(!llvm.ptr, !llvm.ptr)
// CHECK-HOST-DAG: llvm.func @mgpuStreamSynchronize(!llvm.ptr)
// CHECK-HOST-DAG: llvm.func @mgpuStreamDestroy(!llvm.ptr)
// CHECK-HOST-DAG: llvm.func @attnCudaEncodeTensorMap(!llvm.ptr, i64, i32, i64, i64, i64, i32, i32)

// CHECK-UNFUSED-LABEL: llvm.func @small_layer(
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@gemv blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@gemm_wgmma_m64 blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@rope blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@rope_0 blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@kv_cache_store blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@paged_flash_attention_decode blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@paged_flash_attention_prefill blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@attention_combine blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@gemv_0 blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@gemm_wgmma_m64_0 blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@gemm_wgmma_m128_0 blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@gemm_wgmma_m1024_0 blocks in
// CHECK-UNFUSED: gpu.launch_func <{{.*}}> @attn_kernels::@gemm_wgmma_0 blocks in
// CHECK-UNFUSED-NOT: gpu.launch_func

// Nothing but the LLVM dialect, the binary and the launches is left.
// CHECK-ONLY-LLVM-NOT: attn.
// CHECK-ONLY-LLVM-NOT: func.func
// CHECK-ONLY-LLVM-NOT: gpu.module
// CHECK-ONLY-LLVM-NOT: gpu.func
// CHECK-ONLY-LLVM-NOT: {{[ "](arith|math|memref|scf|vector|nvgpu|cf|tensor|bufferization)\.[a-z_]+}}
// CHECK-ONLY-LLVM-NOT: unrealized_conversion_cast

// The kernels target sm_90a; every kernel is an entry with its block size; the GEMMs and
// attention on tensor cores (bf16 mma.sync m16n8k16 with f32 accumulators,
// ldmatrix from shared memory, transposed for V), the softmax's butterfly
// shuffles. (exp2 becomes ex2.approx only when libdevice is linked, which
// needs the CUDA toolkit: attn-lower-to-nvvm-fatbin.mlir checks it.)
// CHECK-PTX: .version 8.4
// CHECK-PTX-NEXT: .target sm_90a
// CHECK-PTX-NEXT: .address_size 64
// The decode GEMV: mma.sync on fragments loaded straight from memory.
// CHECK-PTX-LABEL: .visible .entry gemv(
// CHECK-PTX: .maxntid 512, 1, 1
// The q/k/v projection carries the index checks: its last block in x (block
// y = z = 0 of that column) runs them and returns, the others do the GEMV.
// CHECK-PTX: mov.u32 %r{{[0-9]+}}, %nctaid.x;
// CHECK-PTX: mov.u32 %r{{[0-9]+}}, %ctaid.x;
// CHECK-PTX: setp.ne.b64 [[NOTLAST:%p[0-9]+]],
// CHECK-PTX-NEXT: @[[NOTLAST]] bra
// CHECK-PTX-NOT: .entry
// CHECK-PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-PTX-NOT: .entry
// CHECK-PTX: atom.shared.min.s32 {{.*}}[__wg_gemv_1]
// CHECK-PTX-NOT: .entry
// CHECK-PTX: atom.acq_rel.sys.global.cas.b32 {{.*}}[attn_status]
// The GEMMs: a producer thread (TMA through the tensor maps, which are
// 64-byte aligned 128-byte grid-constant parameters, mbarriers counting
// their bytes) and one or two consumer warpgroups keeping one wgmma group
// in flight across K steps.
// CHECK-PTX-LABEL: .visible .entry gemm_wgmma_m64(
// CHECK-PTX: .maxntid 256, 1, 1
// CHECK-PTX-NOT: .entry
// CHECK-PTX: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// CHECK-PTX-LABEL: .visible .entry gemm_wgmma_m128(
// CHECK-PTX: .maxntid 384, 1, 1
// CHECK-PTX-NOT: .entry
// CHECK-PTX: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16
// CHECK-PTX-LABEL: .visible .entry gemm_wgmma(
// CHECK-PTX-COUNT-4: .param .align 64 .b8 gemm_wgmma_param_{{[0-9]+}}[128]
// CHECK-PTX: .maxntid 384, 1, 1
// CHECK-PTX-NOT: .entry
// CHECK-PTX-DAG: cvta.param.u64
// CHECK-PTX-DAG: shfl.sync.idx.b32
// CHECK-PTX-DAG: mbarrier.init.shared.b64
// CHECK-PTX-DAG: mbarrier.arrive.expect_tx.shared.b64
// CHECK-PTX-DAG: cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// CHECK-PTX-DAG: mbarrier.arrive.shared.b64
// CHECK-PTX-DAG: mbarrier.try_wait.parity.shared.b64
// CHECK-PTX-DAG: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16
// CHECK-PTX-DAG: wgmma.wait_group.sync.aligned 1
// CHECK-PTX-DAG: wgmma.wait_group.sync.aligned 0
// The epilogue through shared memory: pairs stored into the tile, a named
// barrier over the two consumer warpgroups, 16-byte chunks out.
// CHECK-PTX-DAG: st.shared.b32
// CHECK-PTX-DAG: bar.sync 1, 256;
// CHECK-PTX-DAG: ld.shared.v4.b32
// CHECK-PTX-DAG: st.global.v4.b32
// The fused RoPE + store: a warp per (row, head), nothing else in between.
// CHECK-PTX-LABEL: .visible .entry rope_store(
// CHECK-PTX: .maxntid 256, 1, 1
// Prefill: K/V by cp.async into swizzled tiles, made visible to the tensor
// cores, S = Q K^T and O += P V (V transposed: the last immediate is 1) on
// warpgroup MMA.
// CHECK-PTX-LABEL: .visible .entry paged_flash_attention_prefill(
// CHECK-PTX: .maxntid 128, 1, 1
// CHECK-PTX-NOT: .entry
// CHECK-PTX-DAG: cp.async.cg.shared.global
// CHECK-PTX-DAG: fence.proxy.async.shared::cta
// CHECK-PTX-DAG: wgmma.fence.sync.aligned
// CHECK-PTX-DAG: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 0;
// CHECK-PTX-DAG: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0, 1;
// CHECK-PTX-DAG: wgmma.wait_group.sync.aligned 0
// CHECK-PTX-DAG: shfl.sync.bfly.b32
// The softmax: P = 2^(fma(s, scale, -m)); a warp vote decides the rescale.
// CHECK-PTX-DAG: fma.rn.f32
// CHECK-PTX-DAG: ex2.approx.f32
// CHECK-PTX-DAG: vote.sync.any.pred
// Decode: keys split across the warps, mma.sync, at most 128 registers.
// CHECK-PTX-LABEL: .visible .entry paged_flash_attention_decode(
// CHECK-PTX: .maxntid 128, 1, 1
// CHECK-PTX-NEXT: .minnctapersm 4
// CHECK-PTX-NOT: .entry
// CHECK-PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-PTX-DAG: shfl.sync.bfly.b32
// CHECK-PTX-LABEL: .visible .entry attention_combine(
// CHECK-PTX: .maxntid 256, 1, 1
// CHECK-PTX-LABEL: .visible .entry gemv_0(
// CHECK-PTX: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-PTX-LABEL: .visible .entry gemm_wgmma_0(
// CHECK-PTX: wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16

// CHECK-SM80: gpu.binary @attn_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx70">
// CHECK-SM80: .version 7.0
// CHECK-SM80-NEXT: .target sm_80
// CHECK-SM80: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
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
