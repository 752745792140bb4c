"""Replicas sharing one PostgreSQL queue (--db postgres://).

Three retryd processes on one database, against one scriptable upstream:
requests stored through any replica are delivered once, by one of them; a
replica killed with SIGKILL while it holds claimed rows loses none of them
(another one retries them once its --claim-lease ran out); a rolling
restart of every replica under load loses nothing acknowledged; and a
PostgreSQL restart under load gets clients 503s while it is down, never a
202 that is then lost. Every delivery the upstream saw is counted per
request: a duplicate is only allowed where at-least-once allows it (the
upstream answered a replica that died before it could record the answer).

The cluster is this test's own (started and stopped here): the restart
test stops and starts it."""

import collections
import os
import sys
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))

from fake_upstream import Response  # noqa: E402
from harness import RetrydTestCase, control_get, send_request  # noqa: E402
from pg_cluster import OwnClusterMixin, query  # noqa: E402

LEASE = "2s"
INTERVAL = "500ms"


def tag_of(req):
    return req.header("x-tag")


class Counting:
    """An upstream handler: 503 while failing is set, else 200 after delay
    seconds; counts the 200s it sent per X-Tag."""

    def __init__(self):
        self.lock = threading.Lock()
        self.failing = True
        self.delay = 0.0
        self.delivered = collections.Counter()

    def __call__(self, req):
        with self.lock:
            failing, delay = self.failing, self.delay
        if failing:
            return Response(503, body=b"busy")
        if delay:
            time.sleep(delay)
        with self.lock:
            self.delivered[tag_of(req)] += 1
        return Response(200, body=b"done " + (tag_of(req) or "").encode())

    def set(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)


class PgReplicasTest(OwnClusterMixin, RetrydTestCase):

    def replica(self, up, dsn, *args):
        return self.start_retryd(up, "--retry-interval", INTERVAL, "--claim-lease", LEASE,
                                 *args, db=dsn)

    def send_all(self, replicas, n, prefix):
        """n POSTs spread over the replicas, 32 at a time; returns the
        status of each by tag."""
        def one(i):
            rd = replicas[i % len(replicas)]
            tag = "%s-%d" % (prefix, i)
            r = send_request(rd.port, "POST", "/api/v1/bot/",
                             [("X-Tag", tag), ("Content-Type", "application/json")],
                             b'{"n":%d}' % i, timeout=30)
            return tag, r.status
        with ThreadPoolExecutor(32) as pool:
            return dict(pool.map(one, range(n)))

    def queue_of(self, rd):
        """The shared queue's counts, or None while the replica cannot read
        them (its connection is coming back after a database restart)."""
        r = control_get(rd.port, "/_retryd/stats")
        return r.json()["queue"] if r.status == 200 else None

    def wait_completed(self, rd, n, timeout):
        deadline = time.monotonic() + timeout
        q = None
        while time.monotonic() < deadline:
            q = self.queue_of(rd)
            if q is not None and q["completed"] >= n:
                return q
            time.sleep(0.2)
        self.fail("completed %r of %d within %ds" % (q, n, timeout))

    def test_three_replicas_share_one_queue_and_deliver_each_request_once(self):
        up = self.start_upstream()
        h = Counting()
        up.handler = h
        dsn = self.fresh_db("replicas")
        replicas = [self.replica(up, dsn) for _ in range(3)]
        # The password of --db is not left readable in ps.
        password = dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        with open("/proc/%d/cmdline" % replicas[0].proc.pid, "rb") as f:
            self.assertNotIn(password.encode(), f.read())
        statuses = self.send_all(replicas, 1000, "share")
        self.assertEqual(collections.Counter(statuses.values()), {202: 1000})
        # Every replica sees the whole shared queue.
        for rd in replicas:
            q = self.queue_of(rd)
            self.assertEqual(q["queued"] + q["inflight"], 1000, q)
        h.set(failing=False)
        q = self.wait_completed(replicas[0], 1000, 120)
        self.assertEqual((q["queued"], q["inflight"]), (0, 0), q)
        self.assertEqual(set(h.delivered), set(statuses))
        dup = {t: n for t, n in h.delivered.items() if n != 1}
        self.assertEqual(dup, {}, "delivered more than once without any crash")

    def test_a_killed_replicas_claims_are_retried_by_another_after_the_lease(self):
        up = self.start_upstream()
        h = Counting()
        up.handler = h
        dsn = self.fresh_db("replicas")
        a = self.replica(up, dsn, "--retry-concurrency", "8")
        statuses = self.send_all([a], 40, "kill")
        self.assertEqual(collections.Counter(statuses.values()), {202: 40})
        # A claims up to 8 rows and sits in their slow attempts: kill it there.
        h.set(failing=False, delay=3.0)
        deadline = time.monotonic() + 10
        while self.queue_of(a)["inflight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = self.queue_of(a)["inflight"]
        self.assertGreater(held, 0)
        a.stopped = True  # killed on purpose
        a.kill()
        h.set(delay=0.0)
        b = self.replica(up, dsn)
        c = self.replica(up, dsn)
        q = self.wait_completed(b, 40, 60)
        self.assertEqual((q["queued"], q["inflight"]), (0, 0), q)
        self.assertEqual(self.queue_of(c)["completed"], 40)
        self.assertEqual(set(h.delivered), set(statuses), "a claimed request was lost")
        dup = {t: n for t, n in h.delivered.items() if n != 1}
        # A duplicate is only one A had claimed: the upstream may have
        # answered it while A was being killed.
        self.assertLessEqual(len(dup), held, dup)
        self.assertTrue(all(n == 2 for n in dup.values()), dup)

    def test_an_idle_replica_retries_what_a_dead_one_stored(self):
        """Rows queued (not claimed) by a replica that then died: an idle
        replica that was told nothing of them finds them by polling."""
        up = self.start_upstream()
        h = Counting()
        up.handler = h
        dsn = self.fresh_db("replicas")
        idle = self.replica(up, dsn, "--retry-interval", "1s")
        time.sleep(0.5)  # its start-up claim found nothing: no due time known
        a = self.replica(up, dsn, "--retry-interval", "1h")
        statuses = self.send_all([a], 20, "orphan")
        self.assertEqual(collections.Counter(statuses.values()), {202: 20})
        a.stopped = True  # killed on purpose, before any retry of its own
        a.kill()
        h.set(failing=False)
        # The rows are due in an hour; make them due now in the database
        # itself (as a retry-now through another replica would), so that
        # the idle replica is told nothing: only its polling can find them.
        # Due now, as a retry-now writes it (Unix ms; 0 means "none due").
        query(dsn, "UPDATE retryd_requests SET next_attempt_at = %d WHERE state = 0"
              % int(time.time() * 1000))
        q = self.wait_completed(idle, 20, 20)
        self.assertEqual((q["queued"], q["inflight"]), (0, 0), q)
        self.assertEqual(set(h.delivered), set(statuses))

    def test_the_control_api_and_idempotency_keys_act_on_the_shared_rows(self):
        """What a client or an operator does through any replica acts on the
        one shared row: a repeat with the same Idempotency-Key on another
        replica gets the same 202 and is not forwarded; the row is listed,
        shown, cancelled and retried through any replica."""
        up = self.start_upstream()
        h = Counting()
        up.handler = h
        dsn = self.fresh_db("replicas")
        a = self.replica(up, dsn, "--retry-interval", "1h")
        b = self.replica(up, dsn, "--retry-interval", "1h")
        key = [("Idempotency-Key", "shared-key"), ("X-Tag", "idem")]
        r1 = send_request(a.port, "POST", "/api/v1/bot/", key, b"{}")
        self.assertEqual(r1.status, 202, r1)
        rid = r1.json()["id"]
        sent = up.count()
        r2 = send_request(b.port, "POST", "/api/v1/bot/", key, b"{}")
        self.assertEqual(r2.status, 202, r2)
        self.assertEqual(r2.json()["id"], rid, "the repeat on another replica got another id")
        self.assertEqual(up.count(), sent, "the repeat was forwarded upstream")

        listed = control_get(b.port, "/_retryd/requests?state=queued").json()["requests"]
        self.assertEqual([i["id"] for i in listed], [rid])
        self.assertEqual(control_get(b.port, "/_retryd/requests/%s" % rid).json()["state"],
                         "queued")
        # cancel through B, then retry the other row through B and see A's
        # figures change
        r3 = send_request(a.port, "POST", "/api/v1/bot/", [("X-Tag", "other")], b"{}")
        other = r3.json()["id"]
        c = send_request(b.port, "DELETE", "/_retryd/requests/%s" % rid)
        self.assertEqual(c.status, 200, c)
        self.assertEqual(control_get(a.port, "/_retryd/requests/%s" % rid).json()["state"],
                         "cancelled")
        h.set(failing=False)
        r = send_request(b.port, "POST", "/_retryd/requests/%s/retry" % other)
        self.assertEqual(r.status, 200, r)
        deadline = time.monotonic() + 10
        state = None
        while time.monotonic() < deadline and state != "completed":
            state = control_get(a.port, "/_retryd/requests/%s" % other).json()["state"]
            time.sleep(0.1)
        self.assertEqual(state, "completed")
        self.assertEqual(h.delivered["other"], 1)
        self.assertEqual(h.delivered["idem"], 0, "a cancelled request was delivered")

    def start_load(self, ports, prefix, workers=8):
        """POSTs in a loop over ports (a list the test may change) until
        stop() is called; returns (accepted tags, refused Counter, stop)."""
        accepted, refused, halt = [], collections.Counter(), threading.Event()

        def load(k):
            i = 0
            while not halt.is_set():
                tag = "%s-%d-%d" % (prefix, k, i)
                port = ports[(k + i) % len(ports)]
                i += 1
                try:
                    r = send_request(port, "POST", "/api/v1/bot/", [("X-Tag", tag)], b"{}",
                                     timeout=30)
                except OSError:  # a replica restarting: nothing was acknowledged
                    refused["connect"] += 1
                    time.sleep(0.01)
                    continue
                if r.status == 202:
                    accepted.append(tag)
                else:
                    refused[r.status] += 1
        threads = [threading.Thread(target=load, args=(k,)) for k in range(workers)]
        for t in threads:
            t.start()

        def stop():
            halt.set()
            for t in threads:
                t.join(60)
        return accepted, refused, stop

    def assertAllDelivered(self, h, rd, accepted):
        h.set(failing=False)
        q = self.wait_completed(rd, len(accepted), 120)
        missing = set(accepted) - set(h.delivered)
        self.assertEqual(missing, set(), "acknowledged with 202, never delivered")
        self.assertEqual(q["queued"] + q["inflight"], 0, q)

    def test_a_postgres_restart_under_load_loses_nothing_acknowledged(self):
        up = self.start_upstream()
        h = Counting()
        up.handler = h
        dsn = self.fresh_db("replicas")
        replicas = [self.replica(up, dsn) for _ in range(2)]
        accepted, refused, stop = self.start_load([rd.port for rd in replicas], "restart")
        time.sleep(1.0)
        self.pg.stop()
        time.sleep(2.0)
        down = control_get(replicas[0].port, "/_retryd/health").status
        self.pg.start()
        time.sleep(4.0)  # reconnect backoff: 1 s, then 2 s
        stop()
        self.assertEqual(down, 503, "health while PostgreSQL was down")
        self.assertGreater(refused[503], 0, "no 503 while PostgreSQL was down")
        self.assertEqual(set(refused) - {503}, set(), refused)
        self.assertGreater(len(accepted), 50)
        self.assertAllDelivered(h, replicas[1], accepted)

    def test_a_rolling_restart_of_every_replica_under_load_loses_nothing(self):
        up = self.start_upstream()
        h = Counting()
        up.handler = h
        dsn = self.fresh_db("replicas")
        replicas = [self.replica(up, dsn) for _ in range(3)]
        ports = [rd.port for rd in replicas]
        accepted, refused, stop = self.start_load(ports, "rolling")
        for i in range(3):
            time.sleep(0.7)
            self.assertEqual(replicas[i].stop(), 0)
            replicas[i] = self.replica(up, dsn)
            ports[i] = replicas[i].port
        time.sleep(0.7)
        stop()
        self.assertEqual(set(refused) - {"connect"}, set(), refused)
        self.assertGreater(len(accepted), 50)
        self.assertAllDelivered(h, replicas[0], accepted)

if __name__ == "__main__":
    unittest.main()
