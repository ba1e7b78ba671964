"""MLIR text of test and benchmark entry functions, in the NoOpaque tensor form, printed with
``attn.builder``.

Every builder returns one ``func.func`` (text). One function alone is a valid input file;
several can be joined with ``module_text``. The paged cache crosses the boundary as its three
tensors (blocks, cache lengths, lookup table). ``T`` (tokens) and ``B`` (sequences) are dynamic
unless given. Ragged-batch arguments always come in the order
``row_offsets, blocks, cache_lengths, lookup_table`` (each builder's docstring lists its arguments).

RoPE and mask settings are the reference's dicts (``attn.reference``), so one dict drives the IR
and the numpy reference.
"""

import dataclasses
import math
from typing import Optional

import numpy as np

from . import reference as ref
from . import runtime
from .builder import (Value, attention_attrs, cache_type, encoding_attr,  # noqa: F401
                      f64_literal, function_text, kv_cache_store_op, linear_op, mask_attr,
                      module_text, paged_flash_attention_op, quantized_weight_type, refs,
                      rms_norm_op, rope_attr, rope_freqs_op, rope_op, scaling_attr, tensor_type)

DEFAULT_ROPE = {"theta": 10000.0, "interleaved": False, "scaling": None}


# ---------------------------------------------------------------------------------------------
# RoPE scaling


def example_scaling(kind, head_dim, orig=48, max_position=1024):
    """A representative reference scaling dict of each kind (None, linear, llama3, yarn,
    longrope), as the execution tests use them; ``orig`` is LongRoPE's original_max_position
    (tests choose it so positions fall on both sides), ``max_position`` its table length."""
    half = head_dim // 2
    return {
        None: None,
        "linear": {"kind": "linear", "factor": 4.0},
        "llama3": {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position": 8192},
        "yarn": {"kind": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
                 "original_max_position": 4096},
        "longrope": {"kind": "longrope", "short_factor": list(np.linspace(1.0, 2.5, half)),
                     "long_factor": list(np.linspace(1.5, 40.0, half)),
                     "original_max_position": orig, "max_position": max_position},
    }[kind]


# ---------------------------------------------------------------------------------------------
# Quantised weights: ``quant`` is a dict, ``{"kind": "gptq", "group_size": g, "desc_act": bool,
# "layout": "checkpoint" | "column_blocks"}``
# or ``{"kind": "float8", "weight_scale": "tensor" | "row" | "block", "input_scale": "static" |
# "dynamic", "upper_bound": float or None}`` or ``{"kind": "gguf", "type": "q4_0" | "q8_0" |
# "q4_k" | "q6_k"}``.


def quantized_part_names(quant):
    """Suffixes of the parts of a weight, in operand order (``attn.quantized_weight``)."""
    if quant["kind"] == "gptq":
        return ["qweight", "scales"] + (["perm"] if quant.get("desc_act") else [])
    if quant["kind"] == "gguf":
        return ["blocks"]
    return ["weight", "weight_scale"] + (["input_scale"] if quant["input_scale"] == "static"
                                         else [])


def quantized_parts(quant, rows, cols):
    """(suffix, shape, element type) of the parts of W ``[rows, cols]``, in operand order."""
    if quant["kind"] == "gptq":
        g = quant["group_size"]
        def shape(part_rows):  # [R, N], or in column blocks [N/32, R, 32]
            width = ref.GPTQ_BLOCK_COLUMNS
            return ((rows // width, part_rows, width) if quant.get("layout") == "column_blocks"
                    else (part_rows, rows))
        parts = {"qweight": (shape(cols // 8), "i32"), "scales": (shape(cols // g), "f16"),
                 "perm": ((cols,), "i32")}
    elif quant["kind"] == "gguf":
        elements, nbytes = ref.GGUF_BLOCKS[quant["type"]]
        parts = {"blocks": ((rows, cols // elements * nbytes), "i8")}
    else:
        block = ref.FLOAT8_BLOCK
        scale_shape = {"tensor": (1,), "row": (rows,),
                       "block": (-(-rows // block), cols // block)}[quant["weight_scale"]]
        parts = {"weight": ((rows, cols), "f8E4M3FN"), "weight_scale": (scale_shape, "f32"),
                 "input_scale": ((1,), "f32")}
    return [(suffix, *parts[suffix]) for suffix in quantized_part_names(quant)]


def quantized_weight_arguments(name, quant, rows, cols):
    """(name, type) of the arguments holding the parts of weight ``name``."""
    return [(f"{name}_{suffix}", tensor_type(shape, element))
            for suffix, shape, element in quantized_parts(quant, rows, cols)]


def quantized_weight_op(name, quant, rows, cols):
    """``%name = attn.quantized_weight(%name_<part>...)`` from its part arguments."""
    args = quantized_weight_arguments(name, quant, rows, cols)
    return (f"%{name} = attn.quantized_weight({refs(n for n, _ in args)}) : "
            f"({', '.join(t for _, t in args)}) -> {quantized_weight_type(quant, rows, cols)}")


def quantized_linear_function(name, quant, in_features, out_features, dtype, tokens=None,
                              bias=False):
    """``(x [T, K], parts of w [N, K][, b [N]]) -> y [T, N]`` with ``w`` quantised."""
    k, n = in_features, out_features
    x, y, b = (tensor_type([tokens, k], dtype), tensor_type([tokens, n], dtype),
               tensor_type([n], dtype))
    wtype = quantized_weight_type(quant, n, k)
    args = [("x", x)] + quantized_weight_arguments("w", quant, n, k) + (
        [("b", b)] if bias else [])
    body = [quantized_weight_op("w", quant, n, k),
            linear_op("%y", Value("%x", x), Value("%w", wtype), y,
                      Value("%b", b) if bias else None)]
    return function_text(name, args, [y], body, ["y"])


def reference_quantized_weight(quant, parts):
    """The ``reference`` weight (``GPTQWeight`` / ``Float8Weight`` / ``GGUFWeight``) of ABI
    ``parts`` by suffix."""
    if quant["kind"] == "gguf":
        return ref.GGUFWeight(quant["type"], parts["blocks"])
    if quant["kind"] == "gptq":
        return ref.GPTQWeight(parts["qweight"], parts["scales"], quant["group_size"],
                              parts.get("perm"), quant.get("layout", "checkpoint"))
    return ref.Float8Weight(parts["weight"], parts["weight_scale"], quant["weight_scale"],
                            parts.get("input_scale"), quant.get("upper_bound"))


def random_quantized_weight(rng, quant, rows, cols):
    """ABI arrays of the parts of a random W ``[rows, cols]`` by suffix; decoded weights are
    O(1/sqrt(cols))."""
    spread = 1.0 / math.sqrt(cols)
    if quant["kind"] == "gptq":
        g = quant["group_size"]
        parts = {
            "qweight": rng.integers(-(2**31), 2**31, size=(cols // 8, rows)).astype(np.int32),
            "scales": (rng.uniform(0.5, 1.5, size=(cols // g, rows)) * spread / 4).astype(
                np.float16),
        }
        if quant.get("desc_act"):
            parts["perm"] = rng.permutation(cols).astype(np.int32)
        if quant.get("layout") == "column_blocks":
            for name in ("qweight", "scales"):
                parts[name] = np.ascontiguousarray(ref.gptq_column_blocks(parts[name]))
        return parts
    if quant["kind"] == "gguf":
        weight = ref.random_gguf_weight(rng, quant["type"], rows, cols, spread)
        return {"blocks": weight.blocks.view(np.int8)}
    shapes = {suffix: shape for suffix, shape, _ in quantized_parts(quant, rows, cols)}
    # E4M3 codes of magnitudes 2^-3 .. 2^3, random signs (no NaN codes).
    codes = rng.integers(0x20, 0x50, size=(rows, cols)) | rng.choice([0, 0x80], size=(rows, cols))
    parts = {
        "weight": codes.astype(np.uint8),
        "weight_scale": (rng.uniform(0.5, 1.5, size=shapes["weight_scale"]) * spread / 2).astype(
            np.float32),
    }
    if quant["input_scale"] == "static":
        parts["input_scale"] = np.array([rng.uniform(0.01, 0.02)], dtype=np.float32)
    return parts


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclasses.dataclass
class LayerConfig:
    """One attention layer (MAX's ``AttentionWithRope`` constructor arguments) and its cache."""

    hidden: int = 64
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    dtype: str = "f32"  # "f32" | "f16" | "bf16": activations, weights and cache
    page_size: int = 16
    num_layers: int = 2
    layer_idx: int = 1
    rope: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_ROPE))
    max_seq_len: int = 256  # rows of the cos/sin table: positions must stay below it
    stacked: bool = False
    bias: bool = False
    clip: Optional[float] = None
    qk_norm: bool = False
    rms_norm_eps: float = 1e-6
    mask: dict = dataclasses.field(default_factory=lambda: dict(ref.DEFAULT_MASK))
    scale: Optional[float] = None
    # Encoding of wq, wk, wv (or wqkv) and wo (see encoding_attr), or one per weight by name
    # (``{"wq": ..., "wv": ...}``; a weight not named is a float tensor), as llama.cpp's Q4_K_M.
    quant: Optional[dict] = None

    @property
    def q_rows(self):
        return self.num_heads * self.head_dim

    @property
    def kv_rows(self):
        return self.num_kv_heads * self.head_dim

    def rope_attr(self):
        return rope_attr(self.rope)

    def mask_attr(self):
        return mask_attr(self.mask)

    def cache_type(self):
        """``!attn.paged_kv_cache<#attn.kv_cache<...>>``."""
        return cache_type(self.page_size, self.num_layers, self.num_kv_heads, self.head_dim,
                          self.dtype)

    def blocks_type(self):
        """``[P, 2, L, page, Hkv, D]`` with dynamic P."""
        shape = (None, 2, self.num_layers, self.page_size, self.num_kv_heads, self.head_dim)
        return tensor_type(shape, self.dtype)

    def weight_names(self):
        """Names of the layer's weight arguments, in order."""
        names = ["wqkv"] if self.stacked else ["wq", "wk", "wv"]
        if self.bias:
            names += ["bqkv"] if self.stacked else ["bq", "bk", "bv"]
        if self.qk_norm:
            names += ["q_norm", "k_norm"]
        return names + ["wo"]

    def quant_of(self, name):
        """The encoding of weight argument ``name``; None for a float tensor."""
        if self.quant is None or name not in ("wqkv", "wq", "wk", "wv", "wo"):
            return None
        return self.quant if "kind" in self.quant else self.quant.get(name)

    def is_quantized(self, name):
        """Whether weight argument ``name`` is quantised (its parts are the arguments)."""
        return self.quant_of(name) is not None

    def weight_shapes(self):
        """Shapes of the layer's weight arguments, by name."""
        q, kv, h, d = self.q_rows, self.kv_rows, self.hidden, self.head_dim
        return {
            "wqkv": (q + 2 * kv, h), "wq": (q, h), "wk": (kv, h), "wv": (kv, h),
            "bqkv": (q + 2 * kv,), "bq": (q,), "bk": (kv,), "bv": (kv,),
            "q_norm": (d,), "k_norm": (d,), "wo": (h, q),
        }


# ---------------------------------------------------------------------------------------------
# Function text


def _index_types(batch):
    """Types of row_offsets [B+1], cache_lengths [B] and lookup_table [B, max_pages]."""
    b1 = None if batch is None else batch + 1
    return (tensor_type([b1], "i32"), tensor_type([batch], "i32"),
            tensor_type([batch, None], "i32"))


def _layer_argument(runtime_layer):
    """The leading ``layer_idx: i32`` argument of a function taking the layer at run time."""
    return [("layer_idx", "i32")] if runtime_layer else []


def _layer(cfg, runtime_layer):
    """The cache layer of a primitive op (``builder.layer_operand``): the argument
    ``%layer_idx`` or ``cfg.layer_idx``."""
    return Value("%layer_idx", "i32") if runtime_layer else cfg.layer_idx


def layer_arguments(cfg, tokens=None, batch=None, runtime_layer=False):
    """(name, type) of the layer function's arguments, in order; ``runtime_layer`` puts the
    cache layer first, as an ``i32`` argument ``layer_idx``."""
    offsets, lengths, lookup = _index_types(batch)
    shapes = cfg.weight_shapes()
    weights = []
    for n in cfg.weight_names():
        if cfg.is_quantized(n):
            weights += quantized_weight_arguments(n, cfg.quant_of(n), *shapes[n])
        else:
            weights.append((n, tensor_type(shapes[n], cfg.dtype)))
    return _layer_argument(runtime_layer) + [
        ("x", tensor_type([tokens, cfg.hidden], cfg.dtype)),
        ("row_offsets", offsets),
        ("blocks", cfg.blocks_type()),
        ("cache_lengths", lengths),
        ("lookup_table", lookup),
    ] + weights


def layer_function(name, cfg, tokens=None, batch=None, runtime_layer=False, freqs_arg=False,
                   opaque_cache=False):
    """The composite layer: ``(x, row_offsets, blocks, cache_lengths, lookup_table, weights...)
    -> (out [T, hidden], updated blocks)``.

    Weights (``cfg.weight_names()``): ``wqkv`` or ``wq, wk, wv``; ``bqkv`` or ``bq, bk, bv`` if
    ``cfg.bias``; ``q_norm, k_norm`` if ``cfg.qk_norm``; ``wo``. With ``freqs_arg`` the cos/sin
    table ``freqs [max_seq_len, D] f32`` (``rope_table_input``) is the last argument.

    ``runtime_layer``: one function for every layer of the cache. Its first argument is the
    layer, ``%layer_idx: i32`` (MAX's ``__call__(layer_idx, x, kv_collection, ...)`` order),
    instead of ``cfg.layer_idx`` fixed in the IR.

    ``opaque_cache``: MAX's ``AttentionWithRope`` form, the cache one ``!attn.paged_kv_cache``
    argument ``cache`` in place of its three tensors, and the updated cache the second result;
    ``attn-compile`` passes it as the three tensors, so the library's C signature is the same.
    """
    args = layer_arguments(cfg, tokens, batch, runtime_layer)
    if freqs_arg:
        args.append(("freqs", _freqs_type(cfg)))
    types = dict(args)
    names = cfg.weight_names()
    qkv = [n for n in names if n.startswith("w") and n != "wo"]
    biases = [n for n in names if n.startswith("b")]
    layer = " layer(%layer_idx)" if runtime_layer else ""
    operands = f"%x, %row_offsets, %cache{layer} qkv({refs(qkv)})"
    if biases:
        operands += f" bias({refs(biases)})"
    if cfg.qk_norm:
        operands += " q_norm(%q_norm) k_norm(%k_norm)"
    operands += " o_proj(%wo)"
    if freqs_arg:
        operands += " freqs(%freqs)"
    attrs = [
        f"num_attention_heads = {cfg.num_heads} : i64",
        f"num_key_value_heads = {cfg.num_kv_heads} : i64",
        f"hidden_size = {cfg.hidden} : i64",
        f"max_seq_len = {cfg.max_seq_len} : i64",
        f"rope = {cfg.rope_attr()}",
        f"rms_norm_eps = {f64_literal(cfg.rms_norm_eps)} : f64",
        f"mask = {cfg.mask_attr()}",
    ]
    if not runtime_layer:
        attrs.append(f"layer_idx = {cfg.layer_idx} : i64")
    if cfg.clip is not None:
        attrs.append(f"clip_qkv = {f64_literal(cfg.clip)} : f64")
    if cfg.scale is not None:
        attrs.append(f"scale = {f64_literal(cfg.scale)} : f64")
    cache, x = cfg.cache_type(), types["x"]
    shapes = cfg.weight_shapes()
    quantized = [n for n in names if cfg.is_quantized(n)]
    for n in quantized:
        types[n] = quantized_weight_type(cfg.quant_of(n), *shapes[n])
    # The layer operand's type follows the cache's, as the operand follows the cache.
    layer_type = ["i32"] if runtime_layer else []
    in_types = [x, types["row_offsets"], cache] + layer_type + [types[n] for n in names]
    if freqs_arg:
        in_types.append(types["freqs"])
    body = [quantized_weight_op(n, cfg.quant_of(n), *shapes[n]) for n in quantized] + [
        f"%out, %new_cache = attn.attention_with_rope {operands}",
        f"    {{{', '.join(attrs)}}}",
        f"    : ({', '.join(in_types)}) -> ({x}, {cache})",
    ]
    if opaque_cache:
        cache_parts = {"blocks", "cache_lengths", "lookup_table"}
        args = [("cache", cache) if n == "blocks" else (n, t) for n, t in args
                if n not in cache_parts - {"blocks"}]
        return function_text(name, args, [x, cache], body, ["out", "new_cache"])
    body.insert(len(quantized),
                f"%cache = attn.paged_cache.make %blocks, %cache_lengths, %lookup_table : "
                f"{types['blocks']}, {types['cache_lengths']}, {types['lookup_table']} -> {cache}")
    body.append(f"%new_blocks, %new_lengths, %new_lookup = attn.paged_cache.parts %new_cache : "
                f"{cache}")
    return function_text(name, args, [x, cfg.blocks_type()], body, ["out", "new_blocks"])


def primitive_layer_function(name, cfg, part="all", projections="linear", runtime_layer=False):
    """The layer written as a framework exports it: separate ``attn.linear`` projections split
    into heads with ``tensor.expand_shape``, the bias as ``linalg.broadcast`` + ``linalg.add``,
    ``clip`` as a ``linalg.generic`` clamp (``arith.maximumf`` / ``arith.minimumf``) of each weight, ``attn.rms_norm``,
    ``attn.rope`` of q and k, ``attn.kv_cache_store``, attention, ``attn.linear`` for o_proj: the
    input of the fusion passes. Same arguments and results as ``layer_function`` (separate
    weights only). ``part="projections"`` leaves attention out: the layer minus the attention op
    (q, k, v projected, normed, rotated and stored; o_proj applied to the rotated q read as
    ``[T, H*D]``), for measuring the non-attention part. ``projections="matmul"`` writes the
    q / k / v projections as ``linalg.matmul`` (``x @ W^T`` by indexing maps, zero-filled init)
    instead of ``attn.linear`` (accumulating in the storage type when not fused).
    ``runtime_layer``: the layer is the first argument (as in ``layer_function``).
    """
    if cfg.stacked:
        raise ValueError("primitive_layer_function writes separate projections")
    args = layer_arguments(cfg, runtime_layer=runtime_layer)
    layer = _layer(cfg, runtime_layer)
    types = dict(args)
    arg = {n: Value(f"%{n}", t) for n, t in args}
    dt, d = cfg.dtype, cfg.head_dim
    x, blocks = types["x"], cfg.blocks_type()
    body = ["%c0 = arith.constant 0 : index", f"%t = tensor.dim %x, %c0 : {x}"]
    heads = {"q": cfg.num_heads, "k": cfg.num_kv_heads, "v": cfg.num_kv_heads}
    for p in "qkv":
        n = heads[p] * d
        wt = types["w" + p]
        flat = tensor_type([None, n], dt)
        w = f"%w{p}"
        if cfg.clip is not None:
            c = f64_literal(cfg.clip)
            body += [f"%we_{p} = tensor.empty() : {wt}",
                     f"%wc_{p} = linalg.generic {{indexing_maps = [affine_map<(i, j) -> (i, j)>, "
                     f"affine_map<(i, j) -> (i, j)>], iterator_types = [\"parallel\", "
                     f"\"parallel\"]}} ins(%w{p} : {wt}) outs(%we_{p} : {wt}) {{",
                     f"^bb0(%a: {dt}, %o: {dt}):",
                     f"  %hi = arith.constant {c} : {dt}",
                     f"  %lo = arith.constant -{c} : {dt}",
                     "  %m = arith.maximumf %a, %lo : " + dt,
                     "  %r = arith.minimumf %m, %hi : " + dt,
                     "  linalg.yield %r : " + dt,
                     f"}} -> {wt}"]
            w = f"%wc_{p}"
        if projections == "matmul":
            body += [f"%{p}_zero = arith.constant 0.0 : {dt}",
                     f"%{p}_me = tensor.empty(%t) : {flat}",
                     f"%{p}_mf = linalg.fill ins(%{p}_zero : {dt}) outs(%{p}_me : {flat}) -> "
                     f"{flat}",
                     f"%{p}_lin = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, "
                     f"affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>] "
                     f"ins(%x, {w} : {x}, {wt}) outs(%{p}_mf : {flat}) -> {flat}"]
        elif projections == "linear":
            body.append(linear_op(f"%{p}_lin", arg["x"], Value(w, wt), flat))
        else:
            raise ValueError(f"unknown projections {projections!r}")
        src = f"%{p}_lin"
        if cfg.bias:
            bt = types["b" + p]
            body += [f"%{p}_e = tensor.empty(%t) : {flat}",
                     f"%{p}_bb = linalg.broadcast ins(%b{p} : {bt}) outs(%{p}_e : {flat}) "
                     f"dimensions = [0]",
                     f"%{p}_add = linalg.add ins(%{p}_lin, %{p}_bb : {flat}, {flat}) "
                     f"outs(%{p}_e : {flat}) -> {flat}"]
            src = f"%{p}_add"
        ht = tensor_type([None, heads[p], d], dt)
        body.append(f"%{p} = tensor.expand_shape {src} [[0], [1, 2]] output_shape "
                    f"[%t, {heads[p]}, {d}] : {flat} into {ht}")
    qt = tensor_type([None, cfg.num_heads, d], dt)
    kt = tensor_type([None, cfg.num_kv_heads, d], dt)
    q, k = "%q", "%k"
    if cfg.qk_norm:
        body += [rms_norm_op("%qn", Value(q, qt), arg["q_norm"], cfg.rms_norm_eps),
                 rms_norm_op("%kn", Value(k, kt), arg["k_norm"], cfg.rms_norm_eps)]
        q, k = "%qn", "%kn"
    freqs = Value("%freqs", _freqs_type(cfg))
    positions = (arg["row_offsets"], arg["cache_lengths"], cfg.rope.get("interleaved"))
    cache = (arg["row_offsets"], arg["cache_lengths"], arg["lookup_table"])
    body += [rope_freqs_op(freqs, cfg.rope, freqs.type),
             rope_op("%qr", Value(q, qt), freqs, *positions),
             rope_op("%kr", Value(k, kt), freqs, *positions),
             kv_cache_store_op("%new_blocks", Value("%kr", kt), Value("%v", kt), arg["blocks"],
                               layer, *cache)]
    o = "%qr"
    if part == "all":
        body.append(paged_flash_attention_op("%o", Value("%qr", qt),
                                             Value("%new_blocks", blocks), layer, *cache,
                                             cfg.mask, cfg.scale))
        o = "%o"
    elif part != "projections":
        raise ValueError(f"unknown part {part!r}")
    ot = tensor_type([None, cfg.q_rows], dt)
    body += [f"%flat = tensor.collapse_shape {o} [[0], [1, 2]] : {qt} into {ot}",
             linear_op("%out", Value("%flat", ot), arg["wo"], x)]
    return function_text(name, args, [x, blocks], body, ["out", "new_blocks"])


def qkv_projection_function(name, cfg, tokens=None):
    """``(x, weights..., biases...) -> (q [T,H,D], k [T,Hkv,D], v [T,Hkv,D])``, clip from cfg."""
    shapes = cfg.weight_shapes()
    names = [n for n in cfg.weight_names() if n not in ("q_norm", "k_norm", "wo")]
    weights = [n for n in names if n.startswith("w")]
    biases = [n for n in names if n.startswith("b")]
    x = tensor_type([tokens, cfg.hidden], cfg.dtype)
    wtypes = [quantized_weight_type(cfg.quant, *shapes[n]) if cfg.is_quantized(n)
              else tensor_type(shapes[n], cfg.dtype) for n in weights]
    btypes = [tensor_type(shapes[n], cfg.dtype) for n in biases]
    q = tensor_type([tokens, cfg.num_heads, cfg.head_dim], cfg.dtype)
    kv = tensor_type([tokens, cfg.num_kv_heads, cfg.head_dim], cfg.dtype)
    op = f"%q, %k, %v = attn.qkv_projection %x weights({refs(weights)})"
    if biases:
        op += f" bias({refs(biases)})"
    if cfg.clip is not None:
        op += f" clip {f64_literal(cfg.clip)}"
    op += f" : {x}, ({', '.join(wtypes)})"
    if biases:
        op += f", ({', '.join(btypes)})"
    op += f" -> {q}, {kv}, {kv}"
    # A quantised weight is passed as its parts (quantized_weight_arguments).
    args = [("x", x)]
    for n, t in zip(weights, wtypes):
        args += (quantized_weight_arguments(n, cfg.quant, *shapes[n]) if cfg.is_quantized(n)
                 else [(n, t)])
    args += list(zip(biases, btypes))
    body = [quantized_weight_op(n, cfg.quant, *shapes[n]) for n in weights
            if cfg.is_quantized(n)]
    return function_text(name, args, [q, kv, kv], body + [op], ["q", "k", "v"])


def rms_norm_function(name, cfg, heads=None, tokens=None):
    """``(x [T, heads, D], gamma [D]) -> y``, eps from cfg; heads default to cfg.num_heads."""
    x = tensor_type([tokens, heads or cfg.num_heads, cfg.head_dim], cfg.dtype)
    gamma = tensor_type([cfg.head_dim], cfg.dtype)
    op = rms_norm_op("%y", Value("%x", x), Value("%gamma", gamma), cfg.rms_norm_eps)
    return function_text(name, [("x", x), ("gamma", gamma)], [x], [op], ["y"])


def _freqs_type(cfg):
    return tensor_type([cfg.max_seq_len, cfg.head_dim], "f32")


def rope_table_input(cfg):
    """The ``freqs`` argument of cfg's layer (``layer_function(freqs_arg=True)``): its cos/sin
    table, f32 ``[max_seq_len, D]``, computed once per model."""
    table = ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len)
    return runtime.to_abi(table, "f32")


def rope_freqs_function(name, cfg):
    """``() -> freqs [max_seq_len, D] f32``: the cos/sin table of cfg.rope."""
    t = _freqs_type(cfg)
    return function_text(name, [], [t], [rope_freqs_op("%freqs", cfg.rope, t)], ["freqs"])


def rope_function(name, cfg, heads=None, tokens=None, batch=None, freqs_arg=False):
    """``(x [T, heads, D], row_offsets, cache_lengths[, freqs]) -> rotated x``.

    The table comes from ``attn.rope_freqs`` of cfg.rope, or is the last argument if ``freqs_arg``.
    """
    x = tensor_type([tokens, heads or cfg.num_heads, cfg.head_dim], cfg.dtype)
    offsets, lengths, _ = _index_types(batch)
    t = _freqs_type(cfg)
    args = [("x", x), ("row_offsets", offsets), ("cache_lengths", lengths)]
    body = []
    if freqs_arg:
        args.append(("freqs", t))
    else:
        body.append(rope_freqs_op("%freqs", cfg.rope, t))
    arg = {n: Value(f"%{n}", t) for n, t in args}
    body.append(rope_op("%y", arg["x"], Value("%freqs", t), arg["row_offsets"],
                        arg["cache_lengths"], cfg.rope.get("interleaved")))
    return function_text(name, args, [x], body, ["y"])


def rope_store_function(name, cfg):
    """``(q, k, v, row_offsets, blocks, cache_lengths, lookup_table) -> (rotated q, blocks)``:
    q and k rotated by cfg.rope, k and v stored in the cache (in place), written as the
    primitive ops that ``attn-fuse-rope-store`` turns into one ``attn.rope_store`` reading the
    caller's q, k and v."""
    q = tensor_type([None, cfg.num_heads, cfg.head_dim], cfg.dtype)
    kv = tensor_type([None, cfg.num_kv_heads, cfg.head_dim], cfg.dtype)
    offsets, lengths, lookup = _index_types(None)
    args = [("q", q), ("k", kv), ("v", kv), ("row_offsets", offsets),
            ("blocks", cfg.blocks_type()), ("cache_lengths", lengths), ("lookup_table", lookup)]
    a = {n: Value(f"%{n}", t) for n, t in args}
    t = _freqs_type(cfg)
    freqs = Value("%freqs", t)
    interleaved = cfg.rope.get("interleaved")
    body = [rope_freqs_op("%freqs", cfg.rope, t),
            rope_op("%qr", a["q"], freqs, a["row_offsets"], a["cache_lengths"], interleaved),
            rope_op("%kr", a["k"], freqs, a["row_offsets"], a["cache_lengths"], interleaved),
            kv_cache_store_op("%new_blocks", Value("%kr", kv), a["v"], a["blocks"],
                              cfg.layer_idx, a["row_offsets"], a["cache_lengths"],
                              a["lookup_table"])]
    return function_text(name, args, [q, cfg.blocks_type()], body, ["qr", "new_blocks"])


def kv_cache_store_function(name, cfg, tokens=None, batch=None, runtime_layer=False):
    """``(k, v, row_offsets, blocks, cache_lengths, lookup_table) -> updated blocks`` (in place);
    ``runtime_layer`` adds a first argument ``layer_idx: i32``."""
    kv = tensor_type([tokens, cfg.num_kv_heads, cfg.head_dim], cfg.dtype)
    offsets, lengths, lookup = _index_types(batch)
    blocks = cfg.blocks_type()
    args = [("k", kv), ("v", kv), ("row_offsets", offsets), ("blocks", blocks),
            ("cache_lengths", lengths), ("lookup_table", lookup)]
    a = [Value(f"%{n}", t) for n, t in args]
    op = kv_cache_store_op("%new_blocks", a[0], a[1], a[3], _layer(cfg, runtime_layer), a[2],
                           a[4], a[5])
    return function_text(name, _layer_argument(runtime_layer) + args, [blocks], [op], ["new_blocks"])


def paged_flash_attention_function(name, cfg, tokens=None, batch=None, runtime_layer=False):
    """``(q [T,H,D], row_offsets, blocks, cache_lengths, lookup_table) -> o [T,H,D]``;
    ``runtime_layer`` adds a first argument ``layer_idx: i32``."""
    q = tensor_type([tokens, cfg.num_heads, cfg.head_dim], cfg.dtype)
    offsets, lengths, lookup = _index_types(batch)
    blocks = cfg.blocks_type()
    args = [("q", q), ("row_offsets", offsets), ("blocks", blocks),
            ("cache_lengths", lengths), ("lookup_table", lookup)]
    a = [Value(f"%{n}", t) for n, t in args]
    op = paged_flash_attention_op("%o", a[0], a[2], _layer(cfg, runtime_layer), a[1], a[3], a[4],
                                  cfg.mask, cfg.scale)
    return function_text(name, _layer_argument(runtime_layer) + args, [q], [op], ["o"])


def flash_attention_function(name, cfg, tokens=None, kv_tokens=None, batch=None):
    """``(q [T,H,D], k [S,Hkv,D], v [S,Hkv,D], q_row_offsets, kv_row_offsets) -> o [T,H,D]``."""
    q = tensor_type([tokens, cfg.num_heads, cfg.head_dim], cfg.dtype)
    kv = tensor_type([kv_tokens, cfg.num_kv_heads, cfg.head_dim], cfg.dtype)
    offsets = _index_types(batch)[0]
    op = (f"%o = attn.flash_attention %q, %k, %v rows(%q_row_offsets, %kv_row_offsets) "
          f"{attention_attrs(cfg.mask, cfg.scale)} : {q}, {kv}, {kv}, {offsets}, {offsets}")
    args = [("q", q), ("k", kv), ("v", kv), ("q_row_offsets", offsets),
            ("kv_row_offsets", offsets)]
    return function_text(name, args, [q], [op], ["o"])


def linear_function(name, cfg, in_features=None, out_features=None, bias=False, tokens=None):
    """``(x [T,K], w [N,K][, b [N]]) -> y [T,N]``; default K = H*D, N = hidden (the o_proj)."""
    k = in_features or cfg.q_rows
    n = out_features or cfg.hidden
    x, w = tensor_type([tokens, k], cfg.dtype), tensor_type([n, k], cfg.dtype)
    y, b = tensor_type([tokens, n], cfg.dtype), tensor_type([n], cfg.dtype)
    args = [("x", x), ("w", w)] + ([("b", b)] if bias else [])
    op = linear_op("%y", Value("%x", x), Value("%w", w), y, Value("%b", b) if bias else None)
    return function_text(name, args, [y], [op], ["y"])


# ---------------------------------------------------------------------------------------------
# Inputs and reference of the layer function


def random_layer_inputs(rng, cfg, seq_lens_cached, seq_lens_new, num_pages=None,
                        runtime_layer=False):
    """Arguments of ``layer_function(_, cfg, runtime_layer=runtime_layer)``, by name in order,
    as ABI arrays.

    Floats are float32 / float16 / uint16 bf16 bits (``runtime.to_abi``), indices int32. Weights are
    scaled ~1/sqrt(fan_in) so activations stay O(1). ``num_pages`` defaults to the pages needed
    plus two spare ones. Positions must stay below ``cfg.max_seq_len`` (the table size).
    ``runtime_layer``: ``layer_idx`` comes first, ``np.int32(cfg.layer_idx)``.
    """
    cached = np.asarray(seq_lens_cached, dtype=np.int64)
    new = np.asarray(seq_lens_new, dtype=np.int64)
    if np.any(cached + new > cfg.max_seq_len):
        raise ValueError(f"sequences longer than max_seq_len={cfg.max_seq_len}")
    if num_pages is None:
        num_pages = int(np.sum(-(-(cached + new) // cfg.page_size))) + 2
    cache = ref.random_paged_cache(
        rng, num_pages, cfg.num_layers, cfg.page_size, cfg.num_kv_heads, cfg.head_dim,
        cached, new, dtype=cfg.dtype,
    )
    tokens = int(new.sum())
    values = {
        "x": rng.standard_normal((tokens, cfg.hidden)),
        "row_offsets": cache["row_offsets"],
        "blocks": cache["kv_blocks"],
        "cache_lengths": cache["cache_lengths"],
        "lookup_table": cache["lookup_table"],
    }
    quantized = {}
    for name, shape in cfg.weight_shapes().items():
        if name not in cfg.weight_names():
            continue
        if cfg.is_quantized(name):
            parts = random_quantized_weight(rng, cfg.quant_of(name), *shape)
            quantized.update({f"{name}_{suffix}": part for suffix, part in parts.items()})
        elif name in ("q_norm", "k_norm"):
            values[name] = rng.uniform(0.5, 1.5, size=shape)
        elif name.startswith("b"):
            values[name] = 0.5 * rng.standard_normal(shape)
        else:
            values[name] = rng.standard_normal(shape) / math.sqrt(shape[1])
    index = ("row_offsets", "cache_lengths", "lookup_table")
    arrays = {name: quantized[name] if name in quantized else
              runtime.to_abi(values[name], "i32" if name in index else cfg.dtype)
              for name, _ in layer_arguments(cfg)}
    if runtime_layer:
        return {"layer_idx": np.int32(cfg.layer_idx), **arrays}
    return arrays


def reference_layer(cfg, inputs, o_proj_input=False):
    """``(out [T, hidden] float64, new_blocks)`` of ``attn.reference.attention_with_rope``;
    with ``o_proj_input``, the attention output ``o [T, H*D]`` that o_proj multiplies instead.

    ``inputs`` are ABI arrays as from ``random_layer_inputs`` (compute this before a call that
    updates ``inputs["blocks"]`` in place); the layer is ``inputs["layer_idx"]`` if given, else
    ``cfg.layer_idx``. ``new_blocks`` are values rounded once to cfg.dtype (float32 for f32 and
    bf16, float16 for f16), comparable to ``runtime.from_abi`` of the blocks.
    """

    def val(name):
        if cfg.is_quantized(name):
            quant = cfg.quant_of(name)
            return reference_quantized_weight(quant, {
                suffix: inputs[f"{name}_{suffix}"] for suffix in quantized_part_names(quant)})
        return np.asarray(runtime.from_abi(inputs[name], cfg.dtype), dtype=np.float64)

    names = cfg.weight_names()
    weights = val("wqkv") if cfg.stacked else tuple(val(n) for n in ("wq", "wk", "wv"))
    biases = None
    if cfg.bias:
        biases = val("bqkv") if cfg.stacked else tuple(val(n) for n in ("bq", "bk", "bv"))
    out, new_blocks = ref.attention_with_rope(
        val("x"), inputs["row_offsets"], val("blocks"), inputs["cache_lengths"],
        inputs["lookup_table"],
        num_heads=cfg.num_heads, num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim,
        layer=int(inputs.get("layer_idx", cfg.layer_idx)), rope=cfg.rope, weights=weights,
        wo=None if o_proj_input else val("wo"), biases=biases, clip=cfg.clip, q_norm=val("q_norm") if "q_norm" in names else None,
        k_norm=val("k_norm") if "k_norm" in names else None, rms_norm_eps=cfg.rms_norm_eps,
        mask=cfg.mask, scale=cfg.scale,
    )
    return out, ref.cast_like(new_blocks, cfg.dtype)


def float8_o_proj_slack(cfg, inputs, rel_error):
    """Per element of a float8 layer's output ``[T, hidden]``: how much o_proj may move when
    elements of its input ``o`` round to the other neighbouring E4M3 value under a perturbation
    of ``rel_error * max|o|`` (a compiled layer's ``o`` differs from the reference's by its f32
    sums and storage-type roundings). A dynamic input scale moves with ``max|o|`` by as much,
    which doubles the reach."""
    o, _ = reference_layer(cfg, inputs, o_proj_input=True)
    quant = cfg.quant_of("wo")
    wo = reference_quantized_weight(quant, {
        suffix: inputs[f"wo_{suffix}"] for suffix in quantized_part_names(quant)})
    _, s_x = ref.quantize_fp8_input(o, wo.input_scale, wo.upper_bound)
    delta = rel_error * (1 if wo.input_scale is not None else 2)
    scaled = o / np.where(s_x > 0, s_x, 1)[:, None]
    reach = delta * np.max(np.abs(scaled), axis=1, keepdims=True)
    step = np.abs(ref.round_to_fp8_e4m3(scaled + reach) - ref.round_to_fp8_e4m3(scaled - reach))
    return (step @ np.abs(wo.decode()).T) * s_x[:, None]
