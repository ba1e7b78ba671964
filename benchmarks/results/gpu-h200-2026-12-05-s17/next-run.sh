#!/bin/bash
# Prepared by the seventeenth session for the next one: one device call,
#   run(command="build/next7/run.sh", carry=["build/next7"])    (about 9 minutes)
# It replaces the sixteenth session's build/next6/run.sh (same measurements, and more).
# 1. GPTQ words in 64-column blocks (#attn.gptq<layout = column_blocks>): a GEMV block's
#    words one contiguous run instead of 256-byte pieces 4N bytes apart. Keep the layout as
#    the recommended one if gptq_blocks is faster than gptq at M = 1-16.
# 2. GPTQ above 64 rows on gemm_gptq_wgmma (decoded weights as wgmma's register A) against
#    the mma.sync GEMM (bq-mma). Keep the wgmma GEMM if it passes and is faster.
# Folders (all from the session's final HEAD unless said):
#   dt-gptq: test/gpu/build_device_tests.py build/next7/dt-gptq --only gptq (90 cases:
#     the wgmma GEMM at 65, 512, 2048; column blocks through every GPTQ kernel and a layer)
#   bq: benchmarks/gpu/bench_quant_gemv.py build/next7/bq --build (gptq, gptq_blocks, bf16)
#   bq-mma, layer-mma: build/next6/{bq-mma,layer-mma} (HEAD 88ebc02 with the wgmma GEMM
#     switched off: GemvQuantKernel.cpp "if (false && // TEMP"), copied
#   layer: benchmarks/gpu/build_bench_layer.py build/next7/layer (llama3-8b bf16, -gptq,
#     -gptq-blocks, -float8, qwen3-8b)
mkdir -p $OUT/r
OUT=$OUT/r timeout 150 python3 test/gpu/run_device_tests.py build/next7/dt-gptq --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
B=benchmarks/gpu/bench_quant_gemv.py
# Most important first: a call past 600 s is cut off, but what is under $OUT comes back.
gemv() {
  echo "== pass $1 gemv" >> $OUT/r/gemv.txt
  timeout 120 python3 $B build/next7/bq --weights gptq,gptq_blocks,bf16 --rows 1,8,16,64 2>&1 | tail -13 >> $OUT/r/gemv.txt
}
gemm() {
  echo "== pass $1 $2 gemm" >> $OUT/r/gemm.txt
  timeout 120 python3 $B build/next7/$2 --weights $3 --rows 128,512,2048,8192 2>&1 | tail -$4 >> $OUT/r/gemm.txt
}
gemv 1
gemm 1 bq gptq,gptq_blocks,bf16 14; gemm 1 bq-mma gptq 6
mkdir -p $OUT/r/layer-decode $OUT/r/layer-prefill
OUT=$OUT/r/layer-decode timeout 150 python3 benchmarks/gpu/bench_layer.py build/next7/layer --model llama3-8b-gptq --only decode > $OUT/r/layer-decode.txt 2>&1
OUT=$OUT/r/layer-prefill timeout 180 python3 benchmarks/gpu/bench_layer.py build/next7/layer --model llama3-8b --only prefill-2048 > $OUT/r/layer-prefill.txt 2>&1
mkdir -p $OUT/r/layer-mma
OUT=$OUT/r/layer-mma timeout 90 python3 benchmarks/gpu/bench_layer.py build/next7/layer-mma --model llama3-8b-gptq --only prefill-2048 > $OUT/r/layer-mma.txt 2>&1
gemv 2; gemm 2 bq-mma gptq 6
cat $OUT/r/gemv.txt $OUT/r/gemm.txt; for v in layer-decode layer-prefill layer-mma; do echo "== $v"; tail -n 14 $OUT/r/$v.txt; done
