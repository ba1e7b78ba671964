"""Execution tests of the int8 kernel of GGUF projections on the CPU (few rows: the activations
quantised per row, to Q8_K for Q4_K / Q6_K and to Q8_0 for Q4_0 / Q8_0, integer dot products)
against the reference of that mode, ``reference.GGUFWeight.apply_q8``; both instruction sets on
this machine: the target's own (``--int8-dot=auto``: AVX512-VNNI where present: vpdpwssd,
vpdpbusd) and ``--mcpu=x86-64-v3`` (AVX2 only: vpmaddwd).

Tolerance of ``attn.linear``, per element, ``GGUFWeight.q8_bound``: ``(fmas K / block + 8) 2^-24
q8_abs_terms`` (K-quants: two fused multiply-adds per super-block of 256, ``sum_b |d8_b| (|d_b|
I'_b + |dmin_b| M'_b)``; Q4_0 / Q8_0: one per block of 32, ``sum_b |d_b d8_b| I'_b``; I', M' the
integer sums over the products' magnitudes): the quantisation and the integer sums are exact, so
the only differences are f32 roundings: of the factors, of the lane sums converted to f32 (exact
below 2^24), of the fused multiply-adds into each of 8 lanes, and of the final sum of the lanes.

The layer (llama.cpp's Q4_K_M: q and k in Q4_K, v and o in Q6_K; and Q4_0 / Q8_0 weights) on
decode and mixed batches of at most ``int8-max-rows`` rows: ``LAYER_TOL`` as the f32 layer tests,
plus what o_proj may move when an element of its input (the attention output, within ``LAYER_TOL
* max|o|`` of the reference's) quantises to the neighbouring Q8_K / Q8_0 value: ``d8 |W[n, k]|``
summed over the elements k within that reach of a rounding boundary (q, k and v quantise the
layer's input itself, the same f32 values as the reference's).
"""

import dataclasses

import numpy as np
import pytest

from cpu_exec_support import (
    LAYER_TOL,
    Build,
    check_cache,
    nan_filled,
    needs_attn_compile,
    q8_o_proj_slack,
    written_slots,
)

from attn import ir  # noqa: E402  (cpu_exec_support puts python/ on sys.path)
from attn import reference as ref  # noqa: E402

pytestmark = needs_attn_compile

TYPES = ref.GGUF_Q8_K_TYPES + ref.GGUF_Q8_0_TYPES
# Instruction sets: attn-compile flags.
TARGETS = {"native": (), "avx2": ("--mcpu=x86-64-v3",)}
K, N = 512, 192


def gguf(gguf_type):
    return {"kind": "gguf", "type": gguf_type}


@dataclasses.dataclass
class LinearCase:
    gguf_type: str
    target: str
    flags: tuple = ()

    @property
    def id(self):
        return "-".join([self.gguf_type, self.target, *self.flags])

    def __post_init__(self):
        self.build = Build(f"gguf-int8-linear-{self.id}", lambda: ir.module_text(
            ir.quantized_linear_function("linear", gguf(self.gguf_type), K, N, "f32")),
            TARGETS[self.target] + self.flags)

    def prebuild(self):
        self.build.prebuild()

    def run(self, rows, seed, zero_block=False):
        """(y, weight, x) of a random weight and ``rows`` random rows (with ``zero_block``, the
        second Q8_K block of row 0 all zeros: eight Q8_0 blocks)."""
        rng = np.random.default_rng(seed)
        weight = ref.random_gguf_weight(rng, self.gguf_type, N, K, K**-0.5)
        x = rng.standard_normal((rows, K)).astype(np.float32)
        if zero_block:
            x[0, ref.Q8_K_BLOCK : 2 * ref.Q8_K_BLOCK] = 0
        y = nan_filled((rows, N), "f32")
        self.build.library().call("linear", [x, weight.blocks.view(np.int8)], [y])
        return y, weight, x


LINEAR_CASES = [LinearCase(t, target) for t in TYPES for target in TARGETS]


# 1 row: its own kernel; more: blocks of 8 rows per weight row (3 and 13: repeated tail rows;
# "limit": the type's most rows, 64 or, Q4_0 / Q8_0, 16).
@pytest.mark.parametrize("rows", [1, 3, 8, 13, "limit"])
@pytest.mark.parametrize("case", LINEAR_CASES, ids=[c.id for c in LINEAR_CASES])
def test_int8_linear(case, rows):
    if rows == "limit":
        rows = ref.random_gguf_weight(np.random.default_rng(0), case.gguf_type, 1, K).q8_row_limit
    y, weight, x = case.run(rows, seed=rows * 7 + len(case.id), zero_block=True)
    assert weight.uses_q8(rows)
    want = weight.apply_q8(x)
    err, bound = np.abs(y - want), weight.q8_bound(x)
    worst = np.unravel_index(int(np.argmax(err - bound)), err.shape)
    assert np.all(err <= bound), (
        f"{case.id}, {rows} rows: error {err[worst]:.3e} over the bound {bound[worst]:.3e} at "
        f"{list(map(int, worst))}\n  module {case.build.where()}")
    # The mode is not the f32 product: Q8_K / Q8_0 rounding moves it by far more than the bound.
    f32 = x.astype(np.float64) @ weight.decode().astype(np.float64).T
    assert np.max(np.abs(y - f32)) > 100 * np.max(bound)


F32_PAST_LIMIT = [c for c in LINEAR_CASES
                  if c.target == "native" and c.gguf_type in ("q4_k", "q4_0")]


@pytest.mark.parametrize("case", F32_PAST_LIMIT, ids=[c.id for c in F32_PAST_LIMIT])
def test_more_rows_decode_weights_to_f32(case):
    """Past the type's row limit (int8-max-rows, Q4_0 / Q8_0 at most 16; the packed GEMM) the
    weights are decoded to f32: the f32 product's bound holds."""
    limit = ref.random_gguf_weight(np.random.default_rng(0), case.gguf_type, 1, K).q8_row_limit
    rows = limit + 1
    y, weight, x = case.run(rows, seed=11)
    assert not weight.uses_q8(rows)
    want = x.astype(np.float64) @ weight.decode().astype(np.float64).T
    bound = K * 2.0**-24 * (np.abs(x) @ np.abs(weight.decode()).T) + 2.0**-24 * np.abs(want)
    assert np.all(np.abs(y - want) <= bound)


NO_INT8 = LinearCase("q4_k", "native", ("--int8-dot=none",))


@pytest.mark.parametrize("case", [NO_INT8], ids=[NO_INT8.id])
def test_int8_dot_none_keeps_f32(case):
    y, weight, x = case.run(1, seed=12)
    weight.q8_max_rows = 0
    want = weight.apply(x)
    bound = K * 2.0**-24 * (np.abs(x) @ np.abs(weight.decode()).T) + 2.0**-24 * np.abs(want)
    assert np.all(np.abs(y - want) <= bound)


# ---------------------------------------------------------------------------------------------
# The layer

SCENARIOS = {"prefill": ([0, 0], [9, 6]), "decode": ([100, 37, 15], [1, 1, 1]),
             "mixed": ([40, 0, 7], [1, 2, 0]), "decode-8": ([9, 70, 0, 33, 128, 5, 61, 2], [1] * 8)}
# One encoding per weight: llama.cpp's Q4_K_M, and the two 32-element block types.
LAYER_QUANTS = {
    "q4_k_m": {"wq": gguf("q4_k"), "wk": gguf("q4_k"), "wv": gguf("q6_k"), "wo": gguf("q6_k")},
    "q4_0-q8_0": {"wq": gguf("q4_0"), "wk": gguf("q8_0"), "wv": gguf("q4_0"), "wo": gguf("q8_0")},
}


@dataclasses.dataclass
class LayerCase:
    quant_id: str
    target: str

    @property
    def id(self):
        return f"{self.quant_id}-{self.target}"

    def __post_init__(self):
        self.cfg = ir.LayerConfig(hidden=512, num_heads=4, num_kv_heads=2, head_dim=128,
                                  dtype="f32", quant=LAYER_QUANTS[self.quant_id])
        self.build = Build(f"gguf-int8-layer-{self.id}", lambda: ir.module_text(
            ir.layer_function("layer", self.cfg)), TARGETS[self.target])

    def prebuild(self):
        self.build.prebuild()


LAYER_CASES = [LayerCase(q, target) for q in LAYER_QUANTS for target in TARGETS]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("case", LAYER_CASES, ids=[c.id for c in LAYER_CASES])
def test_int8_layer(case, scenario):
    cfg = case.cfg
    cached, new = SCENARIOS[scenario]
    assert sum(new) <= ref.GGUF_Q8_0_MAX_ROWS
    inputs = ir.random_layer_inputs(np.random.default_rng(len(scenario)), cfg, cached, new)
    # The int8 mode's reference (it differs from the f32 mode's by far more than LAYER_TOL).
    want, want_blocks = ir.reference_layer(cfg, inputs)
    before = inputs["blocks"].copy()
    out = nan_filled((sum(new), cfg.hidden), "f32")
    case.build.library().call("layer", list(inputs.values()), [out])
    where = f"\n  {case.id}, scenario {scenario}\n  module {case.build.where()}"
    bound = LAYER_TOL["f32"] * np.max(np.abs(want)) + q8_o_proj_slack(cfg, inputs)
    err = np.abs(out - want)
    worst = np.unravel_index(int(np.argmax(err - bound)), err.shape)
    assert np.all(err <= bound), (f"out: error {err[worst]:.3e} over the bound "
                                  f"{bound[worst]:.3e} at {list(map(int, worst))}{where}")
    mask, _, _ = written_slots(inputs["row_offsets"], inputs["cache_lengths"],
                               inputs["lookup_table"], inputs["blocks"].shape[0], cfg.page_size,
                               cfg.num_layers, cfg.layer_idx)
    check_cache(inputs["blocks"], before, want_blocks, mask, "f32", where=where)
