# syntax=docker/dockerfile:1
# retryd sidecar image. Build from the repository root:
#
#   docker build -t retryd .                       # or: podman build --format docker -t retryd .
#
# Two stages: `build` compiles retryd with the project's own CMake from the
# same Debian packages scripts/deps.sh installs (build part only); the runtime
# stage holds the shared libraries retryd links, the CA bundle and the binary.
# Set-up and examples: deploy/README.md.

############################ build ############################
FROM debian:bookworm-slim AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libuv1-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libpq-dev libconfig-dev node-llhttp \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the build reads (tests are not built: BUILD_TESTING=OFF).
COPY CMakeLists.txt ./
COPY lib/ lib/
COPY proxy/ proxy/
COPY storage/ storage/
COPY lib/ lib/
RUN cmake -S . -B build -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j \
 && install -D -m 0755 -s build/retryd /out/usr/local/bin/retryd \
 && /out/usr/local/bin/retryd --version

############################ runtime ############################
FROM debian:bookworm-slim

# The shared libraries of the -dev packages above, and the CA bundle that
# verifies the upstream's certificate (--upstream-ca defaults to it).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libcurl4 libssl3 libsqlite3-0 libpq5 libconfig9 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log

# A fixed, numeric, non-root uid/gid: Kubernetes' runAsNonRoot can only verify
# a numeric USER, and fsGroup / volume ownership refer to it.
RUN groupadd --system --gid 10001 retryd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/retryd \
      --no-create-home --shell /usr/sbin/nologin retryd \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/retryd

COPY --from=build /out/usr/local/bin/retryd /usr/local/bin/retryd

# Configuration comes from RETRYD_* variables (every option has one). Prefer
# them to command-line flags: `retryd healthcheck` reads the same variables, so
# it asks the address retryd actually listens on.
ENV RETRYD_LISTEN=0.0.0.0:8080 \
    RETRYD_DB=/var/lib/retryd/queue.db

# The durable queue. Mount a named volume / PersistentVolumeClaim here: the
# container's own layer is lost with the container, and with it every stored
# request. A new named volume takes this directory's owner (10001) and mode.
VOLUME /var/lib/retryd
EXPOSE 8080

USER 10001:10001
WORKDIR /var/lib/retryd

# retryd runs as PID 1 without an init: it handles SIGTERM/SIGINT itself (stops
# accepting, lets requests in flight finish within --shutdown-timeout, 20 s by
# default, then exits 0) and forks no children. Give the container a stop
# grace period above the shutdown timeout (30 s: `docker stop -t 30`,
# compose `stop_grace_period`, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM

# Exits 0 when GET /_retryd/health on RETRYD_LISTEN answers 200 (503 when the
# store cannot write). Kept in the image with `--format docker` under
# podman/buildah (the OCI image format has no HEALTHCHECK).
HEALTHCHECK --interval=10s --timeout=6s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/retryd", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/retryd"]
