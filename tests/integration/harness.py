"""Test harness: runs the retryd binary and talks raw HTTP/1.1 to it.

Python 3 standard library only.

    RETRYD_BIN            path of the binary (default: build/retryd of this checkout)
    RETRYD_TEST_STORAGE   the queue of a retryd started without db=: "sqlite"
                          (the default: a file in its temporary directory) or
                          "postgres" (a database of its own on the cluster in
                          RETRYD_TEST_PG_DIR, dropped when the test retires
                          the retryd; tests/CMakeLists.txt's integration-pg/*)

STORAGE says which is in use, for tests of what only one backend has.
"""

import atexit
import ctypes
import http.client
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from fake_upstream import FakeUpstream, Response  # noqa: F401  (re-export)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "retryd"))


def retryd_bin():
    return os.environ.get("RETRYD_BIN") or DEFAULT_BIN


# --------------------------------------------------------------------------
# Where a retryd's queue lives
# --------------------------------------------------------------------------

STORAGE = os.environ.get("RETRYD_TEST_STORAGE") or "sqlite"
if STORAGE not in ("sqlite", "postgres"):
    raise RuntimeError("RETRYD_TEST_STORAGE=%r: expected sqlite or postgres" % STORAGE)
if STORAGE == "postgres" and not os.environ.get("RETRYD_TEST_PG_DIR"):
    # Never fall back to SQLite: the PostgreSQL run would pass without
    # testing PostgreSQL.
    raise RuntimeError("RETRYD_TEST_STORAGE=postgres needs RETRYD_TEST_PG_DIR, the directory "
                       "of a cluster started by tests/pg/pg_cluster.py (ctest's fixture pg)")

_pg = None
_db_seq = itertools.count(1)
_OWNED_DBS = set()   # names of the PostgreSQL databases made here, not yet dropped


def _pg_cluster():
    global _pg
    if _pg is None:
        sys.path.insert(0, os.path.join(HERE, "..", "pg"))
        from pg_cluster import PgCluster
        _pg = PgCluster.attach(os.environ["RETRYD_TEST_PG_DIR"])
    return _pg


def new_db(tmpdir):
    """A fresh, empty queue for the backend in use: (location, name). The
    location is what --db gets: tmpdir/q.db for SQLite (it goes with
    tmpdir); for PostgreSQL the DSN of a new database on the fixture's
    cluster, whose name drop_db(name) takes (None for SQLite). Several
    retryds given the same location share one queue, on either backend."""
    if STORAGE == "sqlite":
        return os.path.join(tmpdir, "q.db"), None
    # Unique across the test processes ctest runs at once on one cluster.
    name = "it_%d_%d_%s" % (os.getpid(), next(_db_seq), secrets.token_hex(3))
    dsn = _pg_cluster().create_database(name)
    _OWNED_DBS.add(name)
    return dsn, name


def drop_db(name):
    """Drops a database new_db() made (ending sessions still in it)."""
    if name is not None and name in _OWNED_DBS:
        _OWNED_DBS.discard(name)
        _pg_cluster().drop_database(name)


def child_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    if extra:
        env.update(extra)
    return env


def rss_kb(pid):
    """Resident set size of pid in KiB (VmRSS from /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL,
                 signal.SIGFPE}


class StartupError(Exception):
    pass


_LIVE = set()


@atexit.register
def _kill_leftovers():
    for rd in list(_LIVE):
        rd.kill()
    if _OWNED_DBS:
        try:
            _pg_cluster().drop_databases(sorted(_OWNED_DBS))
        except Exception:
            pass  # the cluster goes with the fixture anyway
        _OWNED_DBS.clear()


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if this test process dies (e.g. a
    ctest timeout), so no retryd outlives its test."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Retryd:
    """One retryd child process."""

    def __init__(self, upstream_url, args=(), env=None, listen="127.0.0.1:0",
                 tmpdir=None, db=None, binary=None, prefix=(), route_pause="off"):
        # prefix: a command the binary runs under (e.g. strace ...); the
        # process started is then the prefix's, see descendant_pids().
        # db: where the queue lives (--db). Without it, a fresh queue of the
        # backend in use (STORAGE), this retryd's own: a PostgreSQL database
        # is dropped by cleanup(). Either way self.db is its location, which
        # another Retryd takes as db= to open the same queue (and is retired
        # first: a test's cleanups run the last-started retryd's first).
        self.own_tmp = tmpdir is None
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="retryd-it-")
        self.own_db = None
        if not db:
            db, self.own_db = new_db(self.tmpdir)
        self.db = db
        self.binary = binary or retryd_bin()
        self.argv = list(prefix) + [self.binary]
        if upstream_url is not None:
            self.argv += ["--upstream", upstream_url]
        if listen is not None:
            self.argv += ["--listen", listen]
        if self.db is not None:
            self.argv += ["--db", self.db]
        # route_pause: "off" is the tests' baseline (each stored request
        # keeps its own schedule, as most tests assert); "on", or None for
        # retryd's default (on). test_route_flow.py tests the pause itself.
        if route_pause is not None and "--route-pause" not in args:
            self.argv += ["--route-pause", route_pause]
        self.argv += list(args)
        self.env = child_env(env)
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        self.stdout_path = os.path.join(self.tmpdir, "stdout.log")
        self.proc = None
        self.port = None
        self.addr = None
        self.stopped = False
        self.returncode = None

    # ---- lifecycle ----
    def start(self, timeout=10.0):
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err,
                                     env=self.env, preexec_fn=_die_with_parent)
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for obj in self.log_json(strict=False):
                if obj.get("msg") == "listening" and "addr" in obj:
                    self.addr = obj["addr"]
                    self.port = int(str(self.addr).rsplit(":", 1)[1])
                    return self
            if self.proc.poll() is not None:
                raise StartupError("retryd exited with %s before listening; stderr:\n%s"
                                   % (self.proc.returncode, self.stderr_text()))
            time.sleep(0.02)
        self.kill()
        raise StartupError("retryd did not log 'listening' within %.0fs; stderr:\n%s"
                           % (timeout, self.stderr_text()))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10.0):
        """Wait for exit; returns exit status, or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig, wait; returns exit status (SIGKILL after timeout -> None)."""
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
                return None
        self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        _LIVE.discard(self)
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    def cleanup(self):
        self.kill()
        drop_db(self.own_db)
        self.own_db = None
        if self.own_tmp:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    # ---- logs ----
    def stderr_bytes(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def stderr_text(self):
        return self.stderr_bytes().decode("utf-8", "replace")

    def log_lines(self):
        """Complete stderr lines (a trailing partial line is left out)."""
        data = self.stderr_bytes()
        if not data.endswith(b"\n"):
            data = data[:data.rfind(b"\n") + 1]
        return [ln.decode("utf-8", "replace") for ln in data.split(b"\n") if ln]

    def log_json(self, strict=True):
        out = []
        for ln in self.log_lines():
            try:
                obj = json.loads(ln)
            except ValueError:
                if strict:
                    raise AssertionError("stderr line is not JSON: %r" % ln)
                continue
            if isinstance(obj, dict):
                out.append(obj)
            elif strict:
                raise AssertionError("stderr line is not a JSON object: %r" % ln)
        return out

    def wait_log(self, pred, timeout=5.0):
        """Wait for a JSON log object satisfying pred; returns it or None."""
        deadline = time.monotonic() + timeout
        while True:
            for obj in self.log_json(strict=False):
                if pred(obj):
                    return obj
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    # ---- clients ----
    def connect(self, timeout=5.0):
        return RawConn(self.port, timeout=timeout)

    def http(self, timeout=10.0):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """One request on a new http.client connection.
        Returns (status, headers list, body bytes)."""
        c = self.http(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, r.getheaders(), data
        finally:
            c.close()


# --------------------------------------------------------------------------
# Raw HTTP client
# --------------------------------------------------------------------------

class RawResponse:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []
        self.body = b""
        self.raw_head = b""
        self.interim = []   # 1xx responses seen before this one (RawResponse)

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<RawResponse %d %r headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:300])


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A client socket with a buffer, so pipelined answers can be read one by one."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self):
        if self.eof:
            raise ConnectionClosed("connection closed by peer")
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise ConnectionClosed("connection closed by peer")
        self.buf += data

    def _read_until(self, sep, limit=1 << 20):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = self.buf[:i + len(sep)]
                self.buf = self.buf[i + len(sep):]
                return out
            if len(self.buf) > limit:
                raise ValueError("response head too long")
            self._fill()

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out

    def read_head(self):
        """Read one status line + headers (may be a 1xx)."""
        r = RawResponse()
        head = self._read_until(b"\r\n\r\n")
        r.raw_head = head
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        r.version = parts[0]
        r.status = int(parts[1])
        r.reason = parts[2] if len(parts) > 2 else ""
        for ln in lines[1:]:
            k, _, v = ln.decode("latin-1").partition(":")
            r.headers.append((k, v.strip()))
        return r

    def read_response(self, method="GET", skip_interim=True):
        """Read one full response. 1xx answers are collected into .interim.
        A timeout becomes an AssertionError saying what had arrived."""
        try:
            return self._read_response(method, skip_interim)
        except socket.timeout:
            raise AssertionError("no complete response within %ss; unparsed bytes: %r"
                                 % (self.sock.gettimeout(), self.buf[:300])) from None

    def _read_response(self, method, skip_interim):
        interim = []
        while True:
            r = self.read_head()
            if 100 <= r.status < 200 and skip_interim and r.status != 101:
                interim.append(r)
                continue
            break
        r.interim = interim
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te is not None and "chunked" in te.lower():
            parts = []
            while True:
                line = self._read_until(b"\r\n")
                size = int(line[:-2].split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_until(b"\r\n") != b"\r\n":
                        pass
                    break
                data = self._read_exact(size + 2)
                parts.append(data[:-2])
            r.body = b"".join(parts)
        elif cl is not None:
            r.body = self._read_exact(int(cl))
        else:
            r.body = self.read_until_close()
        return r

    def read_until_close(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        parts = [self.buf]
        self.buf = b""
        while not self.eof:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                break
            parts.append(data)
        return b"".join(parts)

    def is_closed(self, timeout=2.0):
        """True if the peer closes (EOF/RST) within timeout with no further data;
        False if still open after timeout. Raises if unexpected data arrives."""
        if self.eof:
            return True
        if self.buf:
            raise AssertionError("unexpected buffered data: %r" % self.buf[:200])
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.eof = True
            return True
        if not data:
            self.eof = True
            return True
        raise AssertionError("unexpected data instead of close: %r" % data[:200])

    def wait_closed(self, timeout):
        """Wait up to timeout for the peer to close, discarding data.
        Returns the time it took, or None if still open."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return time.monotonic() - t0


def exchange(port, data, timeout=5.0, method="GET"):
    """Open a connection, send data, read one response, then report whether
    the server closed the connection. Returns (RawResponse, closed_bool)."""
    with RawConn(port, timeout=timeout) as c:
        c.send(data)
        r = c.read_response(method=method)
        closed = c.is_closed(timeout=2.0)
        return r, closed


# --------------------------------------------------------------------------
# unittest base class
# --------------------------------------------------------------------------

def sanitizer_report(text):
    """True when text holds a sanitizer report: "Sanitizer" is in the first
    line of every one (ERROR: AddressSanitizer, ERROR: LeakSanitizer,
    WARNING: ThreadSanitizer: data race, SUMMARY: UndefinedBehaviorSanitizer),
    and UBSan's own line says "runtime error:"."""
    return "Sanitizer" in text or "runtime error:" in text


def retire(rd):
    """Stop a retryd started by a test; raises AssertionError if it had died
    on its own, hung on SIGTERM, crashed while shutting down, or printed a
    sanitizer report (also when the test stopped or killed it itself)."""
    try:
        if rd.proc is not None and (rd.stopped or rd.proc.poll() is not None):
            text = rd.stderr_text()
            if sanitizer_report(text):
                raise AssertionError("retryd printed a sanitizer report; stderr tail:\n%s"
                                     % text[-3000:])
        if rd.proc is not None and not rd.stopped and rd.port is not None:
            rc = rd.proc.poll()
            if rc is not None:
                raise AssertionError(
                    "retryd died during the test (exit status %s); stderr tail:\n%s"
                    % (rc, rd.stderr_text()[-3000:]))
            rc = rd.stop(timeout=10)
            if rc is None:
                raise AssertionError("retryd did not exit within 10s of SIGTERM")
            if rc < 0 and -rc in CRASH_SIGNALS:
                raise AssertionError("retryd crashed on shutdown (signal %d); stderr tail:\n%s"
                                     % (-rc, rd.stderr_text()[-3000:]))
            # A graceful stop exits 0; a sanitizer report (leak, UB) makes it
            # non-zero or leaves its mark on stderr.
            text = rd.stderr_text()
            if rc != 0 or sanitizer_report(text):
                raise AssertionError("retryd did not stop cleanly (exit status %s); stderr tail:\n%s"
                                     % (rc, text[-3000:]))
    finally:
        rd.cleanup()


class RetrydTestCase(unittest.TestCase):
    """Creates fake upstreams and retryd processes that are cleaned up, and
    fails the test if a retryd it started has died on its own."""

    _class_retryds = ()

    # ---- per test ----
    def fresh_db(self, tmpdir):
        """A queue of the backend in use for retryds this test starts
        itself (Retryd(..., db=...)), removed when the test ends (a
        PostgreSQL database is dropped; a SQLite file is tmpdir's)."""
        location, name = new_db(tmpdir)
        self.addCleanup(drop_db, name)
        return location

    def start_upstream(self, **kw):
        up = FakeUpstream(**kw).start()
        self.addCleanup(up.stop)
        return up

    def start_retryd(self, upstream, *args, env=None, **kw):
        url = upstream.url if hasattr(upstream, "url") else upstream
        rd = Retryd(url, args=args, env=env, **kw)
        self.addCleanup(retire, rd)
        rd.start()
        return rd

    # ---- per class (call from setUpClass) ----
    @classmethod
    def class_upstream(cls, **kw):
        up = FakeUpstream(**kw).start()
        cls.addClassCleanup(up.stop)
        return up

    @classmethod
    def class_retryd(cls, upstream, *args, env=None, **kw):
        url = upstream.url if hasattr(upstream, "url") else upstream
        rd = Retryd(url, args=args, env=env, **kw)
        if not cls.__dict__.get("_class_retryds"):
            cls._class_retryds = []
        cls._class_retryds.append(rd)
        cls.addClassCleanup(retire, rd)
        rd.start()
        return rd

    def tearDown(self):
        for rd in self._class_retryds:
            if rd.proc is not None and not rd.stopped and rd.proc.poll() is not None:
                rd.stopped = True  # report once
                self.fail("retryd died during this test (exit status %s); stderr tail:\n%s"
                          % (rd.proc.returncode, rd.stderr_text()[-3000:]))

    # ---- assertions ----
    def assertJsonError(self, resp, status, code=None):
        self.assertEqual(resp.status, status, resp)
        ctype = (resp.header("content-type") or "").lower()
        self.assertTrue(ctype.startswith("application/json"), "content-type %r" % ctype)
        obj = resp.json()
        self.assertIsInstance(obj, dict)
        self.assertIn("error", obj)
        if code is not None:
            self.assertEqual(obj["error"], code, obj)
        return obj

    def assertRejected400(self, port, data):
        """data, sent on a new connection, gets a 400 JSON error and the
        connection is closed right after it (nothing more is sent)."""
        with RawConn(port, timeout=5) as c:
            c.send(data)
            try:
                r = c.read_response()
            except ConnectionClosed:
                self.fail("connection closed without a 400 answer")
            self.assertJsonError(r, 400, "bad_request")
            try:
                closed = c.is_closed(timeout=2)
            except AssertionError as e:  # more bytes after the 400
                self.fail("after the 400: %s" % e)
            self.assertTrue(closed, "connection left open after a 400")

    def assertNothingForwarded(self, up, settle=0.0):
        if settle:
            time.sleep(settle)
        self.assertEqual(up.count(), 0, "upstream received requests: %r" % up.requests)
        self.assertEqual(up.bytes_received, 0,
                         "upstream received bytes: %r" % up.raw_received[:500])


def wait_port(port, timeout=10.0):
    """Waits until something accepts connections on port."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on port %d after %.0f s" % (port, timeout))


def closed_port():
    """A localhost port with nothing listening (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# Retry queue helpers
# --------------------------------------------------------------------------

import re as _re  # noqa: E402

UUID7_RE = _re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIMESTAMP_RE = _re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
FINAL_STATES = ("completed", "dead", "cancelled")


def parse_timestamp(s):
    """'2026-11-27T00:00:30.000Z' -> Unix seconds (float)."""
    import calendar
    m = TIMESTAMP_RE.match(s or "")
    if not m:
        raise AssertionError("not a UTC timestamp: %r" % (s,))
    base = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = m.group(1)
    return base + (float(frac) if frac else 0.0)


def build_request(method, target, headers=(), body=b"", host="client.example"):
    """Exact request bytes: Host first, then headers in order, then
    Content-Length when there is a body (or the method usually has one)."""
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def send_request(port, method, target, headers=(), body=b"", timeout=10.0):
    """One request on a fresh raw connection; returns the RawResponse."""
    with RawConn(port, timeout=timeout) as c:
        c.send(build_request(method, target, headers, body))
        return c.read_response(method=method)


def control_get(port, path, timeout=10.0):
    """GET a control API path; returns the RawResponse."""
    return send_request(port, "GET", path, timeout=timeout)


def get_stored(port, rid, timeout=10.0):
    """GET /_retryd/requests/<id>; returns the parsed JSON (asserts 200)."""
    r = control_get(port, "/_retryd/requests/%s" % rid, timeout)
    if r.status != 200:
        raise AssertionError("GET /_retryd/requests/%s: %r" % (rid, r))
    return r.json()


def wait_stored_state(port, rid, states, timeout=10.0, interval=0.05):
    """Poll /_retryd/requests/<id> until its state is in states; returns the
    JSON (AssertionError with the last JSON on timeout)."""
    if isinstance(states, str):
        states = (states,)
    deadline = time.monotonic() + timeout
    obj = None
    while True:
        obj = get_stored(port, rid)
        if obj.get("state") in states:
            return obj
        if time.monotonic() >= deadline:
            raise AssertionError("request %s not in %r within %.1fs; last: %r"
                                 % (rid, states, timeout, obj))
        time.sleep(interval)


def descendant_pids(pid):
    """Every descendant process of pid (from /proc/*/task/*/children)."""
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            for k in kids:
                if k not in out:
                    out.append(k)
                    todo.append(k)
    return out


def dns_fault_env(stall_ms=2000):
    """Environment for a retryd whose getaddrinfo() fails like a DNS outage
    for the reserved test names (tests/shims/dns_fault.c): *.dns-stall.test
    blocks stall_ms then fails, *.nxdomain.test fails at once,
    *.loopback.test is 127.0.0.1."""
    shim = os.environ.get("RETRYD_DNS_FAULT") or os.path.normpath(os.path.join(
        os.path.dirname(retryd_bin()), "tests", "shims", "libretryd_dns_fault.so"))
    if not os.path.exists(shim):
        raise unittest.SkipTest("dns fault shim not built: %s" % shim)
    asan = os.environ.get("ASAN_OPTIONS", "")
    # The shim is preloaded ahead of the sanitizer runtime; that is safe
    # (it only wraps getaddrinfo) but ASan checks the order by default.
    asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return {"LD_PRELOAD": shim, "RETRYD_TEST_DNS_STALL_MS": str(stall_ms),
            "ASAN_OPTIONS": asan}


# --------------------------------------------------------------------------
# Process resources and control API liveness (upstream fault tests)
# --------------------------------------------------------------------------

import threading  # noqa: E402

def open_fds(pid):
    """Number of open file descriptors of pid."""
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_targets(pid):
    """{fd number: what it points at} for pid ("socket:[123]", a path, ...)."""
    out = {}
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except OSError:
            pass
    return out


def wait_fds_at_most(pid, limit, timeout):
    """Wait up to timeout for pid's open descriptors to number <= limit.
    Returns the last count seen."""
    deadline = time.monotonic() + timeout
    while True:
        n = open_fds(pid)
        if n <= limit or time.monotonic() >= deadline:
            return n
        time.sleep(0.1)


class HealthPoller:
    """Asks GET /_retryd/health every `interval` s from a thread, each on a
    new connection, and keeps what went wrong: an answer other than 200, an
    error, or an answer slower than `slow` s.

        with HealthPoller(rd.port) as hp:
            ...
        assert not hp.bad, hp.bad
    """

    def __init__(self, port, interval=0.1, slow=2.0, timeout=5.0):
        self.port = port
        self.interval = interval
        self.slow = slow
        self.timeout = timeout
        self.asked = 0
        self.bad = []   # (seconds since start, status or error, seconds taken)
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = None

    def _run(self):
        t_start = time.monotonic()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                st = send_request(self.port, "GET", "/_retryd/health",
                                  timeout=self.timeout).status
            except (OSError, AssertionError, ValueError, ConnectionClosed) as e:
                st = repr(e)
            took = time.monotonic() - t0
            self.asked += 1
            self.worst = max(self.worst, took)
            if st != 200 or took > self.slow:
                self.bad.append((round(t0 - t_start, 2), st, round(took, 3)))
            self._stop.wait(self.interval)

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
