#!/usr/bin/env python3
"""Does purging big final answers stall the store?

A fake upstream answers every first attempt 507 (so the request is stored
and the client gets a 202 after the commit) and every retry 200: with a
2 MiB body on the "big" stream, a small one on the "small" stream. So with
--retry-interval 1s, stored requests complete about a second after they
were accepted, and with --keep-completed 30s retryd purges every 15 s
(keep-completed / 2) the rows that finished more than 30 s ago.

Load: open-loop POSTs at a fixed rate per stream (default 5/s big, 50/s
small) from a pool of threads, each on a new connection, and a stats call
every 200 ms. Measured:

  - 202 latency (from the request's scheduled send time to its answer):
    p50 / p99 / max over the whole run, inside purge windows (the 3 s after
    each retention tick that had rows to delete), and outside them;
  - the same for GET /_retryd/stats;
  - what the storage thread read (read syscalls and bytes, from
    /proc/PID/task/TID/io of the thread named retryd-store, when retryd
    names it) in each purge window;
  - the database file (+ WAL) size over the run, at the end of the load,
    and once every row expired and was purged after it (--drain); after
    retryd stopped: pages, free pages, and the live data (bytes of the rows
    left).

Usage:
  bench/purge.py [--retryd build/retryd] [--seconds 150] [--json out.json]

Only the processes this script starts are stopped. Standard library only.
"""
import argparse
import calendar
import http.client
import http.server
import json
import os
import queue
import shutil
import signal
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from run import free_port, log, wait_port  # the helpers every benchmark here shares

HERE = os.path.dirname(os.path.abspath(__file__))
WINDOW_S = 3.0


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def summary(values):
    ms = [x * 1000.0 for x in values]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 1), "p99_ms": round(pct(ms, 99), 1),
            "max_ms": round(max(ms), 1) if ms else float("nan")}


# ---- fake upstream ---------------------------------------------------------

class Upstream(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_handler(big_body, small_body):
    seen = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            with lock:
                first = self.path not in seen
                seen.add(self.path)
            if first:
                self.send_response(507)
                body = b'{"error":"pool empty"}'
            else:
                self.send_response(200)
                body = big_body if self.path.startswith("/big/") else small_body
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


# ---- retryd ----------------------------------------------------------------

def storage_tid(pid):
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() == "retryd-store":
                    return int(tid)
    except OSError:
        pass
    return None


def thread_io(pid, tid):
    out = {}
    try:
        with open("/proc/%d/task/%d/io" % (pid, tid)) as f:
            for ln in f:
                k, v = ln.split(":")
                out[k.strip()] = int(v)
    except OSError:
        return None
    return out


def file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def file_stats(db):
    """The file as retryd left it (closed, so checkpointed): its size, its
    free pages, and the live data (bytes of every row and answer in it)."""
    con = sqlite3.connect(db)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    free = con.execute("PRAGMA freelist_count").fetchone()[0]
    live, rows = con.execute(
        "SELECT coalesce(sum(length(headers) + coalesce(length(body),0) + "
        "coalesce(length(response_headers),0)),0), count(*) FROM requests").fetchone()
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if "answers" in tables:  # final answers' bodies in a table of their own
        live += con.execute("SELECT coalesce(sum(length(body)),0) FROM answers").fetchone()[0]
    else:
        live += con.execute("SELECT coalesce(sum(length(response_body)),0) FROM "
                            "requests").fetchone()[0]
    av = con.execute("PRAGMA auto_vacuum").fetchone()[0]
    con.close()
    return {"file_mib": round(pages * page_size / 2**20, 1),
            "free_pages_pct": round(100.0 * free / pages, 1) if pages else 0,
            "live_data_mib": round(live / 2**20, 1), "rows": rows, "auto_vacuum": av}


# ---- load ------------------------------------------------------------------

def post(port, path, body, timeout=30.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def run(args):
    tmp = tempfile.mkdtemp(prefix="retryd-bench-purge-", dir=args.dir)
    db = os.path.join(tmp, "q.db")
    big = os.urandom(args.answer_kib * 1024)  # incompressible, like most answers
    small = b'{"id":"bot_1","status":"ready"}'
    up = Upstream(("127.0.0.1", 0), make_handler(big, small))
    threading.Thread(target=up.serve_forever, daemon=True).start()
    port = free_port()
    stderr_path = os.path.join(tmp, "retryd.log")
    errf = open(stderr_path, "wb")
    argv = [args.retryd, "--upstream", "http://127.0.0.1:%d" % up.server_address[1],
            "--listen", "127.0.0.1:%d" % port, "--db", db, "--retry-interval", "1s",
            "--keep-completed", "%ds" % args.keep, "--log-level", "info"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf)
    drain_stats = None
    try:
        wait_port(port)
        t0 = time.monotonic()  # the retention timer starts as retryd listens
        wall0 = time.time()
        tid = storage_tid(proc.pid)
        period = max(1.0, min(60.0, args.keep / 2.0))

        results = []  # (stream, scheduled, done, status)
        stats_lat = []  # (scheduled, done)
        io_samples = []  # (t, syscr, rchar)
        size_samples = []  # (t, db+wal bytes)
        res_lock = threading.Lock()
        jobs = queue.Queue()
        stop = threading.Event()
        body = json.dumps({"meeting_url": "https://meet.example.com/x", "pad": "x" * 200})

        def worker():
            while True:
                j = jobs.get()
                if j is None:
                    return
                stream, n, at = j
                try:
                    st = post(port, "/%s/%d" % (stream, n), body)
                except OSError:
                    st = 0
                with res_lock:
                    results.append((stream, at, time.monotonic(), st))

        workers = [threading.Thread(target=worker, daemon=True) for _ in range(args.threads)]
        for w in workers:
            w.start()

        def pacer(stream, rate):
            n = 0
            step = 1.0 / rate
            nxt = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                if now < nxt:
                    time.sleep(min(nxt - now, 0.05))
                    continue
                jobs.put((stream, n, nxt))
                n += 1
                nxt += step

        def sampler():
            nxt = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                if now < nxt:
                    time.sleep(nxt - now)
                    continue
                at = nxt
                nxt += 0.2
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    c.request("GET", "/_retryd/stats")
                    c.getresponse().read()
                    c.close()
                    stats_lat.append((at, time.monotonic()))
                except OSError:
                    pass
                if tid is not None:
                    io = thread_io(proc.pid, tid)
                    if io:
                        io_samples.append((time.monotonic(), io["syscr"], io["rchar"]))
                size_samples.append((time.monotonic(), file_size(db) + file_size(db + "-wal")))

        threads = [threading.Thread(target=pacer, args=("big", args.big_rate), daemon=True),
                   threading.Thread(target=pacer, args=("small", args.small_rate), daemon=True),
                   threading.Thread(target=sampler, daemon=True)]
        for t in threads:
            t.start()
        log("purge bench: %d s, big %.1f/s x %d KiB, small %.1f/s, keep %d s (purge every %.0f s)"
            % (args.seconds, args.big_rate, args.answer_kib, args.small_rate, args.keep, period))
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        for _ in workers:
            jobs.put(None)
        for w in workers:
            w.join(60)
        size_at_end = file_size(db) + file_size(db + "-wal")
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        end_stats = file_stats(db)  # retryd checkpointed on close: the file alone
        # No more load: once keep-completed and a purge period have passed,
        # every row is expired and purged; does the file give the space back?
        drain_s = args.keep + period + 5 if args.drain is None else args.drain
        if drain_s > 0:
            log("load stopped; %d s for every row to expire and be purged" % drain_s)
            with open(os.path.join(tmp, "retryd-drain.log"), "wb") as derr:
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=derr)
                wait_port(port)
                time.sleep(drain_s)
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            drain_stats = file_stats(db)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        errf.close()
        up.shutdown()

    # purge windows: the ticks whose purge deleted rows (from retryd's log)
    purges = []
    with open(stderr_path, "rb") as f:
        for ln in f:
            try:
                o = json.loads(ln)
            except ValueError:
                continue
            if o.get("msg", "").startswith("purged"):
                purges.append(o)
    ticks = []
    k = 1
    while t0 + k * period < t0 + args.seconds:
        ticks.append(t0 + k * period)
        k += 1
    # a tick deleted rows when a "purged" line was logged within the window after it
    def log_t(o):
        ts = o.get("ts", "")  # 2026-11-27T00:33:37.416Z, UTC
        try:
            wall = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
            return t0 + (wall + float("0" + ts[19:23]) - wall0)
        except ValueError:
            return None
    purge_times = [x for x in (log_t(o) for o in purges) if x is not None]
    windows = [(t, t + WINDOW_S) for t in ticks
               if any(t - 0.5 <= p <= t + period for p in purge_times)]

    def inside(at):
        return any(a <= at < b for a, b in windows)

    lat = [(at, done - at) for (_, at, done, st) in results if st == 202]
    non202 = sum(1 for r in results if r[3] != 202)
    s_lat = [(at, done - at) for at, done in stats_lat]
    out = {
        "config": vars(args),
        "accepted_202": len(lat), "non_202": non202,
        "purge_windows": len(windows),
        "latency_202": {"all": summary([d for _, d in lat]),
                        "in_purge": summary([d for at, d in lat if inside(at)]),
                        "outside_purge": summary([d for at, d in lat if not inside(at)])},
        "latency_stats": {"all": summary([d for _, d in s_lat]),
                          "in_purge": summary([d for at, d in s_lat if inside(at)]),
                          "outside_purge": summary([d for at, d in s_lat if not inside(at)])},
        "purged_log": [{k: o[k] for k in o if k not in ("level",)} for o in purges],
    }
    # storage thread reads per purge window
    if io_samples:
        per = []
        for a, b in windows:
            inw = [s for s in io_samples if a - 0.25 <= s[0] <= b + 0.25]
            if len(inw) >= 2:
                per.append({"read_syscalls": inw[-1][1] - inw[0][1],
                            "read_mb": round((inw[-1][2] - inw[0][2]) / 1e6, 1)})
        out["storage_thread_reads_per_purge_window"] = per
    sizes = [s for _, s in size_samples]
    out["file_mib"] = {"max_during_load": round(max(sizes) / 2**20, 1) if sizes else None,
                       "at_end_of_load": round(size_at_end / 2**20, 1)}
    out["file_at_end_of_load"] = end_stats
    if drain_stats is not None:
        out["file_after_drain"] = drain_stats
    if not args.keep_files:
        shutil.rmtree(tmp, True)
    else:
        out["dir"] = tmp
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retryd", default=os.path.join(HERE, "..", "build", "retryd"))
    ap.add_argument("--seconds", type=int, default=150)
    ap.add_argument("--keep", type=int, default=30, help="--keep-completed, seconds")
    ap.add_argument("--big-rate", type=float, default=5.0)
    ap.add_argument("--small-rate", type=float, default=50.0)
    ap.add_argument("--answer-kib", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--dir", default=None, help="where the database goes (a real disk)")
    ap.add_argument("--drain", type=int, default=None,
                    help="seconds to wait after the load (default: keep + purge period + 5)")
    ap.add_argument("--keep-files", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    out = run(args)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
