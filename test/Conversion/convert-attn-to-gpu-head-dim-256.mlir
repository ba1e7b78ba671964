// RUN: attn-opt %s --convert-attn-to-gpu="wgmma=false" --canonicalize -split-input-file | FileCheck %s
// RUN: attn-opt %s --convert-attn-to-gpu --canonicalize -split-input-file | FileCheck %s --check-prefix=WGMMA

// Head dim 256 (Gemma-2 / Gemma-3: 8 query heads over 4 kv heads, a sliding
// window) on mma.sync (wgmma=false): Q does not fit in registers beside the 128 f32
// accumulators, so both kernels read it from a shared tile of its own at
// every use, and their [rows][256 + 8] tiles come from dynamic shared
// memory: prefill K, V, Q [64 x 264] bf16 + 16 bytes of alignment slack =
// 101,392 B; decode K, V [64 x 264] and Q [16 x 264] + 16 = 76,048 B. Decode
// runs at 3 blocks per SM, so its key splits fill 2 x 3 x 132 block slots.
// CHECK-LABEL: func.func @gemma_paged(
// CHECK-DAG: [[PSMEM:%[a-zA-Z0-9_]+]] = arith.constant 101392 : i32
// CHECK-DAG: [[DSMEM:%[a-zA-Z0-9_]+]] = arith.constant 76048 : i32
// CHECK-DAG: arith.constant 792 : index
// CHECK: gpu.launch_func @attn_kernels::@paged_flash_attention_prefill blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size [[PSMEM]]
// CHECK: gpu.launch_func @attn_kernels::@paged_flash_attention_decode blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size [[DSMEM]]
//
// Prefill: no static workgroup buffers; the three tiles viewed in dynamic
// shared memory; Q staged into its own tile (16 chunks a thread) and never
// loaded before the key loop. Per key tile: S = Q K^T as 16 k-steps, each
// loading its Q fragment from the Q tile, over 8 n8 tiles (128 mma), then
// O += P V over 4 k-steps and 32 n8 tiles of V (128 mma) on the 128
// accumulators carried with (m, l) of two rows.
// CHECK-LABEL: gpu.func @paged_flash_attention_prefill(
// CHECK-SAME: memref<?x?x8xf32>, %{{[a-zA-Z0-9_]+}}: index, %{{[a-zA-Z0-9_]+}}: index) kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
// CHECK-DAG: [[PSCALE:%[a-zA-Z0-9_]+]] = arith.constant 0.0901684388 : f32
// CHECK: [[RAW:%[a-zA-Z0-9_]+]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: [[TK:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<64x264xbf16, #gpu.address_space<workgroup>>
// CHECK: [[TV:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<64x264xbf16, #gpu.address_space<workgroup>>
// CHECK: [[TQ:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<64x264xbf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-16: vector.store %{{.+}}, [[TQ]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<64x264xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK-NOT: nvgpu.ldmatrix
// CHECK: gpu.barrier
// CHECK-NOT: nvgpu.ldmatrix
// CHECK: nvgpu.device_async_copy %{{.+}}, [[TK]][%{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1}
// CHECK-NOT: nvgpu.ldmatrix
// CHECK: %{{.+}}:132 = scf.for
// CHECK: nvgpu.device_async_copy %{{.+}}, [[TV]][%{{.+}}, %{{.+}}], 8, %{{.+}} {bypassL1}
// CHECK-COUNT-16: nvgpu.ldmatrix [[TQ]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK-NOT: nvgpu.ldmatrix [[TQ]]
// CHECK: arith.mulf %{{.+}}, [[PSCALE]] : f32
// CHECK-NOT: nvgpu.ldmatrix [[TQ]]
// CHECK: nvgpu.device_async_copy %{{.+}}, [[TK]]
// CHECK-COUNT-64: nvgpu.ldmatrix [[TV]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK-NOT: nvgpu.ldmatrix
// CHECK: scf.yield
// CHECK: gpu.return
//
// Decode: the same tiles with a 16-row Q tile, at most 3 blocks per SM; per
// key tile each warp takes 16 keys: 16 k-steps x 2 n8 tiles for S and 32 n8
// tiles for P V.
// CHECK-LABEL: gpu.func @paged_flash_attention_decode(
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 3 : i32} {
// CHECK: [[DRAW:%[a-zA-Z0-9_]+]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: [[DK:%[a-zA-Z0-9_]+]] = memref.view [[DRAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<64x264xbf16, #gpu.address_space<workgroup>>
// CHECK: [[DV:%[a-zA-Z0-9_]+]] = memref.view [[DRAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<64x264xbf16, #gpu.address_space<workgroup>>
// CHECK: [[DQ:%[a-zA-Z0-9_]+]] = memref.view [[DRAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<16x264xbf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-4: vector.store %{{.+}}, [[DQ]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<16x264xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK-NOT: nvgpu.ldmatrix
// CHECK: %{{.+}}:132 = scf.for
// CHECK-COUNT-16: nvgpu.ldmatrix [[DQ]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false}
// CHECK-NOT: nvgpu.ldmatrix [[DQ]]
// CHECK-COUNT-16: nvgpu.ldmatrix [[DV]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = true}
// CHECK-NOT: nvgpu.ldmatrix
// CHECK: scf.yield
// CHECK: gpu.return
//
// With wgmma (sm_90a), prefill takes the warpgroup path at D 256: Q, K, V
// [64 x 256] bf16 (32 KB each, four swizzled 64-column blocks) and P
// [64 x 64] + 1 KB of alignment = 107,520 B; S = Q K^T as 16 k-steps of
// m64n64k16, O += P V as 4 k-steps of m64n256k16. Decode stays on mma.sync.
// WGMMA-LABEL: func.func @gemma_paged(
// WGMMA-DAG: [[PSMEM:%[a-zA-Z0-9_]+]] = arith.constant 107520 : i32
// WGMMA-DAG: [[DSMEM:%[a-zA-Z0-9_]+]] = arith.constant 76048 : i32
// WGMMA: gpu.launch_func @attn_kernels::@paged_flash_attention_prefill blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size [[PSMEM]]
// WGMMA: gpu.launch_func @attn_kernels::@paged_flash_attention_decode blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size [[DSMEM]]
// WGMMA-LABEL: gpu.func @paged_flash_attention_prefill(
// WGMMA-COUNT-3: memref.view %{{.+}}[%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<16384xbf16, #gpu.address_space<workgroup>>
// WGMMA: memref.view %{{.+}}[%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4096xbf16, #gpu.address_space<workgroup>>
// WGMMA: %{{.+}}:132 = scf.for
// WGMMA: nvvm.wgmma.fence.aligned
// WGMMA-COUNT-16: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// WGMMA-NEXT: nvvm.wgmma.commit.group.sync.aligned
// WGMMA: nvvm.wgmma.fence.aligned
// WGMMA-COUNT-4: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 256, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <row>]
// WGMMA-NEXT: nvvm.wgmma.commit.group.sync.aligned
// WGMMA: scf.yield
// WGMMA-LABEL: gpu.func @paged_flash_attention_decode(
// WGMMA-SAME: nvvm.minctasm = 3 : i32
// WGMMA-NOT: nvvm.wgmma
// WGMMA: nvvm.mma.sync
// WGMMA-NOT: nvvm.wgmma
// WGMMA: gpu.return
func.func @gemma_paged(%q: tensor<?x8x256xbf16>, %blocks: tensor<?x2x2x16x4x256xbf16>,
                       %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x8x256xbf16> {
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut) {mask = #attn.mask<sliding_window = 4096>}
      : tensor<?x8x256xbf16>, tensor<?x2x2x16x4x256xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x8x256xbf16>
}

// -----

// Head dim 144: Q in shared memory too (above 128). A 16-row decode tile has
// 288 16-byte chunks, so the threads' third round (chunks 256 .. 383) stages
// only chunks of rows below 16: past them it would write beyond the Q tile,
// the last buffer. The 64-row prefill tile (1,152 chunks) fills 9 rounds.
// CHECK-LABEL: gpu.func @flash_attention_prefill(
// CHECK: [[PQ:%[a-zA-Z0-9_]+]] = memref.view %{{.+}}[%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<64x152xf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-9: vector.store %{{.+}}, [[PQ]]
// CHECK-NOT: vector.store %{{.+}}, [[PQ]]
// CHECK: gpu.barrier
// CHECK-LABEL: gpu.func @flash_attention_decode(
// CHECK-DAG: [[C16:%[a-zA-Z0-9_]+]] = arith.constant 16 : index
// CHECK: [[DQ:%[a-zA-Z0-9_]+]] = memref.view %{{.+}}[%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<16x152xf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-2: vector.store %{{.+}}, [[DQ]]
// CHECK: [[CHUNK:%[a-zA-Z0-9_]+]] = arith.addi %thread_id_x, %c256 : index
// CHECK-NEXT: [[ROW:%[a-zA-Z0-9_]+]] = arith.divui [[CHUNK]], %c18 : index
// CHECK: [[IN:%[a-zA-Z0-9_]+]] = arith.cmpi slt, [[ROW]], [[C16]] : index
// CHECK-NEXT: scf.if [[IN]] {
// CHECK: vector.store %{{.+}}, [[DQ]]
// CHECK: }
// CHECK-NOT: vector.store %{{.+}}, [[DQ]]
// CHECK: gpu.barrier
func.func @flash_d144(%q: tensor<?x4x144xf16>, %k: tensor<?x2x144xf16>, %v: tensor<?x2x144xf16>,
                      %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x4x144xf16> {
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) {mask = #attn.mask<causal>}
      : tensor<?x4x144xf16>, tensor<?x2x144xf16>, tensor<?x2x144xf16>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x4x144xf16>
}

// -----

// Pages of 128 keys hold each 64-key tile whole: a thread looks its page up
// once per staged tile (K before the loop, V in it), not once per 16-byte
// chunk, and finds its first chunk (slot tile % 128 + its row) in a flat
// view of the cache; its 16 chunks (D 256) follow at constant distances of
// 4 rows x 4 heads x 256 elements.
// CHECK-LABEL: gpu.func @paged_flash_attention_decode(
// CHECK-SAME: [[BLK:%[a-zA-Z0-9_]+]]: memref<?x2x2x128x4x256xbf16>, %{{[a-zA-Z0-9_]+}}: memref<?xi32>, [[LUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>
// CHECK: [[KPI:%[a-zA-Z0-9_]+]] = arith.divui [[KT:%[a-zA-Z0-9_]+]], %c128
// CHECK-NEXT: [[KLOOK:%[a-zA-Z0-9_]+]] = memref.load [[LUT]][%{{.+}}, [[KPI]]]
// CHECK-NEXT: [[KPAGE:%[a-zA-Z0-9_]+]] = arith.index_cast [[KLOOK]] : i32 to index
// CHECK-NEXT: [[FLAT:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[BLK]] {{\[\[}}0, 1, 2, 3, 4, 5]] : memref<?x2x2x128x4x256xbf16> into memref<?xbf16>
// CHECK-NEXT: [[KSLOT:%[a-zA-Z0-9_]+]] = arith.remui [[KT]], %c128
// CHECK-NEXT: [[KROW:%[a-zA-Z0-9_]+]] = arith.addi [[KSLOT]], %{{.+}} : index
// CHECK-NEXT: arith.muli [[KPAGE]], %c4
// CHECK: arith.addi %{{.+}}, [[KROW]]
// CHECK: arith.muli %{{.+}}, %c256 : index
// CHECK-NEXT: [[KFIRST:%[a-zA-Z0-9_]+]] = arith.addi %{{.+}}, %{{.+}} : index
// A tile whole below the split's last key copies without per-chunk tests
// (16 bytes each), the others copy 0 bytes past it.
// CHECK-NEXT: [[KEND:%[a-zA-Z0-9_]+]] = arith.addi [[KT]], %c64 : index
// CHECK-NEXT: [[KFULL:%[a-zA-Z0-9_]+]] = arith.cmpi sle, [[KEND]], %{{.+}} : index
// CHECK-NEXT: scf.if [[KFULL]] {
// CHECK-NEXT: nvgpu.device_async_copy [[FLAT]][[[KFIRST]]], %{{.+}}[%{{.+}}, %{{.+}}], 8, %c8 {bypassL1}
// CHECK: [[K1:%[a-zA-Z0-9_]+]] = arith.addi [[KFIRST]], %c4096 : index
// CHECK-NEXT: nvgpu.device_async_copy [[FLAT]][[[K1]]], %{{.+}}[%{{.+}}, %{{.+}}], 8, %c8 {bypassL1}
// CHECK: [[K2:%[a-zA-Z0-9_]+]] = arith.addi [[KFIRST]], %c8192 : index
// CHECK-NEXT: nvgpu.device_async_copy [[FLAT]][[[K2]]], %{{.+}}[%{{.+}}, %{{.+}}], 8, %c8 {bypassL1}
// CHECK-COUNT-13: nvgpu.device_async_copy [[FLAT]][%{{.+}}], %{{.+}}[%{{.+}}, %{{.+}}], 8, %c8 {bypassL1}
// CHECK-NOT: nvgpu.device_async_copy
// CHECK: } else {
// CHECK: [[KIN:%[a-zA-Z0-9_]+]] = arith.cmpi slt, %{{.+}}, %{{.+}} : index
// CHECK-NEXT: [[KBYTES:%[a-zA-Z0-9_]+]] = arith.select [[KIN]], %c8, %c0 : index
// CHECK-NEXT: nvgpu.device_async_copy [[FLAT]][[[KFIRST]]], %{{.+}}[%{{.+}}, %{{.+}}], 8, [[KBYTES]] {bypassL1}
// CHECK-COUNT-15: nvgpu.device_async_copy [[FLAT]][%{{.+}}]
// CHECK-NOT: nvgpu.device_async_copy
// CHECK: }
// CHECK-NOT: memref.load [[LUT]]
// CHECK: scf.for
// CHECK: memref.load [[LUT]]
// CHECK-NEXT: arith.index_cast
// CHECK-NEXT: [[FLATV:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[BLK]]
// CHECK-COUNT-32: nvgpu.device_async_copy [[FLATV]][%{{.+}}]
// CHECK-NOT: memref.load [[LUT]]
// CHECK: nvgpu.ldmatrix
func.func @gemma_paged_page128(%q: tensor<?x8x256xbf16>, %blocks: tensor<?x2x2x128x4x256xbf16>,
                               %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x8x256xbf16> {
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut) {mask = #attn.mask<causal>}
      : tensor<?x8x256xbf16>, tensor<?x2x2x128x4x256xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x8x256xbf16>
}
