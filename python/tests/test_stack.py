"""A whole model on the CPU (``attn.stack``, ``examples/whole_model/run_stack.py``): one compiled
layer function taking the layer at run time, called for every layer of a stack sharing one paged
cache, through a prefill and decode steps, equals the numpy reference.

* ``tiny-bf16``: the example's ``tiny`` model (8 layers, hidden 256, GQA 4:1, head dim 64, page
  16, llama3 RoPE, bf16) on the example's run: prefill 2 x 512, then 16 decode steps.
* ``f32``: the same structure in f32 (4 layers, ragged prefill 37 + 20, 3 decode steps), where
  the tolerances are tight.

Checks: every layer of the prefill on the reference's input and cache: ``out`` within
``LAYER_TOL`` (relative to max |expected|), the slots it writes within ``CACHE_TOL`` (per
(slot, head) vector), nothing else in the cache changed; every step's last-layer output and the
whole cache at the end within ``END_TOL`` as ||error|| / ||reference|| (the stream is rounded
to the storage type after every layer: the elementwise worst is an ulp of the stream rounded
the other way), every slot no step writes unchanged.
"""

import dataclasses

import numpy as np
import pytest

from cpu_exec_support import CACHE_TOL, LAYER_TOL, Build, needs_attn_compile

from attn import ir, stack  # noqa: E402  (cpu_exec_support puts python/ on sys.path)

pytestmark = needs_attn_compile

# ||error|| / ||reference|| of a whole run, about twice the measured worst (3 seeds: bf16
# 3.4e-3, f32 3.2e-7; 32 bf16 layers reach 5.8e-3, examples/whole_model/README.md).
END_TOL = {"bf16": 7e-3, "f32": 7e-7}


@dataclasses.dataclass
class StackCase:
    id: str
    cfg: ir.LayerConfig
    prefill: tuple
    decode_steps: int

    def __post_init__(self):
        self.build = Build(f"stack-{self.id}", lambda: ir.module_text(
            stack.layer_function("layer", self.cfg)))

    def prebuild(self):
        self.build.prebuild()


CASES = [
    StackCase("tiny-bf16", stack.MODELS["tiny"], stack.PREFILL, stack.DECODE_STEPS),
    StackCase("f32", dataclasses.replace(stack.MODELS["tiny"], dtype="f32", num_layers=4),
              (37, 20), 3),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_stack(case):
    cfg = case.cfg
    steps = stack.schedule(case.prefill, case.decode_steps)
    rng = np.random.default_rng(7)
    weights = stack.random_weights(rng, cfg)
    blocks, lookup = stack.random_cache(rng, cfg, steps[-1][0] + steps[-1][1])
    compiled = stack.CompiledStack(case.build.library(), "layer", cfg, weights, blocks, lookup)
    result = stack.run(compiled, steps, rng)
    where = f"\n  config {case.id} ({cfg})\n  module {case.build.where()}"
    assert len(result["layers"]) == cfg.num_layers and len(result["steps"]) == len(steps)
    for layer, errors in enumerate(result["layers"]):
        assert errors["out"] <= LAYER_TOL[cfg.dtype], f"layer {layer}: {errors}{where}"
        assert errors["cache"] <= CACHE_TOL[cfg.dtype], f"layer {layer}: {errors}{where}"
        assert errors["stray"] == 0, f"layer {layer} wrote outside its slots{where}"
    worst = max(result["steps"] + [result["cache"]])
    assert worst <= END_TOL[cfg.dtype], f"whole run: {result}{where}"
    assert result["stray"] == 0, f"slots no step writes changed{where}"
