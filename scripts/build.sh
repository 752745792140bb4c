#!/usr/bin/env bash
# Configures and builds retryd. Usage: scripts/build.sh [--sanitize] [--no-tests]
# The plain build goes to build/, the ASan+UBSan build to build-asan/.
# Warnings are errors in both. Prints the build directory last.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=(-DRETRYD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON)
for arg in "$@"; do
  case "$arg" in
    --sanitize)
      dir=build-asan
      flags=(-DRETRYD_WERROR=ON -DRETRYD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DBUILD_TESTING=ON) ;;
    --no-tests) flags+=(-DBUILD_TESTING=OFF) ;;
    *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "$dir"
