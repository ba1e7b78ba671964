// RUN: attn-opt %s --attn-cpu-entry-abi -split-input-file | FileCheck %s

// Bufferised code written by hand. Every case holds a linalg op so that the
// linalg dialect is loaded: the pass creates linalg.copy but does not declare
// linalg as a dependent dialect (on input without linalg it fails with
// "'linalg.yield' op created with unregistered dialect").

// The blocks are returned as they came (written in place): that result is
// dropped. The other result becomes a trailing out-parameter that the
// callee writes, its allocation replaced by the out-parameter. The public
// function gets the C interface.
// CHECK-LABEL: func.func @entry
// CHECK-SAME: (%[[BLOCKS:[^:]*]]: memref<?x2x1x16x2x64xf32>, %[[X:[^:]*]]: memref<?x64xf32>, %[[OUT:[^:]*]]: memref<?x64xf32>)
// CHECK-SAME: attributes {llvm.emit_c_interface} {
// CHECK-NOT: memref.alloc
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[BLOCKS]] : memref<?x2x1x16x2x64xf32>)
// CHECK-NOT: memref.alloc
// CHECK: linalg.copy ins(%[[X]] : memref<?x64xf32>) outs(%[[OUT]] : memref<?x64xf32>)
// CHECK-NOT: memref.copy
// CHECK: return{{$}}
func.func @entry(%blocks: memref<?x2x1x16x2x64xf32>, %x: memref<?x64xf32>)
    -> (memref<?x2x1x16x2x64xf32>, memref<?x64xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%blocks : memref<?x2x1x16x2x64xf32>)
  %c0 = arith.constant 0 : index
  %t = memref.dim %x, %c0 : memref<?x64xf32>
  %y = memref.alloc(%t) : memref<?x64xf32>
  memref.copy %x, %y : memref<?x64xf32> to memref<?x64xf32>
  return %blocks, %y : memref<?x2x1x16x2x64xf32>, memref<?x64xf32>
}

// -----

// A private function changes the same way but gets no C interface; its
// public caller passes a buffer for the out-parameter and copies it to its
// own out-parameter with linalg.copy (no memref.copy, which would need the
// MLIR runtime library). A copy into a strided view becomes linalg.copy too.
// CHECK-LABEL: func.func private @helper
// CHECK-SAME: (%[[X:[^:]*]]: memref<4xf32>, %[[OUT:[^:]*]]: memref<4xf32>) {
// CHECK-NOT: memref.copy
// CHECK: linalg.copy ins(%[[X]] : memref<4xf32>) outs(%[[OUT]] : memref<4xf32>)
// CHECK-NEXT: return{{$}}
// CHECK-LABEL: func.func @caller
// CHECK-SAME: (%[[X:[^:]*]]: memref<4xf32>, %[[M:[^:]*]]: memref<4x8xf32>, %[[OUT:[^:]*]]: memref<4xf32>)
// CHECK-SAME: attributes {llvm.emit_c_interface} {
// CHECK-NOT: memref.copy
// CHECK: %[[BUF:.*]] = memref.alloc() : memref<4xf32>
// CHECK-NEXT: call @helper(%[[X]], %[[BUF]]) : (memref<4xf32>, memref<4xf32>) -> ()
// CHECK: %[[COL:.*]] = memref.subview %[[M]][0, 3] [4, 1] [1, 1]
// CHECK-NEXT: linalg.copy ins(%[[BUF]] : memref<4xf32>) outs(%[[COL]] : memref<4xf32, strided<[8], offset: 3>>)
// CHECK-NEXT: linalg.copy ins(%[[BUF]] : memref<4xf32>) outs(%[[OUT]] : memref<4xf32>)
// CHECK-NEXT: return{{$}}
func.func private @helper(%x: memref<4xf32>) -> memref<4xf32> {
  %y = memref.alloc() : memref<4xf32>
  linalg.copy ins(%x : memref<4xf32>) outs(%y : memref<4xf32>)
  return %y : memref<4xf32>
}

func.func @caller(%x: memref<4xf32>, %m: memref<4x8xf32>) -> memref<4xf32> {
  %y = call @helper(%x) : (memref<4xf32>) -> memref<4xf32>
  %col = memref.subview %m[0, 3] [4, 1] [1, 1] : memref<4x8xf32> to memref<4xf32, strided<[8], offset: 3>>
  memref.copy %y, %col : memref<4xf32> to memref<4xf32, strided<[8], offset: 3>>
  return %y : memref<4xf32>
}

// -----

// Functions without memref results keep their signature; public ones with a
// body still get the C interface, declarations do not.
// CHECK-LABEL: func.func private @external(memref<4xf32>)
// CHECK-NOT: llvm.emit_c_interface
// CHECK-LABEL: func.func @no_results
// CHECK-SAME: (%{{[^:]*}}: memref<4xf32>, %{{[^:]*}}: f32) attributes {llvm.emit_c_interface} {
// CHECK: linalg.fill
// CHECK-NEXT: return{{$}}
func.func private @external(memref<4xf32>)

func.func @no_results(%x: memref<4xf32>, %v: f32) {
  linalg.fill ins(%v : f32) outs(%x : memref<4xf32>)
  return
}
