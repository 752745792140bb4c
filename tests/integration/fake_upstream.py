"""Scriptable fake upstream HTTP/1.1 server for retryd integration tests.

Python 3 standard library only.  Runs in-process on background threads, on
127.0.0.1 (or FakeUpstream(host="::1") for IPv6) and an ephemeral port.  It has
its own strict parser so that it can record the exact bytes of every request
it receives, and the connection each came on (req.conn_id).

Usage:

    up = FakeUpstream()            # or FakeUpstream(certfile=..., keyfile=...)
    up.start()
    up.push(Response(status=507, body=b'{"x":1}'))   # next answer
    up.handler = lambda req: Response(body=req.target.encode())
    ...
    req = up.wait_for_requests(1, timeout=5)[0]
    req.method, req.target, req.headers, req.body, req.raw_head, req.raw_body
    up.stop()

Answer selection for each request: the queue filled by push() first, then
`handler(req)` if set, then `default` (200 "ok").
"""

import collections
import http
import select
import socket
import socketserver
import ssl
import threading
import time

# --------------------------------------------------------------------------
# Deterministic body pattern (for large generated bodies)
# --------------------------------------------------------------------------

PATTERN_PERIOD = 251  # prime, so a shifted or dropped block is detected
_BASE = bytes((i * 7 + 3) % 256 for i in range(PATTERN_PERIOD))
_BIG = _BASE * ((256 * 1024) // PATTERN_PERIOD + 2)  # > 256 KiB + one period


def pattern(offset, n):
    """Bytes offset..offset+n of the infinite generated pattern."""
    out = []
    while n > 0:
        start = offset % PATTERN_PERIOD
        take = min(n, len(_BIG) - start)
        out.append(_BIG[start:start + take])
        offset += take
        n -= take
    return b"".join(out)


class PatternChecker:
    """Feed received bytes; tracks length and whether they match pattern()."""

    def __init__(self):
        self.length = 0
        self.ok = True
        self.first_mismatch = None

    def feed(self, data):
        if self.ok and data != pattern(self.length, len(data)):
            self.ok = False
            exp = pattern(self.length, len(data))
            for i, (a, b) in enumerate(zip(data, exp)):
                if a != b:
                    self.first_mismatch = self.length + i
                    break
        self.length += len(data)


# --------------------------------------------------------------------------
# Scripted responses
# --------------------------------------------------------------------------

class Response:
    """One scripted answer.

    status, reason      status line (reason defaults to the standard phrase)
    headers             list of (name, value); Content-Length / Transfer-Encoding
                        are added automatically unless already present or
                        no_length=True
    body                bytes
    body_size           generate a body of this many pattern() bytes, streamed
                        in pieces of `piece_size`, never held in memory whole
    pieces              explicit list of body pieces (sent with piece_delay
                        between them); overrides body
    piece_delay         seconds to sleep between pieces
    delay               seconds to wait before answering at all
    close_without_answer  close the connection instead of answering
    chunked             send the body with Transfer-Encoding: chunked
    no_length           close-delimited body (no CL/TE header), connection closed
    close               add "Connection: close" and close after the answer
    raw                 exact bytes to write instead of building an answer; or
                        a list of byte strings, written one by one with
                        piece_delay between them (e.g. an interim 1xx, then
                        the final answer; or an answer, then stray bytes)
    idle_close_after    seconds: if no next request has started this long
                        after the answer, shut down the sending side (FIN)
                        as a server dropping an idle keep-alive connection
                        does, but go on reading: requests that still arrive
                        are recorded and never answered
    """

    def __init__(self, status=200, reason=None, headers=None, body=b"",
                 body_size=None, pieces=None, piece_size=65536, piece_delay=0.0,
                 delay=0.0, close_without_answer=False, chunked=False,
                 no_length=False, close=False, raw=None, idle_close_after=None):
        self.status = status
        self.reason = reason
        self.headers = list(headers or [])
        if isinstance(body, str):
            body = body.encode()
        self.body = body
        self.body_size = body_size
        self.pieces = pieces
        self.piece_size = piece_size
        self.piece_delay = piece_delay
        self.delay = delay
        self.close_without_answer = close_without_answer
        self.chunked = chunked
        self.no_length = no_length
        self.close = close
        self.raw = raw
        self.idle_close_after = idle_close_after

    def body_length(self):
        if self.body_size is not None:
            return self.body_size
        if self.pieces is not None:
            return sum(len(p) for p in self.pieces)
        return len(self.body)

    def iter_body(self):
        if self.body_size is not None:
            off = 0
            while off < self.body_size:
                n = min(self.piece_size, self.body_size - off)
                yield pattern(off, n)
                off += n
        elif self.pieces is not None:
            for p in self.pieces:
                yield p
        elif self.body:
            yield self.body


class Request:
    """One request as received by the fake upstream."""

    def __init__(self):
        self.raw_head = b""      # request line + header lines + final CRLF CRLF
        self.raw_body = b""      # body bytes exactly as on the wire (incl. chunk framing)
        self.body = b""          # decoded body
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = []        # [(name, value)] in order, as str (latin-1)
        self.trailers = []
        self.chunked = False
        self.conn_id = 0         # which upstream connection it arrived on
        self.index_in_conn = 0   # 0 for the first request on a connection
        self.received_at = 0.0   # time.monotonic() when fully received

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header_names(self):
        return [k for k, _ in self.headers]

    def has_header(self, name):
        return self.header(name) is not None

    def __repr__(self):
        return "<Request %s %s headers=%r body=%d B>" % (
            self.method, self.target, self.headers, len(self.body))


class ParseError(Exception):
    pass


class _Reader:
    """Buffered reader over a socket."""

    def __init__(self, sock, on_bytes=None):
        self.sock = sock
        self.buf = b""
        self.on_bytes = on_bytes

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        if self.on_bytes:
            self.on_bytes(data)
        self.buf += data

    def read_until(self, sep, limit):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = self.buf[:i + len(sep)]
                self.buf = self.buf[i + len(sep):]
                return out
            if len(self.buf) > limit:
                raise ParseError("line/head too long")
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out

    def at_eof_or_data(self):
        """Block until data or EOF; True if there is data."""
        if self.buf:
            return True
        try:
            self._fill()
            return True
        except EOFError:
            return False


_TOKEN_CHARS = set(b"!#$%&'*+-.^_`|~0123456789"
                   b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _parse_request(reader, max_head=1 << 20, max_body=1 << 30):
    req = Request()
    head = reader.read_until(b"\r\n\r\n", max_head)
    req.raw_head = head
    lines = head[:-4].split(b"\r\n")
    for ln in lines:
        if b"\r" in ln or b"\n" in ln or b"\x00" in ln:
            raise ParseError("bare CR/LF or NUL in head")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise ParseError("bad request line %r" % lines[0][:200])
    method, target, version = parts
    if not method or any(c not in _TOKEN_CHARS for c in method):
        raise ParseError("bad method")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ParseError("bad version")
    req.method = method.decode("latin-1")
    req.target = target.decode("latin-1")
    req.version = version.decode("latin-1")
    for ln in lines[1:]:
        if ln[:1] in (b" ", b"\t"):
            raise ParseError("obs-fold")
        name, sep, value = ln.partition(b":")
        if not sep or not name or any(c not in _TOKEN_CHARS for c in name):
            raise ParseError("bad header line %r" % ln[:200])
        req.headers.append((name.decode("latin-1"),
                            value.strip(b" \t").decode("latin-1")))
    te = [v for k, v in req.headers if k.lower() == "transfer-encoding"]
    cl = [v for k, v in req.headers if k.lower() == "content-length"]
    if te and cl:
        raise ParseError("both CL and TE")
    if te:
        if len(te) != 1 or te[0].strip().lower() != "chunked":
            raise ParseError("unsupported TE %r" % te)
        req.chunked = True
        raw = []
        body = []
        total = 0
        while True:
            line = reader.read_until(b"\r\n", 4096)
            raw.append(line)
            size_s = line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise ParseError("bad chunk size %r" % line)
            if size == 0:
                break
            total += size
            if total > max_body:
                raise ParseError("body too large")
            data = reader.read_exact(size + 2)
            if data[-2:] != b"\r\n":
                raise ParseError("chunk not followed by CRLF")
            raw.append(data)
            body.append(data[:-2])
        while True:  # trailers
            line = reader.read_until(b"\r\n", 65536)
            raw.append(line)
            if line == b"\r\n":
                break
            n, _, v = line[:-2].partition(b":")
            req.trailers.append((n.decode("latin-1"), v.strip().decode("latin-1")))
        req.raw_body = b"".join(raw)
        req.body = b"".join(body)
    elif cl:
        if len(set(cl)) != 1 or not cl[0].isdigit():
            raise ParseError("bad content-length %r" % cl)
        n = int(cl[0])
        if n > max_body:
            raise ParseError("body too large")
        req.raw_body = req.body = reader.read_exact(n)
    return req


def _wants_close(req):
    conn = ",".join(req.header_all("connection")).lower()
    tokens = [t.strip() for t in conn.split(",")]
    if "close" in tokens:
        return True
    if req.version == "HTTP/1.0" and "keep-alive" not in tokens:
        return True
    return False


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------

class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _Server6(_Server):
    address_family = socket.AF_INET6


class FakeUpstream:
    def __init__(self, certfile=None, keyfile=None, host="127.0.0.1",
                 idle_timeout=30.0, port=0):
        self.host = host
        self.want_port = port       # 0: an ephemeral port
        self.tls = certfile is not None
        self._ctx = None
        if self.tls:
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.load_cert_chain(certfile, keyfile)
        self.idle_timeout = idle_timeout
        self.handler = None
        self.default = Response(200, body=b"ok")
        self._queue = collections.deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.requests = []          # every fully received Request, in order
        self.parse_errors = []      # (conn_id, message) for unparseable input
        self.tls_errors = []        # handshake failures (str)
        self.connections = 0        # accepted TCP connections
        self.bytes_received = 0     # every byte read from any connection
        self.raw_received = b""     # the first 64 KiB of them, for messages
        self.open_connections = 0
        self._socks = set()
        self._stop = threading.Event()
        self._server = None
        self._thread = None
        self.port = None

    # ---- lifecycle ----
    def start(self):
        owner = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                owner._handle(self.request)

        cls = _Server6 if ":" in self.host else _Server  # "::1": IPv6
        self._server = cls((self.host, self.want_port), H)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % ("https" if self.tls else "http", host, self.port)

    def stop(self):
        self._stop.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # ---- scripting ----
    def push(self, *responses):
        with self._lock:
            self._queue.extend(responses)

    def clear(self):
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.parse_errors.clear()
            self.tls_errors.clear()
            self.connections = 0
            self.bytes_received = 0
            self.raw_received = b""

    # ---- observation ----
    def count(self):
        with self._lock:
            return len(self.requests)

    def wait_for_requests(self, n, timeout=5.0):
        """Wait until at least n requests were received; returns a copy of the
        list (raises AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "fake upstream: expected %d requests within %.1fs, got %d: %r"
                        % (n, timeout, len(self.requests), self.requests))
                self._cond.wait(left)
            return list(self.requests)

    def wait_open_connections(self, n, timeout=5.0):
        """Wait until at most n connections are open (a connection counts as
        closed once its peer closed it too); True, or False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.open_connections > n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_for_connections(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.connections < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # ---- internals ----
    def _count_bytes(self, data):
        with self._lock:
            self.bytes_received += len(data)
            if len(self.raw_received) < 65536:
                self.raw_received += data[:65536]

    def _next_response(self, req):
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.handler is not None:
            r = self.handler(req)
            if r is not None:
                return r
        return self.default

    def _handle(self, sock):
        with self._cond:
            self.connections += 1
            self.open_connections += 1
            conn_id = self.connections
            self._socks.add(sock)
            self._cond.notify_all()
        try:
            sock.settimeout(self.idle_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ctx is not None:
                try:
                    tls = self._ctx.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self._lock:
                        self.tls_errors.append(str(e))
                    return
                with self._lock:
                    self._socks.add(tls)
                sock = tls
            self._serve(sock, conn_id)
        except (OSError, EOFError):
            pass
        finally:
            with self._cond:
                self.open_connections -= 1
                self._socks.discard(sock)
                self._cond.notify_all()
            try:
                sock.close()
            except OSError:
                pass

    def _serve(self, sock, conn_id):
        reader = _Reader(sock, self._count_bytes)
        index = 0
        half_closed = False  # idle_close_after: FIN sent, still reading
        while not self._stop.is_set():
            if not reader.at_eof_or_data():
                return
            try:
                req = _parse_request(reader)
            except ParseError as e:
                with self._lock:
                    self.parse_errors.append((conn_id, str(e)))
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            req.conn_id = conn_id
            req.index_in_conn = index
            req.received_at = time.monotonic()
            index += 1
            with self._cond:
                self.requests.append(req)
                self._cond.notify_all()
            if half_closed:
                continue  # recorded; it can no longer be answered
            resp = self._next_response(req)
            if resp.delay and self._stop.wait(resp.delay):
                return
            if resp.close_without_answer:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            close = self._send(sock, req, resp)
            if close or _wants_close(req):
                try:
                    if isinstance(sock, ssl.SSLSocket):
                        sock.unwrap()
                    else:
                        sock.shutdown(socket.SHUT_WR)
                except (OSError, ValueError):
                    pass
                return
            if resp.idle_close_after is not None and not reader.buf:
                ready, _, _ = select.select([sock], [], [], resp.idle_close_after)
                if not ready:
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    half_closed = True

    def _send(self, sock, req, resp):
        """Send resp; returns True if the connection must close afterwards."""
        if resp.raw is not None:
            pieces = resp.raw if isinstance(resp.raw, (list, tuple)) else [resp.raw]
            for i, piece in enumerate(pieces):
                if i and resp.piece_delay and self._stop.wait(resp.piece_delay):
                    return True
                sock.sendall(piece)
            return resp.close
        reason = resp.reason
        if reason is None:
            try:
                reason = http.HTTPStatus(resp.status).phrase
            except ValueError:
                reason = "Unknown"
        names = {k.lower() for k, _ in resp.headers}
        headers = list(resp.headers)
        close = resp.close or resp.no_length
        is_head = req.method == "HEAD"
        bodyless = resp.status in (204, 304) or 100 <= resp.status < 200
        if resp.chunked:
            if "transfer-encoding" not in names:
                headers.append(("Transfer-Encoding", "chunked"))
        elif not resp.no_length and not bodyless:
            if "content-length" not in names:
                headers.append(("Content-Length", str(resp.body_length())))
        if resp.close and "connection" not in names:
            headers.append(("Connection", "close"))
        head = ["HTTP/1.1 %d %s\r\n" % (resp.status, reason)]
        for k, v in headers:
            head.append("%s: %s\r\n" % (k, v))
        head.append("\r\n")
        sock.sendall("".join(head).encode("latin-1"))
        if is_head or bodyless:
            return close
        first = True
        for piece in resp.iter_body():
            if not first and resp.piece_delay:
                if self._stop.wait(resp.piece_delay):
                    return True
            first = False
            if resp.chunked:
                if piece:
                    sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                sock.sendall(piece)
        if resp.chunked:
            sock.sendall(b"0\r\n\r\n")
        return close


# --------------------------------------------------------------------------
# Common handlers
# --------------------------------------------------------------------------

def echo_target(req):
    """Body = request target; useful for ordering checks."""
    return Response(200, headers=[("Content-Type", "text/plain")],
                    body=req.target.encode("latin-1"))


def echo_body(req):
    return Response(200, headers=[("Content-Type", "application/octet-stream")],
                    body=req.body)
