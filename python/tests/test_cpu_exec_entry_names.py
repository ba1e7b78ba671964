"""Entry points named like C library functions (``step``, ``index``, ``log``, ``send``) are
called, not the library functions: ``attn-compile`` links with ``-Bsymbolic``, so an entry
point's C wrapper binds to the library's own function even though libc / libm, loaded before
it, define the same name (without it, calling ``step`` crashed in glibc's ``step()``). Each call
runs in a child process, so that such a crash fails its test only."""

import os
import subprocess
import sys

import pytest

from cpu_exec_support import Build, needs_attn_compile

from attn import ir  # noqa: E402

pytestmark = needs_attn_compile

NAMES = ("step", "index", "log", "send")
K, N = 64, 32

BUILD = Build("entry_names", lambda: ir.module_text(
    *(ir.linear_function(name, ir.LayerConfig(dtype="f32"), in_features=K, out_features=N)
      for name in NAMES)))

CHILD = """
import sys
import numpy as np
from attn import runtime as rt
lib = rt.CompiledLibrary(sys.argv[1])
rng = np.random.default_rng(7)
x = rng.uniform(0.5, 1.5, (3, {K})).astype(np.float32)
w = rng.uniform(-1.5, 1.5, ({N}, {K})).astype(np.float32)
y = np.full((3, {N}), np.nan, np.float32)
lib.call(sys.argv[2], [x, w], [y])
want = x.astype(np.float64) @ w.T.astype(np.float64)
print(float(np.max(np.abs(y - want)) / np.max(np.abs(want))))
""".format(K=K, N=N)


@pytest.mark.parametrize("name", NAMES)
def test_entry_named_like_libc(name):
    path = BUILD.library().path
    python_dir = os.path.join(os.path.dirname(__file__), "..")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [python_dir, os.environ.get("PYTHONPATH", "")]))
    child = subprocess.run([sys.executable, "-c", CHILD, path, name], env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, (
        f"calling {name} exited with {child.returncode}: {child.stderr[-2000:]}")
    # f32 sums of 64 products, rounded once: about 1e-7 of max|y|.
    assert float(child.stdout.split()[-1]) <= 1.5e-6
