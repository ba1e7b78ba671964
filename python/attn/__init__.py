"""attn-mlir from Python: attention layers at Modular MAX's level, compiled by attn-compile.

    import attn
    layer = attn.from_hf_config("config.json", max_seq_len=256)     # an AttentionWithRope
    weights = attn.load_layer_weights("model.safetensors", layer, layer_idx=0)
    run = layer.compile(target="cpu")                                # or "cuda"
    cache = attn.PagedKVCache(layer.kv_params, num_pages=16, max_seq_len=256)
    cache.step([5, 3])                                               # new tokens per sequence
    out = run(x, cache, weights, layer_idx=0)                        # x: [8, hidden]
    cache.advance()

Modules:

- ``attn.layers``: ``AttentionWithRope`` and its NoOpaque, GPTQ, GGUF and sharded variants.
- ``attn.hf``: ``from_hf_config`` and ``load_layer_weights`` (Hugging Face configs and weights).
- ``attn.cache``: ``PagedKVCache``; ``attn.safetensors``: the checkpoint reader.
- ``attn.arguments``: numpy arrays / torch tensors as C arguments (``ArgumentError``).
- ``attn.tools``: where ``attn-compile`` and the libraries are (``ATTN_MLIR_PREFIX``).
- ``attn.builder``: the IR text; ``attn.ir``: entry functions of the tests and benchmarks.
- ``attn.reference``: numpy reference of the attention block.
- ``attn.runtime``: compiling with ``attn-compile`` and calling the library (docs/ABI.md).
- ``attn.gguf``: GGUF files; ``attn.shard``: per-device arguments of sharded layers.
"""

from .arguments import ArgumentError
from .cache import CacheError, PagedKVCache
from .hf import UnsupportedConfigError, from_hf_config, load_layer_weights
from .layers import (AttentionWithRope, AttentionWithRopeNoOpaque, CompiledAttention,
                     DataParallelAttentionWithRope, GGUFQAttentionWithRope,
                     GPTQAttentionWithRope, KVCacheParams, RotaryEmbedding,
                     TensorParallelAttentionWithRope)
from .tools import ToolNotFoundError

__all__ = [
    "ArgumentError", "AttentionWithRope", "AttentionWithRopeNoOpaque", "CacheError",
    "CompiledAttention", "DataParallelAttentionWithRope", "GGUFQAttentionWithRope",
    "GPTQAttentionWithRope", "KVCacheParams", "PagedKVCache", "RotaryEmbedding",
    "TensorParallelAttentionWithRope", "ToolNotFoundError", "UnsupportedConfigError",
    "from_hf_config", "load_layer_weights",
]
