#!/usr/bin/env python3
"""GPU benchmark: the compiled flash attention (``build_bench.py``'s libraries) against PyTorch
``scaled_dot_product_attention`` on its flash and cuDNN backends, measured in one process.

    python3 benchmarks/gpu/bench_gpu.py build/bench-gpu

Sections (bf16, Hq 32, Hkv 8, D 128):
  ceiling  device-to-device copy of 1 GiB (``Tensor.copy_``), GB/s counting read + write.
  prefill  one sequence of S in {1024, 4096, 8192}, causal and no mask: compiled
           ``flash_attention`` over explicit K/V vs SDPA (``enable_gqa=True``). TFLOP/s of
           ``4 * S^2 * Hq * D`` (half of it for causal).
  decode   one new token per sequence over B x L in {64 x 4096, 8 x 32768}: compiled
           ``paged_flash_attention`` (page 128, shuffled pages) and ``flash_attention`` over
           explicit ragged K/V, vs SDPA on contiguous K/V of the same size. GB/s of the K and V
           bytes read, and the ratio to the copy rate.

Every compiled result is checked against SDPA's flash output (max|out - sdpa| / max|sdpa|,
printed; over 2e-2 it is not timed); inputs are random, never zeros.

Timing: the compiled library launches on a stream of its own (not PyTorch's) and returns
after synchronising it, so CUDA events recorded on PyTorch's stream (``do_bench``) would not
bracket its kernels. The rates therefore come from the kernel time that CUPTI records
(``torch.profiler``, any stream), per call, over back-to-back calls, for every candidate
alike; the median wall time of one synchronised call is recorded too (``*_host_s``: launch
and synchronisation add ~10-30 us). Small inputs rotate over several sets so that each call
reads from device memory, not from the L2 cache.

Output: a short table last; ``bench-gpu.json`` (all numbers) and ``gpu-prefill.png``
(TFLOP/s vs S) in ``$OUT`` if set, else the current folder.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "test", "gpu"))

import device_abi  # noqa: E402

HQ, HKV, D = 32, 8, 128
PAGE = 128
PREFILL_S = (1024, 4096, 8192)
DECODE_BL = ((64, 4096), (8, 32768))
ERR_TOL = 2e-2  # bf16 (as the GPU tests)
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
DEV = torch.device("cuda")


# ---------------------------------------------------------------------------------------------
# Timing


def event_us(torch, call, calls):
    """GPU time per call of ``calls`` back-to-back calls on the current stream (CUDA events),
    in us: the throughput time, which overlaps consecutive calls where they allow."""
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        call()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) * 1e3 / calls


def time_calls(calls, min_runs=10, budget_s=1.0):
    """``(kernel_s, host_s)`` of a candidate, ``calls`` running it on rotating input sets.

    kernel_s: the GPU time per call: the time during which at least one of its kernels runs
    (CUPTI, through torch.profiler, which sees kernels on any stream), the mean over
    back-to-back calls. It is the sum of the kernels' times where they do not overlap; kernels
    launched early (dependent launch) or on several streams overlap, and are counted once.
    host_s: the median wall time of one call that ends synchronised (what a caller of the
    synchronous library waits). Both after one warm-up call per input set.
    """
    from torch.profiler import ProfilerActivity, profile

    warnings.filterwarnings("ignore", message=".*Profiler clears events")  # one cycle: fine
    for call in calls:
        call()
    torch.cuda.synchronize()
    times = []
    while len(times) < min_runs or (sum(times) < budget_s and len(times) < 200):
        start = time.perf_counter()
        calls[len(times) % len(calls)]()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    runs = min(len(times), 50)
    if os.environ.get("ATTN_BENCH_UNDER_NCU"):
        # ncu holds the profiling interface: time the same calls by wall clock only.
        return statistics.median(times), statistics.median(times)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(runs):
            calls[i % len(calls)]()
        torch.cuda.synchronize()
    kernel_us = busy_us(prof)
    assert kernel_us > 0, "the profile holds no GPU kernels"
    return kernel_us * 1e-6 / runs, statistics.median(times)


def kernel_times(calls, runs=20):
    """{kernel name: mean microseconds per call} of ``calls`` (rotating, after a warm-up call
    each; CUPTI through torch.profiler), largest first: where a step's kernel time goes.
    Kernels that overlap (dependent launch) are each counted whole."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    for call in calls:
        call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(runs):
            calls[i % len(calls)]()
        torch.cuda.synchronize()
    totals = {}
    for e in prof.events():
        if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start:
            totals[e.name] = totals.get(e.name, 0.0) + e.time_range.end - e.time_range.start
    return dict(sorted(((name, t / runs) for name, t in totals.items()), key=lambda kv: -kv[1]))


def busy_us(prof):
    """Microseconds during which at least one GPU kernel of the profile ran."""
    from torch.autograd import DeviceType

    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start)
    busy, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy


def input_sets(bytes_per_set):
    """How many input sets to rotate through so that a set has left the L2 cache when it
    comes back (at most 8)."""
    l2 = torch.cuda.get_device_properties(DEV).L2_cache_size
    return int(min(8, 1 + 3 * l2 // bytes_per_set))


# ---------------------------------------------------------------------------------------------
# Candidates


def randn(*shape):
    return torch.randn(*shape, device=DEV, dtype=torch.bfloat16)


def rel_err(got, want):
    want = want.float()
    return float((got.float() - want).abs().max() / want.abs().max())


def sdpa_call(backend, q, k, v, causal):
    """``(fn, note)``: SDPA on one backend with GQA. A backend that refuses ``enable_gqa`` runs
    on K/V repeated to every query head instead (noted: it then reads 4x the K/V bytes)."""
    def make(kk, vv, gqa):
        def fn():
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, kk, vv, is_causal=causal,
                                                      enable_gqa=gqa)
        return fn

    try:
        fn = make(k, v, True)
        fn()
        return fn, ""
    except RuntimeError as e:
        group = q.shape[1] // k.shape[1]
        fn = make(k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), False)
        fn()
        return fn, f"kv expanded (enable_gqa refused: {str(e).splitlines()[0][:80]})"


class Compiled:
    """The benchmark libraries of ``build_bench.py``, by function name."""

    def __init__(self, folder):
        with open(os.path.join(folder, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.folder, self.libraries = folder, {}

    def function(self, name):
        """The DeviceFunction, or raises with the build error."""
        module = self.manifest["functions"][name]["module"]
        info = self.manifest["modules"][module]
        if not info["ok"]:
            last = (info["error"].splitlines() or ["?"])[-1]
            raise RuntimeError(f"{module}.so not built: {last}")
        if module not in self.libraries:
            self.libraries[module] = device_abi.load(os.path.join(self.folder, info["so"]))
        return device_abi.DeviceFunction(self.libraries[module], name)


def measure(row, label, calls, check=None):
    """Times ``calls`` into ``row[label + "_s"]`` (kernel time) and ``row[label + "_host_s"]``.
    ``check()`` returns the relative error against SDPA, recorded first: a wrong result is not
    timed. A failure is recorded as its error text, and the run goes on."""
    try:
        if check is not None:
            err = row[f"{label}_err"] = check()
            if not err <= ERR_TOL:  # NaN too
                raise ValueError(f"wrong result: max rel err {err:.2e} > {ERR_TOL}")
        row[f"{label}_s"], row[f"{label}_host_s"] = time_calls(calls)
        if not row[f"{label}_s"]:
            raise RuntimeError("the profiler saw no kernel")
    except Exception as e:  # one candidate's failure must not stop the benchmark
        row.pop(f"{label}_s", None)
        row[f"{label}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        print(f"  {label}: {row[f'{label}_error']}", flush=True)


def run_sdpa(row, sets, causal):
    """Times both SDPA backends on ``sets`` of (q, k, v) [batch, heads, seq, D]; returns the
    flash (else cuDNN) output of the first set, the reference of the compiled results."""
    reference = None
    for name, backend in BACKENDS.items():
        try:
            calls, notes = zip(*(sdpa_call(backend, q, k, v, causal) for q, k, v in sets))
        except Exception as e:  # this backend cannot run the case
            row[f"{name}_error"] = str(e).splitlines()[0][:200]
            continue
        if notes[0]:
            row[f"{name}_note"] = notes[0]
        if reference is None:
            reference = calls[0]()
        measure(row, name, calls)
    return reference


def run_compiled(row, label, compiled, name, sets, reference):
    """Checks, then times, the compiled ``name`` on ``sets`` of (inputs, output)."""
    try:
        fn = compiled.function(name)
        calls = [fn.bind(inputs, [out]) for inputs, out in sets]
    except Exception as e:
        row[f"{label}_error"] = str(e).splitlines()[0][:200]
        return
    out = sets[0][1]

    def check():
        out.fill_(float("nan"))
        calls[0]()
        return rel_err(out, reference)

    measure(row, label, calls, check)


def prefill(compiled, s, causal):
    """One prefill case: SDPA backends, then the compiled flash attention."""
    row = {"S": s, "causal": causal, "flop": 4 * s * s * HQ * D * (0.5 if causal else 1.0)}
    n = input_sets(2 * s * (HQ + HKV) * D * 2)
    qkv = [(randn(s, HQ, D), randn(s, HKV, D), randn(s, HKV, D)) for _ in range(n)]
    row["input_sets"] = n
    # SDPA's [1, heads, S, D] views of the same memory.
    reference = run_sdpa(row, [[t.unsqueeze(0).transpose(1, 2) for t in ts] for ts in qkv],
                         causal)
    if reference is not None:
        reference = reference[0].transpose(0, 1)  # [S, Hq, D]
    offsets = torch.tensor([0, s], dtype=torch.int32, device=DEV)
    run_compiled(row, "compiled", compiled, f"prefill_{'causal' if causal else 'none'}",
                 [([q, k, v, offsets, offsets], torch.empty_like(q)) for q, k, v in qkv],
                 reference)
    return row


def decode(compiled, b, length):
    """One decode case: a page-128 cache holding L tokens per sequence, the new token's K/V
    already stored (the query at position L - 1 reads L keys)."""
    row = {"B": b, "L": length, "bytes": 2 * b * length * HKV * D * 2}
    pages = b * length // PAGE
    blocks = randn(pages + 2, 2, 1, PAGE, HKV, D)
    lookup = torch.randperm(pages, device=DEV).view(b, length // PAGE)
    q = randn(b, HQ, D)
    # The same keys and values contiguous, [B, L, Hkv, D] (explicit K/V) and [B, Hkv, L, D].
    k = blocks[lookup, 0, 0].reshape(b, length, HKV, D)
    v = blocks[lookup, 1, 0].reshape(b, length, HKV, D)
    sdpa_kv = (k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous())
    reference = run_sdpa(row, [(q.unsqueeze(2), *sdpa_kv)], False)
    if reference is not None:
        reference = reference[:, :, 0]  # [B, Hq, D]
    del sdpa_kv
    i32 = torch.int32
    rows = torch.arange(b + 1, dtype=i32, device=DEV)
    lengths = torch.full((b,), length - 1, dtype=i32, device=DEV)
    run_compiled(row, "paged", compiled, "decode_paged",
                 [([q, rows, blocks, lengths, lookup.to(i32)], torch.empty_like(q))], reference)
    run_compiled(row, "explicit", compiled, "decode_flash",
                 [([q, k.view(-1, HKV, D), v.view(-1, HKV, D), rows, rows * length],
                   torch.empty_like(q))], reference)
    return row


def copy_rate():
    """Device-to-device copy of 1 GiB: bytes read + written per second (kernel time; NaN
    where no kernel time is recorded, as under a profiler)."""
    src = randn(1 << 29)
    dst = torch.empty_like(src)
    seconds, _ = time_calls([lambda: dst.copy_(src)])
    return 2 * src.numel() * src.element_size() / seconds if seconds > 0 else math.nan


# ---------------------------------------------------------------------------------------------
# Report


def fmt(row, label, scale):
    """``row[label]`` as a rate (``scale`` / seconds), or its error as n/a."""
    s = row.get(f"{label}_s")
    return f"{scale / s:9.1f}" if s else f"{'n/a':>9}"


def table(results):
    dev, copy = results["device"], results["copy_gbps"]
    lines = [f"GPU benchmark on {dev} (torch {results['torch']}); copy {copy:.0f} GB/s",
             "prefill bf16 Hq32 Hkv8 D128   TFLOP/s: compiled  sdpa-flash  cudnn   "
             "compiled/best  err",
             "-" * 88]
    for r in results["prefill"]:
        # The fastest baseline: the least time.
        best = min((r[f"{n}_s"] for n in BACKENDS if r.get(f"{n}_s")), default=None)
        ratio = f"{best / r['compiled_s']:6.2f}x" if best and r.get("compiled_s") else "   n/a"
        err = f"{r['compiled_err']:.1e}" if "compiled_err" in r else "n/a"
        lines.append(f"  {'causal' if r['causal'] else 'none':6} S={r['S']:<5}"
                     f"{'':17}{fmt(r, 'compiled', r['flop'] / 1e12)}  "
                     f"{fmt(r, 'flash', r['flop'] / 1e12)}  {fmt(r, 'cudnn', r['flop'] / 1e12)}"
                     f"   {ratio}      {err}")
    lines += ["decode bf16 page128     GB/s: paged  explicit  sdpa-flash  cudnn  paged/copy  "
              "err(paged, explicit)", "-" * 88]
    for r in results["decode"]:
        gb = r["bytes"] / 1e9
        ratio = f"{r['bytes'] / r['paged_s'] / 1e9 / copy:6.2f}" if r.get("paged_s") else "   n/a"
        errs = ", ".join(f"{r[f'{n}_err']:.1e}" if f"{n}_err" in r else "n/a"
                         for n in ("paged", "explicit"))
        lines.append(f"  B={r['B']:<3} L={r['L']:<6}{'':8}{fmt(r, 'paged', gb)}"
                     f"{fmt(r, 'explicit', gb)}{fmt(r, 'flash', gb)}{fmt(r, 'cudnn', gb)}"
                     f"   {ratio}     {errs}")
    return "\n".join(lines)


def plot(results, path):
    """TFLOP/s vs S for each candidate, causal and no mask side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, causal in zip(axes, (True, False)):
        rows = [r for r in results["prefill"] if r["causal"] == causal]
        for label, name in (("compiled", "attn-compile"), ("flash", "SDPA flash"),
                            ("cudnn", "SDPA cuDNN")):
            pts = [(r["S"], r["flop"] / r[f"{label}_s"] / 1e12) for r in rows
                   if r.get(f"{label}_s")]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set(title=f"prefill, {'causal' if causal else 'no mask'}", xlabel="S",
               xscale="log", xticks=list(PREFILL_S), xticklabels=[str(s) for s in PREFILL_S])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("TFLOP/s (bf16, Hq 32, Hkv 8, D 128)")
    axes[0].legend()
    fig.suptitle(results["device"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="build_bench.py's output folder")
    args = parser.parse_args()
    out = os.environ.get("OUT") or "."
    torch.manual_seed(0)
    compiled = Compiled(args.dir)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "method": "rates from kernel time (CUPTI, mean per call); *_host_s: median "
                         "wall time of a synchronised call", "copy_gbps": copy_rate() / 1e9,
               "prefill": [], "decode": []}
    print(f"{results['device']}: copy {results['copy_gbps']:.0f} GB/s", flush=True)

    def save():  # after every case, so that a crash keeps what was measured
        with open(os.path.join(out, "bench-gpu.json"), "w") as f:
            json.dump(results, f, indent=1)

    for causal in (True, False):
        for s in PREFILL_S:
            results["prefill"].append(prefill(compiled, s, causal))
            print(f"prefill causal={causal} S={s}: done", flush=True)
            save()
    for b, length in DECODE_BL:
        results["decode"].append(decode(compiled, b, length))
        print(f"decode B={b} L={length}: done", flush=True)
        save()
    plot(results, os.path.join(out, "gpu-prefill.png"))
    summary = table(results)
    with open(os.path.join(out, "bench-gpu-table.txt"), "w") as f:
        f.write(summary + "\n")
    print(summary)
    failed = [k for r in results["prefill"] + results["decode"] for k in r
              if k.startswith(("compiled", "paged", "explicit")) and k.endswith("_error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
