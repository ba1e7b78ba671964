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

- quantised checkpoints (``quantization_config``): GPTQ int4 symmetric (``gptq``, a
  ``GPTQAttentionWithRope``), float8 E4M3 with per-row weight scales and dynamic input scales
  (``fbgemm_fp8``), and float8 ``compressed-tensors`` (per-tensor or per-channel weight scales,
  static per-tensor or dynamic per-token input scales).

What the layer cannot compute raises ``UnsupportedConfigError`` naming the field: logit
soft-capping (Gemma-2), partial rotary embeddings, other rope types and quantisation methods.
"""

import json
import os

import numpy as np

from . import ir
from . import layers
from . import reference as ref
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


_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "self_attn")


def _float8_compressed_tensors(qc):
    """The float8 encoding of a ``compressed-tensors`` quantization_config."""
    groups = list(qc.get("config_groups", {}).values())
    if len(groups) != 1:
        raise UnsupportedConfigError(f"quantization_config.config_groups: {len(groups)} groups, "
                                     "one is supported")
    weights, inputs = groups[0].get("weights") or {}, groups[0].get("input_activations") or {}
    if weights.get("type") != "float" or weights.get("num_bits") != 8:
        raise UnsupportedConfigError("quantization_config: compressed-tensors weights other than "
                                     "8-bit float")
    weight_scale = {"tensor": "tensor", "channel": "row"}.get(weights.get("strategy"))
    if weight_scale is None:
        raise UnsupportedConfigError(f"quantization_config weights.strategy "
                                     f"{weights.get('strategy')!r}: tensor or channel")
    scheme = (bool(inputs.get("dynamic")), inputs.get("strategy"))
    input_scale = {(False, "tensor"): "static", (True, "token"): "dynamic"}.get(scheme)
    if input_scale is None:
        raise UnsupportedConfigError(f"quantization_config input_activations {inputs}: static "
                                     "per-tensor or dynamic per-token scales")
    return {"kind": "float8", "weight_scale": weight_scale, "input_scale": input_scale,
            "upper_bound": None}


def _quantization(config):
    """The ``attn.ir`` encoding of the attention projections of a quantised checkpoint."""
    qc = config.get("quantization_config")
    if not qc:
        return None
    method = qc.get("quant_method")
    skipped = [m for m in (qc.get("modules_to_not_convert") or qc.get("ignore") or [])
               if any(p in m for p in _PROJECTIONS)]
    if skipped:
        raise UnsupportedConfigError(f"quantization_config: attention projections left "
                                     f"unquantised ({', '.join(skipped)})")
    if method == "gptq":
        if qc.get("bits", 4) != 4 or not qc.get("sym", True):
            raise UnsupportedConfigError(f"quantization_config: GPTQ bits = {qc.get('bits')}, "
                                         f"sym = {qc.get('sym')}: int4 symmetric only")
        return {"kind": "gptq", "group_size": int(qc["group_size"]),
                "desc_act": bool(qc.get("desc_act", False))}
    if method == "fbgemm_fp8":
        return {"kind": "float8", "weight_scale": "row", "input_scale": "dynamic",
                "upper_bound": qc.get("activation_scale_ub")}
    if method == "compressed-tensors":
        return _float8_compressed_tensors(qc)
    raise UnsupportedConfigError(f"quantization_config ({method}): supported are gptq, "
                                 "fbgemm_fp8 and compressed-tensors float8")


def from_hf_config(config, *, layer_idx=0, dtype=None, page_size=128, max_seq_len=None,
                   no_opaque=False, gptq_layout="checkpoint"):
    """The ``AttentionWithRope`` (``AttentionWithRopeNoOpaque`` with ``no_opaque``) of layer
    ``layer_idx`` of a Hugging Face config (a dict, a config.json path or a transformers
    config). ``dtype`` defaults to the config's ``torch_dtype``; ``max_seq_len`` (the RoPE
    table's length) to ``max_position_embeddings`` but at most 8192. The cache holds every
    layer of the model (``num_hidden_layers``); the compiled function serves every layer
    whose mask and RoPE are those of ``layer_idx``. ``gptq_layout="column_blocks"`` takes a
    GPTQ checkpoint's words and scales repacked once into 32-column blocks
    (``load_layer_weights`` does it), the order the GPU kernels read as contiguous runs."""
    config = _load(config)
    family = config.get("model_type")
    if family == "gemma3" and "text_config" in config:  # the multimodal Gemma-3 config
        config = {**config["text_config"], "model_type": "gemma3_text"}
        family = "gemma3_text"
    if family not in FAMILIES:
        raise UnsupportedConfigError(f"model_type {family!r}: supported are "
                                     f"{', '.join(FAMILIES)} (and gemma3)")
    quant = _quantization(config)
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
    variant = {}
    if quant and quant["kind"] == "gptq":
        if no_opaque:
            raise UnsupportedConfigError("no_opaque: GPTQ layers take the opaque cache (MAX's "
                                         "GPTQAttentionWithRope)")
        cls = layers.GPTQAttentionWithRope
        variant["quantization_config"] = {**quant, "layout": gptq_layout}
    elif quant:
        variant["float8_config"] = {k: quant[k] for k in ("weight_scale", "input_scale",
                                                          "upper_bound")}
    return cls(
        **variant,
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


def _quantized_parts(checkpoint, layer_idx, prefix, argument, cfg):
    """The ABI parts (``<argument>_qweight``, ...) of quantised weight ``argument``: GPTQ's
    ``qweight, scales, qzeros[, g_idx]`` (``reference.gptq_from_checkpoint``: MAX's form), or
    float8's ``weight, weight_scale[, input_scale]``."""
    quant = cfg.quant_of(argument)
    module = HF_TENSORS[argument].rsplit(".", 1)[0]

    def read(suffix):
        name = _find(checkpoint, layer_idx, f"{module}.{suffix}", prefix)
        if name is None:
            raise SafetensorsError(f"no tensor for {argument}_{suffix}: nothing named "
                                   f"{prefix or '...'}.layers.{layer_idx}.self_attn."
                                   f"{module}.{suffix}")
        return checkpoint.file(name).numpy(name), checkpoint.file(name).dtype(name), name

    if quant["kind"] == "gptq":
        scales = read("scales")
        weight = ref.gptq_from_checkpoint(
            read("qweight")[0], scales[0], read("qzeros")[0], quant["group_size"],
            read("g_idx")[0] if quant.get("desc_act") else None)
        arrays = {"qweight": weight.qweight,
                  "scales": _converted(*scales, "f16"), "perm": weight.perm}
        if quant.get("layout") == "column_blocks":
            for suffix in ("qweight", "scales"):
                arrays[suffix] = ref.gptq_column_blocks(np.asarray(arrays[suffix]))
    else:
        arrays = {suffix: read(suffix) for suffix in ("weight", "weight_scale", "input_scale")
                  if suffix != "input_scale" or quant["input_scale"] == "static"}
        arrays = {suffix: part[0] if suffix == "weight" else _converted(*part, "f32")
                  for suffix, part in arrays.items()}
    parts = {}
    for suffix, shape, element in ir.quantized_parts(quant, *cfg.weight_shapes()[argument]):
        array = np.asarray(arrays[suffix]).astype(runtime.numpy_dtype(element), copy=False)
        if array.ndim != len(shape) and array.size == int(np.prod(shape)):  # [N, 1] scales: [N]
            array = array.reshape(shape)
        if array.shape != tuple(shape):
            raise SafetensorsError(f"{argument}_{suffix}: checkpoint shape {list(array.shape)}, "
                                   f"the layer's {list(shape)}")
        parts[f"{argument}_{suffix}"] = np.ascontiguousarray(array)
    return parts


def _converted(array, stored, what, element, offset=0.0):
    """Checkpoint values of safetensors dtype ``stored`` (of tensor ``what``) as the ABI array of
    ``element``, ``offset`` added."""
    kind = {"BF16": "bf16", "F16": "f16", "F32": "f32"}.get(stored)
    if kind is None:
        raise SafetensorsError(f"{what} is {stored}: expected BF16, F16 or F32")
    if kind == element and offset == 0.0:
        return array
    values = runtime.from_abi(array, kind).astype(np.float32) + np.float32(offset)
    return runtime.to_abi(values, element)


def load_layer_weights(checkpoint, layer, layer_idx, prefix=None, device=None):
    """The weight arguments of ``layer`` (``layer.weight_names()``) from layer ``layer_idx`` of
    a safetensors checkpoint (a ``Checkpoint``, a file, an index or a folder), converted to the
    layer's dtype: numpy arrays (bf16 as uint16 bits), or torch tensors on ``device``.

    Names are Hugging Face's, ``<prefix>.<layer_idx>.self_attn.q_proj.weight`` etc., where
    ``prefix`` (e.g. ``model.layers``) is found if None. A stacked ``qkv_proj`` is split for a
    layer with separate projections and separate ones stacked for a stacked layer. A quantised
    layer's weights are its parts (``wq_qweight``, ``wq_scales``, ... ; ``_quantized_parts``)."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint(checkpoint)
    cfg = layer.config
    stacked_name = _find(checkpoint, layer_idx, HF_TENSORS["wqkv"], prefix)
    weights = {}
    for argument in cfg.weight_names():
        if cfg.is_quantized(argument):
            for name, array in _quantized_parts(checkpoint, layer_idx, prefix, argument,
                                                cfg).items():
                weights[name] = array if device is None else torch_tensor(array, None, device)
            continue
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
            file = checkpoint.file(name)
            arrays.append(_converted(file.numpy(name), file.dtype(name), name, cfg.dtype,
                                     offset))
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

