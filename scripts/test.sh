#!/usr/bin/env bash
# The second of the README's two commands: installs what is missing, builds,
# and runs every test (unit, fuzz corpus replay, integration) with ctest.
# Usage: scripts/test.sh [--sanitize | --tsan]
#   --sanitize  the same suite in the ASan+UBSan build (build-asan/)
#   --tsan      the same suite in the ThreadSanitizer build (build-tsan/),
#               less the tests listed in TSAN_EXCLUDE below
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
dir=$(bash scripts/build.sh "$@" | tail -n 1)
# A small quarantine keeps freed memory from counting as live in the
# memory-bound tests (ASan holds 256 MiB of freed blocks by default).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:quarantine_size_mb=16"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The first race stops the process (exit 66), so the test that caused it
# fails and shows the report; the harness also fails a test whose retryd
# printed "WARNING: ThreadSanitizer". tsan.supp only silences reports from
# inside the uninstrumented Debian libraries (each entry says why).
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
exclude=()
if [ "$dir" = build-tsan ]; then
  # Tests that cannot mean anything under TSan (it multiplies memory by
  # 5-10 and time by 5-15), each with its reason:
  #   integration/test_container: builds the image from the Dockerfile,
  #     which compiles its own plain build: no instrumented code runs.
  TSAN_EXCLUDE='^integration/test_container$'
  exclude=(-E "$TSAN_EXCLUDE")
fi
cd "$dir"
ctest --output-on-failure --timeout 300 -j "$(nproc)" "${exclude[@]}"
