#!/usr/bin/python3
"""Runs the wgmma GEMMs (``GemmWgmma.cpp``) in the PTX interpreter (``ptx_sim.py``) on small
random problems and checks every output against a float64 reference: a check of the
generated PTX on a machine without a GPU. It covers each shape that M picks, for bf16 (one
consumer warpgroup on 64-column tiles, two on 64, 128 and 256; stacked q / k / v weights)
and for E4M3 (one consumer and two on 64-column tiles, and the 128-column tiles whose
consumers take turns), with the
producer's TMA boxes, the stage ring's mbarrier phases, the descriptors' swizzled operands
and the epilogue.

The wgmma products are exact (bf16 and E4M3 products fit f32), so each output must lie within
half an output ulp of the reference plus what f32 sums may lose: 2^-22 times the sum of
|x w| over K (as simulate_gptq_gemm.py). The interpreter adds each wgmma's products in f64
and rounds once; the tensor cores' narrower E4M3 sums are not modelled.

    /usr/bin/python3 test/gpu/simulate_wgmma_gemm.py       # about 10 s (a lit test)
"""

import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python")]

import ptx_sim  # noqa: E402
from attn import reference  # noqa: E402
from simulate_gptq_gemm import (ATTN_OPT, F32_SUM_BOUND, TOLERANCE, Memory,  # noqa: E402
                                descriptor, from_bits, kernel_ptx, to_bits, worst_fraction)

N = 256


def linear_module(dtype, k):
    if dtype == "e4m3":
        return f"""!f8 = !attn.quantized_weight<{N}x{k}, #attn.float8<weight_scale = row, input_scale = dynamic>>
func.func @linear(%x: tensor<?x{k}xbf16>, %w8: tensor<{N}x{k}xf8E4M3FN>, %s: tensor<{N}xf32>) -> tensor<?x{N}xbf16> {{
  %w = attn.quantized_weight(%w8, %s) : (tensor<{N}x{k}xf8E4M3FN>, tensor<{N}xf32>) -> !f8
  %y = attn.linear %x, %w : tensor<?x{k}xbf16>, !f8 -> tensor<?x{N}xbf16>
  return %y : tensor<?x{N}xbf16>
}}
"""
    return f"""func.func @linear(%x: tensor<?x{k}x{dtype}>, %w: tensor<{N}x{k}x{dtype}>) -> tensor<?x{N}x{dtype}> {{
  %y = attn.linear %x, %w : tensor<?x{k}x{dtype}>, tensor<{N}x{k}x{dtype}> -> tensor<?x{N}x{dtype}>
  return %y : tensor<?x{N}x{dtype}>
}}
"""


def qkv_module(k):
    """bf16 q / k / v weights of 128, 64 and 64 rows: 128-column tiles hold k and v."""
    outs = ", ".join(f"tensor<?x{h}x32xbf16>" for h in (4, 2, 2))
    return f"""func.func @qkv(%x: tensor<?x{k}xbf16>, %wq: tensor<128x{k}xbf16>, %wk: tensor<64x{k}xbf16>,
               %wv: tensor<64x{k}xbf16>) -> ({outs}) {{
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x{k}xbf16>, (tensor<128x{k}xbf16>, tensor<64x{k}xbf16>, tensor<64x{k}xbf16>) -> {outs}
  return %q, %k, %v : {outs}
}}
"""


def launches(module):
    """{kernel: (column tiles, threads, dynamic shared bytes)} of the module's GEMM launches,
    as the host code launches them."""
    out = subprocess.run([ATTN_OPT, "-", "--convert-attn-to-gpu"], input=module,
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for m in re.finditer(r"gpu\.launch_func\s+@attn_kernels::@(gemm_\w+) blocks in \(%c(\d+)"
                         r"[^)]*\) threads in \(%c(\d+)[^)]*\)\s+dynamic_shared_memory_size "
                         r"%c(\d+)_i32", out):
        found[m.group(1)] = tuple(int(g) for g in m.group(2, 3, 4))
    return found


def random_e4m3(rng, shape):
    """E4M3 bytes of random finite values (no NaN: 0x7F / 0xFF excluded)."""
    b = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return np.where((b & 0x7F) == 0x7F, b ^ 1, b).astype(np.uint8)


def simulate(ptx, kernel, launch, m, k, dtype, rows=(N,), seed=0):
    """The kernel on x [m, k] and weights of `rows` rows each (one launch); the worst error
    as a fraction of the allowed."""
    rng = np.random.default_rng(seed)
    mem = Memory()
    column_tiles, threads, smem = launch
    tile_m = 64 * (threads // 128 - 1)
    ebytes = 1 if dtype == "e4m3" else 2
    out_type = "bf16" if dtype == "e4m3" else dtype
    if dtype == "e4m3":
        assert len(rows) == 1
        x = random_e4m3(rng, (m, k))
        ws = [random_e4m3(rng, (n, k)) for n in rows]
        sx = rng.uniform(0.5, 2, m).astype(np.float32)
        sw = rng.uniform(0.5, 2, rows[0]).astype(np.float32)
        decode = reference.decode_fp8_e4m3
        scale = sx[:, None].astype(np.float64) * sw[None, :]
    else:
        x = to_bits(rng.uniform(-1, 1, (m, k)), dtype)
        ws = [to_bits(rng.uniform(-1, 1, (n, k)), dtype) for n in rows]
        decode = lambda bits: from_bits(bits, dtype)  # noqa: E731
        scale = 1.0
    x_addr = mem.put(x)
    w_addrs = [mem.put(w) for w in ws]
    outs = [mem.put(np.full((m, n), 0x7FFF, dtype=np.uint16)) for n in rows]  # NaNs
    params = descriptor(x_addr, [m, k])
    for addr, n in zip(w_addrs, rows):
        params += descriptor(addr, [n, k])
    for addr, n in zip(outs, rows):
        params += descriptor(addr, [m, n])
    # The tensor maps: x's boxes of the tile's rows, the weights' of 64 rows.
    maps = [ptx_sim.TensorMap(x_addr, ebytes, m, k, k * ebytes, tile_m, 128 // ebytes)]
    maps += [ptx_sim.TensorMap(addr, ebytes, n, k, k * ebytes, 64, 128 // ebytes)
             for addr, n in zip(w_addrs, rows)]
    tensor_maps = {len(params) + i: t for i, t in enumerate(maps)}
    params += [0] * len(maps)
    if dtype == "e4m3":
        params += descriptor(mem.put(sx), [m]) + descriptor(mem.put(sw), [rows[0]])
    grid = (column_tiles, -(-m // tile_m))
    ptx_sim.run_kernel(ptx, kernel, grid, threads, params, smem, mem.buf, tensor_maps)
    worst = 0.0
    xf = decode(x)
    for w, addr, n in zip(ws, outs, rows):
        wf = decode(w)
        want = (xf @ wf.T) * scale
        magnitude = (np.abs(xf) @ np.abs(wf).T) * scale
        got = from_bits(mem.get(addr, np.uint16, (m, n)), out_type)
        worst = max(worst, worst_fraction(got, want, F32_SUM_BOUND * magnitude, out_type))
    return worst


# (label, dtype, K, weight rows, [(kernel, M)]): every shape the host picks for N 256.
# K 1024 (16 steps of 64 bf16) and 2048 (16 of 128 E4M3) wrap the rings of 4-6 stages, so
# both mbarrier parities and the consumers' turns over 8 trips run; K 384 leaves E4M3 one
# step after its trip. q / k / v: tiles whose W boxes come from two weights' maps.
CASES = [
    ("linear", "bf16", 256, (N,), [("gemm_wgmma_m128", 100), ("gemm_wgmma", 1030)]),
    ("linear", "bf16", 1024, (N,), [("gemm_wgmma_m64", 40), ("gemm_wgmma_m1024", 200)]),
    ("linear", "f16", 256, (N,), [("gemm_wgmma_m64", 24)]),
    ("qkv 128/64/64", "bf16", 256, (128, 64, 64),
     [("gemm_wgmma_m64", 33), ("gemm_wgmma_m1024", 150), ("gemm_wgmma", 1025)]),
    ("linear", "e4m3", 384, (N,), [("gemm_float8_m64", 40), ("gemm_float8_m128", 100),
                                   ("gemm_float8", 130)]),
    ("linear", "e4m3", 2048, (N,), [("gemm_float8_m64", 17), ("gemm_float8_m128", 65),
                                    ("gemm_float8", 200)]),
]


def main():
    failed = 0
    for label, dtype, k, rows, runs in CASES:
        module = qkv_module(k) if label.startswith("qkv") else linear_module(dtype, k)
        ptx, shapes = kernel_ptx(module), launches(module)
        for kernel, m in runs:
            err = simulate(ptx, kernel, shapes[kernel], m, k, dtype, rows)
            ok = err <= TOLERANCE
            failed += not ok
            print(f"{label} {dtype} K {k}, M {m} ({kernel}): worst error {err:.3f} of the "
                  f"allowed {'ok' if ok else 'FAILED'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
