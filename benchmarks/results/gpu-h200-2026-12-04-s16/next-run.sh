#!/bin/bash
# Prepared by the sixteenth session (HEAD 88ebc02) for the next one: one device call,
#   run(command="build/next6/run.sh", carry=["build/next6"])    (about 8 minutes)
# The wgmma GEMM serves M > 64 (64-token blocks up to 128 rows: gemm_gptq_wgmma_m128).
# GPTQ above 64 rows on gemm_gptq_wgmma (GemmGPTQWgmma.cpp: decoded weights as wgmma's
# register A; the PTX simulation passes) against the mma.sync GEMM (gemm_gptq).
#   dt-gptq: build_device_tests.py --only gptq on HEAD (78 cases: the GEMM at 65, 512, 2048)
#   bq-wgmma / layer-wgmma: HEAD: bench_quant_gemv.py --build, build_bench_layer.py
#   bq-mma / layer-mma: HEAD with emitQuantizedMatmul's wgmma test replaced by false
#     (GemvQuantKernel.cpp, "if (false && // TEMP"), full rebuild, same scripts
mkdir -p $OUT/r
OUT=$OUT/r timeout 120 python3 test/gpu/run_device_tests.py build/next6/dt-gptq --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
B=benchmarks/gpu/bench_quant_gemv.py
# Most important first: a call past 600 s is cut off, but what is under $OUT comes back.
bench() {
  echo "== pass $1 $2" >> $OUT/r/gemm.txt
  timeout 120 python3 $B build/next6/$2 --weights gptq,bf16 --rows 128,512,2048,8192 2>&1 | tail -12 >> $OUT/r/gemm.txt
}
bench 1 bq-wgmma; bench 1 bq-mma
mkdir -p $OUT/r/layer-wgmma $OUT/r/layer-mma
OUT=$OUT/r/layer-wgmma timeout 180 python3 benchmarks/gpu/bench_layer.py build/next6/layer-wgmma --model llama3-8b --only prefill > $OUT/r/layer-wgmma.txt 2>&1
OUT=$OUT/r/layer-mma timeout 90 python3 benchmarks/gpu/bench_layer.py build/next6/layer-mma --model llama3-8b-gptq --only prefill > $OUT/r/layer-mma.txt 2>&1
bench 2 bq-mma; bench 2 bq-wgmma
cat $OUT/r/gemm.txt; for v in layer-wgmma layer-mma; do echo "== $v"; tail -n 12 $OUT/r/$v.txt; done
