#!/usr/bin/python3
"""Builds the whole-model benchmark's library here (the device machine has no MLIR).

Writes ``<outdir>`` (default ``build/bench-stack-gpu``): ``stack.so`` holding ONE function,
``layer``, the Llama-3-8B attention layer (``attn.stack.MODELS["llama3-8b"]``: bf16, hidden
4096, 32 / 8 heads of 128, page 128, llama3 RoPE) over the 32-layer cache with the layer index
as its first argument and the RoPE table as its last (``attn.stack.layer_function``);
``libattn_cuda_runtime.so``; and ``manifest.json`` for ``bench_stack.py``.

    /usr/bin/python3 benchmarks/gpu/build_bench_stack.py [outdir] [--model llama3-8b]
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO, "python"), os.path.join(REPO, "test", "gpu")]

from attn import ir, stack  # noqa: E402
from build_device_tests import RUNTIME_LIB, build_modules  # noqa: E402


def module_texts(cfg):
    """{module: MLIR text}: the one runtime-layer function."""
    return {"stack": ir.module_text(stack.layer_function("layer", cfg))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", default=os.path.join(REPO, "build", "bench-stack-gpu"))
    parser.add_argument("--model", choices=sorted(stack.MODELS), default="llama3-8b")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    cfg = stack.MODELS[args.model]
    modules = build_modules(module_texts(cfg), args.outdir, jobs=1)
    if os.path.isfile(RUNTIME_LIB):
        shutil.copy2(RUNTIME_LIB, args.outdir)
    else:
        print(f"warning: {RUNTIME_LIB} not built; the library will not load", flush=True)
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump({"target": "cuda", "model": args.model, "modules": modules,
                   "config": dataclasses.asdict(cfg), "function": "layer"}, f, indent=1)
    return 0 if all(m["ok"] for m in modules.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
