#!/usr/bin/env python3
"""GPU benchmark of one whole attention layer step, on the GPU machine: the Llama-3-8B and
Qwen3-8B (qk-norm) layers compiled by ``build_bench_layer.py`` (one function per model, any
token count) against the same layer in PyTorch eager and in a CUDA graph, in one run; and the
Llama-3-8B layer with GPTQ and float8 weights (PyTorch runs the bf16 layer on their exact
decoding: the comparison with our bf16 layer is the speed-up quantisation buys).

    python3 benchmarks/gpu/bench_layer.py build/bench-layer-gpu [--model qwen3-8b] [--only decode]
    python3 benchmarks/gpu/bench_layer.py build/bench-layer-gpu --dry-run   # no GPU, no torch

Steps (sequences x cached tokens, one new token per sequence; prefill: one sequence over an
empty cache): decode 8 x 512, 64 x 1024, 1 x 4000; prefill 512, 2048, 8192. Each step draws its
own inputs and a paged cache of page 128 sized for it (``torch_stack.random_cache``: shuffled
pages, one spare); the weights are drawn once per model (``torch_stack.random_weights``: bf16,
scaled 1/sqrt(fan_in), qk-norm gains in [0.5, 1.5)), the RoPE table computed once per model
(``ir.rope_table_input``, the layer's last argument).

PyTorch's layer is ``torch_stack.TorchStack`` without the residual (the recipe of
``../shared/reference/performance.md`` on the same paged cache): cuBLAS ``F.linear`` on the
stacked qkv weight, ``F.rms_norm`` of q and k for Qwen3, RoPE from the same cos/sin table,
index writes into the cache, SDPA with GQA, ``F.linear`` for o_proj.

Checks, before anything of a step is timed: our output and the cache slots the step writes
against PyTorch eager's from the same inputs and cache, ``||ours - torch|| / ||torch||`` within
TOL (the two round q, k, v and the attention output to bf16 at different points, which parts
them by a few 1e-3; a wrong layer is off by 0.1 or more: leaving out Qwen3's qk-norm, 0.3);
PyTorch in a CUDA graph and our call replayed in a CUDA graph against the same. A step whose
check fails is not timed, and the exit status is 1.

Candidates: our layer (one call; it returns once its kernels are enqueued), the same call
captured in a CUDA graph (``torch_stack.capture``), PyTorch eager, PyTorch's step in a CUDA
graph. Each: the median synchronised wall time of one step and the kernel time per step
(CUPTI, summed over every kernel of the step; ``bench_gpu.time_calls``).

Output: the table last (step | ours wall | ours kernel | torch eager | torch graph (wall,
kernel) | speedup vs graph = torch graph wall / ours wall | ours in a graph | the check; every
candidate's wall and kernel time is in the JSON);
``bench-layer-gpu.json`` (written after every step) and ``bench-layer-gpu-table.txt`` in
``$OUT`` if set, else the current folder.
"""

import argparse
import gc
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(REPO, "test", "gpu"), os.path.join(REPO, "python")]

from attn import ir  # noqa: E402

# name: (sequences, cached tokens per sequence, new tokens per sequence)
STEPS = {
    "decode-8x512": (8, 512, 1),
    "decode-64x1024": (64, 1024, 1),
    "decode-1x4000": (1, 4000, 1),
    "prefill-512": (1, 0, 512),
    "prefill-2048": (1, 0, 2048),
    "prefill-8192": (1, 0, 8192),
}
# ||ours - torch|| / ||torch||: as the other GPU benchmarks' bf16 tolerance. PyTorch's layer is
# 3-4.5e-3 from float64 (torch_stack.TorchStack against torch_reference at a small size).
TOL = 2e-2
# The float8 layer rounds x to E4M3 before each projection (3 mantissa bits: 3.6% RMS per
# element), which PyTorch's bf16 layer on the decoded weights does not; through q/k/v, the
# softmax and o_proj that is 4.7-5.3e-2 at decode and 6.8-7.5e-2 at prefill on the H200.
FLOAT8_TOL = 1e-1


def tolerance(cfg):
    return FLOAT8_TOL if (cfg.quant or {}).get("kind") == "float8" else TOL


def quantized_weights(torch, cfg, weights, seed):
    """For a quantised model: ``(torch_weights, our_arguments)``: random parts of every
    quantised weight (``ir.random_quantized_weight``) as our arguments, and PyTorch's bf16
    weights their exact decoding (``reference``); other weights shared as drawn."""
    import numpy as np

    import torch_stack as ts

    rng = np.random.default_rng(seed)
    shapes, dense, ours = cfg.weight_shapes(), dict(weights), []
    for name in cfg.weight_names():
        if not cfg.is_quantized(name):
            ours.append(weights[name])
            continue
        quant = cfg.quant_of(name)
        parts = ir.random_quantized_weight(rng, quant, *shapes[name])
        decoded = ir.reference_quantized_weight(quant, parts).decode()
        dense[name] = torch.from_numpy(np.asarray(decoded, np.float32)).to(
            ts.DEV).to(torch.bfloat16)
        ours += [torch.from_numpy(np.ascontiguousarray(parts[n])).to(ts.DEV)
                 for n in ir.quantized_part_names(quant)]
    return dense, ours


def model_arguments(torch, cfg, seed):
    """A model's generator and the arguments all its steps share: ``(gen, torch_weights,
    our_weights, freqs)`` (``quantized_weights`` for a quantised model), drawn from ``seed``."""
    import torch_stack as ts

    gen = torch.Generator(device=ts.DEV).manual_seed(seed)
    weights = ts.random_weights(cfg, gen)[0]
    ours = list(weights.values())
    if cfg.quant:
        weights, ours = quantized_weights(torch, cfg, weights, seed)
    return gen, weights, ours, torch.from_numpy(ir.rope_table_input(cfg)).to(ts.DEV)


def library_path(folder, manifest, module):
    """The library of ``module`` in a build folder of ``build_bench_layer.py``; exits if it
    was not built or a file the call needs is missing."""
    info = manifest["modules"][module]
    if not info["ok"]:
        sys.exit(f"{info['so']} was not built: {info['error']}")
    so = os.path.join(folder, info["so"])
    for path in (so, os.path.join(folder, "libattn_cuda_runtime.so")):
        if not os.path.isfile(path):
            sys.exit(f"missing {path} (run build_bench_layer.py)")
    return so


def cache_pages(cfg, sequences, cached, new):
    """Pages of a step's cache (``torch_stack.random_cache``: one spare)."""
    return sequences * -(-(cached + new) // cfg.page_size) + 1


def plan(cfg, step):
    """What a step moves: tokens, cache pages and bytes."""
    sequences, cached, new = STEPS[step]
    pages = cache_pages(cfg, sequences, cached, new)
    page_bytes = 2 * cfg.num_layers * cfg.page_size * cfg.kv_rows * 2  # K and V, bf16
    return {"tokens": sequences * new, "pages": pages, "cache_bytes": pages * page_bytes}


def run_step(torch, cfg, library, runtime, weights, our_weights, freqs, step, gen,
             kernels=False):
    """One step of one model: checks, then times every candidate; returns the result row."""
    import device_abi
    import torch_reference as tr
    import torch_stack as ts
    from bench_gpu import kernel_times, measure

    sequences, cached, new = STEPS[step]
    tokens, prefill, dev = sequences * new, cached == 0, ts.DEV
    blocks0, lookup = ts.random_cache(cfg, [cached + new] * sequences, gen)
    x = torch.randn((tokens, cfg.hidden), generator=gen, device=dev).to(torch.bfloat16)
    lengths = torch.full((sequences,), cached, dtype=torch.int32, device=dev)
    offsets = torch.arange(0, tokens + 1, new, dtype=torch.int32, device=dev)
    pages, slots = tr.page_slots(offsets, lengths, lookup, cfg.page_size)

    def written(blocks):
        return blocks[pages, :, 0, slots]

    row = {"step": step, **plan(cfg, step)}
    blocks = blocks0.clone()
    out = torch.full((tokens, cfg.hidden), float("nan"), dtype=torch.bfloat16, device=dev)
    call = device_abi.DeviceFunction(library, "layer").bind(
        [x, offsets, blocks, lengths, lookup, *our_weights, freqs], [out])
    try:
        call()
        torch.cuda.synchronize()
    except Exception as e:  # an error status: report it, and run the other steps
        row["error"] = f"ours: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        print(f"  {step}: {row['error']}", flush=True)
        return row
    eager = ts.TorchStack(cfg, [weights], blocks0.clone(), lookup, residual=False)
    want = eager.step(x, lengths, prefill)
    errors = {"ours": (ts.norm_error(out, want),
                       ts.norm_error(written(blocks), written(eager.blocks)))}
    timed = {"ours": call, "eager": lambda: eager.step(x, lengths, prefill)}

    def check_graph(name, make):
        """Captures a candidate (``make() -> (replay, output, blocks)``) and checks a replay;
        one that cannot be captured is reported and left out."""
        try:
            replay, got, got_blocks = make()
            got.fill_(float("nan"))
            replay()
            torch.cuda.synchronize()
            errors[name] = (ts.norm_error(got, want),
                            ts.norm_error(written(got_blocks), written(eager.blocks)))
            timed[name] = replay
        except Exception as e:  # a candidate that cannot be captured must not stop the run
            row[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            print(f"  {step} {name}: {row[f'{name}_error']}", flush=True)

    def ours_graph():
        graph, _ = ts.capture(call, runtime)
        return graph.replay, out, blocks

    def torch_graph():
        model = ts.TorchStack(cfg, [weights], blocks0.clone(), lookup, residual=False)
        step = ts.GraphStep(model, x, lengths, prefill)
        # The replay holds the step, whose inputs and model the graph reads.
        return (lambda: step.graph.replay()), step.out, model.blocks

    check_graph("ours_graph", ours_graph)
    check_graph("graph", torch_graph)
    for name, (err, cache_err) in errors.items():
        row[f"{name}_err"], row[f"{name}_cache_err"] = err, cache_err
    tol = tolerance(cfg)
    bad = [n for n, errs in errors.items() if not all(e <= tol for e in errs)]  # NaN too
    if bad:
        row["error"] = "; ".join(f"{n} differs from PyTorch eager: out {errors[n][0]:.2e}, "
                                 f"written cache {errors[n][1]:.2e} (tolerance {tol:g})"
                                 for n in bad)
        print(f"  {step}: {row['error']}", flush=True)
        return row
    for name, fn in timed.items():
        measure(row, name, [fn])
    if kernels:  # where our step's kernel time goes
        row["ours_kernels_us"] = kernel_times([call])
        for name, t in row["ours_kernels_us"].items():
            print(f"    {t:8.1f} us  {name}", flush=True)
    return row


def measure_model(args, model, info, manifest, save):
    """Every step of one model; returns its rows."""
    import torch

    import device_abi

    cfg = ir.LayerConfig(**info["config"])
    so = library_path(args.folder, manifest, info["module"])
    library, runtime = device_abi.load(so), device_abi.runtime(so)
    gen, weights, our_weights, freqs = model_arguments(torch, cfg, args.seed)
    rows = []
    for step in STEPS:
        if args.only not in step:
            continue
        row = run_step(torch, cfg, library, runtime, weights, our_weights, freqs, step, gen,
                       args.kernels)
        row["model"] = model
        rows.append(row)
        print(line(row), flush=True)
        save(rows)
        gc.collect()  # the step's tensors and graphs, before the next step's
        torch.cuda.empty_cache()
    return rows


def us(row, key):
    return f"{row[key] * 1e6:9.1f}" if key in row else f"{'n/a':>9}"


def line(row):
    """One table line: wall and kernel times (us), speedup, check."""
    speedup = (f"{row['graph_host_s'] / row['ours_host_s']:8.2f}x"
               if "graph_host_s" in row and "ours_host_s" in row else f"{'n/a':>9}")
    check = (f"{max(row['ours_err'], row['ours_cache_err']):.1e}" if "ours_err" in row
             else "n/a")
    return (f"{row.get('model', ''):10} {row['step']:15} {us(row, 'ours_host_s')} "
            f"{us(row, 'ours_s')} {us(row, 'eager_host_s')} {us(row, 'graph_host_s')} "
            f"{us(row, 'graph_s')} {speedup} {us(row, 'ours_graph_host_s')}   {check}"
            + (f"  {row['error'][:60]}" if "error" in row else ""))


def table(results):
    header = (f"{'model':10} {'step':15} {'ours wall':>9} {'ours kern':>9} {'eager':>9} "
              f"{'graph':>9} {'grph kern':>9} {'vs graph':>9} {'ours grph':>9}   err")
    return "\n".join([
        f"whole layer step on {results['device']} (torch {results['torch']}), us: wall = "
        "median synchronised wall time of a step, kern = CUPTI kernel time;",
        "eager / graph = PyTorch eager / in a CUDA graph (wall), grph kern its kernel time; "
        "vs graph = torch graph wall / ours wall;",
        "ours grph = ours in a CUDA graph (wall); "
        f"err = ours vs eager, ||d|| / ||eager|| (tol {TOL:g}, float8 {FLOAT8_TOL:g})",
        header, "-" * len(header), *(line(r) for r in results["results"])])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=os.path.join(REPO, "build", "bench-layer-gpu"))
    parser.add_argument("--model", default="", help="only models whose name contains this")
    parser.add_argument("--only", default="", help="only steps whose name contains this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernels", action="store_true",
                        help="also print (and record) our step's time per kernel")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the folder and print the plan only (no GPU or torch needed)")
    args = parser.parse_args()
    with open(os.path.join(args.folder, "manifest.json")) as f:
        manifest = json.load(f)
    models = {m: info for m, info in manifest["models"].items() if args.model in m}
    for model, info in models.items():
        library_path(args.folder, manifest, info["module"])
        cfg = ir.LayerConfig(**info["config"])
        for step in STEPS:
            if args.only in step:
                p = plan(cfg, step)
                print(f"{model} {step}: {p['tokens']} tokens, {p['pages']} cache pages "
                      f"({p['cache_bytes'] / 1e6:.0f} MB)", flush=True)
    if args.dry_run:
        return 0

    import torch

    out_dir = os.environ.get("OUT") or "."
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "tolerance": TOL, "results": []}

    def save(rows):
        with open(os.path.join(out_dir, "bench-layer-gpu.json"), "w") as f:
            json.dump(dict(results, results=results["results"] + rows), f, indent=1)

    print(f"{results['device']} (torch {results['torch']})", flush=True)
    for model, info in models.items():
        results["results"] += measure_model(args, model, info, manifest, save)
    save([])
    summary = table(results)
    with open(os.path.join(out_dir, "bench-layer-gpu-table.txt"), "w") as f:
        f.write(summary + "\n")
    print("\n" + summary)
    return 0 if all("error" not in r and "ours_host_s" in r for r in results["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
