"""The MAX-level API on the CPU: a compiled layer over ``PagedKVCache`` steps against the numpy
reference, torch CPU tensors, and arguments that are wrong, each named in the error."""

import numpy as np
import pytest
import torch

from cpu_exec_support import LAYER_TOL, needs_attn_compile
from package_support import hf_config, write_checkpoint

import attn
from attn import ir
from attn import runtime as rt

pytestmark = needs_attn_compile


@pytest.fixture(scope="module")
def f32_layer():
    """(layer, compiled, weights of layer 1) of the tiny Llama-3.1 config, f32."""
    layer = attn.from_hf_config(hf_config("llama3.1"), page_size=4, max_seq_len=64)
    rng = np.random.default_rng(3)
    shapes = layer.config.weight_shapes()
    weights = {name: (rng.standard_normal(shapes[name]) / np.sqrt(shapes[name][-1])).astype(
        np.float32) for name in layer.weight_names()}
    return layer, layer.compile(target="cpu"), weights


def _reference_step(layer, cache, x, weights, layer_idx, to_numpy=np.asarray):
    inputs = {"layer_idx": np.int32(layer_idx), "x": to_numpy(x),
              **{name: to_numpy(value) for name, value in cache.arguments().items()},
              **{name: to_numpy(value) for name, value in weights.items()}}
    return ir.reference_layer(layer.config, inputs)


def test_paged_cache_prefill_then_two_decode_steps(f32_layer):
    layer, run, weights = f32_layer
    rng = np.random.default_rng(4)
    cache = attn.PagedKVCache(layer.kv_params, num_pages=12, max_seq_len=64)
    # Random non-zero slots: a read of a slot no step wrote would show.
    cache.blocks[...] = rng.uniform(0.5, 1.5, cache.blocks.shape).astype(np.float32)
    for step, new in enumerate(([7, 0, 3], [1, 1, 1], [1, 1, 1])):
        cache.step(new)
        offsets = np.concatenate([[0], np.cumsum(new)])
        np.testing.assert_array_equal(cache.row_offsets, offsets)
        np.testing.assert_array_equal(cache.cache_lengths, [[0, 0, 0], [7, 0, 3], [8, 1, 4]][step])
        x = rng.standard_normal((sum(new), layer.hidden_size)).astype(np.float32)
        want_out, want_blocks = _reference_step(layer, cache, x, weights, layer_idx=1)
        out = run(x, cache, weights, layer_idx=1)
        err = np.max(np.abs(out - want_out)) / np.max(np.abs(want_out))
        assert err <= LAYER_TOL["f32"], (step, err)
        np.testing.assert_allclose(cache.blocks, want_blocks, rtol=0, atol=3e-6)
        cache.advance()
    assert cache.lengths == [9, 2, 5]
    # Pages of 4 tokens: 3 + 1 + 2 pages, each sequence's own, none shared.
    pages = [p for seq in cache.pages for p in seq]
    assert [len(p) for p in cache.pages] == [3, 1, 2] and len(set(pages)) == 6
    assert (cache.lookup_table[1, 1:] == 12).all()  # unused entries hold P


def test_cache_errors(f32_layer):
    layer = f32_layer[0]
    cache = attn.PagedKVCache(layer.kv_params, num_pages=2, max_seq_len=64)
    with pytest.raises(attn.CacheError, match="no step"):
        cache.arguments()
    with pytest.raises(attn.CacheError, match="needs 3 more pages, 2 of 2 free"):
        cache.step([9])
    with pytest.raises(attn.CacheError, match="more than max_seq_len = 64"):
        cache.step([65])
    cache.step([8])
    with pytest.raises(attn.CacheError, match="before advance"):
        cache.step([1])
    cache.advance()
    cache.release(0)
    cache.step([8])  # the released pages serve again
    assert sorted(cache.pages[0]) == [0, 1]


WRONG_ARGUMENTS = {
    "dtype": ("x", "dtype float64, expected float32"),
    "contiguity": ("wq", "not C-contiguous"),
    "shape": ("wk", r"shape \[16, 64\], expected \[32, 64\] f32"),
    "type": ("wv", "a list, expected a numpy array or a torch tensor"),
    "missing": ("wo", "missing"),
    "unexpected": ("bq", "not an argument of the layer"),
    "layer_idx": ("layer_idx", "a float, expected an integer"),
    "torch_dtype": ("x", "dtype torch.float16, expected torch.float32"),
    "out_rows": ("out", "3 rows, x has 2"),
    "read_only_blocks": ("blocks", "read-only, and the function writes it"),
    "row_offsets": ("row_offsets", r"\[0, 3\] is not a split of the 2 rows of x"),
    "past_max_seq_len": ("cache_lengths", r"sequences reach \[65\] tokens, past max_seq_len = 64"),
    "lookup_table": ("lookup_table", r"1 pages per sequence, sequences need \[2\]"),
}


@pytest.mark.parametrize("case", WRONG_ARGUMENTS)
def test_wrong_arguments_are_named(f32_layer, case):
    layer, run, weights = f32_layer
    cache = attn.PagedKVCache(layer.kv_params, num_pages=4, max_seq_len=64)
    cache.step([2])
    arguments = {"layer_idx": 1, "x": np.ones((2, layer.hidden_size), np.float32),
                 **cache.arguments(), **weights}
    out = None
    if case == "dtype":
        arguments["x"] = arguments["x"].astype(np.float64)
    elif case == "contiguity":
        arguments["wq"] = np.asfortranarray(weights["wq"])
    elif case == "shape":
        arguments["wk"] = np.zeros((16, 64), np.float32)
    elif case == "type":
        arguments["wv"] = weights["wv"].tolist()
    elif case == "missing":
        del arguments["wo"]
    elif case == "unexpected":
        arguments["bq"] = np.zeros(64, np.float32)
    elif case == "layer_idx":
        arguments["layer_idx"] = 1.0
    elif case == "torch_dtype":
        arguments["x"] = torch.ones((2, layer.hidden_size), dtype=torch.float16)
    elif case == "out_rows":
        out = np.empty((3, layer.hidden_size), np.float32)
    elif case == "read_only_blocks":
        arguments["blocks"] = cache.blocks.copy()
        arguments["blocks"].flags.writeable = False
    elif case == "row_offsets":
        arguments["row_offsets"] = np.array([0, 3], np.int32)
    elif case == "past_max_seq_len":
        arguments["cache_lengths"] = np.array([63], np.int32)
    else:
        arguments["cache_lengths"] = np.array([3], np.int32)  # 5 tokens: 2 pages of 4
    before = cache.blocks.copy()
    name, message = WRONG_ARGUMENTS[case]
    with pytest.raises(attn.ArgumentError, match=f"^argument '{name}': {message}") as e:
        run.call(arguments, out)
    assert e.value.argument == name
    np.testing.assert_array_equal(cache.blocks, before)  # nothing ran


def test_layer_index_outside_the_cache_is_a_status(f32_layer):
    layer, run, weights = f32_layer
    cache = attn.PagedKVCache(layer.kv_params, num_pages=4, max_seq_len=64)
    cache.step([2])
    with pytest.raises(rt.EntryError, match="status 1"):
        run(np.ones((2, 64), np.float32), cache, weights, layer_idx=2)


def test_take_status_has_nothing_pending_on_the_cpu(f32_layer):
    """``take_status`` (a cuda call's device-found status) on the cpu: a refused call raised its
    status at once and wrote nothing, so no status is pending, before or after it; the next
    call runs."""
    layer, run, weights = f32_layer
    rng = np.random.default_rng(5)
    cache = attn.PagedKVCache(layer.kv_params, num_pages=4, max_seq_len=64)
    cache.blocks[...] = rng.uniform(0.5, 1.5, cache.blocks.shape).astype(np.float32)
    cache.step([2])
    x = rng.standard_normal((2, layer.hidden_size)).astype(np.float32)
    assert run.take_status() == 0
    arguments = {"layer_idx": 1, "x": x, **cache.arguments(), **weights}
    arguments["lookup_table"] = np.full_like(cache.lookup_table, 4)  # page id P
    before = cache.blocks.copy()
    with pytest.raises(rt.EntryError, match="status 6") as e:
        run.call(arguments)
    assert e.value.status == 6
    np.testing.assert_array_equal(cache.blocks, before)
    assert run.take_status() == 0
    want_out, want_blocks = _reference_step(layer, cache, x, weights, layer_idx=1)
    out = run(x, cache, weights, layer_idx=1)
    assert np.max(np.abs(out - want_out)) / np.max(np.abs(want_out)) <= LAYER_TOL["f32"]
    np.testing.assert_allclose(cache.blocks, want_blocks, rtol=0, atol=3e-6)
    assert run.take_status() == 0


def test_torch_cpu_tensors_bf16_qwen3(tmp_path):
    """A bf16 Qwen3 layer (qk-norm) on torch CPU tensors: weights from a BF16 checkpoint
    straight into torch.bfloat16, a torch cache, two steps against the reference."""
    config = hf_config("qwen3")
    write_checkpoint(tmp_path, config, np.random.default_rng(5), dtype="BF16")
    layer = attn.from_hf_config(tmp_path / "config.json", page_size=8, max_seq_len=64)
    assert layer.dtype == "bf16" and layer.config.qk_norm
    weights = attn.load_layer_weights(tmp_path, layer, layer_idx=1, device="cpu")
    assert all(w.dtype == torch.bfloat16 for w in weights.values())
    run = layer.compile(target="cpu")
    cache = attn.PagedKVCache(layer.kv_params, num_pages=6, max_seq_len=64, device="cpu")
    assert cache.blocks.dtype == torch.bfloat16

    def to_numpy(value):
        if value.dtype == torch.bfloat16:
            return value.view(torch.int16).numpy().view(np.uint16)
        return value.numpy()

    gen = torch.Generator().manual_seed(6)
    for new in ([6, 9], [1, 1]):
        cache.step(new)
        assert cache.lookup_table.dtype == torch.int32
        x = torch.randn((sum(new), layer.hidden_size), generator=gen).to(torch.bfloat16)
        want_out, want_blocks = _reference_step(layer, cache, x, weights, 1, to_numpy)
        blocks_pointer = cache.blocks.data_ptr()
        out = run(x, cache, weights, layer_idx=1)
        assert out.dtype == torch.bfloat16 and out.shape == (sum(new), layer.hidden_size)
        assert cache.blocks.data_ptr() == blocks_pointer  # updated in place, no copy
        got = rt.from_bf16_bits(to_numpy(out))
        err = np.max(np.abs(got - want_out)) / np.max(np.abs(want_out))
        assert err <= LAYER_TOL["bf16"], err
        cache.advance()
    written = rt.from_bf16_bits(to_numpy(cache.blocks))[:, :, 1]
    assert np.count_nonzero(written) > 0
