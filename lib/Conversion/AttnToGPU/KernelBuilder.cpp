//===- KernelBuilder.cpp - shared pieces of the attn GPU kernels ----------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

KernelEmitter::KernelEmitter(ModuleOp module, KernelOptions options)
    : module(module), opts(options) {
  kernels = module.lookupSymbol<gpu::GPUModuleOp>("attn_kernels");
  if (!kernels) {
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "attn_kernels");
  }
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  UnitAttr::get(module.getContext()));
}

std::pair<gpu::GPUFuncOp, IB>
KernelEmitter::createKernel(Location loc, StringRef name, TypeRange args,
                            TypeRange workgroup, int64_t threads) {
  // Built unlinked so that the symbol table can rename it on a clash.
  OpBuilder b(module.getContext());
  auto type = FunctionType::get(module.getContext(), args, {});
  auto func = gpu::GPUFuncOp::create(b, loc, name, type, workgroup);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr(
      {static_cast<int32_t>(threads), 1, 1}));
  SymbolTable(kernels).insert(func);
  Block &entry = func.getBody().front();
  IB body(loc, OpBuilder::atBlockEnd(&entry));
  auto ret = gpu::ReturnOp::create(body);
  body.setInsertionPoint(ret);
  return {func, body};
}

void KernelEmitter::launch(IB &host, gpu::GPUFuncOp kernel,
                           std::array<Value, 3> grid, int64_t threads,
                           ValueRange args, Value dynamicSmemBytes) {
  Value one = cIdx(host, 1);
  // A grid dimension of 0 is a launch error: kernels bound-check instead.
  for (Value &g : grid)
    g = maxIdx(host, g, one);
  gpu::LaunchFuncOp::create(host, kernel, {grid[0], grid[1], grid[2]},
                            {cIdx(host, threads), one, one}, dynamicSmemBytes,
                            args);
}

StringRef KernelEmitter::addConstant(Location loc, StringRef name,
                                     DenseElementsAttr value) {
  auto [it, inserted] = constants.try_emplace(value, StringAttr());
  if (!inserted)
    return it->second.getValue();
  OpBuilder b(module.getContext());
  auto shaped = cast<ShapedType>(value.getType());
  auto type = MemRefType::get(shaped.getShape(), shaped.getElementType());
  auto global = memref::GlobalOp::create(
      b, loc, name, b.getStringAttr("private"), type, value,
      /*constant=*/true, /*alignment=*/b.getI64IntegerAttr(16));
  SymbolTable(kernels).insert(global, kernels.getBody()->begin());
  it->second = global.getSymNameAttr();
  return it->second.getValue();
}

//===----------------------------------------------------------------------===//
// Scalars
//===----------------------------------------------------------------------===//

Value gpu_lowering::cIdx(IB &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}
Value gpu_lowering::cI32(IB &b, int64_t v) {
  return arith::ConstantIntOp::create(b, v, 32);
}
Value gpu_lowering::cF32(IB &b, double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(static_cast<float>(v)));
}
Value gpu_lowering::cF64(IB &b, double v) {
  return arith::ConstantOp::create(b, b.getF64FloatAttr(v));
}
Value gpu_lowering::negInfF32(IB &b) {
  return arith::ConstantOp::create(
      b, b.getFloatAttr(b.getF32Type(),
                        APFloat::getInf(APFloat::IEEEsingle(), true)));
}
Value gpu_lowering::ceilDiv(IB &b, Value a, int64_t d) {
  return arith::CeilDivUIOp::create(b, a, cIdx(b, d));
}
Value gpu_lowering::minIdx(IB &b, Value a, Value c) {
  return arith::MinSIOp::create(b, a, c);
}
Value gpu_lowering::maxIdx(IB &b, Value a, Value c) {
  return arith::MaxSIOp::create(b, a, c);
}
Value gpu_lowering::toF32(IB &b, Value v) {
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, b.getF32Type(), v);
}
Value gpu_lowering::fromF32(IB &b, Value v, Type elementType) {
  if (elementType.isF32())
    return v;
  return arith::TruncFOp::create(b, elementType, v);
}
Value gpu_lowering::loadIndex(IB &b, Value memref, ValueRange indices) {
  Value v = memref::LoadOp::create(b, memref, indices);
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}

Value gpu_lowering::sequenceOfRow(IB &b, Value rowOffsets, Value row) {
  Value batch = arith::SubIOp::create(
      b, memref::DimOp::create(b, rowOffsets, 0), cIdx(b, 1));
  auto loop = scf::ForOp::create(b, cIdx(b, 0), batch, cIdx(b, 1),
                                 ValueRange{cIdx(b, 0)});
  {
    IB lb(b.getLoc(), OpBuilder::atBlockBegin(loop.getBody()));
    Value s = loop.getInductionVar();
    Value end = loadIndex(lb, rowOffsets,
                          ValueRange{arith::AddIOp::create(lb, s, cIdx(lb, 1))});
    Value past = arith::CmpIOp::create(lb, arith::CmpIPredicate::sle, end, row);
    Value count = arith::AddIOp::create(
        lb, loop.getRegionIterArg(0),
        arith::SelectOp::create(lb, past, cIdx(lb, 1), cIdx(lb, 0)));
    scf::YieldOp::create(lb, count);
  }
  return loop.getResult(0);
}

Value gpu_lowering::loadChunkOrZero(IB &b, Value src,
                                    function_ref<SmallVector<Value>(IB &)> indices,
                                    Value valid, VectorType type) {
  auto ifOp = scf::IfOp::create(b, TypeRange{type}, valid, /*withElse=*/true);
  {
    IB tb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
    scf::YieldOp::create(
        tb, ValueRange{vector::LoadOp::create(tb, type, src, indices(tb),
                                              /*nontemporal=*/false,
                                              llvm::MaybeAlign(16))});
  }
  IB eb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.elseBlock()));
  Value zero = arith::ConstantOp::create(
      eb, DenseElementsAttr::get(type, eb.getZeroAttr(type.getElementType())));
  scf::YieldOp::create(eb, ValueRange{zero});
  return ifOp.getResult(0);
}

Value gpu_lowering::threadIdx(IB &b) {
  return gpu::ThreadIdOp::create(b, gpu::Dimension::x);
}
Value gpu_lowering::blockIdx(IB &b, gpu::Dimension d) {
  return gpu::BlockIdOp::create(b, d);
}

void gpu_lowering::ifThen(IB &b, Value cond, function_ref<void(IB &)> body) {
  auto ifOp = scf::IfOp::create(b, TypeRange{}, cond, /*withElse=*/false);
  IB tb(b.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
  tb.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  body(tb);
}

//===----------------------------------------------------------------------===//
// Warp-level pieces
//===----------------------------------------------------------------------===//

Value gpu_lowering::shuffleXor(IB &b, Value v, int64_t mask) {
  return gpu::ShuffleOp::create(b, v, static_cast<int32_t>(mask), 32,
                                gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

static Value asI32(IB &b, Value pair) {
  Value v = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{0});
}

std::array<Value, 4> gpu_lowering::ldmatrixX4(IB &b, Value smem, Value row,
                                              Value col, bool transpose) {
  Type element = cast<MemRefType>(smem.getType()).getElementType();
  auto fragments = nvgpu::LdMatrixOp::create(
      b, VectorType::get({4, 2}, element), smem, ValueRange{row, col},
      transpose, /*numTiles=*/4);
  std::array<Value, 4> regs;
  for (int64_t i = 0; i < 4; ++i)
    regs[i] = asI32(b, vector::ExtractOp::create(b, fragments.getResult(),
                                                 ArrayRef<int64_t>{i}));
  return regs;
}

std::array<Value, 4> gpu_lowering::mma16816(IB &b, Type elementType,
                                            ArrayRef<Value> a,
                                            ArrayRef<Value> bFrag,
                                            ArrayRef<Value> c) {
  // nvvm.mma.sync directly: nvgpu.mma.sync of LLVM 22 has no bf16.
  Type f32 = b.getF32Type();
  auto resultType = LLVM::LLVMStructType::getLiteral(
      b.getContext(), SmallVector<Type>(4, f32));
  NVVM::MMATypes ptxType =
      elementType.isBF16() ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16;
  // The op takes bf16 pairs as i32 registers but f16 pairs as vector<2xf16>.
  auto operands = [&](ArrayRef<Value> regs) {
    SmallVector<Value> out(regs);
    if (elementType.isF16())
      for (Value &r : out)
        r = vector::BitCastOp::create(
            b, VectorType::get({2}, elementType),
            vector::FromElementsOp::create(
                b, VectorType::get({1}, b.getI32Type()), ValueRange{r}));
    return out;
  };
  auto mma = NVVM::MmaOp::create(
      b, resultType, operands(a), operands(bFrag), c, ArrayRef<int64_t>{16, 8, 16},
      /*b1Op=*/std::nullopt, /*intOverflow=*/std::nullopt,
      std::array<NVVM::MMATypes, 2>{ptxType, ptxType},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  std::array<Value, 4> d;
  for (int64_t i = 0; i < 4; ++i)
    d[i] = LLVM::ExtractValueOp::create(b, mma.getResult(), i);
  return d;
}

Value gpu_lowering::packPair(IB &b, Value lo, Value hi, Type elementType) {
  Value pair = vector::FromElementsOp::create(
      b, VectorType::get({2}, b.getF32Type()), ValueRange{lo, hi});
  pair = arith::TruncFOp::create(b, VectorType::get({2}, elementType), pair);
  return asI32(b, pair);
}
