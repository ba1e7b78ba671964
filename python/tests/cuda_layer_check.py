#!/usr/bin/env python3
"""The package's CUDA path on a GPU: torch CUDA tensors through compiled layers, no copies.

    python3 python/tests/cuda_layer_check.py --build OUTDIR   (here: attn-compile --target=cuda)
    python3 python/tests/cuda_layer_check.py OUTDIR           (GPU machine: load, run, check)

Each layer comes from ``from_hf_config`` (a Llama-3.1-like bf16 layer of head dim 128, a
Qwen3-like f16 one with qk-norm and head dim 64). On the GPU: random weights as CUDA tensors,
a ``PagedKVCache(device="cuda")``, a prefill of 37 + 5 tokens, two decode steps and a prefill
of 150 tokens, each output and the cache checked against ``ir.reference_layer`` (numpy, on
copies); three of the steps are first called with a bad index input, which must leave the cache
bit-identical and give its status through ``take_status``; a CPU tensor must raise
``ArgumentError`` naming it. Prints one line per step; exit status 1 on a failure.
Needs PyTorch with CUDA on the GPU machine (building needs neither).
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), HERE]

import attn  # noqa: E402
from attn import ir  # noqa: E402
from attn import runtime as rt  # noqa: E402

from package_support import hf_config  # noqa: E402

TOL = 2e-2  # bf16 / f16 layer, relative to max |expected| (examples/run_cpu_layer.py)
LAYERS = {
    "llama3": lambda: attn.from_hf_config(
        hf_config("llama3.1", hidden_size=1024, num_attention_heads=8, num_key_value_heads=2,
                  torch_dtype="bfloat16"), page_size=16, max_seq_len=256),
    "qwen3": lambda: attn.from_hf_config(
        hf_config("qwen3", hidden_size=512, num_attention_heads=8, num_key_value_heads=4,
                  head_dim=64, torch_dtype="float16"), page_size=16, max_seq_len=256),
}


def build(outdir):
    os.makedirs(outdir, exist_ok=True)
    for name, make in LAYERS.items():
        make().compile(target="cuda", output=os.path.join(outdir, f"{name}.so"))
        print(f"built {name}.so")


def to_numpy(tensor, dtype):
    """The ABI numpy array of a tensor's values (bf16: uint16 bits)."""
    import torch

    tensor = tensor.cpu()
    if dtype == "bf16":
        return tensor.view(torch.int16).numpy().view(np.uint16)
    return tensor.numpy()


def edited(tensor, index, value):
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


# The steps: new tokens per sequence, and a bad index input that the step is first called with
# (what, status, argument name, its bad value from the cache's): the device finds it, in the
# extra block of the q/k/v projection's launch: the GEMV for a decode step, the wgmma GEMM of
# 64 rows and of 1024 rows for the prefills.
STEPS = (
    ([37, 5], ("row offsets not ending at T", 3, "row_offsets", lambda t: edited(t, -1, 41))),
    ([1, 1], None),
    ([1, 1], ("page id = P", 6, "lookup_table", lambda t: edited(t, (1, 0), 16))),
    ([0, 150], ("negative cache length", 4, "cache_lengths", lambda t: edited(t, 1, -1))),
)


def check_refused(name, run, cache, x, weights, new, what, status, argument, bad_value):
    """A call on a bad index input returns at once; ``take_status`` then reports ``status``
    (once) and the cache is bit-identical."""
    import torch

    arguments = {"layer_idx": 1, "x": x, **cache.arguments(), **weights}
    arguments[argument] = bad_value(arguments[argument])
    before = cache.blocks.clone()
    run.call(arguments)
    taken, again = run.take_status(), run.take_status()
    passed = taken == status and again == 0 and bool(torch.equal(cache.blocks, before))
    print(f"{name} {new} {what}: take_status {taken} then {again}, cache "
          f"{'unchanged' if torch.equal(cache.blocks, before) else 'WRITTEN'} "
          f"{'ok' if passed else 'FAILED'}")
    return passed


def check(name, outdir):
    import torch

    layer = LAYERS[name]()
    run = layer.load(os.path.join(outdir, f"{name}.so"), target="cuda")
    dtype, torch_dtype = layer.dtype, {"bf16": torch.bfloat16, "f16": torch.float16}[layer.dtype]
    gen = torch.Generator(device="cuda").manual_seed(0)
    shapes = layer.config.weight_shapes()
    weights = {}
    for argument in layer.weight_names():
        shape = shapes[argument]
        scale = 1.0 if argument.endswith("norm") else shape[-1] ** -0.5
        values = torch.randn(shape, generator=gen, device="cuda") * scale
        weights[argument] = (values + 1.0 if argument.endswith("norm") else values).to(torch_dtype)
    cache = attn.PagedKVCache(layer.kv_params, num_pages=16, max_seq_len=256, device="cuda")
    ok = True
    for new, bad in STEPS:
        cache.step(new)
        x = torch.randn((sum(new), layer.hidden_size), generator=gen, device="cuda")
        x = x.to(torch_dtype)
        if bad:
            ok &= check_refused(name, run, cache, x, weights, new, *bad)
        inputs = {"layer_idx": np.int32(1), "x": to_numpy(x, dtype),
                  **{n: to_numpy(v, dtype if n == "blocks" else "i32")
                     for n, v in cache.arguments().items()},
                  **{n: to_numpy(v, dtype) for n, v in weights.items()}}
        want, want_blocks = ir.reference_layer(layer.config, inputs)
        out = run(x, cache, weights, layer_idx=1)
        torch.cuda.synchronize()
        out_err = float(np.max(np.abs(rt.from_abi(to_numpy(out, dtype), dtype) - want))
                        / np.max(np.abs(want)))
        blocks = rt.from_abi(to_numpy(cache.blocks, dtype), dtype)
        cache_err = float(np.max(np.abs(blocks - want_blocks)) / np.max(np.abs(want_blocks)))
        passed = out_err <= TOL and cache_err <= TOL
        ok &= passed
        print(f"{name} {new}: out {out_err:.2e}, cache {cache_err:.2e} "
              f"{'ok' if passed else 'FAILED'}")
        cache.advance()
    cache.step([1, 1])
    try:
        run(x[:2].cpu(), cache, weights, layer_idx=1)
        print(f"{name}: a CPU x was accepted: FAILED")
        ok = False
    except attn.ArgumentError as e:
        print(f"{name}: CPU x refused: {e}")
    return ok


def main(argv):
    if argv[:1] == ["--build"]:
        build(argv[1])
        return 0
    results = [check(name, argv[0]) for name in LAYERS]
    print("PASSED" if all(results) else "FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
