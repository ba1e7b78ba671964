#!/usr/bin/env bash
# Installs every Debian 12 package that building and testing attn-mlir needs.
# Idempotent; run as root (or through sudo).
set -euo pipefail

packages=(
  # LLVM / MLIR 22 (bookworm-security) and the compiler that builds us.
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools clang-22 lld-22 libomp-22-dev
  # clang-22's sanitizer runtimes: the ASan + UBSan build of .ci/run links them.
  libclang-rt-22-dev
  # LLVMConfig.cmake needs zstd's CMake target.
  libzstd-dev
  cmake ninja-build ccache
  # Python: the numpy reference and its tests (Debian's /usr/bin/python3).
  python3 python3-numpy python3-pytest libopenblas0-pthread
  # The installable package (pip install --no-build-isolation .) and its torch tensor tests.
  python3-setuptools python3-pip python3-torch
  # Sharded layers on CPU processes: libmpi for attn-compile, mpirun for the tests.
  libopenmpi-dev openmpi-bin
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "setup-debian: all packages present"
