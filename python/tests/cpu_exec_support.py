"""Shared machinery of the CPU execution tests (``test_cpu_exec*.py``).

* ``needs_attn_compile``: skips a test, with the reason, when ``attn-compile`` is not built.
* ``Build``: one MLIR module compiled once per session by ``attn-compile --target=cpu``. Builds
  run on a thread pool (``ATTN_EXEC_JOBS`` workers, default the CPU count), and ``conftest.py``
  submits the builds of every collected test before the first one runs, so compiling overlaps
  with running. Set ``ATTN_EXEC_KEEP=1`` to keep the ``.mlir`` / ``.so`` files (their folder is
  printed in failure messages) to reproduce a failure by hand.
* Comparisons with the numpy reference and their tolerances (see the header of
  ``test_cpu_exec.py``).
"""

import atexit
import concurrent.futures
import os
import re
import shutil
import sys
import tempfile
import threading

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402
from attn import tools  # noqa: E402

# libomp's workers spin for 200 ms after each parallel region by default, which starves the
# background compiles and the reference on small machines; the test calls are tiny.
os.environ.setdefault("KMP_BLOCKTIME", "0")

try:
    ATTN_COMPILE, MISSING_ATTN_COMPILE = rt.attn_compile_path(), None
except tools.ToolNotFoundError as e:
    ATTN_COMPILE, MISSING_ATTN_COMPILE = None, str(e)
HAVE_ATTN_COMPILE = ATTN_COMPILE is not None
needs_attn_compile = pytest.mark.skipif(
    not HAVE_ATTN_COMPILE,
    reason=f"{MISSING_ATTN_COMPILE}; the CPU execution tests need attn-compile",
)

# Tolerances, relative to max |expected| (see test_cpu_exec.py), about twice the worst error
# measured on the whole suite (2026-12-03, 341 tests). A correctly rounded result is within half
# an ulp: 2^-8 = 3.9e-3 (bf16) and 2^-11 = 4.9e-4 (f16) of max |expected|.
# * OUT_TOL, one op (test_cpu_exec_ops.py: projections, rms_norm, rope, linear, attention), whose
#   output is an f32 computation rounded once to the storage type. Measured worst: f32 6.0e-7
#   (linear), bf16 3.6e-3, f16 4.5e-4: within the half ulp.
# * LAYER_TOL, a whole layer (test_cpu_exec.py, test_cpu_exec_fusion.py): q, k, v and the
#   attention output are rounded to the storage type between the steps (as the ABI's
#   intermediates are), the reference rounds only inputs, so the error is larger. Measured worst:
#   f32 1.3e-6, bf16 6.9e-3 (mask none, custom scale, mixed batch), f16 6.6e-4.
# f32 errors come from the order of the f32 sums and grow with their length; these tests reduce
# over at most a few hundred values.
OUT_TOL = {"f32": 1.5e-6, "bf16": 8e-3, "f16": 1e-3}
LAYER_TOL = {"f32": 3e-6, "bf16": 1.4e-2, "f16": 1.4e-3}
# KV-cache values, per written (slot, head) vector relative to its max |expected|: 2 ulps of
# the storage type (measured worst 1.45 ulp = 1.1e-2 for bf16: projection, qk-norm and RoPE each
# round to bf16 in the unfused primitive layer; 1 ulp = 9.7e-4 for f16; f32 1.1e-6).
CACHE_TOL = {"f32": 3e-6, "bf16": 2.0**-6 + 1e-6, "f16": 2.0**-9 + 1e-7}
DTYPES = ("f32", "bf16", "f16")


# ---------------------------------------------------------------------------------------------
# Compiling once per session


class _Builds:
    def __init__(self):
        self._lock = threading.Lock()
        self._futures = {}
        self._libraries = {}
        self._pool = None
        self.workdir = None

    def _start(self):
        jobs = int(os.environ.get("ATTN_EXEC_JOBS") or os.cpu_count() or 1)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
        self.workdir = tempfile.mkdtemp(prefix="attn-cpu-exec-")
        atexit.register(self._cleanup)

    def _cleanup(self):
        self._pool.shutdown(wait=True, cancel_futures=True)
        if not os.environ.get("ATTN_EXEC_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def submit(self, build):
        with self._lock:
            future = self._futures.get(build.key)
            if future is None:
                if self._pool is None:
                    self._start()
                future = self._pool.submit(self._compile, build)
                self._futures[build.key] = future
            return future

    def _compile(self, build):
        stem = os.path.join(self.workdir, re.sub(r"[^A-Za-z0-9_.-]", "_", build.key))
        with open(stem + ".mlir", "w") as f:
            f.write(build.text())
        return rt.compile_cpu(stem + ".mlir", stem + ".so", flags=build.flags)

    def library(self, build):
        so = self.submit(build).result()  # re-raises CompileError
        with self._lock:
            lib = self._libraries.get(build.key)
            if lib is None:
                lib = self._libraries[build.key] = rt.CompiledLibrary(so)
            return lib


BUILDS = _Builds()


class Build:
    """A module (``text()`` builds its MLIR text) compiled once per session under ``key``, with
    extra ``attn-compile`` ``flags``."""

    def __init__(self, key, text, flags=()):
        self.key = key
        self.text = text
        self.flags = tuple(flags)

    def prebuild(self):
        if HAVE_ATTN_COMPILE:
            BUILDS.submit(self)

    def library(self):
        return BUILDS.library(self)

    def where(self):
        """Where the module's files are, for failure messages."""
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", self.key)
        keep = "" if os.environ.get("ATTN_EXEC_KEEP") else " (set ATTN_EXEC_KEEP=1 to keep it)"
        return f"{os.path.join(BUILDS.workdir or '?', stem)}.mlir{keep}"


# ---------------------------------------------------------------------------------------------
# Arrays


def nonzero(rng, shape, low=0.5, high=1.5):
    """Random values in +-[low, high): never zero."""
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def nan_filled(shape, dtype):
    """An out-parameter prefilled with NaN: elements the callee does not write stay NaN."""
    if dtype == "bf16":
        return np.full(shape, 0x7FC0, dtype=np.uint16)
    return np.full(shape, np.nan, dtype=rt.numpy_dtype(dtype))


def values(array, dtype):
    """float64 values of an ABI array."""
    return np.asarray(rt.from_abi(array, dtype), dtype=np.float64)


def bits(array):
    """Raw bit patterns of an array (bit-for-bit comparisons, NaN included)."""
    array = np.ascontiguousarray(array)
    return array.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[array.itemsize])


def assert_close(got, want, tol, what, where=""):
    """``max|got - want| <= tol * max|want|`` and no NaN/inf in ``got`` (float64 arrays)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.size == 0:
        return
    bad = ~np.isfinite(got)
    assert not bad.any(), (
        f"{what}: {bad.sum()} non-finite values, first at {np.argwhere(bad)[0].tolist()}{where}"
    )
    scale = float(np.max(np.abs(want)))
    assert scale > 0, f"{what}: expected values are all zero (bad test input)"
    err = np.abs(got - want)
    rel = float(err.max()) / scale
    at = np.unravel_index(int(np.argmax(err)), err.shape)
    assert rel <= tol, (
        f"{what}: max error {rel:.3e} relative to max|expected| {scale:.3e} exceeds {tol:g}; "
        f"worst at {list(map(int, at))}: got {got[at]!r}, expected {want[at]!r}{where}"
    )


def q8_o_proj_slack(cfg, inputs):
    """Per element of out: what a GGUF o_proj on the int8 kernel may move when elements of its
    input ``o``, perturbed by up to ``LAYER_TOL * max|o|``, quantise to the neighbouring Q8_K /
    Q8_0 value (the block maximum moves by as much, so every scaled value moves by up to twice
    the reach), and, for Q8_0, what a block's f16 ``d`` moves when its maximum is within that
    reach of an f16 rounding boundary (one f16 step times every quant of the block)."""
    o, _ = ir.reference_layer(cfg, inputs, o_proj_input=True)
    wo = ir.reference_quantized_weight(cfg.quant_of("wo"), {"blocks": inputs["wo_blocks"]})
    if not wo.uses_q8(o.shape[0]):
        return np.zeros((o.shape[0], wo.shape[0]))
    _, d8 = wo.quantize_activations(o)
    blocks = o.reshape(o.shape[0], -1, wo.q8_block)
    amax = np.max(np.abs(blocks), axis=-1, keepdims=True)
    scaled = blocks * (127 / amax)
    reach = 2 * 127 * LAYER_TOL["f32"] * np.max(np.abs(o)) / amax
    near = np.abs(scaled - np.floor(scaled) - 0.5) <= reach
    step = near * d8[..., None]
    if wo.q8_block == ref.Q8_0_BLOCK:
        delta = LAYER_TOL["f32"] * np.max(np.abs(o))
        d_of = lambda m: (m / np.float32(127)).astype(np.float16).astype(np.float64)  # noqa: E731
        jump = d_of(amax + delta) - d_of(np.maximum(amax - delta, 0))
        step = step + jump * (np.abs(scaled) + 1)
    return step.reshape(o.shape) @ np.abs(wo.decode()).T


def written_slots(row_offsets, cache_lengths, lookup_table, num_pages, page_size, num_layers,
                  layer):
    """Boolean ``[P, 2, L, page]``: the cache slots a step with these new rows writes (doc step 4),
    and (page_ids, slots) of every new row."""
    pos = ref.positions(row_offsets, cache_lengths)
    owner = np.repeat(np.arange(len(cache_lengths)), np.diff(np.asarray(row_offsets)))
    page_ids = np.asarray(lookup_table, dtype=np.int64)[owner, pos // page_size]
    assert np.all((page_ids >= 0) & (page_ids < num_pages)), "test input: no page for a row"
    mask = np.zeros((num_pages, 2, num_layers, page_size), dtype=bool)
    mask[page_ids, :, layer, pos % page_size] = True
    return mask, page_ids, pos % page_size


def check_cache(after, before, want, mask, dtype, tol=None, where=""):
    """The cache after a call: every slot outside ``mask`` bit-for-bit as ``before``; slots in it
    equal ``want`` (reference values) within ``tol`` per (slot, head) vector, relative to the
    vector's max |expected| (``tol = 0``: bit-exact)."""
    assert after.shape == before.shape and after.dtype == before.dtype
    full = np.broadcast_to(mask[..., None, None], after.shape)
    changed = (bits(after) != bits(before)) & ~full
    assert not changed.any(), (
        f"cache: {changed.sum()} elements outside the written slots changed, first at "
        f"[P,2,L,page,Hkv,D] = {np.argwhere(changed)[0].tolist()}{where}"
    )
    got = values(after, dtype)[mask]  # [n, Hkv, D]
    exp = np.asarray(want, dtype=np.float64)[mask]
    if tol == 0:
        wrong = bits(rt.to_abi(exp, dtype)) != bits(after[mask])
        assert not wrong.any(), (
            f"cache: {wrong.sum()} written values differ from the expected ones{where}"
        )
        return
    tol = CACHE_TOL[dtype] if tol is None else tol
    assert np.all(np.isfinite(got)), f"cache: non-finite values written{where}"
    scale = np.max(np.abs(exp), axis=-1, keepdims=True)
    err = np.abs(got - exp) / np.where(scale > 0, scale, 1.0)
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    assert err.max() <= tol, (
        f"cache: written value error {err.max():.3e} (relative to its vector's max) exceeds "
        f"{tol:g}; worst [written slot #, Hkv, D] = {list(map(int, worst))}: got {got[worst]!r}, "
        f"expected {exp[worst]!r}{where}"
    )

def scaling(kind, head_dim, orig=48):
    """The execution tests' scaling of ``kind`` (``ir.example_scaling``)."""
    return ir.example_scaling(kind, head_dim, orig)
