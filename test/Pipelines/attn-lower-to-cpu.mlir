// The whole CPU pipeline: LLVM dialect, C entry point, OpenMP threads.
// RUN: attn-opt %s --attn-lower-to-cpu -o %t.llvm.mlir
// RUN: FileCheck %s --check-prefix=LLVM < %t.llvm.mlir
// RUN: FileCheck %s --check-prefix=ONLY-LLVM < %t.llvm.mlir
//
// The pipeline of lib/Pipelines/CPUPipeline.cpp (default options) up to the
// entry-point ABI: the KV cache must be written in place.
// RUN: attn-opt %s --pass-pipeline="builtin.module(attn-expand-composite,attn-unpack-cache-arguments,canonicalize,cse,convert-attn-to-linalg{q-tile-rows=64 kv-tile=64 vector-lanes=8},canonicalize,one-shot-bufferize{bufferize-function-boundaries allow-return-allocs-from-loops function-boundary-type-conversion=identity-layout-map},canonicalize,attn-cpu-entry-abi)" | FileCheck %s --check-prefix=CHECK
//
// The same with the fusion passes that the pipeline runs by default
// (attn.rope_store): the rotated keys go straight into the cache argument.
// RUN: attn-opt %s --pass-pipeline="builtin.module(attn-expand-composite,attn-fuse-projection-epilogues,attn-fuse-qkv,attn-fuse-rope-store,attn-fuse-qk-norm-rope,attn-unpack-cache-arguments,canonicalize,cse,convert-attn-to-linalg{q-tile-rows=64 kv-tile=64 vector-lanes=8},canonicalize,one-shot-bufferize{bufferize-function-boundaries allow-return-allocs-from-loops function-boundary-type-conversion=identity-layout-map},canonicalize,attn-cpu-entry-abi)" | FileCheck %s --check-prefix=FUSED
//
// fuse=false leaves the ops apart (and still reaches LLVM); the default
// pipeline fuses them.
// RUN: attn-opt %s --attn-lower-to-cpu="fuse=false" | FileCheck %s --check-prefix=ONLY-LLVM
// RUN: attn-opt %s --attn-lower-to-cpu="fuse=false" --mlir-print-ir-after=convert-attn-to-linalg 2>&1 | FileCheck %s --check-prefix=NOFUSE-IR
// RUN: attn-opt %s --attn-lower-to-cpu --mlir-print-ir-after=attn-fuse-qk-norm-rope 2>&1 | FileCheck %s --check-prefix=FUSE-IR
// NOFUSE-IR-NOT: attn.rope_store
// NOFUSE-IR-NOT: IR Dump After AttnFuse
// FUSE-IR: IR Dump After AttnFuseQKNormRope
// FUSE-IR: attn.rope_store
// FUSE-IR-NOT: attn.kv_cache_store

// FUSED-LABEL: func.func @small_layer(
// FUSED-SAME: %[[BLOCKS:[^:]*]]: memref<?x2x2x16x2x64xf32>
// FUSED-NOT: memref.alloc{{.*}}x2x2x16x2x64
// FUSED-NOT: memref.copy
// FUSED-NOT: linalg.copy{{.*}}x2x2x16x2x64xf32>
// No rotated-key tensor: each key head is rotated in registers and written
// into its slot of the cache argument, then the value row is copied.
// FUSED-NOT: memref.alloc{{.*}} : memref<?x2x64xf32>
// FUSED: vector.shuffle
// FUSED: vector.transfer_write %{{.*}}, %[[BLOCKS]][%[[PAGE:[^,]*]], %c0, %c1, %[[SLOT:[^,]*]], %{{[^,]*}}, %c0] {in_bounds = [true]} : vector<64xf32>, memref<?x2x2x16x2x64xf32>
// FUSED: %[[VDST:.*]] = memref.subview %[[BLOCKS]][%[[PAGE]], 1, 1, %[[SLOT]], 0, 0] [1, 1, 1, 1, 2, 64]
// FUSED-NEXT: linalg.copy ins(%{{.*}} : {{.*}}) outs(%[[VDST]] : {{.*}})
// FUSED-NOT: memref.alloc{{.*}}x2x2x16x2x64
// FUSED-NOT: memref.copy
// FUSED-NOT: linalg.copy{{.*}}x2x2x16x2x64xf32>
// FUSED: vector.transfer_read %[[BLOCKS]][%{{.*}}, %c1, %c1, %{{.*}}, %{{.*}}, %{{.*}}]
// FUSED-NOT: memref.alloc{{.*}}x2x2x16x2x64
// FUSED-NOT: memref.copy
// FUSED: return{{$}}

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = f32>>

// After bufferisation and the ABI: the cache arguments are the three
// memrefs, the caches are no result and no out-parameter (the blocks are
// updated through the argument), the layer output is the only
// out-parameter, and nothing returns.
// CHECK-LABEL: func.func @small_layer(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x256xf32>, %[[OFF:[^:]*]]: memref<?xi32>,
// CHECK-SAME: %[[BLOCKS:[^:]*]]: memref<?x2x2x16x2x64xf32>, %[[LENS:[^:]*]]: memref<?xi32>, %[[LUT:[^:]*]]: memref<?x?xi32>,
// CHECK-SAME: %[[WQ:[^:]*]]: memref<256x256xf32>, %[[WK:[^:]*]]: memref<128x256xf32>, %[[WV:[^:]*]]: memref<128x256xf32>, %[[WO:[^:]*]]: memref<256x256xf32>,
// CHECK-SAME: %[[OUT:[^:]*]]: memref<?x256xf32>) attributes {llvm.emit_c_interface} {
// No copy of the cache anywhere: no allocation of its type, no copy from or
// into the whole blocks, only the per-row stores into views of the argument.
// CHECK-NOT: memref.alloc{{.*}}x2x2x16x2x64
// CHECK-NOT: memref.copy
// CHECK-NOT: linalg.copy{{.*}}x2x2x16x2x64xf32>
// The per-row store (inside the scf.if that checks the page):
// CHECK: %[[KROW:.*]] = memref.subview %{{.*}}[%[[ROW:.*]], 0, 0] [1, 2, 64] [1, 1, 1] : memref<?x2x64xf32{{.*}}> to memref<2x64xf32
// CHECK-NEXT: %[[KDST:.*]] = memref.subview %[[BLOCKS]][%[[PAGE:.*]], 0, 1, %[[SLOT:.*]], 0, 0] [1, 1, 1, 1, 2, 64] [1, 1, 1, 1, 1, 1] : memref<?x2x2x16x2x64xf32> to memref<2x64xf32
// CHECK-NEXT: linalg.copy ins(%[[KROW]] : {{.*}}) outs(%[[KDST]] : {{.*}})
// CHECK-NEXT: %[[VROW:.*]] = memref.subview %{{.*}}[%[[ROW]], 0, 0] [1, 2, 64] [1, 1, 1] : memref<?x2x64xf32{{.*}}> to memref<2x64xf32
// CHECK-NEXT: %[[VDST:.*]] = memref.subview %[[BLOCKS]][%[[PAGE]], 1, 1, %[[SLOT]], 0, 0] [1, 1, 1, 1, 2, 64] [1, 1, 1, 1, 1, 1] : memref<?x2x2x16x2x64xf32> to memref<2x64xf32
// CHECK-NEXT: linalg.copy ins(%[[VROW]] : {{.*}}) outs(%[[VDST]] : {{.*}})
// CHECK-NEXT: }
// CHECK-NOT: memref.alloc{{.*}}x2x2x16x2x64
// CHECK-NOT: memref.copy
// CHECK-NOT: linalg.copy{{.*}}x2x2x16x2x64xf32>
// Attention reads the keys and values from the same argument.
// CHECK: scf.forall
// CHECK: vector.transfer_read %[[BLOCKS]][%{{.*}}, %c1, %c1, %{{.*}}, %{{.*}}, %{{.*}}]
// CHECK-NOT: memref.alloc{{.*}}x2x2x16x2x64
// CHECK-NOT: memref.copy
// CHECK-NOT: linalg.copy{{.*}}x2x2x16x2x64xf32>
// The output projection writes the out-parameter.
// CHECK: memref.subview %[[OUT]]
// CHECK-NOT: memref.alloc{{.*}}x2x2x16x2x64
// CHECK-NOT: memref.copy
// CHECK-NOT: linalg.copy{{.*}}x2x2x16x2x64xf32>
// CHECK: return{{$}}
// CHECK-NEXT: }

// LLVM-LABEL: llvm.func @small_layer(
// LLVM: omp.parallel
// LLVM-NEXT: omp.wsloop
// LLVM: llvm.func @_mlir_ciface_small_layer(
// 9 arguments and the out-parameter, all descriptors passed by pointer.
// LLVM-SAME: %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr,
// LLVM-SAME: %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr, %{{[^:]*}}: !llvm.ptr)
// LLVM-SAME: attributes {llvm.emit_c_interface}
// LLVM: llvm.call @small_layer(

// Nothing but LLVM and OpenMP is left.
// ONLY-LLVM-NOT: attn.
// ONLY-LLVM-NOT: func.func
// ONLY-LLVM-NOT: {{[ "](arith|math|memref|scf|vector|linalg|tensor|cf|bufferization)\.[a-z_]+}}
// ONLY-LLVM-NOT: unrealized_conversion_cast
// ONLY-LLVM-NOT: llvm.call @{{(expf|exp2f|memrefCopy)}}
func.func @small_layer(%x: tensor<?x256xf32>, %off: tensor<?xi32>, %c: !cache, %wq: tensor<256x256xf32>,
                       %wk: tensor<128x256xf32>, %wv: tensor<128x256xf32>, %wo: tensor<256x256xf32>)
    -> (tensor<?x256xf32>, !cache) {
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xf32>, tensor<?xi32>, !cache, tensor<256x256xf32>, tensor<128x256xf32>, tensor<128x256xf32>, tensor<256x256xf32>)
      -> (tensor<?x256xf32>, !cache)
  return %o, %c2 : tensor<?x256xf32>, !cache
}
