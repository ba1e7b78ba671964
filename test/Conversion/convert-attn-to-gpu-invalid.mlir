// RUN: attn-opt %s --convert-attn-to-gpu -split-input-file -verify-diagnostics

// One case per diagnostic of convert-attn-to-gpu (lib/Conversion/AttnToGPU):
// first the patterns' checkSupported (element types and shapes the kernels
// assume, checked over the whole module before anything is rewritten), then
// BufferAssignment::create (entry-point types), then the lowering of each op
// (what can be lowered, the in-place cache store).
//
// Unreachable: PagedCachePartsOp's "needs the cache made by
// attn.paged_cache.make in the same function on the GPU". The cache reaching
// attn.paged_cache.parts is either a function argument, which is rejected
// first by the argument check of BufferAssignment::create (the last case below
// shows it), or the result of an op lowered before it: attn.paged_cache.make
// (which records the cache) or an op with a cache result that the lowering
// rejects as unsupported (func.call, arith.select, unrealized casts, ...).

//===----------------------------------------------------------------------===//
// checkSupported: attn.flash_attention
//===----------------------------------------------------------------------===//

func.func @flash_f32(%q: tensor<?x4x64xf32>, %k: tensor<?x2x64xf32>, %v: tensor<?x2x64xf32>, %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x4x64xf32> {
  // expected-error @+1 {{'attn.flash_attention' op needs bf16 or f16 on the GPU (tensor cores)}}
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) : tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x4x64xf32>
}

// -----

func.func @flash_head_dim_not_16(%q: tensor<?x4x72xbf16>, %k: tensor<?x2x72xbf16>, %v: tensor<?x2x72xbf16>, %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x4x72xbf16> {
  // expected-error @+1 {{'attn.flash_attention' op needs a head dim that is a multiple of 16, at most 256, on the GPU}}
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) : tensor<?x4x72xbf16>, tensor<?x2x72xbf16>, tensor<?x2x72xbf16>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x4x72xbf16>
}

// -----

func.func @flash_head_dim_too_big(%q: tensor<?x4x272xf16>, %k: tensor<?x2x272xf16>, %v: tensor<?x2x272xf16>, %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x4x272xf16> {
  // expected-error @+1 {{'attn.flash_attention' op needs a head dim that is a multiple of 16, at most 256, on the GPU}}
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) : tensor<?x4x272xf16>, tensor<?x2x272xf16>, tensor<?x2x272xf16>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x4x272xf16>
}

// -----

// A dynamic head dim is rejected too (the kernels' tiles are static).
func.func @flash_head_dim_dynamic(%q: tensor<?x8x?xbf16>, %k: tensor<?x2x?xbf16>, %v: tensor<?x2x?xbf16>, %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x8x?xbf16> {
  // expected-error @+1 {{'attn.flash_attention' op needs static head counts and head dims on the GPU}}
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) : tensor<?x8x?xbf16>, tensor<?x2x?xbf16>, tensor<?x2x?xbf16>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x8x?xbf16>
}

// -----

// 128 query heads over 1 kv head: a group of 128 does not fit the 64-row tile.
func.func @flash_group_too_big(%q: tensor<?x128x64xbf16>, %k: tensor<?x1x64xbf16>, %v: tensor<?x1x64xbf16>, %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x128x64xbf16> {
  // expected-error @+1 {{'attn.flash_attention' op needs at most 64 query heads per kv head on the GPU}}
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) : tensor<?x128x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x128x64xbf16>
}

// -----

//===----------------------------------------------------------------------===//
// checkSupported: attn.paged_flash_attention
//===----------------------------------------------------------------------===//

func.func @paged_f32(%q: tensor<?x4x64xf32>, %blocks: tensor<?x2x2x16x2x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xf32> {
  // expected-error @+1 {{'attn.paged_flash_attention' op needs bf16 or f16 on the GPU (tensor cores)}}
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xf32>, tensor<?x2x2x16x2x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xf32>
}

// -----

func.func @paged_head_dim_not_16(%q: tensor<?x4x40xbf16>, %blocks: tensor<?x2x2x16x2x40xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x40xbf16> {
  // expected-error @+1 {{'attn.paged_flash_attention' op needs a head dim that is a multiple of 16, at most 256, on the GPU}}
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x40xbf16>, tensor<?x2x2x16x2x40xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x40xbf16>
}

// -----

func.func @paged_head_dim_too_big(%q: tensor<?x4x512xbf16>, %blocks: tensor<?x2x2x16x2x512xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x512xbf16> {
  // expected-error @+1 {{'attn.paged_flash_attention' op needs a head dim that is a multiple of 16, at most 256, on the GPU}}
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x512xbf16>, tensor<?x2x2x16x2x512xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x512xbf16>
}

// -----

// Between 128 and 256, head dims still need to be multiples of 16.
func.func @paged_head_dim_248(%q: tensor<?x4x248xbf16>, %blocks: tensor<?x2x2x16x2x248xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x248xbf16> {
  // expected-error @+1 {{'attn.paged_flash_attention' op needs a head dim that is a multiple of 16, at most 256, on the GPU}}
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x248xbf16>, tensor<?x2x2x16x2x248xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x248xbf16>
}

// -----

func.func @paged_head_dim_dynamic(%q: tensor<?x4x?xbf16>, %blocks: tensor<?x2x2x16x2x?xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x?xbf16> {
  // expected-error @+1 {{'attn.paged_flash_attention' op needs static head counts, head dims and page size on the GPU}}
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x?xbf16>, tensor<?x2x2x16x2x?xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x?xbf16>
}

// -----

func.func @paged_group_too_big(%q: tensor<?x96x64xf16>, %blocks: tensor<?x2x2x16x1x64xf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x96x64xf16> {
  // expected-error @+1 {{'attn.paged_flash_attention' op needs at most 64 query heads per kv head on the GPU}}
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x96x64xf16>, tensor<?x2x2x16x1x64xf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x96x64xf16>
}

// -----

//===----------------------------------------------------------------------===//
// checkSupported: projections, cache store
//===----------------------------------------------------------------------===//

func.func @qkv_f32(%x: tensor<?x256xf32>, %w: tensor<512x256xf32>) -> tensor<?x4x64xf32> {
  // expected-error @+1 {{'attn.qkv_projection' op needs bf16 or f16 on the GPU (tensor cores)}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x256xf32>, (tensor<512x256xf32>) -> tensor<?x4x64xf32>, tensor<?x2x64xf32>, tensor<?x2x64xf32>
  return %q : tensor<?x4x64xf32>
}

// -----

func.func @linear_f32(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'attn.linear' op needs bf16 or f16 on the GPU (tensor cores)}}
  %0 = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

func.func @store_head_dim_not_8(%k: tensor<?x2x20xbf16>, %v: tensor<?x2x20xbf16>, %blocks: tensor<?x2x2x16x2x20xbf16>,
                                %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x2x16x2x20xbf16> {
  // expected-error @+1 {{'attn.kv_cache_store' op needs a head dim that is a multiple of 8 on the GPU}}
  %new = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x20xbf16>, tensor<?x2x20xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x20xbf16>
  return %new : tensor<?x2x2x16x2x20xbf16>
}

// -----

// The check covers the whole module before any function is rewritten: the
// unsupported op of a later function is reported, once.
func.func @fine(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>) -> tensor<?x32xbf16> {
  %0 = attn.linear %x, %w : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  return %0 : tensor<?x32xbf16>
}
func.func @not_fine(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'attn.linear' op needs bf16 or f16 on the GPU (tensor cores)}}
  %0 = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// BufferAssignment::create: the function and its entry point
//===----------------------------------------------------------------------===//

// expected-error @+1 {{'func.func' op the GPU lowering needs a single-block function}}
func.func @two_blocks(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>) -> tensor<?x32xbf16> {
  cf.br ^bb1
^bb1:
  %0 = attn.linear %x, %w : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
  return %0 : tensor<?x32xbf16>
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>

// An opaque cache cannot be an entry-point argument (attn-unpack-cache-arguments
// replaces it by its three tensors).
// expected-error @+1 {{'func.func' op argument #1 of type '!attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>' cannot cross the GPU entry point (unpack caches first)}}
func.func @cache_argument(%q: tensor<?x4x64xbf16>, %c: !cache, %off: tensor<?xi32>) -> tensor<?x4x64xbf16> {
  %b, %l, %t = attn.paged_cache.parts %c : !cache
  %o = attn.paged_flash_attention %q, %b layer 1 positions(%off, %l) pages(%t)
      : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xbf16>
}

// -----

// Nor can a memref.
// expected-error @+1 {{'func.func' op argument #0 of type 'memref<4xf32>' cannot cross the GPU entry point (unpack caches first)}}
func.func @memref_argument(%m: memref<4xf32>, %x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  return %x : tensor<?x64xbf16>
}

// -----

!cache = !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>

// A result that is not an (updated) argument must be a ranked tensor: here a
// cache made in the function.
func.func @cache_result(%b: tensor<?x2x2x16x2x64xbf16>, %l: tensor<?xi32>, %t: tensor<?x?xi32>) -> !cache {
  %c = attn.paged_cache.make %b, %l, %t : tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?x?xi32> -> !cache
  // expected-error @+1 {{'func.return' op result #0 must be a ranked tensor}}
  return %c : !cache
}

// -----

// Or a computed scalar.
func.func @scalar_result(%x: tensor<?x64xbf16>) -> (tensor<?x64xbf16>, index) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x64xbf16>
  // expected-error @+1 {{'func.return' op result #1 must be a ranked tensor}}
  return %x, %n : tensor<?x64xbf16>, index
}

// -----

//===----------------------------------------------------------------------===//
// Lowering each op (lowerFunction and the patterns)
//===----------------------------------------------------------------------===//

func.func @store_then_read_blocks(%k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>, %blocks: tensor<?x2x2x16x2x64xbf16>,
                                  %q: tensor<?x4x64xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xbf16> {
  // expected-error @+1 {{'attn.kv_cache_store' op overwrites the cache blocks in place on the GPU, but they are read again afterwards; use the store's result instead}}
  %new = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xbf16>
  %o = attn.paged_flash_attention %q, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xbf16>
}

// -----

func.func @rope_store_then_read_blocks(%q: tensor<?x4x64xbf16>, %k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>,
                                       %blocks: tensor<?x2x2x16x2x64xbf16>, %f: tensor<64x64xf32>,
                                       %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x4x64xbf16> {
  // expected-error @+1 {{'attn.rope_store' op overwrites the cache blocks in place on the GPU, but they are read again afterwards; use the store's result instead}}
  %qr, %new = attn.rope_store %q, %k, %v into %blocks layer 1 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<64x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x2x64xbf16>
  %o = attn.paged_flash_attention %qr, %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x4x64xbf16>, tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : tensor<?x4x64xbf16>
}

// -----

func.func @qkv_hidden_not_8(%x: tensor<?x36xbf16>, %w: tensor<64x36xbf16>) -> tensor<?x2x16xbf16> {
  // expected-error @+1 {{'attn.qkv_projection' op needs a hidden size that is a multiple of 8 on the GPU}}
  %q, %k, %v = attn.qkv_projection %x weights(%w)
      : tensor<?x36xbf16>, (tensor<64x36xbf16>) -> tensor<?x2x16xbf16>, tensor<?x1x16xbf16>, tensor<?x1x16xbf16>
  return %q : tensor<?x2x16xbf16>
}

// -----

func.func @linear_width_not_8(%x: tensor<?x60xf16>, %w: tensor<32x60xf16>) -> tensor<?x32xf16> {
  // expected-error @+1 {{'attn.linear' op needs an input width that is a multiple of 8 on the GPU}}
  %0 = attn.linear %x, %w : tensor<?x60xf16>, tensor<32x60xf16> -> tensor<?x32xf16>
  return %0 : tensor<?x32xf16>
}

// -----

// A tensor constant is only lowered as the table of an attn.rope: not as the
// input of some other op...
func.func @constant_not_rope_table(%w: tensor<32x64xbf16>) -> tensor<4x32xbf16> {
  // expected-error @+1 {{'arith.constant' op tensor constants are only supported as RoPE tables on the GPU}}
  %x = arith.constant dense<1.0> : tensor<4x64xbf16>
  %0 = attn.linear %x, %w : tensor<4x64xbf16>, tensor<32x64xbf16> -> tensor<4x32xbf16>
  return %0 : tensor<4x32xbf16>
}

// -----

// ... nor as the rotated input of a rope (only as its frequency table).
func.func @constant_rope_input(%freqs: tensor<128x64xf32>, %off: tensor<?xi32>, %len: tensor<?xi32>) -> tensor<4x4x64xbf16> {
  // expected-error @+1 {{'arith.constant' op tensor constants are only supported as RoPE tables on the GPU}}
  %x = arith.constant dense<1.0> : tensor<4x4x64xbf16>
  %0 = attn.rope %x, %freqs positions(%off, %len) : tensor<4x4x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>
  return %0 : tensor<4x4x64xbf16>
}

// -----

// Composite ops must be expanded first.
func.func @composite(%x: tensor<?x256xbf16>, %off: tensor<?xi32>, %b: tensor<?x2x2x16x2x64xbf16>, %l: tensor<?xi32>, %t: tensor<?x?xi32>,
                     %wq: tensor<256x256xbf16>, %wk: tensor<128x256xbf16>, %wv: tensor<128x256xbf16>, %wo: tensor<256x256xbf16>)
    -> tensor<?x256xbf16> {
  %c = attn.paged_cache.make %b, %l, %t : tensor<?x2x2x16x2x64xbf16>, tensor<?xi32>, tensor<?x?xi32>
      -> !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>
  // expected-error @+1 {{'attn.attention_with_rope' op cannot be lowered to the GPU (run attn-expand-composite first; only attn ops, shape casts and scalar code are supported)}}
  %o, %c2 = attn.attention_with_rope %x, %off, %c qkv(%wq, %wk, %wv) o_proj(%wo)
      {num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, hidden_size = 256 : i64, layer_idx = 1 : i64,
       max_seq_len = 64 : i64, rope = #attn.rope<theta = 10000.0>}
      : (tensor<?x256xbf16>, tensor<?xi32>, !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>,
         tensor<256x256xbf16>, tensor<128x256xbf16>, tensor<128x256xbf16>, tensor<256x256xbf16>)
      -> (tensor<?x256xbf16>, !attn.paged_kv_cache<#attn.kv_cache<page_size = 16, num_layers = 2, kv_heads = 2, head_dim = 64, dtype = bf16>>)
  return %o : tensor<?x256xbf16>
}

// -----

// Non-attn tensor ops neither.
func.func @tensor_op(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{'arith.addf' op cannot be lowered to the GPU (run attn-expand-composite first; only attn ops, shape casts and scalar code are supported)}}
  %0 = arith.addf %x, %x : tensor<?x64xbf16>
  return %0 : tensor<?x64xbf16>
}

// -----

// Kernels are specialised on the weight shape.
func.func @linear_dynamic_weight(%x: tensor<?x64xbf16>, %w: tensor<?x64xbf16>) -> tensor<?x?xbf16> {
  // expected-error @+1 {{'attn.linear' op needs static weight and bias shapes on the GPU}}
  %0 = attn.linear %x, %w : tensor<?x64xbf16>, tensor<?x64xbf16> -> tensor<?x?xbf16>
  return %0 : tensor<?x?xbf16>
}

// -----

func.func @store_dynamic_heads(%k: tensor<?x?x64xbf16>, %v: tensor<?x?x64xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>, %blocks: tensor<?x2x2x16x?x64xbf16>) -> tensor<?x2x2x16x?x64xbf16> {
  // expected-error @+1 {{'attn.kv_cache_store' op needs static head counts, head dims and page size on the GPU}}
  %new = attn.kv_cache_store %k, %v into %blocks layer 1 positions(%off, %len) pages(%lut)
      : tensor<?x?x64xbf16>, tensor<?x?x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x?x64xbf16>
  return %new : tensor<?x2x2x16x?x64xbf16>
}

// -----

func.func @rope_store_dynamic_heads(%q: tensor<?x?x64xbf16>, %k: tensor<?x?x64xbf16>, %v: tensor<?x?x64xbf16>, %f: tensor<128x64xf32>,
                      %blocks: tensor<?x2x2x16x?x64xbf16>, %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> (tensor<?x?x64xbf16>, tensor<?x2x2x16x?x64xbf16>) {
  // expected-error @+1 {{'attn.rope_store' op needs static head counts, head dims and page size on the GPU}}
  %qr, %b1 = attn.rope_store %q, %k, %v into %blocks layer 1 freqs(%f) positions(%off, %len) pages(%lut)
      : tensor<?x?x64xbf16>, tensor<?x?x64xbf16>, tensor<?x?x64xbf16>, tensor<128x64xf32>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x2x16x?x64xbf16>
  return %qr, %b1 : tensor<?x?x64xbf16>, tensor<?x2x2x16x?x64xbf16>
}

// -----

//===----------------------------------------------------------------------===//
// Any function: a constant tensor.dim index out of range (undefined; after
// bufferization upstream's memref.dim folds would read past the sizes)
//===----------------------------------------------------------------------===//

func.func @dim_out_of_range(%x: tensor<?x128xbf16>) -> index {
  %c = arith.constant -1 : index
  // expected-error @+1 {{'tensor.dim' op index -1 is out of range for a tensor of rank 2}}
  %d = tensor.dim %x, %c : tensor<?x128xbf16>
  return %d : index
}
