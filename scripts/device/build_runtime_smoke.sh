#!/usr/bin/env bash
# Builds build/device/libaxpy.so: an MLIR gpu.launch_func program (axpy.mlir)
# lowered with upstream's NVVM pipeline to a sm_90a fatbin embedded in host
# code that calls libattn_cuda_runtime's mgpu* functions. The device machine
# has no MLIR: build here, carry build/device and build/lib there, run
# runtime_smoke.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${BUILD_DIR:-$root/build}/device"
mkdir -p "$out"
bin=/usr/lib/llvm-22/bin
"$bin/mlir-opt" "$root/scripts/device/axpy.mlir" \
  --gpu-lower-to-nvvm-pipeline="cubin-chip=sm_90a cubin-features=+ptx80 cubin-format=fatbin" \
  -o "$out/axpy.llvm.mlir"
"$bin/mlir-translate" --mlir-to-llvmir "$out/axpy.llvm.mlir" -o "$out/axpy.ll"
"$bin/clang" -O2 -fPIC -shared -Wno-override-module "$out/axpy.ll" -o "$out/libaxpy.so" \
  -L"${BUILD_DIR:-$root/build}/lib" -lattn_cuda_runtime -Wl,-rpath,'$ORIGIN/../lib'
echo "built $out/libaxpy.so"
