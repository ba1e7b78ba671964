#!/usr/bin/env bash
# The test suite: set up, build, run check-attn (lit: dialect, passes,
# examples, the numpy reference's own tests).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-debian.sh"
"$root/scripts/build.sh" "$@"
cmake --build "${BUILD_DIR:-$root/build}" --target check-attn
