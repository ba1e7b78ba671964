"""``PagedKVCache``: the paged KV cache of a model's layers, and its bookkeeping between steps.

The cache is the three tensors of docs/ABI.md: ``blocks [P, 2, L, page, Hkv, D]``,
``cache_lengths [B]`` (tokens already cached per sequence) and ``lookup_table [B, max_pages]``
(page ids, unused entries ``P``). A step of the model:

    cache.step([5, 3])          # new tokens per sequence: pages allocated, row offsets set
    out = layer(x, cache, ...)  # every layer writes its slots of the new tokens
    cache.advance()             # cache_lengths += new tokens

Sequences are numbered in the order they first appear in ``step``; a sequence with no new
tokens in a step passes 0. Pages come from a free list; ``release(seq)`` returns a finished
sequence's pages. The tensors are numpy arrays (``device=None``) or torch tensors on ``device``
(``"cpu"``, ``"cuda"``); the bookkeeping stays on the host.
"""

import numpy as np

from . import runtime
from .arguments import torch_tensor


class CacheError(RuntimeError):
    """A step does not fit the cache (no free page, a position past ``max_seq_len``)."""


class PagedKVCache:
    """``num_pages`` pages of ``kv_params`` (``layers.KVCacheParams``); positions must stay below
    ``max_seq_len`` (the RoPE table of the layers)."""

    def __init__(self, kv_params, num_pages, max_seq_len, device=None):
        self.params, self.num_pages, self.max_seq_len = kv_params, num_pages, max_seq_len
        self.device = device
        shape = (num_pages, 2, kv_params.num_layers, kv_params.page_size, kv_params.n_kv_heads,
                 kv_params.head_dim)
        self.blocks = self._tensor(np.zeros(shape, runtime.numpy_dtype(kv_params.dtype)),
                                   kv_params.dtype)
        self._free = list(range(num_pages))
        self.pages = []    # page ids of each sequence, in position order
        self.lengths = []  # tokens cached per sequence (host)
        self.new_tokens = None
        self.row_offsets = self.cache_lengths = self.lookup_table = None

    def _tensor(self, array, element):
        """``array`` (numpy) as this cache's kind of tensor."""
        return array if self.device is None else torch_tensor(array, element, self.device)

    def step(self, new_tokens):
        """Starts a step with ``new_tokens[b]`` new rows for sequence ``b`` (more entries than
        sequences start new ones): allocates the pages they need and sets ``row_offsets``,
        ``cache_lengths`` and ``lookup_table``."""
        if self.new_tokens is not None:
            raise CacheError("step() again before advance(): the previous step is not done")
        new = [int(n) for n in new_tokens]
        if len(new) < len(self.lengths):
            raise CacheError(f"new_tokens has {len(new)} entries, the cache holds "
                             f"{len(self.lengths)} sequences")
        if any(n < 0 for n in new):
            raise CacheError(f"new_tokens {new}: negative")
        while len(self.lengths) < len(new):
            self.pages.append([])
            self.lengths.append(0)
        page = self.params.page_size
        for b, n in enumerate(new):
            total = self.lengths[b] + n
            if total > self.max_seq_len:
                raise CacheError(f"sequence {b}: {total} tokens, more than max_seq_len = "
                                 f"{self.max_seq_len}")
            needed = -(-total // page) - len(self.pages[b])
            if needed > len(self._free):
                raise CacheError(f"sequence {b}: needs {needed} more pages, {len(self._free)} "
                                 f"of {self.num_pages} free")
            for _ in range(max(needed, 0)):
                self.pages[b].append(self._free.pop(0))
        width = max([1] + [len(p) for p in self.pages])
        lookup = np.full((len(new), width), self.num_pages, np.int32)
        for b, ids in enumerate(self.pages):
            lookup[b, :len(ids)] = ids
        self.row_offsets = self._tensor(np.concatenate([[0], np.cumsum(new)]).astype(np.int32),
                                        "i32")
        self.cache_lengths = self._tensor(np.asarray(self.lengths, np.int32), "i32")
        self.lookup_table = self._tensor(lookup, "i32")
        self.new_tokens = new

    def arguments(self):
        """The cache arguments of the current step, by name (``CompiledAttention.call``)."""
        if self.new_tokens is None:
            raise CacheError("no step: call step(new_tokens) first")
        return {"row_offsets": self.row_offsets, "blocks": self.blocks,
                "cache_lengths": self.cache_lengths, "lookup_table": self.lookup_table}

    def advance(self):
        """Ends the step: every sequence's length grows by its new tokens."""
        if self.new_tokens is None:
            raise CacheError("advance() without a step")
        self.lengths = [c + n for c, n in zip(self.lengths, self.new_tokens)]
        self.new_tokens = None

    def release(self, seq):
        """Frees sequence ``seq``'s pages; it restarts empty (its number stays)."""
        if self.new_tokens is not None:
            raise CacheError("release() during a step")
        self._free.extend(self.pages[seq])
        self.pages[seq], self.lengths[seq] = [], 0
