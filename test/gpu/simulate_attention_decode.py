#!/usr/bin/python3
"""Runs the decode schedule of paged flash attention (``Attention/Decode.cpp``: a 16-row tile of
(query row, GQA head) pairs a block, its four warps splitting every 64-key tile, K / V staged by
cp.async through the page table) and then the combine kernel in the PTX interpreter
(``ptx_sim.py``), and checks every output against ``reference.flash_attention_paged``
(float64), without a GPU.

The kernel rounds P to bf16 for the P V product, so an output may differ from the reference by
half a bf16 ulp (its own rounding) plus 2^-8 of sum_j p_j |v_j| / sum_j p_j (P's rounding, 2^-9
relative, with a factor 2 for the f32 scores, exp2 and sums).

    /usr/bin/python3 test/gpu/simulate_attention_decode.py      # about 20 s (a lit test)

Cases: GQA group 2 and head dim 64 with pages of 64 keys (a key tile in one page: the flat
index path) and of 16 (each copy looks its page up); 1, 3 and 8 key splits (blockIdx.z), so
splits with several tiles, one tile and none; sequences whose new rows need the causal mask
inside the last tile; a sequence with no new row; cache lengths that end inside a tile. Then
Llama-3's group 4, head dim 128 and pages of 128 keys.
"""

import os
import sys
from typing import NamedTuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(REPO, "python")]

import ptx_sim  # noqa: E402
from attn import reference  # noqa: E402
from simulate_gptq_gemm import (Memory, descriptor, from_bits, kernel_ptx, to_bits,  # noqa: E402
                                worst_fraction)



class Shape(NamedTuple):
    """The attention op's static shape: query heads, kv heads, head dim, page size."""
    heads: int
    kv_heads: int
    head_dim: int
    page: int


SMALL = Shape(4, 2, 64, 64)  # GQA group 2
# Attention/Problem.h: a decode tile holds 16 (row, head) pairs; four warps of 32 threads.
DECODE_ROWS, WARPS, THREADS, DECODE_MODE = 16, 4, 128, 1
P_BOUND = 2.0 ** -8


def module(shape):
    q = f"tensor<?x{shape.heads}x{shape.head_dim}xbf16>"
    blocks = f"tensor<?x2x1x{shape.page}x{shape.kv_heads}x{shape.head_dim}xbf16>"
    return f"""
func.func @decode(%q: {q}, %blocks: {blocks}, %off: tensor<?xi32>, %len: tensor<?xi32>,
                  %lut: tensor<?x?xi32>) -> {q} {{
  %o = attn.paged_flash_attention %q, %blocks layer 0 positions(%off, %len) pages(%lut)
      : {q}, {blocks}, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>
  return %o : {q}
}}
"""


def kernels_ptx(shape):
    """The PTX of the attention kernels and the combine; without run-time checks they read no
    status word."""
    return kernel_ptx(module(shape), options="runtime-checks=false")


def launch_combine(ptx, mem, o_part, lse_part, out, dims):
    """attention_combine over partials o [parts, rows, heads, D] and lse [parts, rows, heads]
    into out [rows, heads, D] (bf16): a thread per output element, blocks of 256."""
    parts, rows, heads, head_dim = dims
    count = rows * heads * head_dim
    params = descriptor(o_part, [parts, rows, heads, head_dim])
    params += descriptor(lse_part, [parts, rows, heads])
    params += descriptor(out, [rows, heads, head_dim]) + [parts, count]
    ptx_sim.run_kernel(ptx, "attention_combine", (-(-count // 256), 1), 256, params, 0, mem.buf)


def simulate(ptx, shape, q_lens, cache_lens, splits, seed=0):
    """The worst error as a fraction of the allowed one."""
    heads, kv_heads, head_dim, page = shape
    rng = np.random.default_rng(seed)
    batch, tokens = len(q_lens), sum(q_lens)
    offsets = np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int32)
    kv_lens = [c + n for c, n in zip(cache_lens, q_lens)]
    pages_each = max(-(-n // page) for n in kv_lens)
    pages = batch * pages_each + 1
    lookup = rng.permutation(pages)[:batch * pages_each].reshape(batch, pages_each).astype(np.int32)
    q = to_bits(rng.uniform(-1, 1, (tokens, heads, head_dim)) * 2, "bf16")
    blocks = to_bits(rng.uniform(-1, 1, (pages, 2, 1, page, kv_heads, head_dim)), "bf16")
    parts = splits * WARPS

    mem = Memory(1 << 22)
    out_addr = mem.put(np.full((tokens, heads, head_dim), 0x7FFF, dtype=np.uint16))  # NaNs
    o_part = mem.put(np.full((parts, tokens, heads, head_dim), np.nan, dtype=np.float32))
    lse_part = mem.put(np.full((parts, tokens, heads), np.nan, dtype=np.float32))
    params = descriptor(mem.put(q), [tokens, heads, head_dim])
    params += descriptor(out_addr, [tokens, heads, head_dim])
    params += descriptor(mem.put(offsets), [batch + 1])
    params += descriptor(mem.put(blocks), list(blocks.shape))
    params += descriptor(mem.put(np.asarray(cache_lens, dtype=np.int32)), [batch])
    params += descriptor(mem.put(lookup), list(lookup.shape))
    params += [0]  # layer
    params += descriptor(o_part, [parts, tokens, heads, head_dim])
    params += descriptor(lse_part, [parts, tokens, heads])
    params += [splits, DECODE_MODE]
    # LaunchPlan: at most ceil(T / rows) + B query tiles, a block per (tile, KV head, split).
    query_tiles = -(-tokens // (DECODE_ROWS // (heads // kv_heads))) + batch
    ptx_sim.run_kernel(ptx, "paged_flash_attention_decode",
                       (query_tiles * kv_heads, 1, splits), THREADS, params, 0, mem.buf)
    launch_combine(ptx, mem, o_part, lse_part, out_addr, (parts, tokens, heads, head_dim))

    got = from_bits(mem.get(out_addr, np.uint16, (tokens, heads, head_dim)), "bf16")
    qf, bf = from_bits(q, "bf16"), from_bits(blocks, "bf16")
    want = reference.flash_attention_paged(qf, bf, cache_lens, lookup, offsets, 0)
    # sum_j p_j |v_j| / sum_j p_j: the reference on |V|, the same weights.
    abs_blocks = bf.copy()
    abs_blocks[:, 1] = np.abs(abs_blocks[:, 1])
    magnitude = reference.flash_attention_paged(qf, abs_blocks, cache_lens, lookup, offsets, 0)
    return worst_fraction(got, want, P_BOUND * magnitude)


CASES = [
    # shape, new rows per sequence, cache lengths, splits
    (SMALL, [1, 2, 1], [70, 5, 130], 1),
    (SMALL, [1, 2, 1], [70, 5, 130], 3),
    (SMALL, [1, 0, 3], [200, 9, 63], 8),
    (Shape(4, 2, 64, 16), [1, 2], [40, 17], 1),
    (Shape(4, 2, 64, 16), [1, 2], [40, 17], 3),
    # Llama-3's: group 4, head dim 128, pages of 128 keys.
    (Shape(8, 2, 128, 128), [1, 1, 2], [300, 64, 127], 3),
]


def main():
    failed = 0
    ptx = {}
    for shape, q_lens, cache_lens, splits in CASES:
        if shape not in ptx:
            ptx[shape] = kernels_ptx(shape)
        worst = simulate(ptx[shape], shape, q_lens, cache_lens, splits,
                         seed=splits + shape.page)
        ok = worst <= 1.0
        failed += not ok
        print(f"decode heads {shape.heads}/{shape.kv_heads} d {shape.head_dim} page {shape.page} "
              f"rows {q_lens} cache {cache_lens} splits {splits}: worst error {worst:.3f} of the "
              f"allowed {'ok' if ok else 'FAILED'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
