//===- RopeKernels.cpp - rotary position embedding kernels ----------------===//
//
// RoPE: one thread per rotated pair (attn.rope), per table entry
// (attn.rope_freqs), and one warp per (row, up to 8 q or k heads) for
// attn.rope_store, which RMS-normalises q and k heads, rotates them and
// writes k and v straight into their cache slot.
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
  int64_t heads, kvHeads, headDim, pageSize;
  bool interleaved;
  double eps;
  Type element;
};

/// Heads a rope_store warp takes, of one row: the most of 8, 4 and 2 that
/// divides both the q and the kv heads (so that a warp's heads are all q or
/// all k), else 1.
int64_t headsPerWarp(const RopeStoreSpec &spec) {
  for (int64_t n : {8, 4, 2})
    if (spec.heads % n == 0 && spec.kvHeads % n == 0)
      return n;
  return 1;
}

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

/// One lane step of a warp's heads on pairs (i, i + 1): the cos / sin of
/// the two pairs once, then every head's runs loaded (q, or k and v), each
/// pair normalised (`invs`, when the norm is fused) and rotated, and the
/// runs stored: all loads before any store, so that they are in flight
/// together.
void rotatePairRuns(IB &b, KernelEmitter &e, const RopeStoreArgs &k,
                    const RopeFreqs &freqs, const RopeStoreSpec &spec,
                    ArrayRef<HeadItem> heads, ArrayRef<Value> invs, Idx i) {
  PairRuns runs{spec.interleaved, spec.headDim / 2};
  int64_t n = runs.runLength();
  auto runType = VectorType::get({n}, spec.element);
  llvm::MaybeAlign align(n * spec.element.getIntOrFloatBitWidth() / 8);
  SmallVector<Idx> starts = runs.starts(i);
  const CacheSlot &slot = heads.front().slot;
  std::array<std::pair<Value, Value>, 2> cosSin;
  for (int64_t p = 0; p < 2; ++p)
    cosSin[p] =
        ropeCosSin(b, e, freqs, spec.headDim, slot.pos, i + p, k.table);
  auto loadRun = [&](IB &lb, Value from, Idx head, Idx c) {
    return vector::LoadOp::create(lb, runType, from,
                                  ValueRange{heads.front().row, head, c},
                                  false, align)
        .getResult();
  };
  // The rotated runs of head `j` from its loaded runs `x`.
  auto rotateHead = [&](IB &lb, size_t j, ArrayRef<Value> x, Value gamma) {
    SmallVector<Value> xs, ys(starts.size() * n);
    for (Value v : x)
      for (int64_t t = 0; t < n; ++t)
        xs.push_back(toF32(lb, vector::ExtractOp::create(lb, v, t)));
    for (int64_t p = 0; p < 2; ++p) {
      auto [ia, ib] = runs.pairAt(p);
      auto [ca, cb] = pairColumns(i + p, spec.interleaved, runs.half);
      Value xa = xs[ia], xb = xs[ib];
      if (gamma) {
        xa = mulF(lb, mulF(lb, xa, invs[j]), toF32(lb, load(lb, gamma, ca)));
        xb = mulF(lb, mulF(lb, xb, invs[j]), toF32(lb, load(lb, gamma, cb)));
      }
      std::tie(ys[ia], ys[ib]) =
          rotate(lb, xa, xb, cosSin[p].first, cosSin[p].second);
    }
    SmallVector<Value> out;
    for (size_t r = 0; r < starts.size(); ++r) {
      Value v = ub::PoisonOp::create(lb, runType);
      for (int64_t t = 0; t < n; ++t)
        v = vector::InsertOp::create(
            lb, fromF32(lb, ys[r * n + t], spec.element), v, t);
      out.push_back(v);
    }
    return out;
  };
  auto store = [&](IB &sb, Value v, Value to, ValueRange at) {
    vector::StoreOp::create(sb, v, to, at, false, align);
  };
  ifThenElse(
      b, heads.front().isQ,
      [&](IB &qb) {
        SmallVector<SmallVector<Value>> x(heads.size());
        for (auto [j, h] : llvm::enumerate(heads))
          for (Idx c : starts)
            x[j].push_back(loadRun(qb, k.q, h.head, c));
        for (auto [j, h] : llvm::enumerate(heads))
          for (auto [c, y] : llvm::zip(starts, rotateHead(qb, j, x[j], k.gammaQ)))
            store(qb, y, k.qOut, {h.row, h.head, c});
      },
      [&](IB &kb) {
        SmallVector<SmallVector<Value>> x(heads.size()), v(heads.size());
        for (auto [j, h] : llvm::enumerate(heads))
          for (Idx c : starts) {
            x[j].push_back(loadRun(kb, k.k, h.kvHead, c));
            v[j].push_back(loadRun(kb, k.v, h.kvHead, c));
          }
        for (auto [j, h] : llvm::enumerate(heads)) {
          SmallVector<Value> y = rotateHead(kb, j, x[j], k.gammaK);
          for (auto [r, c] : llvm::enumerate(starts)) {
            store(kb, y[r], k.blocks, slot.at(kb, 0, k.layer, h.kvHead, c));
            store(kb, v[j][r], k.blocks, slot.at(kb, 1, k.layer, h.kvHead, c));
          }
        }
      });
}

/// A rope_store warp's work: `headsPerWarp` heads of one row, all q or all
/// k (with their v), so that the row's position, cache slot and cos / sin
/// are found once for them.
void buildRopeStore(IB &b, KernelEmitter &e, const RopeStoreArgs &k,
                    const RopeFreqs &freqs, const RopeStoreSpec &spec) {
  BuilderScope scope(b);
  int64_t perWarp = headsPerWarp(spec);
  int64_t groups = (spec.heads + spec.kvHeads) / perWarp;
  int64_t half = spec.headDim / 2;
  Value status = e.loadStatus(b);
  WarpItem w = WarpItem::of(b);
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  ifThen(b, ult(b, w.item, k.count), [&](IB &tb) {
    Idx row = w.item / groups, first = w.item % groups * perWarp;
    Idx seq = sequenceOfRow(tb, k.rowOffsets, row);
    e.skipIfRefused(tb, status);
    CacheSlot slot = CacheSlot::of(tb, k.rowOffsets, k.cacheLengths, k.lookup,
                                   spec.pageSize, row, seq);
    Idx isQ = ult(tb, first, cIndex(tb, spec.heads));
    SmallVector<HeadItem> heads;
    for (int64_t j = 0; j < perWarp; ++j) {
      Idx head = first + j;
      heads.push_back({row, head, isQ, head - spec.heads, slot});
    }
    SmallVector<Value> invs;
    for (const HeadItem &h : heads) {
      if (!k.gammaQ)
        break;
      Value total = warpSumOfSquares(
          tb, w.lane, cIndex(tb, spec.headDim),
          [&](IB &lb, Idx c) { return loadHead(lb, k, h, spec.element, c); });
      invs.push_back(rsqrtPlusEps(
          tb, mulF(tb, total, cF32(tb, 1.0 / spec.headDim)), spec.eps));
    }
    auto onePair = [&](IB &pb) {
      for (auto [j, h] : llvm::enumerate(heads))
        forLoop(pb, w.lane, cIndex(pb, half), 32, [&](IB &lb, Idx i) {
          auto [cosV, sinV] =
              ropeCosSin(lb, e, freqs, spec.headDim, h.slot.pos, i, k.table);
          auto [ca, cb] = pairColumns(i, spec.interleaved, half);
          Value xa = loadHead(lb, k, h, spec.element, ca);
          Value xb = loadHead(lb, k, h, spec.element, cb);
          if (k.gammaQ) {
            xa = mulF(lb, mulF(lb, xa, invs[j]), loadGamma(lb, k, h, ca));
            xb = mulF(lb, mulF(lb, xb, invs[j]), loadGamma(lb, k, h, cb));
          }
          auto [ya, yb] = rotate(lb, xa, xb, cosV, sinV);
          storePair(lb, k, h, ca, cb, fromF32(lb, ya, spec.element),
                    fromF32(lb, yb, spec.element));
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
            rotatePairRuns(lb, e, k, freqs, spec, heads, invs, i);
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
                     cast<MemRefType>(k.getType()).getDimSize(1),
                     qType.getDimSize(2),
                     cast<MemRefType>(blocks.getType()).getDimSize(3),
                     interleaved,
                     eps,
                     qType.getElementType()};
  Idx count =
      dim(host, q, 0) * ((spec.heads + spec.kvHeads) / headsPerWarp(spec));
  RopeStoreArgs args{q,      k,     v,    rowOffsets, cacheLengths,
                     lookup, blocks, layer, qOut,  gammaQ,
                     gammaK, freqs.table, count};
  auto [kernel, b, kargs] =
      createKernel(e, host.getLoc(), "rope_store", args, {}, kThreads);
  buildRopeStore(b, e, kargs, freqs, spec);
  launchWarpPerItem(e, host, kernel, count, argumentList(args));
}
