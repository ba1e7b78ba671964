"""MAX-level attention layers: ``AttentionWithRope`` and its variants, compiled to callables.

The constructors take MAX's arguments (``max.nn.attention``: ``rope``, ``num_attention_heads``,
``num_key_value_heads``, ``hidden_size``, ``kv_params``, ``dtype``, ``devices``, ``stacked_qkv``,
``scale``, ``has_bias``, ``float8_config``, ``clip_qkv``, ``use_qk_norm``, ``rms_norm_eps``), plus
``sliding_window``. A layer emits its IR through ``attn.ir`` / ``attn.builder`` (``mlir()``) and
``compile(target)`` returns a ``CompiledAttention``: one function for every layer of the cache
(the layer index is a run-time argument), called on numpy arrays or torch tensors without copies.

Element types are MLIR names (``"f32"``, ``"bf16"``, ``"f16"``); ``"float32"``, ``"bfloat16"``,
``"float16"`` and torch dtypes are accepted too. bf16 numpy arrays hold uint16 bit patterns
(``runtime.to_bf16_bits``); torch tensors are ``torch.bfloat16``.
"""

import dataclasses
import functools
import os
import shutil
import subprocess
import tempfile
import weakref
from typing import Optional

import numpy as np

from . import arguments as args_
from . import ir
from . import runtime
from . import shard
from . import tools

# The CUDA runtime library a --target=cuda library loads (found through its $ORIGIN rpath).
CUDA_RUNTIME_LIBRARIES = ("libattn_cuda_runtime.so", "libAttnCudaRuntime.so")

_DTYPES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "f16": "f16",
           "float16": "f16"}


def dtype_name(dtype):
    """The MLIR name of ``dtype`` (a name, ``"torch.bfloat16"``, a torch dtype)."""
    key = str(dtype).rsplit(".", 1)[-1].lower()
    if key not in _DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of f32, bf16, f16 (or float32, "
                         "bfloat16, float16)")
    return _DTYPES[key]


@dataclasses.dataclass(frozen=True)
class KVCacheParams:
    """MAX's ``KVCacheParams`` of a paged cache: blocks ``[P, 2, num_layers, page_size,
    n_kv_heads, head_dim]`` of ``dtype``."""

    dtype: str
    n_kv_heads: int
    head_dim: int
    page_size: int = 128
    num_layers: int = 1

    def __post_init__(self):
        object.__setattr__(self, "dtype", dtype_name(self.dtype))


@dataclasses.dataclass(frozen=True)
class RotaryEmbedding:
    """MAX's ``RotaryEmbedding``: ``theta``, the table length ``max_seq_len`` (positions must
    stay below it), ``interleaved`` pairs (GGUF) or rotate-half pairs (Hugging Face), and a
    ``scaling`` dict of ``attn.reference`` (linear, llama3, yarn, longrope) or None."""

    theta: float = 10000.0
    max_seq_len: int = 4096
    interleaved: bool = False
    scaling: Optional[dict] = None

    def reference(self):
        """The rope dict of ``attn.reference`` / ``attn.ir``."""
        return {"theta": float(self.theta), "interleaved": self.interleaved,
                "scaling": self.scaling}


class AttentionWithRope:
    """MAX's ``AttentionWithRope``: the cache is one opaque ``!attn.paged_kv_cache`` in the IR.

    ``float8_config``: ``{"weight_scale": "tensor" | "row" | "block", "input_scale": "static" |
    "dynamic", "upper_bound": float or None}`` for float8 E4M3 projections. ``sliding_window``:
    keys at most that many positions back are seen (Mistral, Gemma). ``norm_weight_offset`` is
    added to the qk-norm gammas when weights are loaded from a checkpoint (Gemma's RMSNorm
    scales by ``1 + weight``).
    """

    opaque_cache = True
    function_name = "attention_with_rope"

    def __init__(self, *, rope, num_attention_heads, num_key_value_heads, hidden_size, kv_params,
                 dtype="f32", devices=None, stacked_qkv=False, scale=None, has_bias=False,
                 float8_config=None, clip_qkv=None, use_qk_norm=False, rms_norm_eps=1e-6,
                 sliding_window=None, norm_weight_offset=0.0):
        self.rope, self.kv_params = rope, kv_params
        self.dtype = dtype_name(dtype)
        self.devices = self._device_count(devices)
        self.norm_weight_offset = float(norm_weight_offset)
        if kv_params.n_kv_heads != num_key_value_heads:
            raise ValueError(f"kv_params.n_kv_heads = {kv_params.n_kv_heads} differs from "
                             f"num_key_value_heads = {num_key_value_heads}")
        if kv_params.dtype != self.dtype:
            raise ValueError(f"kv_params.dtype = {kv_params.dtype} differs from dtype = "
                             f"{self.dtype} (the layer stores k and v in its own dtype)")
        if num_attention_heads % num_key_value_heads:
            raise ValueError(f"num_attention_heads = {num_attention_heads} is not a multiple of "
                             f"num_key_value_heads = {num_key_value_heads}")
        quant = None
        if float8_config is not None:
            quant = {"kind": "float8", "upper_bound": None, **float8_config}
        self.config = ir.LayerConfig(
            hidden=hidden_size, num_heads=num_attention_heads, num_kv_heads=num_key_value_heads,
            head_dim=kv_params.head_dim, dtype=self.dtype, page_size=kv_params.page_size,
            num_layers=kv_params.num_layers, layer_idx=0, rope=rope.reference(),
            max_seq_len=rope.max_seq_len, stacked=stacked_qkv, bias=has_bias, clip=clip_qkv,
            qk_norm=use_qk_norm, rms_norm_eps=rms_norm_eps,
            mask=({"kind": "sliding_window", "window": int(sliding_window)}
                  if sliding_window else {"kind": "causal"}),
            scale=scale, quant=self._quantization(quant))

    # The quantised variants set their encoding here.
    def _quantization(self, quant):
        return quant

    def _device_count(self, devices):
        count = devices if isinstance(devices, int) else len(devices or [None])
        if count != 1:
            raise ValueError(f"devices: {count} devices; use TensorParallelAttentionWithRope or "
                             "DataParallelAttentionWithRope to shard a layer")
        return count

    @property
    def hidden_size(self):
        return self.config.hidden

    def arguments(self):
        """(name, MLIR type) of the compiled function's arguments, in order (docs/ABI.md):
        ``layer_idx, x, row_offsets, blocks, cache_lengths, lookup_table``, then the weights
        (``weight_names``; a quantised weight as its parts)."""
        return ir.layer_arguments(self.config, runtime_layer=True)

    def weight_names(self):
        """The weight arguments: ``wq, wk, wv`` or ``wqkv``; their biases; ``q_norm, k_norm``;
        ``wo`` (``[out_features, in_features]`` as nn.Linear); quantised ones as parts."""
        cache = {"layer_idx", "x", "row_offsets", "blocks", "cache_lengths", "lookup_table"}
        return [name for name, _ in self.arguments() if name not in cache]

    def mlir(self):
        """The module of the layer's function ``attention_with_rope``."""
        return ir.module_text(ir.layer_function(self.function_name, self.config,
                                                runtime_layer=True,
                                                opaque_cache=self.opaque_cache))

    def check_target(self, target):
        """Raises ValueError naming what ``target`` does not support in this layer."""
        if target not in ("cpu", "cuda"):
            raise ValueError(f"target {target!r}: expected 'cpu' or 'cuda'")
        if target == "cpu":
            return
        cfg = self.config
        if cfg.dtype not in ("bf16", "f16"):
            raise ValueError(f"dtype {cfg.dtype}: the cuda target takes bf16 or f16")
        if cfg.head_dim % 16 or cfg.head_dim > 256:
            raise ValueError(f"head_dim {cfg.head_dim}: the cuda target takes a multiple of 16 "
                             "up to 256")
        if cfg.hidden % 8:
            raise ValueError(f"hidden_size {cfg.hidden}: the cuda target takes a multiple of 8")

    def compile(self, target="cpu", output=None, flags=()):
        """Compiles the layer with ``attn-compile --target=<target>`` (``flags`` added) and
        returns a ``CompiledAttention``. The library is ``output`` (a ``.so`` path; for cuda
        the CUDA runtime library is copied beside it, where the library looks for it), or a
        temporary file removed with the result. It is loaded at the first call, so a cuda
        library can be built on a machine without a GPU and loaded elsewhere (``load``)."""
        self.check_target(target)
        workdir = None
        if output is None:
            workdir = tempfile.mkdtemp(prefix="attn-layer-")
            output = os.path.join(workdir, "layer.so")
        try:
            runtime.compile_library(self.mlir(), output, target, flags=flags)
            if target == "cuda":
                cuda_runtime = tools.find_library(CUDA_RUNTIME_LIBRARIES)
                shutil.copy(cuda_runtime, os.path.dirname(os.path.abspath(output)))
        except BaseException:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        return CompiledAttention(self, output, target, workdir)

    def load(self, path, target="cpu"):
        """The ``CompiledAttention`` of a library that ``compile(target, output=path)`` built
        for this layer."""
        self.check_target(target)
        return CompiledAttention(self, path, target)


class AttentionWithRopeNoOpaque(AttentionWithRope):
    """MAX's ``AttentionWithRopeNoOpaque``: the cache's three tensors are the function's
    arguments in the IR. Compiled, both forms have the same C signature."""

    opaque_cache = False


class GPTQAttentionWithRope(AttentionWithRope):
    """MAX's ``GPTQAttentionWithRope``: int4 GPTQ projections, ``quantization_config``
    ``{"group_size": g, "desc_act": bool}``; each weight is passed as its parts
    (``wq_qweight``, ``wq_scales`` [, ``wq_perm``]). ``"layout": "column_blocks"`` (not MAX's)
    takes each ``qweight`` and ``scales`` repacked once by ``reference.gptq_column_blocks``."""

    def __init__(self, *, quantization_config, **kwargs):
        self._gptq = {"kind": "gptq", "group_size": int(quantization_config["group_size"]),
                      "desc_act": bool(quantization_config.get("desc_act", False)),
                      "layout": quantization_config.get("layout", "checkpoint")}
        if self._gptq["layout"] not in ("checkpoint", "column_blocks"):
            raise ValueError(f"quantization_config: GPTQ layout {self._gptq['layout']!r}; "
                             "checkpoint or column_blocks")
        super().__init__(**kwargs)

    def _quantization(self, quant):
        if quant is not None:
            raise ValueError("float8_config: a GPTQ layer's weights are int4")
        return self._gptq


class GGUFQAttentionWithRope(AttentionWithRope):
    """MAX's ``GGUFQAttentionWithRope``: GGUF block weights (``quantization_encoding`` one of
    q4_0, q8_0, q4_k, q6_k, or a dict by weight name, as llama.cpp's mixed files), f32
    activations, CPU only; each weight is passed as ``<name>_blocks`` (int8 bytes)."""

    def __init__(self, *, quantization_encoding, dtype="f32", **kwargs):
        encoding = quantization_encoding
        self._gguf = ({name: {"kind": "gguf", "type": t} for name, t in encoding.items()}
                      if isinstance(encoding, dict) else {"kind": "gguf", "type": encoding})
        if dtype_name(dtype) != "f32":
            raise ValueError(f"dtype {dtype}: a GGUF layer computes in f32")
        super().__init__(dtype=dtype, **kwargs)

    def _quantization(self, quant):
        if quant is not None:
            raise ValueError("float8_config: a GGUF layer's weights are GGUF blocks")
        return self._gguf

    def check_target(self, target):
        if target == "cuda":
            raise ValueError(f"target {target!r}: GGUF weights are decoded on the CPU only")
        super().check_target(target)


class _ShardedAttentionWithRope(AttentionWithRope):
    """A layer split over ``devices`` (an int or a list) by ``attn-shard`` (docs/Sharding.md);
    on the CPU each device is one MPI process, which calls the compiled function with its
    own arguments (``shard_arguments``)."""

    strategy = None

    def _device_count(self, devices):
        count = devices if isinstance(devices, int) else len(devices)
        if count < 1:
            raise ValueError(f"devices: {count}, expected at least 1")
        return count

    def mlir(self):
        """The per-device module: the layer's module through ``attn-opt --attn-shard``."""
        attn_opt = tools.find_tool("attn-opt")
        option = f"--attn-shard=strategy={self.strategy} devices={self.devices}"
        proc = subprocess.run([attn_opt, "-", option], input=super().mlir(),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise runtime.CompileError(f"attn-opt {option} failed:\n{proc.stderr}")
        return proc.stdout

    def check_target(self, target):
        if target == "cuda":
            raise ValueError(f"target {target!r}: sharded layers run on the CPU (MPI) here")
        super().check_target(target)

    def compiled_config(self):
        """The ``ir.LayerConfig`` of one device's function."""
        return self.config

    def shard_arguments(self, arguments, rank):
        """Device ``rank``'s arguments (numpy, by name) from the whole layer's; the scalar
        ``layer_idx`` is every device's."""
        arrays = {name: value for name, value in arguments.items() if np.ndim(value)}
        scalars = {name: value for name, value in arguments.items() if not np.ndim(value)}
        return {**scalars, **self._shard(arrays, rank)}


class TensorParallelAttentionWithRope(_ShardedAttentionWithRope):
    """MAX's ``TensorParallelAttentionWithRope``: each device owns ``H/N`` query and ``Hkv/N``
    kv heads (their weight rows, o_proj columns and cache heads); the partial outputs are
    summed with ``MPI_Allreduce``."""

    strategy = "tensor"

    def compiled_config(self):
        return shard.tensor_parallel_config(self.config, self.devices)

    def _shard(self, arrays, rank):
        return shard.tensor_parallel_shard(self.config, arrays, rank, self.devices)


class DataParallelAttentionWithRope(_ShardedAttentionWithRope):
    """MAX's ``DataParallelAttentionWithRope``: each device runs the whole layer on its own
    sequences, with its own cache; no collective."""

    strategy = "data"

    def _shard(self, arrays, rank):
        return shard.data_parallel_shard(arrays, rank, self.devices)


class CompiledAttention:
    """A compiled layer: ``__call__(x, cache, weights, layer_idx)`` or ``call(arguments)``.

    Arguments are numpy arrays or torch tensors of the layer's element types (docs/ABI.md), CPU
    memory for target cpu, cuda:0 for target cuda, C-contiguous; they are passed without copies
    and the cache blocks are updated in place. A cuda call is asynchronous on the current
    stream (docs/ABI.md). Wrong arguments raise ``arguments.ArgumentError`` naming the argument.
    """

    def __init__(self, layer, path, target, workdir=None):
        self.layer, self.path, self.target = layer, os.fspath(path), target
        config = layer.compiled_config() if isinstance(layer, _ShardedAttentionWithRope) \
            else layer.config
        self.parameters = [args_.Parameter.parse(name, type_text, written=name == "blocks")
                           for name, type_text in ir.layer_arguments(config, runtime_layer=True)]
        self.output = args_.Parameter("out", config.dtype, (None, config.hidden), written=True)
        self.config = config
        if workdir:
            self._cleanup = weakref.finalize(self, shutil.rmtree, workdir, True)

    @functools.cached_property
    def library(self):
        """The loaded library (``runtime.CompiledLibrary``), at the first use."""
        return runtime.CompiledLibrary(self.path)

    def __call__(self, x, cache, weights, layer_idx=0, out=None):
        """The layer's output ``[T, hidden]`` for the rows ``x`` of the cache's current step
        (``PagedKVCache.step``); writes layer ``layer_idx`` of the cache."""
        return self.call({"layer_idx": layer_idx, "x": x, **cache.arguments(), **weights}, out)

    def call(self, arguments, out=None):
        """Calls the function with ``arguments`` by name (``layer.arguments()``); ``out``
        (allocated beside ``x`` if None) receives the output, which is returned."""
        names = {p.name for p in self.parameters}
        unexpected = sorted(set(arguments) - names)
        if unexpected:
            raise args_.ArgumentError(unexpected[0], "not an argument of the layer (it takes "
                                      f"{', '.join(p.name for p in self.parameters)})")
        missing = [p.name for p in self.parameters if p.name not in arguments]
        if missing:
            raise args_.ArgumentError(missing[0], "missing")
        c_args = [args_.c_argument(p, arguments[p.name], self.target) for p in self.parameters]
        x = arguments["x"]
        if out is None:
            out = args_.empty_like(x, (x.shape[0], self.output.shape[1]), self.output.element)
        elif out.shape[0] != x.shape[0]:
            raise args_.ArgumentError("out", f"{out.shape[0]} rows, x has {x.shape[0]}")
        c_args.append(args_.c_argument(self.output, out, self.target))
        if self.target == "cpu":
            self._check_batch(arguments)
        # The parameters checked every argument (arguments.c_argument).
        self.library.call_prepared(self.layer.function_name, c_args, check=False)
        return out

    def take_status(self):
        """The status of the first refused call (docs/ABI.md, "Status") not reported yet, 0 if
        none; taking it clears it. A refused call did nothing (no cache write). What an entry
        point checks on the host it reports at once by raising ``runtime.EntryError`` (every
        status on cpu, so there this is 0). A cuda call checks the index values (statuses 3-7)
        on the device and returns before they are known: this reports them, after waiting for
        the calls queued on the stream (so not while a CUDA graph is being captured). The word
        is the runtime's, shared by the CUDA libraries of the process (their first non-zero
        status, all cleared); until it is taken, every call skips its cache writes."""
        if self.target == "cpu":
            return 0
        return runtime.take_cuda_status(self.library.lib)

    def _check_batch(self, arguments):
        """What the library does not check in host memory (docs/ABI.md, Status): the rows of
        ``x`` are those of ``row_offsets``, and every position has a RoPE table row and a
        lookup-table page."""
        offsets, lengths, lookup = (np.asarray(arguments[name]) for name in
                                    ("row_offsets", "cache_lengths", "lookup_table"))
        rows = arguments["x"].shape[0]
        if len(offsets) != len(lengths) + 1 or len(lookup) != len(lengths):
            return  # the library's status 2 says which
        if offsets[0] != 0 or offsets[-1] != rows or np.any(np.diff(offsets) < 0):
            raise args_.ArgumentError("row_offsets", f"{offsets.tolist()} is not a split of "
                                      f"the {rows} rows of x (from 0, non-decreasing)")
        if np.any(lengths < 0):
            raise args_.ArgumentError("cache_lengths", f"{lengths.tolist()}: negative")
        ends = lengths.astype(np.int64) + np.diff(offsets)
        if ends.max(initial=0) > self.config.max_seq_len:
            raise args_.ArgumentError("cache_lengths", f"sequences reach {ends.tolist()} "
                                      f"tokens, past max_seq_len = {self.config.max_seq_len}")
        pages = -(-ends // self.config.page_size)
        if pages.max(initial=0) > lookup.shape[1]:
            raise args_.ArgumentError("lookup_table", f"{lookup.shape[1]} pages per sequence, "
                                      f"sequences need {pages.tolist()}")
