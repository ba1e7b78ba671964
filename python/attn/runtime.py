"""Calling CPU libraries built by ``attn-compile --target=cpu`` (the ABI of ``docs/ABI.md``).

Every public ``func.func @name`` is exported as ``int32_t _mlir_ciface_name(...)``: one pointer
to a memref descriptor per tensor argument (a scalar ``i32`` / ``index`` argument, such as the
run-time layer index, by value), then one per result that is not updated in place in an
argument's buffer (an out-parameter the caller allocates); it returns a status, 0 when it ran
(``EntryError`` otherwise). Element types: f32 -> float32, f16 -> float16, bf16 -> uint16 bit
patterns, i32 -> int32.
"""

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile

import numpy as np

from . import reference
from . import tools

# MLIR element type name -> numpy dtype of its buffers.
NUMPY_DTYPES = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(np.uint16),
    "i32": np.dtype(np.int32),
    # Quantised weight parts: float8 E4M3 bytes and raw (GGUF) bytes.
    "f8E4M3FN": np.dtype(np.uint8),
    "i8": np.dtype(np.int8),
}
_ABI_DTYPES = frozenset(NUMPY_DTYPES.values())


# ---------------------------------------------------------------------------------------------
# bf16 and element types


def to_bf16_bits(x):
    """bf16 bit patterns (uint16) of ``x``, rounded to nearest even (float64: rounded once)."""
    rounded = np.array(reference.cast_like(np.asarray(x), "bf16"), order="C")  # low 16 bits zero
    return np.asarray((rounded.view(np.uint32) >> 16).astype(np.uint16))


def from_bf16_bits(bits):
    """float32 values of bf16 bit patterns (uint16)."""
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError(f"bf16 bit patterns must be uint16, got {bits.dtype}")
    return (bits.astype(np.uint32) << 16).view(np.float32)


def numpy_dtype(type_name):
    """numpy dtype of an MLIR element type name ("f32", "f16", "bf16" -> uint16, "i32")."""
    return NUMPY_DTYPES[type_name]


def to_abi(values, type_name):
    """C-contiguous array of ``values`` in the ABI representation of ``type_name``."""
    if type_name == "bf16":
        return to_bf16_bits(values)
    with np.errstate(over="ignore"):
        return np.array(values, dtype=NUMPY_DTYPES[type_name], order="C")


def from_abi(array, type_name):
    """Values of an ABI array: bf16 bits become float32, other types are returned unchanged."""
    return from_bf16_bits(array) if type_name == "bf16" else np.asarray(array)


# ---------------------------------------------------------------------------------------------
# Memref descriptors


@functools.lru_cache(maxsize=None)
def MemRefDescriptor(rank):
    """ctypes struct ``{T *allocated, *aligned; int64 offset, sizes[rank], strides[rank];}``."""

    class _Descriptor(ctypes.Structure):
        _fields_ = [
            ("allocated", ctypes.c_void_p),
            ("aligned", ctypes.c_void_p),
            ("offset", ctypes.c_int64),
            ("sizes", ctypes.c_int64 * rank),
            ("strides", ctypes.c_int64 * rank),
        ]

    _Descriptor.__name__ = f"MemRefDescriptor{rank}D"
    return _Descriptor


def descriptor(pointer, shape, owner):
    """Descriptor of the C-contiguous buffer at ``pointer`` (host or device memory) of
    ``shape``; it keeps ``owner`` (the array or tensor holding the buffer) alive.

    Strides are the C-contiguous element strides of the shape; the offset is 0.
    """
    rank = len(shape)
    strides = [int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(rank)]
    desc = MemRefDescriptor(rank)(None, None, 0, tuple(shape), tuple(strides))
    desc.allocated = desc.aligned = pointer
    desc.owner = owner
    return desc


def as_descriptor(array):
    """Descriptor of a C-contiguous numpy array (the descriptor keeps the array alive)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(array).__name__}")
    if not array.flags.c_contiguous:
        raise ValueError("array must be C-contiguous (use np.ascontiguousarray)")
    if array.dtype not in _ABI_DTYPES:
        raise TypeError(
            f"unsupported element type {array.dtype}; the ABI takes float32, float16, "
            "uint16 (bf16 bits), int32, uint8 (float8 E4M3 bytes) and int8"
        )
    return descriptor(array.ctypes.data, array.shape, array)


# ---------------------------------------------------------------------------------------------
# Libraries


_SCALAR_TYPES = (ctypes.c_int32, ctypes.c_int64)

class EntryError(RuntimeError):
    """An entry point returned a non-zero status: it did nothing (no output, no cache write)."""

    def __init__(self, name, status, message):
        self.status = status
        self.message = message
        super().__init__(f"{name}: status {status}: {message}")


def status_message(library, status):
    """The message of ``status`` from the ``attnStatusMessage`` of the ctypes ``library``
    (docs/ABI.md, "Status")."""
    fn = library.attnStatusMessage
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.c_int32]
    return fn(status).decode()


def take_cuda_status(library):
    """``attnCudaTakeStatus`` through the ctypes ``library``, a CUDA library (the runtime it
    loaded exports it; docs/ABI.md, "CUDA libraries"): waits for the calling thread's stream,
    then returns the first status its device checks found since the last take (0: none) and
    clears it."""
    fn = library.attnCudaTakeStatus
    fn.restype = ctypes.c_int32
    fn.argtypes = []
    return fn()


def check_status(library, name, status):
    """Raises EntryError for a non-zero status of entry point ``name`` of ``library``."""
    if status != 0:
        raise EntryError(name, status, status_message(library, status))


def as_argument(value):
    """A C argument for ``value``: scalar arguments (an ``i32`` or ``index`` argument of the
    function, such as the run-time layer index) are numpy ``int32`` / ``int64`` scalars passed
    by value; arrays are passed as memref descriptors."""
    if isinstance(value, np.int32):
        return ctypes.c_int32(int(value))
    if isinstance(value, np.int64):
        return ctypes.c_int64(int(value))
    if isinstance(value, (int, np.integer)):
        raise TypeError("pass scalar arguments as np.int32 (i32) or np.int64 (index)")
    return as_descriptor(value)


class CompiledLibrary:
    """A shared library built by ``attn-compile --target=cpu``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.lib = ctypes.CDLL(os.path.abspath(self.path))

    def function(self, name):
        """The ctypes function ``_mlir_ciface_<name>``."""
        try:
            fn = getattr(self.lib, f"_mlir_ciface_{name}")
        except AttributeError:
            raise AttributeError(f"{self.path} exports no _mlir_ciface_{name}") from None
        fn.restype = ctypes.c_int32
        return fn

    def call(self, name, inputs, outputs=()):
        """Calls ``_mlir_ciface_<name>`` with descriptors of ``inputs`` then ``outputs``.

        Outputs are written by the callee; inputs whose results are in-place (the KV-cache
        blocks) are modified in place. A non-zero status raises EntryError (then nothing was
        written).
        """
        for out in outputs:
            if not out.flags.writeable:
                raise ValueError("output arrays must be writeable")
        self.call_prepared(name, [as_argument(a) for a in (*inputs, *outputs)])

    def call_prepared(self, name, args):
        """Calls ``_mlir_ciface_<name>`` with C arguments: ctypes ``c_int32`` / ``c_int64``
        scalars by value, descriptors by pointer. A non-zero status raises EntryError."""
        fn = self.function(name)
        fn.argtypes = [type(a) if isinstance(a, _SCALAR_TYPES) else ctypes.c_void_p
                       for a in args]
        status = fn(*[a if isinstance(a, _SCALAR_TYPES) else ctypes.addressof(a) for a in args])
        check_status(self.lib, name, status)


# ---------------------------------------------------------------------------------------------
# Compiling


class CompileError(RuntimeError):
    """attn-compile failed; the message holds its stderr."""


def attn_compile_path():
    """The ``attn-compile`` to use (``tools.find_tool``: ``$ATTN_COMPILE``, ``$ATTN_MLIR_PREFIX``,
    the install prefix, ``PATH``, the source tree's build); ToolNotFoundError if none."""
    return tools.find_tool("attn-compile")


def _is_path(source):
    if isinstance(source, os.PathLike):
        return True
    return "\n" not in source and (source.endswith(".mlir") or os.path.isfile(source))


def extra_compile_flags():
    """``$ATTN_COMPILE_FLAGS`` split on whitespace: options added to every ``attn-compile`` call
    (e.g. ``--sanitize=address``, see ``scripts/run-asan-exec-tests.sh``)."""
    return tuple(os.environ.get("ATTN_COMPILE_FLAGS", "").split())


def _compiler_environment():
    """The environment of ``attn-compile``: ours without a preloaded ASan runtime (the compiler is
    not the code under test; the runtime would only slow it down, and would clash with the static
    one of an ASan-instrumented ``attn-compile``)."""
    preload = os.environ.get("LD_PRELOAD")
    if not preload or "libclang_rt.asan" not in preload:
        return None
    env = dict(os.environ)
    kept = [p for p in preload.replace(":", " ").split() if "libclang_rt.asan" not in p]
    if kept:
        env["LD_PRELOAD"] = " ".join(kept)
    else:
        del env["LD_PRELOAD"]
    return env


def compile_cpu(mlir, out_so, attn_compile=None, flags=()):
    """Compiles MLIR text or a ``.mlir`` file to the CPU shared library ``out_so``; returns its
    path. ``flags``: more ``attn-compile`` options (e.g. ``("--no-fuse",)``), after those of
    ``$ATTN_COMPILE_FLAGS``."""
    return compile_library(mlir, out_so, "cpu", attn_compile, flags)


def compile_library(mlir, out_so, target, attn_compile=None, flags=()):
    """``compile_cpu`` for ``target`` ``"cpu"`` or ``"cuda"``."""
    tool = attn_compile or attn_compile_path()
    if not (os.path.isfile(tool) or shutil.which(tool)):
        raise FileNotFoundError(f"attn-compile not found at {tool} (set ATTN_COMPILE)")
    out_so = os.fspath(out_so)
    with tempfile.TemporaryDirectory() as tmp:
        if _is_path(mlir):
            src = os.fspath(mlir)
            if not os.path.isfile(src):
                raise FileNotFoundError(f"no MLIR file {src}")
        else:
            src = os.path.join(tmp, "input.mlir")
            with open(src, "w") as f:
                f.write(mlir)
        proc = subprocess.run(
            [tool, f"--target={target}", *extra_compile_flags(), *flags, src, "-o", out_so],
            capture_output=True,
            text=True,
            env=_compiler_environment(),
        )
    if proc.returncode != 0:
        raise CompileError(f"attn-compile failed (exit {proc.returncode}):\n{proc.stderr}")
    return out_so
