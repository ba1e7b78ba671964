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


# ---------------------------------------------------------------------------------------------
# Signatures: what each entry point takes (docs/ABI.md, "Signatures")


class SignatureError(TypeError):
    """The arguments of a call do not match the entry point's signature (nothing was called)."""


class ArgumentType:
    """One C argument of an entry point: a scalar passed by value (``i32``, ``index``) or a
    memref descriptor (``element`` type name, ``shape`` with None for a dynamic size)."""

    def __init__(self, text):
        self.text = text
        self.is_memref = text.startswith("memref<") and text.endswith(">")
        self.element, self.shape = text, None
        if self.is_memref:
            *dims, self.element = text[len("memref<"):-1].split("x")
            self.shape = tuple(None if d == "?" else int(d) for d in dims)

    def mismatch(self, value):
        """Why ``value`` (a numpy array or scalar, a memref descriptor, a ctypes scalar or a
        tensor with ``shape`` / ``element_size()``) cannot be this argument; None if it can."""
        if not self.is_memref:
            width = {"i32": 4, "index": 8}.get(self.element)
            got = _scalar_width(value)
            if got is None:
                return f"a scalar {self.element} is expected, got {_describe(value)}"
            if width is not None and got != width:
                return f"a scalar {self.element} is expected, got a {8 * got}-bit integer"
            return None
        shape = _shape(value)
        if shape is None:
            return f"a {self.text} is expected, got {_describe(value)}"
        if len(shape) != len(self.shape) or any(
                want is not None and want != got for want, got in zip(self.shape, shape)):
            return f"a {self.text} is expected, got shape {tuple(shape)}"
        dtype = getattr(value, "dtype", None)
        if isinstance(dtype, np.dtype) and self.element in NUMPY_DTYPES:
            if dtype != NUMPY_DTYPES[self.element]:
                return (f"a {self.text} is expected ({NUMPY_DTYPES[self.element]} buffer), "
                        f"got {dtype}")
        elif hasattr(value, "element_size") and self.element in NUMPY_DTYPES:
            if value.element_size() != NUMPY_DTYPES[self.element].itemsize:
                return f"a {self.text} is expected, got {dtype}"
        return None


def _scalar_width(value):
    if isinstance(value, (np.int32, ctypes.c_int32)):
        return 4
    if isinstance(value, (np.int64, ctypes.c_int64)):
        return 8
    return None


def _shape(value):
    if isinstance(value, ctypes.Structure) and hasattr(value, "sizes"):
        return tuple(value.sizes)
    if isinstance(value, (np.generic, ctypes._SimpleCData)) or not hasattr(value, "shape"):
        return None
    return tuple(value.shape)


def _describe(value):
    shape = _shape(value)
    if shape is not None:
        return f"an array of shape {shape}"
    return f"a scalar ({type(value).__name__})"


def parse_signatures(text):
    """``{name: [ArgumentType, ...]}`` of ``attnEntrySignatures()``'s text: a line per entry
    point, its name then its C arguments' types, separated by spaces."""
    signatures = {}
    for line in text.splitlines():
        if line:
            name, *types = line.split(" ")
            signatures[name] = [ArgumentType(t) for t in types]
    return signatures


def read_signatures(library):
    """The signatures exported by the ctypes ``library`` (``attnEntrySignatures``); None for a
    library without entry points."""
    try:
        fn = library.attnEntrySignatures
    except AttributeError:
        return None
    fn.restype = ctypes.c_char_p
    fn.argtypes = []
    return parse_signatures(fn().decode())


def check_arguments(signatures, name, values):
    """Raises SignatureError unless ``values`` (numpy arrays and scalars, descriptors, ctypes
    scalars or tensors) match entry point ``name`` of ``signatures`` (``read_signatures``):
    their count, scalars against descriptors, ranks, static sizes and element types."""
    if signatures is None or name not in signatures:
        return
    expected = signatures[name]
    if len(values) != len(expected):
        raise SignatureError(
            f"{name} takes {len(expected)} arguments ({' '.join(t.text for t in expected)}), "
            f"got {len(values)}")
    for i, (want, value) in enumerate(zip(expected, values)):
        why = want.mismatch(value)
        if why:
            raise SignatureError(f"{name}: argument {i}: {why}")


class CompiledLibrary:
    """A shared library built by ``attn-compile --target=cpu``."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.lib = ctypes.CDLL(os.path.abspath(self.path))
        self.signatures = read_signatures(self.lib)

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
        values = (*inputs, *outputs)
        check_arguments(self.signatures, name, values)
        self.call_prepared(name, [as_argument(a) for a in values], check=False)

    def call_prepared(self, name, args, check=True):
        """Calls ``_mlir_ciface_<name>`` with C arguments: ctypes ``c_int32`` / ``c_int64``
        scalars by value, descriptors by pointer. A non-zero status raises EntryError; arguments
        that do not match the signature (count, ranks, static sizes; element types where a
        descriptor's owner tells them) raise SignatureError before the call. ``check=False``
        leaves that out (about 1 us an argument) for callers that checked them already."""
        if check:
            check_arguments(self.signatures, name, [_owner_or(a) for a in args])
        fn = self.function(name)
        fn.argtypes = [type(a) if isinstance(a, _SCALAR_TYPES) else ctypes.c_void_p
                       for a in args]
        status = fn(*[a if isinstance(a, _SCALAR_TYPES) else ctypes.addressof(a) for a in args])
        check_status(self.lib, name, status)


def _owner_or(argument):
    """The array a descriptor was made of when it has the descriptor's shape (its element type
    is then checked too), else the argument itself."""
    owner = getattr(argument, "owner", None)
    if owner is not None and tuple(getattr(owner, "shape", ())) == tuple(argument.sizes):
        return owner
    return argument


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
