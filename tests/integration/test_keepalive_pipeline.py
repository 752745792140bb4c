"""Client connection handling: keep-alive, pipelining, Connection: close,
HTTP/1.0 clients and Expect: 100-continue."""

import socket
import threading
import time
import unittest

from fake_upstream import Response, echo_target
from harness import RawConn, RetrydTestCase


class KeepAlivePipelineTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.rd = cls.class_retryd(cls.up)

    def setUp(self):
        self.up.clear()
        self.up.handler = echo_target

    def test_keepalive_reuses_client_connection(self):
        with RawConn(self.rd.port, timeout=10) as c:
            for i in range(5):
                c.send("GET /ka/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"/ka/%d" % i)
            # still open after the fifth answer
            self.assertFalse(c.is_closed(timeout=0.3), "retryd closed a keep-alive connection")
        self.assertEqual([q.target for q in self.up.wait_for_requests(5)],
                         ["/ka/%d" % i for i in range(5)])

    def test_ten_pipelined_requests_answered_in_order(self):
        # The first answer is the slowest: answers must still come in order.
        self.up.handler = lambda req: Response(
            200, body=req.target.encode(), delay=0.4 if req.target == "/pipe/0" else 0)
        reqs = []
        for i in range(10):
            if i == 4:
                body = b"pipelined-body"
                reqs.append(b"POST /pipe/%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                            % (i, len(body)) + body)
            else:
                reqs.append(b"GET /pipe/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        with RawConn(self.rd.port, timeout=15) as c:
            c.send(b"".join(reqs))  # one write
            for i in range(10):
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"/pipe/%d" % i, "answer %d out of order" % i)
        got = self.up.wait_for_requests(10)
        self.assertEqual(sorted(q.target for q in got), sorted("/pipe/%d" % i for i in range(10)))
        self.assertEqual([q.body for q in got if q.target == "/pipe/4"], [b"pipelined-body"])

    def test_connection_close_from_client(self):
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(b"GET /close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"/close")
            self.assertTrue(c.is_closed(timeout=2), "connection left open after Connection: close")

    def test_http10_client(self):
        # The upstream answers chunked: an HTTP/1.0 client must not get chunked.
        self.up.handler = lambda req: Response(200, pieces=[b"/ten", b"-", b"body"], chunked=True)
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(b"GET /ten HTTP/1.0\r\nHost: x\r\n\r\n")
            head = c.read_head()
            self.assertEqual(head.status, 200, head)
            self.assertIsNone(head.header("transfer-encoding"), head)
            cl = head.header("content-length")
            if cl is not None:
                body = c._read_exact(int(cl))
                self.assertTrue(c.is_closed(timeout=2), "HTTP/1.0 connection left open")
            else:
                body = c.read_until_close(timeout=5)
            self.assertEqual(body, b"/ten-body")
        self.assertEqual(self.up.wait_for_requests(1)[0].target, "/ten")

    def test_expect_100_continue(self):
        body = b'{"meeting_url":"https://meet.example/abc"}'
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            c.settimeout(3)
            try:
                interim = c.read_head()
            except socket.timeout:
                self.fail("no 100 Continue within 3 s of an Expect: 100-continue request")
            self.assertEqual(interim.status, 100, interim)
            self.assertTrue(interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n"),
                            interim.raw_head)
            self.assertEqual(self.up.count(), 0, "forwarded before the body was sent")
            c.settimeout(10)
            c.send(body)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"/expect")
        req = self.up.wait_for_requests(1)[0]
        self.assertEqual(req.body, body)

    def test_client_gone_while_upstream_answers(self):
        self.up.handler = lambda req: Response(200, body=b"late " * 1000, delay=0.5)
        c = RawConn(self.rd.port, timeout=5)
        c.send(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
        self.up.wait_for_requests(1)
        c.close()  # before the upstream answers
        time.sleep(0.8)
        self.up.handler = echo_target
        status, _, body = self.rd.request("GET", "/after-gone")
        self.assertEqual((status, body), (200, b"/after-gone"))

    def test_concurrent_connections(self):
        n = 50
        results = [None] * n

        def one(i):
            try:
                with RawConn(self.rd.port, timeout=15) as c:
                    c.send(b"GET /conc/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                    r = c.read_response()
                    results[i] = (r.status, r.body)
            except Exception as e:
                results[i] = e

        self.up.handler = lambda req: Response(200, body=req.target.encode(), delay=0.2)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual(results, [(200, b"/conc/%d" % i) for i in range(n)])
        # 50 answers that each take 0.2 s upstream are forwarded concurrently
        self.assertLess(time.monotonic() - t0, 5.0)


if __name__ == "__main__":
    unittest.main()
