#!/usr/bin/env python3
"""GPU benchmark of the fusion passes, on the GPU machine: decode and prefill steps of the
Llama-3-8B layer compiled fused (default pipeline) and unfused (``--no-fuse``), the whole layer
and the layer without its attention op (``build_bench_fusion.py``'s libraries).

    python3 benchmarks/gpu/bench_fusion.py build/bench-fusion-gpu

Steps: decode 8 x 512 (8 sequences, one new token each over 512 cached), decode 64 x 1024,
prefill 512 and 2048 (one sequence, empty cache). Inputs are random bf16 (weights scaled
1/sqrt(fan_in), shuffled cache pages). The fused output and written cache are first compared
with the unfused ones (max rel err 2e-2); then both are timed: kernel time per call from CUPTI
(``bench_gpu.time_calls``) and the median synchronised wall time. Bytes moved are analytic
(``benchmarks/fusion_bytes.py``); GB/s = bytes / kernel time.

Output: a table last; ``bench-fusion-gpu.json`` in ``$OUT`` if set, else the current folder.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.dirname(HERE), os.path.join(REPO, "test", "gpu"),
                os.path.join(REPO, "python")]

import device_abi  # noqa: E402
from bench_gpu import rel_err, time_calls  # noqa: E402
from fusion_bytes import step_bytes  # noqa: E402
from attn import ir  # noqa: E402

DEV = torch.device("cuda")
STEPS = {"decode-8x512": ([512] * 8, [1] * 8), "decode-64x1024": ([1024] * 64, [1] * 64),
         "prefill-512": ([0], [512]), "prefill-2048": ([0], [2048])}
TOL = 2e-2


def inputs(cfg, cached, new, gen):
    """Device tensors in the layer's argument order, and the output."""
    t, page = sum(new), cfg.page_size
    pages_per_seq = [-(-(c + n) // page) for c, n in zip(cached, new)]
    num_pages = sum(pages_per_seq) + 2
    perm = torch.randperm(num_pages, generator=gen)
    lookup = torch.zeros((len(new), max(pages_per_seq)), dtype=torch.int32)
    at = 0
    for b, n in enumerate(pages_per_seq):
        lookup[b, :n] = perm[at:at + n].to(torch.int32)
        at += n

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(torch.bfloat16).to(DEV)

    shapes = cfg.weight_shapes()
    args = {
        "x": randn(t, cfg.hidden),
        "row_offsets": torch.tensor([0] + list(torch.tensor(new).cumsum(0)), dtype=torch.int32),
        "blocks": randn(num_pages, 2, cfg.num_layers, page, cfg.num_kv_heads, cfg.head_dim),
        "cache_lengths": torch.tensor(cached, dtype=torch.int32),
        "lookup_table": lookup,
    }
    for name in cfg.weight_names():
        args[name] = randn(*shapes[name], scale=shapes[name][-1] ** -0.5)
    args = {k: v.to(DEV).contiguous() for k, v in args.items()}
    out = torch.empty((t, cfg.hidden), dtype=torch.bfloat16, device=DEV)
    return args, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=os.path.join(REPO, "build", "bench-fusion-gpu"))
    parser.add_argument("--only", default="", help="only steps whose name contains this")
    args = parser.parse_args()
    with open(os.path.join(args.folder, "manifest.json")) as f:
        manifest = json.load(f)
    cfg = ir.LayerConfig(**manifest["config"])
    libs = {}
    for module, info in manifest["modules"].items():
        if not info["ok"]:
            sys.exit(f"{module} was not built: {info['error']}")
        libs[module] = device_abi.load(os.path.join(args.folder, info["so"]))
    print(torch.cuda.get_device_name(DEV), flush=True)
    results, rows, status = [], [], 0
    for step, (cached, new) in STEPS.items():
        if args.only not in step:
            continue
        gen = torch.Generator().manual_seed(11)
        base, _ = inputs(cfg, cached, new, gen)
        tokens = sum(new)
        kv_rows = sum(c + n for c, n in zip(cached, new))
        for fn in manifest["functions"]:
            row = {"step": step, "function": fn, "tokens": tokens}
            got = {}
            calls = {}
            for fused, module in ((True, "fusion"), (False, "fusion_unfused")):
                run_args = dict(base, blocks=base["blocks"].clone())
                out = torch.full((tokens, cfg.hidden), float("nan"), dtype=torch.bfloat16,
                                 device=DEV)
                call = device_abi.DeviceFunction(libs[module], fn).bind(
                    list(run_args.values()), [out])
                call()
                torch.cuda.synchronize()
                got[fused] = (out.clone(), run_args["blocks"].clone())
                calls[fused] = (call, run_args, out)
            err = rel_err(got[True][0], got[False][0])
            cache_err = rel_err(got[True][1], got[False][1])
            row["fused_vs_unfused_err"], row["cache_err"] = err, cache_err
            if not (err <= TOL and cache_err <= TOL):
                row["error"] = f"fused and unfused differ: out {err:.2e}, cache {cache_err:.2e}"
                print(f"{step} {fn}: {row['error']}", flush=True)
                status = 1
                results.append(row)
                continue
            part = "layer" if fn == "layer" else "projections"
            for fused in (True, False):
                key = "fused" if fused else "unfused"
                row[f"{key}_s"], row[f"{key}_host_s"] = time_calls([calls[fused][0]])
                row[f"{key}_bytes"] = step_bytes(cfg, tokens, kv_rows if part == "layer" else 0,
                                                 fused=fused, part=part)
            row["speedup"] = row["unfused_s"] / row["fused_s"]
            row["speedup_host"] = row["unfused_host_s"] / row["fused_host_s"]
            results.append(row)
            line = (f"{step:15} {fn:8} unfused {row['unfused_s'] * 1e6:9.1f} us  fused "
                    f"{row['fused_s'] * 1e6:9.1f} us  {row['speedup']:.2f}x (host "
                    f"{row['speedup_host']:.2f}x)  MB {row['unfused_bytes']['total'] / 1e6:.1f}"
                    f" -> {row['fused_bytes']['total'] / 1e6:.1f}  GB/s fused "
                    f"{row['fused_bytes']['total'] / row['fused_s'] / 1e9:.0f}  err {err:.1e}")
            print(line, flush=True)
            rows.append(line)
    print("\n".join(["", "fusion (kernel time per call, CUPTI):", *rows]))
    out_dir = os.environ.get("OUT") or "."
    with open(os.path.join(out_dir, "bench-fusion-gpu.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(DEV), "results": results}, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
