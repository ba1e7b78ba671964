#!/usr/bin/python3
"""CPU benchmark of GGUF projections: ``y = x W^T`` with W ``[N, K]`` = 14336 x 4096 in Q4_0, Q8_0,
Q4_K and Q6_K, x f32 of M = 1 and 512 rows, against ggml's own CPU kernels in the same run.

ggml is an outside baseline: build it from its public source outside this repository and pass
its folder (``--ggml DIR``: ``DIR/include`` and the libraries under ``DIR/build``);
``ggml_mul_mat.c`` (this folder) is compiled against it and times ``ggml_mul_mat`` on the same
bytes with the same number of threads. Without ``--ggml`` only attn's kernels are timed.

Checks before timing: attn's output against the f32 product of the reference decoding
(``reference.GGUFWeight``; relative error <= 1e-4 of max|y|); ggml's (it rounds x to 8-bit
blocks, Q8_0 / Q8_K) <= 2e-2. Times are medians (``bench_cpu.Timer`` for attn, the median of
the harness's runs for ggml).

    /usr/bin/python3 benchmarks/cpu/bench_gguf.py [--ggml DIR] [--threads 2] [--quick] [--json F]
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import bench_cpu as bc  # noqa: E402
from bench_cpu import ir, ref  # noqa: E402

K, N = 4096, 14336
GGML_TYPE_IDS = {"q4_0": 2, "q8_0": 8, "q4_k": 12, "q6_k": 14}
TOL_ATTN, TOL_GGML = 1e-4, 2e-2


def decoded(weight, chunk=1024):
    """The reference's f32 ``W [N, K]``, decoded in row chunks (bounded temporaries)."""
    return np.concatenate([ref.GGUFWeight(weight.gguf_type, weight.blocks[r : r + chunk])
                           .decode() for r in range(0, weight.shape[0], chunk)])


def build_harness(ggml_dir, work):
    libs = sorted({os.path.dirname(p) for p in glob.glob(
        os.path.join(ggml_dir, "build", "**", "libggml*.so"), recursive=True)})
    if not libs:
        sys.exit(f"error: no libggml*.so under {ggml_dir}/build")
    exe = os.path.join(work, "ggml_mul_mat")
    cmd = ["cc", "-O2", os.path.join(HERE, "ggml_mul_mat.c"), "-I",
           os.path.join(ggml_dir, "include"), "-o", exe, *[f"-L{d}" for d in libs],
           *[f"-Wl,-rpath,{d}" for d in libs], "-lggml", "-lggml-base", "-lggml-cpu"]
    subprocess.run(cmd, check=True)
    return exe


def ggml_mul_mat(exe, gguf_type, weight, x, threads, runs, work):
    """(y, median seconds) of ggml's mul_mat on the same bytes."""
    paths = [os.path.join(work, name) for name in ("w.bin", "x.bin", "y.bin")]
    weight.blocks.tofile(paths[0])
    np.ascontiguousarray(x, np.float32).tofile(paths[1])
    proc = subprocess.run([exe, str(GGML_TYPE_IDS[gguf_type]), str(K), str(N), str(x.shape[0]),
                           str(threads), str(runs), *paths], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"ggml harness failed: {proc.stderr}")
    y = np.fromfile(paths[2], np.float32).reshape(x.shape[0], N)
    return y, float(proc.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ggml", help="ggml source folder with its build in DIR/build")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--types", default=",".join(GGML_TYPE_IDS))
    parser.add_argument("--rows", default="1,512")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    timer = bc.Timer(args.quick)
    results = {"machine": bc.machine_info(), "threads": args.threads, "cases": []}
    table = []
    with tempfile.TemporaryDirectory(prefix="attn-bench-gguf-") as work:
        compiler = bc.Compiler(work)
        exe = build_harness(args.ggml, work) if args.ggml else None
        for gguf_type in args.types.split(","):
            quant = {"kind": "gguf", "type": gguf_type}
            lib = compiler.library(f"linear-{gguf_type}", ir.module_text(
                ir.quantized_linear_function("linear", quant, K, N, "f32")))
            rng = np.random.default_rng(14)
            weight = ref.random_gguf_weight(rng, gguf_type, N, K, K ** -0.5)
            w32 = decoded(weight)
            blocks = weight.blocks.view(np.int8)
            for m in map(int, args.rows.split(",")):
                x = rng.standard_normal((m, K)).astype(np.float32)
                want = x @ w32.T
                y = np.zeros((m, N), np.float32)

                def call(x=x, y=y):
                    lib.call("linear", [x, blocks], [y])

                _, first = timer.first(call)
                bc.check(f"attn {gguf_type} M={m}", y, want, TOL_ATTN)
                ours = timer.measure(call, first).median
                case = {"type": gguf_type, "M": m, "attn_s": ours}
                row = [gguf_type, m, bc.fmt_time(ours)]
                if exe:
                    timer.settle()
                    runs = 3 if args.quick else (5 if m > 1 else 30)
                    y_ggml, theirs = ggml_mul_mat(exe, gguf_type, weight, x, args.threads, runs,
                                                  work)
                    bc.check(f"ggml {gguf_type} M={m}", y_ggml, want, TOL_GGML)
                    case.update(ggml_s=theirs, speedup=theirs / ours)
                    row += [bc.fmt_time(theirs), f"{theirs / ours:.2f}x"]
                results["cases"].append(case)
                table.append(row)
                bc.log(f"{gguf_type} M={m}: attn {bc.fmt_time(ours)}"
                       + (f", ggml {row[3]} ({row[4]})" if exe else ""))
    print()
    header = ["type", "M", "attn", "ggml", "attn speedup"][: len(table[0])]
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    for r in [header, *table]:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
