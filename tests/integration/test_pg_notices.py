"""Replicas tell each other through PostgreSQL's LISTEN/NOTIFY.

Two replicas on one database, each with an upstream of its own: A's
answers 503 (and holds every retry of /hang for 30 s), B's answers 200. A runs one retry at
a time (--retry-concurrency 1) and that one slot is kept busy by a stored
/hang request it retries, so A can claim nothing else: whatever else is
retried, B retried it, and B can only have known of it by being told.

- A retry-now through A makes the row due now: B is told and delivers it
  at once, where polling would take a second on average.
- A client held with Prefer: wait on A gets the final answer that B's
  delivery stored, not a 202 at the end of its wait.
- A client held on A for a request cancelled through B gets its 202, saying
  cancelled, at once.
- A long-poll (GET /_retryd/requests/<id>/response with Prefer: wait) on A
  gets the answer B delivered, at once.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))

from fake_upstream import Response  # noqa: E402
from harness import RetrydTestCase, control_get, send_request  # noqa: E402
from pg_cluster import OwnClusterMixin  # noqa: E402

HANG_S = 30


class Answering:
    """An upstream handler: status for every request, /hang held first."""

    def __init__(self, status, body):
        self.status, self.body = status, body
        self.lock = threading.Lock()
        self.paths = []

    def __call__(self, req):
        with self.lock:
            self.paths.append(req.target)
            seen = self.paths.count(req.target)
        if req.target.startswith("/hang") and seen > 1:
            time.sleep(HANG_S)  # its retries, not its first attempt
        return Response(self.status, headers=[("X-From", self.body.decode())], body=self.body)

    def saw(self, path):
        with self.lock:
            return self.paths.count(path)


class PgNoticesTest(OwnClusterMixin, RetrydTestCase):

    def setUp(self):
        dsn = self.fresh_db("notices")
        up_a, up_b = self.start_upstream(), self.start_upstream()
        self.ha, self.hb = Answering(503, b"a"), Answering(200, b"b")
        up_a.handler, up_b.handler = self.ha, self.hb
        self.a = self.start_retryd(up_a, "--retry-interval", "1h", "--retry-concurrency", "1",
                                   "--upstream-timeout", "60s", "--shutdown-timeout", "1s",
                                   db=dsn)
        # A's one retry slot: a stored /hang, retried now, held by A's
        # upstream. B starts after: told of /hang, it could have taken it.
        r = send_request(self.a.port, "POST", "/hang", body=b"{}")
        self.assertEqual(r.status, 202, r)
        self.retry_now(self.a, r.json()["id"])
        deadline = time.monotonic() + 10
        while self.ha.saw("/hang") < 2:
            self.assertLess(time.monotonic(), deadline, "A never retried /hang")
            time.sleep(0.05)
        self.b = self.start_retryd(up_b, "--retry-interval", "1h", db=dsn)

    def retry_now(self, rd, rid):
        r = send_request(rd.port, "POST", "/_retryd/requests/%s/retry" % rid)
        self.assertEqual(r.status, 200, r)

    def store_on_a(self, path):
        r = send_request(self.a.port, "POST", path, body=b"{}")
        self.assertEqual(r.status, 202, r)
        return r.json()["id"]

    def hold_on_a(self, path, wait_s):
        """POSTs path to A with Prefer: wait on a thread; returns (out, thread,
        id) once the request is stored, out getting "r" and "took"."""
        out = {}

        def held():
            t0 = time.monotonic()
            out["r"] = send_request(self.a.port, "POST", path,
                                    [("Prefer", "wait=%d" % wait_s)], b"{}", timeout=wait_s + 20)
            out["took"] = time.monotonic() - t0
        t = threading.Thread(target=held)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            items = control_get(self.b.port, "/_retryd/requests?state=queued").json()["requests"]
            ids = [i["id"] for i in items if i["path"] == path]
            if ids:
                return out, t, ids[0]
            time.sleep(0.05)
        self.fail("%s was never stored" % path)

    def test_a_row_made_due_on_one_replica_is_retried_at_once_by_another(self):
        for k in range(5):
            path = "/due-%d" % k
            rid = self.store_on_a(path)
            t0 = time.monotonic()
            self.retry_now(self.a, rid)
            while self.hb.saw(path) == 0:
                # Polling alone (every 2 s, or 10 s while listening) makes
                # five in a row under 0.6 s each a chance below 1 in 400.
                self.assertLess(time.monotonic() - t0, 0.6, "B was not told %s is due" % path)
                time.sleep(0.02)
            state = control_get(self.a.port, "/_retryd/requests/%s" % rid).json()["state"]
            deadline = time.monotonic() + 5
            while state != "completed" and time.monotonic() < deadline:
                time.sleep(0.05)
                state = control_get(self.a.port, "/_retryd/requests/%s" % rid).json()["state"]
            self.assertEqual(state, "completed")
            self.assertEqual(self.ha.saw(path), 1, "A retried %s itself" % path)

    def test_prefer_wait_on_one_replica_gets_the_answer_another_delivered(self):
        out, t, rid = self.hold_on_a("/wait-b", 15)
        self.retry_now(self.b, rid)
        t.join(40)
        r = out["r"]
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"b")
        self.assertEqual(r.header("x-from"), "b")
        self.assertEqual(r.header("preference-applied"), "wait=15", r)
        self.assertLess(out["took"], 10, "held until the wait ran out")

    def test_prefer_wait_on_one_replica_ends_when_another_cancels(self):
        out, t, rid = self.hold_on_a("/wait-cancel", 15)
        c = send_request(self.b.port, "DELETE", "/_retryd/requests/%s" % rid)
        self.assertEqual(c.status, 200, c)
        t.join(40)
        r = out["r"]
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["state"], "cancelled", r.json())
        self.assertLess(out["took"], 10, "held until the wait ran out")

    def test_long_poll_on_one_replica_ends_when_another_delivers(self):
        rid = self.store_on_a("/poll-b")
        out = {}

        def held():
            t0 = time.monotonic()
            out["r"] = send_request(self.a.port, "GET", "/_retryd/requests/%s/response" % rid,
                                    [("Prefer", "wait=15")], timeout=35)
            out["took"] = time.monotonic() - t0
        t = threading.Thread(target=held)
        t.start()
        time.sleep(0.3)
        self.retry_now(self.b, rid)
        t.join(40)
        r = out["r"]
        self.assertEqual((r.status, r.body), (200, b"b"), r)
        self.assertEqual(r.header("preference-applied"), "wait=15", r)
        self.assertLess(out["took"], 10, "held until the wait ran out")


if __name__ == "__main__":
    unittest.main()
