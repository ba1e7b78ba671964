#!/usr/bin/python3
"""Builds the GPU RoPE-table benchmark's libraries here (the device machine has no MLIR).

Writes ``<outdir>`` (default ``build/bench-rope-table-gpu``): ``rope_<variant>.so`` for the
variants of ``benchmarks/cpu/bench_rope_table.py`` (RoPE of q and k + cache store of the
Llama-3-8B layer, max_seq_len 8192, cos/sin recomputed from the rope attribute, read from a
``freqs`` argument, or read from a constant table in the module), ``table.so`` (the whole
``attn.rope_freqs`` table, the once-per-model cost), ``libattn_cuda_runtime.so`` and
``manifest.json`` for ``bench_rope_table.py``.

    /usr/bin/python3 benchmarks/gpu/build_bench_rope_table.py [outdir]
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO, "python"), os.path.join(REPO, "test", "gpu"),
                os.path.join(REPO, "benchmarks", "cpu")]

from attn import ir  # noqa: E402
from bench_rope_table import VARIANTS, llama3_8b, rope_store_function  # noqa: E402
from build_device_tests import RUNTIME_LIB, build_modules  # noqa: E402


def module_texts(cfg):
    """{module: MLIR text}: one module per variant (its library size is the variant's) and
    the table alone."""
    texts = {f"rope_{v}": ir.module_text(rope_store_function("rope", cfg, v)) for v in VARIANTS}
    texts["table"] = ir.module_text(ir.rope_freqs_function("table", cfg))
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?",
                        default=os.path.join(REPO, "build", "bench-rope-table-gpu"))
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiles (default 2)")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    cfg = llama3_8b()
    modules = build_modules(module_texts(cfg), args.outdir, args.jobs)
    for info in modules.values():
        so = os.path.join(args.outdir, info["so"])
        info["so_bytes"] = os.path.getsize(so) if info["ok"] else None
    if os.path.isfile(RUNTIME_LIB):
        shutil.copy2(RUNTIME_LIB, args.outdir)
    else:
        print(f"warning: {RUNTIME_LIB} not built; the libraries will not load", flush=True)
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump({"target": "cuda", "modules": modules, "config": dataclasses.asdict(cfg),
                   "variants": list(VARIANTS)}, f, indent=1)
    return 0 if all(m["ok"] for m in modules.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
