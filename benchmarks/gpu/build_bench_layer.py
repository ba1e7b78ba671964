#!/usr/bin/python3
"""Builds the whole-layer benchmark's libraries here (the device machine has no MLIR).

Writes ``<outdir>`` (default ``build/bench-layer-gpu``): one library per model, each with ONE
function ``layer`` (``ir.layer_function(freqs_arg=True)``: the token count, batch and pages
dynamic, the RoPE table the last argument), default (fused) pipeline:

* ``layer_llama3_8b.so``: Llama-3-8B (bf16, hidden 4096, 32 / 8 heads of 128, llama3 RoPE);
* ``layer_qwen3_8b.so``: Qwen3-8B (the same shapes, RoPE theta 1e6 unscaled, qk-norm eps 1e-6);
* ``layer_llama3_8b_gptq.so``, ``layer_llama3_8b_float8.so``: the Llama-3-8B layer with its
  q/k/v and o_proj weights quantised (GPTQ int4 in groups of 128; float8 E4M3 with row scales
  and dynamic per-token input scales), as MAX's GPTQ / float8 ``AttentionWithRope`` take them;
* ``layer_llama3_8b_gptq_blocks.so``: the GPTQ layer with its words in 64-column blocks
  (``layout = column_blocks``);
* ``layer_llama3_8b_gptq_streaming.so``: the GPTQ layer compiled with
  ``--gpu-gptq-gemv=streaming`` (its decode projections on the streaming GEMV);

both over a one-layer cache of page 128, max_seq_len 8192 (prefill 8192 is the longest
step); ``projections.so``: the Llama-3-8B layer's projections alone, any number of rows M,
``qkv`` (``ir.qkv_projection_function``: x [M, 4096] against wq, wk, wv, one launch, N 6144)
and ``o_proj`` (``ir.linear_function``: N 4096, K 4096); ``libattn_cuda_runtime.so``; and
``manifest.json`` for ``bench_layer.py`` and ``bench_linear.py``.

    /usr/bin/python3 benchmarks/gpu/build_bench_layer.py [outdir] [--jobs 2] [--models A,B]
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
from build_bench_fusion import llama3_8b  # noqa: E402
from build_device_tests import RUNTIME_LIB, build_modules  # noqa: E402

MAX_SEQ_LEN = 8192


def models():
    """{model: LayerConfig}: one layer (layer 0 of a one-layer cache) of each model."""
    llama = dataclasses.replace(llama3_8b(), max_seq_len=MAX_SEQ_LEN)
    qwen = dataclasses.replace(llama, qk_norm=True, rms_norm_eps=1e-6,
                               rope={"theta": 1000000.0, "interleaved": False, "scaling": None})
    gptq = dataclasses.replace(llama, quant={"kind": "gptq", "group_size": 128})
    gptq_blocks = dataclasses.replace(llama, quant={"kind": "gptq", "group_size": 128,
                                                    "layout": "column_blocks"})
    float8 = dataclasses.replace(llama, quant={"kind": "float8", "weight_scale": "row",
                                               "input_scale": "dynamic", "upper_bound": None})
    # Modules named *_streaming compile with --gpu-gptq-gemv=streaming (MODULE_FLAGS).
    return {"llama3-8b": llama, "qwen3-8b": qwen, "llama3-8b-gptq": gptq,
            "llama3-8b-gptq-blocks": gptq_blocks, "llama3-8b-gptq-streaming": gptq,
            "llama3-8b-float8": float8}


def module_name(model):
    return "layer_" + model.replace("-", "_")


def projections(cfg):
    """The projection functions of ``projections.so`` as ``bench_linear.py`` calls them:
    N x K, the rows of each weight argument and each output's shape past M."""
    kv = [cfg.num_kv_heads, cfg.head_dim]
    return {
        "qkv": {"N": cfg.q_rows + 2 * cfg.kv_rows, "K": cfg.hidden,
                "weight_rows": [cfg.q_rows, cfg.kv_rows, cfg.kv_rows],
                "out_shapes": [[cfg.num_heads, cfg.head_dim], kv, kv]},
        "o_proj": {"N": cfg.hidden, "K": cfg.q_rows, "weight_rows": [cfg.hidden],
                   "out_shapes": [[cfg.hidden]]},
    }


def module_texts(cfgs):
    """{module: MLIR text}: each model's layer function; the Llama layer's projections."""
    texts = {module_name(model): ir.module_text(ir.layer_function("layer", cfg, freqs_arg=True))
             for model, cfg in cfgs.items()}
    llama = cfgs["llama3-8b"]
    texts["projections"] = ir.module_text(ir.qkv_projection_function("qkv", llama),
                                          ir.linear_function("o_proj", llama))
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", default=os.path.join(REPO, "build", "bench-layer-gpu"))
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiles (default 2)")
    parser.add_argument("--models", default="",
                        help="only these models, comma-separated, and llama3-8b (the "
                             "projections' model; default: all)")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    cfgs = models()
    if args.models:
        wanted = args.models.split(",")
        unknown = set(wanted) - set(cfgs)
        if unknown:
            parser.error(f"unknown models: {', '.join(sorted(unknown))} (known: {', '.join(cfgs)})")
        cfgs = {m: c for m, c in cfgs.items() if m in wanted or m == "llama3-8b"}
    modules = build_modules(module_texts(cfgs), args.outdir, args.jobs)
    if os.path.isfile(RUNTIME_LIB):
        shutil.copy2(RUNTIME_LIB, args.outdir)
    else:
        print(f"warning: {RUNTIME_LIB} not built; the libraries will not load", flush=True)
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump({"target": "cuda", "modules": modules, "function": "layer",
                   "models": {model: {"module": module_name(model),
                                      "config": dataclasses.asdict(cfg)}
                              for model, cfg in cfgs.items()},
                   "projections": {"module": "projections", "model": "llama3-8b",
                                   "functions": projections(cfgs["llama3-8b"])}}, f, indent=1)
    return 0 if all(m["ok"] for m in modules.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
