"""Execution tests of the CPU path: the whole layer compiled by ``attn-compile --target=cpu`` and
run through ``attn.runtime`` equals the numpy reference (``attn.reference``, via
``ir.reference_layer``).

Each configuration (``ir.LayerConfig``) is compiled once per session (``cpu_exec_support.Build``;
the builds start in the background at collection) and run on several ragged batches:

* ``prefill``: no cache, sequences longer than a query tile (32 rows / GQA group) and a page;
* ``decode``: one token per sequence over long-ish caches (position 0, the last slot of a page,
  the first slot of a new page, several pages);
* ``mixed``: prefill, decode and empty (0 new tokens) sequences in one batch, cache lengths that
  are not page multiples and new tokens that cross page boundaries;

plus a prefill followed by decode steps through the same cache (updated in place between calls),
compared with the one-shot reference.

Inputs are random (fixed seeds per test, never zero; shuffled page ids and spare pages). Checks:
* ``out``: ``max|got - expected| <= tol * max|expected|``, ``LAYER_TOL`` = 3e-6 (f32), 1.4e-2
  (bf16), 1.4e-3 (f16), about twice the measured worst (1.3e-6, 6.9e-3, 6.6e-4: the layer rounds
  q, k, v and the attention output to the storage type, the reference does not; see
  ``cpu_exec_support.py``); the out-parameter is prefilled with NaN, so an unwritten element fails.
* cache: every slot the step writes (doc step 4) equals the reference within 3e-6 (f32) or 2 ulps
  of the storage type (2^-6 bf16, 2^-9 f16; measured up to 1.45 ulp: the compiled code rounds the
  projection to the storage type before RoPE, the reference rounds once at the end), per written
  (slot, head) vector relative to its max |expected|; every other element of the blocks (other
  layers, other slots, spare pages) is bit-for-bit what it was before the call. The other
  arguments are not modified.

Covered: f32 / bf16 / f16; MHA, GQA (groups 2, 3, 4) and MQA; head dims 64, 80, 96, 128; pages of
16 and 128 tokens; every RoPE scaling (none, linear, llama3, yarn, longrope with positions on both
sides of original_max_position), interleaved and not; qk-norm; bias; clip; stacked and separate
weights; causal, none and sliding-window masks (windows smaller than the sequences); custom scale;
layer_idx 0, 1 and 2; one library taking the layer at run time (``runtime_layer``) called for
layers 0, 1 and 2 of one cache.
"""

import dataclasses
import zlib

import numpy as np
import pytest

from cpu_exec_support import (
    scaling,
    CACHE_TOL,
    LAYER_TOL,
    Build,
    assert_close,
    bits,
    check_cache,
    nan_filled,
    needs_attn_compile,
    values,
    written_slots,
)

from attn import ir  # noqa: E402  (cpu_exec_support puts python/ on sys.path)

pytestmark = needs_attn_compile


# ---------------------------------------------------------------------------------------------
# Configurations




def rope(kind=None, interleaved=False, head_dim=64, theta=10000.0, orig=48):
    return {"theta": theta, "interleaved": interleaved, "scaling": scaling(kind, head_dim, orig)}


# (cache lengths, new tokens) per sequence, by page size. Positions stay below max_seq_len.
SCENARIOS = {
    16: {
        "prefill": ([0, 0, 0], [37, 1, 19]),
        "decode": ([100, 37, 15, 0, 48], [1, 1, 1, 1, 1]),
        "mixed": ([40, 5, 0, 33, 16, 0], [13, 0, 40, 1, 16, 0]),
    },
    128: {
        "prefill": ([0, 0], [150, 33]),
        "decode": ([300, 129, 127, 0], [1, 1, 1, 1]),
        "mixed": ([120, 5, 0, 250, 128], [20, 0, 40, 1, 3]),
    },
}
MAX_SEQ_LEN = {16: 256, 128: 512}


@dataclasses.dataclass
class LayerCase:
    id: str
    cfg: ir.LayerConfig

    def __post_init__(self):
        self.build = Build(
            f"layer-{self.id}", lambda: ir.module_text(ir.layer_function("layer", self.cfg))
        )

    def prebuild(self):
        self.build.prebuild()


def config(dtype="f32", heads=(4, 2), head_dim=64, hidden=128, page=16, **kw):
    kw.setdefault("rope", rope(head_dim=head_dim))
    return ir.LayerConfig(
        hidden=hidden, num_heads=heads[0], num_kv_heads=heads[1], head_dim=head_dim,
        dtype=dtype, page_size=page, max_seq_len=MAX_SEQ_LEN[page], **kw,
    )


def case(id, *args, **kw):
    return LayerCase(id, config(*args, **kw))


CASES = [
    # dtype x attention shape x head dim x page size
    case("f32-mha-d64-p16", heads=(4, 4)),
    case("f32-gqa4-d128-p128", heads=(8, 2), head_dim=128, hidden=256, page=128,
         num_layers=3, layer_idx=0),
    case("f32-gqa3-d96-p16-yarn-inter", heads=(6, 2), head_dim=96, hidden=192,
         num_layers=3, layer_idx=2, rope=rope("yarn", True, 96)),
    case("bf16-mha-d128-p16", "bf16", heads=(2, 2), head_dim=128),
    case("bf16-gqa4-d64-p128", "bf16", heads=(8, 2), page=128),
    case("bf16-mqa-d80-p16-llama3-inter", "bf16", heads=(4, 1), head_dim=80, hidden=160,
         rope=rope("llama3", True, 80, theta=500000.0)),
    case("f16-mha-d96-p128-longrope-inter", "f16", heads=(2, 2), head_dim=96, hidden=192,
         page=128, rope=rope("longrope", True, 96, orig=130)),
    case("f16-gqa2-d64-p16", "f16"),
    # every RoPE scaling, both pairings (GQA, f32)
    *[case(f"f32-rope-{kind or 'none'}-{'inter' if inter else 'half'}",
           rope=rope(kind, inter, 64, theta=500000.0 if kind == "llama3" else 10000.0))
      for kind in (None, "linear", "llama3", "yarn", "longrope") for inter in (False, True)],
    # projections and norms
    case("f32-qknorm-stacked", stacked=True, qk_norm=True, rms_norm_eps=1e-5),
    case("bf16-qknorm-bias-d128", "bf16", head_dim=128, hidden=256, qk_norm=True, bias=True),
    case("f32-bias-clip", bias=True, clip=0.1),
    case("f16-bias-stacked-d128-p128", "f16", head_dim=128, page=128, bias=True, stacked=True),
    case("bf16-clip-stacked", "bf16", heads=(4, 4), clip=0.08, stacked=True),
    # masks and scale
    case("f32-mask-none", mask={"kind": "none"}),
    case("bf16-mask-none-scale", "bf16", heads=(4, 1), mask={"kind": "none"}, scale=0.3),
    case("f32-window5-p16", mask={"kind": "sliding_window", "window": 5}),
    case("f32-window20-mha-p16", heads=(4, 4), mask={"kind": "sliding_window", "window": 20}),
    case("bf16-window40-p128", "bf16", page=128, mask={"kind": "sliding_window", "window": 40}),
    case("f16-window24-scale-d96", "f16", heads=(6, 3), head_dim=96, hidden=192,
         mask={"kind": "sliding_window", "window": 24}, scale=0.1),
    case("f32-scale", scale=0.2),
]
CASES_BY_ID = {c.id: c for c in CASES}
assert len(CASES_BY_ID) == len(CASES)


def seed_of(*parts):
    return zlib.crc32("/".join(map(str, parts)).encode())


# ---------------------------------------------------------------------------------------------
# Running one step


def run_layer(case, inputs, tokens):
    """Calls the compiled layer on ``inputs`` (blocks updated in place); returns ``out``."""
    cfg = case.cfg
    out = nan_filled((tokens, cfg.hidden), cfg.dtype)
    case.build.library().call("layer", list(inputs.values()), [out])
    return out


@dataclasses.dataclass
class LayerRun:
    case: LayerCase
    scenario: str

    def prebuild(self):
        self.case.prebuild()


RUNS = [LayerRun(c, s) for c in CASES for s in ("prefill", "decode", "mixed")]


@pytest.mark.parametrize("run", RUNS, ids=[f"{r.case.id}-{r.scenario}" for r in RUNS])
def test_layer(run):
    case, cfg = run.case, run.case.cfg
    cached, new = SCENARIOS[cfg.page_size][run.scenario]
    seed = seed_of(case.id, run.scenario)
    rng = np.random.default_rng(seed)
    inputs = ir.random_layer_inputs(rng, cfg, cached, new)
    want_out, want_blocks = ir.reference_layer(cfg, inputs)
    before = {name: array.copy() for name, array in inputs.items()}
    out = run_layer(case, inputs, sum(new))
    where = (f"\n  config {case.id} ({cfg}), scenario {run.scenario}: cache lengths {cached}, "
             f"new tokens {new}, seed {seed}\n  module {case.build.where()}")
    assert_close(values(out, cfg.dtype), want_out, LAYER_TOL[cfg.dtype], "out", where)
    mask, _, _ = written_slots(inputs["row_offsets"], inputs["cache_lengths"],
                               inputs["lookup_table"], inputs["blocks"].shape[0], cfg.page_size,
                               cfg.num_layers, cfg.layer_idx)
    check_cache(inputs["blocks"], before["blocks"], want_blocks, mask, cfg.dtype, where=where)
    for name, array in inputs.items():
        if name != "blocks":
            assert np.array_equal(bits(array), bits(before[name])), f"argument {name} changed"


# ---------------------------------------------------------------------------------------------
# Prefill, then decode steps, through one cache


# (cache lengths, [new tokens of each step]) by page size.
MULTI_STEP = {
    16: ([0, 20, 3, 0], [[30, 13, 0, 2], [1, 1, 1, 1], [1, 0, 1, 1]]),
    128: ([0, 120, 3], [[130, 7, 0], [1, 1, 1], [1, 0, 1]]),
}
STEP_CASES = ["f32-gqa3-d96-p16-yarn-inter", "f32-window5-p16", "f32-rope-longrope-half",
              "f32-gqa4-d128-p128", "bf16-gqa4-d64-p128", "bf16-qknorm-bias-d128",
              "f16-mha-d96-p128-longrope-inter", "f16-window24-scale-d96"]


@pytest.mark.parametrize("case", [CASES_BY_ID[i] for i in STEP_CASES], ids=STEP_CASES)
def test_prefill_then_decode_equals_one_step(case):
    cfg = case.cfg
    cached, steps = MULTI_STEP[cfg.page_size]
    cached = np.array(cached)
    steps = np.array(steps)  # [steps, B]
    total = steps.sum(axis=0)
    seed = seed_of("steps", case.id)
    rng = np.random.default_rng(seed)
    inputs = ir.random_layer_inputs(rng, cfg, cached, total)
    want_out, want_blocks = ir.reference_layer(cfg, inputs)
    before = inputs["blocks"].copy()
    x, offsets = inputs["x"], inputs["row_offsets"]
    out = np.zeros_like(want_out)
    done = np.zeros_like(cached)
    for i, new in enumerate(steps):
        # Rows [done, done + new) of each sequence, at cache length cached + done.
        rows = np.concatenate([np.arange(offsets[b] + done[b], offsets[b] + done[b] + new[b])
                               for b in range(len(new))]).astype(np.int64)
        step = dict(inputs)
        step["x"] = np.ascontiguousarray(x[rows])
        step["row_offsets"] = np.concatenate([[0], np.cumsum(new)]).astype(np.int32)
        step["cache_lengths"] = (cached + done).astype(np.int32)
        got = run_layer(case, step, len(rows))  # writes into inputs["blocks"]
        out[rows] = values(got, cfg.dtype)
        done += new
    where = (f"\n  config {case.id} ({cfg}): cache lengths {cached.tolist()}, steps "
             f"{steps.tolist()}, seed {seed}\n  module {case.build.where()}")
    assert_close(out, want_out, LAYER_TOL[cfg.dtype], "out of the steps", where)
    mask, _, _ = written_slots(offsets, cached, inputs["lookup_table"], before.shape[0],
                               cfg.page_size, cfg.num_layers, cfg.layer_idx)
    check_cache(inputs["blocks"], before, want_blocks, mask, cfg.dtype,
                tol=CACHE_TOL[cfg.dtype], where=where)


# ---------------------------------------------------------------------------------------------
# Steps without new tokens


EMPTY_CASES = ["f32-mha-d64-p16", "bf16-gqa4-d64-p128", "f32-window5-p16"]


@pytest.mark.parametrize("batch", [([5, 0, 17], [0, 0, 0]), ([], [])],
                         ids=["no-tokens", "no-sequences"])
@pytest.mark.parametrize("case", [CASES_BY_ID[i] for i in EMPTY_CASES], ids=EMPTY_CASES)
def test_layer_without_new_tokens(case, batch):
    cfg = case.cfg
    inputs = ir.random_layer_inputs(np.random.default_rng(seed_of("empty", case.id)), cfg, *batch)
    before = inputs["blocks"].copy()
    out = run_layer(case, inputs, 0)
    assert out.shape == (0, cfg.hidden)
    assert np.array_equal(bits(inputs["blocks"]), bits(before)), "the cache changed"


# ---------------------------------------------------------------------------------------------
# One library for every layer: the layer index at run time


@dataclasses.dataclass
class RuntimeLayerCase:
    """``builder(name, cfg, runtime_layer=True)`` over a 3-layer cache, compiled once."""

    id: str
    cfg: ir.LayerConfig
    builder: object = ir.layer_function

    def __post_init__(self):
        self.build = Build(f"runtime-layer-{self.id}", lambda: ir.module_text(
            self.builder("layer", self.cfg, runtime_layer=True)))

    def prebuild(self):
        self.build.prebuild()


RUNTIME_LAYER_CASES = [
    RuntimeLayerCase("f32-gqa2-p16", config(num_layers=3)),
    RuntimeLayerCase("bf16-gqa4-d128-p128-llama3", config(
        "bf16", heads=(8, 2), head_dim=128, hidden=256, page=128, num_layers=3,
        rope=rope("llama3", head_dim=128, theta=500000.0))),
    RuntimeLayerCase("f16-primitive-qknorm-bias", config(
        "f16", num_layers=3, qk_norm=True, bias=True), ir.primitive_layer_function),
]


@pytest.mark.parametrize("case", RUNTIME_LAYER_CASES, ids=[c.id for c in RUNTIME_LAYER_CASES])
def test_runtime_layer(case):
    # One call per layer through one cache: each equals the reference of that layer and writes
    # only that layer's slots.
    cfg = case.cfg
    cached, new = SCENARIOS[cfg.page_size]["mixed"]
    seed = seed_of("runtime-layer", case.id)
    inputs = ir.random_layer_inputs(np.random.default_rng(seed), cfg, cached, new,
                                    runtime_layer=True)
    lib = case.build.library()
    outs = []
    for layer in range(cfg.num_layers):
        inputs["layer_idx"] = np.int32(layer)
        want_out, want_blocks = ir.reference_layer(cfg, inputs)
        before = inputs["blocks"].copy()
        out = nan_filled((sum(new), cfg.hidden), cfg.dtype)
        lib.call("layer", list(inputs.values()), [out])
        where = (f"\n  config {case.id} ({cfg}), layer {layer}, seed {seed}"
                 f"\n  module {case.build.where()}")
        assert_close(values(out, cfg.dtype), want_out, LAYER_TOL[cfg.dtype], "out", where)
        mask, _, _ = written_slots(inputs["row_offsets"], inputs["cache_lengths"],
                                   inputs["lookup_table"], before.shape[0], cfg.page_size,
                                   cfg.num_layers, layer)
        check_cache(inputs["blocks"], before, want_blocks, mask, cfg.dtype, where=where)
        outs.append(want_out)
    # The layers' cached keys differ, so must their outputs (else the test could not tell
    # which layer a call read).
    for a in range(len(outs)):
        for b in range(a):
            assert np.abs(outs[a] - outs[b]).max() > 10 * LAYER_TOL[cfg.dtype] * np.abs(
                outs[a]).max()
