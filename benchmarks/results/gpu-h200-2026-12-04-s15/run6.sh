#!/bin/bash
# Session 15, run 6: the E4M3 GEMM at 2048 / 8192 rows: bq-base (ea42a18: a block a tile, 6
# stages), bq-s5 (the same, 5 stages), bq-pers (persistent, 5 stages + output tile in shared
# memory), bq-pers6 (persistent, 6 stages, the epilogue storing directly).
B=benchmarks/gpu/bench_quant_gemv.py
for v in bq-base bq-s5 bq-pers bq-pers6 bq-base bq-pers6; do
  echo "== $v"
  timeout 40 python3 $B build/next4/$v --weights float8 --rows 2048,8192 2>&1 | tail -2
done
