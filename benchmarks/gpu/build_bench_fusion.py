#!/usr/bin/python3
"""Builds the GPU fusion benchmark's libraries here (the device machine has no MLIR).

Writes ``<outdir>`` (default ``build/bench-fusion-gpu``): ``fusion.so`` (default pipeline:
fusion on) and ``fusion_unfused.so`` (``--no-fuse``), each with two functions of the
Llama-3-8B layer (bf16, hidden 4096, 32 / 8 heads, D 128, page 128, llama3 RoPE):
``layer`` (``ir.layer_function``) and ``nonattn`` (the layer without its attention op,
``ir.primitive_layer_function(part="projections")``); ``libattn_cuda_runtime.so``; and
``manifest.json`` for ``bench_fusion.py``.

    /usr/bin/python3 benchmarks/gpu/build_bench_fusion.py [outdir]
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

LLAMA3 = {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position": 8192}


def llama3_8b():
    return ir.LayerConfig(hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128, dtype="bf16",
                          page_size=128, num_layers=1, layer_idx=0, max_seq_len=4096,
                          rope={"theta": 500000.0, "interleaved": False, "scaling": LLAMA3})


def module_texts(cfg):
    """The fused and the unfused module ({module: MLIR text}); build_modules compiles modules
    named *_unfused with --no-fuse."""
    text = ir.module_text(ir.layer_function("layer", cfg),
                          ir.primitive_layer_function("nonattn", cfg, part="projections"))
    return {"fusion": text, "fusion_unfused": text}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?",
                        default=os.path.join(REPO, "build", "bench-fusion-gpu"))
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiles (default 2)")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    cfg = llama3_8b()
    modules = build_modules(module_texts(cfg), args.outdir, args.jobs)
    if os.path.isfile(RUNTIME_LIB):
        shutil.copy2(RUNTIME_LIB, args.outdir)
    else:
        print(f"warning: {RUNTIME_LIB} not built; the libraries will not load", flush=True)
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump({"target": "cuda", "modules": modules, "config": dataclasses.asdict(cfg),
                   "functions": ["layer", "nonattn"]}, f, indent=1)
    return 0 if all(m["ok"] for m in modules.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
