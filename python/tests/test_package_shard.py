"""The sharded MAX-level layers (``TensorParallelAttentionWithRope``,
``DataParallelAttentionWithRope``) compiled and called by two MPI ranks, each on its
``shard_arguments``, against the unsharded numpy reference."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cpu_exec_support import needs_attn_compile
from package_support import sharded_layer

from attn import ir, shard

MPIRUN = shutil.which("mpirun")
pytestmark = [needs_attn_compile,
              pytest.mark.skipif(MPIRUN is None, reason="mpirun (openmpi-bin) not installed")]
TOL = 1e-5  # relative to max |expected|: f32 partial sums added by MPI_Allreduce


@pytest.mark.parametrize("strategy", ["tensor", "data"])
def test_sharded_layer_on_two_ranks(strategy, tmp_path):
    layer = sharded_layer(strategy)
    rng = np.random.default_rng(31 if strategy == "tensor" else 32)
    inputs = ir.random_layer_inputs(rng, layer.config, [0, 12, 3], [9, 1, 6],
                                    runtime_layer=True)
    np.savez(tmp_path / "in.npz", **inputs)
    want_out, want_blocks = ir.reference_layer(layer.config, inputs)
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_btl="self,vader")
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shard_layer_worker.py")
    result = subprocess.run([MPIRUN, "-np", "2", "--oversubscribe", *root, sys.executable,
                             worker, strategy, str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"mpirun failed:\n{result.stdout}\n{result.stderr}"
    scale = np.max(np.abs(want_out))
    offsets = inputs["row_offsets"]
    for rank in range(2):
        with np.load(tmp_path / f"out-{rank}.npz") as data:
            out, blocks = data["out"], data["blocks"]
        if strategy == "tensor":  # every rank has the whole output, and its kv heads
            np.testing.assert_allclose(out, want_out, rtol=0, atol=TOL * scale)
            np.testing.assert_allclose(blocks, want_blocks[..., 2 * rank:2 * rank + 2, :],
                                       rtol=0, atol=TOL * np.max(np.abs(want_blocks)))
        else:  # each rank its sequences' rows
            begin, end = shard.data_parallel_sequences(3, rank, 2)
            rows = slice(int(offsets[begin]), int(offsets[end]))
            np.testing.assert_allclose(out, want_out[rows], rtol=0, atol=TOL * scale)
