#!/usr/bin/env python3
"""What a plain streaming kernel reaches at the decode GEMVs' weight sizes, on the GPU
machine: PyTorch's device-to-device copy (bytes read + written) and a full reduction
(``torch.sum``, bytes read) of a bf16 tensor of each size, in kernel time (CUPTI, rotating
input sets that do not fit the L2 cache together: ``bench_gpu.time_calls``), against the copy
rate of 1 GiB that ``bench_linear.py`` and ``bench_quant_gemv.py`` call "copy". It bounds the
GEMV's "of copy" at the layer's sizes: a kernel's ramp and drain weigh more on 33 MB than on
1 GiB.

    python3 benchmarks/gpu/bench_read_ceiling.py      # prints a table; $OUT/bench-read-ceiling.json
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import bench_gpu as bg  # noqa: E402

# Weight sizes (name, N, K) of the Llama-3-8B projections and of bench_quant_gemv's shape.
SHAPES = [("o_proj", 4096, 4096), ("qkv", 6144, 4096), ("gate/up", 14336, 4096)]


def main():
    copy = bg.copy_rate()
    rows = []
    for name, n, k in SHAPES:
        nbytes = n * k * 2
        sets = bg.input_sets(nbytes)
        src = [bg.randn(n, k) for _ in range(sets)]
        dst = torch.empty_like(src[0])
        copy_s, _ = bg.time_calls([lambda s=s: dst.copy_(s) for s in src])
        sum_s, _ = bg.time_calls([lambda s=s: s.sum(dtype=torch.float32) for s in src])
        rows.append({"name": name, "N": n, "K": k, "bytes": nbytes, "copy_s": copy_s,
                     "copy_of_copy": 2 * nbytes / copy_s / copy, "sum_s": sum_s,
                     "sum_of_copy": nbytes / sum_s / copy})
    print(f"streaming kernels on {torch.cuda.get_device_name()}; copy of 1 GiB {copy / 1e9:.0f} GB/s")
    print(f"{'weight':8} {'MB':>6} {'copy us':>8} {'/copy':>6} {'sum us':>8} {'/copy':>6}")
    for r in rows:
        print(f"{r['name']:8} {r['bytes'] / 1e6:6.1f} {r['copy_s'] * 1e6:8.1f} {r['copy_of_copy']:6.2f} "
              f"{r['sum_s'] * 1e6:8.1f} {r['sum_of_copy']:6.2f}")
    out = os.path.join(os.environ.get("OUT") or ".", "bench-read-ceiling.json")
    with open(out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "copy_gbps": copy / 1e9, "rows": rows}, f,
                  indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
