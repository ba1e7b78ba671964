#!/usr/bin/python3
"""Runs the real Llama-3.1-8B attention layer (examples/llama3_8b.mlir) on the CPU.

1. Compiles ``examples/llama3_8b.mlir`` with ``attn-compile --target=cpu`` to a shared library.
2. Builds random bf16 weights (``nn.Linear`` layout ``[out, in]``, scaled 1/sqrt(in)) and a
   paged KV cache (page 128, 32 layers, 8 kv heads, head dim 128) whose cached tokens hold
   random values, as if earlier steps had written them.
3. Runs one prefill step (2 sequences: 64 new tokens after 0 cached, 32 new after 200 cached),
   then one decode step (1 token per sequence; the caller advances the cache lengths).
4. Compares each step's output and the cache slots it wrote with ``python/attn/reference.py``
   (float64), prints the relative errors and the time of each step, and exits with status 1 if
   an error exceeds the bf16 tolerance (2e-2 relative to max |expected|) or if anything outside
   the written slots changed.

The example's function takes the opaque ``!attn.paged_kv_cache``; attn-compile passes it as its
three tensors (docs/ABI.md), so the C signature is

    int32_t _mlir_ciface_llama3_8b_layer(x, row_offsets, blocks, cache_lengths, lookup_table,
                                         q_proj, k_proj, v_proj, o_proj, out)

with the updated cache written into ``blocks`` in place and ``out`` a trailing out-parameter
(checked below against ``attn-compile --emit=mlir``).

Usage (Debian's /usr/bin/python3, numpy):
    /usr/bin/python3 examples/run_cpu_layer.py [--mcpu x86-64-v3] [--repeat 3] [--keep]
"""

import argparse
import dataclasses
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))

from attn import ir  # noqa: E402
from attn import runtime as rt  # noqa: E402

EXAMPLE = os.path.join(REPO, "examples", "llama3_8b.mlir")
FUNCTION = "llama3_8b_layer"
TOL = 2e-2  # bf16, relative to max |expected|
BF16_NAN = 0x7FC0

# The layer of examples/llama3_8b.mlir (its attributes and cache type), for the reference.
CFG = ir.LayerConfig(
    hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128, dtype="bf16",
    page_size=128, num_layers=32, layer_idx=0, max_seq_len=8192,
    rope={"theta": 500000.0, "interleaved": False,
          "scaling": {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position": 8192}},
    mask={"kind": "causal"},
)
# Descriptor ranks of the C interface, in order: x, row_offsets, blocks, cache_lengths,
# lookup_table, q_proj, k_proj, v_proj, o_proj, out.
EXPECTED_RANKS = [2, 1, 6, 1, 2, 2, 2, 2, 2, 2]


def compile_example(tool, workdir, flags):
    """Compiles the example to a .so; first checks its C signature in the --emit=mlir output."""
    lowered = os.path.join(workdir, "llama3_8b.llvm.mlir")
    so = os.path.join(workdir, "llama3_8b.so")
    for emit, out in (("mlir", lowered), ("so", so)):
        cmd = [tool, "--target=cpu", f"--emit={emit}", *flags, EXAMPLE, "-o", out]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr}")
    with open(lowered) as f:
        text = f.read()
    # The body of _mlir_ciface_<fn> loads one memref descriptor struct per pointer argument.
    start = text.find(f"llvm.func @_mlir_ciface_{FUNCTION}(")
    if start < 0:
        sys.exit(f"error: no _mlir_ciface_{FUNCTION} in {lowered}")
    header = text[start: text.index("{", text.index(")", start))]
    nargs = len(re.findall(r"%arg\d+: !llvm.ptr", header))
    body = text[start: text.find("\n  }", start)]
    ranks = [int(r) for r in
             re.findall(r"llvm.load %arg\d+ : !llvm.ptr -> !llvm.struct<\(ptr, ptr, i64, "
                        r"array<(\d+) x i64>", body)]
    if nargs != len(EXPECTED_RANKS) or ranks != EXPECTED_RANKS:
        sys.exit(f"error: unexpected C signature of _mlir_ciface_{FUNCTION}: {nargs} pointer "
                 f"arguments, descriptor ranks {ranks}; expected ranks {EXPECTED_RANKS} "
                 "(x, row_offsets, blocks, cache_lengths, lookup_table, q/k/v/o_proj, out)")
    return so


def random_bf16(rng, shape, scale=1.0):
    return rt.to_bf16_bits(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))


def make_cache(rng, cached, total):
    """Blocks ``[P, 2, 32, 128, 8, 128]`` bf16 (random, never zero), lookup table with enough
    shuffled pages for ``total`` tokens per sequence (unused entries = P), one spare page."""
    page = CFG.page_size
    pages = [-(-t // page) for t in total]
    num_pages = sum(pages) + 1
    shape = (num_pages, 2, CFG.num_layers, page, CFG.num_kv_heads, CFG.head_dim)
    values = rng.standard_normal(shape, dtype=np.float32)
    values += np.copysign(np.float32(0.25), values)
    blocks = rt.to_bf16_bits(values)
    del values
    ids = rng.permutation(num_pages)
    lookup = np.full((len(cached), max(pages)), num_pages, np.int32)
    start = 0
    for b, n in enumerate(pages):
        lookup[b, :n] = ids[start: start + n]
        start += n
    return blocks, np.asarray(cached, np.int32), lookup


def written_mask(row_offsets, cache_lengths, lookup, num_pages):
    """Boolean ``[P, 2, L, page]`` of the slots a step writes (layer CFG.layer_idx)."""
    off = np.asarray(row_offsets, np.int64)
    owner = np.repeat(np.arange(len(cache_lengths)), np.diff(off))
    pos = np.asarray(cache_lengths, np.int64)[owner] + (np.arange(off[-1]) - off[owner])
    pages = lookup[owner, pos // CFG.page_size]
    mask = np.zeros((num_pages, 2, CFG.num_layers, CFG.page_size), bool)
    mask[pages, :, CFG.layer_idx, pos % CFG.page_size] = True
    return mask


def rel_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if not np.all(np.isfinite(got)):
        return math.inf
    return float(np.max(np.abs(got - want))) / float(np.max(np.abs(want)))


def run_step(lib, name, x, row_offsets, blocks, cache_lengths, lookup, weights, repeat):
    """One layer step: reference, checked call, timed repeats. Returns True if it passed."""
    off = np.asarray(row_offsets, np.int32)
    tokens = int(off[-1])
    # Reference over layer 0 only (the others are not read or written): 32x less memory.
    layer_cfg = dataclasses.replace(CFG, num_layers=1)
    inputs = {"x": x, "row_offsets": off, "blocks": np.ascontiguousarray(blocks[:, :, :1]),
              "cache_lengths": cache_lengths, "lookup_table": lookup, **weights}
    want_out, want_blocks = ir.reference_layer(layer_cfg, inputs)
    del inputs

    before = blocks.copy()
    out = np.full((tokens, CFG.hidden), BF16_NAN, np.uint16)  # unwritten elements stay NaN
    args = [x, off, blocks, cache_lengths, lookup,
            weights["wq"], weights["wk"], weights["wv"], weights["wo"]]
    t0 = time.perf_counter()
    lib.call(FUNCTION, args, [out])
    first = time.perf_counter() - t0

    out_err = rel_error(rt.from_bf16_bits(out), want_out)
    mask = written_mask(off, cache_lengths, lookup, blocks.shape[0])
    layer = CFG.layer_idx
    got_slots = rt.from_bf16_bits(blocks[:, :, layer])[mask[:, :, layer]]  # [n, Hkv, D]
    want_slots = want_blocks[:, :, 0][mask[:, :, layer]]
    cache_err = rel_error(got_slots, want_slots)
    full = np.broadcast_to(mask[..., None, None], blocks.shape)
    stray = int(np.count_nonzero((blocks != before) & ~full))
    del before, full

    # Repeats write the same values into the same slots: the step is idempotent.
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        lib.call(FUNCTION, args, [out])
        times.append(time.perf_counter() - t0)

    seqs = len(cache_lengths)
    ok = out_err <= TOL and cache_err <= TOL and stray == 0
    print(f"{name}: {seqs} sequences, {tokens} new tokens, cache lengths "
          f"{np.asarray(cache_lengths).tolist()} -> "
          f"{(np.asarray(cache_lengths) + np.diff(off)).tolist()}")
    print(f"  output rel. error {out_err:.2e}, written cache slots rel. error {cache_err:.2e} "
          f"({int(mask.sum()) // 2} slots x K/V), other cache elements changed: {stray}  "
          f"[tolerance {TOL:g}] -> {'ok' if ok else 'FAILED'}")
    timing = f"  time: first call {first * 1e3:.1f} ms"
    if times:
        med = statistics.median(times)
        timing += (f", median of {len(times)} more {med * 1e3:.1f} ms "
                   f"({tokens / med:.0f} tokens/s)")
    print(timing)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mcpu", help="passed to attn-compile (default: native)")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls after the checked one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the compiled files (folder printed)")
    args = ap.parse_args()

    tool = rt.attn_compile_path()
    if not os.path.isfile(tool):
        sys.exit(f"error: attn-compile not found at {tool} (build it or set ATTN_COMPILE)")
    workdir = tempfile.mkdtemp(prefix="attn-llama3-")
    try:
        flags = [f"--mcpu={args.mcpu}"] if args.mcpu else []
        t0 = time.perf_counter()
        so = compile_example(tool, workdir, flags)
        print(f"compiled {os.path.relpath(EXAMPLE, REPO)} -> {so if args.keep else 'a .so'} "
              f"in {time.perf_counter() - t0:.1f} s")
        lib = rt.CompiledLibrary(so)

        rng = np.random.default_rng(args.seed)
        h, q_rows, kv_rows = CFG.hidden, CFG.q_rows, CFG.kv_rows
        weights = {
            "wq": random_bf16(rng, (q_rows, h), 1 / math.sqrt(h)),
            "wk": random_bf16(rng, (kv_rows, h), 1 / math.sqrt(h)),
            "wv": random_bf16(rng, (kv_rows, h), 1 / math.sqrt(h)),
            "wo": random_bf16(rng, (h, q_rows), 1 / math.sqrt(q_rows)),
        }
        cached, new = [0, 200], [64, 32]
        total = [c + n + 1 for c, n in zip(cached, new)]  # room for the decode token too
        blocks, lengths, lookup = make_cache(rng, cached, total)
        mib = (sum(w.nbytes for w in weights.values()) + blocks.nbytes) / 2**20
        print(f"Llama-3.1-8B layer: hidden {h}, {CFG.num_heads}/{CFG.num_kv_heads} heads, "
              f"head dim {CFG.head_dim}, bf16; cache {blocks.shape[0]} pages of "
              f"{CFG.page_size} tokens x {CFG.num_layers} layers; {mib:.0f} MiB of weights + cache; "
              f"OpenMP threads: {os.environ.get('OMP_NUM_THREADS') or os.cpu_count()}")

        # Prefill: 64 new tokens after 0 cached, 32 new after 200 cached.
        x = random_bf16(rng, (sum(new), h))
        off = np.concatenate([[0], np.cumsum(new)]).astype(np.int32)
        ok = run_step(lib, "prefill", x, off, blocks, lengths, lookup, weights, args.repeat)

        # Decode: one token per sequence; the caller advances the cache lengths.
        lengths = lengths + np.asarray(new, np.int32)
        x = random_bf16(rng, (len(new), h))
        off = np.arange(len(new) + 1, dtype=np.int32)
        ok &= run_step(lib, "decode", x, off, blocks, lengths, lookup, weights, args.repeat)
    finally:
        if args.keep:
            print(f"files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
