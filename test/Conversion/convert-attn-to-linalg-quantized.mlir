// Quantised weights are decoded in registers inside both projection kernels,
// from the parts of their attn.quantized_weight; no decoded copy of W exists.
// RUN: attn-opt %s --convert-attn-to-linalg -split-input-file -mlir-print-local-scope | FileCheck %s

// GPTQ with desc_act: the activations are permuted once (xp[t, r] =
// x[t, perm[r]]). GPTQ has its own kernel at every row count (GPTQLanes.cpp),
// with vectors along N: xp is scaled once by 2^(-4 (k % 4)); then per group,
// per packed row: a vector of words and its high half (>> 16); nibble i of a
// half masked in place (15 << 4i), or'ed with the bits of 2^23 (1258291200),
// minus 2^23 + 8 * 16^i: (q - 8) 16^i exactly, times the scaled x. The
// group's f16 scales multiply its sums.
// CHECK-LABEL: func.func @gptq_desc_act
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x128xbf16>, %[[QW:[^:]*]]: tensor<16x64xi32>, %[[S:[^:]*]]: tensor<2x64xf16>, %[[P:[^:]*]]: tensor<128xi32>)
// CHECK: %[[XP:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[P]] : tensor<128xi32>) outs(%{{.*}} : tensor<?x128xf32>)
// CHECK: %[[COL:[a-z0-9_#]+]] = arith.index_cast %{{.*}} : i32 to index
// CHECK: tensor.extract %[[X]][%{{.*}}, %[[COL]]] : tensor<?x128xbf16>
// CHECK-NOT: scf.if
// CHECK: arith.constant dense<[1.000000e+00, 6.250000e-02, 3.906250e-03, 2.44140625E-4, 1.000000e+00, 6.250000e-02, 3.906250e-03, 2.44140625E-4]> : tensor<8xf32>
// CHECK: %[[XSPLIT:[a-z0-9_#]+]] = tensor.expand_shape %[[XP]] {{\[}}[0], [1, 2]] {{.*}} : tensor<?x128xf32> into tensor<?x16x8xf32>
// CHECK: %[[XSCALED:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[XSPLIT]], %{{.*}} : tensor<?x16x8xf32>, tensor<8xf32>)
// CHECK: arith.mulf
// CHECK: %[[XN:[a-z0-9_#]+]] = tensor.collapse_shape %[[XSCALED]]
// CHECK: %[[EXP:[a-z0-9_#]+]] = vector.broadcast %c1258291200_i32 : i32 to vector<8xi32>
// CHECK: arith.constant 15 : i32
// CHECK: arith.constant 0x4B000008 : f32
// CHECK: arith.constant 240 : i32
// CHECK: arith.constant 0x4B000080 : f32
// CHECK: arith.constant 3840 : i32
// CHECK: arith.constant 0x4B000800 : f32
// CHECK: arith.constant 61440 : i32
// CHECK: arith.constant 0x4B008000 : f32
// One row: 1 row x 4 vectors of 8 columns.
// CHECK: scf.if
// CHECK: scf.forall
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-NEXT: arith.constant 0 : i32
// CHECK-NEXT: %[[WORDS:[a-z0-9_#]+]] = vector.transfer_read %[[QW]][%{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<16x64xi32>, vector<8xi32>
// CHECK-NEXT: %[[HIGH:[a-z0-9_#]+]] = arith.shrui %[[WORDS]], %{{.*}} : vector<8xi32>
// CHECK: %[[XK:[a-z0-9_#]+]] = tensor.extract %[[XN]][%{{.*}}, %{{.*}}] : tensor<?x128xf32>
// CHECK-NEXT: %[[XB:[a-z0-9_#]+]] = vector.broadcast %[[XK]] : f32 to vector<8xf32>
// CHECK-NEXT: %[[MASKED:[a-z0-9_#]+]] = arith.andi %[[WORDS]], %{{.*}} : vector<8xi32>
// CHECK-NEXT: %[[BIASED:[a-z0-9_#]+]] = arith.ori %[[MASKED]], %[[EXP]] : vector<8xi32>
// CHECK-NEXT: %[[F:[a-z0-9_#]+]] = arith.bitcast %[[BIASED]] : vector<8xi32> to vector<8xf32>
// CHECK-NEXT: %[[Q:[a-z0-9_#]+]] = arith.subf %[[F]], %{{.*}} : vector<8xf32>
// CHECK-NEXT: vector.fma %[[XB]], %[[Q]], %{{.*}} : vector<8xf32>
// CHECK: arith.andi %[[HIGH]], %{{.*}} : vector<8xi32>
// CHECK: scf.yield
// CHECK: %[[SV:[a-z0-9_#]+]] = vector.transfer_read %[[S]][%{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<2x64xf16>, vector<8xf16>
// CHECK-NEXT: %[[SV32:[a-z0-9_#]+]] = arith.extf %[[SV]] : vector<8xf16> to vector<8xf32>
// CHECK: %[[Y:[a-z0-9_#]+]] = vector.transfer_read
// CHECK-NEXT: vector.fma %[[SV32]], %{{.*}}, %[[Y]] : vector<8xf32>
// More rows: blocks of 4 rows x 2 vectors (8 accumulators with AVX2's lanes).
// CHECK: } else {
// CHECK: scf.forall
// CHECK: scf.for {{.*}} step %c4
// CHECK: scf.for {{.*}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.transfer_read %[[QW]]
// No decoded copy of W, no f32 panel of the packed GEMM.
// CHECK-NOT: tensor<64x128xf32>
// CHECK-NOT: tensor<128x64xf32>
// CHECK: return
func.func @gptq_desc_act(%x: tensor<?x128xbf16>, %qw: tensor<16x64xi32>, %s: tensor<2x64xf16>, %p: tensor<128xi32>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%qw, %s, %p) : (tensor<16x64xi32>, tensor<2x64xf16>, tensor<128xi32>) -> !attn.quantized_weight<64x128, #attn.gptq<group_size = 64, desc_act = true>>
  %y = attn.linear %x, %w : tensor<?x128xbf16>, !attn.quantized_weight<64x128, #attn.gptq<group_size = 64, desc_act = true>> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// GPTQ words and scales in column blocks ([N/32, K/8, 32], [N/32, K/g, 32]):
// the vector of 8 words of packed row r from column n is read at
// [n / 32, r, n % 32], its scales at [n / 32, group, n % 32].
// CHECK-LABEL: func.func @gptq_column_blocks
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xbf16>, %[[QW:[^:]*]]: tensor<4x32x32xi32>, %[[S:[^:]*]]: tensor<4x2x32xbf16>)
// CHECK: scf.for %[[GROUP:[a-z0-9_#]+]] = %c0{{.*}} to %c2{{.*}} step %c1{{.*}} iter_args
// CHECK: scf.for %[[ROW:[a-z0-9_#]+]] = {{.*}} -> (vector<8xf32>
// CHECK: %[[BLOCK:[a-z0-9_#]+]] = arith.divui %[[COL:[a-z0-9_#]+]], %c32{{.*}} : index
// CHECK-NEXT: %c32{{.*}} = arith.constant 32 : index
// CHECK-NEXT: %[[INNER:[a-z0-9_#]+]] = arith.remui %[[COL]], %c32{{.*}} : index
// CHECK-NEXT: arith.constant 0 : i32
// CHECK-NEXT: vector.transfer_read %[[QW]][%[[BLOCK]], %[[ROW]], %[[INNER]]], %{{.*}} {in_bounds = [true]} : tensor<4x32x32xi32>, vector<8xi32>
// CHECK: scf.yield
// CHECK: %[[SBLOCK:[a-z0-9_#]+]] = arith.divui %[[COL]], %c32{{.*}} : index
// CHECK-NEXT: %c32{{.*}} = arith.constant 32 : index
// CHECK-NEXT: %[[SINNER:[a-z0-9_#]+]] = arith.remui %[[COL]], %c32{{.*}} : index
// CHECK-NEXT: arith.constant 0.0{{.*}} : bf16
// CHECK-NEXT: vector.transfer_read %[[S]][%[[SBLOCK]], %[[GROUP]], %[[SINNER]]], %{{.*}} {in_bounds = [true]} : tensor<4x2x32xbf16>, vector<8xbf16>
func.func @gptq_column_blocks(%x: tensor<?x256xbf16>, %qw: tensor<4x32x32xi32>, %s: tensor<4x2x32xbf16>) -> tensor<?x128xbf16> {
  %w = attn.quantized_weight(%qw, %s) : (tensor<4x32x32xi32>, tensor<4x2x32xbf16>) -> !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, layout = column_blocks>>
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !attn.quantized_weight<128x256, #attn.gptq<group_size = 128, layout = column_blocks>> -> tensor<?x128xbf16>
  return %y : tensor<?x128xbf16>
}

// -----

// float8, dynamic input scale: s[t] = max |x[t]| / 448, x rounded to E4M3
// values (ties to even through power-of-two scalings of the f32 bits); W's
// bytes widened by their bits (sign-extended, shifted by 20, masked by
// 0x87F00000 = -2014314496; exponent bias 120 << 23 = 1006632960, subnormals
// 121 << 23 = 1015021568 minus 2^-6) times the row scale; s[t] multiplies each output
// row in the epilogue.
// CHECK-LABEL: func.func @float8_row_dynamic
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x128xf32>, %[[W8:[^:]*]]: tensor<64x128xf8E4M3FN>, %[[SW:[^:]*]]: tensor<64xf32>)
// CHECK: %[[AMAX:[a-z0-9_#]+]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[X]] : tensor<?x128xf32>)
// CHECK: math.absf
// CHECK: arith.maximumf
// CHECK: %[[SX:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[AMAX]] : tensor<?xf32>)
// CHECK: arith.divf %{{.*}}, %{{.*}} : f32
// CHECK: %[[X8:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[X]], %[[SX]] : tensor<?x128xf32>, tensor<?xf32>)
// CHECK: arith.divf
// CHECK: arith.maxui %{{.*}}, %c121_i32 : i32
// CHECK: math.roundeven
// CHECK: scf.if
// CHECK: %[[BYTES:[a-z0-9_#]+]] = vector.transfer_read %[[W8]][%{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<64x128xf8E4M3FN>, vector<8xf8E4M3FN>
// CHECK-NEXT: %[[I8:[a-z0-9_#]+]] = arith.bitcast %[[BYTES]] : vector<8xf8E4M3FN> to vector<8xi8>
// CHECK-NEXT: %[[V:[a-z0-9_#]+]] = arith.extsi %[[I8]] : vector<8xi8> to vector<8xi32>
// CHECK: %[[SHIFTED:[a-z0-9_#]+]] = arith.shli %[[V]], %{{.*}} : vector<8xi32>
// CHECK: %c-2014314496_i32 = arith.constant -2014314496 : i32
// CHECK: %[[BITS:[a-z0-9_#]+]] = arith.andi %[[SHIFTED]], %{{.*}} : vector<8xi32>
// CHECK: %c120_i32 = arith.constant 120 : i32
// CHECK: %[[EXP:[a-z0-9_#]+]] = arith.andi %[[V]], %{{.*}} : vector<8xi32>
// CHECK: %[[SUB:[a-z0-9_#]+]] = arith.cmpi eq, %[[EXP]], %{{.*}} : vector<8xi32>
// CHECK: %c1015021568_i32 = arith.constant 1015021568 : i32
// CHECK: %c1006632960_i32 = arith.constant 1006632960 : i32
// CHECK: %[[BIAS:[a-z0-9_#]+]] = arith.select %[[SUB]], %{{.*}}, %{{.*}} : vector<8xi1>, vector<8xi32>
// CHECK-NEXT: %[[BIASED:[a-z0-9_#]+]] = arith.addi %[[BITS]], %[[BIAS]] : vector<8xi32>
// CHECK-NEXT: %[[BIASEDF:[a-z0-9_#]+]] = arith.bitcast %[[BIASED]] : vector<8xi32> to vector<8xf32>
// CHECK: %[[OFFSET:[a-z0-9_#]+]] = arith.bitcast %{{.*}} : vector<8xi32> to vector<8xf32>
// CHECK-NEXT: %[[DIFF:[a-z0-9_#]+]] = arith.subf %[[BIASEDF]], %[[OFFSET]] : vector<8xf32>
// CHECK: %c127_i32 = arith.constant 127 : i32
// CHECK: %[[DECODED:[a-z0-9_#]+]] = arith.select %{{.*}}, %{{.*}}, %[[DIFF]] : vector<8xi1>, vector<8xf32>
// CHECK: %[[ROWSCALE:[a-z0-9_#]+]] = tensor.extract %[[SW]][%{{.*}}] : tensor<64xf32>
// CHECK: %[[ROWSCALES:[a-z0-9_#]+]] = vector.broadcast %[[ROWSCALE]] : f32 to vector<8xf32>
// CHECK-NEXT: arith.mulf %[[DECODED]], %[[ROWSCALES]] : vector<8xf32>
// CHECK: } else {
// CHECK: vector.transfer_read %[[X8]]
// CHECK: vector.fma
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[SX]] : tensor<?x64xf32>, tensor<?xf32>)
// CHECK-NEXT: ^bb0(%[[ACC:[a-z0-9_]+]]: f32, %[[ROW:[a-z0-9_]+]]: f32, %{{.*}}: f32):
// CHECK-NEXT: arith.mulf %[[ACC]], %[[ROW]] : f32
func.func @float8_row_dynamic(%x: tensor<?x128xf32>, %w8: tensor<64x128xf8E4M3FN>, %s: tensor<64xf32>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%w8, %s) : (tensor<64x128xf8E4M3FN>, tensor<64xf32>) -> !attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = dynamic>>
  %y = attn.linear %x, %w : tensor<?x128xf32>, !attn.quantized_weight<64x128, #attn.float8<weight_scale = row, input_scale = dynamic>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// float8, static input scale and 128x128 block scales: the one input scale
// fills the per-row scales; a block's scale is read at (n / 128, k / 128).
// CHECK-LABEL: func.func @float8_block_static
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xbf16>, %[[W8:[^:]*]]: tensor<64x256xf8E4M3FN>, %[[SW:[^:]*]]: tensor<1x2xf32>, %[[SI:[^:]*]]: tensor<1xf32>)
// CHECK: %[[S:[a-z0-9_#]+]] = tensor.extract %[[SI]][%c0{{[_0-9]*}}] : tensor<1xf32>
// CHECK: linalg.fill ins(%[[S]] : f32)
// CHECK: %[[N:[a-z0-9_#]+]] = arith.divui %{{.*}}, %c128{{[_0-9]*}} : index
// CHECK: %[[K:[a-z0-9_#]+]] = arith.divui %{{.*}}, %c128{{[_0-9]*}} : index
// CHECK-NEXT: tensor.extract %[[SW]][%[[N]], %[[K]]] : tensor<1x2xf32>
// CHECK: arith.truncf %{{.*}} : f32 to bf16
func.func @float8_block_static(%x: tensor<?x256xbf16>, %w8: tensor<64x256xf8E4M3FN>, %s: tensor<1x2xf32>, %si: tensor<1xf32>) -> tensor<?x64xbf16> {
  %w = attn.quantized_weight(%w8, %s, %si) : (tensor<64x256xf8E4M3FN>, tensor<1x2xf32>, tensor<1xf32>) -> !attn.quantized_weight<64x256, #attn.float8<weight_scale = block, input_scale = static>>
  %y = attn.linear %x, %w : tensor<?x256xbf16>, !attn.quantized_weight<64x256, #attn.float8<weight_scale = block, input_scale = static>> -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Three separate GPTQ weights of a fused qkv_projection: one projection each
// (GPTQ's kernel, its bits of 2^23), all decoded in registers.
// CHECK-LABEL: func.func @qkv_gptq
// CHECK-COUNT-3: arith.constant 1258291200 : i32
// CHECK-NOT: attn.
func.func @qkv_gptq(%x: tensor<?x128xbf16>, %qq: tensor<16x128xi32>, %sq: tensor<1x128xf16>, %qkv: tensor<16x64xi32>, %skv: tensor<1x64xf16>)
    -> (tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>) {
  %wq = attn.quantized_weight(%qq, %sq) : (tensor<16x128xi32>, tensor<1x128xf16>) -> !attn.quantized_weight<128x128, #attn.gptq<group_size = 128>>
  %wk = attn.quantized_weight(%qkv, %skv) : (tensor<16x64xi32>, tensor<1x64xf16>) -> !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wk)
      : tensor<?x128xbf16>, (!attn.quantized_weight<128x128, #attn.gptq<group_size = 128>>, !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>, !attn.quantized_weight<64x128, #attn.gptq<group_size = 128>>)
      -> tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>
  return %q, %k, %v : tensor<?x2x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>
}

// -----

// GGUF Q8_0: a piece of 8 k is 8 signed bytes at 2 + k % 32 of block k / 32
// (34 bytes), times the block's f16 d read from its first two bytes.
// CHECK-LABEL: func.func @gguf_q8_0
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xf32>, %[[B:[^:]*]]: tensor<64x68xi8>)
// CHECK: scf.if
// CHECK: scf.forall
// CHECK: %[[BLOCK:[a-z0-9_#]+]] = arith.divui %[[K:[a-z0-9_#]+]], %c32 : index
// CHECK-NEXT: %c34 = arith.constant 34 : index
// CHECK-NEXT: %[[BASE:[a-z0-9_#]+]] = arith.muli %[[BLOCK]], %c34 : index
// CHECK: %[[QS:[a-z0-9_#]+]] = vector.transfer_read %[[B]][%[[N:[a-z0-9_#]+]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<64x68xi8>, vector<8xi8>
// CHECK-NEXT: %[[Q:[a-z0-9_#]+]] = arith.sitofp %[[QS]] : vector<8xi8> to vector<8xf32>
// CHECK: %[[DB:[a-z0-9_#]+]] = vector.transfer_read %[[B]][%[[N]], %[[BASE]]], %{{.*}} {in_bounds = [true]} : tensor<64x68xi8>, vector<2xi8>
// CHECK-NEXT: %[[D16:[a-z0-9_#]+]] = vector.bitcast %[[DB]] : vector<2xi8> to vector<1xf16>
// CHECK-NEXT: %[[D:[a-z0-9_#]+]] = vector.extract %[[D16]][0] : f16 from vector<1xf16>
// CHECK-NEXT: %[[D32:[a-z0-9_#]+]] = arith.extf %[[D]] : f16 to f32
// CHECK-NEXT: %[[DS:[a-z0-9_#]+]] = vector.broadcast %[[D32]] : f32 to vector<8xf32>
// CHECK-NEXT: arith.mulf %[[Q]], %[[DS]] : vector<8xf32>
// Few rows: one row gets 1 x 4 accumulators, more rows 4 x 2; each steps
// along K by a whole block (32), its pieces at constant offsets.
// CHECK: } else {
// CHECK: %[[ONE:[a-z0-9_#]+]] = arith.cmpi eq, %{{.*}}, %c1 : index
// CHECK-NEXT: scf.if %[[ONE]]
// CHECK: scf.forall
// CHECK: scf.for {{.*}} step %c32 iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.transfer_read %[[B]]
// CHECK: arith.sitofp
// CHECK: vector.fma
// CHECK: } else {
// CHECK: scf.forall
// CHECK: scf.for {{.*}} step %c32 iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-NOT: tensor<64x64xf32>
// CHECK: return
func.func @gguf_q8_0(%x: tensor<?x64xf32>, %b: tensor<64x68xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x68xi8>) -> !attn.quantized_weight<64x64, #attn.gguf<q8_0>>
  %y = attn.linear %x, %w : tensor<?x64xf32>, !attn.quantized_weight<64x64, #attn.gguf<q8_0>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// GGUF Q4_K: the nibbles of sub-block j = (k % 256) / 32 (low for even j);
// its 6-bit scale and min from scales[j], scales[j + 4] and, for j >= 4, the
// top two bits of scales[j - 4] and scales[j]; y = (d sc) q - dmin m.
// CHECK-LABEL: func.func @gguf_q4_k
// CHECK-SAME: (%{{[^:]*}}: tensor<?x256xf32>, %[[B:[^:]*]]: tensor<64x144xi8>)
// CHECK: scf.forall
// CHECK: %[[BYTES:[a-z0-9_#]+]] = vector.transfer_read %[[B]]{{.*}} : tensor<64x144xi8>, vector<8xi8>
// CHECK-NEXT: %[[WIDE:[a-z0-9_#]+]] = arith.extui %[[BYTES]] : vector<8xi8> to vector<8xi32>
// CHECK-NEXT: %[[SHIFTED:[a-z0-9_#]+]] = arith.shrui %[[WIDE]], %{{.*}} : vector<8xi32>
// CHECK: %[[NIBBLES:[a-z0-9_#]+]] = arith.andi %[[SHIFTED]], %{{.*}} : vector<8xi32>
// CHECK: %[[FIRST:[a-z0-9_#]+]] = arith.cmpi slt, %{{.*}}, %c4{{.*}} : index
// CHECK: %[[SC:[a-z0-9_#]+]] = arith.select %[[FIRST]], %{{.*}}, %{{.*}} : i32
// CHECK: %[[M:[a-z0-9_#]+]] = arith.select %[[FIRST]], %{{.*}}, %{{.*}} : i32
// CHECK: %[[SCF:[a-z0-9_#]+]] = arith.uitofp %[[SC]] : i32 to f32
// CHECK-NEXT: %[[DSC:[a-z0-9_#]+]] = arith.mulf %{{.*}}, %[[SCF]] : f32
// CHECK: %[[MF:[a-z0-9_#]+]] = arith.uitofp %[[M]] : i32 to f32
// CHECK-NEXT: %[[DM:[a-z0-9_#]+]] = arith.mulf %{{.*}}, %[[MF]] : f32
// CHECK-NEXT: %[[Q:[a-z0-9_#]+]] = arith.uitofp %[[NIBBLES]] : vector<8xi32> to vector<8xf32>
// CHECK-NEXT: %[[DSCS:[a-z0-9_#]+]] = vector.broadcast %[[DSC]] : f32 to vector<8xf32>
// CHECK-NEXT: %[[PROD:[a-z0-9_#]+]] = arith.mulf %[[Q]], %[[DSCS]] : vector<8xf32>
// CHECK-NEXT: %[[DMS:[a-z0-9_#]+]] = vector.broadcast %[[DM]] : f32 to vector<8xf32>
// CHECK-NEXT: arith.subf %[[PROD]], %[[DMS]] : vector<8xf32>
// CHECK-NOT: tensor<64x256xf32>
// CHECK: return
func.func @gguf_q4_k(%x: tensor<?x256xf32>, %b: tensor<64x144xi8>) -> tensor<?x64xf32> {
  %w = attn.quantized_weight(%b) : (tensor<64x144xi8>) -> !attn.quantized_weight<64x256, #attn.gguf<q4_k>>
  %y = attn.linear %x, %w : tensor<?x256xf32>, !attn.quantized_weight<64x256, #attn.gguf<q4_k>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
