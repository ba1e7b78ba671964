// Tiles pinned to 64 query rows and 64 explicit keys so the shapes below are stable.
// RUN: attn-opt %s --convert-attn-to-linalg="q-tile-rows=64 kv-tile=64 packed-min-rows=0" -split-input-file -mlir-print-local-scope | FileCheck %s
// Projections without the vector kernels (vector-lanes=0): linalg contractions.
// RUN: attn-opt %s --convert-attn-to-linalg="vector-lanes=0 q-tile-rows=64 kv-tile=64 packed-min-rows=0" -split-input-file -mlir-print-local-scope | FileCheck %s --check-prefix=GENERIC
// Negative checks over whole functions (an ABSENT-LABEL per function bounds
// them): no attn op is left anywhere, and what a path must not contain.
// RUN: attn-opt %s --convert-attn-to-linalg="q-tile-rows=64 kv-tile=64 packed-min-rows=0" -split-input-file | FileCheck %s --check-prefix=ABSENT

//===----------------------------------------------------------------------===//
// attn.linear
//===----------------------------------------------------------------------===//

// f32 without bias: the vector kernel over chunks of output columns is the
// result, with no epilogue. Rows of x and rows of w (x @ w^T) are read along
// K, accumulated with fma and summed horizontally.
// CHECK-LABEL: func.func @linear(
// CHECK-SAME: %[[X:[^:]*]]: tensor<?x64xf32>, %[[W:[^:]*]]: tensor<32x64xf32>)
// CHECK: %[[ALL:[a-z0-9_#]+]] = scf.forall (%[[CHUNK:[a-z0-9_#]+]]) in (1) shared_outs(%[[SHARED:[a-z0-9_#]+]] = %{{.*}}) -> (tensor<?x32xf32>)
// CHECK: %[[COL0:[a-z0-9_#]+]] = arith.muli %[[CHUNK]], %c32
// CHECK: %[[XV:[a-z0-9_#]+]] = vector.transfer_read %[[X]][%{{.*}}, %[[K:[a-z0-9_#]+]]], %{{.*}} {in_bounds = [true]} : tensor<?x64xf32>, vector<8xf32>
// CHECK: %[[WV:[a-z0-9_#]+]] = vector.transfer_read %[[W]][%{{.*}}, %[[K]]], %{{.*}} {in_bounds = [true]} : tensor<32x64xf32>, vector<8xf32>
// CHECK: vector.fma %[[XV]], %[[WV]], %{{.*}} : vector<8xf32>
// CHECK: vector.reduction <add>, %{{.*}} : vector<8xf32> into f32
// CHECK: scf.forall.in_parallel
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[SHARED]][0, %[[COL0]]] [%{{.*}}, 32] [1, 1] : tensor<?x32xf32> into tensor<?x32xf32>
// CHECK-NOT: linalg.generic
// CHECK: %[[R:[a-z0-9_#]+]] = tensor.cast %[[ALL]]
// CHECK: return %[[R]]

// GENERIC-LABEL: func.func @linear(
// GENERIC-SAME: %[[X:[^:]*]]: tensor<?x64xf32>, %[[W:[^:]*]]: tensor<32x64xf32>)
// GENERIC: %[[ZERO:[a-z0-9_#]+]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x32xf32>)
// GENERIC: %[[ACC:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]}
// GENERIC-SAME: ins(%[[X]], %[[W]] : tensor<?x64xf32>, tensor<32x64xf32>) outs(%[[ZERO]] : tensor<?x32xf32>)
// GENERIC-NEXT: ^bb0(%[[A:[a-z0-9_#]+]]: f32, %[[B:[a-z0-9_#]+]]: f32, %[[OUT:[a-z0-9_#]+]]: f32):
// GENERIC-NEXT: %[[P:[a-z0-9_#]+]] = arith.mulf %[[A]], %[[B]] : f32
// GENERIC-NEXT: %[[S:[a-z0-9_#]+]] = arith.addf %[[OUT]], %[[P]] : f32
// GENERIC-NEXT: linalg.yield %[[S]] : f32
// GENERIC-NOT: linalg.generic
// GENERIC: return
// ABSENT-LABEL: func.func @linear(
// ABSENT-NOT: {{ attn\.}}
func.func @linear(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  %0 = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

// bf16 with bias: operands widened to f32 for the f32 accumulation; the
// epilogue adds the bias in f32 and truncates to bf16.
// CHECK-LABEL: func.func @linear_bias
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xbf16>, %[[W:[^:]*]]: tensor<32x64xbf16>, %[[BIAS:[^:]*]]: tensor<32xbf16>)
// CHECK: %[[ACC:[a-z0-9_#]+]] = scf.forall {{.*}} -> (tensor<?x32xf32>)
// CHECK: %[[XV:[a-z0-9_#]+]] = vector.transfer_read %[[X]]{{.*}} : tensor<?x64xbf16>, vector<8xbf16>
// CHECK-NEXT: %[[XF:[a-z0-9_#]+]] = arith.extf %[[XV]] : vector<8xbf16> to vector<8xf32>
// CHECK: %[[WV:[a-z0-9_#]+]] = vector.transfer_read %[[W]]{{.*}} : tensor<32x64xbf16>, vector<8xbf16>
// CHECK-NEXT: %[[WF:[a-z0-9_#]+]] = arith.extf %[[WV]] : vector<8xbf16> to vector<8xf32>
// CHECK: vector.fma %[[XF]], %[[WF]], %{{.*}} : vector<8xf32>
// CHECK: %[[OUT:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME: ins(%[[ACC]], %[[BIAS]] : tensor<?x32xf32>, tensor<32xbf16>) outs(%{{.*}} : tensor<?x32xbf16>)
// CHECK-NEXT: ^bb0(%[[A:[a-z0-9_#]+]]: f32, %[[B:[a-z0-9_#]+]]: bf16, %{{.*}}: bf16):
// CHECK-NEXT: %[[BF:[a-z0-9_#]+]] = arith.extf %[[B]] : bf16 to f32
// CHECK-NEXT: %[[S:[a-z0-9_#]+]] = arith.addf %[[A]], %[[BF]] : f32
// CHECK-NEXT: %[[T:[a-z0-9_#]+]] = arith.truncf %[[S]] : f32 to bf16
// CHECK-NEXT: linalg.yield %[[T]] : bf16
// CHECK: return

// GENERIC-LABEL: func.func @linear_bias
// GENERIC: %[[ACC:[a-z0-9_#]+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} {{.*}} outs(%{{.*}} : tensor<?x32xf32>)
// GENERIC-NEXT: ^bb0(%[[A:[a-z0-9_#]+]]: bf16, %[[B:[a-z0-9_#]+]]: bf16, %[[OUT:[a-z0-9_#]+]]: f32):
// GENERIC-NEXT: %[[AF:[a-z0-9_#]+]] = arith.extf %[[A]] : bf16 to f32
// GENERIC-NEXT: %[[BF:[a-z0-9_#]+]] = arith.extf %[[B]] : bf16 to f32
// GENERIC-NEXT: %[[P:[a-z0-9_#]+]] = arith.mulf %[[AF]], %[[BF]] : f32
// GENERIC-NEXT: arith.addf %[[OUT]], %[[P]] : f32
// GENERIC: linalg.generic {{.*}} ins(%[[ACC]], %{{.*}} : tensor<?x32xf32>, tensor<32xbf16>) outs(%{{.*}} : tensor<?x32xbf16>)
// GENERIC: arith.truncf %{{.*}} : f32 to bf16
// ABSENT-LABEL: func.func @linear_bias
// ABSENT-NOT: {{ attn\.}}
func.func @linear_bias(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>, %b: tensor<32xbf16>) -> tensor<?x32xbf16> {
  %0 = attn.linear %x, %w bias %b : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<32xbf16> -> tensor<?x32xbf16>
  return %0 : tensor<?x32xbf16>
}

//===----------------------------------------------------------------------===//
// attn.qkv_projection
//===----------------------------------------------------------------------===//

// -----

// Stacked weight with bias and clip: one contraction of all 512 columns with
// every weight element clamped to [-3, 3] before the product (f32, after
// widening the bf16 weight), the bias epilogue with truncation to bf16, then
// q, k and v sliced at columns 0, 256 and 384 and split into heads.
// CHECK-LABEL: func.func @qkv_stacked
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xbf16>, %[[W:[^:]*]]: tensor<512x256xbf16>, %[[BIAS:[^:]*]]: tensor<512xbf16>)
// CHECK-DAG: %[[HI:[a-z0-9_#]+]] = vector.broadcast %[[C3:[a-z0-9_#]+]] : f32 to vector<8xf32>
// CHECK-DAG: %[[LO:[a-z0-9_#]+]] = vector.broadcast %[[CM3:[a-z0-9_#]+]] : f32 to vector<8xf32>
// CHECK-DAG: %[[C3]] = arith.constant 3.000000e+00 : f32
// CHECK-DAG: %[[CM3]] = arith.constant -3.000000e+00 : f32
// CHECK: %[[ACC:[a-z0-9_#]+]] = scf.forall (%{{.*}}) in (8) {{.*}} -> (tensor<?x512xf32>)
// CHECK: %[[WV:[a-z0-9_#]+]] = vector.transfer_read %[[W]]{{.*}} : tensor<512x256xbf16>, vector<8xbf16>
// CHECK-NEXT: %[[WF:[a-z0-9_#]+]] = arith.extf %[[WV]] : vector<8xbf16> to vector<8xf32>
// CHECK-NEXT: %[[WMAX:[a-z0-9_#]+]] = arith.maximumf %[[WF]], %[[LO]] : vector<8xf32>
// CHECK-NEXT: %[[WCLIP:[a-z0-9_#]+]] = arith.minimumf %[[WMAX]], %[[HI]] : vector<8xf32>
// CHECK: vector.fma %{{.*}}, %[[WCLIP]], %{{.*}} : vector<8xf32>
// CHECK: %[[ALL:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[ACC]], %[[BIAS]] : tensor<?x512xf32>, tensor<512xbf16>) outs(%{{.*}} : tensor<?x512xbf16>)
// CHECK: arith.addf
// CHECK-NEXT: arith.truncf %{{.*}} : f32 to bf16
// CHECK: %[[QS:[a-z0-9_#]+]] = tensor.extract_slice %[[ALL]][0, 0] [%[[T:[a-z0-9_#]+]], 256] [1, 1] : tensor<?x512xbf16> to tensor<?x256xbf16>
// CHECK-NEXT: %[[KS:[a-z0-9_#]+]] = tensor.extract_slice %[[ALL]][0, 256] [%[[T]], 128] [1, 1] : tensor<?x512xbf16> to tensor<?x128xbf16>
// CHECK-NEXT: %[[VS:[a-z0-9_#]+]] = tensor.extract_slice %[[ALL]][0, 384] [%[[T]], 128] [1, 1] : tensor<?x512xbf16> to tensor<?x128xbf16>
// CHECK-NEXT: %[[Q:[a-z0-9_#]+]] = tensor.expand_shape %[[QS]] {{\[}}[0], [1, 2]] output_shape [%[[T]], 4, 64] : tensor<?x256xbf16> into tensor<?x4x64xbf16>
// CHECK-NEXT: %[[K:[a-z0-9_#]+]] = tensor.expand_shape %[[KS]] {{\[}}[0], [1, 2]] output_shape [%[[T]], 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
// CHECK-NEXT: %[[V:[a-z0-9_#]+]] = tensor.expand_shape %[[VS]] {{\[}}[0], [1, 2]] output_shape [%[[T]], 2, 64] : tensor<?x128xbf16> into tensor<?x2x64xbf16>
// CHECK-NEXT: return %[[Q]], %[[K]], %[[V]]

// The clamp sits inside the contraction body, on the weight operand only.
// GENERIC-LABEL: func.func @qkv_stacked
// GENERIC-SAME: (%[[X:[^:]*]]: tensor<?x256xbf16>, %[[W:[^:]*]]: tensor<512x256xbf16>, %[[BIAS:[^:]*]]: tensor<512xbf16>)
// GENERIC-DAG: %[[HI:[a-z0-9_#]+]] = arith.constant 3.000000e+00 : f32
// GENERIC-DAG: %[[LO:[a-z0-9_#]+]] = arith.constant -3.000000e+00 : f32
// GENERIC: %[[ACC:[a-z0-9_#]+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[X]], %[[W]] : tensor<?x256xbf16>, tensor<512x256xbf16>) outs(%{{.*}} : tensor<?x512xf32>)
// GENERIC-NEXT: ^bb0(%[[A:[a-z0-9_#]+]]: bf16, %[[B:[a-z0-9_#]+]]: bf16, %[[OUT:[a-z0-9_#]+]]: f32):
// GENERIC-NEXT: %[[AF:[a-z0-9_#]+]] = arith.extf %[[A]] : bf16 to f32
// GENERIC-NEXT: %[[BF:[a-z0-9_#]+]] = arith.extf %[[B]] : bf16 to f32
// GENERIC-NEXT: %[[BMAX:[a-z0-9_#]+]] = arith.maximumf %[[BF]], %[[LO]] : f32
// GENERIC-NEXT: %[[BCLIP:[a-z0-9_#]+]] = arith.minimumf %[[BMAX]], %[[HI]] : f32
// GENERIC-NEXT: %[[P:[a-z0-9_#]+]] = arith.mulf %[[AF]], %[[BCLIP]] : f32
// GENERIC-NEXT: %[[S:[a-z0-9_#]+]] = arith.addf %[[OUT]], %[[P]] : f32
// GENERIC-NEXT: linalg.yield %[[S]] : f32
// GENERIC: linalg.generic {{.*}} ins(%[[ACC]], %[[BIAS]] : tensor<?x512xf32>, tensor<512xbf16>) outs(%{{.*}} : tensor<?x512xbf16>)
// GENERIC-NEXT: ^bb0(%[[A:[a-z0-9_#]+]]: f32, %[[B:[a-z0-9_#]+]]: bf16, %{{.*}}: bf16):
// GENERIC-NEXT: %[[BF:[a-z0-9_#]+]] = arith.extf %[[B]] : bf16 to f32
// GENERIC-NEXT: %[[S:[a-z0-9_#]+]] = arith.addf %[[A]], %[[BF]] : f32
// GENERIC-NEXT: %[[T:[a-z0-9_#]+]] = arith.truncf %[[S]] : f32 to bf16
// GENERIC-NEXT: linalg.yield %[[T]] : bf16
// ABSENT-LABEL: func.func @qkv_stacked
// ABSENT-NOT: {{ attn\.}}
func.func @qkv_stacked(%x: tensor<?x256xbf16>, %w: tensor<512x256xbf16>, %b: tensor<512xbf16>)
    -> (tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {
  %q, %k, %v = attn.qkv_projection %x weights(%w) bias(%b) clip 3.0
      : tensor<?x256xbf16>, (tensor<512x256xbf16>), (tensor<512xbf16>)
      -> tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %q, %k, %v : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
}

// -----

// Separate weights: one f32 contraction per weight, each split into heads;
// no clamp, no bias epilogue, no slicing.
// CHECK-LABEL: func.func @qkv_separate
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xf32>, %[[WQ:[^:]*]]: tensor<256x256xf32>, %[[WK:[^:]*]]: tensor<128x256xf32>, %[[WV:[^:]*]]: tensor<128x256xf32>)
// CHECK-NOT: arith.maximumf
// CHECK: %[[QA:[a-z0-9_#]+]] = scf.forall (%{{.*}}) in (4) {{.*}} -> (tensor<?x256xf32>)
// CHECK: vector.transfer_read %[[WQ]]
// CHECK: %[[KA:[a-z0-9_#]+]] = scf.forall (%{{.*}}) in (2) {{.*}} -> (tensor<?x128xf32>)
// CHECK: vector.transfer_read %[[WK]]
// CHECK: %[[VA:[a-z0-9_#]+]] = scf.forall (%{{.*}}) in (2) {{.*}} -> (tensor<?x128xf32>)
// CHECK: vector.transfer_read %[[WV]]
// CHECK-NOT: linalg.generic
// CHECK-NOT: tensor.extract_slice
// CHECK: %[[Q:[a-z0-9_#]+]] = tensor.expand_shape %[[QA]] {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 4, 64] : tensor<?x256xf32> into tensor<?x4x64xf32>
// CHECK-NEXT: %[[K:[a-z0-9_#]+]] = tensor.expand_shape %[[KA]] {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
// CHECK-NEXT: %[[V:[a-z0-9_#]+]] = tensor.expand_shape %[[VA]] {{\[}}[0], [1, 2]] output_shape [%{{.*}}, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
// CHECK-NEXT: return %[[Q]], %[[K]], %[[V]]

// GENERIC-LABEL: func.func @qkv_separate
// GENERIC-SAME: (%[[X:[^:]*]]: tensor<?x256xf32>, %[[WQ:[^:]*]]: tensor<256x256xf32>, %[[WK:[^:]*]]: tensor<128x256xf32>, %[[WV:[^:]*]]: tensor<128x256xf32>)
// GENERIC: %[[QA:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[X]], %[[WQ]] : {{.*}}) outs(%{{.*}} : tensor<?x256xf32>)
// GENERIC: %[[KA:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[X]], %[[WK]] : {{.*}}) outs(%{{.*}} : tensor<?x128xf32>)
// GENERIC: %[[VA:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%[[X]], %[[WV]] : {{.*}}) outs(%{{.*}} : tensor<?x128xf32>)
// GENERIC: tensor.expand_shape %[[QA]]
// GENERIC: tensor.expand_shape %[[KA]]
// GENERIC: tensor.expand_shape %[[VA]]
// ABSENT-LABEL: func.func @qkv_separate
// ABSENT-NOT: {{ attn\.}}
func.func @qkv_separate(%x: tensor<?x256xf32>, %wq: tensor<256x256xf32>, %wk: tensor<128x256xf32>, %wv: tensor<128x256xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>) {
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x256xf32>, (tensor<256x256xf32>, tensor<128x256xf32>, tensor<128x256xf32>)
      -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return %q, %k, %v : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
}

//===----------------------------------------------------------------------===//
// attn.rms_norm
//===----------------------------------------------------------------------===//

// -----

// The f32 sum of squares over the last dim, then x * rsqrt(sum / D + eps) *
// gamma per element, computed in f32 and truncated to bf16.
// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x4x64xbf16>, %[[G:[^:]*]]: tensor<64xbf16>)
// CHECK: %[[ZERO:[a-z0-9_#]+]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x4xf32>)
// CHECK: %[[SUM:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[X]] : tensor<?x4x64xbf16>) outs(%[[ZERO]] : tensor<?x4xf32>)
// CHECK-NEXT: ^bb0(%[[A:[a-z0-9_#]+]]: bf16, %[[OUT:[a-z0-9_#]+]]: f32):
// CHECK-NEXT: %[[AF:[a-z0-9_#]+]] = arith.extf %[[A]] : bf16 to f32
// CHECK-NEXT: %[[SQ:[a-z0-9_#]+]] = arith.mulf %[[AF]], %[[AF]] : f32
// CHECK-NEXT: %[[S:[a-z0-9_#]+]] = arith.addf %[[OUT]], %[[SQ]] : f32
// CHECK-NEXT: linalg.yield %[[S]] : f32
// CHECK: %[[C64:[a-z0-9_#]+]] = arith.constant 64 : index
// CHECK: %[[DI:[a-z0-9_#]+]] = arith.index_castui %[[C64]] : index to i32
// CHECK: %[[D:[a-z0-9_#]+]] = arith.uitofp %[[DI]] : i32 to f32
// CHECK: %[[EPS:[a-z0-9_#]+]] = arith.constant 9.99999974E-6 : f32
// CHECK: %[[Y:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>, affine_map<(d0, d1, d2) -> (d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[X]], %[[SUM]], %[[G]] : tensor<?x4x64xbf16>, tensor<?x4xf32>, tensor<64xbf16>) outs(%{{.*}} : tensor<?x4x64xbf16>)
// CHECK-NEXT: ^bb0(%[[XE:[a-z0-9_#]+]]: bf16, %[[SE:[a-z0-9_#]+]]: f32, %[[GE:[a-z0-9_#]+]]: bf16, %{{.*}}: bf16):
// CHECK-NEXT: %[[MEAN:[a-z0-9_#]+]] = arith.divf %[[SE]], %[[D]] : f32
// CHECK-NEXT: %[[ME:[a-z0-9_#]+]] = arith.addf %[[MEAN]], %[[EPS]] : f32
// CHECK-NEXT: %[[INV:[a-z0-9_#]+]] = math.rsqrt %[[ME]] : f32
// CHECK-NEXT: %[[XF:[a-z0-9_#]+]] = arith.extf %[[XE]] : bf16 to f32
// CHECK-NEXT: %[[XN:[a-z0-9_#]+]] = arith.mulf %[[XF]], %[[INV]] : f32
// CHECK-NEXT: %[[GF:[a-z0-9_#]+]] = arith.extf %[[GE]] : bf16 to f32
// CHECK-NEXT: %[[R:[a-z0-9_#]+]] = arith.mulf %[[XN]], %[[GF]] : f32
// CHECK-NEXT: %[[RT:[a-z0-9_#]+]] = arith.truncf %[[R]] : f32 to bf16
// CHECK-NEXT: linalg.yield %[[RT]] : bf16
// CHECK: return
// ABSENT-LABEL: func.func @rms_norm
// ABSENT-NOT: {{ attn\.}}
func.func @rms_norm(%x: tensor<?x4x64xbf16>, %g: tensor<64xbf16>) -> tensor<?x4x64xbf16> {
  %0 = attn.rms_norm %x, %g eps 1.0e-5 : tensor<?x4x64xbf16>, tensor<64xbf16>
  return %0 : tensor<?x4x64xbf16>
}

//===----------------------------------------------------------------------===//
// attn.rope and attn.rope_freqs
//===----------------------------------------------------------------------===//

// -----

// Table made by attn.rope_freqs: the table is never built; per row, the
// position is cache_lengths[b] + r - row_offsets[b], and cos/sin are computed
// in f64 from the inverse frequencies of the attribute. Rotate-half pairs:
// the partner of column d is d + 32 below the half, d - 32 above.
// CHECK-LABEL: func.func @rope_from_freqs
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x4x64xbf16>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>)
// CHECK: %[[POS0:[a-z0-9_#]+]] = linalg.fill ins(%{{.*}} : i32) outs(%{{.*}} : tensor<?xi32>)
// CHECK: %[[POS:[a-z0-9_#]+]] = scf.for %[[SEQ:[a-z0-9_#]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %[[POS0]]) -> (tensor<?xi32>)
// CHECK: tensor.extract %[[OFF]][%[[SEQ]]] : tensor<?xi32>
// CHECK: %[[CACHED:[a-z0-9_#]+]] = tensor.extract %[[LEN]][%[[SEQ]]] : tensor<?xi32>
// CHECK-NEXT: %[[CACHEDI:[a-z0-9_#]+]] = arith.index_cast %[[CACHED]] : i32 to index
// CHECK-NEXT: %[[BASE:[a-z0-9_#]+]] = arith.subi %[[CACHEDI]], %[[START:[a-z0-9_#]+]] : index
// CHECK-NEXT: scf.for %[[ROW:[a-z0-9_#]+]] = %[[START]] to %{{.*}} step %{{.*}} iter_args(%[[ACC:[a-z0-9_#]+]] = %{{.*}}) -> (tensor<?xi32>)
// CHECK-NEXT: %[[P:[a-z0-9_#]+]] = arith.addi %[[BASE]], %[[ROW]] : index
// CHECK-NEXT: %[[PI:[a-z0-9_#]+]] = arith.index_cast %[[P]] : index to i32
// CHECK-NEXT: tensor.insert %[[PI]] into %[[ACC]][%[[ROW]]] : tensor<?xi32>
// CHECK: %[[CS:[a-z0-9_#]+]]:2 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME: ins(%[[POS]] : tensor<?xi32>) outs(%{{.*}}, %{{.*}} : tensor<?x32xf32>, tensor<?x32xf32>)
// CHECK-NEXT: ^bb0(%[[PE:[a-z0-9_#]+]]: i32, %{{.*}}: f32, %{{.*}}: f32):
// CHECK-NEXT: %[[I:[a-z0-9_#]+]] = linalg.index 1 : index
// theta = 10000, D = 64: inv_freq[i] = 10000^(-i/32).
// CHECK-NEXT: %[[INV:[a-z0-9_#]+]] = arith.constant dense<[1.000000e+00, 0.7498942{{[0-9]*}}, 0.5623413{{[0-9]*}}, {{.*}}, 1.3335215{{[0-9]*}}E-4]> : tensor<32xf64>
// CHECK-NEXT: %[[F:[a-z0-9_#]+]] = tensor.extract %[[INV]][%[[I]]] : tensor<32xf64>
// CHECK-NEXT: %[[PF:[a-z0-9_#]+]] = arith.sitofp %[[PE]] : i32 to f64
// CHECK-NEXT: %[[ANGLE:[a-z0-9_#]+]] = arith.mulf %[[PF]], %[[F]] : f64
// CHECK: %[[COS:[a-z0-9_#]+]] = math.cos %[[ANGLE]] : f64
// CHECK: %[[SIN:[a-z0-9_#]+]] = math.sin %[[ANGLE]] : f64
// CHECK: arith.truncf %{{.*}} : f64 to f32
// CHECK: arith.truncf %{{.*}} : f64 to f32
// CHECK: %[[Y:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2 mod 32)>, affine_map<(d0, d1, d2) -> (d0, d2 mod 32)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[X]], %[[CS]]#0, %[[CS]]#1 : tensor<?x4x64xbf16>, tensor<?x32xf32>, tensor<?x32xf32>) outs(%{{.*}} : tensor<?x4x64xbf16>)
// CHECK-NEXT: ^bb0(%[[XE:[a-z0-9_#]+]]: bf16, %[[C:[a-z0-9_#]+]]: f32, %[[S:[a-z0-9_#]+]]: f32, %{{.*}}: bf16):
// CHECK-NEXT: %[[T:[a-z0-9_#]+]] = linalg.index 0 : index
// CHECK-NEXT: %[[H:[a-z0-9_#]+]] = linalg.index 1 : index
// CHECK-NEXT: %[[D:[a-z0-9_#]+]] = linalg.index 2 : index
// CHECK-NEXT: %[[HALF:[a-z0-9_#]+]] = arith.constant 32 : index
// CHECK-NEXT: %[[FIRST:[a-z0-9_#]+]] = arith.cmpi ult, %[[D]], %[[HALF]] : index
// CHECK-NEXT: %[[HALF1:[a-z0-9_#]+]] = arith.constant 32 : index
// CHECK-NEXT: %[[UP:[a-z0-9_#]+]] = arith.addi %[[D]], %[[HALF1]] : index
// CHECK-NEXT: %[[HALF2:[a-z0-9_#]+]] = arith.constant 32 : index
// CHECK-NEXT: %[[DOWN:[a-z0-9_#]+]] = arith.subi %[[D]], %[[HALF2]] : index
// CHECK-NEXT: %[[PARTNER:[a-z0-9_#]+]] = arith.select %[[FIRST]], %[[UP]], %[[DOWN]] : index
// CHECK-NEXT: %[[XP:[a-z0-9_#]+]] = tensor.extract %[[X]][%[[T]], %[[H]], %[[PARTNER]]] : tensor<?x4x64xbf16>
// CHECK-NEXT: %[[XF:[a-z0-9_#]+]] = arith.extf %[[XE]] : bf16 to f32
// CHECK-NEXT: %[[XPF:[a-z0-9_#]+]] = arith.extf %[[XP]] : bf16 to f32
// CHECK-NEXT: %[[XC:[a-z0-9_#]+]] = arith.mulf %[[XF]], %[[C]] : f32
// CHECK-NEXT: %[[XS:[a-z0-9_#]+]] = arith.mulf %[[XPF]], %[[S]] : f32
// CHECK-NEXT: %[[SUB:[a-z0-9_#]+]] = arith.subf %[[XC]], %[[XS]] : f32
// CHECK-NEXT: %[[ADD:[a-z0-9_#]+]] = arith.addf %[[XC]], %[[XS]] : f32
// CHECK-NEXT: %[[R:[a-z0-9_#]+]] = arith.select %[[FIRST]], %[[SUB]], %[[ADD]] : f32
// CHECK-NEXT: %[[RT:[a-z0-9_#]+]] = arith.truncf %[[R]] : f32 to bf16
// CHECK-NEXT: linalg.yield %[[RT]] : bf16
// CHECK: return

// ABSENT-LABEL: func.func @rope_from_freqs
// ABSENT-NOT: {{ attn\.}}
// ABSENT-NOT: rope_freqs
// ABSENT-NOT: tensor<128x64xf32>
// ABSENT-NOT: arith.xori
func.func @rope_from_freqs(%x: tensor<?x4x64xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<?x4x64xbf16> {
  %f = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<128x64xf32>
  %0 = attn.rope %x, %f positions(%off, %len) : tensor<?x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x4x64xbf16>
}

// -----

// Table operand: cos and sin are read from row `pos` (clamped to the table)
// at columns 2i and 2i+1. Interleaved pairs: the partner of d is d xor 1 and
// d reads cos/sin column d / 2.
// CHECK-LABEL: func.func @rope_from_table
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x4x64xf32>, %[[TABLE:[^:]*]]: tensor<128x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>)
// CHECK: %[[POS:[a-z0-9_#]+]] = scf.for
// CHECK: %[[CS:[a-z0-9_#]+]]:2 = linalg.generic {{.*}} ins(%[[POS]] : tensor<?xi32>) outs(%{{.*}}, %{{.*}} : tensor<?x32xf32>, tensor<?x32xf32>)
// CHECK-NEXT: ^bb0(%[[PE:[a-z0-9_#]+]]: i32, %{{.*}}: f32, %{{.*}}: f32):
// CHECK-NEXT: %[[I:[a-z0-9_#]+]] = linalg.index 1 : index
// The last table row (128 - 1, folded).
// CHECK: %[[PI:[a-z0-9_#]+]] = arith.index_cast %[[PE]] : i32 to index
// CHECK: %[[PMAX:[a-z0-9_#]+]] = arith.maxsi %[[PI]], %{{.*}} : index
// CHECK: %[[PC:[a-z0-9_#]+]] = arith.minsi %[[PMAX]], %c127{{[_0-9]*}} : index
// CHECK: %[[EVEN:[a-z0-9_#]+]] = arith.muli %[[I]], %{{.*}} : index
// CHECK: %[[ODD:[a-z0-9_#]+]] = arith.addi %[[EVEN]], %{{.*}} : index
// CHECK: %[[COS:[a-z0-9_#]+]] = tensor.extract %[[TABLE]][%[[PC]], %[[EVEN]]] : tensor<128x64xf32>
// CHECK: %[[SIN:[a-z0-9_#]+]] = tensor.extract %[[TABLE]][%[[PC]], %[[ODD]]] : tensor<128x64xf32>
// CHECK-NEXT: linalg.yield %[[COS]], %[[SIN]] : f32, f32
// CHECK: linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2 floordiv 2)>, affine_map<(d0, d1, d2) -> (d0, d2 floordiv 2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME: ins(%[[X]], %[[CS]]#0, %[[CS]]#1 : tensor<?x4x64xf32>, tensor<?x32xf32>, tensor<?x32xf32>)
// CHECK-NEXT: ^bb0(%[[XE:[a-z0-9_#]+]]: f32, %[[C:[a-z0-9_#]+]]: f32, %[[S:[a-z0-9_#]+]]: f32, %{{.*}}: f32):
// CHECK-NEXT: %[[T:[a-z0-9_#]+]] = linalg.index 0 : index
// CHECK-NEXT: %[[H:[a-z0-9_#]+]] = linalg.index 1 : index
// CHECK-NEXT: %[[D:[a-z0-9_#]+]] = linalg.index 2 : index
// CHECK-NEXT: %[[TWO:[a-z0-9_#]+]] = arith.constant 2 : index
// CHECK-NEXT: %[[PARITY:[a-z0-9_#]+]] = arith.remui %[[D]], %[[TWO]] : index
// CHECK-NEXT: %[[ZERO:[a-z0-9_#]+]] = arith.constant 0 : index
// CHECK-NEXT: %[[FIRST:[a-z0-9_#]+]] = arith.cmpi eq, %[[PARITY]], %[[ZERO]] : index
// CHECK-NEXT: %[[ONE:[a-z0-9_#]+]] = arith.constant 1 : index
// CHECK-NEXT: %[[PARTNER:[a-z0-9_#]+]] = arith.xori %[[D]], %[[ONE]] : index
// CHECK-NEXT: %[[XP:[a-z0-9_#]+]] = tensor.extract %[[X]][%[[T]], %[[H]], %[[PARTNER]]] : tensor<?x4x64xf32>
// CHECK-NEXT: %[[XC:[a-z0-9_#]+]] = arith.mulf %[[XE]], %[[C]] : f32
// CHECK-NEXT: %[[XS:[a-z0-9_#]+]] = arith.mulf %[[XP]], %[[S]] : f32
// CHECK-NEXT: %[[SUB:[a-z0-9_#]+]] = arith.subf %[[XC]], %[[XS]] : f32
// CHECK-NEXT: %[[ADD:[a-z0-9_#]+]] = arith.addf %[[XC]], %[[XS]] : f32
// CHECK-NEXT: %[[R:[a-z0-9_#]+]] = arith.select %[[FIRST]], %[[SUB]], %[[ADD]] : f32
// CHECK-NEXT: linalg.yield %[[R]] : f32

// ABSENT-LABEL: func.func @rope_from_table
// ABSENT-NOT: {{ attn\.}}
// ABSENT-NOT: math.cos
// ABSENT-NOT: math.sin
// ABSENT-NOT: arith.cmpi ult
func.func @rope_from_table(%x: tensor<?x4x64xf32>, %f: tensor<128x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<?x4x64xf32> {
  %0 = attn.rope %x, %f positions(%off, %len) interleaved
      : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x4x64xf32>
}

// -----

// A table that is also returned is built by a generic: positions 0..127,
// cos/sin per (position, column / 2), cos at even and sin at odd columns.
// attn.rope still recomputes its angles instead of reading it.
// CHECK-LABEL: func.func @rope_freqs_returned
// CHECK: %[[P:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} outs(%{{.*}} : tensor<128xi32>)
// CHECK-NEXT: ^bb0(%{{.*}}: i32):
// CHECK-NEXT: %[[IDX:[a-z0-9_#]+]] = linalg.index 0 : index
// CHECK-NEXT: %[[IDXI:[a-z0-9_#]+]] = arith.index_cast %[[IDX]] : index to i32
// CHECK-NEXT: linalg.yield %[[IDXI]] : i32
// CHECK: %[[TCS:[a-z0-9_#]+]]:2 = linalg.generic {{.*}} ins(%[[P]] : tensor<128xi32>)
// CHECK: math.cos %{{.*}} : f64
// CHECK: math.sin %{{.*}} : f64
// CHECK: %[[TABLE:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1 floordiv 2)>, affine_map<(d0, d1) -> (d0, d1 floordiv 2)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME: ins(%[[TCS]]#0, %[[TCS]]#1 : tensor<?x32xf32>, tensor<?x32xf32>) outs(%{{.*}} : tensor<128x64xf32>)
// CHECK-NEXT: ^bb0(%[[C:[a-z0-9_#]+]]: f32, %[[S:[a-z0-9_#]+]]: f32, %{{.*}}: f32):
// CHECK-NEXT: %[[COL:[a-z0-9_#]+]] = linalg.index 1 : index
// CHECK-NEXT: %[[TWO:[a-z0-9_#]+]] = arith.constant 2 : index
// CHECK-NEXT: %[[PARITY:[a-z0-9_#]+]] = arith.remui %[[COL]], %[[TWO]] : index
// CHECK-NEXT: %[[ZERO:[a-z0-9_#]+]] = arith.constant 0 : index
// CHECK-NEXT: %[[EVEN:[a-z0-9_#]+]] = arith.cmpi eq, %[[PARITY]], %[[ZERO]] : index
// CHECK-NEXT: %[[V:[a-z0-9_#]+]] = arith.select %[[EVEN]], %[[C]], %[[S]] : f32
// CHECK-NEXT: linalg.yield %[[V]] : f32
// CHECK: %[[RCS:[a-z0-9_#]+]]:2 = linalg.generic {{.*}} ins(%{{.*}} : tensor<?xi32>)
// CHECK: math.cos %{{.*}} : f64
// CHECK: %[[Y:[a-z0-9_#]+]] = linalg.generic {{.*}} ins(%{{.*}}, %[[RCS]]#0, %[[RCS]]#1 :
// CHECK: %[[YC:[a-z0-9_#]+]] = tensor.cast %[[Y]]
// CHECK: return %[[YC]], %[[TABLE]] : tensor<?x4x64xf32>, tensor<128x64xf32>

// ABSENT-LABEL: func.func @rope_freqs_returned
// ABSENT-NOT: {{ attn\.}}
// ABSENT-NOT: rope_freqs
func.func @rope_freqs_returned(%x: tensor<?x4x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>)
    -> (tensor<?x4x64xf32>, tensor<128x64xf32>) {
  %f = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<128x64xf32>
  %0 = attn.rope %x, %f positions(%off, %len) interleaved
      : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %0, %f : tensor<?x4x64xf32>, tensor<128x64xf32>
}

//===----------------------------------------------------------------------===//
// attn.kv_cache_store
//===----------------------------------------------------------------------===//

// -----

// The blocks are the loop-carried destination: scf.for over sequences and
// over their rows, each row's key and value inserted at
// [page, 0 or 1, layer 1, slot], only when its page is in the table and a
// real page (scf.if, the else branch passes the blocks through).
// CHECK-LABEL: func.func @kv_cache_store
// CHECK-SAME: (%[[K:[^:]*]]: tensor<?x2x64xf32>, %[[V:[^:]*]]: tensor<?x2x64xf32>, %[[BLOCKS:[^:]*]]: tensor<?x2x2x16x2x64xf32>,
// CHECK-SAME: %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>, %[[LUT:[^:]*]]: tensor<?x?xi32>)
// CHECK-DAG: %[[NPAGES:[a-z0-9_#]+]] = tensor.dim %[[BLOCKS]], %{{.*}} : tensor<?x2x2x16x2x64xf32>
// CHECK-DAG: %[[BATCH:[a-z0-9_#]+]] = tensor.dim %[[LEN]], %{{.*}} : tensor<?xi32>
// CHECK-DAG: %[[MAXP:[a-z0-9_#]+]] = tensor.dim %[[LUT]], %{{.*}} : tensor<?x?xi32>
// The page size (16, folded from the blocks type) is not 0: its guard folds.
// CHECK: %[[OUT:[a-z0-9_#]+]] = scf.for %[[SEQ:[a-z0-9_#]+]] = %{{.*}} to %[[BATCH]] step %{{.*}} iter_args(%[[B0:[a-z0-9_#]+]] = %[[BLOCKS]]) -> (tensor<?x2x2x16x2x64xf32>)
// CHECK: tensor.extract %[[OFF]][%[[SEQ]]]
// CHECK: %[[CACHED:[a-z0-9_#]+]] = tensor.extract %[[LEN]][%[[SEQ]]]
// CHECK: %[[ROWS:[a-z0-9_#]+]] = scf.for %[[ROW:[a-z0-9_#]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[B1:[a-z0-9_#]+]] = %[[B0]]) -> (tensor<?x2x2x16x2x64xf32>)
// CHECK-NEXT: %[[POS:[a-z0-9_#]+]] = arith.addi %{{.*}}, %[[ROW]] : index
// CHECK-NEXT: %[[PIDX:[a-z0-9_#]+]] = arith.divsi %[[POS]], %[[PS:[a-z0-9_#]+]] : index
// CHECK-NEXT: %[[SLOT:[a-z0-9_#]+]] = arith.remsi %[[POS]], %[[PS]] : index
// CHECK: arith.cmpi slt, %[[PIDX]], %[[MAXP]] : index
// CHECK: %[[PAGE32:[a-z0-9_#]+]] = tensor.extract %[[LUT]][%[[SEQ]], %{{.*}}] : tensor<?x?xi32>
// CHECK-NEXT: %[[PAGE:[a-z0-9_#]+]] = arith.index_cast %[[PAGE32]] : i32 to index
// CHECK-NEXT: arith.cmpi sge, %[[PAGE]], %{{.*}} : index
// CHECK-NEXT: arith.cmpi slt, %[[PAGE]], %[[NPAGES]] : index
// CHECK: %[[IF:[a-z0-9_#]+]] = scf.if %{{.*}} -> (tensor<?x2x2x16x2x64xf32>) {
// CHECK-NEXT: %[[KROW:[a-z0-9_#]+]] = tensor.extract_slice %[[K]][%[[ROW]], 0, 0] [1, 2, 64] [1, 1, 1] : tensor<?x2x64xf32> to tensor<2x64xf32>
// CHECK-NEXT: %[[WK:[a-z0-9_#]+]] = tensor.insert_slice %[[KROW]] into %[[B1]][%[[PAGE]], 0, 1, %[[SLOT]], 0, 0] [1, 1, 1, 1, 2, 64] [1, 1, 1, 1, 1, 1] : tensor<2x64xf32> into tensor<?x2x2x16x2x64xf32>
// CHECK-NEXT: %[[VROW:[a-z0-9_#]+]] = tensor.extract_slice %[[V]][%[[ROW]], 0, 0] [1, 2, 64] [1, 1, 1] : tensor<?x2x64xf32> to tensor<2x64xf32>
// CHECK-NEXT: %[[WV:[a-z0-9_#]+]] = tensor.insert_slice %[[VROW]] into %[[WK]][%[[PAGE]], 1, 1, %[[SLOT]], 0, 0] [1, 1, 1, 1, 2, 64] [1, 1, 1, 1, 1, 1] : tensor<2x64xf32> into tensor<?x2x2x16x2x64xf32>
// CHECK-NEXT: scf.yield %[[WV]] : tensor<?x2x2x16x2x64xf32>
// CHECK-NEXT: } else {
// CHECK-NEXT: scf.yield %[[B1]] : tensor<?x2x2x16x2x64xf32>
// CHECK-NEXT: }
// CHECK-NEXT: scf.yield %[[IF]] : tensor<?x2x2x16x2x64xf32>
// CHECK-NEXT: }
// CHECK-NEXT: scf.yield %[[ROWS]] : tensor<?x2x2x16x2x64xf32>
// CHECK-NEXT: }
// CHECK-NEXT: %[[R:[a-z0-9_#]+]] = tensor.cast %[[OUT]]
// CHECK-NEXT: return %[[R]]

// Nothing is allocated for the cache: it is updated in place.
// ABSENT-LABEL: func.func @kv_cache_store
// ABSENT-NOT: {{ attn\.}}
// ABSENT-NOT: tensor.empty
// ABSENT-NOT: bufferization
func.func @kv_cache_store(%k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %blocks: tensor<?x2x2x16x2x64xf32>,
                          %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x2x16x2x64xf32> {
  %new = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  return %new : tensor<?x2x2x16x2x64xf32>
}

//===----------------------------------------------------------------------===//
// attn.paged_flash_attention and attn.flash_attention
//===----------------------------------------------------------------------===//

// -----

// Head dim 64, pages of 16: the vector kernels. A loop over the sequences
// decides whether every one has at most one query row; then the split decode
// runs, else one work item per (sequence, kv head).
//
// Split decode: the longest visible key range in whole tiles gives the
// chunks (64 work items wanted: ceil(64 / batch) chunks, at most one per
// tile), each sequence's chunks starting at its first visible tile; an
// scf.forall over (sequence, chunk) keeps per-item max / sum / accumulator
// partials. Inside, q of all 4 heads is read once and scaled by 1/sqrt(64)
// (exp, not exp2); per page of the chunk (found through the lookup table) a
// loop over the keys and, inside it, over the 2 kv heads reads the key row
// (kv index 0, layer 1) and value row (kv index 1) of that head -- one slot's
// rows of all heads back to back -- scores with vector.fma and a reduction,
// the online softmax masks with i32 lane compares. A second scf.forall over
// the sequences combines the chunks: the max over chunks, exp weights, and
// writes the sequence's (0 or 1) row.
//
// Otherwise: scf.forall over sequences x kv heads. Decode rows of a mixed
// batch keep their own loop; prefill over several query tiles first
// transposes 8x8 key blocks and widens the values into packed panels (keys
// [tiles, 1, 64, 16], values [tiles, 4, 16, 16]) once per (sequence, kv head),
// then the query tiles read panels.
// CHECK-LABEL: func.func @paged_vector
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<?x4x64xf32>, %[[BLOCKS:[^:]*]]: tensor<?x2x2x16x2x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>, %[[LUT:[^:]*]]: tensor<?x?xi32>)
// CHECK: %[[BATCH:[a-z0-9_#]+]] = tensor.dim %[[LEN]], %{{.*}} : tensor<?xi32>
// CHECK: %[[ALL:[a-z0-9_#]+]] = scf.for %{{.*}} = %{{.*}} to %[[BATCH]] step %{{.*}} iter_args(%[[ACC:[a-z0-9_#]+]] = %true) -> (i1) {
// CHECK: %[[ONE:[a-z0-9_#]+]] = arith.cmpi sle, %{{.*}}, %{{.*}} : index
// CHECK-NEXT: %[[AND:[a-z0-9_#]+]] = arith.andi %[[ACC]], %[[ONE]] : i1
// CHECK-NEXT: scf.yield %[[AND]] : i1
// CHECK: %[[O:[a-z0-9_#]+]] = scf.if %[[ALL]] -> (tensor<?x4x64xf32>) {
// CHECK: %[[LONGEST:[a-z0-9_#]+]] = scf.for {{.*}} -> (index) {
// CHECK: %[[END:[a-z0-9_#]+]] = arith.ceildivsi %{{.*}}, %c16{{[_0-9]*}} : index
// No window: the range starts at tile 0 (end - 0 folds).
// CHECK-NEXT: %[[LONGER:[a-z0-9_#]+]] = arith.maxsi %{{.*}}, %[[END]] : index
// CHECK-NEXT: scf.yield %[[LONGER]] : index
// CHECK: %[[MAXTILES:[a-z0-9_#]+]] = arith.maxsi %[[LONGEST]], %{{.*}} : index
// CHECK: %[[WANTED:[a-z0-9_#]+]] = arith.ceildivsi %c64{{[_0-9]*}}, %{{.*}} : index
// CHECK: %[[CHUNK:[a-z0-9_#]+]] = arith.ceildivsi %[[MAXTILES]], %{{.*}} : index
// CHECK-NEXT: %[[SPLITS:[a-z0-9_#]+]] = arith.ceildivsi %[[MAXTILES]], %[[CHUNK]] : index
// CHECK: %[[PARTS:[a-z0-9_#]+]]:3 = scf.forall (%[[SEQ:[a-z0-9_#]+]], %[[SPLIT:[a-z0-9_#]+]]) in (%[[BATCH]], %[[SPLITS]]) shared_outs(%[[PACC:[a-z0-9_#]+]] = %{{.*}}, %[[PMAX:[a-z0-9_#]+]] = %{{.*}}, %[[PSUM:[a-z0-9_#]+]] = %{{.*}}) -> (tensor<?x?x4x64xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) {
// No window: the chunk's first tile is split * chunk (0 + x folds).
// CHECK: %[[FIRST:[a-z0-9_#]+]] = arith.muli %[[SPLIT]], %[[CHUNK]] : index
// CHECK: vector.transfer_read %[[Q]][%{{.*}}, %{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x4x64xf32>, vector<64xf32>
// CHECK: scf.for %[[KT:[a-z0-9_#]+]] = %[[FIRST]] to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (tensor<4xf32>, tensor<4xf32>, tensor<4x64xf32>) {
// CHECK: tensor.extract %[[LUT]][%[[SEQ]], %[[KT]]] : tensor<?x?xi32>
// CHECK: scf.for %[[C:[a-z0-9_#]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}}) -> (tensor<4x16xf32>) {
// CHECK: scf.for %[[H:[a-z0-9_#]+]] = %{{.*}} to %c2 step %{{.*}} iter_args(%{{.*}}) -> (tensor<4x16xf32>) {
// CHECK: vector.transfer_read %[[BLOCKS]][%{{.*}}, %c0{{[_0-9]*}}, %c1{{[_0-9]*}}, %[[C]], %[[H]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x2x16x2x64xf32>, vector<16xf32>
// CHECK: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK: vector.reduction <add>, %{{.*}} : vector<16xf32> into f32
// CHECK: arith.cmpi slt, %{{.*}}, %{{.*}} : vector<16xi32>
// CHECK: vector.reduction <maximumf>, %{{.*}} : vector<16xf32> into f32
// CHECK: math.exp %{{.*}} : vector<16xf32>
// CHECK: scf.for %[[C2:[a-z0-9_#]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}}) -> (tensor<4x64xf32>) {
// CHECK: scf.for %[[H2:[a-z0-9_#]+]] = %{{.*}} to %c2 step %{{.*}} iter_args(%{{.*}}) -> (tensor<4x64xf32>) {
// CHECK: vector.transfer_read %[[BLOCKS]][%{{.*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}, %[[C2]], %[[H2]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x2x16x2x64xf32>, vector<16xf32>
// CHECK: scf.forall.in_parallel {
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[PACC]][%[[SEQ]], %[[SPLIT]], 0, 0] [1, 1, 4, 64] [1, 1, 1, 1] : tensor<4x64xf32> into tensor<?x?x4x64xf32>
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[PMAX]][%[[SEQ]], %[[SPLIT]], 0] [1, 1, 4] [1, 1, 1] : tensor<4xf32> into tensor<?x?x4xf32>
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[PSUM]][%[[SEQ]], %[[SPLIT]], 0] [1, 1, 4] [1, 1, 1] : tensor<4xf32> into tensor<?x?x4xf32>
// CHECK: %[[COMBINED:[a-z0-9_#]+]] = scf.forall (%[[CSEQ:[a-z0-9_#]+]]) in (%[[BATCH]]) shared_outs(%[[COUT:[a-z0-9_#]+]] = %{{.*}}) -> (tensor<?x4x64xf32>) {
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[SPLITS]] step %{{.*}} iter_args(%{{.*}}) -> (f32) {
// CHECK: tensor.extract %[[PARTS]]#1[%[[CSEQ]], %{{.*}}, %{{.*}}] : tensor<?x?x4xf32>
// CHECK: arith.maximumf
// CHECK: scf.for %{{.*}} = %{{.*}} to %[[SPLITS]] step %{{.*}} iter_args(%{{.*}}) -> (f32, vector<64xf32>) {
// CHECK: math.exp %{{.*}} : f32
// CHECK: vector.transfer_read %[[PARTS]]#0[%[[CSEQ]], %{{.*}}, %{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x?x4x64xf32>, vector<64xf32>
// CHECK: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<64xf32>
// CHECK: scf.forall.in_parallel {
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[COUT]][%{{.*}}, 0, 0] [%{{.*}}, 4, 64] [1, 1, 1] : tensor<?x4x64xf32> into tensor<?x4x64xf32>
// CHECK: scf.yield %[[COMBINED]] : tensor<?x4x64xf32>
// CHECK-NEXT: } else {
// CHECK: %[[INIT:[a-z0-9_#]+]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<?x4x64xf32>)
// CHECK: %[[G:[a-z0-9_#]+]] = scf.forall (%[[GSEQ:[a-z0-9_#]+]], %[[KVH:[a-z0-9_#]+]]) in (%[[BATCH]], 2) shared_outs(%[[SHARED:[a-z0-9_#]+]] = %[[INIT]]) -> (tensor<?x4x64xf32>) {
// CHECK-NEXT: tensor.extract %[[OFF]][%[[GSEQ]]] : tensor<?xi32>
// CHECK: %[[START:[a-z0-9_#]+]] = arith.minsi %{{.*}}, %{{.*}} : index
// CHECK: %[[QLEN:[a-z0-9_#]+]] = arith.subi %{{.*}}, %[[START]] : index
// CHECK: %[[DECODE:[a-z0-9_#]+]] = arith.cmpi sle, %[[QLEN]], %{{.*}} : index
// CHECK-NEXT: %[[ROWS:[a-z0-9_#]+]] = scf.if %[[DECODE]] -> (tensor<?x2x64xf32>) {
// CHECK: vector.transfer_read %[[BLOCKS]][%{{.*}}, %c0{{[_0-9]*}}, %c1{{[_0-9]*}}, %{{.*}}, %[[KVH]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x2x16x2x64xf32>, vector<{{[0-9]+}}xf32>
// CHECK: } else {
// CHECK: %[[SEVERAL:[a-z0-9_#]+]] = arith.cmpi sgt, %[[QLEN]], %c32{{[_0-9]*}} : index
// CHECK-NEXT: scf.if %[[SEVERAL]] -> (tensor<?x2x64xf32>) {
// CHECK: %[[PANELS:[a-z0-9_#]+]]:2 = scf.for %[[PT:[a-z0-9_#]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}}, %{{.*}}) -> (tensor<?x1x64x16xf32>, tensor<?x4x16x16xf32>) {
// CHECK: tensor.extract %[[LUT]][%[[GSEQ]], %[[PT]]] : tensor<?x?xi32>
// CHECK-DAG: vector.transfer_read %[[BLOCKS]][%{{.*}}, %c0{{[_0-9]*}}, %c1{{[_0-9]*}}, %{{.*}}, %[[KVH]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x2x16x2x64xf32>, vector<8xf32>
// CHECK-DAG: vector.transpose %{{.*}}, [1, 0] : vector<8x8xf32> to vector<8x8xf32>
// CHECK-DAG: vector.transfer_read %[[BLOCKS]][%{{.*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}, %{{.*}}, %[[KVH]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x2x16x2x64xf32>, vector<64xf32>
// CHECK: scf.for {{.*}} -> (tensor<?x2x64xf32>) {
// CHECK: scf.for {{.*}} -> (tensor<64xf32>, tensor<64xf32>, tensor<64x64xf32>) {
// CHECK-DAG: tensor.extract_slice %[[PANELS]]#1[%{{.*}}, 0, 0, 0] [1, 4, 16, 16] [1, 1, 1, 1] : tensor<?x4x16x16xf32> to tensor<4x16x16xf32>
// CHECK-DAG: tensor.extract_slice %[[PANELS]]#0[%{{.*}}, 0, 0, 0] [1, 1, 64, 16] [1, 1, 1, 1] : tensor<?x1x64x16xf32> to tensor<1x64x16xf32>
// CHECK-DAG: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK-DAG: arith.cmpi slt, %{{.*}}, %{{.*}} : vector<16xi32>
// CHECK-DAG: vector.reduction <maximumf>, %{{.*}} : vector<16xf32> into f32
// CHECK-DAG: math.exp %{{.*}} : vector<16xf32>
// A single query tile (at most 32 rows x 2 heads) packs each key tile inside
// its key loop instead.
// CHECK: } else {
// CHECK: scf.for {{.*}} -> (tensor<?x2x64xf32>) {
// CHECK: scf.for {{.*}} -> (tensor<64xf32>, tensor<64xf32>, tensor<64x64xf32>) {
// CHECK: vector.transpose %{{.*}}, [1, 0] : vector<8x8xf32> to vector<8x8xf32>
// CHECK: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK: %[[HEAD0:[a-z0-9_#]+]] = arith.muli %[[KVH]], %{{.*}} : index
// CHECK-NEXT: scf.forall.in_parallel {
// CHECK-NEXT: tensor.parallel_insert_slice %[[ROWS]] into %[[SHARED]][%[[START]], %[[HEAD0]], 0] [%[[QLEN]], 2, 64] [1, 1, 1] : tensor<?x2x64xf32> into tensor<?x4x64xf32>
// CHECK: scf.yield %[[G]] : tensor<?x4x64xf32>
// CHECK: %[[R:[a-z0-9_#]+]] = tensor.cast %[[O]]
// CHECK: return %[[R]]

// No exp2 on this path and no score buffer of dynamic size (S x S).
// ABSENT-LABEL: func.func @paged_vector
// ABSENT-NOT: {{ attn\.}}
// ABSENT-NOT: math.exp2
// ABSENT-NOT: tensor<?x?xf32>
func.func @paged_vector(%q: tensor<?x4x64xf32>, %blocks: tensor<?x2x2x16x2x64xf32>,
                        %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xf32> {
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xf32>
}

// -----

// Head dim 12 (not a multiple of 8): linalg generics. The scale is folded
// with log2(e) (0.5 * 1.442695 = 0.7213475) and the softmax uses exp2.
// Sliding window of 8: the first key tile starts at the first query position
// minus 7, and a key is visible when j < kv_len, j <= pos and pos - j < 8.
// CHECK-LABEL: func.func @paged_generic
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<?x4x12xf32>, %[[BLOCKS:[^:]*]]: tensor<?x2x1x16x2x12xf32>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>, %[[LUT:[^:]*]]: tensor<?x?xi32>)
// CHECK: %[[O:[a-z0-9_#]+]] = scf.forall (%[[SEQ:[a-z0-9_#]+]], %[[KVH:[a-z0-9_#]+]]) in (%{{.*}}, 2) shared_outs(%[[SHARED:[a-z0-9_#]+]] = %{{.*}}) -> (tensor<?x4x12xf32>) {
// CHECK: %[[SCALE:[a-z0-9_#]+]] = arith.constant 0.72134751 : f32
// CHECK: scf.if
// CHECK: tensor.extract %[[Q]][%{{.*}}, %{{.*}}, %{{.*}}] : tensor<?x4x12xf32>
// CHECK-NEXT: arith.mulf %{{.*}}, %[[SCALE]] : f32
// CHECK: %[[REACH:[a-z0-9_#]+]] = arith.subi %{{.*}}, %c7 : index
// CHECK-NEXT: %[[FROM:[a-z0-9_#]+]] = arith.maxsi %[[REACH]], %{{.*}} : index
// CHECK: %[[TLO:[a-z0-9_#]+]] = arith.divsi %[[FROM]], %c16{{[_0-9]*}} : index
// CHECK: scf.for %[[KT:[a-z0-9_#]+]] = %[[TLO]] to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (tensor<2xf32>, tensor<2xf32>, tensor<2x12xf32>) {
// CHECK: tensor.extract %[[LUT]][%[[SEQ]], %[[KT]]] : tensor<?x?xi32>
// CHECK: %[[KEYS:[a-z0-9_#]+]] = linalg.generic
// CHECK: tensor.extract %[[BLOCKS]][%{{.*}}, %c0{{[_0-9]*}}, %c0{{[_0-9]*}}, %{{.*}}, %[[KVH]], %{{.*}}] : tensor<?x2x1x16x2x12xf32>
// CHECK: %[[VALS:[a-z0-9_#]+]] = linalg.generic
// CHECK: tensor.extract %[[BLOCKS]][%{{.*}}, %c1{{[_0-9]*}}, %c0{{[_0-9]*}}, %{{.*}}, %[[KVH]], %{{.*}}] : tensor<?x2x1x16x2x12xf32>
// CHECK: %[[S:[a-z0-9_#]+]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%{{.*}}, %[[KEYS]] : tensor<2x12xf32>, tensor<16x12xf32>) outs(%{{.*}} : tensor<2x16xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[S]] : tensor<2x16xf32>) outs(%{{.*}} : tensor<2x16xf32>)
// CHECK: %[[J:[a-z0-9_#]+]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK: %[[QPOS:[a-z0-9_#]+]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK-NEXT: %[[INKV:[a-z0-9_#]+]] = arith.cmpi slt, %[[J]], %{{.*}} : index
// CHECK-NEXT: %[[CAUSAL:[a-z0-9_#]+]] = arith.cmpi sle, %[[J]], %[[QPOS]] : index
// CHECK-NEXT: %[[OK:[a-z0-9_#]+]] = arith.andi %[[INKV]], %[[CAUSAL]] : i1
// CHECK-NEXT: %[[DIST:[a-z0-9_#]+]] = arith.subi %[[QPOS]], %[[J]] : index
// CHECK: %[[INWIN:[a-z0-9_#]+]] = arith.cmpi slt, %[[DIST]], %c8 : index
// CHECK-NEXT: %[[OK2:[a-z0-9_#]+]] = arith.andi %[[OK]], %[[INWIN]] : i1
// CHECK-NEXT: arith.select %[[OK2]], %{{.*}}, %{{.*}} : f32
// CHECK: arith.maximumf
// CHECK: math.exp2 %{{.*}} : f32
// CHECK: math.exp2 %{{.*}} : f32
// CHECK: linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%{{.*}}, %[[VALS]] : tensor<2x16xf32>, tensor<16x12xf32>) outs(%{{.*}} : tensor<2x12xf32>)
// CHECK: } else {
// CHECK: math.exp2
// CHECK: scf.forall.in_parallel {
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[SHARED]][%{{.*}}, %{{.*}}, 0] [%{{.*}}, 2, 12] [1, 1, 1] : tensor<?x2x12xf32> into tensor<?x4x12xf32>

// ABSENT-LABEL: func.func @paged_generic
// ABSENT-NOT: {{ attn\.}}
// ABSENT-NOT: vector.fma
// ABSENT-NOT: vector.transpose
// ABSENT-NOT: math.exp{{ }}
func.func @paged_generic(%q: tensor<?x4x12xf32>, %blocks: tensor<?x2x1x16x2x12xf32>,
                         %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x12xf32> {
  %o = attn.paged_flash_attention %q, %blocks layer 0 positions(%off, %len) pages(%lut)
      {mask = #attn.mask<sliding_window = 8>, scale = 0.5 : f64}
      : tensor<?x4x12xf32>, tensor<?x2x1x16x2x12xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x12xf32>
}

// -----

// Explicit keys and values (bf16, causal by default): sequences from the
// row offsets (batch = size - 1). Split decode: q widened to f32 and scaled
// by 1/sqrt(16), key and value rows of kv head %H read from K and V (as
// bf16 vectors widened to f32), the outputs truncated to bf16. Grouped path:
// the same reads at this kv head, the causal limit per row (min(kv_len,
// pos + 1), tile-local) compared with the lane indices.
// CHECK-LABEL: func.func @flash_causal
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<?x4x16xbf16>, %[[K:[^:]*]]: tensor<?x2x16xbf16>, %[[V:[^:]*]]: tensor<?x2x16xbf16>, %[[QO:[^:]*]]: tensor<?xi32>, %[[KO:[^:]*]]: tensor<?xi32>)
// CHECK: %[[NQO:[a-z0-9_#]+]] = tensor.dim %[[QO]], %{{.*}} : tensor<?xi32>
// CHECK: %[[NB:[a-z0-9_#]+]] = arith.subi %[[NQO]], %{{.*}} : index
// CHECK: %[[BATCH:[a-z0-9_#]+]] = arith.maxsi %[[NB]], %{{.*}} : index
// CHECK: %[[ALL:[a-z0-9_#]+]] = scf.for %{{.*}} = %{{.*}} to %[[BATCH]] step {{.*}} -> (i1) {
// CHECK: scf.if %[[ALL]] -> (tensor<?x4x16xbf16>) {
// CHECK: scf.forall (%{{.*}}, %{{.*}}) in (%[[BATCH]], %{{.*}}) shared_outs({{.*}}) -> (tensor<?x?x4x16xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) {
// CHECK: %[[DSCALE:[a-z0-9_#]+]] = arith.constant 2.500000e-01 : f32
// CHECK: vector.transfer_read %[[Q]][%{{.*}}, %{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x4x16xbf16>, vector<16xbf16>
// CHECK: scf.for %[[H:[a-z0-9_#]+]] = %{{.*}} to %c2{{[_0-9]*}} step
// CHECK: vector.transfer_read %[[K]][%{{.*}}, %[[H]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x16xbf16>, vector<16xbf16>
// CHECK-NEXT: arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
// CHECK: scf.for %[[H2:[a-z0-9_#]+]] = %{{.*}} to %c2{{[_0-9]*}} step
// CHECK: vector.transfer_read %[[V]][%{{.*}}, %[[H2]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x16xbf16>, vector<16xbf16>
// CHECK-NEXT: arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
// CHECK: scf.forall (%{{.*}}) in (%[[BATCH]]) shared_outs({{.*}}) -> (tensor<?x4x16xbf16>) {
// CHECK: arith.truncf %{{.*}} : vector<16xf32> to vector<16xbf16>
// CHECK: } else {
// CHECK: %[[ZERO:[a-z0-9_#]+]] = arith.truncf %{{.*}} : f32 to bf16
// CHECK: %[[INIT:[a-z0-9_#]+]] = linalg.fill ins(%[[ZERO]] : bf16) outs(%{{.*}} : tensor<?x4x16xbf16>)
// CHECK: scf.forall (%[[SEQ:[a-z0-9_#]+]], %[[KVH:[a-z0-9_#]+]]) in (%[[BATCH]], 2) shared_outs(%[[SHARED:[a-z0-9_#]+]] = %[[INIT]]) -> (tensor<?x4x16xbf16>) {
// CHECK: tensor.extract %[[QO]][%[[SEQ]]]
// CHECK: tensor.extract %[[KO]][%[[SEQ]]]
// CHECK: %[[SCALE:[a-z0-9_#]+]] = arith.constant 2.500000e-01 : f32
// CHECK: scf.if
// CHECK-DAG: vector.transfer_read %[[Q]][%{{.*}}, %{{.*}}, %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x4x16xbf16>, vector<16xbf16>
// CHECK-DAG: arith.extf %{{.*}} : vector<16xbf16> to vector<16xf32>
// CHECK-DAG: arith.mulf %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK-DAG: vector.transfer_read %[[K]][%{{.*}}, %[[KVH]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x16xbf16>, vector<16xbf16>
// CHECK-DAG: vector.transfer_read %[[V]][%{{.*}}, %[[KVH]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x16xbf16>, vector<16xbf16>
// CHECK-DAG: vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK-DAG: arith.cmpi slt, %{{.*}}, %{{.*}} : vector<64xi32>
// CHECK-DAG: math.exp %{{.*}} : vector<64xf32>
// CHECK-DAG: arith.truncf %{{.*}} : f32 to bf16
// CHECK: } else {
// Key rows are widened to f32 as they are read: no bf16 vector crosses a loop.
// CHECK-DAG: vector.transfer_read %[[K]][%{{.*}}, %[[KVH]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x16xbf16>, vector<8xbf16>
// CHECK-DAG: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK-DAG: vector.transpose %{{.*}}, [1, 0] : vector<8x8xf32> to vector<8x8xf32>
// CHECK-DAG: vector.transfer_read %[[V]][%{{.*}}, %[[KVH]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x2x16xbf16>, vector<16xbf16>
// CHECK: arith.constant dense<[0, 1, 2, 3, {{.*}}]> : vector<64xi32>
// CHECK: %[[QI:[a-z0-9_#]+]] = arith.divui %{{.*}}, %c2{{[_0-9]*}} : index
// CHECK-NEXT: %[[QPOS:[a-z0-9_#]+]] = arith.addi %{{.*}}, %[[QI]] : index
// CHECK: %[[NEXT:[a-z0-9_#]+]] = arith.addi %[[QPOS]], %{{.*}} : index
// CHECK-NEXT: %[[END:[a-z0-9_#]+]] = arith.minsi %{{.*}}, %[[NEXT]] : index
// CHECK: arith.cmpi slt, %{{.*}}, %{{.*}} : vector<64xi32>
// CHECK-DAG: arith.truncf %{{.*}} : f32 to bf16
// CHECK: scf.forall.in_parallel {
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %[[SHARED]][%{{.*}}, %{{.*}}, 0] [%{{.*}}, 2, 16] [1, 1, 1] : tensor<?x2x16xbf16> into tensor<?x4x16xbf16>
// ABSENT-LABEL: func.func @flash_causal
// ABSENT-NOT: {{ attn\.}}
func.func @flash_causal(%q: tensor<?x4x16xbf16>, %k: tensor<?x2x16xbf16>, %v: tensor<?x2x16xbf16>,
                        %qo: tensor<?xi32>, %ko: tensor<?xi32>) -> tensor<?x4x16xbf16> {
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko)
      : tensor<?x4x16xbf16>, tensor<?x2x16xbf16>, tensor<?x2x16xbf16>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x4x16xbf16>
}

// -----

// Sliding window of 24. Split decode: a sequence's first visible tile holds
// the query position minus 23; its chunks start there. Grouped path: key tiles from
// the first query position minus 23; row r (query row r / 2) sees the keys
// [pos - 23, min(kv_len, pos + 1)) of a tile, made tile-local, clamped to
// [0, 64] and compared with the lane indices as i32.
// CHECK-LABEL: func.func @flash_window
// CHECK: scf.forall (%{{.*}}, %{{.*}}) in (%{{.*}}, %{{.*}}) shared_outs({{.*}}) -> (tensor<?x?x4x16xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) {
// CHECK: %[[DREACH:[a-z0-9_#]+]] = arith.subi %{{.*}}, %c23{{[_0-9]*}} : index
// CHECK-NEXT: %[[DFROM:[a-z0-9_#]+]] = arith.maxsi %[[DREACH]], %{{.*}} : index
// CHECK: %[[DTILE:[a-z0-9_#]+]] = arith.divsi %[[DFROM]], %c64{{[_0-9]*}} : index
// CHECK-NEXT: %[[DFIRST:[a-z0-9_#]+]] = arith.minsi %[[DTILE]], %{{.*}} : index
// CHECK: arith.addi %[[DFIRST]], %{{.*}} : index
// CHECK: } else {
// CHECK: %[[SCALE:[a-z0-9_#]+]] = arith.constant 2.500000e-01 : f32
// CHECK: %[[DECODE:[a-z0-9_#]+]] = arith.cmpi sle, %{{.*}}, %{{.*}} : index
// CHECK: %[[REACH:[a-z0-9_#]+]] = arith.subi %{{.*}}, %c23 : index
// CHECK-NEXT: arith.maxsi %[[REACH]], %{{.*}} : index
// CHECK: } else {
// CHECK: arith.constant dense<[0, 1, 2, 3, {{.*}}]> : vector<64xi32>
// CHECK: %[[QI:[a-z0-9_#]+]] = arith.divui %{{.*}}, %c2{{[_0-9]*}} : index
// CHECK-NEXT: %[[QPOS:[a-z0-9_#]+]] = arith.addi %{{.*}}, %[[QI]] : index
// CHECK: %[[NEXT:[a-z0-9_#]+]] = arith.addi %[[QPOS]], %{{.*}} : index
// CHECK-NEXT: %[[END:[a-z0-9_#]+]] = arith.minsi %{{.*}}, %[[NEXT]] : index
// CHECK: %[[BEGIN:[a-z0-9_#]+]] = arith.subi %[[QPOS]], %c23{{[_0-9]*}} : index
// CHECK-NEXT: %[[BEGINL:[a-z0-9_#]+]] = arith.subi %[[BEGIN]], %[[BASE:[a-z0-9_#]+]] : index
// CHECK: %[[LO0:[a-z0-9_#]+]] = arith.maxsi %[[BEGINL]], %{{.*}} : index
// CHECK-NEXT: %[[LO:[a-z0-9_#]+]] = arith.minsi %[[LO0]], %c64{{[_0-9]*}} : index
// CHECK-NEXT: %[[ENDL:[a-z0-9_#]+]] = arith.subi %[[END]], %[[BASE]] : index
// CHECK: %[[HI0:[a-z0-9_#]+]] = arith.maxsi %[[ENDL]], %{{.*}} : index
// CHECK-NEXT: %[[HI:[a-z0-9_#]+]] = arith.minsi %[[HI0]], %c64{{[_0-9]*}} : index
// CHECK-NEXT: %[[LO32:[a-z0-9_#]+]] = arith.index_cast %[[LO]] : index to i32
// CHECK-NEXT: %[[LOV:[a-z0-9_#]+]] = vector.broadcast %[[LO32]] : i32 to vector<64xi32>
// CHECK-NEXT: %[[GE:[a-z0-9_#]+]] = arith.cmpi sge, %[[LANES:[a-z0-9_#]+]], %[[LOV]] : vector<64xi32>
// CHECK-NEXT: %[[HI32:[a-z0-9_#]+]] = arith.index_cast %[[HI]] : index to i32
// CHECK-NEXT: %[[HIV:[a-z0-9_#]+]] = vector.broadcast %[[HI32]] : i32 to vector<64xi32>
// CHECK-NEXT: %[[LT:[a-z0-9_#]+]] = arith.cmpi slt, %[[LANES]], %[[HIV]] : vector<64xi32>
// CHECK-NEXT: %[[OK:[a-z0-9_#]+]] = arith.andi %[[GE]], %[[LT]] : vector<64xi1>
// CHECK: arith.select %[[OK]], %{{.*}}, %{{.*}} : vector<64xi1>, vector<64xf32>
// ABSENT-LABEL: func.func @flash_window
// ABSENT-NOT: {{ attn\.}}
func.func @flash_window(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>,
                        %qo: tensor<?xi32>, %ko: tensor<?xi32>) -> tensor<?x4x16xf32> {
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) {mask = #attn.mask<sliding_window = 24>}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x4x16xf32>
}

// -----

// No mask and a custom scale: q is scaled by 0.3 (split decode and grouped
// path), key tiles run from 0 to ceil(kv_len / 64) and a row sees the keys
// [0, kv_len) of a tile (no causal limit: no minsi with pos + 1).
// CHECK-LABEL: func.func @flash_no_mask
// CHECK: scf.if %{{.*}} -> (tensor<?x4x16xf32>) {
// CHECK: arith.constant 3.000000e-01 : f32
// CHECK: } else {
// CHECK: %[[SCALE:[a-z0-9_#]+]] = arith.constant 3.000000e-01 : f32
// CHECK: arith.cmpi sle, %{{.*}}, %{{.*}} : index
// CHECK-NEXT: scf.if
// CHECK: vector.broadcast %[[SCALE]] : f32 to vector<{{[0-9]+}}xf32>
// CHECK: } else {
// CHECK: %[[THI:[a-z0-9_#]+]] = arith.ceildivsi %[[KVLEN:[a-z0-9_#]+]], %c64{{[_0-9]*}} : index
// CHECK: arith.constant dense<[0, 1, 2, 3, {{.*}}]> : vector<64xi32>
// CHECK: %[[QI:[a-z0-9_#]+]] = arith.divui %{{.*}}, %c2{{[_0-9]*}} : index
// CHECK-NEXT: %[[QPOS:[a-z0-9_#]+]] = arith.addi %{{.*}}, %[[QI]] : index
// CHECK: %[[ENDL:[a-z0-9_#]+]] = arith.subi %[[KVLEN]], %{{.*}} : index
// CHECK: arith.cmpi slt, %{{.*}}, %{{.*}} : vector<64xi32>

// ABSENT-LABEL: func.func @flash_no_mask
// ABSENT-NOT: {{ attn\.}}
// ABSENT-NOT: arith.cmpi sle, {{.*}} : vector
// ABSENT-NOT: math.exp2
func.func @flash_no_mask(%q: tensor<?x4x16xf32>, %k: tensor<?x2x16xf32>, %v: tensor<?x2x16xf32>,
                         %qo: tensor<?xi32>, %ko: tensor<?xi32>) -> tensor<?x4x16xf32> {
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) {mask = #attn.mask<none>, scale = 0.3 : f64}
      : tensor<?x4x16xf32>, tensor<?x2x16xf32>, tensor<?x2x16xf32>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<?x4x16xf32>
}

// -----

//===----------------------------------------------------------------------===//
// attn.rope_store
//===----------------------------------------------------------------------===//

// q: RMS norm + RoPE as apart (into a new tensor). k: inside the per-row
// store loop, per kv head: one vector read of the head, its RMS norm in
// registers (sum of squares by vector.reduction), the pair partner and the
// expanded cos / signed sin by static shuffles, a multiply-add, and one
// vector write into the blocks (the loop-carried cache tensor); then the v
// row is inserted beside it. No normalised or rotated k tensor exists.
// CHECK-LABEL: func.func @rope_store_norm(
// CHECK: linalg.generic {{.*}} ins(%arg0 : tensor<?x4x64xbf16>)
// CHECK: math.rsqrt
// CHECK: scf.for {{.*}} iter_args(%[[BLK:.*]] = %arg3) -> (tensor<?x2x2x16x2x64xbf16>)
// CHECK: scf.for {{.*}} -> (tensor<?x2x2x16x2x64xbf16>)
// CHECK: scf.if
// CHECK: vector.shuffle
// CHECK: scf.for %[[H:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (tensor<?x2x2x16x2x64xbf16>)
// CHECK: vector.transfer_read %arg1[%{{.*}}, %[[H]], %{{.*}}]
// CHECK: vector.reduction <add>, %{{.*}} : vector<64xf32> into f32
// CHECK: math.rsqrt
// CHECK: vector.shuffle
// CHECK: math.fma
// CHECK: arith.truncf %{{.*}} : vector<64xf32> to vector<64xbf16>
// CHECK: vector.transfer_write %{{.*}}, %[[ACC]][%{{.*}}, %c0{{.*}}, %c1{{.*}}, %{{.*}}, %[[H]], %c0{{.*}}] {in_bounds = [true]} : vector<64xbf16>, tensor<?x2x2x16x2x64xbf16>
// CHECK: tensor.extract_slice %arg2
// CHECK: tensor.insert_slice
// ABSENT-LABEL: func.func @rope_store_norm(
// ABSENT-NOT: attn.
// ABSENT-NOT: tensor<?x2x64xbf16>)
// ABSENT-NOT: tensor.empty({{.*}}) : tensor<?x2x64xbf16>
// ABSENT: return
func.func @rope_store_norm(%q: tensor<?x4x64xbf16>, %k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>, %blocks: tensor<?x2x2x16x2x64xbf16>,
                           %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %gq: tensor<64xbf16>, %gk: tensor<64xbf16>,
                           %f: tensor<64x64xf32>) -> (tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>) {
  %qr, %new = attn.rope_store %q, %k, %v into %blocks layer 1 freqs(%f) positions(%off, %len) pages(%lut)
      qk_norm(%gq, %gk) eps 1.0e-06
      : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<64x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xbf16>, tensor<64xbf16>, tensor<64xbf16>
  return %qr, %new : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>
}
