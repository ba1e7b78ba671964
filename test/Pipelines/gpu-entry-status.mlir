// RUN: attn-opt %s --attn-insert-entry-checks=index-values=false --convert-attn-to-gpu --canonicalize --gpu-async-region --attn-entry-status | FileCheck %s
// RUN: attn-opt %s --attn-insert-entry-checks=index-values=false --convert-attn-to-gpu=validate-index-values=true --canonicalize --gpu-async-region --attn-entry-status | FileCheck %s --check-prefix=VALIDATE

// The GPU host function of a layer-generic step (the middle of
// attn-lower-to-nvvm): the layer check runs on the host before anything is
// enqueued; the kernels get the layer as an argument (clamped into the cache).
// CHECK-LABEL: func.func @store_attend(
// CHECK-SAME: %[[L:[a-z0-9_]+]]: i32, {{.*}}, %[[B:[a-z0-9_]+]]: memref<?x2x3x16x2x64xbf16>, {{.*}}) -> i32 attributes {llvm.emit_c_interface}
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[C3:.*]] = arith.constant 3 : index
// CHECK: %[[LI:.*]] = arith.index_cast %[[L]] : i32 to index
// CHECK-NEXT: %[[GE:.*]] = arith.cmpi sge, %[[LI]], %[[C0]] : index
// CHECK-NEXT: %[[LT:.*]] = arith.cmpi slt, %[[LI]], %[[C3]] : index
// CHECK-NEXT: %[[OK:.*]] = arith.andi %[[GE]], %[[LT]] : i1
// The batch checks read descriptor sizes only.
// CHECK: %[[SAME:.*]] = arith.cmpi eq, %{{.*}}, %{{.*}} : index
// CHECK: %[[ROWS:.*]] = arith.cmpi eq, %{{.*}}, %{{.*}} : index
// CHECK-NEXT: %[[OK2:.*]] = arith.andi %[[OK]], %[[SAME]] : i1
// CHECK-NEXT: %[[ALL:.*]] = arith.andi %[[OK2]], %[[ROWS]] : i1
// CHECK-NEXT: scf.if %[[ALL]] {
// CHECK: %[[MAX:.*]] = arith.maxsi %{{.*}}, %[[C0]] : index
// CHECK-NEXT: %[[LAYER:.*]] = arith.minsi %[[MAX]], %[[C2]] : index
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.wait async
// CHECK: gpu.launch_func async {{.*}} @attn_kernels::@kv_cache_store {{.*}} args({{.*}}, %[[B]] : memref<?x2x3x16x2x64xbf16>, %[[LAYER]] : index,
// CHECK: gpu.launch_func async {{.*}} @attn_kernels::@paged_flash_attention_prefill
// CHECK: gpu.wait [
// CHECK: }
// The first failing check's code: the layer (1), then the batch (2).
// CHECK: %[[S3:.*]] = arith.select %[[ROWS]], %{{.*}}, %{{.*}} : i32
// CHECK: %[[S2:.*]] = arith.select %[[SAME]], %[[S3]], %{{.*}} : i32
// CHECK: %[[BAD:.*]] = arith.constant 1 : i32
// CHECK-NEXT: %[[S:.*]] = arith.select %[[OK]], %[[S2]], %[[BAD]] : i32
// CHECK-NEXT: return %[[S]] : i32
// With the index values validated (the default of attn-lower-to-nvvm): the
// validation kernel runs only after the host checks pass, first on the call's
// stream, and the other kernels are ordered after it; nothing waits for it.
// VALIDATE-LABEL: func.func @store_attend(
// VALIDATE: scf.if
// VALIDATE: %[[T0:.*]] = gpu.wait async
// VALIDATE-NEXT: %[[T1:.*]] = gpu.launch_func async [%[[T0]]] @attn_kernels::@validate_indices
// VALIDATE-NOT: gpu.wait
// VALIDATE: gpu.launch_func async [%[[T1]]] @attn_kernels::@kv_cache_store
// VALIDATE: gpu.launch_func async {{.*}} @attn_kernels::@paged_flash_attention_prefill
func.func @store_attend(%layer: i32, %q: tensor<?x4x64xbf16>, %k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>, %row_offsets: tensor<?xi32>,
                        %blocks: tensor<?x2x3x16x2x64xbf16>, %cache_lengths: tensor<?xi32>,
                        %lookup: tensor<?x?xi32>) -> (tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>) {
  %b = attn.kv_cache_store %k, %v into %blocks layer(%layer : i32)
      positions(%row_offsets, %cache_lengths) pages(%lookup) : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  %o = attn.paged_flash_attention %q, %b layer(%layer : i32)
      positions(%row_offsets, %cache_lengths) pages(%lookup) : tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o, %b : tensor<?x4x64xbf16>, tensor<?x2x3x16x2x64xbf16>
}
