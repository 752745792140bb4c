"""Logs: every stderr line is JSON; one access line per request with method,
path, status, upstream_status, duration_ms, bytes_in, bytes_out; secrets never
appear. Health endpoint: answered by retryd, never forwarded.

The life of a stored request in the logs: the access line of the request
that stored it carries its "id"; each retry's "attempt" line carries it too,
at debug; at info, retries are summed up in one "retry summary" line per
--log-summary-interval in which anything happened (retries, recovered,
dead), and once more at a stop; an Idempotency-Key repeat answered from the
existing row is marked "replay":true, with the row's id and no upstream
status of its own (nothing was sent)."""

import json
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, RawConn, send_request, wait_stored_state

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


class StoredRequestLogTest(RetrydTestCase):

    def access(self, rd, path):
        return [o for o in rd.log_json(strict=False)
                if o.get("msg") == "request" and o.get("path") == path]

    def attempts(self, rd, rid=None):
        return [o for o in rd.log_json(strict=False) if o.get("msg") == "attempt"
                and (rid is None or o.get("id") == rid)]

    def summaries(self, rd):
        return [o for o in rd.log_json(strict=False) if o.get("msg") == "retry summary"]

    def store(self, rd, path, headers=()):
        r = send_request(rd.port, "POST", path, list(headers), b"{}")
        self.assertEqual(r.status, 202, r)
        return r.json()["id"]

    def test_the_request_that_stored_a_row_logs_its_id(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200, body=b"plain"))
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd, "/stored")
        r = send_request(rd.port, "GET", "/plain")
        self.assertEqual(r.status, 200, r)
        line = rd.wait_log(lambda o: o.get("msg") == "request" and o.get("path") == "/plain")
        self.assertIsNotNone(line)
        stored = self.access(rd, "/stored")
        self.assertEqual(len(stored), 1, stored)
        self.assertEqual(stored[0].get("id"), rid, stored[0])
        self.assertEqual((stored[0]["status"], stored[0]["upstream_status"]), (202, 507))
        self.assertNotIn("replay", stored[0])
        self.assertNotIn("id", line)  # relayed, never stored

    def test_retries_log_at_debug_with_the_id(self):
        up = self.start_upstream()
        up.push(Response(507), Response(503), Response(201, body=b"ok"))
        rd = self.start_retryd(up, "--retry-interval", "200ms", "--log-level", "debug")
        rid = self.store(rd, "/retried")
        wait_stored_state(rd.port, rid, "completed")
        self.assertIsNotNone(rd.wait_log(
            lambda o: o.get("msg") == "attempt" and o.get("outcome") == "completed"))
        lines = self.attempts(rd)
        self.assertEqual([(o["id"], o["level"], o["attempt"], o["outcome"], o["upstream_status"])
                          for o in lines],
                         [(rid, "debug", 2, "retry", 503), (rid, "debug", 3, "completed", 201)],
                         lines)

    def test_at_info_retries_are_summed_up_not_logged_one_by_one(self):
        up = self.start_upstream()
        seen = {}

        def handler(req):  # /ok: 503, then 201; /dead: 503 always
            seen[req.target] = seen.get(req.target, 0) + 1
            return Response(201 if req.target == "/ok" and seen["/ok"] > 1 else 503, body=b"x")
        up.handler = handler
        rd = self.start_retryd(up, "--retry-interval", "200ms", "--max-attempts", "2",
                               "--log-summary-interval", "1s")
        ok = self.store(rd, "/ok")
        dead = self.store(rd, "/dead")
        wait_stored_state(rd.port, ok, ("completed", "dead"), timeout=10)
        wait_stored_state(rd.port, dead, "dead", timeout=10)
        first = rd.wait_log(lambda o: o.get("msg") == "retry summary", timeout=3)
        self.assertIsNotNone(first, rd.stderr_text()[-2000:])
        self.assertEqual(self.attempts(rd), [])
        time.sleep(1.2)  # every retry is in the first summary or the next
        got = self.summaries(rd)
        total = {k: sum(o[k] for o in got) for k in ("retries", "recovered", "dead")}
        self.assertEqual(total, {"retries": 2, "recovered": 1, "dead": 1}, got)
        for o in got:
            self.assertEqual(o["level"], "info", o)
            self.assertIsInstance(o.get("period_s"), (int, float), o)
        # nothing happens any more: no more summaries
        n = len(got)
        time.sleep(2.5)
        self.assertEqual(len(self.summaries(rd)), n, self.summaries(rd))

    def test_no_summary_when_no_retry_happened(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--log-summary-interval", "300ms")
        for i in range(3):
            self.assertEqual(send_request(rd.port, "GET", "/pass/%d" % i).status, 200)
        time.sleep(1.5)
        self.assertEqual(self.summaries(rd), [])

    def test_a_stop_sums_up_what_is_left(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200, body=b"ok"))
        rd = self.start_retryd(up, "--retry-interval", "200ms", "--log-summary-interval", "1h")
        rid = self.store(rd, "/before-stop")
        wait_stored_state(rd.port, rid, "completed")
        self.assertEqual(rd.stop(), 0)
        got = self.summaries(rd)
        self.assertEqual([(o["retries"], o["recovered"], o["dead"]) for o in got], [(1, 1, 0)],
                         got)

    def test_an_idempotent_repeat_is_marked_as_a_replay(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        key = [("Idempotency-Key", "log-key-1")]
        rid = self.store(rd, "/idem", key)
        again = self.store(rd, "/idem", key)
        self.assertEqual(again, rid)
        self.assertIsNotNone(rd.wait_log(
            lambda o: o.get("msg") == "request" and o.get("replay") is True))
        lines = self.access(rd, "/idem")
        self.assertEqual(len(lines), 2, lines)
        first, repeat = lines
        self.assertEqual((first["id"], first["upstream_status"]), (rid, 507), first)
        self.assertNotIn("replay", first)
        self.assertEqual((repeat["id"], repeat["replay"], repeat["status"]), (rid, True, 202),
                         repeat)
        self.assertIsNone(repeat["upstream_status"], repeat)  # nothing went upstream
        self.assertEqual(up.count(), 1)


if __name__ == "__main__":
    unittest.main()
