#!/bin/bash
# The second call of the deciding run: how many key splits a decode step's attention takes.
# Decode caps splits at one per 256 keys (kMinSplitKeys), so 8 x 512 runs 3 splits of three
# 64-key tiles each, one after another in every block; the patches decode-split{64,128}.patch
# lower the cap to one split per 64 / 128 keys for decode only.
# Build (from HEAD, about 1 minute):
#   /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next20/layer-base --models llama3-8b,llama3-8b-gptq
#   for n in 64 128; do git apply benchmarks/results/next/decode-split$n.patch && ninja -C build attn-compile &&
#     /usr/bin/python3 benchmarks/gpu/build_bench_layer.py build/next20/layer-split$n --models llama3-8b,llama3-8b-gptq
#     git checkout lib/; done; ninja -C build attn-compile
#   cp benchmarks/results/next/next-run2.sh build/next20/run2.sh
# Run: run(command="build/next20/run2.sh", carry=["build/next20"])
D=build/next20
mkdir -p $OUT/r
for n in 64 128; do  # A - B > 0: the variant is faster
  mkdir -p $OUT/r/split$n
  OUT=$OUT/r/split$n timeout 170 python3 benchmarks/gpu/bench_builds.py $D/layer-base $D/layer-split$n \
    --labels base,split$n --rounds 9 > $OUT/r/split$n.txt 2>&1
  tail -8 $OUT/r/split$n.txt
done
# The variant's error against PyTorch eager, and its kernels.
mkdir -p $OUT/r/layer-split64
OUT=$OUT/r/layer-split64 timeout 150 python3 benchmarks/gpu/bench_layer.py $D/layer-split64 --only decode --kernels > $OUT/r/layer-split64.txt 2>&1
awk '/^    / {if (n++ < 6) print; next} {n = 0} /decode/ {print}' $OUT/r/layer-split64.txt | tail -30
tar czf $OUT/results2.tgz -C $OUT r && rm -rf $OUT/r
