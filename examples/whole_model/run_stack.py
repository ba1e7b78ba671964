#!/usr/bin/python3
"""A whole model's attention on the CPU: one compiled layer function serves every layer.

1. Writes the layer of ``--model`` with the layer index as a run-time argument
   and the RoPE table as an argument computed once per model (``stack.layer_function``:
   ``(layer_idx: i32, x, row_offsets, blocks, cache_lengths, lookup_table, wq, wk, wv, wo,
   freqs) -> (out, blocks)``) and compiles it once with ``attn-compile --target=cpu``.
2. Draws random bf16 weights for each of the N layers and one paged cache ``[P, 2, N, page, Hkv,
   D]`` shared by all of them (``python/attn/stack.py``: residual ``x_{l+1} = bf16(x_l +
   attn_l(x_l))``, o_proj scaled by 1/sqrt(N) so that the stream stays O(1)).
3. Runs a prefill of 2 sequences x 512 tokens, then 16 decode steps (one token per sequence, the
   caller advancing ``cache_lengths``); each step calls the one function for layers 0..N-1.
4. Checks (``--check all``, the default): every layer of the prefill against the numpy reference
   on the same input and cache (output, the slots it writes, nothing else changed); every step's
   last-layer output, and the whole cache at the end, against the numpy reference of the whole
   run (float64). Prints the wall time of the prefill and of each decode step (checks excluded).
   Exit status 1 if an error exceeds its tolerance.

    /usr/bin/python3 examples/whole_model/run_stack.py                 # tiny: 8 layers, hidden 256
    /usr/bin/python3 examples/whole_model/run_stack.py --model llama3-8b --check first-layer
"""

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))

from attn import ir  # noqa: E402
from attn import runtime as rt  # noqa: E402
from attn import stack  # noqa: E402

# Tolerances, bf16. One layer on the reference's input and cache: the CPU tests' LAYER_TOL
# (relative to max |expected|) and CACHE_TOL (per written (slot, head) vector). The whole run:
# stack.END_TOL.
LAYER_TOL, LAYER_CACHE_TOL = 1.4e-2, 2.0**-6 + 1e-6


def build(cfg, flags):
    """Compiles the runtime-layer function; returns (the loaded library, seconds)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="attn-stack-") as workdir:
        so = rt.compile_cpu(ir.module_text(stack.layer_function("layer", cfg)),
                            os.path.join(workdir, "layer.so"), flags=flags)
        return rt.CompiledLibrary(so), time.perf_counter() - start


def report(cfg, result, check):
    """Prints the errors; returns True if they are within the tolerances."""
    ok = True
    if result["layers"]:
        layers = result["layers"]
        worst = {key: max(r[key] for r in layers) for key in ("out", "cache", "stray")}
        good = (worst["out"] <= LAYER_TOL and worst["cache"] <= LAYER_CACHE_TOL
                and worst["stray"] == 0)
        ok &= good
        print(f"prefill, layer by layer ({len(layers)} checked, same input and cache as the "
              f"reference): out error max {worst['out']:.2e} (tolerance {LAYER_TOL:g}), written "
              f"slots {worst['cache']:.2e} ({LAYER_CACHE_TOL:.3g}), other elements changed "
              f"{worst['stray']} -> {'ok' if good else 'FAILED'}")
    if check == "all":
        steps, end = result["steps"], max(result["steps"] + [result["cache"]])
        good = end <= stack.END_TOL and result["stray"] == 0
        ok &= good
        print(f"whole run vs. reference, ||error|| / ||reference||: last-layer output prefill "
              f"{steps[0]:.2e}, decode max {max(steps[1:], default=0):.2e}, final "
              f"{steps[-1]:.2e}; cache at the end "
              f"(every written slot of {cfg.num_layers} layers) {result['cache']:.2e}; slots no "
              f"step writes changed: {result['stray']}  [tolerance {stack.END_TOL:g}] -> "
              f"{'ok' if good else 'FAILED'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(stack.MODELS), default="tiny")
    ap.add_argument("--layers", type=int, help="number of layers (default: the model's)")
    ap.add_argument("--decode-steps", type=int, default=stack.DECODE_STEPS)
    ap.add_argument("--check", choices=("all", "first-layer", "none"), default="all")
    ap.add_argument("--mcpu", help="passed to attn-compile (default: native)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    cfg = stack.MODELS[args.model]
    if args.layers:
        cfg = dataclasses.replace(cfg, num_layers=args.layers)
    steps = stack.schedule(decode_steps=args.decode_steps)
    lib, seconds = build(cfg, [f"--mcpu={args.mcpu}"] if args.mcpu else [])
    rng = np.random.default_rng(args.seed)
    weights = stack.random_weights(rng, cfg)
    blocks, lookup = stack.random_cache(rng, cfg, steps[-1][0] + steps[-1][1])
    mib = (sum(w.nbytes for layer in weights for w in layer.values()) + blocks.nbytes) / 2**20
    print(f"{args.model}: {cfg.num_layers} layers, hidden {cfg.hidden}, {cfg.num_heads}/"
          f"{cfg.num_kv_heads} heads of {cfg.head_dim}, {cfg.dtype}; one cache of "
          f"{blocks.shape[0]} pages x {cfg.page_size} tokens x {cfg.num_layers} layers; "
          f"{mib:.0f} MiB of weights + cache; compiled one layer function in {seconds:.1f} s; "
          f"OpenMP threads: {os.environ.get('OMP_NUM_THREADS') or os.cpu_count()}", flush=True)
    compiled = stack.CompiledStack(lib, "layer", cfg, weights, blocks, lookup)
    result = stack.run(compiled, steps, rng, check=args.check)
    ok = report(cfg, result, args.check)
    prefill, decode = result["step_s"][0], result["step_s"][1:]
    line = (f"time (wall, {cfg.num_layers} layer calls + residual adds per step): prefill "
            f"{len(steps[0][1])} x {steps[0][1][0]} tokens {prefill * 1e3:.1f} ms")
    if decode:
        median = statistics.median(decode)
        line += (f", decode step ({len(steps[0][1])} tokens) median {median * 1e3:.1f} ms "
                 f"(min {min(decode) * 1e3:.1f}, max {max(decode) * 1e3:.1f})")
    print(line)
    print("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
