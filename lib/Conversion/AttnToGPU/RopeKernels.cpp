//===- RopeKernels.cpp - rotary position embedding kernels ----------------===//
//
// RoPE: one thread per rotated pair (attn.rope), per table entry
// (attn.rope_freqs), and one warp per (row, head) for attn.rope_store, which
// RMS-normalises q and k heads, rotates them and writes k and v straight
// into their cache slot.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;
using namespace mlir::attn::gpu_lowering::elementwise;

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

namespace {

/// `mag * cos(pos * invFreq[i])` and `mag * sin(...)` in f64, as f32.
std::pair<Value, Value> angleCosSin(IB &b, KernelEmitter &e, RopeAttr rope,
                                    int64_t headDim, Idx pos, Idx i) {
  auto table = [&](int64_t position) {
    SmallVector<float> inv = rope.computeInvFreq(headDim, position);
    SmallVector<double> asF64(inv.begin(), inv.end());
    auto type = RankedTensorType::get({headDim / 2}, b.getF64Type());
    StringRef name =
        e.addConstant(b.getLoc(), "attn_inv_freq",
                      DenseElementsAttr::get(type, ArrayRef<double>(asF64)));
    Value global = memref::GetGlobalOp::create(
        b, MemRefType::get({headDim / 2}, b.getF64Type()), name);
    return load(b, global, i);
  };
  Value inv = table(0);
  if (auto longRope =
          dyn_cast_if_present<LongRopeScalingAttr>(rope.getScaling())) {
    int64_t switchAt = longRope.getOriginalMaxPosition();
    Idx isLong = pos >= switchAt;
    inv = select(b, isLong, table(switchAt), inv);
  }
  Value p = arith::SIToFPOp::create(b, b.getF64Type(),
                                    indexCast(b, pos, b.getI64Type()));
  Value angle = mulF(b, p, inv);
  Value mag = cF64(b, rope.getMagnitudeScale());
  auto scaled = [&](Value v) {
    return arith::TruncFOp::create(b, b.getF32Type(), mulF(b, mag, v))
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
                                   Idx pos, Idx i, Value table) {
  if (freqs.rope)
    return angleCosSin(b, e, freqs.rope, headDim, pos, i);
  if (!table)
    table = memref::GetGlobalOp::create(
        b, MemRefType::get({freqs.tableRows, headDim}, b.getF32Type()),
        freqs.constantTable);
  // Positions past the table read its last row rather than out of bounds.
  Idx p = min(b, pos, dim(b, table, 0) - 1);
  Idx col = i * 2;
  Value cosV = load(b, table, {p, col});
  Value sinV = load(b, table, {p, col + 1});
  return {cosV, sinV};
}

/// The two columns that pair `i` rotates: (2i, 2i + 1) when interleaved,
/// else (i, i + D/2).
std::pair<Idx, Idx> pairColumns(Idx i, bool interleaved, int64_t half) {
  Idx a = interleaved ? i * 2 : i;
  return {a, a + (interleaved ? 1 : half)};
}

/// (xa, xb) rotated by the angle of `cosV` / `sinV`.
std::pair<Value, Value> rotate(IB &b, Value xa, Value xb, Value cosV,
                               Value sinV) {
  Value ya = arith::SubFOp::create(b, mulF(b, xa, cosV), mulF(b, xb, sinV));
  Value yb = arith::AddFOp::create(b, mulF(b, xa, sinV), mulF(b, xb, cosV));
  return {ya, yb};
}

struct RopeArgs {
  Value in, rowOffsets, cacheLengths, out, table;

  template <typename F> void forEach(F f) {
    f(in), f(rowOffsets), f(cacheLengths), f(out), f(table);
  }
};

struct RopeTableArgs {
  Value out;

  template <typename F> void forEach(F f) { f(out); }
};

} // namespace

void gpu_lowering::emitRope(KernelEmitter &e, IB &host, Value in,
                            const RopeFreqs &freqs, Value rowOffsets,
                            Value cacheLengths, bool interleaved, Value out) {
  BuilderScope scope(host);
  auto type = cast<MemRefType>(in.getType());
  int64_t heads = type.getDimSize(1), headDim = type.getDimSize(2),
          half = headDim / 2;
  Type element = type.getElementType();
  Idx count = dim(host, in, 0) * (heads * half);
  RopeArgs args{in, rowOffsets, cacheLengths, out, freqs.table};
  emitPerItem(
      e, host, "rope", count, args, [&](IB &b, Idx item, const RopeArgs &k) {
        Value status = e.loadStatus(b);
        Idx i = item % half, rowHead = item / half;
        Idx head = rowHead % heads, row = rowHead / heads;
        Idx seq = sequenceOfRow(b, k.rowOffsets, row);
        e.skipIfRefused(b, status);
        Idx start = loadIndex(b, k.rowOffsets, seq);
        Idx pos = loadIndex(b, k.cacheLengths, seq) + (row - start);
        auto [cosV, sinV] = ropeCosSin(b, e, freqs, headDim, pos, i, k.table);
        auto [ca, cb] = pairColumns(i, interleaved, half);
        Value xa = toF32(b, load(b, k.in, {row, head, ca}));
        Value xb = toF32(b, load(b, k.in, {row, head, cb}));
        auto [ya, yb] = rotate(b, xa, xb, cosV, sinV);
        store(b, fromF32(b, ya, element), k.out, {row, head, ca});
        store(b, fromF32(b, yb, element), k.out, {row, head, cb});
      });
}

void gpu_lowering::emitRopeTable(KernelEmitter &e, IB &host, RopeAttr rope,
                                 Value out) {
  auto type = cast<MemRefType>(out.getType());
  int64_t headDim = type.getDimSize(1), half = headDim / 2;
  Value count = cIndex(host, type.getDimSize(0) * half);
  emitPerItem(e, host, "rope_table", count, RopeTableArgs{out},
              [&](IB &b, Idx item, const RopeTableArgs &k) {
                Idx i = item % half, pos = item / half;
                auto [cosV, sinV] = angleCosSin(b, e, rope, headDim, pos, i);
                Idx col = i * 2;
                store(b, cosV, k.out, {pos, col});
                store(b, sinV, k.out, {pos, col + 1});
              });
}

//===----------------------------------------------------------------------===//
// RoPE into the cache
//===----------------------------------------------------------------------===//

namespace {

struct RopeStoreArgs {
  Value q, k, v, rowOffsets, cacheLengths, lookup, blocks, layer, qOut;
  Value gammaQ, gammaK; // with the per-head RMS norm only
  Value table;
  Value count;

  template <typename F> void forEach(F f) {
    f(q), f(k), f(v), f(rowOffsets), f(cacheLengths), f(lookup), f(blocks);
    f(layer), f(qOut), f(gammaQ), f(gammaK), f(table), f(count);
  }
};

/// The shape of attn.rope_store and what it computes.
struct RopeStoreSpec {
  int64_t heads, headDim, pageSize;
  bool interleaved;
  double eps;
  Type element;
};

/// The (row, head) of a rope_store warp: a q head (`isQ`), or k head
/// `kvHead` bound for the cache with its v head.
struct HeadItem {
  Idx row, head, isQ, kvHead;
  CacheSlot slot;
};

/// Element `c` of the item's q or k head, as f32.
Value loadHead(IB &b, const RopeStoreArgs &k, const HeadItem &h, Type element,
               Idx c) {
  return toF32(
      b, ifElse(
             b, h.isQ, TypeRange{element},
             [&](IB &qb) {
               return SmallVector<Value>{load(qb, k.q, {h.row, h.head, c})};
             },
             [&](IB &kb) {
               return SmallVector<Value>{load(kb, k.k, {h.row, h.kvHead, c})};
             })[0]);
}

/// Element `c` of the q or k norm weight, as f32.
Value loadGamma(IB &b, const RopeStoreArgs &k, const HeadItem &h, Idx c) {
  return ifElse(
      b, h.isQ, TypeRange{b.getF32Type()},
      [&](IB &qb) {
        return SmallVector<Value>{toF32(qb, load(qb, k.gammaQ, c))};
      },
      [&](IB &kb) {
        return SmallVector<Value>{toF32(kb, load(kb, k.gammaK, c))};
      })[0];
}

/// Rotated columns (ca, cb) of a q head to `qOut`, of a k head to its cache
/// slot, with the matching v columns copied beside them.
void storePair(IB &b, const RopeStoreArgs &k, const HeadItem &h, Idx ca,
               Idx cb, Value ya, Value yb) {
  ifThenElse(
      b, h.isQ,
      [&](IB &qb) {
        store(qb, ya, k.qOut, {h.row, h.head, ca});
        store(qb, yb, k.qOut, {h.row, h.head, cb});
      },
      [&](IB &kb) {
        const CacheSlot &s = h.slot;
        store(kb, ya, k.blocks, s.at(kb, 0, k.layer, h.kvHead, ca));
        store(kb, yb, k.blocks, s.at(kb, 0, k.layer, h.kvHead, cb));
        for (Idx c : {ca, cb}) {
          Value v = load(kb, k.v, {h.row, h.kvHead, c});
          store(kb, v, k.blocks, s.at(kb, 1, k.layer, h.kvHead, c));
        }
      });
}

//===----------------------------------------------------------------------===//
// Two pairs a lane step
//===----------------------------------------------------------------------===//

/// A lane's step on pairs (i, i + 1), i even, as runs of adjacent columns:
/// rotating halves (columns i, i + D/2), the runs (i, i + 1) and (i + D/2,
/// i + D/2 + 1), 4 bytes each for 16-bit elements; interleaved, the one run
/// 2i .. 2i + 3 (pair j's columns 2j, 2j + 1 are its elements 2j', 2j' + 1).
struct PairRuns {
  bool interleaved;
  int64_t half;

  int64_t runLength() const { return interleaved ? 4 : 2; }
  /// The first column of each run.
  SmallVector<Idx> starts(Idx i) const {
    if (interleaved)
      return {i * 2};
    return {i, i + half};
  }
  /// Where pair p's (a, b) columns lie in the runs' elements (run-major).
  std::pair<int64_t, int64_t> pairAt(int64_t p) const {
    if (interleaved)
      return {2 * p, 2 * p + 1};
    return {p, runLength() + p};
  }
};

/// Whether every buffer's first element sits on a multiple of `bytes` (the
/// caller's tensors may be views).
Idx startsAligned(IB &b, ArrayRef<Value> buffers, int64_t bytes) {
  Idx all = cBool(b, true);
  for (Value buffer : buffers) {
    auto type = cast<MemRefType>(buffer.getType());
    auto metadata = memref::ExtractStridedMetadataOp::create(b, buffer);
    Idx base =
        Value(memref::ExtractAlignedPointerAsIndexOp::create(b, buffer));
    Idx first =
        base + Idx(metadata.getOffset()) * (type.getElementTypeBitWidth() / 8);
    all = all & (first % bytes == 0);
  }
  return all;
}

/// Elements c .. c + n - 1 of the item's q or k head (one vector load).
Value loadHeadRun(IB &b, const RopeStoreArgs &k, const HeadItem &h,
                  VectorType run, Idx c) {
  llvm::MaybeAlign align(run.getNumElements() *
                         run.getElementTypeBitWidth() / 8);
  return ifElse(
      b, h.isQ, TypeRange{run},
      [&](IB &qb) {
        return SmallVector<Value>{vector::LoadOp::create(
            qb, run, k.q, ValueRange{h.row, h.head, c}, false, align)};
      },
      [&](IB &kb) {
        return SmallVector<Value>{vector::LoadOp::create(
            kb, run, k.k, ValueRange{h.row, h.kvHead, c}, false, align)};
      })[0];
}

/// The rotated runs of a q head to `qOut`, of a k head to its cache slot
/// with the v runs of the same columns beside them.
void storeHeadRuns(IB &b, const RopeStoreArgs &k, const HeadItem &h,
                   ArrayRef<Idx> starts, ArrayRef<Value> runs) {
  auto run = cast<VectorType>(runs.front().getType());
  llvm::MaybeAlign align(run.getNumElements() *
                         run.getElementTypeBitWidth() / 8);
  ifThenElse(
      b, h.isQ,
      [&](IB &qb) {
        for (auto [c, y] : llvm::zip(starts, runs))
          vector::StoreOp::create(qb, y, k.qOut,
                                  ValueRange{h.row, h.head, c}, false, align);
      },
      [&](IB &kb) {
        const CacheSlot &s = h.slot;
        for (auto [c, y] : llvm::zip(starts, runs)) {
          vector::StoreOp::create(kb, y, k.blocks,
                                  s.at(kb, 0, k.layer, h.kvHead, c), false,
                                  align);
          Value v = vector::LoadOp::create(
              kb, run, k.v, ValueRange{h.row, h.kvHead, c}, false, align);
          vector::StoreOp::create(kb, v, k.blocks,
                                  s.at(kb, 1, k.layer, h.kvHead, c), false,
                                  align);
        }
      });
}

/// One lane step on pairs (i, i + 1): the runs loaded at once, each pair
/// normalised (`inv`, when the norm is fused) and rotated, the runs stored
/// at once.
void rotatePairRuns(IB &b, KernelEmitter &e, const RopeStoreArgs &k,
                    const RopeFreqs &freqs, const RopeStoreSpec &spec,
                    const HeadItem &h, Value inv, Idx i) {
  PairRuns runs{spec.interleaved, spec.headDim / 2};
  auto runType = VectorType::get({runs.runLength()}, spec.element);
  SmallVector<Idx> starts = runs.starts(i);
  SmallVector<Value> x;
  for (Idx c : starts) {
    Value v = loadHeadRun(b, k, h, runType, c);
    for (int64_t j = 0; j < runs.runLength(); ++j)
      x.push_back(toF32(b, vector::ExtractOp::create(b, v, j)));
  }
  SmallVector<Value> y(x.size());
  for (int64_t p = 0; p < 2; ++p) {
    auto [ia, ib] = runs.pairAt(p);
    auto [ca, cb] = pairColumns(i + p, spec.interleaved, runs.half);
    Value xa = x[ia], xb = x[ib];
    if (k.gammaQ) {
      xa = mulF(b, mulF(b, xa, inv), loadGamma(b, k, h, ca));
      xb = mulF(b, mulF(b, xb, inv), loadGamma(b, k, h, cb));
    }
    auto [cosV, sinV] =
        ropeCosSin(b, e, freqs, spec.headDim, h.slot.pos, i + p, k.table);
    std::tie(y[ia], y[ib]) = rotate(b, xa, xb, cosV, sinV);
  }
  SmallVector<Value> out;
  for (size_t r = 0; r < starts.size(); ++r) {
    Value v = ub::PoisonOp::create(b, runType);
    for (int64_t j = 0; j < runs.runLength(); ++j)
      v = vector::InsertOp::create(
          b, fromF32(b, y[r * runs.runLength() + j], spec.element), v, j);
    out.push_back(v);
  }
  storeHeadRuns(b, k, h, starts, out);
}

void buildRopeStore(IB &b, KernelEmitter &e, const RopeStoreArgs &k,
                    const RopeFreqs &freqs, const RopeStoreSpec &spec) {
  BuilderScope scope(b);
  int64_t perRow = spec.heads + cast<MemRefType>(k.k.getType()).getDimSize(1);
  int64_t half = spec.headDim / 2;
  Value status = e.loadStatus(b);
  WarpItem w = WarpItem::of(b);
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  ifThen(b, ult(b, w.item, k.count), [&](IB &tb) {
    HeadItem h;
    h.row = w.item / perRow;
    h.head = w.item % perRow;
    h.isQ = ult(tb, h.head, cIndex(tb, spec.heads));
    h.kvHead = h.head - spec.heads;
    Idx seq = sequenceOfRow(tb, k.rowOffsets, h.row);
    e.skipIfRefused(tb, status);
    h.slot = CacheSlot::of(tb, k.rowOffsets, k.cacheLengths, k.lookup,
                           spec.pageSize, h.row, seq);
    auto headAt = [&](IB &lb, Idx c) {
      return loadHead(lb, k, h, spec.element, c);
    };
    Value inv;
    if (k.gammaQ) {
      Value total =
          warpSumOfSquares(tb, w.lane, cIndex(tb, spec.headDim), headAt);
      inv = rsqrtPlusEps(tb, mulF(tb, total, cF32(tb, 1.0 / spec.headDim)),
                         spec.eps);
    }
    auto onePair = [&](IB &pb) {
      forLoop(pb, w.lane, cIndex(pb, half), 32, [&](IB &lb, Idx i) {
        auto [cosV, sinV] =
            ropeCosSin(lb, e, freqs, spec.headDim, h.slot.pos, i, k.table);
        auto [ca, cb] = pairColumns(i, spec.interleaved, half);
        Value xa = headAt(lb, ca), xb = headAt(lb, cb);
        if (k.gammaQ) {
          xa = mulF(lb, mulF(lb, xa, inv), loadGamma(lb, k, h, ca));
          xb = mulF(lb, mulF(lb, xb, inv), loadGamma(lb, k, h, cb));
        }
        auto [ya, yb] = rotate(lb, xa, xb, cosV, sinV);
        ya = fromF32(lb, ya, spec.element);
        yb = fromF32(lb, yb, spec.element);
        storePair(lb, k, h, ca, cb, ya, yb);
      });
    };
    // Two pairs a lane step in runs of adjacent columns (one 4- or 8-byte
    // access each, a warp's 128 bytes or more) where the pairs come in twos
    // and every buffer is aligned to a run; else one pair a step.
    PairRuns runs{spec.interleaved, half};
    int64_t runBytes =
        runs.runLength() * spec.element.getIntOrFloatBitWidth() / 8;
    if (half % 2)
      return onePair(tb);
    ifThenElse(
        tb, startsAligned(tb, {k.q, k.k, k.v, k.qOut, k.blocks}, runBytes),
        [&](IB &vb) {
          forLoop(vb, w.lane * 2, cIndex(vb, half), 64, [&](IB &lb, Idx i) {
            rotatePairRuns(lb, e, k, freqs, spec, h, inv, i);
          });
        },
        onePair);
  });
}

} // namespace

void gpu_lowering::emitRopeStore(KernelEmitter &e, IB &host, Value q, Value k,
                                 Value v, const RopeFreqs &freqs,
                                 Value rowOffsets, Value cacheLengths,
                                 Value lookup, Value blocks, Value layer,
                                 bool interleaved, Value gammaQ, Value gammaK,
                                 double eps, Value qOut) {
  BuilderScope scope(host);
  auto qType = cast<MemRefType>(q.getType());
  RopeStoreSpec spec{qType.getDimSize(1),
                     qType.getDimSize(2),
                     cast<MemRefType>(blocks.getType()).getDimSize(3),
                     interleaved,
                     eps,
                     qType.getElementType()};
  int64_t perRow = spec.heads + cast<MemRefType>(k.getType()).getDimSize(1);
  Idx count = dim(host, q, 0) * perRow;
  RopeStoreArgs args{q,      k,     v,    rowOffsets, cacheLengths,
                     lookup, blocks, layer, qOut,  gammaQ,
                     gammaK, freqs.table, count};
  auto [kernel, b, kargs] =
      createKernel(e, host.getLoc(), "rope_store", args, {}, kThreads);
  buildRopeStore(b, e, kargs, freqs, spec);
  launchWarpPerItem(e, host, kernel, count, argumentList(args));
}
