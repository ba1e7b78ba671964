#!/bin/bash
# The second call of the deciding run (twenty-second session): the decode step's attention.
# 1. Every device case (358) on the one-pass combine (Attention/Combine.cpp: four partials a
#    trip with a running maximum, instead of two dependent passes over all of them).
# 2. The decode steps, alternating rounds (bench_builds.py), of
#    - HEAD before the one-pass combine (layer-base) against it (layer-combine);
#    - layer-combine against the same with decode splits of one per 64 / 128 keys instead of
#      one per 256 (decode-split{64,128}.patch: 8 x 512 goes from 3 splits of three 64-key
#      tiles to 9 / 5 splits; the tiles of a block run one after another).
# Build (about 6 minutes; layer-base at the commit before the combine change):
#   /usr/bin/python3 test/gpu/build_device_tests.py build/next21/dt-all
#   /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next21/layer-combine --models llama3-8b,llama3-8b-gptq
#   for n in 64 128; do git apply benchmarks/results/next/decode-split$n.patch && ninja -C build attn-compile &&
#     /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next21/layer-combine-split$n --models llama3-8b,llama3-8b-gptq
#     git checkout lib/; done; ninja -C build attn-compile
#   cp benchmarks/results/next/next-run2.sh build/next21/run.sh
# Run: run(command="build/next21/run.sh", carry=["build/next21"])
D=build/next21
mkdir -p $OUT/r
OUT=$OUT/r timeout 300 python3 test/gpu/run_device_tests.py $D/dt-all --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
pair() {  # A, B: A - B > 0 means B is faster
  mkdir -p $OUT/r/$2
  OUT=$OUT/r/$2 timeout 150 python3 benchmarks/gpu/bench_builds.py $D/$1 $D/$2 --labels $1,$2 \
    --rounds 9 > $OUT/r/$2.txt 2>&1
  tail -8 $OUT/r/$2.txt
}
pair layer-base layer-combine
pair layer-combine layer-combine-split64
pair layer-combine layer-combine-split128
tar czf $OUT/results2.tgz -C $OUT r && rm -rf $OUT/r
