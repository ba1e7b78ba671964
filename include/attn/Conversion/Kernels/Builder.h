//===- Builder.h - the vocabulary both targets build kernels with -*- C++ -*-===//
//
// Every kernel of the CPU and GPU lowerings is written with these pieces:
// index arithmetic with operators (`row0 + lane / 4`, `key < end`) that fold
// constants, named constants, loops with iteration arguments, if / else with
// results, and loads / stores guarded by a mask. The operators insert with
// the builder of the innermost body being built (`BuilderScope`), so a loop
// body written with them lands inside its loop.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_KERNELS_BUILDER_H
#define ATTN_CONVERSION_KERNELS_BUILDER_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::attn::kb {

using IB = ImplicitLocOpBuilder;

//===----------------------------------------------------------------------===//
// Builder scope
//===----------------------------------------------------------------------===//

/// Makes `b` the builder that the index operators insert with until the
/// scope ends (scopes nest). The control-flow helpers below open one for
/// each body they build; open one yourself for a builder you create.
class BuilderScope {
public:
  explicit BuilderScope(IB &b);
  ~BuilderScope();
  BuilderScope(const BuilderScope &) = delete;
  BuilderScope &operator=(const BuilderScope &) = delete;

  /// The innermost scope's builder (a fatal error outside every scope).
  static IB &current();

private:
  IB *previous;
};

//===----------------------------------------------------------------------===//
// Index and integer arithmetic
//===----------------------------------------------------------------------===//

/// An index or integer SSA value with arithmetic operators. Constants take
/// the type of the other operand; results fold when both sides are constant
/// (and `x + 0`, `x * 1` are `x`). Division and remainder are unsigned
/// (kernel indices are never negative); comparisons are signed.
class Idx : public Value {
public:
  Idx() = default;
  Idx(Value value) : Value(value) {}
  Value get() const { return *this; }
};

Idx operator+(Idx x, Idx y);
Idx operator+(Idx x, int64_t y);
Idx operator+(int64_t x, Idx y);
Idx operator-(Idx x, Idx y);
Idx operator-(Idx x, int64_t y);
Idx operator-(int64_t x, Idx y);
Idx operator*(Idx x, Idx y);
Idx operator*(Idx x, int64_t y);
Idx operator*(int64_t x, Idx y);
Idx operator/(Idx x, Idx y);
Idx operator/(Idx x, int64_t y);
Idx operator%(Idx x, Idx y);
Idx operator%(Idx x, int64_t y);
/// Bitwise on integers (and on i1 conditions: and / xor).
Idx operator&(Idx x, Idx y);
Idx operator&(Idx x, int64_t y);
Idx operator^(Idx x, Idx y);
Idx operator^(Idx x, int64_t y);

Idx operator<(Idx x, Idx y);
Idx operator<(Idx x, int64_t y);
Idx operator<=(Idx x, Idx y);
Idx operator<=(Idx x, int64_t y);
Idx operator>(Idx x, Idx y);
Idx operator>(Idx x, int64_t y);
Idx operator>=(Idx x, Idx y);
Idx operator>=(Idx x, int64_t y);
Idx operator==(Idx x, Idx y);
Idx operator==(Idx x, int64_t y);
Idx operator!=(Idx x, Idx y);
Idx operator!=(Idx x, int64_t y);

// Named operations take the builder; only the operators use the scope.

/// Unsigned comparisons, where a value is known non-negative or wraps.
Idx ult(IB &b, Value x, Value y);
Idx ugt(IB &b, Value x, Value y);
Idx ule(IB &b, Value x, Value y);

Idx min(IB &b, Value x, Value y);
Idx max(IB &b, Value x, Value y);
/// `min(max(v, lo), hi)`.
Idx clamp(IB &b, Value v, Value lo, Value hi);
/// ceil(x / d), unsigned.
Idx ceilDiv(IB &b, Value x, Value d);
Idx ceilDiv(IB &b, Value x, int64_t d);
/// ceil(x / d), signed (x may be negative).
Idx ceilDivSigned(IB &b, Value x, int64_t d);
Idx ceilDivSigned(IB &b, Value x, Value d);
/// x / d rounded toward zero and its remainder, signed.
Idx divSigned(IB &b, Value x, int64_t d);
Idx divSigned(IB &b, Value x, Value d);
Idx remSigned(IB &b, Value x, Value d);
/// `cond ? x : y` (any type).
Value select(IB &b, Value cond, Value x, Value y);
/// An index as `type` (i32, i64), or an integer as an index.
Idx indexCast(IB &b, Value x, Type type);

//===----------------------------------------------------------------------===//
// Constants
//===----------------------------------------------------------------------===//

Idx cIndex(IB &b, int64_t v);
Idx cI32(IB &b, int64_t v);
Idx cBool(IB &b, bool v);
Value cF32(IB &b, double v);
Value cF64(IB &b, double v);
Value negInfF32(IB &b);
/// A zero of `type` (scalar or vector).
Value zero(IB &b, Type type);

//===----------------------------------------------------------------------===//
// Floats
//===----------------------------------------------------------------------===//

/// `v` widened (or narrowed) to f32; f32 stays as is.
Value toF32(IB &b, Value v);
/// An f32 `v` rounded (or widened) to `elementType`.
Value fromF32(IB &b, Value v, Type elementType);
/// The same inside region builders that have no ImplicitLocOpBuilder.
Value toF32(OpBuilder &b, Location loc, Value v);
Value fromF32(OpBuilder &b, Location loc, Value v, Type elementType);

//===----------------------------------------------------------------------===//
// Control flow
//===----------------------------------------------------------------------===//

using LoopBody = function_ref<SmallVector<Value>(IB &, Idx iv, ValueRange)>;

/// scf.for over [lo, hi) by `step` carrying `init`; the body returns the
/// values it yields. Returns the loop's results.
SmallVector<Value> forLoop(IB &b, Value lo, Value hi, Value step,
                           ValueRange init, LoopBody body);
SmallVector<Value> forLoop(IB &b, Value lo, Value hi, int64_t step,
                           ValueRange init, LoopBody body);
/// The same without iteration arguments.
void forLoop(IB &b, Value lo, Value hi, int64_t step,
             function_ref<void(IB &, Idx iv)> body);

/// `if (cond) body()`.
void ifThen(IB &b, Value cond, function_ref<void(IB &)> body);
/// `cond ? then() : otherwise()`, both returning values of `types`.
SmallVector<Value> ifElse(IB &b, Value cond, TypeRange types,
                          function_ref<SmallVector<Value>(IB &)> then,
                          function_ref<SmallVector<Value>(IB &)> otherwise);
/// `cond ? then() : otherwise`: the else branch yields `otherwise`.
SmallVector<Value> ifElse(IB &b, Value cond, ValueRange otherwise,
                          function_ref<SmallVector<Value>(IB &)> then);
/// `if (cond) then() else otherwise()`, no results.
void ifThenElse(IB &b, Value cond, function_ref<void(IB &)> then,
                function_ref<void(IB &)> otherwise);

//===----------------------------------------------------------------------===//
// Memory (memrefs and tensors)
//===----------------------------------------------------------------------===//

/// Size `d` of a memref or tensor (folded when static).
Idx dim(IB &b, Value shaped, int64_t d);
/// An i32 element of a memref or tensor, as an index.
Idx loadIndex(IB &b, Value shaped, ValueRange indices);
/// A scalar element of a memref.
Value load(IB &b, Value memref, ValueRange indices);
void store(IB &b, Value value, Value memref, ValueRange indices);

/// A `type` vector loaded (16-byte aligned) from the memref `src` at
/// `indices()` when `valid`, zeros otherwise; the indices are built inside
/// the guard, so they may read memory that is only valid then (a page
/// table entry).
Value loadVectorOrZero(IB &b, Value src,
                       function_ref<SmallVector<Value>(IB &)> indices,
                       Value valid, VectorType type);
/// A `type` vector loaded (aligned to its size, at most 16 bytes) from the
/// memref `src` at `indices`, each at most its `last` (so the memref must not
/// be empty), replaced by zeros unless `valid`. With no branch around it,
/// ptxas keeps many such loads in flight at once.
Value loadVectorClampedOrZero(IB &b, Value src, ArrayRef<Idx> indices,
                              ArrayRef<Idx> last, Value valid,
                              VectorType type);
/// `vector` stored (16-byte aligned) to the memref `dst` at `indices`.
void storeVector(IB &b, Value vector, Value dst, ValueRange indices);

} // namespace mlir::attn::kb

#endif // ATTN_CONVERSION_KERNELS_BUILDER_H
