#!/bin/bash
# Prepared by the fourteenth session (HEAD cad0b6f) for the next one: one device call,
#   run(command="build/next/run.sh", carry=["build/next"])
# bq-9adb006: the last measured kernel set; bq-head: + the E4M3 epilogue (2c6f619) and
# gemm_float8_m64 (4ddd6d9); bq-gptq64: bq-head with GPTQ's GEMV serving up to 64 rows
# (temporary override ATTN_GPTQ_GEMV_ROWS=64 at build time); layer-*: build_bench_layer.py
# of HEAD and of the GPTQ override; dt-f8: the 58 float8 device cases of HEAD.
mkdir -p $OUT/r
OUT=$OUT/r timeout 90 python3 test/gpu/run_device_tests.py build/next/dt-f8 --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log
B=benchmarks/gpu/bench_quant_gemv.py
for pass in 1 2; do
  for v in bq-9adb006 bq-head; do
    echo "== pass $pass $v" >> $OUT/r/f8.txt
    timeout 60 python3 $B build/next/$v --weights float8 --rows 64,512,2048,8192 2>&1 | tail -4 >> $OUT/r/f8.txt
  done
  for v in bq-head bq-gptq64; do
    echo "== pass $pass $v" >> $OUT/r/gptq.txt
    timeout 60 python3 $B build/next/$v --weights gptq --rows 16,64 2>&1 | tail -2 >> $OUT/r/gptq.txt
  done
done
for v in layer-head layer-gptq64; do
  mkdir -p $OUT/r/$v; OUT=$OUT/r/$v timeout 150 python3 benchmarks/gpu/bench_layer.py build/next/$v --model llama3-8b --only decode-64 > $OUT/r/$v.txt 2>&1
done
cat $OUT/r/f8.txt $OUT/r/gptq.txt; tail -5 $OUT/r/layer-*.txt
