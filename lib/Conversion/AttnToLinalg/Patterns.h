//===- Patterns.h - attn -> linalg rewrite patterns -------------*- C++ -*-===//
//
// The patterns of convert-attn-to-linalg (AttnToLinalg.cpp), one populate
// function per family of ops.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLINALG_PATTERNS_H
#define ATTN_LIB_CONVERSION_ATTNTOLINALG_PATTERNS_H

#include "attn/Conversion/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::attn::linalg_lowering {

/// attn.linear and attn.qkv_projection (Projections.cpp).
void populateProjectionPatterns(RewritePatternSet &patterns,
                                const ConvertAttnToLinalgOptions &options);

/// attn.rms_norm and attn.rope (NormRope.cpp).
void populateNormRopePatterns(RewritePatternSet &patterns);

/// attn.rope_freqs where something other than attn.rope reads the table
/// (NormRope.cpp); to apply after the other patterns, since attn.rope reads
/// its table's attribute.
void populateRopeTablePatterns(RewritePatternSet &patterns);

/// attn.kv_cache_store and attn.rope_store (CacheStore.cpp).
void populateCacheStorePatterns(RewritePatternSet &patterns);

/// attn.flash_attention and attn.paged_flash_attention (Attention.cpp).
void populateAttentionPatterns(RewritePatternSet &patterns,
                               const ConvertAttnToLinalgOptions &options);

} // namespace mlir::attn::linalg_lowering

#endif // ATTN_LIB_CONVERSION_ATTNTOLINALG_PATTERNS_H
