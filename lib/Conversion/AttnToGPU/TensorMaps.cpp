//===- TensorMaps.cpp - TMA tensor maps as kernel arguments ---------------===//

#include "TensorMaps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

static constexpr StringLiteral kEncodeFunction = "attnCudaEncodeTensorMap";
static constexpr int64_t kSwizzleBytes = 128;

/// cuda.h's CUtensorMapDataType of the operands TMA loads here.
static int32_t tensorMapDataType(Type element) {
  if (element.isBF16())
    return 9; // CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
  if (element.isF16())
    return 6; // CU_TENSOR_MAP_DATA_TYPE_FLOAT16
  if (element.isInteger(32))
    return 2; // CU_TENSOR_MAP_DATA_TYPE_UINT32 (GPTQ's packed words)
  return 0;   // CU_TENSOR_MAP_DATA_TYPE_UINT8 (E4M3 bytes)
}

/// `void attnCudaEncodeTensorMap(ptr map, i64 base, i32 type, i64 rows,
/// i64 cols, i64 rowBytes, i32 boxRows, i32 boxCols)`.
static func::FuncOp encodeFunction(ModuleOp module) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(kEncodeFunction))
    return existing;
  auto b = OpBuilder::atBlockEnd(module.getBody());
  Type i32 = b.getI32Type(), i64 = b.getI64Type();
  auto function = func::FuncOp::create(
      b, module.getLoc(), kEncodeFunction,
      b.getFunctionType({LLVM::LLVMPointerType::get(b.getContext()), i64, i32,
                         i64, i64, i64, i32, i32},
                        {}));
  function.setPrivate();
  return function;
}

Type gpu_lowering::tensorMapType(MLIRContext *context) {
  return LLVM::LLVMArrayType::get(IntegerType::get(context, 64), 16);
}

MemRefType gpu_lowering::tensorMapBox(Type element, int64_t rows) {
  int64_t cols = kSwizzleBytes * 8 / element.getIntOrFloatBitWidth();
  return MemRefType::get(
      {rows, cols}, element, AffineMap(),
      gpu::AddressSpaceAttr::get(element.getContext(),
                                 gpu::AddressSpace::Workgroup));
}

bool gpu_lowering::hasTensorMapLayout(Value buffer) {
  auto type = cast<MemRefType>(buffer.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (type.getRank() != 2 || failed(type.getStridesAndOffset(strides, offset)))
    return false;
  int64_t bytes = type.getElementTypeBitWidth() / 8;
  if (strides[1] != 1 || !llvm::is_contained({1, 2}, bytes))
    return false;
  // Rows 16-byte aligned: checked here when static, else by the encoding.
  return ShapedType::isDynamic(strides[0]) || strides[0] * bytes % 16 == 0;
}

Value gpu_lowering::encodeTensorMap(IB &host, Value buffer, MemRefType box,
                                    bool maybeEmpty) {
  BuilderScope scope(host);
  auto module =
      host.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
  auto type = cast<MemRefType>(buffer.getType());
  int64_t bytes = type.getElementTypeBitWidth() / 8;
  auto metadata = memref::ExtractStridedMetadataOp::create(host, buffer);
  Type i64 = host.getI64Type();
  Value map = LLVM::AllocaOp::create(
      host, LLVM::LLVMPointerType::get(host.getContext()),
      tensorMapType(host.getContext()),
      LLVM::ConstantOp::create(host, i64, host.getI64IntegerAttr(1)),
      /*alignment=*/64);
  Value address = hostAddress(host, buffer);
  Idx rows = Value(metadata.getSizes()[0]);
  if (maybeEmpty) {
    // No rows: a one-row map at an aligned placeholder address, which the
    // driver accepts and no kernel reads.
    Idx empty = rows == 0;
    address =
        select(host, empty,
               LLVM::ConstantOp::create(host, i64, host.getI64IntegerAttr(256)),
               address);
    rows = max(host, rows, cIndex(host, 1));
  }
  func::CallOp::create(
      host, encodeFunction(module),
      ValueRange{map, address,
                 cI32(host, tensorMapDataType(type.getElementType())),
                 indexCast(host, rows, i64),
                 indexCast(host, metadata.getSizes()[1], i64),
                 indexCast(host, Idx(metadata.getStrides()[0]) * bytes, i64),
                 cI32(host, box.getDimSize(0)), cI32(host, box.getDimSize(1))});
  return LLVM::LoadOp::create(host, tensorMapType(host.getContext()), map);
}

Value gpu_lowering::tensorMapAddress(IB &b, Value map) {
  Value copy = LLVM::AllocaOp::create(
      b, LLVM::LLVMPointerType::get(b.getContext()), map.getType(),
      LLVM::ConstantOp::create(b, b.getI64Type(), b.getI64IntegerAttr(1)),
      /*alignment=*/64);
  LLVM::StoreOp::create(b, map, copy);
  return copy;
}

Value gpu_lowering::tensorMapDescriptor(IB &b, Value address, MemRefType box) {
  auto type = nvgpu::TensorMapDescriptorType::get(
      b.getContext(), box, nvgpu::TensorMapSwizzleKind::SWIZZLE_128B,
      nvgpu::TensorMapL2PromoKind::L2PROMO_256B,
      nvgpu::TensorMapOOBKind::OOB_ZERO,
      nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
  return UnrealizedConversionCastOp::create(b, type, address).getResult(0);
}
