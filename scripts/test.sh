#!/usr/bin/env bash
# The second of the README's two commands: installs what is missing, builds,
# and runs every test (unit and integration) with ctest.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: ASan+UBSan build)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
dir=$(bash scripts/build.sh "$@" | tail -n 1)
# A small quarantine keeps freed memory from counting as live in the
# memory-bound tests (ASan holds 256 MiB of freed blocks by default).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:quarantine_size_mb=16"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
cd "$dir"
ctest --output-on-failure --timeout 300 -j "$(nproc)"
