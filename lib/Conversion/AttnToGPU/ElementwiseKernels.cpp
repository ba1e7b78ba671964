//===- ElementwiseKernels.cpp - norm, RoPE and cache-store kernels --------===//
//
// The memory-bound ops of the layer: one thread per item (a RoPE pair, an
// 8-element chunk of a cache row), one warp per row for the RMS norm and per
// (row, head) for attn.rope_store.
//
//===----------------------------------------------------------------------===//

#include "KernelArguments.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

constexpr int64_t kThreads = 256, kWarps = kThreads / 32;

//===----------------------------------------------------------------------===//
// Work items
//===----------------------------------------------------------------------===//

/// A kernel's arguments followed by the item count.
template <typename Args>
struct CountedArgs {
  Args args;
  Value count;

  template <typename F>
  void forEach(F f) {
    args.forEach(f);
    f(count);
  }
};

/// A kernel `name` with one thread per item in `[0, count)`; `body(b, item,
/// args)` sees the item and the kernel's arguments.
template <typename Args, typename Body>
void emitPerItem(KernelEmitter &e, IB &host, StringRef name, Value count,
                 Args args, Body body) {
  CountedArgs<Args> all{args, count};
  auto [kernel, b, k] = createKernel(e, host.getLoc(), name, all, {}, kThreads);
  {
    BuilderScope scope(b);
    const Args &kernelArgs = k.args;
    Idx item = blockIdx(b, gpu::Dimension::x) * kThreads + threadIdx(b);
    ifThen(b, ult(b, item, k.count),
           [&](IB &tb) { body(tb, item, kernelArgs); });
  }
  e.launch(host, kernel,
           {ceilDiv(host, count, kThreads), cIndex(host, 1), cIndex(host, 1)},
           kThreads, argumentList(all));
}

/// This thread's lane and its warp's item (`block x * warps + warp`), for
/// kernels that give each item a whole warp.
struct WarpItem {
  Idx lane, item;

  static WarpItem of(IB &b) {
    Idx thread = threadIdx(b);
    Idx lane = thread % 32;
    return {lane, blockIdx(b, gpu::Dimension::x) * kWarps + thread / 32};
  }
};

/// Launches a kernel with a warp per item on enough blocks for `count`.
void launchWarpPerItem(KernelEmitter &e, IB &host, gpu::GPUFuncOp kernel,
                       Value count, ValueRange args) {
  e.launch(host, kernel,
           {ceilDiv(host, count, kWarps), cIndex(host, 1), cIndex(host, 1)},
           kThreads, args);
}

//===----------------------------------------------------------------------===//
// Cache slots
//===----------------------------------------------------------------------===//

/// Where row `row` of a ragged batch goes in the paged cache: its sequence,
/// its position `cacheLengths[s] + row - rowOffsets[s]` there, and the page
/// (through `lookup [B, pages]`) and slot in the page of that position.
struct CacheSlot {
  Idx seq, pos, page, slot;

  static CacheSlot of(IB &b, Value rowOffsets, Value cacheLengths,
                      Value lookup, int64_t pageSize, Idx row) {
    CacheSlot c;
    c.seq = sequenceOfRow(b, rowOffsets, row);
    c.pos = loadIndex(b, cacheLengths, c.seq) +
            (row - loadIndex(b, rowOffsets, c.seq));
    c.page = loadIndex(b, lookup, {c.seq, c.pos / pageSize});
    c.slot = c.pos % pageSize;
    return c;
  }

  /// Element `col` of head `head` of the key (`kv` 0) or value (1) row.
  SmallVector<Value> at(IB &b, int64_t kv, int64_t layer, Value head,
                        Value col) const {
    return {page, cIndex(b, kv), cIndex(b, layer), slot, head, col};
  }
};

//===----------------------------------------------------------------------===//
// RMS norm
//===----------------------------------------------------------------------===//

/// The sum of `element(c)^2` over the columns `c < width`, lanes striding
/// by 32 and the warp reducing the partial sums: every lane gets the total.
Value warpSumOfSquares(IB &b, Idx lane, Value width,
                       function_ref<Value(IB &, Idx)> element) {
  Value total =
      forLoop(b, lane, width, 32, {cF32(b, 0.0)},
              [&](IB &lb, Idx c, ValueRange sum) {
                Value x = element(lb, c);
                return SmallVector<Value>{
                    math::FmaOp::create(lb, x, x, sum[0])};
              })[0];
  for (int64_t mask = 16; mask >= 1; mask /= 2)
    total = arith::AddFOp::create(b, total, shuffleXor(b, total, mask));
  return total;
}

/// `rsqrt(mean + eps)` for the mean square `mean`.
Value rsqrtPlusEps(IB &b, Value mean, double eps) {
  return math::RsqrtOp::create(b,
                               arith::AddFOp::create(b, mean, cF32(b, eps)));
}

Value mulF(IB &b, Value x, Value y) { return arith::MulFOp::create(b, x, y); }

struct RmsNormArgs {
  Value in, gamma, out, rows;

  template <typename F>
  void forEach(F f) {
    f(in), f(gamma), f(out), f(rows);
  }
};

void buildRmsNorm(IB &b, const RmsNormArgs &k, double eps) {
  BuilderScope scope(b);
  Type element = cast<MemRefType>(k.in.getType()).getElementType();
  WarpItem w = WarpItem::of(b);
  Idx lane = w.lane, row = w.item;
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  ifThen(b, ult(b, row, k.rows), [&](IB &tb) {
    Idx width = dim(tb, k.in, 1);
    Value total = warpSumOfSquares(tb, lane, width, [&](IB &lb, Idx col) {
      return toF32(lb, load(lb, k.in, {row, col}));
    });
    Value widthF = arith::UIToFPOp::create(tb, tb.getF32Type(),
                                           indexCast(tb, width, tb.getI32Type()));
    Value inv =
        rsqrtPlusEps(tb, arith::DivFOp::create(tb, total, widthF), eps);
    forLoop(tb, lane, width, 32, [&](IB &lb, Idx col) {
      Value x = toF32(lb, load(lb, k.in, {row, col}));
      Value g = toF32(lb, load(lb, k.gamma, col));
      store(lb, fromF32(lb, mulF(lb, mulF(lb, x, inv), g), element), k.out,
            {row, col});
    });
  });
}

} // namespace

void gpu_lowering::emitRmsNorm(KernelEmitter &e, IB &host, Value in,
                               Value gamma, Value out, double eps) {
  RmsNormArgs args{in, gamma, out, dim(host, in, 0)};
  auto [kernel, b, k] =
      createKernel(e, host.getLoc(), "rms_norm", args, {}, kThreads);
  buildRmsNorm(b, k, eps);
  launchWarpPerItem(e, host, kernel, args.rows, argumentList(args));
}

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
    StringRef name = e.addConstant(
        b.getLoc(), "attn_inv_freq",
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
  Value angle = arith::MulFOp::create(b, p, inv);
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

  template <typename F>
  void forEach(F f) {
    f(in), f(rowOffsets), f(cacheLengths), f(out), f(table);
  }
};

struct RopeTableArgs {
  Value out;

  template <typename F>
  void forEach(F f) {
    f(out);
  }
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
  emitPerItem(e, host, "rope", count, args,
              [&](IB &b, Idx item, const RopeArgs &k) {
    Idx i = item % half, rowHead = item / half;
    Idx head = rowHead % heads, row = rowHead / heads;
    Idx seq = sequenceOfRow(b, k.rowOffsets, row);
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
  Value q, k, v, rowOffsets, cacheLengths, lookup, blocks, qOut;
  Value gammaQ, gammaK; // with the per-head RMS norm only
  Value table;
  Value count;

  template <typename F>
  void forEach(F f) {
    f(q), f(k), f(v), f(rowOffsets), f(cacheLengths), f(lookup), f(blocks);
    f(qOut), f(gammaQ), f(gammaK), f(table), f(count);
  }
};

/// The shape of attn.rope_store and what it computes.
struct RopeStoreSpec {
  int64_t heads, headDim, pageSize, layer;
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
Value loadHead(IB &b, const RopeStoreArgs &k, const HeadItem &h,
               Type element, Idx c) {
  return toF32(b, ifElse(
                      b, h.isQ, TypeRange{element},
                      [&](IB &qb) {
                        return SmallVector<Value>{
                            load(qb, k.q, {h.row, h.head, c})};
                      },
                      [&](IB &kb) {
                        return SmallVector<Value>{
                            load(kb, k.k, {h.row, h.kvHead, c})};
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
void storePair(IB &b, const RopeStoreArgs &k, const HeadItem &h,
               int64_t layer, Idx ca, Idx cb, Value ya, Value yb) {
  ifThenElse(
      b, h.isQ,
      [&](IB &qb) {
        store(qb, ya, k.qOut, {h.row, h.head, ca});
        store(qb, yb, k.qOut, {h.row, h.head, cb});
      },
      [&](IB &kb) {
        const CacheSlot &s = h.slot;
        store(kb, ya, k.blocks, s.at(kb, 0, layer, h.kvHead, ca));
        store(kb, yb, k.blocks, s.at(kb, 0, layer, h.kvHead, cb));
        for (Idx c : {ca, cb}) {
          Value v = load(kb, k.v, {h.row, h.kvHead, c});
          store(kb, v, k.blocks, s.at(kb, 1, layer, h.kvHead, c));
        }
      });
}

void buildRopeStore(IB &b, KernelEmitter &e, const RopeStoreArgs &k,
                    const RopeFreqs &freqs, const RopeStoreSpec &spec) {
  BuilderScope scope(b);
  int64_t perRow = spec.heads + cast<MemRefType>(k.k.getType()).getDimSize(1);
  int64_t half = spec.headDim / 2;
  WarpItem w = WarpItem::of(b);
  // Whole warps leave together, so the shuffles below see all 32 lanes.
  ifThen(b, ult(b, w.item, k.count), [&](IB &tb) {
    HeadItem h;
    h.row = w.item / perRow;
    h.head = w.item % perRow;
    h.isQ = ult(tb, h.head, cIndex(tb, spec.heads));
    h.kvHead = h.head - spec.heads;
    h.slot = CacheSlot::of(tb, k.rowOffsets, k.cacheLengths, k.lookup,
                           spec.pageSize, h.row);
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
    forLoop(tb, w.lane, cIndex(tb, half), 32, [&](IB &lb, Idx i) {
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
      storePair(lb, k, h, spec.layer, ca, cb, ya, yb);
    });
  });
}

} // namespace

void gpu_lowering::emitRopeStore(KernelEmitter &e, IB &host, Value q, Value k,
                                 Value v, const RopeFreqs &freqs,
                                 Value rowOffsets, Value cacheLengths,
                                 Value lookup, Value blocks, int64_t layer,
                                 bool interleaved, Value gammaQ, Value gammaK,
                                 double eps, Value qOut) {
  BuilderScope scope(host);
  auto qType = cast<MemRefType>(q.getType());
  RopeStoreSpec spec{qType.getDimSize(1),
                     qType.getDimSize(2),
                     cast<MemRefType>(blocks.getType()).getDimSize(3),
                     layer,
                     interleaved,
                     eps,
                     qType.getElementType()};
  int64_t perRow = spec.heads + cast<MemRefType>(k.getType()).getDimSize(1);
  Idx count = dim(host, q, 0) * perRow;
  RopeStoreArgs args{q,      k,      v,           rowOffsets, cacheLengths,
                     lookup, blocks, qOut,        gammaQ,     gammaK,
                     freqs.table, count};
  auto [kernel, b, kargs] =
      createKernel(e, host.getLoc(), "rope_store", args, {}, kThreads);
  buildRopeStore(b, e, kargs, freqs, spec);
  launchWarpPerItem(e, host, kernel, count, argumentList(args));
}

//===----------------------------------------------------------------------===//
// KV cache store
//===----------------------------------------------------------------------===//

namespace {
struct CacheStoreArgs {
  Value key, value, rowOffsets, cacheLengths, lookup, blocks;

  template <typename F>
  void forEach(F f) {
    f(key), f(value), f(rowOffsets), f(cacheLengths), f(lookup), f(blocks);
  }
};
} // namespace

void gpu_lowering::emitKVCacheStore(KernelEmitter &e, IB &host, Value key,
                                    Value value, Value rowOffsets,
                                    Value cacheLengths, Value lookup,
                                    Value blocks, int64_t layer) {
  BuilderScope scope(host);
  auto type = cast<MemRefType>(key.getType());
  int64_t heads = type.getDimSize(1), headDim = type.getDimSize(2);
  int64_t pageSize = cast<MemRefType>(blocks.getType()).getDimSize(3);
  // 16-byte chunks when rows allow it, else single elements (f32 caches
  // move 32-byte chunks, still aligned to their size).
  int64_t width = headDim % 8 == 0 ? 8 : 1, chunks = headDim / width;
  auto vecType = VectorType::get({width}, type.getElementType());
  llvm::MaybeAlign align(width * type.getElementTypeBitWidth() / 8);
  Idx count = dim(host, key, 0) * (heads * chunks);
  CacheStoreArgs args{key, value, rowOffsets, cacheLengths, lookup, blocks};
  emitPerItem(e, host, "kv_cache_store", count, args,
              [&](IB &b, Idx item, const CacheStoreArgs &k) {
    Idx col = item % chunks * width, rowHead = item / chunks;
    Idx head = rowHead % heads, row = rowHead / heads;
    CacheSlot slot = CacheSlot::of(b, k.rowOffsets, k.cacheLengths, k.lookup,
                                   pageSize, row);
    std::array<Value, 2> rows = {k.key, k.value};
    for (int64_t kv = 0; kv < 2; ++kv) {
      Value chunk = vector::LoadOp::create(b, vecType, rows[kv], {row, head, col},
                                           /*nontemporal=*/false, align);
      vector::StoreOp::create(b, chunk, k.blocks,
                              slot.at(b, kv, layer, head, col),
                              /*nontemporal=*/false, align);
    }
  });
}
