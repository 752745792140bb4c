#!/usr/bin/env bash
# Configures and builds retryd.
# Usage: scripts/build.sh [--sanitize | --tsan | --fuzz] [--no-tests]
#   (none)      build/       the release build (RelWithDebInfo)
#   --sanitize  build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer
#   --tsan      build-tsan/  ThreadSanitizer: the loop, storage and log
#                            threads share state
#   --fuzz      build-fuzz/  the libFuzzer targets of tests/fuzz (clang)
# Warnings are errors in all of them. Prints the build directory last.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=(-DRETRYD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON)
target=()
for arg in "$@"; do
  case "$arg" in
    --sanitize)
      dir=build-asan
      flags=(-DRETRYD_WERROR=ON -DRETRYD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DBUILD_TESTING=ON) ;;
    --tsan)
      # -O1 as TSan's documentation advises: Debug's -O0 makes it several
      # times slower still, and the timing-bound tests need the headroom.
      dir=build-tsan
      flags=(-DRETRYD_WERROR=ON -DRETRYD_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
             "-DCMAKE_C_FLAGS_DEBUG=-g -O1" -DBUILD_TESTING=ON) ;;
    --fuzz)
      # Only the fuzz targets and what they link: the daemon and the unit
      # tests are the other builds' business.
      dir=build-fuzz
      export CC=clang
      flags=(-DRETRYD_WERROR=ON -DRETRYD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF)
      target=(--target fuzz_targets) ;;
    --no-tests) flags+=(-DBUILD_TESTING=OFF) ;;
    *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${target[@]}"
echo "$dir"
