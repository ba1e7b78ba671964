"""GGUF files (llama.cpp checkpoints) and the arguments of an attention layer from their tensors.

Format (little-endian; ``/work/shared/reference/quantization.md``, llama.cpp's ``gguf.h``): magic
``GGUF``, u32 version (2 or 3), u64 tensor count, u64 metadata count; the metadata as key (a
string: u64 length and UTF-8 bytes), u32 value type, value; the tensor infos as name, u32 number of
dims, u64 ``ne[dims]`` (``ne[0]`` innermost: K of a weight ``[N, K]``), u32 ggml type, u64 offset
from the start of the data; the data at the next multiple of ``general.alignment`` (default 32).
"""

import dataclasses
import struct

import numpy as np

from . import ir
from . import reference as ref

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# Metadata value types: id -> struct format of a scalar (strings and arrays are read apart).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types this reader maps: id -> name (float tensors) or GGUF block type.
GGML_TYPES = {0: "f32", 1: "f16", 30: "bf16", 2: "q4_0", 8: "q8_0", 12: "q4_k", 14: "q6_k"}
_FLOAT_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}

# llama.cpp's tensor names of an attention layer, by layer argument.
LAYER_TENSORS = {"wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output"}
# Architectures whose q and k rows llama.cpp's converter permutes for rope on adjacent pairs
# (rope type "norm"); the others rotate halves ("neox").
_INTERLEAVED_ROPE = {"llama": True, "mistral": True, "qwen2": False, "qwen3": False}


class GGUFError(ValueError):
    """A malformed or unsupported GGUF file."""


@dataclasses.dataclass
class GGUFTensor:
    name: str
    ne: tuple  # ggml dims, innermost first
    type: str  # GGML_TYPES name
    data: np.ndarray  # the tensor's bytes (a view of the file)

    @property
    def shape(self):
        """numpy shape, outermost first (``[N, K]`` of a weight)."""
        return tuple(reversed(self.ne))

    def array(self):
        """Float tensors as their values (bf16 as uint16 bits, the ABI's form); GGUF blocks as
        int8 bytes ``[rows, K / elements * bytes]`` (the ``blocks`` part of a weight)."""
        if self.type in _FLOAT_DTYPES:
            return self.data.view(_FLOAT_DTYPES[self.type]).reshape(self.shape)
        return self.data.view(np.int8).reshape(-1, _row_bytes(self.type, self.ne[0]))


@dataclasses.dataclass
class GGUFFile:
    version: int
    alignment: int
    metadata: dict
    tensors: dict  # name -> GGUFTensor, in file order


def _row_bytes(type_name, k):
    if type_name in _FLOAT_DTYPES:
        return k * np.dtype(_FLOAT_DTYPES[type_name]).itemsize
    elements, nbytes = ref.GGUF_BLOCKS[type_name]
    if k % elements:
        raise GGUFError(f"{type_name} rows of {k} elements: not a multiple of the block "
                        f"({elements})")
    return k // elements * nbytes


class _Reader:
    def __init__(self, buffer):
        self.buffer = buffer
        self.pos = 0

    def take(self, fmt):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buffer):
            raise GGUFError(f"truncated file: {size} bytes wanted at offset {self.pos}")
        values = struct.unpack_from("<" + fmt, self.buffer, self.pos)
        self.pos += size
        return values[0] if len(values) == 1 else values

    def string(self):
        n = self.take("Q")
        if self.pos + n > len(self.buffer):
            raise GGUFError(f"truncated string of {n} bytes at offset {self.pos}")
        text = bytes(self.buffer[self.pos : self.pos + n]).decode("utf-8")
        self.pos += n
        return text

    def value(self, type_id):
        if type_id in _SCALARS:
            return self.take(_SCALARS[type_id])
        if type_id == _STRING:
            return self.string()
        if type_id == _ARRAY:
            element, count = self.take("I"), self.take("Q")
            return [self.value(element) for _ in range(count)]
        raise GGUFError(f"unknown metadata value type {type_id} at offset {self.pos - 4}")


def read_gguf(path):
    """The ``GGUFFile`` at ``path``; tensor data are views of a read-only memory map."""
    buffer = np.memmap(path, dtype=np.uint8, mode="r")
    r = _Reader(buffer)
    if bytes(buffer[:4]) != MAGIC:
        raise GGUFError(f"{path}: not a GGUF file (magic {bytes(buffer[:4])!r})")
    r.pos = 4
    version = r.take("I")
    if version not in (2, 3):
        raise GGUFError(f"{path}: GGUF version {version} (2 and 3 are read)")
    tensor_count, metadata_count = r.take("Q"), r.take("Q")
    metadata = {}
    for _ in range(metadata_count):
        key = r.string()
        metadata[key] = r.value(r.take("I"))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    if alignment <= 0 or alignment % 8:
        raise GGUFError(f"{path}: general.alignment {alignment} is not a positive multiple of 8")
    infos = []
    for _ in range(tensor_count):
        name = r.string()
        ne = tuple(r.take("Q") for _ in range(r.take("I")))
        type_id, offset = r.take("I"), r.take("Q")
        if type_id not in GGML_TYPES:
            raise GGUFError(f"{path}: tensor {name!r} has ggml type {type_id} (read: "
                            f"{', '.join(GGML_TYPES.values())})")
        if offset % alignment:
            raise GGUFError(f"{path}: tensor {name!r} at offset {offset}, not aligned to "
                            f"{alignment}")
        infos.append((name, ne, GGML_TYPES[type_id], offset))
    data_start = -(-r.pos // alignment) * alignment
    tensors = {}
    for name, ne, type_name, offset in infos:
        size = _row_bytes(type_name, ne[0]) * int(np.prod(ne[1:], dtype=np.int64))
        begin = data_start + offset
        if begin + size > len(buffer):
            raise GGUFError(f"{path}: tensor {name!r} ({size} bytes at {begin}) past the end "
                            f"({len(buffer)} bytes)")
        tensors[name] = GGUFTensor(name, ne, type_name, buffer[begin : begin + size])
    return GGUFFile(version, alignment, metadata, tensors)


def _layer_tensor(gguf, layer, argument):
    name = f"blk.{layer}.{LAYER_TENSORS[argument]}.weight"
    if name not in gguf.tensors:
        raise GGUFError(f"no tensor {name!r}")
    return gguf.tensors[name]


def layer_config(gguf, layer, **overrides):
    """The ``ir.LayerConfig`` of attention layer ``layer`` (f32 activations, as MAX's
    ``GGUFQAttentionWithRope``): sizes and rope theta from the ``<arch>.*`` metadata, rope on
    adjacent pairs where llama.cpp's converter permuted q and k for it, and each weight's
    encoding from its tensor type (GGUF blocks, or f32). ``overrides`` set other fields."""
    arch = gguf.metadata.get("general.architecture")
    if arch not in _INTERLEAVED_ROPE:
        raise GGUFError(f"architecture {arch!r} (read: {', '.join(_INTERLEAVED_ROPE)})")

    def key(name, default=None):
        value = gguf.metadata.get(f"{arch}.{name}", default)
        if value is None:
            raise GGUFError(f"no metadata {arch}.{name}")
        return value

    hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
    quant = {}
    for argument in LAYER_TENSORS:
        tensor = _layer_tensor(gguf, layer, argument)
        if tensor.type in ref.GGUF_BLOCKS:
            quant[argument] = {"kind": "gguf", "type": tensor.type}
        elif tensor.type != "f32":
            raise GGUFError(f"{tensor.name} is {tensor.type}: a layer in f32 takes f32 or "
                            f"GGUF-block weights")
    fields = dict(
        hidden=hidden, num_heads=heads,
        num_kv_heads=int(key("attention.head_count_kv", heads)),
        head_dim=int(key("attention.key_length", hidden // heads)), dtype="f32",
        rope={"theta": float(key("rope.freq_base", 10000.0)),
              "interleaved": _INTERLEAVED_ROPE[arch], "scaling": None},
        quant=quant or None)
    fields.update(overrides)
    return ir.LayerConfig(**fields)


def layer_weights(gguf, layer, cfg):
    """The weight arguments of ``ir.layer_function(_, cfg)`` (``wq_blocks`` or ``wq``, ...) from
    layer ``layer``'s tensors, checked against the shapes and encodings of ``cfg``."""
    shapes = cfg.weight_shapes()
    arguments = {}
    for argument in LAYER_TENSORS:
        tensor = _layer_tensor(gguf, layer, argument)
        if tensor.shape != tuple(shapes[argument]):
            raise GGUFError(f"{tensor.name} is {list(tensor.shape)}, the layer's {argument} "
                            f"{list(shapes[argument])}")
        quant = cfg.quant_of(argument)
        if quant is None:
            if tensor.type != "f32":
                raise GGUFError(f"{tensor.name} is {tensor.type}, the layer's {argument} f32")
            arguments[argument] = tensor.array()
        elif quant.get("kind") != "gguf" or quant["type"] != tensor.type:
            raise GGUFError(f"{tensor.name} is {tensor.type}, the layer's {argument} "
                            f"{ir.encoding_attr(quant)}")
        else:
            arguments[f"{argument}_blocks"] = tensor.array()
    return arguments
