#!/bin/bash
# The deciding run in one call (twenty-second session: the budget left after failed starts
# holds one): next-run.sh's GEMV and GPTQ layer parts and next-run2.sh's attention parts,
# most important first, every table appended to $OUT/all.txt as it comes (a call cut off at
# its limit still returns what was printed and written).
# Build: next-run.sh's bq* folders and its layer folder (as layer-gptq) and next-run2.sh's
# folders, all under build/next21 (47 MB); cp benchmarks/results/next/next-run3.sh build/next21/run3.sh
# Run: run(command="build/next21/run3.sh", carry=["build/next21"])
D=build/next21
A=$OUT/all.txt
mkdir -p $OUT/r
bench() {  # label, folder, weights, rows
  echo "== $1" | tee -a $A
  mkdir -p $OUT/r/$2
  OUT=$OUT/r/$2 timeout 100 python3 benchmarks/gpu/bench_quant_gemv.py $D/$2 --weights $3 --rows $4 2>&1 | grep -v '^{' | tee -a $A
}
pair() {  # A, B: A - B > 0 means B is faster
  echo "== $1 vs $2" | tee -a $A
  mkdir -p $OUT/r/$2
  OUT=$OUT/r/$2 timeout 100 python3 benchmarks/gpu/bench_builds.py $D/$1 $D/$2 --labels $1,$2 \
    --rounds 9 > $OUT/r/$1-$2.txt 2>&1
  tail -7 $OUT/r/$1-$2.txt | cut -c1-150 | tee -a $A
}
bench "GEMV n14336" bq gptq,gptq_streaming,bf16 1,8,16,32
echo "== device tests" | tee -a $A
OUT=$OUT timeout 200 python3 test/gpu/run_device_tests.py $D/dt-all --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log | tee -a $A; grep -v PASS $OUT/device-tests-table.txt | tail -n +4 | head -20 | tee -a $A
pair layer-base layer-kv
echo "== GPTQ layer decode (ring / streaming)" | tee -a $A
mkdir -p $OUT/r/layer-gptq
OUT=$OUT/r/layer-gptq timeout 120 python3 benchmarks/gpu/bench_layer.py $D/layer-gptq --only decode --kernels > $OUT/r/layer-gptq.txt 2>&1
awk '/^    / {if (n++ < 6) print; next} {n = 0} /decode/ {print}' $OUT/r/layer-gptq.txt | tail -30 | tee -a $A
bench "GEMV n4096" bq-n4096 gptq,gptq_streaming 1,8,16
bench "GEMV n6144" bq-n6144 gptq,gptq_streaming 1,8,16
pair layer-kv layer-kv-split64
pair layer-kv layer-kv-split128
pair layer-base layer-combine
bench "n14336, 8 warps" bq-w8 gptq_streaming 1,16
bench "n14336, groups of 8 steps" bq-g8 gptq_streaming 1,16
tar czf $OUT/results.tgz -C $OUT r && rm -rf $OUT/r
