//===- AttnToLinalg.cpp - attn ops to linalg / tensor / scf ---------------===//
//
// Lowers each primitive attn op to tensor-level code. Contractions accumulate
// in f32 whatever the storage type; small static tiles keep everything
// vectorisable and no S x S score buffer is ever built.
//
// The pass; the patterns are beside it, one family per file: Projections.cpp
// (attn.linear, attn.qkv_projection), NormRope.cpp (attn.rms_norm, attn.rope,
// attn.rope_freqs), CacheStore.cpp (attn.kv_cache_store, attn.rope_store)
// and Attention.cpp (the flash attention ops, with GroupedAttention.cpp,
// SplitDecode.cpp and AttentionKernels.cpp), on the builders of Builders.h.
//
//===----------------------------------------------------------------------===//

#include "GGUFInt8.h"
#include "Patterns.h"

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_CONVERTATTNTOLINALG
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

namespace {

struct ConvertAttnToLinalgPass
    : attn::impl::ConvertAttnToLinalgBase<ConvertAttnToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    if (queryTileRows < 1 || kvTile < 1 || vectorLanes < 0 || packedMinRows < 0 ||
        decodeItems < 0 || int8MaxRows < 0) {
      getOperation()->emitError(
          "q-tile-rows and kv-tile must be positive, vector-lanes, "
          "packed-min-rows, decode-items and int8-max-rows >= 0");
      return signalPassFailure();
    }
    if (!parseInt8Dot(int8Dot)) {
      getOperation()->emitError("int8-dot must be avx512-vnni, avx2 or none, "
                                "not '")
          << int8Dot << "'";
      return signalPassFailure();
    }
    ConvertAttnToLinalgOptions options;
    options.queryTileRows = queryTileRows;
    options.kvTile = kvTile;
    options.vectorLanes = vectorLanes;
    options.packedMinRows = packedMinRows;
    options.decodeItems = decodeItems;
    options.int8Dot = int8Dot;
    options.int8MaxRows = int8MaxRows;
    RewritePatternSet patterns(ctx);
    populateProjectionPatterns(patterns, options);
    populateNormRopePatterns(patterns);
    populateCacheStorePatterns(patterns);
    populateAttentionPatterns(patterns, options);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
    // attn.rope reads its table's attribute, so tables are lowered last and
    // only where something else uses them.
    RewritePatternSet tablePatterns(ctx);
    populateRopeTablePatterns(tablePatterns);
    walkAndApplyPatterns(getOperation(), std::move(tablePatterns));
    getOperation()->walk([](Operation *op) {
      if (isa<RopeFreqsOp, QuantizedWeightOp>(op) && op->use_empty())
        op->erase();
    });
    WalkResult left = getOperation()->walk([](Operation *op) {
      if (isa<AttnDialect>(op->getDialect()) &&
          !isa<PagedCacheMakeOp, PagedCachePartsOp>(op)) {
        op->emitError("could not lower this op");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
