// RUN: attn-opt %s --convert-attn-to-gpu="wgmma=false" --canonicalize -split-input-file | FileCheck %s
// The projections without Hopper's wgmma (sm_80 .. sm_89, or clipped
// weights): one matmul kernel whose blocks take the GEMV path for at most 16
// rows (convert-attn-to-gpu-gemv.mlir) and a tiled mma.sync GEMM otherwise.
// On sm_90a the GEMM is convert-attn-to-gpu-wgmma-gemm.mlir's.
//===----------------------------------------------------------------------===//
// attn.linear
//===----------------------------------------------------------------------===//

// bf16 without bias: tensors become memrefs, the result a trailing
// out-parameter written directly by one launch of the matmul kernel (a block
// of 128 threads per 64 x 64 output tile: one column tile for N = 32,
// ceil(rows / 64) row tiles; at most 16 rows take the GEMV path, checked in
// convert-attn-to-gpu-gemv.mlir: its grid is selected here, its branch of
// the kernel skipped below).
// CHECK-LABEL: func.func @linear(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[W:%[a-zA-Z0-9_]+]]: memref<32x256xbf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x32xbf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C64:%[a-zA-Z0-9_]+]] = arith.constant 64 : index
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK: [[ROWS:%[a-zA-Z0-9_]+]] = memref.dim [[X]], %{{.+}} : memref<?x256xbf16>
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[ROWS]], %c16 : index
// CHECK-NEXT: [[GX:%[a-zA-Z0-9_]+]] = arith.select [[GEMV]], %c2, [[C1]] : index
// CHECK-NEXT: [[TILES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[ROWS]], [[C64]] : index
// CHECK-NEXT: [[GY:%[a-zA-Z0-9_]+]] = arith.select [[GEMV]], [[C1]], [[TILES]] : index
// CHECK-NEXT: [[GXP:%[a-zA-Z0-9_]+]] = arith.maxsi [[GX]], [[C1]] : index
// CHECK-NEXT: [[GYP:%[a-zA-Z0-9_]+]] = arith.maxsi [[GY]], [[C1]] : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@matmul blocks in ([[GXP]], [[GYP]], [[C1]]) threads in ([[C128]], [[C1]], [[C1]]) args([[X]] : memref<?x256xbf16>, [[W]] : memref<32x256xbf16>, [[Y]] : memref<?x32xbf16>)
// CHECK-NEXT: return
// CHECK-NEXT: }
// CHECK-NEXT: gpu.module @attn_kernels {
// CHECK-LABEL: gpu.func @matmul(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KW:%[a-zA-Z0-9_]+]]: memref<32x256xbf16>, [[KY:%[a-zA-Z0-9_]+]]: memref<?x32xbf16>)
// CHECK-SAME: workgroup([[SA:%[a-zA-Z0-9_]+]] : memref<64x136xbf16, #gpu.address_space<workgroup>>, [[SB:%[a-zA-Z0-9_]+]] : memref<64x136xbf16, #gpu.address_space<workgroup>>, %{{.+}} : memref<4x8x32xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: } else {
// K in steps of 128, 32 f32 accumulators per lane (2 x 4 m16n8 tiles of the
// warp's 32 x 32).
// CHECK: [[ACC:%[a-zA-Z0-9_]+]]:32 = scf.for
// Both operands staged in workgroup memory with 16-byte loads, then a barrier.
// CHECK: vector.load [[KX]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<?x256xbf16>, vector<8xbf16>
// CHECK: vector.store %{{.+}}, [[SA]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<64x136xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: vector.load [[KW]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<32x256xbf16>, vector<8xbf16>
// CHECK: vector.store %{{.+}}, [[SB]][%{{.+}}, %{{.+}}] {alignment = 16 : i64} : memref<64x136xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: gpu.barrier
// A fragments of x, B fragments of w (K-contiguous rows: no transpose).
// CHECK: nvgpu.ldmatrix [[SA]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<64x136xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// CHECK: nvgpu.ldmatrix [[SB]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<64x136xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// 8 k16 steps x 8 tiles = 64 mma per K step, bf16 pairs as i32 registers.
// CHECK-COUNT-64: nvvm.mma.sync A[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] B[%{{.+}}, %{{.+}}] C[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-NOT: nvvm.mma.sync
// CHECK: gpu.barrier
// CHECK-NEXT: scf.yield
// Epilogue: in-range elements rounded to bf16 into the output, no bias.
// CHECK: scf.if
// CHECK-NEXT: [[V0:%[a-zA-Z0-9_]+]] = arith.truncf [[ACC]]#0 : f32 to bf16
// CHECK-NEXT: memref.store [[V0]], [[KY]][%{{.+}}, %{{.+}}] : memref<?x32xbf16>
// CHECK: [[V31:%[a-zA-Z0-9_]+]] = arith.truncf [[ACC]]#31 : f32 to bf16
// CHECK-NEXT: memref.store [[V31]], [[KY]][%{{.+}}, %{{.+}}] : memref<?x32xbf16>
// CHECK: gpu.return
func.func @linear(%x: tensor<?x256xbf16>, %w: tensor<32x256xbf16>) -> tensor<?x32xbf16> {
  %0 = attn.linear %x, %w : tensor<?x256xbf16>, tensor<32x256xbf16> -> tensor<?x32xbf16>
  return %0 : tensor<?x32xbf16>
}

// -----

// f16 with bias: 96 columns are two column tiles; the mma takes f16 pairs as
// vector<2xf16> (its operand types are implied: no PTX type attributes); the
// bias is added in f32 before rounding.
// CHECK-LABEL: func.func @linear_f16_bias(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xf16>, [[W:%[a-zA-Z0-9_]+]]: memref<96x256xf16>, [[B:%[a-zA-Z0-9_]+]]: memref<96xf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x96xf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-DAG: [[C2:%[a-zA-Z0-9_]+]] = arith.constant 2 : index
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK: arith.select %{{.+}}, %{{.+}}, [[C2]] : index
// CHECK: gpu.launch_func @attn_kernels::@matmul blocks in (%{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) threads in ([[C128]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) args([[X]] : memref<?x256xf16>, [[W]] : memref<96x256xf16>, [[B]] : memref<96xf16>, [[Y]] : memref<?x96xf16>)
// CHECK-NEXT: return
// CHECK-LABEL: gpu.func @matmul(
// CHECK-SAME: %{{[a-zA-Z0-9_]+}}: memref<?x256xf16>, %{{[a-zA-Z0-9_]+}}: memref<96x256xf16>, [[KB:%[a-zA-Z0-9_]+]]: memref<96xf16>, [[KY:%[a-zA-Z0-9_]+]]: memref<?x96xf16>)
// CHECK-SAME: workgroup([[SA:%[a-zA-Z0-9_]+]] : memref<64x136xf16, #gpu.address_space<workgroup>>, [[SB:%[a-zA-Z0-9_]+]] : memref<64x136xf16, #gpu.address_space<workgroup>>, %{{.+}} : memref<4x8x32xf32, #gpu.address_space<workgroup>>)
// CHECK-DAG: [[C96:%[a-zA-Z0-9_]+]] = arith.constant 96 : index
// CHECK: [[ACC:%[a-zA-Z0-9_]+]]:32 = scf.for
// CHECK: nvgpu.ldmatrix [[SA]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<64x136xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: nvgpu.ldmatrix [[SB]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<64x136xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: [[BA:%[a-zA-Z0-9_]+]] = vector.bitcast %{{.+}} : vector<1xi32> to vector<2xf16>
// CHECK: nvvm.mma.sync A[[[BA]], %{{.+}}, %{{.+}}, %{{.+}}] B[%{{.+}}, %{{.+}}] C[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-NOT: multiplicandAPtxType
// CHECK: scf.yield
// CHECK: arith.cmpi ult, [[COL:%[a-zA-Z0-9_]+]], [[C96]] : index
// CHECK: scf.if
// CHECK-NEXT: [[BV:%[a-zA-Z0-9_]+]] = memref.load [[KB]][[[COL]]] : memref<96xf16>
// CHECK-NEXT: [[BF:%[a-zA-Z0-9_]+]] = arith.extf [[BV]] : f16 to f32
// CHECK-NEXT: [[S:%[a-zA-Z0-9_]+]] = arith.addf [[ACC]]#0, [[BF]] : f32
// CHECK-NEXT: [[T:%[a-zA-Z0-9_]+]] = arith.truncf [[S]] : f32 to f16
// CHECK-NEXT: memref.store [[T]], [[KY]][%{{.+}}, [[COL]]] : memref<?x96xf16>
func.func @linear_f16_bias(%x: tensor<?x256xf16>, %w: tensor<96x256xf16>, %b: tensor<96xf16>) -> tensor<?x96xf16> {
  %0 = attn.linear %x, %w bias %b : tensor<?x256xf16>, tensor<96x256xf16>, tensor<96xf16> -> tensor<?x96xf16>
  return %0 : tensor<?x96xf16>
}

//===----------------------------------------------------------------------===//
// attn.qkv_projection
//===----------------------------------------------------------------------===//

// -----

// Stacked weight: one GEMM over all 512 columns (8 column tiles) whose
// epilogue writes each column into q (columns [0, 256)), k ([256, 384)) or
// v ([384, 512)), through [T, H * D] views of the three out-parameters.
// CHECK-LABEL: func.func @qkv_stacked(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[W:%[a-zA-Z0-9_]+]]: memref<512x256xbf16>,
// CHECK-SAME: [[Q:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[K:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[V:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-DAG: [[C8:%[a-zA-Z0-9_]+]] = arith.constant 8 : index
// CHECK-DAG: [[QF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[Q]] {{\[}}[0], [1, 2]] : memref<?x4x64xbf16> into memref<?x256xbf16>
// CHECK-DAG: [[KF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[K]] {{\[}}[0], [1, 2]] : memref<?x2x64xbf16> into memref<?x128xbf16>
// CHECK-DAG: [[VF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[V]] {{\[}}[0], [1, 2]] : memref<?x2x64xbf16> into memref<?x128xbf16>
// CHECK: arith.select %{{.+}}, %{{.+}}, [[C8]] : index
// CHECK: gpu.launch_func @attn_kernels::@matmul blocks in (%{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) threads in (%{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) args([[X]] : memref<?x256xbf16>, [[W]] : memref<512x256xbf16>, [[QF]] : memref<?x256xbf16>, [[KF]] : memref<?x128xbf16>, [[VF]] : memref<?x128xbf16>)
// CHECK-NOT: gpu.
// CHECK: return
// CHECK-LABEL: gpu.func @matmul(
// CHECK-SAME: [[KQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KK:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>, [[KV:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>)
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-DAG: [[C384:%[a-zA-Z0-9_]+]] = arith.constant 384 : index
// CHECK-DAG: [[C512:%[a-zA-Z0-9_]+]] = arith.constant 512 : index
// No clipping without `clip`.
// CHECK-NOT: arith.maximumf
// CHECK: [[ACC:%[a-zA-Z0-9_]+]]:32 = scf.for
// CHECK-NOT: arith.maximumf
// CHECK: nvvm.mma.sync
// CHECK: scf.yield
// CHECK: arith.cmpi ult, [[COL:%[a-zA-Z0-9_]+]], [[C512]] : index
// CHECK: scf.if
// CHECK-NEXT: [[T:%[a-zA-Z0-9_]+]] = arith.truncf [[ACC]]#0 : f32 to bf16
// CHECK-NEXT: [[ISQ:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[COL]], [[C256]] : index
// CHECK-NEXT: scf.if [[ISQ]] {
// CHECK-NEXT: memref.store [[T]], [[KQ]][[[ROW:%[a-zA-Z0-9_]+]], [[COL]]] : memref<?x256xbf16>
// CHECK-NEXT: }
// CHECK-NEXT: [[KCOL:%[a-zA-Z0-9_]+]] = arith.subi [[COL]], [[C256]] : index
// CHECK-NEXT: [[ISK:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[KCOL]], [[C128]] : index
// CHECK-NEXT: scf.if [[ISK]] {
// CHECK-NEXT: memref.store [[T]], [[KK]][[[ROW]], [[KCOL]]] : memref<?x128xbf16>
// CHECK-NEXT: }
// CHECK-NEXT: [[VCOL:%[a-zA-Z0-9_]+]] = arith.subi [[COL]], [[C384]] : index
// CHECK-NEXT: [[ISV:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[VCOL]], [[C128]] : index
// CHECK-NEXT: scf.if [[ISV]] {
// CHECK-NEXT: memref.store [[T]], [[KV]][[[ROW]], [[VCOL]]] : memref<?x128xbf16>
// CHECK-NEXT: }
// CHECK-NOT: gpu.func
// CHECK: gpu.return
func.func @qkv_stacked(%x: tensor<?x256xbf16>, %w: tensor<512x256xbf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xbf16>, (tensor<512x256xbf16>) -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %q, %k, %v : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

// Separate weights with bias and clip: one GEMM launch over the three
// weights (their row counts are multiples of the 64-column tile): each block
// picks the weight and bias of its columns by selecting between them, reads
// that weight's rows (n0 - begin + r, bounded by its row count), clamps the
// tile to [-8.5, 8.5] in f32 while staging it (x is not clipped), and adds
// the bias element col - begin.
// CHECK-LABEL: func.func @qkv_separate(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[WQ:%[a-zA-Z0-9_]+]]: memref<256x256xbf16>, [[WK:%[a-zA-Z0-9_]+]]: memref<128x256xbf16>, [[WV:%[a-zA-Z0-9_]+]]: memref<128x256xbf16>,
// CHECK-SAME: [[BQ:%[a-zA-Z0-9_]+]]: memref<256xbf16>, [[BK:%[a-zA-Z0-9_]+]]: memref<128xbf16>, [[BV:%[a-zA-Z0-9_]+]]: memref<128xbf16>,
// CHECK-SAME: [[Q:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[K:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[V:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>)
// CHECK-DAG: [[QF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[Q]] {{\[}}[0], [1, 2]] : memref<?x4x64xbf16> into memref<?x256xbf16>
// CHECK-DAG: [[KF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[K]] {{\[}}[0], [1, 2]] : memref<?x2x64xbf16> into memref<?x128xbf16>
// CHECK-DAG: [[VF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[V]] {{\[}}[0], [1, 2]] : memref<?x2x64xbf16> into memref<?x128xbf16>
// CHECK-DAG: [[WQC:%[a-zA-Z0-9_]+]] = memref.cast [[WQ]] : memref<256x256xbf16> to memref<?x256xbf16>
// CHECK-DAG: [[WKC:%[a-zA-Z0-9_]+]] = memref.cast [[WK]] : memref<128x256xbf16> to memref<?x256xbf16>
// CHECK-DAG: [[WVC:%[a-zA-Z0-9_]+]] = memref.cast [[WV]] : memref<128x256xbf16> to memref<?x256xbf16>
// CHECK-DAG: [[BQC:%[a-zA-Z0-9_]+]] = memref.cast [[BQ]] : memref<256xbf16> to memref<?xbf16>
// CHECK-DAG: [[BKC:%[a-zA-Z0-9_]+]] = memref.cast [[BK]] : memref<128xbf16> to memref<?xbf16>
// CHECK-DAG: [[BVC:%[a-zA-Z0-9_]+]] = memref.cast [[BV]] : memref<128xbf16> to memref<?xbf16>
// CHECK: gpu.launch_func @attn_kernels::@matmul blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[X]] : memref<?x256xbf16>, [[WQC]] : memref<?x256xbf16>, [[WKC]] : memref<?x256xbf16>, [[WVC]] : memref<?x256xbf16>, [[BQC]] : memref<?xbf16>, [[BKC]] : memref<?xbf16>, [[BVC]] : memref<?xbf16>, [[QF]] : memref<?x256xbf16>, [[KF]] : memref<?x128xbf16>, [[VF]] : memref<?x128xbf16>)
// CHECK-NOT: gpu.
// CHECK: return
// CHECK-LABEL: gpu.func @matmul(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWK:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KWV:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>,
// CHECK-SAME: [[KBQ:%[a-zA-Z0-9_]+]]: memref<?xbf16>, [[KBK:%[a-zA-Z0-9_]+]]: memref<?xbf16>, [[KBV:%[a-zA-Z0-9_]+]]: memref<?xbf16>, [[KQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KK:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>, [[KV:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>)
// CHECK-SAME: workgroup([[SA:%[a-zA-Z0-9_]+]] : memref<64x136xbf16, #gpu.address_space<workgroup>>, [[SB:%[a-zA-Z0-9_]+]] : memref<64x136xbf16, #gpu.address_space<workgroup>>, %{{.+}})
// CHECK-DAG: [[HI:%[a-zA-Z0-9_]+]] = arith.constant dense<8.500000e+00> : vector<8xf32>
// CHECK-DAG: [[LO:%[a-zA-Z0-9_]+]] = arith.constant dense<-8.500000e+00> : vector<8xf32>
// The tiled GEMM (M > 16).
// CHECK: } else {
// Columns from 256 on are k's, from 384 on v's.
// CHECK: [[ISK:%[a-zA-Z0-9_]+]] = arith.cmpi uge, [[N0:%[a-zA-Z0-9_]+]], %c256
// CHECK-NEXT: [[W1:%[a-zA-Z0-9_]+]] = arith.select [[ISK]], [[KWK]], [[KWQ]] : memref<?x256xbf16>
// CHECK-NEXT: [[B1:%[a-zA-Z0-9_]+]] = arith.select [[ISK]], [[KBK]], [[KBQ]] : memref<?xbf16>
// CHECK: [[ISV:%[a-zA-Z0-9_]+]] = arith.cmpi uge, [[N0]], %c384
// CHECK-NEXT: [[W2:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], [[KWV]], [[W1]] : memref<?x256xbf16>
// CHECK-NEXT: [[B2:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], [[KBV]], [[B1]] : memref<?xbf16>
// CHECK: scf.for
// CHECK: [[XT:%[a-zA-Z0-9_]+]] = scf.if %{{.+}} -> (vector<8xbf16>) {
// CHECK-NEXT: vector.load [[KX]]
// CHECK: vector.store [[XT]], [[SA]]
// CHECK: [[WT:%[a-zA-Z0-9_]+]] = scf.if %{{.+}} -> (vector<8xbf16>) {
// CHECK-NEXT: vector.load [[W2]]
// CHECK: [[WF:%[a-zA-Z0-9_]+]] = arith.extf [[WT]] : vector<8xbf16> to vector<8xf32>
// CHECK-NEXT: [[WMAX:%[a-zA-Z0-9_]+]] = arith.maximumf [[WF]], [[LO]] : vector<8xf32>
// CHECK-NEXT: [[WCLIP:%[a-zA-Z0-9_]+]] = arith.minimumf [[WMAX]], [[HI]] : vector<8xf32>
// CHECK-NEXT: [[WB:%[a-zA-Z0-9_]+]] = arith.truncf [[WCLIP]] : vector<8xf32> to vector<8xbf16>
// CHECK-NEXT: vector.store [[WB]], [[SB]]
// CHECK: nvvm.mma.sync {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>
// CHECK: scf.yield
// CHECK: scf.if
// CHECK: [[BV:%[a-zA-Z0-9_]+]] = memref.load [[B2]][%{{[a-zA-Z0-9_]+}}] : memref<?xbf16>
// CHECK-NEXT: [[BF:%[a-zA-Z0-9_]+]] = arith.extf [[BV]] : bf16 to f32
// CHECK-NEXT: [[S:%[a-zA-Z0-9_]+]] = arith.addf %{{.+}}#0, [[BF]] : f32
// CHECK-NEXT: [[T:%[a-zA-Z0-9_]+]] = arith.truncf [[S]] : f32 to bf16
// CHECK-DAG: memref.store [[T]], [[KQ]][%{{.+}}, %{{.+}}] : memref<?x256xbf16>
// CHECK-DAG: memref.store [[T]], [[KK]][%{{.+}}, %{{.+}}] : memref<?x128xbf16>
// CHECK-DAG: memref.store [[T]], [[KV]][%{{.+}}, %{{.+}}] : memref<?x128xbf16>
// CHECK-NOT: gpu.func @matmul_0(
func.func @qkv_separate(%x: tensor<?x256xbf16>, %wq: tensor<256x256xbf16>, %wk: tensor<128x256xbf16>, %wv: tensor<128x256xbf16>,
                        %bq: tensor<256xbf16>, %bk: tensor<128xbf16>, %bv: tensor<128xbf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv) bias(%bq, %bk, %bv) clip 8.5
      : tensor<?x256xbf16>, (tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>),
        (tensor<256xbf16>, tensor<128xbf16>, tensor<128xbf16>)
      -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %q, %k, %v : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

// Wq has 96 rows (not a multiple of the 64-column tile): a block would span
// two weights, so each weight gets its own launch, in q, k, v order.
// CHECK-LABEL: func.func @qkv_separate_unaligned(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>, [[WQ:%[a-zA-Z0-9_]+]]: memref<96x64xbf16>, [[WK:%[a-zA-Z0-9_]+]]: memref<32x64xbf16>, [[WV:%[a-zA-Z0-9_]+]]: memref<32x64xbf16>,
// CHECK-NOT: memref.cast
// CHECK: gpu.launch_func @attn_kernels::@matmul blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[X]] : memref<?x64xbf16>, [[WQ]] : memref<96x64xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x96xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@matmul_0 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[X]] : memref<?x64xbf16>, [[WK]] : memref<32x64xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x32xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@matmul_1 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[X]] : memref<?x64xbf16>, [[WV]] : memref<32x64xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x32xbf16>)
// CHECK-NOT: gpu.launch_func
// CHECK: return
func.func @qkv_separate_unaligned(%x: tensor<?x64xbf16>, %wq: tensor<96x64xbf16>, %wk: tensor<32x64xbf16>, %wv: tensor<32x64xbf16>)
    -> (tensor<?x3x32xbf16>, tensor<?x1x32xbf16>, tensor<?x1x32xbf16>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x64xbf16>, (tensor<96x64xbf16>, tensor<32x64xbf16>, tensor<32x64xbf16>)
      -> tensor<?x3x32xbf16>, tensor<?x1x32xbf16>, tensor<?x1x32xbf16>
  return %q, %k, %v : tensor<?x3x32xbf16>, tensor<?x1x32xbf16>, tensor<?x1x32xbf16>
}
