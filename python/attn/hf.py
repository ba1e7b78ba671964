"""Hugging Face models: a layer from a ``config.json``, its weights from a safetensors checkpoint.

``from_hf_config`` reads the configs of Llama / Llama-3.x (``llama``), Mistral (``mistral``),
Qwen2 / 2.5 (``qwen2``), Qwen3 (``qwen3``), Phi-3 / 3.5 (``phi3``) and Gemma-2 / 3 (``gemma2``,
``gemma3``, ``gemma3_text``) as ``transformers`` interprets them:

- q/k/v biases: Qwen2 always; ``attention_bias`` elsewhere also biases o_proj, which the layer
  does not have (an error);
- qk-norm: Qwen3 and Gemma-3 (Gemma's RMSNorm scales by ``1 + weight``: ``norm_weight_offset``);
- stacked ``qkv_proj``: Phi-3;
- the mask of layer ``layer_idx``: ``layer_types`` if the config has it, else Mistral's and
  Phi-3's ``sliding_window``, Qwen's ``use_sliding_window`` from ``max_window_layers`` on,
  Gemma-2's even layers, Gemma-3's layers but every ``sliding_window_pattern``-th;
- RoPE: ``rope_theta`` and ``rope_scaling`` (or ``rope_parameters``) of type default, linear,
  llama3, yarn or longrope; Gemma-3's sliding layers use ``rope_local_base_freq`` unscaled;
- the attention scale: Gemma's ``query_pre_attn_scalar ** -0.5``.

What the layer cannot compute raises ``UnsupportedConfigError`` naming the field: logit
soft-capping (Gemma-2), partial rotary embeddings, other rope types, quantised checkpoints.
"""

import json
import os

import numpy as np

from . import layers
from . import runtime
from .arguments import torch_tensor
from .safetensors import Checkpoint, SafetensorsError

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3_text")
_QK_NORM = ("qwen3", "gemma3_text")
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "f16", "float32": "f32"}
# The layer's argument -> the checkpoint tensor under ``<prefix>.<i>.self_attn.``.
HF_TENSORS = {
    "wq": "q_proj.weight", "wk": "k_proj.weight", "wv": "v_proj.weight",
    "wqkv": "qkv_proj.weight", "bq": "q_proj.bias", "bk": "k_proj.bias", "bv": "v_proj.bias",
    "q_norm": "q_norm.weight", "k_norm": "k_norm.weight", "wo": "o_proj.weight",
}


class UnsupportedConfigError(ValueError):
    """A config (field) that the layer cannot compute."""


def _load(config):
    """The config as a dict: a dict, a path to config.json, or an object with ``to_dict``."""
    if isinstance(config, (str, os.PathLike)):
        with open(config) as f:
            return json.load(f)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(config)


def _rope_parameters(config, sliding):
    """The rope type's dict and theta of the layer (``rope_scaling`` or ``rope_parameters``)."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if "full_attention" in params or "sliding_attention" in params:  # per layer type
        params = params.get("sliding_attention" if sliding else "full_attention") or {}
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    if sliding and config["model_type"] == "gemma3_text" and "rope_local_base_freq" in config:
        return {}, config["rope_local_base_freq"]
    return params, theta


def _rope_scaling(config, params, head_dim):
    """The ``attn.reference`` scaling dict of the rope parameters."""
    kind = params.get("rope_type", params.get("type", "default"))
    for field in ("attention_factor", "mscale", "mscale_all_dim"):
        if params.get(field) is not None:
            raise UnsupportedConfigError(f"rope_scaling.{field}: not supported")
    original = params.get("original_max_position_embeddings",
                          config.get("original_max_position_embeddings"))
    if kind == "default":
        return None
    if kind == "linear":
        return {"kind": "linear", "factor": float(params["factor"])}
    if kind == "llama3":
        return {"kind": "llama3", "factor": float(params["factor"]),
                "low_freq_factor": float(params["low_freq_factor"]),
                "high_freq_factor": float(params["high_freq_factor"]),
                "original_max_position": int(original)}
    if kind == "yarn":
        return {"kind": "yarn", "factor": float(params["factor"]),
                "beta_fast": float(params.get("beta_fast", 32.0)),
                "beta_slow": float(params.get("beta_slow", 1.0)),
                "original_max_position": int(original or config["max_position_embeddings"])}
    if kind in ("longrope", "su"):
        for field in ("short_factor", "long_factor"):
            if len(params[field]) != head_dim // 2:
                raise UnsupportedConfigError(f"rope_scaling.{field}: {len(params[field])} "
                                             f"factors, head_dim / 2 = {head_dim // 2}")
        return {"kind": "longrope", "short_factor": [float(f) for f in params["short_factor"]],
                "long_factor": [float(f) for f in params["long_factor"]],
                "original_max_position": int(original),
                "max_position": int(config["max_position_embeddings"])}
    raise UnsupportedConfigError(f"rope_scaling.rope_type {kind!r}: supported are default, "
                                 "linear, llama3, yarn and longrope")


def _is_sliding(config, layer_idx):
    """Whether layer ``layer_idx`` has a sliding-window mask (``transformers``' choice)."""
    family = config["model_type"]
    if config.get("layer_types"):
        return config["layer_types"][layer_idx] == "sliding_attention"
    if not config.get("sliding_window"):
        return False
    if family in ("mistral", "phi3"):
        return True
    if family in ("qwen2", "qwen3"):
        return bool(config.get("use_sliding_window")) and \
            layer_idx >= config.get("max_window_layers", 0)
    if family == "gemma2":
        return layer_idx % 2 == 0
    if family == "gemma3_text":
        return (layer_idx + 1) % config.get("sliding_window_pattern", 6) != 0
    return False


def from_hf_config(config, *, layer_idx=0, dtype=None, page_size=128, max_seq_len=None,
                   no_opaque=False):
    """The ``AttentionWithRope`` (``AttentionWithRopeNoOpaque`` with ``no_opaque``) of layer
    ``layer_idx`` of a Hugging Face config (a dict, a config.json path or a transformers
    config). ``dtype`` defaults to the config's ``torch_dtype``; ``max_seq_len`` (the RoPE
    table's length) to ``max_position_embeddings`` but at most 8192. The cache holds every
    layer of the model (``num_hidden_layers``); the compiled function serves every layer
    whose mask and RoPE are those of ``layer_idx``."""
    config = _load(config)
    family = config.get("model_type")
    if family == "gemma3" and "text_config" in config:  # the multimodal Gemma-3 config
        config = {**config["text_config"], "model_type": "gemma3_text"}
        family = "gemma3_text"
    if family not in FAMILIES:
        raise UnsupportedConfigError(f"model_type {family!r}: supported are "
                                     f"{', '.join(FAMILIES)} (and gemma3)")
    if config.get("quantization_config"):
        method = config["quantization_config"].get("quant_method")
        raise UnsupportedConfigError(f"quantization_config ({method}): load quantised "
                                     "checkpoints into GPTQAttentionWithRope / float8_config "
                                     "layers by hand")
    if config.get("attn_logit_softcapping") is not None:
        raise UnsupportedConfigError(f"attn_logit_softcapping = "
                                     f"{config['attn_logit_softcapping']}: soft-capping of "
                                     "attention logits is not supported")
    if float(config.get("partial_rotary_factor", 1.0)) != 1.0:
        raise UnsupportedConfigError(f"partial_rotary_factor = {config['partial_rotary_factor']}"
                                     ": RoPE of part of the head is not supported")
    if config.get("attention_bias") and family != "qwen2":
        raise UnsupportedConfigError("attention_bias = true: o_proj bias is not supported")
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    num_layers = int(config["num_hidden_layers"])
    if not 0 <= layer_idx < num_layers:
        raise ValueError(f"layer_idx {layer_idx}: the model has {num_layers} layers")
    dtype = layers.dtype_name(dtype or _TORCH_DTYPES.get(
        config.get("torch_dtype") or config.get("dtype"), "f32"))
    sliding = _is_sliding(config, layer_idx)
    params, theta = _rope_parameters(config, sliding)
    max_positions = int(config.get("max_position_embeddings", 8192))
    rope = layers.RotaryEmbedding(theta=float(theta),
                                  max_seq_len=max_seq_len or min(max_positions, 8192),
                                  scaling=_rope_scaling(config, params, head_dim))
    scale = None
    if family.startswith("gemma"):
        scale = float(config.get("query_pre_attn_scalar", head_dim)) ** -0.5
    cls = layers.AttentionWithRopeNoOpaque if no_opaque else layers.AttentionWithRope
    return cls(
        rope=rope, num_attention_heads=heads, num_key_value_heads=kv_heads, hidden_size=hidden,
        kv_params=layers.KVCacheParams(dtype, kv_heads, head_dim, page_size, num_layers),
        dtype=dtype, stacked_qkv=family == "phi3", scale=scale, has_bias=family == "qwen2",
        use_qk_norm=family in _QK_NORM, rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        sliding_window=config["sliding_window"] if sliding else None,
        norm_weight_offset=1.0 if family == "gemma3_text" else 0.0)


# ---------------------------------------------------------------------------------------------
# Weights


def _find(checkpoint, layer_idx, suffix, prefix):
    """The checkpoint's name of tensor ``self_attn.<suffix>`` of layer ``layer_idx``, or None."""
    tail = f"layers.{layer_idx}.self_attn.{suffix}"
    if prefix is not None:
        name = f"{prefix}.{tail}"
        return name if name in checkpoint else None
    names = [n for n in checkpoint.keys() if n == tail or n.endswith("." + tail)]
    if len(names) > 1:
        raise SafetensorsError(f"several tensors end in {tail} ({', '.join(names)}): pass prefix")
    return names[0] if names else None


def _as_layer_dtype(file, name, dtype, offset):
    """Tensor ``name`` of ``file`` in the ABI representation of ``dtype`` (+ ``offset``)."""
    stored = {"BF16": "bf16", "F16": "f16", "F32": "f32"}.get(file.dtype(name))
    if stored is None:
        raise SafetensorsError(f"{name} is {file.dtype(name)}: expected BF16, F16 or F32")
    array = file.numpy(name)
    if stored == dtype and offset == 0.0:
        return array
    values = runtime.from_abi(array, stored).astype(np.float32) + np.float32(offset)
    return runtime.to_abi(values, dtype)


def load_layer_weights(checkpoint, layer, layer_idx, prefix=None, device=None):
    """The weight arguments of ``layer`` (``layer.weight_names()``) from layer ``layer_idx`` of
    a safetensors checkpoint (a ``Checkpoint``, a file, an index or a folder), converted to the
    layer's dtype: numpy arrays (bf16 as uint16 bits), or torch tensors on ``device``.

    Names are Hugging Face's, ``<prefix>.<layer_idx>.self_attn.q_proj.weight`` etc., where
    ``prefix`` (e.g. ``model.layers``) is found if None. A stacked ``qkv_proj`` is split for a
    layer with separate projections and separate ones stacked for a stacked layer."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint(checkpoint)
    cfg = layer.config
    if cfg.quant is not None:
        raise UnsupportedConfigError("quantised layers: pass the weights' parts by hand")
    stacked_name = _find(checkpoint, layer_idx, HF_TENSORS["wqkv"], prefix)
    weights = {}
    for argument in layer.weight_names():
        offset = layer.norm_weight_offset if argument in ("q_norm", "k_norm") else 0.0
        parts = [argument]
        if argument == "wqkv" and stacked_name is None:
            parts = ["wq", "wk", "wv"]
        elif argument == "bqkv":
            parts = ["bq", "bk", "bv"]
        elif argument in ("wq", "wk", "wv") and stacked_name is not None:
            parts = ["wqkv"]
        arrays = []
        for part in parts:
            name = _find(checkpoint, layer_idx, HF_TENSORS[part], prefix)
            if name is None:
                raise SafetensorsError(f"no tensor for {argument}: nothing named "
                                       f"{prefix or '...'}.layers.{layer_idx}.self_attn."
                                       f"{HF_TENSORS[part]}")
            arrays.append(_as_layer_dtype(checkpoint.file(name), name, cfg.dtype, offset))
        if parts == ["wqkv"] and argument != "wqkv":  # this projection's rows of qkv_proj
            start = {"wq": 0, "wk": cfg.q_rows, "wv": cfg.q_rows + cfg.kv_rows}[argument]
            rows = cfg.q_rows if argument == "wq" else cfg.kv_rows
            arrays = [arrays[0][start:start + rows]]
        array = np.ascontiguousarray(np.concatenate(arrays)) if len(arrays) > 1 else arrays[0]
        want = tuple(cfg.weight_shapes()[argument])
        if array.shape != want:
            raise SafetensorsError(f"{argument}: checkpoint shape {list(array.shape)}, the "
                                   f"layer's {list(want)}")
        weights[argument] = array if device is None else torch_tensor(array, cfg.dtype, device)
    return weights

