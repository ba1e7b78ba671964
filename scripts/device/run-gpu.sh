#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root: the GPU execution tests
# (test/gpu/run_device_tests.py), then the GPU benchmark (benchmarks/gpu/bench_gpu.py) and,
# if built, the fusion benchmark (benchmarks/gpu/bench_fusion.py, build/bench-fusion-gpu),
# the whole-model benchmark (benchmarks/gpu/bench_stack.py, build/bench-stack-gpu), and the
# whole-layer and projection benchmarks (benchmarks/gpu/bench_layer.py and bench_linear.py,
# build/bench-layer-gpu).
# Build their libraries here first with scripts/device/build-gpu.sh and carry
# build/device-tests and build/bench-gpu with the call. Logs, JSON, the tables and the
# prefill plot go to $OUT (./gpu-results if unset); the short tables are printed last.
# Arguments are passed to run_device_tests.py (e.g. --only layer). Exit status 1 if the
# tests or the benchmark failed.
set -uo pipefail
export OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

python3 test/gpu/run_device_tests.py build/device-tests "$@" 2>&1 | tee "$OUT/device-tests.log"
tests=${PIPESTATUS[0]}
python3 benchmarks/gpu/bench_gpu.py build/bench-gpu 2>&1 | tee "$OUT/bench-gpu.log"
bench=${PIPESTATUS[0]}
if [[ -d build/bench-fusion-gpu ]]; then
  python3 benchmarks/gpu/bench_fusion.py build/bench-fusion-gpu 2>&1 | tee "$OUT/bench-fusion-gpu.log"
  [[ ${PIPESTATUS[0]} == 0 ]] || bench=1
fi
if [[ -d build/bench-stack-gpu ]]; then
  python3 benchmarks/gpu/bench_stack.py build/bench-stack-gpu 2>&1 | tee "$OUT/bench-stack-gpu.log"
  [[ ${PIPESTATUS[0]} == 0 ]] || bench=1
fi
if [[ -d build/bench-rope-gpu ]]; then
  python3 benchmarks/gpu/bench_rope_table.py build/bench-rope-gpu 2>&1 | tee "$OUT/bench-rope-gpu.log"
  [[ ${PIPESTATUS[0]} == 0 ]] || bench=1
fi
if [[ -d build/bench-layer-gpu ]]; then
  python3 benchmarks/gpu/bench_layer.py build/bench-layer-gpu 2>&1 | tee "$OUT/bench-layer-gpu.log"
  [[ ${PIPESTATUS[0]} == 0 ]] || bench=1
  python3 benchmarks/gpu/bench_linear.py build/bench-layer-gpu 2>&1 | tee "$OUT/bench-linear-gpu.log"
  [[ ${PIPESTATUS[0]} == 0 ]] || bench=1
fi

echo
echo "==================== summary ===================="
cat "$OUT/device-tests-table.txt" "$OUT/bench-gpu-table.txt" "$OUT/bench-stack-gpu-table.txt" \
  "$OUT/bench-layer-gpu-table.txt" "$OUT/bench-linear-gpu-table.txt" 2>/dev/null
echo "tests: exit $tests, benchmark: exit $bench"
[[ $tests == 0 && $bench == 0 ]]
