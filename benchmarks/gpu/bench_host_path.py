#!/usr/bin/env python3
"""Where a call's wall time goes, on the GPU machine: the Llama-3-8B layer of
``build_bench_layer.py`` (or MODEL, bf16) at decode 8 x 512 (or SEQSxCACHED, or pT: prefill of
T tokens), the median of 300 calls each of (a) the call then a synchronisation (wall), (b) the
call alone (the host's enqueue time: ctypes, the generated host code, the runtime's driver
calls), and the kernel time (CUPTI), before and after a torch.profiler session (which the other
benchmarks use: it does not slow later calls); then one call's kernels on a time line (back to
back, and alone after a synchronisation: its span against the wall time is the host's share).

    python3 benchmarks/gpu/bench_host_path.py [folder] [SEQSxCACHED | pT] [MODEL]
                                               # build/bench-layer-gpu 8x512 llama3-8b
"""
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(REPO, d) for d in ("benchmarks/gpu", "test/gpu", "python")]

import torch  # noqa: E402

import device_abi  # noqa: E402
import torch_stack as ts  # noqa: E402
from attn import ir  # noqa: E402

folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build", "bench-layer-gpu")
step = sys.argv[2] if len(sys.argv) > 2 else "8x512"
model = sys.argv[3] if len(sys.argv) > 3 else "llama3-8b"
man = json.load(open(os.path.join(folder, "manifest.json")))
info = man["models"][model]
cfg = ir.LayerConfig(**info["config"])
so = os.path.join(folder, info["module"] + ".so")
lib, rtl = device_abi.load(so), device_abi.runtime(so)
gen = torch.Generator(device="cuda").manual_seed(0)
w = ts.random_weights(cfg, gen)[0]
freqs = torch.from_numpy(ir.rope_table_input(cfg)).cuda()
# SEQSxCACHED: decode, one new token per sequence; pT: prefill of T tokens, one sequence.
if step.startswith("p"):
    seqs, cached, new = 1, 0, int(step[1:])
    print(f"{model} prefill {new}")
else:
    (seqs, cached), new = (int(v) for v in step.split("x")), 1
    print(f"{model} decode {seqs} x {cached}")
tokens = seqs * new
blocks, lookup = ts.random_cache(cfg, [cached + new] * seqs, gen)
x = torch.randn((tokens, cfg.hidden), generator=gen, device="cuda").to(torch.bfloat16)
lengths = torch.full((seqs,), cached, dtype=torch.int32, device="cuda")
offsets = torch.arange(0, tokens + 1, new, dtype=torch.int32, device="cuda")
out = torch.empty((tokens, cfg.hidden), dtype=torch.bfloat16, device="cuda")
call = device_abi.DeviceFunction(lib, "layer").bind([x, offsets, blocks, lengths, lookup, *w.values(), freqs], [out])
def wall(n=300):
    t = []
    for _ in range(n):
        s = time.perf_counter(); call(); torch.cuda.synchronize(); t.append(time.perf_counter() - s)
    e = []
    for _ in range(n):
        s = time.perf_counter(); call(); e.append(time.perf_counter() - s); torch.cuda.synchronize()
    return statistics.median(t) * 1e6, statistics.median(e) * 1e6
for _ in range(20): call()
torch.cuda.synchronize()
print("before profiler: wall %.1f us, enqueue %.1f us" % wall())
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(20): call()
    torch.cuda.synchronize()
import bench_gpu  # noqa: E402
kernels = [e for e in prof.key_averages() if e.self_device_time_total > 0]
for e in sorted(kernels, key=lambda e: -e.self_device_time_total):
    print("  %-40s %6.1f us" % (e.key[:40], e.self_device_time_total / 20))
print("kernel %.1f us summed, %.1f us busy (overlaps counted once)"
      % (sum(e.self_device_time_total for e in kernels) / 20, bench_gpu.busy_us(prof) / 20))
print("after profiler: wall %.1f us, enqueue %.1f us" % wall())


def call_spans(prof, calls):
    """Each call's kernels as sorted (start, end, name), in us."""
    from torch.autograd import DeviceType
    spans = sorted((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                   if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start)
    per_call = len(spans) // calls
    return [spans[i * per_call:(i + 1) * per_call] for i in range(calls)]


def timeline(kernels):
    """One call's kernels (start, end) from the first one's start, in us; returns its span."""
    t0, end = kernels[0][0], kernels[0][0]
    print("kernel, start, end, GPU idle before it (us)")
    idle = 0.0
    for start, stop, name in kernels:
        gap = max(0.0, start - end)
        idle += gap
        print("  %-36s %7.1f %7.1f %6.1f" % (name[:36], start - t0, stop - t0, gap))
        end = max(end, stop)
    print("call span %.1f us, idle inside it %.1f us" % (end - t0, idle))
    return end - t0


# Back to back (as the kernel time of the other benchmarks: dependent launch lets a call's
# first kernel start while the previous call's last one runs), then each call alone after a
# synchronisation (as the wall time: its span is the GPU time a synchronised caller waits for).
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(5): call()
    torch.cuda.synchronize()
print("last of 5 back-to-back calls:")
timeline(call_spans(prof, 5)[-1])
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(5):
        torch.cuda.synchronize()
        call()
    torch.cuda.synchronize()
alone = [max(k[1] for k in c) - c[0][0] for c in call_spans(prof, 5)]
print("the last of 5 synchronised calls:")
timeline(call_spans(prof, 5)[-1])
print("synchronised calls: span median %.1f us; wall %.1f us (median of 300)"
      % (statistics.median(alone), wall()[0]))
