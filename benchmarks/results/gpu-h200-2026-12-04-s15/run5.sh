#!/bin/bash
# Session 15, run 5: the persistent E4M3 GEMM (bq-pers: 5 stages + its own output tile)
# against ea42a18 (bq-base: a block a tile, 6 stages); 58 float8 device cases; the layer.
mkdir -p $OUT/r
OUT=$OUT/r timeout 90 python3 test/gpu/run_device_tests.py build/next3/dt --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
B=benchmarks/gpu/bench_quant_gemv.py
for pass in 1 2; do
  for v in bq-base bq-pers; do
    echo "== pass $pass $v" >> $OUT/r/f8.txt
    timeout 60 python3 $B build/next3/$v --weights float8 --rows 200,512,2048,8192 2>&1 | tail -4 >> $OUT/r/f8.txt
  done
done
cat $OUT/r/f8.txt
mkdir -p $OUT/r/layer; OUT=$OUT/r/layer timeout 200 python3 benchmarks/gpu/bench_layer.py build/next3/layer --model llama3-8b --only prefill > $OUT/r/layer.txt 2>&1
tail -n 9 $OUT/r/layer.txt
