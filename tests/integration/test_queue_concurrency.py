"""1,000 concurrent requests against an upstream answering 507 all get a 202
with distinct ids; once the upstream recovers, every one is delivered (the
upstream sees each request's marker) and every id reaches `completed`."""

import concurrent.futures
import http.client
import json
import threading
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, UUID7_RE, control_get

N = 1000
WORKERS = 50
DEADLINE_S = 55.0


class QueueConcurrencyTest(RetrydTestCase):

    def test_thousand_concurrent_requests_stored_and_delivered(self):
        t_start = time.monotonic()
        up = self.start_upstream()
        recovered = threading.Event()
        lock = threading.Lock()
        delivered = {}   # marker -> times the upstream answered 201 for it

        def handler(req):
            if not recovered.is_set():
                return Response(507, body=b'{"code":"pool_empty"}')
            m = req.header("x-marker")
            with lock:
                delivered[m] = delivered.get(m, 0) + 1
            return Response(201, headers=[("X-Marker-Echo", m or "")], body=b"created")

        up.handler = handler
        rd = self.start_retryd(up, "--retry-interval", "500ms", "--retry-concurrency", "64")

        def worker(w):
            out = []
            conn = http.client.HTTPConnection("127.0.0.1", rd.port, timeout=20)
            try:
                for i in range(w, N, WORKERS):
                    marker = "m-%04d" % i
                    body = json.dumps({"marker": marker}).encode()
                    for attempt in range(2):
                        try:
                            conn.request("POST", "/v1/bot/?i=%d" % i, body=body,
                                         headers={"X-Marker": marker,
                                                  "Content-Type": "application/json"})
                            r = conn.getresponse()
                            data = r.read()
                            out.append((marker, r.status, r.getheader("Location"), data))
                            break
                        except (http.client.RemoteDisconnected, ConnectionResetError,
                                BrokenPipeError):
                            # the server closed an idle keep-alive connection
                            # before it read this request: nothing was sent
                            conn.close()
                            conn = http.client.HTTPConnection("127.0.0.1", rd.port, timeout=20)
                            if attempt == 1:
                                raise
            finally:
                conn.close()
            return out

        with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
            results = [x for part in ex.map(worker, range(WORKERS)) for x in part]
        t_stored = time.monotonic()

        self.assertEqual(len(results), N)
        bad = [(m, s, d[:200]) for m, s, _, d in results if s != 202]
        self.assertEqual(bad, [], "%d of %d requests did not get 202" % (len(bad), N))
        ids = {}
        for marker, _, loc, data in results:
            obj = json.loads(data)
            self.assertRegex(obj["id"], UUID7_RE)
            self.assertEqual(loc, "/_retryd/requests/%s" % obj["id"])
            ids[obj["id"]] = marker
        self.assertEqual(len(ids), N, "ids are not distinct")

        recovered.set()
        deadline = t_start + DEADLINE_S
        markers = set(ids.values())
        while True:
            with lock:
                missing = markers - set(delivered)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(len(missing), 0, "%d requests never delivered, e.g. %r"
                         % (len(missing), sorted(missing)[:10]))
        t_delivered = time.monotonic()

        # every id reaches completed (the commit may trail the upstream's answer)
        pending = list(ids)
        while pending and time.monotonic() < deadline:
            def state(rid):
                r = control_get(rd.port, "/_retryd/requests/%s" % rid)
                return rid, r.status, (r.json().get("state") if r.status == 200 else r.body)
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                states = list(ex.map(state, pending))
            pending = [rid for rid, _, st in states if st != "completed"]
            if pending:
                time.sleep(0.2)
        self.assertEqual(pending, [], "%d ids not completed, e.g. %r"
                         % (len(pending), [s for s in states if s[0] in pending][:5]))
        dups = sum(1 for v in delivered.values() if v > 1)
        print("\n%d requests: stored in %.1fs, delivered in %.1fs, completed after %.1fs; "
              "%d delivered more than once"
              % (N, t_stored - t_start, t_delivered - t_stored,
                 time.monotonic() - t_start, dups))
        self.assertLess(time.monotonic() - t_start, 60)


if __name__ == "__main__":
    unittest.main()
