//===- AttentionKernel.cpp - flash attention on tensor cores ---------------===//
//
// Two kernels per attention op, both launched; the host picks one per call
// and the other runs a single idle block:
//
// * prefill: a warpgroup (four warps) per 64-row tile of (query row, GQA
//   head) pairs of one (sequence, kv head, key split), so a K/V tile staged
//   in shared memory serves the whole group. On sm_90a (head dim 64 / 128)
//   Q, K, V and P live in 128-byte-swizzled dynamic shared memory and
//   S = Q K^T and O += P V run on wgmma; otherwise on mma.sync with Q
//   fragments in registers and K / V through ldmatrix(.trans).
// * decode (few query rows per sequence): one 16-row tile per block whose
//   four warps split every key tile, on mma.sync, small enough for four
//   blocks per SM; each warp's result is a partial.
//
// Per 64-key tile: K and V arrive by cp.async interleaved with the math, the
// scale (with log2 e) and the mask (only on tiles some row does not fully
// see) are applied in registers, the online softmax uses exp2 and quad
// shuffles. Key tiles outside the causal / sliding window are never visited;
// the paged cache is read through the lookup table. Keys are split across
// blocks when there are few query tiles (flash-decoding): each split writes
// its normalised partial output and log2-sum-exp, merged by a combine
// kernel.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

constexpr int64_t kRows = 64, kKeys = 64, kThreads = 128, kPad = 8;
/// Keys a split covers at least.
constexpr int64_t kMinSplitKeys = 256;

Value add(IB &b, Value x, Value y) { return arith::AddIOp::create(b, x, y); }
Value add(IB &b, Value x, int64_t y) { return add(b, x, cIndex(b, y)); }
Value sub(IB &b, Value x, Value y) { return arith::SubIOp::create(b, x, y); }
Value mul(IB &b, Value x, int64_t y) {
  return arith::MulIOp::create(b, x, cIndex(b, y));
}
Value div(IB &b, Value x, int64_t y) {
  return arith::DivUIOp::create(b, x, cIndex(b, y));
}
Value rem(IB &b, Value x, int64_t y) {
  return arith::RemUIOp::create(b, x, cIndex(b, y));
}
Value lt(IB &b, Value x, Value y) {
  return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
}
Value ge(IB &b, Value x, Value y) {
  return arith::CmpIOp::create(b, arith::CmpIPredicate::sge, x, y);
}
Value both(IB &b, Value x, Value y) { return arith::AndIOp::create(b, x, y); }
Value dimOf(IB &b, Value memref, int64_t d) {
  return b.createOrFold<memref::DimOp>(memref, d);
}

/// The static facts of one attention op.
struct Shape {
  Type element;
  int64_t heads, kvHeads, group, headDim, pageSize = 0;
};

/// Splits of every sequence's keys for a launch: enough blocks to fill the
/// GPU when there are few query tiles, one split otherwise.
/// Decode blocks resident at once per SM (the decode kernel's minctasm).
constexpr int64_t kDecodeBlocksPerSM = 4;

/// Prefill splits only to fill an idle GPU. Decode, whose blocks stream long
/// caches, takes the most splits that still fit two full waves of resident
/// blocks: whole waves leave no short last wave.
Value chooseSplits(IB &b, const KernelOptions &opts, const Shape &s,
                   int64_t queryRows, Value tokens, Value batch,
                   Value keysUpperBound, bool decode) {
  Value cap = min(b, cIndex(b, opts.maxSplits),
                     max(b, ceilDiv(b, keysUpperBound, kMinSplitKeys), cIndex(b, 1)));
  if (decode) {
    // Few rows per sequence: about one query tile per non-empty sequence.
    Value busy = mul(b, max(b, min(b, tokens, batch), cIndex(b, 1)), s.kvHeads);
    Value fit = arith::DivUIOp::create(
        b, cIndex(b, 2 * kDecodeBlocksPerSM * opts.smCount), busy);
    return max(b, min(b, fit, cap), cIndex(b, 1));
  }
  Value qTiles = ceilDiv(b, tokens, queryRows);
  // Blocks that do work: at most one partial tile per sequence beyond the
  // full ones.
  Value busy = mul(b, min(b, arith::MulIOp::create(b, batch, qTiles),
                             add(b, qTiles, batch)),
                   s.kvHeads);
  busy = max(b, busy, cIndex(b, 1));
  Value wanted = arith::CeilDivUIOp::create(b, cIndex(b, 4 * opts.smCount), busy);
  Value splits = max(b, min(b, wanted, cap), cIndex(b, 1));
  Value full = ge(b, busy, cIndex(b, 2 * opts.smCount));
  return arith::SelectOp::create(b, full, cIndex(b, 1), splits);
}

/// Hopper's shared-memory tiles for wgmma: 64 rows of 128 bytes per
/// 64-column block, 16-byte chunks XOR-swizzled by the row (the 128-byte
/// swizzle the tensor cores read). Buffers start 1024-byte aligned.
struct WgmmaTiles {
  Value q, k, v, p;             // 1-D element views
  Value qAddr, kAddr, vAddr, pAddr; // their shared-window byte addresses (i64)
};

/// Element index of 16-byte chunk `chunk` of row `r` in a swizzled tile of
/// `rows` rows.
Value swizzledIndex(IB &b, Value r, Value chunk, int64_t rows) {
  Value block = div(b, chunk, 8), within = rem(b, chunk, 8);
  Value physical = arith::XOrIOp::create(b, within, rem(b, r, 8));
  return add(b, mul(b, add(b, arith::MulIOp::create(b, block, cIndex(b, rows)), r), 64),
             mul(b, physical, 8));
}

/// A wgmma matrix descriptor (128-byte swizzle) for the tile at `address`
/// plus `offset` bytes; `lbo` / `sbo` are the leading / stride byte offsets.
Value wgmmaDescriptor(IB &b, Value address, int64_t offset, int64_t lbo, int64_t sbo) {
  auto c64 = [&](int64_t v) { return arith::ConstantIntOp::create(b, v, 64).getResult(); };
  Value start = arith::AddIOp::create(b, address, c64(offset));
  start = arith::ShRUIOp::create(b, arith::AndIOp::create(b, start, c64(0x3FFFF)), c64(4));
  int64_t fixed = ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (int64_t(1) << 62);
  return arith::OrIOp::create(b, start, c64(fixed));
}

/// The block body: see the file comment. With `keysAcrossWarps` (the
/// decode schedule) the block has one 16-row tile that all four warps share,
/// each warp taking 16 of every 64 keys and writing its own partial result.
void buildAttentionBody(IB &b, const Shape &s, const AttentionSpec &spec,
                        ValueRange k, Value smemK, Value smemV,
                        bool keysAcrossWarps, const WgmmaTiles *wg = nullptr) {
  // Kernel arguments, in the order emitAttention passes them.
  Value query = k[0], out = k[1], qOffsets = k[2];
  Value key = k[3], value = k[4], kvOffsets = k[5];
  Value blocks = k[3], cacheLengths = k[4], lookup = k[5];
  Value oPart = k[6], lsePart = k[7], splits = k[8];
  bool paged = spec.paged();
  int64_t d = s.headDim, g = s.group;
  auto chunkType = VectorType::get({8}, s.element);
  int64_t tileRows = keysAcrossWarps ? 16 : kRows;
  int64_t queryRows = tileRows / g;
  // Keys of a tile that one warp handles, from keyBase on.
  int64_t warpKeys = keysAcrossWarps ? 16 : kKeys;

  Value tid = threadIdx(b);
  Value lane = rem(b, tid, 32), warp = div(b, tid, 32);
  Value group = div(b, lane, 4), quad = rem(b, lane, 4);
  Value kvHead = blockIdx(b, gpu::Dimension::y);
  Value split = blockIdx(b, gpu::Dimension::z);
  // Block x is the x-th (sequence, query tile) pair of the batch, found by
  // walking the row offsets (the grid has at most T / rows + B of them, not
  // B x the longest sequence's tiles).
  Value work = blockIdx(b, gpu::Dimension::x);
  Value batch = sub(b, b.createOrFold<memref::DimOp>(qOffsets, 0), cIndex(b, 1));
  auto walk = scf::ForOp::create(b, cIndex(b, 0), batch, cIndex(b, 1),
                                 ValueRange{cIndex(b, 0), batch, cIndex(b, 0)});
  {
    IB wb(b.getLoc(), OpBuilder::atBlockBegin(walk.getBody()));
    Value sIdx = walk.getInductionVar();
    Value acc = walk.getRegionIterArg(0);
    Value len = sub(wb, loadIndex(wb, qOffsets, add(wb, sIdx, 1)),
                    loadIndex(wb, qOffsets, sIdx));
    Value tiles = ceilDiv(wb, len, queryRows);
    Value next = add(wb, acc, tiles);
    Value here = both(wb, ge(wb, work, acc), lt(wb, work, next));
    scf::YieldOp::create(
        wb, ValueRange{next,
                       arith::SelectOp::create(wb, here, sIdx, walk.getRegionIterArg(1)),
                       arith::SelectOp::create(wb, here, sub(wb, work, acc),
                                               walk.getRegionIterArg(2))});
  }
  Value found = lt(b, walk.getResult(1), batch);
  Value seq = arith::SelectOp::create(b, found, walk.getResult(1), cIndex(b, 0));
  Value qStart = loadIndex(b, qOffsets, seq);
  Value qLen = arith::SelectOp::create(
      b, found, sub(b, loadIndex(b, qOffsets, add(b, seq, 1)), qStart), cIndex(b, 0));
  Value r0 = mul(b, walk.getResult(2), queryRows);
  Value warpRow = keysAcrossWarps ? cIndex(b, 0) : mul(b, warp, 16);
  Value keyBase = keysAcrossWarps ? mul(b, warp, 16) : cIndex(b, 0);

  // Whole blocks leave here, before any barrier.
  ifThen(b, lt(b, r0, qLen), [&](IB &b) {
    Value kvStart, kvLen;
    if (paged) {
      kvLen = add(b, loadIndex(b, cacheLengths, seq), qLen);
    } else {
      kvStart = loadIndex(b, kvOffsets, seq);
      kvLen = sub(b, loadIndex(b, kvOffsets, add(b, seq, 1)), kvStart);
    }
    // Query row i sits at position posBase + i; keys at 0 .. kvLen - 1.
    Value posBase = sub(b, kvLen, qLen);
    Value rowsHere = min(b, cIndex(b, queryRows), sub(b, qLen, r0));
    bool causal = spec.mask.getKind() != MaskKind::None;
    std::optional<int64_t> window;
    if (spec.mask.getKind() == MaskKind::SlidingWindow)
      window = spec.mask.getWindow();
    Value hi = kvLen, lo = cIndex(b, 0);
    if (causal)
      hi = min(b, kvLen, add(b, posBase, add(b, r0, rowsHere)));
    if (window)
      lo = max(b, lo, add(b, posBase, add(b, r0, 1 - *window)));
    // This split's share of the sequence's visible keys, in whole tiles.
    Value chunk = arith::CeilDivUIOp::create(b, max(b, sub(b, hi, lo), cIndex(b, 0)),
                                             splits);
    chunk = mul(b, ceilDiv(b, chunk, kKeys), kKeys);
    Value splitLo = add(b, lo, arith::MulIOp::create(b, split, chunk));
    Value sLo = splitLo;
    Value sHi = min(b, hi, add(b, splitLo, chunk));
    Value firstTile = mul(b, div(b, sLo, kKeys), kKeys);

    // Where tile row m of this block comes from.
    struct RowInfo {
      Value qRow, head, valid;
    };
    auto rowOf = [&](IB &b, Value m) {
      RowInfo info;
      info.qRow = add(b, r0, div(b, m, g));
      info.head = add(b, mul(b, kvHead, g), rem(b, m, g));
      info.valid = both(b, lt(b, m, cIndex(b, queryRows * g)), lt(b, info.qRow, qLen));
      return info;
    };

    // Q: global -> shared (the K buffer) -> A fragments in registers.
    int64_t chunksPerRow = d / 8, perThread = kKeys * chunksPerRow / kThreads;
    // (Chunks past the tile's rows land in unused rows of the buffer.)
    int64_t qPerThread = (tileRows * chunksPerRow + kThreads - 1) / kThreads;
    for (int64_t i = 0; i < qPerThread; ++i) {
      Value c = add(b, tid, i * kThreads);
      Value m = div(b, c, chunksPerRow), dc = mul(b, rem(b, c, chunksPerRow), 8);
      RowInfo info = rowOf(b, m);
      Value v = loadVectorOrZero(
          b, query,
          [&](IB &lb) {
            return SmallVector<Value>{add(lb, qStart, info.qRow), info.head, dc};
          },
          info.valid, chunkType);
      if (wg)
        vector::StoreOp::create(b, v, wg->q, swizzledIndex(b, m, div(b, dc, 8), kRows),
                                /*nontemporal=*/false, llvm::MaybeAlign(16));
      else
        vector::StoreOp::create(b, v, smemK, ValueRange{m, dc}, /*nontemporal=*/false,
                                llvm::MaybeAlign(16));
    }
    SmallVector<std::array<Value, 4>> qFrag;
    if (wg) {
      // Q stays in shared memory, read by the tensor cores.
      fenceProxyAsync(b);
      gpu::BarrierOp::create(b);
    } else {
      gpu::BarrierOp::create(b);
      Value aRow = add(b, warpRow, rem(b, lane, 16));
      Value aCol = mul(b, div(b, lane, 16), 8);
      for (int64_t kk = 0; kk < d / 16; ++kk)
        qFrag.push_back(ldmatrixX4(b, smemK, aRow, add(b, aCol, kk * 16), false));
      gpu::BarrierOp::create(b);
    }

    // The key range [rowLo, rowHi) of this lane's two rows (group, group + 8).
    std::array<Value, 2> rowLo, rowHi;
    for (int64_t h = 0; h < 2; ++h) {
      Value m = add(b, warpRow, add(b, group, h * 8));
      RowInfo info = rowOf(b, m);
      Value valid = info.valid;
      Value pos = add(b, posBase, info.qRow);
      Value rHi = causal ? min(b, sHi, add(b, pos, 1)) : sHi;
      Value rLo = window ? max(b, sLo, add(b, pos, 1 - *window)) : sLo;
      rowHi[h] = arith::SelectOp::create(b, valid, rHi, cIndex(b, 0));
      rowLo[h] = arith::SelectOp::create(b, valid, rLo, cIndex(b, 1));
    }
    // Keys every row of the block sees: tiles inside skip the mask (padding
    // rows then see keys too, harmlessly: their q is zero, never written).
    Value blockHi = causal ? min(b, sHi, add(b, posBase, add(b, r0, 1))) : sHi;
    Value blockLo =
        window ? max(b, sLo, add(b, posBase, add(b, add(b, r0, rowsHere), -*window)))
               : sLo;

    // Per-lane ldmatrix coordinates: K as the column-major B of Q K^T, V
    // (transposed load) as the row-major B of P V.
    Value kRow = add(b, mul(b, div(b, lane, 16), 8), rem(b, lane, 8));
    Value kCol = mul(b, rem(b, div(b, lane, 8), 2), 8);
    Value vRow = add(b, mul(b, rem(b, div(b, lane, 8), 2), 8), rem(b, lane, 8));
    Value vCol = mul(b, div(b, lane, 16), 8);

    // K/V tiles arrive by cp.async (zero-filled past the range: 0 * garbage
    // would be NaN), interleaved with the math: V of a tile loads while
    // S = Q K^T runs, K of the next tile while O += P V runs.
    auto tokenType = nvgpu::DeviceAsyncTokenType::get(b.getContext());
    auto stageTile = [&](IB &b, Value kt, int64_t kv) {
      SmallVector<Value> tokens;
      for (int64_t i = 0; i < perThread; ++i) {
        Value c = add(b, tid, i * kThreads);
        Value r = div(b, c, chunksPerRow), dc = mul(b, rem(b, c, chunksPerRow), 8);
        Value j = add(b, kt, r);
        Value valid = lt(b, j, sHi);
        // Rows past the range copy 0 bytes from a valid key's address.
        Value safe = arith::SelectOp::create(b, valid, j, sLo);
        Value bytes = arith::SelectOp::create(b, valid, cIndex(b, 8), cIndex(b, 0));
        SmallVector<Value> src;
        if (paged) {
          Value page = loadIndex(b, lookup, ValueRange{seq, div(b, safe, s.pageSize)});
          src = {page, cIndex(b, kv), cIndex(b, spec.layer), rem(b, safe, s.pageSize),
                 kvHead, dc};
        } else {
          src = {add(b, kvStart, safe), kvHead, dc};
        }
        Value dst = wg ? (kv ? wg->v : wg->k) : (kv ? smemV : smemK);
        SmallVector<Value> dstIndex = {r, dc};
        if (wg)
          dstIndex = {swizzledIndex(b, r, div(b, dc, 8), kKeys)};
        tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
            b, tokenType, dst, dstIndex,
            paged ? blocks : (kv ? value : key), src, b.getIndexAttr(8), bytes,
            b.getUnitAttr()));
      }
      nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, tokens);
    };
    // Waits for every copy of this thread, then for the whole block.
    auto waitTiles = [&](IB &b) {
      Value group = nvgpu::DeviceAsyncCreateGroupOp::create(b, tokenType, ValueRange{});
      nvgpu::DeviceAsyncWaitOp::create(b, group, b.getI32IntegerAttr(0));
      if (wg)
        fenceProxyAsync(b);
      gpu::BarrierOp::create(b);
    };
    // Warps whose 16 rows are all padding (small GQA groups at decode) skip
    // the math but keep the barriers.
    // (wgmma needs the whole warpgroup.)
    Value warpActive =
        keysAcrossWarps || wg
            ? arith::ConstantIntOp::create(b, 1, 1).getResult()
            : lt(b, warpRow, arith::MulIOp::create(b, rowsHere, cIndex(b, g)));

    int64_t accTiles = d / 8, pTiles = warpKeys / 8;
    SmallVector<Value> init = {negInfF32(b), negInfF32(b), cF32(b, 0.0), cF32(b, 0.0)};
    init.append(accTiles * 4, cF32(b, 0.0));
    ifThen(b, lt(b, firstTile, sHi), [&](IB &pb) { stageTile(pb, firstTile, 0); });
    auto loop = scf::ForOp::create(b, firstTile, sHi, cIndex(b, kKeys), init);
    {
      IB lb(b.getLoc(), OpBuilder::atBlockBegin(loop.getBody()));
      Value kt = loop.getInductionVar();
      ValueRange state = loop.getRegionIterArgs();

      waitTiles(lb); // K[kt] is here; every warp is done with V of kt - 64
      stageTile(lb, kt, 1);

      // S = Q K^T, scale and mask, online softmax: new (m, l), rescaled acc
      // and P (as f32) for this lane.
      SmallVector<Value> idle(state);
      idle.append(pTiles * 4, cF32(lb, 0.0));
      SmallVector<Value> soft = ifElse(lb, warpActive, idle, [&](IB &lb) {
        std::array<Value, 2> mOld = {state[0], state[1]}, lOld = {state[2], state[3]};
        SmallVector<Value> acc(state.drop_front(4));
        SmallVector<Value> sAcc(pTiles * 4, cF32(lb, 0.0));
        if (wg) {
          // S [64 x 64] = Q K^T: both K-major; k16 steps are 32 bytes along
          // a swizzled row, 8 KB between 64-column blocks.
          SmallVector<std::pair<Value, Value>> steps;
          for (int64_t kk = 0; kk < d / 16; ++kk) {
            int64_t offset = (kk / 4) * kRows * 128 + (kk % 4) * 32;
            steps.push_back({wgmmaDescriptor(lb, wg->qAddr, offset, 16, 1024),
                             wgmmaDescriptor(lb, wg->kAddr, offset, 16, 1024)});
          }
          wgmma(lb, s.element, steps, kKeys, /*transposeB=*/false, sAcc);
        }
        for (int64_t kk = 0; kk < (wg ? 0 : d / 16); ++kk) {
          for (int64_t np = 0; np < warpKeys / 16; ++np) {
            std::array<Value, 4> bq = ldmatrixX4(lb, smemK,
                                                 add(lb, add(lb, kRow, keyBase), np * 16),
                                                 add(lb, kCol, kk * 16), false);
            for (int64_t half = 0; half < 2; ++half) {
              MutableArrayRef<Value> c(&sAcc[(2 * np + half) * 4], 4);
              auto r = mma16816(lb, s.element, qFrag[kk],
                                {bq[2 * half], bq[2 * half + 1]}, c);
              llvm::copy(r, c.begin());
            }
          }
        }
        Value scaleLog2 = cF32(lb, spec.scale * M_LOG2E);
        Value negInf = negInfF32(lb);
        for (Value &sv : sAcc)
          sv = arith::MulFOp::create(lb, sv, scaleLog2);
        Value full = both(lb, ge(lb, kt, blockLo), ge(lb, blockHi, add(lb, kt, kKeys)));
        Value partial = arith::XOrIOp::create(
            lb, full, arith::ConstantIntOp::create(lb, 1, 1).getResult());
        SmallVector<Value> masked = ifElse(lb, partial, sAcc, [&](IB &mb) {
          SmallVector<Value> out(sAcc);
          Value colBase = add(mb, add(mb, kt, keyBase),
                              arith::MulIOp::create(mb, quad, cIndex(mb, 2)));
          for (int64_t ni = 0; ni < pTiles; ++ni) {
            for (int64_t e = 0; e < 4; ++e) {
              Value j = add(mb, colBase, ni * 8 + e % 2);
              Value ok = both(mb, ge(mb, j, rowLo[e / 2]), lt(mb, j, rowHi[e / 2]));
              Value &sv = out[ni * 4 + e];
              sv = arith::SelectOp::create(mb, ok, sv, negInf);
            }
          }
          return out;
        });
        sAcc.assign(masked.begin(), masked.end());
        // A row's 4 lanes share its max and sum through shuffles.
        SmallVector<Value> next(4);
        for (int64_t h = 0; h < 2; ++h) {
          Value mx = mOld[h];
          for (int64_t ni = 0; ni < pTiles; ++ni)
            for (int64_t e = 2 * h; e < 2 * h + 2; ++e)
              mx = arith::MaximumFOp::create(lb, mx, sAcc[ni * 4 + e]);
          mx = arith::MaximumFOp::create(lb, mx, shuffleXor(lb, mx, 1));
          mx = arith::MaximumFOp::create(lb, mx, shuffleXor(lb, mx, 2));
          next[h] = mx;
          // A row with no visible key yet keeps -inf: subtract 0 instead.
          Value isInf = arith::CmpFOp::create(lb, arith::CmpFPredicate::OEQ, mx, negInf);
          Value base = arith::SelectOp::create(lb, isInf, cF32(lb, 0.0), mx);
          Value alpha = math::Exp2Op::create(lb, arith::SubFOp::create(lb, mOld[h], base));
          Value sum = cF32(lb, 0.0);
          for (int64_t ni = 0; ni < pTiles; ++ni) {
            for (int64_t e = 2 * h; e < 2 * h + 2; ++e) {
              Value &sv = sAcc[ni * 4 + e];
              sv = math::Exp2Op::create(lb, arith::SubFOp::create(lb, sv, base));
              sum = arith::AddFOp::create(lb, sum, sv);
            }
          }
          next[2 + h] =
              arith::AddFOp::create(lb, arith::MulFOp::create(lb, lOld[h], alpha), sum);
          for (int64_t t = 0; t < accTiles; ++t)
            for (int64_t e = 2 * h; e < 2 * h + 2; ++e)
              acc[t * 4 + e] = arith::MulFOp::create(lb, acc[t * 4 + e], alpha);
        }
        next.append(acc);
        next.append(sAcc);
        if (wg) {
          // P (rows of this warp) to shared memory for the P V wgmma.
          for (int64_t ni = 0; ni < pTiles; ++ni) {
            for (int64_t h = 0; h < 2; ++h) {
              Value row = add(lb, warpRow, add(lb, group, h * 8));
              Value index = add(lb, swizzledIndex(lb, row, cIndex(lb, ni), kRows),
                                arith::MulIOp::create(lb, quad, cIndex(lb, 2)));
              Value pair = vector::FromElementsOp::create(
                  lb, VectorType::get({2}, lb.getF32Type()),
                  ValueRange{sAcc[ni * 4 + 2 * h], sAcc[ni * 4 + 2 * h + 1]});
              pair = arith::TruncFOp::create(lb, VectorType::get({2}, s.element), pair);
              vector::StoreOp::create(lb, pair, wg->p, index);
            }
          }
        }
        return next;
      });

      waitTiles(lb); // V[kt] is here; every warp is done with K[kt]
      Value nextTile = add(lb, kt, kKeys);
      ifThen(lb, lt(lb, nextTile, sHi), [&](IB &nb) { stageTile(nb, nextTile, 0); });

      // O += P V, 16 keys at a time.
      ArrayRef<Value> softState(soft);
      ArrayRef<Value> p = softState.drop_front(4 + accTiles * 4);
      SmallVector<Value> accIn(softState.slice(4, accTiles * 4));
      SmallVector<Value> accOut = ifElse(lb, warpActive, accIn, [&](IB &lb) {
        SmallVector<Value> acc(accIn);
        if (wg) {
          // O [64 x D] += P V: P K-major; V is [keys x D], MN-major (the
          // transposed B): 16 keys = 2 KB per step, 8 KB between 64-column
          // blocks of D.
          SmallVector<std::pair<Value, Value>> steps;
          for (int64_t kc = 0; kc < kKeys / 16; ++kc)
            steps.push_back({wgmmaDescriptor(lb, wg->pAddr, kc * 32, 16, 1024),
                             wgmmaDescriptor(lb, wg->vAddr, kc * 16 * 128, kKeys * 128, 1024)});
          wgmma(lb, s.element, steps, d, /*transposeB=*/true, acc);
          return acc;
        }
        auto at = [&](int64_t ni, int64_t e) { return p[ni * 4 + e]; };
        for (int64_t kc = 0; kc < warpKeys / 16; ++kc) {
          SmallVector<Value, 4> aP = {
              packPair(lb, at(2 * kc, 0), at(2 * kc, 1), s.element),
              packPair(lb, at(2 * kc, 2), at(2 * kc, 3), s.element),
              packPair(lb, at(2 * kc + 1, 0), at(2 * kc + 1, 1), s.element),
              packPair(lb, at(2 * kc + 1, 2), at(2 * kc + 1, 3), s.element)};
          for (int64_t dp = 0; dp < d / 16; ++dp) {
            std::array<Value, 4> bq = ldmatrixX4(lb, smemV,
                                                 add(lb, add(lb, vRow, keyBase), kc * 16),
                                                 add(lb, vCol, dp * 16), true);
            for (int64_t half = 0; half < 2; ++half) {
              MutableArrayRef<Value> c(&acc[(2 * dp + half) * 4], 4);
              auto r = mma16816(lb, s.element, aP, {bq[2 * half], bq[2 * half + 1]}, c);
              llvm::copy(r, c.begin());
            }
          }
        }
        return acc;
      });
      SmallVector<Value> next(softState.take_front(4));
      next.append(accOut);
      scf::YieldOp::create(lb, next);
    }

    // Normalise and write: the final output, or this split's partial.
    // Under keysAcrossWarps every warp's result is a partial of its own.
    Value oneSplit =
        keysAcrossWarps
            ? arith::ConstantIntOp::create(b, 0, 1).getResult()
            : arith::CmpIOp::create(b, arith::CmpIPredicate::eq, splits, cIndex(b, 1))
                  .getResult();
    Value part = keysAcrossWarps
                     ? add(b, mul(b, split, kThreads / 32), warp)
                     : split;
    for (int64_t h = 0; h < 2; ++h) {
      Value l = loop.getResult(2 + h);
      l = arith::AddFOp::create(b, l, shuffleXor(b, l, 1));
      l = arith::AddFOp::create(b, l, shuffleXor(b, l, 2));
      Value m = add(b, warpRow, add(b, group, h * 8));
      RowInfo info = rowOf(b, m);
      Value head = info.head;
      Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, l, cF32(b, 0.0));
      Value inv = arith::SelectOp::create(
          b, empty, cF32(b, 0.0), arith::DivFOp::create(b, cF32(b, 1.0), l));
      Value row = add(b, qStart, info.qRow);
      ifThen(b, info.valid, [&](IB &vb) {
        auto ifOp = scf::IfOp::create(vb, TypeRange{}, oneSplit, /*withElse=*/true);
        IB fb(vb.getLoc(), OpBuilder::atBlockBegin(ifOp.thenBlock()));
        fb.setInsertionPoint(ifOp.thenBlock()->getTerminator());
        IB pb(vb.getLoc(), OpBuilder::atBlockBegin(ifOp.elseBlock()));
        pb.setInsertionPoint(ifOp.elseBlock()->getTerminator());
        for (int64_t t = 0; t < accTiles; ++t) {
          Value col = add(fb, arith::MulIOp::create(fb, quad, cIndex(fb, 2)), t * 8);
          Value pcol = add(pb, arith::MulIOp::create(pb, quad, cIndex(pb, 2)), t * 8);
          for (int64_t e = 0; e < 2; ++e) {
            Value o = loop.getResult(4 + t * 4 + 2 * h + e);
            Value of = arith::MulFOp::create(fb, o, inv);
            memref::StoreOp::create(fb, fromF32(fb, of, s.element), out,
                                    ValueRange{row, head, add(fb, col, e)});
            Value op = arith::MulFOp::create(pb, o, inv);
            memref::StoreOp::create(pb, op, oPart,
                                    ValueRange{part, row, head, add(pb, pcol, e)});
          }
        }
        // The log2-sum-exp of the split; -inf when it saw no key.
        Value mRow = loop.getResult(h);
        Value lse = arith::AddFOp::create(pb, mRow, math::Log2Op::create(pb, l));
        lse = arith::SelectOp::create(pb, empty, negInfF32(pb), lse);
        Value first = arith::CmpIOp::create(pb, arith::CmpIPredicate::eq, quad,
                                            cIndex(pb, 0));
        ifThen(pb, first, [&](IB &wb) {
          memref::StoreOp::create(wb, lse, lsePart, ValueRange{part, row, head});
        });
      });
    }
  });
}

/// out[row, head, :] = sum_s w_s oPart[s, row, head, :] / sum_s w_s with
/// w_s = 2^(lse_s - max lse).
void emitCombine(KernelEmitter &e, IB &host, const Shape &s, Value oPart,
                 Value lsePart, Value out, Value splits) {
  constexpr int64_t threads = 256;
  Value tokens = dimOf(host, out, 0);
  Value count = arith::MulIOp::create(host, tokens, cIndex(host, s.heads * s.headDim));
  // Nothing to combine with one split.
  Value many = arith::CmpIOp::create(host, arith::CmpIPredicate::ugt, splits,
                                     cIndex(host, 1));
  count = arith::SelectOp::create(host, many, count, cIndex(host, 0));
  SmallVector<Value> operands = {oPart, lsePart, out, splits, count};
  SmallVector<Type> types(ValueRange(operands).getTypes());
  auto [kernel, b] = e.createKernel(host.getLoc(), "attention_combine", types, {}, threads);
  ValueRange k = kernel.getArguments();
  Value item = add(b, mul(b, blockIdx(b, gpu::Dimension::x), threads), threadIdx(b));
  ifThen(b, arith::CmpIOp::create(b, arith::CmpIPredicate::ult, item, k[4]), [&](IB &b) {
    Value col = rem(b, item, s.headDim);
    Value rowHead = div(b, item, s.headDim);
    Value head = rem(b, rowHead, s.heads), row = div(b, rowHead, s.heads);
    auto maxLoop = scf::ForOp::create(b, cIndex(b, 0), k[3], cIndex(b, 1),
                                      ValueRange{negInfF32(b)});
    {
      IB lb(b.getLoc(), OpBuilder::atBlockBegin(maxLoop.getBody()));
      Value lse = memref::LoadOp::create(
          lb, k[1], ValueRange{maxLoop.getInductionVar(), row, head});
      scf::YieldOp::create(lb, ValueRange{arith::MaximumFOp::create(
                                   lb, maxLoop.getRegionIterArg(0), lse)});
    }
    Value mx = maxLoop.getResult(0);
    Value isInf = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx, negInfF32(b));
    Value base = arith::SelectOp::create(b, isInf, cF32(b, 0.0), mx);
    auto sumLoop = scf::ForOp::create(b, cIndex(b, 0), k[3], cIndex(b, 1),
                                      ValueRange{cF32(b, 0.0), cF32(b, 0.0)});
    {
      IB lb(b.getLoc(), OpBuilder::atBlockBegin(sumLoop.getBody()));
      Value sp = sumLoop.getInductionVar();
      Value lse = memref::LoadOp::create(lb, k[1], ValueRange{sp, row, head});
      Value w = math::Exp2Op::create(lb, arith::SubFOp::create(lb, lse, base));
      Value o = memref::LoadOp::create(lb, k[0], ValueRange{sp, row, head, col});
      scf::YieldOp::create(
          lb, ValueRange{arith::AddFOp::create(lb, sumLoop.getRegionIterArg(0), w),
                         math::FmaOp::create(lb, w, o, sumLoop.getRegionIterArg(1))});
    }
    Value wsum = sumLoop.getResult(0);
    Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, wsum, cF32(b, 0.0));
    Value o = arith::SelectOp::create(
        b, empty, cF32(b, 0.0), arith::DivFOp::create(b, sumLoop.getResult(1), wsum));
    memref::StoreOp::create(b, fromF32(b, o, s.element), k[2],
                            ValueRange{row, head, col});
  });
  e.launch(host, kernel, {ceilDiv(host, count, threads), cIndex(host, 1), cIndex(host, 1)},
           threads, operands);
}

} // namespace

void gpu_lowering::emitAttention(KernelEmitter &e, IB &host,
                                 const AttentionSpec &spec) {
  MLIRContext *ctx = host.getContext();
  auto qType = cast<MemRefType>(spec.query.getType());
  Shape s;
  s.element = qType.getElementType();
  s.heads = qType.getDimSize(1);
  s.headDim = qType.getDimSize(2);
  if (spec.paged()) {
    auto blocksType = cast<MemRefType>(spec.blocks.getType());
    s.kvHeads = blocksType.getDimSize(4);
    s.pageSize = blocksType.getDimSize(3);
  } else {
    s.kvHeads = cast<MemRefType>(spec.key.getType()).getDimSize(1);
  }
  s.group = s.heads / s.kvHeads;

  Value tokens = dimOf(host, spec.query, 0);
  Value batch = sub(host, dimOf(host, spec.qRowOffsets, 0), cIndex(host, 1));
  Value keysUpper = spec.paged()
                        ? mul(host, dimOf(host, spec.lookup, 1), s.pageSize)
                        : dimOf(host, spec.key, 0);
  // Two schedules in one kernel, picked per call: 64-row tiles with warps
  // splitting rows, or (few query rows per sequence: decode) 16-row tiles
  // with warps splitting keys, whose per-warp partials always combine.
  int64_t rowsRows = kRows / s.group, keysRows = 16 / s.group;
  bool canSplitKeys = keysRows >= 1;
  Value decodeMode = arith::ConstantIntOp::create(host, 0, 1);
  if (canSplitKeys)
    decodeMode = arith::CmpIOp::create(host, arith::CmpIPredicate::ule, tokens,
                                       mul(host, batch, 4));
  Value splits =
      chooseSplits(host, e.options(), s, rowsRows, tokens, batch, keysUpper, false);
  // (sequence, query tile) pairs: at most T / rows + B.
  Value gridX = add(host, ceilDiv(host, tokens, rowsRows), batch);
  if (canSplitKeys) {
    splits = arith::SelectOp::create(
        host, decodeMode,
        chooseSplits(host, e.options(), s, keysRows, tokens, batch, keysUpper, true),
        splits);
    gridX = arith::SelectOp::create(
        host, decodeMode, add(host, ceilDiv(host, tokens, keysRows), batch), gridX);
  }
  Value parts = arith::SelectOp::create(host, decodeMode, mul(host, splits, kThreads / 32),
                                        splits);
  // Partials exist only when there are several (0 rows otherwise).
  Value many = arith::CmpIOp::create(host, arith::CmpIPredicate::ugt, parts,
                                     cIndex(host, 1));
  Value partRows = arith::SelectOp::create(host, many, parts, cIndex(host, 0));
  Type f32 = host.getF32Type();
  auto oPartType = MemRefType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, s.heads, s.headDim}, f32);
  auto lseType = MemRefType::get(
      {ShapedType::kDynamic, ShapedType::kDynamic, s.heads}, f32);
  Value oPart = gpu::AllocOp::create(host, oPartType, Type(), ValueRange{},
                                     ValueRange{partRows, tokens}, ValueRange{})
                    .getMemref();
  Value lsePart = gpu::AllocOp::create(host, lseType, Type(), ValueRange{},
                                       ValueRange{partRows, tokens}, ValueRange{})
                      .getMemref();

  SmallVector<Value> operands = {spec.query, spec.out, spec.qRowOffsets};
  if (spec.paged())
    operands.append({spec.blocks, spec.cacheLengths, spec.lookup});
  else
    operands.append({spec.key, spec.value, spec.kvRowOffsets});
  operands.append({oPart, lsePart, splits,
                   arith::IndexCastOp::create(host, host.getIndexType(),
                                              arith::ExtUIOp::create(host, host.getI32Type(),
                                                                     decodeMode))});
  SmallVector<Type> types(ValueRange(operands).getTypes());
  auto wgSpace = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto smemType = MemRefType::get({kKeys, s.headDim + kPad}, s.element, AffineMap(),
                                  wgSpace);
  // Prefill on Hopper: wgmma from swizzled tiles in dynamic shared memory.
  bool useWgmma = e.options().wgmma && (s.headDim == 64 || s.headDim == 128);
  int64_t tileBytes = kRows * s.headDim * 2;
  int64_t dynamicSmem = useWgmma ? 3 * tileBytes + kRows * kKeys * 2 + 1024 : 0;
  auto makeTiles = [&](IB &b) {
    WgmmaTiles tiles;
    Value raw = gpu::DynamicSharedMemoryOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), AffineMap(), wgSpace));
    auto addressOf = [&](Value memref) {
      Value index = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
      return arith::IndexCastOp::create(b, b.getI64Type(), index).getResult();
    };
    // The swizzle is absolute: align the tiles to 1024 bytes.
    Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, raw);
    Value pad = rem(b, sub(b, cIndex(b, 1024), rem(b, base, 1024)), 1024);
    auto view = [&](int64_t offset, int64_t elements) {
      return memref::ViewOp::create(
                 b, MemRefType::get({elements}, s.element, AffineMap(), wgSpace), raw,
                 add(b, pad, offset), ValueRange{})
          .getResult();
    };
    tiles.q = view(0, kRows * s.headDim);
    tiles.k = view(tileBytes, kKeys * s.headDim);
    tiles.v = view(2 * tileBytes, kKeys * s.headDim);
    tiles.p = view(3 * tileBytes, kRows * kKeys);
    tiles.qAddr = addressOf(tiles.q);
    tiles.kAddr = addressOf(tiles.k);
    tiles.vAddr = addressOf(tiles.v);
    tiles.pAddr = addressOf(tiles.p);
    return tiles;
  };
  // One kernel per schedule, so each gets the registers and shared memory
  // it needs (decode fits more blocks per SM); a kernel whose schedule the
  // call did not pick runs one block that leaves at once.
  std::string name = spec.paged() ? "paged_flash_attention" : "flash_attention";
  auto buildKernel = [&](StringRef suffix, bool keysAcrossWarps, bool wgmmaTiles,
                         int64_t mode) {
    SmallVector<Type> smem;
    if (!wgmmaTiles)
      smem = {smemType, smemType};
    auto created = e.createKernel(host.getLoc(), name + suffix.str(), types, smem,
                                  kThreads);
    gpu::GPUFuncOp kernel = created.first;
    ValueRange args = kernel.getArguments().take_front(operands.size());
    Value smemK = wgmmaTiles ? Value() : Value(kernel.getWorkgroupAttributions()[0]);
    Value smemV = wgmmaTiles ? Value() : Value(kernel.getWorkgroupAttributions()[1]);
    Value mine = arith::CmpIOp::create(created.second, arith::CmpIPredicate::eq,
                                       args.back(), cIndex(created.second, mode));
    ifThen(created.second, mine, [&](IB &kb) {
      WgmmaTiles tiles;
      if (wgmmaTiles)
        tiles = makeTiles(kb);
      buildAttentionBody(kb, s, spec, args, smemK, smemV, keysAcrossWarps,
                         wgmmaTiles ? &tiles : nullptr);
    });
    return kernel;
  };
  Value one = cIndex(host, 1);
  auto gridIf = [&](Value active) -> std::array<Value, 3> {
    return {arith::SelectOp::create(host, active, gridX, one),
            arith::SelectOp::create(host, active, cIndex(host, s.kvHeads), one),
            arith::SelectOp::create(host, active, splits, one)};
  };
  Value smemBytes;
  if (dynamicSmem)
    smemBytes = arith::ConstantIntOp::create(host, dynamicSmem, 32);
  gpu::GPUFuncOp prefill = buildKernel(canSplitKeys ? "_prefill" : "", false, useWgmma, 0);
  Value isPrefill = arith::XOrIOp::create(
      host, decodeMode, arith::ConstantIntOp::create(host, 1, 1).getResult());
  e.launch(host, prefill, gridIf(isPrefill), kThreads, operands, smemBytes);
  if (canSplitKeys) {
    gpu::GPUFuncOp decode = buildKernel("_decode", true, false, 1);
    // Decode streams the cache: more resident blocks keep more bytes in
    // flight (at most 128 registers a thread).
    decode->setAttr("nvvm.minctasm", host.getI32IntegerAttr(kDecodeBlocksPerSM));
    e.launch(host, decode, gridIf(decodeMode), kThreads, operands);
  }
  emitCombine(e, host, s, oPart, lsePart, spec.out, parts);
  gpu::DeallocOp::create(host, Type(), ValueRange{}, oPart);
  gpu::DeallocOp::create(host, Type(), ValueRange{}, lsePart);
}
