"""A raw, scriptable, misbehaving upstream for retryd's upstream fault tests.

Python 3 standard library only. Unlike fake_upstream.FakeUpstream, which is
a correct HTTP/1.1 server that can be told to say odd things, this one does
one scripted thing to every connection it gets, at the level of bytes and
sockets: close, reset, stall, drip, send garbage, stall a TLS handshake.

    srv = FaultServer(script)                     # plain TCP
    srv = FaultServer(script, certfile=, keyfile=)  # TLS (https upstream)
    srv = FaultServer(None, accept=False)         # listens, never accept()s
    srv.start(); srv.url; ...; srv.stop()

A script is a list of steps run on each connection, in order:

    ("read_request",)        read one request: head, then its Content-Length
                             body (retryd never sends a chunked request)
    ("send", bytes)          write bytes
    ("drip", bytes, secs)    write bytes one at a time, secs apart
    ("sleep", secs)
    ("close",)               orderly close: FIN (TLS: close_notify first)
    ("reset",)               abortive close: SO_LINGER 0, so an RST
    ("hold",)                keep the connection open, reading and
                             dropping whatever comes, until the peer closes
                             it (or stop()); then close
    ("tls_stall",)           (a plain-TCP step on a TLS server) read and drop
                             the ClientHello and everything after, never
                             answer, until the peer closes

With certfile set, the TLS handshake is done before the first step, unless
the script's first step is ("tls_stall",). A script ends with an implicit
("close",). `script` may be replaced while the server runs (set_script);
each new connection takes the script current when it is accepted.

Counters: connections (accepted), requests (fully read by read_request),
tls_errors (failed handshakes), open_connections (not yet closed here),
and max_open (the most open at once).
"""

import socket
import ssl
import threading
import time


class FaultServer:

    def __init__(self, script, certfile=None, keyfile=None, accept=True,
                 host="127.0.0.1", hold_limit=60.0):
        self.host = host
        self.tls = certfile is not None
        self._ctx = None
        if self.tls:
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.load_cert_chain(certfile, keyfile)
        self.script = list(script or [])
        self.accept = accept
        self.hold_limit = hold_limit
        self.port = None
        self._lsock = None
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._socks = set()
        self._threads = []
        self._fillers = []
        self.connections = 0
        self.requests = 0
        self.tls_errors = []
        self.open_connections = 0
        self.max_open = 0
        self.errors = []  # unexpected exceptions in connection threads

    # ---- lifecycle ----------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, 0))
        self.port = s.getsockname()[1]
        self._lsock = s
        if self.accept:
            s.listen(512)
            s.settimeout(0.1)
            self._thread = threading.Thread(target=self._accept_loop, daemon=True)
            self._thread.start()
        else:
            self._fill_backlog()
        return self

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def set_script(self, script):
        with self._lock:
            self.script = list(script)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for f in self._fillers:
            f.close()
        if self._lsock is not None:
            self._lsock.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # ---- a listener that never accepts --------------------------------
    def _fill_backlog(self):
        """listen(0) and one connection that completes and is never
        accepted: the accept queue is full, so the kernel drops every
        further SYN and a connect() to the port just waits."""
        self._lsock.listen(0)
        for _ in range(8):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect((self.host, self.port))
            except BlockingIOError:
                pass
            self._fillers.append(c)
            if not self.connect_completes(0.3):
                return
        raise RuntimeError("the listen backlog of port %d does not fill" % self.port)

    def connect_completes(self, timeout):
        """Whether a new connection to the port is established within
        timeout (for a listener that never accepts: it must not)."""
        p = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        p.settimeout(timeout)
        try:
            p.connect((self.host, self.port))
            return True
        except (socket.timeout, OSError):
            return False
        finally:
            p.close()

    # ---- connections --------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                self.connections += 1
                self.open_connections += 1
                self.max_open = max(self.max_open, self.open_connections)
                self._socks.add(sock)
                script = list(self.script)
                t = threading.Thread(target=self._handle, args=(sock, script), daemon=True)
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _handle(self, sock, script):
        raw = sock
        try:
            sock.setblocking(True)
            sock.settimeout(self.hold_limit)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ctx is not None and not (script and script[0][0] == "tls_stall"):
                try:
                    tls = self._ctx.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self._lock:
                        self.tls_errors.append(str(e))
                    return
                with self._lock:
                    self._socks.add(tls)
                sock = tls
            self._run(sock, script)
        except (OSError, ValueError):
            pass  # the peer went away mid-script: part of the game
        except Exception as e:  # noqa: BLE001 - reported by the tests
            with self._lock:
                self.errors.append(repr(e))
        finally:
            try:
                sock.close()
            except OSError:
                pass
            with self._cond:
                self.open_connections -= 1
                self._socks.discard(sock)
                self._socks.discard(raw)
                self._cond.notify_all()

    def _run(self, sock, script):
        buf = b""
        for step in script:
            op = step[0]
            if op == "read_request":
                buf = self._read_request(sock, buf)
                if buf is None:
                    return
                with self._cond:
                    self.requests += 1
                    self._cond.notify_all()
            elif op == "send":
                sock.sendall(step[1])
            elif op == "drip":
                for i in range(len(step[1])):
                    if self._stop.wait(step[2]):
                        return
                    sock.sendall(step[1][i:i + 1])
            elif op == "sleep":
                if self._stop.wait(step[1]):
                    return
            elif op == "close":
                self._close(sock)
                return
            elif op == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return  # the finally's close() sends the RST
            elif op in ("hold", "tls_stall"):
                self._drain_until_eof(sock)
                return
            else:
                raise ValueError("unknown step %r" % (op,))
        self._close(sock)

    def _close(self, sock):
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(0.5)
            try:
                sock.unwrap()  # close_notify; the peer's may never come
            except (OSError, ValueError):
                pass
        else:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _drain_until_eof(self, sock):
        deadline = time.monotonic() + self.hold_limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            sock.settimeout(0.2)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return

    def _recv(self, sock):
        while True:
            if self._stop.is_set():
                return b""
            sock.settimeout(0.2)
            try:
                return sock.recv(65536)
            except socket.timeout:
                continue

    def _read_request(self, sock, buf):
        """Reads one request; returns the bytes after it, None on EOF."""
        while b"\r\n\r\n" not in buf:
            data = self._recv(sock)
            if not data:
                return None
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            data = self._recv(sock)
            if not data:
                return None
            rest += data
        return rest[length:]

    # ---- observation --------------------------------------------------
    def wait_closed_all(self, timeout):
        """Wait until no accepted connection is open; True, or False."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.open_connections > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True
