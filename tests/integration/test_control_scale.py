"""The control API on a big queue. Up to 100,000 requests are stored the way
a client stores them -- POSTs through retryd to an upstream answering 507,
over many keep-alive, pipelined connections (load generator and upstream in
processes of their own: control_helpers.py) -- for at most LOAD_BUDGET_S
seconds; the number that fit is printed. Then the whole queue is paged
through (every request exactly once), and the median latency of 50
GET /_retryd/stats, 50 first listing pages (limit=50, state=queued) and 50
pages deep in the cursor chain is compared with an empty queue's: each must
stay under 50 ms.

Prints a line starting with "SCALE:" with the figures."""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import unittest

from harness import RawConn, RetrydTestCase, build_request
from control_helpers import ctl_json, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
HELPERS = os.path.join(HERE, "control_helpers.py")

TARGET = 100000
LOAD_BUDGET_S = 40.0
MIN_STORED = 20000        # below this the comparison says little: fail
CONNECTIONS = 384
DEPTH = 4
SAMPLES = 50
MEDIAN_LIMIT_MS = 50.0


def median_ms(port, path, n=SAMPLES):
    """Median wall time of n GETs of path, each on a keep-alive connection
    (one connection for all, so connect time is not measured)."""
    times = []
    with RawConn(port, timeout=30) as c:
        for _ in range(n):
            t = time.perf_counter()
            c.send(build_request("GET", path))
            r = c.read_response()
            times.append((time.perf_counter() - t) * 1000)
            if r.status != 200:
                raise AssertionError("GET %s: %r" % (path, r))
    return statistics.median(times)


class ScaleTest(RetrydTestCase):

    def start_load_upstream(self):
        tmp = tempfile.mkdtemp(prefix="retryd-scale-")
        portfile = os.path.join(tmp, "port")
        p = subprocess.Popen([sys.executable, HELPERS, "upstream", "507", portfile],
                             stdin=subprocess.DEVNULL)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.addCleanup(stop)
        wait_until(lambda: os.path.exists(portfile) or p.poll() is not None, timeout=10)
        self.assertIsNone(p.poll(), "load upstream exited")
        with open(portfile) as f:
            return "http://127.0.0.1:%s" % f.read().strip()

    def test_big_queue_control_latency(self):
        upstream = self.start_load_upstream()
        big = self.start_retryd(upstream, "--retry-interval", "1h")

        t0 = time.monotonic()
        p = subprocess.run([sys.executable, HELPERS, "client", str(big.port), str(TARGET),
                            str(CONNECTIONS), str(DEPTH), str(LOAD_BUDGET_S)],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=LOAD_BUDGET_S + 60)
        load_s = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr.decode("utf-8", "replace")[-3000:])
        res = json.loads(p.stdout.decode("utf-8").strip().splitlines()[-1])
        stored = res["by_status"].get("202", 0)
        self.assertEqual(res["errors"], [], res)
        self.assertEqual(res["by_status"], {"202": res["sent"]}, res)
        print("\nSCALE: stored %d of %d requests in %.1f s (%.0f/s) over %d connections"
              % (stored, TARGET, load_s, stored / load_s, CONNECTIONS), file=sys.stderr)
        self.assertGreaterEqual(stored, MIN_STORED, "storing is far too slow: %r" % res)

        stats = ctl_json(big.port, "/_retryd/stats")
        self.assertEqual(stats["queue"]["queued"], stored, stats)
        self.assertEqual(stats["totals"]["stored"], stored, stats)

        # every stored request exactly once, oldest first, through the cursor chain
        t1 = time.monotonic()
        seen = set()
        last_id = ""
        cursor = None
        cursors = []
        while True:
            path = "/_retryd/requests?state=queued&limit=1000"
            if cursor is not None:
                path += "&cursor=" + cursor
            page = ctl_json(big.port, path, timeout=30)
            for row in page["requests"]:
                self.assertNotIn(row["id"], seen)
                self.assertGreater(row["id"], last_id)
                last_id = row["id"]
                seen.add(row["id"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            cursors.append(cursor)
        walk_s = time.monotonic() - t1
        self.assertEqual(len(seen), stored)
        deep = cursors[len(cursors) * 3 // 4]  # three quarters down the chain

        paths = {"stats": "/_retryd/stats",
                 "first page": "/_retryd/requests?state=queued&limit=50",
                 "deep page": "/_retryd/requests?state=queued&limit=50&cursor=" + deep}
        page = ctl_json(big.port, paths["deep page"])
        self.assertEqual(len(page["requests"]), 50)
        big_ms = {k: median_ms(big.port, v) for k, v in paths.items()}

        empty = self.start_retryd(upstream, "--retry-interval", "1h")
        self.assertEqual(ctl_json(empty.port, "/_retryd/stats")["queue"]["queued"], 0)
        empty_ms = {k: median_ms(empty.port, v) for k, v in paths.items()}

        print("SCALE: paged through all %d in %.1f s (limit=1000)" % (stored, walk_s),
              file=sys.stderr)
        for k in paths:
            print("SCALE: median %-10s  %6.2f ms with %d queued, %6.2f ms empty"
                  % (k, big_ms[k], stored, empty_ms[k]), file=sys.stderr)
        for k in paths:
            with self.subTest(endpoint=k):
                self.assertLess(big_ms[k], MEDIAN_LIMIT_MS, big_ms)
                self.assertLess(empty_ms[k], MEDIAN_LIMIT_MS, empty_ms)


if __name__ == "__main__":
    unittest.main()
