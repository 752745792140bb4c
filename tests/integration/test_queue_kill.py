"""Durability: every request that got a 202 is delivered, even when retryd is
SIGKILLed while clients are mid-flight and its scheduler has rows in flight.

Each cycle starts retryd on the same db with an upstream answering 507 (and
a short --retry-interval, so stored rows are being retried, i.e. `inflight`,
when the kill lands); client threads send POSTs with a unique marker and
record every 202; after a random 0.05-0.5 s retryd gets SIGKILL. After
RETRYD_KILL_CYCLES cycles (default 20) the upstream answers 200 and a last
retryd must deliver every acknowledged marker (duplicates are reported, not
failed: at-least-once).

Also: SIGTERM exits 0 and what was stored is delivered after a restart.

Runs on both backends (tests/CMakeLists.txt). On PostgreSQL a killed
retryd's inflight rows are not queued again at the next start but once its
claims' lease ran out: the SIGKILL cycles run with a short --claim-lease."""

import os
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest

from fake_upstream import Response
from harness import (STORAGE, ConnectionClosed, RawConn, Retryd, RetrydTestCase,
                     build_request, retire, send_request, wait_stored_state)

CYCLES = int(os.environ.get("RETRYD_KILL_CYCLES") or 20)
CLIENTS = 8
FINAL_DEADLINE_S = 40.0
# PostgreSQL: how long the claims of a killed retryd hold (retryd's default
# is 30 s), so that the rows it held go back to the queue within the test.
KILLED_LEASE = ("--claim-lease", "1s") if STORAGE == "postgres" else ()


class KillTest(RetrydTestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="retryd-kill-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db = self.fresh_db(self.tmp)  # one queue for every retryd of the test
        self.recovered = 0  # rows put back from inflight at start-up (from the logs)

    def new_retryd(self, up, *args):
        rd = Retryd(up.url, args=args, tmpdir=self.tmp, db=self.db)
        self.addCleanup(rd.kill)
        rd.start(timeout=15)
        for obj in rd.log_json(strict=False):
            if "inflight" in str(obj.get("msg")) and isinstance(obj.get("count"), int):
                self.recovered += obj["count"]
        return rd

    def test_sigkill_cycles_lose_no_acknowledged_request(self):
        t_start = time.monotonic()
        up = self.start_upstream()
        deliver = threading.Event()
        lock = threading.Lock()
        delivered = {}  # marker -> count of 200 answers given for it

        def handler(req):
            if not deliver.is_set():
                return Response(507, body=b"pool empty")
            m = req.header("x-marker")
            with lock:
                delivered[m] = delivered.get(m, 0) + 1
            return Response(200, body=b"ok")

        up.handler = handler
        acked = {}      # marker -> id
        acked_lock = threading.Lock()
        seq = [0]
        rng = random.Random(int(os.environ.get("RETRYD_KILL_SEED") or time.time()))
        sent_total = 0
        crashed_on_own = []

        for cycle in range(CYCLES):
            rd = self.new_retryd(up, "--retry-interval", "200ms", "--retry-concurrency", "16",
                                 *KILLED_LEASE)
            stop = threading.Event()

            def client():
                while not stop.is_set():
                    with acked_lock:
                        seq[0] += 1
                        marker = "c%02d-%06d" % (cycle, seq[0])
                    req = build_request("POST", "/v1/bot/?m=%s" % marker,
                                        [("X-Marker", marker),
                                         ("Content-Type", "application/json")],
                                        ('{"marker":"%s"}' % marker).encode())
                    try:
                        with RawConn(rd.port, timeout=5) as c:
                            c.send(req)
                            r = c.read_response(method="POST")
                    except (ConnectionClosed, OSError, AssertionError, ValueError):
                        continue  # killed mid-flight: not acknowledged
                    if r.status == 202:
                        with acked_lock:
                            acked[marker] = r.json()["id"]

            threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, 0.5))
            if rd.proc.poll() is not None:
                crashed_on_own.append((cycle, rd.proc.returncode, rd.stderr_text()[-2000:]))
            rd.proc.send_signal(signal.SIGKILL)
            rd.proc.wait(5)
            stop.set()
            for t in threads:
                t.join(10)
            rd.kill()
            sent_total = seq[0]
        self.assertEqual(crashed_on_own, [], "retryd died before it was killed")

        with acked_lock:
            expected = dict(acked)
        self.assertGreater(len(expected), CYCLES, "too few acknowledged requests to mean anything")

        deliver.set()
        rd = self.new_retryd(up, "--retry-interval", "200ms", "--retry-concurrency", "64",
                             *KILLED_LEASE)
        deadline = time.monotonic() + FINAL_DEADLINE_S
        while True:
            with lock:
                missing = set(expected) - set(delivered)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        with lock:
            dups = sum(v - 1 for m, v in delivered.items() if m in expected and v > 1)
            unacked_delivered = len(set(delivered) - set(expected))
        print("\n%d cycles, %d requests sent, %d acknowledged (202), %d delivered again "
              "as duplicates, %d unacknowledged also delivered, %d inflight rows recovered "
              "at start-up, %.1fs"
              % (CYCLES, sent_total, len(expected), dups, unacked_delivered, self.recovered,
                 time.monotonic() - t_start))
        self.assertEqual(len(missing), 0,
                         "%d of %d acknowledged requests were lost, e.g. %r"
                         % (len(missing), len(expected),
                            [(m, expected[m]) for m in sorted(missing)[:10]]))
        # and the queue says so
        for m in list(expected)[:50]:
            wait_stored_state(rd.port, expected[m], "completed", timeout=10)
        retire(rd)

    def test_sigterm_exits_0_and_stored_requests_delivered_after_restart(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.new_retryd(up, "--retry-interval", "1s")
        ids = []
        for i in range(5):
            r = send_request(rd.port, "POST", "/term/%d" % i, [("X-Marker", "t%d" % i)], b"{}")
            self.assertEqual(r.status, 202, r)
            ids.append(r.json()["id"])
        rc = rd.stop(signal.SIGTERM, timeout=10)
        self.assertEqual(rc, 0, "SIGTERM exit status %r; stderr:\n%s"
                         % (rc, rd.stderr_text()[-2000:]))
        n_before = up.count()
        up.default = Response(200, body=b"done")
        rd2 = self.new_retryd(up, "--retry-interval", "1s")
        for rid in ids:
            wait_stored_state(rd2.port, rid, "completed", timeout=10)
        got = {q.target for q in up.requests[n_before:] if q.header("x-marker")}
        self.assertEqual(got, {"/term/%d" % i for i in range(5)})
        retire(rd2)

    def test_sigterm_during_an_attempt_exits_0_without_duplicate(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200, delay=2, body=b"slow but final"))
        rd = self.new_retryd(up, "--retry-interval", "300ms")
        r = send_request(rd.port, "POST", "/term/inflight", [("X-Marker", "ti")], b"{}")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        up.wait_for_requests(2, timeout=5)
        rc = rd.stop(signal.SIGTERM, timeout=15)
        self.assertEqual(rc, 0, "SIGTERM exit status %r; stderr:\n%s"
                         % (rc, rd.stderr_text()[-2000:]))
        up.default = Response(200, body=b"again")
        rd2 = self.new_retryd(up, "--retry-interval", "300ms")
        wait_stored_state(rd2.port, rid, ("completed",), timeout=10)
        time.sleep(1.0)
        # a clean stop is no crash: no second delivery
        self.assertEqual(up.count(), 2, up.requests)
        retire(rd2)


if __name__ == "__main__":
    unittest.main()
