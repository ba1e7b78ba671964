#!/usr/bin/env python3
"""GPU benchmark of the projection kernels alone, on the GPU machine: the Llama-3-8B layer's
fused q/k/v projection (``ir.qkv_projection_function``: x [M, 4096] against wq, wk, wv, N 6144
in all) and o_proj (``ir.linear_function``: N 4096, K 4096), built by
``build_bench_layer.py`` (``projections.so``, any M), against ``torch.matmul`` (cuBLAS) on the
stacked weight ``[N, K]``, eager and in a CUDA graph, in one run.

    python3 benchmarks/gpu/bench_linear.py build/bench-layer-gpu [--only qkv]
    python3 benchmarks/gpu/bench_linear.py build/bench-layer-gpu --dry-run   # no GPU, no torch

M (rows of x) = 1, 8, 16, 64 (decode: the skinny GEMM / GEMV) and 512, 2048, 8192 (prefill:
the GEMM). Inputs are random bf16 (weights scaled 1/sqrt(K)); the calls rotate over as many
input sets (x, weights, output) as keep a set out of the L2 cache until it comes back
(``bench_gpu.input_sets``), so the weights are read from device memory.

Check, before timing: our output against cuBLAS's on the same set, ``max|ours - torch| /
max|torch|`` within ``bench_gpu.ERR_TOL``; a wrong result is not timed and the exit status is 1.

Candidates: ours (a call returns once its kernels are enqueued), ours captured in a CUDA graph,
``torch.matmul`` eager, ``torch.matmul`` in a CUDA graph (``torch_stack.capture``, one graph
per input set). Each: the median synchronised wall time of one call and the kernel time per
call (CUPTI; ``bench_gpu.time_calls``). Rates from the kernel time: TFLOP/s = 2 M N K / time,
weight GB/s = 2 N K / time, its ratio to the measured copy rate (read + written, as in
``bench_gpu.py``), and cuBLAS kernel time / ours.

Output: the table last; ``bench-linear-gpu.json`` (written after every case) and
``bench-linear-gpu-table.txt`` in ``$OUT`` if set, else the current folder.
"""

import argparse
import gc
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(REPO, "test", "gpu"), os.path.join(REPO, "python")]

from bench_layer import library_path  # noqa: E402

ROWS = (1, 8, 16, 64, 512, 2048, 8192)
CANDIDATES = ("ours", "ours_graph", "cublas", "cublas_graph")


def case_plan(info, m):
    """FLOPs and bytes of one call: weights, and all it moves (x read, output written)."""
    n, k = info["N"], info["K"]
    weight_bytes = 2 * n * k
    return {"M": m, "N": n, "K": k, "flop": 2 * m * n * k, "weight_bytes": weight_bytes,
            "bytes": weight_bytes + 2 * m * (n + k)}


def run_case(torch, library, runtime, function, info, m, copy_gbps):
    """One (function, M): checks, then times every candidate; returns the result row."""
    import device_abi
    import torch_stack as ts
    from bench_gpu import input_sets, measure, rel_err

    dev, bf16 = ts.DEV, torch.bfloat16
    row = {"function": function, **case_plan(info, m)}
    k = info["K"]
    sets = []  # (x, weights, the weights stacked, outputs)
    for _ in range(input_sets(row["bytes"])):
        x = torch.randn((m, k), device=dev).to(bf16)
        weights = [(torch.randn((rows, k), device=dev) * k ** -0.5).to(bf16)
                   for rows in info["weight_rows"]]
        outs = [torch.empty((m, *shape), dtype=bf16, device=dev) for shape in info["out_shapes"]]
        sets.append((x, weights, torch.cat(weights), outs))
    row["input_sets"] = len(sets)
    fn = device_abi.DeviceFunction(library, function)
    calls = [fn.bind([x, *weights], outs) for x, weights, _, outs in sets]
    matmuls = [lambda s=s: torch.matmul(s[0], s[2].t()) for s in sets]
    outs = sets[0][3]
    want = matmuls[0]()

    def ours_out(_):
        return torch.cat([o.view(m, -1) for o in outs], 1)

    def check_and_time(name, runs, output):
        """Checks ``output(runs[0]())`` (set 0's result) against cuBLAS, then times."""
        def check():
            for o in outs:
                o.fill_(float("nan"))
            result = runs[0]()
            torch.cuda.synchronize()
            return rel_err(output(result), want)

        measure(row, name, runs, check)

    def graphed(name, runs, rt=None):
        """Each run captured in a CUDA graph: replays that return the captured result; None
        (recorded) if it cannot be captured."""
        try:
            captured = [ts.capture(run, rt) for run in runs]
        except Exception as e:  # report, and time the others
            row[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            print(f"  {function} M={m} {name}: {row[f'{name}_error']}", flush=True)
            return None
        return [lambda g=g, r=r: (g.replay(), r)[1] for g, r in captured]

    check_and_time("ours", calls, ours_out)
    if "ours_s" in row and (replays := graphed("ours_graph", calls, runtime)):
        check_and_time("ours_graph", replays, ours_out)
    check_and_time("cublas", matmuls, lambda result: result)
    if replays := graphed("cublas_graph", matmuls):
        check_and_time("cublas_graph", replays, lambda result: result)
    for name in CANDIDATES:
        if f"{name}_s" in row:
            row[f"{name}_tflops"] = row["flop"] / row[f"{name}_s"] / 1e12
            row[f"{name}_weight_gbps"] = row["weight_bytes"] / row[f"{name}_s"] / 1e9
    if "ours_s" in row:
        row["ours_of_copy"] = row["ours_weight_gbps"] / copy_gbps
        if "cublas_s" in row:
            row["ours_vs_cublas"] = row["cublas_s"] / row["ours_s"]
    return row


def line(row):
    def col(key, fmt, scale=1.0):
        return format(row[key] * scale, fmt) if key in row else f"{'n/a':>{fmt[:-3]}}"

    err = f"{row['ours_err']:.1e}" if "ours_err" in row else "n/a"
    return (f"{row['function']:6} {row['M']:5} {col('ours_host_s', '8.1f', 1e6)} "
            f"{col('ours_s', '8.1f', 1e6)} {col('ours_graph_host_s', '8.1f', 1e6)} "
            f"{col('cublas_host_s', '8.1f', 1e6)} {col('cublas_s', '8.1f', 1e6)} "
            f"{col('cublas_graph_host_s', '8.1f', 1e6)} {col('ours_tflops', '7.1f')} "
            f"{col('cublas_tflops', '7.1f')} {col('ours_weight_gbps', '7.0f')} "
            f"{col('ours_of_copy', '6.2f')} {col('ours_vs_cublas', '6.2f')}  {err}")


def table(results):
    header = (f"{'fn':6} {'M':>5} {'wall':>8} {'kernel':>8} {'graph':>8} {'wall':>8} "
              f"{'kernel':>8} {'graph':>8} {'TFLOP/s':>7} {'TFLOP/s':>7} {'W GB/s':>7} "
              f"{'/copy':>6} {'vs cuB':>6}  err")
    shapes = {r["function"]: f"{r['function']} N {r['N']} K {r['K']}" for r in results["results"]}
    return "\n".join([
        f"projections of the Llama-3-8B layer ({', '.join(shapes.values())}; bf16) on "
        f"{results['device']} (torch {results['torch']}); copy {results['copy_gbps']:.0f} GB/s",
        "times in us: ours wall / kernel / in a CUDA graph (wall), then cuBLAS (torch.matmul) "
        "the same; TFLOP/s ours, cuBLAS;",
        "W GB/s = ours weight bytes / kernel time, /copy its ratio to the copy rate; vs cuB = "
        "cuBLAS kernel / ours kernel; err = max rel err vs cuBLAS",
        f"{'':12} {'ours':-^26} {'cuBLAS':-^26} {'ours':>7} {'cuBLAS':>7}",
        header, "-" * len(header), *(line(r) for r in results["results"])])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=os.path.join(REPO, "build", "bench-layer-gpu"))
    parser.add_argument("--only", default="", help="only functions whose name contains this")
    parser.add_argument("--rows", default=",".join(map(str, ROWS)),
                        help="the row counts M to run, comma-separated")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the folder and print the plan only (no GPU or torch needed)")
    args = parser.parse_args()
    with open(os.path.join(args.folder, "manifest.json")) as f:
        manifest = json.load(f)
    projections = manifest["projections"]
    so = library_path(args.folder, manifest, projections["module"])
    functions = {f: info for f, info in projections["functions"].items() if args.only in f}
    rows = [int(m) for m in args.rows.split(",")]
    for function, info in functions.items():
        p = case_plan(info, 1)
        print(f"{function}: N {info['N']}, K {info['K']}, {p['weight_bytes'] / 1e6:.1f} MB of "
              f"weights, M = {', '.join(map(str, rows))}", flush=True)
    if args.dry_run:
        return 0

    import torch

    import device_abi
    from bench_gpu import copy_rate

    out_dir = os.environ.get("OUT") or "."
    torch.manual_seed(0)
    library, runtime = device_abi.load(so), device_abi.runtime(so)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "copy_gbps": copy_rate() / 1e9, "results": []}
    print(f"{results['device']}: copy {results['copy_gbps']:.0f} GB/s", flush=True)
    for function, info in functions.items():
        for m in rows:
            row = run_case(torch, library, runtime, function, info, m, results["copy_gbps"])
            results["results"].append(row)
            print(line(row), flush=True)
            with open(os.path.join(out_dir, "bench-linear-gpu.json"), "w") as f:
                json.dump(results, f, indent=1)
            gc.collect()  # the case's tensors and graphs, before the next case's
            torch.cuda.empty_cache()
    summary = table(results)
    with open(os.path.join(out_dir, "bench-linear-gpu-table.txt"), "w") as f:
        f.write(summary + "\n")
    print("\n" + summary)
    failed = [r for r in results["results"] if "ours_s" not in r or "ours_error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
