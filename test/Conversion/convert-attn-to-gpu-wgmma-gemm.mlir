// RUN: attn-opt %s --convert-attn-to-gpu --canonicalize --cse -split-input-file | FileCheck %s

// The projections on sm_90a (wgmma=true, the default): the host launches the
// GEMV kernel (16 warps splitting K) for at most 16 rows, else the warp-specialised wgmma GEMM of
// M's shape: up to 64 rows one consumer warpgroup on 64 x 64 tiles (eight
// 16 KB stages), up to 128 rows two on 128 x 64 tiles (six 24 KB stages),
// beyond two on 128 x 256 tiles (four 48 KB stages); each with a producer
// warpgroup and 1 KB of alignment. Clipped weights keep the mma.sync kernel
// (convert-attn-to-gpu-matmul.mlir, -gemv.mlir).

// Separate q / k / v weights (256 + 128 + 128 rows) with bias: one GEMM tile
// spans all three, so each staged weight row and each stored column picks
// its weight.
// CHECK-LABEL: func.func @qkv_separate(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C2:%[a-zA-Z0-9_]+]] = arith.constant 2 : index
// CHECK-DAG: [[C8:%[a-zA-Z0-9_]+]] = arith.constant 8 : index
// CHECK-DAG: [[C16:%[a-zA-Z0-9_]+]] = arith.constant 16 : index
// CHECK-DAG: [[C32:%[a-zA-Z0-9_]+]] = arith.constant 32 : index
// CHECK-DAG: [[C64:%[a-zA-Z0-9_]+]] = arith.constant 64 : index
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-DAG: [[C384:%[a-zA-Z0-9_]+]] = arith.constant 384 : index
// CHECK-DAG: [[C512:%[a-zA-Z0-9_]+]] = arith.constant 512 : index
// CHECK-DAG: [[SMEM64:%[a-zA-Z0-9_]+]] = arith.constant 132096 : i32
// CHECK-DAG: [[SMEM128:%[a-zA-Z0-9_]+]] = arith.constant 148480 : i32
// CHECK-DAG: [[SMEM:%[a-zA-Z0-9_]+]] = arith.constant 197632 : i32
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C16]] : index
// CHECK-NEXT: scf.if [[GEMV]] {
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemv blocks in ([[C32]], [[C1]], [[C1]]) threads in ([[C512]], [[C1]], [[C1]])
// CHECK-NEXT: } else {
// CHECK-NEXT: [[UPTO64:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C64]] : index
// CHECK-NEXT: scf.if [[UPTO64]] {
// CHECK-NEXT: [[T64:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C64]] : index
// CHECK-NEXT: [[GY64:%[a-zA-Z0-9_]+]] = arith.maxsi [[T64]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_wgmma_m64 blocks in ([[C8]], [[GY64]], [[C1]]) threads in ([[C256]], [[C1]], [[C1]]) dynamic_shared_memory_size [[SMEM64]]
// CHECK-NEXT: } else {
// CHECK-NEXT: [[UPTO128:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C128]] : index
// CHECK-NEXT: scf.if [[UPTO128]] {
// CHECK-NEXT: [[T128:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C128]] : index
// CHECK-NEXT: [[GY128:%[a-zA-Z0-9_]+]] = arith.maxsi [[T128]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_wgmma_m128 blocks in ([[C8]], [[GY128]], [[C1]]) threads in ([[C384]], [[C1]], [[C1]]) dynamic_shared_memory_size [[SMEM128]]
// CHECK-NEXT: } else {
// CHECK-NEXT: [[TILES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C128]] : index
// CHECK-NEXT: [[GY:%[a-zA-Z0-9_]+]] = arith.maxsi [[TILES]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_wgmma blocks in ([[C2]], [[GY]], [[C1]]) threads in ([[C384]], [[C1]], [[C1]]) dynamic_shared_memory_size [[SMEM]]
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: return
//
// CHECK-LABEL: gpu.func @gemm_wgmma(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWK:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWV:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>,
// CHECK-SAME: [[KBQ:%[a-zA-Z0-9_]+]]: memref<?xbf16>, [[KBK:%[a-zA-Z0-9_]+]]: memref<?xbf16>, [[KBV:%[a-zA-Z0-9_]+]]: memref<?xbf16>,
// CHECK-SAME: [[KQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KK:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>, [[KV:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>)
// CHECK-SAME: known_block_size = array<i32: 384, 1, 1>
// The four stages, 1024-byte aligned in dynamic shared memory, and a full and
// an empty barrier per stage.
// CHECK: [[RAW:%[a-zA-Z0-9_]+]] = gpu.dynamic_shared_memory
// CHECK: [[STAGES:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<98304xbf16, #gpu.address_space<workgroup>>
// CHECK: [[FULL:%[a-zA-Z0-9_]+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// CHECK-NEXT: [[EMPTY:%[a-zA-Z0-9_]+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// The warpgroup, broadcast from lane 0 (warp-uniform for ptxas).
// CHECK: [[WG:%[a-zA-Z0-9_]+]] = arith.divui %{{.+}}, %c128 : index
// CHECK-NEXT: [[WGI:%[a-zA-Z0-9_]+]] = arith.index_cast [[WG]] : index to i32
// CHECK-NEXT: [[WGB:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle  idx [[WGI]], %c0_i32, %c32_i32 : i32
// CHECK-NEXT: [[ROLE:%[a-zA-Z0-9_]+]] = arith.index_cast [[WGB]] : i32 to index
// Thread 0 sets up the barriers: full expects the 128 producer threads,
// empty the 256 consumer threads.
// CHECK: scf.if
// CHECK-NEXT: nvgpu.mbarrier.init [[FULL]][%c0], %c128
// CHECK-NEXT: nvgpu.mbarrier.init [[EMPTY]][%c0], %c256
// CHECK-COUNT-6: nvgpu.mbarrier.init
// CHECK: gpu.barrier
// Warpgroup 0 produces: per K step (256 / 64 = 4) it first marks the step
// three back landed (its copies done: at most 2 newer groups in flight;
// fenced into the async proxy), then waits until the consumers released
// the stage, then copies: 8 x chunks and 16 weight chunks per thread, each
// weight row from the weight holding it, one group.
// CHECK-NEXT: [[PRODUCER:%[a-zA-Z0-9_]+]] = arith.cmpi eq, [[ROLE]], %c0 : index
// CHECK-NEXT: scf.if [[PRODUCER]] {
// CHECK: scf.for %{{.+}} = %c0 to %c4 step %c1 {
// CHECK: scf.if
// CHECK: nvvm.cp.async.wait.group 2
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: nvgpu.mbarrier.arrive [[FULL]]
// CHECK: scf.if
// CHECK: nvgpu.mbarrier.try_wait.parity [[EMPTY]]
// CHECK-COUNT-8: nvgpu.device_async_copy [[KX]][{{.*}}], [[STAGES]][{{.*}}], 8, %{{.+}} {bypassL1}
// CHECK: arith.cmpi uge, [[N:%[a-zA-Z0-9_]+]], %c256
// CHECK: [[ISV:%[a-zA-Z0-9_]+]] = arith.cmpi uge, [[N]], %c384
// CHECK-NEXT: [[W:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], [[KWV]], %{{.+}} : memref<?x256xbf16>
// CHECK: nvgpu.device_async_copy [[W]][{{.*}}], [[STAGES]][{{.*}}], 8, %{{.+}} {bypassL1}
// CHECK-COUNT-15: nvgpu.device_async_copy {{.*}}, [[STAGES]][{{.*}}], 8, %{{.+}} {bypassL1}
// CHECK-NEXT: nvgpu.device_async_create_group
// CHECK-NEXT: }
// The last three steps land in order.
// CHECK-NEXT: nvvm.cp.async.wait.group 2
// CHECK-NEXT: nvvm.fence.proxy
// CHECK-NEXT: nvgpu.mbarrier.arrive [[FULL]][%c1]
// CHECK-NEXT: nvvm.cp.async.wait.group 1
// CHECK-NEXT: nvvm.fence.proxy
// CHECK-NEXT: nvgpu.mbarrier.arrive [[FULL]][%c2]
// CHECK-NEXT: nvvm.cp.async.wait.group 0
// CHECK-NEXT: nvvm.fence.proxy
// CHECK-NEXT: nvgpu.mbarrier.arrive [[FULL]][%c3]
// CHECK-NEXT: } else {
// The consumers carry the accumulator struct through the K loop: wait for
// the step, four m64n256k16 from its stage in one group, wait for the
// previous step's group only, release the previous stage.
// CHECK: [[ACC:%[a-zA-Z0-9_]+]] = scf.for %{{.+}} = %c0 to %c4 step %c1 iter_args(%[[CARRIED:[a-zA-Z0-9_]+]] = %{{.+}}) -> (!llvm.struct<(f32,
// CHECK: nvgpu.mbarrier.try_wait.parity [[FULL]]
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-NEXT: [[D0:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %[[CARRIED]], <m = 64, n = 256, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK-NEXT: [[D1:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, [[D0]], <m = 64, n = 256, k = 16>
// CHECK-NEXT: [[D2:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, [[D1]], <m = 64, n = 256, k = 16>
// CHECK-NEXT: [[D3:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, [[D2]], <m = 64, n = 256, k = 16>
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: nvgpu.mbarrier.arrive [[EMPTY]]
// CHECK: scf.yield [[D3]]
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// Epilogue: pairs of columns with their bias, rounded, stored as one
// vector<2xbf16> into q, k or v.
// CHECK: arith.addf
// CHECK: arith.truncf %{{.+}} : vector<2xf32> to vector<2xbf16>
// CHECK: vector.store %{{.+}}, [[KQ]][{{.*}}] : memref<?x256xbf16>, vector<2xbf16>
// CHECK: vector.store %{{.+}}, [[KK]][{{.*}}] : memref<?x128xbf16>, vector<2xbf16>
// CHECK: vector.store %{{.+}}, [[KV]][{{.*}}] : memref<?x128xbf16>, vector<2xbf16>
// CHECK: gpu.return
func.func @qkv_separate(%x: tensor<?x256xbf16>, %wq: tensor<256x256xbf16>, %wk: tensor<128x256xbf16>, %wv: tensor<128x256xbf16>,
                        %bq: tensor<256xbf16>, %bk: tensor<128xbf16>, %bv: tensor<128xbf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv) bias(%bq, %bk, %bv)
      : tensor<?x256xbf16>, (tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>),
        (tensor<256xbf16>, tensor<128xbf16>, tensor<128xbf16>)
      -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %q, %k, %v : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

// An odd N (75 columns): pairs could cross N, so each column is stored alone
// behind its own bound; K = 200 is not a multiple of the 64-deep step (the
// last step's chunks past K copy zeros). f16 operands.
// CHECK-LABEL: gpu.func @gemm_wgmma(
// CHECK: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 256, k = 16>, D[<f32>, <one>], A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NOT: vector.store
// CHECK: arith.cmpi ult, %{{.+}}, %c75
// CHECK: memref.store %{{.+}} : memref<?x75xf16>
// CHECK: gpu.return
func.func @linear_odd(%x: tensor<?x200xf16>, %w: tensor<75x200xf16>) -> tensor<?x75xf16> {
  %0 = attn.linear %x, %w : tensor<?x200xf16>, tensor<75x200xf16> -> tensor<?x75xf16>
  return %0 : tensor<?x75xf16>
}

// -----

// Clipped weights are clamped as they are staged, which cp.async cannot do:
// they keep the mma.sync matmul kernel.
// CHECK-LABEL: func.func @linear_clip(
// CHECK: gpu.launch_func @attn_kernels::@matmul
// CHECK-NOT: gemm_wgmma
func.func @linear_clip(%x: tensor<?x256xbf16>, %w: tensor<64x256xbf16>) -> tensor<?x64xbf16> {
  %0 = attn.linear %x, %w clip 2.0 : tensor<?x256xbf16>, tensor<64x256xbf16> -> tensor<?x64xbf16>
  return %0 : tensor<?x64xbf16>
}
