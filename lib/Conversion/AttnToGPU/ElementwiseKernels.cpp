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
                               cIndex(b, kThreads)),
      threadIdx(b));
  Value inRange =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, item, kargs.back());
  ifThen(b, inRange, [&](IB &tb) { body(tb, item, kargs.drop_back()); });
  e.launch(host, kernel, {ceilDiv(host, count, kThreads), cIndex(host, 1),
                          cIndex(host, 1)},
           kThreads, operands);
}

/// This thread's lane and its warp's item (`block x * warps + warp`), for
/// kernels that give each item a whole warp.
std::pair<Value, Value> laneAndWarpItem(IB &b, int64_t warps) {
  Value tid = threadIdx(b);
  Value lane = arith::RemUIOp::create(b, tid, cIndex(b, 32));
  Value item = arith::AddIOp::create(
      b, arith::MulIOp::create(b, blockIdx(b, gpu::Dimension::x), cIndex(b, warps)),
      arith::DivUIOp::create(b, tid, cIndex(b, 32)));
  return {lane, item};
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
                                         cIndex(b, switchAt));
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

/// cos / sin of pair `i` at position `pos`: from the rope attribute, the
/// table argument `table` (the kernel's copy of `freqs.table`) or the
/// constant table.
std::pair<Value, Value> ropeCosSin(IB &b, KernelEmitter &e,
                                   const RopeFreqs &freqs, int64_t headDim,
                                   Value pos, Value i, Value table) {
  if (freqs.rope)
    return angleCosSin(b, e, freqs.rope, headDim, pos, i);
  if (!table)
    table = memref::GetGlobalOp::create(
        b, MemRefType::get({freqs.tableRows, headDim}, b.getF32Type()),
        freqs.constantTable);
  // Positions past the table read its last row rather than out of bounds.
  Value last = arith::SubIOp::create(b, dimOf(b, table, 0), cIndex(b, 1));
  Value p = min(b, pos, last);
  Value col = arith::MulIOp::create(b, i, cIndex(b, 2));
  Value cosV = memref::LoadOp::create(b, table, ValueRange{p, col});
  Value sinV = memref::LoadOp::create(
      b, table, ValueRange{p, arith::AddIOp::create(b, col, cIndex(b, 1))});
  return {cosV, sinV};
}

} // namespace

void gpu_lowering::emitRopeStore(KernelEmitter &e, IB &host, Value q, Value k,
                                 Value v, const RopeFreqs &freqs,
                                 Value rowOffsets, Value cacheLengths,
                                 Value lookup, Value blocks, int64_t layer,
                                 bool interleaved, Value gammaQ, Value gammaK,
                                 double eps, Value qOut) {
  constexpr int64_t warps = kThreads / 32;
  auto qType = cast<MemRefType>(q.getType());
  auto kType = cast<MemRefType>(k.getType());
  int64_t heads = qType.getDimSize(1), kvHeads = kType.getDimSize(1);
  int64_t headDim = qType.getDimSize(2), half = headDim / 2;
  int64_t perRow = heads + kvHeads;
  int64_t pageSize = cast<MemRefType>(blocks.getType()).getDimSize(3);
  Type element = qType.getElementType();
  bool norm = static_cast<bool>(gammaQ);
  Value rows = dimOf(host, q, 0);
  Value count = arith::MulIOp::create(host, rows, cIndex(host, perRow));
  SmallVector<Value> operands = {q, k, v, rowOffsets, cacheLengths, lookup,
                                 blocks, qOut};
  if (norm) {
    operands.push_back(gammaQ);
    operands.push_back(gammaK);
  }
  if (freqs.table)
    operands.push_back(freqs.table);
  operands.push_back(count);
  SmallVector<Type> types(ValueRange(operands).getTypes());
  auto [kernel, b] = e.createKernel(host.getLoc(), "rope_store", types, {},
                                    kThreads);
  ValueRange a = kernel.getArguments();
  Value kq = a[0], kk = a[1], kv = a[2], kOff = a[3], kLen = a[4],
        kLookup = a[5], kBlocks = a[6], kQOut = a[7];
  Value kGq = norm ? a[8] : Value(), kGk = norm ? a[9] : Value();
  Value kTable = freqs.table ? a[norm ? 10 : 8] : Value();
  Value kCount = a.back();
  Value lane, item;
  std::tie(lane, item) = laneAndWarpItem(b, warps);
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  Value inRange = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, item, kCount);
  ifThen(b, inRange, [&](IB &tb) {
    Value row = arith::DivUIOp::create(tb, item, cIndex(tb, perRow));
    Value h = arith::RemUIOp::create(tb, item, cIndex(tb, perRow));
    Value isQ = arith::CmpIOp::create(tb, arith::CmpIPredicate::ult, h,
                                      cIndex(tb, heads));
    Value kvHead = arith::SubIOp::create(tb, h, cIndex(tb, heads));
    Value seq = sequenceOfRow(tb, kOff, row);
    Value pos = arith::AddIOp::create(
        tb, loadIndex(tb, kLen, seq),
        arith::SubIOp::create(tb, row, loadIndex(tb, kOff, seq)));
    Value page = loadIndex(
        tb, kLookup,
        ValueRange{seq, arith::DivUIOp::create(tb, pos, cIndex(tb, pageSize))});
    Value slot = arith::RemUIOp::create(tb, pos, cIndex(tb, pageSize));
    // Element `c` of this head of q or k, as f32.
    auto load = [&](IB &lb, Value c) {
      auto ifOp = scf::IfOp::create(lb, TypeRange{element}, isQ, true);
      {
        IB qb(lb.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
        scf::YieldOp::create(
            qb, ValueRange{memref::LoadOp::create(qb, kq, ValueRange{row, h, c})});
      }
      IB kb(lb.getLoc(), OpBuilder::atBlockBegin(ifOp.elseBlock()));
      scf::YieldOp::create(
          kb, ValueRange{memref::LoadOp::create(kb, kk, ValueRange{row, kvHead, c})});
      return toF32(lb, ifOp.getResult(0));
    };
    Value inv;
    if (norm) {
      auto sum = scf::ForOp::create(tb, lane, cIndex(tb, headDim), cIndex(tb, 32),
                                    ValueRange{cF32(tb, 0.0)});
      {
        IB lb(tb.getLoc(), OpBuilder::atBlockBegin(sum.getBody()));
        Value x = load(lb, sum.getInductionVar());
        scf::YieldOp::create(
            lb, ValueRange{math::FmaOp::create(lb, x, x, sum.getRegionIterArg(0))});
      }
      Value total = sum.getResult(0);
      for (int64_t mask = 16; mask >= 1; mask /= 2)
        total = arith::AddFOp::create(tb, total, shuffleXor(tb, total, mask));
      inv = math::RsqrtOp::create(
          tb, arith::AddFOp::create(
                  tb, arith::MulFOp::create(tb, total, cF32(tb, 1.0 / headDim)),
                  cF32(tb, eps)));
    }
    auto pairs = scf::ForOp::create(tb, lane, cIndex(tb, half), cIndex(tb, 32));
    IB lb(tb.getLoc(), OpBuilder::atBlockBegin(pairs.getBody()));
    Value i = pairs.getInductionVar();
    auto [cosV, sinV] = ropeCosSin(lb, e, freqs, headDim, pos, i, kTable);
    Value ca = interleaved ? arith::MulIOp::create(lb, i, cIndex(lb, 2)) : i;
    Value cb = arith::AddIOp::create(lb, ca, cIndex(lb, interleaved ? 1 : half));
    Value xa = load(lb, ca), xb = load(lb, cb);
    if (norm) {
      auto gammaAt = [&](Value c) {
        auto ifOp = scf::IfOp::create(lb, TypeRange{lb.getF32Type()}, isQ, true);
        {
          IB qb(lb.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
          scf::YieldOp::create(
              qb, ValueRange{toF32(qb, memref::LoadOp::create(qb, kGq, c))});
        }
        IB kb(lb.getLoc(), OpBuilder::atBlockBegin(ifOp.elseBlock()));
        scf::YieldOp::create(
            kb, ValueRange{toF32(kb, memref::LoadOp::create(kb, kGk, c))});
        return ifOp.getResult(0);
      };
      xa = arith::MulFOp::create(lb, arith::MulFOp::create(lb, xa, inv),
                                 gammaAt(ca));
      xb = arith::MulFOp::create(lb, arith::MulFOp::create(lb, xb, inv),
                                 gammaAt(cb));
    }
    Value ya = arith::SubFOp::create(lb, arith::MulFOp::create(lb, xa, cosV),
                                     arith::MulFOp::create(lb, xb, sinV));
    Value yb = arith::AddFOp::create(lb, arith::MulFOp::create(lb, xa, sinV),
                                     arith::MulFOp::create(lb, xb, cosV));
    ya = fromF32(lb, ya, element);
    yb = fromF32(lb, yb, element);
    auto ifOp = scf::IfOp::create(lb, isQ, /*withElse=*/true);
    {
      IB qb(lb.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
      memref::StoreOp::create(qb, ya, kQOut, ValueRange{row, h, ca});
      memref::StoreOp::create(qb, yb, kQOut, ValueRange{row, h, cb});
    }
    IB kb(lb.getLoc(), OpBuilder::atBlockBegin(ifOp.elseBlock()));
    auto at = [&](int64_t kvIdx, Value c) {
      return SmallVector<Value>{page, cIndex(kb, kvIdx), cIndex(kb, layer), slot,
                                kvHead, c};
    };
    memref::StoreOp::create(kb, ya, kBlocks, at(0, ca));
    memref::StoreOp::create(kb, yb, kBlocks, at(0, cb));
    memref::StoreOp::create(
        kb, memref::LoadOp::create(kb, kv, ValueRange{row, kvHead, ca}), kBlocks,
        at(1, ca));
    memref::StoreOp::create(
        kb, memref::LoadOp::create(kb, kv, ValueRange{row, kvHead, cb}), kBlocks,
        at(1, cb));
  });
  e.launch(host, kernel, {ceilDiv(host, count, warps), cIndex(host, 1), cIndex(host, 1)},
           kThreads, operands);
}

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
  Value lane, row;
  std::tie(lane, row) = laneAndWarpItem(b, warps);
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  Value inRange = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, row, kRows);
  ifThen(b, inRange, [&](IB &tb) {
    Value width = dimOf(tb, kIn, 1);
    auto sum = scf::ForOp::create(tb, lane, width, cIndex(tb, 32),
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
    auto write = scf::ForOp::create(tb, lane, width, cIndex(tb, 32));
    IB lb(tb.getLoc(), OpBuilder::atBlockBegin(write.getBody()));
    Value col = write.getInductionVar();
    Value x = toF32(lb, memref::LoadOp::create(lb, kIn, ValueRange{row, col}));
    Value g = toF32(lb, memref::LoadOp::create(lb, kGamma, col));
    Value y = arith::MulFOp::create(lb, arith::MulFOp::create(lb, x, inv), g);
    memref::StoreOp::create(lb, fromF32(lb, y, element), kOut, ValueRange{row, col});
  });
  e.launch(host, kernel, {ceilDiv(host, rows, warps), cIndex(host, 1), cIndex(host, 1)},
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
                                      cIndex(host, heads * half));
  SmallVector<Value> args = {in, rowOffsets, cacheLengths, out};
  if (freqs.table)
    args.push_back(freqs.table);
  emitPerItem(e, host, "rope", count, args, [&](IB &b, Value item, ValueRange k) {
    Value i = arith::RemUIOp::create(b, item, cIndex(b, half));
    Value rowHead = arith::DivUIOp::create(b, item, cIndex(b, half));
    Value head = arith::RemUIOp::create(b, rowHead, cIndex(b, heads));
    Value row = arith::DivUIOp::create(b, rowHead, cIndex(b, heads));
    Value pos = rowPosition(b, k[1], k[2], row);
    auto [cosV, sinV] = ropeCosSin(b, e, freqs, headDim, pos, i,
                                   freqs.table ? k[4] : Value());
    Value ca = interleaved ? arith::MulIOp::create(b, i, cIndex(b, 2)) : i;
    Value cb = arith::AddIOp::create(b, ca, cIndex(b, interleaved ? 1 : half));
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
  Value count = cIndex(host, type.getDimSize(0) * half);
  emitPerItem(e, host, "rope_table", count, {out}, [&](IB &b, Value item, ValueRange k) {
    Value i = arith::RemUIOp::create(b, item, cIndex(b, half));
    Value pos = arith::DivUIOp::create(b, item, cIndex(b, half));
    auto [cosV, sinV] = angleCosSin(b, e, rope, headDim, pos, i);
    Value col = arith::MulIOp::create(b, i, cIndex(b, 2));
    memref::StoreOp::create(b, cosV, k[0], ValueRange{pos, col});
    memref::StoreOp::create(b, sinV, k[0],
                            ValueRange{pos, arith::AddIOp::create(b, col, cIndex(b, 1))});
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
                                      cIndex(host, heads * chunks));
  emitPerItem(e, host, "kv_cache_store", count,
              {key, value, rowOffsets, cacheLengths, lookup, blocks},
              [&](IB &b, Value item, ValueRange k) {
    Value col = arith::MulIOp::create(
        b, arith::RemUIOp::create(b, item, cIndex(b, chunks)), cIndex(b, width));
    Value rowHead = arith::DivUIOp::create(b, item, cIndex(b, chunks));
    Value head = arith::RemUIOp::create(b, rowHead, cIndex(b, heads));
    Value row = arith::DivUIOp::create(b, rowHead, cIndex(b, heads));
    Value seq = sequenceOfRow(b, k[2], row);
    Value pos = arith::AddIOp::create(
        b, loadIndex(b, k[3], seq),
        arith::SubIOp::create(b, row, loadIndex(b, k[2], seq)));
    Value page = loadIndex(
        b, k[4], ValueRange{seq, arith::DivUIOp::create(b, pos, cIndex(b, pageSize))});
    Value slot = arith::RemUIOp::create(b, pos, cIndex(b, pageSize));
    auto vecType = VectorType::get({width}, type.getElementType());
    llvm::MaybeAlign align(width * type.getElementTypeBitWidth() / 8);
    for (int64_t kv = 0; kv < 2; ++kv) {
      Value v = vector::LoadOp::create(b, vecType, k[kv], ValueRange{row, head, col},
                                       /*nontemporal=*/false, align);
      vector::StoreOp::create(b, v, k[5],
                              ValueRange{page, cIndex(b, kv), cIndex(b, layer), slot,
                                         head, col},
                              /*nontemporal=*/false, align);
    }
  });
}
