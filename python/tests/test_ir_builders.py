"""attn.ir builders: their text parses, verifies and expands with attn-opt, over many configs."""

import dataclasses
import os
import re
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402
from attn import tools  # noqa: E402

try:
    ATTN_OPT, MISSING_ATTN_OPT = tools.find_tool("attn-opt"), None
except tools.ToolNotFoundError as e:
    ATTN_OPT, MISSING_ATTN_OPT = None, str(e)
needs_attn_opt = pytest.mark.skipif(ATTN_OPT is None, reason=f"{MISSING_ATTN_OPT}")


def attn_opt(text, *flags):
    """Runs attn-opt on ``text``; returns stdout, fails the test with stderr on error."""
    proc = subprocess.run([ATTN_OPT, "-", *flags], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, f"attn-opt {' '.join(flags)} failed:\n{proc.stderr}\n{text}"
    return proc.stdout


def scaling(kind, head_dim):
    """A reference scaling dict of each kind (None: no scaling)."""
    half = head_dim // 2
    return {
        None: None,
        "linear": {"kind": "linear", "factor": 4.0},
        "llama3": {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position": 8192},
        "yarn": {"kind": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
                 "original_max_position": 64},
        "longrope": {"kind": "longrope", "short_factor": list(np.linspace(1.0, 2.0, half)),
                     "long_factor": list(np.linspace(1.1, 64.3, half)),
                     "original_max_position": 16, "max_position": 1024},
    }[kind]


def rope(kind, interleaved, head_dim, theta=10000.0):
    return {"theta": theta, "interleaved": interleaved, "scaling": scaling(kind, head_dim)}


SCALINGS = [None, "linear", "llama3", "yarn", "longrope"]
MASKS = [{"kind": "causal"}, {"kind": "none"}, {"kind": "sliding_window", "window": 7}]


def configs():
    """(id, LayerConfig) pairs covering every option at least once."""
    out = []
    for kind in SCALINGS:
        for inter in (False, True):
            out.append((f"rope-{kind}-{'inter' if inter else 'half'}",
                        ir.LayerConfig(rope=rope(kind, inter, 16, theta=500000))))
    for stacked in (False, True):
        for bias in (False, True):
            for qk_norm in (False, True):
                clip = 0.25 if bias else None
                out.append((f"stacked{int(stacked)}-bias{int(bias)}-qknorm{int(qk_norm)}",
                            ir.LayerConfig(stacked=stacked, bias=bias, qk_norm=qk_norm, clip=clip,
                                           rms_norm_eps=1e-5)))
    for mask in MASKS:
        for scale in (None, 0.0625):
            out.append((f"mask-{mask['kind']}-scale{scale}",
                        ir.LayerConfig(mask=mask, scale=scale)))
    for dtype in ("f32", "f16", "bf16"):
        for head_dim in (64, 96, 128):
            for page in (16, 128):
                cfg = ir.LayerConfig(
                    hidden=2 * 4 * head_dim, num_heads=8, num_kv_heads=2, head_dim=head_dim,
                    dtype=dtype, page_size=page, num_layers=3, layer_idx=2, max_seq_len=4096,
                    stacked=head_dim == 96, qk_norm=page == 128,
                    rope=rope("longrope" if head_dim == 96 else "llama3", False, head_dim),
                )
                out.append((f"{dtype}-d{head_dim}-page{page}", cfg))
    return out


CONFIGS = configs()


def all_functions(cfg):
    """Every builder on ``cfg``, dynamic and (for some) static T and B."""
    return [
        ir.layer_function("layer", cfg),
        ir.layer_function("layer_static", cfg, tokens=5, batch=2),
        ir.qkv_projection_function("qkv_projection", cfg),
        ir.rms_norm_function("q_norm", cfg),
        ir.rms_norm_function("k_norm", cfg, heads=cfg.num_kv_heads, tokens=3),
        ir.rope_freqs_function("rope_freqs", cfg),
        ir.rope_function("rope", cfg),
        ir.rope_function("rope_table_arg", cfg, heads=cfg.num_kv_heads, freqs_arg=True,
                         tokens=4, batch=1),
        ir.kv_cache_store_function("kv_cache_store", cfg),
        ir.paged_flash_attention_function("paged_flash_attention", cfg),
        ir.flash_attention_function("flash_attention", cfg),
        ir.flash_attention_function("flash_attention_static", cfg, tokens=3, kv_tokens=9, batch=2),
        ir.linear_function("o_proj", cfg),
        ir.linear_function("linear_bias", cfg, in_features=24, out_features=40, bias=True),
    ]


@needs_attn_opt
@pytest.mark.parametrize("cfg", [c for _, c in CONFIGS], ids=[i for i, _ in CONFIGS])
def test_builders_verify_and_expand(cfg):
    text = ir.module_text(*all_functions(cfg))
    attn_opt(text)
    expanded = attn_opt(text, "--attn-expand-composite")
    layer = expanded.split("func.func @layer_static")[0]
    assert "attn.attention_with_rope" not in layer
    assert layer.count("attn.rms_norm") == (2 if cfg.qk_norm else 0)
    assert ("clip" in layer) == (cfg.clip is not None)
    assert ("bias(" in layer) == cfg.bias
    assert layer.count("weights(%arg5)") == int(cfg.stacked)
    rope_lines = [line for line in layer.splitlines() if "attn.rope %" in line]
    assert len(rope_lines) == 2
    assert all(("interleaved" in line) == cfg.rope["interleaved"] for line in rope_lines)
    attention = next(line for line in layer.splitlines() if "attn.paged_flash_attention" in line)
    kind = cfg.mask["kind"]
    assert kind == "causal" or kind in attention  # causal is the default, maybe elided
    assert (cfg.scale is None) == ("scale" not in attention)
    assert f"layer {cfg.layer_idx}" in attention


@needs_attn_opt
def test_runtime_layer_builders():
    # One function for every layer: the layer is the first argument, an i32 operand of every
    # cache op (after the expansion too), never an attribute.
    cfg = ir.LayerConfig(num_layers=3, layer_idx=2, qk_norm=True)
    functions = {
        "layer": ir.layer_function("layer", cfg, runtime_layer=True),
        "primitive": ir.primitive_layer_function("primitive", cfg, runtime_layer=True),
        "store": ir.kv_cache_store_function("store", cfg, runtime_layer=True),
        "attention": ir.paged_flash_attention_function("attention", cfg, runtime_layer=True),
    }
    for name, text in functions.items():
        assert text.split("(", 1)[1].lstrip().startswith("%layer_idx: i32,"), name
        assert "layer 2" not in text and "layer_idx = " not in text, name
    assert "%cache layer(%layer_idx) qkv(" in functions["layer"]
    assert ", i32, tensor<64x64xf32>" in functions["layer"]  # operand types: cache, layer, wq
    expanded = attn_opt(ir.module_text(*functions.values()), "--attn-expand-composite")
    cache_ops = [line for line in expanded.splitlines()
                 if "attn.kv_cache_store" in line or "attn.paged_flash_attention" in line]
    assert len(cache_ops) == 6
    assert all(" layer(%arg0 : i32) " in line for line in cache_ops), "\n".join(cache_ops)
    assert "attn.attention_with_rope" not in expanded and "layer 2" not in expanded
    assert ir.layer_arguments(cfg, runtime_layer=True)[1:] == ir.layer_arguments(cfg)


@needs_attn_opt
def test_verifier_errors_are_reported():
    bad = dataclasses.replace(ir.LayerConfig(), num_heads=3, num_kv_heads=2, hidden=48)
    proc = subprocess.run([ATTN_OPT, "-"], input=ir.layer_function("bad", bad),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "multiple of the kv heads" in proc.stderr


def dense_values(text):
    """Numbers of the first ``dense<...>`` constant in attn-opt output."""
    body = text.split("dense<", 1)[1].split(">", 1)[0]
    return np.array([float(v) for v in re.findall(r"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?", body)])


@needs_attn_opt
@pytest.mark.parametrize("kind", SCALINGS)
def test_rope_table_matches_reference(kind):
    # The same dict drives the attribute text and the reference: the folded table agrees.
    cfg = ir.LayerConfig(head_dim=8, max_seq_len=24, rope=rope(kind, False, 8))
    out = attn_opt(ir.rope_freqs_function("t", cfg), "--canonicalize",
                   "--mlir-print-elementsattrs-with-hex-if-larger=-1")
    table = dense_values(out).reshape(24, 8)
    np.testing.assert_allclose(table, ref.rope_table(cfg.rope, 8, 24), rtol=2e-6, atol=1e-7)


def test_attribute_text():
    assert ir.f64_literal(1e-6) == "1.0e-06"
    assert ir.f64_literal(500000) == "500000.0"
    assert float(ir.f64_literal(0.1 + 0.2)) == 0.1 + 0.2
    with pytest.raises(ValueError):
        ir.f64_literal(float("inf"))
    assert ir.mask_attr({"kind": "sliding_window", "window": 4096}) == \
        "#attn.mask<sliding_window = 4096>"
    assert ir.rope_attr(ir.DEFAULT_ROPE) == "#attn.rope<theta = 10000.0>"
    assert ir.tensor_type([None, 2, 3], "bf16") == "tensor<?x2x3xbf16>"
    with pytest.raises(ValueError):
        ir.scaling_attr({"kind": "dynamic"})


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_random_inputs_and_reference(dtype):
    cfg = ir.LayerConfig(dtype=dtype, stacked=dtype == "f16", bias=True, qk_norm=True,
                         page_size=4, max_seq_len=32)
    rng = np.random.default_rng(0)
    inputs = ir.random_layer_inputs(rng, cfg, [5, 0, 9], [3, 4, 0])
    assert list(inputs) == [n for n, _ in ir.layer_arguments(cfg)]
    for (name, type_text), array in zip(ir.layer_arguments(cfg), inputs.values()):
        dims = type_text[len("tensor<"):-1].split("x")[:-1]
        assert all(d == "?" or int(d) == s for d, s in zip(dims, array.shape)), name
        assert len(dims) == array.ndim and array.flags.c_contiguous
        assert array.dtype == rt.numpy_dtype(type_text.rsplit("x", 1)[1][:-1])
    blocks_before = inputs["blocks"].copy()
    out, new_blocks = ir.reference_layer(cfg, inputs)
    assert out.shape == (7, cfg.hidden) and np.all(np.isfinite(out))
    assert 0.05 < np.std(out) < 20  # activations stay O(1)
    np.testing.assert_array_equal(inputs["blocks"], blocks_before)  # inputs untouched
    old = rt.from_abi(blocks_before, dtype).astype(np.float64)
    changed = np.any(new_blocks != old, axis=(1, 3, 4, 5))  # [P, L]
    assert changed[:, cfg.layer_idx].sum() == 2 and not changed[:, 0].any()
    if dtype == "bf16":  # values representable in bf16
        np.testing.assert_array_equal(rt.from_bf16_bits(rt.to_bf16_bits(new_blocks)), new_blocks)
    with pytest.raises(ValueError, match="max_seq_len"):
        ir.random_layer_inputs(rng, cfg, [30], [3])


def test_random_inputs_with_runtime_layer():
    cfg = ir.LayerConfig(num_layers=3, layer_idx=2, page_size=4, max_seq_len=32)
    inputs = ir.random_layer_inputs(np.random.default_rng(0), cfg, [5, 9], [3, 1],
                                    runtime_layer=True)
    assert list(inputs) == [n for n, _ in ir.layer_arguments(cfg, runtime_layer=True)]
    assert type(inputs["layer_idx"]) is np.int32 and inputs["layer_idx"] == 2
    # The reference follows the layer of the inputs, not cfg.layer_idx.
    for layer in range(3):
        _, new_blocks = ir.reference_layer(cfg, dict(inputs, layer_idx=np.int32(layer)))
        old = rt.from_abi(inputs["blocks"], cfg.dtype).astype(np.float64)
        changed = np.any(new_blocks != old, axis=(1, 3, 4, 5))  # [P, L]
        assert changed[:, layer].any() and not np.delete(changed, layer, axis=1).any()


QUANTS = [
    {"kind": "gptq", "group_size": 32},
    {"kind": "gptq", "group_size": 64, "desc_act": True},
    {"kind": "float8", "weight_scale": "tensor", "input_scale": "static"},
    {"kind": "float8", "weight_scale": "row", "input_scale": "dynamic", "upper_bound": 12.5},
    {"kind": "float8", "weight_scale": "block", "input_scale": "dynamic"},
]


@needs_attn_opt
@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("quant", QUANTS, ids=lambda q: ir.encoding_attr(q))
def test_quantized_builders_verify(quant, stacked):
    dtype = "bf16" if quant["kind"] == "gptq" else "f32"
    cfg = ir.LayerConfig(hidden=256, num_heads=4, num_kv_heads=2, head_dim=64, dtype=dtype,
                         stacked=stacked, quant=quant)
    text = ir.module_text(
        ir.layer_function("layer", cfg),
        ir.quantized_linear_function("linear", quant, 256, 192, dtype, tokens=3))
    expanded = attn_opt(text, "--attn-expand-composite")
    parts = len(ir.quantized_part_names(quant))
    # One attn.quantized_weight per weight, its parts the function's arguments.
    assert expanded.count("attn.quantized_weight(") == (2 if stacked else 4) + 1
    assert expanded.count(f"{ir.encoding_attr(quant)}>") >= 5
    args = [name for name, _ in ir.layer_arguments(cfg)]
    assert sum(name.startswith(("wq", "wk", "wv", "wo")) for name in args) == parts * (
        2 if stacked else 4)
    inputs = ir.random_layer_inputs(np.random.default_rng(0), cfg, [3, 0], [2, 5])
    assert list(inputs) == args
    out, _ = ir.reference_layer(cfg, inputs)
    assert out.shape == (7, 256) and np.isfinite(out).all()
