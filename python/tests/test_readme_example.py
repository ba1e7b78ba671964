"""The README's Python example, run as written on a tiny checkpoint this test writes, checked
against the numpy reference."""

import os
import re

import numpy as np

from cpu_exec_support import LAYER_TOL, needs_attn_compile
from package_support import hf_config, write_checkpoint

from attn import ir

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def readme_example():
    """The code between the ``readme-example`` markers of README.md."""
    with open(README) as f:
        text = f.read()
    match = re.search(r"<!-- readme-example -->\n```python\n(.*?)```\n<!-- /readme-example -->",
                      text, re.S)
    assert match, "README.md has no readme-example block"
    return match.group(1)


@needs_attn_compile
def test_readme_example(tmp_path, monkeypatch):
    rng = np.random.default_rng(17)
    stored = write_checkpoint(tmp_path / "tiny", hf_config("llama3.1"), rng)
    monkeypatch.chdir(tmp_path)
    names = {}
    exec(compile(readme_example(), "README.md", "exec"), names)  # noqa: S102

    layer, weights, cache, out = names["layer"], names["weights"], names["cache"], names["out"]
    prefix = "model.layers.0.self_attn."
    for argument, hf_name in (("wq", "q_proj"), ("wk", "k_proj"), ("wv", "v_proj"),
                              ("wo", "o_proj")):
        np.testing.assert_array_equal(weights[argument], stored[prefix + hf_name + ".weight"])
    assert cache.lengths == [5, 3]
    # The reference from the cache before the step (zeros: the example's cache is new).
    inputs = {"layer_idx": np.int32(0), "x": names["x"], "row_offsets": cache.row_offsets,
              "blocks": np.zeros_like(cache.blocks), "cache_lengths": cache.cache_lengths,
              "lookup_table": cache.lookup_table, **weights}
    want_out, want_blocks = ir.reference_layer(layer.config, inputs)
    assert out.shape == (8, 64)
    err = np.max(np.abs(out - want_out)) / np.max(np.abs(want_out))
    assert err <= LAYER_TOL["f32"], err
    np.testing.assert_allclose(cache.blocks, want_blocks, rtol=0, atol=3e-6)
    assert np.count_nonzero(cache.blocks) == 8 * 2 * 2 * 16  # 8 tokens x K, V x 2 heads x D


def test_readme_example_is_the_documented_one():
    """The block is the 10-odd-line example the README promises."""
    code = readme_example()
    assert "attn.from_hf_config" in code and "attn.load_layer_weights" in code
    assert len([line for line in code.splitlines() if line.strip()]) <= 13
