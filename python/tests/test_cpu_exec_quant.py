"""Execution tests of quantised projections on the CPU: GPTQ int4, float8 E4M3 and GGUF (Q4_0,
Q8_0, Q4_K, Q6_K; f32 activations, weights decoded to f32) weights, decoded in registers inside
the projection kernels, against ``attn.reference`` (``GPTQWeight``, ``Float8Weight``,
``GGUFWeight``).

* ``attn.linear`` alone, at 1 and 5 rows (the few-row kernels) and 40 rows (the packed GEMM; GGUF
  at all three: the int8 kernel up to int8-max-rows, 64, checked against its own mode with the
  bound ``GGUFWeight.q8_bound`` of ``test_cpu_exec_gguf_int8.py``; GPTQ: its own kernel at every
  row count), for every encoding; GPTQ's kernel also at 1-37 rows, four chunk widths, AVX-512
  and AVX2. Tolerance, per element: ``K 2^-24 (|x| @ |W|^T) [* s_x]`` (the worst-case bound
  of an f32 sum of K products of exactly decoded weights, ``gamma_K``; the decoding itself and,
  for float8, the activation rounding to E4M3 are exact, so f32 accumulation is the only
  difference before the output rounding) plus half an ulp of the output type times ``|y|``.
* The whole layer (``attention_with_rope`` with q, k, v and o_proj quantised; GGUF also as
  llama.cpp's Q4_K_M, one encoding per weight) on prefill, decode and mixed batches, with
  ``LAYER_TOL`` as the unquantised layer tests (the layer rounds its intermediates to the
  storage type, the reference does not). float8 adds one effect: o_proj
  rounds its input, the attention output ``o``, to E4M3 (steps of 2^-4 to 2^-3 of a value), and
  the layer's ``o`` differs from the reference's by up to ``LAYER_TOL * max|o|`` (f32 sums, the
  storage type), so an element of ``o`` near a rounding boundary may round to the neighbouring
  E4M3 value (GGUF up to int8-max-rows rows: to the neighbouring Q8_K / Q8_0 value,
  ``cpu_exec_support.q8_o_proj_slack``). The bound adds, per output element, what every such
  ambiguous element can move it: ``s_x sum_k step_k |W[n, k]|`` over the elements of the row
  whose E4M3 value changes within that perturbation (``ir.float8_o_proj_slack``, which the GPU
  device tests use too); the input scale itself moves with ``max|o|`` by the same relative
  amount, which the perturbation covers. The cache slots the step writes
  (k and v, projections of the exact input) are checked with ``CACHE_TOL`` as in the unquantised
  tests, everything else in the cache and every other argument bit for bit.
"""

import dataclasses
import zlib

import numpy as np
import pytest

from cpu_exec_support import (
    LAYER_TOL,
    Build,
    assert_close,
    bits,
    check_cache,
    nan_filled,
    needs_attn_compile,
    q8_o_proj_slack,
    values,
    written_slots,
)

from attn import ir  # noqa: E402  (cpu_exec_support puts python/ on sys.path)
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402

pytestmark = needs_attn_compile

QUANTS = {
    "gptq-g64": {"kind": "gptq", "group_size": 64},
    "gptq-g32-act": {"kind": "gptq", "group_size": 32, "desc_act": True},
    "gptq-g128-act-blocks": {"kind": "gptq", "group_size": 128, "desc_act": True,
                             "layout": "column_blocks"},
    "fp8-tensor-static": {"kind": "float8", "weight_scale": "tensor", "input_scale": "static"},
    "fp8-row-dynamic": {"kind": "float8", "weight_scale": "row", "input_scale": "dynamic"},
    "fp8-block-dynamic-bound": {"kind": "float8", "weight_scale": "block",
                                "input_scale": "dynamic", "upper_bound": 2.0},
    **{f"gguf-{t}": {"kind": "gguf", "type": t} for t in ref.GGUF_BLOCKS},
}
# MAX: GPTQ takes bf16 (or f16) activations; float8 any float; GGUF f32.
DTYPES = {"gptq": ("bf16", "f16"), "float8": ("f32", "bf16"), "gguf": ("f32",)}
# Half an ulp relative to the value, at worst (just above a power of two): 2^-(p) for p bits.
HALF_ULP = {"f32": 2.0**-24, "bf16": 2.0**-8, "f16": 2.0**-11}
K, N = 256, 192


def seed_of(*parts):
    return zlib.crc32("/".join(map(str, parts)).encode())


def abs_product(weight, x):
    """``|x| @ |W|^T`` of the operands the kernel sums (permuted / E4M3-rounded activations),
    times the float8 input scale: the scale of the f32 accumulation error."""
    if isinstance(weight, ref.Float8Weight):
        x8, s_x = ref.quantize_fp8_input(x, weight.input_scale, weight.upper_bound)
        return (np.abs(x8) @ np.abs(weight.decode()).T) * s_x[:, None]
    x = np.asarray(x, dtype=np.float64)
    if getattr(weight, "perm", None) is not None:
        x = x[:, weight.perm]
    return np.abs(x) @ np.abs(weight.decode()).T


# ---------------------------------------------------------------------------------------------
# attn.linear


@dataclasses.dataclass
class LinearCase:
    quant_id: str
    dtype: str

    @property
    def id(self):
        return f"{self.quant_id}-{self.dtype}"

    def __post_init__(self):
        quant = QUANTS[self.quant_id]
        self.build = Build(f"quant-linear-{self.id}", lambda: ir.module_text(
            ir.quantized_linear_function("linear", quant, K, N, self.dtype)))

    def prebuild(self):
        self.build.prebuild()


LINEAR_CASES = [LinearCase(q, d) for q, spec in QUANTS.items() for d in DTYPES[spec["kind"]]]


def check_linear(build, quant, dtype, rows, seed, n=N):
    """``build``'s ``linear`` on random parts of ``quant`` ([n, K]) and ``rows`` rows of x
    against the reference, within the f32-accumulation bound of the module docstring."""
    rng = np.random.default_rng(seed)
    parts = ir.random_quantized_weight(rng, quant, n, K)
    weight = ir.reference_quantized_weight(quant, parts)
    x = rt.to_abi(rng.standard_normal((rows, K)), dtype)
    xv = values(x, dtype)
    y = nan_filled((rows, n), dtype)
    build.library().call("linear", [x, *parts.values()], [y])
    want = ref.linear(xv, weight)
    if isinstance(weight, ref.GGUFWeight) and weight.uses_q8(rows):
        # The int8 kernel: test_cpu_exec_gguf_int8.py has the bound.
        bound = weight.q8_bound(xv) + HALF_ULP[dtype] * np.abs(want)
    else:
        bound = 2.0**-24 * K * abs_product(weight, xv) + HALF_ULP[dtype] * np.abs(want)
    err = np.abs(values(y, dtype) - want)
    worst = np.unravel_index(int(np.argmax(err - bound)), err.shape)
    assert np.all(err <= bound), (
        f"{rows} rows: error {err[worst]:.3e} over the bound {bound[worst]:.3e} at "
        f"{list(map(int, worst))}\n  module {build.where()}")


@pytest.mark.parametrize("rows", [1, 5, 40])
@pytest.mark.parametrize("case", LINEAR_CASES, ids=[c.id for c in LINEAR_CASES])
def test_quantized_linear(case, rows):
    check_linear(case.build, QUANTS[case.quant_id], case.dtype, rows,
                 seed_of("linear", case.id, rows))


# GPTQ's kernel (GPTQLanes.cpp, every row count): vectors along N, one row or blocks of 4 with
# repeated tail rows; chunks of 64 columns (N 192), 32 (N 96), 8 (N 24: 8 lanes even with
# AVX-512) or 2 (N 6: 2 lanes), 16 lanes (AVX-512 where the machine has it) or 8 (AVX2).
TARGETS = {"native": (), "avx2": ("--mcpu=x86-64-v3",)}


@dataclasses.dataclass
class GPTQKernelCase:
    quant_id: str
    n: int
    target: str

    @property
    def id(self):
        return f"{self.quant_id}-n{self.n}-{self.target}"

    def __post_init__(self):
        self.build = Build(f"gptq-kernel-{self.id}", lambda: ir.module_text(
            ir.quantized_linear_function("linear", QUANTS[self.quant_id], K, self.n, "bf16")),
            TARGETS[self.target])

    def prebuild(self):
        self.build.prebuild()


GPTQ_KERNEL_CASES = [
    *(GPTQKernelCase(q, n, t) for q in ("gptq-g32-act", "gptq-g128-act-blocks")
      for n in (96, 192) for t in TARGETS),
    *(GPTQKernelCase("gptq-g64", 24, t) for t in TARGETS),
    GPTQKernelCase("gptq-g32-act", 6, "native")]


@pytest.mark.parametrize("rows", [1, 2, 7, 16, 37])
@pytest.mark.parametrize("case", GPTQ_KERNEL_CASES, ids=[c.id for c in GPTQ_KERNEL_CASES])
def test_gptq_kernel(case, rows):
    check_linear(case.build, QUANTS[case.quant_id], "bf16", rows,
                 seed_of("gptq-kernel", case.id, rows), n=case.n)


def test_float8_nan_weight_code_gives_nan():
    """0x7F decodes to NaN (E4M3FN has no infinities): it reaches the output."""
    quant = QUANTS["fp8-row-dynamic"]
    case = next(c for c in LINEAR_CASES if c.quant_id == "fp8-row-dynamic" and c.dtype == "f32")
    rng = np.random.default_rng(seed_of("nan"))
    parts = ir.random_quantized_weight(rng, quant, N, K)
    parts["weight"][3, 7] = 0x7F
    y = np.zeros((2, N), np.float32)
    case.build.library().call("linear", [rt.to_abi(rng.standard_normal((2, K)), "f32"),
                                         *parts.values()], [y])
    assert np.isnan(y[:, 3]).all() and np.isfinite(np.delete(y, 3, axis=1)).all()


@pytest.mark.parametrize("columns", [[100], [0, 32, 64, 96, 128, 160, 192, 224]])
def test_float8_decodes_every_code_exactly(columns):
    """Every E4M3FN code but NaN, subnormals and both zeros included, decodes to the
    reference's value: one-hot rows of x (E4M3 1.0 under a static input scale 1) pick columns
    of W, whose rows are the 256 codes rotated, so that the output is the decoded column."""
    quant = QUANTS["fp8-tensor-static"]
    case = next(c for c in LINEAR_CASES if c.quant_id == "fp8-tensor-static" and c.dtype == "f32")
    codes = (np.arange(K)[None, :] - np.arange(N)[:, None]) % 256
    codes[(codes & 0x7F) == 0x7F] = 0x80  # NaN codes: -0 (the NaN test has them)
    parts = {"weight": codes.astype(np.uint8), "weight_scale": np.ones(1, np.float32),
             "input_scale": np.ones(1, np.float32)}
    x = np.zeros((len(columns), K), np.float32)
    x[np.arange(len(columns)), columns] = 1.0
    y = nan_filled((len(columns), N), "f32")
    case.build.library().call("linear", [x, *parts.values()], [y])
    want = ir.reference_quantized_weight(quant, parts).decode()[:, columns].T
    assert len(np.unique(codes[:, columns])) == 254 or len(columns) == 1
    np.testing.assert_array_equal(y, want.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# The layer


SCENARIOS = {
    "prefill": ([0, 0, 0], [37, 1, 19]),
    "decode": ([100, 37, 15, 0, 48], [1, 1, 1, 1, 1]),
    "mixed": ([40, 5, 0, 33, 16, 0], [13, 0, 40, 1, 16, 0]),
}
# float8 layers in f32: with bf16 intermediates the layer's o differs from the reference's by
# up to 2^-9, a sizeable part of an E4M3 step, so most elements of o_proj's input could round
# either way and the bound would say little (bf16 float8 is checked exactly by the linear tests).
LAYER_QUANTS = {"gptq-g64": "bf16", "gptq-g32-act": "f16", "gptq-g128-act-blocks": "bf16",
                "fp8-row-dynamic": "f32",
                "fp8-block-dynamic-bound": "f32", "fp8-tensor-static": "f32",
                **{f"gguf-{t}": "f32" for t in ref.GGUF_BLOCKS}, "gguf-q4_k_m": "f32"}
# llama.cpp's Q4_K_M: v (and some layers' o) in Q6_K, the rest in Q4_K; one encoding per weight.
LAYER_ONLY_QUANTS = {"gguf-q4_k_m": {"wq": QUANTS["gguf-q4_k"], "wk": QUANTS["gguf-q4_k"],
                                     "wv": QUANTS["gguf-q6_k"], "wo": QUANTS["gguf-q6_k"]}}


@dataclasses.dataclass
class LayerCase:
    quant_id: str

    def __post_init__(self):
        self.cfg = ir.LayerConfig(hidden=256, num_heads=4, num_kv_heads=2, head_dim=64,
                                  dtype=LAYER_QUANTS[self.quant_id],
                                  quant={**QUANTS, **LAYER_ONLY_QUANTS}[self.quant_id])
        self.build = Build(f"quant-layer-{self.quant_id}", lambda: ir.module_text(
            ir.layer_function("layer", self.cfg)))

    def prebuild(self):
        self.build.prebuild()


LAYER_CASES = [LayerCase(q) for q in LAYER_QUANTS]


def o_proj_slack(cfg, inputs):
    """float8 o_proj's rounding of its input under the layer's own error (LAYER_TOL)."""
    return ir.float8_o_proj_slack(cfg, inputs, LAYER_TOL[cfg.dtype])


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("case", LAYER_CASES, ids=[c.quant_id for c in LAYER_CASES])
def test_quantized_layer(case, scenario):
    cfg = case.cfg
    cached, new = SCENARIOS[scenario]
    seed = seed_of("layer", case.quant_id, scenario)
    inputs = ir.random_layer_inputs(np.random.default_rng(seed), cfg, cached, new)
    want, want_blocks = ir.reference_layer(cfg, inputs)
    before = {name: array.copy() for name, array in inputs.items()}
    out = nan_filled((sum(new), cfg.hidden), cfg.dtype)
    case.build.library().call("layer", list(inputs.values()), [out])
    where = (f"\n  {case.quant_id}, scenario {scenario}, seed {seed}"
             f"\n  module {case.build.where()}")
    got = values(out, cfg.dtype)
    wo_kind = cfg.quant_of("wo")["kind"]
    if wo_kind in ("float8", "gguf"):
        # o_proj rounds its input (E4M3, or Q8_K up to int8-max-rows rows): the slack of that.
        slack = o_proj_slack if wo_kind == "float8" else q8_o_proj_slack
        bound = LAYER_TOL[cfg.dtype] * np.max(np.abs(want)) + slack(cfg, inputs)
        err = np.abs(got - want)
        worst = np.unravel_index(int(np.argmax(err - bound)), err.shape)
        assert np.all(err <= bound), (f"out: error {err[worst]:.3e} over the bound "
                                      f"{bound[worst]:.3e} at {list(map(int, worst))}{where}")
    else:
        assert_close(got, want, LAYER_TOL[cfg.dtype], "out", where)
    # k and v are projections of the input itself (exact activations): the unquantised bound.
    mask, _, _ = written_slots(inputs["row_offsets"], inputs["cache_lengths"],
                               inputs["lookup_table"], inputs["blocks"].shape[0], cfg.page_size,
                               cfg.num_layers, cfg.layer_idx)
    check_cache(inputs["blocks"], before["blocks"], want_blocks, mask, cfg.dtype, where=where)
    for name, array in inputs.items():
        if name != "blocks":
            assert np.array_equal(bits(array), bits(before[name])), f"argument {name} changed"
