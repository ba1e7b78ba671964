//===- ElementwiseKernels.cpp - norm, RoPE and cache-store kernels --------===//
//
// The memory-bound ops of the layer: one thread per item (a RoPE pair, an
// 8-element chunk of a cache row), one warp per row for the RMS norm.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

constexpr int64_t kThreads = 256;

Value dimOf(IB &b, Value memref, int64_t d) {
  return b.createOrFold<memref::DimOp>(memref, d);
}

/// A kernel with one thread per item in `[0, count)`; `body` sees the item
/// and the kernel's copies of `args`.
void emitPerItem(KernelEmitter &e, IB &host, StringRef name, Value count,
                 ValueRange args,
                 function_ref<void(IB &, Value, ValueRange)> body) {
  SmallVector<Value> operands(args);
  operands.push_back(count);
  SmallVector<Type> types(ValueRange(operands).getTypes());
  auto [kernel, b] = e.createKernel(host.getLoc(), name, types, {}, kThreads);
  ValueRange kargs = kernel.getArguments();
  Value item = arith::AddIOp::create(
      b, arith::MulIOp::create(b, blockIdx(b, gpu::Dimension::x),
                               cIdx(b, kThreads)),
      threadIdx(b));
  Value inRange =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, item, kargs.back());
  ifThen(b, inRange, [&](IB &tb) { body(tb, item, kargs.drop_back()); });
  e.launch(host, kernel, {ceilDiv(host, count, kThreads), cIdx(host, 1),
                          cIdx(host, 1)},
           kThreads, operands);
}

/// The position of row `row`: `cacheLengths[s] + row - rowOffsets[s]`.
Value rowPosition(IB &b, Value rowOffsets, Value cacheLengths, Value row) {
  Value seq = sequenceOfRow(b, rowOffsets, row);
  Value start = loadIndex(b, rowOffsets, seq);
  Value cached = loadIndex(b, cacheLengths, seq);
  return arith::AddIOp::create(b, cached, arith::SubIOp::create(b, row, start));
}

/// `mag * cos(pos * invFreq[i])` and `mag * sin(...)` in f64, as f32.
std::pair<Value, Value> angleCosSin(IB &b, KernelEmitter &e, RopeAttr rope,
                                    int64_t headDim, Value pos, Value i) {
  auto table = [&](int64_t position) {
    SmallVector<float> inv = rope.computeInvFreq(headDim, position);
    SmallVector<double> asF64(inv.begin(), inv.end());
    auto type = RankedTensorType::get({headDim / 2}, b.getF64Type());
    StringRef name = e.addConstant(
        b.getLoc(), "attn_inv_freq",
        DenseElementsAttr::get(type, ArrayRef<double>(asF64)));
    Value global = memref::GetGlobalOp::create(
        b, MemRefType::get({headDim / 2}, b.getF64Type()), name);
    return memref::LoadOp::create(b, global, i).getResult();
  };
  Value inv = table(0);
  if (auto longRope = dyn_cast_if_present<LongRopeScalingAttr>(rope.getScaling())) {
    int64_t switchAt = longRope.getOriginalMaxPosition();
    Value isLong = arith::CmpIOp::create(b, arith::CmpIPredicate::sge, pos,
                                         cIdx(b, switchAt));
    inv = arith::SelectOp::create(b, isLong, table(switchAt), inv);
  }
  Value p = arith::SIToFPOp::create(
      b, b.getF64Type(), arith::IndexCastOp::create(b, b.getI64Type(), pos));
  Value angle = arith::MulFOp::create(b, p, inv);
  Value mag = cF64(b, rope.getMagnitudeScale());
  auto scaled = [&](Value v) {
    return arith::TruncFOp::create(b, b.getF32Type(),
                                   arith::MulFOp::create(b, mag, v))
        .getResult();
  };
  return {scaled(math::CosOp::create(b, angle)),
          scaled(math::SinOp::create(b, angle))};
}

} // namespace

void gpu_lowering::emitRmsNorm(KernelEmitter &e, IB &host, Value in,
                               Value gamma, Value out, double eps) {
  constexpr int64_t warps = kThreads / 32;
  Value rows = dimOf(host, in, 0);
  SmallVector<Value> operands = {in, gamma, out, rows};
  SmallVector<Type> types(ValueRange(operands).getTypes());
  auto [kernel, b] = e.createKernel(host.getLoc(), "rms_norm", types, {}, kThreads);
  Value kIn = kernel.getArgument(0), kGamma = kernel.getArgument(1),
        kOut = kernel.getArgument(2), kRows = kernel.getArgument(3);
  Type element = cast<MemRefType>(in.getType()).getElementType();
  Value tid = threadIdx(b);
  Value lane = arith::RemUIOp::create(b, tid, cIdx(b, 32));
  Value row = arith::AddIOp::create(
      b, arith::MulIOp::create(b, blockIdx(b, gpu::Dimension::x), cIdx(b, warps)),
      arith::DivUIOp::create(b, tid, cIdx(b, 32)));
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  Value inRange = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, row, kRows);
  ifThen(b, inRange, [&](IB &tb) {
    Value width = dimOf(tb, kIn, 1);
    auto sum = scf::ForOp::create(tb, lane, width, cIdx(tb, 32),
                                  ValueRange{cF32(tb, 0.0)});
    {
      IB lb(tb.getLoc(), OpBuilder::atBlockBegin(sum.getBody()));
      Value x = toF32(lb, memref::LoadOp::create(
                              lb, kIn, ValueRange{row, sum.getInductionVar()}));
      scf::YieldOp::create(
          lb, ValueRange{math::FmaOp::create(lb, x, x, sum.getRegionIterArg(0))});
    }
    Value total = sum.getResult(0);
    for (int64_t mask = 16; mask >= 1; mask /= 2)
      total = arith::AddFOp::create(tb, total, shuffleXor(tb, total, mask));
    Value widthF = arith::UIToFPOp::create(
        tb, tb.getF32Type(), arith::IndexCastOp::create(tb, tb.getI32Type(), width));
    Value inv = math::RsqrtOp::create(
        tb, arith::AddFOp::create(tb, arith::DivFOp::create(tb, total, widthF),
                                  cF32(tb, eps)));
    auto write = scf::ForOp::create(tb, lane, width, cIdx(tb, 32));
    IB lb(tb.getLoc(), OpBuilder::atBlockBegin(write.getBody()));
    Value col = write.getInductionVar();
    Value x = toF32(lb, memref::LoadOp::create(lb, kIn, ValueRange{row, col}));
    Value g = toF32(lb, memref::LoadOp::create(lb, kGamma, col));
    Value y = arith::MulFOp::create(lb, arith::MulFOp::create(lb, x, inv), g);
    memref::StoreOp::create(lb, fromF32(lb, y, element), kOut, ValueRange{row, col});
  });
  e.launch(host, kernel, {ceilDiv(host, rows, warps), cIdx(host, 1), cIdx(host, 1)},
           kThreads, operands);
}

void gpu_lowering::emitRope(KernelEmitter &e, IB &host, Value in,
                            const RopeFreqs &freqs, Value rowOffsets,
                            Value cacheLengths, bool interleaved, Value out) {
  auto type = cast<MemRefType>(in.getType());
  int64_t heads = type.getDimSize(1), headDim = type.getDimSize(2),
          half = headDim / 2;
  Type element = type.getElementType();
  Value count = arith::MulIOp::create(host, dimOf(host, in, 0),
                                      cIdx(host, heads * half));
  SmallVector<Value> args = {in, rowOffsets, cacheLengths, out};
  if (freqs.table)
    args.push_back(freqs.table);
  emitPerItem(e, host, "rope", count, args, [&](IB &b, Value item, ValueRange k) {
    Value i = arith::RemUIOp::create(b, item, cIdx(b, half));
    Value rowHead = arith::DivUIOp::create(b, item, cIdx(b, half));
    Value head = arith::RemUIOp::create(b, rowHead, cIdx(b, heads));
    Value row = arith::DivUIOp::create(b, rowHead, cIdx(b, heads));
    Value pos = rowPosition(b, k[1], k[2], row);
    Value cosV, sinV;
    if (freqs.rope) {
      std::tie(cosV, sinV) = angleCosSin(b, e, freqs.rope, headDim, pos, i);
    } else {
      Value table = freqs.table ? k[4] : Value();
      if (!table)
        table = memref::GetGlobalOp::create(
            b, MemRefType::get({freqs.tableRows, headDim}, b.getF32Type()),
            freqs.constantTable);
      // Positions past the table read its last row rather than out of bounds.
      Value last = arith::SubIOp::create(b, dimOf(b, table, 0), cIdx(b, 1));
      Value p = minIdx(b, pos, last);
      Value col = arith::MulIOp::create(b, i, cIdx(b, 2));
      cosV = memref::LoadOp::create(b, table, ValueRange{p, col});
      sinV = memref::LoadOp::create(
          b, table, ValueRange{p, arith::AddIOp::create(b, col, cIdx(b, 1))});
    }
    Value ca = interleaved ? arith::MulIOp::create(b, i, cIdx(b, 2)) : i;
    Value cb = arith::AddIOp::create(b, ca, cIdx(b, interleaved ? 1 : half));
    Value xa = toF32(b, memref::LoadOp::create(b, k[0], ValueRange{row, head, ca}));
    Value xb = toF32(b, memref::LoadOp::create(b, k[0], ValueRange{row, head, cb}));
    Value ya = arith::SubFOp::create(b, arith::MulFOp::create(b, xa, cosV),
                                     arith::MulFOp::create(b, xb, sinV));
    Value yb = arith::AddFOp::create(b, arith::MulFOp::create(b, xa, sinV),
                                     arith::MulFOp::create(b, xb, cosV));
    memref::StoreOp::create(b, fromF32(b, ya, element), k[3],
                            ValueRange{row, head, ca});
    memref::StoreOp::create(b, fromF32(b, yb, element), k[3],
                            ValueRange{row, head, cb});
  });
}

void gpu_lowering::emitRopeTable(KernelEmitter &e, IB &host, RopeAttr rope,
                                 Value out) {
  auto type = cast<MemRefType>(out.getType());
  int64_t headDim = type.getDimSize(1), half = headDim / 2;
  Value count = cIdx(host, type.getDimSize(0) * half);
  emitPerItem(e, host, "rope_table", count, {out}, [&](IB &b, Value item, ValueRange k) {
    Value i = arith::RemUIOp::create(b, item, cIdx(b, half));
    Value pos = arith::DivUIOp::create(b, item, cIdx(b, half));
    auto [cosV, sinV] = angleCosSin(b, e, rope, headDim, pos, i);
    Value col = arith::MulIOp::create(b, i, cIdx(b, 2));
    memref::StoreOp::create(b, cosV, k[0], ValueRange{pos, col});
    memref::StoreOp::create(b, sinV, k[0],
                            ValueRange{pos, arith::AddIOp::create(b, col, cIdx(b, 1))});
  });
}

void gpu_lowering::emitKVCacheStore(KernelEmitter &e, IB &host, Value key,
                                    Value value, Value rowOffsets,
                                    Value cacheLengths, Value lookup,
                                    Value blocks, int64_t layer) {
  auto type = cast<MemRefType>(key.getType());
  int64_t heads = type.getDimSize(1), headDim = type.getDimSize(2);
  int64_t pageSize = cast<MemRefType>(blocks.getType()).getDimSize(3);
  // 16-byte chunks when rows allow it, else single elements.
  int64_t width = headDim % 8 == 0 ? 8 : 1, chunks = headDim / width;
  // (f32 caches move 32-byte chunks, still aligned to their size.)
  Value count = arith::MulIOp::create(host, dimOf(host, key, 0),
                                      cIdx(host, heads * chunks));
  emitPerItem(e, host, "kv_cache_store", count,
              {key, value, rowOffsets, cacheLengths, lookup, blocks},
              [&](IB &b, Value item, ValueRange k) {
    Value col = arith::MulIOp::create(
        b, arith::RemUIOp::create(b, item, cIdx(b, chunks)), cIdx(b, width));
    Value rowHead = arith::DivUIOp::create(b, item, cIdx(b, chunks));
    Value head = arith::RemUIOp::create(b, rowHead, cIdx(b, heads));
    Value row = arith::DivUIOp::create(b, rowHead, cIdx(b, heads));
    Value seq = sequenceOfRow(b, k[2], row);
    Value pos = arith::AddIOp::create(
        b, loadIndex(b, k[3], seq),
        arith::SubIOp::create(b, row, loadIndex(b, k[2], seq)));
    Value page = loadIndex(
        b, k[4], ValueRange{seq, arith::DivUIOp::create(b, pos, cIdx(b, pageSize))});
    Value slot = arith::RemUIOp::create(b, pos, cIdx(b, pageSize));
    auto vecType = VectorType::get({width}, type.getElementType());
    llvm::MaybeAlign align(width * type.getElementTypeBitWidth() / 8);
    for (int64_t kv = 0; kv < 2; ++kv) {
      Value v = vector::LoadOp::create(b, vecType, k[kv], ValueRange{row, head, col},
                                       /*nontemporal=*/false, align);
      vector::StoreOp::create(b, v, k[5],
                              ValueRange{page, cIdx(b, kv), cIdx(b, layer), slot,
                                         head, col},
                              /*nontemporal=*/false, align);
    }
  });
}
