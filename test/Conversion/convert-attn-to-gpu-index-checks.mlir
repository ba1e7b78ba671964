// RUN: attn-opt %s --attn-insert-entry-checks=index-values=false --convert-attn-to-gpu=validate-index-values=true --canonicalize -split-input-file | FileCheck %s
// RUN: attn-opt %s --attn-insert-entry-checks=index-values=false --convert-attn-to-gpu --canonicalize -split-input-file | FileCheck %s --check-prefix=DISABLED

// Statuses 3-7 on the device (docs/ABI.md, Status): after the host checks, the
// entry point launches one block that checks the index tensors' values and
// writes the lowest failing status into @attn_status if it is still 0; the
// kernels indexing through the tensors run only while the word is 0.
// CHECK-LABEL: func.func @store(
// CHECK-SAME: %[[L:[a-z0-9_]+]]: i32, %[[K:[a-z0-9_]+]]: memref<?x2x64xbf16>, %[[OFF:[a-z0-9_]+]]: memref<?xi32>, %[[B:[a-z0-9_]+]]: memref<?x2x3x16x2x64xbf16>, %[[LEN:[a-z0-9_]+]]: memref<?xi32>, %[[LUT:[a-z0-9_]+]]: memref<?x?xi32>)
// CHECK: cf.assert {{.*}} {attn.status = 1 : i32}
// CHECK: cf.assert {{.*}} {attn.status = 2 : i32}
// CHECK: cf.assert {{.*}} {attn.status = 2 : i32}
// CHECK-NEXT: %[[T:.*]] = memref.dim %[[K]], %c0
// Then status 9 on the host: the store moves k, v and the cache in 16-byte
// chunks, so the arguments must start on a 16-byte boundary.
// CHECK-NEXT: %[[KP:.*]] = memref.extract_aligned_pointer_as_index %[[K]]
// CHECK-NEXT: %[[KR:.*]] = arith.remui %[[KP]], %c16
// CHECK-NEXT: %[[KA:.*]] = arith.cmpi eq, %[[KR]], %c0
// CHECK-NEXT: %[[BP:.*]] = memref.extract_aligned_pointer_as_index %[[B]]
// CHECK-NEXT: %[[BR:.*]] = arith.remui %[[BP]], %c16
// CHECK-NEXT: %[[BA:.*]] = arith.cmpi eq, %[[BR]], %c0
// CHECK-NEXT: %[[ALIGNED:.*]] = arith.andi %[[KA]], %[[BA]]
// CHECK-NEXT: cf.assert %[[ALIGNED]], "attn: a tensor argument the GPU kernels access in 16-byte pieces does not start on a 16-byte boundary" {attn.status = 9 : i32}
// CHECK-NEXT: gpu.launch_func @attn_kernels::@validate_indices blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1)
// CHECK-SAME: args(%[[OFF]] : memref<?xi32>, %[[T]] : index, %[[LEN]] : memref<?xi32>, %[[OFF]] : memref<?xi32>, %[[LEN]] : memref<?xi32>, %[[LUT]] : memref<?x?xi32>, %[[B]] : memref<?x2x3x16x2x64xbf16>)
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.launch_func @attn_kernels::@kv_cache_store
//
// CHECK: gpu.module @attn_kernels
// CHECK: memref.global "public" @attn_status : memref<1xi32> = dense<0>
// The store's threads load the word first, search their row's sequence (the
// loads stay inside the row offsets whatever their values) while it comes, and
// skip the rest while it is non-zero: the loads through the cache lengths and
// the lookup table, and every store.
// CHECK: gpu.func @kv_cache_store(%{{[a-z0-9]+}}: memref<?x2x64xbf16>, %{{[a-z0-9]+}}: memref<?x2x64xbf16>, %[[SOFF:[a-z0-9]+]]: memref<?xi32>, %[[SLEN:[a-z0-9]+]]: memref<?xi32>, %[[SLUT:[a-z0-9]+]]: memref<?x?xi32>,
// CHECK: scf.if
// CHECK-NEXT: %[[SW:.*]] = memref.get_global @attn_status
// CHECK-NEXT: %[[STATUS:.*]] = memref.load %[[SW]][%c0]
// CHECK-NOT: memref.load %[[SLEN]]
// CHECK: %[[SEQ:.*]] = scf.for
// CHECK: memref.load %[[SOFF]]
// CHECK: }
// CHECK-NEXT: %[[GO:.*]] = arith.cmpi eq, %[[STATUS]], %c0_i32
// CHECK-NEXT: scf.if %[[GO]] {
// CHECK-NEXT: memref.load %[[SLEN]][%[[SEQ]]]
// CHECK: memref.load %[[SLUT]]
// CHECK: vector.store
// CHECK: vector.store {{.*}}{{$}}
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: gpu.return
// The validation kernel, created where the store showed that the checks
// need a kernel of their own.
// CHECK: gpu.func @validate_indices(%[[OFF:.*]]: memref<?xi32>, %[[ROWS:.*]]: index, %[[LEN:.*]]: memref<?xi32>, %[[POFF:.*]]: memref<?xi32>, %[[PLEN:.*]]: memref<?xi32>, %[[LUT:.*]]: memref<?x?xi32>, %[[B:.*]]: memref<?x2x3x16x2x64xbf16>) workgroup(%[[LOWEST:.*]] : memref<1xi32, #gpu.address_space<workgroup>>)
// CHECK-DAG: %[[NONE:.*]] = arith.constant 2147483647 : i32
// CHECK-DAG: %[[S3:.*]] = arith.constant 3 : i32
// CHECK-DAG: %[[S4:.*]] = arith.constant 4 : i32
// CHECK-DAG: %[[S5:.*]] = arith.constant 5 : i32
// CHECK-DAG: %[[S6:.*]] = arith.constant 6 : i32
// CHECK: %[[TID:.*]] = gpu.thread_id x
// CHECK: memref.store %[[NONE]], %[[LOWEST]]
// CHECK: gpu.barrier
// Status 3: no entry (thread 0), then entries strided over the block: entry 0
// is 0, the others >= the previous one, the last one the rows of k.
// CHECK: %[[N:.*]] = memref.dim %[[OFF]], %c0
// CHECK: %[[EMPTY:.*]] = arith.cmpi slt, %[[N]], %c1
// CHECK: %[[R0:.*]] = arith.select %{{.*}}, %[[S3]], %[[NONE]] : i32
// CHECK: %[[R1:.*]] = scf.for %[[I:.*]] = %[[TID]] to %[[N]] step %c256 iter_args(%[[C:.*]] = %[[R0]]) -> (i32)
// CHECK: %[[E:.*]] = arith.index_cast
// CHECK: %[[PREV:.*]] = arith.index_cast
// CHECK: %[[FIRST:.*]] = arith.cmpi eq, %[[I]], %c0
// CHECK: %[[NOTZERO:.*]] = arith.cmpi ne, %[[E]], %c0
// CHECK: %[[DOWN:.*]] = arith.cmpi slt, %[[E]], %[[PREV]]
// CHECK: arith.select %[[FIRST]], %[[NOTZERO]], %[[DOWN]] : i1
// CHECK: arith.cmpi ne, %[[E]], %[[ROWS]]
// CHECK: arith.minsi %[[C]], %[[S3]]
// Status 4: a negative cache length.
// CHECK: scf.for {{.*}} step %c256
// CHECK: memref.load %[[LEN]]
// CHECK: arith.cmpi slt, %{{.*}}, %c0
// CHECK: arith.minsi %{{.*}}, %[[S4]]
// Status 5: an active sequence's last page (a store: its new positions) is
// beyond the table's width.
// CHECK: %[[W:.*]] = memref.dim %[[LUT]], %c1
// CHECK: scf.for {{.*}} step %c256
// CHECK: %[[CACHED:.*]] = arith.index_cast
// CHECK: %[[NEW:.*]] = arith.subi
// CHECK: %[[LIVE:.*]] = arith.cmpi sge, %[[CACHED]], %c0
// CHECK: arith.cmpi sgt, %[[NEW]], %c0
// CHECK: %[[END:.*]] = arith.addi %[[CACHED]], %[[NEW]]
// CHECK: %[[PAGES:.*]] = arith.ceildivui %[[END]], %c16
// CHECK: arith.cmpi sgt, %[[PAGES]], %[[W]]
// CHECK: arith.minsi %{{.*}}, %[[S5]]
// Status 6: a thread per table entry (sequence, column) in the pages the store
// writes, [cached / 16, ceil((cached + new) / 16)), checked against [0, P).
// CHECK: %[[P:.*]] = memref.dim %[[B]], %c0
// CHECK: %[[ENTRIES:.*]] = arith.muli %{{.*}}, %{{.*}} : index
// CHECK: %[[MINE:.*]] = scf.for %[[J:.*]] = %[[TID]] to %[[ENTRIES]] step %c256
// CHECK: %[[SEQ:.*]] = arith.divui %[[J]]
// CHECK: %[[COL:.*]] = arith.remui %[[J]]
// CHECK: %[[FROM:.*]] = arith.divui %{{.*}}, %c16
// CHECK: arith.cmpi sge, %[[COL]], %[[FROM]]
// CHECK: %[[ID:.*]] = memref.load %[[LUT]][%[[SEQ]], %[[COL]]]
// CHECK: %[[IDX:.*]] = arith.index_cast %[[ID]]
// CHECK: arith.cmpi slt, %[[IDX]], %c0
// CHECK: arith.cmpi sge, %[[IDX]], %[[P]]
// The block's lowest status, written only into a word that is still 0.
// CHECK: arith.cmpi ne, %[[MINE]], %[[NONE]]
// CHECK: memref.atomic_rmw mins %[[MINE]], %[[LOWEST]]
// CHECK: gpu.barrier
// CHECK: %[[BLOCK:.*]] = memref.load %[[LOWEST]]
// CHECK: %[[WORD:.*]] = memref.get_global @attn_status : memref<1xi32>
// CHECK: memref.generic_atomic_rmw %[[WORD]][%c0]
// CHECK-NEXT: ^bb0(%[[OLD:.*]]: i32):
// CHECK-NEXT: %[[UNSET:.*]] = arith.cmpi eq, %[[OLD]], %c0_i32
// CHECK-NEXT: %[[NEXT:.*]] = arith.select %[[UNSET]], %[[BLOCK]], %[[OLD]]
// CHECK-NEXT: memref.atomic_yield %[[NEXT]]

// Without the option: no validation, no word, no guard.
// DISABLED-LABEL: func.func @store(
// DISABLED-NOT: attn.status = 9
// DISABLED-NOT: validate_indices
// DISABLED-NOT: attn_status
// DISABLED: gpu.func @kv_cache_store(
// DISABLED-NOT: attn_status
func.func @store(%layer: i32, %k: tensor<?x2x64xbf16>, %off: tensor<?xi32>, %blocks: tensor<?x2x3x16x2x64xbf16>,
                 %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xbf16> {
  %b = attn.kv_cache_store %k, %k into %blocks layer(%layer : i32) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  return %b : tensor<?x2x3x16x2x64xbf16>
}

// -----

// RoPE, store and attention: one pass over the row offsets for q, k and v;
// attention's pages ([0, end)) cover the store's, so the page checks are
// attention's; positions below the 128 rows of the RoPE table (status 7).
// Every kernel of the call is guarded, attention's combine too (it writes
// the output from the partials).
// CHECK-LABEL: func.func @rope_store_attend(
// CHECK: cf.assert {{.*}} {attn.status = 2 : i32}
// CHECK: cf.assert {{.*}} {attn.status = 2 : i32}
// CHECK: gpu.launch_func @attn_kernels::@validate_indices {{.*}} args(%{{.*}} : memref<?xi32>, %{{.*}} : index, %{{.*}} : index, %{{.*}} : index, {{.*}}, %c128 : index)
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.launch_func @attn_kernels::@rope
// CHECK: gpu.module @attn_kernels
// CHECK: gpu.func @rope(%{{[a-z0-9]+}}: memref<?x4x64xbf16>, %[[ROFF:[a-z0-9]+]]: memref<?xi32>, %[[RLEN:[a-z0-9]+]]: memref<?xi32>,
// CHECK: %[[W:.*]] = memref.get_global @attn_status
// CHECK-NEXT: %[[ST:.*]] = memref.load %[[W]]
// CHECK: %[[SEQ:.*]] = scf.for
// CHECK: %[[GO:.*]] = arith.cmpi eq, %[[ST]], %c0_i32
// CHECK-NEXT: scf.if %[[GO]] {
// CHECK-NEXT: memref.load %[[ROFF]][%[[SEQ]]]
// CHECK: memref.load %[[RLEN]][%[[SEQ]]]
// CHECK: gpu.func @validate_indices(
// CHECK: %[[S7:.*]] = arith.constant 7 : i32
// CHECK-COUNT-3: arith.cmpi ne, %{{.*}}, %arg{{[123]}} : index
// CHECK-NOT: arith.divui %{{.*}}, %c16
// CHECK: %[[BEYOND:.*]] = arith.cmpi sgt, %{{.*}}, %arg11 : index
// CHECK-NEXT: arith.andi %{{.*}}, %[[BEYOND]] : i1
// CHECK: arith.minsi %{{.*}}, %[[S7]]
// CHECK: generic_atomic_rmw
// CHECK: gpu.func @kv_cache_store(
// CHECK: memref.get_global @attn_status
// Attention's blocks load the word first and walk the row offsets to their
// tile meanwhile; a block of a refused call finds no rows there, so it leaves
// before reading the cache lengths, the lookup table or the cache.
// CHECK: gpu.func @paged_flash_attention_prefill(
// CHECK-NOT: memref.load
// CHECK: %[[W:.*]] = memref.get_global @attn_status
// CHECK-NEXT: memref.load %[[W]]
// CHECK: gpu.func @paged_flash_attention_decode(%{{[a-z0-9]+}}: memref<?x4x64xbf16>, %{{[a-z0-9]+}}: memref<?x4x64xbf16>, %[[AOFF:[a-z0-9]+]]: memref<?xi32>, %{{[a-z0-9]+}}: memref<?x2x3x16x2x64xbf16>, %[[ALEN:[a-z0-9]+]]: memref<?xi32>,
// CHECK-NOT: memref.load
// CHECK: %[[W:.*]] = memref.get_global @attn_status
// CHECK-NEXT: %[[ST:.*]] = memref.load %[[W]]
// CHECK-NOT: memref.load %[[ALEN]]
// CHECK: %[[TILE:.*]]:3 = scf.for
// CHECK: memref.load %[[AOFF]]
// CHECK: %[[FOUND:.*]] = arith.cmpi slt, %[[TILE]]#1
// CHECK: %[[OK:.*]] = arith.cmpi eq, %[[ST]], %c0_i32
// CHECK-NEXT: %[[WORK:.*]] = arith.andi %[[FOUND]], %[[OK]]
// CHECK: %[[ROWS:.*]] = arith.select %[[WORK]], %{{.*}}, %c0
// CHECK: %[[HAS:.*]] = arith.cmpi slt, %{{.*}}, %[[ROWS]]
// CHECK-NEXT: scf.if %[[HAS]] {
// CHECK-NEXT: memref.load %[[ALEN]]
// The combine reads the partials (inside their buffers, written or not) and
// stores only while the word is 0.
// CHECK: gpu.func @attention_combine(
// CHECK: %[[W:.*]] = memref.get_global @attn_status
// CHECK-NEXT: %[[ST:.*]] = memref.load %[[W]]
// CHECK: scf.for
// CHECK: %[[GO:.*]] = arith.cmpi eq, %[[ST]], %c0_i32
// CHECK-NEXT: scf.if %[[GO]] {
// CHECK-NEXT: arith.truncf
// CHECK-NEXT: memref.store
func.func @rope_store_attend(%q: tensor<?x4x64xbf16>, %k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>,
                             %off: tensor<?xi32>, %blocks: tensor<?x2x3x16x2x64xbf16>, %len: tensor<?xi32>,
                             %lut: tensor<?x?xi32>) -> (tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>) {
  %f = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<128x64xf32>
  %qr = attn.rope %q, %f positions(%off, %len) : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %b = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  %o = attn.paged_flash_attention %qr, %b layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o, %b : tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>
}

// -----

// A projection before every kernel that indexes through the index tensors
// (a layer's q/k/v projection) carries the checks: each of its launches (the
// GEMV, or the wgmma GEMM of M's shape) gets one more column of blocks in x
// and the checks' buffers as its last arguments, and there is no validation
// kernel. The norm before it reads no index tensor and leaves them waiting.
// CHECK-LABEL: func.func @norm_project_store(
// CHECK-SAME: %[[OFF:[a-z0-9_]+]]: memref<?xi32>, %[[B:[a-z0-9_]+]]: memref<?x2x3x16x2x64xbf16>, %[[LEN:[a-z0-9_]+]]: memref<?xi32>, %[[LUT:[a-z0-9_]+]]: memref<?x?xi32>,
// CHECK-NOT: validate_indices
// CHECK: gpu.launch_func @attn_kernels::@rms_norm {{.*}} args(%{{[^)]*}} : index)
// 512 output columns: 32 GEMV blocks, 8 GEMM tiles of 64 columns.
// CHECK: scf.if
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemv blocks in (%c33, %c1, %c1) threads in (%c512, %c1, %c1)
// CHECK-SAME: %[[OFF]] : memref<?xi32>, %[[T:[a-z0-9_]+]] : index, %[[LEN]] : memref<?xi32>, %[[OFF]] : memref<?xi32>, %[[LEN]] : memref<?xi32>, %[[LUT]] : memref<?x?xi32>, %[[B]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: } else {
// CHECK: gpu.launch_func @attn_kernels::@gemm_wgmma_m64 blocks in (%c9, %{{.*}}, %c1) threads in (%c256, %c1, %c1)
// CHECK-SAME: !llvm.array<16 x i64>, %[[OFF]] : memref<?xi32>, %[[T]] : index, %[[LEN]] : memref<?xi32>, %[[OFF]] : memref<?xi32>, %[[LEN]] : memref<?xi32>, %[[LUT]] : memref<?x?xi32>, %[[B]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemm_wgmma_m128 blocks in (%c9,
// CHECK-SAME: %[[B]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemm_wgmma_m1024
// CHECK-SAME: %[[B]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemm_wgmma blocks
// CHECK-SAME: %[[B]] : memref<?x2x3x16x2x64xbf16>)
// CHECK-NOT: validate_indices
// CHECK: gpu.launch_func @attn_kernels::@kv_cache_store
//
// The GEMV's last block in x runs the checks in place of its 16 columns: the
// threads of that column but its first block leave at once; the block's
// 512 threads stride over the entries and meet in one more workgroup word.
// CHECK: gpu.func @gemv(
// CHECK-SAME: %[[KOFF:[a-z0-9]+]]: memref<?xi32>, %[[ROWS:[a-z0-9]+]]: index, %{{[a-z0-9]+}}: memref<?xi32>, %{{[a-z0-9]+}}: memref<?xi32>, %{{[a-z0-9]+}}: memref<?xi32>, %{{[a-z0-9]+}}: memref<?x?xi32>, %{{[a-z0-9]+}}: memref<?x2x3x16x2x64xbf16>)
// CHECK-SAME: workgroup(%[[RED:[a-z0-9]+]] : memref<16x8x32xf32, #gpu.address_space<workgroup>>, %[[LOWEST:[a-z0-9]+]] : memref<1xi32, #gpu.address_space<workgroup>>)
// CHECK: %[[NX:.*]] = gpu.grid_dim x
// CHECK-NEXT: %[[LAST:.*]] = arith.subi %[[NX]], %c1
// CHECK-NEXT: %[[X:.*]] = gpu.block_id x
// CHECK-NEXT: %[[CHECKS:.*]] = arith.cmpi eq, %[[X]], %[[LAST]]
// CHECK-NEXT: scf.if %[[CHECKS]] {
// CHECK-NEXT: %[[Y:.*]] = gpu.block_id y
// CHECK-NEXT: %[[Y0:.*]] = arith.cmpi eq, %[[Y]], %c0
// CHECK-NEXT: %[[Z:.*]] = gpu.block_id z
// CHECK-NEXT: %[[Z0:.*]] = arith.cmpi eq, %[[Z]], %c0
// CHECK-NEXT: %[[FIRST:.*]] = arith.andi %[[Y0]], %[[Z0]]
// CHECK-NEXT: scf.if %[[FIRST]] {
// CHECK: memref.store %{{.*}}, %[[LOWEST]]
// CHECK: gpu.barrier
// CHECK: %[[N:.*]] = memref.dim %[[KOFF]], %c0
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[N]] step %c512
// CHECK: arith.cmpi ne, %{{.*}}, %[[ROWS]]
// CHECK: memref.atomic_rmw mins %{{.*}}, %[[LOWEST]]
// CHECK: memref.get_global @attn_status
// CHECK: memref.generic_atomic_rmw
// CHECK: } else {
// CHECK-NOT: %[[LOWEST]]
// CHECK: nvvm.mma.sync
// CHECK-NOT: %[[LOWEST]]
// CHECK: gpu.return
// The wgmma GEMMs alike, with their own block sizes.
// CHECK: gpu.func @gemm_wgmma_m64(
// CHECK-SAME: workgroup(%{{.*}} : memref<1xi32, #gpu.address_space<workgroup>>)
// CHECK: gpu.grid_dim x
// CHECK: scf.for %{{.*}} step %c256
// CHECK: memref.generic_atomic_rmw
// CHECK: } else {
// CHECK: nvvm.wgmma.mma_async
// CHECK: gpu.func @gemm_wgmma_m128(
// CHECK: scf.for %{{.*}} step %c384
// CHECK: gpu.func @kv_cache_store(
// CHECK: memref.get_global @attn_status
// CHECK-NOT: gpu.func @validate_indices

// Without the option the GEMV has its own grid and body only.
// DISABLED-LABEL: func.func @norm_project_store(
// DISABLED: gpu.launch_func @attn_kernels::@gemv blocks in (%c32, %c1, %c1)
// DISABLED: gpu.func @gemv(
// DISABLED-NOT: gpu.grid_dim
// DISABLED: gpu.func @gemm_wgmma_m64(
func.func @norm_project_store(%x: tensor<?x256xbf16>, %g: tensor<256xbf16>, %wq: tensor<256x256xbf16>, %wk: tensor<128x256xbf16>,
                              %wv: tensor<128x256xbf16>, %off: tensor<?xi32>, %blocks: tensor<?x2x3x16x2x64xbf16>,
                              %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> (tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>) {
  %n = attn.rms_norm %x, %g : tensor<?x256xbf16>, tensor<256xbf16>
  %q, %k, %v = attn.qkv_projection %n weights(%wq, %wk, %wv)
      : tensor<?x256xbf16>, (tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>) -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  %b = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  return %q, %b : tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>
}

// -----

// A GPTQ projection without desc_act (no x prologue) carries the checks as
// a bf16 one does: one more column of blocks in each launch (128 columns:
// 2 GEMV blocks of 64 for 8 or 16-row slices, 1 GEMM tile of 128), the
// checks' buffers last, no validation kernel.
!gptq = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128>>
// CHECK-LABEL: func.func @gptq_project_store(
// CHECK-SAME: %[[GOFF:[a-z0-9_]+]]: memref<?xi32>, %[[GB:[a-z0-9_]+]]: memref<?x2x3x16x2x64xbf16>,
// CHECK: cf.assert {{.*}} {attn.status = 2 : i32}
// CHECK-NOT: validate_indices
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq blocks in (%c3, %{{.*}}, %c1)
// CHECK-SAME: %[[GOFF]] : memref<?xi32>, %{{[a-z0-9_]+}} : index,
// CHECK-SAME: %[[GB]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16 blocks in (%c3, %{{.*}}, %c1)
// CHECK-SAME: %[[GB]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128 blocks in (%c2, %{{.*}}, %c1)
// CHECK-SAME: %[[GB]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma blocks in (%c2, %{{.*}}, %c1)
// CHECK-SAME: %[[GB]] : memref<?x2x3x16x2x64xbf16>)
// CHECK-NOT: validate_indices
// CHECK: gpu.launch_func @attn_kernels::@kv_cache_store
// CHECK: gpu.func @gemv_gptq(
// CHECK: %[[GNX:.*]] = gpu.grid_dim x
// CHECK-NEXT: %[[GLAST:.*]] = arith.subi %[[GNX]], %c1
// CHECK-NEXT: %[[GX:.*]] = gpu.block_id x
// CHECK-NEXT: arith.cmpi eq, %[[GX]], %[[GLAST]]
// CHECK: memref.get_global @attn_status
// CHECK: } else {
// CHECK: nvvm.mma.sync
// CHECK: gpu.func @kv_cache_store(
func.func @gptq_project_store(%x: tensor<?x256xbf16>, %qw: tensor<32x128xi32>, %s: tensor<2x128xf16>, %off: tensor<?xi32>,
                              %blocks: tensor<?x2x3x16x2x64xbf16>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<32x128xi32>, tensor<2x128xf16>) -> !gptq
  %kv = attn.linear %x, %w : tensor<?x256xbf16>, !gptq -> tensor<?x128xbf16>
  %c0 = arith.constant 0 : index
  %t = tensor.dim %kv, %c0 : tensor<?x128xbf16>
  %k = tensor.expand_shape %kv [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  %b = attn.kv_cache_store %k, %k into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  return %b : tensor<?x2x3x16x2x64xbf16>
}

// -----

// A float8 projection's x prologue starts each of its launch paths, so it
// alone carries the checks (one more block than rows); the GEMV and GEMM
// after it run without them, and no validation kernel is launched.
!f8 = !attn.quantized_weight<128x256, #attn.float8<weight_scale = row, input_scale = dynamic>>
// CHECK-LABEL: func.func @float8_project_store(
// CHECK-SAME: %[[FOFF:[a-z0-9_]+]]: memref<?xi32>, %[[FB:[a-z0-9_]+]]: memref<?x2x3x16x2x64xbf16>,
// CHECK-NOT: validate_indices
// CHECK: %[[FM:.*]] = arith.maxsi %{{.*}}, %c1 : index
// CHECK-NEXT: %[[FROWS:.*]] = arith.addi %[[FM]], %c1 : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@float8_quantize_x blocks in (%[[FROWS]], %c1, %c1)
// CHECK-SAME: %[[FOFF]] : memref<?xi32>, %{{[a-z0-9_]+}} : index,
// CHECK-SAME: %[[FB]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemv_float8 blocks in (%c4,
// CHECK-NOT: %[[FB]]
// CHECK: gpu.launch_func @attn_kernels::@gemm_float8_m64 blocks in (%c2,
// CHECK-NOT: %[[FB]]
// CHECK: gpu.launch_func @attn_kernels::@gemm_float8_m128 blocks in (%c2,
// CHECK-NOT: %[[FB]]
// CHECK: gpu.launch_func @attn_kernels::@gemm_float8 blocks in (%c1,
// CHECK-NOT: validate_indices
// CHECK: gpu.launch_func @attn_kernels::@kv_cache_store
// CHECK: gpu.func @float8_quantize_x(
// CHECK: %[[FNX:.*]] = gpu.grid_dim x
// CHECK-NEXT: %[[FLAST:.*]] = arith.subi %[[FNX]], %c1
// CHECK-NEXT: %[[FX:.*]] = gpu.block_id x
// CHECK-NEXT: arith.cmpi eq, %[[FX]], %[[FLAST]]
// CHECK: memref.get_global @attn_status
// CHECK: } else {
// CHECK: nvvm.convert.f32x2.to.f8x2
// CHECK: gpu.func @gemv_float8(
// CHECK-NOT: gpu.grid_dim x
// CHECK: gpu.func @kv_cache_store(
func.func @float8_project_store(%x: tensor<?x256xbf16>, %w8: tensor<128x256xf8E4M3FN>, %s: tensor<128xf32>, %off: tensor<?xi32>,
                                %blocks: tensor<?x2x3x16x2x64xbf16>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xbf16> {
  %w = attn.quantized_weight(%w8, %s) : (tensor<128x256xf8E4M3FN>, tensor<128xf32>) -> !f8
  %kv = attn.linear %x, %w : tensor<?x256xbf16>, !f8 -> tensor<?x128xbf16>
  %c0 = arith.constant 0 : index
  %t = tensor.dim %kv, %c0 : tensor<?x128xbf16>
  %k = tensor.expand_shape %kv [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  %b = attn.kv_cache_store %k, %k into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  return %b : tensor<?x2x3x16x2x64xbf16>
}

// -----

// GPTQ with desc_act: the permutation of x carries the checks (one more
// block than its M * K / 256), the GEMV and GEMM after it do not.
!gptq_act = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, desc_act = true>>
// CHECK-LABEL: func.func @gptq_act_project_store(
// CHECK-SAME: %[[AOFF:[a-z0-9_]+]]: memref<?xi32>, %[[AB:[a-z0-9_]+]]: memref<?x2x3x16x2x64xbf16>,
// CHECK-NOT: validate_indices
// CHECK: gpu.launch_func @attn_kernels::@gptq_permute_x
// CHECK-SAME: %[[AOFF]] : memref<?xi32>, %{{[a-z0-9_]+}} : index,
// CHECK-SAME: %[[AB]] : memref<?x2x3x16x2x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq blocks in (%c2,
// CHECK-NOT: %[[AB]]
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16 blocks in (%c2,
// CHECK-NOT: %[[AB]]
// CHECK-NOT: %[[AB]]
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128 blocks in (%c1,
// CHECK-NOT: %[[AB]]
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma blocks in (%c1,
// CHECK-NOT: validate_indices
// CHECK: gpu.launch_func @attn_kernels::@kv_cache_store
func.func @gptq_act_project_store(%x: tensor<?x256xbf16>, %qw: tensor<32x128xi32>, %s: tensor<2x128xf16>, %perm: tensor<256xi32>,
                                  %off: tensor<?xi32>, %blocks: tensor<?x2x3x16x2x64xbf16>, %len: tensor<?xi32>,
                                  %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xbf16> {
  %w = attn.quantized_weight(%qw, %s, %perm) : (tensor<32x128xi32>, tensor<2x128xf16>, tensor<256xi32>) -> !gptq_act
  %kv = attn.linear %x, %w : tensor<?x256xbf16>, !gptq_act -> tensor<?x128xbf16>
  %c0 = arith.constant 0 : index
  %t = tensor.dim %kv, %c0 : tensor<?x128xbf16>
  %k = tensor.expand_shape %kv [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
  %b = attn.kv_cache_store %k, %k into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  return %b : tensor<?x2x3x16x2x64xbf16>
}

// -----

// Status 9 follows views back to the arguments: x reaches the GEMV through a
// reshape, so the check reads the 3-D argument; the output is stored element
// by element when it does not start aligned, so it is not checked.
// CHECK-LABEL: func.func @project_reshaped(
// CHECK-SAME: %[[X3:[a-z0-9_]+]]: memref<?x2x64xbf16>, %[[W:[a-z0-9_]+]]: memref<64x128xbf16>, %[[Y:[a-z0-9_]+]]: memref<?x64xbf16>)
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK: %[[XP:.*]] = memref.extract_aligned_pointer_as_index %[[X3]]
// CHECK-NEXT: %[[XR:.*]] = arith.remui %[[XP]], %[[C16]]
// CHECK-NEXT: %[[XA:.*]] = arith.cmpi eq, %[[XR]], %[[C0]]
// CHECK-NEXT: %[[WP:.*]] = memref.extract_aligned_pointer_as_index %[[W]]
// CHECK-NEXT: %[[WR:.*]] = arith.remui %[[WP]], %[[C16]]
// CHECK-NEXT: %[[WA:.*]] = arith.cmpi eq, %[[WR]], %[[C0]]
// CHECK-NEXT: %[[OK:.*]] = arith.andi %[[XA]], %[[WA]]
// CHECK-NEXT: cf.assert %[[OK]], {{.*}} {attn.status = 9 : i32}
// CHECK-NOT: extract_aligned_pointer_as_index %[[Y]]
// CHECK: memref.collapse_shape %[[X3]]
// DISABLED-LABEL: func.func @project_reshaped(
// DISABLED-NOT: attn.status = 9
// DISABLED: gpu.launch_func
func.func @project_reshaped(%x3: tensor<?x2x64xbf16>, %w: tensor<64x128xbf16>) -> tensor<?x64xbf16> {
  %x = tensor.collapse_shape %x3 [[0], [1, 2]] : tensor<?x2x64xbf16> into tensor<?x128xbf16>
  %y = attn.linear %x, %w : tensor<?x128xbf16>, tensor<64x128xbf16> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
