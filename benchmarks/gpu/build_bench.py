#!/usr/bin/python3
"""Builds the GPU benchmark's libraries here (the device machine has no MLIR).

Writes ``<outdir>`` (default ``build/bench-gpu``): ``prefill.so`` (flash attention over
explicit K/V of one sequence, causal and no mask), ``decode.so`` (paged flash attention over a
page-128 cache, and flash attention over explicit ragged K/V), all bf16, Hq 32, Hkv 8, D 128;
``libattn_cuda_runtime.so``; and ``manifest.json`` (each function's module, kind and
configuration) for ``bench_gpu.py``.

    /usr/bin/python3 benchmarks/gpu/build_bench.py [outdir]
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO, "python"), os.path.join(REPO, "test", "gpu")]

from attn import ir  # noqa: E402
from build_device_tests import RUNTIME_LIB, build_modules  # noqa: E402


def bench_cfg(mask):
    """The benchmarked shape (Llama-3-8B's attention): bf16, 32 / 8 heads, D 128, page 128,
    a cache of one layer."""
    return ir.LayerConfig(hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128,
                          dtype="bf16", page_size=128, num_layers=1, layer_idx=0,
                          mask={"kind": mask})


# function -> (module, kind, mask)
FUNCTIONS = {
    "prefill_causal": ("prefill", "flash_attention", "causal"),
    "prefill_none": ("prefill", "flash_attention", "none"),
    "decode_paged": ("decode", "paged_attention", "causal"),
    "decode_flash": ("decode", "flash_attention", "causal"),
}


def function_text(name, kind, cfg):
    if kind == "paged_attention":
        return ir.paged_flash_attention_function(name, cfg)
    return ir.flash_attention_function(name, cfg)


def module_texts():
    """The benchmark's modules ({module: MLIR text}) and its functions ({name: manifest entry})."""
    functions, texts = {}, {}
    for name, (module, kind, mask) in FUNCTIONS.items():
        cfg = bench_cfg(mask)
        functions[name] = {"module": module, "kind": kind, "config": dataclasses.asdict(cfg)}
        texts.setdefault(module, []).append(function_text(name, kind, cfg))
    return {m: ir.module_text(*fns) for m, fns in texts.items()}, functions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", default=os.path.join(REPO, "build", "bench-gpu"))
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiles (default 2)")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    texts, functions = module_texts()
    print(f"building {len(texts)} modules into {args.outdir}", flush=True)
    modules = build_modules(texts, args.outdir, args.jobs)
    if os.path.isfile(RUNTIME_LIB):
        shutil.copy2(RUNTIME_LIB, args.outdir)
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump({"target": "cuda", "modules": modules, "functions": functions}, f, indent=1)
    return 0 if all(m["ok"] for m in modules.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
