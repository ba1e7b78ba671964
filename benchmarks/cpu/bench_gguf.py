#!/usr/bin/python3
"""CPU benchmark of GGUF projections: ``y = x W^T`` with W ``[N, K]`` = 14336 x 4096 in Q4_0, Q8_0,
Q4_K and Q6_K, x f32 of M = 1 and 512 rows, against ggml's own CPU kernels in the same run; and
the Llama-3-8B layer's decode step with Q4_K weights against the same layer in f32 and bf16.

ggml is an outside baseline: build it from its public source outside this repository and pass
its folder (``--ggml DIR``: ``DIR/include`` and the libraries under ``DIR/build``);
``ggml_mul_mat.c`` (this folder) is compiled against it and times ``ggml_mul_mat`` on the same
bytes with the same number of threads. Without ``--ggml`` only attn's kernels are timed.

Checks before timing: attn's output against the reference of the mode its kernel implements
(``reference.GGUFWeight``: the f32 product of the decoding, or for Q4_K / Q6_K with few rows the
int8 product of Q8_K activations, ``apply_q8``; relative error <= 1e-4 of max|y|); ggml's (it
rounds x to 8-bit blocks, Q8_0 / Q8_K) against the f32 product <= 2e-2; each layer's output against ``ir.reference_layer`` (1e-4, bf16
2e-2). Times are medians (``bench_cpu.Timer`` for attn, the median of
the harness's runs for ggml).

    /usr/bin/python3 benchmarks/cpu/bench_gguf.py [--ggml DIR] [--threads 2] [--quick] [--json F]
"""

import argparse
import glob
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
# Decode steps of the layer section: (cached, new) tokens per sequence.
LAYER_STEPS = {"decode-1": ([512], [1]), "decode-8": ([512] * 8, [1] * 8)}
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


def llama3_8b_layer(dtype, quant=None):
    """The Llama-3-8B attention layer (as bench_fusion.py) in ``dtype``, weights ``quant``."""
    return ir.LayerConfig(hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128, dtype=dtype,
                          page_size=128, num_layers=1, layer_idx=0, max_seq_len=1024,
                          rope={"theta": 500000.0, "interleaved": False, "scaling": None},
                          quant=quant)


def time_layer_steps(compiler, timer, cfgs, steps=LAYER_STEPS):
    """``{step: {name: median seconds}}`` of the layer ``cfgs[name]`` on each decode step of
    ``steps``, every output checked against the reference first."""
    libs = {name: compiler.library(f"layer-{name}", ir.module_text(ir.layer_function("f", cfg)))
            for name, cfg in cfgs.items()}
    times = {}
    for step, (cached, new) in steps.items():
        times[step] = {}
        for name, cfg in cfgs.items():
            inputs = ir.random_layer_inputs(np.random.default_rng(8), cfg, cached, new)
            want, _ = ir.reference_layer(cfg, inputs)
            out = np.zeros((sum(new), cfg.hidden), np.uint16 if cfg.dtype == "bf16" else
                           np.float32)

            def call(lib=libs[name], inputs=inputs, out=out):
                lib.call("f", list(inputs.values()), [out])

            _, first = timer.first(call)
            bc.check(f"layer {name} {step}", bc.vals(out, cfg.dtype), want,
                     bc.tol_of(cfg.dtype))
            times[step][name] = timer.measure(call, first).median
        bc.log(f"layer {step}: " + ", ".join(f"{name} {bc.fmt_time(t)}"
                                             for name, t in times[step].items()))
    return times


def layer_section(compiler, timer, results, table):
    """Decode steps of the Q4_K layer against f32 and bf16 (time ratios: f32 / Q4_K etc.)."""
    cfgs = {"q4_k": llama3_8b_layer("f32", {"kind": "gguf", "type": "q4_k"}),
            "f32": llama3_8b_layer("f32"), "bf16": llama3_8b_layer("bf16")}
    for step, times in time_layer_steps(compiler, timer, cfgs).items():
        ratios = {f"{other}_over_q4_k": times[other] / times["q4_k"] for other in ("f32", "bf16")}
        results["layer"].append({"step": step, **{f"{n}_s": t for n, t in times.items()},
                                 **ratios})
        table.append([f"layer {step}", "", bc.fmt_time(times["q4_k"]),
                      f"f32 {bc.fmt_time(times['f32'])}", f"{ratios['f32_over_q4_k']:.2f}x",
                      f"bf16 {bc.fmt_time(times['bf16'])}", f"{ratios['bf16_over_q4_k']:.2f}x"])


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ggml", help="ggml source folder with its build in DIR/build")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--types", default=",".join(GGML_TYPE_IDS))
    parser.add_argument("--rows", default="1,512")
    parser.add_argument("--sections", default="matvec,layer")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    bc.use_threads(args.threads)
    timer = bc.Timer(args.quick)
    results = {"machine": bc.machine_info(), "threads": args.threads, "cases": [], "layer": []}
    table, layer_table = [], []
    sections = args.sections.split(",")
    with tempfile.TemporaryDirectory(prefix="attn-bench-gguf-") as work:
        compiler = bc.Compiler(work)
        exe = build_harness(args.ggml, work) if args.ggml else None
        for gguf_type in args.types.split(",") if "matvec" in sections else []:
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
                # The mode attn's kernel implements (int8 on Q8_K activations for few rows).
                want_attn = weight.apply_q8(x) if weight.uses_q8(m) else want
                y = np.zeros((m, N), np.float32)

                def call(x=x, y=y):
                    lib.call("linear", [x, blocks], [y])

                _, first = timer.first(call)
                bc.check(f"attn {gguf_type} M={m}", y, want_attn, TOL_ATTN)
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
        if "layer" in sections:
            layer_section(compiler, timer, results, layer_table)
    print()
    if table:
        print_table(["type", "M", "attn", "ggml", "attn speedup"][: len(table[0])], table)
    if layer_table:
        print_table(["layer step", "", "q4_k", "f32", "f32 / q4_k", "bf16", "bf16 / q4_k"],
                    layer_table)
    bc.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
