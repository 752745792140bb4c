"""Long-poll: Prefer: wait=N on GET /_retryd/requests/<id> and on its
/response. While the stored request is unfinished (queued or inflight) the
client is held up to N seconds (capped by --max-wait) until it ends, then
answered as a plain GET would be at that moment: the status JSON, or the
stored answer verbatim (409 not_completed while there is none). Already
final, or when the time runs out: answered at once with what is there. Every
such answer says Preference-Applied: wait=N. An outcome that leaves the
request retryable keeps the client held; a cancel ends the hold at once; a
client that goes away releases its hold (nothing breaks when the request
ends later); SIGTERM answers held clients and exits promptly.

Runs on both backends (tests/CMakeLists.txt)."""

import threading
import time
import unittest

from fake_upstream import Response
from harness import RawConn, RetrydTestCase, build_request, control_get, send_request


def wait_get(port, path, wait, timeout=30.0, method="GET"):
    """GET path with Prefer: wait; returns (answer, seconds it took)."""
    t0 = time.monotonic()
    r = send_request(port, method, path, [("Prefer", "wait=%d" % wait)], timeout=timeout)
    return r, time.monotonic() - t0


class Held:
    """A long-poll on a thread of its own: start(), then join() for
    (answer, seconds it took)."""

    def __init__(self, port, path, wait):
        self.port, self.path, self.wait = port, path, wait
        self.out = {}
        self.t = threading.Thread(target=self._run)

    def _run(self):
        try:
            self.out["r"], self.out["took"] = wait_get(self.port, self.path, self.wait,
                                                       timeout=self.wait + 20)
        except Exception as e:  # reported by join()
            self.out["error"] = e

    def start(self):
        self.t.start()
        time.sleep(0.3)  # held by now
        return self

    def join(self):
        self.t.join(self.wait + 30)
        if "error" in self.out:
            raise self.out["error"]
        return self.out["r"], self.out["took"]


class LongPollTest(RetrydTestCase):

    def store(self, rd, path="/api/v1/bot/"):
        r = send_request(rd.port, "POST", path, [("Content-Type", "application/json")], b"{}")
        self.assertEqual(r.status, 202, r)
        return r.json()["id"]

    def retry_now(self, rd, rid):
        r = send_request(rd.port, "POST", "/_retryd/requests/%s/retry" % rid)
        self.assertEqual(r.status, 200, r)

    def test_status_completes_during_the_wait(self):
        up = self.start_upstream()
        up.push(Response(507), Response(507), Response(201, body=b'{"bot":"b1"}'))
        rd = self.start_retryd(up, "--retry-interval", "400ms")
        rid = self.store(rd)
        # the second attempt is retryable again: still held, until the third
        r, took = wait_get(rd.port, "/_retryd/requests/%s" % rid, 10)
        self.assertEqual(r.status, 200, r)
        obj = r.json()
        self.assertEqual((obj["state"], obj["attempts"], obj["response_status"]),
                         ("completed", 3, 201), obj)
        self.assertEqual(r.header("preference-applied"), "wait=10", r)
        self.assertGreaterEqual(took, 0.6, "answered before the request ended")
        self.assertLess(took, 5.0, "held past the request's end")

    def test_response_completes_during_the_wait(self):
        up = self.start_upstream()
        final = [("Content-Type", "application/json"), ("X-Final", "waited")]
        up.push(Response(507), Response(201, headers=final, body=b'{"bot":"b2"}'))
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd)
        held = Held(rd.port, "/_retryd/requests/%s/response" % rid, 10).start()
        self.retry_now(rd, rid)
        r, took = held.join()
        self.assertEqual((r.status, r.body), (201, b'{"bot":"b2"}'), r)
        self.assertEqual(r.header("x-final"), "waited", r)
        self.assertEqual(r.header("preference-applied"), "wait=10", r)
        self.assertLess(took, 5.0)

    def test_time_runs_out_with_the_current_state(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd)
        r, took = wait_get(rd.port, "/_retryd/requests/%s" % rid, 1)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["state"], "queued", r.json())
        self.assertEqual(r.header("preference-applied"), "wait=1", r)
        self.assertGreaterEqual(took, 0.9, "answered before the wait ran out")
        self.assertLess(took, 3.0)
        r, took = wait_get(rd.port, "/_retryd/requests/%s/response" % rid, 1)
        self.assertJsonError(r, 409, "not_completed")
        self.assertEqual(r.header("preference-applied"), "wait=1", r)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3.0)

    def test_already_final_is_answered_at_once(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200, body=b"done"))
        rd = self.start_retryd(up, "--retry-interval", "200ms")
        rid = self.store(rd)
        deadline = time.monotonic() + 10
        while control_get(rd.port, "/_retryd/requests/%s" % rid).json()["state"] != "completed":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        r, took = wait_get(rd.port, "/_retryd/requests/%s" % rid, 10)
        self.assertEqual((r.status, r.json()["state"]), (200, "completed"), r)
        self.assertEqual(r.header("preference-applied"), "wait=10", r)
        self.assertLess(took, 1.0)
        r, took = wait_get(rd.port, "/_retryd/requests/%s/response" % rid, 10)
        self.assertEqual((r.status, r.body), (200, b"done"), r)
        self.assertEqual(r.header("preference-applied"), "wait=10", r)
        self.assertLess(took, 1.0)

    def test_dead_during_the_wait(self):
        up = self.start_upstream()
        up.default = Response(503)
        rd = self.start_retryd(up, "--retry-interval", "300ms", "--max-attempts", "3")
        rid = self.store(rd)
        held = Held(rd.port, "/_retryd/requests/%s/response" % rid, 10).start()
        r, took = wait_get(rd.port, "/_retryd/requests/%s" % rid, 10)
        self.assertEqual((r.status, r.json()["state"]), (200, "dead"), r)
        self.assertLess(took, 5.0)
        r, took = held.join()
        self.assertJsonError(r, 409, "not_completed")
        self.assertEqual(r.header("preference-applied"), "wait=10", r)
        self.assertLess(took, 5.0)

    def test_cancel_ends_the_wait_at_once(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd)
        held = Held(rd.port, "/_retryd/requests/%s" % rid, 20).start()
        c = send_request(rd.port, "DELETE", "/_retryd/requests/%s" % rid)
        self.assertEqual(c.status, 200, c)
        r, took = held.join()
        self.assertEqual((r.status, r.json()["state"]), (200, "cancelled"), r)
        self.assertLess(took, 5.0, "held until the wait ran out")

    def test_capped_by_max_wait(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h", "--max-wait", "1s")
        rid = self.store(rd)
        r, took = wait_get(rd.port, "/_retryd/requests/%s" % rid, 30)
        self.assertEqual((r.status, r.json()["state"]), (200, "queued"), r)
        self.assertEqual(r.header("preference-applied"), "wait=1", r)
        self.assertLess(took, 3.0, "--max-wait 1s did not cap Prefer: wait=30")

    def test_without_prefer_wait_nothing_changes(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd)
        t0 = time.monotonic()
        r = control_get(rd.port, "/_retryd/requests/%s" % rid)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual((r.status, r.json()["state"]), (200, "queued"), r)
        self.assertIsNone(r.header("preference-applied"), r)
        r = send_request(rd.port, "GET", "/_retryd/requests/%s" % rid,
                         [("Prefer", "respond-async")])
        self.assertIsNone(r.header("preference-applied"), r)

    def test_unknown_id_is_404_at_once(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        rid = "01890000-0000-7000-8000-000000000000"
        r, took = wait_get(rd.port, "/_retryd/requests/%s" % rid, 10)
        self.assertJsonError(r, 404, "not_found")
        self.assertLess(took, 1.0)

    def test_keep_alive_connection_serves_the_next_request_after_a_wait(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd)
        with RawConn(rd.port, timeout=10) as c:
            c.send(build_request("GET", "/_retryd/requests/%s" % rid, [("Prefer", "wait=1")]))
            r = c.read_response()
            self.assertEqual((r.status, r.json()["state"]), (200, "queued"), r)
            c.send(build_request("GET", "/_retryd/health"))
            self.assertEqual(c.read_response().status, 200)

    def test_clients_that_go_away_release_their_wait(self):
        """Twenty held clients leave; the request then ends (each hold would
        be told of it, if one were left behind: ASan would see the freed
        memory), retryd keeps answering and stops clean (no leak)."""
        up = self.start_upstream()
        up.push(Response(507), Response(200, body=b"late"))
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd)
        conns = []
        for i in range(20):
            c = RawConn(rd.port, timeout=10)
            view = "/response" if i % 2 else ""
            c.send(build_request("GET", "/_retryd/requests/%s%s" % (rid, view),
                                 [("Prefer", "wait=30")]))
            conns.append(c)
        time.sleep(0.5)
        for c in conns:
            c.close()
        time.sleep(0.3)
        self.retry_now(rd, rid)
        deadline = time.monotonic() + 10
        while control_get(rd.port, "/_retryd/requests/%s" % rid).json()["state"] != "completed":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        # One held client that stays still gets its answer.
        r, took = wait_get(rd.port, "/_retryd/requests/%s/response" % rid, 5)
        self.assertEqual((r.status, r.body), (200, b"late"), r)
        self.assertEqual(rd.stop(), 0, rd.stderr_text()[-2000:])

    def test_sigterm_answers_held_clients_and_exits_promptly(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        rid = self.store(rd)
        held = Held(rd.port, "/_retryd/requests/%s" % rid, 60).start()
        t0 = time.monotonic()
        rd.stop()
        self.assertEqual(rd.returncode, 0, rd.stderr_text()[-2000:])
        self.assertLess(time.monotonic() - t0, 5.0)
        r, took = held.join()
        self.assertEqual((r.status, r.json()["state"]), (200, "queued"), r)
        self.assertEqual(r.header("preference-applied"), "wait=60", r)


if __name__ == "__main__":
    unittest.main()
