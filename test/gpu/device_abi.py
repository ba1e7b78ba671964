"""Calling libraries of ``attn-compile --target=cuda`` on PyTorch tensors.

The ABI is the CPU library's (``docs/ABI.md``) with CUDA device pointers in the descriptors;
the call returns once its work is enqueued on the stream (synchronise before reading results).
Shared by the GPU tests and the GPU benchmark.
"""

import ctypes
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "python"))

from attn import runtime as rt  # noqa: E402


def descriptor(t):
    """Memref descriptor of a contiguous device tensor: offset 0, row-major strides computed
    from the shape (size-1 dims included, as the ABI asks)."""
    if not t.is_contiguous():
        raise ValueError("tensor must be contiguous")
    shape = tuple(t.shape)
    strides = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    return rt.MemRefDescriptor(len(shape))(t.data_ptr(), t.data_ptr(), 0, shape, strides)


class DeviceFunction:
    """The entry point ``_mlir_ciface_<name>`` of a CUDA library."""

    def __init__(self, library, name):
        self.fn = getattr(library, f"_mlir_ciface_{name}")
        self.fn.restype = ctypes.c_int32
        self.name = name

    def bind(self, inputs, outputs=()):
        """A no-argument call on these tensors (descriptors made once: nothing but the call
        is left to time) and scalars (np.int32 / np.int64, passed by value). The caller keeps
        the tensors alive. A non-zero status raises runtime.EntryError."""
        descs = [rt.as_argument(t) if isinstance(t, (np.int32, np.int64)) else descriptor(t)
                 for t in (*inputs, *outputs)]
        scalars = (ctypes.c_int32, ctypes.c_int64)
        arguments = [d if isinstance(d, scalars) else ctypes.addressof(d) for d in descs]
        self.fn.argtypes = [type(d) if isinstance(d, scalars) else ctypes.c_void_p
                            for d in descs]

        def call():
            rt.check_status(self.name, self.fn(*arguments))

        call.descriptors = descs  # keep the descriptors alive with the call
        return call

    def __call__(self, inputs, outputs=()):
        self.bind(inputs, outputs)()


def load(path):
    """The CUDA library at ``path`` (it finds libattn_cuda_runtime.so beside itself)."""
    return ctypes.CDLL(os.path.abspath(path))
