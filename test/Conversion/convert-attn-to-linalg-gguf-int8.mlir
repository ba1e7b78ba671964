// The int8 kernel of GGUF projections with few rows (GGUFInt8.cpp): rows <=
// int8-max-rows quantise x (Q8_K for Q4_K / Q6_K, Q8_0 for Q4_0 / Q8_0) and
// take integer dot products, vpdpwssd / vpdpbusd with AVX512-VNNI, vpmaddwd
// (+ add) with AVX2; none keeps f32.
// RUN: attn-opt %s --convert-attn-to-linalg="int8-dot=avx512-vnni int8-max-rows=2" -split-input-file | FileCheck %s --check-prefixes=CHECK,VNNI
// RUN: attn-opt %s --convert-attn-to-linalg="int8-dot=avx2" -split-input-file | FileCheck %s --check-prefixes=CHECK,AVX2
// RUN: attn-opt %s --convert-attn-to-linalg -split-input-file | FileCheck %s --check-prefix=NONE
// The options reach the pass through the pipeline and attn-compile.
// RUN: attn-compile --target=cpu --emit=llvm --mcpu=x86-64-v3 %s -o - | FileCheck %s --check-prefix=LLVM-AVX2
// RUN: attn-compile --target=cpu --emit=llvm --mcpu=znver4 %s -o - | FileCheck %s --check-prefix=LLVM-VNNI
// RUN: attn-compile --target=cpu --emit=llvm --mcpu=znver4 --int8-dot=none %s -o - | FileCheck %s --check-prefix=LLVM-NONE
// Bad values: an error, a non-zero exit.
// RUN: not attn-opt %s --convert-attn-to-linalg="int8-dot=sse" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not attn-opt %s --convert-attn-to-linalg="int8-max-rows=-1" 2>&1 | FileCheck %s --check-prefix=BAD-ROWS
// RUN: not attn-compile --target=cpu --mcpu=x86-64 --int8-dot=avx2 %s -o %t.so 2>&1 | FileCheck %s --check-prefix=BAD-TARGET

// BAD: int8-dot must be avx512-vnni, avx2 or none, not 'sse'
// BAD-ROWS: int8-max-rows >= 0
// BAD-TARGET: --int8-dot=avx2 is not a kernel the --mcpu target (x86-64) can run

// The reorder of the quants for the sub-block-lane kernel (VNNI).
// VNNI-DAG: #[[FROM:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d2, d4)>
// VNNI-DAG: #[[TO:map[0-9]*]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
// CHECK-LABEL: func.func @q4_k
// Up to int8-max-rows rows (64 by default) the int8 kernel, else the f32 ones.
// VNNI: arith.cmpi sle, %{{.*}}, %c2
// AVX2: arith.cmpi sle, %{{.*}}, %c64
// CHECK: scf.if
// One row (quantised in its branch, as the padded rows of the other).
// CHECK: arith.cmpi eq, %{{.*}}, %c1
// CHECK: scf.if
// Q8_K: max|x| per 256, 127 / max, 1 / (127 / max), q = roundeven(x * iscale) as i8.
// CHECK: tensor.expand_shape %arg0 {{\[\[}}0], [1, 2]] output_shape [%{{.*}}, 1, 256]
// CHECK: linalg.generic
// CHECK: math.absf
// CHECK: arith.maximumf
// CHECK: arith.constant 1.270000e+02 : f32
// CHECK: arith.divf
// CHECK: arith.constant 1.000000e+00 : f32
// CHECK: arith.divf
// CHECK: math.roundeven
// CHECK: arith.fptosi %{{.*}} : f32 to i8
// The sums of 16 quants (i16, as llama.cpp's bsums).
// CHECK: tensor.expand_shape %{{.*}} output_shape [%{{.*}}, 16, 16] : tensor<?x256xi8> into tensor<?x16x16xi8>
// CHECK: arith.extsi %{{.*}} : i8 to i16
// One row, vpmaddubsw (AVX2): per super-block of one weight row, nibbles
// times quants, pairs weighted by the sub-block scale.
// AVX2: scf.forall
// AVX2: scf.for %{{.*}} = %c0{{.*}} to %c1{{.*}} step %c1
// AVX2: arith.andi %{{.*}} : vector<32xi8>
// AVX2: arith.shrui %{{.*}} : vector<32xi8>
// AVX2: func.call @llvm.x86.avx2.pmadd.ub.sw(%{{.*}}, %{{.*}}) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// AVX2: func.call @llvm.x86.avx2.pmadd.wd(%{{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2: arith.addi %{{.*}} : vector<8xi32>
// The f32 factors: (d I - dmin M) d8 per row, then the mins times the pairs
// of Q8_K sums (each min twice, vpmaddwd).
// AVX2: vector.shuffle %{{.*}} [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7] : vector<8xi16>
// AVX2: %[[NEGDMIN:.*]] = arith.negf
// AVX2: %[[DMINS:.*]] = vector.broadcast %[[NEGDMIN]] : f32 to vector<8xf32>
// AVX2: %[[I:.*]] = arith.sitofp %{{.*}} : vector<8xi32> to vector<8xf32>
// AVX2: %[[DI:.*]] = arith.mulf %[[I]], %{{.*}} : vector<8xf32>
// AVX2: %[[MSUMS:.*]] = func.call @llvm.x86.avx2.pmadd.wd(%{{.*}}, %{{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2: %[[M:.*]] = arith.sitofp %[[MSUMS]] : vector<8xi32> to vector<8xf32>
// AVX2: %[[TERM:.*]] = vector.fma %[[M]], %[[DMINS]], %[[DI]] : vector<8xf32>
// AVX2: %[[D8:.*]] = tensor.extract
// AVX2: %[[D8S:.*]] = vector.broadcast %[[D8]] : f32 to vector<8xf32>
// AVX2: vector.fma %[[TERM]], %[[D8S]], %{{.*}} : vector<8xf32>
// One row with vpdpbusd (VNNI): its quants reordered for the sub-block-lane
// kernel as below (a one-row reorder is cheap; the transpose of the nibbles
// replaces two instructions per 32 products by one), four 512-bit vpdpbusd
// per super-block and no vpmaddubsw.
// VNNI: tensor.expand_shape %{{.*}} output_shape [%{{.*}}, 1, 8, 8, 4] : tensor<?x256xi8> into tensor<?x1x8x8x4xi8>
// VNNI: linalg.generic {indexing_maps = [#[[FROM]], #[[TO]]]
// VNNI: scf.forall
// VNNI: scf.for %{{.*}} = %c0{{.*}} to %c1{{.*}} step %c1
// VNNI-COUNT-4: func.call @llvm.x86.avx512.vpdpbusd.512(%{{.*}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// VNNI-NOT: pmadd.ub.sw
// VNNI: vector.fma
// CHECK: vector.reduction <add>
// CHECK: } else {
// More rows: x padded to a multiple of 8 rows by repeating its last row, so
// that a block of rows reads from its first row at constant offsets.
// CHECK: %[[ROWS:.*]] = tensor.dim %arg0
// CHECK: %[[LAST:.*]] = arith.subi %[[ROWS]], %c1
// CHECK: %[[BLOCKS:.*]] = arith.ceildivui %[[ROWS]], %c8
// CHECK: %[[PADDED:.*]] = arith.muli %[[BLOCKS]], %c8
// CHECK: tensor.empty(%[[PADDED]]) : tensor<?x256xf32>
// CHECK: %[[ROW:.*]] = linalg.index 0
// CHECK: %[[SOURCE:.*]] = arith.minsi %[[ROW]], %[[LAST]]
// CHECK: tensor.extract %arg0[%[[SOURCE]]
// CHECK: math.roundeven
// vpmaddubsw (AVX2): blocks of 8 rows, the nibbles of each sub-block unpacked once and
// multiplied with the quants of all 8.
// AVX2: scf.forall
// AVX2: scf.for %{{.*}} step %c8
// AVX2: %[[NIBBLES:.*]] = arith.andi %{{.*}} : vector<32xi8>
// AVX2-COUNT-8: func.call @llvm.x86.avx2.pmadd.ub.sw(%[[NIBBLES]], %{{.*}})
// AVX2-NOT: func.call @llvm.x86.avx2.pmadd.ub.sw(%[[NIBBLES]]
// AVX2: arith.shrui %{{.*}} : vector<32xi8>
// AVX2-COUNT-8: vector.reduction <add>
// With vpdpbusd: the quants of each super-block reordered (element 32 j + 4 t
// + e to 32 t + 4 j + e) and f32 sums of each sub-block's 32 quants; per
// weight row the eight sub-blocks' nibbles ([S0 | S2], [S1 | S3], ... from
// two 64-byte loads) transposed by two steps of two-source lane permutes, so
// that piece t holds in lane j four nibbles of sub-block j; one 512-bit
// vpdpbusd per two pieces and row, the halves added.
// VNNI: %[[SPLIT:.*]] = tensor.expand_shape %{{.*}} output_shape [%{{.*}}, 1, 8, 8, 4] : tensor<?x256xi8> into tensor<?x1x8x8x4xi8>
// VNNI: linalg.generic {indexing_maps = [#[[FROM]], #[[TO]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%[[SPLIT]]
// VNNI: tensor.collapse_shape %{{.*}} : tensor<?x1x8x8x4xi8> into tensor<?x256xi8>
// VNNI: arith.sitofp %{{.*}} : i8 to f32
// VNNI: scf.forall
// VNNI: scf.for %{{.*}} step %c8
// VNNI: %[[LOW:.*]] = arith.andi %{{.*}} : vector<64xi8>
// VNNI: %[[HIGH:.*]] = arith.shrui %{{.*}} : vector<64xi8>
// VNNI: %[[S02:.*]] = vector.bitcast %[[LOW]] : vector<64xi8> to vector<16xi32>
// VNNI: %[[S13:.*]] = vector.bitcast %[[HIGH]] : vector<64xi8> to vector<16xi32>
// VNNI: %[[E:.*]] = vector.shuffle %[[S02]], %[[S13]] [0, 16, 8, 24, 1, 17, 9, 25, 2, 18, 10, 26, 3, 19, 11, 27] : vector<16xi32>, vector<16xi32>
// VNNI: %[[F:.*]] = vector.shuffle {{.*}} [0, 16, 8, 24, 1, 17, 9, 25, 2, 18, 10, 26, 3, 19, 11, 27] : vector<16xi32>, vector<16xi32>
// VNNI: %[[P01:.*]] = vector.shuffle %[[E]], %[[F]] [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23] : vector<16xi32>, vector<16xi32>
// VNNI: %[[PIECES:.*]] = vector.bitcast %[[P01]] : vector<16xi32> to vector<64xi8>
// VNNI-COUNT-8: func.call @llvm.x86.avx512.vpdpbusd.512(%{{.*}}, %[[PIECES]], %{{.*}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// VNNI-NOT: pmadd.ub.sw
// VNNI: vector.extract_strided_slice %{{.*}} {offsets = [0], sizes = [8], strides = [1]} : vector<16xi32> to vector<8xi32>
// VNNI: vector.extract_strided_slice %{{.*}} {offsets = [8], sizes = [8], strides = [1]} : vector<16xi32> to vector<8xi32>
// VNNI: arith.sitofp %{{.*}} : vector<8xi32> to vector<8xf32>
// VNNI: vector.fma
// VNNI-COUNT-8: vector.reduction <add>
// CHECK: } else {
// More rows than int8-max-rows: the weights decoded to f32.
// CHECK: arith.cmpi sge, %{{.*}}, %c16
// CHECK-NOT: func.call
// CHECK: vector.fma %{{.*}} : vector<8xf32>
// AVX2-LABEL: func.func private @llvm.x86.avx2.pmadd.ub.sw(vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// AVX2: func.func private @llvm.x86.avx2.pmadd.wd(vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// VNNI-LABEL: func.func private @llvm.x86.avx512.vpdpbusd.512(vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// VNNI-NOT: pmadd.ub.sw
// NONE-LABEL: func.func @q4_k
// NONE-NOT: func.call
// NONE-NOT: math.roundeven
// LLVM-AVX2: call <16 x i16> @llvm.x86.avx2.pmadd.ub.sw
// LLVM-AVX2: call <8 x i32> @llvm.x86.avx2.pmadd.wd
// LLVM-AVX2-NOT: vpdpwssd
// LLVM-VNNI: call <16 x i32> @llvm.x86.avx512.vpdpbusd.512
// LLVM-VNNI: call <8 x i32> @llvm.x86.avx512.vpdpwssd.256
// LLVM-VNNI: call <8 x i32> @llvm.x86.avx512.vpdpbusd.256
// LLVM-AVX2: call <32 x i8> @llvm.x86.avx2.psign.b
// LLVM-NONE-NOT: @llvm.x86.avx2.pmadd
func.func @q4_k(%x: tensor<?x256xf32>, %b: tensor<64x144xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x144xi8>) -> !attn.quantized_weight<64x256, #attn.gguf<q4_k>>
  %y = attn.linear %x, %w : tensor<?x256xf32>, !attn.quantized_weight<64x256, #attn.gguf<q4_k>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Q6_K: six-bit quants from the low nibbles and two bits of qh, the scale
// pair of each 32 quants picked from the sixteen int8 scales; 32 times the
// Q8_K sums times the scales (vpmaddwd) subtracted.
// CHECK-LABEL: func.func @q6_k
// CHECK: scf.if
// CHECK: math.roundeven
// CHECK: scf.forall
// CHECK: arith.shli %{{.*}} : vector<32xi8>
// CHECK: arith.ori %{{.*}} : vector<32xi8>
// CHECK: vector.shuffle %{{.*}} [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1] : vector<16xi16>
// CHECK: func.call @llvm.x86.avx2.pmadd.ub.sw
// CHECK: vector.shuffle %{{.*}} [14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15] : vector<16xi16>
// CHECK: func.call @llvm.x86.avx2.pmadd.wd(%{{.*}}, %{{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// CHECK: arith.shli %{{.*}} : vector<8xi32>
// CHECK: arith.subi %{{.*}} : vector<8xi32>
// CHECK: vector.fma
// NONE-LABEL: func.func @q6_k
// NONE-NOT: func.call
func.func @q6_k(%x: tensor<?x256xf32>, %b: tensor<64x210xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x210xi8>) -> !attn.quantized_weight<64x256, #attn.gguf<q6_k>>
  %y = attn.linear %x, %w : tensor<?x256xf32>, !attn.quantized_weight<64x256, #attn.gguf<q6_k>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Q4_0: x quantised per 32 to Q8_0 (d rounded to f16), the lanes started at
// -8 times the sums of 4 quants; per block the nibbles (low: elements 0-15,
// high: 16-31) times the quants by vpdpbusd (on AVX2 vpmaddubsw, vpmaddwd by
// ones, add), times d_w d8 in f32. Two blocks per step (K 64), one row into
// two f32 accumulators. From 17 rows the packed f32 GEMM is faster.
// CHECK-LABEL: func.func @q4_0
// At most 16 rows (int8-max-rows 64), or int8-max-rows when lower.
// VNNI: arith.cmpi sle, %{{.*}}, %c2
// AVX2: arith.cmpi sle, %{{.*}}, %c16
// CHECK: scf.if
// CHECK: arith.cmpi eq, %{{.*}}, %c1
// CHECK: tensor.expand_shape %arg0 {{\[\[}}0], [1, 2]] output_shape [%{{.*}}, 2, 32]
// CHECK: math.absf
// CHECK: arith.maximumf
// CHECK: math.roundeven
// CHECK: arith.divf
// CHECK: arith.truncf %{{.*}} : f32 to f16
// CHECK: arith.extf %{{.*}} : f16 to f32
// CHECK: tensor.expand_shape %{{.*}} output_shape [%{{.*}}, 16, 4] : tensor<?x64xi8> into tensor<?x16x4xi8>
// CHECK: arith.extsi %{{.*}} : i8 to i32
// CHECK: arith.muli %{{.*}}, %c-8_i32 : i32
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c1{{.*}} step %c1{{.*}} iter_args(%[[A0:.*]] = %{{.*}}, %[[A1:.*]] = %{{.*}}) -> (vector<8xf32>, vector<8xf32>)
// CHECK: %[[QS:.*]] = vector.transfer_read %arg1{{.*}} vector<16xi8>
// CHECK: %[[LOW:.*]] = arith.andi %[[QS]], %{{.*}} : vector<16xi8>
// CHECK: %[[HIGH:.*]] = arith.shrui %[[QS]], %{{.*}} : vector<16xi8>
// CHECK: %[[NIBBLES:.*]] = vector.shuffle %[[LOW]], %[[HIGH]] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]
// CHECK: vector.bitcast %{{.*}} : vector<2xi8> to vector<1xf16>
// CHECK: %[[Q8:.*]] = vector.transfer_read %collapsed{{.*}} vector<32xi8>
// CHECK: %[[D8:.*]] = tensor.extract
// CHECK: %[[D8S:.*]] = vector.broadcast %[[D8]] : f32 to vector<8xf32>
// CHECK: %[[FACTOR:.*]] = arith.mulf %{{.*}}, %[[D8S]] : vector<8xf32>
// CHECK: %[[OFFSETS:.*]] = vector.transfer_read {{.*}} vector<8xi32>
// VNNI: %[[LANES:.*]] = func.call @llvm.x86.avx512.vpdpbusd.256(%[[OFFSETS]], %[[NIBBLES]], %[[Q8]])
// AVX2: %[[PAIRS:.*]] = func.call @llvm.x86.avx2.pmadd.ub.sw(%[[NIBBLES]], %[[Q8]])
// AVX2: %[[SUMS:.*]] = func.call @llvm.x86.avx2.pmadd.wd(%[[PAIRS]], %{{.*}})
// AVX2: %[[LANES:.*]] = arith.addi %[[SUMS]], %[[OFFSETS]] : vector<8xi32>
// CHECK: %[[F:.*]] = arith.sitofp %[[LANES]] : vector<8xi32> to vector<8xf32>
// CHECK: vector.fma %[[F]], %[[FACTOR]], %[[A0]] : vector<8xf32>
// The second block into the second accumulator.
// CHECK: vector.fma %{{.*}}, %{{.*}}, %[[A1]] : vector<8xf32>
// CHECK: arith.addf %{{.*}} : vector<8xf32>
// CHECK: vector.reduction <add>
// CHECK: } else {
// CHECK: scf.for %{{.*}} step %c8
// NONE-LABEL: func.func @q4_0
// NONE-NOT: func.call
// NONE-NOT: math.roundeven
func.func @q4_0(%x: tensor<?x64xf32>, %b: tensor<64x36xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x36xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q4_0>>
  %y = attn.linear %x, %w : tensor<?x64xf32>, !attn.quantized_weight<64x64, #attn.gguf<q4_0>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Q8_0 (K 96: three blocks, one per step, one accumulator): with vpdpbusd
// the signed weight bytes xor 0x80 (w + 128), the lanes started at -128 times
// the sums of 4 quants; AVX2 (vpmaddubsw pairs of up to 255 x 127 would
// saturate) multiplies |w| by the quants signed as w, no offset.
// CHECK-LABEL: func.func @q8_0
// CHECK: arith.cmpi eq, %{{.*}}, %c1
// VNNI: arith.muli %{{.*}}, %c-128_i32 : i32
// AVX2-NOT: arith.muli %{{.*}}, %c-128_i32 : i32
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c3 step %c1{{.*}} iter_args(%{{.*}} = %{{.*}}) -> (vector<8xf32>)
// CHECK: %[[W:.*]] = vector.transfer_read %arg1{{.*}} vector<32xi8>
// VNNI: %[[U:.*]] = arith.xori %[[W]], %{{.*}} : vector<32xi8>
// VNNI: func.call @llvm.x86.avx512.vpdpbusd.256(%{{.*}}, %[[U]], %{{.*}})
// AVX2: %[[ABS:.*]] = math.absi %[[W]] : vector<32xi8>
// AVX2: %[[SIGNED:.*]] = func.call @llvm.x86.avx2.psign.b(%{{.*}}, %[[W]])
// AVX2: func.call @llvm.x86.avx2.pmadd.ub.sw(%[[ABS]], %[[SIGNED]])
// AVX2-NOT: arith.addi %{{.*}} : vector<8xi32>
// CHECK: vector.fma
// NONE-LABEL: func.func @q8_0
// NONE-NOT: func.call
func.func @q8_0(%x: tensor<?x96xf32>, %b: tensor<64x102xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x102xi8>) -> !attn.quantized_weight<64x96, #attn.gguf<q8_0>>
  %y = attn.linear %x, %w : tensor<?x96xf32>, !attn.quantized_weight<64x96, #attn.gguf<q8_0>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
