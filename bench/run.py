#!/usr/bin/env python3
"""retryd's benchmark suite: retryd against nginx and HAProxy, same run.

Every server runs with its own config, pid and logs in a temporary
directory on loopback ports, pinned: wrk on CPU 0, the upstream and the
proxy under test on CPU 1 (so every proxy shares one core with the same
upstream). Only the processes this script started are stopped.

Pass-through matrix: GET and 1 KiB JSON POST, 64 and 256 connections,
targets direct / nginx / haproxy / retryd, interleaved repetitions; medians
with min-max of req/s, p50, p99, and the proxy's CPU microseconds per
request (utime+stime from /proc/PID/stat over the run).

https upstream cell (--only https): the same upstream serving TLS (a
self-signed CA made with the openssl CLI in the temp directory), GET and
POST at 64 connections through retryd (--upstream https://... --upstream-ca),
nginx (proxy_pass https://, verified, keepalive pool) and HAProxy (ssl
verify required, http-reuse always), all three keeping their upstream
connections alive; the upstream's stub_status counts the connections opened
during each measured run to show it.

Queue benchmarks: durable acceptance (upstream answers 507), drain of
100,000 stored requests, memory (idle, 10,000 idle connections, 1,000,000
stored) and start-up time with 1,000,000 stored.

PostgreSQL cell (--only postgres): a throwaway PostgreSQL 15 cluster of its
own (tests/pg/pg_cluster.py; fsync and synchronous_commit on) on the disk of
the SQLite files, pinned to CPU 1 with the upstream and retryd. Durable
acceptance on PostgreSQL, on SQLite and pgbench's one-INSERT-per-transaction
rate on the same cluster (64 clients, -j 2, pinned to CPU 0 like wrk),
interleaved; then the drain of the stored requests by one and by three
replicas sharing one database.

Recall cell (--only recall): bench/recall_sim.py plays Recall's create-bot
endpoint (507 while its bot pool is empty, 429 above 120 a minute per API
key) in time 30 times faster; 1,000 requests (one key, then four keys of
250) arrive during a 10-minute outage, through retryd with flow control
off (--route-pause off, no rate limit) and on (deploy/recall-routes.cfg,
scaled). Counted: requests sent upstream during the outage, 429s after
recovery, recovery to an empty queue against the rate limit's floor. Then
pass-through GET and POST through that routes file (a path no route takes,
one the last route takes) against HAProxy.

Writes bench/RESULTS.md and bench/passthrough.png. Run it through
bench/run.sh, which installs and builds what it needs. A run with --only
replaces only its own sections of an existing RESULTS.md. --retryd PATH
measures another binary (run.sh then builds nothing).
"""
import argparse
import collections
import http.client
import json
import math
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
CPU_LOAD = "0"      # wrk
CPU_SERVERS = "1"   # upstream and proxy under test
BODY_200 = ('{"id":"bot_7f3a9c21e4b84d0f","status":"ready","meeting_url":'
            '"https://meet.example.com/abc-defg-hij","created_at":"2026-11-27T00:00:00Z",'
            '"metadata":{"team":"sales","region":"us-east-1"},"pad":"xxxxxx"}')
assert len(BODY_200) == 200, len(BODY_200)
POST_BODY = json.dumps({"meeting_url": "https://meet.example.com/abc-defg-hij",
                        "bot_name": "Notetaker", "pad": "x" * 932})
assert len(POST_BODY) == 1024, len(POST_BODY)
TICKS = os.sysconf("SC_CLK_TCK")
ANALYSIS_MARKER = "<!-- analysis: kept across runs -->"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """One process we started (pinned), stopped exactly by its pid."""

    def __init__(self, name, argv, tmp, cpu=CPU_SERVERS, env=None):
        self.name = name
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def nginx_conf(tmp, name, server_block, worker_connections=20000):
    path = os.path.join(tmp, name + ".conf")
    with open(path, "w") as f:
        f.write("""daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid %(tmp)s/%(name)s.pid;
error_log %(tmp)s/%(name)s.error.log warn;
events { worker_connections %(wc)d; }
http {
  access_log off;
  client_body_temp_path %(tmp)s/%(name)s.body;
  proxy_temp_path %(tmp)s/%(name)s.proxy;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  %(block)s
}
""" % {"tmp": tmp, "name": name, "wc": worker_connections, "block": server_block})
    return path


def start_upstream(tmp, port, name="upstream", flag=None, pki=None, status_port=None):
    """nginx answering 200 (GET) / 201 (POST, body read) with 200 bytes; with
    flag, 507 while that file exists. With pki (make_pki), it serves TLS
    (HTTP/1.1 only: no http2, so every proxy speaks the same protocol to it).
    With status_port, stub_status answers there over plain http."""
    outage = ('if (-f %s) { return 507 \'{"code":"insufficient_bots"}\'; }' % flag) if flag else ""
    tls = ""
    if pki:
        tls = """ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_session_cache shared:up:1m;""" % (pki["cert"], pki["key"])
    status = ""
    if status_port:
        status = """
  server {
    listen 127.0.0.1:%d;
    location = /status { stub_status; }
  }""" % status_port
    block = """server {
    listen 127.0.0.1:%d backlog=4096 %s
    location / {
      default_type application/json;
      %s
      if ($request_method = POST) { return 201 '%s'; }
      return 200 '%s';
    }
  }%s""" % (port, tls or ";", outage, BODY_200, BODY_200, status)
    srv = Server(name, ["nginx", "-c", nginx_conf(tmp, name, block)], tmp)
    wait_port(port)
    return srv


def openssl(tmp, *argv):
    subprocess.run(["openssl"] + list(argv), cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(tmp):
    """A throw-away test CA and a server certificate it signs (P-256, for
    127.0.0.1 and localhost), made with the openssl CLI in tmp."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(tmp, "req", "-x509", *ec, "-keyout", "bench-ca.key", "-out", "bench-ca.pem",
            "-days", "2", "-subj", "/CN=retryd bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(tmp, "bench-srv.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl(tmp, "req", *ec, "-keyout", "bench-srv.key", "-out", "bench-srv.csr",
            "-subj", "/CN=localhost")
    openssl(tmp, "x509", "-req", "-in", "bench-srv.csr", "-CA", "bench-ca.pem",
            "-CAkey", "bench-ca.key", "-CAcreateserial", "-out", "bench-srv.pem",
            "-days", "2", "-extfile", "bench-srv.ext")
    return {k: os.path.join(tmp, v) for k, v in (("ca", "bench-ca.pem"),
                                                 ("cert", "bench-srv.pem"),
                                                 ("key", "bench-srv.key"))}


def upstream_accepts(status_port):
    """Connections the upstream has accepted so far (nginx stub_status)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % status_port, timeout=10) as r:
        lines = r.read().decode().splitlines()
    return int(lines[2].split()[0])  # " accepts handled requests" figures


def start_nginx_proxy(tmp, port, up_port, conns, pki=None, name="nginx-proxy"):
    """nginx proxy_pass with a keepalive pool as large as the client
    connections; with pki, to an https upstream whose certificate (chain and
    name) it verifies, reusing TLS sessions."""
    tls = ""
    if pki:
        tls = """proxy_ssl_trusted_certificate %s;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;""" % pki["ca"]
    block = """upstream up { server 127.0.0.1:%d; keepalive %d; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:%d backlog=4096;
    location / {
      proxy_pass %s://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
      %s
    }
  }""" % (up_port, conns, port, "https" if pki else "http", tls)
    srv = Server(name, ["nginx", "-c", nginx_conf(tmp, name, block)], tmp)
    wait_port(port)
    return srv


def start_haproxy(tmp, port, up_port, pki=None, name="haproxy"):
    """HAProxy 2.6, one thread, http-reuse always; with pki, to an https
    upstream verified against the test CA (chain, and the name localhost),
    TLS sessions reused (ssl-reuse is on by default)."""
    tls = (" ssl verify required ca-file %s verifyhost localhost" % pki["ca"]) if pki else ""
    path = os.path.join(tmp, name + ".cfg")
    with open(path, "w") as f:
        f.write("""global
  nbthread 1
  maxconn 8000
  pidfile %s/%s.pid
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:%d
  default_backend be
backend be
  server up 127.0.0.1:%d maxconn 10000%s
""" % (tmp, name, port, up_port, tls))
    srv = Server(name, ["haproxy", "-db", "-f", path], tmp)
    wait_port(port)
    return srv


def start_retryd(args, tmp, port, up_port, db, extra=(), name="retryd", scheme="http",
                 pause_off=True):
    # --route-pause off: the queue cells measure what each request costs on
    # its own way (sent, answered 507, stored; claimed, sent again), which a
    # route paused by the first 507 would skip; flow control is measured on
    # its own terms (the recall cell: pause_off=False).
    argv = [args.retryd, "--upstream", "%s://127.0.0.1:%d" % (scheme, up_port),
            "--listen", "127.0.0.1:%d" % port, "--db", db, "--log-level", "warn"]
    argv += (["--route-pause", "off"] if pause_off else []) + list(extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    srv = Server(name, argv, tmp, env=env)
    wait_port(port, 30)
    return srv


def write_post_lua(tmp):
    path = os.path.join(tmp, "post.lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = '
                '"application/json"\n' % json.dumps(POST_BODY))
    return path


def parse_latency(text, pct):
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == pct:
            v = parts[1]
            for unit, mult in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
                if v.endswith(unit):
                    return float(v[:-len(unit)]) * mult
    return float("nan")


def run_wrk(url, conns, seconds, lua=None):
    argv = ["taskset", "-c", CPU_LOAD, "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
            "--latency", "--timeout", "10s"]
    if lua:
        argv += ["-s", lua]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    res = {"rps": 0.0, "requests": 0, "non2xx": 0, "errors": 0}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            res["rps"] = float(s.split()[1])
        elif "requests in" in s:
            res["requests"] = int(s.split()[0])
        elif s.startswith("Non-2xx or 3xx responses:"):
            res["non2xx"] = int(s.split()[-1])
        elif s.startswith("Socket errors:"):
            res["errors"] = sum(int(x.strip(",")) for x in s.split()[3::2])
    res["p50"] = parse_latency(out, "50%")
    res["p99"] = parse_latency(out, "99%")
    return res


def measure(url, conns, seconds, lua, pid):
    t0 = cpu_ticks(pid)
    r = run_wrk(url, conns, seconds, lua)
    t1 = cpu_ticks(pid)
    r["cpu_us_per_req"] = (t1 - t0) / TICKS * 1e6 / max(r["requests"], 1)
    return r


def get_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30) as r:
        return json.loads(r.read())


def fdatasync_rate(directory, seconds=3.0):
    path = os.path.join(directory, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n, t0 = 0, time.time()
    while time.time() - t0 < seconds:
        os.write(fd, b"x" * 4096)
        os.fdatasync(fd)
        n += 1
    rate = n / (time.time() - t0)
    os.close(fd)
    os.unlink(path)
    return rate


# ---------------------------------------------------------------------------

def passthrough(args, tmp, lua):
    up_port = free_port()
    upstream = start_upstream(tmp, up_port)
    results = {}  # (method, conns, target) -> list of runs
    try:
        for conns in args.conns:
            ports = {"direct": up_port}
            servers = {}
            ports["nginx"] = free_port()
            servers["nginx"] = start_nginx_proxy(tmp, ports["nginx"], up_port, conns)
            ports["haproxy"] = free_port()
            servers["haproxy"] = start_haproxy(tmp, ports["haproxy"], up_port)
            ports["retryd"] = free_port()
            servers["retryd"] = start_retryd(args, tmp, ports["retryd"], up_port,
                                             os.path.join(tmp, "pt-%d.db" % conns))
            pids = {t: (servers[t].pid if t in servers else upstream.pid) for t in ports}
            try:
                targets = list(ports)
                for rep in range(args.reps):
                    order = targets[rep % len(targets):] + targets[:rep % len(targets)]
                    for method in ("GET", "POST"):
                        for t in order:
                            url = "http://127.0.0.1:%d/api/v1/bot/" % ports[t]
                            l = lua if method == "POST" else None
                            run_wrk(url, conns, args.warmup, l)
                            r = measure(url, conns, args.seconds, l, pids[t])
                            results.setdefault((method, conns, t), []).append(r)
                            log("%-4s c=%-3d %-7s rep %d: %8.0f req/s p50 %6.2f ms p99 %6.2f ms "
                                "%5.1f us/req%s" % (method, conns, t, rep, r["rps"], r["p50"],
                                                    r["p99"], r["cpu_us_per_req"],
                                                    "  NON-2XX %d" % r["non2xx"] if r["non2xx"] else ""))
            finally:
                for s in servers.values():
                    s.stop()
    finally:
        upstream.stop()
    return results


HTTPS_TARGETS = ("nginx", "haproxy", "retryd")
HTTPS_CONNS = 64


def https_passthrough(args, tmp, lua):
    """The pass-through cell with an https upstream: GET and POST at 64
    connections through the three proxies, interleaved like passthrough()."""
    pki = make_pki(tmp)
    up_port, status_port = free_port(), free_port()
    upstream = start_upstream(tmp, up_port, "upstream-https", pki=pki, status_port=status_port)
    ports, servers, results = {}, {}, {}
    try:
        ports["nginx"] = free_port()
        servers["nginx"] = start_nginx_proxy(tmp, ports["nginx"], up_port, HTTPS_CONNS, pki,
                                             "nginx-proxy-https")
        ports["haproxy"] = free_port()
        servers["haproxy"] = start_haproxy(tmp, ports["haproxy"], up_port, pki, "haproxy-https")
        ports["retryd"] = free_port()
        servers["retryd"] = start_retryd(args, tmp, ports["retryd"], up_port,
                                         os.path.join(tmp, "https.db"),
                                         ["--upstream-ca", pki["ca"]], "retryd-https", "https")
        # A proxy that cannot verify the upstream answers 502 very fast:
        # make sure each one relays the upstream's own answer first.
        for t in HTTPS_TARGETS:
            url = "http://127.0.0.1:%d/api/v1/bot/" % ports[t]
            with urllib.request.urlopen(url, timeout=30) as r:
                body = r.read().decode()
            if r.status != 200 or body != BODY_200:
                raise RuntimeError("https cell: %s answered %d %r" % (t, r.status, body[:200]))
        for rep in range(args.reps):
            k = rep % len(HTTPS_TARGETS)
            order = HTTPS_TARGETS[k:] + HTTPS_TARGETS[:k]
            for method in ("GET", "POST"):
                for t in order:
                    url = "http://127.0.0.1:%d/api/v1/bot/" % ports[t]
                    l = lua if method == "POST" else None
                    run_wrk(url, HTTPS_CONNS, args.https_warmup, l)
                    accepts = upstream_accepts(status_port)
                    up_ticks = cpu_ticks(upstream.pid)
                    r = measure(url, HTTPS_CONNS, args.https_seconds, l, servers[t].pid)
                    r["upstream_conns"] = upstream_accepts(status_port) - accepts - 1
                    r["upstream_cpu_us_per_req"] = ((cpu_ticks(upstream.pid) - up_ticks) / TICKS
                                                    * 1e6 / max(r["requests"], 1))
                    results.setdefault((method, t), []).append(r)
                    log("https %-4s c=%d %-7s rep %d: %8.0f req/s p50 %6.2f ms p99 %6.2f ms "
                        "%5.1f us/req, upstream %5.1f us/req, %d new upstream conns%s" % (
                            method, HTTPS_CONNS, t, rep, r["rps"], r["p50"], r["p99"],
                            r["cpu_us_per_req"], r["upstream_cpu_us_per_req"],
                            r["upstream_conns"],
                            "  NON-2XX %d" % r["non2xx"] if r["non2xx"] else ""))
    finally:
        for srv in servers.values():
            srv.stop()
        upstream.stop()
    return results


def durable_acceptance(args, tmp, lua):
    up_port, port = free_port(), free_port()
    flag = os.path.join(tmp, "outage")
    open(flag, "w").close()
    upstream = start_upstream(tmp, up_port, "upstream-507", flag)
    db = os.path.join(tmp, "durable.db")
    rd = start_retryd(args, tmp, port, up_port, db, ["--retry-interval", "1h"], "retryd-durable")
    try:
        url = "http://127.0.0.1:%d/api/v1/bot/" % port
        run_wrk(url, 64, args.warmup, lua)
        # Repeated like the pass-through cells: one run on this shared
        # machine can be off by a tenth either way.
        runs = []
        for rep in range(args.reps):
            runs.append(measure(url, 64, args.seconds, lua, rd.pid))
            log("durable rep %d: %.0f 202/s" % (rep, runs[-1]["rps"]))
        stats = get_json(port, "/_retryd/stats")
    finally:
        rd.stop()
        upstream.stop()
    rps, rps_min, rps_max = med(runs, "rps")
    return {"rps": rps, "rps_min": rps_min, "rps_max": rps_max,
            "non2xx": sum(r["non2xx"] for r in runs), "p50": med(runs, "p50")[0],
            "p99": med(runs, "p99")[0], "cpu_us_per_req": med(runs, "cpu_us_per_req")[0],
            "stored": stats["totals"]["stored"], "fsync_per_s": fdatasync_rate(tmp)}


def fill(port, lua, target, seconds_cap=600):
    """POSTs through retryd (upstream down) until target requests are stored."""
    url = "http://127.0.0.1:%d/api/v1/bot/" % port
    t0 = time.time()
    while True:
        stored = get_json(port, "/_retryd/stats")["queue"]["queued"]
        if stored >= target or time.time() - t0 > seconds_cap:
            return stored, time.time() - t0
        run_wrk(url, 64, 5, lua)


def drain(args, tmp, lua):
    up_port, port = free_port(), free_port()
    flag = os.path.join(tmp, "outage-drain")
    open(flag, "w").close()
    upstream = start_upstream(tmp, up_port, "upstream-drain", flag)
    db = os.path.join(tmp, "drain.db")
    rd = start_retryd(args, tmp, port, up_port, db,
                      ["--retry-interval", "2s", "--retry-concurrency", "64"], "retryd-drain")
    try:
        stored, took = fill(port, lua, args.drain_rows)
        log("drain: %d stored in %.1f s; upstream recovers" % (stored, took))
        time.sleep(2.5)  # every row is due now
        os.unlink(flag)
        t0 = time.time()
        while True:
            q = get_json(port, "/_retryd/stats")["queue"]
            if q["queued"] + q["inflight"] == 0:
                break
            if time.time() - t0 > 600:
                raise RuntimeError("drain did not finish in 600 s: %r" % q)
            time.sleep(0.1)
        seconds = time.time() - t0
        completed = get_json(port, "/_retryd/stats")["queue"]["completed"]
    finally:
        rd.stop()
        upstream.stop()
    return {"stored": stored, "seconds": seconds, "completed": completed}


def idle_connections(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), 5)
        socks.append(s)
    return socks


def memory(args, tmp, lua):
    up_port, port = free_port(), free_port()
    flag = os.path.join(tmp, "outage-mem")
    open(flag, "w").close()
    upstream = start_upstream(tmp, up_port, "upstream-mem", flag)
    db = os.path.join(tmp, "mem.db")
    out = {}
    extra = ["--retry-interval", "24h", "--client-timeout", "600s", "--keepalive-timeout", "600s"]
    rd = start_retryd(args, tmp, port, up_port, db, extra, "retryd-mem")
    try:
        time.sleep(1)
        out["idle_kib"] = rss_kib(rd.pid)
        socks = idle_connections(port, args.idle_conns)
        time.sleep(2)
        out["idle_conns"] = len(socks)
        out["idle_conns_kib"] = rss_kib(rd.pid)
        for s in socks:
            s.close()
        stored, took = fill(port, lua, args.big_rows, seconds_cap=900)
        out["stored"] = stored
        out["fill_s"] = took
    finally:
        rd.stop()
    try:
        t0 = time.time()
        rd = start_retryd(args, tmp, port, up_port, db, extra, "retryd-mem-restart")
        # Start-up is over when the first request is answered.
        while True:
            try:
                get_json(port, "/_retryd/health")
                break
            except OSError:
                time.sleep(0.01)
        out["startup_s"] = time.time() - t0
        time.sleep(1)
        out["stored_kib"] = rss_kib(rd.pid)
        out["db_bytes"] = os.path.getsize(db) + (os.path.getsize(db + "-wal")
                                                 if os.path.exists(db + "-wal") else 0)
        rd.stop()
    finally:
        upstream.stop()
    return out


# ---------------------------------------------------------------------------
# PostgreSQL: retryd's durable acceptance on a PostgreSQL queue against
# PostgreSQL's own one-commit-per-insert rate (pgbench), and the drain of a
# shared queue by one and by three replicas.

PG_TARGETS = ("postgres", "sqlite", "pgbench")
PG_CLIENTS, PG_JOBS = 64, 2
PG_RATIO_TARGET = 3.0
PG_REPLICAS = (1, 3)
# Seconds of pgbench's -T for its 64 sessions to connect, on top of the
# warm-up and the measured seconds: well under one on a quiet machine, but
# up to 6 seen on a busy one (each session is a backend forked, and
# authenticated by SCRAM, on the one CPU the server has).
PGBENCH_CONNECT_S = 10
PGBENCH_TABLE = ("CREATE TABLE bench_rows (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                 "created_at timestamptz NOT NULL DEFAULT now(), body text NOT NULL)")
# One row per transaction (autocommit), its body the 1 KiB JSON wrk POSTs.
PGBENCH_SQL = "INSERT INTO bench_rows (body) VALUES ('%s');\n" % POST_BODY
assert "'" not in POST_BODY and "\\" not in POST_BODY


def pg_module():
    """tests/pg/pg_cluster.py, imported as the tests import it."""
    d = os.path.join(HERE, "..", "tests", "pg")
    if d not in sys.path:
        sys.path.insert(0, d)
    import pg_cluster
    return pg_cluster


def pin_process_tree(pid, cpu):
    """Pins pid and its children to cpu ("1"). The PostgreSQL backends and
    workers forked later inherit the postmaster's affinity."""
    cpus = {int(c) for c in cpu.split(",")}
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    for p in pids:
        try:
            os.sched_setaffinity(p, cpus)
        except ProcessLookupError:
            pass


def start_pg(tmp):
    """A PostgreSQL cluster of the cell's own, pinned with the servers.
    Its files go on the disk of the SQLite files (tmp's parent, /var/tmp or
    TMPDIR, not a /tmp that may be tmpfs), so that a commit costs the same
    fdatasync on both backends. pg_cluster makes its directory with
    tempfile.mkdtemp(); tmp itself (0700) is out of the postgres user's reach."""
    pgc = pg_module()
    saved = tempfile.tempdir
    tempfile.tempdir = os.path.dirname(tmp)
    try:
        pg = pgc.PgCluster().start()
    finally:
        tempfile.tempdir = saved
    pin_process_tree(pg.postmaster_pid(), CPU_SERVERS)
    return pg


def pg_password(dsn):
    return dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def pgbench_argv(pg, script, seconds, database="pgbench", display=False):
    """pgbench's command line (display: as the report shows it, with the
    script's name and without the cluster's port)."""
    exe = "pgbench" if display else os.path.join(pg.bindir, "pgbench")
    return ["taskset", "-c", CPU_LOAD, exe, "-n", "-M", "prepared", "-c", str(PG_CLIENTS),
            "-j", str(PG_JOBS), "-T", str(seconds), "-P", "1",
            "-f", os.path.basename(script) if display else script,
            "-h", "127.0.0.1", "-p", "PORT" if display else str(pg.port), "-U", "retryd",
            database]


def pgbench_seconds(args):
    """-T: pgbench's duration counts its connecting too."""
    return PGBENCH_CONNECT_S + args.warmup + args.seconds


def run_pgbench(pg, dsn, script, args):
    """One pgbench run. Its 64 sessions are new, and their first
    transactions load their caches: like wrk against a retryd that has run
    a warm-up, the rate is that of args.seconds of its 1-second progress
    reports (-P 1) that follow args.warmup seconds of transactions."""
    env = dict(os.environ, PGPASSWORD=pg_password(dsn), PGCONNECT_TIMEOUT="10")
    for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGOPTIONS"):
        env.pop(k, None)
    total = pgbench_seconds(args)
    p = subprocess.run(pgbench_argv(pg, script, total), capture_output=True, text=True,
                       env=env, timeout=total + 120)
    if p.returncode != 0:
        raise RuntimeError("pgbench failed (exit %d): %s" % (
            p.returncode, (p.stderr.strip().splitlines() or ["no output"])[-1]))
    res = {"non2xx": 0, "connect_ms": float("nan"), "tps_all": 0.0}
    for line in p.stdout.splitlines():
        s = line.strip()
        if s.startswith("tps ="):
            res["tps_all"] = float(s.split()[2])
        elif s.startswith("number of failed transactions:"):
            res["non2xx"] = int(s.split(":")[1].split()[0])
        elif s.startswith("initial connection time ="):
            res["connect_ms"] = float(s.split()[4])
    # "progress: 5.0 s, 1553.0 tps, lat 41.166 ms stddev 23.591, 0 failed"
    reports = []
    for line in p.stderr.splitlines():
        if line.startswith("progress:"):
            parts = line.split(",")
            reports.append((float(parts[0].split()[1]), float(parts[1].split()[0]),
                            float(parts[2].split()[1])))
    # The first report ends when every session is connected; the warm-up
    # runs from there to the first report args.warmup seconds later, and
    # the measured run from that one to args.seconds after it.
    start = next((i for i, r in enumerate(reports)
                  if r[0] >= reports[0][0] + args.warmup - 0.05), None)
    taken = [] if start is None else [
        r for r in reports[start + 1:] if r[0] <= reports[start][0] + args.seconds + 0.05]
    if not taken:
        raise RuntimeError("pgbench: %d progress reports, none after the %d s warm-up "
                           "(connecting took %.0f ms)" % (len(reports), args.warmup,
                                                          res["connect_ms"]))
    span = taken[-1][0] - reports[start][0]
    if span < args.seconds - 0.5:
        log("pgbench: only %.1f of %d s measured (connecting took %.0f ms)"
            % (span, args.seconds, res["connect_ms"]))
    # Each report's tps is over the time since the one before.
    done = [tps * (t - prev[0]) for (t, tps, _), prev in zip(taken, reports[start:])]
    res["requests"] = int(round(sum(done)))
    res["seconds"] = span
    res["rps"] = res["ok_rps"] = sum(done) / span
    res["latency_ms"] = sum(n * r[2] for n, r in zip(done, taken)) / max(sum(done), 1e-9)
    return res


def pg_durable(args, tmp, lua, pg):
    """202s per second through retryd on PostgreSQL and on SQLite (the
    durable cell's set-up: upstream answers 507, 64 connections, 1 KiB
    POSTs), and pgbench's one-INSERT-per-transaction rate on the same
    cluster, interleaved, each run after a CHECKPOINT."""
    pgc = pg_module()
    up_port = free_port()
    flag = os.path.join(tmp, "outage-pg")
    open(flag, "w").close()
    upstream = start_upstream(tmp, up_port, "upstream-pg-507", flag)
    dsn, bench_dsn = pg.create_databases(["durable", "pgbench"])
    pgc.query(bench_dsn, PGBENCH_TABLE)
    script = os.path.join(tmp, "insert.sql")
    with open(script, "w") as f:
        f.write(PGBENCH_SQL)
    ports, servers, runs = {}, {}, {}
    try:
        ports["sqlite"] = free_port()
        servers["sqlite"] = start_retryd(args, tmp, ports["sqlite"], up_port,
                                         os.path.join(tmp, "pg-cell-durable.db"),
                                         ["--retry-interval", "1h"], "retryd-durable-sqlite")
        ports["postgres"] = free_port()
        servers["postgres"] = start_retryd(args, tmp, ports["postgres"], up_port, dsn,
                                           ["--retry-interval", "1h"], "retryd-durable-pg")
        urls = {t: "http://127.0.0.1:%d/api/v1/bot/" % ports[t] for t in ports}

        def one(t, seconds):
            if t == "pgbench":
                return run_pgbench(pg, bench_dsn, script, args)
            r = measure(urls[t], PG_CLIENTS, seconds, lua, servers[t].pid)
            r["ok_rps"] = r["rps"] * (r["requests"] - r["non2xx"]) / max(r["requests"], 1)
            return r

        for t in ("postgres", "sqlite"):  # pgbench warms up in each of its runs
            run_wrk(urls[t], PG_CLIENTS, args.warmup, lua)
        for rep in range(args.reps):
            k = rep % len(PG_TARGETS)
            for t in PG_TARGETS[k:] + PG_TARGETS[:k]:
                # Every run starts from a checkpoint: none lands inside one
                # run and not another, and each pays the same full-page
                # writes after it.
                pg.psql("CHECKPOINT;")
                r = one(t, args.seconds)
                runs.setdefault(t, []).append(r)
                log("postgres durable %-8s rep %d: %8.0f /s%s%s" % (
                    t, rep, r["ok_rps"],
                    "  latency %.2f ms over %.1f s, connecting %.0f ms, whole run %.0f tps" % (
                        r["latency_ms"], r["seconds"], r["connect_ms"], r["tps_all"])
                    if t == "pgbench" else "  p50 %.2f ms p99 %.2f ms %.1f us/req" % (
                        r["p50"], r["p99"], r["cpu_us_per_req"]),
                    "  NON-2XX/FAILED %d" % r["non2xx"] if r["non2xx"] else ""))
    finally:
        for s in servers.values():
            s.stop()
        upstream.stop()
    return {"runs": runs,
            "pgbench_argv": pgbench_argv(pg, script, pgbench_seconds(args), display=True),
            "fsync_per_s": fdatasync_rate(tmp)}


def fill_replicas(ports, lua, target, conns=64, seconds_cap=600):
    """POSTs through every replica at once (conns connections in all, wrk
    on CPU 0) until target requests wait in the shared queue (queued or
    inflight: the replicas keep retrying them against the 507)."""
    urls = ["http://127.0.0.1:%d/api/v1/bot/" % p for p in ports]
    split = [conns // len(ports) + (i < conns % len(ports)) for i in range(len(ports))]
    t0 = time.time()
    with ThreadPoolExecutor(len(ports)) as pool:
        while True:
            q = get_json(ports[0], "/_retryd/stats")["queue"]
            waiting = q["queued"] + q["inflight"]
            if waiting >= target or time.time() - t0 > seconds_cap:
                return waiting, time.time() - t0
            list(pool.map(lambda a: run_wrk(a[0], a[1], 5, lua), zip(urls, split)))


def pg_drain(args, tmp, lua, pg, replicas):
    """The drain cell on PostgreSQL: replicas retryd processes on one fresh
    database (the drain cell's flags), filled through all of them while the
    upstream answers 507; then the upstream recovers and the clock runs until
    the shared queue is empty."""
    pgc = pg_module()
    up_port = free_port()
    flag = os.path.join(tmp, "outage-pg-drain-%d" % replicas)
    open(flag, "w").close()
    upstream = start_upstream(tmp, up_port, "upstream-pg-drain-%d" % replicas, flag)
    dsn = pg.create_database("drain_%d" % replicas)
    servers, ports = [], []
    try:
        for i in range(replicas):
            ports.append(free_port())
            servers.append(start_retryd(args, tmp, ports[-1], up_port, dsn,
                                        ["--retry-interval", "2s", "--retry-concurrency", "64"],
                                        "retryd-pg-drain-%d-%d" % (replicas, i)))
        stored, took = fill_replicas(ports, lua, args.drain_rows)
        log("postgres drain x%d: %d stored in %.1f s; upstream recovers" % (replicas, stored, took))
        time.sleep(2.5)  # every row is due now
        os.unlink(flag)
        t0 = time.time()
        while True:
            q = get_json(ports[0], "/_retryd/stats")["queue"]
            if q["queued"] + q["inflight"] == 0:
                break
            if time.time() - t0 > 600:
                raise RuntimeError("postgres drain x%d did not finish in 600 s: %r" % (replicas, q))
            time.sleep(0.1)
        seconds = time.time() - t0
        completed = get_json(ports[0], "/_retryd/stats")["queue"]["completed"]
    finally:
        for s in servers:
            s.stop()
        upstream.stop()
    # Who completed them: retryd's per-replica counters (state 2 is
    # completed). Only for the report; a schema that moved on loses the
    # column, not the run.
    try:
        shares = sorted((int(l.split("|")[1]) for l in pgc.query(
            dsn, "SELECT replica, n FROM retryd_counts WHERE state = 2 AND n > 0")), reverse=True)
    except pgc.PgError as e:
        log("postgres drain x%d: per-replica counts unavailable: %s" % (replicas, e))
        shares = []
    return {"replicas": replicas, "stored": stored, "fill_s": took, "seconds": seconds,
            "completed": completed, "shares": shares}


def postgres_cell(args, tmp, lua):
    pg = start_pg(tmp)
    try:
        out = {"server_version": pg.psql("SHOW server_version;").strip(),
               "pgbench_version": version([os.path.join(pg.bindir, "pgbench"), "--version"])}
        out["durable"] = pg_durable(args, tmp, lua, pg)
        out["drains"] = [pg_drain(args, tmp, lua, pg, n) for n in PG_REPLICAS]
    finally:
        pg.cleanup()
    return out


# ---------------------------------------------------------------------------
# A simulated Recall (issue 13): bench/recall_sim.py plays Recall's
# create-bot endpoint (507 while its bot pool is empty, 429 above the limit
# per API key), in scaled time. 1,000 create-bot requests arrive during a
# 10-minute outage; retryd forwards them with flow control off (the
# pre-routes behaviour: --route-pause off, no rate limit) and on
# (deploy/recall-routes.cfg, its durations scaled), and the cell counts
# what reached the upstream during the outage, the 429s after recovery, and
# how long the queue took to empty against the time the rate limit allows.
# Then pass-through through the routes file against HAProxy.

RECALL_ROUTES = os.path.join(HERE, "..", "deploy", "recall-routes.cfg")
RECALL_SIM = os.path.join(HERE, "recall_sim.py")
RECALL_ROUTE = "us-create-bot"     # the route whose limit and interval the cell uses
RECALL_PATH = "/us-east-1/api/v1/bot/"  # where the application posts with the file
RECALL_SCALE = 30                  # time runs 30 times faster: a Recall minute is 2 s
RECALL_OUTAGE_MIN = 10             # Recall minutes the bot pool stays empty
RECALL_BOT_RETRY_AFTER_S = 30      # Recall's 507: "retry in 30 seconds"
RECALL_SHAPES = ((1, 1000), (4, 250))  # API keys x requests per key
# Flow control off; on, the pool refilled at the 10-minute mark; on, the
# pool refilled just after every key's probe was refused (the worst phase:
# the next probes are a whole interval later).
RECALL_MODES = ("off", "on", "on-worst")
RECALL_MODE_NAMES = {"off": "off", "on": "on", "on-worst": "on, worst phase"}
# The pacing check: time 2 times faster only (a Recall minute is 30 s, a
# send every 250 ms), a 1-minute outage, one key, a few requests more than
# a minute's limit. At 30 times, a few ms late per send add up to more
# than the 16.7 ms between two sends over a minute; here they do not,
# as with Recall's real 500 ms.
RECALL_CHECK = (2, 1, 1, 125)      # scale, outage minutes, keys, requests per key
RECALL_CLIENTS = 8                 # client connections sending the arrivals
RECALL_POLL_S = 0.02               # how often the queue is looked at after recovery
RECALL_PT_TARGETS = ("haproxy", "retryd", "unmatched", "matched")
RECALL_PT_CONNS = 64
# Pass-through paths: a path no route of the file takes (it goes to
# --upstream), and one the last route ("eu", after three that do not take
# it) takes and strips its prefix from.
RECALL_PT_UNMATCHED = "/api/v1/bot/"
RECALL_PT_MATCHED = "/eu-central-1/api/v1/recording/"
DURATION_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}


def routes_field(text, route, field):
    """A field's raw value ("120/1m", "30s") in the named route of a
    routes file, comments dropped; None when it has none."""
    body = re.sub(r"#[^\n]*", "", text)
    for block in re.findall(r"\{([^{}]*)\}", body):
        fields = {k: v.strip().strip('"') for k, v in
                  re.findall(r'(\w+)\s*=\s*("[^"]*"|[^;]+);', block)}
        if fields.get("name") == route:
            return fields.get(field)
    return None


def duration_ms(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    if not m:
        raise RuntimeError("recall cell: %r is not a duration" % text)
    return int(m.group(1)) * DURATION_MS[m.group(2)]


def recall_routes(text, upstream, scale):
    """The routes file with every upstream replaced by upstream and every
    duration (rate limit periods too) divided by scale, in ms."""
    def dur(m):
        return '"%dms"' % max(1, round(duration_ms(m.group(1)) / scale))

    def rate(m):
        return '"%s/%dms"' % (m.group(1), max(1, round(duration_ms(m.group(2)) / scale)))

    text = re.sub(r'(\bupstream\s*=\s*)"[^"]*"', lambda m: m.group(1) + '"%s"' % upstream, text)
    text = re.sub(r'"(\d+)/(\d+(?:ms|s|m|h))"', rate, text)
    return re.sub(r'"(\d+(?:ms|s|m|h))"', dur, text)


def recall_policy(text, scale):
    """The create-bot route's limit and interval, in real (scaled) seconds."""
    rate = routes_field(text, RECALL_ROUTE, "rate_limit")
    interval = routes_field(text, RECALL_ROUTE, "retry_interval")
    if rate is None or "/" not in rate or interval is None:
        raise RuntimeError("recall cell: route %s in %s has no rate_limit or retry_interval"
                           % (RECALL_ROUTE, RECALL_ROUTES))
    n, per = rate.split("/", 1)
    return {"limit": int(n), "period_s": duration_ms(per) / 1000.0 / scale,
            "interval_s": duration_ms(interval) / 1000.0 / scale, "rate": rate,
            "interval": interval, "by": routes_field(text, RECALL_ROUTE, "rate_limit_by")}


def sim_call(port, method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path)
        r = c.getresponse()
        return json.loads(r.read())
    finally:
        c.close()


def start_sim(tmp, port, pol, scale, name):
    srv = Server(name, [sys.executable, RECALL_SIM, "--port", str(port),
                        "--limit", str(pol["limit"]), "--window", repr(pol["period_s"]),
                        "--bot-retry-after",
                        str(max(1, round(RECALL_BOT_RETRY_AFTER_S / scale)))], tmp)
    wait_port(port)
    return srv


def post_arrivals(port, path, schedule):
    """POSTs each (monotonic time, key) of schedule at its time, from
    RECALL_CLIENTS keep-alive connections; returns the answers' statuses
    (0: no answer) and how late the latest request went out."""
    todo = queue.Queue()
    for item in schedule:
        todo.put(item)
    statuses, late, lock = collections.Counter(), [0.0], threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            try:
                at, key = todo.get_nowait()
            except queue.Empty:
                break
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            lag = time.monotonic() - at
            try:
                conn.request("POST", path, body=POST_BODY, headers={
                    "Authorization": key, "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            with lock:
                statuses[status] += 1
                late[0] = max(late[0], lag)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(RECALL_CLIENTS)]
    for t in threads:
        t.start()
    return threads, statuses, late


def await_probes(sim_port, since, keys, timeout_s):
    """Returns once every key's request was refused 507 at or after since
    (each key's probe), or after timeout_s."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        seen = sim_call(sim_port, "GET", "/_sim/log")["log"]
        if len({k for t, k, st in seen if t >= since and st == 507}) >= keys:
            return
        time.sleep(0.005)


def window_peak(times, window):
    """The most of times (sorted) in any window (t - window, t]."""
    peak, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        peak = max(peak, hi - lo + 1)
    return peak


def recall_figures(log, t_out, t_rec, t_empty, pol, keys, per_key):
    """What the upstream saw, from the simulator's log."""
    by_key = collections.defaultdict(list)
    for t, key, status in log:
        by_key[key].append((t, status))
    during = [e for e in log if t_out <= e[0] < t_rec]
    after = [e for e in log if e[0] >= t_rec]
    # A key's first request finds the outage (at t_out or later); then one
    # probe an interval until the recovery.
    per_key_budget = 1 + math.floor((t_rec - t_out) / pol["interval_s"])
    probe_delay, gaps, first_gap, peaks, probe_gaps, last_created = [], [], [], [], [], []
    for key, ev in by_key.items():
        refused = [t for t, s in ev if s == 507 and t < t_rec]
        probe_gaps += [b - a for a, b in zip(refused[1:], refused[2:])]
        created = [t for t, s in ev if s == 201]
        if created:
            probe_delay.append(created[0] - t_rec)
        sent = [t for t, s in ev if t >= t_rec]
        gaps += [b - a for a, b in zip(sent, sent[1:])]
        if created:
            last_created.append(created[-1] - t_rec)
        if len(created) > 1:
            first_gap.append(created[1] - created[0])
        # What retryd sent in a window of the limit's period, answered or
        # refused: the limit says no window holds more than its N.
        peaks.append(window_peak(sorted(t for t, s in ev), pol["period_s"]))
    pace_ms = pol["period_s"] / pol["limit"] * 1000
    return {
        "during": len(during),
        "during_by_key_max": max(collections.Counter(k for _, k, _ in during).values() or [0]),
        "budget": keys * per_key_budget, "budget_per_key": per_key_budget,
        "after": len(after),
        "after_429": sum(1 for e in after if e[2] == 429),
        "all_429": sum(1 for e in log if e[2] == 429),
        "created": sum(1 for e in log if e[2] == 201),
        "drain_s": t_empty - t_rec if t_empty else None,
        "floor_s": per_key * pol["period_s"] / pol["limit"],
        "probe_delay_s": max(probe_delay) if probe_delay else None,
        "probe_delay_min_s": min(probe_delay) if probe_delay else None,
        "gap_median_ms": statistics.median(gaps) * 1000 if gaps else None,
        "gap_min_ms": min(gaps) * 1000 if gaps else None,
        "gap_max_ms": max(gaps) * 1000 if gaps else None,
        # Gaps of more than one and a half times the pace: sends late.
        "stalls": sum(1 for g in gaps if g * 1000 > 1.5 * pace_ms),
        "last_201_s": max(last_created) if last_created else None,
        "first_gap_ms": min(first_gap) * 1000 if first_gap else None,
        "pace_ms": pace_ms,
        "probe_period_ms": statistics.median(probe_gaps) * 1000 if probe_gaps else None,
        "window_peak": max(peaks or [0]),
    }


def recall_run(args, tmp, routes_text, mode, keys, per_key, scale, outage_min):
    """One outage of outage_min Recall minutes, time running scale times
    faster: retryd in front of a fresh simulator, keys x per_key create-bot
    requests arriving evenly during it, then the recovery, until the queue
    is empty."""
    pol = recall_policy(routes_text, scale)
    name = "recall-%s-%dx%d-s%d" % (mode, keys, per_key, scale)
    sim_port, port = free_port(), free_port()
    sim = start_sim(tmp, sim_port, pol, scale, "sim-" + name)
    interval_ms = max(1, round(pol["interval_s"] * 1000))
    extra = ["--retry-interval", "%dms" % interval_ms]
    if mode != "off":
        cfg = os.path.join(tmp, name + ".cfg")
        with open(cfg, "w") as f:
            f.write(recall_routes(routes_text, "http://127.0.0.1:%d" % sim_port, scale))
        extra += ["--config", cfg]
        path = RECALL_PATH
    else:
        extra += ["--route-pause", "off"]
        path = "/api/v1/bot/"
    outage_s = outage_min * 60.0 / scale
    rd = start_retryd(args, tmp, port, sim_port, os.path.join(tmp, name + ".db"), extra,
                      "retryd-" + name, pause_off=False)
    try:
        n = keys * per_key
        t_out = sim_call(sim_port, "POST", "/_sim/outage/on")["t"]
        schedule = [(t_out + (i + 0.5) * outage_s / n, "Token bench-key-%d" % (i % keys))
                    for i in range(n)]
        threads, statuses, late = post_arrivals(port, path, schedule)
        time.sleep(max(0.0, t_out + outage_s - time.monotonic()))
        for t in threads:
            t.join()
        if mode == "on-worst":
            await_probes(sim_port, t_out + outage_s, keys, 3 * pol["interval_s"])
        stored = get_json(port, "/_retryd/stats")["queue"]
        t_rec = sim_call(sim_port, "POST", "/_sim/outage/off")["t"]
        floor_s = per_key * pol["period_s"] / pol["limit"]
        deadline = t_rec + max(60.0, 8 * floor_s)
        t_empty = None
        while time.monotonic() < deadline:
            q = get_json(port, "/_retryd/stats")["queue"]
            if q["queued"] + q["inflight"] == 0:
                t_empty = time.monotonic()
                break
            time.sleep(RECALL_POLL_S)
        stats = get_json(port, "/_retryd/stats")
        seen = [tuple(e) for e in sim_call(sim_port, "GET", "/_sim/log")["log"]]
    finally:
        rd.stop()
        sim.stop()
    out = recall_figures(seen, t_out, t_rec, t_empty, pol, keys, per_key)
    out.update({"mode": mode, "keys": keys, "per_key": per_key, "n": n, "scale": scale,
                "policy": pol, "outage_min": outage_min,
                "outage_s": t_rec - t_out, "statuses": dict(statuses), "late_s": late[0],
                "stored_at_recovery": stored["queued"] + stored["inflight"],
                "pauses": sum(r["pauses"] for r in stats["routes"]),
                "left": stats["queue"]["queued"] + stats["queue"]["inflight"]})
    log_line = ("recall %-8s %dx%-4d (time x%d): during the outage %d sent (budget %d), after recovery "
                "%d sent, %d 429s; empty after %s s (floor %.2f s), first 201 after %s s, "
                "clients %r")
    log(log_line % (mode, keys, per_key, scale, out["during"], out["budget"], out["after"],
                    out["after_429"], "%.2f" % out["drain_s"] if t_empty else "NEVER",
                    out["floor_s"], "%.3f" % out["probe_delay_s"]
                    if out["probe_delay_s"] is not None else "-", out["statuses"]))
    return out


def recall_passthrough(args, tmp, lua, routes_text):
    """GET and POST at 64 connections through HAProxy, retryd without a
    routes file, and retryd with deploy/recall-routes.cfg (every upstream
    the local nginx) on a path no route takes and on one the last route
    takes; interleaved like passthrough()."""
    up_port = free_port()
    upstream = start_upstream(tmp, up_port, "upstream-recall-pt")
    cfg = os.path.join(tmp, "recall-pt.cfg")
    with open(cfg, "w") as f:
        f.write(recall_routes(routes_text, "http://127.0.0.1:%d" % up_port, 1))
    ports, servers, results = {}, {}, {}
    try:
        ports["haproxy"] = free_port()
        servers["haproxy"] = start_haproxy(tmp, ports["haproxy"], up_port, name="haproxy-recall")
        ports["retryd"] = free_port()
        servers["retryd"] = start_retryd(args, tmp, ports["retryd"], up_port,
                                         os.path.join(tmp, "recall-pt.db"), (),
                                         "retryd-recall-pt", pause_off=False)
        ports["routes"] = free_port()
        servers["routes"] = start_retryd(args, tmp, ports["routes"], up_port,
                                         os.path.join(tmp, "recall-pt-routes.db"),
                                         ["--config", cfg], "retryd-recall-pt-routes",
                                         pause_off=False)
        where = {"haproxy": ("haproxy", RECALL_PT_UNMATCHED),
                 "retryd": ("retryd", RECALL_PT_UNMATCHED),
                 "unmatched": ("routes", RECALL_PT_UNMATCHED),
                 "matched": ("routes", RECALL_PT_MATCHED)}
        for t, (srv, path) in where.items():
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (ports[srv], path),
                                        timeout=30) as r:
                if r.status != 200 or r.read().decode() != BODY_200:
                    raise RuntimeError("recall pass-through: %s answered %d" % (t, r.status))
        for rep in range(args.recall_reps):
            k = rep % len(RECALL_PT_TARGETS)
            order = RECALL_PT_TARGETS[k:] + RECALL_PT_TARGETS[:k]
            for method in ("GET", "POST"):
                for t in order:
                    srv, path = where[t]
                    url = "http://127.0.0.1:%d%s" % (ports[srv], path)
                    l = lua if method == "POST" else None
                    run_wrk(url, RECALL_PT_CONNS, args.recall_warmup, l)
                    r = measure(url, RECALL_PT_CONNS, args.recall_seconds, l, servers[srv].pid)
                    results.setdefault((method, t), []).append(r)
                    log("recall pass-through %-4s %-9s rep %d: %8.0f req/s p50 %6.2f ms "
                        "p99 %6.2f ms %5.1f us/req%s" % (
                            method, t, rep, r["rps"], r["p50"], r["p99"], r["cpu_us_per_req"],
                            "  NON-2XX %d" % r["non2xx"] if r["non2xx"] else ""))
    finally:
        for s in servers.values():
            s.stop()
        upstream.stop()
    return results


def recall_cell(args, tmp, lua):
    with open(RECALL_ROUTES) as f:
        routes_text = f.read()
    pol = recall_policy(routes_text, args.recall_scale)
    # The clients run on wrk's CPU; the simulator and retryd on the servers'.
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(CPU_LOAD)})
    t0 = time.monotonic()
    try:
        runs = [recall_run(args, tmp, routes_text, mode, keys, per_key, args.recall_scale,
                           args.recall_outage_min)
                for keys, per_key in args.recall_shapes for mode in RECALL_MODES]
        check = None
        if args.recall_check:
            scale, outage_min, keys, per_key = args.recall_check
            check = recall_run(args, tmp, routes_text, "on", keys, per_key, scale, outage_min)
    finally:
        os.sched_setaffinity(0, saved)
    sim_s = time.monotonic() - t0
    t0 = time.monotonic()
    pt = recall_passthrough(args, tmp, lua, routes_text)
    return {"policy": pol, "runs": runs, "check": check, "pt": pt, "sim_s": sim_s,
            "pt_s": time.monotonic() - t0}


def recall_section(args, rc):
    """The recall cell's lines."""
    pol = rc["policy"]
    sc = args.recall_scale
    L = []
    w = L.append
    w("## Recall simulation\n")
    w("Measured %s; command `bench/run.sh%s --only recall%s` or a full run; %s; %s; %s. The "
      "simulation took %.0f s, the pass-through %.0f s." % (
          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), " --quick" if args.quick else "",
          "" if sc == RECALL_SCALE else " --recall-scale %d" % sc,
          version([args.retryd, "--version"]), version(["haproxy", "-v"]),
          version(["wrk", "-v"]), rc["sim_s"], rc["pt_s"]))
    w("")
    w("`bench/recall_sim.py` plays Recall's create-bot endpoint (`POST /api/v1/bot/`) in time "
      "running %d times faster (a Recall minute lasts %.1f s): `507` with `Retry-After: %d` "
      "(Recall's 30 s, scaled) while its bot pool is empty; `429` with `Retry-After` (whole "
      "seconds until the window frees) above %d requests per %.1f s (Recall's %s) per API key "
      "(the `Authorization` header), counted in a sliding window as Django REST framework's "
      "throttle counts them: every request it lets through, a `507` too; `201` otherwise. It "
      "answers at once (no latency of its own), pinned with retryd to CPU %s; the clients run "
      "on CPU %s. The bot pool is empty for %d Recall minute(s) (%.0f s), during which the "
      "requests arrive evenly from %d client connections, each answered `202` by retryd; then "
      "the pool is refilled (*recovery*), and the clock runs until retryd's queue is empty "
      "(`/_retryd/stats` polled every %d ms)." % (
          sc, 60.0 / sc, max(1, round(RECALL_BOT_RETRY_AFTER_S / sc)), pol["limit"],
          pol["period_s"], pol["rate"], CPU_SERVERS, CPU_LOAD, args.recall_outage_min,
          args.recall_outage_min * 60.0 / sc, RECALL_CLIENTS, RECALL_POLL_S * 1000))
    w("")
    w("- **off**: the pre-routes behaviour: `--route-pause off`, no rate limit, "
      "`--retry-interval %dms` (Recall's 30 s, scaled); the clients post to `/api/v1/bot/`."
      % round(pol["interval_s"] * 1000))
    w("- **on**: `--config` with `deploy/recall-routes.cfg` as shipped, its upstreams pointed "
      "at the simulator and its durations divided by %d (route `%s`: `rate_limit = \"%s\"` "
      "→ `%d/%dms`, `rate_limit_by = \"%s\"`, `retry_interval = \"%s\"` → `%dms`, pause on); "
      "the clients post to `%s`. The pool is refilled at the %d-minute mark, which is where "
      "the probes happen to fall in this schedule: each key's first request came at the start "
      "of the outage, and its probes one interval (and a few ms) apart since." % (
          sc, RECALL_ROUTE, pol["rate"], pol["limit"], round(pol["period_s"] * 1000),
          pol["by"], pol["interval"], round(pol["interval_s"] * 1000), RECALL_PATH,
          args.recall_outage_min))
    w("- **on, worst phase**: the same, but the pool is refilled only once every key's probe "
      "after the %d-minute mark was refused: every key's next probe, the first that can "
      "succeed, comes a whole interval after recovery." % args.recall_outage_min)
    w("")
    w("Goals: during the outage at most one request per key and interval (a key's first "
      "request, which finds the outage, then one probe an interval: %d per key for the "
      "outage's length, or its whole intervals); no "
      "`429` after recovery; the queue empty within 1.1× the floor the rate limit allows "
      "(a key's requests ÷ its limit: %d per %.1f s; the keys in parallel)." % (
          rc["runs"][0]["budget_per_key"], pol["limit"], pol["period_s"]))
    w("")
    w("| keys × requests | flow control | sent upstream during the outage (goal ≤) "
      "| 429s after recovery (all 429s) | sent after recovery | recovery → queue empty "
      "| floor | ÷ floor (goal ≤ 1.10) | first 201 after recovery | 201s | client answers |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rc["runs"]:
        on = r["mode"] != "off"
        drained = r["drain_s"] is not None
        ratio = r["drain_s"] / r["floor_s"] if drained else float("inf")
        w("| %d × %d | %s | %d (%d) %s | %d (%d) %s | %d | %s | %.2f s | %s | %s | %d | %s |" % (
            r["keys"], r["per_key"], RECALL_MODE_NAMES[r["mode"]], r["during"], r["budget"],
            ("met" if r["during"] <= r["budget"] else "**missed**") if on else "",
            r["after_429"], r["all_429"],
            ("met" if r["after_429"] == 0 else "**missed**") if on else "",
            r["after"], "%.2f s" % r["drain_s"] if drained else "**not empty** (%d left)" % r["left"],
            r["floor_s"], ("%.2f %s" % (ratio, ("met" if ratio <= 1.1 else "**missed**")
                                        if on else "")) if drained else "—",
            "%.2f s" % r["probe_delay_s"] if r["probe_delay_s"] is not None else "—",
            r["created"], ", ".join("%d× %s" % (v, k) for k, v in sorted(r["statuses"].items()))))
    w("")
    w("Where the time after recovery goes, flow control on: *probe period* is the median gap "
      "between two probes of one key during the outage (the interval is %d ms); *first 201* "
      "when each key's probe found the pool refilled (min–max over keys); *pace* the median "
      "gap between two requests of one key after recovery, against the limit's %.2f ms; "
      "*probe → next* the shortest gap between a key's probe (its first 201) and its next "
      "request; *peak* the most requests of one key sent in any window of %.1f s (the limit: "
      "%d); *longest gap* the longest between two requests of one key "
      "after its probe, with how many gaps were over 1.5 times the pace; *last 201* when the "
      "last request was created (the queue is found empty up to a poll later); the last two "
      "columns the drain once the last key's probe succeeded." % (
          round(pol["interval_s"] * 1000), rc["runs"][0]["pace_ms"],
                      pol["period_s"], pol["limit"]))
    w("")
    w("| keys × requests | flow control | probe period | first 201 after recovery "
      "| pace, median gap | probe → next | peak in a window | longest gap (gaps > 1.5× pace) "
      "| last 201 | last first 201 → empty | ÷ floor |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rc["runs"]:
        if r["mode"] == "off" or r["drain_s"] is None or r["probe_delay_s"] is None:
            continue
        rest = r["drain_s"] - r["probe_delay_s"]
        w("| %d × %d | %s | %s | %.3f–%.3f s | %.2f ms | %.2f ms | %d | %.0f ms (%d) | %.2f s "
          "| %.2f s | %.2f |" % (
              r["keys"], r["per_key"], RECALL_MODE_NAMES[r["mode"]],
              "%.0f ms" % r["probe_period_ms"] if r["probe_period_ms"] else "—",
              r["probe_delay_min_s"], r["probe_delay_s"], r["gap_median_ms"],
              r["first_gap_ms"] or float("nan"), r["window_peak"], r["gap_max_ms"],
              r["stalls"], r["last_201_s"], rest, rest / r["floor_s"]))
    w("")
    ck = rc.get("check")
    if ck:
        cp = ck["policy"]
        w("**Pacing check**: the *on* run at time %d times faster only (a Recall minute lasts "
          "%.0f s, a send every %.0f ms, the interval %.0f s): %d key × %d requests, a %d-minute "
          "outage. At 30 times faster, sends each about 0.6 ms late add up over a minute's "
          "sends to more than the 16.7 ms between two of them, and space them wider than the "
          "limit asks; at this pace, as at Recall's own 500 ms, they do not, and the window "
          "the limit promises is what the upstream sees.\n" % (
              ck["scale"], cp["period_s"], ck["pace_ms"], cp["interval_s"], ck["keys"],
              ck["per_key"], ck["outage_min"]))
        w("| time | sent during the outage (goal ≤) | 429s after recovery | route pauses "
          "| probe → next | pace, median gap | peak in a window (limit) | first 201 after "
          "recovery | recovery → empty | floor | ÷ floor |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        w("| ×%d | %d (%d) | %d %s | %d | %.2f ms | %.2f ms | %d (%d) | %.2f s | %s | %.2f s | %s |"
          % (ck["scale"], ck["during"], ck["budget"], ck["after_429"],
             "met" if ck["after_429"] == 0 else "**missed**", ck["pauses"],
             ck["first_gap_ms"] or float("nan"), ck["gap_median_ms"] or float("nan"),
             ck["window_peak"], cp["limit"], ck["probe_delay_s"] or float("nan"),
             "%.2f s" % ck["drain_s"] if ck["drain_s"] is not None else "**not empty**",
             ck["floor_s"], "%.2f" % (ck["drain_s"] / ck["floor_s"])
             if ck["drain_s"] is not None else "—"))
        w("")
    pt = rc["pt"]
    w("**Pass-through** (same run): GET and 1 KiB POST at %d connections, %d repetitions of "
      "%d s after a %d s warm-up, interleaved, set up as the pass-through cell (nginx upstream "
      "and the proxy on CPU %s, wrk on CPU %s). *retryd*: no routes file; *unmatched*: retryd "
      "`--config` with `deploy/recall-routes.cfg` (every upstream the local nginx), on `%s`, "
      "which no route takes (four routes tried); *matched*: the same retryd on `%s`, which "
      "the last route (`eu`) takes and strips its prefix from. All with route pausing on "
      "(the default).\n" % (RECALL_PT_CONNS, args.recall_reps, args.recall_seconds,
                            args.recall_warmup, CPU_SERVERS, CPU_LOAD, RECALL_PT_UNMATCHED,
                            RECALL_PT_MATCHED))
    # CPU per request too: on a shared machine the req/s of a run moves
    # with what else runs on its core, the CPU each request costs far less.
    w("| request | target | req/s median (min–max) | p50 ms | p99 ms | CPU µs/req | ÷ HAProxy "
      "req/s (goal ≥ 1.00) | ÷ HAProxy CPU µs/req | non-2xx |")
    w("|---|---|---|---|---|---|---|---|---|")
    for method in ("GET", "POST"):
        base = med(pt[(method, "haproxy")], "rps")[0]
        base_cpu = med(pt[(method, "haproxy")], "cpu_us_per_req")[0]
        for t in RECALL_PT_TARGETS:
            runs = pt[(method, t)]
            m, lo, hi = med(runs, "rps")
            cpu = med(runs, "cpu_us_per_req")[0]
            w("| %s | %s | %.0f (%.0f–%.0f) | %.2f | %.2f | %.1f | %s | %s | %d |" % (
                method, t, m, lo, hi, med(runs, "p50")[0], med(runs, "p99")[0], cpu,
                "" if t == "haproxy" else "%.2f %s" % (m / base, "met" if m >= base else
                                                       "**missed**"),
                "" if t == "haproxy" else "%.2f" % (cpu / base_cpu),
                sum(r["non2xx"] for r in runs)))
    w("")
    return L


# ---------------------------------------------------------------------------

def med(runs, key):
    v = [r[key] for r in runs]
    return statistics.median(v), min(v), max(v)


def version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except OSError:
        return "?"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%d CPUs (%s), %s, kernel %s" % (os.cpu_count(), model,
                                            platform.freedesktop_os_release().get(
                                                "PRETTY_NAME", "?"), platform.release())


def chart(args, results, path):
    if shutil.which("gnuplot") is None:
        return False
    data = os.path.join(os.path.dirname(path), ".chart.dat")
    targets = ["direct", "nginx", "haproxy", "retryd"]
    with open(data, "w") as f:
        for method in ("GET", "POST"):
            for conns in args.conns:
                row = [med(results[(method, conns, t)], "rps")[0] for t in targets]
                f.write('"%s c%d" %s\n' % (method, conns, " ".join("%.0f" % x for x in row)))
    script = """set terminal pngcairo size 900,480 font ",10"
set output '%s'
set title 'Pass-through req/s (median), wrk on CPU 0, upstream + proxy on CPU 1'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top
set ylabel 'requests/s'
set yrange [0:*]
set grid ytics
plot '%s' using 2:xtic(1) title 'direct (limit)', '' using 3 title 'nginx', '' using 4 title 'haproxy', '' using 5 title 'retryd'
""" % (path, data)
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(data)
    return True


def https_section(args, hs):
    """The https cell's lines: the figures, then retryd against the best peer."""
    L = []
    w = L.append
    w("## Pass-through to an https upstream\n")
    w("Measured %s; command `bench/run.sh%s --only https` or a full run (%d repetitions of %d s "
      "after a %d s warm-up each, interleaved); %s; %s." % (
          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), " --quick" if args.quick else "",
          args.reps, args.https_seconds, args.https_warmup,
          version([args.retryd, "--version"]), version(["openssl", "version"])))
    w("")
    w("The pass-through set-up above (same pinning, same upstream answers), but the upstream "
      "nginx serves TLS (HTTP/1.1 only, a P-256 certificate from a CA made with `openssl` for "
      "the run) and wrk talks plain http to the proxy. Every proxy verifies the certificate "
      "against that CA and keeps its upstream connections alive: retryd `--upstream "
      "https://127.0.0.1:PORT --upstream-ca ca.pem`; nginx `proxy_pass https://` to an "
      "`upstream` block with `keepalive %d`, `proxy_ssl_verify on`, "
      "`proxy_ssl_trusted_certificate`, `proxy_ssl_name localhost`, `proxy_ssl_session_reuse on`; "
      "HAProxy `server ... ssl verify required ca-file ca.pem verifyhost localhost` with "
      "`http-reuse always`. *New upstream conns* is the most the upstream accepted during one "
      "measured run (nginx `stub_status`): 0 means every request rode a kept-alive TLS "
      "connection. Upstream CPU µs/req is the upstream nginx's, which shares CPU 1 with the "
      "proxy.\n" % HTTPS_CONNS)
    w("| request | conns | target | req/s median (min–max) | p50 ms | p99 ms | CPU µs/req "
      "| upstream CPU µs/req | new upstream conns | non-2xx |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for method in ("GET", "POST"):
        for t in HTTPS_TARGETS:
            runs = hs[(method, t)]
            m, lo, hi = med(runs, "rps")
            w("| %s | %d | %s | %.0f (%.0f–%.0f) | %.2f | %.2f | %.1f | %.1f | %d | %d |" % (
                method, HTTPS_CONNS, t, m, lo, hi, med(runs, "p50")[0], med(runs, "p99")[0],
                med(runs, "cpu_us_per_req")[0], med(runs, "upstream_cpu_us_per_req")[0],
                max(r["upstream_conns"] for r in runs), sum(r["non2xx"] for r in runs)))
        best = max(("nginx", "haproxy"), key=lambda t: med(hs[(method, t)], "rps")[0])
        ratios.append((method, best) + tuple(
            med(hs[(method, "retryd")], k)[0] / med(hs[(method, best)], k)[0]
            for k in ("rps", "p50", "p99")))
    # p50 too: on a shared machine one scheduling stall moves a p99 far
    # more than a proxy does; the p50 shows the steady cost.
    w("\n| cell | best peer | retryd req/s ÷ peer (pass-through target ≥ 1.00) "
      "| retryd p50 ÷ peer | retryd p99 ÷ peer (pass-through target ≤ 1.10) |")
    w("|---|---|---|---|---|")
    for method, best, rr, p50r, pr in ratios:
        w("| https %s c%d | %s | %.2f %s | %.2f | %.2f %s |" % (
            method, HTTPS_CONNS, best, rr, "met" if rr >= 1.0 else "**missed**", p50r, pr,
            "met" if pr <= 1.1 else "**missed**"))
    w("")
    return L


def postgres_section(args, pgr):
    """The postgres cell's lines."""
    d = pgr["durable"]
    runs = d["runs"]
    L = []
    w = L.append
    w("## PostgreSQL\n")
    w("Measured %s; command `bench/run.sh%s --only postgres` or a full run (%d repetitions of %d s "
      "after a %d s warm-up each, interleaved); %s; PostgreSQL %s; %s." % (
          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), " --quick" if args.quick else "",
          args.reps, args.seconds, args.warmup, version([args.retryd, "--version"]),
          pgr["server_version"], pgr["pgbench_version"]))
    w("")
    w("A throwaway PostgreSQL cluster (`tests/pg/pg_cluster.py`: `fsync`, `synchronous_commit` "
      "and `full_page_writes` on, everything else default), its files on the disk of the SQLite "
      "files (that disk's fdatasync rate: %.0f/s), reached over TCP on loopback. The postmaster "
      "and every backend run pinned to CPU %s with the upstream and retryd (the database is part "
      "of the server side, as SQLite is inside retryd); wrk and pgbench run on CPU %s. "
      "**Durable acceptance**: the durable cell's set-up (the upstream answers 507, %d connections "
      "POST 1 KiB, `--retry-interval 1h`), once with `--db postgres://...` (each 202 sent after "
      "`COMMIT` returned, `synchronous_commit = on` set by retryd, every request waiting in the "
      "same transaction) and once with a SQLite file (`synchronous=FULL`), against pgbench "
      "inserting a row of the same 1 KiB body per transaction (autocommit) into a database of "
      "the same cluster. The three alternate, each run after a `CHECKPOINT`.\n"
      % (d["fsync_per_s"], CPU_SERVERS, CPU_LOAD, PG_CLIENTS))
    w("| what | per second, median of %d (min–max) | non-2xx / failed | p50 / p99 ms "
      "| retryd CPU µs per stored request |" % args.reps)
    w("|---|---|---|---|---|")
    labels = {"postgres": "retryd `--db postgres://...`: 202s",
              "sqlite": "retryd `--db FILE` (SQLite): 202s",
              "pgbench": "pgbench, one `INSERT` per transaction: commits"}
    for t in PG_TARGETS:
        rs = runs[t]
        m, lo, hi = med(rs, "ok_rps")
        if t == "pgbench":
            lat = "(average %.2f)" % med(rs, "latency_ms")[0]
            cpu = "—"
        else:
            lat = "%.2f / %.2f" % (med(rs, "p50")[0], med(rs, "p99")[0])
            cpu = "%.1f" % med(rs, "cpu_us_per_req")[0]
        w("| %s | %.0f (%.0f–%.0f) | %d | %s | %s |" % (labels[t], m, lo, hi,
                                                      sum(r["non2xx"] for r in rs), lat, cpu))
    pg_rate = med(runs["postgres"], "ok_rps")[0]
    ratio = pg_rate / max(med(runs["pgbench"], "ok_rps")[0], 1e-9)
    w("\n| ratio | value |\n|---|---|")
    w("| retryd on PostgreSQL ÷ pgbench (target ≥ %.2f) | %.2f %s |" % (
        PG_RATIO_TARGET, ratio, "met" if ratio >= PG_RATIO_TARGET else "**missed**"))
    w("| retryd on PostgreSQL ÷ retryd on SQLite | %.2f |" % (
        pg_rate / max(med(runs["sqlite"], "ok_rps")[0], 1e-9)))
    w("")
    w("pgbench: `%s` (`PGPASSWORD` in its environment), `insert.sql` being `INSERT INTO bench_rows "
      "(body) VALUES ('<the 1,024-byte JSON body wrk POSTs>');` into `%s`. Its `-T` counts the "
      "time its 64 new sessions take to connect (median %.0f ms here), and their first "
      "transactions load their caches: its rate is that of the %d s of its 1-second progress "
      "reports (`-P 1`) that follow %d s of transactions, as retryd's follows a %d s warm-up "
      "(pgbench's own tps over the whole run, without connecting: %.0f)." % (
          " ".join(d["pgbench_argv"]), PGBENCH_TABLE, med(runs["pgbench"], "connect_ms")[0],
          args.seconds, args.warmup, args.warmup, med(runs["pgbench"], "tps_all")[0]))
    w("")
    w("**Drain**: the drain cell on PostgreSQL. Each replica is a retryd process on one fresh "
      "database (`--retry-interval 2s --retry-concurrency 64`, the default `--claim-lease 30s`), "
      "all of them pinned to CPU %s with PostgreSQL and the upstream, so three replicas show what "
      "sharing one queue costs on the same CPU, not what more machines would add. They are "
      "filled through all replicas at once (%d connections in all) while the upstream answers "
      "507; then the upstream recovers and the clock runs until the first replica's stats (the "
      "whole shared queue) show nothing queued or inflight. *Completed by each replica* is "
      "retryd's per-replica counter of rows it moved to completed.\n" % (CPU_SERVERS, PG_CLIENTS))
    w("| replicas | stored, then upstream recovers | seconds until the queue is empty "
      "| requests/s | rows completed | completed by each replica |")
    w("|---|---|---|---|---|---|")
    for dr in pgr["drains"]:
        w("| %d | %d | %.1f | %.0f | %d | %s |" % (
            dr["replicas"], dr["stored"], dr["seconds"], dr["completed"] / max(dr["seconds"], 1e-9),
            dr["completed"], " / ".join("%d" % n for n in dr["shares"]) or "?"))
    w("")
    return L


def split_sections(text):
    """(preamble, [(heading, text)]) of a report, cut at its '## ' lines."""
    parts = ("\n" + text).split("\n## ")
    pre = parts[0][1:].rstrip("\n") + "\n\n"
    return pre, [(p.split("\n", 1)[0], "## " + p.rstrip("\n") + "\n\n") for p in parts[1:]]


# The sections of a full run, in order: where a partial run puts a section
# that the last report did not have.
SECTION_ORDER = ["Pass-through", "Pass-through to an https upstream",
                 "Durable acceptance (upstream answers 507)", "Drain", "Memory and start-up",
                 "PostgreSQL", "Recall simulation"]


def splice(old, new):
    """The old report with the new report's sections in place of the same
    sections; a section the old report lacks goes after the sections that
    precede it in SECTION_ORDER. Everything else in the old report (its
    preamble, the sections not run, sections of other authors) is kept."""
    pre, sections = split_sections(old)
    for heading, text in split_sections(new)[1]:
        names = [h for h, _ in sections]
        if heading in names:
            sections[names.index(heading)] = (heading, text)
            continue
        k = SECTION_ORDER.index(heading) if heading in SECTION_ORDER else len(SECTION_ORDER)
        before = [i for i, h in enumerate(names) if h in SECTION_ORDER[:k]]
        after = [i for i, h in enumerate(names) if h in SECTION_ORDER[k + 1:]]
        at = before[-1] + 1 if before else (after[0] if after else len(sections))
        sections.insert(at, (heading, text))
    return pre + "".join(t for _, t in sections)


def report(args, pt, durable, dr, mem, path, hs=None, pgr=None, rc=None):
    L = []
    w = L.append
    w("# retryd benchmarks\n")
    w("Measured %s on %s.\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine()))
    w("Command: `bench/run.sh%s` (%d repetitions of %d s after a %d s warm-up, interleaved)."
      % (" --quick" if args.quick else "", args.reps, args.seconds, args.warmup))
    w("Versions: %s; %s; %s; %s.\n" % (version([args.retryd, "--version"]),
                                      version(["nginx", "-v"]), version(["haproxy", "-v"]),
                                      version(["wrk", "-v"])))
    w("Set-up: wrk (1 thread) pinned to CPU 0; the upstream (nginx, 1 worker, 200-byte JSON, "
      "200 for GET, 201 for POST) and the proxy under test pinned together to CPU 1. Peers: "
      "nginx `proxy_pass` (1 worker, upstream keepalive pool = connections, HTTP/1.1), HAProxy "
      "(`nbthread 1`, `http-reuse always`), and `direct` (wrk straight to the upstream: the "
      "limit). No access logs anywhere (retryd `--log-level warn`). CPU µs/request is the "
      "process's utime+stime over the measured run divided by the requests wrk completed.\n")
    if pt:
        w("## Pass-through\n")
        w("![pass-through](passthrough.png)\n")
        w("| request | conns | target | req/s median (min–max) | p50 ms | p99 ms | CPU µs/req |")
        w("|---|---|---|---|---|---|---|")
        ratios = []
        for method in ("GET", "POST"):
            for conns in args.conns:
                for t in ("direct", "nginx", "haproxy", "retryd"):
                    runs = pt[(method, conns, t)]
                    m, lo, hi = med(runs, "rps")
                    w("| %s | %d | %s | %.0f (%.0f–%.0f) | %.2f | %.2f | %s |" % (
                        method, conns, t, m, lo, hi, med(runs, "p50")[0], med(runs, "p99")[0],
                        "%.1f" % med(runs, "cpu_us_per_req")[0] if t != "direct" else
                        "(upstream) %.1f" % med(runs, "cpu_us_per_req")[0]))
                best = max(("nginx", "haproxy"), key=lambda t: med(pt[(method, conns, t)], "rps")[0])
                ratios.append((method, conns, best,
                               med(pt[(method, conns, "retryd")], "rps")[0] /
                               med(pt[(method, conns, best)], "rps")[0],
                               med(pt[(method, conns, "retryd")], "p99")[0] /
                               med(pt[(method, conns, best)], "p99")[0]))
        w("\n| cell | best peer | retryd req/s ÷ peer (target ≥ 1.00) | retryd p99 ÷ peer (target ≤ 1.10) |")
        w("|---|---|---|---|")
        for method, conns, best, rr, pr in ratios:
            w("| %s c%d | %s | %.2f %s | %.2f %s |" % (method, conns, best, rr,
                                                      "met" if rr >= 1.0 else "**missed**", pr,
                                                      "met" if pr <= 1.1 else "**missed**"))
        w("")
    if hs:
        L.extend(https_section(args, hs))
    if durable:
        w("## Durable acceptance (upstream answers 507)\n")
        w("64 connections POST 1 KiB through retryd; each answer is a 202 sent after its row "
          "was committed with `synchronous=FULL`.\n")
        w("| figure | value |\n|---|---|")
        w("| 202s per second, median of %d (min–max) | %.0f (%.0f–%.0f) (target ≥ 15,000: %s) |" % (
            args.reps, durable["rps"], durable["rps_min"], durable["rps_max"],
            "met" if durable["rps"] >= 15000 else "**missed**"))
        w("| non-202 answers | %d |" % durable["non2xx"])
        w("| p50 / p99 | %.2f / %.2f ms |" % (durable["p50"], durable["p99"]))
        w("| retryd CPU µs per stored request | %.1f |" % durable["cpu_us_per_req"])
        w("| the same disk's fdatasync rate | %.0f /s |" % durable["fsync_per_s"])
        if pt:
            w("| pass-through POST c64 (same run) | %.0f req/s |" %
              med(pt[("POST", 64, "retryd")], "rps")[0])
        w("")
    if dr:
        w("## Drain\n")
        w("| figure | value |\n|---|---|")
        w("| stored, then upstream recovers | %d |" % dr["stored"])
        w("| seconds until the queue is empty (`--retry-concurrency 64`) | %.1f (target ≤ 15: %s) |"
          % (dr["seconds"], "met" if dr["seconds"] <= 15 else "**missed**"))
        w("| rows completed | %d |" % dr["completed"])
        w("")
    if mem:
        w("## Memory and start-up\n")
        w("| figure | value |\n|---|---|")
        w("| RSS idle | %.1f MiB |" % (mem["idle_kib"] / 1024))
        w("| RSS with %d idle client connections | %.1f MiB (target ≤ 64: %s) |" % (
            mem["idle_conns"], mem["idle_conns_kib"] / 1024,
            "met" if mem["idle_conns_kib"] <= 64 * 1024 else "**missed**"))
        w("| RSS with %d stored requests (after restart) | %.1f MiB (target: within 10 MiB of idle: %s) |"
          % (mem["stored"], mem["stored_kib"] / 1024,
             "met" if mem["stored_kib"] - mem["idle_kib"] <= 10 * 1024 else "**missed**"))
        w("| start-up with %d stored (spawn to first answer) | %.2f s (target ≤ 1: %s) |" % (
            mem["stored"], mem["startup_s"], "met" if mem["startup_s"] <= 1 else "**missed**"))
        w("| database size | %.0f MiB |" % (mem["db_bytes"] / 2**20))
        w("")
    if pgr:
        L.extend(postgres_section(args, pgr))
    if rc:
        L.extend(recall_section(args, rc))
    # The analysis below the marker is written by hand from profiles; a new
    # run keeps it.
    # A run of some sections (--only) replaces just those in the last
    # report, so a re-run of one cell does not drop the others' figures.
    kept, generated = "", "\n".join(L) + "\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if ANALYSIS_MARKER in text:
            kept = text[text.index(ANALYSIS_MARKER):]
            text = text[:text.index(ANALYSIS_MARKER)]
        if args.only:
            generated = splice(text, generated)
    with open(path, "w") as f:
        f.write(generated + kept)


CELLS = ["passthrough", "https", "durable", "drain", "memory", "postgres", "recall"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retryd", required=True, help="the retryd binary to measure")
    ap.add_argument("--quick", action="store_true", help="short runs, small queues (smoke test)")
    ap.add_argument("--only", choices=CELLS, action="append", help="run these only (repeatable); "
                    "the report keeps the other sections of the last one")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--recall-scale", type=int, default=RECALL_SCALE,
                    help="recall cell: how many times faster than Recall's time it runs")
    args = ap.parse_args()
    args.conns = [64, 256]
    if args.quick:
        args.reps, args.seconds, args.warmup = 1, 3, 1
        args.https_seconds, args.https_warmup = 3, 1
        args.drain_rows, args.big_rows, args.idle_conns = 5000, 20000, 2000
        args.recall_shapes, args.recall_outage_min = ((1, 200), (4, 50)), 3
        args.recall_check = None
        args.recall_reps, args.recall_seconds, args.recall_warmup = 1, 2, 1
    else:
        args.reps, args.seconds, args.warmup = 3, 10, 2
        # 3 proxies x 2 methods x 3 repetitions x 9 s: the https cell stays
        # under 3 minutes.
        args.https_seconds, args.https_warmup = 8, 1
        args.drain_rows, args.big_rows, args.idle_conns = 100000, 1000000, 10000
        # The simulation runs about 4.5 minutes (six outages of 20 s and
        # their drains, the pacing check's 30 s and its drain), the
        # pass-through 2.5 more (5 repetitions: the medians of a shared
        # machine).
        args.recall_shapes, args.recall_outage_min = RECALL_SHAPES, RECALL_OUTAGE_MIN
        args.recall_check = RECALL_CHECK
        args.recall_reps, args.recall_seconds, args.recall_warmup = 5, 3, 1
    # Every server inherits this: 10,000 idle connections need the room.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(65536, args.idle_conns + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    only = set(args.only or CELLS)
    tmp = tempfile.mkdtemp(prefix="retryd-bench-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        lua = write_post_lua(tmp)
        pt = passthrough(args, tmp, lua) if "passthrough" in only else None
        hs = https_passthrough(args, tmp, lua) if "https" in only else None
        durable = durable_acceptance(args, tmp, lua) if "durable" in only else None
        if durable:
            log("durable: %.0f 202/s, fdatasync %.0f/s" % (durable["rps"], durable["fsync_per_s"]))
        dr = drain(args, tmp, lua) if "drain" in only else None
        if dr:
            log("drain: %d rows in %.1f s" % (dr["stored"], dr["seconds"]))
        mem = memory(args, tmp, lua) if "memory" in only else None
        if mem:
            log("memory: %r" % mem)
        pgr = postgres_cell(args, tmp, lua) if "postgres" in only else None
        if pgr:
            pr = {t: med(pgr["durable"]["runs"][t], "ok_rps")[0] for t in PG_TARGETS}
            log("postgres: %.0f 202/s on PostgreSQL, %.0f on SQLite, pgbench %.0f/s (ratio %.2f); "
                "drain %s" % (pr["postgres"], pr["sqlite"], pr["pgbench"],
                              pr["postgres"] / max(pr["pgbench"], 1e-9),
                              ", ".join("x%d: %d rows in %.1f s" % (d["replicas"], d["completed"],
                                                                     d["seconds"])
                                        for d in pgr["drains"])))
        rc = recall_cell(args, tmp, lua) if "recall" in only else None
        if pt:
            chart(args, pt, os.path.join(os.path.dirname(args.out), "passthrough.png"))
        report(args, pt, durable, dr, mem, args.out, hs, pgr, rc)
        log("wrote %s" % args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
