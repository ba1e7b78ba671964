// RUN: attn-opt %s --convert-attn-to-gpu --canonicalize --cse -split-input-file | FileCheck %s

!gptq = !attn.quantized_weight<64x4096, #attn.gptq<group_size = 128>>

// GPTQ without desc_act: no prologue. Up to 16 rows (and at least one: TMA
// has no empty boxes) the GEMV (GemvGPTQ.cpp):
// one block of 64 columns, 8 warps (one block: fewer than multiprocessors)
// with 3 stages each; up to 8 rows one n8 tile of x (stages of 2 x 16 x 128
// bytes of words + 2 x 8 x 128 of x = 6144, 147456 + 1024 of barriers +
// 6144 of scale rows + 1024 of alignment = 155648), up to 16 two (stages
// of 8192: 204800). The host encodes the tensor maps of x (bf16, 8 or 16
// rows x 64), the words (u32, 16 word rows x 32) and the scales (f16, 1 x
// 64) for each call. 17-64 rows take the GEMV in 16-row slices of x (grid
// y). Above 64 rows the wgmma GEMM (GemmGPTQWgmma.cpp) with the tensor maps
// of x (a block's rows x 64) and of the words (8 word rows x 32): 128
// features by 64 tokens up to 128 rows (8 stages of 12288 bytes and 1024 of
// alignment: 99328), else by 128 tokens (8 x 20480 + 1024 = 164864); 384
// threads.
// CHECK-LABEL: func.func @linear_gptq(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>, [[QW:%[a-zA-Z0-9_]+]]: memref<512x64xi32>, [[S:%[a-zA-Z0-9_]+]]: memref<32x64xf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>)
// CHECK-NOT: gpu.alloc
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c64
// CHECK-NEXT: scf.if [[GEMV]] {
// CHECK-NEXT: [[NARROW:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c8
// CHECK-NEXT: scf.if [[NARROW]] {
// x without rows (M = 0 still launches, for the index checks a launch may
// carry) gets a one-row map at a placeholder address, which no block reads.
// CHECK: [[XADDR:%[a-zA-Z0-9_]+]] = arith.index_cast %{{.*}} : index to i64
// CHECK-NEXT: [[EMPTY:%[a-zA-Z0-9_]+]] = arith.cmpi eq, [[XROWS:%[a-zA-Z0-9_#]+]], %c0 : index
// CHECK-NEXT: [[MAPADDR:%[a-zA-Z0-9_]+]] = arith.select [[EMPTY]], %{{.*}}, [[XADDR]] : i64
// CHECK-NEXT: [[MAPROWS:%[a-zA-Z0-9_]+]] = arith.maxsi [[XROWS]], %c1 : index
// CHECK-NEXT: [[MAPROWS64:%[a-zA-Z0-9_]+]] = arith.index_cast [[MAPROWS]] : index to i64
// CHECK-NEXT: func.call @attnCudaEncodeTensorMap(%{{.*}}, [[MAPADDR]], %c9_i32, [[MAPROWS64]], %c4096_i64, %c8192_i64, %c8_i32, %c64_i32)
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c2_i32, %c512_i64, %c64_i64, %c256_i64, %c16_i32, %c32_i32)
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c6_i32, %c32_i64, %c64_i64, %c128_i64, %c1_i32, %c64_i32)
// CHECK: [[SLICES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], %c8
// CHECK-NEXT: [[GY:%[a-zA-Z0-9_]+]] = arith.maxsi [[SLICES]], %c1
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemv_gptq blocks in (%c1, [[GY]], %c1) threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c155648_i32 args([[X]] : memref<?x4096xbf16>, [[QW]] : memref<512x64xi32>, [[S]] : memref<32x64xf16>, [[Y]] : memref<?x64xbf16>, %{{.*}} : !llvm.array<16 x i64>, %{{.*}} : !llvm.array<16 x i64>, %{{.*}} : !llvm.array<16 x i64>)
// CHECK-NEXT: } else {
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c9_i32, %{{.*}}, %c4096_i64, %c8192_i64, %c16_i32, %c64_i32)
// CHECK: [[SLICES16:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], %c16
// CHECK-NEXT: [[GY16:%[a-zA-Z0-9_]+]] = arith.maxsi [[SLICES16]], %c1
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemv_gptq_m16 blocks in (%c1, [[GY16]], %c1) threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c204800_i32
// CHECK-NEXT: }
// CHECK-NEXT: } else {
// CHECK-NEXT: [[SMALL:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c128
// CHECK-NEXT: scf.if [[SMALL]] {
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c9_i32, %{{.*}}, %c4096_i64, %c8192_i64, %c64_i32, %c64_i32)
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c2_i32, %c512_i64, %c64_i64, %c256_i64, %c8_i32, %c32_i32)
// CHECK: [[T64:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], %c64
// CHECK-NEXT: [[GY64:%[a-zA-Z0-9_]+]] = arith.maxsi [[T64]], %c1
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128 blocks in (%c1, [[GY64]], %c1) threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c99328_i32 args([[X]] : memref<?x4096xbf16>, [[QW]] : memref<512x64xi32>, [[S]] : memref<32x64xf16>, [[Y]] : memref<?x64xbf16>, %{{.*}} : !llvm.array<16 x i64>, %{{.*}} : !llvm.array<16 x i64>)
// CHECK-NEXT: } else {
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c9_i32, %{{.*}}, %c4096_i64, %c8192_i64, %c128_i32, %c64_i32)
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c2_i32, %c512_i64, %c64_i64, %c256_i64, %c8_i32, %c32_i32)
// CHECK: [[T128:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], %c128
// CHECK-NEXT: [[GY128:%[a-zA-Z0-9_]+]] = arith.maxsi [[T128]], %c1
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma blocks in (%c1, [[GY128]], %c1) threads in (%c384, %c1, %c1) dynamic_shared_memory_size %c164864_i32 args([[X]] : memref<?x4096xbf16>, [[QW]] : memref<512x64xi32>, [[S]] : memref<32x64xf16>, [[Y]] : memref<?x64xbf16>, %{{.*}} : !llvm.array<16 x i64>, %{{.*}} : !llvm.array<16 x i64>)
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: return
//
// Kernel: nothing without rows; else lane 0 of each warp sets up its 3
// stage barriers and the warp's first two units (128 k: one group) go in
// flight before the loop.
// CHECK-LABEL: gpu.func @gemv_gptq(
// CHECK: [[KROWS:%[a-zA-Z0-9_]+]] = memref.dim %arg0, %c0
// CHECK-NEXT: [[HASROWS:%[a-zA-Z0-9_]+]] = arith.cmpi ne, [[KROWS]], %c0 : index
// CHECK-NEXT: scf.if [[HASROWS]] {
// CHECK: gpu.dynamic_shared_memory
// CHECK-COUNT-3: mbarrier.init.shared::cta.b64 [$0], 1;
// CHECK: fence.mbarrier_init.release.cluster;
// A unit's copy: lane 0 expects its bytes, then copies each half's words
// and scale row (halves inside N) and x's two 64-deep boxes.
// CHECK: mbarrier.arrive.expect_tx.shared::cta.b64
// CHECK-COUNT-4: cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes
// CHECK: scf.for %{{.*}} = %c0 to %{{.*}} step %c1 iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// The copy two units ahead, then the wait for this one (parity of its use).
// CHECK: mbarrier.arrive.expect_tx.shared::cta.b64
// CHECK: mbarrier.try_wait.parity.shared::cta.b64
// A lane's 16 bytes of words: row 128 r + chunk 16 g, swizzled (chunk ^
// row % 8), of half 0 then half 1 (2048 bytes on).
// CHECK: [[ROW:%[a-zA-Z0-9_]+]] = arith.divui [[OFF:%[a-zA-Z0-9_]+]], %c128 : index
// CHECK-NEXT: [[R8:%[a-zA-Z0-9_]+]] = arith.remui [[ROW]], %c8 : index
// CHECK-NEXT: [[XOR:%[a-zA-Z0-9_]+]] = arith.muli [[R8]], %c16 : index
// CHECK-NEXT: arith.xori [[OFF]], [[XOR]] : index
// CHECK: [[LO:%[a-zA-Z0-9_]+]] = vector.load %{{.*}} {alignment = 16 : i64} : memref<{{[0-9]+}}xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// CHECK-NEXT: [[LO0:%[a-zA-Z0-9_]+]] = vector.extract [[LO]][0] : i32 from vector<4xi32>
// CHECK: arith.addi %{{.*}}, %c2048 : index
// CHECK: [[HI:%[a-zA-Z0-9_]+]] = vector.load %{{.*}} {alignment = 16 : i64} : memref<{{[0-9]+}}xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// CHECK-NEXT: [[HI0:%[a-zA-Z0-9_]+]] = vector.extract [[HI]][0] : i32 from vector<4xi32>
// x's 8 k of the lane's word row, as pairs (i, i + 4).
// CHECK: [[XW:%[a-zA-Z0-9_]+]] = vector.load %{{.*}} {alignment = 16 : i64} : memref<{{[0-9]+}}xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// CHECK: [[X0:%[a-zA-Z0-9_]+]] = vector.extract [[XW]][0] : i32 from vector<4xi32>
// CHECK: [[X2:%[a-zA-Z0-9_]+]] = vector.extract [[XW]][2] : i32 from vector<4xi32>
// CHECK-NEXT: vector.extract [[XW]][3]
// CHECK-NEXT: [[E0:%[a-zA-Z0-9_]+]] = arith.andi [[X0]], %c65535_i32 : i32
// CHECK-NEXT: [[E4:%[a-zA-Z0-9_]+]] = arith.shli [[X2]], %c16_i32 : i32
// CHECK-NEXT: [[B0:%[a-zA-Z0-9_]+]] = arith.ori [[E0]], [[E4]] : i32
// Nibbles (j, j + 4) of the words of columns 4 g + t (A row g) and
// 32 + 4 g + t (row g + 8): mask 0x000F000F, bf16 exponent of 128
// (0x43004300), minus 136 = q - 8, exact.
// CHECK: [[NIB:%[a-zA-Z0-9_]+]] = arith.andi [[LO0]], %c983055_i32 : i32
// CHECK-NEXT: [[MAG:%[a-zA-Z0-9_]+]] = arith.ori [[NIB]], %c1124090624_i32 : i32
// CHECK-NEXT: [[PAIR:%[a-zA-Z0-9_]+]] = llvm.bitcast [[MAG]] : i32 to vector<2xbf16>
// CHECK-NEXT: [[Q:%[a-zA-Z0-9_]+]] = arith.subf [[PAIR]], %cst{{.*}} : vector<2xbf16>
// CHECK-NEXT: [[A0:%[a-zA-Z0-9_]+]] = llvm.bitcast [[Q]] : vector<2xbf16> to i32
// CHECK-NEXT: arith.andi [[HI0]], %c983055_i32 : i32
// CHECK: arith.shrui [[LO0]], %c4_i32 : i32
// The decoded words are A, x is B.
// CHECK: nvvm.mma.sync A[[[A0]], {{.*}}] B[[[B0]], {{.*}}] {{.*}} shape = #nvvm.shape<m = 16, n = 8, k = 16>
// The unit's f32 sums times its scales, once: 4 columns a half from the
// stage's scale rows.
// CHECK: vector.load %{{.*}} {alignment = 8 : i64} : memref<{{[0-9]+}}xi32, #gpu.address_space<workgroup>>, vector<2xi32>
// CHECK: vector.bitcast %{{.*}} : vector<2xi32> to vector<4xf16>
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK-NEXT: math.fma
// CHECK: scf.yield
// The warps meet in shared memory; warp 0 stores 4 adjacent columns.
// CHECK: gpu.barrier
// CHECK: memref.store
// CHECK: gpu.barrier
// CHECK: memref.load
// CHECK: vector.store %{{.*}} : memref<?x64xbf16>, vector<4xbf16>
//
// The wgmma GEMM (GemmGPTQWgmma.cpp): 384 threads, one block a
// multiprocessor (setmaxnreg); 8 stages of 20480 bytes (x's 128 x 128 bytes,
// four 8 x 128-byte word boxes), their full (1 arrival) and empty (8
// consumer warps) barriers.
// CHECK-LABEL: gpu.func @gemm_gptq_wgmma(
// CHECK-SAME: known_block_size = array<i32: 384, 1, 1>
// CHECK-SAME: nvvm.minctasm = 1 : i32
// CHECK: nvgpu.mbarrier.init %{{.*}}[%c0], %c1 : <memorySpace = #gpu.address_space<workgroup>, num_barriers = 8>
// CHECK-NEXT: nvgpu.mbarrier.init %{{.*}}[%c0], %c8 :
// CHECK: nvgpu.mbarrier.init %{{.*}}[%c7], %c1 :
// CHECK-NEXT: nvgpu.mbarrier.init %{{.*}}[%c7], %c8 :
// The producer (warpgroup 0) gives up registers; its thread 0 waits for a
// stage's release (from the second use), expects its 20480 bytes and loads
// x's box (k 64 i, row m0) and the four word boxes (8 word rows from 8 i).
// CHECK: nvvm.setmaxregister  decrease 40
// CHECK: scf.for %{{.*}} = %c0 to %c64 step %c1 {
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.*}}, %c20480
// CHECK: nvgpu.tma.async.load {{.*}} : <tensor = memref<128x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// CHECK-COUNT-4: nvgpu.tma.async.load {{.*}} : <tensor = memref<8x32xi32, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// The consumers: features 64 c + 16 w + 2 g (and + 1); their words at
// 16384 + 1024 (inTile / 32) bytes into a stage, word inTile % 32 of each
// word row; the prmt selector of byte `quad`.
// CHECK: nvvm.setmaxregister  increase 232
// CHECK: [[FW:%[a-zA-Z0-9_]+]] = arith.muli %{{.*}}, %c64 : index
// CHECK: [[BOX:%[a-zA-Z0-9_]+]] = arith.divui [[IN:%[a-zA-Z0-9_]+]], %c32 : index
// CHECK-NEXT: [[BOXB:%[a-zA-Z0-9_]+]] = arith.muli [[BOX]], %c1024 : index
// CHECK-NEXT: arith.addi [[BOXB]], %c16384 : index
// CHECK: arith.muli %{{.*}}, %c4369_i32 : i32
// Step 0's A registers before the loop: 8-byte reads of word rows 0-7,
// their 16-byte chunk XOR-ed with the row (the 128-byte swizzle).
// CHECK: nvgpu.mbarrier.try_wait.parity %{{.*}}[%c0], %false
// CHECK: vector.load {{.*}} {alignment = 8 : i64} : memref<40960xi32, #gpu.address_space<workgroup>>, vector<2xi32>
// CHECK: arith.xori %{{.*}}, %c1 : index
// CHECK: vector.load {{.*}} {alignment = 8 : i64} : memref<40960xi32, #gpu.address_space<workgroup>>, vector<2xi32>
// CHECK: [[W:%[a-zA-Z0-9_]+]] = vector.extract %{{.*}}[0] : i32 from vector<2xi32>
// CHECK-NEXT: [[SH:%[a-zA-Z0-9_]+]] = arith.shrui [[W]], %c4_i32 : i32
// CHECK-NEXT: [[BY:%[a-zA-Z0-9_]+]] = nvvm.prmt <default> %{{.*}}, [[W]], [[SH]] : i32
// CHECK-NEXT: [[NIB:%[a-zA-Z0-9_]+]] = arith.andi [[BY]], %c983055_i32 : i32
// CHECK-NEXT: [[MAG:%[a-zA-Z0-9_]+]] = arith.ori [[NIB]], %c1124090624_i32 : i32
// CHECK: arith.xori %{{.*}}, %c7 : index
// The loop over 64 steps carries 16 A registers, the group's partial sums
// and 64 f32 sums; the group's two scales (feature, feature + 1) are read
// first.
// CHECK: scf.for %{{.*}} = %c0 to %c64 step %c1 iter_args({{.*}}) -> ({{(i32, )+}}!llvm.struct<({{(f32, )+}}f32)>, {{(f32, )+}}f32) {
// CHECK: [[GROUP:%[a-zA-Z0-9_]+]] = arith.divui %{{.*}}, %c2 : index
// CHECK-NEXT: [[IN_GROUP:%[a-zA-Z0-9_]+]] = arith.remui %{{.*}}, %c2 : index
// CHECK-NEXT: memref.load %arg2[[[GROUP]], %{{.*}}] : memref<32x64xf16>
// Four k16 wgmmas with A from registers, scale-d 0 at a group's first step.
// CHECK: [[NOT_FIRST:%[a-zA-Z0-9_]+]] = arith.cmpi ne, [[IN_GROUP]], %c0 : index
// CHECK: [[SCALE_D:%[a-zA-Z0-9_]+]] = arith.extui [[NOT_FIRST]] : i1 to i32
// CHECK-NEXT: nvvm.wgmma.fence.aligned
// CHECK: llvm.inline_asm has_side_effects "{\0A.reg .pred p;\0Asetp.ne.b32 p, $133, 0;\0Awgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {$0, {{.*}}, $63}, {$128, $129, $130, $131}, $132, p, 1, 1, 0;\0A}\0A", "=f,{{.*}},63,r,r,r,r,l,r" {{.*}}, [[SCALE_D]] :
// CHECK-COUNT-3: setp.ne.b32 p, 1, 0;
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// The next step's words while they run (fenced: decoded before the wait),
// then the wait, the registers kept alive past it, the stage's release by
// lane 0 of each warp.
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvvm.prmt
// CHECK: llvm.inline_asm has_side_effects "", "=r,{{.*}},15"
// CHECK-COUNT-16: llvm.extractvalue
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NEXT: llvm.inline_asm has_side_effects "", "=r,{{.*}},15"
// CHECK: nvgpu.mbarrier.arrive
// At a group's last step: sum += part * scale (f32), once a group.
// CHECK: [[LAST:%[a-zA-Z0-9_]+]] = arith.cmpi eq, [[IN_GROUP]], %c1 : index
// CHECK-NEXT: scf.if [[LAST]] -> ({{(f32, )+}}f32) {
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK-NEXT: math.fma
// The epilogue: per token, the lane's two features together.
// CHECK: vector.store %{{.*}} : memref<?x64xbf16>, vector<2xbf16>
func.func @linear_gptq(%x: tensor<?x4096xbf16>, %qw: tensor<512x64xi32>, %s: tensor<32x64xf16>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<512x64xi32>, tensor<32x64xf16>) -> !gptq
  %y = attn.linear %x, %w : tensor<?x4096xbf16>, !gptq -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// From N 10240 the GEMV serves GPTQ up to 32 rows only: above, the wgmma GEMM
// decodes W once where 16-row slices would read it three or four times
// (gptqGemvMaxRows; the GEMM's 80 blocks of 128 features fit one wave).
// CHECK-LABEL: func.func @linear_gptq_wide(
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c32
// CHECK-NEXT: scf.if [[GEMV]] {
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq blocks in (%c160,
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16 blocks in (%c160,
// CHECK: } else {
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128 blocks in (%c80,
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma blocks in (%c80,
func.func @linear_gptq_wide(%x: tensor<?x256xbf16>, %qw: tensor<32x10240xi32>, %s: tensor<2x10240xf16>) -> tensor<?x10240xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<32x10240xi32>, tensor<2x10240xf16>) -> !attn.quantized_weight<10240x256, #attn.gptq<group_size = 128>>
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !attn.quantized_weight<10240x256, #attn.gptq<group_size = 128>> -> tensor<?x10240xbf16>
  return %y : tensor<?x10240xbf16>
}

// -----

!wq = !attn.quantized_weight<128x4096, #attn.gptq<group_size = 128, layout = column_blocks>>
!wkv = !attn.quantized_weight<64x4096, #attn.gptq<group_size = 128, layout = column_blocks>>

// Words and scales in column blocks ([N/32, K/8, 32], [N/32, K/g, 32]): the
// host collapses each weight's to [N/32 * K/8, 32] and [N/32 * K/g, 32]
// (rows dynamic: one argument type for the three); the words' tensor map
// is 32 words (128 bytes) wide, so a 16-row box is one contiguous 2 KB run.
// The kernels' boxes and chunks of column n, row r go to row (n / 32) * rows
// + r, column n % 32.
// CHECK-LABEL: func.func @qkv_gptq_column_blocks(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>, [[QQ:%[a-zA-Z0-9_]+]]: memref<4x512x32xi32>, [[SQ:%[a-zA-Z0-9_]+]]: memref<4x32x32xf16>, [[QK:%[a-zA-Z0-9_]+]]: memref<2x512x32xi32>, {{.*}}, [[QV:%[a-zA-Z0-9_]+]]: memref<2x512x32xi32>,
// CHECK: [[CQ:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[QQ]] {{\[}}[0, 1], [2]] : memref<4x512x32xi32> into memref<2048x32xi32>
// CHECK-NEXT: [[WQ:%[a-zA-Z0-9_]+]] = memref.cast [[CQ]] : memref<2048x32xi32> to memref<?x32xi32>
// CHECK-NEXT: [[CK:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[QK]] {{\[}}[0, 1], [2]] : memref<2x512x32xi32> into memref<1024x32xi32>
// CHECK-NEXT: [[WK:%[a-zA-Z0-9_]+]] = memref.cast [[CK]] : memref<1024x32xi32> to memref<?x32xi32>
// CHECK-NEXT: [[CV:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[QV]] {{\[}}[0, 1], [2]] : memref<2x512x32xi32> into memref<1024x32xi32>
// CHECK-NEXT: [[WV:%[a-zA-Z0-9_]+]] = memref.cast [[CV]] : memref<1024x32xi32> to memref<?x32xi32>
// CHECK-NEXT: [[CSQ:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[SQ]] {{\[}}[0, 1], [2]] : memref<4x32x32xf16> into memref<128x32xf16>
// CHECK-NEXT: [[WSQ:%[a-zA-Z0-9_]+]] = memref.cast [[CSQ]] : memref<128x32xf16> to memref<?x32xf16>
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c2_i32, %c2048_i64, %c32_i64, %c128_i64, %c16_i32, %c32_i32)
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c6_i32, %c128_i64, %c32_i64, %c64_i64, %c1_i32, %c64_i32)
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c2_i32, %c1024_i64, %c32_i64, %c128_i64, %c16_i32, %c32_i32)
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq blocks in (%c4, %{{.*}}, %c1) {{.*}} args([[X]] : memref<?x4096xbf16>, [[WQ]] : memref<?x32xi32>, {{.*}} : memref<?x32xi32>, {{.*}} : memref<?x32xi32>, [[WSQ]] : memref<?x32xf16>,
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.*}}, %{{.*}}, %c2_i32, %c2048_i64, %c32_i64, %c128_i64, %c8_i32, %c32_i32)
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma
//
// CHECK-LABEL: gpu.func @gemv_gptq(
// CHECK: mbarrier.arrive.expect_tx.shared::cta.b64
// CHECK: [[WR:%[a-zA-Z0-9_]+]] = arith.divui [[K0:%[a-zA-Z0-9_]+]], %c8 : index
// CHECK-NEXT: [[BLOCK:%[a-zA-Z0-9_]+]] = arith.divui [[COL:%[a-zA-Z0-9_]+]], %c32 : index
// CHECK-NEXT: [[FIRST:%[a-zA-Z0-9_]+]] = arith.muli [[BLOCK]], %c512 : index
// CHECK-NEXT: [[ROW:%[a-zA-Z0-9_]+]] = arith.addi [[FIRST]], [[WR]] : index
// CHECK-NEXT: [[INNER:%[a-zA-Z0-9_]+]] = arith.remui [[COL]], %c32 : index
// CHECK: [[INNER32:%[a-zA-Z0-9_]+]] = arith.index_cast [[INNER]] : index to i32
// CHECK-NEXT: [[ROW32:%[a-zA-Z0-9_]+]] = arith.index_cast [[ROW]] : index to i32
// CHECK-NEXT: cp.async.bulk.tensor.2d{{.*}}[[INNER32]], [[ROW32]],
//
// The wgmma GEMM's word boxes (8 word rows a step, after x's box) likewise.
// CHECK-LABEL: gpu.func @gemm_gptq_wgmma_m128(
// CHECK: nvgpu.tma.async.load {{.*}} -> memref<64x64xbf16
// CHECK: [[GBLOCK:%[a-zA-Z0-9_]+]] = arith.divui [[GCOL:%[a-zA-Z0-9_]+]], %c32 : index
// CHECK-NEXT: [[GFIRST:%[a-zA-Z0-9_]+]] = arith.muli [[GBLOCK]], %c512 : index
// CHECK-NEXT: [[GR:%[a-zA-Z0-9_]+]] = arith.addi [[GFIRST]], %{{.*}} : index
// CHECK-NEXT: [[GC:%[a-zA-Z0-9_]+]] = arith.remui [[GCOL]], %c32 : index
// CHECK: nvgpu.tma.async.load {{.*}}{{\[}}[[GC]], [[GR]]]
func.func @qkv_gptq_column_blocks(%x: tensor<?x4096xbf16>, %qq: tensor<4x512x32xi32>, %sq: tensor<4x32x32xf16>,
    %qk: tensor<2x512x32xi32>, %sk: tensor<2x32x32xf16>, %qv: tensor<2x512x32xi32>, %sv: tensor<2x32x32xf16>)
    -> (tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>) {
  %wq = attn.quantized_weight(%qq, %sq) : (tensor<4x512x32xi32>, tensor<4x32x32xf16>) -> !wq
  %wk = attn.quantized_weight(%qk, %sk) : (tensor<2x512x32xi32>, tensor<2x32x32xf16>) -> !wkv
  %wv = attn.quantized_weight(%qv, %sv) : (tensor<2x512x32xi32>, tensor<2x32x32xf16>) -> !wkv
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x4096xbf16>, (!wq, !wkv, !wkv) -> tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>
  return %q, %k, %v : tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>
}

// -----

!gptq = !attn.quantized_weight<64x256, #attn.gptq<group_size = 128, desc_act = true>>

// desc_act: x is permuted once per call into a buffer the GEMV or the
// GEMM reads.
// CHECK-LABEL: func.func @linear_gptq_desc_act(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[QW:%[a-zA-Z0-9_]+]]: memref<32x64xi32>, [[S:%[a-zA-Z0-9_]+]]: memref<2x64xf16>, [[P:%[a-zA-Z0-9_]+]]: memref<256xi32>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>)
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[XP:%[a-zA-Z0-9_]+]] = gpu.alloc ([[M]]) : memref<?x256xbf16>
// CHECK: gpu.launch_func @attn_kernels::@gptq_permute_x {{.*}} args([[X]] : memref<?x256xbf16>, [[P]] : memref<256xi32>, [[XP]] : memref<?x256xbf16>
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq {{.*}} args([[XP]] : memref<?x256xbf16>, [[QW]] : memref<32x64xi32>, [[S]] : memref<2x64xf16>, [[Y]] : memref<?x64xbf16>,
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16 {{.*}} args([[XP]] : memref<?x256xbf16>,
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128 {{.*}} args([[XP]] : memref<?x256xbf16>, [[QW]] : memref<32x64xi32>, [[S]] : memref<2x64xf16>, [[Y]] : memref<?x64xbf16>,
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma {{.*}} args([[XP]] : memref<?x256xbf16>, [[QW]] : memref<32x64xi32>, [[S]] : memref<2x64xf16>, [[Y]] : memref<?x64xbf16>,
// CHECK-NEXT: }
// CHECK-NEXT: }
// CHECK-NEXT: gpu.dealloc [[XP]]
//
// xp[t, r] = x[t, perm[r]].
// CHECK-LABEL: gpu.func @gptq_permute_x(
// CHECK: [[T:%[a-zA-Z0-9_]+]] = arith.divui [[ITEM:%[a-zA-Z0-9_]+]], %c256
// CHECK-NEXT: [[R:%[a-zA-Z0-9_]+]] = arith.remui [[ITEM]], %c256
// CHECK-NEXT: [[PR:%[a-zA-Z0-9_]+]] = memref.load %arg1[[[R]]]
// CHECK-NEXT: [[COL:%[a-zA-Z0-9_]+]] = arith.index_cast [[PR]] : i32 to index
// CHECK-NEXT: [[V:%[a-zA-Z0-9_]+]] = memref.load %arg0[[[T]], [[COL]]]
// CHECK-NEXT: memref.store [[V]], %arg2[[[T]], [[R]]]
func.func @linear_gptq_desc_act(%x: tensor<?x256xbf16>, %qw: tensor<32x64xi32>, %s: tensor<2x64xf16>, %p: tensor<256xi32>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%qw, %s, %p) : (tensor<32x64xi32>, tensor<2x64xf16>, tensor<256xi32>) -> !gptq
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !gptq -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

!wq = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128, desc_act = true>>
!wkv = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, desc_act = true>>

// Three GPTQ weights sharing MAX's one perm: one permutation, one launch
// over the three (the GEMV: 8 blocks of 64 columns; the GEMM above 64 rows
// 4 of 128, of 64 or 128 tokens), each 32-column half of a block (GEMV) or word box (GEMM)
// through its weight's tensor map, each warp with its weight's scales; no
// weight is copied or stacked.
// CHECK-LABEL: func.func @qkv_gptq_shared_perm(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xf16>
// CHECK-NOT: memref.copy
// CHECK: gpu.launch_func @attn_kernels::@gptq_permute_x
// CHECK-NOT: gpu.launch_func
// CHECK: memref.cast %{{.*}} : memref<32x256xi32> to memref<32x?xi32>
// CHECK-COUNT-7: func.call @attnCudaEncodeTensorMap
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq blocks in (%c8,
// CHECK-SAME: memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>,
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16 blocks in (%c8,
// CHECK-NEXT: }
// CHECK-NEXT: } else {
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128 blocks in (%c4,
// CHECK-SAME: memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>,
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma blocks in (%c4,
// CHECK-SAME: memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>,
// CHECK-NOT: gpu.launch_func
// CHECK: return
// f16 activations: the nibbles take f16's 1024 (0x64006400) and lose 1032.
// CHECK-LABEL: gpu.func @gemv_gptq(
// CHECK: arith.select %{{.*}} : !llvm.ptr
// CHECK: arith.select %{{.*}} : !llvm.ptr
// CHECK: arith.ori %{{.*}}, %c1677747200_i32 : i32
// CHECK: arith.subf %{{.*}}, %cst{{.*}} : vector<2xf16>
// The GEMM's producer selects each word box's tensor map, its consumers
// their weight's scales; f16 wgmmas.
// CHECK-LABEL: gpu.func @gemm_gptq_wgmma(
// CHECK: arith.select %{{.*}} : !llvm.ptr
// CHECK: arith.select %{{.*}} : !llvm.ptr
// CHECK: arith.select %{{.*}} : memref<2x?xf16>
// CHECK: arith.ori %{{.*}}, %c1677747200_i32 : i32
// CHECK: arith.subf %{{.*}}, %cst{{.*}} : vector<2xf16>
// CHECK: wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16
func.func @qkv_gptq_shared_perm(%x: tensor<?x256xf16>, %perm: tensor<256xi32>,
                                %qq: tensor<32x256xi32>, %sq: tensor<2x256xf16>, %qk: tensor<32x128xi32>,
                                %sk: tensor<2x128xf16>, %qv: tensor<32x128xi32>, %sv: tensor<2x128xf16>)
    -> (tensor<?x4x64xf16>, tensor<?x2x64xf16>, tensor<?x2x64xf16>) {
  %wq = attn.quantized_weight(%qq, %sq, %perm) : (tensor<32x256xi32>, tensor<2x256xf16>, tensor<256xi32>) -> !wq
  %wk = attn.quantized_weight(%qk, %sk, %perm) : (tensor<32x128xi32>, tensor<2x128xf16>, tensor<256xi32>) -> !wkv
  %wv = attn.quantized_weight(%qv, %sv, %perm) : (tensor<32x128xi32>, tensor<2x128xf16>, tensor<256xi32>) -> !wkv
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x256xf16>, (!wq, !wkv, !wkv) -> tensor<?x4x64xf16>, tensor<?x2x64xf16>, tensor<?x2x64xf16>
  return %q, %k, %v : tensor<?x4x64xf16>, tensor<?x2x64xf16>, tensor<?x2x64xf16>
}

// -----

!wq = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128, desc_act = true>>
!wkv = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, desc_act = true>>

// A perm per weight: x permuted three ways, one GEMV or GEMM per weight.
// CHECK-LABEL: func.func @qkv_gptq_own_perms(
// CHECK: gpu.launch_func @attn_kernels::@gptq_permute_x{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma{{(_[0-9])?}} blocks
// CHECK: gpu.dealloc
// CHECK: gpu.launch_func @attn_kernels::@gptq_permute_x{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma{{(_[0-9])?}} blocks
// CHECK: gpu.dealloc
// CHECK: gpu.launch_func @attn_kernels::@gptq_permute_x{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16{{(_[0-9])?}} blocks
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma{{(_[0-9])?}} blocks
// CHECK: gpu.dealloc
// CHECK-NOT: gpu.launch_func
// CHECK: return
func.func @qkv_gptq_own_perms(%x: tensor<?x256xbf16>, %pq: tensor<256xi32>, %pk: tensor<256xi32>, %pv: tensor<256xi32>,
                              %qq: tensor<32x256xi32>, %sq: tensor<2x256xf16>, %qk: tensor<32x128xi32>,
                              %sk: tensor<2x128xf16>, %qv: tensor<32x128xi32>, %sv: tensor<2x128xf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %wq = attn.quantized_weight(%qq, %sq, %pq) : (tensor<32x256xi32>, tensor<2x256xf16>, tensor<256xi32>) -> !wq
  %wk = attn.quantized_weight(%qk, %sk, %pk) : (tensor<32x128xi32>, tensor<2x128xf16>, tensor<256xi32>) -> !wkv
  %wv = attn.quantized_weight(%qv, %sv, %pv) : (tensor<32x128xi32>, tensor<2x128xf16>, tensor<256xi32>) -> !wkv
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x256xbf16>, (!wq, !wkv, !wkv) -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %q, %k, %v : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

!f8 = !attn.quantized_weight<64x4096, #attn.float8<weight_scale = row, input_scale = dynamic, upper_bound = 1200.0>>

// float8, dynamic input scale: a prologue (a block per row) writes x as
// E4M3 bytes and the row's scale, once for both paths; up to 16 rows the
// GEMV multiplies them by E4M3 mma.sync, beyond them the wgmma GEMM.
// CHECK-LABEL: func.func @linear_float8_row_dynamic(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>, [[W8:%[a-zA-Z0-9_]+]]: memref<64x4096xf8E4M3FN>, [[SW:%[a-zA-Z0-9_]+]]: memref<64xf32>, [[B:%[a-zA-Z0-9_]+]]: memref<64xbf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>)
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[X8:%[a-zA-Z0-9_]+]] = gpu.alloc ([[M]]) : memref<?x4096xf8E4M3FN>
// CHECK-NEXT: [[SX:%[a-zA-Z0-9_]+]] = gpu.alloc ([[M]]) : memref<?xf32>
// CHECK: gpu.launch_func @attn_kernels::@float8_quantize_x {{.*}} args([[X]] : memref<?x4096xbf16>, [[X8]] : memref<?x4096xf8E4M3FN>, [[SX]] : memref<?xf32>, [[M]] : index)
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c16
// CHECK-NEXT: scf.if [[GEMV]] {
// CHECK: gpu.launch_func @attn_kernels::@gemv_float8 {{.*}} args([[X8]] : memref<?x4096xf8E4M3FN>, [[SX]] : memref<?xf32>, [[W8]] : memref<64x4096xf8E4M3FN>, [[SW]] : memref<64xf32>, [[B]] : memref<64xbf16>, [[Y]] : memref<?x64xbf16>)
// CHECK-NEXT: } else {
// Up to 64 rows one consumer warpgroup on 64 x 64 tiles (eight 16 KB stages).
// CHECK: arith.cmpi ule, [[M]], %c64
// CHECK: gpu.launch_func @attn_kernels::@gemm_float8_m64 blocks in (%c1, %{{.*}}, %c1) threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c132096_i32 args([[X8]] : memref<?x4096xf8E4M3FN>, [[W8]] : memref<64x4096xf8E4M3FN>,
// CHECK: } else {
// CHECK: arith.cmpi ule, [[M]], %c128
// The tensor maps of the E4M3 bytes (CUtensorMapDataType 0, 128-column
// boxes) of x and of the weight.
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, %c0_i32, %{{.+}}, %c4096_i64, %c4096_i64, %c128_i32, %c128_i32)
// CHECK: [[MX:%[a-zA-Z0-9_]+]] = llvm.load
// CHECK: func.call @attnCudaEncodeTensorMap(%{{.+}}, %{{.+}}, %c0_i32, %c64_i64, %c4096_i64, %c4096_i64, %c64_i32, %c128_i32)
// CHECK: [[MW:%[a-zA-Z0-9_]+]] = llvm.load
// CHECK: gpu.launch_func @attn_kernels::@gemm_float8_m128 blocks in (%c1, %{{.*}}, %c1) threads in (%c384, %c1, %c1) dynamic_shared_memory_size %{{.*}} args([[X8]] : memref<?x4096xf8E4M3FN>, [[W8]] : memref<64x4096xf8E4M3FN>, [[B]] : memref<64xbf16>, [[Y]] : memref<?x64xbf16>, [[MX]] : !llvm.array<16 x i64>, [[MW]] : !llvm.array<16 x i64>, [[SX]] : memref<?xf32>, [[SW]] : memref<64xf32>)
// CHECK: } else {
// CHECK: gpu.launch_func @attn_kernels::@gemm_float8 blocks
// CHECK: gpu.dealloc [[X8]]
// CHECK-NEXT: gpu.dealloc [[SX]]
// CHECK-NOT: float8_quantize_x_0
//
// A block per row: s = min(max |x|, 1200) / 448 over 16-byte chunks, the
// warps' maxima meeting in shared memory; x / s rounded to E4M3 with
// saturation (zeros when s = 0), 8 bytes per thread and step.
// CHECK-LABEL: gpu.func @float8_quantize_x(
// CHECK-SAME: workgroup([[PART:%[a-zA-Z0-9_]+]] : memref<8xf32, #gpu.address_space<workgroup>>)
// CHECK: vector.load %{{.*}} : memref<?x4096xbf16>, vector<8xbf16>
// CHECK: math.absf %{{.*}} : vector<8xf32>
// CHECK: vector.reduction <maximumf>
// CHECK: gpu.shuffle  xor
// CHECK: memref.store %{{.*}}, [[PART]]
// CHECK: gpu.barrier
// CHECK-COUNT-8: memref.load [[PART]]
// CHECK: arith.minimumf %{{.*}}, %cst{{.*}} : f32
// CHECK: arith.divf %{{.*}}, %cst{{.*}} : f32
// CHECK: arith.cmpf ogt
// x[c] / s goes to the low byte, x[c + 1] / s to the high one.
// CHECK: [[SCALED:%[a-zA-Z0-9_]+]] = arith.divf %{{.*}} : vector<8xf32>
// CHECK-NEXT: [[HI:%[a-zA-Z0-9_]+]] = vector.extract [[SCALED]][1]
// CHECK-NEXT: [[LO:%[a-zA-Z0-9_]+]] = vector.extract [[SCALED]][0]
// CHECK-NEXT: nvvm.convert.f32x2.to.f8x2 [[HI]], [[LO]] {rnd = #nvvm.fp_rnd_mode<rn>, sat = #nvvm.sat_mode<satfinite>} : vector<2xi8>(f8E4M3FN)
// CHECK-COUNT-3: nvvm.convert.f32x2.to.f8x2
// CHECK: [[OUT:%[a-zA-Z0-9_]+]] = vector.bitcast %{{.*}} : vector<8xi8> to vector<8xf8E4M3FN>
// CHECK-NEXT: arith.select %{{.*}}, [[OUT]], %{{.*}} : vector<8xf8E4M3FN>
// CHECK-NEXT: vector.store %{{.*}} : memref<?x4096xf8E4M3FN>, vector<8xf8E4M3FN>
//
// GEMV: 64-deep steps (16 bytes per lane quad) in spans of 2; 2 blocks
// take 16 warps each, 16 x 64 x 2 = 2048 per trip of the K loop. Each lane
// streams 16 weight bytes per tile (no branch), loads 16 x bytes of rows g
// and g + 8, and feeds both, unconverted, to two m16n8k32 E4M3 mma.sync.
// CHECK-LABEL: gpu.func @gemv_float8(
// CHECK-SAME: memref<16x16x32xf32, #gpu.address_space<workgroup>>
// CHECK-SAME: known_block_size = array<i32: 512, 1, 1>
// CHECK: scf.for %{{.*}} = %c0 to %c4096 step %c2048
// CHECK: memref.extract_aligned_pointer_as_index %{{.*}} : memref<64x4096xf8E4M3FN>
// CHECK: llvm.inline_asm has_side_effects {{.*}}ld.global.nc.L1::no_allocate.L2::256B.v4.b32
// CHECK: vector.bitcast %{{.*}} : vector<4xi32> to vector<16xf8E4M3FN>
// CHECK: vector.load %{{.*}} : memref<?x4096xf8E4M3FN>, vector<16xf8E4M3FN>
// CHECK-NOT: nvvm.convert.f8x2.to.f16x2
// CHECK: llvm.inline_asm "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {{.*}}" {{.*}} : (i32, i32, i32, i32, i32, i32, f32, f32, f32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-NOT: nvvm.convert.f8x2.to.f16x2
// CHECK-NOT: math.fma
// Epilogue: s_x[row] * s_w[col], then the bias.
// CHECK: gpu.barrier
// CHECK: memref.load %{{.*}} : memref<?xf32>
// CHECK: memref.load %{{.*}} : memref<64xf32>
// CHECK: arith.mulf
// CHECK: memref.load %{{.*}} : memref<64xbf16>
//
// The E4M3 GEMM: TMA boxes of 128-byte rows (128 elements), m64nNk32 E4M3
// wgmma from zero (scale-d 0) per 128-deep step, its sums added to f32
// registers (the tensor cores' E4M3 sums are narrower than f32), two steps
// a trip into two register sets (the first's sums are added while the
// second's wgmmas run), then times s_x[row] * s_w[col] before the bias. The
// producer gives registers to the consumers (one block an SM). On 64-column
// tiles (up to 128 rows) the two consumers issue as they go. Up to 64 rows
// one consumer keeps its registers (no setmaxnreg) on m64n64k32.
// CHECK-LABEL: gpu.func @gemm_float8_m64(
// CHECK-NOT: nvvm.setmaxregister
// CHECK: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 64, k = 32>, D[<f32>, <zero>], A[<e4m3>, <one>, <row>], B[<e4m3>, <one>, <col>]
// CHECK-LABEL: gpu.func @gemm_float8_m128(
// CHECK-SAME: nvvm.minctasm = 1 : i32
// CHECK-NOT: num_barriers = 2
// CHECK: nvvm.setmaxregister decrease 40
// CHECK: nvgpu.tma.async.load {{.*}} -> memref<128x128xf8E4M3FN, #gpu.address_space<workgroup>>
// CHECK: nvgpu.tma.async.load {{.*}} -> memref<64x128xf8E4M3FN, #gpu.address_space<workgroup>>
// CHECK: nvvm.setmaxregister increase 232
// CHECK: scf.for {{.*}} = %c0 to %c16 step %c1 iter_args([[A:%[a-zA-Z0-9_]+]] = [[POISON:%[0-9]+]], [[B:%[a-zA-Z0-9_]+]] = [[POISON]], [[SUM:%[a-zA-Z0-9_]+]] = %cst
// CHECK: nvvm.wgmma.mma_async {{.*}}, [[A]], <m = 64, n = 64, k = 32>, D[<f32>, <zero>], A[<e4m3>, <one>, <row>], B[<e4m3>, <one>, <col>]
// CHECK-NEXT: nvvm.wgmma.mma_async {{.*}} D[<f32>, <one>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.mma_async {{.*}}, [[B]], <m = 64, n = 64, k = 32>, D[<f32>, <zero>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK-NEXT: arith.cmpi
// CHECK-NEXT: scf.if
// CHECK-NEXT: nvgpu.mbarrier.arrive
// CHECK: llvm.inline_asm has_side_effects "", "=f,
// CHECK: arith.addf [[SUM]], %{{.*}} : f32
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: scf.yield
// The epilogue loads a thread's two row scales once (rows past M read row
// M - 1's), and each column pair's two weight scales before its two rows;
// an element is its sum times (row scale times column scale).
// CHECK: [[LAST:%[0-9]+]] = arith.subi %dim{{(_[0-9]+)?}}, %c1 : index
// CHECK-NEXT: [[R0:%[0-9]+]] = arith.minsi %{{.*}}, [[LAST]] : index
// CHECK-NEXT: [[RS0:%[0-9]+]] = memref.load %{{.*}}[[[R0]]] : memref<?xf32>
// CHECK-NEXT: [[R1:%[0-9]+]] = arith.minsi %{{.*}}, [[LAST]] : index
// CHECK-NEXT: [[RS1:%[0-9]+]] = memref.load %{{.*}}[[[R1]]] : memref<?xf32>
// CHECK: scf.if
// CHECK-NEXT: [[WS0:%[0-9]+]] = memref.load %{{.*}} : memref<64xf32>
// CHECK-NEXT: arith.addi
// CHECK-NEXT: [[WS1:%[0-9]+]] = memref.load %{{.*}} : memref<64xf32>
// CHECK-NEXT: arith.cmpi ult
// CHECK-NEXT: scf.if
// CHECK-NEXT: [[F0:%[0-9]+]] = arith.mulf [[RS0]], [[WS0]] : f32
// CHECK-NEXT: arith.mulf %{{.*}}, [[F0]] : f32
// CHECK-NEXT: [[F1:%[0-9]+]] = arith.mulf [[RS0]], [[WS1]] : f32
// CHECK-NEXT: arith.mulf %{{.*}}, [[F1]] : f32
// CHECK: memref.load %{{.*}} : memref<64xbf16>
// CHECK: arith.mulf [[RS1]], [[WS0]] : f32
// On 128-column tiles the two consumers take turns issuing a trip's wgmmas
// (a barrier each, one arrival per warp), so that one adds its sums while
// the other's wgmmas run.
// CHECK-LABEL: gpu.func @gemm_float8(
// CHECK: [[TURN:%[0-9]+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 2>
// CHECK: nvgpu.mbarrier.init [[TURN]][%c0], %c4
// CHECK-NEXT: nvgpu.mbarrier.init [[TURN]][%c1], %c4
// CHECK: scf.for [[TRIP:%[a-zA-Z0-9_]+]] = %c0 to %c16 step %c1 iter_args([[A:%[a-zA-Z0-9_]+]] = [[POISON:%[0-9]+]], [[B:%[a-zA-Z0-9_]+]] = [[POISON]], [[SUM:%[a-zA-Z0-9_]+]] = %cst
// Consumer c waits for phase trip + c - 1 of its turn barrier.
// CHECK: [[PHASE:%[0-9]+]] = arith.addi [[TRIP]], [[CONSUMER:%[0-9]+]] : index
// CHECK-NEXT: arith.cmpi sge, [[PHASE]], %c1
// CHECK-NEXT: scf.if
// CHECK-NEXT: arith.subi [[PHASE]], %c1
// CHECK: nvgpu.mbarrier.try_wait.parity [[TURN]][[[CONSUMER]]]
// CHECK: nvvm.wgmma.mma_async {{.*}}, [[A]], <m = 64, n = 128, k = 32>, D[<f32>, <zero>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.mma_async {{.*}}, [[B]], <m = 64, n = 128, k = 32>, D[<f32>, <zero>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// Both trips issued: lane 0 of each warp hands the turn to the other.
// (consumer = warpgroup - 1, so the other one is 2 - warpgroup.)
// CHECK-NEXT: arith.cmpi eq
// CHECK-NEXT: scf.if
// CHECK-NEXT: [[OTHER:%[0-9]+]] = arith.subi %c2, %{{.*}} : index
// CHECK-NEXT: nvgpu.mbarrier.arrive [[TURN]][[[OTHER]]]
// CHECK-NEXT: }
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: arith.addf [[SUM]], %{{.*}} : f32
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: scf.yield
func.func @linear_float8_row_dynamic(%x: tensor<?x4096xbf16>, %w8: tensor<64x4096xf8E4M3FN>, %s: tensor<64xf32>, %b: tensor<64xbf16>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%w8, %s) : (tensor<64x4096xf8E4M3FN>, tensor<64xf32>) -> !f8
  %y = attn.linear %x, %w bias %b : tensor<?x4096xbf16>, !f8, tensor<64xbf16> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

!f8 = !attn.quantized_weight<64x4096, #attn.float8<weight_scale = block, input_scale = static>>

// Static input scale (read, not computed); block scales multiply each
// step's f32 sums (a block of 32 columns lies in one 128-row block).
// CHECK-LABEL: func.func @linear_float8_block_static(
// CHECK-SAME: [[SI:%[a-zA-Z0-9_]+]]: memref<1xf32>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x64xf16>)
// CHECK: gpu.launch_func @attn_kernels::@float8_quantize_x {{.*}} args(%{{.*}} : memref<?x4096xf16>, [[SI]] : memref<1xf32>, %{{.*}} : memref<?x4096xf8E4M3FN>,
// CHECK: gpu.launch_func @attn_kernels::@gemv_float8
// CHECK-LABEL: gpu.func @float8_quantize_x(
// CHECK-NOT: gpu.shuffle
// CHECK: memref.load %arg1[%c0] : memref<1xf32>
// A span (128) is one 128-deep scale block: its sums are scaled once.
// CHECK-LABEL: gpu.func @gemv_float8(
// CHECK: [[BS:%[a-zA-Z0-9_]+]] = memref.load %{{.*}} : memref<1x32xf32>
// CHECK-NOT: memref<1x32xf32>
// CHECK: mma.sync.aligned.m16n8k32
// CHECK-NOT: memref<1x32xf32>
// CHECK: math.fma %{{.*}}, [[BS]], %{{.*}} : f32
// CHECK-NOT: memref<1x32xf32>
// CHECK: gpu.barrier
func.func @linear_float8_block_static(%x: tensor<?x4096xf16>, %w8: tensor<64x4096xf8E4M3FN>, %s: tensor<1x32xf32>, %si: tensor<1xf32>) -> tensor<?x64xf16> {
  %w = attn.quantized_weight(%w8, %s, %si) : (tensor<64x4096xf8E4M3FN>, tensor<1x32xf32>, tensor<1xf32>) -> !f8
  %y = attn.linear %x, %w : tensor<?x4096xf16>, !f8 -> tensor<?x64xf16>
  return %y : tensor<?x64xf16>
}

// -----

!f8wide = !attn.quantized_weight<8192x256, #attn.float8<weight_scale = row, input_scale = dynamic>>

// More column blocks than multiprocessors (256): 8 warps a block, held to
// two blocks per multiprocessor (nvvm.minctasm), which measured fastest.
// CHECK-LABEL: gpu.func @gemv_float8(
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK-SAME: nvvm.minctasm = 2 : i32
func.func @linear_float8_many_blocks(%x: tensor<?x256xbf16>, %w8: tensor<8192x256xf8E4M3FN>, %s: tensor<8192xf32>) -> tensor<?x8192xbf16> {
  %w = attn.quantized_weight(%w8, %s) : (tensor<8192x256xf8E4M3FN>, tensor<8192xf32>) -> !f8wide
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !f8wide -> tensor<?x8192xbf16>
  return %y : tensor<?x8192xbf16>
}
