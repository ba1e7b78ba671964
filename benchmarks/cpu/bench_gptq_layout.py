#!/usr/bin/python3
"""CPU benchmark of the GPTQ projection in its two word orders: ``y = x W^T`` with W ``[N, K]`` =
14336 x 4096 in GPTQ int4 (groups of 128), x bf16 of M = 1, 8 and 512 rows, the checkpoint's
``[K/8, N]`` against 32-column blocks (``#attn.gptq<layout = column_blocks>``, the same words
and scales repacked by ``reference.gptq_column_blocks``), in one process.

Both libraries decode the same values in the same order, so their outputs must agree bit for bit
(checked before timing), and the first is checked against ``reference.GPTQWeight`` (relative
error within the bf16 tolerance of ``bench_cpu``). Times are medians (``bench_cpu.Timer``).

    /usr/bin/python3 benchmarks/cpu/bench_gptq_layout.py [--threads 2] [--quick] [--json F]
"""

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE]

import bench_cpu as bc  # noqa: E402
from bench_cpu import ir, ref  # noqa: E402

K, N, GROUP = 4096, 14336, 128
LAYOUTS = ("checkpoint", "column_blocks")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default="1,8,512")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    bc.use_threads(args.threads)
    from attn import runtime as rt

    timer = bc.Timer(args.quick)
    results = {"machine": bc.machine_info(), "threads": args.threads, "cases": []}
    rng = np.random.default_rng(7)
    quant = {"kind": "gptq", "group_size": GROUP}
    parts = {"checkpoint": ir.random_quantized_weight(rng, quant, N, K)}
    parts["column_blocks"] = {name: np.ascontiguousarray(ref.gptq_column_blocks(part))
                              for name, part in parts["checkpoint"].items()}
    decoded = ir.reference_quantized_weight(quant, parts["checkpoint"]).decode()  # [N, K] f64
    table = []
    with tempfile.TemporaryDirectory(prefix="attn-bench-gptq-") as work:
        compiler = bc.Compiler(work)
        libs = {layout: compiler.library(f"gptq-{layout}", ir.module_text(
            ir.quantized_linear_function("linear", dict(quant, layout=layout), K, N, "bf16")))
            for layout in LAYOUTS}
        for m in map(int, args.rows.split(",")):
            x = rt.to_abi(rng.standard_normal((m, K)), "bf16")
            outputs, times = {}, {}
            for layout in LAYOUTS:
                y = np.zeros((m, N), np.uint16)

                def call(lib=libs[layout], p=parts[layout], y=y):
                    lib.call("linear", [x, p["qweight"], p["scales"]], [y])

                _, first = timer.first(call)
                outputs[layout] = y.copy()
                times[layout] = timer.measure(call, first).median
            if not np.array_equal(outputs["checkpoint"], outputs["column_blocks"]):
                raise bc.CheckFailed(f"M={m}: the two layouts' outputs differ")
            checked = min(m, 8)  # rows checked against the float64 reference
            want = bc.vals(x, "bf16")[:checked] @ decoded.T
            bc.check(f"gptq M={m}", bc.vals(outputs["checkpoint"], "bf16")[:checked], want,
                     bc.tol_of("bf16"))
            ratio = times["checkpoint"] / times["column_blocks"]
            results["cases"].append({"M": m, "checkpoint_s": times["checkpoint"],
                                     "column_blocks_s": times["column_blocks"],
                                     "speedup": ratio})
            table.append([m, bc.fmt_time(times["checkpoint"]),
                          bc.fmt_time(times["column_blocks"]), f"{ratio:.2f}x"])
            bc.log(f"M={m}: checkpoint {table[-1][1]}, column blocks {table[-1][2]} ({table[-1][3]})")
    print(f"\nGPTQ int4 g{GROUP}, K {K} x N {N}, bf16 x, {args.threads} threads, "
          f"{results['machine']['cpu_model']}")
    bc.print_columns(["M", "checkpoint", "column blocks", "checkpoint / blocks"], table)
    bc.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
