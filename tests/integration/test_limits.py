"""Resource limits: --max-body (413), the 64 KiB header cap (431), long URLs
(414/431), --client-timeout (slowloris), --keepalive-timeout and
--max-connections."""

import socket
import time
import unittest

from fake_upstream import echo_target
from harness import RawConn, RetrydTestCase, ConnectionClosed

H = b"Host: client.example\r\n"


def send_tolerant(c, data):
    """Send; the server may answer and close before it has read everything."""
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class BodyAndHeaderLimitTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.rd = cls.class_retryd(cls.up, "--max-body", "1KiB")

    def setUp(self):
        self.up.clear()
        self.up.handler = echo_target

    def test_body_at_limit_forwarded(self):
        body = b"b" * 1024
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(b"POST /at-limit HTTP/1.1\r\n" + H + b"Content-Length: 1024\r\n\r\n" + body)
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.wait_for_requests(1)[0].body, body)

    def test_content_length_over_limit_413(self):
        with RawConn(self.rd.port, timeout=5) as c:
            send_tolerant(c, b"POST /too-big HTTP/1.1\r\n" + H +
                          b"Content-Type: application/json\r\nContent-Length: 1025\r\n\r\n" +
                          b"x" * 1025)
            r = c.read_response()
        self.assertJsonError(r, 413, "body_too_large")
        self.assertNothingForwarded(self.up, settle=0.3)

    def test_content_length_over_limit_413_without_body_sent(self):
        # The answer must not wait for a body that will never be accepted.
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(b"POST /too-big HTTP/1.1\r\n" + H + b"Content-Length: 10000000\r\n\r\n")
            r = c.read_response()
        self.assertJsonError(r, 413, "body_too_large")
        self.assertNothingForwarded(self.up, settle=0.3)

    def test_chunked_body_over_limit_413(self):
        chunk = b"y" * 600
        data = (b"POST /too-big-chunked HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" +
                (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2 + b"0\r\n\r\n")
        with RawConn(self.rd.port, timeout=5) as c:
            send_tolerant(c, data)
            r = c.read_response()
        self.assertJsonError(r, 413, "body_too_large")
        self.assertNothingForwarded(self.up, settle=0.3)

    def test_headers_over_cap_431(self):
        hdrs = b"".join(b"X-Filler-%03d: %s\r\n" % (i, b"h" * 1000) for i in range(100))
        with RawConn(self.rd.port, timeout=5) as c:
            send_tolerant(c, b"GET /big-headers HTTP/1.1\r\n" + H + hdrs + b"\r\n")
            try:
                r = c.read_response()
            except ConnectionClosed:
                self.fail("connection closed without a 431 answer")
        self.assertJsonError(r, 431, "headers_too_large")
        self.assertNothingForwarded(self.up, settle=0.3)

    def test_headers_under_cap_forwarded(self):
        # 40 KiB of headers is under the 64 KiB cap: forwarded intact.
        hdrs = [(b"X-Filler-%03d" % i, b"h" * 1000) for i in range(40)]
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(b"GET /ok-headers HTTP/1.1\r\n" + H +
                   b"".join(k + b": " + v + b"\r\n" for k, v in hdrs) + b"\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        req = self.up.wait_for_requests(1)[0]
        self.assertEqual(req.header("X-Filler-039"), "h" * 1000)

    def test_long_url_rejected(self):
        target = b"/" + b"u" * (100 * 1024)
        with RawConn(self.rd.port, timeout=5) as c:
            send_tolerant(c, b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
            try:
                r = c.read_response()
            except ConnectionClosed:
                self.fail("connection closed without a 414/431 answer")
        self.assertIn(r.status, (414, 431), r)
        self.assertJsonError(r, r.status)
        self.assertNothingForwarded(self.up, settle=0.3)


class ClientTimeoutTest(RetrydTestCase):

    def setUp(self):
        self.up = self.start_upstream()
        self.up.handler = echo_target

    def test_slowloris_headers_disconnected(self):
        rd = self.start_retryd(self.up, "--client-timeout", "1s", "--keepalive-timeout", "30s")
        with RawConn(rd.port, timeout=10) as c:
            c.send(b"GET /slow HTTP/1.1\r\nHost: client.example\r\nX-A: 1\r\n")
            t = c.wait_closed(6)
        self.assertIsNotNone(t, "half-sent headers: connection still open after 6 s")
        self.assertGreaterEqual(t, 0.5)
        self.assertLessEqual(t, 5.0)
        self.assertNothingForwarded(self.up)

    def test_stalled_body_disconnected(self):
        rd = self.start_retryd(self.up, "--client-timeout", "1s", "--keepalive-timeout", "30s")
        with RawConn(rd.port, timeout=10) as c:
            c.send(b"POST /slow-body HTTP/1.1\r\nHost: client.example\r\n"
                   b"Content-Length: 100\r\n\r\n" + b"z" * 10)
            t = c.wait_closed(6)
        self.assertIsNotNone(t, "stalled body: connection still open after 6 s")
        self.assertGreaterEqual(t, 0.5)
        self.assertLessEqual(t, 5.0)
        self.assertEqual(self.up.count(), 0)

    def test_idle_keepalive_closed(self):
        rd = self.start_retryd(self.up, "--keepalive-timeout", "1s", "--client-timeout", "30s")
        with RawConn(rd.port, timeout=10) as c:
            c.send(b"GET /idle HTTP/1.1\r\nHost: client.example\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            t = c.wait_closed(6)
        self.assertIsNotNone(t, "idle keep-alive connection still open after 6 s")
        self.assertGreaterEqual(t, 0.5)
        self.assertLessEqual(t, 5.0)


class MaxConnectionsTest(RetrydTestCase):

    def test_third_connection_waits_until_one_closes(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, "--max-connections", "2", "--keepalive-timeout", "30s",
                               "--client-timeout", "30s")
        c1 = RawConn(rd.port, timeout=5)
        c2 = RawConn(rd.port, timeout=5)
        self.addCleanup(c1.close)
        self.addCleanup(c2.close)
        for i, c in enumerate((c1, c2)):
            c.send(b"GET /c%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i + 1))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"/c%d" % (i + 1)))
        c3 = RawConn(rd.port, timeout=5)  # completes in the kernel's backlog
        self.addCleanup(c3.close)
        c3.send(b"GET /c3 HTTP/1.1\r\nHost: x\r\n\r\n")
        c3.settimeout(1.0)
        try:
            data = c3.sock.recv(65536)
            self.fail("third connection was served (or closed) while two were open: %r" % data)
        except socket.timeout:
            pass
        self.assertEqual(up.count(), 2)
        c1.close()
        c3.settimeout(5)
        t0 = time.monotonic()
        r = c3.read_response()
        self.assertEqual((r.status, r.body), (200, b"/c3"))
        self.assertLess(time.monotonic() - t0, 3.0)
        # the second connection is still served too
        c2.send(b"GET /c2-again HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c2.read_response()
        self.assertEqual((r.status, r.body), (200, b"/c2-again"))


if __name__ == "__main__":
    unittest.main()
