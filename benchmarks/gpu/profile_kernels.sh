#!/usr/bin/env bash
# Runs on the GPU machine: Nsight Compute profiles of the kernels that limit the layer (one
# launch each, clocks left alone), from the benchmarks' prebuilt libraries (build them here
# with scripts/device/build-gpu.sh and benchmarks/gpu/bench_quant_gemv.py --build). Writes
# $OUT/ncu-<name>.txt (the details page: speed of light, memory and compute workload,
# occupancy, warp stall reasons) and prints the headline numbers of each last.
#   benchmarks/gpu/profile_kernels.sh [name ...]    names: gemv gemm attention gptq float8
#                                                   float8-gemm scaled-mm gptq-blocks
#                                                   gptq-streaming
# BQ names bench_quant_gemv.py's folder (default build/bench-quant); gptq and gptq-blocks are
# the GPTQ GEMV at M = 1 on the checkpoint's word order and on 32-column blocks (whose kernel,
# in the same module, is uniqued as gemv_gptq_N), gptq-streaming the streaming GPTQ GEMV.
# float8-gemm and scaled-mm (cuBLASLt's kernel behind torch._scaled_mm, same problem) add the
# source counters: the warp stalls by SASS line.
set -uo pipefail
OUT="${OUT:-$PWD/ncu-results}"
BQ="${BQ:-build/bench-quant}"
mkdir -p "$OUT"
sections=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis
          --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats)
profile() {  # name kernel-regex command...
  local name=$1 kernel=$2
  shift 2
  ATTN_BENCH_UNDER_NCU=1 ncu --clock-control none -k "regex:$kernel" -c 1 "${sections[@]}" "$@" \
    > "$OUT/ncu-$name.txt" 2>&1 || echo "$name: ncu failed (see ncu-$name.txt)"
}
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(gemv gemm attention gptq float8)
for name in "${names[@]}"; do
  case $name in
    gemv) profile gemv '^gemv(_[0-9]+)?$' python3 benchmarks/gpu/bench_linear.py build/bench-layer-gpu --only o_proj --rows 1 ;;
    gemm) profile gemm '^gemm_wgmma$' python3 benchmarks/gpu/bench_linear.py build/bench-layer-gpu --only qkv --rows 8192 ;;
    attention) profile attention '^paged_flash_attention_prefill$' python3 benchmarks/gpu/bench_layer.py build/bench-layer-gpu --model llama3 --only prefill-8192 ;;
    gptq) profile gptq '^gemv_gptq$' python3 benchmarks/gpu/bench_quant_gemv.py "$BQ" --weights gptq --rows 1 ;;
    gptq-blocks) profile gptq-blocks '^gemv_gptq(_[0-9]+)?$' python3 benchmarks/gpu/bench_quant_gemv.py "$BQ" --weights gptq_blocks --rows 1 ;;
    gptq-streaming) profile gptq-streaming '^gemv_gptq_streaming$' python3 benchmarks/gpu/bench_quant_gemv.py "$BQ" --weights gptq_streaming --rows 1 ;;
    float8) profile float8 '^gemv_float8$' python3 benchmarks/gpu/bench_quant_gemv.py "$BQ" --weights float8 --rows 1 ;;
    float8-gemm) profile float8-gemm '^gemm_float8$' --section SourceCounters python3 benchmarks/gpu/bench_quant_gemv.py "$BQ" --rows 2048 --weights float8 ;;
    scaled-mm) profile scaled-mm 'nvjet|cutlass|sm90_xmma' --section SourceCounters python3 benchmarks/gpu/bench_quant_gemv.py "$BQ" --rows 2048 --weights float8 ;;
  esac
done
for name in "${names[@]}"; do
  echo "== $name"
  grep -E "^  [a-z_0-9]+.*\(|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per Thread|Executed Ipc Active|Issue Slots Busy|No Eligible|Warp Cycles Per Issued" \
    "$OUT/ncu-$name.txt" | head -14
done
