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


def argument(value):
    """A C argument: numpy integer scalars (an ``i32`` / ``index`` argument such as the run-time
    layer index) by value (``runtime.as_argument``), tensors as descriptors."""
    return rt.as_argument(value) if isinstance(value, np.generic) else descriptor(value)


class DeviceFunction:
    """The entry point ``_mlir_ciface_<name>`` of a CUDA library."""

    def __init__(self, library, name):
        self.fn = getattr(library, f"_mlir_ciface_{name}")
        self.fn.restype = ctypes.c_int32
        self.library = library
        self.name = name
        self.signatures = rt.read_signatures(library)

    def bind(self, inputs, outputs=()):
        """A no-argument call on these tensors (descriptors made once: nothing but the call
        is left to time) and scalars (numpy integers, passed by value). The caller keeps the
        tensors alive. A non-zero status raises runtime.EntryError; arguments that differ from
        the library's signature raise runtime.SignatureError here."""
        rt.check_arguments(self.signatures, self.name, [*inputs, *outputs])
        args = [argument(a) for a in (*inputs, *outputs)]
        by_value = [not isinstance(a, ctypes.Structure) for a in args]  # scalars
        values = [a if v else ctypes.addressof(a) for a, v in zip(args, by_value)]
        self.fn.argtypes = [type(a) if v else ctypes.c_void_p for a, v in zip(args, by_value)]

        def call():
            rt.check_status(self.library, self.name, self.fn(*values))

        call.descriptors = args  # keep the descriptors alive with the call
        return call

    def __call__(self, inputs, outputs=()):
        self.bind(inputs, outputs)()


def load(path):
    """The CUDA library at ``path`` (it finds libattn_cuda_runtime.so beside itself)."""
    return ctypes.CDLL(os.path.abspath(path))


def runtime(path):
    """libattn_cuda_runtime.so beside the CUDA library at ``path`` (already loaded with it)."""
    lib = ctypes.CDLL(os.path.join(os.path.dirname(os.path.abspath(path)),
                                   "libattn_cuda_runtime.so"))
    lib.attnCudaSetStream.argtypes = [ctypes.c_void_p]
    lib.attnCudaSetStream.restype = None
    lib.attnCudaTakeStatus.argtypes = []
    lib.attnCudaTakeStatus.restype = ctypes.c_int32
    return lib
