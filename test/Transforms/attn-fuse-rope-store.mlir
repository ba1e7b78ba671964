// RUN: attn-opt %s --attn-fuse-rope-store -split-input-file | FileCheck %s

// rope(q), rope(k), store(rope(k), v): one attn.rope_store.
// CHECK-LABEL: func @fuse
// CHECK-SAME: (%[[Q:[^:]*]]: tensor<?x4x64xbf16>, %[[K:[^:]*]]: tensor<?x2x64xbf16>, %[[V:[^:]*]]: tensor<?x2x64xbf16>, %[[B:[^:]*]]: tensor<?x2x2x16x2x64xbf16>, %[[OFF:[^:]*]]: tensor<?xi32>, %[[LEN:[^:]*]]: tensor<?xi32>, %[[LUT:[^:]*]]: tensor<?x?xi32>)
// CHECK: %[[F:.*]] = attn.rope_freqs
// CHECK-NOT: attn.rope %
// CHECK: %[[QR:.*]], %[[NB:.*]] = attn.rope_store %[[Q]], %[[K]], %[[V]] into %[[B]] layer 1 freqs(%[[F]]) positions(%[[OFF]], %[[LEN]]) pages(%[[LUT]]) :
// CHECK-NOT: attn.kv_cache_store
// CHECK: attn.paged_flash_attention %[[QR]], %[[NB]] layer 1
func.func @fuse(%q: tensor<?x4x64xbf16>, %k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>, %b: tensor<?x2x2x16x2x64xbf16>,
                %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xbf16> {
  %f = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<64x64xf32>
  %qr = attn.rope %q, %f positions(%off, %len) : tensor<?x4x64xbf16>, tensor<64x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xbf16>, tensor<64x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xbf16>
  %o = attn.paged_flash_attention %qr, %nb layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xbf16>
}

// -----

// Interleaved pairs carry over; a table operand (not attn.rope_freqs) too.
// CHECK-LABEL: func @interleaved_table
// CHECK: attn.rope_store %{{.*}}, %{{.*}}, %{{.*}} into %{{.*}} layer 0 freqs(%{{.*}}) positions(%{{.*}}, %{{.*}}) pages(%{{.*}}) interleaved :
func.func @interleaved_table(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                             %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qr = attn.rope %q, %f positions(%off, %len) interleaved : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) interleaved : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// The rotated k has another user: it must exist, so nothing is fused.
// CHECK-LABEL: func @k_other_user
// CHECK: attn.rope %
// CHECK: attn.rope %
// CHECK: attn.kv_cache_store
// CHECK-NOT: attn.rope_store
func.func @k_other_user(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                        %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qr = attn.rope %q, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %kr, %nb : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// q and k rotated with different tables.
// CHECK-LABEL: func @different_freqs
// CHECK-NOT: attn.rope_store
func.func @different_freqs(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                           %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>, %g: tensor<128x64xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qr = attn.rope %q, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %g positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// q rotated at other positions (cache lengths) than k.
// CHECK-LABEL: func @different_positions
// CHECK-NOT: attn.rope_store
func.func @different_positions(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                               %off: tensor<?xi32>, %len: tensor<?xi32>, %len2: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qr = attn.rope %q, %f positions(%off, %len2) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// The store writes k at other positions than the rope rotated it for.
// CHECK-LABEL: func @store_positions_differ
// CHECK-NOT: attn.rope_store
func.func @store_positions_differ(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                                  %off: tensor<?xi32>, %len: tensor<?xi32>, %len2: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qr = attn.rope %q, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len2) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// q interleaved, k not.
// CHECK-LABEL: func @interleaving_differs
// CHECK-NOT: attn.rope_store
func.func @interleaving_differs(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                                %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>) {
  %qr = attn.rope %q, %f positions(%off, %len) interleaved : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x2x64xf32>
}

// -----

// No q rope at all (k-only store): nothing to fuse with.
// CHECK-LABEL: func @no_q_rope
// CHECK: attn.kv_cache_store
// CHECK-NOT: attn.rope_store
func.func @no_q_rope(%k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                     %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> tensor<?x2x1x16x2x64xf32> {
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %nb : tensor<?x2x1x16x2x64xf32>
}

// -----

// The q rope's result is read before the store: the fused op (at the store)
// would not dominate that use.
// CHECK-LABEL: func @q_used_before_store
// CHECK-NOT: attn.rope_store
func.func @q_used_before_store(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %b: tensor<?x2x1x16x2x64xf32>,
                               %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> (index, tensor<?x2x1x16x2x64xf32>) {
  %c0 = arith.constant 0 : index
  %qr = attn.rope %q, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %d = tensor.dim %qr, %c0 : tensor<?x4x64xf32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x2x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x2x64xf32>
  return %d, %nb : index, tensor<?x2x1x16x2x64xf32>
}

// -----

// Dynamic kv heads: the group size of the fused op is unknown (and its CPU
// lowering needs static kv heads), so nothing is fused.
// CHECK-LABEL: func @dynamic_kv_heads
// CHECK: attn.kv_cache_store
// CHECK-NOT: attn.rope_store
func.func @dynamic_kv_heads(%q: tensor<?x4x64xf32>, %k: tensor<?x?x64xf32>, %v: tensor<?x?x64xf32>, %b: tensor<?x2x1x16x?x64xf32>,
                            %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %f: tensor<128x64xf32>)
    -> (tensor<?x4x64xf32>, tensor<?x2x1x16x?x64xf32>) {
  %qr = attn.rope %q, %f positions(%off, %len) : tensor<?x4x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %f positions(%off, %len) : tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  %nb = attn.kv_cache_store %kr, %v into %b layer 0 positions(%off, %len) pages(%lut)
      : tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x1x16x?x64xf32>
  return %qr, %nb : tensor<?x4x64xf32>, tensor<?x2x1x16x?x64xf32>
}
