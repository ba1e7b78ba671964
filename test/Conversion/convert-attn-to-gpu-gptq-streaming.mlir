// RUN: attn-opt %s --convert-attn-to-gpu="gptq-gemv=streaming" --canonicalize --cse -split-input-file | FileCheck %s
// RUN: not attn-opt %s --convert-attn-to-gpu="gptq-gemv=ring" -split-input-file 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not attn-opt %s --attn-lower-to-nvvm="gptq-gemv=Streaming" -split-input-file 2>&1 | FileCheck %s --check-prefix=BAD-PIPELINE

// BAD: error: gptq-gemv must be tma-ring or streaming, not 'ring'
// BAD-PIPELINE: error: gptq-gemv must be tma-ring or streaming, not 'Streaming'

!gptq = !attn.quantized_weight<64x4096, #attn.gptq<group_size = 128>>

// gptq-gemv=streaming: up to 64 rows the streaming GEMV (GemvGPTQStreaming.cpp)
// instead of the TMA rings: no tensor maps, no dynamic shared memory; blocks
// of 32 columns (N 64: two), 16 warps (two blocks: fewer than
// multiprocessors); 8 rows of x a grid row up to 8 rows, else 16. Above 64
// rows the wgmma GEMM as before.
// CHECK-LABEL: func.func @linear_gptq(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>, [[QW:%[a-zA-Z0-9_]+]]: memref<512x64xi32>, [[S:%[a-zA-Z0-9_]+]]: memref<32x64xf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>)
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c64
// CHECK-NEXT: scf.if [[GEMV]] {
// CHECK-NEXT: [[NARROW:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], %c8
// CHECK-NEXT: scf.if [[NARROW]] {
// CHECK-NEXT: [[SLICES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], %c8
// CHECK-NEXT: [[GY:%[a-zA-Z0-9_]+]] = arith.maxsi [[SLICES]], %c1
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemv_gptq_streaming blocks in (%c2, [[GY]], %c1) threads in (%c512, %c1, %c1) args([[X]] : memref<?x4096xbf16>, [[QW]] : memref<512x64xi32>, [[S]] : memref<32x64xf16>, [[Y]] : memref<?x64xbf16>)
// CHECK-NEXT: } else {
// CHECK-NEXT: [[SLICES16:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], %c16
// CHECK-NEXT: [[GY16:%[a-zA-Z0-9_]+]] = arith.maxsi [[SLICES16]], %c1
// CHECK-NEXT: gpu.launch_func @attn_kernels::@gemv_gptq_streaming_m16 blocks in (%c2, [[GY16]], %c1) threads in (%c512, %c1, %c1) args([[X]] : memref<?x4096xbf16>, [[QW]] : memref<512x64xi32>, [[S]] : memref<32x64xf16>, [[Y]] : memref<?x64xbf16>)
// CHECK-NEXT: }
// CHECK-NEXT: } else {
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma_m128
// CHECK: gpu.launch_func @attn_kernels::@gemm_gptq_wgmma blocks
//
// Kernel: the warps' sums meet in a [warps, 8 sums, 32 lanes] array. K 4096
// is 32 units of 128; each of the 16 warps takes two (8 steps), so it loads
// them all, no loop: per step a streaming 16-byte load of words (word row
// 4 step + quad, the lane's 4 columns) and x's 8 k of them; per unit its
// 4 scales. Then 4 mma a step (2 m16 tiles x 2 k16 halves), the unit's sums
// scaled once.
// CHECK-LABEL: gpu.func @gemv_gptq_streaming(
// CHECK-SAME: workgroup([[RED:%[a-zA-Z0-9_]+]] : memref<16x8x32xf32, #gpu.address_space<workgroup>>) kernel attributes {known_block_size = array<i32: 512, 1, 1>}
// CHECK: [[KROWS:%[a-zA-Z0-9_]+]] = memref.dim %arg0, %c0
// CHECK-NEXT: [[HASROWS:%[a-zA-Z0-9_]+]] = arith.cmpi ne, [[KROWS]], %c0 : index
// CHECK-NEXT: scf.if [[HASROWS]] {
// CHECK-NOT: scf.for
// CHECK-COUNT-4: ld.global.nc.L1::no_allocate.L2::256B.v4.b32
// CHECK: vector.load %arg2[{{.*}}] {alignment = 8 : i64} : memref<32x64xf16>, vector<4xf16>
// CHECK-COUNT-4: ld.global.nc.L1::no_allocate.L2::256B.v4.b32
// CHECK: vector.load %arg2[{{.*}}] {alignment = 8 : i64} : memref<32x64xf16>, vector<4xf16>
// CHECK-NOT: ld.global.nc
// CHECK-COUNT-16: nvvm.mma.sync
// CHECK-COUNT-4: math.fma
// CHECK-COUNT-16: nvvm.mma.sync
// CHECK-COUNT-8: math.fma
// CHECK-NOT: nvvm.mma.sync
// CHECK: memref.store {{.*}}, [[RED]]
// CHECK: gpu.barrier
// CHECK: gpu.return
//
// 9-16 rows: two n8 tiles of x, 16 sums a lane, 8 mma a step.
// CHECK-LABEL: gpu.func @gemv_gptq_streaming_m16(
// CHECK-SAME: workgroup({{.*}} : memref<16x16x32xf32, #gpu.address_space<workgroup>>)
// CHECK-COUNT-64: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// CHECK: gpu.return
func.func @linear_gptq(%x: tensor<?x4096xbf16>, %qw: tensor<512x64xi32>, %s: tensor<32x64xf16>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<512x64xi32>, tensor<32x64xf16>) -> !gptq
  %y = attn.linear %x, %w : tensor<?x4096xbf16>, !gptq -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

!gptq = !attn.quantized_weight<14336x4096, #attn.gptq<group_size = 128>>

// N 14336: 448 blocks, more than twice the multiprocessors, so 4 warps (all
// blocks resident at once). Each warp has 8 units of 4 steps: it streams
// them a unit ahead, the loop carrying the 8 sums and the next unit's loads
// (4 words, 4 x chunks, the scales). At 32 rows (from N 10240) and above,
// the wgmma GEMM.
// CHECK-LABEL: func.func @linear_gptq_wide(
// CHECK: arith.cmpi ule, %{{.*}}, %c32
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_streaming blocks in (%c448, %{{.*}}, %c1) threads in (%c128, %c1, %c1)
// CHECK: gpu.launch_func @attn_kernels::@gemv_gptq_streaming_m16 blocks in (%c448, %{{.*}}, %c1) threads in (%c128, %c1, %c1)
// CHECK-LABEL: gpu.func @gemv_gptq_streaming(
// CHECK-SAME: workgroup({{.*}} : memref<4x8x32xf32, #gpu.address_space<workgroup>>)
// CHECK-COUNT-4: ld.global.nc.L1::no_allocate.L2::256B.v4.b32
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c1 iter_args(
// CHECK-SAME: -> (f32, f32, f32, f32, f32, f32, f32, f32, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<4xi32>, vector<8xbf16>, vector<8xbf16>, vector<8xbf16>, vector<8xbf16>, vector<4xf16>)
// CHECK-COUNT-4: ld.global.nc.L1::no_allocate.L2::256B.v4.b32
// CHECK-COUNT-16: nvvm.mma.sync
// CHECK: scf.yield
// CHECK: gpu.barrier
func.func @linear_gptq_wide(%x: tensor<?x4096xbf16>, %qw: tensor<512x14336xi32>, %s: tensor<32x14336xf16>) -> tensor<?x14336xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<512x14336xi32>, tensor<32x14336xf16>) -> !gptq
  %y = attn.linear %x, %w : tensor<?x4096xbf16>, !gptq -> tensor<?x14336xbf16>
  return %y : tensor<?x14336xbf16>
}
