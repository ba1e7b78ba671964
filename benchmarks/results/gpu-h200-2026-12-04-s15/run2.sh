#!/bin/bash
# Session 15, run 2: HEAD ea42a18 (GPTQ GEMV up to 64 rows). bq-gemv128: the same with
# kGPTQGemvMaxRows = 128 (temporary, not committed).
mkdir -p $OUT/r
OUT=$OUT/r timeout 120 python3 test/gpu/run_device_tests.py build/next2/dt --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | head -20
B=benchmarks/gpu/bench_quant_gemv.py
for pass in 1 2; do
  for v in bq-head bq-gemv128; do
    echo "== pass $pass $v" >> $OUT/r/gptq.txt
    timeout 90 python3 $B build/next2/$v --weights gptq --rows 17,32,48,64,80,96,128 2>&1 | tail -7 >> $OUT/r/gptq.txt
  done
done
mkdir -p $OUT/r/layer; OUT=$OUT/r/layer timeout 240 python3 benchmarks/gpu/bench_layer.py build/next2/layer-head --model llama3-8b > $OUT/r/layer.txt 2>&1
cat $OUT/r/gptq.txt; tail -n 14 $OUT/r/layer.txt
