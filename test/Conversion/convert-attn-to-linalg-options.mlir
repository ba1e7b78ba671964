// The pass options of convert-attn-to-linalg.
// decode-items=0: no split decode; every batch takes one work item per
// (sequence, kv head).
// RUN: attn-opt %s --convert-attn-to-linalg="decode-items=0" | FileCheck %s --check-prefix=CHECK-NOSPLIT
// decode-items=8: the chunks per sequence are ceil(8 / batch).
// RUN: attn-opt %s --convert-attn-to-linalg="decode-items=8" | FileCheck %s --check-prefix=CHECK-SPLIT
// The option reaches the pass through the pipeline and attn-compile: the
// split decode adds two parallel regions (chunks, combine) to the grouped one.
// RUN: attn-opt %s --attn-lower-to-cpu="decode-items=0" | FileCheck %s --check-prefix=CHECK-ONE-REGION
// RUN: attn-compile --target=cpu --emit=mlir --decode-items=0 %s -o - | FileCheck %s --check-prefix=CHECK-ONE-REGION
// RUN: attn-opt %s --attn-lower-to-cpu | FileCheck %s --check-prefix=CHECK-THREE-REGIONS
// RUN: attn-compile --target=cpu --emit=mlir %s -o - | FileCheck %s --check-prefix=CHECK-THREE-REGIONS
// Bad values: an error on the module, a non-zero exit.
// RUN: not attn-opt %s --convert-attn-to-linalg="decode-items=-1" 2>&1 | FileCheck %s --check-prefix=CHECK-BAD
// RUN: not attn-opt %s --convert-attn-to-linalg="q-tile-rows=0" 2>&1 | FileCheck %s --check-prefix=CHECK-BAD
// RUN: not attn-opt %s --convert-attn-to-linalg="kv-tile=0" 2>&1 | FileCheck %s --check-prefix=CHECK-BAD

// CHECK-NOSPLIT-LABEL: func.func @paged
// CHECK-NOSPLIT-NOT: tensor<?x?x4x64xf32>
// CHECK-NOSPLIT: scf.forall (%{{.*}}, %{{.*}}) in (%{{.*}}, 2) shared_outs
// CHECK-NOSPLIT-NOT: tensor<?x?x4x64xf32>
// CHECK-NOSPLIT: return

// CHECK-SPLIT-LABEL: func.func @paged
// CHECK-SPLIT: %[[BATCH:.+]] = tensor.dim %{{.*}}, %{{.*}} : tensor<?xi32>
// CHECK-SPLIT: scf.if
// CHECK-SPLIT: arith.ceildivsi %c8{{[_0-9]*}}, %{{.*}} : index
// CHECK-SPLIT: scf.forall (%{{.*}}, %{{.*}}) in (%[[BATCH]], %{{.*}}) shared_outs({{.*}}) -> (tensor<?x?x4x64xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>)

// CHECK-ONE-REGION-COUNT-1: omp.parallel
// CHECK-ONE-REGION-NOT: omp.parallel

// CHECK-THREE-REGIONS-COUNT-3: omp.parallel
// CHECK-THREE-REGIONS-NOT: omp.parallel

// CHECK-BAD: error: q-tile-rows and kv-tile must be positive, vector-lanes, packed-min-rows, decode-items and int8-max-rows >= 0
func.func @paged(%q: tensor<?x4x64xf32>, %blocks: tensor<?x2x2x16x2x64xf32>,
                 %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xf32> {
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xf32>
}
