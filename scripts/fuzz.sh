#!/usr/bin/env bash
# Runs the libFuzzer target attn-fuzz (tools/attn-fuzz: parse -> verify ->
# expansion, fusion, attn-lower-to-cpu, convert-attn-to-gpu) for SECONDS
# (default 120) from a seed corpus of every test/**/*.mlir split at
# `// -----`, plus examples/*.mlir.
#
#   scripts/fuzz.sh [SECONDS]
#
# Uses ${FUZZ_BUILD_DIR} if it has bin/attn-fuzz (CI: build-asan, configured
# with -DATTN_ENABLE_SANITIZERS=ON -DATTN_BUILD_FUZZER=ON), else configures
# and builds build-fuzz with both options. Exits non-zero on a crash, hang
# (-timeout=60 s per input), out-of-memory (4 GiB) or sanitizer report; the
# input that did it is left as crash-*/timeout-*/oom-* in ${FUZZ_ARTIFACTS}
# (default: fuzz-artifacts/). Extra libFuzzer flags may follow SECONDS.
#
# Leak detection is off: MLIR keeps registries and uniqued storage in
# process-lifetime globals that LeakSanitizer reports at exit, and a context
# leaking per input would show up as rss growth (-rss_limit_mb) anyway. The
# other ASAN_OPTIONS are those of test/lit.cfg.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-120}"
shift || true
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
if [ ! -x "$build/bin/attn-fuzz" ]; then
  BUILD_DIR="$build" "$root/scripts/build.sh" \
    -DATTN_ENABLE_SANITIZERS=ON -DATTN_BUILD_FUZZER=ON
fi

corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
# One seed per `// -----` split of each test, as attn-opt -split-input-file;
# not test/Fuzz (known slow or crashing inputs).
find "$root/test" "$root/examples" -path "$root/test/Fuzz" -prune -o -name '*.mlir' -print | sort | while read -r f; do
  name="$(echo "${f#"$root"/}" | tr '/' '_')"
  awk -v out="$corpus/$name" '
    BEGIN { n = 0; file = out "." n }
    /^\/\/ -----/ { close(file); n++; file = out "." n; next }
    { print > file }' "$f"
done
echo "fuzz.sh: $(ls "$corpus" | wc -l) seeds, ${seconds} s"

artifacts="${FUZZ_ARTIFACTS:-$root/fuzz-artifacts}"
mkdir -p "$artifacts"
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0:detect_leaks=0:allow_user_poisoning=0}" \
  "$build/bin/attn-fuzz" -max_total_time="$seconds" -timeout=60 \
  -rss_limit_mb=4096 -max_len=65536 -detect_leaks=0 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$@" "$corpus"
