//===- KernelBuilder.cpp - shared pieces of the attn GPU kernels ----------===//

#include "KernelBuilder.h"
#include "IndexValidation.h"
#include "KernelArguments.h"

#include "attn-runtime/CudaRuntime.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

std::optional<GPTQGemvKernel>
gpu_lowering::parseGPTQGemvKernel(StringRef name) {
  return llvm::StringSwitch<std::optional<GPTQGemvKernel>>(name)
      .Case("tma-ring", GPTQGemvKernel::TMARing)
      .Case("streaming", GPTQGemvKernel::Streaming)
      .Default(std::nullopt);
}

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
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({static_cast<int32_t>(threads), 1, 1}));
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
  BuilderScope scope(host);
  Value one = cIndex(host, 1);
  // A grid dimension of 0 is a launch error: kernels bound-check instead.
  for (Value &g : grid)
    g = max(host, g, one);
  SmallVector<Value> operands(args);
  if (carriedChecks) {
    if (checkCarriers.insert(kernel).second)
      addIndexValidationBlock(*this, kernel, *carriedChecks);
    grid[0] = Idx(grid[0]) + 1;
    llvm::append_range(operands, argumentList(*carriedChecks));
  }
  gpu::LaunchFuncOp::create(host, kernel, {grid[0], grid[1], grid[2]},
                            {cIndex(host, threads), one, one}, dynamicSmemBytes,
                            operands);
  ++launches;
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

Idx gpu_lowering::firstElementAddress(IB &b, Value buffer) {
  BuilderScope scope(b);
  auto type = cast<MemRefType>(buffer.getType());
  auto metadata = memref::ExtractStridedMetadataOp::create(b, buffer);
  Idx base = Value(memref::ExtractAlignedPointerAsIndexOp::create(b, buffer));
  return base + Idx(metadata.getOffset()) * (type.getElementTypeBitWidth() / 8);
}

Idx gpu_lowering::startsAligned(IB &b, ArrayRef<Value> buffers,
                                int64_t bytes) {
  BuilderScope scope(b);
  Idx all = cBool(b, true);
  for (Value buffer : buffers)
    all = all & (firstElementAddress(b, buffer) % bytes == 0);
  return all;
}

Value gpu_lowering::hostAddress(IB &b, Value buffer) {
  return indexCast(b, firstElementAddress(b, buffer), b.getI64Type());
}

Value gpu_lowering::loadStreamingClampedOrZero(IB &b, Value src,
                                               ArrayRef<Idx> indices,
                                               ArrayRef<Idx> last, Value valid,
                                               VectorType type) {
  BuilderScope scope(b);
  auto memrefType = cast<MemRefType>(src.getType());
  int64_t bytes = memrefType.getElementTypeBitWidth() / 8;
  auto metadata = memref::ExtractStridedMetadataOp::create(b, src);
  Idx element = Idx(metadata.getOffset());
  for (auto [i, index] : llvm::enumerate(indices))
    element = element + Idx(arith::MinUIOp::create(b, index, last[i])) *
                            Idx(metadata.getStrides()[i]);
  Idx base = Value(memref::ExtractAlignedPointerAsIndexOp::create(b, src));
  Value address = indexCast(b, base + element * bytes, b.getI64Type());
  Type i32 = b.getI32Type();
  auto words = LLVM::LLVMStructType::getLiteral(b.getContext(),
                                                {i32, i32, i32, i32});
  // The address is generic; cvta.to.global makes it a global one. Marked
  // with side effects so that no load moves above griddepcontrol.wait.
  auto load = LLVM::InlineAsmOp::create(
      b, b.getLoc(), words, ValueRange{address},
      "{ .reg .u64 g; cvta.to.global.u64 g, $4; "
      "ld.global.nc.L1::no_allocate.L2::256B.v4.b32 {$0, $1, $2, $3}, [g]; }",
      "=r,=r,=r,=r,l", /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::TailCallKind::None, /*asm_dialect=*/nullptr,
      /*operand_attrs=*/nullptr);
  SmallVector<Value> parts;
  for (int64_t i = 0; i < 4; ++i)
    parts.push_back(LLVM::ExtractValueOp::create(b, load.getResult(0), i));
  Value vector = vector::FromElementsOp::create(
      b, VectorType::get({4}, i32), parts);
  vector = vector::BitCastOp::create(b, type, vector);
  return arith::SelectOp::create(b, valid, vector, zero(b, type));
}

Value KernelEmitter::statusWord(IB &b) {
  auto type = MemRefType::get({1}, b.getI32Type());
  if (!kernels.lookupSymbol(ATTN_CUDA_STATUS_SYMBOL)) {
    // Public: the runtime finds it by name (cuModuleGetGlobal).
    OpBuilder mb = OpBuilder::atBlockBegin(kernels.getBody());
    memref::GlobalOp::create(
        mb, module.getLoc(), ATTN_CUDA_STATUS_SYMBOL,
        mb.getStringAttr("public"), type,
        DenseElementsAttr::get(RankedTensorType::get({1}, mb.getI32Type()),
                               mb.getI32IntegerAttr(0).getValue()),
        /*constant=*/false, /*alignment=*/mb.getI64IntegerAttr(4));
  }
  return memref::GetGlobalOp::create(b, type, ATTN_CUDA_STATUS_SYMBOL);
}

Value KernelEmitter::loadStatus(IB &b) {
  if (!opts.validateIndexValues)
    return {};
  return load(b, statusWord(b), cIndex(b, 0));
}

void KernelEmitter::skipIfRefused(IB &b, Value status) {
  if (!status)
    return;
  BuilderScope scope(b);
  auto guard = scf::IfOp::create(b, Idx(status) == 0, /*withElseRegion=*/false);
  b.setInsertionPoint(guard.thenBlock()->getTerminator());
}

Value gpu_lowering::sequenceOfRow(IB &b, Value rowOffsets, Value row) {
  BuilderScope scope(b);
  Idx batch = dim(b, rowOffsets, 0) - 1;
  return forLoop(b, cIndex(b, 0), batch, 1, {cIndex(b, 0)},
                 [&](IB &lb, Idx s, ValueRange count) {
                   Idx end = loadIndex(lb, rowOffsets, {s + 1});
                   Idx past = end <= Idx(row);
                   return SmallVector<Value>{
                       Idx(count[0]) +
                       Idx(select(lb, past, cIndex(lb, 1), cIndex(lb, 0)))};
                 })[0];
}
