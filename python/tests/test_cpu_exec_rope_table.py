"""Execution tests of the layer with its cos/sin table passed in (``attn.attention_with_rope ...
freqs(%table)``, ``ir.layer_function(freqs_arg=True)``): compiled for the CPU, the layer reads
RoPE's cos/sin from the table argument and equals the numpy reference (``ir.reference_layer``).

* ``test_layer_with_table``: the table of the layer's own rope (``ir.rope_table_input``) gives
  the reference's output and cache (tolerances of ``test_cpu_exec.py``), on a mixed ragged batch
  (prefill, decode and empty sequences, positions across pages) for scalings whose angles
  depend on the position (llama3, yarn's magnitude, LongRoPE's two factor lists on both sides of
  original_max_position), both pairings and every dtype.
* ``test_layer_reads_the_table``: the table of another rope (theta 777 instead of 10000) gives
  that rope's reference, not the attribute's: the layer reads the table, it does not recompute.
"""

import dataclasses

import numpy as np
import pytest

from cpu_exec_support import (
    CACHE_TOL,
    LAYER_TOL,
    Build,
    assert_close,
    check_cache,
    nan_filled,
    needs_attn_compile,
    values,
    written_slots,
)

from attn import ir  # noqa: E402  (cpu_exec_support puts python/ on sys.path)

pytestmark = needs_attn_compile

# Prefill, decode, no new tokens, page-crossing rows; positions up to 249 (LongRoPE switches at 130).
CACHED, NEW = [120, 5, 0, 200, 128], [20, 0, 40, 1, 3]


@dataclasses.dataclass
class TableCase:
    id: str
    cfg: ir.LayerConfig

    def __post_init__(self):
        self.build = Build(f"rope-table-{self.id}", lambda: ir.module_text(
            ir.layer_function("layer", self.cfg, freqs_arg=True)))

    def prebuild(self):
        self.build.prebuild()


def case(id, dtype, kind, interleaved, head_dim=64, **kw):
    theta = 500000.0 if kind == "llama3" else 10000.0
    rope = {"theta": theta, "interleaved": interleaved,
            "scaling": ir.example_scaling(kind, head_dim, orig=130, max_position=256)}
    cfg = ir.LayerConfig(hidden=2 * head_dim, head_dim=head_dim, dtype=dtype, max_seq_len=256,
                         rope=rope, **kw)
    return TableCase(id, cfg)


CASES = [
    case("f32-llama3-half", "f32", "llama3", False),
    case("bf16-longrope-inter-d96", "bf16", "longrope", True, head_dim=96, num_heads=6,
         num_kv_heads=3),
    case("f16-yarn-half-qknorm", "f16", "yarn", False, qk_norm=True),
    case("f32-none-inter-layer0", "f32", None, True, layer_idx=0),
]


def run_with_table(case, cfg, table):
    """The compiled layer on random inputs with ``table`` as its freqs; (inputs before the
    call, out, blocks after)."""
    rng = np.random.default_rng(sum(map(ord, case.id)))
    inputs = ir.random_layer_inputs(rng, cfg, CACHED, NEW)
    before = {name: array.copy() for name, array in inputs.items()}
    out = nan_filled((sum(NEW), cfg.hidden), cfg.dtype)
    case.build.library().call("layer", [*inputs.values(), table], [out])
    return before, out, inputs["blocks"]


def check_layer(case, cfg, before, out, blocks):
    """out and the written cache against the reference layer of ``cfg`` on ``before``."""
    want_out, want_blocks = ir.reference_layer(cfg, before)
    where = f"\n  config {case.id} ({cfg})\n  module {case.build.where()}"
    assert_close(values(out, cfg.dtype), want_out, LAYER_TOL[cfg.dtype], "out", where)
    mask, _, _ = written_slots(before["row_offsets"], before["cache_lengths"],
                               before["lookup_table"], blocks.shape[0], cfg.page_size,
                               cfg.num_layers, cfg.layer_idx)
    check_cache(blocks, before["blocks"], want_blocks, mask, cfg.dtype,
                tol=CACHE_TOL[cfg.dtype], where=where)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_with_table(case):
    table = ir.rope_table_input(case.cfg)
    check_layer(case, case.cfg, *run_with_table(case, case.cfg, table))


@pytest.mark.parametrize("case", CASES[-1:], ids=[CASES[-1].id])
def test_layer_reads_the_table(case):
    other = dataclasses.replace(case.cfg, rope=dict(case.cfg.rope, theta=777.0))
    before, out, blocks = run_with_table(case, case.cfg, ir.rope_table_input(other))
    check_layer(case, other, before, out, blocks)
