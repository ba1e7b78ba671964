#!/usr/bin/env bash
# The main job: set up, build, then run attn-opt on every example layer
# through the expansion pass and print the IR.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-debian.sh"
"$root/scripts/build.sh"
for example in "$root"/examples/*.mlir; do
  echo "=== $(basename "$example"): attn-opt --attn-expand-composite --canonicalize"
  "${BUILD_DIR:-$root/build}/bin/attn-opt" "$example" --attn-expand-composite --canonicalize
done
