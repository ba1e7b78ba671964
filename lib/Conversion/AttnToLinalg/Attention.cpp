//===- Attention.cpp - attn flash attention ops to linalg / scf -----------===//
//
// attn.flash_attention and attn.paged_flash_attention: the keys and values
// of a sequence as a KVSource (explicit K/V rows, or cache pages through
// the lookup table); buildAttention picks the split decode when no
// sequence has more than one query row (checked at run time), else one
// work item per (sequence, kv head).
//
//===----------------------------------------------------------------------===//

#include "Attention.h"
#include "Patterns.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

/// Attention of every sequence: the split decode when no sequence has more
/// than one query row (and the vector kernels apply), else one work item per
/// (sequence, kv head). `tile` is the key tile of the sources.
static Value buildAttention(IB &b, const AttentionParams &p, int64_t tile,
                            int64_t decodeItems, Value query, Value batch,
                            SeqBoundsFn seqBounds, SourceFn sourceFor) {
  bool vectorKernels = p.headDim % kLanes == 0 && tile % kLanes == 0;
  if (decodeItems <= 0 || !vectorKernels)
    return buildGroupedAttention(b, p, query, batch, seqBounds, sourceFor);
  return ifElse(
      b, allSequencesDecode(b, batch, seqBounds), TypeRange{query.getType()},
      [&](IB &ib) -> SmallVector<Value> {
        return {buildSplitDecode(ib, p, tile, decodeItems, query, batch,
                                 seqBounds, sourceFor)};
      },
      [&](IB &ib) -> SmallVector<Value> {
        return {buildGroupedAttention(ib, p, query, batch, seqBounds,
                                      sourceFor)};
      })[0];
}

/// `V [tile, D]` f32: row `c` is `readRow(c)` when `c < valid`, else 0.
static Value loadValueRows(IB &b, int64_t tile, int64_t headDim, Value valid,
                           function_ref<Value(IB &, Value)> readRow) {
  Value init = emptyTensor(b, {b.getIndexAttr(tile), b.getIndexAttr(headDim)},
                           b.getF32Type());
  Value zeros = zero(b, vecType(b.getF32Type(), {headDim}));
  return forLoop(b, cIndex(b, 0), cIndex(b, tile), 1, ValueRange{init},
                 [&](IB &ib, Idx c, ValueRange args) -> SmallVector<Value> {
                   Value row = vecToF32(ib, readRow(ib, c));
                   row = select(ib, c < valid, row, zeros);
                   return {writeVector(ib, row, args[0], {c, cIndex(ib, 0)})};
                 })[0];
}

/// `[tile, D]` f32 tile whose row `c` is `read(c)` when `c < valid`, else 0.
static Value gatherTile(IB &b, int64_t tileRows, int64_t headDim,
                        Value validRows,
                        function_ref<Value(IB &, Value row, Value col)> read) {
  MLIRContext *ctx = b.getContext();
  AffineExpr r, c;
  bindDims(ctx, r, c);
  return generic(
      b, emptyTensor(b, {b.getIndexAttr(tileRows), b.getIndexAttr(headDim)},
                     b.getF32Type()),
      {}, {map(ctx, 2, {r, c})}, iterators(2),
      [&](OpBuilder &gb, Location gl, ValueRange) {
        IB g(gl, gb);
        BuilderScope scope(g);
        Idx row = Value(linalg::IndexOp::create(g, 0));
        Value col = linalg::IndexOp::create(g, 1);
        Idx inRange = row < validRows;
        Idx safeRow =
            min(g, row, max(g, Idx(validRows) - 1, cIndex(g, 0)));
        Value v = toF32(g, gl, read(g, safeRow, col));
        linalg::YieldOp::create(g,
                                ValueRange{select(g, inRange, v, cF32(g, 0.0))});
      });
}

namespace {

struct LowerPagedFlashAttention : OpRewritePattern<PagedFlashAttentionOp> {
  LowerPagedFlashAttention(MLIRContext *ctx, int64_t queryTileRows,
                           int64_t vectorLanes, int64_t decodeItems)
      : OpRewritePattern(ctx), queryTileRows(queryTileRows),
        vectorLanes(vectorLanes), decodeItems(decodeItems) {}
  LogicalResult matchAndRewrite(PagedFlashAttentionOp op,
                                PatternRewriter &rewriter) const override {
    IB b(op.getLoc(), rewriter);
    BuilderScope scope(b);
    auto queryType = op.getQuery().getType();
    auto blocksType = op.getBlocks().getType();
    AttentionParams p{queryType.getDimSize(1), blocksType.getDimSize(4),
                      queryType.getDimSize(2), queryTileRows, vectorLanes, op.getMask(),
                      op.getScaleOrDefault(), queryType.getElementType()};
    if (ShapedType::isDynamic(p.numHeads) || ShapedType::isDynamic(p.kvHeads) ||
        ShapedType::isDynamic(p.headDim) ||
        ShapedType::isDynamic(blocksType.getDimSize(3)))
      return rewriter.notifyMatchFailure(op, "needs static heads, head dim and page size");
    int64_t pageSize = blocksType.getDimSize(3);
    Value blocks = op.getBlocks(), lookup = op.getLookupTable();
    // A run-time layer is clamped so that reads stay inside the cache (the
    // entry points check it and report a bad one).
    Value layer = op.buildLayerIndex(b, op.getLoc());
    if (!op.getStaticLayer())
      layer = clamp(b, layer, cIndex(b, 0), Idx(dim(b, blocks, 2)) - 1);
    Value rowOffsets = op.getRowOffsets(), lengths = op.getCacheLengths();
    Value tokens = dim(b, op.getQuery(), 0);
    Value batch = dim(b, lengths, 0);
    Value numPages = dim(b, blocks, 0);
    Value maxPages = dim(b, lookup, 1);
    Value zero = cIndex(b, 0);

    auto bounds = [&](IB &ib, Value seq) -> std::tuple<Value, Value, Value> {
      BuilderScope scope(ib);
      auto [start, end] = sequenceRows(ib, rowOffsets, seq, tokens);
      Idx qLen = Idx(end) - start;
      Idx cached = max(ib, loadIndex(ib, lengths, {seq}), zero);
      // Keys must stay inside the pages the table lists.
      Idx capacity = Idx(maxPages) * pageSize;
      return {start, qLen, min(ib, cached + qLen, capacity)};
    };
    auto source = [&](IB &ib, Value seq) -> KVSource {
      KVSource s;
      s.tileSize = pageSize;
      auto pageOf = [=](IB &lb, Value tile) -> Value {
        BuilderScope scope(lb);
        Value page = loadIndex(lb, lookup, {seq, tile});
        return clamp(lb, page, cIndex(lb, 0), Idx(numPages) - 1);
      };
      s.prepareTile = pageOf;
      s.readRow = [=](IB &lb, Value page, int64_t kv, Value kvHead, Value c,
                      Value d0, int64_t width) -> Value {
        return vecToF32(lb, readVector(lb, blocks,
                                       {page, cIndex(lb, kv), layer, c,
                                        kvHead, d0},
                                       width));
      };
      s.loadValues = [=](IB &lb, Value tile, Value kvHead, Value kvLen) -> Value {
        BuilderScope scope(lb);
        Value page = pageOf(lb, tile);
        Idx valid = Idx(kvLen) - Idx(tile) * pageSize;
        return loadValueRows(lb, pageSize, p.headDim, valid,
                             [&](IB &g, Value c) -> Value {
                               return readVector(g, blocks,
                                                 {page, cIndex(g, 1), layer,
                                                  c, kvHead, cIndex(g, 0)},
                                                 p.headDim);
                             });
      };
      s.loadTile = [=](IB &lb, Value tile, int64_t kv, Value kvHead,
                       Value kvLen) -> Value {
        BuilderScope scope(lb);
        Value page = pageOf(lb, tile);
        Idx valid = Idx(kvLen) - Idx(tile) * pageSize;
        return gatherTile(lb, pageSize, p.headDim, valid,
                          [&](IB &g, Value row, Value col) -> Value {
                            return tensor::ExtractOp::create(
                                g, blocks,
                                ValueRange{page, cIndex(g, kv), layer,
                                           row, kvHead, col});
                          });
      };
      return s;
    };
    Value out = buildAttention(b, p, pageSize, decodeItems, op.getQuery(), batch,
                               bounds, source);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
  int64_t queryTileRows, vectorLanes, decodeItems;
};

struct LowerFlashAttention : OpRewritePattern<FlashAttentionOp> {
  LowerFlashAttention(MLIRContext *ctx, int64_t queryTileRows, int64_t kvTile,
                      int64_t vectorLanes, int64_t decodeItems)
      : OpRewritePattern(ctx), queryTileRows(queryTileRows), kvTile(kvTile),
        vectorLanes(vectorLanes), decodeItems(decodeItems) {}
  LogicalResult matchAndRewrite(FlashAttentionOp op,
                                PatternRewriter &rewriter) const override {
    IB b(op.getLoc(), rewriter);
    BuilderScope scope(b);
    auto queryType = op.getQuery().getType();
    auto keyType = op.getKey().getType();
    AttentionParams p{queryType.getDimSize(1), keyType.getDimSize(1),
                      queryType.getDimSize(2), queryTileRows, vectorLanes, op.getMask(),
                      op.getScaleOrDefault(), queryType.getElementType()};
    if (ShapedType::isDynamic(p.numHeads) || ShapedType::isDynamic(p.kvHeads) ||
        ShapedType::isDynamic(p.headDim))
      return rewriter.notifyMatchFailure(op, "needs static heads and head dim");
    Value key = op.getKey(), value = op.getValue();
    Value qOffsets = op.getQRowOffsets(), kvOffsets = op.getKvRowOffsets();
    Value tokens = dim(b, op.getQuery(), 0);
    Value keyRows = dim(b, key, 0);
    Value batch = max(b, dim(b, qOffsets, 0) - 1, cIndex(b, 0));
    auto bounds = [&](IB &ib, Value seq) -> std::tuple<Value, Value, Value> {
      BuilderScope scope(ib);
      auto [qStart, qEnd] = sequenceRows(ib, qOffsets, seq, tokens);
      auto [kvStart, kvEnd] = sequenceRows(ib, kvOffsets, seq, keyRows);
      return {qStart, Idx(qEnd) - qStart, Idx(kvEnd) - kvStart};
    };
    int64_t tile = kvTile;
    auto source = [&](IB &ib, Value seq) -> KVSource {
      Value kvStart = sequenceRows(ib, kvOffsets, seq, keyRows).first;
      KVSource s;
      s.tileSize = tile;
      s.prepareTile = [=](IB &lb, Value t) -> Value {
        BuilderScope scope(lb);
        return Idx(kvStart) + Idx(t) * tile;
      };
      s.readRow = [=](IB &lb, Value base, int64_t kv, Value kvHead, Value c,
                      Value d0, int64_t width) -> Value {
        BuilderScope scope(lb);
        Idx lastRow = max(lb, Idx(keyRows) - 1, cIndex(lb, 0));
        Idx row = min(lb, Idx(base) + c, lastRow);
        return vecToF32(lb, readVector(lb, kv == 0 ? key : value,
                                       {row, kvHead, d0}, width));
      };
      s.loadValues = [=](IB &lb, Value t, Value kvHead, Value kvLen) -> Value {
        BuilderScope scope(lb);
        Idx tileStart = Idx(t) * tile;
        Idx valid = Idx(kvLen) - tileStart;
        Idx base = Idx(kvStart) + tileStart;
        Idx lastRow = max(lb, Idx(keyRows) - 1, cIndex(lb, 0));
        return loadValueRows(lb, tile, p.headDim, valid,
                             [&](IB &g, Value c) -> Value {
                               BuilderScope scope(g);
                               Idx row = min(g, base + c, lastRow);
                               return readVector(g, value, {row, kvHead, cIndex(g, 0)},
                                                 p.headDim);
                             });
      };
      s.loadTile = [=](IB &lb, Value t, int64_t kv, Value kvHead,
                       Value kvLen) -> Value {
        BuilderScope scope(lb);
        Idx tileStart = Idx(t) * tile;
        Idx valid = Idx(kvLen) - tileStart;
        Idx base = Idx(kvStart) + tileStart;
        Value src = kv == 0 ? key : value;
        return gatherTile(lb, tile, p.headDim, valid,
                          [&](IB &g, Value row, Value col) -> Value {
                            BuilderScope scope(g);
                            Idx r = base + row;
                            return tensor::ExtractOp::create(
                                g, src, ValueRange{r, kvHead, col});
                          });
      };
      return s;
    };
    Value out = buildAttention(b, p, tile, decodeItems, op.getQuery(), batch,
                               bounds, source);
    rewriter.replaceOpWithNewOp<tensor::CastOp>(op, op.getType(), out);
    return success();
  }
  int64_t queryTileRows, kvTile, vectorLanes, decodeItems;
};

} // namespace

void linalg_lowering::populateAttentionPatterns(
    RewritePatternSet &patterns, const ConvertAttnToLinalgOptions &options) {
  MLIRContext *ctx = patterns.getContext();
  patterns.add<LowerPagedFlashAttention>(ctx, options.queryTileRows,
                                         options.vectorLanes,
                                         options.decodeItems);
  patterns.add<LowerFlashAttention>(ctx, options.queryTileRows, options.kvTile,
                                    options.vectorLanes, options.decodeItems);
}
