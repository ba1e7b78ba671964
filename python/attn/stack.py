"""A model of N attention layers over one paged KV cache, run by one compiled layer function.

The layer function takes the cache layer at run time (``ir.layer_function(..., runtime_layer=
True)``, first argument ``layer_idx: i32``). A step of the model calls it for layers 0, 1, ...,
N-1 in turn, each with its own weights and the one cache ``[P, 2, N, page, Hkv, D]`` that every
layer shares, and adds the residual between layers:

    x_{l+1} = dtype(x_l + attn_l(x_l))

the residual stream kept in the storage dtype (real models put norms and an MLP between the
attention layers; they are out of scope here). The weights are random, scaled 1/sqrt(fan_in),
and o_proj by a further 1/sqrt(N) (GPT-2's scaling of residual projections): each layer adds a
small update (rms ~0.03-0.06 of a stream of rms 1 for 32 layers), so the stream stays O(1)
over any number of layers and the attention stays as soft as in one layer. What differs from the
reference grows slowly with depth: the stream is rounded to bf16 after every layer, and where
the compiled and the reference sums straddle a rounding boundary they part by an ulp (measured
||error|| / ||reference|| 6e-4 after one layer, 5.8e-3 after 32; see ``norm_error``).

The run (``schedule()``): a prefill of 2 sequences of 512 tokens over an empty cache, then 16
decode steps of one token per sequence, the caller advancing ``cache_lengths`` by the tokens of
each step. The input rows of a step are random (as if embedded tokens).

This module holds what the CPU example (``examples/whole_model/run_stack.py``), its test and
the GPU benchmark (``benchmarks/gpu/bench_stack.py``) share: the models, the random weights and
cache, the schedule, and the numpy reference of the stack (float64, the stream and the cache
rounded to the storage dtype as the model defines them).
"""

import math
import time

import numpy as np

from . import ir
from . import reference as ref
from . import runtime

LLAMA3_SCALING = {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position": 8192}

# Every layer of a model is this config but for the layer index (which the caller passes).
MODELS = {
    # Llama-3-8B's 32 attention layers: hidden 4096, 32 / 8 heads of 128, llama3 RoPE.
    "llama3-8b": ir.LayerConfig(
        hidden=4096, num_heads=32, num_kv_heads=8, head_dim=128, dtype="bf16", page_size=128,
        num_layers=32, layer_idx=0, max_seq_len=4096,
        rope={"theta": 500000.0, "interleaved": False, "scaling": LLAMA3_SCALING}),
    # The same structure scaled down (GQA 4:1, head dim 64, llama3 RoPE), small pages so that
    # the sequences span many: fast enough for the test suite.
    "tiny": ir.LayerConfig(
        hidden=256, num_heads=4, num_kv_heads=1, head_dim=64, dtype="bf16", page_size=16,
        num_layers=8, layer_idx=0, max_seq_len=1024,
        rope={"theta": 500000.0, "interleaved": False, "scaling": LLAMA3_SCALING}),
}

# ||error|| / ||reference|| of a whole bf16 run (each step's last-layer output, the cache at the
# end): about twice the worst measured, 5.8e-3 over 32 layers (examples/whole_model/README.md).
END_TOL = 1.2e-2

# (cache lengths, new tokens per sequence) of each step: prefill 2 x 512, then 16 decode steps.
PREFILL = (512, 512)
DECODE_STEPS = 16


def schedule(prefill=PREFILL, decode_steps=DECODE_STEPS):
    """``[(cache_lengths, new_tokens)]`` (int32 arrays per sequence) of the run's steps."""
    new = np.asarray(prefill, np.int32)
    steps = [(np.zeros_like(new), new)]
    for _ in range(decode_steps):
        cached, new = steps[-1]
        steps.append((cached + new, np.ones_like(new)))
    return steps


def row_offsets(new_tokens):
    """``row_offsets [B+1]`` (int32) of a step with ``new_tokens[b]`` rows per sequence."""
    return np.concatenate([[0], np.cumsum(new_tokens)]).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# Random model and cache


def random_weights(rng, cfg):
    """One ``{name: ABI array}`` of ``cfg.weight_names()`` per layer (``cfg.num_layers``)."""
    shapes = cfg.weight_shapes()
    residual_scale = 1.0 / math.sqrt(cfg.num_layers)
    layers = []
    for _ in range(cfg.num_layers):
        weights = {}
        for name in cfg.weight_names():
            shape = shapes[name]
            scale = 1.0 / math.sqrt(shape[1]) * (residual_scale if name == "wo" else 1.0)
            values = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
            weights[name] = runtime.to_abi(values, cfg.dtype)
        layers.append(weights)
    return layers


def random_cache(rng, cfg, total_tokens):
    """``(blocks, lookup_table)`` with room for ``total_tokens[b]`` tokens per sequence: pages
    shuffled, one spare page, every slot random and never zero (a read of a slot no step wrote
    shows in the output; slots no step writes must stay as they are)."""
    page = cfg.page_size
    pages = [-(-int(t) // page) for t in total_tokens]
    num_pages = sum(pages) + 1
    shape = (num_pages, 2, cfg.num_layers, page, cfg.num_kv_heads, cfg.head_dim)
    values = rng.standard_normal(shape, dtype=np.float32)
    values += np.copysign(np.float32(0.25), values)
    blocks = runtime.to_abi(values, cfg.dtype)
    ids = rng.permutation(num_pages).astype(np.int32)
    lookup = np.full((len(pages), max(pages)), num_pages, np.int32)
    start = 0
    for b, n in enumerate(pages):
        lookup[b, :n] = ids[start:start + n]
        start += n
    return blocks, lookup


def random_tokens(rng, cfg, tokens):
    """Input rows ``[tokens, hidden]`` (ABI), standard normal."""
    return runtime.to_abi(rng.standard_normal((tokens, cfg.hidden), dtype=np.float32), cfg.dtype)


def add_residual(x, out, dtype):
    """``dtype(x + out)`` of two ABI arrays (the sum in float32, rounded once)."""
    total = (runtime.from_abi(x, dtype).astype(np.float32)
             + runtime.from_abi(out, dtype).astype(np.float32))
    return runtime.to_abi(total, dtype)


# ---------------------------------------------------------------------------------------------
# The stack: compiled, and its numpy reference


def layer_function(name, cfg):
    """The model's one layer function: the layer a run-time argument (first), the RoPE table an
    argument (last; computed once per model, ``ir.rope_table_input``)."""
    return ir.layer_function(name, cfg, runtime_layer=True, freqs_arg=True)


class CompiledStack:
    """The model on the CPU: ``function`` of a library built from ``layer_function``, called
    once per layer. Holds the weights, the RoPE table (computed here, once for the model) and
    the cache (updated in place by every call)."""

    def __init__(self, library, function, cfg, weights, blocks, lookup_table):
        self.library, self.function, self.cfg = library, function, cfg
        self.weights, self.blocks, self.lookup_table = weights, blocks, lookup_table
        self.freqs = ir.rope_table_input(cfg)

    def layer(self, layer, x, offsets, cache_lengths):
        """``attn_l(x)`` (ABI); writes layer ``layer`` of the cache."""
        out = np.empty((x.shape[0], self.cfg.hidden), runtime.numpy_dtype(self.cfg.dtype))
        args = [np.int32(layer), x, offsets, self.blocks, cache_lengths, self.lookup_table,
                *self.weights[layer].values(), self.freqs]
        self.library.call(self.function, args, [out])
        return out


class ReferenceStack:
    """The model in float64 (``attn.reference``): its own copy of the cache, updated by every
    layer and rounded to the storage dtype as the compiled cache is."""

    def __init__(self, cfg, weights, blocks, lookup_table):
        self.cfg, self.weights, self.lookup_table = cfg, weights, lookup_table
        self.blocks = self.values(blocks)

    def values(self, array):
        """float64 values of an ABI array."""
        return np.asarray(runtime.from_abi(array, self.cfg.dtype), dtype=np.float64)

    def layer(self, layer, x, offsets, cache_lengths):
        """``attn_l(x)`` (float64 values of ``x``); writes layer ``layer`` of the cache."""
        cfg = self.cfg
        w = {name: self.values(array) for name, array in self.weights[layer].items()}
        # The layer's slice alone: the reference copies the cache it is given.
        out, blocks = ref.attention_with_rope(
            x, offsets, self.blocks[:, :, layer:layer + 1], cache_lengths, self.lookup_table,
            num_heads=cfg.num_heads, num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim,
            layer=0, rope=cfg.rope, weights=(w["wq"], w["wk"], w["wv"]), wo=w["wo"],
            mask=cfg.mask, scale=cfg.scale)
        self.blocks[:, :, layer:layer + 1] = ref.cast_like(blocks, cfg.dtype)
        return out

    def step(self, x, offsets, cache_lengths):
        """The last layer's output rows (float64) for input rows ``x`` (ABI)."""
        x = self.values(x)
        for layer in range(self.cfg.num_layers):
            out = self.layer(layer, x, offsets, cache_lengths)
            x = np.asarray(ref.cast_like(x + out, self.cfg.dtype), dtype=np.float64)
        return x


# ---------------------------------------------------------------------------------------------
# Running and checking


def relative_error(got, want):
    """``max|got - want| / max|want|`` (inf if ``got`` is not finite)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if not np.all(np.isfinite(got)):
        return math.inf
    return float(np.max(np.abs(got - want), initial=0.0)) / float(np.max(np.abs(want)))


def norm_error(got, want):
    """``||got - want|| / ||want||`` (inf if ``got`` is not finite): the measure of a whole run,
    whose largest elementwise errors are single ulps of the stream rounded differently."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if not np.all(np.isfinite(got)):
        return math.inf
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def cache_error(got, want, mask):
    """Max error of the written (slot, head) vectors ``mask`` selects, each relative to its max
    |expected| (as the CPU tests measure the cache)."""
    got, want = np.asarray(got, np.float64)[mask], np.asarray(want, np.float64)[mask]
    if not np.all(np.isfinite(got)):
        return math.inf
    scale = np.max(np.abs(want), axis=-1, keepdims=True)
    return float(np.max(np.abs(got - want) / np.where(scale > 0, scale, 1.0), initial=0.0))


def written_mask(cfg, steps, lookup_table, num_pages, layers):
    """Boolean ``[P, 2, L, page]``: the slots of ``layers`` that the steps write."""
    mask = np.zeros((num_pages, 2, cfg.num_layers, cfg.page_size), bool)
    for cached, new in steps:
        pos = ref.positions(row_offsets(new), cached)
        owner = np.repeat(np.arange(len(new)), new)
        pages = lookup_table[owner, pos // cfg.page_size]
        for layer in layers:
            mask[pages, :, layer, pos % cfg.page_size] = True
    return mask


def run(stack, steps, rng, check="all", clock=None):
    """Runs the schedule ``steps`` on ``stack`` (a ``CompiledStack``), inputs from ``rng``.

    ``check``: ``"all"``: every layer of the first step against the reference on the same input
    and cache (out, the slots it writes, nothing else changed), and every step's last-layer
    output and, at the end, the whole cache against ``ReferenceStack`` run from the same start;
    ``"first-layer"``: layer 0 of the first step only; ``"none"``. ``clock``: a function
    returning seconds (default ``time.perf_counter``).

    Returns ``{"step_s": [wall seconds of each step, checks excluded], "layers": [per layer of
    the first step: {"out": relative_error, "cache": cache_error of the slots it writes, "stray":
    other elements changed}], "steps": [norm_error of each step's last-layer output], "cache":
    norm_error of every written slot at the end, "stray": elements of slots no step writes that
    changed}`` (the error entries only where checked).
    """
    clock = clock or time.perf_counter
    cfg = stack.cfg
    initial = stack.blocks.copy()
    check_layers = {"all": cfg.num_layers, "first-layer": 1, "none": 0}[check]
    layer_reference = ReferenceStack(cfg, stack.weights, initial, stack.lookup_table)
    whole = ReferenceStack(cfg, stack.weights, initial, stack.lookup_table) \
        if check == "all" else None
    result = {"step_s": [], "layers": [], "steps": []}
    num_pages = initial.shape[0]
    for index, (cached, new) in enumerate(steps):
        offsets = row_offsets(new)
        x = random_tokens(rng, cfg, int(new.sum()))
        if whole is not None:
            want = whole.step(x, offsets, cached)
        elapsed = 0.0
        for layer in range(cfg.num_layers):
            checked = index == 0 and layer < check_layers
            before = stack.blocks.copy() if checked else None
            start = clock()
            out = stack.layer(layer, x, offsets, cached)
            x_next = add_residual(x, out, cfg.dtype)
            elapsed += clock() - start
            if checked:
                want_out = layer_reference.layer(layer, layer_reference.values(x), offsets,
                                                 cached)
                mask = written_mask(cfg, [(cached, new)], stack.lookup_table, num_pages,
                                    [layer])
                got_blocks = layer_reference.values(stack.blocks)
                full = np.broadcast_to(mask[..., None, None], initial.shape)
                result["layers"].append({
                    "out": relative_error(layer_reference.values(out), want_out),
                    "cache": cache_error(got_blocks, layer_reference.blocks, mask),
                    "stray": int(np.count_nonzero((stack.blocks != before) & ~full)),
                })
            x = x_next
        result["step_s"].append(elapsed)
        if whole is not None:
            result["steps"].append(norm_error(layer_reference.values(x), want))
    if whole is not None:
        mask = written_mask(cfg, steps, stack.lookup_table, num_pages, range(cfg.num_layers))
        result["cache"] = norm_error(whole.values(stack.blocks)[mask], whole.blocks[mask])
        full = np.broadcast_to(mask[..., None, None], initial.shape)
        result["stray"] = int(np.count_nonzero((stack.blocks != initial) & ~full))
    return result
