// RUN: attn-opt %s --convert-attn-to-gpu --canonicalize --cse -split-input-file | FileCheck %s

// The projections on sm_90a (wgmma=true, the default): the host launches the
// GEMV kernel (16 warps splitting K) for at most 16 rows, else the warp-specialised wgmma GEMM of
// M's shape: up to 64 rows one consumer warpgroup on 64 x 64 tiles (eight
// 16 KB stages), up to 128 rows two on 128 x 64 tiles (six 24 KB stages),
// up to 1024 rows two on 128 x N tiles with N picked for 512 rows (here
// 128: 4 column tiles fill more multiprocessors than 2 of 256), beyond two
// on 128 x 256 tiles (four 48 KB stages); each with a producer warpgroup and
// 1 KB of alignment. One producer thread loads with TMA. Clipped weights
// keep the mma.sync kernel (convert-attn-to-gpu-matmul.mlir, -gemv.mlir).

// Separate q / k / v weights (256 + 128 + 128 rows) with bias, loaded with
// TMA: before each GEMM launch the host encodes the tensor maps of x (boxes
// of the shape's rows) and of each weight (64-row boxes), 128-byte swizzled
// bf16 (CUtensorMapDataType 9), and passes them by value.
// CHECK-LABEL: func.func @qkv_separate(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C4:%[a-zA-Z0-9_]+]] = arith.constant 4 : index
// CHECK-DAG: [[C8:%[a-zA-Z0-9_]+]] = arith.constant 8 : index
// CHECK-DAG: [[C16:%[a-zA-Z0-9_]+]] = arith.constant 16 : index
// CHECK-DAG: [[C32:%[a-zA-Z0-9_]+]] = arith.constant 32 : index
// CHECK-DAG: [[C64:%[a-zA-Z0-9_]+]] = arith.constant 64 : index
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-DAG: [[C384:%[a-zA-Z0-9_]+]] = arith.constant 384 : index
// CHECK-DAG: [[C512:%[a-zA-Z0-9_]+]] = arith.constant 512 : index
// CHECK-DAG: [[C1024:%[a-zA-Z0-9_]+]] = arith.constant 1024 : index
// CHECK-DAG: [[BF16:%[a-zA-Z0-9_]+]] = arith.constant 9 : i32
// CHECK-DAG: [[BOX64:%[a-zA-Z0-9_]+]] = arith.constant 64 : i32
// CHECK-DAG: [[BOX128:%[a-zA-Z0-9_]+]] = arith.constant 128 : i32
// CHECK-DAG: [[K:%[a-zA-Z0-9_]+]] = arith.constant 256 : i64
// CHECK-DAG: [[PITCH:%[a-zA-Z0-9_]+]] = arith.constant 512 : i64
// CHECK-DAG: [[KVROWS:%[a-zA-Z0-9_]+]] = arith.constant 128 : i64
// CHECK-DAG: [[SMEM64:%[a-zA-Z0-9_]+]] = arith.constant 132096 : i32
// CHECK-DAG: [[SMEM128:%[a-zA-Z0-9_]+]] = arith.constant 148480 : i32
// CHECK-DAG: [[SMEM:%[a-zA-Z0-9_]+]] = arith.constant 197632 : i32
// CHECK: [[WQ:%[a-zA-Z0-9_]+]] = memref.cast %arg1
// CHECK: [[WK:%[a-zA-Z0-9_]+]] = memref.cast %arg2
// CHECK: [[WV:%[a-zA-Z0-9_]+]] = memref.cast %arg3
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C16]] : index
// CHECK-NEXT: scf.if [[GEMV]] {
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemv blocks in ([[C32]], [[C1]], [[C1]]) threads in ([[C512]], [[C1]], [[C1]])
// CHECK-NEXT: } else {
// CHECK-NEXT: [[UPTO64:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C64]] : index
// CHECK-NEXT: scf.if [[UPTO64]] {
// CHECK: [[XMETA:%[a-zA-Z0-9_]+]], %{{.+}}, [[XSIZES:%[a-zA-Z0-9_]+]]:2, %{{.+}} = memref.extract_strided_metadata [[X]]
// CHECK-NEXT: [[XMAP64:%[a-zA-Z0-9_]+]] = llvm.alloca %{{.+}} x !llvm.array<16 x i64> {alignment = 64 : i64}
// CHECK-NEXT: [[XPTR:%[a-zA-Z0-9_]+]] = memref.extract_aligned_pointer_as_index [[X]]
// CHECK-NEXT: [[XADDR:%[a-zA-Z0-9_]+]] = arith.index_cast [[XPTR]] : index to i64
// CHECK-NEXT: [[XROWS:%[a-zA-Z0-9_]+]] = arith.index_cast [[XSIZES]]#0 : index to i64
// CHECK-NEXT: func.call @attnCudaEncodeTensorMap([[XMAP64]], [[XADDR]], [[BF16]], [[XROWS]], [[K]], [[PITCH]], [[BOX64]], [[BOX64]])
// CHECK-NEXT: [[XV64:%[a-zA-Z0-9_]+]] = llvm.load [[XMAP64]] : !llvm.ptr -> !llvm.array<16 x i64>
// CHECK: memref.extract_aligned_pointer_as_index [[WQ]]
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, [[BF16]], [[K]], [[K]], [[PITCH]], [[BOX64]], [[BOX64]])
// CHECK: memref.extract_aligned_pointer_as_index [[WK]]
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, [[BF16]], [[KVROWS]], [[K]], [[PITCH]], [[BOX64]], [[BOX64]])
// CHECK: memref.extract_aligned_pointer_as_index [[WV]]
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, [[BF16]], [[KVROWS]], [[K]], [[PITCH]], [[BOX64]], [[BOX64]])
// CHECK-NEXT: [[WVV64:%[a-zA-Z0-9_]+]] = llvm.load
// CHECK-NEXT: [[T64:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C64]] : index
// CHECK-NEXT: [[GY64:%[a-zA-Z0-9_]+]] = arith.maxsi [[T64]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_wgmma_m64 blocks in ([[C8]], [[GY64]], [[C1]]) threads in ([[C256]], [[C1]], [[C1]]) dynamic_shared_memory_size [[SMEM64]]
// CHECK-SAME: [[XV64]] : !llvm.array<16 x i64>, {{.+}} : !llvm.array<16 x i64>, {{.+}} : !llvm.array<16 x i64>, [[WVV64]] : !llvm.array<16 x i64>)
// CHECK-NEXT: } else {
// CHECK-NEXT: [[UPTO128:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C128]] : index
// CHECK-NEXT: scf.if [[UPTO128]] {
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, [[BF16]], %{{.+}}, [[K]], [[PITCH]], [[BOX128]], [[BOX64]])
// CHECK-COUNT-3: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, [[BF16]], %{{.+}}, [[K]], [[PITCH]], [[BOX64]], [[BOX64]])
// CHECK: [[T128:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C128]] : index
// CHECK-NEXT: [[GY128:%[a-zA-Z0-9_]+]] = arith.maxsi [[T128]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_wgmma_m128 blocks in ([[C8]], [[GY128]], [[C1]]) threads in ([[C384]], [[C1]], [[C1]]) dynamic_shared_memory_size [[SMEM128]]
// CHECK-NEXT: } else {
// CHECK-NEXT: [[UPTO1024:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C1024]] : index
// CHECK-NEXT: scf.if [[UPTO1024]] {
// CHECK-COUNT-4: func.call @attnCudaEncodeTensorMap
// CHECK: [[T1024:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C128]] : index
// CHECK-NEXT: [[GY1024:%[a-zA-Z0-9_]+]] = arith.maxsi [[T1024]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_wgmma_m1024 blocks in ([[C4]], [[GY1024]], [[C1]]) threads in ([[C384]], [[C1]], [[C1]]) dynamic_shared_memory_size [[SMEM]]
// CHECK-NEXT: } else {
// CHECK-COUNT-4: func.call @attnCudaEncodeTensorMap
// CHECK: [[TILES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C128]] : index
// CHECK-NEXT: [[GY:%[a-zA-Z0-9_]+]] = arith.maxsi [[TILES]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_wgmma blocks in ([[C2:%[a-zA-Z0-9_]+]], [[GY]], [[C1]]) threads in ([[C384]], [[C1]], [[C1]]) dynamic_shared_memory_size [[SMEM]]
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: return
//
// CHECK-LABEL: gpu.func @gemm_wgmma(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWK:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWV:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>,
// CHECK-SAME: [[KBQ:%[a-zA-Z0-9_]+]]: memref<?xbf16>, [[KBK:%[a-zA-Z0-9_]+]]: memref<?xbf16>, [[KBV:%[a-zA-Z0-9_]+]]: memref<?xbf16>,
// CHECK-SAME: [[KQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KK:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>, [[KV:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>,
// CHECK-SAME: [[MX:%[a-zA-Z0-9_]+]]: !llvm.array<16 x i64>, [[MQ:%[a-zA-Z0-9_]+]]: !llvm.array<16 x i64>, [[MK:%[a-zA-Z0-9_]+]]: !llvm.array<16 x i64>, [[MV:%[a-zA-Z0-9_]+]]: !llvm.array<16 x i64>)
// CHECK-SAME: known_block_size = array<i32: 384, 1, 1>
// A full and an empty barrier per stage.
// CHECK: [[RAW:%[a-zA-Z0-9_]+]] = gpu.dynamic_shared_memory
// CHECK: [[FULL:%[a-zA-Z0-9_]+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// CHECK-NEXT: [[EMPTY:%[a-zA-Z0-9_]+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 4>
// The warpgroup, broadcast from lane 0 (warp-uniform for ptxas).
// CHECK: [[WG:%[a-zA-Z0-9_]+]] = arith.divui %{{.+}}, %c128 : index
// CHECK-NEXT: [[WGI:%[a-zA-Z0-9_]+]] = arith.index_cast [[WG]] : index to i32
// CHECK-NEXT: [[WGB:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle  idx [[WGI]], %c0_i32, %c32_i32 : i32
// CHECK-NEXT: [[ROLE:%[a-zA-Z0-9_]+]] = arith.index_cast [[WGB]] : i32 to index
// The block's tile in groups of 8 row tiles (2 column tiles of 256: 16
// blocks a group): linear block b = y * 2 + x takes row tile
// 8 (b / 16) + (b % 16) % rows and column tile (b % 16) / rows, rows =
// min(gridDim.y - 8 (b / 16), 8).
// CHECK: [[NY:%[a-zA-Z0-9_]+]] = gpu.grid_dim y
// CHECK-NEXT: [[BY:%[a-zA-Z0-9_]+]] = gpu.block_id y
// CHECK-NEXT: [[BY2:%[a-zA-Z0-9_]+]] = arith.muli [[BY]], %c2 : index
// CHECK-NEXT: [[BX:%[a-zA-Z0-9_]+]] = gpu.block_id x
// CHECK-NEXT: [[LIN:%[a-zA-Z0-9_]+]] = arith.addi [[BY2]], [[BX]] : index
// CHECK-NEXT: [[GRP:%[a-zA-Z0-9_]+]] = arith.divui [[LIN]], %c16 : index
// CHECK-NEXT: [[FIRST:%[a-zA-Z0-9_]+]] = arith.muli [[GRP]], %c8 : index
// CHECK-NEXT: [[LEFT:%[a-zA-Z0-9_]+]] = arith.subi [[NY]], [[FIRST]] : index
// CHECK-NEXT: [[ROWS:%[a-zA-Z0-9_]+]] = arith.minsi [[LEFT]], %c8 : index
// CHECK-NEXT: [[IN:%[a-zA-Z0-9_]+]] = arith.remui [[LIN]], %c16 : index
// CHECK-NEXT: [[R:%[a-zA-Z0-9_]+]] = arith.remui [[IN]], [[ROWS]] : index
// CHECK-NEXT: [[RT:%[a-zA-Z0-9_]+]] = arith.addi [[FIRST]], [[R]] : index
// CHECK-NEXT: [[CT:%[a-zA-Z0-9_]+]] = arith.divui [[IN]], [[ROWS]] : index
// CHECK-NEXT: arith.muli [[RT]], %c128 : index
// CHECK-NEXT: arith.muli [[CT]], %c256 : index
// The tensor maps' addresses (local copies, which
// attn-grid-constant-tensor-maps makes the parameters themselves).
// CHECK: [[AX:%[a-zA-Z0-9_]+]] = llvm.alloca %{{.+}} x !llvm.array<16 x i64> {alignment = 64 : i64}
// CHECK-NEXT: llvm.store [[MX]], [[AX]]
// CHECK-NEXT: [[AQ:%[a-zA-Z0-9_]+]] = llvm.alloca
// CHECK-NEXT: llvm.store [[MQ]], [[AQ]]
// CHECK-NEXT: [[AK:%[a-zA-Z0-9_]+]] = llvm.alloca
// CHECK-NEXT: llvm.store [[MK]], [[AK]]
// CHECK-NEXT: [[AV:%[a-zA-Z0-9_]+]] = llvm.alloca
// CHECK-NEXT: llvm.store [[MV]], [[AV]]
// Thread 0 sets up the barriers: full expects the one loading thread, empty
// the 8 consumer warps.
// CHECK: scf.if
// CHECK-NEXT: nvgpu.mbarrier.init [[FULL]][%c0], %c1
// CHECK-NEXT: nvgpu.mbarrier.init [[EMPTY]][%c0], %c8
// CHECK-COUNT-6: nvgpu.mbarrier.init
// CHECK: gpu.barrier
// Thread 0 of warpgroup 0 produces: per K step (256 / 64 = 4) it waits until
// the consumers released the stage, expects the stage's 48 KB on its full
// barrier, and loads the x box (128 rows at column 64 k) and four 64-row W
// boxes, each from the weight that holds its rows (q from 0, k from 256, v
// from 384), at its row within that weight.
// CHECK-NEXT: [[PRODUCER:%[a-zA-Z0-9_]+]] = arith.cmpi eq, [[ROLE]], %c0 : index
// CHECK-NEXT: scf.if [[PRODUCER]] {
// CHECK-NEXT: [[PT:%[a-zA-Z0-9_]+]] = arith.remui %{{.+}}, %c128 : index
// CHECK-NEXT: [[LOADER:%[a-zA-Z0-9_]+]] = arith.cmpi eq, [[PT]], %c0 : index
// CHECK-NEXT: scf.if [[LOADER]] {
// CHECK-NEXT: scf.for [[STEP:%[a-zA-Z0-9_]+]] = %c0 to %c4 step %c1 {
// CHECK-NEXT: [[STAGE:%[a-zA-Z0-9_]+]] = arith.remui [[STEP]], %c4 : index
// CHECK: nvgpu.mbarrier.try_wait.parity [[EMPTY]][[[STAGE]]]
// CHECK: nvgpu.mbarrier.arrive.expect_tx [[FULL]][[[STAGE]]], %c49152
// CHECK-NEXT: [[COL:%[a-zA-Z0-9_]+]] = arith.muli [[STEP]], %c64 : index
// CHECK: [[XBOX:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<128x64xbf16, #gpu.address_space<workgroup>>
// CHECK-NEXT: [[XD:%[a-zA-Z0-9_]+]] = builtin.unrealized_conversion_cast [[AX]] : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<128x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// CHECK-NEXT: nvgpu.tma.async.load [[XD]][[[COL]], [[M0:%[a-zA-Z0-9_]+]]], [[FULL]][[[STAGE]]] to [[XBOX]]
// CHECK-NEXT: [[ISK:%[a-zA-Z0-9_]+]] = arith.cmpi uge, [[N0:%[a-zA-Z0-9_]+]], %c256 : index
// CHECK-NEXT: [[MAP1:%[a-zA-Z0-9_]+]] = arith.select [[ISK]], [[AK]], [[AQ]] : !llvm.ptr
// CHECK-NEXT: [[BEGIN1:%[a-zA-Z0-9_]+]] = arith.select [[ISK]], %c256, %c0 : index
// CHECK-NEXT: [[ISV:%[a-zA-Z0-9_]+]] = arith.cmpi uge, [[N0]], %c384 : index
// CHECK-NEXT: [[MAP:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], [[AV]], [[MAP1]] : !llvm.ptr
// CHECK-NEXT: [[BEGIN:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], %c384, [[BEGIN1]] : index
// CHECK-NEXT: [[ROW:%[a-zA-Z0-9_]+]] = arith.subi [[N0]], [[BEGIN]] : index
// CHECK: [[WBOX:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<64x64xbf16, #gpu.address_space<workgroup>>
// CHECK-NEXT: [[WD:%[a-zA-Z0-9_]+]] = builtin.unrealized_conversion_cast [[MAP]] : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<64x64xbf16, #gpu.address_space<workgroup>>
// CHECK-NEXT: nvgpu.tma.async.load [[WD]][[[COL]], [[ROW]]], [[FULL]][[[STAGE]]] to [[WBOX]]
// CHECK-COUNT-3: nvgpu.tma.async.load
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: } else {
// The consumers carry the accumulator struct through the K loop: wait for
// the step, four m64n256k16 from its stage in one group, wait for the
// previous step's group only, lane 0 of each warp releases the previous
// stage. The step's descriptors are stage 0's (loop-invariant) advanced by
// one add each: the stage's offset plus 32 bytes a k16 step, >> 4.
// CHECK: [[ACC:%[a-zA-Z0-9_]+]] = scf.for %{{.+}} = %c0 to %c4 step %c1 iter_args(%[[CARRIED:[a-zA-Z0-9_]+]] = %{{.+}}) -> (!llvm.struct<(f32,
// CHECK: nvgpu.mbarrier.try_wait.parity [[FULL]]
// CHECK: [[A0:%[a-zA-Z0-9_]+]] = arith.ori %{{.+}}, %c4611686293305360384_i64 : i64
// CHECK: [[B0:%[a-zA-Z0-9_]+]] = arith.ori %{{.+}}, %c4611686293305360384_i64 : i64
// CHECK: [[AS0:%[a-zA-Z0-9_]+]] = arith.addi [[A0]], [[OFF0:%[a-zA-Z0-9_]+]] : i64
// CHECK-NEXT: [[BS0:%[a-zA-Z0-9_]+]] = arith.addi [[B0]], [[OFF0]] : i64
// CHECK: [[AS1:%[a-zA-Z0-9_]+]] = arith.addi [[A0]], [[OFF1:%[a-zA-Z0-9_]+]] : i64
// CHECK-NEXT: [[BS1:%[a-zA-Z0-9_]+]] = arith.addi [[B0]], [[OFF1]] : i64
// CHECK: [[AS2:%[a-zA-Z0-9_]+]] = arith.addi [[A0]], [[OFF2:%[a-zA-Z0-9_]+]] : i64
// CHECK-NEXT: [[BS2:%[a-zA-Z0-9_]+]] = arith.addi [[B0]], [[OFF2]] : i64
// CHECK: [[AS3:%[a-zA-Z0-9_]+]] = arith.addi [[A0]], [[OFF3:%[a-zA-Z0-9_]+]] : i64
// CHECK-NEXT: [[BS3:%[a-zA-Z0-9_]+]] = arith.addi [[B0]], [[OFF3]] : i64
// CHECK-NEXT: nvvm.wgmma.fence.aligned
// CHECK-NEXT: [[D0:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async [[AS0]], [[BS0]], %[[CARRIED]], <m = 64, n = 256, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK-NEXT: [[D1:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async [[AS1]], [[BS1]], [[D0]], <m = 64, n = 256, k = 16>
// CHECK-NEXT: [[D2:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async [[AS2]], [[BS2]], [[D1]], <m = 64, n = 256, k = 16>
// CHECK-NEXT: [[D3:%[a-zA-Z0-9_]+]] = nvvm.wgmma.mma_async [[AS3]], [[BS3]], [[D2]], <m = 64, n = 256, k = 16>
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: [[LANE0:%[a-zA-Z0-9_]+]] = arith.cmpi eq, %{{.+}}, %c0 : index
// CHECK-NEXT: scf.if [[LANE0]] {
// CHECK-NEXT: nvgpu.mbarrier.arrive [[EMPTY]]
// CHECK: scf.yield [[D3]]
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// Epilogue. When q, k and v all start 16-byte aligned (a uniform run-time
// test; their row pitches are static multiples of 16 bytes): both consumers
// are done with the stages (barrier 1 over their 256 threads), each writes
// its pairs of columns with their bias, rounded, into a 128 x (256 + 8)
// bf16 tile over the stages, and after a second barrier they copy the tile
// out in 16-byte chunks (thread t of round i: row (t + 256 i) / 32, column
// chunk (t + 256 i) % 32), each into q, k or v.
// CHECK: [[QBASE:%[a-zA-Z0-9_]+]] = memref.extract_aligned_pointer_as_index [[KQ]]
// CHECK-NEXT: [[QMOD:%[a-zA-Z0-9_]+]] = arith.remui [[QBASE]], %c16 : index
// CHECK: memref.extract_aligned_pointer_as_index [[KK]]
// CHECK: memref.extract_aligned_pointer_as_index [[KV]]
// CHECK: [[CHUNKS:%[a-zA-Z0-9_]+]] = arith.andi
// CHECK-NEXT: scf.if [[CHUNKS]] {
// CHECK: [[TILE:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<33792xbf16, #gpu.address_space<workgroup>>
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: nvvm.barrier id = %c1_i32 number_of_threads = %c256_i32
// CHECK: arith.addf
// CHECK: arith.truncf %{{.+}} : vector<2xf32> to vector<2xbf16>
// CHECK: vector.store %{{.+}}, [[TILE]][%{{.+}}] : memref<33792xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// CHECK: nvvm.barrier id = %c1_i32 number_of_threads = %c256_i32
// CHECK-NEXT: [[CT:%[a-zA-Z0-9_]+]] = arith.subi %thread_id_x, %c128 : index
// CHECK-NEXT: [[CR:%[a-zA-Z0-9_]+]] = arith.divui [[CT]], %c32 : index
// CHECK-NEXT: [[CC:%[a-zA-Z0-9_]+]] = arith.remui [[CT]], %c32 : index
// CHECK-NEXT: [[CCOL:%[a-zA-Z0-9_]+]] = arith.muli [[CC]], %c8 : index
// CHECK: scf.if
// CHECK-NEXT: [[TROW:%[a-zA-Z0-9_]+]] = arith.muli [[CR]], %c264 : index
// CHECK-NEXT: [[TAT:%[a-zA-Z0-9_]+]] = arith.addi [[TROW]], [[CCOL]] : index
// CHECK-NEXT: [[CHUNK:%[a-zA-Z0-9_]+]] = vector.load [[TILE]][[[TAT]]] {alignment = 16 : i64} : memref<33792xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: vector.store [[CHUNK]], [[KQ]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<?x256xbf16>, vector<8xbf16>
// CHECK: vector.store [[CHUNK]], [[KK]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<?x128xbf16>, vector<8xbf16>
// CHECK: vector.store [[CHUNK]], [[KV]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<?x128xbf16>, vector<8xbf16>
// Otherwise (a caller's view that is not 16-byte aligned) pairs of columns
// are stored straight from the accumulators, as one vector<2xbf16> each.
// CHECK: } else {
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
// behind its own bound; K = 200 is not a multiple of the 64-deep step (TMA
// fills the last step's columns past K with zeros). f16 operands
// (CUtensorMapDataType 6).
// CHECK-LABEL: func.func @linear_odd(
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, %c6_i32, %{{.+}}, %c200_i64, %c400_i64
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

// Clipped weights are clamped as they are staged, which TMA cannot do: they
// keep the mma.sync matmul kernel.
// CHECK-LABEL: func.func @linear_clip(
// CHECK: gpu.launch_func @attn_kernels::@matmul
// CHECK-NOT: gemm_wgmma
func.func @linear_clip(%x: tensor<?x256xbf16>, %w: tensor<64x256xbf16>) -> tensor<?x64xbf16> {
  %0 = attn.linear %x, %w clip 2.0 : tensor<?x256xbf16>, tensor<64x256xbf16> -> tensor<?x64xbf16>
  return %0 : tensor<?x64xbf16>
}
