"""The model of ``attn.stack`` on the GPU with PyTorch: the compiled stack (one runtime-layer
function called per layer), the PyTorch baseline a user would write (eager, or one CUDA graph
per step), and the float64 reference. Used by ``bench_stack.py`` and ``bench_layer.py``.

The PyTorch baseline, per layer: ``F.linear`` on the stacked qkv weight (wq, wk, wv
concatenated once at load), with qk-norm (Qwen3) ``F.rms_norm`` of each q and k head, RoPE
from the model's cos/sin table (``attn.reference.rope_table``, rotate-half, in float32) at each
row's position, index writes of k and v into the same paged cache ``blocks[page, 0|1, layer,
slot]``, attention with ``F.scaled_dot_product_attention(..., enable_gqa=True)``, ``F.linear``
for o_proj, the residual add in bf16 (left out for one layer's benchmark, ``residual=False``).
Prefill steps (an empty cache) attend over the new keys (``is_causal``: they are all the keys);
decode steps over the sequences' pages gathered from the cache, with a boolean mask of each
row's visible keys. The positions, pages, slots and mask are computed on the device from
``cache_lengths``, once per step and shared by the layers, so a step has no host
synchronisation and a decode step is one CUDA graph replayed with new ``cache_lengths``.
Batches are uniform (every sequence of a step has the same number of new tokens), as in
``attn.stack.schedule``.
"""

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

import device_abi
import torch_reference
from attn import ir
from attn import reference as ref

DEV = torch.device("cuda")


# ---------------------------------------------------------------------------------------------
# Random model (attn.stack's, drawn on the GPU)


def random_weights(cfg, gen):
    """As ``attn.stack.random_weights``: one ``{name: bf16 tensor}`` per layer, scaled
    1/sqrt(fan_in), o_proj by a further 1/sqrt(N); qk-norm gains uniform in [0.5, 1.5)."""
    shapes = cfg.weight_shapes()
    layers = []
    for _ in range(cfg.num_layers):
        weights = {}
        for name in cfg.weight_names():
            if name in ("q_norm", "k_norm"):
                weights[name] = (0.5 + torch.rand(shapes[name], generator=gen, device=DEV)
                                 ).to(torch.bfloat16)
                continue
            scale = shapes[name][1] ** -0.5 * (cfg.num_layers ** -0.5 if name == "wo" else 1.0)
            weights[name] = (torch.randn(shapes[name], generator=gen, device=DEV)
                             * scale).to(torch.bfloat16)
        layers.append(weights)
    return layers


def random_cache(cfg, total_tokens, gen):
    """As ``attn.stack.random_cache``: ``(blocks, lookup_table)``, shuffled pages, one spare,
    every slot random and never zero."""
    pages = [-(-int(t) // cfg.page_size) for t in total_tokens]
    num_pages = sum(pages) + 1
    shape = (num_pages, 2, cfg.num_layers, cfg.page_size, cfg.num_kv_heads, cfg.head_dim)
    values = torch.randn(shape, generator=gen, device=DEV)
    blocks = (values + 0.25 * torch.sign(values)).to(torch.bfloat16)
    ids = torch.randperm(num_pages, generator=gen, device=DEV).to(torch.int32)
    lookup = torch.full((len(pages), max(pages)), num_pages, dtype=torch.int32, device=DEV)
    start = 0
    for b, n in enumerate(pages):
        lookup[b, :n] = ids[start:start + n]
        start += n
    return blocks, lookup


def norm_error(got, want):
    """``||got - want|| / ||want||`` (``attn.stack.norm_error``), inf if not finite."""
    got, want = got.double(), want.double()
    if not bool(torch.isfinite(got).all()):
        return math.inf
    return float((got - want).norm() / want.norm())


# ---------------------------------------------------------------------------------------------
# Candidates: each runs one step, ``step(x, cache_lengths) -> last layer's output rows``.


class CompiledStack:
    """The compiled runtime-layer ``function`` of ``library``, called once per layer of a step
    of ``tokens_per_seq`` new tokens per sequence; the residual added in place between calls."""

    def __init__(self, library, function, cfg, weights, blocks, lookup, tokens_per_seq):
        batch = lookup.shape[0]
        tokens = batch * tokens_per_seq
        self.x = torch.empty((tokens, cfg.hidden), dtype=torch.bfloat16, device=DEV)
        self.out = torch.empty_like(self.x)
        self.lengths = torch.zeros(batch, dtype=torch.int32, device=DEV)
        self.offsets = torch.arange(0, tokens + 1, tokens_per_seq, dtype=torch.int32,
                                    device=DEV)
        # The RoPE table: computed once for the model, an argument of every layer.
        self.freqs = torch.from_numpy(ir.rope_table_input(cfg)).to(DEV)
        fn = device_abi.DeviceFunction(library, function)
        self.calls = [fn.bind([np.int32(layer), self.x, self.offsets, blocks, self.lengths,
                               lookup, *weights[layer].values(), self.freqs], [self.out])
                      for layer in range(cfg.num_layers)]

    def first_layer(self, x, cache_lengths):
        """Layer 0 alone: its output rows."""
        self.x.copy_(x)
        self.lengths.copy_(cache_lengths)
        self.calls[0]()
        return self.out.clone()

    def step(self, x, cache_lengths):
        self.x.copy_(x)
        self.lengths.copy_(cache_lengths)
        self.layers()
        return self.x

    def layers(self):
        """The 32 calls and residual adds on the current inputs."""
        for call in self.calls:
            call()  # enqueued on the caller's stream (attnCudaSetStream), as the add
            self.x.add_(self.out)


def capture(run, runtime=None):
    """``(graph, result)``: ``run()`` captured as a CUDA graph, after one warm-up run on a side
    stream (its writes go to slots the replays rewrite). ``runtime``: the attn CUDA runtime of
    the compiled calls in ``run``, pointed at each stream in turn (``attnCudaSetStream``): a
    call neither synchronises nor allocates outside the stream-ordered pool, so it can be
    captured once its stream is the capturing one."""
    def use(stream):
        if runtime is not None:
            runtime.attnCudaSetStream(stream)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.stream(side):
            use(side.cuda_stream)
            run()
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            use(torch.cuda.current_stream().cuda_stream)
            result = run()
    finally:
        use(None)
    return graph, result


class CompiledGraphStep:
    """The 32 calls of a ``CompiledStack`` step captured as one CUDA graph (``capture``)."""

    def __init__(self, compiled, runtime, x, cache_lengths):
        self.compiled = compiled
        compiled.x.copy_(x)
        compiled.lengths.copy_(cache_lengths)
        self.graph, _ = capture(compiled.layers, runtime)

    def step(self, x, cache_lengths):
        self.compiled.x.copy_(x)
        self.compiled.lengths.copy_(cache_lengths)
        self.graph.replay()
        return self.compiled.x


class TorchStack:
    """The PyTorch baseline (module docstring), eager. ``residual``: each layer's output is
    added to its input; without, a step returns the (last) layer's output itself."""

    def __init__(self, cfg, weights, blocks, lookup, residual=True):
        if cfg.rope.get("interleaved") or cfg.stacked or cfg.bias or cfg.clip:
            raise ValueError("the PyTorch baseline writes Llama's and Qwen3's layers only")
        self.cfg, self.blocks, self.residual = cfg, blocks, residual
        self.wqkv = [torch.cat([w["wq"], w["wk"], w["wv"]]) for w in weights]
        self.wo = [w["wo"] for w in weights]
        self.qk_norm = [(w["q_norm"], w["k_norm"]) for w in weights] if cfg.qk_norm else None
        table = torch.from_numpy(ref.rope_table(cfg.rope, cfg.head_dim, cfg.max_seq_len))
        table = table.to(DEV, torch.float32)
        self.cos, self.sin = table[:, 0::2], table[:, 1::2]  # [positions, D/2]
        self.lookup = lookup.long()
        self.gather_pages = self.lookup.clamp(max=blocks.shape[0] - 1)  # unused entries: P

    def rope(self, x, cos, sin):
        half = x.shape[-1] // 2
        a, b = x[..., :half].float(), x[..., half:].float()
        return torch.cat([a * cos - b * sin, a * sin + b * cos], -1).to(x.dtype)

    def step(self, x, cache_lengths, prefill=False):
        """``prefill``: the cache is empty (attention over the new keys, causal)."""
        cfg = self.cfg
        h, hkv, d, page = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.page_size
        batch = self.lookup.shape[0]
        n = x.shape[0] // batch
        pos = cache_lengths.long()[:, None] + torch.arange(n, device=DEV)  # [B, n]
        cos, sin = self.cos[pos].view(-1, 1, d // 2), self.sin[pos].view(-1, 1, d // 2)
        pages = self.lookup.gather(1, pos // page).view(-1)
        slots = (pos % page).view(-1)
        if not prefill:
            keys = torch.arange(self.lookup.shape[1] * page, device=DEV)
            mask = (keys[None, None, :] <= pos[:, :, None])[:, None]  # [B, 1, n, keys]
        for layer in range(cfg.num_layers):
            q, k, v = F.linear(x, self.wqkv[layer]).split([h * d, hkv * d, hkv * d], dim=-1)
            q, k, v = q.reshape(-1, h, d), k.reshape(-1, hkv, d), v.reshape(-1, hkv, d)
            if self.qk_norm:
                q_gain, k_gain = self.qk_norm[layer]
                q = F.rms_norm(q, (d,), q_gain, cfg.rms_norm_eps)
                k = F.rms_norm(k, (d,), k_gain, cfg.rms_norm_eps)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            self.blocks[pages, 0, layer, slots] = k
            self.blocks[pages, 1, layer, slots] = v
            q = q.view(batch, n, h, d).transpose(1, 2)
            if prefill:
                o = F.scaled_dot_product_attention(
                    q, k.view(batch, n, hkv, d).transpose(1, 2),
                    v.view(batch, n, hkv, d).transpose(1, 2), is_causal=True, enable_gqa=True)
            else:
                kv = self.blocks[self.gather_pages, :, layer]  # [B, pages, 2, page, Hkv, D]
                kv = kv.transpose(1, 2).reshape(batch, 2, -1, hkv, d).transpose(2, 3)
                o = F.scaled_dot_product_attention(q, kv[:, 0], kv[:, 1], attn_mask=mask,
                                                   enable_gqa=True)
            out = F.linear(o.transpose(1, 2).reshape(-1, h * d), self.wo[layer])
            x = x + out if self.residual else out
        return x


class GraphStep:
    """One step of ``TorchStack`` captured as a CUDA graph, replayed with new inputs."""

    def __init__(self, model, x, cache_lengths, prefill):
        # The graph reads the model's weights and cache and these inputs: all kept alive with
        # the step (freed, their memory would be reused under the graph).
        self.model = model
        self.x, self.lengths = x.clone(), cache_lengths.clone()
        self.graph, self.out = capture(lambda: model.step(self.x, self.lengths, prefill))

    def step(self, x, cache_lengths):
        self.x.copy_(x)
        self.lengths.copy_(cache_lengths)
        self.graph.replay()
        return self.out


# ---------------------------------------------------------------------------------------------
# Reference


class ReferenceStack:
    """The model in float64 (``torch_reference``) on its own copy of the cache, rounded to bf16
    as the model's cache is (``attn.stack.ReferenceStack``, on the GPU)."""

    def __init__(self, cfg, weights, blocks, lookup):
        self.cfg = dataclasses.replace(cfg, num_layers=1, layer_idx=0)  # one layer's slice
        self.weights = weights
        self.blocks = blocks.double()
        self.lookup = lookup

    def layer(self, layer, x, offsets, cache_lengths):
        args = {"x": x, "row_offsets": offsets, "blocks": self.blocks[:, :, layer:layer + 1],
                "cache_lengths": cache_lengths, "lookup_table": self.lookup,
                **{n: w.double() for n, w in self.weights[layer].items()}}
        out, blocks = torch_reference.layer(self.cfg, args)
        self.blocks[:, :, layer:layer + 1] = blocks.to(torch.bfloat16).double()
        return out

    def step(self, x, offsets, cache_lengths):
        x = x.double()
        for layer in range(len(self.weights)):
            x = (x + self.layer(layer, x, offsets, cache_lengths)).to(torch.bfloat16).double()
        return x
