// The int8 kernel of GGUF K-quant projections with few rows (GGUFInt8.cpp):
// rows <= int8-max-rows quantise x to Q8_K and take integer dot products,
// vpdpwssd with AVX512-VNNI, vpmaddwd + add with AVX2; none keeps f32.
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

// CHECK-LABEL: func.func @q4_k
// Up to int8-max-rows rows (64 by default) the int8 kernel, else the f32 ones.
// VNNI: arith.cmpi sle, %{{.*}}, %c2
// AVX2: arith.cmpi sle, %{{.*}}, %c64
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
// One row: per super-block of one weight row, nibbles times quants, pairs
// weighted by the sub-block scale.
// CHECK: arith.cmpi eq, %{{.*}}, %c1
// CHECK: scf.if
// CHECK: scf.forall
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c1{{.*}} step %c1
// CHECK: arith.andi %{{.*}} : vector<32xi8>
// CHECK: arith.shrui %{{.*}} : vector<32xi8>
// CHECK: func.call @llvm.x86.avx2.pmadd.ub.sw(%{{.*}}, %{{.*}}) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// VNNI: func.call @llvm.x86.avx512.vpdpwssd.256(%{{.*}}) : (vector<8xi32>, vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2: func.call @llvm.x86.avx2.pmadd.wd(%{{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2: arith.addi %{{.*}} : vector<8xi32>
// The mins times the pairs of Q8_K sums (each min twice, vpmaddwd), then the
// f32 factors.
// CHECK: vector.shuffle %{{.*}} [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7] : vector<8xi16>
// CHECK: func.call @llvm.x86.avx2.pmadd.wd(%{{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// CHECK: arith.sitofp %{{.*}} : vector<8xi32> to vector<8xf32>
// CHECK: vector.fma
// CHECK: arith.negf
// CHECK: vector.fma
// CHECK: vector.reduction <add>
// CHECK: } else {
// More rows: blocks of 8 rows, the nibbles of each sub-block unpacked once
// and multiplied with the quants of all 8.
// CHECK: scf.forall
// CHECK: scf.for %{{.*}} step %c8
// CHECK: %[[NIBBLES:.*]] = arith.andi %{{.*}} : vector<32xi8>
// CHECK-COUNT-8: func.call @llvm.x86.avx2.pmadd.ub.sw(%[[NIBBLES]], %{{.*}})
// CHECK-NOT: func.call @llvm.x86.avx2.pmadd.ub.sw(%[[NIBBLES]]
// CHECK: arith.shrui %{{.*}} : vector<32xi8>
// CHECK-COUNT-8: vector.reduction <add>
// CHECK: } else {
// More rows than int8-max-rows: the weights decoded to f32.
// CHECK: arith.cmpi sge, %{{.*}}, %c16
// CHECK-NOT: func.call
// CHECK: vector.fma %{{.*}} : vector<8xf32>
// CHECK-LABEL: func.func private @llvm.x86.avx2.pmadd.ub.sw(vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// VNNI: func.func private @llvm.x86.avx512.vpdpwssd.256(vector<8xi32>, vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// CHECK: func.func private @llvm.x86.avx2.pmadd.wd(vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// NONE-LABEL: func.func @q4_k
// NONE-NOT: func.call
// NONE-NOT: math.roundeven
// LLVM-AVX2: call <16 x i16> @llvm.x86.avx2.pmadd.ub.sw
// LLVM-AVX2: call <8 x i32> @llvm.x86.avx2.pmadd.wd
// LLVM-AVX2-NOT: vpdpwssd
// LLVM-VNNI: call <8 x i32> @llvm.x86.avx512.vpdpwssd.256
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

// Q4_0 has no int8 kernel: its weights are decoded to f32 at every row count.
// CHECK-LABEL: func.func @q4_0
// CHECK-NOT: math.roundeven
// CHECK-NOT: func.call
// CHECK: return
func.func @q4_0(%x: tensor<?x64xf32>, %b: tensor<64x36xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x36xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q4_0>>
  %y = attn.linear %x, %w : tensor<?x64xf32>, !attn.quantized_weight<64x64, #attn.gguf<q4_0>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
