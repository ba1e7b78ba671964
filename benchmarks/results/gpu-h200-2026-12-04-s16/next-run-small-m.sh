#!/bin/bash
# Prepared by the sixteenth session (HEAD 88ebc02) for the next one: a second (optional) device call,
#   run(command="build/next6/run-small-m.sh", carry=["build/next6"])    (about 5 minutes)
# Whether GPTQ's wgmma GEMM (64-token blocks, W read once for all rows) beats the GEMV
# (W read once per 16 rows) at 1-64 rows. Arithmetic says it might: the GEMV at 64 rows
# reads W four times (53.7 us at K 4096 x N 14336); the GEMM decodes each weight once.
#   bq-wgmma / layer-wgmma: HEAD (the GEMV up to 64 rows), as for run.sh
#   bq-allgemm / layer-allgemm: HEAD + gptq-gemm-small-m-to-measure.patch (results folder):
#     GPTQ's gemvMaxRows = 0 and a 16-token shape (gemm_gptq_wgmma_m16) up to 16 rows, so
#     1-16 rows take m64n16k16 (x boxes of 16 rows), 17-128 the 64-token shape; full
#     rebuild, same scripts
# The GEMM at 1-64 rows passes the GPTQ PTX simulation (M 1, 3, 5, 8, 16, 17, 64).
mkdir -p $OUT/s
B=benchmarks/gpu/bench_quant_gemv.py
for pass in 1 2; do
  for v in bq-wgmma bq-allgemm; do
    echo "== pass $pass $v" >> $OUT/s/small.txt
    timeout 120 python3 $B build/next6/$v --weights gptq --rows 1,8,16,32,64,128 2>&1 | tail -10 >> $OUT/s/small.txt
  done
done
for v in layer-wgmma layer-allgemm; do
  mkdir -p $OUT/s/$v
  OUT=$OUT/s/$v timeout 120 python3 benchmarks/gpu/bench_layer.py build/next6/$v --model llama3-8b-gptq --only decode > $OUT/s/$v.txt 2>&1
done
cat $OUT/s/small.txt; for v in layer-wgmma layer-allgemm; do echo "== $v"; tail -n 8 $OUT/s/$v.txt; done
