#!/usr/bin/python3
"""Runs the GPTQ kernels in the PTX interpreter (``ptx_sim.py``) on small random problems and
checks every output against a float64 reference: a check of the generated PTX on a machine
without a GPU. The GEMMs (M > 64): on wgmma (``GemmGPTQWgmma.cpp``: the TMA ring and its
mbarriers, A registers decoded from swizzled word rows, the group's sums scaled once) and on
mma.sync (``GemmGPTQ.cpp``, groups of 32: fragment layouts, the int4 decoding, the cp.async ring) and the GEMV (``GemvGPTQ.cpp``, M <= 64: the per-warp TMA rings, their
mbarrier phases and expected bytes, the swizzled reads). The kernels are exact but for f32
accumulation, so each output must lie within half an output ulp of the reference plus what
f32 sums may lose: 2^-22 times the sum of |x w| over K (four f32 roundings of the terms'
magnitude; it matters only where the terms cancel to an output far below them).

    /usr/bin/python3 test/gpu/simulate_gptq_gemm.py            # about 100 s (a lit test)
    /usr/bin/python3 test/gpu/simulate_gptq_gemm.py --gemv     # the GEMV cases, seconds

Cases: the wgmma GEMM (decoded weights as wgmma's A registers, x by TMA; ``gemm_gptq_wgmma_m128``
with 64-token blocks up to 128 rows, ``gemm_gptq_wgmma`` with 128 beyond) for a linear (K 256:
two groups of two steps; N 200: a partial block whose last word box lies past N) at M 70 (two
64-token tiles, the second partial); K 1024 (16 steps: the ring of 8 wraps around, both
mbarrier parities) at 70 and 200; q / k / v weights of 96, 32 and 32 rows in one launch (word boxes of
two weights in a block) at 130 (two 128-token tiles); f16 with groups of 64 (the sums scaled
every step) and N 136 at 65 and 260 (three 128-token tiles, the last partial). The mma.sync GEMM (``gemm_gptq``) for groups of 32 in f16
(32-deep steps) at 65. The GEMV at M 1, 8 (``gemv_gptq``) and 9, 16, 17, 20, 40, 64
(``gemv_gptq_m16``, one 16-row slice of x a grid row, the last partial), and M 0 (launched for
the index checks a launch may carry: no block may read the empty x); K 256 leaves six of its
eight warps without a unit; K 4096 gives each warp four units, so its ring of three stages
wraps around (both mbarrier parities); groups of 32 (32-deep units) with N 136 (a last block
with 8 columns in its first half and none in its second); q / k / v weights of 96, 32 and 32
rows (a block whose halves come from two weights). Words and scales in ``layout =
column_blocks`` (``[N/32, K/8, 32]`` and ``[N/32, K/g, 32]``, which the kernels read as
``[N/32 * K/8, 32]`` and ``[N/32 * K/g, 32]``): a linear of K 1024 and
N 224 through the GEMV (1, 20; its last block's second half past N) and the wgmma GEMM (70,
200; the last word box of its second feature tile past N), groups of 32 through the GEMV and
the mma.sync GEMM, and q / k / v of 96, 32 and 32 rows (GEMV halves on two weights).
"""

import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import ptx_sim  # noqa: E402

ATTN_OPT = os.environ.get("ATTN_OPT", os.path.join(REPO, "build", "bin", "attn-opt"))
# Margin over the allowed error (half an ulp plus the f32 bound).
TOLERANCE = 1.02
F32_SUM_BOUND = 2.0 ** -22


def kernel_ptx(mlir_text, streaming=False, options=""):
    """The PTX of the module's kernels (attn-opt's lowering with format=isa and `options`;
    with `streaming`, gptq-gemv=streaming)."""
    gemv = " gptq-gemv=streaming" if streaming else ""
    out = subprocess.run([ATTN_OPT, "-", f"--attn-lower-to-nvvm=format=isa{gemv} {options}"],
                         input=mlir_text, capture_output=True, text=True, check=True).stdout
    text = re.search(r'assembly = "((?:[^"\\]|\\.)*)"', out).group(1)
    text = re.sub(r"\\([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)
    return text.replace("\\\\", "\\")


GEMV_STAGES, UNIT_K = 3, 128
# emitQuantizedMatmul: GPTQ runs the GEMV up to this many rows (gptqGemvMaxRows): 64, or 32
# from N 10240 where the wgmma GEMM applies (groups of multiples of 64).
GEMV_MAX_ROWS, GEMV_MAX_ROWS_WIDE, WIDE_N = 64, 32, 10240


def gemv_max_rows(n, group):
    return GEMV_MAX_ROWS_WIDE if group % 64 == 0 and n >= WIDE_N else GEMV_MAX_ROWS


def gemv_shape(m, n, group):
    """(kernel, rows a block, threads, dynamic shared bytes, x box rows, word box rows) of the
    GEMV as emitGPTQGemv picks them: 64-column blocks, 8 warps up to 132 blocks (else 4), 3
    stages of each half's word rows and x's 64-deep boxes, a ring of scale rows, mbarriers."""
    warps = 8 if -(-n // 64) <= 132 else 4
    unit = int(np.gcd(group, UNIT_K))
    x_rows = 8 if m <= 8 else 16
    stage = 2 * (unit // 8) * 128 + -(-unit // 64) * x_rows * 128
    barriers = -(-warps * GEMV_STAGES * 8 // 1024) * 1024
    smem = barriers + warps * GEMV_STAGES * (stage + 256) + 1024
    name = "gemv_gptq" if m <= 8 else "gemv_gptq_m16"
    return name, x_rows, warps * 32, smem, x_rows, unit // 8


def streaming_gemv_shape(m, n):
    """(kernel, rows a block, threads, reduction bytes) of the streaming GEMV as
    emitGPTQStreamingGemv picks them: 32-column blocks, 16 warps up to 132 blocks, 8 up to
    264, else 4; 8 rows of x a block up to M 8, else 16; the warps' f32 sums meet in a static
    shared array."""
    blocks = -(-n // 32)
    warps = 16 if blocks <= 132 else 8 if blocks <= 264 else 4
    x_tiles = 1 if m <= 8 else 2
    name = "gemv_gptq_streaming" if m <= 8 else "gemv_gptq_streaming_m16"
    return name, 8 * x_tiles, warps * 32, warps * 8 * x_tiles * 32 * 4


def shape(group, m):
    """(kernel, tile rows, tile columns, threads, dynamic shared bytes) of the GEMM as
    emitQuantizedMatmul picks it: on wgmma (emitGPTQWgmmaGemm) for groups of multiples of 64,
    128 features x 128 tokens a block (64 tokens up to 128 rows; a producer and two consumer
    warpgroups), 8 stages of x's box and four 8-row word boxes; else on mma.sync
    (emitGPTQGemm), 128 x 128 tiles (8 warps), 4 stages of x rows (K step + 8 padding) and
    word rows."""
    if group % 64 == 0:
        tokens = 64 if m <= 128 else 128
        name = "gemm_gptq_wgmma_m128" if m <= 128 else "gemm_gptq_wgmma"
        return name, tokens, 128, 384, 8 * (tokens * 128 + 4 * 8 * 128) + 1024
    step = 32
    name, rows, cols, threads = "gemm_gptq", 128, 128, 256
    smem = 4 * (rows * (step + 8) * 2 + step // 8 * cols * 4) + 128
    return name, rows, cols, threads, smem


class Memory:
    """Global memory: one byte array, buffers at 256-byte aligned addresses."""

    def __init__(self, size=1 << 24):
        self.buf = np.zeros(size, dtype=np.uint8)
        self.top = 0x1000

    def put(self, array):
        addr = self.top
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        self.buf[addr:addr + len(raw)] = raw
        self.top = (addr + len(raw) + 255) // 256 * 256
        return addr

    def get(self, addr, dtype, shape_):
        count = int(np.prod(shape_)) * np.dtype(dtype).itemsize
        return self.buf[addr:addr + count].view(dtype).reshape(shape_)


def descriptor(addr, dims):
    """A row-major memref's kernel parameters: pointers, offset, sizes, strides."""
    strides = [int(np.prod(dims[i + 1:])) for i in range(len(dims))]
    return [addr, addr, 0, *dims, *strides]


def to_bits(values, dtype):
    v = np.asarray(values, dtype=np.float32)
    if dtype == "bf16":
        return ptx_sim.f32_to_bf16(v).astype(np.uint16)
    return v.astype(np.float16).view(np.uint16)


def from_bits(bits, dtype):
    if dtype == "bf16":
        return ptx_sim.bf16_to_f32(bits.astype(np.uint64)).astype(np.float64)
    return bits.view(np.float16).astype(np.float64)


def worst_fraction(got, want, slack, dtype="bf16"):
    """The worst |got - want| as a fraction of what is allowed: half an output ulp of `want`
    (bf16 or f16) plus `slack` (per element); a NaN counts as infinitely far."""
    bits = 7 if dtype == "bf16" else 10
    ulp = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(want), 1e-30))) - bits)
    errors = np.nan_to_num(np.abs(got - want) / (ulp / 2 + slack), nan=np.inf)
    return float(errors.max(initial=0.0))


def part_buffer(part, blocks):
    """(words or scales as the kernels read them, their rows, columns): ``[R, N]``, or in column
    blocks ``[N/32 * R, 32]`` (the host's collapse of ``[N/32, R, 32]``)."""
    if not blocks:
        return part, part.shape[0], part.shape[1]
    rows, n = part.shape
    blocked = np.ascontiguousarray(part.reshape(rows, n // 32, 32).transpose(1, 0, 2))
    return blocked, n // 32 * rows, 32


def simulate(ptx, m, k, rows, group, dtype, blocks=False, seed=0, streaming=False):
    """x [m, k] against GPTQ weights of `rows` rows each (one launch), their words in column
    blocks if `blocks`, the GEMV streaming if `streaming`; returns the worst error as a
    fraction of the allowed one (half an output ulp plus the f32 bound)."""
    rng = np.random.default_rng(seed)
    mem = Memory()
    x = to_bits(rng.uniform(-1, 1, (m, k)), dtype)
    params = descriptor(mem.put(x), [m, k])
    packed, scales, wants, word_dims, scale_dims = [], [], [], [], []
    for n in rows:
        q = rng.integers(0, 16, size=(k, n))
        words = np.zeros((k // 8, n), dtype=np.uint32)
        for j in range(8):
            words |= q[j::8].astype(np.uint32) << (4 * j)
        s = (rng.uniform(0.5, 1.5, size=(k // group, n)) / 16).astype(np.float16)
        w = (q - 8) * np.repeat(s.astype(np.float64), group, axis=0)
        wants.append((from_bits(x, dtype) @ w, np.abs(from_bits(x, dtype)) @ np.abs(w)))
        words, word_rows_total, word_cols = part_buffer(words, blocks)
        s, scale_rows, scale_cols = part_buffer(s, blocks)
        word_dims.append((word_rows_total, word_cols))
        scale_dims.append((scale_rows, scale_cols))
        packed += descriptor(mem.put(words), [word_rows_total, word_cols])
        scales += descriptor(mem.put(s), [scale_rows, scale_cols])
    outs = [mem.put(np.full((m, n), 0x7FFF, dtype=np.uint16)) for n in rows]  # NaNs
    params += packed + scales
    for addr, n in zip(outs, rows):
        params += descriptor(addr, [m, n])
    if m <= gemv_max_rows(sum(rows), group) and streaming:
        name, tile_m, threads, smem = streaming_gemv_shape(m, sum(rows))
        grid = (-(-sum(rows) // 32), max(1, -(-m // tile_m)))
        ptx_sim.run_kernel(ptx, name, grid, threads, params, smem, mem.buf)
    elif m <= gemv_max_rows(sum(rows), group):
        # The GEMV's tensor maps (parameters after the buffers): x, each weight's words,
        # each weight's scales.
        name, tile_m, threads, smem, x_rows, word_rows = gemv_shape(m, sum(rows), group)
        grid = (-(-sum(rows) // 64), max(1, -(-m // tile_m)))
        maps = [ptx_sim.TensorMap(params[1], 2, m, k, 2 * k, x_rows, 64)]
        for i, (wr, wc) in enumerate(word_dims):
            maps.append(ptx_sim.TensorMap(packed[7 * i + 1], 4, wr, wc, 4 * wc, word_rows, 32))
        for i, (sr, sc) in enumerate(scale_dims):
            maps.append(ptx_sim.TensorMap(scales[7 * i + 1], 2, sr, sc, 2 * sc, 1, 64))
        first = len(params)
        params += [0] * len(maps)
        tensor_maps = {first + i: t for i, t in enumerate(maps)}
        ptx_sim.run_kernel(ptx, name, grid, threads, params, smem, mem.buf, tensor_maps)
    else:
        name, tile_m, tile_n, threads, smem = shape(group, m)
        grid = (-(-sum(rows) // tile_n), -(-m // tile_m))
        tensor_maps = None
        if name.startswith("gemm_gptq_wgmma"):
            # Its tensor maps (parameters after the buffers): x's boxes of the block's rows,
            # each weight's 8 word rows.
            maps = [ptx_sim.TensorMap(params[1], 2, m, k, 2 * k, tile_m, 64)]
            maps += [ptx_sim.TensorMap(packed[7 * i + 1], 4, wr, wc, 4 * wc, 8, 32)
                     for i, (wr, wc) in enumerate(word_dims)]
            tensor_maps = {len(params) + i: t for i, t in enumerate(maps)}
            params += [0] * len(maps)
        ptx_sim.run_kernel(ptx, name, grid, threads, params, smem, mem.buf, tensor_maps)
    worst = 0.0  # M = 0: the run alone (its blocks must not read x)
    for addr, n, (want, magnitude) in zip(outs, rows, wants):
        got = from_bits(mem.get(addr, np.uint16, (m, n)), dtype)
        worst = max(worst, worst_fraction(got, want, F32_SUM_BOUND * magnitude, dtype))
    return worst


def encoding(group, blocks):
    layout = ", layout = column_blocks" if blocks else ""
    return f"#attn.gptq<group_size = {group}{layout}>"


def part_type(rows, n, element, blocks):
    """A GPTQ part of `rows` rows (K/8 words, K/g scales) for N `n`."""
    return f"tensor<{n // 32}x{rows}x32x{element}>" if blocks else f"tensor<{rows}x{n}x{element}>"


def linear_module(k, n, group, dtype, blocks=False):
    qw, sc = part_type(k // 8, n, "i32", blocks), part_type(k // group, n, "f16", blocks)
    return f"""!w = !attn.quantized_weight<{n}x{k}, {encoding(group, blocks)}>
func.func @linear(%x: tensor<?x{k}x{dtype}>, %qw: {qw},
                  %s: {sc}) -> tensor<?x{n}x{dtype}> {{
  %w = attn.quantized_weight(%qw, %s) : ({qw}, {sc}) -> !w
  %y = attn.linear %x, %w : tensor<?x{k}x{dtype}>, !w -> tensor<?x{n}x{dtype}>
  return %y : tensor<?x{n}x{dtype}>
}}
"""


def qkv_module(k, group, dtype, blocks=False):
    """q / k / v of 3 x 32, 32 and 32 rows."""
    out = [f"tensor<?x3x32x{dtype}>", *[f"tensor<?x1x32x{dtype}>"] * 2]
    wq, wkv = (part_type(k // 8, n, "i32", blocks) for n in (96, 32))
    sq, skv = (part_type(k // group, n, "f16", blocks) for n in (96, 32))
    enc = encoding(group, blocks)
    return f"""!wq = !attn.quantized_weight<96x{k}, {enc}>
!wkv = !attn.quantized_weight<32x{k}, {enc}>
func.func @qkv(%x: tensor<?x{k}x{dtype}>, %qq: {wq}, %sq: {sq},
               %qk: {wkv}, %sk: {skv}, %qv: {wkv},
               %sv: {skv}) -> ({", ".join(out)}) {{
  %wq = attn.quantized_weight(%qq, %sq) : ({wq}, {sq}) -> !wq
  %wk = attn.quantized_weight(%qk, %sk) : ({wkv}, {skv}) -> !wkv
  %wv = attn.quantized_weight(%qv, %sv) : ({wkv}, {skv}) -> !wkv
  %q, %k, %v = attn.qkv_projection %x weights(%wq, %wk, %wv)
      : tensor<?x{k}x{dtype}>, (!wq, !wkv, !wkv) -> {", ".join(out)}
  return %q, %k, %v : {", ".join(out)}
}}
"""


# (label, module, K, weight rows, group, dtype, row counts M[, column blocks])
CASES = [
    ("linear k256 n200 bf16", linear_module(256, 200, 128, "bf16"), 256, [200], 128, "bf16",
     (0, 1, 9, 17, 20, 64, 70)),
    ("linear k1024 n64 bf16", linear_module(1024, 64, 128, "bf16"), 1024, [64], 128, "bf16",
     (20, 70, 200)),
    ("linear k4096 n64 bf16", linear_module(4096, 64, 128, "bf16"), 4096, [64], 128, "bf16",
     (1,)),
    ("linear k256 n136 g32 f16", linear_module(256, 136, 32, "f16"), 256, [136], 32, "f16",
     (8, 17, 65)),
    ("qkv 96/32/32 bf16", qkv_module(256, 128, "bf16"), 256, [96, 32, 32], 128, "bf16",
     (1, 16, 40, 130)),
    ("linear k512 n136 g64 f16", linear_module(512, 136, 64, "f16"), 512, [136], 64, "f16",
     (65, 260)),
    ("blocks linear k1024 n224 bf16", linear_module(1024, 224, 128, "bf16", blocks=True), 1024,
     [224], 128, "bf16", (1, 20, 70, 200), True),
    ("blocks linear k256 n128 g32 f16", linear_module(256, 128, 32, "f16", blocks=True), 256,
     [128], 32, "f16", (8, 65), True),
    ("blocks qkv 96/32/32 bf16", qkv_module(256, 128, "bf16", blocks=True), 256,
     [96, 32, 32], 128, "bf16", (1, 16, 130), True),
]


# The streaming GEMV's loop (a warp with more than 8 steps loads a group of units ahead): K
# 8192 gives each of the 16 warps 16 steps, in groups of 4 units of 32 k (g32), 2 of 64 (g64)
# or 1 of 128.
STREAMING_CASES = [
    ("linear k8192 n64 g32 f16", linear_module(8192, 64, 32, "f16"), 8192, [64], 32, "f16",
     (1,)),
    ("linear k8192 n64 g64 bf16", linear_module(8192, 64, 64, "bf16"), 8192, [64], 64, "bf16",
     (9,)),
    ("linear k8192 n64 bf16", linear_module(8192, 64, 128, "bf16"), 8192, [64], 128, "bf16",
     (1,)),
]


def main():
    streaming = "--streaming" in sys.argv[1:]
    gemv_only = streaming or "--gemv" in sys.argv[1:]
    failed = 0
    for label, module, k, rows, group, dtype, ms, *blocks in CASES + (
            STREAMING_CASES if streaming else []):
        if gemv_only:
            ms = [m for m in ms if m <= gemv_max_rows(sum(rows), group)]
            if not ms:
                continue
        ptx = kernel_ptx(module, streaming)
        for m in ms:
            err = simulate(ptx, m, k, rows, group, dtype, blocks=bool(blocks),
                           streaming=streaming)
            ok = err <= TOLERANCE
            failed += not ok
            gemv = m <= gemv_max_rows(sum(rows), group)
            kernel = (streaming_gemv_shape(m, sum(rows))[0] if gemv and streaming
                      else gemv_shape(m, sum(rows), group)[0] if gemv else shape(group, m)[0])
            print(f"{label}, M {m} ({kernel}): worst error {err:.3f} of the allowed "
                  f"{'ok' if ok else 'FAILED'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
