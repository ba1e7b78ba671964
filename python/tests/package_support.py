"""Tiny Hugging Face configs of every supported family and checkpoints written from them, for
the tests of the package API (``attn.hf``, ``attn.layers``, the README example)."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import runtime as rt  # noqa: E402
from attn import safetensors  # noqa: E402

_BASE = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 2, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
         "torch_dtype": "float32"}

# The fields of each family that its attention reads (from the published configs, scaled down).
CONFIGS = {
    "llama2": {"model_type": "llama", "rope_theta": 10000.0, "rope_scaling": None},
    "llama3.1": {"model_type": "llama", "rope_theta": 500000.0, "attention_bias": False,
                 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 64}},
    "mistral": {"model_type": "mistral", "rope_theta": 10000.0, "sliding_window": 32},
    "qwen2": {"model_type": "qwen2", "rope_theta": 1000000.0, "use_sliding_window": False,
              "sliding_window": 4096, "max_window_layers": 28},
    "qwen2.5": {"model_type": "qwen2", "rope_theta": 1000000.0, "use_sliding_window": False,
                "rope_scaling": {"type": "yarn", "factor": 4.0,
                                 "original_max_position_embeddings": 128}},
    "qwen3": {"model_type": "qwen3", "head_dim": 32, "rope_theta": 1000000.0,
              "attention_bias": False, "torch_dtype": "bfloat16"},
    "phi3": {"model_type": "phi3", "rope_theta": 10000.0, "sliding_window": 2047,
             "num_key_value_heads": 4},
    "phi3.5": {"model_type": "phi3", "rope_theta": 10000.0, "sliding_window": 262144,
               "num_key_value_heads": 4, "original_max_position_embeddings": 64,
               "rope_scaling": {"type": "longrope",
                                "short_factor": list(np.linspace(1.0, 1.5, 8)),
                                "long_factor": list(np.linspace(1.0, 8.0, 8))}},
    "gemma2": {"model_type": "gemma2", "head_dim": 32, "query_pre_attn_scalar": 24,
               "sliding_window": 16, "attn_logit_softcapping": None,
               "final_logit_softcapping": 30.0, "rope_theta": 10000.0},
    "gemma3": {"model_type": "gemma3_text", "head_dim": 32, "query_pre_attn_scalar": 32,
               "sliding_window": 16, "sliding_window_pattern": 2, "rope_theta": 1000000.0,
               "rope_local_base_freq": 10000.0,
               "rope_scaling": {"rope_type": "linear", "factor": 8.0}},
}


def hf_config(family, **fields):
    """The tiny config of ``family`` (a key of CONFIGS), ``fields`` overriding."""
    return {**_BASE, **CONFIGS[family], **fields}


def hf_layer_tensors(config, rng, layer_idx):
    """Random float32 attention tensors of one layer by Hugging Face name (non-zero, scaled
    1/sqrt(fan_in); norm weights around 1, or around 0 for Gemma's ``1 + weight``)."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    kv_heads = config["num_key_value_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    prefix = f"model.layers.{layer_idx}.self_attn."
    shapes = {"o_proj.weight": (hidden, q)}
    if config["model_type"] == "phi3":
        shapes["qkv_proj.weight"] = (q + 2 * kv, hidden)
    else:
        shapes.update({"q_proj.weight": (q, hidden), "k_proj.weight": (kv, hidden),
                       "v_proj.weight": (kv, hidden)})
    if config["model_type"] == "qwen2":
        shapes.update({"q_proj.bias": (q,), "k_proj.bias": (kv,), "v_proj.bias": (kv,)})
    tensors = {}
    for name, shape in shapes.items():
        spread = 0.5 if name.endswith("bias") else 1.0 / np.sqrt(shape[-1])
        tensors[prefix + name] = (rng.standard_normal(shape) * spread).astype(np.float32)
    if config["model_type"] in ("qwen3", "gemma3_text"):
        centre = 0.0 if config["model_type"] == "gemma3_text" else 1.0
        for name in ("q_norm.weight", "k_norm.weight"):
            tensors[prefix + name] = rng.uniform(centre - 0.5, centre + 0.5,
                                                 head_dim).astype(np.float32)
    return tensors


def write_checkpoint(folder, config, rng, dtype="F32"):
    """Writes ``config.json`` and ``model.safetensors`` (every layer's attention tensors in
    ``dtype``, F32 or BF16) into ``folder``; returns the tensors as stored (BF16: uint16)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    tensors = {}
    for layer_idx in range(config["num_hidden_layers"]):
        for name, values in hf_layer_tensors(config, rng, layer_idx).items():
            tensors[name] = rt.to_bf16_bits(values) if dtype == "BF16" else values
    safetensors.write(os.path.join(folder, "model.safetensors"), tensors)
    return tensors


def sharded_layer(strategy, devices=2):
    """A Qwen-like f32 layer (biases, qk-norm) split over ``devices`` by ``strategy``."""
    from attn import layers

    cls = {"tensor": layers.TensorParallelAttentionWithRope,
           "data": layers.DataParallelAttentionWithRope}[strategy]
    return cls(rope=layers.RotaryEmbedding(theta=1e6, max_seq_len=128), num_attention_heads=8,
               num_key_value_heads=4, hidden_size=64,
               kv_params=layers.KVCacheParams("f32", 4, 16, page_size=8, num_layers=2),
               devices=devices, has_bias=True, use_qk_norm=True)
