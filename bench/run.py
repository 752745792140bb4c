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

Queue benchmarks: durable acceptance (upstream answers 507), drain of
100,000 stored requests, memory (idle, 10,000 idle connections, 1,000,000
stored) and start-up time with 1,000,000 stored.

Writes bench/RESULTS.md and bench/passthrough.png. Run it through
bench/run.sh, which installs and builds what it needs.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

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


def start_upstream(tmp, port, name="upstream", flag=None):
    """nginx answering 200 (GET) / 201 (POST, body read) with 200 bytes; with
    flag, 507 while that file exists."""
    outage = ('if (-f %s) { return 507 \'{"code":"insufficient_bots"}\'; }' % flag) if flag else ""
    block = """server {
    listen 127.0.0.1:%d backlog=4096;
    location / {
      default_type application/json;
      %s
      if ($request_method = POST) { return 201 '%s'; }
      return 200 '%s';
    }
  }""" % (port, outage, BODY_200, BODY_200)
    srv = Server(name, ["nginx", "-c", nginx_conf(tmp, name, block)], tmp)
    wait_port(port)
    return srv


def start_nginx_proxy(tmp, port, up_port, conns):
    block = """upstream up { server 127.0.0.1:%d; keepalive %d; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:%d backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }
  }""" % (up_port, conns, port)
    srv = Server("nginx-proxy", ["nginx", "-c", nginx_conf(tmp, "nginx-proxy", block)], tmp)
    wait_port(port)
    return srv


def start_haproxy(tmp, port, up_port):
    path = os.path.join(tmp, "haproxy.cfg")
    with open(path, "w") as f:
        f.write("""global
  nbthread 1
  maxconn 8000
  pidfile %s/haproxy.pid
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
  server up 127.0.0.1:%d maxconn 10000
""" % (tmp, port, up_port))
    srv = Server("haproxy", ["haproxy", "-db", "-f", path], tmp)
    wait_port(port)
    return srv


def start_retryd(args, tmp, port, up_port, db, extra=(), name="retryd"):
    argv = [args.retryd, "--upstream", "http://127.0.0.1:%d" % up_port,
            "--listen", "127.0.0.1:%d" % port, "--db", db, "--log-level", "warn"] + list(extra)
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


def report(args, pt, durable, dr, mem, path):
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
    # The analysis below the marker is written by hand from profiles; a new
    # run keeps it.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if ANALYSIS_MARKER in text:
            kept = text[text.index(ANALYSIS_MARKER):]
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n" + kept)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retryd", required=True)
    ap.add_argument("--quick", action="store_true", help="short runs, small queues (smoke test)")
    ap.add_argument("--only", choices=["passthrough", "durable", "drain", "memory"], action="append")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = ap.parse_args()
    args.conns = [64, 256]
    if args.quick:
        args.reps, args.seconds, args.warmup = 1, 3, 1
        args.drain_rows, args.big_rows, args.idle_conns = 5000, 20000, 2000
    else:
        args.reps, args.seconds, args.warmup = 3, 10, 2
        args.drain_rows, args.big_rows, args.idle_conns = 100000, 1000000, 10000
    # Every server inherits this: 10,000 idle connections need the room.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(65536, args.idle_conns + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    only = set(args.only or ["passthrough", "durable", "drain", "memory"])
    tmp = tempfile.mkdtemp(prefix="retryd-bench-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        lua = write_post_lua(tmp)
        pt = passthrough(args, tmp, lua) if "passthrough" in only else None
        durable = durable_acceptance(args, tmp, lua) if "durable" in only else None
        if durable:
            log("durable: %.0f 202/s, fdatasync %.0f/s" % (durable["rps"], durable["fsync_per_s"]))
        dr = drain(args, tmp, lua) if "drain" in only else None
        if dr:
            log("drain: %d rows in %.1f s" % (dr["stored"], dr["seconds"]))
        mem = memory(args, tmp, lua) if "memory" in only else None
        if mem:
            log("memory: %r" % mem)
        if pt:
            chart(args, pt, os.path.join(os.path.dirname(args.out), "passthrough.png"))
        report(args, pt, durable, dr, mem, args.out)
        log("wrote %s" % args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
