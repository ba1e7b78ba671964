#!/usr/bin/python3
"""CPU benchmark of the fusion passes: a decode step and a prefill step of the Llama-3-8B
attention layer (bf16, hidden 4096, 32 / 8 heads, D 128, page 128, llama3 RoPE), compiled with
the default (fused) pipeline and with ``--no-fuse``, measured in one process.

Functions:
  layer        the whole layer (``ir.layer_function``): after the expansion, fused = one q/k/v
               projection pass over the separate weights' output + ``attn.rope_store``;
               unfused = ``attn.rope`` x2 + ``attn.kv_cache_store``.
  non-attention the layer without the attention op (``ir.primitive_layer_function(part=
               "projections")``: q/k/v linears, rope, store, o_proj of the rotated q), written
               as a framework exports it; fused, the linears become one ``attn.qkv_projection``
               and rope + store one ``attn.rope_store``.
Steps: decode = 8 sequences, one new token each over a 512-token cache; prefill = one sequence
of 512 tokens, empty cache.

Before timing, the fused and unfused outputs (and written caches) are compared (bf16 tolerance
2e-2 relative to max|out|). Bytes moved are computed analytically (``benchmarks/fusion_bytes.py``).
Times are medians (bench_cpu.Timer).

    /usr/bin/python3 benchmarks/cpu/bench_fusion.py [--quick] [--json out.json]
"""

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import bench_cpu as bc  # noqa: E402
from bench_cpu import ir, rt  # noqa: E402
from fusion_bytes import step_bytes  # noqa: E402

LLAMA3 = {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position": 8192}
STEPS = {"decode": ([512] * 8, [1] * 8), "prefill": ([0], [512])}


def llama3_8b():
    return ir.LayerConfig(hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128, dtype="bf16",
                          page_size=128, num_layers=1, layer_idx=0, max_seq_len=2048,
                          rope={"theta": 500000.0, "interleaved": False, "scaling": LLAMA3})


def module(part, cfg):
    if part == "layer":
        return ir.module_text(ir.layer_function("f", cfg))
    return ir.module_text(ir.primitive_layer_function("f", cfg, part="projections"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    cfg = llama3_8b()
    timer = bc.Timer(args.quick)
    results = {"machine": bc.machine_info(), "config": "Llama-3-8B layer, bf16", "cases": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="attn-bench-fusion-") as work:
        fused_c = bc.Compiler(work)
        unfused_c = bc.Compiler(work, extra_args=["--no-fuse"])
        libs = {}
        for part in ("layer", "projections"):
            text = module(part, cfg)
            libs[part, True] = fused_c.library(f"{part}-fused", text)
            libs[part, False] = unfused_c.library(f"{part}-unfused", text)
        for step, (cached, new) in STEPS.items():
            rng = np.random.default_rng(7)
            inputs = ir.random_layer_inputs(rng, cfg, cached, new)
            tokens = sum(new)
            kv_rows = sum(c + n for c, n in zip(cached, new))
            for part in ("layer", "projections"):
                outs, calls, firsts = {}, {}, {}
                for fused in (True, False):
                    lib = libs[part, fused]
                    blocks0 = inputs["blocks"].copy()
                    call_args = dict(inputs, blocks=blocks0)
                    out = np.zeros((tokens, cfg.hidden), dtype=np.uint16)

                    def call(lib=lib, call_args=call_args, out=out):
                        lib.call("f", list(call_args.values()), [out])

                    _, firsts[fused] = timer.first(call)
                    outs[fused] = (bc.vals(out, "bf16"), bc.vals(blocks0, "bf16"))
                    calls[fused] = call
                # Rounds alternate fused / unfused (load from other processes hits both
                # alike); the time of each is the median of its round medians.
                rounds = {True: [], False: []}
                for r in range(1 if args.quick else 5):
                    for fused in ((True, False) if r % 2 == 0 else (False, True)):
                        rounds[fused].append(timer.measure(calls[fused], firsts[fused]))
                times = {f: sorted(rs, key=lambda t: t.median)[len(rs) // 2]
                         for f, rs in rounds.items()}
                err = bc.rel_error(outs[True][0], outs[False][0])
                cache_err = bc.rel_error(outs[True][1], outs[False][1])
                if not (err <= 2e-2 and cache_err <= 2e-2):
                    raise bc.CheckFailed(f"{step}/{part}: fused vs unfused out {err:.2e}, "
                                         f"cache {cache_err:.2e}")
                by = {f: step_bytes(cfg, tokens, kv_rows if part == "layer" else 0, fused=f,
                                    part=part) for f in (True, False)}
                speedup = times[False].median / times[True].median
                name = "non-attention" if part == "projections" else "layer"
                case = {"step": step, "part": name, "tokens": tokens,
                        "fused": times[True].to_json(), "unfused": times[False].to_json(),
                        "round_medians_fused_s": [t.median for t in rounds[True]],
                        "round_medians_unfused_s": [t.median for t in rounds[False]],
                        "speedup": speedup, "bytes_fused": by[True], "bytes_unfused": by[False],
                        "fused_vs_unfused_rel_err": err}
                results["cases"].append(case)
                rows.append((step, name, bc.fmt_time(times[False].median),
                             bc.fmt_time(times[True].median), f"{speedup:.2f}x",
                             f"{by[False]['total'] / 1e6:.2f}", f"{by[True]['total'] / 1e6:.2f}",
                             f"{err:.1e}"))
                bc.log(f"{step:8} {name:14} unfused {bc.fmt_time(times[False].median):>9} "
                       f"fused {bc.fmt_time(times[True].median):>9} ({speedup:.2f}x); MB "
                       f"{by[False]['total'] / 1e6:.2f} -> {by[True]['total'] / 1e6:.2f}")
    print()
    bc.print_columns(("step", "part", "unfused", "fused", "speedup", "MB unfused", "MB fused",
                      "err"), rows)
    bc.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
