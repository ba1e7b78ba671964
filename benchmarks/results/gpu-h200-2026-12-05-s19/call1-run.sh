#!/bin/bash
# Prepared by the seventeenth session for the next one: one device call,
#   run(command="build/next7/run.sh", carry=["build/next7"])    (about 9 minutes)
# It replaces the sixteenth session's build/next6/run.sh (the same measurements, and more).
# 1. GPTQ words and scales in 32-column blocks (#attn.gptq<layout = column_blocks>): each
#    TMA box of words one contiguous run instead of 128-byte pieces 4N bytes apart. Keep the
#    layout as the recommended one if gptq_blocks is faster than gptq at M = 1-16.
# 2. GPTQ above 64 rows on gemm_gptq_wgmma (decoded weights as wgmma's register A) against
#    the mma.sync GEMM (bq-mma). Keep the wgmma GEMM if it passes and is faster.
# 3. Nsight Compute of gemv_gptq at M = 1 in both layouts (profile_kernels.sh): what limits
#    it, whichever way item 1 goes.
# Folders (built at df3e395, whose lib/ and include/ are those of 1b3bdee and of the
# session's final HEAD, unless said):
#   dt-gptq: test/gpu/build_device_tests.py build/next7/dt-gptq --only gptq (90 cases:
#     the wgmma GEMM at 65, 512, 2048; column blocks through every GPTQ kernel and a layer)
#   bq: benchmarks/gpu/bench_quant_gemv.py build/next7/bq --build (gptq, gptq_blocks, bf16)
#   bq-mma, layer-mma: build/next6/{bq-mma,layer-mma} (HEAD 88ebc02 with the wgmma GEMM
#     switched off: GemvQuantKernel.cpp "if (false && // TEMP"), copied
#   layer: benchmarks/gpu/build_bench_layer.py build/next7/layer (llama3-8b bf16, -gptq,
#     -gptq-blocks, -float8, qwen3-8b)
#   bq-w8s2, bq-w4s4: HEAD + gemv-gptq-shape-w8s2.patch / -w4s4.patch (this folder: the GEMV's
#     warps x stages, 8 x 2 and 4 x 4 where HEAD has 4 x 3 on the bench shape), full
#     rebuild, bench_quant_gemv.py --build; whether column blocks move the best shape
# Most important first: a call past 600 s is cut off, but what is under $OUT comes back.
mkdir -p $OUT/r
OUT=$OUT/r timeout 150 python3 test/gpu/run_device_tests.py build/next7/dt-gptq --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
bench() {  # label, folder, weights, rows
  echo "== $1" >> $OUT/r/bench.txt
  timeout 120 python3 benchmarks/gpu/bench_quant_gemv.py build/next7/$2 --weights $3 --rows $4 2>&1 | grep -v '^{' >> $OUT/r/bench.txt
}
layer() {  # label, folder, model, steps
  mkdir -p $OUT/r/$1
  OUT=$OUT/r/$1 timeout 150 python3 benchmarks/gpu/bench_layer.py build/next7/$2 --model $3 --only $4 > $OUT/r/$1.txt 2>&1
}
bench "gemv pass 1" bq gptq,gptq_blocks,bf16 1,8,16,64
bench "gemm pass 1" bq gptq,gptq_blocks 512,2048,8192
bench "gemm mma.sync pass 1" bq-mma gptq 512,2048,8192
layer layer-decode layer llama3-8b-gptq decode
layer layer-prefill layer llama3-8b prefill-2048
layer layer-mma layer-mma llama3-8b-gptq prefill-2048
# Nsight Compute of the GEMV at M = 1 in both layouts (DRAM throughput, stall reasons).
OUT=$OUT/r BQ=build/next7/bq timeout 150 benchmarks/gpu/profile_kernels.sh gptq gptq-blocks > $OUT/r/ncu.txt 2>&1
bench "gemv 8 x 2" bq-w8s2 gptq,gptq_blocks 1,16
bench "gemv 4 x 4" bq-w4s4 gptq,gptq_blocks 1,16
bench "gemv pass 2" bq gptq,gptq_blocks 1,16
bench "gemm mma.sync pass 2" bq-mma gptq 2048
bench "gemm pass 2" bq gptq,gptq_blocks 2048
cat $OUT/r/bench.txt $OUT/r/ncu.txt; for v in layer-decode layer-prefill layer-mma; do echo "== $v"; tail -n 14 $OUT/r/$v.txt; done
