"""Upstream failures: refused connection (502), no answer within
--upstream-timeout (504), connection closed without an answer (502); a final
answer that breaks before any of it reached the client (502/504, never
stored: the upstream acted on the request); and a slow but flowing response
body is not cut by --upstream-timeout.

These runs pass `--retry-on 5xx` (no `network`), so that network failures are
answered directly instead of being stored for retry once the retry queue
exists. If that ever changes, adapt DIRECT_ERROR_ARGS / expect_failure()."""

import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, RawConn, closed_port, control_get

# Arguments under which network failures are answered directly with 502/504.
DIRECT_ERROR_ARGS = ["--retry-on", "5xx"]


class UpstreamErrorTest(RetrydTestCase):

    def get(self, rd, path, timeout=10):
        with RawConn(rd.port, timeout=timeout) as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: client.example\r\n\r\n" % path.encode())
            return c.read_response()

    def expect_failure(self, r, status, code):
        obj = self.assertJsonError(r, status, code)
        self.assertIsInstance(obj.get("message"), str)
        return obj

    def test_connection_refused_502(self):
        rd = self.start_retryd("http://127.0.0.1:%d" % closed_port(), *DIRECT_ERROR_ARGS)
        t0 = time.monotonic()
        r = self.get(rd, "/refused")
        self.expect_failure(r, 502, "bad_gateway")
        self.assertLess(time.monotonic() - t0, 5)

    def test_no_answer_504_after_upstream_timeout(self):
        up = self.start_upstream()
        up.push(Response(200, body=b"too late", delay=30))
        rd = self.start_retryd(up, "--upstream-timeout", "1s", *DIRECT_ERROR_ARGS)
        t0 = time.monotonic()
        r = self.get(rd, "/hang")
        took = time.monotonic() - t0
        self.expect_failure(r, 504, "gateway_timeout")
        self.assertGreaterEqual(took, 0.8, "504 before the timeout ran out")
        self.assertLessEqual(took, 4.0)
        self.assertEqual(up.wait_for_requests(1)[0].target, "/hang")

    def test_upstream_closes_without_answer_502(self):
        up = self.start_upstream()
        up.push(Response(close_without_answer=True))
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        r = self.get(rd, "/dropped")
        self.expect_failure(r, 502, "bad_gateway")
        # retryd recovers: the next request is relayed normally
        up.push(Response(200, body=b"fine"))
        r = self.get(rd, "/next")
        self.assertEqual((r.status, r.body), (200, b"fine"))

    def test_slow_flowing_body_not_cut_by_upstream_timeout(self):
        up = self.start_upstream()
        pieces = [b"piece-%d;" % i for i in range(4)]
        up.push(Response(200, pieces=pieces, piece_delay=0.6))  # 1.8 s > 1 s timeout
        rd = self.start_retryd(up, "--upstream-timeout", "1s", *DIRECT_ERROR_ARGS)
        t0 = time.monotonic()
        r = self.get(rd, "/trickle")
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"".join(pieces))
        self.assertGreater(took, 1.5)

    def test_slow_flowing_chunked_body_not_cut(self):
        up = self.start_upstream()
        pieces = [b"c%d" % i for i in range(4)]
        up.push(Response(200, pieces=pieces, piece_delay=0.6, chunked=True))
        rd = self.start_retryd(up, "--upstream-timeout", "1s", *DIRECT_ERROR_ARGS)
        r = self.get(rd, "/trickle-chunked")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"".join(pieces))

    def assertNothingStored(self, rd):
        totals = control_get(rd.port, "/_retryd/stats").json()["totals"]
        self.assertEqual(totals["stored"], 0, totals)

    def test_answer_broken_before_its_body_is_a_502_and_not_stored(self):
        # Default --retry-on (network errors stored): a final answer whose
        # body breaks before any byte was relayed is still not stored.
        up = self.start_upstream()
        up.push(Response(raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"zz\r\nhello\r\n0\r\n\r\n"))
        rd = self.start_retryd(up)
        r = self.get(rd, "/broken-body")
        obj = self.expect_failure(r, 502, "bad_gateway")
        self.assertIn("upstream", obj["message"])
        self.assertEqual(len(up.wait_for_requests(1)), 1)
        self.assertNothingStored(rd)
        time.sleep(0.3)
        self.assertEqual(up.count(), 1, "the request was sent again")

    def test_body_stalled_before_its_first_byte_is_a_504_and_not_stored(self):
        up = self.start_upstream()
        up.push(Response(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
        rd = self.start_retryd(up, "--upstream-timeout", "1s")
        r = self.get(rd, "/stalled-body")
        self.expect_failure(r, 504, "gateway_timeout")
        self.assertNothingStored(rd)
        self.assertEqual(up.count(), 1)


if __name__ == "__main__":
    unittest.main()
