"""The retry schedule of a stored request and what changes it:
--retry-interval between attempts, the upstream's Retry-After (seconds and
HTTP-date, clamped to 1 s .. --max-age), --max-attempts and --max-age (dead),
DELETE (cancelled), and Idempotency-Key (a repeat is not forwarded or stored
twice while the first is not final).

Intervals are measured on the fake upstream's clock (arrival of attempts).
Shared assertions live in test_queue_store_and_deliver.QueueTestCase."""

import email.utils
import threading
import time
import unittest

from fake_upstream import Response
from harness import (control_get, get_stored, parse_timestamp, send_request,
                     wait_stored_state)
from test_queue_store_and_deliver import (CLIENT_HEADERS, INTERVAL, INTERVAL_S,
                                          QueueTestCase, wall_time_of)


class ScheduleTest(QueueTestCase):

    def test_attempts_spaced_by_retry_interval(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        up.push(*[Response(507) for _ in range(4)], Response(200, body=b"finally"))
        r = send_request(rd.port, "POST", "/spaced", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 507)["id"]
        reqs = up.wait_for_requests(5, timeout=10)
        gaps = [b.received_at - a.received_at for a, b in zip(reqs, reqs[1:])]
        for g in gaps:
            self.assertGreaterEqual(g, INTERVAL_S - 0.05, "attempts too close: %r" % gaps)
            self.assertLessEqual(g, INTERVAL_S + 1.2, "attempts too far apart: %r" % gaps)
        done = wait_stored_state(rd.port, rid, "completed")
        self.assertEqual(done["attempts"], 5, done)

    def test_upstream_retry_after_seconds_sets_next_attempt(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        up.push(Response(503, headers=[("Retry-After", "2")]), Response(200))
        r = send_request(rd.port, "POST", "/ra-seconds", CLIENT_HEADERS, b"{}")
        obj = self.assertAccepted(r, 503, next_in=2.0)
        self.assertIn(int(r.header("retry-after")), (1, 2, 3), r)
        a, b = up.wait_for_requests(2, timeout=10)
        gap = b.received_at - a.received_at
        self.assertGreaterEqual(gap, 1.9, "Retry-After: 2 not honoured (gap %.2fs)" % gap)
        self.assertLessEqual(gap, 3.5, "gap %.2fs" % gap)
        wait_stored_state(rd.port, obj["id"], "completed")

    def test_upstream_retry_after_http_date_sets_next_attempt(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        when = int(time.time()) + 4
        up.push(Response(429, headers=[("Retry-After", email.utils.formatdate(when, usegmt=True))]),
                Response(200))
        r = send_request(rd.port, "POST", "/ra-date", CLIENT_HEADERS, b"{}")
        obj = self.assertAccepted(r, 429)
        nxt = parse_timestamp(obj["next_attempt_at"])
        self.assertGreaterEqual(nxt, when - 1.0, obj)
        self.assertLessEqual(nxt, when + 1.0, obj)
        a, b = up.wait_for_requests(2, timeout=10)
        self.assertGreaterEqual(b.received_at - a.received_at, 2.5)
        self.assertGreaterEqual(wall_time_of(b), when - 0.3, "sent before the HTTP-date")
        self.assertLessEqual(wall_time_of(b), when + 1.5)
        wait_stored_state(rd.port, obj["id"], "completed")

    def test_upstream_retry_after_zero_clamped_to_one_second(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        up.push(Response(503, headers=[("Retry-After", "0")]), Response(200))
        r = send_request(rd.port, "POST", "/ra-zero", CLIENT_HEADERS, b"{}")
        obj = self.assertAccepted(r, 503)
        self.assertGreaterEqual(int(r.header("retry-after")), 1)
        a, b = up.wait_for_requests(2, timeout=10)
        gap = b.received_at - a.received_at
        self.assertGreaterEqual(gap, 0.95, "Retry-After: 0 not clamped to 1 s (gap %.2fs)" % gap)
        self.assertLessEqual(gap, 2.5)
        wait_stored_state(rd.port, obj["id"], "completed")

    def test_upstream_retry_after_clamped_to_max_age(self):
        up = self.start_upstream()
        up.default = Response(503, headers=[("Retry-After", "3600")])
        rd = self.start_retryd(up, "--retry-interval", INTERVAL, "--max-age", "2s")
        t0 = time.time()
        r = send_request(rd.port, "POST", "/ra-huge", CLIENT_HEADERS, b"{}")
        obj = self.assertAccepted(r, 503)
        self.assertLessEqual(int(r.header("retry-after")), 2, r)
        self.assertLessEqual(parse_timestamp(obj["next_attempt_at"]), t0 + 2.5, obj)
        dead = wait_stored_state(rd.port, obj["id"], "dead", timeout=6)
        self.assertEqual(dead["reason"], "max_age", dead)
        # at most one more attempt, at the end of its life (age == --max-age)
        n = up.count()
        self.assertLessEqual(n, 2, "sent again after --max-age: %r" % dead)
        if n == 2:
            self.assertLessEqual(wall_time_of(up.requests[1]),
                                 parse_timestamp(dead["created_at"]) + 2.0 + 0.3)
        time.sleep(1.0)
        self.assertEqual(up.count(), n, "sent after it was dead")

    def test_max_attempts_makes_request_dead(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", INTERVAL, "--max-attempts", "3")
        r = send_request(rd.port, "POST", "/max-attempts", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 507)["id"]
        dead = wait_stored_state(rd.port, rid, "dead", timeout=8)
        self.assertEqual(dead["attempts"], 3, dead)
        self.assertEqual(dead["reason"], "max_attempts", dead)
        self.assertEqual(dead["last_status"], 507, dead)
        self.assertIsNone(dead["next_attempt_at"], dead)
        self.assertIsNone(dead["response_status"], dead)
        time.sleep(4 * INTERVAL_S)
        self.assertEqual(up.count(), 3, "expected exactly 3 attempts: %r" % up.requests)
        self.assertEqual(get_stored(rd.port, rid)["state"], "dead")
        resp = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
        self.assertJsonError(resp, 409, "not_completed")

    def test_max_age_makes_request_dead(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", INTERVAL, "--max-age", "1s")
        r = send_request(rd.port, "POST", "/max-age", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 507)["id"]
        dead = wait_stored_state(rd.port, rid, "dead", timeout=6)
        n = up.count()
        self.assertGreaterEqual(n, 2, "never retried before expiring")
        time.sleep(4 * INTERVAL_S)
        self.assertEqual(up.count(), n, "sent again after it was dead")
        reqs = up.requests
        self.assertLessEqual(reqs[-1].received_at - reqs[0].received_at, 1.0 + 0.25,
                             "an attempt was sent after --max-age")
        self.assertEqual(dead["attempts"], n, dead)

    def test_cancel_queued_request(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "2s")
        r = send_request(rd.port, "POST", "/cancel-me", CLIENT_HEADERS, b"{}")
        rid = self.assertAccepted(r, 507, next_in=2.0)["id"]
        d = send_request(rd.port, "DELETE", "/_retryd/requests/%s" % rid)
        self.assertEqual(d.status, 200, d)
        self.assertTrue((d.header("content-type") or "").startswith("application/json"), d)
        obj = d.json()
        self.assertEqual((obj["id"], obj["state"]), (rid, "cancelled"), obj)
        self.assertEqual(get_stored(rd.port, rid)["state"], "cancelled")
        d2 = send_request(rd.port, "DELETE", "/_retryd/requests/%s" % rid)
        self.assertJsonError(d2, 409, "not_queued")
        time.sleep(2.6)
        self.assertEqual(up.count(), 1, "a cancelled request was sent: %r" % up.requests)
        self.assertEqual(get_stored(rd.port, rid)["state"], "cancelled")



class IdempotencyTest(QueueTestCase):

    def test_idempotency_key_dedupes_while_not_final(self):
        up = self.start_upstream()
        ok = threading.Event()
        up.handler = lambda req: Response(201, body=b"created") if ok.is_set() else Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1500ms")
        key = [("Idempotency-Key", "idem-123")]
        r1 = send_request(rd.port, "POST", "/v1/bot", CLIENT_HEADERS + key, b'{"n":1}')
        a = self.assertAccepted(r1, 507)["id"]
        self.assertEqual(up.count(), 1)

        r2 = send_request(rd.port, "POST", "/v1/bot", CLIENT_HEADERS + key, b'{"n":1}')
        self.assertEqual(r2.status, 202, r2)
        self.assertEqual(r2.json()["id"], a, "a repeat got a different id")
        self.assertEqual(r2.header("location"), "/_retryd/requests/%s" % a)
        time.sleep(0.2)
        self.assertEqual(up.count(), 1, "the repeat was forwarded upstream")

        # the key is scoped by method and path
        r3 = send_request(rd.port, "POST", "/v1/other", CLIENT_HEADERS + key, b'{"n":1}')
        b = self.assertAccepted(r3, 507)["id"]
        self.assertNotEqual(a, b)
        r4 = send_request(rd.port, "PUT", "/v1/bot", CLIENT_HEADERS + key, b'{"n":1}')
        c = self.assertAccepted(r4, 507)["id"]
        self.assertNotIn(c, (a, b))
        self.assertEqual(up.count(), 3)

        ok.set()
        wait_stored_state(rd.port, a, "completed", timeout=6)
        time.sleep(0.3)
        post_bot = [q for q in up.requests if (q.method, q.target) == ("POST", "/v1/bot")]
        self.assertEqual(len(post_bot), 2, "stored twice? POST /v1/bot sent %d times"
                         % len(post_bot))

        # completed: the same key gets the stored answer replayed, not sent
        # again (within --keep-completed; test_queue_life.py has the rest)
        ok.clear()
        r5 = send_request(rd.port, "POST", "/v1/bot", CLIENT_HEADERS + key, b'{"n":1}')
        self.assertEqual((r5.status, r5.body), (201, b"created"), r5)
        self.assertEqual(r5.header("retryd-replayed"), "true", r5)
        self.assertEqual(r5.header("retryd-request-id"), a, r5)
        post_bot = [q for q in up.requests if (q.method, q.target) == ("POST", "/v1/bot")]
        self.assertEqual(len(post_bot), 2)

    def test_idempotency_key_repeat_while_inflight_and_delete_inflight(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", INTERVAL)
        up.push(Response(507), Response(507, delay=1.5), Response(200))
        key = [("Idempotency-Key", "idem-inflight")]
        a = self.assertAccepted(send_request(rd.port, "POST", "/idem/inflight", key, b"{}"),
                                507)["id"]
        up.wait_for_requests(2, timeout=5)  # the retry is now held by the upstream
        self.assertEqual(get_stored(rd.port, a)["state"], "inflight")
        r = send_request(rd.port, "POST", "/idem/inflight", key, b"{}")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["id"], a)
        d = send_request(rd.port, "DELETE", "/_retryd/requests/%s" % a)
        self.assertJsonError(d, 409, "not_queued")
        wait_stored_state(rd.port, a, "completed", timeout=8)
        time.sleep(0.3)
        self.assertEqual(up.count(), 3, up.requests)


if __name__ == "__main__":
    unittest.main()
