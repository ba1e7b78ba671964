#!/usr/bin/python3
"""CPU benchmark of where RoPE's cos/sin come from: RoPE of q and k + the cache store (the
``attn.rope_store`` the default pipeline fuses them into) of the Llama-3-8B layer (bf16, 32 q /
8 kv heads, D 128, page 128, theta 500000 with llama3 scaling, max_seq_len 8192: a
``tensor<8192x128xf32>`` table, 4 MiB, above the fold limit), with the table

  recompute  ``attn.rope_freqs #rope`` (not folded): each row's cos/sin computed from the
             attribute (f64 sin/cos, once per row, shared by the q and k heads),
  argument   a ``freqs`` function argument (MAX's ``freqs_cis``, computed once per model):
             cos/sin read from it,
  constant   the table as a dense ``arith.constant`` in the module (what folding produces
             for small tables): read from a global of the library.

Steps: decode of 8 and 64 sequences x 1 token (positions spread over [1000, 8000)), prefill
of 512 and 2048 tokens (one sequence, empty cache). Before timing, every variant's rotated q
and written k / v are checked against ``attn.reference`` (bf16 tolerance). Also printed: the
one-off cost of the whole table (``attn.rope_freqs`` compiled alone, and numpy's
``reference.rope_table``) and each variant's compile time and library size.
Each call (memref descriptors made once) is timed: wall and the process's CPU time, which
load from other processes inflates less; the variants' calls are interleaved; medians are
printed.

    /usr/bin/python3 benchmarks/cpu/bench_rope_table.py [--quick] [--json out.json]
"""

import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import bench_cpu as bc  # noqa: E402
from bench_cpu import ir, rt  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import builder  # noqa: E402

LLAMA3 = {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position": 8192}
VARIANTS = ("recompute", "argument", "constant")
# step -> (cached lengths, new tokens) per sequence
STEPS = {
    "decode 8x1": (list(np.linspace(1000, 7999, 8).astype(int)), [1] * 8),
    "decode 64x1": (list(np.linspace(1000, 7999, 64).astype(int)), [1] * 64),
    "prefill 512": ([0], [512]),
    "prefill 2048": ([0], [2048]),
}


def llama3_8b():
    return ir.LayerConfig(hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128, dtype="bf16",
                          page_size=128, num_layers=1, layer_idx=0, max_seq_len=8192,
                          rope={"theta": 500000.0, "interleaved": False, "scaling": LLAMA3})


def table_constant(cfg):
    """The f32 table as an ``arith.constant`` (hex: raw little-endian bytes)."""
    table = ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len).astype("<f4")
    t = ir.tensor_type(table.shape, "f32")
    return f'%freqs = arith.constant dense<"0x{table.tobytes().hex().upper()}"> : {t}'


def rope_store_function(name, cfg, variant):
    """``(q, k, v, row_offsets, blocks, cache_lengths, lookup_table[, freqs]) -> (rotated q,
    updated blocks)``: rope of q and k, k and v stored into layer 0."""
    d, dt = cfg.head_dim, cfg.dtype
    qt = ir.tensor_type([None, cfg.num_heads, d], dt)
    kt = ir.tensor_type([None, cfg.num_kv_heads, d], dt)
    ft = ir.tensor_type([cfg.max_seq_len, d], "f32")
    offsets, lengths, lookup = ir._index_types(None)
    blocks = cfg.blocks_type()
    args = [("q", qt), ("k", kt), ("v", kt), ("row_offsets", offsets), ("blocks", blocks),
            ("cache_lengths", lengths), ("lookup_table", lookup)]
    body = []
    if variant == "argument":
        args.append(("freqs", ft))
    elif variant == "constant":
        body.append(table_constant(cfg))
    else:
        body.append(f"%freqs = attn.rope_freqs {cfg.rope_attr()} -> {ft}")
    pos = "positions(%row_offsets, %cache_lengths)"
    body += [f"%qr = attn.rope %q, %freqs {pos} : {qt}, {ft}, {offsets}, {lengths}",
             f"%kr = attn.rope %k, %freqs {pos} : {kt}, {ft}, {offsets}, {lengths}",
             f"%new_blocks = attn.kv_cache_store %kr, %v into %blocks layer 0 {pos} "
             f"pages(%lookup_table) : {kt}, {kt}, {offsets}, {lengths}, {lookup}, {blocks}"]
    return builder.function_text(name, args, [qt, blocks], body, ["qr", "new_blocks"])


def step_inputs(rng, cfg, cached, new):
    """ABI arrays of one step. Only the pages the new rows land in exist (the store touches
    nothing else): every other lookup entry points at page 0."""
    cached, new = np.asarray(cached), np.asarray(new)
    page = cfg.page_size
    first, last = cached // page, (cached + new - 1) // page
    lookup = np.zeros((len(cached), int(last.max()) + 1), dtype=np.int32)
    next_page = 1
    for b in range(len(cached)):
        for p in range(first[b], last[b] + 1):
            lookup[b, p] = next_page
            next_page += 1
    tokens = int(new.sum())
    shape = (next_page, 2, 1, page, cfg.num_kv_heads, cfg.head_dim)

    def bf16(*s):
        return rt.to_abi(rng.standard_normal(s), "bf16")

    return {
        "q": bf16(tokens, cfg.num_heads, cfg.head_dim),
        "k": bf16(tokens, cfg.num_kv_heads, cfg.head_dim),
        "v": bf16(tokens, cfg.num_kv_heads, cfg.head_dim),
        "row_offsets": np.concatenate([[0], np.cumsum(new)]).astype(np.int32),
        "blocks": bf16(*shape),
        "cache_lengths": cached.astype(np.int32),
        "lookup_table": lookup,
    }


def check_step(cfg, inputs, qr, blocks, what):
    """Rotated q and the written k / v rows against the reference."""
    rope = cfg.rope
    want_q = ref.apply_rope(bc.vals(inputs["q"], "bf16"), inputs["row_offsets"],
                            inputs["cache_lengths"], rope)
    bc.check(f"{what} q", bc.vals(qr, "bf16"), want_q, bc.TOL_BF16)
    want_k = ref.apply_rope(bc.vals(inputs["k"], "bf16"), inputs["row_offsets"],
                            inputs["cache_lengths"], rope)
    pos = ref.positions(inputs["row_offsets"], inputs["cache_lengths"])
    seq = np.repeat(np.arange(len(inputs["cache_lengths"])), np.diff(inputs["row_offsets"]))
    pages = inputs["lookup_table"][seq, pos // cfg.page_size]
    got = bc.vals(blocks, "bf16")[pages, :, 0, pos % cfg.page_size]  # [T, 2, Hkv, D]
    bc.check(f"{what} k", got[:, 0], want_k, bc.TOL_BF16)
    bc.check(f"{what} v", got[:, 1], bc.vals(inputs["v"], "bf16"), 0.0)


def bound_call(lib, arrays):
    """A no-argument call of ``f`` on ``arrays`` with the descriptors made once, so that the
    Python side costs the same for every variant (the argument variant has one array more)."""
    descriptors = [rt.as_descriptor(a) for a in arrays]
    fn = lib.function("f")
    fn.argtypes = [ctypes.c_void_p] * len(descriptors)
    pointers = [ctypes.addressof(d) for d in descriptors]

    def call():
        fn(*pointers)

    call.descriptors = descriptors  # keep them alive with the call
    return call


def interleaved_runs(timer, calls, budget_s):
    """Per-call wall and process CPU times of every variant, calls interleaved (the order
    rotating) so that load from other processes hits the variants alike: ``({variant:
    [wall s]}, {variant: [cpu s]})``, at least 5 runs each, about ``budget_s`` in all."""
    names = list(calls)
    wall, cpu = {v: [] for v in names}, {v: [] for v in names}
    timer.settle()
    start = time.perf_counter()
    i = 0
    while i < 5 * len(names) or time.perf_counter() - start < budget_s:
        v = names[(i + i // len(names)) % len(names)]
        w0, c0 = time.perf_counter(), time.process_time()
        calls[v]()
        cpu[v].append(time.process_time() - c0)
        wall[v].append(time.perf_counter() - w0)
        i += 1
    return wall, cpu


def bench_table(timer, compiler, cfg):
    """The one-off cost of the whole table: compiled ``attn.rope_freqs`` and numpy."""
    lib = compiler.library("table", ir.module_text(ir.rope_freqs_function("f", cfg)))
    out = np.zeros((cfg.max_seq_len, cfg.head_dim), dtype=np.float32)

    def compiled():
        lib.call("f", [], [out])

    _, first = timer.first(compiled)
    want = ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len)
    bc.check("rope_freqs table", out, want, 1e-6)
    t_compiled = timer.measure(compiled, first)

    def numpy_table():
        return ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len).astype(np.float32)

    _, first = timer.first(numpy_table)
    return t_compiled, timer.measure(numpy_table, first)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    cfg = llama3_8b()
    timer = bc.Timer(args.quick)
    results = {"machine": bc.machine_info(), "config": "Llama-3-8B rope + cache store, bf16",
               "builds": {}, "cases": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="attn-bench-rope-table-") as work:
        compiler = bc.Compiler(work)
        libs = {}
        for variant in VARIANTS:
            t0 = time.perf_counter()
            libs[variant] = compiler.library(variant, ir.module_text(
                rope_store_function("f", cfg, variant)))
            results["builds"][variant] = {
                "compile_s": time.perf_counter() - t0,
                "so_bytes": os.path.getsize(libs[variant].path),
                "mlir_bytes": os.path.getsize(os.path.join(work, variant + ".mlir"))}
        t_table, t_numpy = bench_table(timer, compiler, cfg)
        results["table"] = {"compiled": t_table.to_json(), "numpy": t_numpy.to_json()}
        freqs = ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len).astype(np.float32)
        for step, (cached, new) in STEPS.items():
            inputs = step_inputs(np.random.default_rng(7), cfg, cached, new)
            tokens = sum(new)
            calls = {}
            for variant in VARIANTS:
                call_args = dict(inputs, blocks=inputs["blocks"].copy())
                if variant == "argument":
                    call_args["freqs"] = freqs
                qr = np.zeros_like(inputs["q"])
                call = bound_call(libs[variant], [*call_args.values(), qr])
                call()  # the checked call, also the warm-up
                check_step(cfg, inputs, qr, call_args["blocks"], f"{step}/{variant}")
                calls[variant] = call
            wall, cpu = interleaved_runs(timer, calls, 0.5 if args.quick else 4.0)
            case = {"step": step, "tokens": tokens, "wall_s": wall, "cpu_s": cpu}
            results["cases"].append(case)
            med = {v: (statistics.median(wall[v]), statistics.median(cpu[v])) for v in VARIANTS}
            rows.append((step, tokens,
                         *(f"{bc.fmt_time(med[v][0])} ({bc.fmt_time(med[v][1])})"
                           for v in VARIANTS),
                         *(f"{med['recompute'][0] / med[v][0]:.2f}x "
                           f"({med['recompute'][1] / med[v][1]:.2f}x)" for v in VARIANTS[1:])))
            bc.log(f"{step:13} {len(wall['recompute'])} runs: " + "  ".join(
                f"{v} {bc.fmt_time(med[v][0]):>9}" for v in VARIANTS))
    print()
    print("median wall time per call (CPU time of the process per call)")
    header = ("step", "tokens", *VARIANTS, *(f"recompute/{v}" for v in VARIANTS[1:]))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    print()
    print(f"whole {cfg.max_seq_len}x{cfg.head_dim} table once: attn.rope_freqs compiled "
          f"{bc.fmt_time(t_table.median)}, numpy reference {bc.fmt_time(t_numpy.median)}")
    for variant, b in results["builds"].items():
        print(f"{variant:9}: compile {b['compile_s']:.2f} s, library {b['so_bytes'] / 1e6:.2f} MB, "
              f"input {b['mlir_bytes'] / 1e6:.2f} MB")
    bc.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
