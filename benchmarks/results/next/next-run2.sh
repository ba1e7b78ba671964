#!/bin/bash
# The second call of the deciding run (twenty-second session): the decode step's attention.
# 1. Every device case (358) on the one-pass combine (Attention/Combine.cpp) and the decode
#    kernel that requests V with K (KVStaging::valueWithKey).
# 2. Decode steps in alternating rounds (bench_builds.py; A - B > 0: B faster) of
#    layer-base (before both) / layer-combine (the combine alone) / layer-kv (both), and
#    layer-kv against the same with decode splits of one per 64 / 128 keys instead of 256
#    (decode-split{64,128}.patch).
# 3. layer-kv's decode steps against PyTorch, with its kernels (bench_layer.py --kernels).
# Build (about 6 minutes; layer-base at 5651f46, layer-combine at ee9b137):
#   /usr/bin/python3 test/gpu/build_device_tests.py build/next21/dt-all
#   /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next21/layer-kv --models llama3-8b,llama3-8b-gptq
#   for n in 64 128; do git apply benchmarks/results/next/decode-split$n.patch && ninja -C build attn-compile &&
#     /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next21/layer-kv-split$n --models llama3-8b,llama3-8b-gptq
#     git checkout lib/; done; ninja -C build attn-compile
#   cp benchmarks/results/next/next-run2.sh build/next21/run.sh
# Run: run(command="build/next21/run.sh", carry=["build/next21"])
D=build/next21
mkdir -p $OUT/r
pair() {  # A, B
  mkdir -p $OUT/r/$2
  OUT=$OUT/r/$2 timeout 100 python3 benchmarks/gpu/bench_builds.py $D/$1 $D/$2 --labels $1,$2 \
    --rounds 9 > $OUT/r/$1-$2.txt 2>&1
  tail -7 $OUT/r/$1-$2.txt | cut -c1-150
}
pair layer-base layer-kv
OUT=$OUT/r timeout 240 python3 test/gpu/run_device_tests.py $D/dt-all --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
pair layer-base layer-combine
pair layer-kv layer-kv-split64
pair layer-kv layer-kv-split128
mkdir -p $OUT/r/layer-kv
OUT=$OUT/r/layer-kv timeout 100 python3 benchmarks/gpu/bench_layer.py $D/layer-kv --only decode --kernels > $OUT/r/layer-kv.txt 2>&1
awk '/^    / {if (n++ < 6) print; next} {n = 0} /decode/ {print}' $OUT/r/layer-kv.txt | tail -30
tar czf $OUT/results2.tgz -C $OUT r && rm -rf $OUT/r
