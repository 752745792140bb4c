"""Resource limits: --max-body (413), the 64 KiB header cap (431), long URLs
(414/431), --client-timeout (slowloris), --keepalive-timeout and
--max-connections."""

import select
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


class SlowBodyTest(RetrydTestCase):

    def test_slow_body_dripper_gets_408_at_the_body_deadline_while_others_are_served(self):
        up = self.start_upstream()
        up.handler = echo_target
        # Each byte comes well within --client-timeout, so only the total
        # --client-body-timeout can end it.
        rd = self.start_retryd(up, "--client-timeout", "2s", "--client-body-timeout", "3s",
                               "--keepalive-timeout", "30s")
        with RawConn(rd.port, timeout=10) as c:
            c.send(b"POST /drip HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            t0 = time.monotonic()
            answered = None
            served_meanwhile = False
            while time.monotonic() - t0 < 12:
                try:
                    c.send(b"d")
                except (BrokenPipeError, ConnectionResetError):
                    break
                ready, _, _ = select.select([c.sock], [], [], 0.7)
                if ready:
                    answered = time.monotonic() - t0
                    break
                if not served_meanwhile and time.monotonic() - t0 > 1.0:
                    status, _, body = rd.request("GET", "/other", timeout=5)
                    self.assertEqual((status, body), (200, b"/other"))
                    served_meanwhile = True
            self.assertIsNotNone(answered, "the dripping body was never cut off")
            r = c.read_response()
            self.assertJsonError(r, 408, "request_timeout")
            self.assertIn("client-body-timeout", r.json()["message"])
            self.assertEqual((r.header("connection") or "").lower(), "close")
        self.assertTrue(served_meanwhile)
        self.assertGreaterEqual(answered, 2.5)
        self.assertLessEqual(answered, 6.0)
        self.assertEqual([q.target for q in up.requests], ["/other"])


class MaxConnectionsTest(RetrydTestCase):

    def test_third_connection_waits_while_two_are_busy(self):
        # Connections in the middle of a request are never reclaimed: at the
        # cap a new one waits in the kernel's backlog until one closes.
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, "--max-connections", "2", "--keepalive-timeout", "30s",
                               "--client-timeout", "30s")
        c1 = RawConn(rd.port, timeout=5)
        c2 = RawConn(rd.port, timeout=5)
        self.addCleanup(c1.close)
        self.addCleanup(c2.close)
        for i, c in enumerate((c1, c2)):
            c.send(b"GET /c%d HTTP/1.1\r\nHost: x\r\n" % (i + 1))  # head not finished
        time.sleep(0.2)
        c3 = RawConn(rd.port, timeout=5)  # completes in the kernel's backlog
        self.addCleanup(c3.close)
        c3.send(b"GET /c3 HTTP/1.1\r\nHost: x\r\n\r\n")
        c3.settimeout(1.0)
        try:
            data = c3.sock.recv(65536)
            self.fail("third connection was served (or closed) while two were busy: %r" % data)
        except socket.timeout:
            pass
        self.assertEqual(up.count(), 0)
        c1.close()
        c3.settimeout(5)
        t0 = time.monotonic()
        r = c3.read_response()
        self.assertEqual((r.status, r.body), (200, b"/c3"))
        self.assertLess(time.monotonic() - t0, 3.0)
        # the second connection finishes its request and is served too
        c2.send(b"\r\n")
        r = c2.read_response()
        self.assertEqual((r.status, r.body), (200, b"/c2"))

    def test_idle_keepalive_connections_reclaimed_least_recently_used_first_at_the_cap(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, "--max-connections", "5", "--keepalive-timeout", "60s",
                               "--client-timeout", "30s")
        conns = [RawConn(rd.port, timeout=5) for _ in range(5)]
        for c in conns:
            self.addCleanup(c.close)
        for i, c in enumerate(conns):
            c.send(b"GET /idle%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            self.assertEqual(c.read_response().body, b"/idle%d" % i)
        # conns[0] is used again, so conns[1] is now the least recently used
        conns[0].send(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(conns[0].read_response().body, b"/again")
        t0 = time.monotonic()
        with RawConn(rd.port, timeout=5) as c6:
            c6.send(b"GET /sixth HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c6.read_response()
            self.assertEqual((r.status, r.body), (200, b"/sixth"))
        self.assertLess(time.monotonic() - t0, 2.0, "the sixth client waited for an idle one")
        self.assertTrue(conns[1].is_closed(timeout=2), "the least recently used one stays open")
        for i in (0, 2, 3, 4):
            conns[i].send(b"GET /still%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            self.assertEqual(conns[i].read_response().body, b"/still%d" % i)

    def test_many_new_clients_at_a_full_cap_of_idle_connections_all_served(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, "--max-connections", "3", "--keepalive-timeout", "60s",
                               "--client-timeout", "30s")
        idle = [RawConn(rd.port, timeout=5) for _ in range(3)]
        for c in idle:
            self.addCleanup(c.close)
            c.send(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
            c.read_response()
        t0 = time.monotonic()
        for i in range(10):  # each keeps its connection open (idle) afterwards
            c = RawConn(rd.port, timeout=5)
            self.addCleanup(c.close)
            c.send(b"GET /new%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            self.assertEqual(c.read_response().body, b"/new%d" % i)
        self.assertLess(time.monotonic() - t0, 5.0)


if __name__ == "__main__":
    unittest.main()
