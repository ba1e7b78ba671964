#!/usr/bin/env python3
"""GPU benchmark of the quantised-weight GEMVs (``GemvGPTQ.cpp``, ``GemvQuantKernel.cpp``) at
decode sizes, and of the GEMMs above them (GPTQ above 64 rows, 32 from N 10240: ``GemmGPTQWgmma.cpp``, the
decoded weights as wgmma's register operand; float8 above 16: the E4M3 wgmma GEMM) against the bf16 GEMM at prefill sizes: a Llama-3-8B up/gate
projection shape, K 4096 x N 14336, with GPTQ int4 (group 128; ``gptq_blocks``: the same with
its words in 32-column blocks, ``layout = column_blocks``; ``gptq_streaming``: the same weights
through the streaming GEMV, ``GemvGPTQStreaming.cpp``, compiled apart into
``quant_gemv_streaming.so``) and float8 E4M3 (row scales, dynamic input scale) weights, and the
bf16 GEMV of the same shape.

    /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py --build build/bench-quant   # here
    python3 benchmarks/gpu/bench_quant_gemv.py build/bench-quant                    # on the GPU

``--build --shape K,N`` builds another shape (recorded in the folder, read back by the run).

M = 1, 8, 16 (issue 13's goal: GPTQ at M = 1 in <= 11 us, M = 16 within 1.3x of that), with
PyTorch's kernel for each weight in the same run: cuBLAS (``F.linear``) for bf16, the int4
weight kernel (``torch._weight_int4pack_mm``, group 128, zero 0: ``(q - 8) * scale``, the
same weights) for GPTQ, and ``torch._scaled_mm`` with row scales for float8 (x quantised
beforehand and rows padded to 16, as it requires; so its time leaves out the quantisation
that ours includes). Each
result is first checked against ``python/attn/reference.py``'s decoding (set 0, float64,
``max|ours - ref| / max|ref|`` within ``bench_gpu.ERR_TOL``), then timed by CUPTI over calls
rotating through input sets that do not fit the L2 cache together (``bench_gpu.time_calls``).
Rates: the weight bytes as stored (packed words and scales; float8 bytes and scales; bf16)
per kernel second, and their ratio to the measured copy rate. Output: the table, and
``bench-quant-gemv.json`` in ``$OUT`` if set, else the current folder.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(REPO, "test", "gpu"), os.path.join(REPO, "python")]

from attn import ir  # noqa: E402
from attn import runtime as rt  # noqa: E402

K, N = 4096, 14336
ROWS = (1, 8, 16)
# Prefill rows: GPTQ up to 64 rows is its GEMV in 16-row slices (32 from N 10240, so 64 rows of
# the default shape run the GEMM), beyond its wgmma GEMM (128 tokens x 128 features a block),
# float8 the E4M3 wgmma GEMM (64 x 64 tiles up to 64 rows, 128 x 64 up to 128; issue 13's
# goal: >= 0.8 of torch._scaled_mm and >= 1.6x our bf16 GEMM at M >= 2048).
GEMM_ROWS = {"gptq": (64, 512, 2048, 8192), "gptq_blocks": (64, 512, 2048, 8192),
             "gptq_streaming": (32,),
             "float8": (64, 512, 2048, 8192), "bf16": (64, 512, 2048, 8192)}
# Rows of x checked against the float64 reference (all of them up to this many).
CHECKED_ROWS = 64
WEIGHTS = {
    "gptq": {"kind": "gptq", "group_size": 128},
    # The same weights with their words in 32-column blocks (a GEMV block's words contiguous).
    "gptq_blocks": {"kind": "gptq", "group_size": 128, "layout": "column_blocks"},
    "float8": {"kind": "float8", "weight_scale": "row", "input_scale": "dynamic"},
    "bf16": None,
    # The same GPTQ weights through the streaming GEMV (GemvGPTQStreaming.cpp: words loaded
    # straight into registers), compiled apart with --gpu-gptq-gemv=streaming.
    "gptq_streaming": {"kind": "gptq", "group_size": 128},
}
# attn-compile flags of a weight's library (quant_gemv<suffix>.so) other than the default one.
LIBRARY_FLAGS = {"gptq_streaming": ("_streaming", ("--gpu-gptq-gemv=streaming",))}


def library_of(name):
    """(file name suffix, attn-compile flags) of the library holding weight ``name``."""
    return LIBRARY_FLAGS.get(name, ("", ()))


def function_text(name, quant):
    if quant is None:
        cfg = ir.LayerConfig(dtype="bf16")
        return ir.linear_function(name, cfg, in_features=K, out_features=N)
    return ir.quantized_linear_function(name, quant, K, N, "bf16")


def use_shape(folder, shape=""):
    """Sets K and N: from ``shape`` ("K,N") when building (recorded in ``folder/shape.json``),
    else from that record (the default shape for a folder without one)."""
    global K, N
    record = os.path.join(folder, "shape.json")
    if shape:
        K, N = (int(v) for v in shape.split(","))
        with open(record, "w") as f:
            json.dump({"K": K, "N": N}, f)
    elif os.path.isfile(record):
        with open(record) as f:
            saved = json.load(f)
        K, N = saved["K"], saved["N"]


def build(folder, shape=""):
    """Compiles the functions into ``folder/quant_gemv.so`` (with the runtime beside)."""
    os.makedirs(folder, exist_ok=True)
    use_shape(folder, shape)
    libraries = {}
    for name, quant in WEIGHTS.items():
        suffix, flags = library_of(name)
        libraries.setdefault((suffix, flags), []).append(function_text(name, quant))
    for (suffix, flags), functions in libraries.items():
        mlir = os.path.join(folder, f"quant_gemv{suffix}.mlir")
        with open(mlir, "w") as f:
            f.write(ir.module_text(*functions))
        subprocess.run([rt.attn_compile_path(), "--target=cuda", *flags, mlir, "-o",
                        os.path.join(folder, f"quant_gemv{suffix}.so")], check=True)
    shutil.copy2(os.path.join(REPO, "build", "lib", "libattn_cuda_runtime.so"), folder)


def arguments(rng, name, m):
    """(ABI numpy arrays in argument order but x, reference weight, bytes of the weight)."""
    quant = WEIGHTS[name]
    if quant is None:
        w = rt.to_abi(rng.standard_normal((N, K)) / np.sqrt(K), "bf16")
        return [w], np.asarray(rt.from_abi(w, "bf16"), dtype=np.float64), w.nbytes
    parts = ir.random_quantized_weight(rng, quant, N, K)
    arrays = [parts[s] for s in ir.quantized_part_names(quant)]
    return arrays, ir.reference_quantized_weight(quant, parts), sum(a.nbytes for a in arrays)


def torch_call(torch, name, x, arrays):
    """PyTorch's call for weight ``name`` (the same weights) on bf16 ``x``: a function
    returning ``[M, N]``."""
    import torch.nn.functional as F
    from attn import reference as ref

    dev = x.device
    if name == "bf16":
        w = torch.from_numpy(arrays[0].view(np.int16)).to(dev).view(torch.bfloat16)
        return lambda: F.linear(x, w)
    if name.startswith("gptq"):
        words, scales = (a if a.ndim == 2 else ref.gptq_checkpoint_order(a) for a in arrays[:2])
        q = ref.unpack_int4(words).T  # [N, K] nibbles
        pairs = torch.from_numpy(np.ascontiguousarray(((q[:, ::2] << 4) | q[:, 1::2]).astype(np.uint8))).to(dev)
        packed = torch._convert_weight_to_int4pack(pairs, 8)
        scales = torch.from_numpy(scales.astype(np.float32)).to(dev)
        scale_zero = torch.stack([scales, torch.zeros_like(scales)], -1).to(torch.bfloat16)
        return lambda: torch._weight_int4pack_mm(x, packed, WEIGHTS["gptq"]["group_size"],
                                                 scale_zero)
    w8 = torch.from_numpy(arrays[0]).to(dev).view(torch.float8_e4m3fn)
    scale_w = torch.from_numpy(arrays[1]).to(dev).view(1, -1)
    rows = -(-x.shape[0] // 16) * 16
    xp = torch.zeros((rows, K), dtype=torch.float32, device=dev)
    xp[: x.shape[0]] = x.float()
    scale_x = (xp.abs().amax(1, keepdim=True) / 448).clamp(min=1e-12)
    x8 = (xp / scale_x).to(torch.float8_e4m3fn)
    m = x.shape[0]
    return lambda: torch._scaled_mm(x8, w8.t(), scale_a=scale_x, scale_b=scale_w,
                                    out_dtype=torch.bfloat16)[:m]


def run(folder, only=(), weights=()):
    import torch

    import bench_gpu as bg
    import device_abi
    from attn import reference as ref

    use_shape(folder)
    libraries = {}

    def library(name):
        suffix = library_of(name)[0]
        if suffix not in libraries:
            libraries[suffix] = device_abi.load(os.path.join(folder, f"quant_gemv{suffix}.so"))
        return libraries[suffix]

    rng = np.random.default_rng(0)
    copy_gbps = bg.copy_rate() / 1e9
    rows = []
    for name in weights or WEIGHTS:
        fn = device_abi.DeviceFunction(library(name), name)
        for m in sorted(only) or ROWS + GEMM_ROWS.get(name, ()):
            sets, weight_bytes, want = [], 0, None
            while not sets or len(sets) < bg.input_sets(weight_bytes):
                arrays, weight, weight_bytes = arguments(rng, name, m)
                x = rng.uniform(-1, 1, (m, K))
                xt = torch.from_numpy(rt.to_abi(x, "bf16").view(np.int16)).to(
                    bg.DEV).view(torch.bfloat16)
                if want is None:  # set 0's reference, on the bf16 x the call reads
                    x64 = xt[:CHECKED_ROWS].double().cpu().numpy()
                    want = torch.from_numpy(ref.linear(x64, weight) if WEIGHTS[name]
                                            else x64 @ weight.T)
                out = torch.empty((m, N), dtype=torch.bfloat16, device=bg.DEV)
                ins = [xt] + [torch.from_numpy(a.view(np.int16) if a.dtype == np.uint16 else a)
                              .to(bg.DEV) for a in arrays]
                if ins[1].dtype == torch.int16:
                    ins[1] = ins[1].view(torch.bfloat16)
                sets.append((ins, out, arrays))
            calls = [fn.bind(ins, [out]) for ins, out, _ in sets]
            row = {"weights": name, "M": m, "N": N, "K": K, "weight_bytes": weight_bytes,
                   "input_sets": len(sets)}

            def check():
                sets[0][1].fill_(float("nan"))
                calls[0]()
                torch.cuda.synchronize()
                return bg.rel_err(sets[0][1][:CHECKED_ROWS].cpu(), want)

            bg.measure(row, "ours", calls, check)
            if "ours_s" in row:
                row["weight_gbps"] = weight_bytes / row["ours_s"] / 1e9
                row["of_copy"] = row["weight_gbps"] / copy_gbps
                row["tflops"] = 2 * m * N * K / row["ours_s"] / 1e12
            try:
                theirs = [torch_call(torch, name, ins[0], arrays) for ins, _, arrays in sets]
                bg.measure(row, "torch", theirs,
                           lambda: bg.rel_err(theirs[0]()[:CHECKED_ROWS].float().cpu(), want))
            except Exception as e:  # this PyTorch build lacks the kernel
                row["torch_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = [f"quantised GEMV, K {K} x N {N}, bf16 x, on {torch.cuda.get_device_name()}; "
             f"copy {copy_gbps:.0f} GB/s",
             f"{'weights':14} {'M':>4} {'kernel us':>10} {'W GB/s':>8} {'/copy':>6} {'TFLOP/s':>7}"
             f" {'err':>8} {'torch us':>9} {'vs torch':>8}"]
    for r in rows:
        us = f"{r['ours_s'] * 1e6:10.1f}" if "ours_s" in r else f"{'n/a':>10}"
        rates = (f"{r['weight_gbps']:8.0f} {r['of_copy']:6.2f} {r['tflops']:7.1f}"
                 if "ours_s" in r else " " * 23)
        err = f"{r['ours_err']:8.1e}" if "ours_err" in r else r.get("ours_error", "")
        theirs = (f"{r['torch_s'] * 1e6:9.1f}" if "torch_s" in r else f"{'n/a':>9}")
        ratio = (f"{r['torch_s'] / r['ours_s']:7.2f}x" if "torch_s" in r and "ours_s" in r
                 else "")
        lines.append(f"{r['weights']:14} {r['M']:4} {us} {rates} {err:>8} {theirs} {ratio}")
    print("\n".join(lines))
    with open(os.path.join(os.environ.get("OUT", "."), "bench-quant-gemv.json"), "w") as f:
        json.dump({"copy_gbps": copy_gbps, "results": rows, "table": lines}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--build", action="store_true", help="compile (no GPU needed)")
    parser.add_argument("--rows", default="",
                        help="these M instead of the default list, comma-separated")
    parser.add_argument("--shape", default="",
                        help="with --build: K,N instead of 4096,14336 (the run reads it back)")
    parser.add_argument("--weights", default="",
                        help=f"only these of {', '.join(WEIGHTS)}, comma-separated (default: all)")
    args = parser.parse_args()
    only = {int(m) for m in args.rows.split(",") if m}
    weights = [w for w in args.weights.split(",") if w]
    unknown = set(weights) - set(WEIGHTS)
    if unknown:
        parser.error(f"unknown weights: {', '.join(sorted(unknown))}")
    build(args.folder, args.shape) if args.build else run(args.folder, only, weights)


if __name__ == "__main__":
    main()
