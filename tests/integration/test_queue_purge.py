"""Retention: completed requests with big answers are purged once
--keep-completed has passed, in slices, and the database file gives the
space back (it tracks its live data instead of keeping its high-water mark).

Not timed: bench/purge.py measures what purges cost the requests around
them. Here: every expired row is gone, the purge says it went in slices,
rows not yet expired are kept with their answers intact (both backends);
and on SQLite the purge gave pages back and the file shrank to a fraction
of what the answers took (PostgreSQL's autovacuum reuses the space: no file
of retryd's to measure)."""

import os
import time
import unittest

from fake_upstream import Response
from harness import STORAGE, RetrydTestCase, control_get, send_request, wait_stored_state

ANSWER = 256 * 1024
N = 24


class PurgeTest(RetrydTestCase):

    def file_size(self, rd):
        return sum(os.path.getsize(p) for p in (rd.db, rd.db + "-wal") if os.path.exists(p))

    def purge_scenario(self, at_peak=None):
        """N requests complete with big answers, one more 1.5 s later; waits
        until the N expired ones are purged (the late one is not expired
        yet). at_peak(rd) runs once all N answers are stored. Returns (rd,
        ids, late id, the purge's log lines)."""
        up = self.start_upstream()
        seen = set()
        big = bytes((i * 31 + 7) & 0xFF for i in range(ANSWER))

        def handler(req):
            if req.target not in seen:  # first attempt: stored
                seen.add(req.target)
                return Response(507)
            return Response(200, body=big if req.target.startswith("/big/") else b"small")

        up.handler = handler
        rd = self.start_retryd(up, "--retry-interval", "200ms", "--keep-completed", "3s")
        ids = []
        for i in range(N):
            r = send_request(rd.port, "POST", "/big/%d" % i, [], b"{}")
            self.assertEqual(r.status, 202, r)
            ids.append(r.json()["id"])
        for rid in ids:
            wait_stored_state(rd.port, rid, "completed", timeout=15)
        r = control_get(rd.port, "/_retryd/requests/%s/response" % ids[0])
        self.assertEqual((r.status, len(r.body)), (200, ANSWER))
        if at_peak is not None:
            at_peak(rd)

        # A row that completes later is not expired when the big ones are.
        time.sleep(1.5)
        r = send_request(rd.port, "POST", "/small/late", [], b"{}")
        self.assertEqual(r.status, 202, r)
        late = r.json()["id"]
        wait_stored_state(rd.port, late, "completed", timeout=10)

        deadline = time.monotonic() + 20
        purged = 0
        lines = []
        while purged < N:
            lines = [o for o in rd.log_json(strict=False)
                     if o.get("msg") == "purged finished requests"]
            purged = sum(o.get("count", 0) for o in lines)
            self.assertLess(time.monotonic(), deadline,
                            "only %d of %d expired rows purged: %r" % (purged, N, lines))
            time.sleep(0.1)
        self.assertEqual(purged, N, lines)
        return rd, ids, late, lines

    def test_expired_big_answers_are_purged_in_slices_and_the_rest_kept(self):
        rd, ids, late, lines = self.purge_scenario()
        for o in lines:
            self.assertIn("slices", o, o)
            self.assertGreaterEqual(o["slices"], 1, o)
        for rid in ids:
            r = control_get(rd.port, "/_retryd/requests/%s" % rid)
            self.assertEqual(r.status, 404, r)
        self.assertEqual(control_get(rd.port, "/_retryd/requests/%s" % late).status, 200)
        r = control_get(rd.port, "/_retryd/requests/%s/response" % late)
        self.assertEqual((r.status, r.body), (200, b"small"))
        stats = control_get(rd.port, "/_retryd/stats").json()
        self.assertEqual(stats["queue"]["completed"], 1, stats)

    @unittest.skipIf(STORAGE == "postgres", "SQLite-only: the queue file's size after a purge "
                     "and the pages it gives back")
    def test_the_file_shrinks_after_the_purge(self):
        peak = []
        rd, _, _, lines = self.purge_scenario(lambda rd: peak.append(self.file_size(rd)))
        peak = peak[0]
        self.assertGreater(peak, N * ANSWER, "the answers are in the file")
        # The file gave the answers' pages back (the WAL was truncated too).
        size = self.file_size(rd)
        print("\nfile: %.1f MiB with %d answers of %d KiB, %.2f MiB after the purge (%r)"
              % (peak / 2**20, N, ANSWER // 1024, size / 2**20,
                 [{k: o.get(k) for k in ("count", "slices", "pages_given_back")}
                  for o in lines]))
        self.assertLess(size, peak // 8, "the file kept its high-water mark: %d of %d bytes"
                        % (size, peak))
        for o in lines:
            self.assertIn("pages_given_back", o, o)
        self.assertGreater(sum(o["pages_given_back"] for o in lines), N * ANSWER // 4096 // 2,
                           lines)

if __name__ == "__main__":
    unittest.main()
