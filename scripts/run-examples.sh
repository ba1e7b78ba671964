#!/usr/bin/env bash
# The main job: set up, build, print every example layer through the
# expansion pass, then compile the Llama-3.1-8B layer for this CPU and run a
# prefill and a decode step against the numpy reference (error and time), and
# a small whole model through one compiled function for every layer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
"$root/scripts/setup-debian.sh"
"$root/scripts/build.sh"
for example in "$root"/examples/*.mlir; do
  echo "=== $(basename "$example"): attn-opt --attn-expand-composite --canonicalize"
  "$build/bin/attn-opt" "$example" --attn-expand-composite --canonicalize
done
echo "=== examples/llama3_8b.mlir on the CPU: attn-compile --target=cpu, prefill + decode"
ATTN_COMPILE="$build/bin/attn-compile" /usr/bin/python3 "$root/examples/run_cpu_layer.py"
echo "=== examples/whole_model/run_stack.py: one compiled function for every layer of an 8-layer model"
ATTN_COMPILE="$build/bin/attn-compile" /usr/bin/python3 "$root/examples/whole_model/run_stack.py"
