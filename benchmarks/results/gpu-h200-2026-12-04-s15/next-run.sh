#!/bin/bash
# Prepared by the fifteenth session (HEAD 3dd568a) for the next one: one device call,
#   run(command="build/next5/run.sh", carry=["build/next5"])    (about 6 minutes)
# GPTQ at 17-64 rows: gemv_gptq_m32 (32 rows of x a block, gemv-gptq-m32.patch; the PTX
# simulation passes) against HEAD's 16-row slices.
#   bq-base / layer-base: HEAD (ea42a18 kernels): bench_quant_gemv.py --build, build_bench_layer.py
#   bq-m32s3 / layer-m32s3: + gemv-gptq-m32.patch (3 stages: 152 KB, one block a multiprocessor)
#   bq-m32s2 / layer-m32s2: HEAD + gemv-gptq-m32-2-stages.patch instead (2 stages: 100 KB, two blocks)
#   dt-gptq: build_device_tests.py --only gptq with gemv-gptq-m32.patch (78 cases)
mkdir -p $OUT/r
OUT=$OUT/r timeout 90 python3 test/gpu/run_device_tests.py build/next5/dt-gptq --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
B=benchmarks/gpu/bench_quant_gemv.py
for pass in 1 2; do
  for v in bq-base bq-m32s3 bq-m32s2; do
    echo "== pass $pass $v" >> $OUT/r/gptq.txt
    timeout 60 python3 $B build/next5/$v --weights gptq --rows 17,24,32,48,64 2>&1 | tail -5 >> $OUT/r/gptq.txt
  done
done
for v in layer-base layer-m32s3 layer-m32s2; do
  mkdir -p $OUT/r/$v; OUT=$OUT/r/$v timeout 120 python3 benchmarks/gpu/bench_layer.py build/next5/$v --model llama3-8b --only decode-64 > $OUT/r/$v.txt 2>&1
done
cat $OUT/r/gptq.txt; for v in layer-base layer-m32s3 layer-m32s2; do echo "== $v"; tail -n 3 $OUT/r/$v.txt; done
