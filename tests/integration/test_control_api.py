"""The control API under /_retryd/: health, stats (and its counts surviving
a restart), the paged listing, one request's views, retry now, cancel, and
the errors for bad parameters, bad or unknown ids and wrong methods.

Control requests are answered by retryd itself: every test checks that the
fake upstream saw only the requests the test meant to forward."""

import time
import unittest

from fake_upstream import Response
from harness import (RetrydTestCase, TIMESTAMP_RE, UUID7_RE, parse_timestamp,
                     send_request)
from control_helpers import (QUEUE_STATES, ctl, ctl_json, fake_uuid7, list_all,
                             wait_state, wait_until)

STATS_KEYS = {"queue", "callbacks", "totals", "routes", "upstream", "uptime_s"}
QUEUE_KEYS = set(QUEUE_STATES) | {"oldest_queued_at", "next_attempt_at"}
TOTALS_KEYS = {"requests", "forwarded", "stored", "retries", "recovered", "dead",
               "rejected", "requeued_at_start"}
REQUEST_KEYS = {"id", "state", "method", "path", "attempts", "created_at",
                "next_attempt_at", "last_status", "last_error", "response_status"}

TRY_LATER = Response(507, headers=[("Content-Type", "application/json")],
                     body=b'{"code":"adhoc_bot_pool_empty"}')


def store(rd, target="/api/v1/bot/", body=b'{"n":1}'):
    """POST through retryd (the upstream answers 507): returns the 202's JSON."""
    r = send_request(rd.port, "POST", target, [("Content-Type", "application/json")], body)
    if r.status != 202:
        raise AssertionError("expected a 202 for %s: %r" % (target, r))
    return r.json()


class ControlTestCase(RetrydTestCase):

    def upstream_507(self):
        up = self.start_upstream()
        up.default = TRY_LATER
        return up

    def assertOnlyForwarded(self, up, targets):
        """The upstream saw exactly these targets (in any order), nothing
        under /_retryd/."""
        got = sorted(r.target for r in up.requests)
        self.assertEqual(got, sorted(targets), "upstream saw %r" % up.requests)
        for r in up.requests:
            self.assertFalse(r.target.startswith("/_retryd"), r)


class HealthAndStatsTest(ControlTestCase):

    def test_health(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        for method in ("GET", "HEAD"):
            r = ctl(rd.port, method, "/_retryd/health")
            self.assertEqual(r.status, 200, r)
            self.assertTrue((r.header("content-type") or "").startswith("application/json"), r)
            if method == "GET":
                self.assertEqual(r.json(), {"status": "ok"})
        self.assertNothingForwarded(up, settle=0.2)

    def test_stats_shape_and_figures(self):
        up = self.upstream_507()
        rd = self.start_retryd(up, "--retry-interval", "1h")
        t0 = time.time()
        stored = [store(rd, "/api/v1/bot/?n=%d" % i) for i in range(3)]
        up.push(Response(200, body=b"fine"))
        self.assertEqual(send_request(rd.port, "GET", "/api/v1/bot/ok").status, 200)
        up.push(Response(404, body=b"nope"))
        self.assertEqual(send_request(rd.port, "GET", "/api/v1/bot/missing").status, 404)
        # control requests are not client requests for the upstream
        for _ in range(3):
            ctl_json(rd.port, "/_retryd/stats")
            ctl_json(rd.port, "/_retryd/requests")

        s = ctl_json(rd.port, "/_retryd/stats")
        # a queue shared by replicas also names this one (test_pg_metrics.py)
        self.assertEqual(set(s) - {"replica"}, STATS_KEYS, s)
        self.assertEqual(set(s["queue"]), QUEUE_KEYS, s)
        self.assertEqual(set(s["totals"]), TOTALS_KEYS, s)
        q, t, u = s["queue"], s["totals"], s["upstream"]
        self.assertEqual({k: q[k] for k in QUEUE_STATES},
                         {"queued": 3, "inflight": 0, "completed": 0, "dead": 0,
                          "cancelled": 0}, s)
        first = ctl_json(rd.port, "/_retryd/requests/%s" % stored[0]["id"])
        self.assertEqual(q["oldest_queued_at"], first["created_at"], s)
        nxt = parse_timestamp(q["next_attempt_at"])
        self.assertAlmostEqual(nxt, t0 + 3600, delta=10)
        self.assertEqual(t["requests"], 5, s)
        self.assertEqual(t["forwarded"], 5, s)
        self.assertEqual(t["stored"], 3, s)
        self.assertEqual((t["retries"], t["recovered"], t["dead"], t["rejected"],
                          t["requeued_at_start"]), (0, 0, 0, 0, 0), s)
        resp = u["responses"]
        self.assertEqual({k: resp[k] for k in ("1xx", "2xx", "3xx", "4xx", "5xx")},
                         {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 1, "5xx": 3}, s)
        self.assertEqual(resp["by_code"], {"200": 1, "404": 1, "507": 3}, s)
        self.assertEqual(u["network_errors"], 0, s)
        lat = u["latency_ms"]
        self.assertEqual(set(lat), {"count", "p50", "p90", "p99", "max"}, s)
        self.assertEqual(lat["count"], 5, s)
        self.assertTrue(0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat)
        self.assertLess(lat["max"], 10000, lat)
        self.assertIsInstance(s["uptime_s"], (int, float))
        self.assertGreaterEqual(s["uptime_s"], 0)
        self.assertLess(s["uptime_s"], 120)
        self.assertOnlyForwarded(up, ["/api/v1/bot/?n=0", "/api/v1/bot/?n=1",
                                      "/api/v1/bot/?n=2", "/api/v1/bot/ok",
                                      "/api/v1/bot/missing"])

    def test_empty_queue_stats(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        s = ctl_json(rd.port, "/_retryd/stats")
        self.assertEqual({k: s["queue"][k] for k in QUEUE_STATES},
                         dict.fromkeys(QUEUE_STATES, 0), s)
        self.assertIsNone(s["queue"]["oldest_queued_at"], s)
        self.assertIsNone(s["queue"]["next_attempt_at"], s)
        self.assertEqual(s["upstream"]["latency_ms"]["count"], 0, s)
        self.assertNothingForwarded(up, settle=0.1)

    def test_counts_by_state_survive_restart(self):
        up = self.upstream_507()
        args = ("--retry-interval", "1h", "--max-attempts", "2")
        rd = self.start_retryd(up, *args)
        ids = [store(rd, "/api/v1/bot/?k=%d" % i)["id"] for i in range(7)]
        # 0,1,2 stay queued; 3 completes; 4,5 die; 6 is cancelled
        up.push(Response(201, body=b"made"))
        self.assertEqual(ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % ids[3]).status, 200)
        wait_state(rd.port, ids[3], "completed")
        for i in (4, 5):
            self.assertEqual(ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % ids[i]).status,
                             200)
            wait_state(rd.port, ids[i], "dead")
        self.assertEqual(ctl(rd.port, "DELETE", "/_retryd/requests/%s" % ids[6]).status, 200)
        want = {"queued": 3, "inflight": 0, "completed": 1, "dead": 2, "cancelled": 1}
        before = ctl_json(rd.port, "/_retryd/stats")["queue"]
        self.assertEqual({k: before[k] for k in QUEUE_STATES}, want, before)

        self.assertEqual(rd.stop(), 0, rd.stderr_text()[-2000:])
        rd2 = self.start_retryd(up, *args, db=rd.db)
        after = ctl_json(rd2.port, "/_retryd/stats")["queue"]
        self.assertEqual(after, before, "queue figures changed across a restart")
        for state, n in want.items():
            rows, _ = list_all(rd2.port, state=state, limit=2)
            self.assertEqual(len(rows), n, (state, rows))
        self.assertEqual(up.count(), 10, up.requests)  # 7 first attempts + 3 retries


class ListingTest(ControlTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.up.default = TRY_LATER
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "1h")
        cls.ids = []
        for i in range(23):
            cls.ids.append(store(cls.rd, "/api/v1/bot/?i=%02d" % i)["id"])
        port = cls.rd.port
        cls.cancelled = cls.ids[2:7]
        for rid in cls.cancelled:
            r = ctl(port, "DELETE", "/_retryd/requests/%s" % rid)
            assert r.status == 200, r
        cls.completed = [cls.ids[0], cls.ids[10], cls.ids[22]]
        for rid in cls.completed:
            cls.up.push(Response(200, body=b"ok"))
            r = ctl(port, "POST", "/_retryd/requests/%s/retry" % rid)
            assert r.status == 200, r
            wait_state(port, rid, "completed")
        cls.queued = [i for i in cls.ids if i not in cls.cancelled and i not in cls.completed]

    def test_ids_are_time_ordered(self):
        for rid in self.ids:
            self.assertRegex(rid, UUID7_RE)
        self.assertEqual(sorted(self.ids), self.ids)

    def test_every_page_size_returns_every_request_once_oldest_first(self):
        for limit in (1, 2, 7, 22, 23, 24, 1000):
            with self.subTest(limit=limit):
                rows, pages = list_all(self.rd.port, limit=limit)
                got = [r["id"] for r in rows]
                self.assertEqual(got, self.ids)
                self.assertGreaterEqual(pages, -(-23 // limit))
                self.assertLessEqual(pages, 23 // limit + 1)
                created = [parse_timestamp(r["created_at"]) for r in rows]
                self.assertEqual(created, sorted(created))

    def test_state_filter(self):
        cases = {"queued": self.queued, "cancelled": self.cancelled,
                 "completed": self.completed, "dead": [], "inflight": []}
        for state, want in cases.items():
            for limit in (1, 4, 50):
                with self.subTest(state=state, limit=limit):
                    rows, _ = list_all(self.rd.port, state=state, limit=limit)
                    self.assertEqual([r["id"] for r in rows], want)
                    for r in rows:
                        self.assertEqual(r["state"], state, r)

    def test_page_shape(self):
        page = ctl_json(self.rd.port, "/_retryd/requests?state=queued&limit=4")
        self.assertEqual(len(page["requests"]), 4)
        self.assertIsInstance(page["next_cursor"], str)
        for row in page["requests"]:
            self.assertTrue(REQUEST_KEYS <= set(row), row)
            self.assertEqual(row["method"], "POST")
            self.assertTrue(row["path"].startswith("/api/v1/bot/?i="), row)
            self.assertEqual(row["attempts"], 1)
            self.assertEqual(row["last_status"], 507)
            self.assertRegex(row["created_at"], TIMESTAMP_RE)
            self.assertRegex(row["next_attempt_at"], TIMESTAMP_RE)
            self.assertIsNone(row["response_status"])
        # no parameters: the default page holds all 23 (default limit 50)
        page = ctl_json(self.rd.port, "/_retryd/requests")
        self.assertEqual([r["id"] for r in page["requests"]], self.ids)
        self.assertIsNone(page["next_cursor"])
        # a state with no rows
        page = ctl_json(self.rd.port, "/_retryd/requests?state=dead")
        self.assertEqual(page, {"requests": [], "next_cursor": None})

    def test_cursor_is_stable_while_the_queue_grows(self):
        page = ctl_json(self.rd.port, "/_retryd/requests?limit=10")
        cursor = page["next_cursor"]
        again = ctl_json(self.rd.port, "/_retryd/requests?limit=10&cursor=%s" % cursor)
        self.assertEqual([r["id"] for r in again["requests"]], self.ids[10:20])

    def test_bad_parameters(self):
        bad = ["state=bogus", "state=", "state=QUEUED", "limit=0", "limit=1001", "limit=abc",
               "limit=-1", "limit=", "limit=1.5", "cursor=abc", "cursor=-1", "cursor=",
               "cursor=99999999999999999999", "state=queued&limit=0",
               "limit=10&cursor=1x"]
        for q in bad:
            with self.subTest(query=q):
                r = ctl(self.rd.port, "GET", "/_retryd/requests?" + q)
                obj = self.assertJsonError(r, 400, "bad_request")
                self.assertIsInstance(obj.get("message"), str)
        for q in ("limit=1", "limit=1000", "state=dead&limit=1000"):
            with self.subTest(query=q):
                self.assertEqual(ctl(self.rd.port, "GET", "/_retryd/requests?" + q).status, 200)

    def test_nothing_forwarded(self):
        # 23 first attempts + 3 retries; no control request went upstream
        self.assertEqual(self.up.count(), 26, self.up.requests)
        for r in self.up.requests:
            self.assertTrue(r.target.startswith("/api/v1/bot/?i="), r)


class OneRequestTest(ControlTestCase):

    def test_views_of_a_stored_request(self):
        up = self.upstream_507()
        rd = self.start_retryd(up, "--retry-interval", "1h")
        t0 = time.time()
        acc = store(rd, "/api/v1/bot/?view=1", b'{"a":1}')
        rid = acc["id"]
        obj = ctl_json(rd.port, "/_retryd/requests/%s" % rid)
        self.assertTrue(REQUEST_KEYS <= set(obj), obj)
        self.assertEqual((obj["id"], obj["state"], obj["method"], obj["path"], obj["attempts"],
                          obj["last_status"], obj["last_error"], obj["response_status"]),
                         (rid, "queued", "POST", "/api/v1/bot/?view=[redacted]", 1, 507,
                          None, None))
        self.assertAlmostEqual(parse_timestamp(obj["created_at"]), t0, delta=5)
        self.assertAlmostEqual(parse_timestamp(obj["next_attempt_at"]), t0 + 3600, delta=10)
        # HEAD answers like GET, without a body
        h = ctl(rd.port, "HEAD", "/_retryd/requests/%s" % rid)
        self.assertEqual(h.status, 200, h)
        self.assertEqual(h.body, b"")
        # no final answer yet
        r = ctl(rd.port, "GET", "/_retryd/requests/%s/response" % rid)
        self.assertJsonError(r, 409, "not_completed")

        final_headers = [("Content-Type", "application/json"), ("X-Bot", "b-1")]
        up.push(Response(201, headers=final_headers, body=b'{"id":"b-1"}'))
        self.assertEqual(ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % rid).status, 200)
        done = wait_state(rd.port, rid, "completed")
        self.assertEqual((done["attempts"], done["last_status"], done["response_status"],
                          done["next_attempt_at"]), (2, 201, 201, None), done)
        r = ctl(rd.port, "GET", "/_retryd/requests/%s/response" % rid)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("x-bot"), "b-1", r)
        self.assertEqual(r.header("content-type"), "application/json", r)
        self.assertEqual(r.body, b'{"id":"b-1"}')
        self.assertOnlyForwarded(up, ["/api/v1/bot/?view=1"] * 2)

    def test_retry_now_delivers_a_queued_request_promptly(self):
        up = self.upstream_507()
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = store(rd, "/api/v1/bot/?now=1")["id"]
        up.push(Response(200, body=b"delivered"))
        t0 = time.monotonic()
        r = ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % rid)
        self.assertEqual(r.status, 200, r)
        obj = r.json()
        self.assertEqual((obj["id"], obj["state"]), (rid, "queued"), obj)
        self.assertAlmostEqual(parse_timestamp(obj["next_attempt_at"]), time.time(), delta=5)
        reqs = up.wait_for_requests(2, timeout=5)
        self.assertLess(reqs[1].received_at - t0, 3.0, "retry now took too long")
        self.assertEqual(reqs[1].target, "/api/v1/bot/?now=1")
        self.assertEqual(reqs[1].body, reqs[0].body)
        done = wait_state(rd.port, rid, "completed")
        self.assertEqual(done["response_status"], 200, done)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/requests/%s/response" % rid).body,
                         b"delivered")
        # a completed request cannot be retried
        self.assertJsonError(ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % rid),
                             409, "not_queued")
        time.sleep(0.5)
        self.assertEqual(up.count(), 2, up.requests)

    def test_retry_now_requeues_a_request_dead_after_max_attempts(self):
        # --max-attempts 1: a retryable first answer leaves the request dead
        up = self.upstream_507()
        rd = self.start_retryd(up, "--retry-interval", "1h", "--max-attempts", "1")
        r = send_request(rd.port, "POST", "/api/v1/bot/?dead=1", [], b"{}")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        self.assertEqual(r.json()["state"], "dead", r)
        obj = ctl_json(rd.port, "/_retryd/requests/%s" % rid)
        self.assertEqual((obj["state"], obj["attempts"], obj["next_attempt_at"]),
                         ("dead", 1, None), obj)
        time.sleep(0.5)
        self.assertEqual(up.count(), 1)
        up.push(Response(200, body=b"second wind"))
        r = ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % rid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["state"], "queued", r)
        up.wait_for_requests(2, timeout=5)
        done = wait_state(rd.port, rid, "completed")
        self.assertEqual((done["attempts"], done["response_status"]), (2, 200), done)
        s = ctl_json(rd.port, "/_retryd/stats")["queue"]
        self.assertEqual((s["dead"], s["completed"], s["queued"]), (0, 1, 0), s)

    def test_retry_now_attempts_a_request_dead_by_max_age(self):
        """Contract: POST .../retry makes a dead request 'attempted now'. A
        request dead because it outlived --max-age must be sent again, not
        expired again before any attempt."""
        up = self.upstream_507()
        rd = self.start_retryd(up, "--retry-interval", "300ms", "--max-age", "1s")
        rid = store(rd, "/api/v1/bot/?old=1")["id"]
        wait_state(rd.port, rid, "dead", timeout=10)
        time.sleep(0.5)
        n = up.count()
        up.default = Response(200, body=b"finally")
        r = ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % rid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["state"], "queued", r)
        try:
            up.wait_for_requests(n + 1, timeout=5)
        except AssertionError:
            self.fail("POST retry on a request dead by --max-age answered 200 'queued' but "
                      "the request was never sent; now: %r"
                      % ctl_json(rd.port, "/_retryd/requests/%s" % rid))
        wait_state(rd.port, rid, "completed")

    def test_cancel(self):
        up = self.upstream_507()
        rd = self.start_retryd(up, "--retry-interval", "300ms")
        rid = store(rd, "/api/v1/bot/?cancel=1")["id"]
        # catch it queued (between attempts) and cancel it
        deadline = time.monotonic() + 10
        while True:
            r = ctl(rd.port, "DELETE", "/_retryd/requests/%s" % rid)
            if r.status == 200:
                break
            self.assertJsonError(r, 409, "not_queued")  # inflight at that moment
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        obj = r.json()
        self.assertEqual((obj["id"], obj["state"], obj["next_attempt_at"]),
                         (rid, "cancelled", None), obj)
        n = up.count()
        time.sleep(1.2)  # four intervals
        self.assertEqual(up.count(), n, "a cancelled request was sent")
        self.assertEqual(ctl_json(rd.port, "/_retryd/requests/%s" % rid)["state"], "cancelled")
        self.assertJsonError(ctl(rd.port, "DELETE", "/_retryd/requests/%s" % rid),
                             409, "not_queued")
        self.assertJsonError(ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % rid),
                             409, "not_queued")
        self.assertJsonError(ctl(rd.port, "GET", "/_retryd/requests/%s/response" % rid),
                             409, "not_completed")
        s = ctl_json(rd.port, "/_retryd/stats")["queue"]
        self.assertEqual((s["queued"], s["cancelled"]), (0, 1), s)


class BadRequestsTest(ControlTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.up.default = TRY_LATER
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "1h")
        cls.rid = store(cls.rd, "/api/v1/bot/?bad=1")["id"]

    def test_bad_ids_are_400(self):
        rid = self.rid
        bad = ["abc", rid.upper(), rid[:-1], rid + "0", rid.replace("-", ""),
               rid[:8] + "_" + rid[9:], "g" + rid[1:], rid + "/", rid + "/bogus",
               rid + "/responsex", rid + "/retryx", "../stats", "%s%%20" % rid]
        for tail in bad:
            for method in ("GET", "DELETE"):
                with self.subTest(tail=tail, method=method):
                    r = ctl(self.rd.port, method, "/_retryd/requests/" + tail)
                    self.assertJsonError(r, 400, "bad_request")
        for tail in ("abc/retry", rid.upper() + "/retry"):
            with self.subTest(tail=tail, method="POST"):
                r = ctl(self.rd.port, "POST", "/_retryd/requests/" + tail)
                self.assertJsonError(r, 400, "bad_request")
        self.assertEqual(ctl_json(self.rd.port, "/_retryd/requests/%s" % rid)["state"],
                         "queued")

    def test_unknown_ids_are_404(self):
        other = fake_uuid7()
        self.assertRegex(other, UUID7_RE)
        for method, tail in (("GET", ""), ("HEAD", ""), ("GET", "/response"),
                             ("POST", "/retry"), ("DELETE", "")):
            with self.subTest(method=method, tail=tail):
                r = ctl(self.rd.port, method, "/_retryd/requests/%s%s" % (other, tail))
                self.assertEqual(r.status, 404, r)
                if method != "HEAD":
                    self.assertJsonError(r, 404, "not_found")

    def test_unknown_control_paths_are_404_and_not_forwarded(self):
        for path in ("/_retryd/nope", "/_retryd/stats/x", "/_retryd/requests/",
                     "/_retryd/healthz", "/_retryd//stats"):
            with self.subTest(path=path):
                self.assertJsonError(ctl(self.rd.port, "GET", path), 404, "not_found")

    def test_wrong_methods_are_405(self):
        rid = self.rid
        cases = [("POST", "/_retryd/health"), ("DELETE", "/_retryd/health"),
                 ("POST", "/_retryd/stats"), ("PUT", "/_retryd/stats"),
                 ("DELETE", "/_retryd/metrics"), ("POST", "/_retryd/requests"),
                 ("DELETE", "/_retryd/requests"), ("POST", "/_retryd/"),
                 ("POST", "/_retryd/requests/%s" % rid), ("PUT", "/_retryd/requests/%s" % rid),
                 ("PATCH", "/_retryd/requests/%s" % rid),
                 ("GET", "/_retryd/requests/%s/retry" % rid),
                 ("DELETE", "/_retryd/requests/%s/retry" % rid),
                 ("POST", "/_retryd/requests/%s/response" % rid),
                 ("DELETE", "/_retryd/requests/%s/response" % rid)]
        for method, path in cases:
            with self.subTest(method=method, path=path):
                r = ctl(self.rd.port, method, path)
                self.assertJsonError(r, 405, "method_not_allowed")
        # none of them changed the request
        obj = ctl_json(self.rd.port, "/_retryd/requests/%s" % rid)
        self.assertEqual((obj["state"], obj["attempts"]), ("queued", 1), obj)

    def test_405_names_the_allowed_methods(self):
        """RFC 9110 15.5.6: a 405 MUST carry an Allow header."""
        rid = self.rid
        for method, path in (("POST", "/_retryd/stats"), ("POST", "/_retryd/health"),
                             ("GET", "/_retryd/requests/%s/retry" % rid),
                             ("PUT", "/_retryd/requests/%s" % rid)):
            with self.subTest(method=method, path=path):
                r = ctl(self.rd.port, method, path)
                self.assertEqual(r.status, 405, r)
                self.assertIsNotNone(r.header("allow"), "405 without Allow: %r" % r)

    def test_zz_nothing_forwarded(self):
        wait_until(lambda: self.up.count() >= 1)
        time.sleep(0.2)
        self.assertEqual([r.target for r in self.up.requests], ["/api/v1/bot/?bad=1"])


if __name__ == "__main__":
    unittest.main()
