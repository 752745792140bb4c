"""The durable retry queue, one request at a time.

A retryable answer (507, 500, 502, 503, 504, 429) or a refused connection
gets the client a 202 that names a stored request; retryd then retries it
with the identical method, target, headers and body until a final answer,
which the control API shows and /response relays verbatim. Final answers
(2xx, 3xx, 4xx) are relayed and never retried. --retry-on, the control API's
request JSON and errors, Prefer: wait / respond-async, the db file's mode and
the single-instance lock.

The schedule (--retry-interval, Retry-After, --max-attempts, --max-age),
cancel and Idempotency-Key are in test_queue_schedule.py.

Runs on both backends (tests/CMakeLists.txt); on PostgreSQL the file's mode,
the lock and sqlite:PATH, which only SQLite has, are skipped."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import unittest

from fake_upstream import FakeUpstream, Response
from harness import (STORAGE, RetrydTestCase, UUID7_RE, child_env, closed_port, control_get,
                     get_stored, parse_timestamp, retryd_bin, send_request,
                     wait_stored_state)

INTERVAL = "300ms"
INTERVAL_S = 0.3
RETRYABLE = (507, 500, 502, 503, 504, 429)

# The client's end-to-end headers, in an order no sorting would produce, with a
# repeated field name and a secret.
CLIENT_HEADERS = [
    ("X-Zeta", "last-letter-first"),
    ("Authorization", "Token sk_live_do_not_log"),
    ("Content-Type", "application/json; charset=utf-8"),
    ("X-Dup", "one"),
    ("Accept", "application/json"),
    ("X-Dup", "two"),
    ("X-Alpha", "a  b\tc"),
    ("User-Agent", "queue-it/1.0"),
]


def body_for(tag):
    return json.dumps({"meeting_url": "https://meet.example/%s" % tag,
                       "bot_name": "Nöte taker \u2713", "tag": tag},
                      ensure_ascii=False).encode("utf-8")


def wall_time_of(req):
    """Wall-clock time at which the fake upstream received req."""
    return time.time() - (time.monotonic() - req.received_at)


class QueueTestCase(RetrydTestCase):

    def assertAccepted(self, r, last_status, next_in=None):
        """r is the 202 of the contract; returns its JSON body.
        next_in: expected seconds until next_attempt_at (checked loosely)."""
        self.assertEqual((r.version, r.status, r.reason), ("HTTP/1.1", 202, "Accepted"), r)
        ctype = (r.header("content-type") or "").lower()
        self.assertTrue(ctype.startswith("application/json"), r)
        obj = r.json()
        rid = obj.get("id")
        self.assertIsInstance(rid, str, obj)
        self.assertRegex(rid, UUID7_RE)
        self.assertEqual(obj.get("state"), "queued", obj)
        self.assertEqual(obj.get("attempts"), 1, obj)
        self.assertEqual(obj.get("status_url"), "/_retryd/requests/%s" % rid, obj)
        self.assertEqual(r.header("location"), "/_retryd/requests/%s" % rid, r)
        self.assertIn("last_status", obj)
        self.assertIn("last_error", obj)
        if last_status is None:
            self.assertIsNone(obj["last_status"], obj)
            self.assertIsInstance(obj["last_error"], str, obj)
            self.assertTrue(obj["last_error"], obj)
        else:
            self.assertEqual(obj["last_status"], last_status, obj)
            self.assertIsNone(obj["last_error"], obj)
        ra = r.header("retry-after")
        self.assertIsNotNone(ra, r)
        self.assertRegex(ra, r"^[0-9]+$")
        self.assertGreaterEqual(int(ra), 1, r)
        nxt = parse_timestamp(obj.get("next_attempt_at"))
        if next_in is not None:
            now = time.time()
            self.assertGreaterEqual(nxt, now + next_in - 1.5, obj)
            self.assertLessEqual(nxt, now + next_in + 1.5, obj)
        return obj

    def assertSameRequest(self, a, b):
        self.assertEqual(a.method, b.method)
        self.assertEqual(a.target, b.target)
        self.assertEqual(a.headers, b.headers, "headers differ between attempts")
        self.assertEqual(a.body, b.body)

    def assertCarriesClientRequest(self, req, method, target, headers, body):
        self.assertEqual(req.method, method)
        self.assertEqual(req.target, target)
        self.assertEqual(req.body, body)
        names = {k.lower() for k, _ in headers}
        got = [(k, v) for k, v in req.headers if k.lower() in names]
        self.assertEqual([(k.lower(), v) for k, v in got],
                         [(k.lower(), v) for k, v in headers],
                         "client headers not forwarded in order: %r" % req.headers)

    def assertVerbatim(self, r, status, headers, body):
        self.assertEqual(r.status, status, r)
        for k, v in headers:
            self.assertIn(v, r.header_all(k), "header %s: %s missing in %r" % (k, v, r))
        self.assertEqual(r.body, body)


class StoreAndDeliverTest(QueueTestCase):

    def test_retryable_statuses_stored_then_delivered_identically(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        seen = 0
        for status in RETRYABLE:
            with self.subTest(status=status):
                target = "/api/v1/bot/?case=%d&q=a%%20b&empty=" % status
                body = body_for("s%d" % status)
                final_headers = [("Content-Type", "application/json"),
                                 ("X-Final", "yes-%d" % status),
                                 ("X-Multi", "a"), ("X-Multi", "b")]
                final_body = b'{"id":"bot-%d","ok":true}' % status
                up.push(Response(status, headers=[("Content-Type", "application/json")],
                                 body=b'{"code":"try_later"}'),
                        Response(201, headers=final_headers, body=final_body))
                t0 = time.time()
                r = send_request(rd.port, "POST", target, CLIENT_HEADERS, body)
                obj = self.assertAccepted(r, status, next_in=INTERVAL_S)
                rid = obj["id"]
                self.assertGreaterEqual(parse_timestamp(obj["next_attempt_at"]), t0 - 1)

                reqs = up.wait_for_requests(seen + 2, timeout=10)
                first, second = reqs[seen], reqs[seen + 1]
                seen += 2
                self.assertCarriesClientRequest(first, "POST", target, CLIENT_HEADERS, body)
                self.assertSameRequest(first, second)

                done = wait_stored_state(rd.port, rid, "completed", timeout=10)
                self.assertEqual(done["id"], rid)
                self.assertEqual(done["method"], "POST")
                # query values are redacted in every view (README, Control API)
                self.assertEqual(done["path"],
                                 "/api/v1/bot/?case=[redacted]&q=[redacted]&empty=[redacted]")
                self.assertEqual(done["attempts"], 2, done)
                self.assertEqual(done["response_status"], 201, done)
                self.assertIsNone(done["next_attempt_at"], done)
                created = parse_timestamp(done["created_at"])
                self.assertLessEqual(abs(created - t0), 5, done)

                resp = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
                self.assertVerbatim(resp, 201, final_headers, final_body)
                self.assertEqual(resp.header_all("x-multi"), ["a", "b"], resp)

                # a completed request is not queued: it cannot be cancelled
                d = send_request(rd.port, "DELETE", "/_retryd/requests/%s" % rid)
                self.assertJsonError(d, 409, "not_queued")
        time.sleep(3 * INTERVAL_S)
        self.assertEqual(up.count(), seen, "a completed request was sent again")

    def test_refused_connection_stored_then_delivered(self):
        port = closed_port()
        rd = self.start_retryd("http://127.0.0.1:%d" % port, "--retry-interval", INTERVAL)
        target = "/api/v1/bot/?refused=1"
        body = body_for("refused")
        r = send_request(rd.port, "POST", target, CLIENT_HEADERS, body)
        obj = self.assertAccepted(r, None, next_in=INTERVAL_S)
        rid = obj["id"]
        time.sleep(2 * INTERVAL_S)  # a few more refused attempts
        queued = get_stored(rd.port, rid)
        self.assertIn(queued["state"], ("queued", "inflight"), queued)
        self.assertIsNone(queued["response_status"], queued)

        up = FakeUpstream(port=port)
        up.default = Response(200, headers=[("X-Final", "late")], body=b"delivered")
        up.start()
        self.addCleanup(up.stop)
        req = up.wait_for_requests(1, timeout=10)[0]
        self.assertCarriesClientRequest(req, "POST", target, CLIENT_HEADERS, body)
        done = wait_stored_state(rd.port, rid, "completed", timeout=10)
        self.assertGreaterEqual(done["attempts"], 2, done)
        self.assertEqual(done["response_status"], 200, done)
        resp = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
        self.assertVerbatim(resp, 200, [("X-Final", "late")], b"delivered")
        time.sleep(3 * INTERVAL_S)
        self.assertEqual(up.count(), 1, up.requests)

    def test_other_network_errors_stored(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL, "--upstream-timeout", "500ms")
        cases = [("closed", Response(close_without_answer=True)),
                 ("timeout", Response(200, body=b"too late", delay=3))]
        for name, failure in cases:
            with self.subTest(failure=name):
                n = up.count()
                up.push(failure, Response(200, headers=[("X-Case", name)], body=name.encode()))
                target = "/net/%s" % name
                r = send_request(rd.port, "POST", target, CLIENT_HEADERS, body_for(name))
                rid = self.assertAccepted(r, None)["id"]
                done = wait_stored_state(rd.port, rid, "completed", timeout=10)
                self.assertEqual(done["response_status"], 200, done)
                a, b = up.requests[n:n + 2]
                self.assertSameRequest(a, b)
                resp = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
                self.assertVerbatim(resp, 200, [("X-Case", name)], name.encode())

    def test_large_chunked_final_answer_kept_verbatim(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        body = bytes((i * 31 + 7) % 256 for i in range(300 * 1024))
        up.push(Response(502), Response(200, headers=[("Content-Type", "application/pdf"),
                                                      ("X-Big", "yes")],
                                        pieces=[body[i:i + 40000]
                                                for i in range(0, len(body), 40000)],
                                        chunked=True))
        r = send_request(rd.port, "GET", "/report.pdf", [("Accept", "*/*")])
        rid = self.assertAccepted(r, 502)["id"]
        wait_stored_state(rd.port, rid, "completed", timeout=10)
        resp = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
        self.assertVerbatim(resp, 200, [("Content-Type", "application/pdf"), ("X-Big", "yes")],
                            body)

    def test_large_binary_body_retried_identically(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        body = bytes(range(256)) * 800  # 200 KiB, every byte value
        up.push(Response(507), Response(204))
        r = send_request(rd.port, "PUT", "/upload?x=1", [("Content-Type", "application/octet-stream")],
                         body)
        rid = self.assertAccepted(r, 507)["id"]
        a, b = up.wait_for_requests(2, timeout=10)
        self.assertEqual(a.body, body)
        self.assertSameRequest(a, b)
        done = wait_stored_state(rd.port, rid, "completed")
        self.assertEqual((done["method"], done["path"], done["response_status"]),
                         ("PUT", "/upload?x=[redacted]", 204), done)

    def test_final_statuses_relayed_and_never_retried(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        cases = [200, 201, 302, 400, 404, 409, 422]
        for i, status in enumerate(cases):
            with self.subTest(status=status):
                hdrs = [("Content-Type", "application/json"), ("X-Upstream", "u-%d" % status)]
                if status == 302:
                    hdrs.append(("Location", "https://elsewhere.example/x"))
                body = b'{"status":%d}' % status
                up.push(Response(status, headers=hdrs, body=body))
                r = send_request(rd.port, "POST", "/final/%d" % status, CLIENT_HEADERS,
                                 body_for("f%d" % status))
                self.assertVerbatim(r, status, hdrs, body)
                self.assertIsNone(r.header("preference-applied"))
                self.assertEqual(up.count(), i + 1)
        time.sleep(4 * INTERVAL_S)
        self.assertEqual([q.target for q in up.requests],
                         ["/final/%d" % s for s in cases], "a final answer was retried")

    def test_retry_on_replaces_the_list(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL, "--retry-on", "507")
        up.push(Response(503, headers=[("X-Why", "overloaded")], body=b"busy"))
        r = send_request(rd.port, "POST", "/only507/a", CLIENT_HEADERS, b"{}")
        self.assertVerbatim(r, 503, [("X-Why", "overloaded")], b"busy")
        up.push(Response(429, body=b"slow down"))
        r = send_request(rd.port, "POST", "/only507/b", CLIENT_HEADERS, b"{}")
        self.assertVerbatim(r, 429, [], b"slow down")
        up.push(Response(507), Response(200))
        r = send_request(rd.port, "POST", "/only507/c", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 507)["id"]
        wait_stored_state(rd.port, rid, "completed")
        time.sleep(3 * INTERVAL_S)
        self.assertEqual([q.target for q in up.requests],
                         ["/only507/a", "/only507/b", "/only507/c", "/only507/c"])

    def test_retry_on_plus_409_adds_to_default(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL, "--retry-on", "+409")
        up.push(Response(409, body=b"in flight"), Response(201, body=b"made"))
        r = send_request(rd.port, "POST", "/plus/409", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 409)["id"]
        self.assertEqual(wait_stored_state(rd.port, rid, "completed")["response_status"], 201)
        up.push(Response(503), Response(200))
        r = send_request(rd.port, "POST", "/plus/503", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 503)["id"]
        wait_stored_state(rd.port, rid, "completed")
        up.push(Response(404, body=b"nope"))
        r = send_request(rd.port, "POST", "/plus/404", CLIENT_HEADERS, b"{}")
        self.assertVerbatim(r, 404, [], b"nope")
        time.sleep(3 * INTERVAL_S)
        self.assertEqual(up.count(), 5, up.requests)


class ControlApiTest(QueueTestCase):

    def test_stored_request_json_and_errors(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "5s")
        t0 = time.time()
        target = "/v1/bot/?join=now&n=1"
        r = send_request(rd.port, "PATCH", target, CLIENT_HEADERS, b'{"a":1}')
        rid = self.assertAccepted(r, 507, next_in=5.0)["id"]
        obj = get_stored(rd.port, rid)
        for key in ("id", "state", "method", "path", "attempts", "created_at",
                    "next_attempt_at", "last_status", "last_error", "response_status"):
            self.assertIn(key, obj)
        self.assertEqual(obj["id"], rid)
        self.assertEqual(obj["state"], "queued")
        self.assertEqual(obj["method"], "PATCH")
        self.assertEqual(obj["path"], "/v1/bot/?join=[redacted]&n=[redacted]")
        self.assertEqual(obj["attempts"], 1)
        self.assertEqual(obj["last_status"], 507)
        self.assertIsNone(obj["response_status"])
        self.assertLessEqual(abs(parse_timestamp(obj["created_at"]) - t0), 5)
        nxt = parse_timestamp(obj["next_attempt_at"])
        self.assertGreater(nxt, t0 + 3.0, obj)
        self.assertLess(nxt, t0 + 8.0, obj)
        # the secret is not in the control API
        self.assertNotIn("sk_live_do_not_log", json.dumps(obj))

        resp = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
        self.assertJsonError(resp, 409, "not_completed")

        unknown = "01890a5d-ac96-774b-bcce-b302099a8057"
        self.assertJsonError(control_get(rd.port, "/_retryd/requests/%s" % unknown), 404,
                             "not_found")
        for bad in ("not-an-id", "01890a5d-ac96-774b-bcce-b302099a805", "zzzzzzzz-ac96-774b-bcce-b302099a8057"):
            with self.subTest(bad=bad):
                self.assertJsonError(control_get(rd.port, "/_retryd/requests/%s" % bad), 400,
                                     "bad_request")

    def test_health_ok(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        r = control_get(rd.port, "/_retryd/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("status"), "ok")


class PreferTest(QueueTestCase):

    def test_prefer_wait_gets_final_answer_when_it_completes_in_time(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        final_headers = [("Content-Type", "application/json"), ("X-Final", "waited")]
        up.push(Response(507), Response(201, headers=final_headers, body=b'{"bot":"b1"}'))
        t0 = time.monotonic()
        r = send_request(rd.port, "POST", "/wait-ok", CLIENT_HEADERS + [("Prefer", "wait=5")],
                         b"{}")
        took = time.monotonic() - t0
        self.assertVerbatim(r, 201, final_headers, b'{"bot":"b1"}')
        self.assertEqual(r.header("preference-applied"), "wait=5", r)
        self.assertGreaterEqual(took, INTERVAL_S - 0.05)
        self.assertLess(took, 4.0)
        self.assertEqual(up.count(), 2)

    def test_prefer_wait_relays_a_final_4xx(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        up.push(Response(503), Response(404, headers=[("X-F", "nf")], body=b"gone"))
        r = send_request(rd.port, "POST", "/wait-404", [("Prefer", "wait=5")], b"{}")
        self.assertVerbatim(r, 404, [("X-F", "nf")], b"gone")
        self.assertEqual(r.header("preference-applied"), "wait=5", r)

    def test_prefer_wait_is_answered_when_the_request_is_cancelled(self):
        """A held client whose request is cancelled through the control API
        gets its 202, saying cancelled, at once, not when its wait ends."""
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        out = {}

        def held():
            t0 = time.monotonic()
            out["r"] = send_request(rd.port, "POST", "/wait-cancel",
                                    CLIENT_HEADERS + [("Prefer", "wait=20")], b"{}", timeout=30)
            out["took"] = time.monotonic() - t0
        t = threading.Thread(target=held)
        t.start()
        rid = None
        deadline = time.monotonic() + 10
        while rid is None and time.monotonic() < deadline:
            items = control_get(rd.port, "/_retryd/requests?state=queued").json()["requests"]
            rid = items[0]["id"] if items else None
            time.sleep(0.05)
        self.assertIsNotNone(rid, "the request was never stored")
        c = send_request(rd.port, "DELETE", "/_retryd/requests/%s" % rid)
        self.assertEqual(c.status, 200, c)
        t.join(30)
        r = out["r"]
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["state"], "cancelled", r.json())
        self.assertLess(out["took"], 10, "held until the wait ran out")

    def test_prefer_wait_gets_202_when_time_runs_out(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        t0 = time.monotonic()
        r = send_request(rd.port, "POST", "/wait-late", CLIENT_HEADERS + [("Prefer", "wait=1")],
                         b"{}")
        took = time.monotonic() - t0
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.header("preference-applied"), "wait=1", r)
        self.assertGreaterEqual(took, 0.9, "answered before the wait ran out")
        self.assertLess(took, 3.0)
        self.assertGreaterEqual(up.count(), 2, "not retried during the wait")
        obj = r.json()
        self.assertRegex(obj["id"], UUID7_RE)
        self.assertEqual(r.header("location"), "/_retryd/requests/%s" % obj["id"])
        self.assertIn(obj["state"], ("queued", "inflight"), obj)
        # the 202 describes the request as it is when sent, not as it was
        # after the first attempt
        self.assertGreaterEqual(obj["attempts"], 2,
                                "202 after the wait reports stale attempts "
                                "(upstream saw %d): %r" % (up.count(), obj))
        if obj["state"] == "queued":
            self.assertGreaterEqual(parse_timestamp(obj["next_attempt_at"]), time.time() - 0.25,
                                    "202 after the wait names a next attempt in the past: %r"
                                    % obj)

    def test_prefer_wait_capped_by_max_wait(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", INTERVAL, "--max-wait", "1s")
        t0 = time.monotonic()
        r = send_request(rd.port, "POST", "/wait-cap", CLIENT_HEADERS + [("Prefer", "wait=30")],
                         b"{}", timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 202, r)
        self.assertLess(took, 3.0, "--max-wait 1s did not cap Prefer: wait=30")
        self.assertTrue((r.header("preference-applied") or "").startswith("wait="), r)

    def test_prefer_respond_async(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        t0 = time.monotonic()
        r = send_request(rd.port, "POST", "/async",
                         CLIENT_HEADERS + [("Prefer", "respond-async")], b"{}")
        took = time.monotonic() - t0
        self.assertAccepted(r, 507)
        self.assertEqual(r.header("preference-applied"), "respond-async", r)
        self.assertLess(took, INTERVAL_S + 0.2, "respond-async waited for a retry")


class DatabaseFileTest(QueueTestCase):

    @unittest.skipIf(STORAGE == "postgres", "SQLite-only: the queue file's mode 0600 and its "
                     "-wal/-journal/-shm files")
    def test_db_file_created_0600(self):
        old = os.umask(0o022)
        try:
            up = self.start_upstream()
            up.default = Response(507)
            rd = self.start_retryd(up, "--retry-interval", "10s")
        finally:
            os.umask(old)
        r = send_request(rd.port, "POST", "/mode", CLIENT_HEADERS, b"{}")
        self.assertAccepted(r, 507)
        mode = stat.S_IMODE(os.stat(rd.db).st_mode)
        self.assertEqual(mode, 0o600, "db file mode %o" % mode)
        for suffix in ("-wal", "-journal", "-shm"):
            p = rd.db + suffix
            if os.path.exists(p):
                m = stat.S_IMODE(os.stat(p).st_mode)
                self.assertEqual(m & 0o077, 0, "%s mode %o readable by others" % (p, m))

    @unittest.skipIf(STORAGE == "postgres", "SQLite-only: the file lock that refuses a second "
                     "retryd (PostgreSQL replicas share one queue by design)")
    def test_second_retryd_on_same_db_refused(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        p = subprocess.run([retryd_bin(), "--upstream", up.url, "--listen", "127.0.0.1:0",
                            "--db", rd.db], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=child_env(), timeout=15)
        self.assertNotEqual(p.returncode, 0, "second retryd on the same db started")
        err = p.stderr.decode("utf-8", "replace").strip()
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "expected one line on stderr: %r" % err)
        self.assertRegex(lines[0].lower(), r"in use", err)
        # the first one is unaffected
        self.assertEqual(control_get(rd.port, "/_retryd/health").status, 200)

    @unittest.skipIf(STORAGE == "postgres", "SQLite-only: --db sqlite:PATH names a SQLite file "
                     "(the SQLite run covers it)")
    def test_sqlite_scheme_names_the_same_file_as_its_path(self):
        up = self.start_upstream()
        up.default = Response(507)
        tmp = tempfile.mkdtemp(prefix="retryd-it-scheme-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "queue.db")
        rd = self.start_retryd(up, "--retry-interval", "1h", db="sqlite:" + path)
        r = send_request(rd.port, "POST", "/scheme", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 507)["id"]
        self.assertTrue(os.path.exists(path), "sqlite:PATH did not create PATH")
        rd.stop()
        # The same queue, opened by its plain path: the request is there.
        again = self.start_retryd(up, "--retry-interval", "1h", db=path)
        self.assertEqual(get_stored(again.port, rid)["state"], "queued")

    def test_an_unknown_db_scheme_is_a_configuration_error(self):
        p = subprocess.run([retryd_bin(), "--upstream", "http://127.0.0.1:9",
                            "--listen", "127.0.0.1:0",
                            "--db", "mysql://retryd:s3cret@db/queue"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           env=child_env(), timeout=15)
        self.assertEqual(p.returncode, 2, p.stderr)
        err = p.stderr.decode("utf-8", "replace").strip()
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn('"mysql"', err)
        self.assertNotIn("s3cret", err)


if __name__ == "__main__":
    unittest.main()
