#!/usr/bin/env bash
# Installs what retryd needs from Debian/Ubuntu packages. Idempotent: installs
# only what is missing, and does nothing when all is there. Needs root or
# sudo when something is missing.
#   scripts/deps.sh          build and run retryd
#   scripts/deps.sh --test   also everything the test suite uses
set -euo pipefail

packages=(
  build-essential cmake pkg-config     # compiler and build
  libuv1-dev                           # the event loop
  libcurl4-openssl-dev                 # https upstreams over HTTP/2 (curl multi)
  libssl-dev                           # TLS for retryd's own HTTP/1.1 upstream client
  libsqlite3-dev                       # the durable queue (SQLite, the embedded default)
  libpq-dev                            # the PostgreSQL backend (--db postgres://)
  libconfig-dev                        # the routes file (--config): libconfig syntax, errors with their line
  node-llhttp                          # llhttp C sources, built by CMake
  ca-certificates                      # verifying an https upstream
)
if [ "${1:-}" = "--test" ]; then
  packages+=(
    libcmocka-dev                      # C unit tests
    postgresql                         # a real PostgreSQL, started by the tests
    python3 openssl                    # integration tests and their TLS certificates
    python3-prometheus-client          # checks /_retryd/metrics with a real parser
    python3-requests nodejs            # run the README's client snippets (docs/clients/) in a test
    chromium                           # loads the status page headless in a test
    strace                             # injects fsync errors in the I/O-error test
    podman buildah runc debootstrap    # builds and runs the sidecar image in a test
    python3-yaml                       # checks the deploy/ examples parse
    nginx-light                        # an HTTP/2 (TLS) upstream in a test
    clang libclang-rt-14-dev           # scripts/fuzz.sh: clang 14 (Debian 12's) and its libFuzzer
  )
  # scripts/test.sh --sanitize and --tsan use gcc's own libasan, libubsan
  # and libtsan, which build-essential's gcc brings.
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
