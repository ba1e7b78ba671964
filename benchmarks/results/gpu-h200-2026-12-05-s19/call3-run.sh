#!/bin/bash
# Session 19, second call: GPTQ at 17-64 rows on the wgmma GEMM (gemm17: kGPTQGemvMaxRows 16)
# against HEAD's GEMV in 16-row slices (gemv64), at N 4096/6144/10240/14336 (K 4096), and the
# Llama-3-8B GPTQ decode steps; the 90 GPTQ device cases on gemm17 (built with signatures).
mkdir -p $OUT/r
OUT=$OUT/r timeout 150 python3 test/gpu/run_device_tests.py build/next8/dt-gemm17 --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
for n in 4096 6144 10240; do
  for v in gemv64 gemm17; do
    echo "== $v N $n" >> $OUT/r/bench.txt
    timeout 100 python3 benchmarks/gpu/bench_quant_gemv.py build/next8/$v-n$n --weights gptq --rows 17,32,64 2>&1 | grep -v '^{' | tail -n 5 >> $OUT/r/bench.txt
  done
done
echo "== float8 and bf16 GEMMs (HEAD)" >> $OUT/r/bench.txt
timeout 120 python3 benchmarks/gpu/bench_quant_gemv.py build/next8/gemv64-n14336 --weights float8,bf16 --rows 2048,8192 2>&1 | grep -v '^{' | tail -n 5 >> $OUT/r/bench.txt
for v in layer-gemv64 layer-gemm17; do
  mkdir -p $OUT/r/$v
  m=llama3-8b-gptq; [ $v = layer-gemv64 ] && m=llama3-8b
  OUT=$OUT/r/$v timeout 150 python3 benchmarks/gpu/bench_layer.py build/next8/$v --model $m --only decode > $OUT/r/$v.txt 2>&1
done
cat $OUT/r/bench.txt; for v in layer-gemv64 layer-gemm17; do echo "== $v"; tail -n 13 $OUT/r/$v.txt; done
