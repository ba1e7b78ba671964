//===- Builder.cpp - the vocabulary both targets build kernels with -------===//

#include "attn/Conversion/Kernels/Builder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/ErrorHandling.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kb;

//===----------------------------------------------------------------------===//
// Builder scope
//===----------------------------------------------------------------------===//

static thread_local IB *currentBuilder = nullptr;

BuilderScope::BuilderScope(IB &b) : previous(currentBuilder) {
  currentBuilder = &b;
}
BuilderScope::~BuilderScope() { currentBuilder = previous; }

IB &BuilderScope::current() {
  if (!currentBuilder)
    llvm::report_fatal_error("attn kernel builder: index arithmetic outside "
                             "a BuilderScope");
  return *currentBuilder;
}

//===----------------------------------------------------------------------===//
// Index and integer arithmetic
//===----------------------------------------------------------------------===//

namespace {
IB &cur() { return BuilderScope::current(); }

/// `c` as a constant of `like`'s type (index or integer).
Value constantLike(Value like, int64_t c) {
  IB &b = cur();
  Type type = like.getType();
  if (type.isIndex())
    return arith::ConstantIndexOp::create(b, c);
  return arith::ConstantIntOp::create(b, type, c);
}

template <typename OpTy>
Idx binary(Idx x, Idx y) {
  return cur().createOrFold<OpTy>(x, y);
}
template <typename OpTy>
Idx binary(Idx x, int64_t y) {
  return binary<OpTy>(x, constantLike(x, y));
}
template <typename OpTy>
Idx binary(int64_t x, Idx y) {
  return binary<OpTy>(constantLike(y, x), y);
}

Idx compare(arith::CmpIPredicate predicate, Idx x, Idx y) {
  return cur().createOrFold<arith::CmpIOp>(predicate, x, y);
}
} // namespace

Idx kb::operator+(Idx x, Idx y) { return binary<arith::AddIOp>(x, y); }
Idx kb::operator+(Idx x, int64_t y) { return binary<arith::AddIOp>(x, y); }
Idx kb::operator+(int64_t x, Idx y) { return binary<arith::AddIOp>(x, y); }
Idx kb::operator-(Idx x, Idx y) { return binary<arith::SubIOp>(x, y); }
Idx kb::operator-(Idx x, int64_t y) { return binary<arith::SubIOp>(x, y); }
Idx kb::operator-(int64_t x, Idx y) { return binary<arith::SubIOp>(x, y); }
Idx kb::operator*(Idx x, Idx y) { return binary<arith::MulIOp>(x, y); }
Idx kb::operator*(Idx x, int64_t y) { return binary<arith::MulIOp>(x, y); }
Idx kb::operator*(int64_t x, Idx y) { return binary<arith::MulIOp>(x, y); }
Idx kb::operator/(Idx x, Idx y) { return binary<arith::DivUIOp>(x, y); }
Idx kb::operator/(Idx x, int64_t y) { return binary<arith::DivUIOp>(x, y); }
Idx kb::operator%(Idx x, Idx y) { return binary<arith::RemUIOp>(x, y); }
Idx kb::operator%(Idx x, int64_t y) { return binary<arith::RemUIOp>(x, y); }
Idx kb::operator&(Idx x, Idx y) { return binary<arith::AndIOp>(x, y); }
Idx kb::operator&(Idx x, int64_t y) { return binary<arith::AndIOp>(x, y); }
Idx kb::operator^(Idx x, Idx y) { return binary<arith::XOrIOp>(x, y); }
Idx kb::operator^(Idx x, int64_t y) { return binary<arith::XOrIOp>(x, y); }

using P = arith::CmpIPredicate;
Idx kb::operator<(Idx x, Idx y) { return compare(P::slt, x, y); }
Idx kb::operator<(Idx x, int64_t y) { return x < Idx(constantLike(x, y)); }
Idx kb::operator<=(Idx x, Idx y) { return compare(P::sle, x, y); }
Idx kb::operator<=(Idx x, int64_t y) { return x <= Idx(constantLike(x, y)); }
Idx kb::operator>(Idx x, Idx y) { return compare(P::sgt, x, y); }
Idx kb::operator>(Idx x, int64_t y) { return x > Idx(constantLike(x, y)); }
Idx kb::operator>=(Idx x, Idx y) { return compare(P::sge, x, y); }
Idx kb::operator>=(Idx x, int64_t y) { return x >= Idx(constantLike(x, y)); }
Idx kb::operator==(Idx x, Idx y) { return compare(P::eq, x, y); }
Idx kb::operator==(Idx x, int64_t y) { return x == Idx(constantLike(x, y)); }
Idx kb::operator!=(Idx x, Idx y) { return compare(P::ne, x, y); }
Idx kb::operator!=(Idx x, int64_t y) { return x != Idx(constantLike(x, y)); }
Idx kb::ult(IB &b, Value x, Value y) {
  return b.createOrFold<arith::CmpIOp>(P::ult, x, y);
}
Idx kb::ugt(IB &b, Value x, Value y) {
  return b.createOrFold<arith::CmpIOp>(P::ugt, x, y);
}
Idx kb::ule(IB &b, Value x, Value y) {
  return b.createOrFold<arith::CmpIOp>(P::ule, x, y);
}

Idx kb::min(IB &b, Value x, Value y) {
  return b.createOrFold<arith::MinSIOp>(x, y);
}
Idx kb::max(IB &b, Value x, Value y) {
  return b.createOrFold<arith::MaxSIOp>(x, y);
}
Idx kb::clamp(IB &b, Value v, Value lo, Value hi) {
  return min(b, max(b, v, lo), hi);
}
Idx kb::ceilDiv(IB &b, Value x, Value d) {
  return b.createOrFold<arith::CeilDivUIOp>(x, d);
}
Idx kb::ceilDiv(IB &b, Value x, int64_t d) {
  return ceilDiv(b, x, Value(arith::ConstantIndexOp::create(b, d)));
}
Idx kb::ceilDivSigned(IB &b, Value x, int64_t d) {
  return b.createOrFold<arith::CeilDivSIOp>(
      x, Value(arith::ConstantIndexOp::create(b, d)));
}
Idx kb::ceilDivSigned(IB &b, Value x, Value d) {
  return b.createOrFold<arith::CeilDivSIOp>(x, d);
}
Idx kb::divSigned(IB &b, Value x, int64_t d) {
  return b.createOrFold<arith::DivSIOp>(
      x, Value(arith::ConstantIndexOp::create(b, d)));
}
Idx kb::divSigned(IB &b, Value x, Value d) {
  return b.createOrFold<arith::DivSIOp>(x, d);
}
Idx kb::remSigned(IB &b, Value x, Value d) {
  return b.createOrFold<arith::RemSIOp>(x, d);
}
Value kb::select(IB &b, Value cond, Value x, Value y) {
  return b.createOrFold<arith::SelectOp>(cond, x, y);
}
Idx kb::indexCast(IB &b, Value x, Type type) {
  return b.createOrFold<arith::IndexCastOp>(type, x);
}

//===----------------------------------------------------------------------===//
// Constants
//===----------------------------------------------------------------------===//

Idx kb::cIndex(IB &b, int64_t v) {
  return Value(arith::ConstantIndexOp::create(b, v));
}
Idx kb::cI32(IB &b, int64_t v) {
  return Value(arith::ConstantIntOp::create(b, v, 32));
}
Idx kb::cBool(IB &b, bool v) {
  return Value(arith::ConstantIntOp::create(b, v, 1));
}
Value kb::cF32(IB &b, double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(static_cast<float>(v)));
}
Value kb::cF64(IB &b, double v) {
  return arith::ConstantOp::create(b, b.getF64FloatAttr(v));
}
Value kb::negInfF32(IB &b) {
  return arith::ConstantOp::create(
      b, b.getFloatAttr(b.getF32Type(),
                        APFloat::getInf(APFloat::IEEEsingle(), true)));
}
Value kb::zero(IB &b, Type type) {
  if (auto vector = dyn_cast<VectorType>(type))
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(vector,
                                  b.getZeroAttr(vector.getElementType())));
  return arith::ConstantOp::create(b, cast<TypedAttr>(b.getZeroAttr(type)));
}

//===----------------------------------------------------------------------===//
// Floats
//===----------------------------------------------------------------------===//

Value kb::toF32(OpBuilder &b, Location loc, Value v) {
  auto type = cast<FloatType>(v.getType());
  if (type.isF32())
    return v;
  if (type.getWidth() < 32)
    return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  return arith::TruncFOp::create(b, loc, b.getF32Type(), v);
}

Value kb::fromF32(OpBuilder &b, Location loc, Value v, Type elementType) {
  auto type = cast<FloatType>(elementType);
  if (type.isF32())
    return v;
  if (type.getWidth() < 32)
    return arith::TruncFOp::create(b, loc, elementType, v);
  return arith::ExtFOp::create(b, loc, elementType, v);
}

Value kb::toF32(IB &b, Value v) { return toF32(b, b.getLoc(), v); }
Value kb::fromF32(IB &b, Value v, Type elementType) {
  return fromF32(b, b.getLoc(), v, elementType);
}

//===----------------------------------------------------------------------===//
// Control flow
//===----------------------------------------------------------------------===//

SmallVector<Value> kb::forLoop(IB &b, Value lo, Value hi, Value step,
                               ValueRange init, LoopBody body) {
  auto loop = scf::ForOp::create(b, lo, hi, step, init);
  IB lb(b.getLoc(), OpBuilder::atBlockBegin(loop.getBody()));
  if (!init.empty() || loop.getBody()->empty()) {
    BuilderScope scope(lb);
    scf::YieldOp::create(
        lb, body(lb, loop.getInductionVar(), loop.getRegionIterArgs()));
  } else {
    lb.setInsertionPoint(loop.getBody()->getTerminator());
    BuilderScope scope(lb);
    body(lb, loop.getInductionVar(), {});
  }
  return SmallVector<Value>(loop.getResults());
}

SmallVector<Value> kb::forLoop(IB &b, Value lo, Value hi, int64_t step,
                               ValueRange init, LoopBody body) {
  return forLoop(b, lo, hi, cIndex(b, step), init, body);
}

void kb::forLoop(IB &b, Value lo, Value hi, int64_t step,
                 function_ref<void(IB &, Idx iv)> body) {
  forLoop(b, lo, hi, cIndex(b, step), ValueRange{},
          [&](IB &lb, Idx iv, ValueRange) {
            body(lb, iv);
            return SmallVector<Value>{};
          });
}

void kb::ifThen(IB &b, Value cond, function_ref<void(IB &)> body) {
  auto ifOp = scf::IfOp::create(b, TypeRange{}, cond, /*withElse=*/false);
  IB tb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
  tb.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  BuilderScope scope(tb);
  body(tb);
}

SmallVector<Value> kb::ifElse(IB &b, Value cond, TypeRange types,
                              function_ref<SmallVector<Value>(IB &)> then,
                              function_ref<SmallVector<Value>(IB &)> otherwise) {
  auto ifOp = scf::IfOp::create(b, types, cond, /*withElse=*/true);
  {
    IB tb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
    BuilderScope scope(tb);
    scf::YieldOp::create(tb, then(tb));
  }
  IB eb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.elseBlock()));
  BuilderScope scope(eb);
  scf::YieldOp::create(eb, otherwise(eb));
  return SmallVector<Value>(ifOp.getResults());
}

SmallVector<Value> kb::ifElse(IB &b, Value cond, ValueRange otherwise,
                              function_ref<SmallVector<Value>(IB &)> then) {
  return ifElse(b, cond, otherwise.getTypes(), then,
                [&](IB &) { return SmallVector<Value>(otherwise); });
}

void kb::ifThenElse(IB &b, Value cond, function_ref<void(IB &)> then,
                    function_ref<void(IB &)> otherwise) {
  auto ifOp = scf::IfOp::create(b, TypeRange{}, cond, /*withElse=*/true);
  {
    IB tb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
    tb.setInsertionPoint(ifOp.thenBlock()->getTerminator());
    BuilderScope scope(tb);
    then(tb);
  }
  IB eb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.elseBlock()));
  eb.setInsertionPoint(ifOp.elseBlock()->getTerminator());
  BuilderScope scope(eb);
  otherwise(eb);
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

Idx kb::dim(IB &b, Value shaped, int64_t d) {
  if (isa<MemRefType>(shaped.getType()))
    return b.createOrFold<memref::DimOp>(shaped, d);
  return b.createOrFold<tensor::DimOp>(shaped, d);
}

Idx kb::loadIndex(IB &b, Value shaped, ValueRange indices) {
  Value v = isa<MemRefType>(shaped.getType())
                ? Value(memref::LoadOp::create(b, shaped, indices))
                : Value(tensor::ExtractOp::create(b, shaped, indices));
  return Value(arith::IndexCastOp::create(b, b.getIndexType(), v));
}

Value kb::load(IB &b, Value memref, ValueRange indices) {
  return memref::LoadOp::create(b, memref, indices);
}

void kb::store(IB &b, Value value, Value memref, ValueRange indices) {
  memref::StoreOp::create(b, value, memref, indices);
}

Value kb::loadVectorOrZero(IB &b, Value src,
                           function_ref<SmallVector<Value>(IB &)> indices,
                           Value valid, VectorType type) {
  return ifElse(
      b, valid, TypeRange{type},
      [&](IB &tb) {
        return SmallVector<Value>{vector::LoadOp::create(
            tb, type, src, indices(tb), /*nontemporal=*/false,
            llvm::MaybeAlign(16))};
      },
      [&](IB &eb) { return SmallVector<Value>{zero(eb, type)}; })[0];
}

Value kb::loadVectorClampedOrZero(IB &b, Value src, ArrayRef<Idx> indices,
                                  ArrayRef<Idx> last, Value valid,
                                  VectorType type) {
  SmallVector<Value> clamped;
  for (auto [index, bound] : llvm::zip_equal(indices, last))
    clamped.push_back(arith::MinUIOp::create(b, index, bound));
  int64_t bytes = type.getNumElements() * type.getElementTypeBitWidth() / 8;
  Value loaded =
      vector::LoadOp::create(b, type, src, clamped, /*nontemporal=*/false,
                             llvm::MaybeAlign(std::min<int64_t>(bytes, 16)));
  return arith::SelectOp::create(b, valid, loaded, zero(b, type));
}

void kb::storeVector(IB &b, Value vector, Value dst, ValueRange indices) {
  vector::StoreOp::create(b, vector, dst, indices, /*nontemporal=*/false,
                          llvm::MaybeAlign(16));
}
