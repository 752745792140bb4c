"""Helpers for the control API tests (test_control_*.py).

Python 3 standard library only; the Prometheus parser and Chromium are run
as subprocesses (/usr/bin/python3 with python3-prometheus-client, and
/usr/bin/chromium), and a test fails -- never skips -- when they are missing:
scripts/deps.sh installs both.

Run as a script it is the scale test's load generator, in processes of its
own so the fake upstream and the clients do not share one interpreter lock:

    python3 control_helpers.py upstream STATUS PORTFILE
        a selectors-based HTTP/1.1 server on 127.0.0.1:0 answering every
        request with STATUS; writes its port to PORTFILE, and its request
        count (then connections accepted and reads) to PORTFILE.count on SIGTERM.
    python3 control_helpers.py client PORT TOTAL CONNS DEPTH DEADLINE_S
        sends TOTAL POSTs over CONNS keep-alive connections, DEPTH pipelined
        requests in flight on each; starts no new one after DEADLINE_S;
        prints one JSON line {"sent", "by_status", "elapsed_s", "errors"}."""

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from harness import RawConn, build_request, parse_timestamp  # noqa: F401

SYSTEM_PYTHON = "/usr/bin/python3"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

QUEUE_STATES = ("queued", "inflight", "completed", "dead", "cancelled")


# --------------------------------------------------------------------------
# Control API requests
# --------------------------------------------------------------------------

def ctl(port, method, path, token=None, headers=(), body=b"", timeout=10.0):
    """One control request on a fresh connection; returns the RawResponse.
    token: sent as X-Retryd-Token when not None."""
    hdrs = list(headers)
    if token is not None:
        hdrs.append(("X-Retryd-Token", token))
    with RawConn(port, timeout=timeout) as c:
        c.send(build_request(method, path, hdrs, body))
        return c.read_response(method=method)


def ctl_json(port, path, token=None, timeout=10.0):
    """GET path, assert 200 + JSON, return the parsed body."""
    r = ctl(port, "GET", path, token=token, timeout=timeout)
    if r.status != 200:
        raise AssertionError("GET %s: %r" % (path, r))
    ctype = (r.header("content-type") or "").lower()
    if not ctype.startswith("application/json"):
        raise AssertionError("GET %s: content-type %r" % (path, ctype))
    return r.json()


def list_all(port, state=None, limit=50, token=None, max_pages=100000):
    """Follow next_cursor through every page; returns (rows, pages)."""
    rows, pages = [], 0
    cursor = None
    while True:
        q = ["limit=%d" % limit]
        if state is not None:
            q.append("state=%s" % state)
        if cursor is not None:
            q.append("cursor=%s" % cursor)
        page = ctl_json(port, "/_retryd/requests?" + "&".join(q), token=token)
        pages += 1
        if set(page) != {"requests", "next_cursor"}:
            raise AssertionError("listing keys: %r" % sorted(page))
        rows.extend(page["requests"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows, pages
        if not isinstance(cursor, str):
            raise AssertionError("next_cursor is not a string or null: %r" % (cursor,))
        if pages > max_pages:
            raise AssertionError("listing never ends (%d pages)" % pages)


def fake_uuid7():
    """A well-formed lowercase UUIDv7 string no retryd ever issued."""
    ms = int(time.time() * 1000) - 86400000  # a day ago
    rnd = uuid.uuid4().int
    v = (ms & ((1 << 48) - 1)) << 80
    v |= 0x7 << 76
    v |= (rnd & 0xFFF) << 64
    v |= 0b10 << 62
    v |= (rnd >> 12) & ((1 << 62) - 1)
    return str(uuid.UUID(int=v))


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("%s not reached within %.1fs" % (what, timeout))
        time.sleep(interval)


def wait_state(port, rid, states, token=None, timeout=10.0):
    if isinstance(states, str):
        states = (states,)
    last = {}

    def ok():
        last["obj"] = ctl_json(port, "/_retryd/requests/%s" % rid, token=token)
        return last["obj"]["state"] in states
    try:
        wait_until(ok, timeout, what="state %r" % (states,))
    except AssertionError:
        raise AssertionError("request %s not in %r within %.1fs; last %r"
                             % (rid, states, timeout, last.get("obj"))) from None
    return last["obj"]


# --------------------------------------------------------------------------
# Prometheus text format, checked by the reference parser
# --------------------------------------------------------------------------

_PROM_SCRIPT = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families as parse
out = []
for fam in parse(sys.stdin.read()):
    out.append({"name": fam.name, "type": fam.type, "help": fam.documentation,
                "samples": [[s.name, s.labels, s.value] for s in fam.samples]})
json.dump(out, sys.stdout)
"""


def prometheus_parse(text):
    """Parse exposition text with prometheus_client (the reference parser)
    in /usr/bin/python3. Returns a list of families (dicts: name, type, help,
    samples [[name, labels, value]]). Raises AssertionError when the parser
    is missing or rejects the text."""
    if not os.path.exists(SYSTEM_PYTHON):
        raise AssertionError("%s is missing (scripts/deps.sh installs it)" % SYSTEM_PYTHON)
    chk = subprocess.run([SYSTEM_PYTHON, "-c", "import prometheus_client.parser"],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if chk.returncode != 0:
        raise AssertionError("%s cannot import prometheus_client (install the Debian "
                             "package python3-prometheus-client; scripts/deps.sh does): %s"
                             % (SYSTEM_PYTHON, chk.stderr.decode("utf-8", "replace")))
    p = subprocess.run([SYSTEM_PYTHON, "-c", _PROM_SCRIPT],
                       input=text.encode("utf-8") if isinstance(text, str) else text,
                       capture_output=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("prometheus_client rejected the metrics text: %s"
                             % p.stderr.decode("utf-8", "replace")[-2000:])
    return json.loads(p.stdout.decode("utf-8"))


def prometheus_samples(families):
    """{(sample_name, frozenset(labels.items())): value}"""
    out = {}
    for fam in families:
        for name, labels, value in fam["samples"]:
            key = (name, frozenset(labels.items()))
            if key in out:
                raise AssertionError("duplicate sample %r" % (key,))
            out[key] = value
    return out


# --------------------------------------------------------------------------
# Headless Chromium
# --------------------------------------------------------------------------

def chromium_path():
    for p in CHROMIUM_CANDIDATES:
        if os.path.exists(p):
            return p
    raise AssertionError("chromium is missing (%s); install the Debian package "
                         "'chromium' (scripts/deps.sh does)" % ", ".join(CHROMIUM_CANDIDATES))


def chromium(url, extra_args=(), timeout=60.0):
    """Run headless Chromium on url in a fresh profile. Returns
    (returncode, stdout bytes, stderr bytes, tmpdir); the caller removes tmpdir."""
    tmp = tempfile.mkdtemp(prefix="retryd-chromium-")
    argv = [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--user-data-dir=%s" % os.path.join(tmp, "profile"),
            "--virtual-time-budget=5000"]
    argv += [a.replace("{tmp}", tmp) for a in extra_args]
    argv.append(url)
    env = dict(os.environ)
    env.setdefault("HOME", tmp)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AssertionError("chromium did not finish within %.0fs" % timeout) from e
    return p.returncode, p.stdout, p.stderr, tmp


# --------------------------------------------------------------------------
# Load generator (see the module docstring)
# --------------------------------------------------------------------------



def _content_length(head):
    i = head.find(b"\r\nContent-Length:")
    if i < 0:
        i = head.lower().find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    j = head.find(b"\r\n", i + 2)
    return int(head[i + 17:j if j >= 0 else len(head)].strip())


def run_upstream(status, portfile):
    reason = {507: b"Insufficient Storage", 503: b"Service Unavailable"}.get(status, b"X")
    answer = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
              b"Content-Length: 21\r\n\r\n{\"code\":\"try_later\"}\n" % (status, reason))
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    count = [0]
    stats_acc = [0, 0]
    stop = [False]

    def on_term(*_):
        stop[0] = True
    signal.signal(signal.SIGTERM, on_term)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    bufs = {}
    while not stop[0]:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                bufs[c] = b""
                stats_acc[0] += 1
                sel.register(c, selectors.EVENT_READ, None)
                continue
            try:
                data = s.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                bufs.pop(s, None)
                s.close()
                continue
            buf = bufs[s] + data
            stats_acc[1] += 1
            out = []
            while True:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    break
                n = _content_length(buf[:i + 2])
                if len(buf) < i + 4 + n:
                    break
                buf = buf[i + 4 + n:]
                out.append(answer)
                count[0] += 1
            bufs[s] = buf
            if out:
                data = b"".join(out)
                try:
                    n = s.send(data)
                    if n < len(data):
                        s.setblocking(True)
                        s.sendall(data[n:])
                        s.setblocking(False)
                except OSError:
                    pass
    with open(portfile + ".count", "w") as f:
        f.write("%d %d %d" % (count[0], stats_acc[0], stats_acc[1]))


def run_client(port, total, conns, depth, deadline_s):
    body = b'{"meeting_url":"https://meet.example/scale","bot_name":"scale"}'
    started = time.monotonic()
    sel = selectors.DefaultSelector()
    state = {}
    sent = 0
    by_status = {}
    errors = []

    def request(i):
        return (b"POST /api/v1/bot/?n=%d HTTP/1.1\r\nHost: scale.example\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (i, len(body), body))

    def top_up(s, st):
        nonlocal sent
        batch = []
        while (st["inflight"] < depth and sent < total
               and time.monotonic() - started < deadline_s):
            batch.append(request(sent))
            sent += 1
            st["inflight"] += 1
        if batch:
            data = b"".join(batch)
            n = s.send(data)
            if n < len(data):
                s.setblocking(True)
                s.sendall(data[n:])
                s.setblocking(False)

    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        st = {"buf": b"", "inflight": 0}
        state[s] = st
        sel.register(s, selectors.EVENT_READ, None)
        top_up(s, st)
    while state:
        for key, _ in sel.select(5.0):
            s = key.fileobj
            st = state[s]
            try:
                data = s.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                errors.append(str(e))
                data = b""
            if not data:
                if st["inflight"]:
                    errors.append("connection closed with %d in flight" % st["inflight"])
                sel.unregister(s)
                del state[s]
                s.close()
                continue
            buf = st["buf"] + data
            while True:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    break
                n = _content_length(buf[:i + 2])
                if len(buf) < i + 4 + n:
                    break
                code = int(buf[9:12])
                by_status[code] = by_status.get(code, 0) + 1
                buf = buf[i + 4 + n:]
                st["inflight"] -= 1
            st["buf"] = buf
            top_up(s, st)
            if st["inflight"] == 0:
                sel.unregister(s)
                del state[s]
                s.close()
        if time.monotonic() - started > deadline_s + 60:
            errors.append("gave up waiting for answers")
            break
    print(json.dumps({"sent": sent, "by_status": by_status,
                      "elapsed_s": time.monotonic() - started, "errors": errors[:10]}))


def _main():
    if sys.argv[1] == "upstream":
        run_upstream(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "client":
        run_client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                   int(sys.argv[5]), float(sys.argv[6]))
    else:
        raise SystemExit("usage: control_load.py upstream|client ...")


if __name__ == "__main__":
    _main()
