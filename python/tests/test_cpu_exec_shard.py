"""Sharded layers on CPU processes: ``attn-shard`` then ``attn-compile``, run under ``mpirun``.

Every rank's output must match the unsharded layer (compiled alike, run in this process; f32
1e-5, bf16 1e-2 relative to the largest value) and its cache blocks the unsharded layer's
(tensor parallel: its kv heads; data parallel: the pages of its sequences, the rest unchanged).
Prefill and decode, tensor and data parallel, 2 and 4 ranks (4 oversubscribed on 2 cores).
The per-rank inputs come from ``attn.shard``, whose inverse is checked too.
"""

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cpu_exec_support import Build, assert_close, needs_attn_compile, values

from attn import ir  # noqa: E402
from attn import runtime as rt  # noqa: E402
from attn import shard  # noqa: E402

MPIRUN = shutil.which("mpirun")
pytestmark = [needs_attn_compile,
              pytest.mark.skipif(MPIRUN is None, reason="mpirun (openmpi-bin) not installed")]

TOL = {"f32": 1e-5, "bf16": 1e-2}
CONFIGS = {
    # Qwen-like: separate weights, biases, qk-norm.
    "f32": ir.LayerConfig(hidden=64, num_heads=8, num_kv_heads=4, head_dim=16, dtype="f32",
                          bias=True, qk_norm=True, num_layers=2, layer_idx=1),
    # Phi-3-like: one stacked qkv weight.
    "bf16": ir.LayerConfig(hidden=64, num_heads=8, num_kv_heads=4, head_dim=16, dtype="bf16",
                           stacked=True, num_layers=2, layer_idx=0),
}
SCENARIOS = {"prefill": ([0, 0, 0], [9, 17, 4]), "decode": ([21, 5, 40], [1, 1, 1])}


def sharded_text(cfg, strategy, devices):
    text = ir.module_text(ir.layer_function("layer", cfg))
    attn_opt = os.path.join(os.path.dirname(rt.attn_compile_path()), "attn-opt")
    return subprocess.run([attn_opt, f"--attn-shard=strategy={strategy} devices={devices}"],
                          input=text, capture_output=True, text=True, check=True).stdout


@dataclasses.dataclass
class ShardCase:
    dtype: str
    strategy: str
    devices: int
    scenario: str

    @property
    def id(self):
        return f"{self.dtype}-{self.strategy}{self.devices}-{self.scenario}"

    def prebuild(self):
        UNSHARDED[self.dtype].prebuild()
        SHARDED[self.dtype, self.strategy, self.devices].prebuild()


CASES = [ShardCase(d, s, n, sc) for d in CONFIGS for s in ("tensor", "data") for n in (2, 4)
         for sc in SCENARIOS if n == 2 or (d == "f32" and sc == "decode")]
UNSHARDED = {d: Build(f"shard-unsharded-{d}", lambda cfg=cfg: ir.module_text(
    ir.layer_function("layer", cfg))) for d, cfg in CONFIGS.items()}
SHARDED = {(c.dtype, c.strategy, c.devices): Build(
    f"shard-{c.dtype}-{c.strategy}{c.devices}",
    lambda c=c: sharded_text(CONFIGS[c.dtype], c.strategy, c.devices)) for c in CASES}


def run_unsharded(build, cfg, inputs):
    inputs = {name: array.copy() for name, array in inputs.items()}
    out = np.zeros((inputs["x"].shape[0], cfg.hidden), dtype=inputs["x"].dtype)
    build.library().call("layer", list(inputs.values()), [out])
    return out, inputs.get("blocks")


def check_tensor_parallel(cfg, outputs, want_out, want_blocks, what):
    """Every rank's output is the whole layer's, its blocks the whole layer's of its kv heads."""
    kv_share = cfg.num_kv_heads // len(outputs)
    for rank, (out, blocks) in enumerate(outputs):
        where = f" (rank {rank} of {what})"
        assert_close(values(out, cfg.dtype), values(want_out, cfg.dtype), TOL[cfg.dtype], "out",
                     where)
        heads = slice(rank * kv_share, (rank + 1) * kv_share)
        assert_close(values(blocks, cfg.dtype), values(want_blocks[..., heads, :], cfg.dtype),
                     TOL[cfg.dtype], "blocks", where)


def run_ranks(library, shards, tmp_path):
    for rank, inputs in enumerate(shards):
        np.savez(tmp_path / f"in-{rank}.npz", **inputs, dtype="")
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_btl="self,vader")
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shard_worker.py")
    result = subprocess.run(
        [MPIRUN, "-np", str(len(shards)), "--oversubscribe", *root, sys.executable, worker,
         library.path, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"mpirun failed:\n{result.stdout}\n{result.stderr}"
    outputs = []
    for rank in range(len(shards)):
        with np.load(tmp_path / f"out-{rank}.npz") as data:
            outputs.append((data["out"], data["blocks"] if "blocks" in data.files else None))
    return outputs


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sharded_layer(case, tmp_path):
    cfg = CONFIGS[case.dtype]
    rng = np.random.default_rng(list(map(ord, case.id)))
    inputs = ir.random_layer_inputs(rng, cfg, *SCENARIOS[case.scenario])
    want_out, want_blocks = run_unsharded(UNSHARDED[case.dtype], cfg, inputs)
    n = case.devices
    if case.strategy == "tensor":
        shards = [shard.tensor_parallel_shard(cfg, inputs, r, n) for r in range(n)]
        merged = shard.tensor_parallel_merge(cfg, shards)
        for name, array in inputs.items():
            assert np.array_equal(merged[name], array), f"merge of {name}"
    else:
        shards = [shard.data_parallel_shard(inputs, r, n) for r in range(n)]
        merged = shard.data_parallel_merge(shards)
        for name, array in merged.items():
            assert np.array_equal(array, inputs[name]), f"merge of {name}"
    outputs = run_ranks(SHARDED[case.dtype, case.strategy, n].library(), shards, tmp_path)
    if case.strategy == "tensor":
        check_tensor_parallel(cfg, outputs, want_out, want_blocks, case.id)
        return

    offsets = inputs["row_offsets"]
    for rank, (out, blocks) in enumerate(outputs):
        where = f" (rank {rank} of {case.id})"
        begin, end = shard.data_parallel_sequences(len(offsets) - 1, rank, n)
        rows = slice(int(offsets[begin]), int(offsets[end]))
        assert_close(values(out, cfg.dtype), values(want_out[rows], cfg.dtype), TOL[cfg.dtype],
                     "out", where)
        pages = np.unique(inputs["lookup_table"][begin:end])
        pages = pages[pages < blocks.shape[0]]
        assert_close(values(blocks[pages], cfg.dtype), values(want_blocks[pages], cfg.dtype),
                     TOL[cfg.dtype], "blocks of its sequences", where)
        others = np.setdiff1d(np.arange(blocks.shape[0]), pages)
        assert np.array_equal(blocks[others], inputs["blocks"][others]), f"other pages{where}"


def test_tensor_parallel_split_is_by_head():
    """wq rows, wo columns and a stacked weight's parts of rank 1 of 2, by hand."""
    cfg = dataclasses.replace(CONFIGS["bf16"], num_heads=4, num_kv_heads=2, head_dim=2, hidden=3)
    q, kv = cfg.q_rows, cfg.kv_rows
    wqkv = np.arange((q + 2 * kv) * 3).reshape(q + 2 * kv, 3)
    wo = np.arange(3 * q).reshape(3, q)
    s = shard.tensor_parallel_shard(cfg, {"wqkv": wqkv, "wo": wo}, 1, 2)
    assert np.array_equal(s["wqkv"], np.concatenate([wqkv[4:8], wqkv[10:12], wqkv[14:16]]))
    assert np.array_equal(s["wo"], wo[:, 4:8])
    with pytest.raises(ValueError, match="cannot split 4 query heads and 2 kv heads"):
        shard.tensor_parallel_shard(cfg, {}, 0, 4)


# ---------------------------------------------------------------------------------------------
# attn-shard on the layer expanded into primitive ops (attn-expand-composite; --canonicalize folds
# the cache's make/parts pairs, so the blocks flow as tensors; the RoPE table is an argument):
# its weights annotated, then partitioned by the upstream sharding-propagation and shard-partition.

EXPANDED_CASES = [(2, "prefill"), (2, "decode"), (4, "decode")]


def expanded_sharded_text(cfg, devices):
    text = ir.module_text(ir.layer_function("layer", cfg, freqs_arg=True))
    attn_opt = os.path.join(os.path.dirname(rt.attn_compile_path()), "attn-opt")
    return subprocess.run(
        [attn_opt, "--attn-expand-composite", "--canonicalize",
         f"--attn-shard=strategy=tensor devices={devices}"],
        input=text, capture_output=True, text=True, check=True).stdout


EXPANDED_UNSHARDED = Build("shard-expanded-unsharded-f32", lambda: ir.module_text(
    ir.layer_function("layer", CONFIGS["f32"], freqs_arg=True)))
EXPANDED_SHARDED = {n: Build(f"shard-expanded-f32-tensor{n}",
                             lambda n=n: expanded_sharded_text(CONFIGS["f32"], n))
                    for n in sorted({n for n, _ in EXPANDED_CASES})}


@pytest.mark.parametrize("devices,scenario", EXPANDED_CASES,
                         ids=[f"tensor{n}-{sc}" for n, sc in EXPANDED_CASES])
def test_attn_shard_primitive_layer(devices, scenario, tmp_path):
    cfg = CONFIGS["f32"]
    rng = np.random.default_rng([devices, *map(ord, scenario)])
    inputs = ir.random_layer_inputs(rng, cfg, *SCENARIOS[scenario])
    inputs["freqs"] = ir.rope_table_input(cfg)
    want_out, want_blocks = run_unsharded(EXPANDED_UNSHARDED, cfg, inputs)
    shards = [shard.tensor_parallel_shard(cfg, inputs, r, devices) for r in range(devices)]
    outputs = run_ranks(EXPANDED_SHARDED[devices].library(), shards, tmp_path)
    check_tensor_parallel(cfg, outputs, want_out, want_blocks, f"expanded tensor{devices}")


# ---------------------------------------------------------------------------------------------
# The upstream shard passes (sharding-propagation, shard-partition) on a layer of primitive ops
# whose weights carry tensor-parallel annotations: q, k, v rows and biases by head, o_proj
# columns. Attention runs on this step's keys and values (no cache); the cache lengths only
# shift the RoPE positions.

PRIMITIVE_CONFIGS = {
    dtype: ir.LayerConfig(hidden=64, num_heads=8, num_kv_heads=4, head_dim=16, dtype=dtype)
    for dtype in ("f32", "bf16")
}
PRIMITIVE_CASES = [("f32", 2), ("f32", 4), ("bf16", 2)]


def primitive_layer_text(cfg, devices=None):
    """The layer; with ``devices``, on a grid of that many with its weights annotated."""
    t, d, hidden = cfg.dtype, cfg.head_dim, cfg.hidden
    heads, kv_heads = cfg.num_heads, cfg.num_kv_heads
    wq, wkv = f"tensor<{cfg.q_rows}x{hidden}x{t}>", f"tensor<{cfg.kv_rows}x{hidden}x{t}>"
    bq, bkv = f"tensor<{cfg.q_rows}x{t}>", f"tensor<{cfg.kv_rows}x{t}>"
    wo, gamma = f"tensor<{hidden}x{cfg.q_rows}x{t}>", f"tensor<{d}x{t}>"
    x, flat = f"tensor<?x{hidden}x{t}>", f"tensor<?x{cfg.q_rows}x{t}>"
    q, kv = f"tensor<?x{heads}x{d}x{t}>", f"tensor<?x{kv_heads}x{d}x{t}>"
    freqs, index = f"tensor<{cfg.max_seq_len}x{d}xf32>", "tensor<?xi32>"
    names = {"wq": "%wq", "wk": "%wk", "wv": "%wv", "wo": "%wo"}
    grid, annotations = "", ""
    if devices:
        grid = f"shard.grid @grid(shape = {devices})\n"
        annotations = (
            "  %rows = shard.sharding @grid split_axes = [[0]] : !shard.sharding\n"
            "  %cols = shard.sharding @grid split_axes = [[], [0]] : !shard.sharding\n")
        for name, (sharding, type_) in {"wq": ("rows", wq), "wk": ("rows", wkv),
                                        "wv": ("rows", wkv), "wo": ("cols", wo)}.items():
            annotations += f"  %{name}_s = shard.shard %{name} to %{sharding} : {type_}\n"
            names[name] = f"%{name}_s"
    return f"""{grid}func.func @layer(%x: {x}, %row_offsets: {index}, %cache_lengths: {index},
    %wq: {wq}, %wk: {wkv}, %wv: {wkv}, %bq: {bq}, %bk: {bkv}, %bv: {bkv},
    %q_norm: {gamma}, %k_norm: {gamma}, %wo: {wo}) -> {x} {{
{annotations}  %q, %k, %v = attn.qkv_projection %x weights({names["wq"]}, {names["wk"]}, {names["wv"]})
      bias(%bq, %bk, %bv) : {x}, ({wq}, {wkv}, {wkv}), ({bq}, {bkv}, {bkv}) -> {q}, {kv}, {kv}
  %qn = attn.rms_norm %q, %q_norm : {q}, {gamma}
  %kn = attn.rms_norm %k, %k_norm : {kv}, {gamma}
  %freqs = attn.rope_freqs {cfg.rope_attr()} -> {freqs}
  %qr = attn.rope %qn, %freqs positions(%row_offsets, %cache_lengths) : {q}, {freqs}, {index}, {index}
  %kr = attn.rope %kn, %freqs positions(%row_offsets, %cache_lengths) : {kv}, {freqs}, {index}, {index}
  %o = attn.flash_attention %qr, %kr, %v rows(%row_offsets, %row_offsets)
      : {q}, {kv}, {kv}, {index}, {index}
  %flat = tensor.collapse_shape %o [[0], [1, 2]] : {q} into {flat}
  %out = attn.linear %flat, {names["wo"]} : {flat}, {wo} -> {x}
  return %out : {x}
}}
"""


def upstream_partitioned_text(cfg, devices):
    attn_opt = os.path.join(os.path.dirname(rt.attn_compile_path()), "attn-opt")
    return subprocess.run(
        [attn_opt, "--pass-pipeline=builtin.module(func.func(sharding-propagation,shard-partition))"],
        input=primitive_layer_text(cfg, devices), capture_output=True, text=True,
        check=True).stdout


def primitive_layer_inputs(rng, cfg, seq_lens_cached, seq_lens_new):
    """The layer's arguments by name, in order, as ABI arrays."""
    offsets = np.concatenate([[0], np.cumsum(seq_lens_new)])
    hidden, q_rows, kv_rows = cfg.hidden, cfg.q_rows, cfg.kv_rows
    values = {
        "x": rng.standard_normal((int(offsets[-1]), hidden)),
        "row_offsets": offsets,
        "cache_lengths": np.asarray(seq_lens_cached),
        "wq": rng.standard_normal((q_rows, hidden)) / np.sqrt(hidden),
        "wk": rng.standard_normal((kv_rows, hidden)) / np.sqrt(hidden),
        "wv": rng.standard_normal((kv_rows, hidden)) / np.sqrt(hidden),
        "bq": 0.5 * rng.standard_normal(q_rows),
        "bk": 0.5 * rng.standard_normal(kv_rows),
        "bv": 0.5 * rng.standard_normal(kv_rows),
        "q_norm": rng.uniform(0.5, 1.5, cfg.head_dim),
        "k_norm": rng.uniform(0.5, 1.5, cfg.head_dim),
        "wo": rng.standard_normal((hidden, q_rows)) / np.sqrt(q_rows),
    }
    return {name: rt.to_abi(value, "i32" if name in ("row_offsets", "cache_lengths") else cfg.dtype)
            for name, value in values.items()}


PRIMITIVE_UNSHARDED = {dtype: Build(f"shard-primitive-{dtype}", lambda cfg=cfg: primitive_layer_text(cfg))
                       for dtype, cfg in PRIMITIVE_CONFIGS.items()}
PRIMITIVE_SHARDED = {(dtype, n): Build(
    f"shard-primitive-{dtype}-upstream{n}",
    lambda dtype=dtype, n=n: upstream_partitioned_text(PRIMITIVE_CONFIGS[dtype], n))
    for dtype, n in PRIMITIVE_CASES}


def test_upstream_partition_splits_by_head():
    """The per-device argument types are those tensor_parallel_shard makes (4 ranks)."""
    cfg = PRIMITIVE_CONFIGS["f32"]
    text = upstream_partitioned_text(cfg, 4)
    assert ("%arg3: tensor<32x64xf32>, %arg4: tensor<16x64xf32>, %arg5: tensor<16x64xf32>, "
            "%arg6: tensor<32xf32>, %arg7: tensor<16xf32>, %arg8: tensor<16xf32>") in text, text
    assert "%arg11: tensor<64x32xf32>" in text, text
    assert text.count("shard.all_reduce") == 1, text


@pytest.mark.parametrize("dtype,devices", PRIMITIVE_CASES,
                         ids=[f"{d}-tensor{n}" for d, n in PRIMITIVE_CASES])
def test_upstream_partitioned_layer(dtype, devices, tmp_path):
    cfg = PRIMITIVE_CONFIGS[dtype]
    rng = np.random.default_rng([devices, *map(ord, dtype)])
    inputs = primitive_layer_inputs(rng, cfg, [3, 40, 0], [9, 17, 4])
    want = np.zeros((inputs["x"].shape[0], cfg.hidden), dtype=inputs["x"].dtype)
    PRIMITIVE_UNSHARDED[dtype].library().call(
        "layer", [a.copy() for a in inputs.values()], [want])
    shards = [shard.tensor_parallel_shard(cfg, inputs, r, devices) for r in range(devices)]
    outputs = run_ranks(PRIMITIVE_SHARDED[dtype, devices].library(), shards, tmp_path)
    for rank, (out, _) in enumerate(outputs):
        assert_close(values(out, dtype), values(want, dtype), TOL[dtype], "out",
                     f" (rank {rank} of {devices}, {dtype})")
