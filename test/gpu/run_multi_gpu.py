#!/usr/bin/env python3
"""Tensor- and data-parallel Llama-3-8B layers on the GPUs of one machine (issue 16): their
output and cache against the single-GPU layer, and their speed.

    /usr/bin/python3 test/gpu/run_multi_gpu.py --build OUTDIR [build dir]   (here: compile)
    python3 test/gpu/run_multi_gpu.py OUTDIR [--check-only]                 (2 or 4 GPUs)

Built (``attn-shard`` then ``attn-compile --target=cuda``, the layer of ``build_bench_layer.py``
with its RoPE table as the last argument): the unsharded layer, tensor parallel over 2 and 4
devices, data parallel over 2. On the GPU machine each configuration that fits the GPUs runs as
one process per rank (``torch.multiprocessing``); the runtime's NCCL communicator comes from
``attnNcclGetUniqueId`` (the parent) and ``attnNcclInitRank`` (each rank), and
``torch.distributed`` (NCCL) gives the ranks barriers and the all-reduce to compare with.

Checks, per rank, on prefill (3 sequences) and decode (4 sequences) steps drawn once
(``ir.random_layer_inputs``, the same seed everywhere), against the unsharded layer run on the
same GPU:
- tensor parallel: each rank's output (after the layer's all-reduce) against the whole output,
  max |d| / max |want| <= OUT_TOL (the partial o_proj outputs are rounded to bf16 before NCCL
  sums them, one more rounding than the unsharded layer); its cache (the rank's kv heads)
  against those heads of the unsharded cache, per element within CACHE_TOL of max |want|;
- data parallel: the rank's sequences' output rows and cache pages alike.

Speed (not with ``--check-only``), the Llama-3-8B layer, CUDA events around back-to-back calls
after a barrier, the slowest rank: prefill 8192 and decode 64 x 1024, tensor parallel against
the unsharded layer on one GPU (issue 16: >= 1.7x and >= 1.3x at TP = 2); data parallel, each
rank half the sequences of decode 64 x 1024 (throughput >= 1.8x one GPU); and the all-reduce
of a layer's output sizes, the runtime's (``attnNcclAllReduceSum``) against
``torch.distributed.all_reduce``, as bus bandwidth ``2 (N - 1) / N * bytes / time``.

Output: a table last, ``multi-gpu.json`` in ``$OUT`` if set, else OUTDIR.
"""

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(REPO, "python"), HERE, os.path.join(REPO, "benchmarks", "gpu")]

from attn import ir  # noqa: E402

CONFIGS = (("tensor", 2), ("tensor", 4), ("data", 2))
CHECKS = {"prefill": ([0, 0, 0], [300, 17, 120]), "decode": ([700, 129, 40, 1500], [1, 1, 1, 1])}
# Timed steps: (sequences, cached, new) as bench_layer.STEPS.
TIMED = {"prefill-8192": (1, 0, 8192), "decode-64x1024": (64, 1024, 1)}
OUT_TOL, CACHE_TOL = 8e-3, 2.0**-6 + 1e-6
ALL_REDUCE_ROWS = (1, 64, 2048, 8192)
NCCL_BF16 = 9


def layer_config():
    from build_bench_layer import models

    return models()["llama3-8b"]


def module_name(strategy, devices):
    return "unsharded" if strategy is None else f"{strategy}{devices}"


def signature(text):
    """The tensor types of ``@layer``'s arguments, as shapes (None: dynamic)."""
    head = re.search(r"func\.func @layer\((.*?)\)\s*->", text, re.S).group(1)
    shapes = []
    for dims in re.findall(r"tensor<([^>]*)>", head):
        shapes.append([None if d == "?" else int(d) for d in dims.split("x")[:-1]])
    return shapes


def build(build_dir, outdir):
    cfg = layer_config()
    text = ir.module_text(ir.layer_function("layer", cfg, freqs_arg=True))
    texts = {module_name(None, 1): text}
    for strategy, devices in CONFIGS:
        texts[module_name(strategy, devices)] = subprocess.run(
            [os.path.join(build_dir, "bin", "attn-opt"),
             f"--attn-shard=strategy={strategy} devices={devices}"],
            input=text, capture_output=True, text=True, check=True).stdout
    manifest = {"config": cfg.__dict__, "modules": {}}
    for name, module in texts.items():
        mlir, so = (os.path.join(outdir, f"{name}.{ext}") for ext in ("mlir", "so"))
        with open(mlir, "w") as f:
            f.write(module)
        subprocess.run([os.path.join(build_dir, "bin", "attn-compile"), "--target=cuda", mlir,
                        "-o", so], check=True)
        manifest["modules"][name] = {"so": f"{name}.so", "arguments": signature(module)}
        print(f"  {name}: ok", flush=True)
    shutil.copy2(os.path.join(build_dir, "lib", "libattn_cuda_runtime.so"), outdir)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


# ---------------------------------------------------------------------------------------------
# One rank


def shard_inputs(cfg, inputs, strategy, devices, rank):
    """The rank's arguments (numpy, ABI order) and what of the whole result it owns:
    ``(args, rows, kv_heads, pages)`` (rows: slice of the output; kv_heads: slice of the cache's
    heads; pages: the cache pages it writes, None for all)."""
    args = dict(inputs)
    if strategy == "tensor":
        hq, hkv, d = cfg.num_heads // devices, cfg.num_kv_heads // devices, cfg.head_dim
        q_rows = slice(rank * hq * d, (rank + 1) * hq * d)
        kv_rows = slice(rank * hkv * d, (rank + 1) * hkv * d)
        assert not cfg.stacked and not cfg.bias, "the test layer has separate q/k/v, no bias"
        args["wq"] = inputs["wq"][q_rows]
        args["wk"], args["wv"] = inputs["wk"][kv_rows], inputs["wv"][kv_rows]
        args["wo"] = inputs["wo"][:, q_rows]
        heads = slice(rank * hkv, (rank + 1) * hkv)
        args["blocks"] = inputs["blocks"][:, :, :, :, heads]
        return ({n: np.ascontiguousarray(a) for n, a in args.items()},
                slice(None), heads, None)
    offsets = inputs["row_offsets"]
    batch = len(offsets) - 1
    first, last = rank * batch // devices, (rank + 1) * batch // devices
    rows = slice(int(offsets[first]), int(offsets[last]))
    args["x"] = inputs["x"][rows]
    args["row_offsets"] = (offsets[first:last + 1] - offsets[first]).astype(offsets.dtype)
    args["cache_lengths"] = inputs["cache_lengths"][first:last]
    args["lookup_table"] = inputs["lookup_table"][first:last]
    pages = np.unique(args["lookup_table"])
    pages = pages[pages < inputs["blocks"].shape[0]]
    return ({n: np.ascontiguousarray(a) for n, a in args.items()}, rows, slice(None), pages)


def rank_main(rank, devices, strategy, outdir, unique_id, store, check_only):
    import torch
    import torch.distributed as dist

    import device_abi

    torch.cuda.set_device(rank)
    torch.zeros(1, device="cuda")  # the primary context, as the runtime uses it
    dist.init_process_group("nccl", init_method=f"file://{store}", rank=rank,
                            world_size=devices, device_id=torch.device("cuda", rank))
    with open(os.path.join(outdir, "manifest.json")) as f:
        manifest = json.load(f)
    cfg = ir.LayerConfig(**manifest["config"])
    runtime = ctypes.CDLL(os.path.join(outdir, "libattn_cuda_runtime.so"))
    status = runtime.attnNcclInitRank(ctypes.c_char_p(unique_id), rank, devices)
    assert status == 0, f"attnNcclInitRank: NCCL result {status}"
    name = module_name(strategy, devices)
    libs = {n: device_abi.load(os.path.join(outdir, manifest["modules"][n]["so"]))
            for n in ("unsharded", name)}
    freqs = ir.rope_table_input(cfg)

    def tensor(a):
        if a.dtype == np.uint16:  # bf16 bits
            return torch.from_numpy(a.view(np.int16)).cuda().view(torch.bfloat16)
        return torch.from_numpy(np.ascontiguousarray(a)).cuda()

    def bind(lib_name, args):
        """A call on device copies of ``args`` (+ the RoPE table); its (out, blocks)."""
        expected = manifest["modules"][lib_name]["arguments"]
        values = [*args.values(), freqs]
        for value, shape in zip(values, expected):
            assert len(value.shape) == len(shape) and all(
                s is None or s == v for s, v in zip(shape, value.shape)), (
                f"{lib_name}: argument of shape {value.shape}, the function takes {shape}")
        held = [tensor(v) for v in values]
        blocks = held[list(args).index("blocks")]
        out = torch.full((held[0].shape[0], cfg.hidden), float("nan"), dtype=torch.bfloat16,
                         device="cuda")
        call = device_abi.DeviceFunction(libs[lib_name], "layer").bind(held, [out])
        call.held = held  # the descriptors do not hold their tensors
        return call, out, blocks

    result = {"rank": rank, "checks": [], "timed": {}, "all_reduce": []}
    for step, (cached, new) in CHECKS.items():
        inputs = ir.random_layer_inputs(np.random.default_rng(16), cfg, cached, new)
        call, want_out, want_blocks = bind("unsharded", inputs)
        call()
        args, rows, heads, pages = shard_inputs(cfg, inputs, strategy, devices, rank)
        call, out, blocks = bind(name, args)
        call()
        torch.cuda.synchronize()
        want = want_out[rows].double()
        out_err = float((out.double() - want).abs().max() / want.abs().max())
        want_cache = want_blocks[:, :, :, :, heads].double()
        got_cache = blocks.double()
        if pages is not None:
            index = torch.from_numpy(pages).cuda()
            want_cache, got_cache = want_cache[index], got_cache[index]
        cache_err = float((got_cache - want_cache).abs().max() / want_cache.abs().max())
        ok = out_err <= OUT_TOL and cache_err <= CACHE_TOL  # NaN fails
        result["checks"].append({"step": step, "out_err": out_err, "cache_err": cache_err,
                                 "ok": ok})
    if not check_only:
        time_steps(torch, dist, cfg, bind, strategy, devices, rank, result)
        time_all_reduce(torch, dist, runtime, cfg, devices, result)
    with open(os.path.join(outdir, f"result-{name}-rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


def per_call_us(torch, call, calls, dist=None):
    """CUDA-event time per call over ``calls`` back-to-back calls (after a warm-up call and,
    with ``dist``, a barrier of the ranks)."""
    from bench_gpu import event_us

    call()
    torch.cuda.synchronize()
    if dist:
        dist.barrier()
    return event_us(torch, call, calls)


def time_steps(torch, dist, cfg, bind, strategy, devices, rank, result):
    for step, (sequences, cached, new) in TIMED.items():
        if strategy == "data" and step.startswith("prefill"):
            continue  # one sequence: nothing to split
        inputs = ir.random_layer_inputs(np.random.default_rng(1), cfg, [cached] * sequences,
                                        [new] * sequences)
        calls = 10 if step.startswith("prefill") else 100
        single = None
        if rank == 0:  # the unsharded layer on one GPU, the others waiting
            single = per_call_us(torch, bind("unsharded", inputs)[0], calls)
        dist.barrier()
        args = shard_inputs(cfg, inputs, strategy, devices, rank)[0]
        ours = per_call_us(torch, bind(module_name(strategy, devices), args)[0], calls, dist)
        result["timed"][step] = {"single_us": single, "sharded_us": ours}


def time_all_reduce(torch, dist, runtime, cfg, devices, result):
    runtime.attnNcclAllReduceSum.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                             ctypes.c_int32]
    for rows in ALL_REDUCE_ROWS:
        send = torch.randn((rows, cfg.hidden), device="cuda").to(torch.bfloat16)
        receive = torch.empty_like(send)
        calls = 50
        ours = per_call_us(torch, lambda: runtime.attnNcclAllReduceSum(
            send.data_ptr(), receive.data_ptr(), send.numel(), NCCL_BF16), calls, dist)
        theirs = per_call_us(torch, lambda: dist.all_reduce(send), calls, dist)
        size = send.numel() * send.element_size()
        factor = 2 * (devices - 1) / devices
        result["all_reduce"].append({"rows": rows, "bytes": size, "ours_us": ours,
                                     "torch_us": theirs,
                                     "ours_bus_gbps": factor * size / ours / 1e3,
                                     "torch_bus_gbps": factor * size / theirs / 1e3})


# ---------------------------------------------------------------------------------------------
# The parent


def run(outdir, check_only):
    import torch
    import torch.multiprocessing as mp

    gpus = torch.cuda.device_count()
    runtime = ctypes.CDLL(os.path.join(outdir, "libattn_cuda_runtime.so"))
    report = {"device": torch.cuda.get_device_name(0), "gpus": gpus,
              "torch": torch.__version__, "configs": {}}
    for strategy, devices in CONFIGS:
        if devices > gpus:
            print(f"{strategy} {devices}: skipped, {gpus} GPUs", flush=True)
            continue
        unique_id = ctypes.create_string_buffer(128)
        status = runtime.attnNcclGetUniqueId(unique_id)
        assert status == 0, f"attnNcclGetUniqueId: NCCL result {status}"
        store = tempfile.mktemp(prefix="attn-multi-gpu-")
        mp.spawn(rank_main, args=(devices, strategy, outdir, unique_id.raw, store, check_only),
                 nprocs=devices, join=True)
        name = module_name(strategy, devices)
        ranks = []
        for rank in range(devices):
            with open(os.path.join(outdir, f"result-{name}-rank{rank}.json")) as f:
                ranks.append(json.load(f))
        report["configs"][name] = ranks
        print(summary(name, ranks), flush=True)
    out_dir = os.environ.get("OUT") or outdir
    with open(os.path.join(out_dir, "multi-gpu.json"), "w") as f:
        json.dump(report, f, indent=1)
    ok = all(c["ok"] for ranks in report["configs"].values() for r in ranks
             for c in r["checks"])
    return 0 if ok and report["configs"] else 1


def summary(name, ranks):
    lines = [f"{name}:"]
    for r in ranks:
        for c in r["checks"]:
            lines.append(f"  rank {r['rank']} {c['step']:8} out {c['out_err']:.2e} (tol "
                         f"{OUT_TOL:g}) cache {c['cache_err']:.2e} (tol {CACHE_TOL:.3g}) "
                         f"{'ok' if c['ok'] else 'FAIL'}")
    for step in ranks[0]["timed"]:
        single = ranks[0]["timed"][step]["single_us"]
        sharded = max(r["timed"][step]["sharded_us"] for r in ranks)
        # Data parallel: each rank takes half the sequences, so the ratio of the times is
        # that of the throughputs.
        what = "throughput" if name.startswith("data") else "speed-up"
        lines.append(f"  {step}: one GPU {single:.1f} us, {name} {sharded:.1f} us (slowest "
                     f"rank): {what} {single / sharded:.2f}x")
    for a in ranks[0]["all_reduce"]:
        lines.append(f"  all-reduce {a['rows']} x hidden bf16: ours {a['ours_us']:.1f} us "
                     f"({a['ours_bus_gbps']:.0f} GB/s bus), torch.distributed {a['torch_us']:.1f}"
                     f" us ({a['torch_bus_gbps']:.0f} GB/s)")
    return "\n".join(lines)


def main():
    if sys.argv[1:2] == ["--build"]:  # on the machine with MLIR
        outdir = sys.argv[2]
        os.makedirs(outdir, exist_ok=True)
        build(sys.argv[3] if len(sys.argv) > 3 else os.path.join(REPO, "build"), outdir)
        return 0
    return run(sys.argv[1], "--check-only" in sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
