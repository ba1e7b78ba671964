// The checks of scalars and sizes (test/Transforms/attn-insert-entry-checks-values.mlir
// has those of the index tensors' values, which index-values=false leaves out).
// RUN: attn-opt %s --attn-insert-entry-checks=index-values=false -split-input-file -verify-diagnostics | FileCheck %s

// One check per (layer, cache) pair, at the start, before any op: the i32
// layer against dim 2 of the blocks argument the store writes and the
// attention reads (through the store's result).
// CHECK-LABEL: func.func @store_then_attend(
// CHECK-SAME: %[[L:[a-z0-9_]+]]: i32, %{{[a-z0-9_]+}}: tensor<?x4x64xf32>, %{{[a-z0-9_]+}}: tensor<?x2x64xf32>, %[[B:[a-z0-9_]+]]: tensor<?x2x?x16x2x64xf32>,
// CHECK-SAME: %[[OFF:[a-z0-9_]+]]: tensor<?xi32>, %[[LEN:[a-z0-9_]+]]: tensor<?xi32>, %[[LUT:[a-z0-9_]+]]: tensor<?x?xi32>
// CHECK-NEXT: %[[LI:.*]] = arith.index_cast %[[L]] : i32 to index
// CHECK-NEXT: %[[C2:.*]] = arith.constant 2 : index
// CHECK-NEXT: %[[N:.*]] = tensor.dim %[[B]], %[[C2]]
// CHECK-NEXT: %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT: %[[GE:.*]] = arith.cmpi sge, %[[LI]], %[[C0]] : index
// CHECK-NEXT: %[[LT:.*]] = arith.cmpi slt, %[[LI]], %[[N]] : index
// CHECK-NEXT: %[[OK:.*]] = arith.andi %[[GE]], %[[LT]] : i1
// CHECK-NEXT: cf.assert %[[OK]], "attn: a run-time layer index is outside the KV cache (not in [0, num_layers))" {attn.status = 1 : i32}
// Then the batch: B + 1 row offsets and a lookup row per sequence, for the
// B cache lengths (once for both ops).
// CHECK: %[[NOFF:.*]] = tensor.dim %[[OFF]], %{{.*}} : tensor<?xi32>
// CHECK: %[[NLEN:.*]] = tensor.dim %[[LEN]], %{{.*}} : tensor<?xi32>
// CHECK: %[[NLEN1:.*]] = arith.addi %[[NLEN]], %{{.*}} : index
// CHECK-NEXT: %[[SAME:.*]] = arith.cmpi eq, %[[NOFF]], %[[NLEN1]] : index
// CHECK-NEXT: cf.assert %[[SAME]], "attn: row_offsets, cache_lengths and lookup_table (or the query and key row offsets) disagree on the batch size" {attn.status = 2 : i32}
// CHECK: %[[NLUT:.*]] = tensor.dim %[[LUT]], %{{.*}} : tensor<?x?xi32>
// CHECK: %[[NLEN2:.*]] = tensor.dim %[[LEN]], %{{.*}} : tensor<?xi32>
// CHECK-NEXT: %[[ROWS:.*]] = arith.cmpi eq, %[[NLUT]], %[[NLEN2]] : index
// CHECK-NEXT: cf.assert %[[ROWS]], {{.*}} {attn.status = 2 : i32}
// CHECK-NEXT: attn.kv_cache_store
// CHECK-NOT: cf.assert
func.func @store_then_attend(%l: i32, %q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %blocks: tensor<?x2x?x16x2x64xf32>,
                             %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> (tensor<?x4x64xf32>, tensor<?x2x?x16x2x64xf32>) {
  %b = attn.kv_cache_store %k, %k into %blocks layer(%l : i32) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x?x16x2x64xf32>
  %o = attn.paged_flash_attention %q, %b layer(%l : i32) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x?x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o, %b : tensor<?x4x64xf32>, tensor<?x2x?x16x2x64xf32>
}

// -----

// A static layer count is a constant; an index layer needs no cast. Private
// functions get no check; a static layer gets only the batch checks.
// CHECK-LABEL: func.func @static_count(
// CHECK-SAME: %[[L:[a-z0-9_]+]]: index
// CHECK-NEXT: %[[N:.*]] = arith.constant 3 : index
// CHECK: arith.cmpi slt, %[[L]], %[[N]] : index
// CHECK: cf.assert
// CHECK-LABEL: func.func private @helper(
// CHECK-NOT: cf.assert
// CHECK-LABEL: func.func @static_layer(
// CHECK-NOT: attn.status = 1
// CHECK: cf.assert {{.*}} {attn.status = 2 : i32}
// CHECK-NOT: attn.status = 1
func.func @static_count(%l: index, %k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                        %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %b = attn.kv_cache_store %k, %k into %blocks layer(%l : index) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}
func.func private @helper(%l: index, %k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                          %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %b = attn.kv_cache_store %k, %k into %blocks layer(%l : index) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}
func.func @static_layer(%k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                        %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %b = attn.kv_cache_store %k, %k into %blocks layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}

// -----

// A layer computed inside the function cannot be checked before the work.
func.func @computed_layer(%l: index, %k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                          %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %c1 = arith.constant 1 : index
  %next = arith.addi %l, %c1 : index
  // expected-error @+1 {{needs its run-time layer index to be an argument of the entry function (or a cast of one)}}
  %b = attn.kv_cache_store %k, %k into %blocks layer(%next : index) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}

// -----

// A dynamic layer count needs the blocks to be an argument.
func.func @computed_blocks(%l: index, %k: tensor<?x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>,
                           %p: index, %n: index) -> tensor<?x2x?x16x2x64xf32> {
  %blocks = tensor.empty(%p, %n) : tensor<?x2x?x16x2x64xf32>
  // expected-error @+1 {{has a dynamic layer count and cache blocks that are not an argument of the entry function}}
  %b = attn.kv_cache_store %k, %k into %blocks layer(%l : index) positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x?x16x2x64xf32>
  return %b : tensor<?x2x?x16x2x64xf32>
}

// -----

// Explicit attention: as many query as key row offsets.
// CHECK-LABEL: func.func @explicit_attention(
// CHECK-SAME: %[[QOFF:[a-z0-9_]+]]: tensor<?xi32>, %[[KVOFF:[a-z0-9_]+]]: tensor<?xi32>
// CHECK: %[[NQ:.*]] = tensor.dim %[[QOFF]]
// CHECK: %[[NKV:.*]] = tensor.dim %[[KVOFF]]
// CHECK-NEXT: %[[SAME:.*]] = arith.cmpi eq, %[[NQ]], %[[NKV]] : index
// CHECK-NEXT: cf.assert %[[SAME]], {{.*}} {attn.status = 2 : i32}
// CHECK-NEXT: attn.flash_attention
func.func @explicit_attention(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %qoff: tensor<?xi32>,
                              %kvoff: tensor<?xi32>) -> tensor<?x4x64xf32> {
  %o = attn.flash_attention %q, %k, %k rows(%qoff, %kvoff)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %o : tensor<?x4x64xf32>
}
