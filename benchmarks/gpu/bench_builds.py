#!/usr/bin/env python3
"""Two builds of the same layers compared in one process, on the GPU machine: every model's
decode steps from two folders of ``build_bench_layer.py`` (A and B: e.g. the default build and
one with ``ATTN_COMPILE_FLAGS=--no-runtime-checks``, for what the device index checks cost; or
two commits), on the same inputs, measured in alternating rounds so that drift of the card's
clocks falls on both alike.

    /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/bench-layer-gpu
    ATTN_COMPILE_FLAGS=--no-runtime-checks \\
        /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/bench-layer-gpu-unchecked
    python3 benchmarks/gpu/bench_builds.py build/bench-layer-gpu \\
        build/bench-layer-gpu-unchecked --labels checked,unchecked [--rounds 15]

Per round and build: the GPU time per step (CUDA events around 200 back-to-back calls, / 200)
and the wall time (median of 50 calls each followed by a synchronisation). The difference is
the median over rounds of the paired difference, A - B, with the lowest and highest round
beside it. Before timing, both builds run twice on the same inputs: the elements of the output
and the cache that differ between the builds and between two calls of one build are recorded
(0 and 0: the builds compute the same, and the layer is deterministic).

Output: a table last; ``bench-builds.json`` in ``$OUT`` if set, else the current folder.
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

from attn import ir  # noqa: E402
from bench_layer import STEPS, library_path, model_arguments  # noqa: E402

BACK_TO_BACK, SYNCHRONISED = 200, 50


def wall_us(torch, call):
    """The median wall time of SYNCHRONISED synchronised calls, in us."""
    times = []
    for _ in range(SYNCHRONISED):
        begin = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1e6


def bound_calls(torch, cfg, libraries, weights, freqs, step, gen):
    """One step's inputs, and a call of each library on its own copy of the cache; returns the
    calls, their (out, blocks) and a function that resets both to the step's inputs."""
    import device_abi
    import torch_stack as ts

    sequences, cached, new = STEPS[step]
    tokens = sequences * new
    blocks, lookup = ts.random_cache(cfg, [cached + new] * sequences, gen)
    x = torch.randn((tokens, cfg.hidden), generator=gen, device=ts.DEV).to(torch.bfloat16)
    lengths = torch.full((sequences,), cached, dtype=torch.int32, device=ts.DEV)
    offsets = torch.arange(0, tokens + 1, new, dtype=torch.int32, device=ts.DEV)
    calls, results = [], []
    for library in libraries:
        own_blocks = blocks.clone()
        out = torch.full((tokens, cfg.hidden), float("nan"), dtype=torch.bfloat16,
                         device=ts.DEV)
        calls.append(device_abi.DeviceFunction(library, "layer").bind(
            [x, offsets, own_blocks, lengths, lookup, *weights, freqs], [out]))
        results.append((out, own_blocks))

    def reset():
        for out, own_blocks in results:
            out.fill_(float("nan"))
            own_blocks.copy_(blocks)
    # The calls' descriptors do not hold their tensors: the reset keeps the inputs alive.
    reset.inputs = (x, offsets, lengths, lookup, blocks)
    return calls, results, reset


def differing(torch, a, b):
    """Elements whose bits differ between two bf16 tensors."""
    return int((a.view(torch.int16) != b.view(torch.int16)).sum())


def compare_builds(torch, calls, results, reset):
    """Each build's output and cache from the same inputs, twice: the elements that differ
    between the builds and between two calls of one build (both 0 when the checks change
    nothing and the layer is deterministic)."""
    runs = []
    for _ in range(2):
        reset()
        for call in calls:
            call()
        torch.cuda.synchronize()
        runs.append([(out.clone(), blocks.clone()) for out, blocks in results])
    first, second = runs

    def diff(x, y):
        return {"out": differing(torch, x[0], y[0]), "blocks": differing(torch, x[1], y[1])}
    return {"a_vs_b": diff(first[0], first[1]), "a_repeat": diff(first[0], second[0]),
            "b_repeat": diff(first[1], second[1])}


def measure_step(torch, cfg, libraries, weights, freqs, step, gen, rounds):
    from bench_gpu import event_us  # imports torch's attention API

    calls, results, reset = bound_calls(torch, cfg, libraries, weights, freqs, step, gen)
    same = compare_builds(torch, calls, results, reset)
    print(f"  {step}: differing elements {same}", file=sys.stderr, flush=True)
    for call in calls:  # warm up
        event_us(torch, call, BACK_TO_BACK)
    samples = {"a": {"gpu": [], "wall": []}, "b": {"gpu": [], "wall": []}}
    for r in range(rounds):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        for i in order:
            name = ("a", "b")[i]
            samples[name]["gpu"].append(event_us(torch, calls[i], BACK_TO_BACK))
            samples[name]["wall"].append(wall_us(torch, calls[i]))
    row = {"step": step, "differing": same, "samples": samples}
    for kind in ("gpu", "wall"):
        diffs = [x - y for x, y in zip(samples["a"][kind], samples["b"][kind])]
        b_us = statistics.median(samples["b"][kind])
        row[kind] = {"a_us": statistics.median(samples["a"][kind]), "b_us": b_us,
                     "diff_us": statistics.median(diffs),
                     "diff_low_us": min(diffs), "diff_high_us": max(diffs),
                     "diff_share": statistics.median(diffs) / b_us}
    return row


def measure_model(torch, args, model, info, manifests):
    import device_abi

    cfg = ir.LayerConfig(**info["config"])
    libraries = [device_abi.load(library_path(folder, manifest, info["module"]))
                 for folder, manifest in zip(args.folders, manifests)]
    gen, _, ours, freqs = model_arguments(torch, cfg, args.seed)
    rows = []
    for step in STEPS:
        if step.startswith("decode"):
            row = measure_step(torch, cfg, libraries, ours, freqs, step, gen, args.rounds)
            row["model"] = model
            print(line(row), flush=True)
            rows.append(row)
    return rows


def differing_summary(row):
    """'0' when nothing differs, else out/blocks elements per comparison."""
    d = row["differing"]
    if not any(v for pair in d.values() for v in pair.values()):
        return "0"
    return " ".join(f"{k}:{v['out']}/{v['blocks']}" for k, v in d.items())


def line(row):
    g, w = row["gpu"], row["wall"]
    return (f"{row['model']:17} {row['step']:15} {g['a_us']:8.1f} {g['b_us']:8.1f} "
            f"{g['diff_us']:+7.2f} [{g['diff_low_us']:+6.2f}, {g['diff_high_us']:+6.2f}] "
            f"{100 * g['diff_share']:+6.2f}%  {w['a_us']:8.1f} {w['b_us']:8.1f} "
            f"{w['diff_us']:+7.2f} {100 * w['diff_share']:+6.2f}%  {differing_summary(row)}")


def table(results):
    a, b = results["labels"]
    header = (f"{'model':17} {'step':15} {'gpu A':>8} {'B':>8} {'A - B':>7} "
              f"{'[low, high]':>16} {'of B':>7}  {'wall A':>8} {'B':>8} {'A - B':>7} "
              f"{'of B':>7}  differing (out/cache)")
    return "\n".join([
        f"A = {a} ({results['folders'][0]}), B = {b} ({results['folders'][1]}) on "
        f"{results['device']} (torch {results['torch']}),",
        f"us per step, median of {results['rounds']} alternating rounds; gpu = CUDA events over "
        f"{BACK_TO_BACK} back-to-back calls; wall = median of {SYNCHRONISED} synchronised calls;",
        "A - B = median of the per-round differences; differing: bf16 elements of out / cache "
        "that differ (A vs B, A twice, B twice)",
        header, "-" * len(header), *(line(r) for r in results["results"])])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs=2, help="builds A and B")
    parser.add_argument("--labels", default="A,B", help="names of A and B for the table")
    parser.add_argument("--model", default="", help="only this model")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifests = [json.load(open(os.path.join(f, "manifest.json"))) for f in args.folders]
    models = {m: info for m, info in manifests[0]["models"].items()
              if not args.model or args.model == m}

    import torch

    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "labels": args.labels.split(","), "folders": args.folders,
               "rounds": args.rounds, "results": []}
    for model, info in models.items():
        results["results"] += measure_model(torch, args, model, info, manifests)
    out_dir = os.environ.get("OUT") or "."
    with open(os.path.join(out_dir, "bench-builds.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\n" + table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
