#!/usr/bin/env bash
# Configures and builds retryd. Usage: scripts/build.sh [--sanitize]
# The plain build goes to build/, the ASan+UBSan build to build-asan/.
# Warnings are errors in both.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=(-DRETRYD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DRETRYD_WERROR=ON -DRETRYD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "$dir"
