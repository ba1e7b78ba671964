"""The text of attn IR: types, attributes, the ops that several functions write, functions and
modules.

``attn.ir`` (the entry functions of the tests and benchmarks, and the layer function of
``attn.layers``' MAX-level layers) composes its functions from these printers, so the text of a
type, an attribute or a shared op is written in one place.

RoPE, mask and quantisation settings are the reference's dicts (``attn.reference``), so one dict
drives the IR and the numpy reference.
"""

import dataclasses
import math


def f64_literal(value):
    """A float literal MLIR parses back to the same f64 (``1e-06`` -> ``1.0e-06``)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"no MLIR literal for {value}")
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if exponent and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _f64_list(values):
    return "[" + ", ".join(f64_literal(v) for v in values) + "]"


def scaling_attr(scaling):
    """``#attn.*_scaling<...>`` of a reference scaling dict, or None for no scaling."""
    if not scaling:
        return None
    kind, f = scaling["kind"], f64_literal
    if kind == "linear":
        return f"#attn.linear_scaling<factor = {f(scaling['factor'])}>"
    if kind == "llama3":
        return (
            f"#attn.llama3_scaling<factor = {f(scaling['factor'])}, "
            f"low_freq_factor = {f(scaling['low_freq_factor'])}, "
            f"high_freq_factor = {f(scaling['high_freq_factor'])}, "
            f"original_max_position = {int(scaling['original_max_position'])}>"
        )
    if kind == "yarn":
        return (
            f"#attn.yarn_scaling<factor = {f(scaling['factor'])}, "
            f"beta_fast = {f(scaling['beta_fast'])}, beta_slow = {f(scaling['beta_slow'])}, "
            f"original_max_position = {int(scaling['original_max_position'])}>"
        )
    if kind == "longrope":
        return (
            f"#attn.longrope_scaling<short_factor = {_f64_list(scaling['short_factor'])}, "
            f"long_factor = {_f64_list(scaling['long_factor'])}, "
            f"original_max_position = {int(scaling['original_max_position'])}, "
            f"max_position = {int(scaling['max_position'])}>"
        )
    raise ValueError(f"unknown rope scaling kind {kind!r}")


def rope_attr(rope):
    """``#attn.rope<...>`` of a reference rope dict (theta, interleaved, scaling)."""
    params = [f"theta = {f64_literal(rope['theta'])}"]
    if rope.get("interleaved"):
        params.append("interleaved = true")
    scaling = scaling_attr(rope.get("scaling"))
    if scaling:
        params.append(f"scaling = {scaling}")
    return f"#attn.rope<{', '.join(params)}>"


def mask_attr(mask):
    """``#attn.mask<...>`` of a reference mask dict."""
    kind = mask.get("kind", "causal")
    if kind in ("causal", "none"):
        return f"#attn.mask<{kind}>"
    if kind == "sliding_window":
        return f"#attn.mask<sliding_window = {int(mask['window'])}>"
    raise ValueError(f"unknown mask kind {kind!r}")


def tensor_type(shape, element):
    """``tensor<...>``; None in ``shape`` is a dynamic size."""
    dims = "".join(f"{'?' if d is None else int(d)}x" for d in shape)
    return f"tensor<{dims}{element}>"


def cache_type(page_size, num_layers, kv_heads, head_dim, dtype):
    """``!attn.paged_kv_cache<#attn.kv_cache<...>>``."""
    return (f"!attn.paged_kv_cache<#attn.kv_cache<page_size = {page_size}, "
            f"num_layers = {num_layers}, kv_heads = {kv_heads}, head_dim = {head_dim}, "
            f"dtype = {dtype}>>")


def encoding_attr(quant):
    """``#attn.gptq<...>`` / ``#attn.float8<...>`` / ``#attn.gguf<...>`` of ``quant``."""
    kind = quant["kind"]
    if kind == "gguf":
        return f"#attn.gguf<{quant['type']}>"
    if kind == "gptq":
        fields = [f"group_size = {quant['group_size']}"]
        if quant.get("desc_act"):
            fields.append("desc_act = true")
        if quant.get("layout", "checkpoint") != "checkpoint":
            fields.append(f"layout = {quant['layout']}")
    elif kind == "float8":
        fields = [f"weight_scale = {quant['weight_scale']}", f"input_scale = {quant['input_scale']}"]
        if quant.get("upper_bound") is not None:
            fields.append(f"upper_bound = {f64_literal(quant['upper_bound'])}")
    else:
        raise ValueError(f"unknown quantisation {kind!r}")
    return f"#attn.{kind}<{', '.join(fields)}>"


def quantized_weight_type(quant, rows, cols):
    """``!attn.quantized_weight<rows x cols, encoding>`` of W ``[rows, cols]``."""
    return f"!attn.quantized_weight<{rows}x{cols}, {encoding_attr(quant)}>"


def function_text(name, args, results, body, returns):
    """``func.func @name(args) -> (results) { body; return returns }``; args are (name, type)."""
    sig = ",\n    ".join(f"%{n}: {t}" for n, t in args)
    res = results[0] if len(results) == 1 else f"({', '.join(results)})"
    lines = [f"func.func @{name}(\n    {sig})\n    -> {res} {{"]
    lines += [f"  {line}" for line in body]
    lines.append(f"  return {', '.join('%' + r for r in returns)} : {', '.join(results)}")
    return "\n".join(lines) + "\n}\n"


def module_text(*functions):
    """One module holding the given function texts."""
    return "module {\n" + "\n".join(functions) + "}\n"


def refs(names):
    """``%a, %b, ...`` of argument or value names."""
    return ", ".join(f"%{n}" for n in names)


# ---------------------------------------------------------------------------------------------
# Ops used by several functions. Operands are ``Value``s (SSA name and type); results are SSA
# names, their types given where the op's syntax spells them.


@dataclasses.dataclass(frozen=True)
class Value:
    """An SSA value: ``name`` with its ``%`` (e.g. ``"%x"``) and its MLIR ``type``."""

    name: str
    type: str

    def __str__(self):
        return self.name


def layer_operand(layer):
    """The cache layer of a primitive op: ``layer N`` of an int, ``layer(%v : i32)`` of a
    Value (a run-time index)."""
    return f"layer({layer} : {layer.type})" if isinstance(layer, Value) else f"layer {int(layer)}"


def attention_attrs(mask, scale):
    """``{mask = ..., scale = ...}`` of an attention op (scale None: the default)."""
    attrs = [f"mask = {mask_attr(mask)}"]
    if scale is not None:
        attrs.append(f"scale = {f64_literal(scale)} : f64")
    return "{" + ", ".join(attrs) + "}"


def linear_op(result, x, w, result_type, bias=None):
    """``result = attn.linear x, w [bias b]``: ``x @ w^T (+ b)``."""
    operands = [v for v in (x, w, bias) if v is not None]
    bias_text = f" bias {bias}" if bias is not None else ""
    return (f"{result} = attn.linear {x}, {w}{bias_text} : "
            f"{', '.join(v.type for v in operands)} -> {result_type}")


def rms_norm_op(result, x, gamma, eps):
    """``result = attn.rms_norm x, gamma eps e``."""
    return f"{result} = attn.rms_norm {x}, {gamma} eps {f64_literal(eps)} : {x.type}, {gamma.type}"


def rope_freqs_op(result, rope, freqs_type):
    """``result = attn.rope_freqs #attn.rope<...>``: the cos/sin table of the rope dict."""
    return f"{result} = attn.rope_freqs {rope_attr(rope)} -> {freqs_type}"


def rope_op(result, x, freqs, row_offsets, cache_lengths, interleaved):
    """``result = attn.rope x, freqs positions(row_offsets, cache_lengths) [interleaved]``."""
    pairing = " interleaved" if interleaved else ""
    return (f"{result} = attn.rope {x}, {freqs} positions({row_offsets}, {cache_lengths})"
            f"{pairing} : {x.type}, {freqs.type}, {row_offsets.type}, {cache_lengths.type}")


def kv_cache_store_op(result, k, v, blocks, layer, row_offsets, cache_lengths, lookup_table):
    """``result = attn.kv_cache_store k, v into blocks layer ... positions(...) pages(...)``."""
    return (f"{result} = attn.kv_cache_store {k}, {v} into {blocks} {layer_operand(layer)} "
            f"positions({row_offsets}, {cache_lengths}) pages({lookup_table}) : {k.type}, "
            f"{v.type}, {row_offsets.type}, {cache_lengths.type}, {lookup_table.type}, "
            f"{blocks.type}")


def paged_flash_attention_op(result, q, blocks, layer, row_offsets, cache_lengths, lookup_table,
                             mask, scale):
    """``result = attn.paged_flash_attention q, blocks layer ... positions(...) pages(...)``."""
    return (f"{result} = attn.paged_flash_attention {q}, {blocks} {layer_operand(layer)} "
            f"positions({row_offsets}, {cache_lengths}) pages({lookup_table}) "
            f"{attention_attrs(mask, scale)} : {q.type}, {blocks.type}, {row_offsets.type}, "
            f"{cache_lengths.type}, {lookup_table.type}")
