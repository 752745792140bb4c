"""Logs: every stderr line is JSON; one access line per request with method,
path, status, upstream_status, duration_ms, bytes_in, bytes_out; secrets never
appear. Health endpoint: answered by retryd, never forwarded."""

import json
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, RawConn

ACCESS_FIELDS = ("method", "path", "status", "upstream_status", "duration_ms",
                 "bytes_in", "bytes_out")


class LogsTest(RetrydTestCase):

    def raw(self, rd, data, method="GET"):
        with RawConn(rd.port, timeout=10) as c:
            c.send(data)
            return c.read_response(method=method)

    def access_lines(self, rd, path):
        return [o for o in rd.log_json(strict=False)
                if o.get("path") == path and "status" in o and "method" in o]

    def test_access_log_fields_and_no_secrets(self):
        up = self.start_upstream()
        up.handler = lambda req: (
            Response(200, headers=[("Set-Cookie", "s=CANARY-SECRET-4; HttpOnly"),
                                   ("Content-Type", "text/plain")], body=b"cookie set")
            if req.target == "/logs/d" else Response(201, body=b"created!"))
        # debug level: the most verbose logs must not leak secrets either
        rd = self.start_retryd(up, "--log-level", "debug")
        body = b'{"bot_name":"x"}'
        reqs = [
            ("/logs/a", "GET", b"GET /logs/a HTTP/1.1\r\nHost: x\r\n"
             b"Authorization: Bearer CANARY-SECRET-1\r\n\r\n", 201, b"created!"),
            ("/logs/b", "POST", b"POST /logs/b HTTP/1.1\r\nHost: x\r\n"
             b"X-Api-Key: CANARY-SECRET-2\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n" % len(body) + body, 201, b"created!"),
            ("/logs/c", "GET", b"GET /logs/c HTTP/1.1\r\nHost: x\r\n"
             b"Cookie: a=CANARY-SECRET-3\r\n"
             b"Proxy-Authorization: Basic CANARY-SECRET-5\r\n\r\n", 201, b"created!"),
            ("/logs/d", "GET", b"GET /logs/d HTTP/1.1\r\nHost: x\r\n\r\n", 200, b"cookie set"),
        ]
        for path, method, data, status, rbody in reqs:
            r = self.raw(rd, data)
            self.assertEqual((r.status, r.body), (status, rbody))
        self.assertEqual(r.header("set-cookie"), "s=CANARY-SECRET-4; HttpOnly")
        self.assertEqual(len(up.wait_for_requests(4)), 4)
        self.assertEqual(up.requests[0].header("authorization"), "Bearer CANARY-SECRET-1")

        for path, method, data, status, rbody in reqs:
            got = rd.wait_log(lambda o, p=path: o.get("path") == p and "status" in o, timeout=5)
            self.assertIsNotNone(got, "no access log line for %s" % path)

        rc = rd.stop()
        self.assertEqual(rc, 0)
        lines = rd.log_lines()
        self.assertTrue(rd.stderr_bytes().endswith(b"\n"), "last stderr line unterminated")
        for ln in lines:
            try:
                obj = json.loads(ln)
            except ValueError:
                self.fail("stderr line is not JSON: %r" % ln)
            self.assertIsInstance(obj, dict, ln)
            self.assertNotIn("CANARY-SECRET", ln)

        for path, method, data, status, rbody in reqs:
            with self.subTest(path=path):
                access = self.access_lines(rd, path)
                self.assertEqual(len(access), 1, "want one access line for %s: %r" % (path, access))
                o = access[0]
                for f in ACCESS_FIELDS:
                    self.assertIn(f, o, "field %s missing: %r" % (f, o))
                self.assertEqual(o["method"], method)
                self.assertEqual(o["status"], status)
                self.assertEqual(o["upstream_status"], status)
                self.assertIsInstance(o["duration_ms"], (int, float))
                self.assertGreaterEqual(o["duration_ms"], 0)
                self.assertIsInstance(o["bytes_in"], int)
                self.assertIsInstance(o["bytes_out"], int)
                self.assertGreaterEqual(o["bytes_out"], len(rbody))
                if method == "POST":
                    self.assertGreaterEqual(o["bytes_in"], len(body))

    def test_health_not_forwarded(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        for _ in range(2):
            r = self.raw(rd, b"GET /_retryd/health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json(), {"status": "ok"})
            self.assertTrue((r.header("content-type") or "").startswith("application/json"))
        self.assertNothingForwarded(up, settle=0.2)

    def test_unknown_control_path_404_not_forwarded(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        r = self.raw(rd, b"GET /_retryd/nope HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertJsonError(r, 404, "not_found")
        self.assertNothingForwarded(up, settle=0.2)


if __name__ == "__main__":
    unittest.main()
