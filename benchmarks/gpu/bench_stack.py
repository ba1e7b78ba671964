#!/usr/bin/env python3
"""GPU benchmark of a whole model's attention: the 32 attention layers of Llama-3-8B over one
paged cache, run by ONE compiled layer function called 32 times per step (the layer index an
argument; ``build_bench_stack.py``'s library), against PyTorch eager and PyTorch in a CUDA
graph doing the same 32 layers on the same cache (``torch_stack.py``).

    python3 benchmarks/gpu/bench_stack.py build/bench-stack-gpu [--repeats 5]
    python3 benchmarks/gpu/bench_stack.py build/bench-stack-gpu --dry-run   # no GPU, no torch

The model and the run are ``attn.stack``'s: random bf16 weights per layer (o_proj scaled
1/sqrt(32)), the residual ``x_{l+1} = bf16(x_l + attn_l(x_l))`` between layers (no norms, no
MLP); a prefill of 2 sequences x 512 tokens over an empty cache, then 16 decode steps of one
token per sequence, ``cache_lengths`` advanced by the caller.

Checks, against the model in float64 (``torch_reference.py`` through
``torch_stack.ReferenceStack``, from the same weights, cache and inputs): the first layer of the
prefill (output within the GPU tests' LAYER_TOL, the slots it writes within CACHE_TOL, nothing
else changed), then every step's last-layer output and the cache at the end as
||error|| / ||reference|| within ``attn.stack.END_TOL``, for the compiled stack and both
PyTorch versions. A compiled stack that fails is not timed.

Candidates: the compiled stack called 32 times per step (each call returns once its kernels
are enqueued), the same 32 calls captured once into a CUDA graph and replayed, PyTorch eager,
PyTorch in a CUDA graph. Timing: synchronised wall time of each step, the whole schedule run
``--repeats`` times after a warm-up run; the median per step kind. Floors: the bytes a step must read (weights + cache) at
the measured copy rate, the matmul FLOPs at the measured bf16 matmul rate.

Output: a table last; ``bench-stack-gpu.json`` in ``$OUT`` if set, else the current folder.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(REPO, "test", "gpu"), os.path.join(REPO, "python")]

import numpy as np  # noqa: E402

from attn import ir, stack  # noqa: E402
from run_device_tests import CACHE_TOL, LAYER_TOL  # noqa: E402


def work(cfg, steps):
    """Per step kind: bytes that must move (weights once, the cache's K/V read, new K/V written)
    and the projections' and attention's FLOPs."""
    shapes = cfg.weight_shapes()
    params = sum(int(np.prod(shapes[n])) for n in cfg.weight_names())
    kv_row = 2 * cfg.num_kv_heads * cfg.head_dim * 2  # K and V of one token, bf16
    result = {}
    for name, (cached, new) in (("prefill", steps[0]), ("decode", steps[1])):
        tokens = int(new.sum())
        keys = int((cached + new).sum())
        # Causal: row i of a sequence with c cached tokens sees c + i + 1 keys.
        pairs = sum(int(n) * int(c) + int(n) * (int(n) + 1) // 2 for c, n in zip(cached, new))
        result[name] = {
            "bytes": cfg.num_layers * (2 * params + keys * kv_row + 4 * tokens * cfg.hidden),
            "flops": cfg.num_layers * (2 * tokens * params
                                       + 4 * pairs * cfg.num_heads * cfg.head_dim),
        }
    return result


def ceilings(torch):
    """``(copy bytes/s counting read + write, bf16 matmul FLOP/s)``, measured with events."""
    def rate(fn, amount):
        fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(10):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e-3)
        return amount / statistics.median(times)

    src = torch.randn(1 << 29, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    copy = rate(lambda: dst.copy_(src), 4 * src.numel())
    del src, dst
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn_like(a)
    return copy, rate(lambda: a @ b, 2 * 8192**3)


def run_schedule(step, count):
    """``(outputs, seconds)`` of steps 0..count-1; ``step(i)`` returns step i's output rows."""
    import torch

    outputs, seconds = [], []
    for i in range(count):
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = step(i)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        outputs.append(out.clone())
    return outputs, seconds


def measure(args, cfg, steps, manifest):
    """Checks and times every candidate; returns the results dict."""
    import torch

    import device_abi
    import torch_stack as ts

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    weights = ts.random_weights(cfg, gen)
    blocks0, lookup = ts.random_cache(cfg, steps[-1][0] + steps[-1][1], gen)
    xs = [torch.randn((int(new.sum()), cfg.hidden), generator=gen, device=dev)
          .to(torch.bfloat16) for _, new in steps]
    lengths = [torch.from_numpy(cached).to(dev) for cached, _ in steps]
    offsets = [torch.from_numpy(stack.row_offsets(new)).to(dev) for _, new in steps]
    prefill = [not cached.any() for cached, _ in steps]
    results = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__,
               "model": manifest["model"], "steps": len(steps), "repeats": args.repeats}
    copy, matmul = ceilings(torch)
    results.update(copy_gbps=copy / 1e9, matmul_tflops=matmul / 1e12)
    print(f"{results['device']}: copy {copy / 1e9:.0f} GB/s, bf16 matmul {matmul / 1e12:.0f} "
          "TFLOP/s", flush=True)

    reference = ts.ReferenceStack(cfg, weights, blocks0, lookup)
    library = device_abi.load(os.path.join(args.folder, manifest["modules"]["stack"]["so"]))
    compiled_blocks = blocks0.clone()
    compiled = {n: ts.CompiledStack(library, manifest["function"], cfg, weights,
                                    compiled_blocks, lookup, n)
                for n in sorted({int(new[0]) for _, new in steps})}

    # The first layer of the prefill, on the reference's input and cache.
    out = compiled[int(steps[0][1][0])].first_layer(xs[0], lengths[0]).float().cpu().numpy()
    want = reference.layer(0, xs[0].double(), offsets[0], lengths[0]).cpu().numpy()
    lookup_np = lookup.cpu().numpy()
    mask = stack.written_mask(cfg, steps[:1], lookup_np, blocks0.shape[0], [0])
    got_blocks = compiled_blocks.float().cpu().numpy()
    full = np.broadcast_to(mask[..., None, None], got_blocks.shape)
    first = {"out": stack.relative_error(out, want),
             "cache": stack.cache_error(got_blocks, reference.blocks.cpu().numpy(), mask),
             "stray": int(np.count_nonzero((got_blocks != blocks0.float().cpu().numpy())
                                           & ~full))}
    first["ok"] = (first["out"] <= LAYER_TOL["bf16"] and first["cache"] <= CACHE_TOL["bf16"]
                   and first["stray"] == 0)
    results["first_layer"] = first
    print(f"first layer of the prefill: {first}", flush=True)

    want = [reference.step(xs[i], offsets[i], lengths[i]) for i in range(len(steps))]
    want_blocks = reference.blocks
    written = torch.from_numpy(stack.written_mask(cfg, steps, lookup_np, blocks0.shape[0],
                                                  range(cfg.num_layers))).to(dev)

    eager_model = ts.TorchStack(cfg, weights, blocks0.clone(), lookup)
    graph_model = ts.TorchStack(cfg, weights, blocks0.clone(), lookup)
    candidates = {
        "attn": (lambda i: compiled[int(steps[i][1][0])].step(xs[i], lengths[i]),
                 compiled_blocks),
        "eager": (lambda i: eager_model.step(xs[i], lengths[i], prefill[i]),
                  eager_model.blocks),
    }
    try:
        graphs = {kind: ts.GraphStep(graph_model, xs[i], lengths[i], prefill[i])
                  for kind, i in (("prefill", 0), ("decode", 1))}
        candidates["graph"] = (
            lambda i: graphs["prefill" if prefill[i] else "decode"].step(xs[i], lengths[i]),
            graph_model.blocks)
    except Exception as e:  # a baseline that cannot be captured must not stop the benchmark
        results["graph_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        print(f"graph: {results['graph_error']}", flush=True)
    # The compiled stack in a CUDA graph, on its own copy of the cache.
    try:
        so = os.path.join(args.folder, manifest["modules"]["stack"]["so"])
        runtime = device_abi.runtime(so)
        graph_blocks = blocks0.clone()
        captured = {kind: ts.CompiledGraphStep(
                        ts.CompiledStack(library, manifest["function"], cfg, weights,
                                         graph_blocks, lookup, int(steps[i][1][0])),
                        runtime, xs[i], lengths[i])
                    for kind, i in (("prefill", 0), ("decode", 1))}
        candidates["attn_graph"] = (
            lambda i: captured["prefill" if prefill[i] else "decode"].step(xs[i], lengths[i]),
            graph_blocks)
    except Exception as e:  # report, and time the others
        results["attn_graph_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        print(f"attn_graph: {results['attn_graph_error']}", flush=True)

    for name, (step, blocks) in candidates.items():
        row = results[name] = {}
        try:
            outputs, _ = run_schedule(step, len(steps))
            row["step_errors"] = [ts.norm_error(o, w) for o, w in zip(outputs, want)]
            row["cache_error"] = ts.norm_error(blocks[written], want_blocks[written])
            row["end_error"] = max(row["step_errors"] + [row["cache_error"]])
            ours = name.startswith("attn")
            row["ok"] = row["end_error"] <= stack.END_TOL and (not ours or first["ok"])
            print(f"{name}: end error {row['end_error']:.2e} (tolerance {stack.END_TOL:g})",
                  flush=True)
            if not row["ok"] and ours:
                continue
            prefill_s, decode_s = [], []
            for _ in range(args.repeats):
                _, seconds = run_schedule(step, len(steps))
                prefill_s.append(seconds[0])
                decode_s += seconds[1:]
            row["prefill_s"] = statistics.median(prefill_s)
            row["decode_s"] = statistics.median(decode_s)
            print(f"{name}: prefill {row['prefill_s'] * 1e3:.2f} ms, decode step "
                  f"{row['decode_s'] * 1e3:.3f} ms", flush=True)
        except Exception as e:  # one candidate's failure must not stop the benchmark
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            print(f"{name}: {row['error']}", flush=True)
    return results


def table(cfg, steps, results, amounts):
    labels = {"attn": f"attn-mlir, 1 function x {cfg.num_layers}",
              "attn_graph": "attn-mlir in a CUDA graph", "eager": "PyTorch eager",
              "graph": "PyTorch CUDA graph"}
    batch, n = len(steps[0][1]), int(steps[0][1][0])
    lines = [f"whole-model attention: {results['model']}, {cfg.num_layers} layers, {cfg.dtype}, "
             f"on {results['device']} (torch {results['torch']})",
             f"wall time per step, median of {results['repeats']} runs of the schedule "
             f"(prefill {batch} x {n}, then {len(steps) - 1} decode steps of {batch} x 1)",
             f"{'':30} {'prefill ms':>11} {'decode ms':>10}   end error (vs float64)",
             "-" * 80]
    for name, label in labels.items():
        row = results.get(name, {})
        times = (f"{row['prefill_s'] * 1e3:11.2f} {row['decode_s'] * 1e3:10.3f}"
                 if "decode_s" in row else f"{'n/a':>11} {'n/a':>10}")
        err = f"{row['end_error']:.1e}" if "end_error" in row else \
            row.get("error", results.get(f"{name}_error", "n/a"))[:40]
        lines.append(f"{label:30} {times}   {err}")
    floors = []
    for kind in ("prefill", "decode"):
        a = amounts[kind]
        floors.append(max(a["bytes"] / (results["copy_gbps"] * 1e9),
                          a["flops"] / (results["matmul_tflops"] * 1e12)))
    lines.append(f"{'floor (bytes / copy, flops / mm)':30} {floors[0] * 1e3:11.2f} "
                 f"{floors[1] * 1e3:10.3f}")
    first = results["first_layer"]
    lines.append(f"first prefill layer vs float64: out {first['out']:.1e} (tol "
                 f"{LAYER_TOL['bf16']:g}), written slots {first['cache']:.1e} "
                 f"({CACHE_TOL['bf16']:.3g}), other elements changed {first['stray']}; end "
                 f"tolerance {stack.END_TOL:g}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?",
                        default=os.path.join(REPO, "build", "bench-stack-gpu"))
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the schedule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true",
                        help="check the folder and print the plan only (no GPU or torch needed)")
    args = parser.parse_args()
    with open(os.path.join(args.folder, "manifest.json")) as f:
        manifest = json.load(f)
    cfg = ir.LayerConfig(**manifest["config"])
    steps = stack.schedule()
    amounts = work(cfg, steps)
    module = manifest["modules"]["stack"]
    if not module["ok"]:
        sys.exit(f"stack.so was not built: {module['error']}")
    so = os.path.join(args.folder, module["so"])
    for path in (so, os.path.join(args.folder, "libattn_cuda_runtime.so")):
        if not os.path.isfile(path):
            sys.exit(f"missing {path} (run build_bench_stack.py)")
    print(f"{manifest['model']}: {cfg.num_layers} layers through one function "
          f"({manifest['function']} of {so}); {len(steps)} steps; per step "
          + ", ".join(f"{k} {a['bytes'] / 1e9:.2f} GB / {a['flops'] / 1e12:.2f} TFLOP"
                      for k, a in amounts.items()), flush=True)
    if args.dry_run:
        return 0
    results = measure(args, cfg, steps, manifest)
    results["work"] = amounts
    summary = table(cfg, steps, results, amounts)
    out_dir = os.environ.get("OUT") or "."
    with open(os.path.join(out_dir, "bench-stack-gpu.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "bench-stack-gpu-table.txt"), "w") as f:
        f.write(summary + "\n")
    print(summary)
    return 0 if results.get("attn", {}).get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
