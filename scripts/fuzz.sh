#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz/, clang) and runs each one for a
# bounded time. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
#
# Every tests/fuzz/fuzz_<name>.c is a target. Each starts from a copy of its
# seed corpus, tests/fuzz/corpus/<name>/, in a temporary directory (what it
# discovers is thrown away: the repository is never written), with
# tests/fuzz/fuzz_<name>.dict as its dictionary when there is one. Any
# finding (crash, leak, undefined behaviour, an input slower than
# FUZZ_INPUT_TIMEOUT seconds, out of memory) fails the run; the input that
# caused it is kept under build-fuzz/findings/ and its path printed, with
# the report. Prints the executions per target and in total.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
case "$secs" in
  ''|*[!0-9]*|0) echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number > 0, not '$secs'" >&2; exit 2 ;;
esac
# One input of these parsers takes microseconds: seconds means a hang.
FUZZ_INPUT_TIMEOUT=10

bash scripts/deps.sh --test
dir=$(bash scripts/build.sh --fuzz | tail -n 1)
findings="$PWD/$dir/findings"
logs="$PWD/$dir/logs"
mkdir -p "$findings" "$logs"
work=$(mktemp -d /tmp/retryd-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
total=0
ntargets=0
failed=()
shopt -s nullglob
sources=(tests/fuzz/fuzz_*.c)
if [ ${#sources[@]} -eq 0 ]; then
  echo "fuzz.sh: no tests/fuzz/fuzz_*.c target" >&2
  exit 1
fi
for src in "${sources[@]}"; do
  target=$(basename "$src" .c)
  name=${target#fuzz_}
  ntargets=$((ntargets + 1))
  corpus="$work/$name"
  mkdir -p "$corpus"
  if [ -d "tests/fuzz/corpus/$name" ]; then
    cp -R "tests/fuzz/corpus/$name/." "$corpus/"
  else
    echo "fuzz.sh: $target has no seed corpus (tests/fuzz/corpus/$name/): starting empty" >&2
  fi
  args=(-max_total_time="$secs" -timeout="$FUZZ_INPUT_TIMEOUT" -print_final_stats=1
        -artifact_prefix="$findings/$target-")
  if [ -f "tests/fuzz/$target.dict" ]; then
    args+=(-dict="tests/fuzz/$target.dict")
  fi
  log="$logs/$target.log"
  rc=0
  "$dir/tests/fuzz/$target" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  execs=${execs:-0}
  total=$((total + execs))
  if [ "$rc" -eq 0 ]; then
    printf '%-24s %12s executions in %ss, no finding\n' "$target" "$execs" "$secs"
  else
    failed+=("$target")
    printf '%-24s %12s executions, FINDING (exit %s); full log: %s\n' "$target" "$execs" "$rc" "$log"
    # The report: from the sanitizer's or libFuzzer's first line to the input.
    sed -n '/^==[0-9]*==\|runtime error:/,/^Base64:/p' "$log" | head -n 80
    artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
    echo "  the input is kept at: ${artifact:-(none written)}"
  fi
done
printf '%-24s %12s executions\n' "total" "$total"
# The plain closing line CI reads: a target passes when it found nothing.
echo "fuzz: $((ntargets - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
