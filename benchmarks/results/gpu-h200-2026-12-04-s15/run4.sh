#!/bin/bash
# Session 15, run 4: GPTQ at 65-128 rows, HEAD ea42a18 (GEMM above 64 rows) against
# bq-gemv128 (kGPTQGemvMaxRows = 128, temporary, rebuilt with attn-compile this time).
mkdir -p $OUT/r
B=benchmarks/gpu/bench_quant_gemv.py
for v in bq-gemv128 bq-head bq-gemv128; do
  echo "== $v" >> $OUT/r/gptq.txt
  timeout 120 python3 $B build/next2/$v --weights gptq --rows 64,65,80,96,112,128 2>&1 | tail -6 >> $OUT/r/gptq.txt
done
cat $OUT/r/gptq.txt
