// RUN: attn-opt %s --convert-attn-to-gpu=wgmma=false --canonicalize --cse -split-input-file | FileCheck %s

// GPTQ's GEMM on mma.sync (GemmGPTQ.cpp): above the GEMV's 64 rows without
// wgmma (and for groups of 32 with it).

!gptq = !attn.quantized_weight<64x4096, #attn.gptq<group_size = 128>>

// CHECK-LABEL: func.func @linear_gptq(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>, [[QW:%[a-zA-Z0-9_]+]]: memref<512x64xi32>, [[S:%[a-zA-Z0-9_]+]]: memref<32x64xf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>)
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c64
// CHECK-NEXT: scf.if [[GEMV]] {
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_m16
// CHECK-NEXT: }
// CHECK-NEXT: } else {
// The ring of 4 stages: 4 x (128 x 72 x 2 + 8 x 128 x 4) + 128 bytes.
// CHECK-NEXT: [[T128:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], %c128
// CHECK-NEXT: [[GY128:%[a-zA-Z0-9_]+]] = arith.maxsi [[T128]], %c1
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemm_gptq blocks in (%c1, [[GY128]], %c1) threads in (%c256, %c1, %c1) dynamic_shared_memory_size %c90240_i32 args([[X]] : memref<?x4096xbf16>, [[QW]] : memref<512x64xi32>, [[S]] : memref<32x64xf16>, [[Y]] : memref<?x64xbf16>)
// CHECK-NEXT: }
// CHECK-NEXT: return
//
// The GEMM (128 x 128 tiles, 2 x 4 warps of 64 x 32): the ring's first
// three steps (64 deep: 128 rows of 8 x chunks, 8 word rows of 32
// four-word chunks) by cp.async, zeros past M.
// CHECK-LABEL: gpu.func @gemm_gptq(
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK: gpu.dynamic_shared_memory
// Tiles in groups of 8 row tiles (one column tile: block b = y + x takes
// row tile 8 (b / 8) + b % 8 % rows).
// CHECK: [[NY:%[a-zA-Z0-9_]+]] = gpu.grid_dim y
// CHECK-NEXT: [[BY:%[a-zA-Z0-9_]+]] = gpu.block_id y
// CHECK-NEXT: [[BX:%[a-zA-Z0-9_]+]] = gpu.block_id x
// CHECK-NEXT: [[LIN:%[a-zA-Z0-9_]+]] = arith.addi [[BY]], [[BX]] : index
// CHECK-NEXT: [[GRP:%[a-zA-Z0-9_]+]] = arith.divui [[LIN]], %c8 : index
// CHECK-NEXT: [[FIRST:%[a-zA-Z0-9_]+]] = arith.muli [[GRP]], %c8 : index
// CHECK-NEXT: arith.subi [[NY]], [[FIRST]] : index
// The lane's prmt selector: bytes `quad` and 4 + `quad` (0x1111 quad +
// 0x4400).
// CHECK: [[QUAD:%[a-zA-Z0-9_]+]] = arith.index_cast %{{.*}} : index to i32
// CHECK-NEXT: [[SEL4:%[a-zA-Z0-9_]+]] = arith.muli [[QUAD]], %c4369_i32 : i32
// CHECK-NEXT: [[SEL:%[a-zA-Z0-9_]+]] = arith.addi [[SEL4]], %c17408_i32 : i32
// CHECK: memref.view {{.*}} to memref<128x72xbf16, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.*}} to memref<8x128xi32, #gpu.address_space<workgroup>>
// CHECK: [[XOK:%[a-zA-Z0-9_]+]] = arith.cmpi ult, %{{.*}}, %dim
// CHECK: [[XN:%[a-zA-Z0-9_]+]] = arith.select [[XOK]], %c8, %c0
// CHECK: nvgpu.device_async_copy %arg0[{{.*}}], %{{.*}}[{{.*}}], 8, [[XN]] {bypassL1} : memref<?x4096xbf16> to memref<128x72xbf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_copy %arg1[{{.*}}], %{{.*}}[{{.*}}], 4, %{{.*}} {bypassL1} : memref<512x64xi32> to memref<8x128xi32, #gpu.address_space<workgroup>>
// CHECK-COUNT-3: nvvm.cp.async.commit.group
// Per group of 128: its scales (8 columns a lane), then two steps, each
// waiting for its own copies (two younger groups may fly), a barrier, and
// the copy of the step three ahead.
// CHECK: scf.for %{{.*}} = %c0 to %c4096 step %c128 iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK: vector.load %arg2[{{.*}}] {alignment = 16 : i64} : memref<32x64xf16>, vector<8xf16>
// CHECK: scf.for %{{.*}} step %c64 iter_args
// CHECK: nvvm.cp.async.wait.group 2
// CHECK-NEXT: gpu.barrier
// CHECK: nvgpu.device_async_copy
// CHECK: nvvm.cp.async.commit.group
// A of the warp's four m16 tiles by ldmatrix, the lane's words of k 0-7 and
// 8-15 (four columns: one per n8 tile) by 16-byte reads.
// CHECK-COUNT-4: nvgpu.ldmatrix {{.*}} {numTiles = 4 : i32, transpose = false} : memref<128x72xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// CHECK: [[W0:%[a-zA-Z0-9_]+]] = vector.load {{.*}} : memref<8x128xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// CHECK: vector.load {{.*}} : memref<8x128xi32, #gpu.address_space<workgroup>>, vector<4xi32>
// Byte `quad` of a word into bits 0-7 and of the word >> 4 into bits
// 16-23: its nibbles at bits 0-3 and 16-19, then the exact bf16 decoding;
// the pair feeds the mma of all four m16 tiles.
// CHECK: [[WORD:%[a-zA-Z0-9_]+]] = vector.extract [[W0]][0] : i32 from vector<4xi32>
// CHECK-NEXT: [[SHIFTED:%[a-zA-Z0-9_]+]] = arith.shrui [[WORD]], %c4_i32 : i32
// CHECK-NEXT: [[BYTES:%[a-zA-Z0-9_]+]] = nvvm.prmt <default> [[SEL]], [[WORD]], [[SHIFTED]] : i32
// CHECK-NEXT: [[NIB:%[a-zA-Z0-9_]+]] = arith.andi [[BYTES]], %c983055_i32 : i32
// CHECK-NEXT: [[MAG:%[a-zA-Z0-9_]+]] = arith.ori [[NIB]], %c1124090624_i32 : i32
// CHECK-NEXT: [[PAIR:%[a-zA-Z0-9_]+]] = llvm.bitcast [[MAG]] : i32 to vector<2xbf16>
// CHECK-NEXT: [[Q:%[a-zA-Z0-9_]+]] = arith.subf [[PAIR]], %cst{{.*}} : vector<2xbf16>
// CHECK-NEXT: [[B0:%[a-zA-Z0-9_]+]] = llvm.bitcast [[Q]] : vector<2xbf16> to i32
// CHECK: nvvm.mma.sync A[{{.*}}] B[[[B0]], {{.*}}] {{.*}} shape = #nvvm.shape<m = 16, n = 8, k = 16>
// CHECK-NEXT: llvm.extractvalue
// CHECK-COUNT-3: nvvm.mma.sync A[{{.*}}] B[[[B0]], {{.*}}] {{.*}} shape = #nvvm.shape<m = 16, n = 8, k = 16>
// CHECK-NOT: nvvm.mma.sync A[{{.*}}] B[[[B0]],
// The group's f32 sums times its scales, once.
// CHECK: scf.yield
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK-NEXT: math.fma
// Four adjacent columns of a row stored together.
// CHECK: vector.store %{{.*}} : memref<?x64xbf16>, vector<4xbf16>
func.func @linear_gptq(%x: tensor<?x4096xbf16>, %qw: tensor<512x64xi32>, %s: tensor<32x64xf16>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<512x64xi32>, tensor<32x64xf16>) -> !gptq
  %y = attn.linear %x, %w : tensor<?x4096xbf16>, !gptq -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

!wq = !attn.quantized_weight<256x256, #attn.gptq<group_size = 128, desc_act = true>>
!wkv = !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, desc_act = true>>

// The GEMM's warps select their weight's scales and words; f16 activations
// take f16's 1024 (0x64006400) and lose 1032.
// CHECK-LABEL: func.func @qkv_gptq_shared_perm(
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq blocks in (%c4,
// CHECK-SAME: memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<32x?xi32>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>, {{.*}} : memref<2x?xf16>,
// CHECK-LABEL: gpu.func @gemm_gptq(
// CHECK: arith.select %{{.*}} : memref<2x?xf16>
// CHECK: arith.select %{{.*}} : memref<32x?xi32>
// CHECK: arith.ori %{{.*}}, %c1677747200_i32 : i32
// CHECK: arith.subf %{{.*}}, %cst{{.*}} : vector<2xf16>
// CHECK: nvvm.mma.sync {{.*}} shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32)
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
