#!/usr/bin/env python3
"""Where retryd's time goes, per request: the profile behind bench/RESULTS.md.

  bench/profile.py instructions MODE   callgrind: user-space instructions per
                                       request, and the top functions
  bench/profile.py syscalls MODE       strace -c: system calls per request
  bench/profile.py cpu MODE [haproxy]  user and system CPU µs per request, per
                                       thread of retryd (or of HAProxy, for
                                       comparison), and the upstream's

MODE is get (proxied GET), post (proxied 1 KiB POST) or durable (the upstream
answers 507: every request is stored and answered 202). Same set-up as
run.py: an nginx upstream answering 200 bytes, wrk with 64 connections,
pinned as there. Instruction counts are repeatable on a busy machine, which
timings are not; valgrind slows retryd ~50x, so only counts per request mean
anything here, never the request rate. Needs the Release build that
bench/run.sh makes (build-bench/retryd), valgrind and strace.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RETRYD = os.path.join(ROOT, "build-bench", "retryd")


def start(tmp, mode, wrapper=()):
    up, px = bench.free_port(), bench.free_port()
    flag = os.path.join(tmp, "outage") if mode == "durable" else None
    if flag:
        open(flag, "w").close()
    upstream = bench.start_upstream(tmp, up, flag=flag)
    argv = list(wrapper) + [RETRYD, "--upstream", "http://127.0.0.1:%d" % up,
                            "--listen", "127.0.0.1:%d" % px, "--db", os.path.join(tmp, "q.db"),
                            "--log-level", "warn"]
    if mode == "durable":
        argv += ["--retry-interval", "1h"]  # as run.py: no retries during the run
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    proxy = bench.Server("retryd", argv, tmp, env=env)
    bench.wait_port(px, 120)
    return upstream, proxy, px


def load(tmp, mode, port, seconds):
    lua = bench.write_post_lua(tmp) if mode in ("post", "durable") else None
    res = bench.run_wrk("http://127.0.0.1:%d/v1/bot/" % port, 64, seconds, lua)
    if res["requests"] == 0:
        sys.exit("profile: no request completed")
    return res


def instructions(tmp, mode):
    out = os.path.join(tmp, "callgrind.out")
    upstream, proxy, port = start(tmp, mode, ["valgrind", "--tool=callgrind",
                                              "--callgrind-out-file=" + out])
    res = load(tmp, mode, port, 10)
    proxy.stop()
    upstream.stop()
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", out],
                          capture_output=True, text=True, check=True).stdout
    total = next(int(l.split()[0].replace(",", "")) for l in text.splitlines()
                 if "PROGRAM TOTALS" in l)
    print("%s: %d requests, %.0f instructions per request (start-up included)"
          % (mode, res["requests"], total / res["requests"]))
    rows = [l for l in text.splitlines() if "%)" in l and "PROGRAM TOTALS" not in l]
    for line in rows[:25]:
        print("  " + line[:130])
    print("profile data: " + out)


def syscalls(tmp, mode):
    upstream, proxy, port = start(tmp, mode)
    out = os.path.join(tmp, "strace.txt")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(proxy.pid), "-o", out],
                              stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached to every thread
    res = load(tmp, mode, port, 5)
    tracer.send_signal(signal.SIGINT)
    tracer.wait()
    proxy.stop()
    upstream.stop()
    print("%s: %d requests" % (mode, res["requests"]))
    total = 0
    for line in open(out).read().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
            calls = int(parts[3])
            total += calls
            print("  %-16s %7.3f per request" % (parts[-1], calls / res["requests"]))
    print("  %-16s %7.3f per request" % ("all", total / res["requests"]))


def thread_ticks(pid):
    """{thread name and id: (utime, stime)} from /proc."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            stat = f.read()
        name = stat.split("(", 1)[1].rsplit(")", 1)[0]
        fields = stat.rsplit(")", 1)[1].split()
        out["%s %s" % (name, tid)] = (int(fields[11]), int(fields[12]))
    return out


def cpu(tmp, mode, peer=None):
    if peer == "haproxy":
        up_port, port = bench.free_port(), bench.free_port()
        upstream = bench.start_upstream(tmp, up_port)
        proxy = bench.start_haproxy(tmp, port, up_port)
    else:
        upstream, proxy, port = start(tmp, mode)
    load(tmp, mode, port, 2)  # warm-up
    before, up_before = thread_ticks(proxy.pid), thread_ticks(upstream.pid)
    res = load(tmp, mode, port, 10)
    after, up_after = thread_ticks(proxy.pid), thread_ticks(upstream.pid)
    proxy.stop()
    upstream.stop()
    n = res["requests"]
    scale = 1e6 / bench.TICKS / n
    print("%s: %d requests, %.0f/s; CPU µs per request, user + system:" % (mode, n, res["rps"]))
    for name, (u, s) in sorted(after.items()):
        if name in before:
            du, ds = u - before[name][0], s - before[name][1]
            if du or ds:
                print("  %s thread %-14s %5.1f + %5.1f" % (peer or "retryd", name, du * scale,
                                                            ds * scale))
    u = sum(v[0] for v in up_after.values()) - sum(v[0] for v in up_before.values())
    s = sum(v[1] for v in up_after.values()) - sum(v[1] for v in up_before.values())
    print("  upstream (nginx)            %5.1f + %5.1f" % (u * scale, s * scale))


def main():
    peer = sys.argv[3] if len(sys.argv) == 4 and sys.argv[1] == "cpu" else None
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("instructions", "syscalls", "cpu") or \
            sys.argv[2] not in ("get", "post", "durable") or (len(sys.argv) == 4 and peer != "haproxy") \
            or (peer and sys.argv[2] == "durable"):
        sys.exit(__doc__)
    if not os.path.exists(RETRYD):
        sys.exit("profile: build-bench/retryd is missing: run bench/run.sh once")
    tmp = tempfile.mkdtemp(prefix="retryd-profile-")
    if sys.argv[1] == "cpu":
        cpu(tmp, sys.argv[2], peer)
    else:
        {"instructions": instructions, "syscalls": syscalls}[sys.argv[1]](tmp, sys.argv[2])


if __name__ == "__main__":
    main()
