#!/usr/bin/env python3
"""Sharded layers on one GPU: the NCCL path with a communicator of one rank (docs/Sharding.md).

    python3 test/gpu/run_sharded_device_test.py --build OUTDIR [build dir]   (here: compile)
    python3 test/gpu/run_sharded_device_test.py OUTDIR                       (GPU machine: run)

Compiles the Llama-like test layer (bf16, 8 query / 4 kv heads of 64, hidden 256) unsharded,
tensor parallel with ``devices=1`` and data parallel with ``devices=1`` (``attn-compile
--target=cuda``), sets up a one-rank NCCL communicator through the runtime's ABI
(``attnNcclGetUniqueId`` / ``attnNcclInitRank``), runs prefill and decode steps and checks
that the sharded layers' outputs and caches equal the unsharded layer's bit for bit (the
all-reduce of one rank is a copy). Needs PyTorch with CUDA and ``libnccl.so.2`` (PyTorch's).
"""

import ctypes
import os
import shutil
import subprocess
import sys

import numpy as np

try:
    import torch  # on the GPU machine (building needs none)
except ImportError:
    torch = None

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(REPO, "python"), HERE]

from attn import ir  # noqa: E402

import device_abi  # noqa: E402


CFG = ir.LayerConfig(hidden=256, num_heads=8, num_kv_heads=4, head_dim=64, dtype="bf16",
                     num_layers=2, layer_idx=1)
SCENARIOS = {"prefill": ([0, 0, 0], [9, 70, 4]), "decode": ([21, 5, 40], [1, 1, 1])}


NAMES = ("unsharded", "tensor", "data")


def build(build_dir, outdir):
    text = ir.module_text(ir.layer_function("layer", CFG))
    texts = {"unsharded": text}
    for strategy in ("tensor", "data"):
        texts[strategy] = subprocess.run(
            [os.path.join(build_dir, "bin", "attn-opt"),
             f"--attn-shard=strategy={strategy} devices=1"],
            input=text, capture_output=True, text=True, check=True).stdout
    for name, module in texts.items():
        with open(os.path.join(outdir, f"{name}.mlir"), "w") as f:
            f.write(module)
        subprocess.run([os.path.join(build_dir, "bin", "attn-compile"), "--target=cuda",
                        os.path.join(outdir, f"{name}.mlir"), "-o",
                        os.path.join(outdir, f"{name}.so")], check=True)
    shutil.copy2(os.path.join(build_dir, "lib", "libattn_cuda_runtime.so"), outdir)


def device_tensor(array):
    if array.dtype == np.uint16:  # bf16 bits
        return torch.from_numpy(array.view(np.int16)).cuda().view(torch.bfloat16)
    return torch.from_numpy(array).cuda()


def one_rank_communicator(outdir):
    runtime = ctypes.CDLL(os.path.join(outdir, "libattn_cuda_runtime.so"))
    unique_id = ctypes.create_string_buffer(128)
    assert runtime.attnNcclGetUniqueId(unique_id) == 0, "ncclGetUniqueId"
    assert runtime.attnNcclInitRank(unique_id, 0, 1) == 0, "ncclCommInitRank"


def run(library, inputs):
    args = {name: device_tensor(array) for name, array in inputs.items()}
    out = torch.full((args["x"].shape[0], CFG.hidden), float("nan"), dtype=torch.bfloat16,
                     device="cuda")
    device_abi.DeviceFunction(library, "layer")(list(args.values()), [out])
    torch.cuda.synchronize()
    return out.view(torch.int16).cpu().numpy(), args["blocks"].view(torch.int16).cpu().numpy()


def main():
    if sys.argv[1:2] == ["--build"]:  # on the machine with MLIR
        outdir = sys.argv[2]
        os.makedirs(outdir, exist_ok=True)
        build(sys.argv[3] if len(sys.argv) > 3 else os.path.join(REPO, "build"), outdir)
        return 0
    outdir = sys.argv[1]
    torch.zeros(1, device="cuda")  # the primary context, as the runtime uses it
    libraries = {name: device_abi.load(os.path.join(outdir, f"{name}.so")) for name in NAMES}
    one_rank_communicator(outdir)
    failures = 0
    for scenario, (cached, new) in SCENARIOS.items():
        inputs = ir.random_layer_inputs(np.random.default_rng(len(scenario)), CFG, cached, new)
        want_out, want_blocks = run(libraries["unsharded"], inputs)
        assert not ((want_out.view(np.uint16) & 0x7FFF) > 0x7F80).any(), "NaN output"
        for strategy in ("tensor", "data"):
            out, blocks = run(libraries[strategy], inputs)
            same = np.array_equal(out, want_out) and np.array_equal(blocks, want_blocks)
            failures += not same
            print(f"{strategy} devices=1 {scenario}: {'ok' if same else 'DIFFERS'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
