#!/usr/bin/env python3
"""GPU benchmark of where RoPE's cos/sin come from, on the GPU machine: RoPE of q and k + the
cache store (``attn.rope_store``) of the Llama-3-8B layer (bf16, 32 / 8 heads, D 128, page
128, llama3 RoPE, max_seq_len 8192) with cos/sin recomputed from the rope attribute (f64
sin/cos per (row, head, pair)), read from a ``freqs`` argument, or read from a constant table
in the module (``build_bench_rope_table.py``'s libraries); and the whole table once.

    python3 benchmarks/gpu/bench_rope_table.py build/bench-rope-table-gpu

Steps: decode of 8 and 64 sequences x 1 token (positions spread over [1000, 8000)), prefill
of 512 and 2048 tokens (one sequence, empty cache). Every variant's rotated q and written k /
v are first checked against ``test/gpu/torch_reference.py`` (max rel err 2e-2); then timed:
kernel time per call from CUPTI (``bench_gpu.time_calls``) and the median synchronised wall
time.

Output: a table last; ``bench-rope-table-gpu.json`` in ``$OUT`` if set, else the current folder.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(REPO, "test", "gpu"), os.path.join(REPO, "python")]

import device_abi  # noqa: E402
import torch_reference as tref  # noqa: E402
from bench_gpu import rel_err, time_calls  # noqa: E402
from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402

DEV = torch.device("cuda")
TOL = 2e-2


def spread(b):
    return [int(1000 + i * 6999 // max(b - 1, 1)) for i in range(b)]


STEPS = {"decode-8x1": (spread(8), [1] * 8), "decode-64x1": (spread(64), [1] * 64),
         "prefill-512": ([0], [512]), "prefill-2048": ([0], [2048])}


def inputs(cfg, cached, new, gen):
    """Device tensors in the functions' argument order (without the table). Only the pages
    the new rows land in are distinct; other lookup entries point at page 0."""
    page = cfg.page_size
    lookup = torch.zeros((len(new), max((c + n - 1) // page for c, n in zip(cached, new)) + 1),
                         dtype=torch.int32)
    next_page = 1
    for b, (c, n) in enumerate(zip(cached, new)):
        for p in range(c // page, (c + n - 1) // page + 1):
            lookup[b, p] = next_page
            next_page += 1
    t = sum(new)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(torch.bfloat16)

    args = {
        "q": randn(t, cfg.num_heads, cfg.head_dim),
        "k": randn(t, cfg.num_kv_heads, cfg.head_dim),
        "v": randn(t, cfg.num_kv_heads, cfg.head_dim),
        "row_offsets": torch.tensor([0] + list(torch.tensor(new).cumsum(0)), dtype=torch.int32),
        "blocks": randn(next_page, 2, 1, page, cfg.num_kv_heads, cfg.head_dim),
        "cache_lengths": torch.tensor(cached, dtype=torch.int32),
        "lookup_table": lookup,
    }
    return {k: v.to(DEV).contiguous() for k, v in args.items()}


def check(cfg, a, qr, blocks):
    """Largest relative error of the rotated q, and of the written k and v."""
    rope = cfg.rope
    want_q = tref.apply_rope(a["q"].double(), a["row_offsets"], a["cache_lengths"], rope)
    want_k = tref.apply_rope(a["k"].double(), a["row_offsets"], a["cache_lengths"], rope)
    want = tref.kv_cache_store(a["blocks"].double(), want_k, a["v"].double(), a["row_offsets"],
                               a["cache_lengths"], a["lookup_table"], 0)
    return max(rel_err(qr, want_q), rel_err(blocks, want))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?",
                        default=os.path.join(REPO, "build", "bench-rope-table-gpu"))
    args = parser.parse_args()
    with open(os.path.join(args.folder, "manifest.json")) as f:
        manifest = json.load(f)
    cfg = ir.LayerConfig(**manifest["config"])
    variants = manifest["variants"]
    libs = {}
    for module, info in manifest["modules"].items():
        if not info["ok"]:
            sys.exit(f"{module} was not built: {info['error']}")
        libs[module] = device_abi.load(os.path.join(args.folder, info["so"]))
    print(torch.cuda.get_device_name(DEV), flush=True)
    freqs = torch.from_numpy(ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len)).float()
    freqs = freqs.to(DEV).contiguous()
    table = torch.empty_like(freqs)
    table_call = device_abi.DeviceFunction(libs["table"], "table").bind([], [table])
    table_call()
    torch.cuda.synchronize()
    table_err = rel_err(table, freqs)
    table_s, table_host_s = time_calls([table_call])
    results = {"device": torch.cuda.get_device_name(DEV), "modules": manifest["modules"],
               "table": {"kernel_s": table_s, "host_s": table_host_s, "err": table_err},
               "steps": []}
    rows, status = [], 0
    for step, (cached, new) in STEPS.items():
        base = inputs(cfg, cached, new, torch.Generator().manual_seed(11))
        row = {"step": step, "tokens": sum(new)}
        for variant in variants:
            run = dict(base, blocks=base["blocks"].clone())
            if variant == "argument":
                run["freqs"] = freqs
            qr = torch.full_like(base["q"], float("nan"))
            call = device_abi.DeviceFunction(libs[f"rope_{variant}"], "rope").bind(
                list(run.values()), [qr])
            call()
            torch.cuda.synchronize()
            err = check(cfg, base, qr, run["blocks"])
            row[f"{variant}_err"] = err
            if not err <= TOL:
                print(f"{step} {variant}: wrong result, rel err {err:.2e}", flush=True)
                status = 1
                continue
            row[f"{variant}_s"], row[f"{variant}_host_s"] = time_calls([call])
        results["steps"].append(row)
        line = f"{step:13}" + "".join(
            f"  {v} {row[f'{v}_s'] * 1e6:8.1f} us" if f"{v}_s" in row else f"  {v} FAILED"
            for v in variants)
        print(line, flush=True)
        rows.append(line)
    print("\n".join(["", "RoPE + cache store (kernel time per call, CUPTI):", *rows,
                     f"whole {cfg.max_seq_len}x{cfg.head_dim} table once: {table_s * 1e6:.1f} us "
                     f"(rel err {table_err:.1e})",
                     "library sizes: " + ", ".join(
                         f"{m} {i['so_bytes'] / 1e6:.2f} MB (compile {i['compile_seconds']} s)"
                         for m, i in manifest["modules"].items())]))
    out_dir = os.environ.get("OUT") or "."
    with open(os.path.join(out_dir, "bench-rope-table-gpu.json"), "w") as f:
        json.dump(results, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
