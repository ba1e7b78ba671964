// RUN: attn-opt %s --attn-entry-status -split-input-file -verify-diagnostics | FileCheck %s

// The module exports the C arguments' types of its entry points, one line each
// (docs/ABI.md, "Signatures"): memrefs without their layout, scalars by type;
// functions without a C interface (@helper) are not listed.
// CHECK: llvm.mlir.global internal constant @attn_entry_signatures("guarded i1 i1 memref<4xf32>\0Aunchecked i1\0Alayouts index memref<?x8xbf16> memref<f32>\0A\00")

// The work after the checks runs only if all pass; the status is the code
// of the first failing check, 0 if none fails.
// CHECK-LABEL: func.func @guarded(
// CHECK-SAME: %[[A:[a-z0-9_]+]]: i1, %[[B:[a-z0-9_]+]]: i1, %[[M:[a-z0-9_]+]]: memref<4xf32>) -> i32
// CHECK-NOT: cf.assert
// CHECK: %[[ALL:.*]] = arith.andi %[[A]], %[[B]] : i1
// CHECK-NEXT: scf.if %[[ALL]] {
// CHECK: memref.store
// CHECK: }
// CHECK-DAG: %[[OK:.*]] = arith.constant 0 : i32
// CHECK-DAG: %[[CODE2:.*]] = arith.constant 2 : i32
// CHECK: %[[S2:.*]] = arith.select %[[B]], %[[OK]], %[[CODE2]] : i32
// CHECK: %[[CODE1:.*]] = arith.constant 1 : i32
// CHECK: %[[S1:.*]] = arith.select %[[A]], %[[S2]], %[[CODE1]] : i32
// CHECK: return %[[S1]] : i32
func.func @guarded(%a: i1, %b: i1, %m: memref<4xf32>) attributes {llvm.emit_c_interface} {
  cf.assert %a, "first" {attn.status = 1 : i32}
  cf.assert %b, "second" {attn.status = 2 : i32}
  %c0 = arith.constant 0 : index
  %x = arith.constant 1.0 : f32
  memref.store %x, %m[%c0] : memref<4xf32>
  return
}

// Without checks the status is 0; functions not exporting a C interface keep
// their type; an assert without a status code is not a check.
// CHECK-LABEL: func.func @unchecked(
// CHECK-SAME: -> i32
// CHECK: cf.assert %{{.*}}, "user"
// CHECK-NOT: scf.if
// CHECK: %[[OK:.*]] = arith.constant 0 : i32
// CHECK: return %[[OK]] : i32
// CHECK-LABEL: func.func @helper(
// CHECK-SAME: ) {
func.func @unchecked(%a: i1) attributes {llvm.emit_c_interface} {
  cf.assert %a, "user"
  return
}
func.func @helper(%a: i1) {
  return
}
func.func @layouts(%i: index, %a: memref<?x8xbf16, strided<[?, 1], offset: ?>>,
                   %s: memref<f32>) attributes {llvm.emit_c_interface} {
  return
}
// CHECK-LABEL: llvm.func @attnEntrySignatures() -> !llvm.ptr
// CHECK-NEXT: llvm.mlir.addressof @attn_entry_signatures

// -----

func.func @returns_values(%a: i1) -> i1 attributes {llvm.emit_c_interface} {
  // expected-error @-1 {{must return nothing before its status is added}}
  return %a : i1
}

// -----

func.func @writes_first(%a: i1, %m: memref<4xf32>) attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %x = arith.constant 1.0 : f32
  // expected-error @+1 {{writes memory before the entry checks}}
  memref.store %x, %m[%c0] : memref<4xf32>
  cf.assert %a, "late" {attn.status = 1 : i32}
  return
}
