"""Execution tests of the fusion passes on the CPU: the same layer compiled with the fusion passes
(the default pipeline) and without them (``attn-compile --no-fuse``) both equal the numpy
reference, on prefill, decode and mixed batches.

Two forms of the layer:

* ``composite``: ``attn.attention_with_rope`` (``ir.layer_function``); after the expansion the
  fused pipeline runs ``attn.rope_store`` (with the qk norm folded in when the layer has one).
* ``primitive``: the layer as a framework exports it (``ir.primitive_layer_function``): three
  ``attn.linear`` + ``tensor.expand_shape``, bias as ``linalg.broadcast`` + ``linalg.add``, clip as
  a ``linalg.generic`` clamp of the weights, separate norm / rope / store ops. Fused, every pass fires:
  epilogues -> linear bias and clip, three linears -> ``attn.qkv_projection``, rope + store ->
  ``attn.rope_store``, qk norm folded in (checked on the IR with ``attn-opt``).
* ``matmul``: the same with the projections as ``linalg.matmul`` (``x @ W^T``, zero-filled init),
  which ``attn-fuse-qkv`` also takes (unfused only in f32: the bf16 matmul would accumulate in
  bf16).

Tolerances are those of ``test_cpu_exec.py`` (out relative to max|expected|; cache per written
(slot, head) vector, 2 ulps of the storage type; untouched slots bit-for-bit). The unfused
primitive form rounds the projection to the storage type before adding the bias (the reference
adds it in f32), which stays within them.
"""

import dataclasses
import os
import subprocess
import zlib

import numpy as np
import pytest

from cpu_exec_support import (
    ATTN_COMPILE,
    LAYER_TOL,
    Build,
    assert_close,
    bits,
    check_cache,
    nan_filled,
    needs_attn_compile,
    values,
    written_slots,
)

from attn import ir  # noqa: E402

pytestmark = needs_attn_compile

ATTN_OPT = os.environ.get("ATTN_OPT") or os.path.join(os.path.dirname(ATTN_COMPILE), "attn-opt")

SCENARIOS = {
    16: {
        "prefill": ([0, 0, 0], [37, 1, 19]),
        "decode": ([100, 37, 15, 0, 48], [1, 1, 1, 1, 1]),
        "mixed": ([40, 5, 0, 33, 16, 0], [13, 0, 40, 1, 16, 0]),
    },
    128: {
        "prefill": ([0, 0], [150, 33]),
        "decode": ([300, 129, 127, 0], [1, 1, 1, 1]),
        "mixed": ([120, 5, 0, 250, 128], [20, 0, 40, 1, 3]),
    },
}
MAX_SEQ_LEN = {16: 256, 128: 512}


def rope(interleaved=False, theta=10000.0, scaling=None):
    return {"theta": theta, "interleaved": interleaved, "scaling": scaling}


LLAMA3 = {"kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position": 8192}


def config(dtype="f32", heads=(4, 2), head_dim=64, hidden=128, page=16, **kw):
    kw.setdefault("rope", rope())
    return ir.LayerConfig(hidden=hidden, num_heads=heads[0], num_kv_heads=heads[1],
                          head_dim=head_dim, dtype=dtype, page_size=page,
                          max_seq_len=MAX_SEQ_LEN[page], **kw)


CONFIGS = {
    "f32-gqa2": config(),
    "bf16-qknorm-gqa4-d128-p128": config("bf16", heads=(8, 2), head_dim=128, hidden=256, page=128,
                                         qk_norm=True, rms_norm_eps=1e-5),
    "f32-inter-bias-clip-mha": config(heads=(4, 4), rope=rope(True), bias=True, clip=0.1,
                                      num_layers=3, layer_idx=2),
    "bf16-llama3-inter-qknorm-bias": config("bf16", rope=rope(True, 500000.0, LLAMA3),
                                            qk_norm=True, bias=True),
    "f16-mqa-d96-bias": config("f16", heads=(4, 1), head_dim=96, hidden=192, bias=True),
    "bf16-clip-gqa3": config("bf16", heads=(6, 2), clip=0.08, layer_idx=0),
}
FORMS = {
    "composite": ["f32-gqa2", "bf16-qknorm-gqa4-d128-p128", "f16-mqa-d96-bias"],
    "primitive": ["f32-gqa2", "bf16-qknorm-gqa4-d128-p128", "f32-inter-bias-clip-mha",
                  "bf16-llama3-inter-qknorm-bias", "bf16-clip-gqa3"],
    # Projections as linalg.matmul; unfused they accumulate in the storage type, so the
    # unfused run is f32 only (see UNFUSED_SKIP).
    "matmul": ["f32-inter-bias-clip-mha", "bf16-qknorm-gqa4-d128-p128"],
}
# (form, config) compiled fused only.
UNFUSED_SKIP = {("matmul", "bf16-qknorm-gqa4-d128-p128")}


def module_text(form, cfg):
    if form == "composite":
        return ir.module_text(ir.layer_function("layer", cfg))
    projections = "matmul" if form == "matmul" else "linear"
    return ir.module_text(ir.primitive_layer_function("layer", cfg, projections=projections))


@dataclasses.dataclass
class FusionCase:
    form: str
    config: str
    fuse: bool

    def __post_init__(self):
        self.cfg = CONFIGS[self.config]
        self.id = f"{self.form}-{self.config}-{'fused' if self.fuse else 'unfused'}"
        self.build = Build(f"fusion-{self.id}", lambda: module_text(self.form, self.cfg),
                           () if self.fuse else ("--no-fuse",))

    def prebuild(self):
        self.build.prebuild()


CASES = [FusionCase(form, c, fuse) for form, configs in FORMS.items() for c in configs
         for fuse in (True, False) if fuse or (form, c) not in UNFUSED_SKIP]
RUNS = [(c, s) for c in CASES for s in ("prefill", "decode", "mixed")]


@pytest.mark.parametrize("case,scenario", RUNS, ids=[f"{c.id}-{s}" for c, s in RUNS])
def test_fused_and_unfused_layer(case, scenario):
    cfg = case.cfg
    cached, new = SCENARIOS[cfg.page_size][scenario]
    seed = zlib.crc32(f"fusion/{case.form}/{case.config}/{scenario}".encode())
    inputs = ir.random_layer_inputs(np.random.default_rng(seed), cfg, cached, new)
    want_out, want_blocks = ir.reference_layer(cfg, inputs)
    before = {name: array.copy() for name, array in inputs.items()}
    out = nan_filled((sum(new), cfg.hidden), cfg.dtype)
    case.build.library().call("layer", list(inputs.values()), [out])
    where = (f"\n  {case.id} ({cfg}), scenario {scenario}: cache lengths {cached}, new tokens "
             f"{new}, seed {seed}\n  module {case.build.where()}")
    assert_close(values(out, cfg.dtype), want_out, LAYER_TOL[cfg.dtype], "out", where)
    mask, _, _ = written_slots(inputs["row_offsets"], inputs["cache_lengths"],
                               inputs["lookup_table"], inputs["blocks"].shape[0], cfg.page_size,
                               cfg.num_layers, cfg.layer_idx)
    check_cache(inputs["blocks"], before["blocks"], want_blocks, mask, cfg.dtype, where=where)
    for name, array in inputs.items():
        if name != "blocks":
            assert np.array_equal(bits(array), bits(before[name])), f"argument {name} changed"


FUSION = ("--attn-expand-composite", "--attn-fuse-projection-epilogues", "--attn-fuse-qkv",
          "--attn-fuse-rope-store", "--attn-fuse-qk-norm-rope")


@pytest.mark.skipif(not os.path.isfile(ATTN_OPT), reason=f"attn-opt not built at {ATTN_OPT}")
@pytest.mark.parametrize("form,config", [(f, c) for f, cs in FORMS.items() for c in cs],
                         ids=[f"{f}-{c}" for f, cs in FORMS.items() for c in cs])
def test_fusion_fires(form, config):
    """The fused builds above really run fused ops: after the passes nothing of the unfused
    forms is left."""
    cfg = CONFIGS[config]
    proc = subprocess.run([ATTN_OPT, "-", *FUSION, "--canonicalize"], input=module_text(form, cfg),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "attn.rope_store" in text
    for gone in ("attn.kv_cache_store", "attn.rope %", "attn.rms_norm", "linalg.add",
                 "linalg.generic"):
        assert gone not in text, f"{gone} left after fusion:\n{text}"
    assert ("qk_norm(" in text) == cfg.qk_norm
    if form in ("primitive", "matmul"):
        assert "attn.qkv_projection" in text
        assert "linalg.matmul" not in text
        assert text.count("attn.linear") == 1  # o_proj only
        assert ("clip" in text) == (cfg.clip is not None)
