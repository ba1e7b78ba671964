#!/usr/bin/python3
"""CPU cost of the run-time input checks (docs/ABI.md, "Status") on decode steps of the
Llama-3-8B layer (bf16, hidden 4096, 32 q / 8 kv heads, D 128, page 128, ``ir.layer_function``):
the same layer compiled with the checks (the default) and with ``--no-runtime-checks``, calls
interleaved; and the checks alone, timed as a call whose RoPE position check (the last one)
fails, so that every check runs and no work follows (status 5, the lookup table being too narrow
too: all conditions are computed before the first is acted on). Steps: B sequences x 1 token, cache lengths
spread over [1000, 8000), for B in 1, 8, 32. Before timing, both libraries' outputs and caches
must be bit-identical.

    /usr/bin/python3 benchmarks/cpu/bench_input_checks.py [--quick] [--json out.json]
"""

import argparse
import os
import statistics
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import bench_cpu as bc  # noqa: E402
import bench_rope_table as brt  # noqa: E402
from bench_cpu import ir, rt  # noqa: E402

BATCHES = (1, 8, 32)


def step_arrays(cfg, batch):
    cached = list(np.linspace(1000, 7999, batch).astype(int))
    inputs = ir.random_layer_inputs(np.random.default_rng(batch), cfg, cached, [1] * batch)
    out = np.zeros((batch, cfg.hidden), dtype=np.uint16)
    return inputs, out


def past_rope_table(inputs, cfg):
    """A copy of ``inputs`` whose first sequence's new token is past the RoPE table (and its
    lookup-table row): every check runs (they all do before any acts), then the call returns."""
    bad = {name: array.copy() for name, array in inputs.items()}
    bad["cache_lengths"][0] = cfg.max_seq_len
    return bad


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    cfg = brt.llama3_8b()
    timer = bc.Timer(args.quick)
    results = {"machine": bc.machine_info(), "config": "Llama-3-8B layer decode, bf16",
               "cases": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="attn-bench-input-checks-") as work:
        text = ir.module_text(ir.layer_function("f", cfg))
        libs = {"checked": bc.Compiler(work).library("checked", text),
                "unchecked": bc.Compiler(work, extra_args=["--no-runtime-checks"]).library(
                    "unchecked", text)}
        for batch in BATCHES:
            inputs, out = step_arrays(cfg, batch)
            calls, results_of = {}, {}
            for name, lib in libs.items():
                arrays = {k: v.copy() for k, v in inputs.items()}
                result = out.copy()
                calls[name] = brt.bound_call(lib, [*arrays.values(), result])
                calls[name]()  # the checked call, also the warm-up
                results_of[name] = (result, arrays["blocks"])
            for a, b in zip(*results_of.values()):
                if not np.array_equal(a, b):
                    raise bc.CheckFailed(f"B={batch}: checked and unchecked results differ")
            bad = past_rope_table(inputs, cfg)
            calls["checks alone"] = brt.bound_call(libs["checked"], [*bad.values(), out.copy()])
            wall, cpu = brt.interleaved_runs(timer, calls, 0.5 if args.quick else 6.0)
            med = {v: statistics.median(wall[v]) for v in calls}
            cost = med["checked"] / med["unchecked"] - 1
            results["cases"].append({"batch": batch, "wall_s": wall, "cpu_s": cpu})
            rows.append((batch, bc.fmt_time(med["unchecked"]), bc.fmt_time(med["checked"]),
                         f"{100 * cost:+.2f}%", bc.fmt_time(med["checks alone"]),
                         f"{100 * med['checks alone'] / med['unchecked']:.3f}%"))
            bc.log(f"B={batch}: {len(wall['checked'])} runs each")
    print()
    print("median wall time per decode step")
    bc.print_columns(("B", "unchecked", "checked", "difference", "checks alone",
                      "checks / step"), rows)
    bc.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
