"""``from_hf_config`` for every supported family (its IR verifies with attn-opt and holds the
config's settings), what it refuses, ``load_layer_weights`` and the other layer variants' IR."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from package_support import CONFIGS, hf_config, hf_layer_tensors

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import attn  # noqa: E402
from attn import layers, safetensors, tools  # noqa: E402
from attn import runtime as rt  # noqa: E402

ATTN_OPT = tools.find_tool("attn-opt")


def verified(text):
    """attn-opt's output for ``text`` (the test fails with its diagnostics if it rejects it)."""
    proc = subprocess.run([ATTN_OPT, "-"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, f"attn-opt rejected:\n{proc.stderr}\n{text}"
    return proc.stdout


# family -> (layer_idx, what attn-opt prints of the layer's attributes and weights)
EXPECTED = {
    "llama2": (0, ["rope = #attn.rope<theta = 10000.0>", "qkv(%", "o_proj("]),
    "llama3.1": (1, ["rope = #attn.rope<theta = 500000.0, scaling = #attn.llama3_scaling<factor "
                     "= 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, "
                     "original_max_position = 64>>"]),
    "mistral": (1, ["mask = #attn.mask<sliding_window = 32>"]),
    "qwen2": (0, ["bias(%", "rope = #attn.rope<theta = 1000000.0>"]),
    # beta_fast 32 and beta_slow 1 are the defaults: not printed.
    "qwen2.5": (0, ["bias(%", "#attn.yarn_scaling<factor = 4.0, original_max_position = 128>"]),
    "qwen3": (0, ["q_norm(%", "k_norm(%", "tensor<128x64xbf16>", "head_dim = 32"]),
    "phi3": (0, ["tensor<192x64xf32>", "mask = #attn.mask<sliding_window = 2047>"]),
    "phi3.5": (0, ["#attn.longrope_scaling<", "original_max_position = 64, max_position = 512>"]),
    "gemma2": (0, ["scale = 0.2041241452319315", "mask = #attn.mask<sliding_window = 16>"]),
    "gemma3": (0, ["q_norm(%", "sliding_window = 16", "rope = #attn.rope<theta = 10000.0>"]),
}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_family_ir_verifies(family):
    layer_idx, expected = EXPECTED[family]
    layer = attn.from_hf_config(hf_config(family), layer_idx=layer_idx, page_size=16,
                                max_seq_len=256)
    text = verified(layer.mlir())
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in\n{text}"
    assert re.search(r"%arg3: !attn.paged_kv_cache", text)  # the opaque cache, an argument
    assert ("bias(" in text) == (family.startswith("qwen2"))
    assert ("mask = #attn.mask<sliding" in text) == (family in ("mistral", "phi3", "phi3.5",
                                                                "gemma2", "gemma3"))


def test_per_layer_masks_and_rope():
    """Gemma-2 slides on even layers; Gemma-3 on all but every pattern-th, whose RoPE is the
    global theta with the config's scaling; Qwen2 from max_window_layers on; layer_types wins."""
    gemma2 = hf_config("gemma2")
    assert attn.from_hf_config(gemma2, layer_idx=1).config.mask == {"kind": "causal"}
    gemma3 = hf_config("gemma3")
    global_layer = attn.from_hf_config(gemma3, layer_idx=1).config
    assert global_layer.mask == {"kind": "causal"}
    assert global_layer.rope == {"theta": 1e6, "interleaved": False,
                                 "scaling": {"kind": "linear", "factor": 8.0}}
    local = attn.from_hf_config(gemma3, layer_idx=0).config
    assert local.rope["theta"] == 1e4 and local.rope["scaling"] is None
    qwen = hf_config("qwen2", use_sliding_window=True, sliding_window=8, max_window_layers=1)
    assert attn.from_hf_config(qwen, layer_idx=0).config.mask == {"kind": "causal"}
    assert attn.from_hf_config(qwen, layer_idx=1).config.mask["window"] == 8
    typed = hf_config("llama2", sliding_window=8,
                      layer_types=["full_attention", "sliding_attention"])
    assert attn.from_hf_config(typed, layer_idx=1).config.mask["window"] == 8
    multimodal = {"model_type": "gemma3", "text_config": hf_config("gemma3")}
    assert attn.from_hf_config(multimodal).config.qk_norm


@pytest.mark.parametrize("fields, message", [
    ({"model_type": "gemma2", "attn_logit_softcapping": 50.0},
     "attn_logit_softcapping = 50.0: soft-capping"),
    ({"partial_rotary_factor": 0.5}, "partial_rotary_factor = 0.5"),
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_type 'dynamic'"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0, "attention_factor": 1.5}},
     "rope_scaling.attention_factor"),
    ({"model_type": "gpt2"}, "model_type 'gpt2'"),
    ({"attention_bias": True}, "attention_bias = true: o_proj bias"),
])
def test_unsupported_configs_are_named(fields, message):
    with pytest.raises(attn.UnsupportedConfigError, match=message):
        attn.from_hf_config(hf_config("llama2", **fields))


def test_gpu_limits_are_named_before_compiling():
    layer = attn.from_hf_config(hf_config("gemma2", head_dim=288, torch_dtype="bfloat16"))
    with pytest.raises(ValueError, match="head_dim 288: the cuda target takes a multiple of 16 "
                                         "up to 256"):
        layer.compile(target="cuda")
    f32 = attn.from_hf_config(hf_config("llama2"))
    with pytest.raises(ValueError, match="dtype f32: the cuda target takes bf16 or f16"):
        f32.compile(target="cuda")
    with pytest.raises(ValueError, match="target 'tpu'"):
        f32.compile(target="tpu")
    with pytest.raises(ValueError, match="layer_idx 5: the model has 2 layers"):
        attn.from_hf_config(hf_config("llama2"), layer_idx=5)


def _write(tmp_path, tensors):
    path = tmp_path / "model.safetensors"
    safetensors.write(path, tensors)
    return path


def test_weights_stacked_split_and_converted(tmp_path):
    """Phi-3's qkv_proj split for a layer of separate projections (and stacked back), f32
    checkpoint values rounded once to a bf16 layer."""
    config = hf_config("phi3")
    tensors = hf_layer_tensors(config, np.random.default_rng(8), 0)
    path = _write(tmp_path, tensors)
    qkv = tensors["model.layers.0.self_attn.qkv_proj.weight"]
    stacked = attn.from_hf_config(config)
    np.testing.assert_array_equal(attn.load_layer_weights(path, stacked, 0)["wqkv"], qkv)
    separate = layers.AttentionWithRope(
        rope=layers.RotaryEmbedding(), num_attention_heads=4, num_key_value_heads=4,
        hidden_size=64, kv_params=layers.KVCacheParams("bf16", 4, 16), dtype="bf16")
    weights = attn.load_layer_weights(path, separate, 0)
    np.testing.assert_array_equal(weights["wk"], rt.to_bf16_bits(qkv[64:128]))
    np.testing.assert_array_equal(
        np.concatenate([weights["wq"], weights["wk"], weights["wv"]]), rt.to_bf16_bits(qkv))


def test_weights_gemma_norm_offset_and_prefix(tmp_path):
    config = hf_config("gemma3")
    tensors = hf_layer_tensors(config, np.random.default_rng(9), 1)
    tensors = {"language_model." + name: value for name, value in tensors.items()}
    path = _write(tmp_path, tensors)
    layer = attn.from_hf_config(config, layer_idx=1)
    weights = attn.load_layer_weights(path, layer, 1)
    gamma = tensors["language_model.model.layers.1.self_attn.q_norm.weight"]
    np.testing.assert_array_equal(weights["q_norm"], gamma + np.float32(1.0))
    with pytest.raises(safetensors.SafetensorsError, match="no tensor for wq: nothing named "
                       r"model.layers.layers.0.self_attn.q_proj.weight"):
        attn.load_layer_weights(path, layer, 0, prefix="model.layers")
    with pytest.raises(safetensors.SafetensorsError, match="wq: checkpoint shape"):
        attn.load_layer_weights(path, attn.from_hf_config(hf_config("gemma3", head_dim=16)), 1)


def test_variants_ir_verifies():
    """NoOpaque, GPTQ, float8, GGUF and the sharded layers: their IR verifies."""
    common = dict(rope=layers.RotaryEmbedding(max_seq_len=128), num_attention_heads=4,
                  num_key_value_heads=2, hidden_size=256)
    kv = layers.KVCacheParams("bf16", 2, 64, page_size=16, num_layers=2)
    no_opaque = verified(layers.AttentionWithRopeNoOpaque(kv_params=kv, dtype="bf16",
                                                          **common).mlir())
    assert "attn.paged_cache.make" in no_opaque
    gptq = verified(layers.GPTQAttentionWithRope(
        quantization_config={"group_size": 128, "desc_act": True}, kv_params=kv, dtype="bf16",
        **common).mlir())
    assert "#attn.gptq<group_size = 128, desc_act = true>" in gptq
    blocks = verified(layers.GPTQAttentionWithRope(
        quantization_config={"group_size": 128, "layout": "column_blocks"}, kv_params=kv,
        dtype="bf16", **common).mlir())
    assert "#attn.gptq<group_size = 128, layout = column_blocks>" in blocks
    # wq's words [N/32, K/8, 32] and scales [N/32, K/g, 32]: N 256, K 256.
    assert "tensor<8x32x32xi32>" in blocks and "tensor<8x2x32xf16>" in blocks
    with pytest.raises(ValueError, match="GPTQ layout 'tiles'; checkpoint or column_blocks"):
        layers.GPTQAttentionWithRope(quantization_config={"group_size": 128, "layout": "tiles"},
                                     kv_params=kv, dtype="bf16", **common)
    float8 = verified(layers.AttentionWithRope(
        kv_params=kv, dtype="bf16", float8_config={"weight_scale": "row",
                                                   "input_scale": "dynamic"}, **common).mlir())
    assert "#attn.float8<weight_scale = row, input_scale = dynamic>" in float8
    kv32 = layers.KVCacheParams("f32", 2, 64, page_size=16, num_layers=2)
    gguf = layers.GGUFQAttentionWithRope(quantization_encoding={"wq": "q4_k", "wo": "q6_k"},
                                         kv_params=kv32, **common)
    text = verified(gguf.mlir())
    assert "#attn.gguf<q4_k>" in text and "#attn.gguf<q6_k>" in text
    with pytest.raises(ValueError, match="GGUF weights are decoded on the CPU only"):
        gguf.compile(target="cuda")
    tensor = layers.TensorParallelAttentionWithRope(kv_params=kv, dtype="bf16", devices=2,
                                                    **common)
    text = verified(tensor.mlir())
    assert "shard.all_reduce" in text and re.search(r"num_attention_heads = 2\b", text)
    data = layers.DataParallelAttentionWithRope(kv_params=kv, dtype="bf16", devices=[0, 1],
                                                **common)
    assert "shard.all_reduce" not in verified(data.mlir())
    with pytest.raises(ValueError, match="devices: 2 devices; use TensorParallel"):
        layers.AttentionWithRope(kv_params=kv, dtype="bf16", devices=2, **common)
    with pytest.raises(ValueError, match="kv_params.dtype = bf16 differs from dtype = f32"):
        layers.AttentionWithRope(kv_params=kv, dtype="float32", **common)
