#!/bin/bash
# The device run prepared for the next session lent a GPU (the twentieth session had none):
# one call of about 8 minutes,
#   run(command="build/next20/run.sh", carry=["build/next20"])
# Build the folders here first (no GPU needed, about 15 minutes on 2 cores), from HEAD:
#   /usr/bin/python3 test/gpu/build_device_tests.py build/next20/dt --only gptq
#   /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next20/bq --build
#   /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next20/bq-n4096 --build --shape 4096,4096
#   /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next20/bq-n6144 --build --shape 4096,6144
#   /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next20/layer --models llama3-8b-gptq,llama3-8b-gptq-streaming
#   for v in w8 g8; do git apply benchmarks/results/next/streaming-$v.patch && ninja -C build attn-compile &&
#     /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next20/bq-$v --build; git checkout lib/; done
#   ninja -C build attn-compile
#   cp benchmarks/results/next/next-run.sh build/next20/run.sh; du -sh build/next20   # carry <= 64 MiB
# What it decides (issue 13): the streaming GPTQ GEMV (GemvGPTQStreaming.cpp,
# --gpu-gptq-gemv=streaming) against the TMA-ring GEMV (the default) in the same run.
# 1. The 143 GPTQ device cases, 50 of them the streaming GEMV's (never run on a GPU), and
#    quant_gemm_gptq_wide_k512_n10240_bf16 (s19's, not yet run either).
# 2. Both GEMVs at K 4096 and N 14336 (goal: <= 11 us at M = 1, M = 16 within 1.3x of that),
#    N 4096 (o_proj) and N 6144 (qkv's N), M 1-32.
# 3. The Llama-3-8B GPTQ layer's decode steps on each GEMV, and the bf16 layer's (goal: the
#    GPTQ decode step 8 x 512 >= 2.5x faster than bf16's).
# 4. Nsight Compute of gemv_gptq_streaming at M = 1, and of the TMA-ring GEMV beside it.
# 5. Two untimed choices of the streaming GEMV at N 14336 (this folder's patches): 8 warps
#    a block instead of 4 (bq-w8), groups of 8 steps loaded ahead instead of 4 (bq-g8).
# If the streaming GEMV passes and is faster at M = 1-16 on the three shapes and in the
# layer, make it the default: `git apply benchmarks/results/next/streaming-default.patch`
# (the five defaults; lit tests of the TMA ring pass gptq-gemv=tma-ring, the default pipeline's
# test checks the streaming kernels; device modules and quant_gemv.so keep the TMA ring beside
# the *_streaming ones), then `ninja -C build attn-doc`, check-attn, and the docs' text
# (GPULowering.md's streaming paragraph, performance.md).
D=build/next20
mkdir -p $OUT/r
bench() {  # label, folder, weights, rows: printed as it comes (a cut-off call still shows it)
  echo "== $1" | tee -a $OUT/r/bench.txt
  mkdir -p $OUT/r/$2
  OUT=$OUT/r/$2 timeout 120 python3 benchmarks/gpu/bench_quant_gemv.py $D/$2 --weights $3 --rows $4 2>&1 | grep -v '^{' | tee -a $OUT/r/bench.txt
}
# Most important first: a call past its limit is cut off; what was printed comes back.
bench "n14336" bq gptq,gptq_streaming,bf16 1,8,16,32
OUT=$OUT/r timeout 200 python3 test/gpu/run_device_tests.py $D/dt --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
mkdir -p $OUT/r/layer  # the folder's three models, their three decode steps
OUT=$OUT/r/layer timeout 240 python3 benchmarks/gpu/bench_layer.py $D/layer --only decode --kernels > $OUT/r/layer.txt 2>&1
# The layer steps, each after its 6 largest kernels (ours).
awk '/^    / {if (n++ < 6) print; next} {n = 0} /decode/ {print}' $OUT/r/layer.txt
bench "n4096" bq-n4096 gptq,gptq_streaming 1,8,16,32
bench "n6144" bq-n6144 gptq,gptq_streaming 1,8,16,32
bench "n14336, 8 warps" bq-w8 gptq_streaming 1,8,16
bench "n14336, groups of 8 steps" bq-g8 gptq_streaming 1,8,16
BQ=$D/bq OUT=$OUT/r/ncu timeout 120 benchmarks/gpu/profile_kernels.sh gptq-streaming gptq > $OUT/r/ncu.txt 2>&1
grep -A14 "^== " $OUT/r/ncu.txt | cut -c1-110
# One file back (the machine returns at most 8).
tar czf $OUT/results.tgz -C $OUT r && rm -rf $OUT/r
