// RUN: attn-opt %s --attn-approximate-math | FileCheck %s

// f32 exp becomes range reduction (2^k built from the exponent bits) and a
// polynomial made of fma: no math.exp is left, hence no libm call.
// CHECK-LABEL: func.func @exp_f32
// CHECK-SAME: (%[[X:[^:]*]]: f32) -> f32
// CHECK-NOT: math.exp
// CHECK-DAG: %[[LOG2E:.*]] = arith.constant 1.44269502 : f32
// CHECK-DAG: %[[LO:.*]] = arith.constant -8.780000e+01 : f32
// CHECK: arith.cmpf uge, %[[X]], %[[LO]] : f32
// CHECK: math.fma %{{.*}}, %[[LOG2E]], %{{.*}} : f32
// CHECK: math.floor %{{.*}} : f32
// CHECK: math.fma {{.*}} : f32
// CHECK: %[[K:.*]] = arith.fptosi %{{.*}} : f32 to i32
// CHECK: arith.shli
// CHECK: %[[POW:.*]] = arith.bitcast %{{.*}} : i32 to f32
// CHECK: %[[R:.*]] = arith.mulf %{{.*}}, %[[POW]] : f32
// CHECK-NOT: math.exp
// CHECK: return %[[R]] : f32
func.func @exp_f32(%x: f32) -> f32 {
  %0 = math.exp %x : f32
  return %0 : f32
}

// The same on the vectors of the flash-attention softmax.
// CHECK-LABEL: func.func @exp_vector
// CHECK-SAME: (%[[X:[^:]*]]: vector<16xf32>) -> vector<16xf32>
// CHECK-NOT: math.exp
// CHECK: arith.cmpf uge, %[[X]], %{{.*}} : vector<16xf32>
// CHECK: math.floor %{{.*}} : vector<16xf32>
// CHECK: math.fma {{.*}} : vector<16xf32>
// CHECK: arith.fptosi %{{.*}} : vector<16xf32> to vector<16xi32>
// CHECK: %[[POW:.*]] = arith.bitcast %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: %[[R:.*]] = arith.mulf %{{.*}}, %[[POW]] : vector<16xf32>
// CHECK-NOT: math.exp
// CHECK: return %[[R]] : vector<16xf32>
func.func @exp_vector(%x: vector<16xf32>) -> vector<16xf32> {
  %0 = math.exp %x : vector<16xf32>
  return %0 : vector<16xf32>
}

// f64 exp (the RoPE angles are f64) and other math ops are kept.
// CHECK-LABEL: func.func @exp_f64
// CHECK-SAME: (%[[X:[^:]*]]: f64) -> f64
// CHECK-NEXT: %[[R:.*]] = math.exp %[[X]] : f64
// CHECK-NEXT: return %[[R]] : f64
func.func @exp_f64(%x: f64) -> f64 {
  %0 = math.exp %x : f64
  return %0 : f64
}

// CHECK-LABEL: func.func @other_math
// CHECK-SAME: (%[[X:[^:]*]]: f32, %[[D:[^:]*]]: vector<4xf64>)
// CHECK-NEXT: math.exp2 %[[X]] : f32
// CHECK-NEXT: math.tanh %[[X]] : f32
// CHECK-NEXT: math.exp %[[D]] : vector<4xf64>
// CHECK-NEXT: return
func.func @other_math(%x: f32, %d: vector<4xf64>) -> (f32, f32, vector<4xf64>) {
  %0 = math.exp2 %x : f32
  %1 = math.tanh %x : f32
  %2 = math.exp %d : vector<4xf64>
  return %0, %1, %2 : f32, f32, vector<4xf64>
}
