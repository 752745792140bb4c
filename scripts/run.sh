#!/usr/bin/env bash
# The first of the README's two commands: installs what is missing, builds,
# and starts retryd with the default upstream and an embedded SQLite file.
# Extra arguments go to retryd (e.g. --upstream http://127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh --no-tests >/dev/null
exec ./build/retryd "$@"
