#!/bin/bash
# The sixteenth session's next-run-small-m.sh on this HEAD: bq/layer (GEMV up to 64 rows)
# against bq-allgemm/layer-allgemm (GPTQ on the wgmma GEMM at every M, m16 shape up to 16 rows).
mkdir -p $OUT/s
B=benchmarks/gpu/bench_quant_gemv.py
for pass in 1 2; do
  for v in bq bq-allgemm; do
    echo "== pass $pass $v" >> $OUT/s/small.txt
    timeout 120 python3 $B build/next7/$v --weights gptq --rows 1,8,16,32,64,128 2>&1 | tail -10 >> $OUT/s/small.txt
  done
done
for v in layer layer-allgemm; do
  mkdir -p $OUT/s/$v
  OUT=$OUT/s/$v timeout 120 python3 benchmarks/gpu/bench_layer.py build/next7/$v --model llama3-8b-gptq --only decode-8 > $OUT/s/$v.txt 2>&1
done
cat $OUT/s/small.txt; for v in layer layer-allgemm; do echo "== $v"; tail -n 8 $OUT/s/$v.txt; done
