// RUN: attn-opt %s --convert-attn-to-gpu --canonicalize -split-input-file | FileCheck %s
// No attn op and no tensor is left anywhere (the pass alone, no cleanup).
// RUN: attn-opt %s --convert-attn-to-gpu -split-input-file | FileCheck %s --check-prefix=ABSENT
// A whole layer (Qwen3-8B: separate q/k/v weights, qk RMS norm, RoPE, paged
// cache) from examples/, expanded to primitive ops first.
// RUN: attn-opt %attn_src_root/examples/qwen3_8b.mlir --attn-expand-composite --attn-unpack-cache-arguments --canonicalize --convert-attn-to-gpu --canonicalize -o %t.layer.mlir
// RUN: FileCheck %s --check-prefix=LAYER < %t.layer.mlir
// RUN: FileCheck %s --check-prefix=HOSTONLY < %t.layer.mlir
// The same layer with the fusion passes: one projection GEMM, one fused
// norm + RoPE + store kernel.
// RUN: attn-opt %attn_src_root/examples/qwen3_8b.mlir --attn-expand-composite --attn-fuse-projection-epilogues --attn-fuse-qkv --attn-fuse-rope-store --attn-fuse-qk-norm-rope --attn-unpack-cache-arguments --canonicalize --convert-attn-to-gpu --canonicalize | FileCheck %s --check-prefix=FUSED
// ABSENT-NOT: {{tensor<|attn\.}}
//
// What is checked of each kernel: its signature, the launch (grid, block of
// threads, arguments: the caller's buffers or views of them), the tensor-core
// and warp operations with their types, and the stores into the outputs. The
// attention kernels' K/V staging and the host's choice of key splits are
// deliberately not checked (they are being reworked).

//===----------------------------------------------------------------------===//
// attn.rope_store
//===----------------------------------------------------------------------===//

// One launch, a warp per (row, 2 heads) of q and k (2 divides both 4 and 2:
// a warp's heads are all q or all k): grid ceil(T * 3 / 8) blocks of 256
// threads. The q result goes to its out-parameter, k and v into the
// caller's blocks (returned in place, no copy), the norm weights and the
// constant table (a module global) are read by the kernel.
// CHECK-LABEL: func.func @rope_store(
// CHECK-SAME: [[Q:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[K:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[V:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[BLK:%[a-zA-Z0-9_]+]]: memref<?x2x2x16x2x64xbf16>,
// CHECK-SAME: [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>, [[GQ:%[a-zA-Z0-9_]+]]: memref<64xbf16>, [[GK:%[a-zA-Z0-9_]+]]: memref<64xbf16>,
// CHECK-SAME: [[QR:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>) attributes {llvm.emit_c_interface} {
// CHECK: [[T:%[a-zA-Z0-9_]+]] = memref.dim [[Q]], %c0
// CHECK: [[N:%[a-zA-Z0-9_]+]] = arith.muli [[T]], %c3
// CHECK: gpu.launch_func @attn_kernels::@rope_store blocks in (%{{[a-zA-Z0-9_]+}}, %c1, %c1) threads in (%c256, %c1, %c1) args([[Q]] : memref<?x4x64xbf16>, [[K]] : memref<?x2x64xbf16>, [[V]] : memref<?x2x64xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>, [[BLK]] : memref<?x2x2x16x2x64xbf16>, %c1 : index, [[QR]] : memref<?x4x64xbf16>, [[GQ]] : memref<64xbf16>, [[GK]] : memref<64xbf16>, [[N]] : index)
// CHECK-NOT: gpu.
// CHECK: return
// CHECK-LABEL: gpu.func @rope_store(
// CHECK-SAME: [[KQ:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[KK:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[KV:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, {{.*}}, [[KB:%[a-zA-Z0-9_]+]]: memref<?x2x2x16x2x64xbf16>, [[KL:%[a-zA-Z0-9_]+]]: index, [[KQR:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[KGQ:%[a-zA-Z0-9_]+]]: memref<64xbf16>, [[KGK:%[a-zA-Z0-9_]+]]: memref<64xbf16>, %{{.*}}: index)
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// The warp's row and first head: item / 3, item % 3 * 2.
// CHECK: arith.divui %{{.+}}, %c3 : index
// CHECK-NEXT: arith.remui %{{.+}}, %c3 : index
// The norm of each of the warp's 2 heads: sum of squares over the head,
// butterfly-reduced across the warp.
// CHECK: math.fma
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: math.rsqrt
// CHECK: math.fma
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: math.rsqrt
// Runs of two pairs where q, k, v, the q result and the blocks start on 4
// bytes.
// CHECK-COUNT-5: arith.remui %{{.+}}, %c4 : index
// CHECK: scf.if
// The cos / sin of the lane's 2 pairs, from the constant table, once for the
// warp's heads.
// CHECK: memref.get_global @attn_rope_table
// CHECK: memref.get_global @attn_rope_table
// q heads: every head's runs (i, i + 1) and (i + 32, i + 33) loaded before
// any is stored; gamma of q; the rotated runs to the q result.
// CHECK: scf.if
// CHECK-NEXT: vector.load [[KQ]][{{.*}}] {alignment = 4 : i64} : memref<?x4x64xbf16>, vector<2xbf16>
// CHECK-COUNT-3: vector.load [[KQ]]
// CHECK-NOT: vector.store
// CHECK: memref.load [[KGQ]]
// CHECK: vector.store %{{.+}}, [[KQR]][{{.*}}] {alignment = 4 : i64} : memref<?x4x64xbf16>, vector<2xbf16>
// k heads: k and v runs, gamma of k, k into the cache slot (axis 1 = 0) with
// the v run beside it (axis 1 = 1).
// CHECK: } else {
// CHECK-NEXT: vector.load [[KK]]
// CHECK-NEXT: vector.load [[KV]]
// CHECK-NOT: vector.store
// CHECK: memref.load [[KGK]]
// CHECK: vector.store %{{.+}}, [[KB]][%{{[a-zA-Z0-9_]+}}, %c0, [[KL]],
// CHECK-NEXT: vector.store %{{.+}}, [[KB]][%{{[a-zA-Z0-9_]+}}, %c1, [[KL]],
// Else pair by pair: cos / sin, gamma of q or k, rotation, element stores.
// CHECK: } else {
// CHECK: memref.get_global @attn_rope_table
// CHECK: memref.load [[KGQ]]
// CHECK: memref.load [[KGK]]
// CHECK: memref.store %{{.+}}, [[KQR]][
// CHECK: memref.store %{{.+}}, [[KB]][%{{[a-zA-Z0-9_]+}}, %c0, [[KL]],
// CHECK: [[VA:%[a-zA-Z0-9_]+]] = memref.load [[KV]][
// CHECK-NEXT: memref.store [[VA]], [[KB]][%{{[a-zA-Z0-9_]+}}, %c1, [[KL]],
func.func @rope_store(%q: tensor<?x4x64xbf16>, %k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>, %blocks: tensor<?x2x2x16x2x64xbf16>,
                      %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %gq: tensor<64xbf16>, %gk: tensor<64xbf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>) {
  %f = arith.constant dense<0.5> : tensor<64x64xf32>
  %qr, %new = attn.rope_store %q, %k, %v into %blocks layer 1 freqs(%f) positions(%off, %len) pages(%lut)
      qk_norm(%gq, %gk) eps 1.0e-06
      : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<64x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xbf16>, tensor<64xbf16>, tensor<64xbf16>
  return %qr, %new : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>
}

// -----

//===----------------------------------------------------------------------===//
// attn.rope
//===----------------------------------------------------------------------===//

// -----

// Frequencies from attn.rope_freqs: no table is materialised; the kernel
// (one thread per (row, head, pair): T x 4 x 32 items) reads the inverse
// frequencies theta^(-2i/64) from a global of the kernel module and computes
// cos / sin of the angle in f64. Rotate-half pairs are (i, i + 32).
// CHECK-LABEL: func.func @rope_freqs(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-NOT: gpu.alloc
// CHECK: [[T:%[a-zA-Z0-9_]+]] = memref.dim [[X]], %{{.+}} : memref<?x4x64xbf16>
// CHECK-NEXT: [[N:%[a-zA-Z0-9_]+]] = arith.muli [[T]], [[C128]] : index
// CHECK-NEXT: [[NB:%[a-zA-Z0-9_]+]] = arith.ceildivui [[N]], [[C256]] : index
// CHECK-NEXT: [[GX:%[a-zA-Z0-9_]+]] = arith.maxsi [[NB]], %{{.+}} : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@rope blocks in ([[GX]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) threads in ([[C256]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) args([[X]] : memref<?x4x64xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[Y]] : memref<?x4x64xbf16>, [[N]] : index)
// CHECK-NEXT: return
// CHECK-NEXT: }
// CHECK-NEXT: gpu.module @attn_kernels {
// CHECK-NEXT: memref.global "private" constant @attn_inv_freq : memref<32xf64> = dense<[1.000000e+00, 0.7498942{{[0-9]*}}, 0.5623413{{[0-9]*}}, {{.*}}]> {alignment = 16 : i64}
// CHECK-LABEL: gpu.func @rope(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[KOFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[KLEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[KY:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[KN:%[a-zA-Z0-9_]+]]: index)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK-DAG: [[C4:%[a-zA-Z0-9_]+]] = arith.constant 4 : index
// CHECK-DAG: [[C32:%[a-zA-Z0-9_]+]] = arith.constant 32 : index
// CHECK: [[ITEM:%[a-zA-Z0-9_]+]] = arith.addi %{{.+}}, %{{.+}} : index
// CHECK-NEXT: [[OK:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[ITEM]], [[KN]] : index
// CHECK-NEXT: scf.if [[OK]] {
// CHECK-NEXT: [[I:%[a-zA-Z0-9_]+]] = arith.remui [[ITEM]], [[C32]] : index
// CHECK-NEXT: [[RH:%[a-zA-Z0-9_]+]] = arith.divui [[ITEM]], [[C32]] : index
// CHECK-NEXT: [[HEAD:%[a-zA-Z0-9_]+]] = arith.remui [[RH]], [[C4]] : index
// CHECK-NEXT: [[ROW:%[a-zA-Z0-9_]+]] = arith.divui [[RH]], [[C4]] : index
// The position: cache length + row - first row of the row's sequence.
// CHECK: [[SEQ:%[a-zA-Z0-9_]+]] = scf.for
// CHECK: [[START:%[a-zA-Z0-9_]+]] = memref.load [[KOFF]][[[SEQ]]] : memref<?xi32>
// CHECK: [[CACHED:%[a-zA-Z0-9_]+]] = memref.load [[KLEN]][[[SEQ]]] : memref<?xi32>
// CHECK: [[POS:%[a-zA-Z0-9_]+]] = arith.addi
// CHECK-NEXT: [[INVT:%[a-zA-Z0-9_]+]] = memref.get_global @attn_inv_freq : memref<32xf64>
// CHECK-NEXT: [[INV:%[a-zA-Z0-9_]+]] = memref.load [[INVT]][[[I]]] : memref<32xf64>
// CHECK-NEXT: [[P64:%[a-zA-Z0-9_]+]] = arith.index_cast [[POS]] : index to i64
// CHECK-NEXT: [[P:%[a-zA-Z0-9_]+]] = arith.sitofp [[P64]] : i64 to f64
// CHECK-NEXT: [[ANGLE:%[a-zA-Z0-9_]+]] = arith.mulf [[P]], [[INV]] : f64
// CHECK-NEXT: [[COS64:%[a-zA-Z0-9_]+]] = math.cos [[ANGLE]] : f64
// CHECK-NEXT: [[COS:%[a-zA-Z0-9_]+]] = arith.truncf [[COS64]] : f64 to f32
// CHECK-NEXT: [[SIN64:%[a-zA-Z0-9_]+]] = math.sin [[ANGLE]] : f64
// CHECK-NEXT: [[SIN:%[a-zA-Z0-9_]+]] = arith.truncf [[SIN64]] : f64 to f32
// CHECK-NEXT: [[I2:%[a-zA-Z0-9_]+]] = arith.addi [[I]], [[C32]] : index
// CHECK-NEXT: [[XA:%[a-zA-Z0-9_]+]] = memref.load [[KX]][[[ROW]], [[HEAD]], [[I]]] : memref<?x4x64xbf16>
// CHECK-NEXT: [[XAF:%[a-zA-Z0-9_]+]] = arith.extf [[XA]] : bf16 to f32
// CHECK-NEXT: [[XB:%[a-zA-Z0-9_]+]] = memref.load [[KX]][[[ROW]], [[HEAD]], [[I2]]] : memref<?x4x64xbf16>
// CHECK-NEXT: [[XBF:%[a-zA-Z0-9_]+]] = arith.extf [[XB]] : bf16 to f32
// CHECK-NEXT: [[AC:%[a-zA-Z0-9_]+]] = arith.mulf [[XAF]], [[COS]] : f32
// CHECK-NEXT: [[BS:%[a-zA-Z0-9_]+]] = arith.mulf [[XBF]], [[SIN]] : f32
// CHECK-NEXT: [[YA:%[a-zA-Z0-9_]+]] = arith.subf [[AC]], [[BS]] : f32
// CHECK-NEXT: [[AS:%[a-zA-Z0-9_]+]] = arith.mulf [[XAF]], [[SIN]] : f32
// CHECK-NEXT: [[BC:%[a-zA-Z0-9_]+]] = arith.mulf [[XBF]], [[COS]] : f32
// CHECK-NEXT: [[YB:%[a-zA-Z0-9_]+]] = arith.addf [[AS]], [[BC]] : f32
// CHECK-NEXT: [[YAT:%[a-zA-Z0-9_]+]] = arith.truncf [[YA]] : f32 to bf16
// CHECK-NEXT: memref.store [[YAT]], [[KY]][[[ROW]], [[HEAD]], [[I]]] : memref<?x4x64xbf16>
// CHECK-NEXT: [[YBT:%[a-zA-Z0-9_]+]] = arith.truncf [[YB]] : f32 to bf16
// CHECK-NEXT: memref.store [[YBT]], [[KY]][[[ROW]], [[HEAD]], [[I2]]] : memref<?x4x64xbf16>
func.func @rope_freqs(%x: tensor<?x4x64xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<?x4x64xbf16> {
  %f = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<128x64xf32>
  %0 = attn.rope %x, %f positions(%off, %len) : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x4x64xbf16>
}

// -----

// A table argument: the kernel reads (cos, sin) at columns (2i, 2i + 1) of
// the row of the position, clamped to the last of the 128 rows; interleaved
// pairs are (2i, 2i + 1). No trigonometry in the kernel.
// CHECK-LABEL: func.func @rope_table(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[TAB:%[a-zA-Z0-9_]+]]: memref<128x64xf32>, [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>)
// CHECK: gpu.launch_func @attn_kernels::@rope blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[X]] : memref<?x4x64xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[Y]] : memref<?x4x64xbf16>, [[TAB]] : memref<128x64xf32>, %{{[a-zA-Z0-9_]+}} : index)
// CHECK-NEXT: return
// CHECK-NOT: memref.global
// CHECK-LABEL: gpu.func @rope(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, %{{[a-zA-Z0-9_]+}}: memref<?xi32>, %{{[a-zA-Z0-9_]+}}: memref<?xi32>, [[KY:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[KT:%[a-zA-Z0-9_]+]]: memref<128x64xf32>, %{{[a-zA-Z0-9_]+}}: index)
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C2:%[a-zA-Z0-9_]+]] = arith.constant 2 : index
// CHECK-DAG: [[C127:%[a-zA-Z0-9_]+]] = arith.constant 127 : index
// CHECK-NOT: math.cos
// CHECK: [[I:%[a-zA-Z0-9_]+]] = arith.remui
// CHECK: [[P:%[a-zA-Z0-9_]+]] = arith.minsi %{{.+}}, [[C127]] : index
// CHECK-NEXT: [[COL:%[a-zA-Z0-9_]+]] = arith.muli [[I]], [[C2]] : index
// CHECK-NEXT: [[COS:%[a-zA-Z0-9_]+]] = memref.load [[KT]][[[P]], [[COL]]] : memref<128x64xf32>
// CHECK-NEXT: [[COL1:%[a-zA-Z0-9_]+]] = arith.addi [[COL]], [[C1]] : index
// CHECK-NEXT: [[SIN:%[a-zA-Z0-9_]+]] = memref.load [[KT]][[[P]], [[COL1]]] : memref<128x64xf32>
// CHECK-NEXT: [[A:%[a-zA-Z0-9_]+]] = arith.muli [[I]], [[C2]] : index
// CHECK-NEXT: [[B:%[a-zA-Z0-9_]+]] = arith.addi [[A]], [[C1]] : index
// CHECK-NEXT: memref.load [[KX]][%{{.+}}, %{{.+}}, [[A]]] : memref<?x4x64xbf16>
// CHECK-NEXT: arith.extf
// CHECK-NEXT: memref.load [[KX]][%{{.+}}, %{{.+}}, [[B]]] : memref<?x4x64xbf16>
// CHECK-NEXT: arith.extf
// CHECK-NEXT: arith.mulf %{{.+}}, [[COS]] : f32
// CHECK-NEXT: arith.mulf %{{.+}}, [[SIN]] : f32
// CHECK-NEXT: arith.subf
// CHECK: memref.store %{{.+}}, [[KY]][%{{.+}}, %{{.+}}, [[A]]] : memref<?x4x64xbf16>
// CHECK: memref.store %{{.+}}, [[KY]][%{{.+}}, %{{.+}}, [[B]]] : memref<?x4x64xbf16>
// CHECK-NOT: math.cos
// CHECK: gpu.return
func.func @rope_table(%x: tensor<?x4x64xbf16>, %freqs: tensor<128x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<?x4x64xbf16> {
  %0 = attn.rope %x, %freqs positions(%off, %len) interleaved : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x4x64xbf16>
}

//===----------------------------------------------------------------------===//
// attn.rms_norm
//===----------------------------------------------------------------------===//

// -----

// Per-head norm: [T, 4, 64] viewed as [T * 4, 64] rows, one warp per row (8
// rows per 256-thread block); the sum of squares is reduced over the warp
// with xor shuffles 16, 8, 4, 2, 1, then rsqrt(sum / 64 + eps).
// CHECK-LABEL: func.func @rms_norm(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[G:%[a-zA-Z0-9_]+]]: memref<64xbf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-DAG: [[C8:%[a-zA-Z0-9_]+]] = arith.constant 8 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-DAG: [[XF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[X]] {{\[}}[0, 1], [2]] : memref<?x4x64xbf16> into memref<?x64xbf16>
// CHECK-DAG: [[YF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[Y]] {{\[}}[0, 1], [2]] : memref<?x4x64xbf16> into memref<?x64xbf16>
// CHECK: [[ROWS:%[a-zA-Z0-9_]+]] = memref.dim [[XF]], %{{.+}} : memref<?x64xbf16>
// CHECK-NEXT: [[NB:%[a-zA-Z0-9_]+]] = arith.ceildivui [[ROWS]], [[C8]] : index
// CHECK-NEXT: [[GX:%[a-zA-Z0-9_]+]] = arith.maxsi [[NB]], %{{.+}} : index
// CHECK-NEXT: gpu.launch_func @attn_kernels::@rms_norm blocks in ([[GX]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) threads in ([[C256]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) args([[XF]] : memref<?x64xbf16>, [[G]] : memref<64xbf16>, [[YF]] : memref<?x64xbf16>, [[ROWS]] : index)
// CHECK-NEXT: return
// CHECK-LABEL: gpu.func @rms_norm(
// CHECK-SAME: [[KX:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>, [[KG:%[a-zA-Z0-9_]+]]: memref<64xbf16>, [[KY:%[a-zA-Z0-9_]+]]: memref<?x64xbf16>, [[KR:%[a-zA-Z0-9_]+]]: index)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK-DAG: [[WIDTH:%[a-zA-Z0-9_]+]] = arith.constant 6.400000e+01 : f32
// CHECK-DAG: [[EPS:%[a-zA-Z0-9_]+]] = arith.constant 9.99999974E-6 : f32
// CHECK-DAG: [[C1I:%[a-zA-Z0-9_]+]] = arith.constant 1 : i32
// CHECK-DAG: [[C2I:%[a-zA-Z0-9_]+]] = arith.constant 2 : i32
// CHECK-DAG: [[C4I:%[a-zA-Z0-9_]+]] = arith.constant 4 : i32
// CHECK-DAG: [[C8I:%[a-zA-Z0-9_]+]] = arith.constant 8 : i32
// CHECK-DAG: [[C16I:%[a-zA-Z0-9_]+]] = arith.constant 16 : i32
// CHECK-DAG: [[C32I:%[a-zA-Z0-9_]+]] = arith.constant 32 : i32
// CHECK: [[ROW:%[a-zA-Z0-9_]+]] = arith.addi
// CHECK-NEXT: [[OK:%[a-zA-Z0-9_]+]] = arith.cmpi ult, [[ROW]], [[KR]] : index
// CHECK-NEXT: scf.if [[OK]] {
// CHECK-NEXT: [[SUM:%[a-zA-Z0-9_]+]] = scf.for [[J:%[a-zA-Z0-9_]+]] =
// CHECK-NEXT: [[V:%[a-zA-Z0-9_]+]] = memref.load [[KX]][[[ROW]], [[J]]] : memref<?x64xbf16>
// CHECK-NEXT: [[VF:%[a-zA-Z0-9_]+]] = arith.extf [[V]] : bf16 to f32
// CHECK-NEXT: math.fma [[VF]], [[VF]], %{{.+}} : f32
// CHECK: [[S16:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[SUM]], [[C16I]], [[C32I]] : f32
// CHECK-NEXT: [[T16:%[a-zA-Z0-9_]+]] = arith.addf [[SUM]], [[S16]] : f32
// CHECK-NEXT: [[S8:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[T16]], [[C8I]], [[C32I]] : f32
// CHECK-NEXT: [[T8:%[a-zA-Z0-9_]+]] = arith.addf [[T16]], [[S8]] : f32
// CHECK-NEXT: [[S4:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[T8]], [[C4I]], [[C32I]] : f32
// CHECK-NEXT: [[T4:%[a-zA-Z0-9_]+]] = arith.addf [[T8]], [[S4]] : f32
// CHECK-NEXT: [[S2:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[T4]], [[C2I]], [[C32I]] : f32
// CHECK-NEXT: [[T2:%[a-zA-Z0-9_]+]] = arith.addf [[T4]], [[S2]] : f32
// CHECK-NEXT: [[S1:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[T2]], [[C1I]], [[C32I]] : f32
// CHECK-NEXT: [[TOTAL:%[a-zA-Z0-9_]+]] = arith.addf [[T2]], [[S1]] : f32
// CHECK-NEXT: [[MEAN:%[a-zA-Z0-9_]+]] = arith.divf [[TOTAL]], [[WIDTH]] : f32
// CHECK-NEXT: [[ME:%[a-zA-Z0-9_]+]] = arith.addf [[MEAN]], [[EPS]] : f32
// CHECK-NEXT: [[INV:%[a-zA-Z0-9_]+]] = math.rsqrt [[ME]] : f32
// CHECK-NEXT: scf.for [[J2:%[a-zA-Z0-9_]+]] =
// CHECK-NEXT: [[X2:%[a-zA-Z0-9_]+]] = memref.load [[KX]][[[ROW]], [[J2]]] : memref<?x64xbf16>
// CHECK-NEXT: [[X2F:%[a-zA-Z0-9_]+]] = arith.extf [[X2]] : bf16 to f32
// CHECK-NEXT: [[GV:%[a-zA-Z0-9_]+]] = memref.load [[KG]][[[J2]]] : memref<64xbf16>
// CHECK-NEXT: [[GF:%[a-zA-Z0-9_]+]] = arith.extf [[GV]] : bf16 to f32
// CHECK-NEXT: [[N:%[a-zA-Z0-9_]+]] = arith.mulf [[X2F]], [[INV]] : f32
// CHECK-NEXT: [[NG:%[a-zA-Z0-9_]+]] = arith.mulf [[N]], [[GF]] : f32
// CHECK-NEXT: [[NT:%[a-zA-Z0-9_]+]] = arith.truncf [[NG]] : f32 to bf16
// CHECK-NEXT: memref.store [[NT]], [[KY]][[[ROW]], [[J2]]] : memref<?x64xbf16>
func.func @rms_norm(%x: tensor<?x4x64xbf16>, %g: tensor<64xbf16>) -> tensor<?x4x64xbf16> {
  %0 = attn.rms_norm %x, %g eps 1.0e-5 : tensor<?x4x64xbf16>, tensor<64xbf16>
  return %0 : tensor<?x4x64xbf16>
}

//===----------------------------------------------------------------------===//
// attn.kv_cache_store
//===----------------------------------------------------------------------===//

// -----

// The returned blocks are the updated argument: no result, no out-parameter,
// no copy of the cache; the kernel writes 16-byte chunks of K and V rows into
// the caller's blocks at [page, 0 (K) / 1 (V), layer 2, slot, head, col],
// with page = lookup[seq, pos / 16] and slot = pos % 16.
// CHECK-LABEL: func.func @kv_cache_store(
// CHECK-SAME: [[K:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[V:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[BLK:%[a-zA-Z0-9_]+]]: memref<?x2x3x16x2x64xbf16>,
// CHECK-SAME: [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-NOT: gpu.alloc
// CHECK-NOT: gpu.memcpy
// CHECK: gpu.launch_func @attn_kernels::@kv_cache_store blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[K]] : memref<?x2x64xbf16>, [[V]] : memref<?x2x64xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>, [[BLK]] : memref<?x2x3x16x2x64xbf16>, %c2 : index, %{{[a-zA-Z0-9_]+}} : index)
// CHECK-NOT: gpu.
// CHECK: return
// CHECK-LABEL: gpu.func @kv_cache_store(
// CHECK-SAME: [[KK:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[KV:%[a-zA-Z0-9_]+]]: memref<?x2x64xbf16>, [[KOFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[KLEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[KLUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>, [[KB:%[a-zA-Z0-9_]+]]: memref<?x2x3x16x2x64xbf16>, [[KL:%[a-zA-Z0-9_]+]]: index, %{{[a-zA-Z0-9_]+}}: index)
// CHECK-DAG: [[C0:%[a-zA-Z0-9_]+]] = arith.constant 0 : index
// CHECK-DAG: [[C1:%[a-zA-Z0-9_]+]] = arith.constant 1 : index
// CHECK-DAG: [[C16:%[a-zA-Z0-9_]+]] = arith.constant 16 : index
// CHECK: [[SEQ:%[a-zA-Z0-9_]+]] = scf.for
// CHECK: memref.load [[KLEN]][[[SEQ]]] : memref<?xi32>
// CHECK: memref.load [[KOFF]][[[SEQ]]] : memref<?xi32>
// CHECK: [[POS:%[a-zA-Z0-9_]+]] = arith.addi
// CHECK-NEXT: [[PI:%[a-zA-Z0-9_]+]] = arith.divui [[POS]], [[C16]] : index
// CHECK-NEXT: [[PAGE32:%[a-zA-Z0-9_]+]] = memref.load [[KLUT]][[[SEQ]], [[PI]]] : memref<?x?xi32>
// CHECK-NEXT: [[PAGE:%[a-zA-Z0-9_]+]] = arith.index_cast [[PAGE32]] : i32 to index
// CHECK-NEXT: [[SLOT:%[a-zA-Z0-9_]+]] = arith.remui [[POS]], [[C16]] : index
// CHECK-NEXT: [[KROW:%[a-zA-Z0-9_]+]] = vector.load [[KK]][[[ROW:%[a-zA-Z0-9_]+]], [[HEAD:%[a-zA-Z0-9_]+]], [[COL:%[a-zA-Z0-9_]+]]] {alignment = 16 : i64} : memref<?x2x64xbf16>, vector<8xbf16>
// CHECK-NEXT: vector.store [[KROW]], [[KB]][[[PAGE]], [[C0]], [[KL]], [[SLOT]], [[HEAD]], [[COL]]] {alignment = 16 : i64} : memref<?x2x3x16x2x64xbf16>, vector<8xbf16>
// CHECK-NEXT: [[VROW:%[a-zA-Z0-9_]+]] = vector.load [[KV]][[[ROW]], [[HEAD]], [[COL]]] {alignment = 16 : i64} : memref<?x2x64xbf16>, vector<8xbf16>
// CHECK-NEXT: vector.store [[VROW]], [[KB]][[[PAGE]], [[C1]], [[KL]], [[SLOT]], [[HEAD]], [[COL]]] {alignment = 16 : i64} : memref<?x2x3x16x2x64xbf16>, vector<8xbf16>
func.func @kv_cache_store(%k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>, %blocks: tensor<?x2x3x16x2x64xbf16>,
                          %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xbf16> {
  %new = attn.kv_cache_store %k, %v into %blocks layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  return %new : tensor<?x2x3x16x2x64xbf16>
}

//===----------------------------------------------------------------------===//
// attn.paged_flash_attention
//===----------------------------------------------------------------------===//

// -----

// The host allocates the f32 split partials (output and log-sum-exp),
// launches both attention schedules (the one the call does not pick runs a
// single idle block) and the combine kernel, which writes the
// out-parameter, and frees the partials. Only prefill takes dynamic shared
// memory: Q, K, V and P tiles of 64 x 64 bf16 (8 KB each) + 1 KB alignment.
// CHECK-LABEL: func.func @paged_flash_attention(
// CHECK-SAME: [[Q:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[BLK:%[a-zA-Z0-9_]+]]: memref<?x2x2x16x2x64xbf16>,
// CHECK-SAME: [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>, [[O:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-DAG: [[C128:%[a-zA-Z0-9_]+]] = arith.constant 128 : index
// CHECK-DAG: [[C256:%[a-zA-Z0-9_]+]] = arith.constant 256 : index
// CHECK-DAG: [[SMEM:%[a-zA-Z0-9_]+]] = arith.constant 33792 : i32
// CHECK: [[OP:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x?x4x64xf32>
// CHECK-NEXT: [[LP:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x?x4xf32>
// CHECK-NOT: gpu.alloc
// CHECK: gpu.launch_func @attn_kernels::@paged_flash_attention_prefill blocks in ({{[^)]*}}) threads in ([[C128]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) dynamic_shared_memory_size [[SMEM]]
// CHECK-SAME: args([[Q]] : memref<?x4x64xbf16>, [[O]] : memref<?x4x64xbf16>, [[OFF]] : memref<?xi32>, [[BLK]] : memref<?x2x2x16x2x64xbf16>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>,
// CHECK-SAME: [[OP]] : memref<?x?x4x64xf32>, [[LP]] : memref<?x?x4xf32>
// CHECK: gpu.launch_func @attn_kernels::@paged_flash_attention_decode blocks in ({{[^)]*}}) threads in ([[C128]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) args(
// CHECK-SAME: [[Q]] : memref<?x4x64xbf16>, [[O]] : memref<?x4x64xbf16>, [[OFF]] : memref<?xi32>, [[BLK]] : memref<?x2x2x16x2x64xbf16>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>,
// CHECK-SAME: [[OP]] : memref<?x?x4x64xf32>, [[LP]] : memref<?x?x4xf32>
// CHECK-NOT: gpu.alloc
// CHECK: gpu.launch_func @attn_kernels::@attention_combine blocks in (%{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) threads in ([[C256]], %{{[a-zA-Z0-9_]+}}, %{{[a-zA-Z0-9_]+}}) args([[OP]] : memref<?x?x4x64xf32>, [[LP]] : memref<?x?x4xf32>, [[O]] : memref<?x4x64xbf16>,
// CHECK-NEXT: gpu.dealloc [[OP]] : memref<?x?x4x64xf32>
// CHECK-NEXT: gpu.dealloc [[LP]] : memref<?x?x4xf32>
// CHECK-NEXT: return
//
// Prefill on warpgroup MMA: four 4096-element tiles viewed in dynamic shared
// memory; K (cache slot 0) and V (slot 1) staged by cp.async into them and
// fenced for the async proxy; S = Q K^T as four m64n64k16 steps with K-major
// B (col), the scale 0.125 * log2(e), the row max over the quad, exp2, P
// stored as bf16 pairs, O += P V with V as the transposed B (row).
// CHECK-LABEL: gpu.func @paged_flash_attention_prefill(
// CHECK-SAME: [[PQ:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[PO:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, %{{[a-zA-Z0-9_]+}}: memref<?xi32>, [[PB:%[a-zA-Z0-9_]+]]: memref<?x2x2x16x2x64xbf16>,
// CHECK-SAME: %{{[a-zA-Z0-9_]+}}: memref<?xi32>, %{{[a-zA-Z0-9_]+}}: memref<?x?xi32>, [[PL:%[a-zA-Z0-9_]+]]: index,
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK-DAG: [[PSCALE:%[a-zA-Z0-9_]+]] = arith.constant 0.180336878 : f32
// CHECK: [[RAW:%[a-zA-Z0-9_]+]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: [[TQ:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4096xbf16, #gpu.address_space<workgroup>>
// CHECK: [[TK:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4096xbf16, #gpu.address_space<workgroup>>
// CHECK: [[TV:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4096xbf16, #gpu.address_space<workgroup>>
// CHECK: [[TP:%[a-zA-Z0-9_]+]] = memref.view [[RAW]][%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4096xbf16, #gpu.address_space<workgroup>>
// CHECK: vector.store %{{.+}}, [[TQ]][%{{.+}}] {alignment = 16 : i64} : memref<4096xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK: gpu.barrier
// CHECK: nvgpu.device_async_copy [[PB]][%{{.+}}, %c0, [[PL]], %{{.+}}, %{{.+}}, %{{.+}}], [[TK]][%{{.+}}], 8, %{{.+}} {bypassL1}
// CHECK: scf.for
// CHECK: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK: nvgpu.device_async_copy [[PB]][%{{.+}}, %c1, [[PL]], %{{.+}}, %{{.+}}, %{{.+}}], [[TV]][%{{.+}}], 8, %{{.+}} {bypassL1}
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: arith.mulf %{{.+}}, [[PSCALE]] : f32
// CHECK: gpu.shuffle xor
// CHECK: math.exp2 %{{.+}} : f32
// CHECK: vector.store %{{.+}}, [[TP]][%{{.+}}] : memref<4096xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// CHECK: nvvm.fence.proxy
// CHECK-NEXT: gpu.barrier
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <row>]
// CHECK: scf.yield
// CHECK: memref.store %{{.+}}, [[PO]][%{{.+}}, %{{.+}}, %{{.+}}] : memref<?x4x64xbf16>
// CHECK: gpu.return
//
// Decode: four warps share one 16-row tile and split every key tile; Q
// fragments through ldmatrix from the first workgroup buffer; per key tile
// S = Q K^T with bf16 mma (K fragments from the first buffer), the mask
// (-inf) on tiles not fully visible, the row max over the 4 lanes of a row
// (xor shuffles 1, 2), exp2 of the scaled scores, P re-packed as bf16 A
// fragments and
// O += P V with V through a transposed ldmatrix from the second buffer.
// Then the row sums over the quad and each warp's f32 partial with its
// log2-sum-exp. At most 128 registers (4 blocks per SM).
// CHECK-LABEL: gpu.func @paged_flash_attention_decode(
// CHECK-SAME: [[KQ:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[KO:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, %{{[a-zA-Z0-9_]+}}: memref<?xi32>, [[KB:%[a-zA-Z0-9_]+]]: memref<?x2x2x16x2x64xbf16>,
// CHECK-SAME: %{{[a-zA-Z0-9_]+}}: memref<?xi32>, %{{[a-zA-Z0-9_]+}}: memref<?x?xi32>, %{{[a-zA-Z0-9_]+}}: index, [[KOP:%[a-zA-Z0-9_]+]]: memref<?x?x4x64xf32>, [[KLP:%[a-zA-Z0-9_]+]]: memref<?x?x4xf32>
// CHECK-SAME: workgroup([[SK:%[a-zA-Z0-9_]+]] : memref<{{.+}}xbf16, #gpu.address_space<workgroup>>, [[SV:%[a-zA-Z0-9_]+]] : memref<{{.+}}xbf16, #gpu.address_space<workgroup>>)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.minctasm = 4 : i32}
// CHECK-DAG: [[SCALE:%[a-zA-Z0-9_]+]] = arith.constant 0.180336878 : f32
// CHECK-DAG: [[NEGINF:%[a-zA-Z0-9_]+]] = arith.constant 0xFF800000 : f32
// CHECK-DAG: [[C1I:%[a-zA-Z0-9_]+]] = arith.constant 1 : i32
// CHECK-DAG: [[C2I:%[a-zA-Z0-9_]+]] = arith.constant 2 : i32
// CHECK-DAG: [[C32I:%[a-zA-Z0-9_]+]] = arith.constant 32 : i32
// Block x is a (query tile, KV head) pair, the head fastest; blocks take
// the batch's query tiles from the end (tiles - 1 - x / heads): the
// heaviest causal tiles of every head start first.
// CHECK: [[BX:%[a-zA-Z0-9_]+]] = gpu.block_id  x
// CHECK-NEXT: [[NX:%[a-zA-Z0-9_]+]] = gpu.grid_dim  x
// CHECK-NEXT: [[TILES:%[a-zA-Z0-9_]+]] = arith.divui [[NX]], %c2 : index
// CHECK-NEXT: [[KVHEAD:%[a-zA-Z0-9_]+]] = arith.remui [[BX]], %c2 : index
// CHECK-NEXT: [[LAST:%[a-zA-Z0-9_]+]] = arith.subi [[TILES]], %c1 : index
// CHECK-NEXT: [[RANK:%[a-zA-Z0-9_]+]] = arith.divui [[BX]], %c2 : index
// CHECK-NEXT: arith.subi [[LAST]], [[RANK]] : index
// CHECK: nvgpu.ldmatrix [[SK]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<{{.+}}xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: nvgpu.ldmatrix [[SK]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<{{.+}}xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK: scf.if
// CHECK: arith.select %{{.+}}, %{{.+}}, [[NEGINF]] : f32
// CHECK: [[M1:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[MX:%[a-zA-Z0-9_]+]], [[C1I]], [[C32I]] : f32
// CHECK-NEXT: [[MX1:%[a-zA-Z0-9_]+]] = arith.maximumf [[MX]], [[M1]] : f32
// CHECK-NEXT: [[M2:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[MX1]], [[C2I]], [[C32I]] : f32
// CHECK-NEXT: [[ROWMAX:%[a-zA-Z0-9_]+]] = arith.maximumf [[MX1]], [[M2]] : f32
// The row max of the raw scores, scaled once; acc and l are rescaled only
// when some row of the warp outgrows its max by more than 8 (log2 units).
// CHECK-NEXT: arith.mulf [[ROWMAX]], [[SCALE]] : f32
// CHECK-NEXT: arith.addf %{{.+}}, %{{.+}} : f32
// CHECK-NEXT: arith.cmpf ogt
// CHECK: [[GROWS:%[a-zA-Z0-9_]+]] = nvvm.vote.sync  any %{{.+}}, %{{.+}} -> i1
// CHECK-NEXT: scf.if [[GROWS]]
// CHECK: math.exp2
// CHECK: arith.mulf
// CHECK: } else {
// P = 2^(scale s - m): one FMA per score.
// CHECK: [[ARG:%[a-zA-Z0-9_]+]] = math.fma %{{.+}}, [[SCALE]], %{{.+}} : f32
// CHECK-NEXT: math.exp2 [[ARG]] : f32
// CHECK: arith.truncf %{{.+}} : vector<2xf32> to vector<2xbf16>
// CHECK-NOT: nvgpu.ldmatrix [[SV]]{{.*}}transpose = false
// CHECK: nvgpu.ldmatrix [[SV]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = true} : memref<{{.+}}xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
// CHECK: nvvm.mma.sync {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>
// CHECK: scf.yield
// CHECK: [[L1:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[L:%[a-zA-Z0-9_#]+]], [[C1I]], [[C32I]] : f32
// CHECK-NEXT: [[LS1:%[a-zA-Z0-9_]+]] = arith.addf [[L]], [[L1]] : f32
// CHECK-NEXT: [[L2:%[a-zA-Z0-9_]+]], %{{.+}} = gpu.shuffle xor [[LS1]], [[C2I]], [[C32I]] : f32
// CHECK-NEXT: arith.addf [[LS1]], [[L2]] : f32
// CHECK: memref.store %{{.+}}, [[KOP]][%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : memref<?x?x4x64xf32>
// CHECK: math.log2 %{{.+}} : f32
// CHECK: memref.store %{{.+}}, [[KLP]][%{{.+}}, %{{.+}}, %{{.+}}] : memref<?x?x4xf32>
// CHECK: gpu.return
// The combine: out = sum_s 2^(lse_s - max lse) o_s / sum_s 2^(lse_s - max lse).
// CHECK-LABEL: gpu.func @attention_combine(
// CHECK-SAME: [[COP:%[a-zA-Z0-9_]+]]: memref<?x?x4x64xf32>, [[CLP:%[a-zA-Z0-9_]+]]: memref<?x?x4xf32>, [[CO:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[CS:%[a-zA-Z0-9_]+]]: index, %{{[a-zA-Z0-9_]+}}: index)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK: [[MAX:%[a-zA-Z0-9_]+]] = scf.for [[S:%[a-zA-Z0-9_]+]] = %{{.+}} to [[CS]]
// CHECK-NEXT: [[LSE:%[a-zA-Z0-9_]+]] = memref.load [[CLP]][[[S]], [[ROW:%[a-zA-Z0-9_]+]], [[HEAD:%[a-zA-Z0-9_]+]]] : memref<?x?x4xf32>
// CHECK-NEXT: arith.maximumf %{{.+}}, [[LSE]] : f32
// CHECK: [[BASE:%[a-zA-Z0-9_]+]] = arith.select %{{.+}}, %{{.+}}, [[MAX]] : f32
// CHECK-NEXT: [[SUMS:%[a-zA-Z0-9_]+]]:2 = scf.for [[S2:%[a-zA-Z0-9_]+]] = %{{.+}} to [[CS]]
// CHECK-NEXT: [[LSE2:%[a-zA-Z0-9_]+]] = memref.load [[CLP]][[[S2]], [[ROW]], [[HEAD]]] : memref<?x?x4xf32>
// CHECK-NEXT: [[D:%[a-zA-Z0-9_]+]] = arith.subf [[LSE2]], [[BASE]] : f32
// CHECK-NEXT: [[WT:%[a-zA-Z0-9_]+]] = math.exp2 [[D]] : f32
// CHECK-NEXT: [[OS:%[a-zA-Z0-9_]+]] = memref.load [[COP]][[[S2]], [[ROW]], [[HEAD]], [[COL:%[a-zA-Z0-9_]+]]] : memref<?x?x4x64xf32>
// CHECK-NEXT: arith.addf %{{.+}}, [[WT]] : f32
// CHECK-NEXT: math.fma [[WT]], [[OS]], %{{.+}} : f32
// CHECK: [[R:%[a-zA-Z0-9_]+]] = arith.divf [[SUMS]]#1, [[SUMS]]#0 : f32
// CHECK: [[RT:%[a-zA-Z0-9_]+]] = arith.truncf %{{.+}} : f32 to bf16
// CHECK-NEXT: memref.store [[RT]], [[CO]][[[ROW]], [[HEAD]], [[COL]]] : memref<?x4x64xbf16>
func.func @paged_flash_attention(%q: tensor<?x4x64xbf16>, %blocks: tensor<?x2x2x16x2x64xbf16>,
                                 %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xbf16> {
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xbf16>
}

//===----------------------------------------------------------------------===//
// attn.flash_attention
//===----------------------------------------------------------------------===//

// -----

// Explicit f16 K/V (GQA group 4, head dim 128, sliding window, scale 0.1):
// the kernels take K and V instead of the cache and the scale in the exp2
// domain is 0.1 * log2(e). Prefill: 16 KB tiles (57 KB of dynamic shared
// memory), f16 wgmma with n = 64 for S and n = 128 (the head dim) for P V.
// Decode: f16 fragments go to mma.sync as vector<2xf16>.
// CHECK-LABEL: func.func @flash_attention(
// CHECK-SAME: [[Q:%[a-zA-Z0-9_]+]]: memref<?x8x128xf16>, [[K:%[a-zA-Z0-9_]+]]: memref<?x2x128xf16>, [[V:%[a-zA-Z0-9_]+]]: memref<?x2x128xf16>,
// CHECK-SAME: [[QO:%[a-zA-Z0-9_]+]]: memref<3xi32>, [[KO:%[a-zA-Z0-9_]+]]: memref<3xi32>, [[O:%[a-zA-Z0-9_]+]]: memref<?x8x128xf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-DAG: [[SMEM:%[a-zA-Z0-9_]+]] = arith.constant 58368 : i32
// CHECK: [[OP:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x?x8x128xf32>
// CHECK-NEXT: [[LP:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x?x8xf32>
// CHECK: gpu.launch_func @attn_kernels::@flash_attention_prefill blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size [[SMEM]]
// CHECK-SAME: args([[Q]] : memref<?x8x128xf16>, [[O]] : memref<?x8x128xf16>, [[QO]] : memref<3xi32>, [[K]] : memref<?x2x128xf16>, [[V]] : memref<?x2x128xf16>, [[KO]] : memref<3xi32>,
// CHECK-SAME: [[OP]] : memref<?x?x8x128xf32>, [[LP]] : memref<?x?x8xf32>
// CHECK: gpu.launch_func @attn_kernels::@flash_attention_decode blocks in ({{[^)]*}}) threads in ({{[^)]*}})
// CHECK-SAME: args([[Q]] : memref<?x8x128xf16>, [[O]] : memref<?x8x128xf16>, [[QO]] : memref<3xi32>, [[K]] : memref<?x2x128xf16>, [[V]] : memref<?x2x128xf16>, [[KO]] : memref<3xi32>,
// CHECK: gpu.launch_func @attn_kernels::@attention_combine blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[OP]] : memref<?x?x8x128xf32>, [[LP]] : memref<?x?x8xf32>, [[O]] : memref<?x8x128xf16>,
// CHECK-NEXT: gpu.dealloc [[OP]] : memref<?x?x8x128xf32>
// CHECK-NEXT: gpu.dealloc [[LP]] : memref<?x?x8xf32>
// CHECK-NEXT: return
// CHECK-LABEL: gpu.func @flash_attention_prefill(
// CHECK-SAME: [[PQ:%[a-zA-Z0-9_]+]]: memref<?x8x128xf16>, [[POUT:%[a-zA-Z0-9_]+]]: memref<?x8x128xf16>, %{{[a-zA-Z0-9_]+}}: memref<3xi32>, [[PK:%[a-zA-Z0-9_]+]]: memref<?x2x128xf16>, [[PV:%[a-zA-Z0-9_]+]]: memref<?x2x128xf16>, %{{[a-zA-Z0-9_]+}}: memref<3xi32>,
// CHECK-DAG: [[PSCALE:%[a-zA-Z0-9_]+]] = arith.constant 0.144269511 : f32
// CHECK: memref.view %{{.+}}[%{{.+}}][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<8192xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_copy [[PK]][%{{.+}}, %{{.+}}, %{{.+}}], %{{.+}}[%{{.+}}], 8, %{{.+}} {bypassL1} : memref<?x2x128xf16> to memref<8192xf16, #gpu.address_space<workgroup>>
// CHECK: scf.for
// CHECK: nvgpu.device_async_copy [[PV]][%{{.+}}, %{{.+}}, %{{.+}}], %{{.+}}[%{{.+}}], 8, %{{.+}} {bypassL1} : memref<?x2x128xf16> to memref<8192xf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-8: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]
// CHECK: arith.mulf %{{.+}}, [[PSCALE]] : f32
// CHECK: math.exp2
// CHECK: arith.truncf %{{.+}} : vector<2xf32> to vector<2xf16>
// CHECK-COUNT-4: nvvm.wgmma.mma_async %{{.+}}, %{{.+}}, %{{.+}}, <m = 64, n = 128, k = 16>, D[<f32>, <one>], A[<f16>, <one>, <row>], B[<f16>, <one>, <row>]
// CHECK: scf.yield
// CHECK: [[PV16:%[a-zA-Z0-9_]+]] = arith.truncf %{{.+}} : f32 to f16
// CHECK-NEXT: memref.store [[PV16]], [[POUT]][%{{.+}}, %{{.+}}, %{{.+}}] : memref<?x8x128xf16>
// CHECK-LABEL: gpu.func @flash_attention_decode(
// CHECK-SAME: [[KQ:%[a-zA-Z0-9_]+]]: memref<?x8x128xf16>, [[KOUT:%[a-zA-Z0-9_]+]]: memref<?x8x128xf16>, %{{[a-zA-Z0-9_]+}}: memref<3xi32>, %{{[a-zA-Z0-9_]+}}: memref<?x2x128xf16>, %{{[a-zA-Z0-9_]+}}: memref<?x2x128xf16>, %{{[a-zA-Z0-9_]+}}: memref<3xi32>,
// CHECK-SAME: workgroup([[SK:%[a-zA-Z0-9_]+]] : memref<{{.+}}xf16, #gpu.address_space<workgroup>>, [[SV:%[a-zA-Z0-9_]+]] : memref<{{.+}}xf16, #gpu.address_space<workgroup>>)
// CHECK-DAG: [[SCALE:%[a-zA-Z0-9_]+]] = arith.constant 0.144269511 : f32
// CHECK: nvgpu.ldmatrix [[SK]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = false} : memref<{{.+}}xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: scf.for
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK: arith.mulf %{{.+}}, [[SCALE]] : f32
// CHECK: gpu.shuffle xor
// CHECK: math.exp2
// CHECK: arith.truncf %{{.+}} : vector<2xf32> to vector<2xf16>
// CHECK-NOT: nvgpu.ldmatrix [[SV]]{{.*}}transpose = false
// CHECK: nvgpu.ldmatrix [[SV]][%{{.+}}, %{{.+}}] {numTiles = 4 : i32, transpose = true} : memref<{{.+}}xf16, #gpu.address_space<workgroup>> -> vector<4x2xf16>
// CHECK: nvvm.mma.sync {{.*}} : (vector<2xf16>, vector<2xf16>, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK: scf.yield
// CHECK-LABEL: gpu.func @attention_combine(
// CHECK: arith.truncf %{{.+}} : f32 to f16
func.func @flash_attention(%q: tensor<?x8x128xf16>, %k: tensor<?x2x128xf16>, %v: tensor<?x2x128xf16>,
                           %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x8x128xf16> {
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) {mask = #attn.mask<sliding_window = 8>, scale = 0.1 : f64}
      : tensor<?x8x128xf16>, tensor<?x2x128xf16>, tensor<?x2x128xf16>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x8x128xf16>
}

//===----------------------------------------------------------------------===//
// Results that are views, results that are arguments
//===----------------------------------------------------------------------===//

// -----

// A result that is a view of an op's output (here the norm's [T, 4, 64]
// collapsed to [T, 256]) is not computed in place: the norm writes a
// temporary, copied into the out-parameter and freed. A returned argument is
// no result at all (the caller has it).
// CHECK-LABEL: func.func @returned_view(
// CHECK-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4x64xbf16>, [[G:%[a-zA-Z0-9_]+]]: memref<64xbf16>, [[Y:%[a-zA-Z0-9_]+]]: memref<?x256xbf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK: [[TMP:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x4x64xbf16>
// CHECK: [[TMPF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[TMP]] {{\[}}[0, 1], [2]] : memref<?x4x64xbf16> into memref<?x64xbf16>
// CHECK: gpu.launch_func @attn_kernels::@rms_norm blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args(%{{[a-zA-Z0-9_]+}} : memref<?x64xbf16>, [[G]] : memref<64xbf16>, [[TMPF]] : memref<?x64xbf16>, %{{[a-zA-Z0-9_]+}} : index)
// CHECK-NEXT: [[VIEW:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[TMP]] {{\[}}[0], [1, 2]] : memref<?x4x64xbf16> into memref<?x256xbf16>
// CHECK-NEXT: gpu.memcpy [[Y]], [[VIEW]] : memref<?x256xbf16>, memref<?x256xbf16>
// CHECK-NEXT: gpu.dealloc [[TMP]] : memref<?x4x64xbf16>
// CHECK-NEXT: return
func.func @returned_view(%x: tensor<?x4x64xbf16>, %g: tensor<64xbf16>) -> (tensor<?x256xbf16>, tensor<64xbf16>) {
  %0 = attn.rms_norm %x, %g : tensor<?x4x64xbf16>, tensor<64xbf16>
  %1 = tensor.collapse_shape %0 [[0], [1, 2]] : tensor<?x4x64xbf16> into tensor<?x256xbf16>
  return %1, %g : tensor<?x256xbf16>, tensor<64xbf16>
}

//===----------------------------------------------------------------------===//
// A whole layer (LAYER, examples/qwen3_8b.mlir)
//===----------------------------------------------------------------------===//

// The cache arguments are the three unpacked tensors; the blocks, cache
// lengths and lookup table come back as (updated) arguments, so the only
// out-parameter is the layer output. Launch order: q, k, v projections (each
// into a new device buffer), q and k RMS norms, q and k RoPE, the cache store
// into the caller's blocks (no copy), attention reading the same blocks, the
// combine, and the output projection writing the out-parameter directly.
// Every intermediate is freed at the end; nothing is copied.
// Over the whole host function: no copy, no temporary cache or output.
// HOSTONLY-LABEL: func.func @qwen3_8b_layer(
// HOSTONLY-NOT: gpu.memcpy
// HOSTONLY-NOT: gpu.alloc{{.*}}x2x36x128x8x128xbf16>
// HOSTONLY-NOT: gpu.alloc{{.*}}memref<?x4096xbf16>
// HOSTONLY: gpu.module @attn_kernels
// LAYER-LABEL: func.func @qwen3_8b_layer(
// LAYER-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>, [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[BLK:%[a-zA-Z0-9_]+]]: memref<?x2x36x128x8x128xbf16>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>,
// LAYER-SAME: [[WQ:%[a-zA-Z0-9_]+]]: memref<4096x4096xbf16>, [[WK:%[a-zA-Z0-9_]+]]: memref<1024x4096xbf16>, [[WV:%[a-zA-Z0-9_]+]]: memref<1024x4096xbf16>,
// LAYER-SAME: [[GQ:%[a-zA-Z0-9_]+]]: memref<128xbf16>, [[GK:%[a-zA-Z0-9_]+]]: memref<128xbf16>, [[WO:%[a-zA-Z0-9_]+]]: memref<4096x4096xbf16>,
// LAYER-SAME: [[OUT:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>) attributes {llvm.emit_c_interface} {
// LAYER: [[Q:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x32x128xbf16>
// LAYER: [[K:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x8x128xbf16>
// LAYER: [[V:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x8x128xbf16>
// LAYER: [[WQC:%[a-zA-Z0-9_]+]] = memref.cast [[WQ]] : memref<4096x4096xbf16> to memref<?x4096xbf16>
// LAYER: [[WKC:%[a-zA-Z0-9_]+]] = memref.cast [[WK]] : memref<1024x4096xbf16> to memref<?x4096xbf16>
// LAYER: [[WVC:%[a-zA-Z0-9_]+]] = memref.cast [[WV]] : memref<1024x4096xbf16> to memref<?x4096xbf16>
// The GEMV for at most 16 rows, else the wgmma GEMM, picked on the host.
// LAYER: scf.if
// LAYER-DAG: gpu.launch_func @attn_kernels::@gemv blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[X]] : memref<?x4096xbf16>, [[WQC]] : memref<?x4096xbf16>, [[WKC]] : memref<?x4096xbf16>, [[WVC]] : memref<?x4096xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x4096xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x1024xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x1024xbf16>)
// LAYER-DAG: gpu.launch_func @attn_kernels::@gemm_wgmma blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size %{{.+}} args([[X]] : memref<?x4096xbf16>, [[WQC]] : memref<?x4096xbf16>, [[WKC]] : memref<?x4096xbf16>, [[WVC]] : memref<?x4096xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x4096xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x1024xbf16>, %{{[a-zA-Z0-9_]+}} : memref<?x1024xbf16>, %{{[a-zA-Z0-9_]+}} : !llvm.array<16 x i64>, %{{[a-zA-Z0-9_]+}} : !llvm.array<16 x i64>, %{{[a-zA-Z0-9_]+}} : !llvm.array<16 x i64>, %{{[a-zA-Z0-9_]+}} : !llvm.array<16 x i64>)
// LAYER: [[QN:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x32x128xbf16>
// LAYER: memref.collapse_shape [[Q]] {{\[}}[0, 1], [2]]
// LAYER: gpu.launch_func @attn_kernels::@rms_norm blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args(%{{[a-zA-Z0-9_]+}} : memref<?x128xbf16>, [[GQ]] : memref<128xbf16>,
// LAYER: [[KN:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x8x128xbf16>
// LAYER: memref.collapse_shape [[K]] {{\[}}[0, 1], [2]]
// LAYER: gpu.launch_func @attn_kernels::@rms_norm_0 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args(%{{[a-zA-Z0-9_]+}} : memref<?x128xbf16>, [[GK]] : memref<128xbf16>,
// LAYER: [[QR:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x32x128xbf16>
// LAYER: gpu.launch_func @attn_kernels::@rope blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[QN]] : memref<?x32x128xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[QR]] : memref<?x32x128xbf16>,
// LAYER: [[KR:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x8x128xbf16>
// LAYER: gpu.launch_func @attn_kernels::@rope_0 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[KN]] : memref<?x8x128xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[KR]] : memref<?x8x128xbf16>,
// LAYER: gpu.launch_func @attn_kernels::@kv_cache_store blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[KR]] : memref<?x8x128xbf16>, [[V]] : memref<?x8x128xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>, [[BLK]] : memref<?x2x36x128x8x128xbf16>,
// LAYER: [[ATT:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x32x128xbf16>
// LAYER: [[OP:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x?x32x128xf32>
// LAYER-NEXT: [[LP:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x?x32xf32>
// One attention schedule or the other, picked on the host.
// LAYER: scf.if
// LAYER-DAG: gpu.launch_func @attn_kernels::@paged_flash_attention_prefill blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size %{{.+}} args([[QR]] : memref<?x32x128xbf16>, [[ATT]] : memref<?x32x128xbf16>, [[OFF]] : memref<?xi32>, [[BLK]] : memref<?x2x36x128x8x128xbf16>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>, %c0 : index, [[OP]] : memref<?x?x32x128xf32>, [[LP]] : memref<?x?x32xf32>,
// LAYER-DAG: gpu.launch_func @attn_kernels::@paged_flash_attention_decode blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[QR]] : memref<?x32x128xbf16>, [[ATT]] : memref<?x32x128xbf16>, [[OFF]] : memref<?xi32>, [[BLK]] : memref<?x2x36x128x8x128xbf16>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>, %c0 : index, [[OP]] : memref<?x?x32x128xf32>, [[LP]] : memref<?x?x32xf32>,
// LAYER: gpu.launch_func @attn_kernels::@attention_combine blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[OP]] : memref<?x?x32x128xf32>, [[LP]] : memref<?x?x32xf32>, [[ATT]] : memref<?x32x128xbf16>,
// LAYER-NEXT: gpu.dealloc [[OP]]
// LAYER-NEXT: gpu.dealloc [[LP]]
// LAYER-NEXT: [[ATTF:%[a-zA-Z0-9_]+]] = memref.collapse_shape [[ATT]] {{\[}}[0], [1, 2]] : memref<?x32x128xbf16> into memref<?x4096xbf16>
// LAYER-NOT: gpu.alloc
// LAYER: scf.if
// LAYER-DAG: gpu.launch_func @attn_kernels::@gemv_0 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[ATTF]] : memref<?x4096xbf16>, [[WO]] : memref<4096x4096xbf16>, [[OUT]] : memref<?x4096xbf16>{{.*}})
// LAYER-DAG: gpu.launch_func @attn_kernels::@gemm_wgmma_0 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size %{{.+}} args([[ATTF]] : memref<?x4096xbf16>, [[WO]] : memref<4096x4096xbf16>, [[OUT]] : memref<?x4096xbf16>{{.*}})
// LAYER-DAG: gpu.dealloc [[Q]] : memref<?x32x128xbf16>
// LAYER-DAG: gpu.dealloc [[K]] : memref<?x8x128xbf16>
// LAYER-DAG: gpu.dealloc [[V]] : memref<?x8x128xbf16>
// LAYER-DAG: gpu.dealloc [[QN]] : memref<?x32x128xbf16>
// LAYER-DAG: gpu.dealloc [[KN]] : memref<?x8x128xbf16>
// LAYER-DAG: gpu.dealloc [[QR]] : memref<?x32x128xbf16>
// LAYER-DAG: gpu.dealloc [[KR]] : memref<?x8x128xbf16>
// LAYER-DAG: gpu.dealloc [[ATT]] : memref<?x32x128xbf16>
// LAYER-NOT: gpu.
// LAYER: return
// LAYER-NEXT: }
// LAYER-NEXT: gpu.module @attn_kernels {
// Inverse frequencies of theta = 1e6 over head dim 128 for both ropes.
// LAYER-NEXT: memref.global "private" constant @attn_inv_freq : memref<64xf64>
// LAYER-NOT: memref.global
// LAYER: gpu.func @gemv(
// LAYER: gpu.func @gemm_wgmma(
// LAYER: gpu.func @paged_flash_attention_prefill(
// LAYER-NOT: workgroup(
// LAYER-SAME: kernel
// LAYER: gpu.func @paged_flash_attention_decode(
// LAYER-SAME: workgroup(
// LAYER: gpu.func @gemv_0(
// LAYER: gpu.func @gemm_wgmma_0(

// FUSED-LABEL: func.func @qwen3_8b_layer(
// FUSED-SAME: [[X:%[a-zA-Z0-9_]+]]: memref<?x4096xbf16>, [[OFF:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[BLK:%[a-zA-Z0-9_]+]]: memref<?x2x36x128x8x128xbf16>, [[LEN:%[a-zA-Z0-9_]+]]: memref<?xi32>, [[LUT:%[a-zA-Z0-9_]+]]: memref<?x?xi32>,
// FUSED-SAME: [[WQ:%[a-zA-Z0-9_]+]]: memref<4096x4096xbf16>, [[WK:%[a-zA-Z0-9_]+]]: memref<1024x4096xbf16>, [[WV:%[a-zA-Z0-9_]+]]: memref<1024x4096xbf16>,
// FUSED-SAME: [[GQ:%[a-zA-Z0-9_]+]]: memref<128xbf16>, [[GK:%[a-zA-Z0-9_]+]]: memref<128xbf16>, [[WO:%[a-zA-Z0-9_]+]]: memref<4096x4096xbf16>,
// FUSED: [[Q:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x32x128xbf16>
// FUSED: [[K:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x8x128xbf16>
// FUSED: [[V:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x8x128xbf16>
// FUSED: scf.if
// FUSED-DAG: gpu.launch_func @attn_kernels::@gemv blocks in
// FUSED-DAG: gpu.launch_func @attn_kernels::@gemm_wgmma blocks in
// FUSED-NOT: gpu.launch_func
// FUSED-NOT: gpu.alloc{{.*}}x8x128xbf16>
// FUSED: [[QR:%[a-zA-Z0-9_]+]] = gpu.alloc (%{{.+}}) : memref<?x32x128xbf16>
// FUSED-NOT: gpu.alloc{{.*}}x8x128xbf16>
// FUSED: gpu.launch_func @attn_kernels::@rope_store blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[Q]] : memref<?x32x128xbf16>, [[K]] : memref<?x8x128xbf16>, [[V]] : memref<?x8x128xbf16>, [[OFF]] : memref<?xi32>, [[LEN]] : memref<?xi32>, [[LUT]] : memref<?x?xi32>, [[BLK]] : memref<?x2x36x128x8x128xbf16>, %c0 : index, [[QR]] : memref<?x32x128xbf16>, [[GQ]] : memref<128xbf16>, [[GK]] : memref<128xbf16>,
// FUSED-NOT: gpu.alloc{{.*}}x8x128xbf16>
// One attention schedule or the other, picked on the host.
// FUSED: scf.if
// FUSED-DAG: gpu.launch_func @attn_kernels::@paged_flash_attention_prefill blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size %{{.+}} args([[QR]] : memref<?x32x128xbf16>,
// FUSED-DAG: gpu.launch_func @attn_kernels::@paged_flash_attention_decode blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args([[QR]] : memref<?x32x128xbf16>,
// FUSED: gpu.launch_func @attn_kernels::@attention_combine
// FUSED: scf.if
// FUSED-DAG: gpu.launch_func @attn_kernels::@gemv_0 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) args(%{{[a-zA-Z0-9_]+}} : memref<?x4096xbf16>, [[WO]] : memref<4096x4096xbf16>,
// FUSED-DAG: gpu.launch_func @attn_kernels::@gemm_wgmma_0 blocks in ({{[^)]*}}) threads in ({{[^)]*}}) dynamic_shared_memory_size %{{.+}} args(%{{[a-zA-Z0-9_]+}} : memref<?x4096xbf16>, [[WO]] : memref<4096x4096xbf16>,
// FUSED-NOT: gpu.launch_func
// FUSED: return
