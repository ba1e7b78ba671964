#!/usr/bin/python3
"""CPU benchmark of GPTQ int4 projections: ``y = x W^T``, W ``[N, K]`` = 14336 x 4096 in GPTQ
(groups of 128, both word orders), x bf16 of 1, 4, 8 and 15 rows by default (decode batches;
``--rows 16,64,512`` for prefill sizes), against what a user would run instead on the same
machine in the same run:

* attn's own projection of the same shape with bf16 weights (the unquantised layer);
* numpy's ``x @ W^T`` in f32 (OpenBLAS sgemm / sgemv);
* ggml's CPU ``mul_mat`` of the same shape in Q4_0 and Q4_K, llama.cpp's 4-bit formats
  (``--ggml DIR``, built from its public source outside this repository, as for
  ``bench_gguf.py``). They are other encodings of about the same size (4.5 bits a weight
  against GPTQ's 4.125 + f16 scales, 4.25), and ggml multiplies 8-bit-rounded activations.

``--sections layer``: the Llama-3-8B attention layer's decode steps (1 and 8 sequences of 512
cached tokens, ``bench_gguf.LAYER_STEPS``) with GPTQ q, k, v and o weights (both word orders)
against the same layer with bf16 weights and with Q4_K weights (attn's int8 kernel, f32
activations).

Every output is checked before timing: attn's GPTQ and bf16 against the f64 product of the
reference's decoded weights (bf16 tolerance of ``bench_cpu``), and both word orders bit for bit
against each other; ggml against the f32 product of its own weights' decoding (``bench_gguf``'s
tolerance for its 8-bit activations). Times are medians (``bench_cpu.Timer``; ggml's harness
its own median).

    /usr/bin/python3 benchmarks/cpu/bench_gptq.py [--ggml DIR] [--rows 1,4,8,15] [--mcpu CPU]
        [--sections matvec,layer] [--threads 2] [--quick] [--json F]
"""

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE]

import bench_cpu as bc  # noqa: E402
import bench_gguf  # noqa: E402
from bench_cpu import ir, ref  # noqa: E402

K, N, GROUP = bench_gguf.K, bench_gguf.N, 128
LAYOUTS = ("checkpoint", "column_blocks")
GGML_TYPES = ("q4_0", "q4_k")


def matvec_section(args, timer, compiler, exe, results, work):
    """The projection alone at each of ``args.rows``; returns the table's rows."""
    from attn import runtime as rt

    rng = np.random.default_rng(11)
    quant = {"kind": "gptq", "group_size": GROUP}
    parts = {"checkpoint": ir.random_quantized_weight(rng, quant, N, K)}
    parts["column_blocks"] = {name: np.ascontiguousarray(ref.gptq_column_blocks(part))
                              for name, part in parts["checkpoint"].items()}
    w64 = ir.reference_quantized_weight(quant, parts["checkpoint"]).decode()  # [N, K] f64
    w_bf16 = rt.to_abi(w64, "bf16")
    w32 = bc.vals(w_bf16, "bf16").astype(np.float32)
    ggml_weights = {t: ref.random_gguf_weight(rng, t, N, K, K ** -0.5) for t in GGML_TYPES}
    ggml_w32 = {t: bench_gguf.decoded(w) for t, w in ggml_weights.items()}
    libs = {layout: compiler.library(f"gptq-{layout}", ir.module_text(
        ir.quantized_linear_function("linear", dict(quant, layout=layout), K, N, "bf16")))
        for layout in LAYOUTS}
    libs["bf16"] = compiler.library("bf16", ir.module_text(
        ir.linear_function("linear", bc.layer_config("bf16"), K, N)))
    table = []
    for m in map(int, args.rows.split(",")):
        x = rt.to_abi(rng.standard_normal((m, K)), "bf16")
        xv = bc.vals(x, "bf16")
        times, outputs = {}, {}
        for name, lib in libs.items():
            weights = list(parts[name].values()) if name in parts else [w_bf16]
            y = np.zeros((m, N), np.uint16)

            def call(lib=lib, weights=weights, y=y):
                lib.call("linear", [x, *weights], [y])

            _, first = timer.first(call)
            want = xv @ (w64 if name in parts else bc.vals(w_bf16, "bf16")).T
            bc.check(f"attn {name} M={m}", bc.vals(y, "bf16"), want, bc.tol_of("bf16"))
            outputs[name] = y.copy()
            times[name] = timer.measure(call, first).median
        if not np.array_equal(outputs["checkpoint"], outputs["column_blocks"]):
            raise bc.CheckFailed(f"M={m}: the two word orders differ")
        x32 = xv.astype(np.float32)
        _, first = timer.first(lambda: x32 @ w32.T)
        times["numpy_f32"] = timer.measure(lambda: x32 @ w32.T, first).median
        for t in GGML_TYPES if exe else ():
            timer.settle()
            runs = 3 if args.quick else 30
            y_ggml, times[f"ggml_{t}"] = bench_gguf.ggml_mul_mat(
                exe, t, ggml_weights[t], x32, args.threads, runs, work)
            bc.check(f"ggml {t} M={m}", y_ggml, x32 @ ggml_w32[t].T, bench_gguf.TOL_GGML)
        ours = times["checkpoint"]
        results["cases"].append({"M": m, **{f"{k}_s": v for k, v in times.items()},
                                 **{f"{k}_over_gptq": v / ours for k, v in times.items()}})
        table.append([m, *(bc.fmt_time(v) for v in times.values()),
                      *(f"{times[f'ggml_{t}'] / ours:.2f}x" for t in GGML_TYPES if exe)])
        bc.log(f"M={m}: " + ", ".join(f"{k} {bc.fmt_time(v)}" for k, v in times.items()))
    return table


def layer_section(timer, compiler, results):
    """The Llama-3-8B layer's decode steps: GPTQ (both orders) against bf16 and Q4_K weights."""
    gptq = {"kind": "gptq", "group_size": GROUP}
    cfgs = {"gptq": bench_gguf.llama3_8b_layer("bf16", gptq),
            "gptq_blocks": bench_gguf.llama3_8b_layer("bf16", dict(gptq, layout="column_blocks")),
            "bf16": bench_gguf.llama3_8b_layer("bf16"),
            "q4_k": bench_gguf.llama3_8b_layer("f32", {"kind": "gguf", "type": "q4_k"})}
    table = []
    for step, times in bench_gguf.time_layer_steps(compiler, timer, cfgs).items():
        results["layer"].append({"step": step, **{f"{n}_s": t for n, t in times.items()},
                                 "bf16_over_gptq": times["bf16"] / times["gptq"]})
        table.append([step, *(bc.fmt_time(t) for t in times.values()),
                      f"{times['bf16'] / times['gptq']:.2f}x"])
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ggml", help="ggml source folder with its build in DIR/build")
    parser.add_argument("--rows", default="1,4,8,15")
    parser.add_argument("--mcpu", help="attn-compile --mcpu (e.g. x86-64-v3 for AVX2)")
    parser.add_argument("--sections", default="matvec,layer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    bc.use_threads(args.threads)
    timer = bc.Timer(args.quick)
    results = {"machine": bc.machine_info(), "threads": args.threads, "mcpu": args.mcpu,
               "cases": [], "layer": []}
    sections = args.sections.split(",")
    with tempfile.TemporaryDirectory(prefix="attn-bench-gptq-") as work:
        compiler = bc.Compiler(work, mcpu=args.mcpu)
        exe = bench_gguf.build_harness(args.ggml, work) if args.ggml else None
        table = (matvec_section(args, timer, compiler, exe, results, work)
                 if "matvec" in sections else [])
        layer_table = layer_section(timer, compiler, results) if "layer" in sections else []
    where = (f"{args.threads} threads, {results['machine']['cpu_model']}"
             + (f", --mcpu={args.mcpu}" if args.mcpu else ""))
    if table:
        print(f"\nGPTQ int4 g{GROUP}, K {K} x N {N}, bf16 x, {where}")
        header = ["M", "gptq", "gptq blocks", "attn bf16", "numpy f32"]
        if exe:
            header += ["ggml q4_0", "ggml q4_k", "q4_0 / gptq", "q4_k / gptq"]
        bc.print_columns(header, table)
    if layer_table:
        print(f"\nLlama-3-8B layer decode steps (512 cached tokens), {where}")
        bc.print_columns(["step", "gptq", "gptq blocks", "bf16", "q4_k", "bf16 / gptq"],
                         layer_table)
    bc.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
