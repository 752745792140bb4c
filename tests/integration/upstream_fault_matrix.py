"""The upstream fault matrix (issue 10, item 3): one table of upstream faults,
run against every upstream client by three small test files,
test_upstream_faults_http.py (retryd's own HTTP/1.1 client, http://),
test_upstream_faults_https.py (the same client over TLS, https://, the
default) and test_upstream_faults_https_curl.py (libcurl, https:// with
--upstream-http2 on), so ctest runs them in parallel and a failure names
the fault and the client: test_<fault>_over_<http|https|https_curl>.

Each cell starts a fresh retryd (--upstream-timeout 1s where the fault is a
stall, 2s elsewhere; --retry-interval 1h so no retry runs during the cell) in front of a fault_server.FaultServer
that misbehaves in one scripted way on every connection, then sends
N_REQUESTS requests from CONCURRENCY client threads at once, a mix of
POSTs with a JSON body and GETs, each on its own connection, while a thread
asks /_retryd/health every 100 ms. A cell proves, all at once:

  * every client gets, within CLIENT_TIMEOUT_S, exactly the answer the
    table below says for its method: never a hang, a connection closed
    without an answer, or an answer that does not parse;
  * /_retryd/health answered 200, within HEALTH_SLOW_S, all through the cell;
  * the stats agree: a "202" cell stored one request per 202 answer; a
    cell whose answer is never stored stored none, and the fault server
    got each request exactly once (it was not sent again);
  * retryd's open descriptors come back to what they were before the cell
    (within FD_SETTLE_S), and the fault server's connections were all
    closed by retryd (the server itself never closes a "hold" connection);
  * then, with no client in flight, SIGTERM makes retryd exit 0 within
    SHUTDOWN_LIMIT_S (--shutdown-timeout is 3s): nothing the fault left
    behind (a lookup, a transfer) keeps it running.

The expected results come from the README ("What retryd refuses", "The
retry queue") and DESIGN.md invariants 7 and 8, and they are the SAME for
both clients: one row per fault, no client column. So the http and https
files passing means the same fault gives the same result over both, for
POST and for GET alike.

  no answer at all (DNS, refused, timeout, TLS failure, closed or reset
  before a complete head, a head that is not HTTP or is malformed)
      -> stored for retry, since the default --retry-on includes network:
         202 with {"id": ..., "state": "queued"}. retryd stores GETs as it
         stores POSTs (what its http client does today, and the README
         draws no line between methods).
  a good head, then a body that breaks (closed, bad chunk framing) before
  any byte of the answer reached the client
      -> never stored (the upstream acted on the request): 502 JSON error.
  a good head whose body breaks after part of it was relayed
      -> the head and those bytes, then the connection is cut (the README's
         rule; the client sees a short body, never a forged end).
  an HTTP/1.0 answer without a length (its body ends at the close)
      -> a valid answer, relayed: 200 with the whole body.
"""

import collections
import concurrent.futures
import json
import os
import shutil
import socket
import sys
import tempfile
import time

from fault_server import FaultServer
from harness import (UUID7_RE, ConnectionClosed, HealthPoller, RawConn, RetrydTestCase,
                     build_request, closed_port, control_get, dns_fault_env, fd_targets,
                     open_fds, wait_fds_at_most)

N_REQUESTS = 200
CONCURRENCY = 24
# --upstream-timeout: short where the fault is a stall, so that those cells
# take seconds; where the upstream does answer (or fails at once) it only
# guards against a hang, and is longer so that a slow machine (ASan, two
# cores shared) does not turn a prompt answer into a timeout.
STALL_TIMEOUT = "1s"
ANSWER_TIMEOUT = "2s"
STALLS = {"dns_stalls_past_the_timeout", "listener_never_accepts", "tls_stalls_mid_handshake",
          "head_dripped_past_the_timeout"}
CLIENT_TIMEOUT_S = 15.0    # a client that waits longer than this saw a hang
HEALTH_SLOW_S = 2.0        # a health answer slower than this is a failure
FD_SETTLE_S = 10.0         # in-flight lookups and closes end within this
SHUTDOWN_LIMIT_S = 10.0    # SIGTERM after the cell: exit 0 within this
DNS_STALL_MS = 1500        # longer than STALL_TIMEOUT
DRIP_INTERVAL_S = 0.12     # one byte of the head every 120 ms: 8 s in all

CELL_ARGS = ["--retry-interval", "1h", "--shutdown-timeout", "3s"]

# Outcomes: what one client saw.
STORED = "202"          # 202, JSON body with a UUIDv7 id, state queued
RELAYED = "200"         # 200, well framed, the upstream's whole body
BAD_GATEWAY = "502"     # 502, JSON {"error": ...}
TIMEOUT = "504"         # 504, JSON {"error": ...}
CUT = "cut"             # a 200 head and part of its body, then the close

# ---------------------------------------------------------------------------
# The upstream's answers, byte for byte
# ---------------------------------------------------------------------------

OK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
HTTP10_BODY = b"an HTTP/1.0 answer: its body runs until the upstream closes\n"
HTTP10_ANSWER = (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Fault: http10\r\n\r\n"
                 + HTTP10_BODY)
DRIPPED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
GARBAGE = b"\x00\xff\x13garbage, not HTTP at all\x7f\x80\xfe\r\n\r\n" + bytes(range(256))

MALFORMED_HEADS = {
    "two_content_lengths":
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk",
    "space_before_colon_plus_chunked":
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    "content_length_plus_sign":
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "bare_cr_in_field_value":
        b"HTTP/1.1 200 OK\r\nX-Note: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "content_length_with_transfer_encoding":
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
}

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
BAD_CHUNK_SIZES = {
    "chunk_size_not_hex": CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflows": CHUNKED_HEAD + b"1" + b"f" * 16 + b"\r\nhello\r\n0\r\n\r\n",
}
# A good 2-byte chunk, then its data runs on where CRLF must come: "he" is
# relayed before the framing breaks.
CHUNK_OVERRUN = CHUNKED_HEAD + b"2\r\nhello\r\n0\r\n\r\n"

# ---------------------------------------------------------------------------
# The table: fault -> expected outcome for a POST and for a GET
# ---------------------------------------------------------------------------

Fault = collections.namedtuple("Fault", "name clients setup arg tls post get rule")
BOTH = ("http", "https")
HTTPS = ("https",)
# The clients a matrix runs against, by name: the scheme of the upstream URL
# and the options that choose the client. "https" is retryd's own HTTP/1.1
# client over TLS (the default), "https-curl" is libcurl (--upstream-http2
# on, which speaks HTTP/1.1 to an upstream that offers nothing else).
CLIENT_SCHEME = {"http": "http", "https": "https", "https-curl": "https"}
CLIENT_ARGS = {"http": [], "https": [], "https-curl": ["--upstream-http2", "on"]}


def _script(*steps):
    return [tuple(s) for s in steps]


def _send_and_hold(data):
    # The server keeps its side open after the bytes: retryd has to close.
    return _script(("read_request",), ("send", data), ("hold",))


FAULTS = [
    # -- no answer at all: stored (202) --------------------------------------
    Fault("name_does_not_resolve", BOTH, "dns", "api.nxdomain.test", None,
          STORED, STORED, "DNS failure: no answer, stored"),
    Fault("dns_stalls_past_the_timeout", BOTH, "dns", "api.dns-stall.test", None,
          STORED, STORED, "DNS stall: no answer within --upstream-timeout, stored"),
    Fault("connection_refused", BOTH, "refused", None, None,
          STORED, STORED, "refused: no answer, stored"),
    Fault("listener_never_accepts", BOTH, "no_accept", None, None,
          STORED, STORED, "connect never completes: timeout, stored"),
    Fault("tls_wrong_name_in_certificate", HTTPS, "script",
          _script(("read_request",), ("send", OK_ANSWER)), "wrong_name",
          STORED, STORED, "TLS failure: no answer, stored"),
    Fault("tls_unknown_ca", HTTPS, "script",
          _script(("read_request",), ("send", OK_ANSWER)), "unknown_ca",
          STORED, STORED, "TLS failure: no answer, stored"),
    Fault("tls_stalls_mid_handshake", HTTPS, "script", _script(("tls_stall",)), "good",
          STORED, STORED, "no ServerHello: timeout, stored"),
    Fault("close_before_the_head", BOTH, "script",
          _script(("read_request",), ("close",)), "good",
          STORED, STORED, "closed without an answer: stored"),
    Fault("close_mid_head", BOTH, "script",
          _script(("read_request",), ("send", b"HTTP/1.1 200 OK\r\nContent-Le"), ("close",)),
          "good", STORED, STORED, "incomplete head is no answer: stored"),
    Fault("reset_before_the_head", BOTH, "script",
          _script(("read_request",), ("reset",)), "good",
          STORED, STORED, "reset without an answer: stored"),
    Fault("head_dripped_past_the_timeout", BOTH, "script",
          _script(("read_request",), ("drip", DRIPPED_HEAD, DRIP_INTERVAL_S), ("hold",)),
          "good", STORED, STORED, "no complete head within --upstream-timeout: stored"),
    Fault("garbage_instead_of_http", BOTH, "script", _send_and_hold(GARBAGE), "good",
          STORED, STORED, "not an HTTP head: no answer, stored"),
] + [
    Fault(name, BOTH, "script", _send_and_hold(raw), "good", STORED, STORED,
          "malformed head (invariant 7) counts as no answer: stored")
    for name, raw in MALFORMED_HEADS.items()
] + [
    # -- a good head, then a broken body: never stored -----------------------
    Fault("close_mid_body_before_any_body_byte", BOTH, "script",
          _script(("read_request",), ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
                  ("close",)),
          "good", BAD_GATEWAY, BAD_GATEWAY,
          "final answer broken before anything was relayed: 502, not stored"),
    Fault("close_mid_body", BOTH, "script",
          _script(("read_request",),
                  ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"), ("close",)),
          "good", CUT, CUT, "final answer broken after part was relayed: cut, not stored"),
    Fault("reset_mid_body", BOTH, "script",
          _script(("read_request",),
                  ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"), ("reset",)),
          "good", CUT, CUT, "final answer broken after part was relayed: cut, not stored"),
] + [
    Fault(name, BOTH, "script", _send_and_hold(raw), "good", BAD_GATEWAY, BAD_GATEWAY,
          "good head, bad chunk size (invariant 7), nothing relayed yet: 502, not stored")
    for name, raw in BAD_CHUNK_SIZES.items()
] + [
    Fault("chunk_data_longer_than_its_size", BOTH, "script", _send_and_hold(CHUNK_OVERRUN),
          "good", CUT, CUT,
          "good head and first chunk relayed, then bad chunk framing: cut, not stored"),
] + [
    # -- a valid answer: relayed ---------------------------------------------
    Fault("http10_answer_without_length", BOTH, "script",
          _script(("read_request",), ("send", HTTP10_ANSWER), ("close",)), "good",
          RELAYED, RELAYED, "body delimited by the close is valid: relayed"),
]

NEVER_STORED = (BAD_GATEWAY, TIMEOUT, CUT, RELAYED)


def faults_for(client):
    return [f for f in FAULTS if CLIENT_SCHEME[client] in f.clients]


# ---------------------------------------------------------------------------
# One client request, and what it saw
# ---------------------------------------------------------------------------

Result = collections.namedtuple("Result", "kind outcome detail took")


def _json_body(r):
    try:
        obj = json.loads(r.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


class BadFraming(Exception):
    """retryd's answer has ambiguous or invalid framing headers."""


def _read_body(c, r, method):
    """Reads r's body off c by its framing. ConnectionClosed if cut."""
    if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
        return b""
    te = r.header("transfer-encoding")
    cl = r.header("content-length")
    if te is not None:
        if te.lower() != "chunked" or cl is not None:
            raise BadFraming("Transfer-Encoding %r with Content-Length %r" % (te, cl))
        parts = []
        while True:
            line = c._read_until(b"\r\n")
            size = int(line[:-2].split(b";")[0], 16)
            if size == 0:
                while c._read_until(b"\r\n") != b"\r\n":
                    pass
                return b"".join(parts)
            data = c._read_exact(size + 2)
            if data[-2:] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            parts.append(data[:-2])
    if cl is not None:
        if len(r.header_all("content-length")) != 1 or not cl.isdigit():
            raise BadFraming("Content-Length %r" % (r.header_all("content-length"),))
        return c._read_exact(int(cl))
    return c.read_until_close()


def classify(r, expect_body):
    """The outcome of a complete answer r."""
    if r.status == 202:
        obj = _json_body(r)
        if (obj and isinstance(obj.get("id"), str) and UUID7_RE.match(obj["id"])
                and obj.get("state") == "queued"):
            return STORED, obj.get("last_error")
        return "202 without a queued id", r.body[:200]
    if r.status in (502, 504):
        obj = _json_body(r)
        ctype = (r.header("content-type") or "").lower()
        if obj and "error" in obj and ctype.startswith("application/json"):
            return str(r.status), "%s: %s" % (obj.get("error"), obj.get("message"))
        return "%d without a JSON error" % r.status, r.body[:200]
    if r.status == 200 and r.body == expect_body:
        return RELAYED, None
    return "%d" % r.status, r.body[:200]


def one_request(port, kind, i, expect_body=HTTP10_BODY):
    """One request on its own connection; returns a Result."""
    target = "/api/v1/bot/%d?cell=1" % i
    if kind == "POST":
        body = json.dumps({"meeting_url": "https://meet.example/%d" % i, "n": i}).encode()
        raw = build_request("POST", target, [("Content-Type", "application/json")], body)
    else:
        raw = build_request("GET", target, [("Accept", "application/json")])
    t0 = time.monotonic()

    def done(outcome, detail=None):
        took = time.monotonic() - t0
        if took > CLIENT_TIMEOUT_S and outcome != "hang":
            outcome, detail = "slow", "%s after %.1fs" % (outcome, took)
        return Result(kind, outcome, detail, round(took, 3))

    try:
        c = RawConn(port, timeout=CLIENT_TIMEOUT_S)
    except OSError as e:
        return done("connect failed", repr(e))
    with c:
        try:
            c.send(raw)
        except OSError as e:
            return done("send failed", repr(e))
        try:
            r = c.read_head()
            while 100 <= r.status < 200:
                r = c.read_head()
        except socket.timeout:
            return done("hang", "no head within %ss; bytes: %r" % (CLIENT_TIMEOUT_S, c.buf[:200]))
        except ConnectionClosed:
            return done("closed without an answer", c.buf[:200])
        except (ValueError, IndexError) as e:
            return done("malformed head", "%r; bytes: %r" % (e, c.buf[:200]))
        try:
            r.body = _read_body(c, r, kind)
        except socket.timeout:
            return done("hang", "%d head, then no end of body within %ss"
                        % (r.status, CLIENT_TIMEOUT_S))
        except ConnectionClosed:
            if r.status == 200:
                return done(CUT, "got %r" % c.buf[:100])
            return done("%d cut mid-body" % r.status, c.buf[:200])
        except BadFraming as e:
            return done("%d with bad framing" % r.status, str(e))
        except (ValueError, IndexError) as e:
            return done("malformed body", repr(e))
        outcome, detail = classify(r, expect_body)
        return done(outcome, detail)


def run_load(port, n=N_REQUESTS, concurrency=CONCURRENCY):
    """n requests from `concurrency` threads: 3 POSTs for every 2 GETs."""
    kinds = ["POST" if i % 5 in (0, 2, 4) else "GET" for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as ex:
        return list(ex.map(lambda a: one_request(port, a[1], a[0]), enumerate(kinds)))


def summarize(results):
    """{kind: Counter(outcome)} and a few details of each outcome."""
    by_kind = collections.defaultdict(collections.Counter)
    samples = collections.defaultdict(list)
    for r in results:
        by_kind[r.kind][r.outcome] += 1
        if len(samples[(r.kind, r.outcome)]) < 2:
            samples[(r.kind, r.outcome)].append((r.detail, r.took))
    return by_kind, samples


# ---------------------------------------------------------------------------
# The test case
# ---------------------------------------------------------------------------

class FaultMatrixCase(RetrydTestCase):
    """Base of the generated matrix classes; CLIENT is http, https or https-curl."""

    CLIENT = None
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = None
        if CLIENT_SCHEME[cls.CLIENT] == "https":
            from test_tls_upstream import make_pki
            cls.pki = tempfile.mkdtemp(prefix="retryd-matrix-pki-")
            cls.addClassCleanup(shutil.rmtree, cls.pki, True)
            make_pki(cls.pki)

    def p(self, name):
        return os.path.join(self.pki, name)

    # ---- a fault's upstream ----
    def upstream_for(self, fault):
        """(url, retryd args, env, FaultServer or None) for fault."""
        scheme = CLIENT_SCHEME[self.CLIENT]
        https = scheme == "https"
        ca = (["--upstream-ca", self.p("ca.pem")] if https else []) + CLIENT_ARGS[self.CLIENT]
        if fault.setup == "dns":
            return ("%s://%s:%d" % (scheme, fault.arg, closed_port()), ca,
                    dns_fault_env(DNS_STALL_MS), None)
        if fault.setup == "refused":
            return "%s://127.0.0.1:%d" % (scheme, closed_port()), ca, None, None
        if fault.setup == "no_accept":
            srv = FaultServer(None, accept=False).start()
            self.addCleanup(srv.stop)
            self.assertFalse(srv.connect_completes(0.3), "the listener accepts connections")
            return "%s://127.0.0.1:%d" % (scheme, srv.port), ca, None, srv
        assert fault.setup == "script", fault
        cert = {}
        if https:
            name = "wrong" if fault.tls == "wrong_name" else "srv"
            cert = {"certfile": self.p(name + ".pem"), "keyfile": self.p(name + ".key")}
            if fault.tls == "unknown_ca":
                ca = CLIENT_ARGS[self.CLIENT]
        srv = FaultServer(fault.arg, **cert).start()
        self.addCleanup(srv.stop)
        return srv.url, ca, None, srv

    def stop_cleanly(self, rd):
        """SIGTERM with no client in flight: retryd must exit 0 (and without
        a sanitizer report) within SHUTDOWN_LIMIT_S. Problems, as strings."""
        if not rd.alive():
            return ["retryd died during the cell (exit status %s); stderr tail:\n%s"
                    % (rd.proc.returncode, rd.stderr_text()[-2000:])]
        t0 = time.monotonic()
        rc = rd.stop(timeout=SHUTDOWN_LIMIT_S)
        if rc is None:
            return ["retryd did not exit within %.0fs of SIGTERM after the cell (no client "
                    "in flight, --shutdown-timeout 3s): something the fault started is still "
                    "pending; killed" % SHUTDOWN_LIMIT_S]
        text = rd.stderr_text()
        if rc != 0 or "Sanitizer" in text or "runtime error:" in text:
            return ["retryd did not stop cleanly (exit status %s after %.1fs); stderr tail:\n%s"
                    % (rc, time.monotonic() - t0, text[-3000:])]
        return []

    # ---- one cell ----
    def run_cell(self, fault):
        url, args, env, srv = self.upstream_for(fault)
        timeout = STALL_TIMEOUT if fault.name in STALLS else ANSWER_TIMEOUT
        rd = self.start_retryd(url, "--upstream-timeout", timeout, *CELL_ARGS, *args, env=env)
        base = open_fds(rd.pid)
        base_fds = fd_targets(rd.pid)
        t0 = time.monotonic()
        with HealthPoller(rd.port, slow=HEALTH_SLOW_S) as hp:
            results = run_load(rd.port)
        load_s = time.monotonic() - t0

        problems = []
        by_kind, samples = summarize(results)
        for kind, want in (("POST", fault.post), ("GET", fault.get)):
            got = dict(by_kind[kind])
            if set(got) != {want}:
                lines = ["%s: expected every answer %r (%s), got %r"
                         % (kind, want, fault.rule, got)]
                for outcome in got:
                    lines += ["    %s e.g. %r" % (outcome, s) for s in samples[(kind, outcome)]]
                problems.append("\n".join(lines))

        if hp.asked == 0 or hp.bad:
            problems.append("health: %d asked, bad answers (t, status, took): %r"
                            % (hp.asked, hp.bad[:10]))

        stats = control_get(rd.port, "/_retryd/stats").json()
        stored = stats["totals"]["stored"]
        n202 = sum(1 for r in results if r.outcome == STORED)
        if stored != n202:
            problems.append("stats: %d stored, but %d clients got a 202" % (stored, n202))
        if (srv is not None and fault.post in NEVER_STORED and fault.get in NEVER_STORED
                and srv.requests != len(results)):
            problems.append("the fault server got %d requests for %d sent: a request whose "
                            "answer had begun was sent again" % (srv.requests, len(results)))

        settled = wait_fds_at_most(rd.pid, base, FD_SETTLE_S)
        if settled > base:
            now = fd_targets(rd.pid)
            extra = {fd: t for fd, t in now.items() if base_fds.get(fd) != t}
            problems.append("open descriptors: %d before the cell, still %d after %.0fs; new: %r"
                            % (base, settled, FD_SETTLE_S, dict(list(extra.items())[:12])))
        if srv is not None and srv.accept and not srv.wait_closed_all(2.0):
            problems.append("retryd left %d of the fault server's connections open"
                            % srv.open_connections)
        if srv is not None and srv.errors:
            problems.append("fault server errors: %r" % srv.errors[:3])
        problems += self.stop_cleanly(rd)

        took = sorted(r.took for r in results)
        note = ("cell %s over %s: %d requests in %.1fs (slowest %.2fs), health asked %d "
                    "times (worst %.2fs)" % (fault.name, self.CLIENT, len(results), load_s,
                                             took[-1], hp.asked, hp.worst))
        if os.environ.get("RETRYD_MATRIX_NOTES"):
            print("\n" + note, file=sys.stderr)
        if problems:
            self.fail(note + "\n" + "\n".join(problems))

    # ---- once with retries running ----
    def run_retries_running_then_healed(self):
        """The same load against an upstream that resets every connection,
        with --retry-interval 1s so the stored requests are retried (and
        fail again) while health is polled; then the upstream heals, every
        stored request completes, and the descriptors are back."""
        https = CLIENT_SCHEME[self.CLIENT] == "https"
        cert = {"certfile": self.p("srv.pem"), "keyfile": self.p("srv.key")} if https else {}
        srv = FaultServer(_script(("read_request",), ("reset",)), **cert).start()
        self.addCleanup(srv.stop)
        args = (["--upstream-ca", self.p("ca.pem")] if https else []) + CLIENT_ARGS[self.CLIENT]
        rd = self.start_retryd(srv.url, "--upstream-timeout", ANSWER_TIMEOUT,
                               "--retry-interval", "1s", *args)
        base = open_fds(rd.pid)
        base_fds = fd_targets(rd.pid)
        problems = []
        with HealthPoller(rd.port, slow=HEALTH_SLOW_S) as hp:
            results = run_load(rd.port)
            by_kind, samples = summarize(results)
            for kind in ("POST", "GET"):
                if set(by_kind[kind]) != {STORED}:
                    problems.append("%s: expected every answer 202, got %r; e.g. %r"
                                    % (kind, dict(by_kind[kind]),
                                       [samples[(kind, o)] for o in by_kind[kind]]))
            n = len(results)
            deadline = time.monotonic() + 30
            while True:
                totals = control_get(rd.port, "/_retryd/stats").json()["totals"]
                if totals["retries"] >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if totals["retries"] < n:
                problems.append("only %d retries ran in 30s for %d stored requests"
                                % (totals["retries"], n))
            srv.set_script(_script(("read_request",), ("send", OK_ANSWER), ("close",)))
            deadline = time.monotonic() + 30
            while True:
                queue = control_get(rd.port, "/_retryd/stats").json()["queue"]
                if (queue["queued"] == 0 and queue["inflight"] == 0) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        if queue.get("completed") != n or queue["queued"] or queue["inflight"]:
            problems.append("after the upstream healed, the queue is %r (expected %d completed)"
                            % (queue, n))
        if hp.asked == 0 or hp.bad:
            problems.append("health: %d asked, bad answers (t, status, took): %r"
                            % (hp.asked, hp.bad[:10]))
        settled = wait_fds_at_most(rd.pid, base, FD_SETTLE_S)
        if settled > base:
            now = fd_targets(rd.pid)
            extra = {fd: t for fd, t in now.items() if base_fds.get(fd) != t}
            problems.append("open descriptors: %d before, still %d after %.0fs; new: %r"
                            % (base, settled, FD_SETTLE_S, dict(list(extra.items())[:12])))
        if not srv.wait_closed_all(2.0):
            problems.append("retryd left %d of the fault server's connections open"
                            % srv.open_connections)
        problems += self.stop_cleanly(rd)
        if problems:
            self.fail("retries running over %s (%d upstream requests):\n%s"
                      % (self.CLIENT, srv.requests, "\n".join(problems)))


def matrix_class(client, module):
    """A TestCase class with one test per cell of client's column:
    test_<fault>_over_<client>, plus the retries-running check. module: the
    test file's __name__, so test ids name that file."""
    name = "UpstreamFaults%sTest" % client.title().replace("-", "")
    attrs = {"CLIENT": client, "__module__": module,
             "__doc__": "The upstream fault matrix over %s://." % client}
    for fault in faults_for(client):
        def test(self, fault=fault):
            self.run_cell(fault)
        test.__name__ = "test_%s_over_%s" % (fault.name, client.replace("-", "_"))
        test.__doc__ = "%s -> POST %s, GET %s (%s)" % (fault.name, fault.post, fault.get,
                                                       fault.rule)
        attrs[test.__name__] = test

    def test_retries(self):
        self.run_retries_running_then_healed()
    test_retries.__name__ = "test_retries_running_then_healed_over_%s" % client.replace("-", "_")
    attrs[test_retries.__name__] = test_retries
    return type(name, (FaultMatrixCase,), attrs)
