#!/usr/bin/python3
"""CPU benchmark of attn-compile's libraries against numpy, measured in one process.

Sections (see benchmarks/README.md):
  ceilings  OpenBLAS sgemm 2048^3 GFLOP/s (numpy float32 matmul); memory copy GB/s (np.copyto of a
            256 MiB float32 array, bytes read + written, on one thread and split over every core;
            the faster is the ceiling).
  prefill   flash attention f32, causal, MHA, D = 128, H in {8, 32}, S in {1024, 2048, 4096}, one
            sequence, vs a plain numpy attention (per head, S x S scores materialised). FLOPs count
            causal as half: 2*H*S^2*D (shared/reference/performance.md).
  decode    paged flash attention, one query token per sequence, Hq 32, Hkv 8, D 128, page 128,
            bf16 and f32; GB/s = K and V bytes read (2*B*Hkv*L*D*sizeof) / time, vs the copy rate.
  layer     a whole layer step (ir.layer_function) of a scaled-down Llama-like layer, and each of
            its parts alone (per-op builders), vs a numpy float32 step (and reference.py, f64).

Every compiled result is checked against numpy (and attn/reference.py for small cases) before it
is timed; a wrong result stops the run with exit status 1. Times are medians after warm-up.

Use Debian's /usr/bin/python3 (numpy with OpenBLAS):
    /usr/bin/python3 benchmarks/cpu/bench_cpu.py [--quick] [--json out.json] [--mcpu x86-64-v3]
"""

import argparse
import concurrent.futures
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))

from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402

GOAL_PREFILL_VS_NUMPY = 5.0
GOAL_PREFILL_VS_SGEMM = 0.5
GOAL_DECODE_VS_COPY = 0.5


class CheckFailed(Exception):
    """A compiled result disagrees with its reference."""


# ---------------------------------------------------------------------------------------------
# Machine


def machine_info():
    info = {"cpu_model": platform.processor() or "?", "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            procs = [dict((k.strip(), v.strip()) for k, v in
                          (line.split(":", 1) for line in block.splitlines() if ":" in line))
                     for block in f.read().split("\n\n") if block.strip()]
        info["cpu_model"] = procs[0].get("model name", info["cpu_model"])
        info["logical_cpus"] = len(procs)
        info["physical_cores"] = len({(p.get("physical id"), p.get("core id")) for p in procs})
        flags = set(procs[0].get("flags", "").split())
        info["simd"] = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
                        if f in flags]
    except (OSError, IndexError):
        pass
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        info["loadavg_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    info["numpy"] = np.__version__
    info["python"] = sys.executable + " " + platform.python_version()
    info["env"] = {k: os.environ.get(k) for k in
                   ("OMP_NUM_THREADS", "KMP_BLOCKTIME", "OPENBLAS_NUM_THREADS")}
    return info


# ---------------------------------------------------------------------------------------------
# Timing


@dataclasses.dataclass
class Timing:
    median: float  # seconds
    runs: list     # every measured run, seconds
    first: float   # the first (checked, warm-up) call, seconds

    def to_json(self):
        return {"median_s": self.median, "runs_s": self.runs, "first_call_s": self.first}


class Timer:
    """Medians of several runs; the first call of each case is the checked warm-up call."""

    def __init__(self, quick, settle_s=0.3):
        self.quick = quick
        self.settle_s = settle_s

    def settle(self):
        # Idle worker threads of the other runtime (libomp blocktime 200 ms, OpenBLAS' spin
        # loop) would steal a core from the next measurement: let them go to sleep first.
        time.sleep(self.settle_s)

    def first(self, fn):
        """Runs ``fn`` once (the warm-up whose result gets checked): (result, seconds)."""
        self.settle()
        t0 = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - t0

    def measure(self, fn, first_s):
        """Median of repeated calls of ``fn``; ``first_s`` is the duration of its first call."""
        if self.quick:
            min_runs, max_runs, budget = 2, 5, 0.5
        else:
            min_runs, max_runs, budget = 5, 30, 3.0
        if first_s > 2.0:  # slow cases: few runs
            min_runs = 1 if self.quick else 2
        self.settle()
        # Extra warm-up for short calls (page faults, thread start-up, frequency ramp).
        warm_end = time.perf_counter() + (0.3 if first_s < 0.1 else 0.0)
        while time.perf_counter() < warm_end:
            fn()
        runs = []
        start = time.perf_counter()
        while len(runs) < max_runs:
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
            if len(runs) >= min_runs and time.perf_counter() - start >= budget:
                break
        return Timing(statistics.median(runs), runs, first_s)


# ---------------------------------------------------------------------------------------------
# Compiling


class Compiler:
    def __init__(self, workdir, mcpu=None, extra_args=()):
        self.workdir = workdir
        self.mcpu = mcpu
        self.extra_args = list(extra_args)
        self.tool = rt.attn_compile_path()
        if not os.path.isfile(self.tool):
            sys.exit(f"error: attn-compile not found at {self.tool} (build it or set ATTN_COMPILE)")

    def flags(self):
        return ([f"--mcpu={self.mcpu}"] if self.mcpu else []) + self.extra_args

    def library(self, stem, module_text):
        src = os.path.join(self.workdir, stem + ".mlir")
        so = os.path.join(self.workdir, stem + ".so")
        with open(src, "w") as f:
            f.write(module_text)
        t0 = time.perf_counter()
        proc = subprocess.run([self.tool, "--target=cpu", *self.flags(), src, "-o", so],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise rt.CompileError(f"attn-compile failed on {src} (exit {proc.returncode}):\n"
                                  f"{proc.stderr}")
        log(f"  compiled {stem}.so in {time.perf_counter() - t0:.1f} s")
        return rt.CompiledLibrary(so)


# ---------------------------------------------------------------------------------------------
# Checks


def rel_error(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    return float(np.max(np.abs(got - want), initial=0.0)) / (scale or 1.0)


def check(what, got, want, tol):
    """``max|got - want| <= tol * max|want|`` and all finite, else CheckFailed."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != np.shape(want):
        raise CheckFailed(f"{what}: shape {got.shape} != {np.shape(want)}")
    bad = ~np.isfinite(got)
    if bad.any():
        raise CheckFailed(f"{what}: {int(bad.sum())} non-finite values, first at "
                          f"{np.argwhere(bad)[0].tolist()}")
    err = rel_error(got, want)
    if not err <= tol:
        raise CheckFailed(f"{what}: max error {err:.3e} relative to max|expected| exceeds {tol:g}")
    log(f"  check ok: {what}: rel. error {err:.1e} (tol {tol:g})")
    return err


TOL_F32 = 1e-4   # compiled f32 vs numpy f32 / reference f64 (observed ~1e-6)
TOL_BF16 = 2e-2  # bf16 vs f64 reference of the same bf16 inputs (observed ~5e-3)


def tol_of(dtype):
    return TOL_F32 if dtype == "f32" else TOL_BF16


def vals(array, dtype):
    return np.asarray(rt.from_abi(array, dtype), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Output


def log(msg=""):
    print(msg, flush=True)


def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def fmt_ratio(r, goal=None):
    if r is None:
        return "-"
    text = f"{r:.2f}x"
    if goal is not None:
        text += " ok" if r >= goal else " LOW"
    return text


def use_threads(threads):
    """OpenMP threads of the compiled libraries (set before the first one loads)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("KMP_BLOCKTIME", "0")


def write_json(path, results):
    """``results`` as indented JSON at ``path``, if one is given."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


def print_columns(header, rows):
    """``rows`` under ``header``, each column right-aligned to its widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def print_table(rows):
    headers = ["section", "case", "time", "rate", "numpy", "vs numpy", "vs ceiling", "note"]
    cells = [[str(r.get(k.replace(" ", "_"), "") or "") for k in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    log(line)
    log("-" * len(line))
    last = None
    for c in cells:
        if last is not None and c[0] != last:
            log("")
        last = c[0]
        log("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


# ---------------------------------------------------------------------------------------------
# Ceilings


def bench_ceilings(timer, results, rows):
    log("== ceilings")
    n = 2048
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    _, first = timer.first(lambda: np.matmul(a, b, out=c))
    t = timer.measure(lambda: np.matmul(a, b, out=c), first)
    sgemm = 2 * n**3 / t.median / 1e9
    log(f"  sgemm {n}^3: {fmt_time(t.median)}, {sgemm:.1f} GFLOP/s")
    del a, b, c

    nbytes = 256 << 20
    src = np.full(nbytes // 4, 1.5, dtype=np.float32)  # written: every page really mapped
    dst = np.full_like(src, 2.5)
    _, first = timer.first(lambda: np.copyto(dst, src))
    tc = timer.measure(lambda: np.copyto(dst, src), first)
    if not np.array_equal(dst[:: 1 << 16], src[:: 1 << 16]):
        raise CheckFailed("np.copyto did not copy")
    copy1_gbs = 2 * nbytes / tc.median / 1e9
    log(f"  copy 256 MiB, 1 thread: {fmt_time(tc.median)}, {copy1_gbs:.1f} GB/s (read + write)")
    # The compiled kernels use every core: so does the memory ceiling. np.copyto releases the GIL,
    # so one slice per core copies in parallel.
    cores = os.cpu_count() or 1
    bounds = np.linspace(0, src.size, cores + 1).astype(int)
    pool = concurrent.futures.ThreadPoolExecutor(cores)

    def copy_all():
        list(pool.map(lambda i: np.copyto(dst[bounds[i]:bounds[i + 1]], src[bounds[i]:bounds[i + 1]]),
                      range(cores)))

    dst.fill(2.5)
    _, first = timer.first(copy_all)
    tp = timer.measure(copy_all, first)
    pool.shutdown()
    if not np.array_equal(dst[:: 1 << 16], src[:: 1 << 16]):
        raise CheckFailed("the threaded copy did not copy")
    copyn_gbs = 2 * nbytes / tp.median / 1e9
    log(f"  copy 256 MiB, {cores} threads: {fmt_time(tp.median)}, {copyn_gbs:.1f} GB/s")
    # The ceiling is the faster of the two.
    if copyn_gbs >= copy1_gbs:
        copy_gbs, tc, copy_case = copyn_gbs, tp, f"np.copyto 256 MiB f32, {cores} threads"
    else:
        copy_gbs, copy_case = copy1_gbs, "np.copyto 256 MiB f32, 1 thread"
    del src, dst

    results["ceilings"] = {
        "sgemm_2048_gflops": sgemm, "sgemm": t.to_json(),
        "copy_256MiB_gbs": copy_gbs, "copy": tc.to_json(),
        "copy_1thread_gbs": copy1_gbs, "copy_threads_gbs": copyn_gbs, "copy_threads": cores,
    }
    rows.append({"section": "ceiling", "case": "OpenBLAS sgemm 2048^3 f32", "time": fmt_time(t.median),
                 "rate": f"{sgemm:.1f} GFLOP/s"})
    rows.append({"section": "ceiling", "case": copy_case, "time": fmt_time(tc.median),
                 "rate": f"{copy_gbs:.1f} GB/s", "note": "bytes read + written"})
    return sgemm, copy_gbs


# ---------------------------------------------------------------------------------------------
# Prefill flash attention


def numpy_causal_attention(q, k, v, scale, neg_mask):
    """Plain numpy attention: per head, S x S scores, causal mask, softmax, @ v (float32)."""
    s_len, heads, _ = q.shape
    out = np.empty_like(q)
    for h in range(heads):
        s = q[:, h, :] @ k[:, h, :].T
        s *= scale
        s += neg_mask
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        np.matmul(s, v[:, h, :], out=out[:, h, :])
    return out


def causal_neg_mask(s_len):
    return np.triu(np.full((s_len, s_len), -np.inf, dtype=np.float32), 1)


def bench_prefill(timer, compiler, sgemm, quick, results, rows):
    log("== prefill: flash attention f32, causal, MHA, D = 128, one sequence")
    d = 128
    heads_list = (8, 32)
    cases = ([(8, 1024), (32, 1024)] if quick else
             [(h, s) for h in heads_list for s in (1024, 2048, 4096)])
    cfgs = {h: ir.LayerConfig(hidden=h * d, num_heads=h, num_kv_heads=h, head_dim=d,
                              dtype="f32") for h in heads_list}
    lib = compiler.library("prefill", ir.module_text(
        *(ir.flash_attention_function(f"flash_h{h}", cfgs[h]) for h in heads_list)))
    scale = 1.0 / math.sqrt(d)
    rng = np.random.default_rng(2)

    # reference.py (f64) on one small case per head count, before anything is timed.
    for h, s_len in ((8, 256), (32, 128)):
        q, k, v = (rng.standard_normal((s_len, h, d), dtype=np.float32) for _ in range(3))
        off = np.array([0, s_len], np.int32)
        o = np.full_like(q, np.nan)
        lib.call(f"flash_h{h}", [q, k, v, off, off], [o])
        check(f"flash H={h} S={s_len} vs reference.py", o,
              ref.flash_attention(q, k, v, off, off), TOL_F32)

    out = []
    for h, s_len in cases:
        q, k, v = (rng.standard_normal((s_len, h, d), dtype=np.float32) for _ in range(3))
        off = np.array([0, s_len], np.int32)
        o = np.full_like(q, np.nan)
        mask = causal_neg_mask(s_len)
        flops = 2.0 * h * s_len**2 * d

        def compiled():
            lib.call(f"flash_h{h}", [q, k, v, off, off], [o])

        def numpy_attn():
            return numpy_causal_attention(q, k, v, scale, mask)

        _, first_c = timer.first(compiled)
        want, first_n = timer.first(numpy_attn)
        err = check(f"flash H={h} S={s_len} vs numpy", o, want, TOL_F32)
        del want
        tc = timer.measure(compiled, first_c)
        tn = timer.measure(numpy_attn, first_n)
        gf_c, gf_n = flops / tc.median / 1e9, flops / tn.median / 1e9
        vs_numpy, vs_sgemm = tn.median / tc.median, gf_c / sgemm
        log(f"  H={h:2d} S={s_len}: compiled {fmt_time(tc.median)} {gf_c:.1f} GFLOP/s, "
            f"numpy {fmt_time(tn.median)} {gf_n:.1f} GFLOP/s, {vs_numpy:.2f}x numpy, "
            f"{vs_sgemm:.2f}x sgemm")
        out.append({"heads": h, "seq": s_len, "head_dim": d, "flops": flops, "rel_error": err,
                    "compiled": tc.to_json(), "numpy": tn.to_json(), "compiled_gflops": gf_c,
                    "numpy_gflops": gf_n, "ratio_numpy": vs_numpy, "ratio_sgemm": vs_sgemm})
        rows.append({"section": "prefill", "case": f"flash f32 causal H={h} S={s_len}",
                     "time": fmt_time(tc.median), "rate": f"{gf_c:.1f} GFLOP/s",
                     "numpy": f"{gf_n:.1f} GFLOP/s",
                     "vs_numpy": fmt_ratio(vs_numpy, GOAL_PREFILL_VS_NUMPY),
                     "vs_ceiling": fmt_ratio(vs_sgemm, GOAL_PREFILL_VS_SGEMM),
                     "note": f"goal >= {GOAL_PREFILL_VS_NUMPY:g}x numpy, "
                             f">= {GOAL_PREFILL_VS_SGEMM:g}x sgemm"})
        del q, k, v, o, mask
    results["prefill"] = out


# ---------------------------------------------------------------------------------------------
# Decode: paged flash attention


def random_blocks(rng, shape, dtype):
    """Random cache blocks in ABI form, never zero (bf16: float32 values truncated to bf16)."""
    x = rng.standard_normal(shape, dtype=np.float32)
    x += np.copysign(np.float32(0.25), x)
    if dtype == "f32":
        return x
    return (x.view(np.uint32) >> 16).astype(np.uint16)


def numpy_paged_decode(q, blocks, cache_lengths, lookup, layer):
    """Float64 decode attention (one query per sequence, at position cache_lengths[b]) over the
    paged cache, GQA by contiguous groups: ``q [B, H, D]`` -> ``[B, H, D]``."""
    bsz, heads, d = q.shape
    page, hkv = blocks.shape[3], blocks.shape[4]
    g = heads // hkv
    out = np.empty(q.shape, np.float64)
    for b in range(bsz):
        n_keys = int(cache_lengths[b]) + 1
        pages = lookup[b, : -(-n_keys // page)]
        k = np.asarray(blocks[pages, 0, layer], np.float64).reshape(-1, hkv, d)[:n_keys]
        v = np.asarray(blocks[pages, 1, layer], np.float64).reshape(-1, hkv, d)[:n_keys]
        qg = np.asarray(q[b], np.float64).reshape(hkv, g, d) / math.sqrt(d)
        s = qg @ k.transpose(1, 2, 0)  # [Hkv, g, keys]
        s -= s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        out[b] = (p @ v.transpose(1, 0, 2)).reshape(heads, d)
    return out


def bench_decode(timer, compiler, copy_gbs, quick, results, rows):
    log("== decode: paged flash attention, 1 token per sequence, Hq 32, Hkv 8, D 128, page 128")
    hq, hkv, d, page = 32, 8, 128, 128
    dtypes = ("bf16", "f32")
    cfgs = {dt: ir.LayerConfig(hidden=hq * d, num_heads=hq, num_kv_heads=hkv, head_dim=d,
                               dtype=dt, page_size=page, num_layers=1, layer_idx=0)
            for dt in dtypes}
    lib = compiler.library("decode", ir.module_text(
        *(ir.paged_flash_attention_function(f"decode_{dt}", cfgs[dt]) for dt in dtypes)))
    rng = np.random.default_rng(3)

    # reference.py on a small ragged case (validates the compiled kernel and numpy_paged_decode).
    for dt in dtypes:
        lengths = np.array([299, 5], np.int32)  # keys 300 and 6: several pages, a partial one
        npages = 4
        blocks = random_blocks(rng, (npages, 2, 1, page, hkv, d), dt)
        lookup = np.array([[2, 0, 3], [1, npages, npages]], np.int32)
        off = np.arange(3, dtype=np.int32)
        q = rt.to_abi(rng.standard_normal((2, hq, d)), dt)
        o = np.zeros_like(q)
        lib.call(f"decode_{dt}", [q, off, blocks, lengths, lookup], [o])
        want = ref.flash_attention_paged(vals(q, dt), vals(blocks, dt), lengths, lookup, off, 0)
        check(f"decode {dt} small vs reference.py", vals(o, dt), want, tol_of(dt))
        check(f"numpy_paged_decode {dt} small vs reference.py",
              numpy_paged_decode(vals(q, dt), vals(blocks, dt), lengths, lookup, 0), want, 1e-12)

    cases = [(1, 4096)] if quick else [(1, 4096), (1, 32768), (8, 4096)]
    out = []
    for dt in dtypes:
        size = 2 if dt == "bf16" else 4
        for bsz, seq in cases:
            pages_per_seq = seq // page
            npages = bsz * pages_per_seq + 1  # one spare page nobody reads
            blocks = random_blocks(rng, (npages, 2, 1, page, hkv, d), dt)
            lookup = rng.permutation(npages)[: bsz * pages_per_seq].reshape(bsz, pages_per_seq)
            lookup = lookup.astype(np.int32)
            lengths = np.full(bsz, seq - 1, np.int32)  # the new token's K/V are already stored
            off = np.arange(bsz + 1, dtype=np.int32)
            q = rt.to_abi(rng.standard_normal((bsz, hq, d)), dt)
            o = np.zeros_like(q)
            args = [q, off, blocks, lengths, lookup]

            def compiled():
                lib.call(f"decode_{dt}", args, [o])

            _, first = timer.first(compiled)
            err = check(f"decode {dt} B={bsz} L={seq} vs numpy",
                        vals(o, dt).reshape(bsz, hq, d),
                        numpy_paged_decode(vals(q, dt).reshape(bsz, hq, d),
                                           rt.from_abi(blocks, dt) if dt == "bf16" else blocks,
                                           lengths, lookup, 0), tol_of(dt))
            t = timer.measure(compiled, first)
            nbytes = 2.0 * bsz * hkv * seq * d * size
            gbs = nbytes / t.median / 1e9
            vs_copy = gbs / copy_gbs
            log(f"  {dt} B={bsz} L={seq}: {fmt_time(t.median)}, {gbs:.1f} GB/s, "
                f"{vs_copy:.2f}x copy")
            out.append({"dtype": dt, "batch": bsz, "cache_len": seq, "bytes": nbytes,
                        "rel_error": err, "compiled": t.to_json(), "gbs": gbs,
                        "ratio_copy": vs_copy})
            rows.append({"section": "decode", "case": f"paged {dt} B={bsz} L={seq}",
                         "time": fmt_time(t.median), "rate": f"{gbs:.1f} GB/s",
                         "vs_ceiling": fmt_ratio(vs_copy, GOAL_DECODE_VS_COPY),
                         "note": f"K+V bytes; goal >= {GOAL_DECODE_VS_COPY:g}x copy"})
            del blocks, args
    results["decode"] = out


# ---------------------------------------------------------------------------------------------
# Whole layer


def layer_config(dtype):
    """Scaled-down Llama-like layer: hidden 2048, 16 q heads, 4 kv heads, D 128, page 128."""
    return ir.LayerConfig(hidden=2048, num_heads=16, num_kv_heads=4, head_dim=128, dtype=dtype,
                          page_size=128, num_layers=2, layer_idx=1, max_seq_len=4096,
                          rope={"theta": 500000.0, "interleaved": False, "scaling": None})


class NumpyLayer:
    """One layer step in numpy float32 (BLAS projections, rotate-half RoPE from a precomputed
    table, cache write, per-sequence GQA attention over the paged cache, o_proj)."""

    def __init__(self, cfg, inputs):
        index = ("row_offsets", "cache_lengths", "lookup_table")
        # float32 copies (its own cache: the compiled step's buffers stay untouched).
        f = {n: a.copy() if n in index else np.array(rt.from_abi(a, cfg.dtype), np.float32)
             for n, a in inputs.items()}
        self.cfg, self.f = cfg, f
        self.wqkv_t = np.ascontiguousarray(np.concatenate([f["wq"], f["wk"], f["wv"]]).T)
        self.wo_t = np.ascontiguousarray(f["wo"].T)
        self.table = ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len).astype(np.float32)

    def rope(self, x, pos):
        half = x.shape[-1] // 2
        cos = self.table[pos, 0::2][:, None, :]
        sin = self.table[pos, 1::2][:, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)

    def __call__(self):
        cfg, f = self.cfg, self.f
        h, hkv, d, page = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.page_size
        g, layer = h // hkv, cfg.layer_idx
        off, lengths, lookup, blocks = (f["row_offsets"], f["cache_lengths"],
                                        f["lookup_table"], f["blocks"])
        t = f["x"].shape[0]
        qkv = f["x"] @ self.wqkv_t
        q = qkv[:, : h * d].reshape(t, h, d)
        k = qkv[:, h * d: (h + hkv) * d].reshape(t, hkv, d)
        v = qkv[:, (h + hkv) * d:].reshape(t, hkv, d)
        pos = ref.positions(off, lengths)
        q, k = self.rope(q, pos), self.rope(k, pos)
        owner = np.repeat(np.arange(len(lengths)), np.diff(off))
        pages = lookup[owner, pos // page]
        blocks[pages, 0, layer, pos % page] = k
        blocks[pages, 1, layer, pos % page] = v
        o = np.empty((t, h, d), np.float32)
        scale = np.float32(1.0 / math.sqrt(d))
        for b in range(len(lengths)):
            n, c = int(off[b + 1] - off[b]), int(lengths[b])
            if n == 0:
                continue
            keys = c + n
            pg = lookup[b, : -(-keys // page)]
            kb = blocks[pg, 0, layer].reshape(-1, hkv, d)[:keys].transpose(1, 2, 0)  # [Hkv,D,S]
            vb = blocks[pg, 1, layer].reshape(-1, hkv, d)[:keys].transpose(1, 0, 2)  # [Hkv,S,D]
            qb = q[off[b]: off[b + 1]].reshape(n, hkv, g, d).transpose(1, 2, 0, 3)
            s = (qb.reshape(hkv, g * n, d) * scale) @ kb  # [Hkv, g*n, S]
            if n > 1:  # causal: query i (position c+i) sees keys j <= c+i
                vis = np.arange(keys)[None, :] <= (c + np.arange(n))[:, None]
                s = s.reshape(hkv, g, n, keys)
                s[:, :, ~vis] = -np.inf
                s = s.reshape(hkv, g * n, keys)
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            ob = (s @ vb).reshape(hkv, g, n, d).transpose(2, 0, 1, 3)
            o[off[b]: off[b + 1]] = ob.reshape(n, h, d)
        return o.reshape(t, h * d) @ self.wo_t


def layer_module(cfg):
    return ir.module_text(
        ir.layer_function("layer", cfg),
        ir.qkv_projection_function("qkv", cfg),
        ir.rope_function("rope_q", cfg),
        ir.rope_function("rope_k", cfg, heads=cfg.num_kv_heads),
        ir.kv_cache_store_function("store", cfg),
        ir.paged_flash_attention_function("attention", cfg),
        ir.linear_function("o_proj", cfg),
    )


def bench_layer(timer, compiler, sgemm, copy_gbs, quick, dtypes, results, rows):
    log("== layer step: hidden 2048, 16/4 heads, D 128, page 128")
    out = []
    for dt in dtypes:
        cfg = layer_config(dt)
        lib = compiler.library(f"layer_{dt}", layer_module(cfg))
        npd = rt.numpy_dtype(dt)
        size = npd.itemsize
        steps = [("prefill", [0], [512]), ("decode", [2048] * 8, [1] * 8)]
        for step, cached, new in steps:
            rng = np.random.default_rng(4)
            inputs = ir.random_layer_inputs(rng, cfg, cached, new)
            t_rows, hd = sum(new), cfg.hidden
            label = f"{dt} {step} " + (f"{new[0]} tok" if step == "prefill"
                                       else f"B={len(new)} x 1, cache {cached[0]}")

            # Reference (f64) before the first call updates the blocks.
            t0 = time.perf_counter()
            want_out, want_blocks = ir.reference_layer(cfg, inputs)
            ref_s = time.perf_counter() - t0
            layer_args = list(inputs.values())
            y = np.empty((t_rows, hd), npd)
            numpy_step = NumpyLayer(cfg, inputs)  # f32 copies, its own cache

            def compiled():
                lib.call("layer", layer_args, [y])

            _, first = timer.first(compiled)
            err = check(f"layer {label} vs reference.py", vals(y, dt), want_out, tol_of(dt))
            layer_idx = cfg.layer_idx
            check(f"layer {label} cache vs reference.py", vals(inputs["blocks"], dt)[:, :, layer_idx],
                  want_blocks[:, :, layer_idx], tol_of(dt))
            y_np, first_np = timer.first(numpy_step)
            check(f"numpy f32 {label} vs reference.py", y_np, want_out, tol_of(dt))
            del want_blocks

            # The parts alone, chained on the compiled results of the previous part.
            x, off, blocks, lengths, lookup = (inputs[n] for n in ("x", "row_offsets", "blocks",
                                                                   "cache_lengths", "lookup_table"))
            ws = [inputs[n] for n in ("wq", "wk", "wv")]
            q = np.empty((t_rows, cfg.num_heads, cfg.head_dim), npd)
            k = np.empty((t_rows, cfg.num_kv_heads, cfg.head_dim), npd)
            v = np.empty_like(k)
            qr, kr, o = np.empty_like(q), np.empty_like(k), np.empty_like(q)
            yp = np.empty((t_rows, hd), npd)
            o2 = o.reshape(t_rows, cfg.q_rows)
            parts = [
                ("qkv projection", lambda: lib.call("qkv", [x, *ws], [q, k, v])),
                ("rope q", lambda: lib.call("rope_q", [q, off, lengths], [qr])),
                ("rope k", lambda: lib.call("rope_k", [k, off, lengths], [kr])),
                ("kv cache store", lambda: lib.call("store", [kr, v, off, blocks, lengths, lookup])),
                ("attention", lambda: lib.call("attention", [qr, off, blocks, lengths, lookup], [o])),
                ("o_proj", lambda: lib.call("o_proj", [o2, inputs["wo"]], [yp])),
            ]
            firsts = []
            for _, fn in parts:
                firsts.append(timer.first(fn)[1])
            check(f"parts chained {label} vs reference.py", vals(yp, dt), want_out, tol_of(dt))

            t_layer = timer.measure(compiled, first)
            t_numpy = timer.measure(numpy_step, first_np)
            t_parts = [timer.measure(fn, f1) for (_, fn), f1 in zip(parts, firsts)]

            # Work counts.
            qkv_rows = cfg.q_rows + 2 * cfg.kv_rows
            pos_counts = [c + i + 1 for c, n in zip(cached, new) for i in range(n)]
            attn_flops = 4.0 * cfg.num_heads * cfg.head_dim * sum(pos_counts)
            kv_bytes = 2.0 * cfg.num_kv_heads * cfg.head_dim * size * sum(c + n for c, n in
                                                                           zip(cached, new))
            qkv_flops, o_flops = 2.0 * t_rows * hd * qkv_rows, 2.0 * t_rows * cfg.q_rows * hd
            qkv_bytes, o_bytes = hd * qkv_rows * size, cfg.q_rows * hd * size

            def rate(flops, nbytes, secs):
                if step == "prefill" and flops:
                    r = flops / secs / 1e9
                    return f"{r:.1f} GFLOP/s", f"{r / sgemm:.2f}x sgemm"
                if step == "decode" and nbytes:
                    r = nbytes / secs / 1e9
                    return f"{r:.1f} GB/s", f"{r / copy_gbs:.2f}x copy"
                return "", ""

            work = {"qkv projection": (qkv_flops, qkv_bytes), "attention": (attn_flops, kv_bytes),
                    "o_proj": (o_flops, o_bytes)}
            step_flops = qkv_flops + attn_flops + o_flops
            step_bytes = qkv_bytes + kv_bytes + o_bytes
            ratio = t_numpy.median / t_layer.median
            r, rc = rate(step_flops, step_bytes, t_layer.median)
            note = "prefill: FLOPs of qkv+attn+o" if step == "prefill" else \
                "decode: weight + K/V bytes"
            rows.append({"section": f"layer {dt}", "case": f"{step} step ({label.split(' ', 2)[2]})",
                         "time": fmt_time(t_layer.median), "rate": r,
                         "numpy": fmt_time(t_numpy.median), "vs_numpy": fmt_ratio(ratio),
                         "vs_ceiling": rc,
                         "note": f"{note}; reference.py f64 {fmt_time(ref_s)}"})
            log(f"  {label}: layer {fmt_time(t_layer.median)}, numpy f32 "
                f"{fmt_time(t_numpy.median)} ({ratio:.2f}x), reference.py {fmt_time(ref_s)}")
            part_json = {}
            for (name, _), tp in zip(parts, t_parts):
                flops, nbytes = work.get(name, (0, 0))
                r, rc = rate(flops, nbytes, tp.median)
                share = tp.median / t_layer.median
                rows.append({"section": f"layer {dt}", "case": f"  {step}: {name}",
                             "time": fmt_time(tp.median), "rate": r, "vs_ceiling": rc,
                             "note": f"{100 * share:.0f}% of the step"})
                log(f"    {name}: {fmt_time(tp.median)} ({100 * share:.0f}%)")
                part_json[name] = tp.to_json()
            psum = sum(tp.median for tp in t_parts)
            rows.append({"section": f"layer {dt}", "case": f"  {step}: sum of parts",
                         "time": fmt_time(psum),
                         "note": f"{100 * psum / t_layer.median:.0f}% of the step"})
            out.append({"dtype": dt, "step": step, "seq_lens_cached": cached,
                        "seq_lens_new": new, "rel_error": err, "layer": t_layer.to_json(),
                        "numpy_f32": t_numpy.to_json(), "reference_py_f64_s": ref_s,
                        "ratio_numpy": ratio, "parts": part_json, "sum_of_parts_s": psum,
                        "flops": step_flops, "bytes": step_bytes})
            del inputs, layer_args, numpy_step, blocks
    results["layer"] = {"config": dataclasses.asdict(layer_config("f32")) | {"dtype": list(dtypes)},
                        "steps": out}


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a subset with few runs (smoke test): prefill S=1024 only, decode L=4096 "
                         "B=1 only")
    ap.add_argument("--json", metavar="PATH", help="write every number, the machine and the date")
    ap.add_argument("--mcpu", help="passed to attn-compile (default: its own, native)")
    ap.add_argument("--compile-arg", action="append", default=[], metavar="ARG",
                    help="extra attn-compile flag, e.g. --compile-arg=--q-tile-rows=64 (repeatable)")
    ap.add_argument("--sections", default="prefill,decode,layer",
                    help="comma-separated subset of prefill,decode,layer (ceilings always run)")
    ap.add_argument("--layer-dtypes", default="f32,bf16", help="dtypes of the layer section")
    ap.add_argument("--keep", action="store_true", help="keep the .mlir/.so files (folder printed)")
    args = ap.parse_args()
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"prefill", "decode", "layer"}
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}")
    layer_dtypes = [s.strip() for s in args.layer_dtypes.split(",") if s.strip()]
    if any(dt not in ("f32", "bf16", "f16") for dt in layer_dtypes):
        ap.error("--layer-dtypes takes f32, bf16, f16")

    info = machine_info()
    started = datetime.datetime.now().astimezone()
    log(f"attn-mlir CPU benchmark, {started.isoformat(timespec='seconds')}")
    log(f"machine: {info['cpu_model']}; {info.get('physical_cores', '?')} cores, "
        f"{info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable); "
        f"SIMD: {' '.join(info.get('simd', [])) or '?'}")
    if "loadavg_at_start" in info:
        log(f"load average at start: {' '.join(f'{x:.2f}' for x in info['loadavg_at_start'])} "
            "(other work on the machine makes the numbers noisy)")
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None)
    log(f"numpy {np.__version__}; env: {env or '(OMP_NUM_THREADS, KMP_BLOCKTIME unset)'}")

    workdir = tempfile.mkdtemp(prefix="attn-bench-cpu-")
    compiler = Compiler(workdir, args.mcpu, args.compile_arg)
    log(f"attn-compile: {compiler.tool} {' '.join(compiler.flags()) or '(default flags)'}"
        + (f"; files in {workdir}" if args.keep else ""))
    timer = Timer(args.quick)
    results = {"date": started.isoformat(timespec="seconds"), "machine": info,
               "args": vars(args), "attn_compile_flags": compiler.flags()}
    rows = []
    status = 0
    t_start = time.perf_counter()
    try:
        sgemm, copy_gbs = bench_ceilings(timer, results, rows)
        if "prefill" in sections:
            bench_prefill(timer, compiler, sgemm, args.quick, results, rows)
        if "decode" in sections:
            bench_decode(timer, compiler, copy_gbs, args.quick, results, rows)
        if "layer" in sections:
            bench_layer(timer, compiler, sgemm, copy_gbs, args.quick, layer_dtypes, results, rows)
    except CheckFailed as e:
        log(f"\nFAILED: wrong result, nothing after it was timed:\n  {e}")
        results["failure"] = str(e)
        status = 1
    except rt.CompileError as e:
        log(f"\nFAILED: {e}")
        results["failure"] = str(e)
        status = 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["wall_s"] = time.perf_counter() - t_start

    if args.json:
        write_json(args.json, results)
        log(f"\nwrote {args.json}")
    if rows:
        log(f"\n== summary ({info['cpu_model']}, {info.get('physical_cores', '?')} cores; "
            f"medians; whole run {results['wall_s']:.0f} s)")
        print_table(rows)
    return status


if __name__ == "__main__":
    sys.exit(main())
