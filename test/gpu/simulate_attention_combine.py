#!/usr/bin/python3
"""Runs attention's combine kernel (``Attention/Combine.cpp``: flash-decoding's merge of the
key splits' partial outputs) in the PTX interpreter (``ptx_sim.py``) on random partials and
checks every output against a float64 reference, without a GPU.

Each (row, head) has `parts` partials: a normalised output o_s [D] and its log2-sum-exp
lse_s (-inf for a split that saw no key). The merged output is
sum_s 2^(lse_s - max lse) o_s / sum_s 2^(lse_s - max lse), and 0 where every split was empty.
The cases cover 2 to 36 parts, log2-sum-exps that rise from part to part (the latest part
weighs most), empty splits in every position and rows whose splits are all empty. An output
must lie within half a bf16 ulp of the reference plus 2^-20 of it (the f32 sums and ex2).

    /usr/bin/python3 test/gpu/simulate_attention_combine.py      # seconds (a lit test)
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import simulate_attention_decode  # noqa: E402
from simulate_gptq_gemm import Memory, from_bits, worst_fraction  # noqa: E402

SHAPE = simulate_attention_decode.SMALL
HEADS, HEAD_DIM = SHAPE.heads, SHAPE.head_dim
F32_BOUND = 2.0 ** -20


def reference(o, lse):
    """float64 merge of o [parts, rows, heads, D] by lse [parts, rows, heads]."""
    top = lse.max(axis=0)
    base = np.where(np.isneginf(top), 0.0, top)
    w = np.exp2(lse - base)  # 0 for an empty split
    total = w.sum(axis=0)
    merged = (w[..., None] * o).sum(axis=0)
    out = np.where(total[..., None] > 0, merged / np.where(total > 0, total, 1)[..., None], 0.0)
    return out, (w[..., None] * np.abs(o)).sum(axis=0) / np.where(total > 0, total, 1)[..., None]


def partials(rng, parts, rows, rising):
    """Random partials: outputs in [-2, 2], lse in [-8, 8] (rising over the parts if
    `rising`), about a fifth of the splits empty, and row 0's head 1 empty in every split."""
    o = rng.uniform(-2, 2, (parts, rows, HEADS, HEAD_DIM))
    lse = rng.uniform(-8, 8, (parts, rows, HEADS))
    if rising:
        lse += 6.0 * np.arange(parts)[:, None, None]
    lse[rng.random(lse.shape) < 0.2] = -np.inf
    lse[:, 0, 1] = -np.inf
    # An empty split writes a finite output (the kernel weighs it 0).
    return o.astype(np.float32), lse.astype(np.float32)


def simulate(ptx, parts, rows, rising=False, seed=0):
    """The worst error of the combine's outputs, as a fraction of the allowed one."""
    rng = np.random.default_rng(seed)
    o, lse = partials(rng, parts, rows, rising)
    mem = Memory()
    o_addr, lse_addr = mem.put(o), mem.put(lse)
    out_addr = mem.put(np.full((rows, HEADS, HEAD_DIM), 0x7FFF, dtype=np.uint16))  # NaNs
    simulate_attention_decode.launch_combine(ptx, mem, o_addr, lse_addr, out_addr, o.shape)
    got = from_bits(mem.get(out_addr, np.uint16, (rows, HEADS, HEAD_DIM)), "bf16")
    want, magnitude = reference(o.astype(np.float64), lse.astype(np.float64))
    return worst_fraction(got, want, F32_BOUND * magnitude)

def main():
    ptx = simulate_attention_decode.kernels_ptx(SHAPE)
    cases = [(2, 3, False), (3, 2, True), (4, 2, False), (5, 3, True), (8, 1, True),
             (13, 2, False), (13, 2, True), (36, 1, True)]
    failed = 0
    for parts, rows, rising in cases:
        worst = simulate(ptx, parts, rows, rising, seed=parts * 10 + rows)
        ok = worst <= 1.0
        failed += not ok
        print(f"combine parts {parts} rows {rows}{' rising' if rising else ''}: worst error "
              f"{worst:.3f} of the allowed {'ok' if ok else 'FAILED'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
