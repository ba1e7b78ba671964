"""Quantised Hugging Face checkpoints: GPTQ (desc_act), fbgemm_fp8 and compressed-tensors float8
configs become quantised layers, their tensors are read into the ABI parts (decoding to the
checkpoint's own dequantised weights), and the compiled layer matches the reference."""

import numpy as np
import pytest

from cpu_exec_support import CACHE_TOL, LAYER_TOL, needs_attn_compile
from package_support import hf_config
from test_cpu_exec_quant import o_proj_slack

import attn
from attn import ir, layers, safetensors
from attn import runtime as rt
from attn import reference as ref

PROJECTIONS = {"q_proj": (64, 64), "k_proj": (32, 64), "v_proj": (32, 64), "o_proj": (64, 64)}
GROUP = 16


def gptq_checkpoint(rng, path):
    """A GPTQ checkpoint of layer 0 (desc_act: shuffled g_idx) and each projection's weight
    dequantised as transformers does, ``W[n, k] = (q[k, n] - 8) * scales[g_idx[k], n]``."""
    tensors, dequantised = {}, {}
    for module, (n, k) in PROJECTIONS.items():
        q = rng.integers(0, 16, (k, n))
        scales = (rng.uniform(0.5, 1.5, (k // GROUP, n)) / np.sqrt(k) / 4).astype(np.float16)
        g_idx = rng.permutation(np.arange(k) // GROUP).astype(np.int32)
        prefix = f"model.layers.0.self_attn.{module}."
        tensors.update({
            prefix + "qweight": ref.pack_int4(q), prefix + "scales": scales,
            prefix + "qzeros": ref.pack_int4(np.full((n, k // GROUP), 7)).T.copy(),
            prefix + "g_idx": g_idx})
        dequantised[module] = ((q - 8) * scales[g_idx].astype(np.float64)).T
    safetensors.write(path, tensors)
    return dequantised


def float8_checkpoint(rng, path, weight_scale_shape, input_scale):
    """A float8 checkpoint of layer 0: E4M3 codes (magnitudes 2^-3..2^3), f32 weight scales of
    ``weight_scale_shape(n)``, a static input scale if ``input_scale``."""
    tensors = {}
    for module, (n, k) in PROJECTIONS.items():
        prefix = f"model.layers.0.self_attn.{module}."
        codes = rng.integers(0x20, 0x50, (n, k)) | rng.choice([0, 0x80], (n, k))
        tensors[prefix + "weight"] = codes.astype(np.uint8)
        tensors[prefix + "weight_scale"] = (rng.uniform(0.5, 1.5, weight_scale_shape(n))
                                            / np.sqrt(k) / 2).astype(np.float32)
        if input_scale:
            tensors[prefix + "input_scale"] = np.array([0.015], np.float32)
    safetensors.write(path, tensors)
    return tensors


def run_prefill(layer, weights):
    """(out, reference out, cache blocks, reference blocks) of a 2-sequence prefill."""
    run = layer.compile(target="cpu")
    cache = attn.PagedKVCache(layer.kv_params, num_pages=8, max_seq_len=64)
    cache.step([9, 4])
    x = np.random.default_rng(21).standard_normal((13, 64))
    x = rt.to_abi(x, layer.dtype)
    inputs = {"layer_idx": np.int32(0), "x": x, **cache.arguments(), **weights}
    want, want_blocks = ir.reference_layer(layer.config, inputs)
    out = run(x, cache, weights)
    return (rt.from_abi(out, layer.dtype), want,
            rt.from_abi(cache.blocks, layer.dtype), want_blocks, inputs)


@needs_attn_compile
def test_gptq_desc_act(tmp_path):
    config = hf_config("llama2", torch_dtype="float16",
                       quantization_config={"quant_method": "gptq", "bits": 4, "sym": True,
                                            "group_size": GROUP, "desc_act": True})
    dequantised = gptq_checkpoint(np.random.default_rng(20), tmp_path / "model.safetensors")
    layer = attn.from_hf_config(config, page_size=4, max_seq_len=64)
    assert isinstance(layer, layers.GPTQAttentionWithRope) and layer.dtype == "f16"
    weights = attn.load_layer_weights(tmp_path, layer, 0)
    assert sorted(weights) == sorted(f"{w}_{p}" for w in ("wq", "wk", "wv", "wo")
                                     for p in ("qweight", "scales", "perm"))
    x = np.random.default_rng(22).standard_normal((3, 64))
    for argument, module in (("wq", "q_proj"), ("wo", "o_proj")):
        weight = ref.GPTQWeight(weights[f"{argument}_qweight"], weights[f"{argument}_scales"],
                                GROUP, weights[f"{argument}_perm"])
        np.testing.assert_allclose(weight.apply(x), x @ dequantised[module].T, rtol=1e-12,
                                   atol=1e-12)
    got, want, blocks, want_blocks, _ = run_prefill(layer, weights)
    assert np.max(np.abs(got - want)) <= LAYER_TOL["f16"] * np.max(np.abs(want))
    written = np.abs(want_blocks) > 0
    assert np.max(np.abs(blocks - want_blocks)[written]) <= \
        CACHE_TOL["f16"] * np.max(np.abs(want_blocks))


@needs_attn_compile
def test_gptq_column_blocks(tmp_path):
    """The same checkpoint loaded in column blocks: repacked words, the same layer output bit
    for bit (the CPU decodes the same values in the same order)."""
    config = hf_config("llama2", torch_dtype="bfloat16",
                       quantization_config={"quant_method": "gptq", "bits": 4, "sym": True,
                                            "group_size": GROUP, "desc_act": True})
    gptq_checkpoint(np.random.default_rng(24), tmp_path / "model.safetensors")
    outputs = {}
    for layout in ("checkpoint", "column_blocks"):
        layer = attn.from_hf_config(config, page_size=4, max_seq_len=64, gptq_layout=layout)
        weights = attn.load_layer_weights(tmp_path, layer, 0)
        outputs[layout] = run_prefill(layer, weights)
        outputs[layout + " weights"] = weights
    blocked, plain = outputs["column_blocks weights"], outputs["checkpoint weights"]
    assert blocked["wq_qweight"].shape == (2, 8, 32)
    for part in ("qweight", "scales"):
        np.testing.assert_array_equal(blocked[f"wq_{part}"],
                                      ref.gptq_column_blocks(plain[f"wq_{part}"]))
    assert blocked["wq_scales"].shape == (2, 4, 32)
    got, want, blocks, want_blocks, _ = outputs["column_blocks"]
    assert np.max(np.abs(got - want)) <= LAYER_TOL["bf16"] * np.max(np.abs(want))
    np.testing.assert_array_equal(got, outputs["checkpoint"][0])
    np.testing.assert_array_equal(blocks, outputs["checkpoint"][2])


@needs_attn_compile
@pytest.mark.parametrize("method", ["fbgemm_fp8", "compressed-tensors"])
def test_float8(tmp_path, method):
    if method == "fbgemm_fp8":
        quantization = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}
        scale_shape, static = (lambda n: (n, 1)), False
    else:
        quantization = {"quant_method": "compressed-tensors", "format": "float-quantized",
                        "ignore": ["lm_head"], "config_groups": {"group_0": {
                            "targets": ["Linear"],
                            "weights": {"num_bits": 8, "type": "float", "strategy": "tensor",
                                        "dynamic": False},
                            "input_activations": {"num_bits": 8, "type": "float",
                                                  "strategy": "tensor", "dynamic": False}}}}
        scale_shape, static = (lambda n: ()), True
    config = hf_config("llama2", quantization_config=quantization)
    stored = float8_checkpoint(np.random.default_rng(23), tmp_path / "model.safetensors",
                               scale_shape, static)
    layer = attn.from_hf_config(config, page_size=4, max_seq_len=64)
    quant = layer.config.quant
    assert quant["kind"] == "float8"
    assert (quant["weight_scale"], quant["input_scale"]) == (
        ("tensor", "static") if static else ("row", "dynamic"))
    assert quant["upper_bound"] == (None if static else 1200.0)
    weights = attn.load_layer_weights(tmp_path, layer, 0)
    prefix = "model.layers.0.self_attn.k_proj."
    np.testing.assert_array_equal(weights["wk_weight"], stored[prefix + "weight"])
    np.testing.assert_array_equal(weights["wk_weight_scale"],
                                  stored[prefix + "weight_scale"].reshape(-1))
    got, want, blocks, want_blocks, inputs = run_prefill(layer, weights)
    bound = LAYER_TOL["f32"] * np.max(np.abs(want)) + o_proj_slack(layer.config, inputs)
    assert np.all(np.abs(got - want) <= bound)
    np.testing.assert_allclose(blocks, want_blocks, rtol=0,
                               atol=CACHE_TOL["f32"] * np.max(np.abs(want_blocks)))


@pytest.mark.parametrize("quantization, message", [
    ({"quant_method": "awq", "bits": 4}, r"quantization_config \(awq\): supported are gptq"),
    ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "GPTQ bits = 8"),
    ({"quant_method": "fbgemm_fp8", "modules_to_not_convert": ["model.layers.0.self_attn.o_proj"]},
     "attention projections left unquantised"),
    ({"quant_method": "compressed-tensors", "config_groups": {"g": {
        "weights": {"num_bits": 8, "type": "float", "strategy": "group"}}}},
     "weights.strategy 'group'"),
])
def test_unsupported_quantization_is_named(quantization, message):
    with pytest.raises(attn.UnsupportedConfigError, match=message):
        attn.from_hf_config(hf_config("llama2", quantization_config=quantization))
