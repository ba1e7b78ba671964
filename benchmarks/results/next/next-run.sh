#!/bin/bash
# The GPTQ GEMV run for the next session lent an H200 (issue 13's goals are the H200's; the
# twenty-second session got an H100: benchmarks/results/gpu-h100-2026-12-05-s22/, where the
# streaming GEMV was slower than the TMA ring at N 6144 and 14336 and faster at N 4096).
# Build under build/next (about 4 minutes on 2 cores):
#   /usr/bin/python3 test/gpu/build_device_tests.py build/next/dt --only gptq
#   /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next/bq --build
#   /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next/bq-n4096 --build --shape 4096,4096
#   /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next/bq-n6144 --build --shape 4096,6144
#   /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next/layer-gptq --models llama3-8b,llama3-8b-gptq,llama3-8b-gptq-streaming
#   for v in w8 g8; do git apply benchmarks/results/next/streaming-$v.patch && ninja -C build attn-compile &&
#     /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next/bq-$v --build; git checkout lib/; done
#   ninja -C build attn-compile; cp benchmarks/results/next/next-run.sh build/next/run.sh
# Run: run(command="build/next/run.sh", carry=["build/next"]); every table goes to
# $OUT/all.txt as it comes. If the streaming GEMV is faster at M 1-16 on all three shapes,
# `git apply benchmarks/results/next/streaming-default.patch`, then attn-doc, check-attn, docs.
D=build/next
A=$OUT/all.txt
mkdir -p $OUT/r
bench() {  # label, folder, weights, rows
  echo "== $1" | tee -a $A
  mkdir -p $OUT/r/$2
  OUT=$OUT/r/$2 timeout 100 python3 benchmarks/gpu/bench_quant_gemv.py $D/$2 --weights $3 --rows $4 2>&1 | grep -v '^{' | tee -a $A
}
bench "GEMV n14336" bq gptq,gptq_streaming,bf16 1,8,16,32
echo "== device tests" | tee -a $A
OUT=$OUT timeout 200 python3 test/gpu/run_device_tests.py $D/dt --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log | tee -a $A; grep -v PASS $OUT/device-tests-table.txt | tail -n +4 | head -20 | tee -a $A
echo "== GPTQ layer decode (bf16 / ring / streaming)" | tee -a $A
mkdir -p $OUT/r/layer-gptq
OUT=$OUT/r/layer-gptq timeout 120 python3 benchmarks/gpu/bench_layer.py $D/layer-gptq --only decode --kernels > $OUT/r/layer-gptq.txt 2>&1
awk '/^    / {if (n++ < 6) print; next} {n = 0} /decode/ {print}' $OUT/r/layer-gptq.txt | tail -30 | tee -a $A
bench "GEMV n4096" bq-n4096 gptq,gptq_streaming 1,8,16
bench "GEMV n6144" bq-n6144 gptq,gptq_streaming 1,8,16
bench "n14336, 8 warps" bq-w8 gptq_streaming 1,16
bench "n14336, groups of 8 steps" bq-g8 gptq_streaming 1,16
BQ=$D/bq OUT=$OUT/r/ncu timeout 120 benchmarks/gpu/profile_kernels.sh gptq-streaming gptq > $OUT/r/ncu.txt 2>&1
grep -A14 "^== " $OUT/r/ncu.txt | cut -c1-110 | tee -a $A
tar czf $OUT/results.tgz -C $OUT r && rm -rf $OUT/r
