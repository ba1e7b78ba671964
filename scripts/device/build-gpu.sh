#!/usr/bin/env bash
# Builds, on this machine, what scripts/device/run-gpu.sh runs on the GPU machine:
# build/device-tests (the GPU execution tests), build/bench-gpu (the benchmark's
# libraries), build/bench-fusion-gpu (the fusion benchmark's), build/bench-stack-gpu (the
# whole-model benchmark's), build/bench-rope-gpu (the RoPE-table benchmark's) and
# build/bench-layer-gpu (the whole-layer and projection benchmarks'), each with a manifest.json
# and libattn_cuda_runtime.so. Needs attn-compile
# with --target=cuda (build/bin, or $ATTN_COMPILE). Both builds run even if one fails;
# the exit status is 1 if a module failed to compile.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
status=0
/usr/bin/python3 "$root/test/gpu/build_device_tests.py" "$root/build/device-tests" || status=1
/usr/bin/python3 "$root/benchmarks/gpu/build_bench.py" "$root/build/bench-gpu" || status=1
/usr/bin/python3 "$root/benchmarks/gpu/build_bench_fusion.py" "$root/build/bench-fusion-gpu" || status=1
/usr/bin/python3 "$root/benchmarks/gpu/build_bench_stack.py" "$root/build/bench-stack-gpu" || status=1
/usr/bin/python3 "$root/benchmarks/gpu/build_bench_rope_table.py" "$root/build/bench-rope-gpu" || status=1
/usr/bin/python3 "$root/benchmarks/gpu/build_bench_layer.py" "$root/build/bench-layer-gpu" || status=1
du -sh "$root/build/device-tests" "$root/build/bench-gpu" "$root/build/bench-fusion-gpu" \
  "$root/build/bench-stack-gpu" "$root/build/bench-rope-gpu" "$root/build/bench-layer-gpu"
exit $status
