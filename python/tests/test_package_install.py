"""The package installed (``pip install --no-build-isolation --target``, and ``cmake --install``)
and imported from there, without the source tree on sys.path: it finds attn-compile through
each step of ``attn.tools``' search order, compiles a layer and runs it."""

import os
import subprocess
import sys

import pytest

from cpu_exec_support import needs_attn_compile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import tools  # noqa: E402

pytestmark = needs_attn_compile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Run by the installed package: one decode-free step of a tiny layer against the reference.
SCRIPT = """
import sys
import numpy as np
import attn
from attn import ir
assert attn.__file__.startswith(sys.argv[1]), attn.__file__
assert not any(p.startswith(sys.argv[2]) for p in sys.path if p), sys.path
print("tool", attn.tools.find_tool("attn-compile"))
if sys.argv[3] == "run":
    config = {"model_type": "llama", "hidden_size": 32, "num_attention_heads": 2,
              "num_hidden_layers": 1, "max_position_embeddings": 64}
    layer = attn.from_hf_config(config, page_size=8)
    rng = np.random.default_rng(0)
    shapes = layer.config.weight_shapes()
    weights = {n: rng.standard_normal(shapes[n], np.float32) / 8 for n in layer.weight_names()}
    cache = attn.PagedKVCache(layer.kv_params, num_pages=4, max_seq_len=64)
    cache.step([3, 2])
    x = rng.standard_normal((5, 32), np.float32)
    want, _ = ir.reference_layer(layer.config, {"layer_idx": np.int32(0), "x": x,
                                                **cache.arguments(), **weights})
    out = layer.compile()(x, cache, weights)
    print("error", float(np.max(np.abs(out - want)) / np.max(np.abs(want))))
"""


@pytest.fixture(scope="module")
def build_tree():
    """The build tree holding this session's attn-compile (``<build>/bin/attn-compile``)."""
    return os.path.dirname(os.path.dirname(tools.find_tool("attn-compile")))


@pytest.fixture(scope="module")
def pip_target(tmp_path_factory):
    target = tmp_path_factory.mktemp("pip-target")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                           "--no-deps", "--no-index", "--target", str(target), REPO],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "attn" / "layers.py").is_file()
    return target


def run_installed(package_root, env_extra, mode, cwd):
    """Runs SCRIPT with only ``package_root`` on PYTHONPATH and no tool variables but
    ``env_extra``; returns (returncode, stdout + stderr)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATTN_COMPILE", "ATTN_OPT", tools.PREFIX_ENV, "PYTHONPATH")}
    env.update({"PYTHONPATH": str(package_root), "PATH": "/usr/bin:/bin", **env_extra})
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(package_root), REPO, mode],
                          capture_output=True, text=True, env=env, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


def _result(output):
    fields = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
    return fields.get("tool"), float(fields.get("error", "nan"))


def test_pip_target_with_prefix(pip_target, build_tree, tmp_path):
    rc, output = run_installed(pip_target, {tools.PREFIX_ENV: build_tree}, "run", tmp_path)
    assert rc == 0, output
    tool, error = _result(output)
    assert tool == os.path.join(build_tree, "bin", "attn-compile")
    assert error <= 3e-6, output


def test_pip_target_from_path(pip_target, build_tree, tmp_path):
    bin_dir = os.path.join(build_tree, "bin")
    rc, output = run_installed(pip_target, {"PATH": f"{bin_dir}:/usr/bin:/bin"}, "find",
                               tmp_path)
    assert rc == 0, output
    assert _result(output)[0] == os.path.join(bin_dir, "attn-compile")


def test_pip_target_without_tools_says_where_it_looked(pip_target, tmp_path):
    rc, output = run_installed(pip_target, {tools.PREFIX_ENV: str(tmp_path)}, "find", tmp_path)
    assert rc != 0
    assert "ToolNotFoundError: attn-compile not found" in output
    assert f"$ATTN_MLIR_PREFIX/bin: {tmp_path}/bin/attn-compile" in output
    assert "set ATTN_COMPILE to the tool or ATTN_MLIR_PREFIX" in output


def test_cmake_install_prefix(build_tree, tmp_path):
    prefix = tmp_path / "prefix"
    proc = subprocess.run(["cmake", "--install", build_tree, "--prefix", str(prefix),
                           "--component", "attn-python"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The tools' install rules are their own; here the tool stands in at <prefix>/bin.
    (prefix / "bin").mkdir()
    os.symlink(os.path.join(build_tree, "bin", "attn-compile"), prefix / "bin" / "attn-compile")
    rc, output = run_installed(prefix / "python", {}, "run", tmp_path)
    assert rc == 0, output
    tool, error = _result(output)
    assert tool == str(prefix / "bin" / "attn-compile")
    assert error <= 3e-6, output
