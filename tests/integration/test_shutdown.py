"""Graceful shutdown: on SIGTERM retryd stops accepting, finishes requests in
flight, and exits 0; SIGINT exits 0 too."""

import signal
import socket
import threading
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, RawConn


class ShutdownTest(RetrydTestCase):

    def test_sigterm_finishes_in_flight_request(self):
        up = self.start_upstream()
        body = b"slow answer " * 1000
        up.push(Response(200, headers=[("X-Slow", "1")], body=body, delay=1.5))
        rd = self.start_retryd(up)

        result = {}

        def client():
            try:
                with RawConn(rd.port, timeout=15) as c:
                    c.send(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwork")
                    result["resp"] = c.read_response()
            except Exception as e:  # reported below
                result["error"] = e

        th = threading.Thread(target=client, daemon=True)
        th.start()
        up.wait_for_requests(1, timeout=5)  # the request is now in flight upstream
        t_sig = time.monotonic()
        rd.send_signal(signal.SIGTERM)
        rd.stopped = True  # exiting is expected from here on

        # New connections are refused (listener closed) while the old request
        # is still being answered. A connect racing the close may instead be
        # reset: the kernel had answered its SYN for the listener, and
        # closing the listener resets what it had not handed over yet. Both
        # mean "not served"; a connection that gets through is what fails.
        refused = False
        while time.monotonic() - t_sig < 1.0:
            try:
                s = socket.create_connection(("127.0.0.1", rd.port), timeout=1)
            except (ConnectionRefusedError, ConnectionResetError):
                refused = True
                break
            s.close()
            time.sleep(0.02)
        self.assertTrue(refused, "new connections still accepted 1 s after SIGTERM")
        self.assertTrue(th.is_alive() or "resp" in result)

        th.join(10)
        self.assertFalse(th.is_alive(), "client still waiting 10 s after SIGTERM")
        self.assertNotIn("error", result, result.get("error"))
        r = result["resp"]
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-slow"), "1")
        self.assertEqual(r.body, body)
        self.assertGreaterEqual(time.monotonic() - t_sig, 1.0)

        rc = rd.wait(10)
        self.assertEqual(rc, 0, "exit status after SIGTERM; stderr:\n" + rd.stderr_text()[-2000:])
        rd.stopped = True

    def test_sigterm_idle_exits_0(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        status, _, _ = rd.request("GET", "/warm")
        self.assertEqual(status, 200)
        t0 = time.monotonic()
        rc = rd.stop(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, rd.stderr_text()[-2000:])
        self.assertLess(time.monotonic() - t0, 3.0, "idle shutdown took too long")

    def test_sigterm_with_idle_keepalive_connection_exits_promptly(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        c = RawConn(rd.port, timeout=5)
        self.addCleanup(c.close)
        c.send(b"GET /ka HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        t0 = time.monotonic()
        rc = rd.stop(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, rd.stderr_text()[-2000:])
        self.assertLess(time.monotonic() - t0, 3.0, "an idle keep-alive connection held shutdown")

    def test_sigint_exits_0(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        rc = rd.stop(signal.SIGINT, timeout=10)
        self.assertEqual(rc, 0, rd.stderr_text()[-2000:])


if __name__ == "__main__":
    unittest.main()
