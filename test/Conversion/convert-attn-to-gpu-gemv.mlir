// RUN: attn-opt %s --convert-attn-to-gpu="wgmma=false" --canonicalize --cse -split-input-file | FileCheck %s

// The projections at decode-sized M (<= 16 rows): the matmul kernel's GEMV
// path, chosen at run time without host control flow (a host scf.if would
// make gpu-async-region synchronise the stream around each branch).

// Separate weights with bias and clip, K = 1024. Host: M <= 16 selects the
// GEMV grid (512 columns / 16 = 32 blocks, one row of blocks), else the
// GEMM's (8 column tiles, ceil(M / 64) row tiles), one launch either way.
// CHECK-LABEL: func.func @qkv_separate(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x1024xbf16>
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C8:%[a-zA-Z0-9_]+]] = arith.constant 8 : index
// CHECK-DAG: [[C16:%[a-zA-Z0-9_]+]] = arith.constant 16 : index
// CHECK-DAG: [[C32:%[a-zA-Z0-9_]+]] = arith.constant 32 : index
// CHECK-DAG: [[C64:%[a-zA-Z0-9_]+]] = arith.constant 64 : index
// CHECK: [[M:%[a-zA-Z0-9_]+]] = memref.dim [[X]]
// CHECK-NEXT: [[GEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[M]], [[C16]] : index
// CHECK-NEXT: [[GX:%[a-zA-Z0-9_]+]] = arith.select [[GEMV]], [[C32]], [[C8]] : index
// CHECK-NEXT: [[TILES:%[a-zA-Z0-9_]+]] = arith.ceildivui [[M]], [[C64]] : index
// CHECK-NEXT: [[GY:%[a-zA-Z0-9_]+]] = arith.select [[GEMV]], [[C1]], [[TILES]] : index
// CHECK-NOT: scf.if
// CHECK: gpu.launch_func @attn_kernels::@matmul
// CHECK-NOT: gpu.launch_func
// CHECK: return
//
// Kernel: the block branches on M; the GEMV branch comes first.
// CHECK-LABEL: gpu.func @matmul(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x1024xbf16>, [[KWQ:%[a-zA-Z0-9_]+]]: memref<?x1024xbf16>, [[KWK:%[a-zA-Z0-9_]+]]: memref<?x1024xbf16>, [[KWV:%[a-zA-Z0-9_]+]]: memref<?x1024xbf16>,
// CHECK-SAME: [[KQ:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>, [[KK:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>, [[KV:%[a-zA-Z0-9_]+]]: memref<?x128xbf16>)
// CHECK-SAME: workgroup({{.*}}, [[RED:%[a-zA-Z0-9_]+]] : memref<4x8x32xf32, #gpu.address_space<workgroup>>)
// CHECK: [[KM:%[a-zA-Z0-9_]+]] = memref.dim [[KX]]
// CHECK-NEXT: [[KGEMV:%[a-zA-Z0-9_]+]] = arith.cmpi ule, [[KM]], %c16 : index
// CHECK-NEXT: scf.if [[KGEMV]] {
// Lane = thread % 32, warp = thread / 32, group = lane / 4, quad = lane % 4;
// the block's 16 columns start at 16 blockIdx.x.
// CHECK: [[LANE:%[a-zA-Z0-9_]+]] = arith.remui %{{.+}}, %c32
// CHECK-NEXT: [[WARP:%[a-zA-Z0-9_]+]] = arith.divui %{{.+}}, %c32
// CHECK-NEXT: [[GROUP:%[a-zA-Z0-9_]+]] = arith.divui [[LANE]], %c4
// CHECK-NEXT: [[QUAD:%[a-zA-Z0-9_]+]] = arith.remui [[LANE]], %c4
// CHECK: [[N0:%[a-zA-Z0-9_]+]] = arith.muli %{{.+}}, %c16 : index
// The weight of the block's columns, as in the GEMM.
// CHECK: arith.cmpi uge, [[N0]], %c256
// CHECK: [[ISV:%[a-zA-Z0-9_]+]] = arith.cmpi uge, [[N0]], %c384
// CHECK-NEXT: [[W:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], [[KWV]], %{{.+}} : memref<?x1024xbf16>
// CHECK-NEXT: [[B:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], %{{.+}} : memref<?xbf16>
// CHECK-NEXT: [[BEGIN:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], %c384
// CHECK-NEXT: [[ROWS:%[a-zA-Z0-9_]+]] = arith.select [[ISV]], %c128
// 8 k steps of 32 per warp (K 1024 / 4 warps): all loaded at once, no
// loop; 8 f32 accumulators (two m16n8 tiles).
// No work when M is 0 (the loads clamp rows to M - 1).
// CHECK: [[ANY:%[a-zA-Z0-9_]+]] = arith.cmpi ugt, [[KM]], %c0
// CHECK-NEXT: scf.if [[ANY]] {
// CHECK-NOT: scf.for
// Step 0 of warp w: K offset 32 w + 8 quad.
// CHECK: [[WOFF:%[a-zA-Z0-9_]+]] = arith.muli [[WARP]], %c32
// CHECK-NEXT: [[QOFF:%[a-zA-Z0-9_]+]] = arith.muli [[QUAD]], %c8
// CHECK-NEXT: [[GK:%[a-zA-Z0-9_]+]] = arith.addi [[WOFF]], [[QOFF]]
// CHECK-NEXT: [[KOK:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[GK]], %c1024
// x row `group`, 16 bytes, loaded without a branch from the row and K
// clamped into x, zeros past M or K; as four i32 pairs.
// CHECK-NEXT: [[MLAST:%[a-zA-Z0-9_]+]] = arith.subi [[KM]], %c1
// CHECK-NEXT: [[MOK:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[GROUP]], [[KM]]
// CHECK-NEXT: [[XOK:%[a-zA-Z0-9_]+]] = arith.andi [[KOK]], [[MOK]]
// CHECK-NEXT: [[XROW:%[a-zA-Z0-9_]+]] = arith.minui [[GROUP]], [[MLAST]]
// CHECK-NEXT: [[XK:%[a-zA-Z0-9_]+]] = arith.minui [[GK]], %c1016
// CHECK-NEXT: [[XLOAD:%[a-zA-Z0-9_]+]] = vector.load [[KX]][[[XROW]], [[XK]]] {alignment = 16 : i64} : memref<?x1024xbf16>, vector<8xbf16>
// CHECK-NEXT: [[XLO:%[a-zA-Z0-9_]+]] = arith.select [[XOK]], [[XLOAD]], %{{.+}} : vector<8xbf16>
// CHECK-NEXT: [[XLOW:%[a-zA-Z0-9_]+]] = vector.bitcast [[XLO]] : vector<8xbf16> to vector<4xi32>
// CHECK-NEXT: [[XLO0:%[a-zA-Z0-9_]+]] = vector.extract [[XLOW]][0]
// CHECK-NEXT: [[XLO1:%[a-zA-Z0-9_]+]] = vector.extract [[XLOW]][1]
// x row `group + 8`.
// CHECK: [[G8:%[a-zA-Z0-9_]+]] = arith.addi [[GROUP]], %c8
// CHECK: [[XROW8:%[a-zA-Z0-9_]+]] = arith.minui [[G8]], [[MLAST]]
// CHECK-NEXT: vector.load [[KX]][[[XROW8]], [[XK]]] {alignment = 16 : i64} : memref<?x1024xbf16>, vector<8xbf16>
// CHECK: [[XHIW:%[a-zA-Z0-9_]+]] = vector.bitcast %{{.+}} : vector<8xbf16> to vector<4xi32>
// CHECK-NEXT: [[XHI0:%[a-zA-Z0-9_]+]] = vector.extract [[XHIW]][0]
// CHECK-NEXT: [[XHI1:%[a-zA-Z0-9_]+]] = vector.extract [[XHIW]][1]
// The weight row of tile 0's column `group`: n0 - begin + group, below the
// weight's row count; clipped in f32.
// CHECK: [[WBASE:%[a-zA-Z0-9_]+]] = arith.subi [[N0]], [[BEGIN]]
// CHECK-NEXT: [[WROW:%[a-zA-Z0-9_]+]] = arith.addi [[WBASE]], [[GROUP]]
// CHECK-NEXT: [[WLAST:%[a-zA-Z0-9_]+]] = arith.subi [[ROWS]], %c1
// CHECK-NEXT: [[WROK:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[WROW]], [[ROWS]]
// CHECK-NEXT: [[WOK:%[a-zA-Z0-9_]+]] = arith.andi [[KOK]], [[WROK]]
// CHECK-NEXT: [[WROWC:%[a-zA-Z0-9_]+]] = arith.minui [[WROW]], [[WLAST]]
// The weight streams (read once, not kept in L1): the byte address of
// W[row, k], then one 16-byte ld.global.nc.
// CHECK-NEXT: [[WEL0:%[a-zA-Z0-9_]+]] = arith.muli [[WROWC]], %c1024
// CHECK-NEXT: [[WEL:%[a-zA-Z0-9_]+]] = arith.addi [[WEL0]], [[XK]]
// CHECK-NEXT: [[WPTR:%[a-zA-Z0-9_]+]] = memref.extract_aligned_pointer_as_index [[W]]
// CHECK-NEXT: [[WBYTES:%[a-zA-Z0-9_]+]] = arith.muli [[WEL]], %c2
// CHECK-NEXT: [[WADDR:%[a-zA-Z0-9_]+]] = arith.addi [[WPTR]], [[WBYTES]]
// CHECK-NEXT: [[WADDR64:%[a-zA-Z0-9_]+]] = arith.index_cast [[WADDR]] : index to i64
// CHECK-NEXT: [[WLD:%[a-zA-Z0-9_]+]] = llvm.inline_asm has_side_effects "{ .reg .u64 g; cvta.to.global.u64 g, $4; ld.global.nc.L1::no_allocate.L2::256B.v4.b32 {$0, $1, $2, $3}, [g]; }", "=r,=r,=r,=r,l" [[WADDR64]] : (i64) -> !llvm.struct<(i32, i32, i32, i32)>
// CHECK-COUNT-4: llvm.extractvalue [[WLD]]
// CHECK-NEXT: [[WV:%[a-zA-Z0-9_]+]] = vector.from_elements
// CHECK-NEXT: [[WLOAD:%[a-zA-Z0-9_]+]] = vector.bitcast [[WV]] : vector<4xi32> to vector<8xbf16>
// CHECK-NEXT: [[WT:%[a-zA-Z0-9_]+]] = arith.select [[WOK]], [[WLOAD]], %{{.+}} : vector<8xbf16>
// CHECK: arith.extf [[WT]] : vector<8xbf16> to vector<8xf32>
// CHECK-NEXT: arith.maximumf
// CHECK-NEXT: arith.minimumf
// CHECK-NEXT: [[WC:%[a-zA-Z0-9_]+]] = arith.truncf
// CHECK-NEXT: [[WW:%[a-zA-Z0-9_]+]] = vector.bitcast [[WC]] : vector<8xbf16> to vector<4xi32>
// CHECK-NEXT: [[W0:%[a-zA-Z0-9_]+]] = vector.extract [[WW]][0]
// CHECK-NEXT: [[W1:%[a-zA-Z0-9_]+]] = vector.extract [[WW]][1]
// Tile 1's row: 8 further.
// CHECK: arith.addi [[WBASE]], [[G8]]
// All 32 loads of the 8 steps (2 x + 2 W each) are issued before any MMA:
// tile 1 of step 0, then steps 1 to 7 (14 x loads, 15 W loads in all).
// CHECK-COUNT-14: vector.load
// CHECK-NOT: vector.load
// The first MMA: pairs 0 and 1 of the x rows and of tile 0's weight chunk.
// CHECK: nvvm.mma.sync A[[[XLO0]], [[XHI0]], [[XLO1]], [[XHI1]]]  B[[[W0]], [[W1]]]  C[%{{.+}}] {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>
// CHECK-COUNT-31: nvvm.mma.sync
// CHECK-NOT: nvvm.mma.sync
// The warps' sums meet in shared memory; warp 0 adds them up and runs the
// GEMM's epilogue: bias at col - begin, then q / k / v by column.
// CHECK: memref.store [[ACC0:%[a-zA-Z0-9_]+]], [[RED]][[[WARP]], %c0, [[LANE]]]
// CHECK: memref.store %{{.+}}, [[RED]][[[WARP]], %c7, [[LANE]]]
// CHECK-NEXT: gpu.barrier
// CHECK-NEXT: [[W0ONLY:%[a-zA-Z0-9_]+]] = arith.cmpi eq, [[WARP]], %c0
// CHECK-NEXT: scf.if [[W0ONLY]] {
// CHECK-NEXT: [[P1:%[a-zA-Z0-9_]+]] = memref.load [[RED]][%c1, %c0, [[LANE]]]
// CHECK-NEXT: [[S1:%[a-zA-Z0-9_]+]] = arith.addf [[ACC0]], [[P1]]
// CHECK-NEXT: [[P2:%[a-zA-Z0-9_]+]] = memref.load [[RED]][%c2, %c0, [[LANE]]]
// CHECK-NEXT: [[S2:%[a-zA-Z0-9_]+]] = arith.addf [[S1]], [[P2]]
// CHECK-NEXT: [[P3:%[a-zA-Z0-9_]+]] = memref.load [[RED]][%c3, %c0, [[LANE]]]
// CHECK-NEXT: [[S3:%[a-zA-Z0-9_]+]] = arith.addf [[S2]], [[P3]]
// Register 0 of tile 0: row group, column n0 + 2 quad.
// CHECK-NEXT: [[Q2:%[a-zA-Z0-9_]+]] = arith.muli [[QUAD]], %c2
// CHECK-NEXT: [[COL:%[a-zA-Z0-9_]+]] = arith.addi [[N0]], [[Q2]]
// (row < M is the x load's test, reused.)
// CHECK-NEXT: arith.cmpi ult, [[COL]], %c512
// CHECK: scf.if
// CHECK-NEXT: [[BI:%[a-zA-Z0-9_]+]] = arith.subi [[COL]], [[BEGIN]]
// CHECK-NEXT: [[BV:%[a-zA-Z0-9_]+]] = memref.load [[B]][[[BI]]]
// CHECK-NEXT: [[BF:%[a-zA-Z0-9_]+]] = arith.extf [[BV]] : bf16 to f32
// CHECK-NEXT: [[SUM:%[a-zA-Z0-9_]+]] = arith.addf [[S3]], [[BF]]
// CHECK-NEXT: [[OUT:%[a-zA-Z0-9_]+]] = arith.truncf [[SUM]] : f32 to bf16
// CHECK: memref.store [[OUT]], [[KQ]][[[GROUP]], [[COL]]]
// CHECK: memref.store [[OUT]], [[KK]]
// CHECK: memref.store [[OUT]], [[KV]]
// Larger M: the tiled GEMM (staged tiles, ldmatrix).
// CHECK: } else {
// CHECK: [[GACC:%[a-zA-Z0-9_]+]]:32 = scf.for
// CHECK: nvgpu.ldmatrix
// CHECK: gpu.return
func.func @qkv_separate(%x: tensor<?x1024xbf16>, %wq: tensor<256x1024xbf16>, %wk: tensor<128x1024xbf16>, %wv: tensor<128x1024xbf16>,
                        %bq: tensor<256xbf16>, %bk: tensor<128xbf16>, %bv: tensor<128xbf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv) bias(%bq, %bk, %bv) clip 8.5
      : tensor<?x1024xbf16>, (tensor<256x1024xbf16>, tensor<128x1024xbf16>, tensor<128x1024xbf16>),
        (tensor<256xbf16>, tensor<128xbf16>, tensor<128xbf16>)
      -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %q, %k, %v : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

// A static M decides at compile time: 64 rows take the GEMM only (one 64 x 64
// tile per block), 4 rows the GEMV only (128 / 16 = 8 blocks).
// CHECK-LABEL: func.func @linear_rows64(
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C2:%[a-zA-Z0-9_]+]] = arith.constant 2 : index
// CHECK-NOT: arith.select
// CHECK: gpu.launch_func @attn_kernels::@matmul blocks in ([[C2]], [[C1]], [[C1]])
// CHECK-LABEL: gpu.func @matmul(
// CHECK-NOT: scf.if %{{[a-zA-Z0-9_]+}} {
// CHECK-NOT: vector.bitcast %{{.+}} : vector<8xbf16> to vector<4xi32>
// CHECK: nvgpu.ldmatrix
// CHECK: gpu.return
func.func @linear_rows64(%x: tensor<64x256xbf16>, %w: tensor<128x256xbf16>) -> tensor<64x128xbf16> {
  %0 = attn.linear %x, %w : tensor<64x256xbf16>, tensor<128x256xbf16> -> tensor<64x128xbf16>
  return %0 : tensor<64x128xbf16>
}

// -----

// CHECK-LABEL: func.func @linear_rows4(
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C8:%[a-zA-Z0-9_]+]] = arith.constant 8 : index
// CHECK-NOT: arith.select
// CHECK: gpu.launch_func @attn_kernels::@matmul blocks in ([[C8]], [[C1]], [[C1]])
// CHECK-LABEL: gpu.func @matmul(
// CHECK: vector.bitcast %{{.+}} : vector<8xbf16> to vector<4xi32>
// CHECK: nvvm.mma.sync
// CHECK-NOT: nvgpu.ldmatrix
// CHECK: gpu.return
func.func @linear_rows4(%x: tensor<4x256xbf16>, %w: tensor<128x256xbf16>) -> tensor<4x128xbf16> {
  %0 = attn.linear %x, %w : tensor<4x256xbf16>, tensor<128x256xbf16> -> tensor<4x128xbf16>
  return %0 : tensor<4x128xbf16>
}
