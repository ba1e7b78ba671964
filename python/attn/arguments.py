"""Arguments of compiled entry functions from numpy arrays and torch tensors, without copies.

A ``Parameter`` is one argument of an entry function as ``attn.builder`` typed it (a tensor's
shape, None for a dynamic size, and element type; or a scalar). ``c_argument`` checks a value
against it and returns what the C function takes (docs/ABI.md): a memref descriptor of the
value's own buffer (numpy: ``ndarray.ctypes.data``; torch: ``Tensor.data_ptr()``), or a scalar
by value. A wrong type, element type, shape, device or layout raises ``ArgumentError`` naming the
argument. torch is imported only when a torch tensor is passed.
"""

import ctypes
import dataclasses
import re
from typing import Optional, Tuple

import numpy as np

from . import runtime

# MLIR element type -> torch dtype name of its buffers (bf16 is torch.bfloat16 itself).
TORCH_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "i32": "int32",
                "f8E4M3FN": "uint8", "i8": "int8"}
_SCALARS = {"i32": ctypes.c_int32, "index": ctypes.c_int64}
_TENSOR_TYPE = re.compile(r"tensor<((?:(?:\?|\d+)x)*)(\w+)>")


class ArgumentError(ValueError):
    """An argument of a compiled function is not what the function takes; ``.argument`` is its
    name."""

    def __init__(self, argument, message):
        self.argument = argument
        super().__init__(f"argument '{argument}': {message}")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One argument: ``shape`` None for a scalar, else sizes with None for a dynamic size;
    ``written``: the function writes it (the cache blocks, the output)."""

    name: str
    element: str
    shape: Optional[Tuple[Optional[int], ...]] = None
    written: bool = False

    @classmethod
    def parse(cls, name, type_text, written=False):
        """The parameter of an argument typed ``tensor<...>``, ``i32`` or ``index``."""
        if type_text in _SCALARS:
            return cls(name, type_text)
        match = _TENSOR_TYPE.fullmatch(type_text)
        if not match:
            raise ValueError(f"argument {name}: no ABI for type {type_text}")
        dims = tuple(None if d == "?" else int(d) for d in match.group(1).split("x")[:-1])
        return cls(name, match.group(2), dims, written)

    def describe(self):
        if self.shape is None:
            return self.element
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "] " + \
            self.element


def is_torch(value):
    return type(value).__module__.split(".")[0] == "torch"


def _device_of(value):
    """``"cpu"`` or ``"cuda:N"`` of a numpy array or torch tensor."""
    if is_torch(value):
        device = value.device
        return "cpu" if device.type == "cpu" else f"{device.type}:{device.index or 0}"
    return "cpu"


def _check_tensor(param, value, target):
    name = param.name
    if is_torch(value):
        import torch

        want = getattr(torch, TORCH_DTYPES[param.element])
        if value.dtype != want:
            raise ArgumentError(name, f"dtype {value.dtype}, expected {want} ({param.describe()})")
        if not value.is_contiguous():
            raise ArgumentError(name, "not contiguous (use .contiguous())")
        pointer = value.data_ptr()
    elif isinstance(value, np.ndarray):
        want = runtime.numpy_dtype(param.element)
        if value.dtype != want:
            raise ArgumentError(name, f"dtype {value.dtype}, expected {want} ({param.describe()}"
                                f"{'; bf16 as uint16 bit patterns' if param.element == 'bf16' else ''})")
        if not value.flags.c_contiguous:
            raise ArgumentError(name, "not C-contiguous (use np.ascontiguousarray)")
        if param.written and not value.flags.writeable:
            raise ArgumentError(name, "read-only, and the function writes it")
        pointer = value.ctypes.data
    else:
        raise ArgumentError(name, f"a {type(value).__name__}, expected a numpy array or a torch "
                            f"tensor ({param.describe()})")
    shape = tuple(value.shape)
    if len(shape) != len(param.shape) or any(
            want is not None and got != want for got, want in zip(shape, param.shape)):
        raise ArgumentError(name, f"shape {list(shape)}, expected {param.describe()}")
    device = _device_of(value)
    if target == "cpu" and device != "cpu":
        raise ArgumentError(name, f"on {device}, expected host memory (target cpu)")
    if target == "cuda" and device != "cuda:0":
        raise ArgumentError(name, f"on {device}, expected a tensor on cuda:0 (target cuda: the "
                            "kernels run in device 0's primary context)")
    return runtime.descriptor(pointer, shape, value)


def c_argument(param, value, target):
    """The C argument of ``value`` for ``param`` of a ``target`` ("cpu" / "cuda") library."""
    if param.shape is None:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ArgumentError(param.name, f"a {type(value).__name__}, expected an integer "
                                f"({param.element})")
        return _SCALARS[param.element](int(value))
    return _check_tensor(param, value, target)


def empty_like(value, shape, element):
    """An uninitialised buffer of ``shape`` and ``element`` beside ``value`` (same library and
    device): numpy for numpy, torch for torch."""
    if is_torch(value):
        import torch

        return torch.empty(shape, dtype=getattr(torch, TORCH_DTYPES[element]),
                           device=value.device)
    return np.empty(shape, runtime.numpy_dtype(element))


def torch_tensor(array, element, device):
    """The torch tensor on ``device`` of numpy array ``array`` holding ``element`` values
    (bf16: uint16 bit patterns become ``torch.bfloat16``)."""
    import torch

    if element == "bf16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16).to(device)
    return torch.from_numpy(array).to(device)
