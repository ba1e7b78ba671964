#!/bin/bash
# Prepared by the nineteenth session for the next one (about 3 minutes):
#   run(command="build/next10/run.sh", carry=["build/next10"])
# Build it here first (no GPU needed), from the session's HEAD:
#   /usr/bin/python3 test/gpu/build_device_tests.py build/next10/dt --only gptq
#   /usr/bin/python3 benchmarks/gpu/bench_quant_gemv.py build/next10/bq-n10240 --build --shape 4096,10240
#   cp benchmarks/results/gpu-h200-2026-12-05-s19/next-run.sh build/next10/run.sh
# 1. The 93 GPTQ device cases, among them quant_gemm_gptq_wide_k512_n10240_bf16 (32 rows on
#    the GEMV, 33 and 64 on the wgmma GEMM: gptqGemvMaxRows), which has not run on a GPU.
# 2. GPTQ at N 10240 around the rule's edge (expect 32 rows ~25 us on the GEMV, 33-64 ~29.5 us
#    on the GEMM).
mkdir -p $OUT/r
OUT=$OUT/r timeout 150 python3 test/gpu/run_device_tests.py build/next10/dt --stall 30 > $OUT/r/dt.log 2>&1
tail -1 $OUT/r/dt.log; grep -v PASS $OUT/r/device-tests-table.txt | tail -n +4 | head
timeout 100 python3 benchmarks/gpu/bench_quant_gemv.py build/next10/bq-n10240 --weights gptq --rows 1,16,32,33,48,64 2>&1 | grep -v '^{' | tail -n 8
