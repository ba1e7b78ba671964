// RUN: attn-opt %s --attn-unpack-cache-arguments -split-input-file | FileCheck %s
// RUN: attn-opt %s --attn-unpack-cache-arguments --canonicalize -split-input-file | FileCheck %s --check-prefix=CANON

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// A cache argument and a cache result become blocks, cache lengths and lookup
// table each, in place; inside, the arguments are packed again with
// paged_cache.make and the returned cache is taken apart with
// paged_cache.parts.
// CHECK-LABEL: func.func @layer
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xf32>, %[[B:[^:]*]]: tensor<?x2x2x16x2x64xf32>, %[[L:[^:]*]]: tensor<?xi32>, %[[T:[^:]*]]: tensor<?x?xi32>,
// CHECK-SAME: %[[K:[^:]*]]: tensor<?x2x64xf32>, %[[V:[^:]*]]: tensor<?x2x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>)
// CHECK-SAME: -> (tensor<?x256xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>) {
// CHECK-NEXT: %[[C:.*]] = attn.paged_cache.make %[[B]], %[[L]], %[[T]] : tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32> -> !attn.paged_kv_cache
// CHECK-NEXT: %[[B0:.*]], %[[L0:.*]], %[[T0:.*]] = attn.paged_cache.parts %[[C]]
// CHECK-NEXT: %[[NEW:.*]] = attn.kv_cache_store %[[K]], %[[V]] into %[[B0]] layer 1 positions(%[[OFF]], %[[L0]]) pages(%[[T0]])
// CHECK-NEXT: %[[C2:.*]] = attn.paged_cache.make %[[NEW]], %[[L0]], %[[T0]]
// CHECK-NEXT: %[[B1:.*]], %[[L1:.*]], %[[T1:.*]] = attn.paged_cache.parts %[[C2]]
// CHECK-NEXT: return %[[X]], %[[B1]], %[[L1]], %[[T1]] : tensor<?x256xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>

// The call follows the new signature: its cache operand is taken apart
// before it and its cache result packed again after it.
// CHECK-LABEL: func.func @caller
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xf32>, %[[B:[^:]*]]: tensor<?x2x2x16x2x64xf32>, %[[L:[^:]*]]: tensor<?xi32>, %[[T:[^:]*]]: tensor<?x?xi32>,
// CHECK-SAME: %[[K:[^:]*]]: tensor<?x2x64xf32>, %[[V:[^:]*]]: tensor<?x2x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>)
// CHECK-SAME: -> (tensor<?x256xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>) {
// CHECK-NEXT: %[[C:.*]] = attn.paged_cache.make %[[B]], %[[L]], %[[T]]
// CHECK-NEXT: %[[B0:.*]], %[[L0:.*]], %[[T0:.*]] = attn.paged_cache.parts %[[C]]
// CHECK-NEXT: %[[R:.*]]:4 = call @layer(%[[X]], %[[B0]], %[[L0]], %[[T0]], %[[K]], %[[V]], %[[OFF]])
// CHECK-SAME: : (tensor<?x256xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>)
// CHECK-SAME: -> (tensor<?x256xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>)
// CHECK-NEXT: %[[C2:.*]] = attn.paged_cache.make %[[R]]#1, %[[R]]#2, %[[R]]#3
// CHECK-NEXT: %[[B1:.*]], %[[L1:.*]], %[[T1:.*]] = attn.paged_cache.parts %[[C2]]
// CHECK-NEXT: return %[[R]]#0, %[[B1]], %[[L1]], %[[T1]]

// A function without caches is left alone, argument attributes included.
// CHECK-LABEL: func.func @no_cache
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x256xf32> {attn.keep}) -> tensor<?x256xf32> {
// CHECK-NEXT: return %[[X]] : tensor<?x256xf32>

// After canonicalisation every make/parts pair has cancelled: the tensors
// flow from the arguments to the store, the call and the returns.
// CANON-LABEL: func.func @layer
// CANON-SAME: (%[[X:[^:]*]]: tensor<?x256xf32>, %[[B:[^:]*]]: tensor<?x2x2x16x2x64xf32>, %[[L:[^:]*]]: tensor<?xi32>, %[[T:[^:]*]]: tensor<?x?xi32>,
// CANON-SAME: %[[K:[^:]*]]: tensor<?x2x64xf32>, %[[V:[^:]*]]: tensor<?x2x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>)
// CANON-NEXT: %[[NEW:.*]] = attn.kv_cache_store %[[K]], %[[V]] into %[[B]] layer 1 positions(%[[OFF]], %[[L]]) pages(%[[T]])
// CANON-NEXT: return %[[X]], %[[NEW]], %[[L]], %[[T]] :
// CANON-LABEL: func.func @caller
// CANON-SAME: (%[[X:[^:]*]]: tensor<?x256xf32>, %[[B:[^:]*]]: tensor<?x2x2x16x2x64xf32>, %[[L:[^:]*]]: tensor<?xi32>, %[[T:[^:]*]]: tensor<?x?xi32>,
// CANON-SAME: %[[K:[^:]*]]: tensor<?x2x64xf32>, %[[V:[^:]*]]: tensor<?x2x64xf32>, %[[OFF:[^:]*]]: tensor<?xi32>)
// CANON-NEXT: %[[R:.*]]:4 = call @layer(%[[X]], %[[B]], %[[L]], %[[T]], %[[K]], %[[V]], %[[OFF]])
// CANON-NEXT: return %[[R]]#0, %[[R]]#1, %[[R]]#2, %[[R]]#3 :
// CANON-LABEL: func.func @no_cache
// CANON-NOT: attn.paged_cache
func.func @layer(%x: tensor<?x256xf32>, %c: !cache, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %off: tensor<?xi32>)
    -> (tensor<?x256xf32>, !cache) {
  %blocks, %lengths, %lookup = attn.paged_cache.parts %c : !cache
  %new = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %lengths) pages(%lookup)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xf32>
  %c2 = attn.paged_cache.make %new, %lengths, %lookup
      : tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32> -> !cache
  return %x, %c2 : tensor<?x256xf32>, !cache
}

func.func @caller(%x: tensor<?x256xf32>, %c: !cache, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %off: tensor<?xi32>)
    -> (tensor<?x256xf32>, !cache) {
  %y, %c2 = call @layer(%x, %c, %k, %v, %off)
      : (tensor<?x256xf32>, !cache, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>) -> (tensor<?x256xf32>, !cache)
  return %y, %c2 : tensor<?x256xf32>, !cache
}

func.func @no_cache(%x: tensor<?x256xf32> {attn.keep}) -> tensor<?x256xf32> {
  return %x : tensor<?x256xf32>
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>
!cache8 = !attn.paged_kv_cache<#attn.kv_cache<page_size = 8, num_layers = 1, kv_heads = 1, head_dim = 32, dtype = bf16>>

// Several caches, in any position, each become their own three tensors in
// order; declarations change signature too.
// CHECK-LABEL: func.func private @decl
// CHECK-SAME: (tensor<?x2x1x8x1x32xbf16>, tensor<?xi32>, tensor<?x?xi32>)
// CHECK-SAME: -> (tensor<?x2x1x8x1x32xbf16>, tensor<?xi32>, tensor<?x?xi32>)
// CHECK-LABEL: func.func @swap
// CHECK-SAME: (%[[B16:[^:]*]]: tensor<?x2x2x16x2x64xf32>, %[[L16:[^:]*]]: tensor<?xi32>, %[[T16:[^:]*]]: tensor<?x?xi32>, %[[Y:[^:]*]]: tensor<4xf32>,
// CHECK-SAME: %[[B8:[^:]*]]: tensor<?x2x1x8x1x32xbf16>, %[[L8:[^:]*]]: tensor<?xi32>, %[[T8:[^:]*]]: tensor<?x?xi32>)
// CHECK-SAME: -> (tensor<?x2x1x8x1x32xbf16>, tensor<?xi32>, tensor<?x?xi32>, tensor<4xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>)
// CANON-LABEL: func.func @swap
// CANON-SAME: (%[[B16:[^:]*]]: tensor<?x2x2x16x2x64xf32>, %[[L16:[^:]*]]: tensor<?xi32>, %[[T16:[^:]*]]: tensor<?x?xi32>, %[[Y:[^:]*]]: tensor<4xf32>,
// CANON-SAME: %[[B8:[^:]*]]: tensor<?x2x1x8x1x32xbf16>, %[[L8:[^:]*]]: tensor<?xi32>, %[[T8:[^:]*]]: tensor<?x?xi32>)
// CANON-NEXT: return %[[B8]], %[[L8]], %[[T8]], %[[Y]], %[[B16]], %[[L16]], %[[T16]] :
func.func private @decl(!cache8) -> !cache8

func.func @swap(%c: !cache, %y: tensor<4xf32>, %d: !cache8) -> (!cache8, tensor<4xf32>, !cache) {
  return %d, %y, %c : !cache8, tensor<4xf32>, !cache
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// Attributes stay with the values they belong to; the parts of a cache get none.
// CHECK-LABEL: func.func @keeps_attributes
// CHECK-SAME: (%{{.*}}: tensor<4xf32> {attn.keep = 1 : i64}, %{{.*}}: tensor<?x2x2x16x2x64xf32>, %{{.*}}: tensor<?xi32>, %{{.*}}: tensor<?x?xi32>, %{{.*}}: tensor<2xf32> {attn.also})
// CHECK-SAME: -> (tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?x?xi32>, tensor<4xf32> {attn.res})
func.func @keeps_attributes(%x: tensor<4xf32> {attn.keep = 1 : i64}, %c: !cache {attn.gone}, %y: tensor<2xf32> {attn.also})
    -> (!cache, tensor<4xf32> {attn.res}) {
  return %c, %x : !cache, tensor<4xf32>
}
