//===- GPULayouts.cpp - thread and fragment layouts of NVIDIA kernels -----===//

#include "attn/Conversion/Kernels/GPULayouts.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kb;

Idx kb::threadIdx(IB &b) {
  return Value(gpu::ThreadIdOp::create(b, gpu::Dimension::x));
}
Idx kb::blockIdx(IB &b, gpu::Dimension d) {
  return Value(gpu::BlockIdOp::create(b, d));
}

Idx kb::gridDim(IB &b, gpu::Dimension d) {
  return Value(gpu::GridDimOp::create(b, d));
}

//===----------------------------------------------------------------------===//
// Warps
//===----------------------------------------------------------------------===//

WarpLayout WarpLayout::of(Idx thread) {
  WarpLayout w;
  w.thread = thread;
  w.lane = thread % 32;
  w.warp = thread / 32;
  w.group = w.lane / 4;
  w.quad = w.lane % 4;
  return w;
}

Value kb::shuffleXor(IB &b, Value v, int64_t mask) {
  return gpu::ShuffleOp::create(b, v, static_cast<int32_t>(mask), 32,
                                gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

Idx kb::warpUniform(IB &b, Idx v) {
  Value word = indexCast(b, v, b.getI32Type());
  Value lane0 =
      gpu::ShuffleOp::create(b, word, 0, 32, gpu::ShuffleMode::IDX)
          .getShuffleResult();
  return indexCast(b, lane0, b.getIndexType());
}

//===----------------------------------------------------------------------===//
// mma.sync m16n8k16
//===----------------------------------------------------------------------===//

// ldmatrix.x4: lanes 8i .. 8i + 7 address the rows of matrix i.
std::pair<Idx, Idx> m16n8k16::aCoord(Idx lane, Idx row0) {
  // a0: rows 0-7 / k 0-7, a1: rows 8-15 / k 0-7, a2 / a3: k 8-15.
  Idx row = lane % 16;
  if (row0)
    row = row0 + row;
  return {row, lane / 16 * 8};
}
std::pair<Idx, Idx> m16n8k16::bCoordNMajor(Idx lane, Idx row0) {
  // b0 / b1 of n 0-7 (k 0-7, 8-15), then of n 8-15.
  Idx row = lane / 16 * 8 + lane % 8;
  if (row0)
    row = row0 + row;
  return {row, lane / 8 % 2 * 8};
}
std::pair<Idx, Idx> m16n8k16::bCoordKMajorTrans(Idx lane) {
  // k 0-7 and 8-15 of n 0-7, then of n 8-15 (transposed on load).
  return {lane / 8 % 2 * 8 + lane % 8, lane / 16 * 8};
}
Idx m16n8k16::accRow(const WarpLayout &w, int64_t r) {
  return w.group + (r / 2) * 8;
}
Idx m16n8k16::accCol(const WarpLayout &w, int64_t r) {
  return w.quad * 2 + r % 2;
}

static Value asI32(IB &b, Value pair) {
  Value v = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{0});
}

std::array<Value, 4> kb::ldmatrixX4(IB &b, Value smem, Value row, Value col,
                                    bool transpose) {
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

std::array<Value, 4> kb::mma16816(IB &b, Type elementType, ArrayRef<Value> a,
                                  ArrayRef<Value> bFrag, ArrayRef<Value> c) {
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
      b, resultType, operands(a), operands(bFrag), c,
      ArrayRef<int64_t>{16, 8, 16},
      /*b1Op=*/std::nullopt, /*intOverflow=*/std::nullopt,
      std::array<NVVM::MMATypes, 2>{ptxType, ptxType},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  std::array<Value, 4> d;
  for (int64_t i = 0; i < 4; ++i)
    d[i] = LLVM::ExtractValueOp::create(b, mma.getResult(), i);
  return d;
}

Value kb::packPair(IB &b, Value lo, Value hi, Type elementType) {
  Value pair = vector::FromElementsOp::create(
      b, VectorType::get({2}, b.getF32Type()), ValueRange{lo, hi});
  pair = arith::TruncFOp::create(b, VectorType::get({2}, elementType), pair);
  return asI32(b, pair);
}

//===----------------------------------------------------------------------===//
// wgmma
//===----------------------------------------------------------------------===//

Value WgmmaDescriptor::build(IB &b) const {
  auto c64 = [&](int64_t v) {
    return arith::ConstantIntOp::create(b, v, 64).getResult();
  };
  // Bits 0-13: start address >> 4 (18-bit shared window address).
  Value start = arith::AddIOp::create(b, startAddress, c64(offsetBytes));
  start = arith::ShRUIOp::create(
      b, arith::AndIOp::create(b, start, c64(0x3FFFF)), c64(4));
  // Bits 16-29: leading byte offset >> 4; 32-45: stride byte offset >> 4;
  // 62-63: swizzle mode.
  int64_t fixed = ((leadingByteOffset >> 4) << 16) |
                  ((strideByteOffset >> 4) << 32) |
                  (static_cast<int64_t>(swizzle) << 62);
  return arith::OrIOp::create(b, start, c64(fixed));
}

Value WgmmaDescriptor::advance(IB &b, Value descriptor, Value bytes) {
  Value field = arith::ShRUIOp::create(
      b, bytes, arith::ConstantIntOp::create(b, 4, 64).getResult());
  return arith::AddIOp::create(b, descriptor, field);
}

Idx kb::swizzled128Index(Idx r, Idx chunk, int64_t rows) {
  Idx block = chunk / 8, within = chunk % 8;
  Idx physical = within ^ (r % 8);
  return (block * rows + r) * 64 + physical * 8;
}

Value kb::packAccumulators(IB &b, ArrayRef<Value> acc) {
  auto structType = LLVM::LLVMStructType::getLiteral(
      b.getContext(), SmallVector<Type>(acc.size(), b.getF32Type()));
  Value d = LLVM::UndefOp::create(b, structType);
  for (auto [i, v] : llvm::enumerate(acc))
    d = LLVM::InsertValueOp::create(b, d, v, i);
  return d;
}

SmallVector<Value> kb::unpackAccumulators(IB &b, Value acc) {
  auto structType = cast<LLVM::LLVMStructType>(acc.getType());
  SmallVector<Value> values;
  for (size_t i = 0; i < structType.getBody().size(); ++i)
    values.push_back(LLVM::ExtractValueOp::create(b, acc, i));
  return values;
}

Value kb::wgmmaAsync(IB &b, Type element,
                     ArrayRef<std::pair<Value, Value>> steps, int64_t n,
                     bool transposeB, Value acc, bool accumulate) {
  MLIRContext *ctx = b.getContext();
  auto type = element.isBF16()  ? NVVM::WGMMATypes::bf16
              : element.isF16() ? NVVM::WGMMATypes::f16
                                : NVVM::WGMMATypes::e4m3;
  // An instruction reads 32 bytes of K.
  int64_t k = 256 / element.getIntOrFloatBitWidth();
  // Without accumulating, the first instruction ignores its input (scale-d
  // 0): the sums start from zero in `acc`'s registers, unzeroed.
  auto scaleOut =
      accumulate ? NVVM::WGMMAScaleOut::one : NVVM::WGMMAScaleOut::zero;
  NVVM::WgmmaFenceAlignedOp::create(b);
  for (auto [descA, descB] : steps) {
    acc = NVVM::WgmmaMmaAsyncOp::create(
        b, acc.getType(), acc, descA, descB,
        NVVM::MMAShapeAttr::get(ctx, 64, n, k), type, type,
        NVVM::WGMMATypes::f32, scaleOut,
        NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one, NVVM::MMALayout::row,
        transposeB ? NVVM::MMALayout::row : NVVM::MMALayout::col, nullptr);
    scaleOut = NVVM::WGMMAScaleOut::one;
  }
  NVVM::WgmmaGroupSyncAlignedOp::create(b);
  return acc;
}

/// `values` (all of `type`) through an empty volatile asm that ties each
/// to itself with register class `constraint`.
static SmallVector<Value> fenceValues(IB &b, ArrayRef<Value> values, Type type,
                                      StringRef constraint) {
  int64_t n = values.size();
  SmallVector<std::string> constraints;
  for (int64_t i = 0; i < n; ++i)
    constraints.push_back(("=" + constraint).str());
  for (int64_t i = 0; i < n; ++i)
    constraints.push_back(std::to_string(i));
  auto structType = LLVM::LLVMStructType::getLiteral(
      b.getContext(), SmallVector<Type>(n, type));
  auto fence = LLVM::InlineAsmOp::create(
      b, b.getLoc(), structType, values, "", llvm::join(constraints, ","),
      /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::TailCallKind::None, /*asm_dialect=*/nullptr,
      /*operand_attrs=*/nullptr);
  return unpackAccumulators(b, fence.getResult(0));
}

SmallVector<Value> kb::fenceRegisters(IB &b, ArrayRef<Value> values) {
  return fenceValues(b, values, b.getF32Type(), "f");
}

SmallVector<Value> kb::fenceIntRegisters(IB &b, ArrayRef<Value> values) {
  return fenceValues(b, values, b.getI32Type(), "r");
}

Value kb::wgmmaAsyncRegisterA(IB &b, Type element,
                              ArrayRef<WgmmaRegisterAStep> steps, int64_t n,
                              Value acc, Value accumulate) {
  assert((element.isBF16() || element.isF16()) && "16-bit A registers");
  std::string type = element.isBF16() ? "bf16" : "f16";
  int64_t sums = n / 2;
  // Operands: the sums ($0 .., tied to the inputs after them), then A's
  // four registers, B's descriptor and, on the first step, scale-d.
  auto operand = [&](int64_t i) { return "$" + std::to_string(i); };
  SmallVector<std::string> d, constraints;
  for (int64_t i = 0; i < sums; ++i) {
    d.push_back(operand(i));
    constraints.push_back("=f");
  }
  for (int64_t i = 0; i < sums; ++i)
    constraints.push_back(std::to_string(i));
  constraints.append({"r", "r", "r", "r", "l"});
  Value scaleD = arith::ExtUIOp::create(b, b.getI32Type(), accumulate);
  NVVM::WgmmaFenceAlignedOp::create(b);
  for (auto [i, step] : llvm::enumerate(steps)) {
    int64_t a = 2 * sums;
    std::string scale = i == 0 ? operand(a + 5) : "1";
    std::string text =
        "{\n.reg .pred p;\nsetp.ne.b32 p, " + scale +
        ", 0;\nwgmma.mma_async.sync.aligned.m64n" + std::to_string(n) +
        "k16.f32." + type + "." + type + " {" + llvm::join(d, ", ") + "}, {" +
        operand(a) + ", " + operand(a + 1) + ", " + operand(a + 2) + ", " +
        operand(a + 3) + "}, " + operand(a + 4) + ", p, 1, 1, 0;\n}\n";
    SmallVector<Value> operands = unpackAccumulators(b, acc);
    llvm::append_range(operands, step.a);
    operands.push_back(step.descB);
    SmallVector<std::string> stepConstraints = constraints;
    if (i == 0) {
      operands.push_back(scaleD);
      stepConstraints.push_back("r");
    }
    acc = LLVM::InlineAsmOp::create(
              b, b.getLoc(), acc.getType(), operands, text,
              llvm::join(stepConstraints, ","), /*has_side_effects=*/true,
              /*is_align_stack=*/false, LLVM::TailCallKind::None,
              /*asm_dialect=*/nullptr, /*operand_attrs=*/nullptr)
              .getResult(0);
  }
  NVVM::WgmmaGroupSyncAlignedOp::create(b);
  return acc;
}

void kb::wgmmaWait(IB &b, int64_t pending) {
  NVVM::WgmmaWaitGroupSyncOp::create(b, b.getI64IntegerAttr(pending));
}

void kb::wgmma(IB &b, Type element, ArrayRef<std::pair<Value, Value>> steps,
               int64_t n, bool transposeB, MutableArrayRef<Value> acc) {
  Value d = wgmmaAsync(b, element, steps, n, transposeB,
                       packAccumulators(b, acc));
  wgmmaWait(b, 0);
  llvm::copy(unpackAccumulators(b, d), acc.begin());
}

static gpu::AddressSpaceAttr workgroupSpace(MLIRContext *context) {
  return gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
}

AlignedSharedMemory AlignedSharedMemory::get(IB &b, int64_t alignment) {
  AlignedSharedMemory smem;
  smem.raw = gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), AffineMap(),
                         workgroupSpace(b.getContext())));
  Idx base =
      Value(memref::ExtractAlignedPointerAsIndexOp::create(b, smem.raw));
  smem.pad = (alignment - base % alignment) % alignment;
  return smem;
}

Value AlignedSharedMemory::view(IB &b, Type element, int64_t elements,
                                int64_t offsetBytes) const {
  return shapedView(b, element, {elements}, offsetBytes);
}

Value AlignedSharedMemory::shapedView(IB &b, Type element,
                                      ArrayRef<int64_t> shape,
                                      int64_t offsetBytes) const {
  return memref::ViewOp::create(
      b,
      MemRefType::get(shape, element, AffineMap(),
                      workgroupSpace(b.getContext())),
      raw, pad + offsetBytes, ValueRange{});
}

void kb::fenceProxyAsync(IB &b) {
  NVVM::FenceProxyOp::create(
      b, NVVM::ProxyKind::async_shared,
      NVVM::SharedSpaceAttr::get(b.getContext(), NVVM::SharedSpace::shared_cta));
}
