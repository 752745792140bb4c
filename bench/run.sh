#!/usr/bin/env bash
# The benchmark suite in one command: installs what is missing, builds
# retryd (Release), runs every benchmark and writes bench/RESULTS.md and
# bench/passthrough.png. Usage:
#   bench/run.sh [--quick] [--only CELL]... [--retryd PATH] [--out FILE]
# CELL: passthrough, https, durable, drain, memory, postgres, recall; a run with --only
# replaces only those sections of RESULTS.md. With --retryd PATH it measures
# that binary and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
missing=()
# postgresql: the postgres cell starts a throwaway cluster of its own
# (tests/pg/pg_cluster.py) and runs its pgbench.
for p in wrk nginx-light haproxy gnuplot-nox valgrind strace postgresql; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx-light's package starts a system nginx on port 80, postgresql's a
# system cluster on port 5432; the suite starts its own servers and never
# touches those.
for a in "$@"; do
  case "$a" in --retryd|--retryd=*) exec python3 bench/run.py "$@" ;; esac
done
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" >/dev/null
exec python3 bench/run.py --retryd build-bench/retryd "$@"
