"""The run-time input checks of the CPU entry points (docs/ABI.md, "Status").

``rope_store_attend(q, k, v, row_offsets, blocks, cache_lengths, lookup) -> (o, blocks)`` rotates q and k
with a 64-position RoPE table, stores k / v into the paged cache and attends over it, for a
decode row, a prefill chunk and a sequence without new tokens. ``attend(q, k, v, q_offsets,
kv_offsets) -> o`` is attention over explicit keys. Every bad index input must return its
status with the library's message (``attnStatusMessage``), leave the cache bit-for-bit
unchanged and the NaN-prefilled output unwritten; good inputs, including page ids of P or
garbage in lookup-table entries the call does not touch, must give the same bits as a library
built with ``--no-runtime-checks``.
"""

import numpy as np
import pytest

from cpu_exec_support import Build, nan_filled, needs_attn_compile, nonzero, values

from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402

pytestmark = needs_attn_compile

LAYERS, PAGE, HEADS, KV_HEADS, HEAD_DIM, PAGES, ROPE_ROWS = 2, 16, 4, 2, 64, 12, 64
DTYPE = "bf16"
CACHED, NEW = [37, 0, 5], [1, 20, 0]


def module_text():
    q = ir.tensor_type([None, HEADS, HEAD_DIM], DTYPE)
    kv = ir.tensor_type([None, KV_HEADS, HEAD_DIM], DTYPE)
    blocks = ir.tensor_type([None, 2, LAYERS, PAGE, KV_HEADS, HEAD_DIM], DTYPE)
    freqs = f"tensor<{ROPE_ROWS}x{HEAD_DIM}xf32>"
    index = "tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>"
    positions = "positions(%row_offsets, %cache_lengths)"
    return f"""
func.func @rope_store_attend(%q: {q}, %k: {kv}, %v: {kv}, %row_offsets: tensor<?xi32>, %blocks: {blocks},
                %cache_lengths: tensor<?xi32>, %lookup: tensor<?x?xi32>) -> ({q}, {blocks}) {{
  %freqs = attn.rope_freqs #attn.rope<theta = 10000.0> -> {freqs}
  %qr = attn.rope %q, %freqs {positions} : {q}, {freqs}, tensor<?xi32>, tensor<?xi32>
  %kr = attn.rope %k, %freqs {positions} : {kv}, {freqs}, tensor<?xi32>, tensor<?xi32>
  %b = attn.kv_cache_store %kr, %v into %blocks layer 1 {positions} pages(%lookup)
      : {kv}, {kv}, {index}, {blocks}
  %o = attn.paged_flash_attention %qr, %b layer 1 {positions} pages(%lookup)
      : {q}, {blocks}, {index}
  return %o, %b : {q}, {blocks}
}}

func.func @attend(%q: {q}, %k: {kv}, %v: {kv}, %q_offsets: tensor<?xi32>,
                  %kv_offsets: tensor<?xi32>) -> {q} {{
  %o = attn.flash_attention %q, %k, %v rows(%q_offsets, %kv_offsets)
      : {q}, {kv}, {kv}, tensor<?xi32>, tensor<?xi32>
  return %o : {q}
}}
"""


CHECKED = Build("input-checks", module_text)
UNCHECKED = Build("input-checks-unchecked", module_text, flags=["--no-runtime-checks"])


def step_inputs(rng):
    cache = ref.random_paged_cache(rng, PAGES, LAYERS, PAGE, KV_HEADS, HEAD_DIM, CACHED, NEW,
                                   dtype=DTYPE)
    tokens = sum(NEW)
    return {
        "q": rt.to_abi(nonzero(rng, (tokens, HEADS, HEAD_DIM)), DTYPE),
        "k": rt.to_abi(nonzero(rng, (tokens, KV_HEADS, HEAD_DIM)), DTYPE),
        "v": rt.to_abi(nonzero(rng, (tokens, KV_HEADS, HEAD_DIM)), DTYPE),
        "row_offsets": cache["row_offsets"].astype(np.int32),
        "blocks": rt.to_abi(cache["kv_blocks"], DTYPE),
        "cache_lengths": cache["cache_lengths"].astype(np.int32),
        "lookup": cache["lookup_table"].astype(np.int32),
    }


def widened(lookup, columns):
    """``lookup`` with extra columns of valid page ids (no call touches them)."""
    extra = np.zeros((lookup.shape[0], columns), np.int32)
    return np.ascontiguousarray(np.concatenate([lookup, extra], axis=1))


def run_step(build, inputs):
    out = nan_filled(inputs["q"].shape, DTYPE)
    build.library().call("rope_store_attend", list(inputs.values()), [out])
    return out


def test_good_inputs_run_as_unchecked():
    """Untouched lookup entries hold P (random_paged_cache) or garbage: accepted."""
    inputs = step_inputs(np.random.default_rng(1800))
    inputs["lookup"] = widened(inputs["lookup"], 2)
    inputs["lookup"][1, -1] = -7  # past the pages of sequence 1
    inputs["lookup"][2, :] = 10**6  # sequence 2 has no new tokens: nothing touched
    unchecked = {name: array.copy() for name, array in inputs.items()}
    out = run_step(CHECKED, inputs)
    want_out = run_step(UNCHECKED, unchecked)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(inputs["blocks"], unchecked["blocks"])
    assert not np.array_equal(inputs["blocks"], step_inputs(np.random.default_rng(1800))["blocks"])


def last_row_offset(inputs, delta):
    inputs["row_offsets"][-1] += delta


def set_entry(name, index, value):
    def change(inputs):
        inputs[name][index] = value
    return change


def narrow_lookup(inputs):
    inputs["lookup"] = np.ascontiguousarray(inputs["lookup"][:, :2])  # sequence 0 needs 3 pages


def past_rope_table(inputs):
    # Sequence 0 at positions [64, 65): inside the lookup table, past the RoPE table.
    inputs["cache_lengths"][0] = ROPE_ROWS
    inputs["lookup"] = widened(inputs["lookup"], 3)


def at_rope_table_end(inputs):
    inputs["cache_lengths"][0] = ROPE_ROWS - 1
    inputs["lookup"] = widened(inputs["lookup"], 3)


BAD_STEP_INPUTS = {
    # name: (change, status, message)
    "offsets_start_at_1": (set_entry("row_offsets", 0, 1), 3, "row_offsets must start at 0"),
    "offsets_decrease": (set_entry("row_offsets", 1, 25), 3, "never decrease"),
    "offsets_end_before_rows": (lambda i: last_row_offset(i, -1), 3, "end at the number of rows"),
    "offsets_end_after_rows": (lambda i: last_row_offset(i, 1), 3, "end at the number of rows"),
    "offsets_negative": (set_entry("row_offsets", 1, -5), 3, "never decrease"),
    "negative_cache_length": (set_entry("cache_lengths", 2, -1), 4, "cache length is negative"),
    "narrow_lookup": (narrow_lookup, 5, "more pages .* than the lookup table has columns"),
    "page_id_P": (set_entry("lookup", (0, 2), PAGES), 6, "page id the call touches"),
    "page_id_negative": (set_entry("lookup", (1, 0), -1), 6, "page id the call touches"),
    "page_id_huge": (set_entry("lookup", (0, 0), 2**31 - 1), 6, "page id the call touches"),
    "position_past_rope_table": (past_rope_table, 7, "beyond the RoPE table"),
}


@pytest.mark.parametrize("bad", sorted(BAD_STEP_INPUTS))
def test_bad_step_input_is_reported(bad):
    change, status, message = BAD_STEP_INPUTS[bad]
    inputs = step_inputs(np.random.default_rng(1801))
    change(inputs)
    before = inputs["blocks"].copy()
    out = nan_filled(inputs["q"].shape, DTYPE)
    with pytest.raises(rt.EntryError, match=f"status {status}: .*{message}") as e:
        CHECKED.library().call("rope_store_attend", list(inputs.values()), [out])
    assert e.value.status == status
    np.testing.assert_array_equal(inputs["blocks"], before)
    assert np.isnan(values(out, DTYPE)).all()


def test_last_rope_position_is_accepted():
    inputs = step_inputs(np.random.default_rng(1802))
    at_rope_table_end(inputs)
    before = inputs["blocks"].copy()
    run_step(CHECKED, inputs)
    assert not np.array_equal(inputs["blocks"], before)


def test_status_messages():
    lib = CHECKED.library().lib
    assert rt.status_message(lib, 0) == "success"
    assert rt.status_message(lib, 6).startswith("a page id the call touches")
    assert rt.status_message(lib, 1000) == "unknown status"


def attend_inputs(rng):
    q_lens, kv_lens = [3, 1], [5, 4]
    return {
        "q": rt.to_abi(nonzero(rng, (sum(q_lens), HEADS, HEAD_DIM)), DTYPE),
        "k": rt.to_abi(nonzero(rng, (sum(kv_lens), KV_HEADS, HEAD_DIM)), DTYPE),
        "v": rt.to_abi(nonzero(rng, (sum(kv_lens), KV_HEADS, HEAD_DIM)), DTYPE),
        "q_offsets": np.array([0, 3, 4], np.int32),
        "kv_offsets": np.array([0, 5, 9], np.int32),
    }


@pytest.mark.parametrize("bad,status", [("kv_end", 3), ("q_start", 3), ("batch", 2)])
def test_bad_attend_input_is_reported(bad, status):
    inputs = attend_inputs(np.random.default_rng(1803))
    if bad == "kv_end":
        inputs["kv_offsets"][-1] = 10
    elif bad == "q_start":
        inputs["q_offsets"][0] = -1
    else:
        inputs["kv_offsets"] = np.array([0, 9], np.int32)
    out = nan_filled(inputs["q"].shape, DTYPE)
    with pytest.raises(rt.EntryError) as e:
        CHECKED.library().call("attend", list(inputs.values()), [out])
    assert e.value.status == status
    assert np.isnan(values(out, DTYPE)).all()


def test_good_attend_input_runs():
    inputs = attend_inputs(np.random.default_rng(1804))
    out = nan_filled(inputs["q"].shape, DTYPE)
    CHECKED.library().call("attend", list(inputs.values()), [out])
    assert np.isfinite(values(out, DTYPE)).all()
