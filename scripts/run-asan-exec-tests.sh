#!/usr/bin/env bash
# The CPU execution tests of the ops (python/tests/test_cpu_exec_ops.py: every
# op alone, f32/bf16/f16, paged and explicit-K/V attention, prefill and decode;
# test_cpu_exec_runtime_layer.py: run-time layers, checked and clamped;
# test_cpu_exec_input_checks.py: bad index inputs rejected without a stray access;
# test_cpu_exec_quant.py's GPTQ kernel: 1-37 rows, three chunk widths, AVX2)
# on libraries built by `attn-compile --sanitize=address`: the generated code
# is checked by AddressSanitizer for out-of-bounds and use-after-free
# accesses. About 40 s on 2 cores. ASAN_EXEC_TESTS (test files under python/,
# split on whitespace) picks others: all of tests/test_cpu_exec*.py (243 tests)
# take about 5 minutes.
#
# ATTN_COMPILE (default build/bin/attn-compile, an uninstrumented build: an
# ASan-instrumented compiler links its own static runtime, which clashes with
# the preloaded shared one) builds the libraries; python3 is not instrumented,
# so the shared runtime is preloaded to come first in the process. numpy's
# buffers come from malloc, which the runtime intercepts, so an access past an
# argument's buffer is a heap-buffer-overflow.
#
# detect_leaks=0: CPython and numpy keep interned objects, caches and module
# state alive until exit, which LeakSanitizer would report as leaks of the
# interpreter, not of the generated code.
#
# Extra arguments go to pytest (e.g. -k rms_norm). Fails on a failing test or
# on any AddressSanitizer report (ASan aborts the process at the first one).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export ATTN_COMPILE="${ATTN_COMPILE:-$root/build/bin/attn-compile}"
runtime="$(clang-22 -print-file-name=libclang_rt.asan-x86_64.so)"
[ -f "$runtime" ] || { echo "no shared ASan runtime ($runtime): install libclang-rt-22-dev" >&2; exit 1; }
[ -x "$ATTN_COMPILE" ] || { echo "attn-compile not built at $ATTN_COMPILE" >&2; exit 1; }
# pytest captures file descriptor 2 and ASan aborts before pytest prints it:
# reports go to files (log_path) instead, printed here; -v names each test
# before it runs, so the last name printed is the one ASan stopped in.
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
status=0
( cd "$root/python" &&
  ATTN_COMPILE_FLAGS="--sanitize=address${ATTN_COMPILE_FLAGS:+ $ATTN_COMPILE_FLAGS}" \
  ASAN_OPTIONS="detect_leaks=0:log_path=$logs/asan" LD_PRELOAD="$runtime" \
  /usr/bin/python3 -m pytest -v -p no:cacheprovider ${ASAN_EXEC_TESTS:-tests/test_cpu_exec_ops.py tests/test_cpu_exec_runtime_layer.py tests/test_cpu_exec_input_checks.py tests/test_cpu_exec_quant.py::test_gptq_kernel} "$@" ) ||
  status=$?
if compgen -G "$logs/asan*" >/dev/null; then
  cat "$logs"/asan* >&2
  echo "run-asan-exec-tests: AddressSanitizer reported an error (above)" >&2
  exit 1
fi
exit "$status"
