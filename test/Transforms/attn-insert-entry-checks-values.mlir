// RUN: attn-opt %s --attn-insert-entry-checks --cse -split-input-file -verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --attn-insert-entry-checks=index-values=false -split-input-file | FileCheck %s --check-prefix=NO-VALUES

// The checks of the index tensors' values, after those of their sizes, each
// a loop folding an i1 and asserted with its status; CSE merges the loops
// that differ only in the rows they compare with.
// CHECK-LABEL: func.func @rope_store_attend(
// CHECK-SAME: %[[Q:[a-z0-9_]+]]: tensor<?x4x64xf32>, %[[K:[a-z0-9_]+]]: tensor<?x2x64xf32>, %[[B:[a-z0-9_]+]]: tensor<?x2x3x16x2x64xf32>,
// CHECK-SAME: %[[OFF:[a-z0-9_]+]]: tensor<?xi32>, %[[LEN:[a-z0-9_]+]]: tensor<?xi32>, %[[LUT:[a-z0-9_]+]]: tensor<?x?xi32>
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: %[[NOFF:.*]] = tensor.dim %[[OFF]], %[[C0]]
// CHECK: %[[NLEN:.*]] = tensor.dim %[[LEN]], %[[C0]]
// CHECK: {attn.status = 2 : i32}
// CHECK: %[[NLUT:.*]] = tensor.dim %[[LUT]], %[[C0]]
// CHECK: {attn.status = 2 : i32}
//
// Row offsets: entry 0 is 0, each entry >= the previous one, at least one
// entry, the last one the rows of q (and of k).
// CHECK: %[[QROWS:.*]] = tensor.dim %[[Q]], %[[C0]]
// CHECK: %[[TRUE:.*]] = arith.constant true
// CHECK: %[[ROWS:.*]]:2 = scf.for %[[I:.*]] = %[[C0]] to %[[NOFF]] step %{{.*}} iter_args(%[[OK:.*]] = %[[TRUE]], %[[PREV:.*]] = %[[C0]]) -> (i1, index) {
// CHECK-NEXT: %[[E:.*]] = tensor.extract %[[OFF]][%[[I]]]
// CHECK-NEXT: %[[EI:.*]] = arith.index_cast %[[E]] : i32 to index
// CHECK-NEXT: %[[FIRST:.*]] = arith.cmpi eq, %[[I]], %[[C0]]
// CHECK-NEXT: %[[ZERO:.*]] = arith.cmpi eq, %[[EI]], %[[C0]]
// CHECK-NEXT: %[[UP:.*]] = arith.cmpi sge, %[[EI]], %[[PREV]]
// CHECK-NEXT: %[[STEP:.*]] = arith.select %[[FIRST]], %[[ZERO]], %[[UP]] : i1
// CHECK-NEXT: %[[NEXT:.*]] = arith.andi %[[OK]], %[[STEP]]
// CHECK-NEXT: scf.yield %[[NEXT]], %[[EI]]
// CHECK: %[[NONEMPTY:.*]] = arith.cmpi sge, %[[NOFF]], %{{.*}}
// CHECK-NEXT: %[[END:.*]] = arith.cmpi eq, %[[ROWS]]#1, %[[QROWS]]
// CHECK: cf.assert {{.*}}, "attn: row_offsets must start at 0, never decrease and end at the number of rows" {attn.status = 3 : i32}
// CHECK: %[[KROWS:.*]] = tensor.dim %[[K]], %[[C0]]
// CHECK-NEXT: arith.cmpi eq, %[[ROWS]]#1, %[[KROWS]]
// CHECK: {attn.status = 3 : i32}
//
// CHECK: scf.for %[[S:.*]] = %[[C0]] to %[[NLEN]]
// CHECK-NEXT: tensor.extract %[[LEN]][%[[S]]]
// CHECK: arith.cmpi sge
// CHECK: cf.assert {{.*}}, "attn: a cache length is negative" {attn.status = 4 : i32}
//
// Pages: one loop over the sequences readable in all three tensors; the
// attention reads every page the store writes, so the store adds none.
// CHECK: %[[WIDTH:.*]] = tensor.dim %[[LUT]], %{{.*}} : tensor<?x?xi32>
// CHECK: %[[B1:.*]] = arith.subi %[[NOFF]], %{{.*}}
// CHECK-NEXT: %[[B2:.*]] = arith.minsi %[[NLEN]], %[[B1]]
// CHECK-NEXT: %[[SEQS:.*]] = arith.minsi %[[B2]], %[[NLUT]]
// CHECK: scf.for %{{.*}} = %[[C0]] to %[[SEQS]]
// CHECK: %[[PAGE:.*]] = tensor.dim %[[B]], %{{.*}} : tensor<?x2x3x16x2x64xf32>
// CHECK: %[[END:.*]] = arith.addi
// CHECK: %[[NPAGES:.*]] = arith.ceildivsi %[[END]], %[[PAGE]]
// CHECK-NEXT: arith.cmpi sle, %[[NPAGES]], %[[WIDTH]]
// CHECK: cf.assert {{.*}} {attn.status = 5 : i32}
// CHECK-NOT: attn.status = 5
// CHECK: %[[P:.*]] = tensor.dim %[[B]], %[[C0]] : tensor<?x2x3x16x2x64xf32>
// CHECK: scf.for %[[S:.*]] = %[[C0]] to %[[SEQS]]
// CHECK: %[[LAST:.*]] = arith.minsi %{{.*}}, %[[WIDTH]]
// CHECK-NEXT: %[[ACTIVE_LAST:.*]] = arith.select %{{.*}}, %[[LAST]], %{{.*}} : index
// CHECK-NEXT: scf.for %[[PG:.*]] = %{{.*}} to %[[ACTIVE_LAST]]
// CHECK-NEXT: %[[ID:.*]] = tensor.extract %[[LUT]][%[[S]], %[[PG]]]
// CHECK-NEXT: %[[IDI:.*]] = arith.index_cast %[[ID]]
// CHECK-NEXT: arith.cmpi sge, %[[IDI]], %[[C0]]
// CHECK-NEXT: arith.cmpi slt, %[[IDI]], %[[P]]
// CHECK: cf.assert {{.*}}, "attn: a page id the call touches is negative or not below the number of pages" {attn.status = 6 : i32}
// CHECK-NOT: attn.status = 6
//
// RoPE: the end position against the table's 256 rows.
// CHECK: %[[C256:.*]] = arith.constant 256 : index
// CHECK-NEXT: scf.for
// CHECK: arith.cmpi sle, %{{.*}}, %[[C256]]
// CHECK: cf.assert {{.*}} {attn.status = 7 : i32}
// CHECK-NEXT: attn.rope_freqs
// CHECK-NOT: cf.assert
// NO-VALUES-LABEL: func.func @rope_store_attend(
// NO-VALUES-NOT: scf.for
// NO-VALUES-NOT: attn.status = 3
// NO-VALUES: attn.rope_store
func.func @rope_store_attend(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                             %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> (tensor<?x4x64xf32>, tensor<?x2x3x16x2x64xf32>) {
  %freqs = attn.rope_freqs #attn.rope<theta = 10000.0> -> tensor<256x64xf32>
  %qr, %b = attn.rope_store %q, %k, %k into %blocks layer 1 freqs(%freqs) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<256x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  %o = attn.paged_flash_attention %qr, %b layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x3x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o, %b : tensor<?x4x64xf32>, tensor<?x2x3x16x2x64xf32>
}

// -----

// A store alone touches the pages of the new positions only: from
// cache_length / page.
// CHECK-LABEL: func.func @store(
// CHECK-SAME: %[[LEN:[a-z0-9_]+]]: tensor<?xi32>, %{{[a-z0-9_]+}}: tensor<?x?xi32>
// CHECK: {attn.status = 5 : i32}
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK: tensor.extract %[[LEN]]
// CHECK-NEXT: %[[CACHED:.*]] = arith.index_cast %{{.*}} : i32 to index
// CHECK: %[[FIRST:.*]] = arith.divsi %[[CACHED]], %{{.*}} : index
// CHECK: scf.for %{{.*}} = %[[FIRST]] to
// CHECK: {attn.status = 6 : i32}
func.func @store(%k: tensor<?x2x64xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                 %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %b = attn.kv_cache_store %k, %k into %blocks layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}

// -----

// The rows of a projection's output are those of its input argument.
// CHECK-LABEL: func.func @projected(
// CHECK-SAME: %[[X:[a-z0-9_]+]]: tensor<?x128xf32>
// CHECK: %[[XROWS:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x128xf32>
// CHECK: arith.cmpi eq, %{{.*}}#1, %[[XROWS]]
// CHECK: {attn.status = 3 : i32}
func.func @projected(%x: tensor<?x128xf32>, %w: tensor<128x128xf32>, %blocks: tensor<?x2x3x16x2x64xf32>,
                     %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  %y = attn.linear %x, %w : tensor<?x128xf32>, tensor<128x128xf32> -> tensor<?x128xf32>
  %c0 = arith.constant 0 : index
  %t = tensor.dim %y, %c0 : tensor<?x128xf32>
  %k = tensor.expand_shape %y [[0], [1, 2]] output_shape [%t, 2, 64] : tensor<?x128xf32> into tensor<?x2x64xf32>
  %b = attn.kv_cache_store %k, %k into %blocks layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}

// -----

// Rows known only inside the function cannot be checked before the work.
func.func @computed_rows(%n: index, %blocks: tensor<?x2x3x16x2x64xf32>,
                         %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xf32> {
  // expected-error @+1 {{cannot check the row offsets of this tensor at the start of the function}}
  %k = tensor.empty(%n) : tensor<?x2x64xf32>
  %b = attn.kv_cache_store %k, %k into %blocks layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xf32>
  return %b : tensor<?x2x3x16x2x64xf32>
}
