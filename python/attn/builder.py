"""The text of attn IR: element and tensor types, attributes, functions and modules.

Every piece of MLIR that the Python side writes is printed here: ``attn.ir`` (entry functions of
the tests and benchmarks) and ``attn.layers`` (the MAX-level layers) build their functions from
these printers, so a change of the dialect's syntax is made in one place.

RoPE, mask and quantisation settings are the reference's dicts (``attn.reference``), so one dict
drives the IR and the numpy reference.
"""

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
