"""``compile(target="cuda")`` through the package on this machine (no GPU: building only): the
library and the CUDA runtime beside it, its entry point, and CPU arguments refused by name
before the library is loaded. ``cuda_layer_check.py`` runs such a library on a GPU."""

import os
import subprocess

import numpy as np
import pytest

from cpu_exec_support import needs_attn_compile
from package_support import hf_config

import attn

PTXAS = "/usr/local/cuda/bin/ptxas"  # as test/lit.cfg.py finds it
pytestmark = [needs_attn_compile,
              pytest.mark.skipif(not os.path.exists(PTXAS), reason=f"no {PTXAS}")]


def test_cuda_library_builds(tmp_path):
    layer = attn.from_hf_config(hf_config("qwen3"), page_size=16, max_seq_len=128)
    compiled = layer.compile(target="cuda", output=tmp_path / "layer.so")
    files = sorted(os.listdir(tmp_path))
    assert "layer.so" in files and any("cuda" in f.lower() and "runtime" in f.lower()
                                       for f in files if f != "layer.so"), files
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(tmp_path / "layer.so")],
                             capture_output=True, text=True, check=True).stdout
    assert "_mlir_ciface_attention_with_rope" in symbols
    cache = attn.PagedKVCache(layer.kv_params, num_pages=2, max_seq_len=128)
    cache.step([1])
    weights = {name: np.zeros(shape, np.uint16) for name, shape in
               layer.config.weight_shapes().items() if name in layer.weight_names()}
    with pytest.raises(attn.ArgumentError, match="^argument 'x': on cpu, expected a tensor on "
                                                 "cuda:0"):
        compiled(np.zeros((1, 64), np.uint16), cache, weights)
    assert "library" not in vars(compiled)  # nothing loaded: there is no GPU here
