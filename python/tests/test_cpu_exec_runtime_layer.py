"""The cache layer as a run-time argument on the CPU path: one compiled function serves every
layer, and a layer index outside the cache is reported, not used.

``store_attend(layer: i32, q, k, v, row_offsets, blocks, cache_lengths, lookup_table) -> o``
stores k / v into layer ``layer`` of the cache and attends over it (the GQA decode / prefill mix
of a real step). For every layer of a 3-layer cache it must match ``attn.reference`` (the store
bit-exact, every other slot and layer bit-for-bit unchanged; o within ``OUT_TOL``). For a layer
of -1, 3 or 2^31 - 1 the call returns status 1 (``runtime.EntryError``), for row offsets or a
lookup table of the wrong batch size status 2: the cache stays bit-for-bit unchanged and the
NaN-prefilled output unwritten. Compiled with
``--no-runtime-checks`` the status is always 0 and the layer is clamped into the cache (no
out-of-bounds access; AddressSanitizer runs of this file check that too).
"""

import numpy as np
import pytest

from cpu_exec_support import (
    OUT_TOL,
    Build,
    assert_close,
    check_cache,
    nan_filled,
    needs_attn_compile,
    nonzero,
    values,
    written_slots,
)

from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402

pytestmark = needs_attn_compile

LAYERS, PAGE, HEADS, KV_HEADS, HEAD_DIM = 3, 16, 4, 2, 64
DTYPE = "bf16"


def module_text():
    q = ir.tensor_type([None, HEADS, HEAD_DIM], DTYPE)
    kv = ir.tensor_type([None, KV_HEADS, HEAD_DIM], DTYPE)
    blocks = ir.tensor_type([None, 2, LAYERS, PAGE, KV_HEADS, HEAD_DIM], DTYPE)
    index = "tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>"
    return f"""
func.func @store_attend(%layer: i32, %q: {q}, %k: {kv}, %v: {kv}, %row_offsets: tensor<?xi32>,
                        %blocks: {blocks}, %cache_lengths: tensor<?xi32>,
                        %lookup: tensor<?x?xi32>) -> ({q}, {blocks}) {{
  %b = attn.kv_cache_store %k, %v into %blocks layer(%layer : i32)
      positions(%row_offsets, %cache_lengths) pages(%lookup) : {kv}, {kv}, {index}, {blocks}
  %o = attn.paged_flash_attention %q, %b layer(%layer : i32)
      positions(%row_offsets, %cache_lengths) pages(%lookup) : {q}, {blocks}, {index}
  return %o, %b : {q}, {blocks}
}}
"""


CHECKED = Build("runtime-layer", module_text)
UNCHECKED = Build("runtime-layer-unchecked", module_text, flags=["--no-runtime-checks"])


def step(rng):
    """Random inputs of one step: a decode row, a prefill chunk and an empty sequence."""
    cached, new = [37, 0, 5], [1, 20, 0]
    cache = ref.random_paged_cache(rng, 12, LAYERS, PAGE, KV_HEADS, HEAD_DIM, cached, new,
                                   dtype=DTYPE)
    tokens = sum(new)
    inputs = {
        "q": rt.to_abi(nonzero(rng, (tokens, HEADS, HEAD_DIM)), DTYPE),
        "k": rt.to_abi(nonzero(rng, (tokens, KV_HEADS, HEAD_DIM)), DTYPE),
        "v": rt.to_abi(nonzero(rng, (tokens, KV_HEADS, HEAD_DIM)), DTYPE),
        "row_offsets": cache["row_offsets"].astype(np.int32),
        "blocks": rt.to_abi(cache["kv_blocks"], DTYPE),
        "cache_lengths": cache["cache_lengths"].astype(np.int32),
        "lookup": cache["lookup_table"].astype(np.int32),
    }
    return inputs


def call(build, layer, inputs):
    out = nan_filled(inputs["q"].shape, DTYPE)
    build.library().call("store_attend", [np.int32(layer), *inputs.values()], [out])
    return out


@pytest.mark.parametrize("layer", range(LAYERS))
def test_one_function_every_layer(layer):
    rng = np.random.default_rng(1900 + layer)
    inputs = step(rng)
    before = inputs["blocks"].copy()
    want_blocks = ref.kv_cache_store(
        values(before, DTYPE), values(inputs["k"], DTYPE), values(inputs["v"], DTYPE),
        inputs["row_offsets"], inputs["cache_lengths"], inputs["lookup"], layer)
    want_o = ref.flash_attention_paged(
        values(inputs["q"], DTYPE), want_blocks, inputs["cache_lengths"], inputs["lookup"],
        inputs["row_offsets"], layer)
    out = call(CHECKED, layer, inputs)
    mask, _, _ = written_slots(inputs["row_offsets"], inputs["cache_lengths"], inputs["lookup"],
                               before.shape[0], PAGE, LAYERS, layer)
    check_cache(inputs["blocks"], before, want_blocks, mask, DTYPE, tol=0, where=f" layer {layer}")
    assert_close(values(out, DTYPE), want_o, OUT_TOL[DTYPE], "attention", f" layer {layer}")


@pytest.mark.parametrize("layer", [-1, LAYERS, 2**31 - 1])
def test_layer_outside_the_cache_is_reported(layer):
    inputs = step(np.random.default_rng(1990))
    before = inputs["blocks"].copy()
    out = nan_filled(inputs["q"].shape, DTYPE)
    with pytest.raises(rt.EntryError, match="status 1: a run-time layer index is outside") as e:
        CHECKED.library().call("store_attend", [np.int32(layer), *inputs.values()], [out])
    assert e.value.status == 1
    np.testing.assert_array_equal(inputs["blocks"], before)
    assert np.isnan(values(out, DTYPE)).all()


@pytest.mark.parametrize("bad", ["offsets_short", "lookup_rows"])
def test_batch_mismatch_is_reported(bad):
    inputs = step(np.random.default_rng(1993))
    if bad == "offsets_short":  # B row offsets for B sequences: the last row end is missing
        inputs["row_offsets"] = inputs["row_offsets"][:-1].copy()
    else:  # a lookup row fewer than sequences
        inputs["lookup"] = inputs["lookup"][:-1].copy()
    before = inputs["blocks"].copy()
    out = nan_filled(inputs["q"].shape, DTYPE)
    with pytest.raises(rt.EntryError, match="status 2: row_offsets, cache_lengths and") as e:
        CHECKED.library().call("store_attend", [np.int32(1), *inputs.values()], [out])
    assert e.value.status == 2
    np.testing.assert_array_equal(inputs["blocks"], before)
    assert np.isnan(values(out, DTYPE)).all()


@pytest.mark.parametrize("layer", [-1, LAYERS])
def test_unchecked_layer_is_clamped(layer):
    inputs = step(np.random.default_rng(1995))
    before = inputs["blocks"].copy()
    out = call(UNCHECKED, layer, inputs)
    # The store skips a layer outside the cache; the attention reads the nearest layer as it is.
    np.testing.assert_array_equal(inputs["blocks"], before)
    want_o = ref.flash_attention_paged(
        values(inputs["q"], DTYPE), values(before, DTYPE), inputs["cache_lengths"],
        inputs["lookup"], inputs["row_offsets"], min(max(layer, 0), LAYERS - 1))
    assert_close(values(out, DTYPE), want_o, OUT_TOL[DTYPE], "attention", f" layer {layer}")
