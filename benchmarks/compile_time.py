#!/usr/bin/python3
"""Compile time of the Llama-3-8B attention layer (issue 19: under 5 s per target).

One module (bf16, hidden 4096, 32 / 8 heads, D 128, page 128, llama3 RoPE) with three public
functions of the same layer:
  layer          the composite ``attn.attention_with_rope`` (``ir.layer_function``)
  layer_fused    the composite expanded and fused (``attn-opt`` with ``--attn-expand-composite``
                 and the fusion passes): ``attn.qkv_projection``, ``attn.rope_store``, ...
  layer_unfused  the composite expanded only: two ``attn.rope``, ``attn.kv_cache_store``, ...
Each target compiles the module twice with ``attn-compile --timing --mlir-timing-display=list``:
with the default pipeline (which fuses ``layer`` and ``layer_unfused`` too) and with
``--no-fuse`` (which lowers the three forms as written). Prints, for the fastest of
``--repeat`` compiles, the wall time, the CPU time (attn-compile and what it runs: ptxas, the
linker; on a loaded machine the steadier number), the load average and the most expensive
phases (passes and the driver's own steps). ``$ATTN_COMPILE`` picks the attn-compile (its
attn-opt beside it writes the module).

    /usr/bin/python3 benchmarks/compile_time.py [--targets cpu,cuda] [--repeat 3] [--top 6]
                                                 [--keep DIR]
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

from attn import ir, runtime  # noqa: E402

LLAMA3 = {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position": 8192}
FUSION_PASSES = ["--attn-fuse-projection-epilogues", "--attn-fuse-qkv", "--attn-fuse-rope-store",
                 "--attn-fuse-qk-norm-rope"]
# Timers of the list display that only add up others.
AGGREGATES = {"root", "Total", "Rest", "Lowering pipeline"}


def llama3_8b():
    return ir.LayerConfig(hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128, dtype="bf16",
                          page_size=128, num_layers=32, layer_idx=0, max_seq_len=8192,
                          rope={"theta": 500000.0, "interleaved": False, "scaling": LLAMA3})


def expanded_function(attn_opt, name, cfg, passes):
    """``ir.layer_function(name)`` after ``attn-opt passes``: the function's text alone."""
    proc = subprocess.run([attn_opt, *passes], input=ir.module_text(ir.layer_function(name, cfg)),
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.strip().splitlines()
    if lines[0] != "module {" or lines[-1] != "}":
        raise RuntimeError(f"unexpected attn-opt output:\n{proc.stdout}")
    return "\n".join(lines[1:-1]) + "\n"


def compile_time_module(attn_opt, cfg):
    expand = ["--attn-expand-composite"]
    return ir.module_text(ir.layer_function("layer", cfg),
                          expanded_function(attn_opt, "layer_fused", cfg, expand + FUSION_PASSES),
                          expanded_function(attn_opt, "layer_unfused", cfg, expand))


def phases(report):
    """(seconds, name) of each timer in an ``--mlir-timing-display=list`` report."""
    found = []
    for line in report.splitlines():
        # "user (%)  wall (%)  name" when passes ran on threads, else "wall (%)  name".
        match = re.match(r"(?:\s*[\d.]+ \(\s*[\d.]+%\))*\s*([\d.]+) \(\s*[\d.]+%\)\s+(.+?)\s*$",
                         line)
        if match and match.group(2) not in AGGREGATES and not match.group(2).startswith(
                ("Pipeline Collection", "'")):
            found.append((float(match.group(1)), match.group(2)))
    return sorted(found, reverse=True)


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compile_once(tool, src, target, flags, out, timing):
    """(wall s, CPU s of attn-compile and the programs it ran, phases of its report)."""
    report = ["--timing", "--mlir-timing-display=list"] if timing else []
    cmd = [tool, f"--target={target}", *report, *flags, src, "-o", out]
    cpu, start = children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu
    if proc.returncode != 0:
        raise runtime.CompileError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return wall, cpu, phases(proc.stderr)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        models = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.M)
    return f"{models[0] if models else '?'}, {len(models)} logical CPUs"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="cpu,cuda")
    parser.add_argument("--top", type=int, default=6, help="phases shown per compile")
    parser.add_argument("--repeat", type=int, default=3,
                        help="compiles of each kind; the fastest is shown (others' load only adds)")
    parser.add_argument("--no-timing", action="store_true",
                        help="no phases (for an attn-compile without --timing)")
    parser.add_argument("--keep", help="write the module and libraries here")
    args = parser.parse_args()
    tool = runtime.attn_compile_path()
    attn_opt = os.path.join(os.path.dirname(tool), "attn-opt")
    work = args.keep or tempfile.mkdtemp(prefix="attn-compile-time-")
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "llama3_8b_layer_forms.mlir")
    with open(src, "w") as f:
        f.write(compile_time_module(attn_opt, llama3_8b()))
    print(f"module: {src}\nmachine: {cpu_model()}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'target':6} {'pipeline':8} {'wall s':>7} {'CPU s':>6} {'load':>5}  top phases (s)")
    for target in args.targets.split(","):
        for pipeline, flags in (("default", []), ("no-fuse", ["--no-fuse"])):
            out = os.path.join(work, f"{target}-{pipeline}.so")
            runs = [compile_once(tool, src, target, flags, out, not args.no_timing) for _ in range(args.repeat)]
            wall, cpu, timers = min(runs, key=lambda run: run[0])
            top = ", ".join(f"{name} {sec:.2f}" for sec, name in timers[:args.top])
            print(f"{target:6} {pipeline:8} {wall:7.2f} {cpu:6.2f} {os.getloadavg()[0]:5.2f}  {top}",
                  flush=True)


if __name__ == "__main__":
    main()
