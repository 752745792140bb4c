"""The life of a stored request (issue 14): its deadline, a repeat after it
completed, and the last answer that kept it waiting.

- Retryd-Deadline (seconds from now, or an HTTP-date): a bad or past value is
  400 bad_deadline and nothing is sent or stored; the header never goes
  upstream; a stored request not delivered by then is dead with a
  "deadline: ..." last_error, at the deadline, not at the next interval, and
  is never sent after it.
- Idempotency-Key after completion: the stored final answer is replayed
  (Retryd-Replayed: true, Retryd-Request-Id) without another upstream call,
  logged as a replay; another body with the same key is 422
  idempotency_key_reused (while queued too); past --keep-completed the key
  is free again.
- last_answer in GET /_retryd/requests/<id>: the last retryable answer's
  status, Retry-After / Content-Type / Date and the first 4 KiB of its body,
  from the first attempt and from a retry.

Every class runs against an http:// and an https:// fake upstream, and the
whole file on both storage backends (tests/CMakeLists.txt)."""

import email.utils
import json
import os
import shutil
import tempfile
import threading
import time
import unittest

from fake_upstream import FakeUpstream, Response
from harness import RetrydTestCase, get_stored, parse_timestamp, send_request, wait_stored_state
from test_tls_upstream import make_pki

RECALL_507 = (b'{"detail":"No adhoc bots are available right now. '
              b'Please retry every 30 seconds."}')


class LifeBase(RetrydTestCase):
    """Subclasses say whether the upstream speaks TLS."""
    TLS = False

    @classmethod
    def setUpClass(cls):
        if cls is LifeBase or cls.__name__.startswith("_"):
            raise unittest.SkipTest("base class")
        cls.pki = tempfile.mkdtemp(prefix="retryd-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        make_pki(cls.pki)

    def upstream(self):
        if self.TLS:
            return self.start_upstream(certfile=os.path.join(self.pki, "srv.pem"),
                                       keyfile=os.path.join(self.pki, "srv.key"))
        return self.start_upstream()

    def retryd(self, up, *args, **kw):
        return self.start_retryd(up, "--upstream-ca", os.path.join(self.pki, "ca.pem"), *args,
                                 **kw)


# ---- deadlines ------------------------------------------------------------


class _Deadline(LifeBase):

    def test_bad_or_past_deadline_is_400_and_nothing_is_sent_or_stored(self):
        up = self.upstream()
        rd = self.retryd(up)
        past = email.utils.formatdate(time.time() - 60, usegmt=True)
        for value in ("soon", "-5", "1.5", "30s", "0", past, "99999999999999999999999"):
            with self.subTest(value=value):
                r = send_request(rd.port, "POST", "/api/v1/bot",
                                 [("Retryd-Deadline", value)], b"{}")
                obj = self.assertJsonError(r, 400, "bad_deadline")
                self.assertIn("Retryd-Deadline", obj["message"])
        self.assertNothingForwarded(up, settle=0.2)
        r = send_request(rd.port, "GET", "/_retryd/requests")
        self.assertEqual(r.json()["requests"], [], r)

    def test_deadline_header_is_never_forwarded(self):
        up = self.upstream()
        up.push(Response(507, body=RECALL_507), Response(201, body=b'{"id":"bot"}'))
        rd = self.retryd(up, "--retry-interval", "300ms")
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Retryd-Deadline", "60")], b"{}")
        self.assertEqual(r.status, 202, r)
        reqs = up.wait_for_requests(2)
        for q in reqs:  # the first attempt and the retry
            self.assertFalse(q.has_header("retryd-deadline"), q.headers)
        wait_stored_state(rd.port, r.json()["id"], "completed")

    def test_a_row_dies_at_its_deadline_not_at_the_next_interval(self):
        up = self.upstream()
        up.default = Response(507, body=RECALL_507)
        rd = self.retryd(up, "--retry-interval", "1h")
        sent = time.time()
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Retryd-Deadline", "2")], b"{}")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        obj = get_stored(rd.port, rid)
        deadline = parse_timestamp(obj["deadline_at"])
        self.assertAlmostEqual(deadline, sent + 2, delta=1.0)
        # Planned at the deadline, not an hour later.
        self.assertLessEqual(parse_timestamp(obj["next_attempt_at"]), deadline + 0.001, obj)
        self.assertLessEqual(int(r.header("retry-after")), 3, r)
        obj = wait_stored_state(rd.port, rid, "dead", timeout=6)
        self.assertLess(time.time(), sent + 5, "dead only long after its deadline")
        self.assertTrue(obj["last_error"].startswith("deadline"), obj)
        self.assertEqual(obj["reason"], "deadline", obj)
        self.assertEqual(obj["last_status"], 507, obj)
        time.sleep(0.3)
        self.assertEqual(up.count(), 1, "sent again at or after its deadline")

    def test_retries_stop_at_the_deadline_and_the_claim_buries_the_row(self):
        up = self.upstream()
        up.default = Response(503)
        rd = self.retryd(up, "--retry-interval", "400ms")
        at = time.time() + 2
        value = email.utils.formatdate(at, usegmt=True)  # whole seconds: at most 1 s early
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Retryd-Deadline", value)], b"{}")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        obj = get_stored(rd.port, rid)
        self.assertEqual(parse_timestamp(obj["deadline_at"]), int(at), obj)
        obj = wait_stored_state(rd.port, rid, "dead", timeout=6)
        self.assertTrue(obj["last_error"].startswith("deadline"), obj)
        self.assertEqual(obj["reason"], "deadline", obj)
        n = up.count()
        self.assertGreaterEqual(n, 2, "retried before its deadline")
        for q in up.requests:
            wall = time.time() - (time.monotonic() - q.received_at)
            self.assertLess(wall, int(at) + 0.05, "an attempt was sent after the deadline")
        time.sleep(1.0)
        self.assertEqual(up.count(), n, "sent after it was dead")

    def test_a_client_held_with_prefer_wait_is_answered_at_the_deadline(self):
        up = self.upstream()
        up.default = Response(507, body=RECALL_507)
        rd = self.retryd(up, "--retry-interval", "1h")
        t0 = time.monotonic()
        r = send_request(rd.port, "POST", "/api/v1/bot",
                         [("Retryd-Deadline", "1"), ("Prefer", "wait=20")], b"{}", timeout=30)
        took = time.monotonic() - t0
        self.assertLess(took, 5, "held to the end of its wait, past the deadline")
        self.assertGreaterEqual(took, 0.9, "answered before the deadline")
        self.assertEqual(r.status, 202, r)
        obj = r.json()
        self.assertEqual(obj["state"], "dead", obj)
        self.assertTrue(obj["last_error"].startswith("deadline"), obj)
        self.assertEqual(r.header("preference-applied"), "wait=20", r)

    def test_a_held_client_whose_row_completes_before_the_deadline_gets_the_answer(self):
        up = self.upstream()
        up.push(Response(507, body=RECALL_507), Response(201, body=b'{"id":"bot"}'))
        rd = self.retryd(up, "--retry-interval", "300ms")
        r = send_request(rd.port, "POST", "/api/v1/bot",
                         [("Retryd-Deadline", "5"), ("Prefer", "wait=20")], b"{}", timeout=30)
        self.assertEqual((r.status, r.body), (201, b'{"id":"bot"}'), r)

    def test_a_row_found_past_its_deadline_after_a_restart_is_buried_not_sent(self):
        up = self.upstream()
        up.default = Response(507, body=RECALL_507)
        tmp = tempfile.mkdtemp(prefix="retryd-life-")
        self.addCleanup(shutil.rmtree, tmp, True)
        db = self.fresh_db(tmp)
        rd = self.retryd(up, "--retry-interval", "1h", db=db)
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Retryd-Deadline", "1")], b"{}")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        rd.stop()
        time.sleep(1.5)  # the deadline passes while no retryd runs
        rd2 = self.retryd(up, "--retry-interval", "1h", db=db)
        obj = wait_stored_state(rd2.port, rid, "dead", timeout=5)
        self.assertTrue(obj["last_error"].startswith("deadline"), obj)
        time.sleep(0.3)
        self.assertEqual(up.count(), 1, "sent past its deadline after the restart")

    def test_an_operators_retry_of_a_row_dead_at_its_deadline_sends_it(self):
        """A retry by hand lifts the deadline, as it restarts the age of a
        dead row: the operator has decided it is still worth sending (one
        retry and one bulk retry); a queued row retried keeps its deadline."""
        up = self.upstream()
        up.default = Response(507, body=RECALL_507)
        rd = self.retryd(up, "--retry-interval", "1h")
        rids = []
        for _ in range(2):
            r = send_request(rd.port, "POST", "/api/v1/bot", [("Retryd-Deadline", "1")], b"{}")
            self.assertEqual(r.status, 202, r)
            rids.append(r.json()["id"])
        for rid in rids:
            wait_stored_state(rd.port, rid, "dead", timeout=5)
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Retryd-Deadline", "3600")], b"{}")
        queued = r.json()["id"]
        up.default = Response(201, body=b'{"id":"bot"}')
        r = send_request(rd.port, "POST", "/_retryd/requests/%s/retry" % rids[0], [], b"")
        self.assertEqual(r.status, 200, r)
        r = send_request(rd.port, "POST", "/_retryd/requests/retry?state=dead", [], b"")
        self.assertEqual((r.status, r.json()["changed"]), (200, 1), r)
        for rid in rids:
            obj = wait_stored_state(rd.port, rid, "completed", timeout=5)
            self.assertIsNone(obj["deadline_at"], obj)
        r = send_request(rd.port, "POST", "/_retryd/requests/%s/retry" % queued, [], b"")
        self.assertEqual(r.status, 200, r)
        obj = wait_stored_state(rd.port, queued, "completed", timeout=5)
        self.assertIsNotNone(obj["deadline_at"], obj)


class DeadlineHttpTest(_Deadline):
    TLS = False


class DeadlineHttpsTest(_Deadline):
    TLS = True


# ---- Idempotency-Key after completion ------------------------------------


class _Replay(LifeBase):

    def complete_once(self, rd, up, key, body=b'{"meeting_url":"https://meet.example/a"}'):
        up.push(Response(507, body=RECALL_507),
                Response(201, headers=[("X-Bot", "b-1"), ("Content-Type", "application/json")],
                         body=b'{"id":"bot-1"}'))
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Idempotency-Key", key)], body)
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        wait_stored_state(rd.port, rid, "completed")
        self.assertEqual(up.count(), 2)
        return rid

    def test_a_repeat_after_completion_gets_the_stored_answer_replayed(self):
        up = self.upstream()
        rd = self.retryd(up, "--retry-interval", "300ms")
        body = b'{"meeting_url":"https://meet.example/a"}'
        rid = self.complete_once(rd, up, "k-replay", body)
        for _ in range(2):
            r = send_request(rd.port, "POST", "/api/v1/bot", [("Idempotency-Key", "k-replay")],
                             body)
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.body, b'{"id":"bot-1"}')
            self.assertEqual(r.header("x-bot"), "b-1", r)
            self.assertEqual(r.header("retryd-replayed"), "true", r)
            self.assertEqual(r.header("retryd-request-id"), rid, r)
        time.sleep(0.2)
        self.assertEqual(up.count(), 2, "a replay called the upstream")
        lines = [l for l in rd.log_json() if l.get("msg") == "request" and l.get("status") == 201]
        self.assertEqual(len(lines), 2, lines)
        for l in lines:
            self.assertIs(l.get("replay"), True, l)
            self.assertEqual(l.get("id"), rid, l)
            self.assertIsNone(l.get("upstream_status"), l)

    def test_the_same_key_with_another_body_is_422(self):
        up = self.upstream()
        rd = self.retryd(up, "--retry-interval", "300ms")
        self.complete_once(rd, up, "k-body")
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Idempotency-Key", "k-body")],
                         b'{"meeting_url":"https://meet.example/OTHER"}')
        self.assertJsonError(r, 422, "idempotency_key_reused")
        time.sleep(0.2)
        self.assertEqual(up.count(), 2)

    def test_another_body_is_422_while_the_row_is_queued_too(self):
        up = self.upstream()
        up.default = Response(507, body=RECALL_507)
        rd = self.retryd(up, "--retry-interval", "1h")
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Idempotency-Key", "k-q")], b"{}")
        self.assertEqual(r.status, 202, r)
        same = send_request(rd.port, "POST", "/api/v1/bot", [("Idempotency-Key", "k-q")], b"{}")
        self.assertEqual(same.status, 202, same)
        self.assertEqual(same.json()["id"], r.json()["id"])
        other = send_request(rd.port, "POST", "/api/v1/bot", [("Idempotency-Key", "k-q")],
                             b'{"x":1}')
        self.assertJsonError(other, 422, "idempotency_key_reused")
        self.assertEqual(up.count(), 1)

    def test_two_first_attempts_at_once_with_one_key_and_two_bodies(self):
        """Both miss the lookup and are sent; the second to be stored finds
        the first's row holding the key: another body is 422 there too."""
        up = self.upstream()
        up.default = Response(507, body=RECALL_507, delay=0.5)
        rd = self.retryd(up, "--retry-interval", "1h")
        results = {}

        def send(tag, body):
            results[tag] = send_request(rd.port, "POST", "/api/v1/bot",
                                        [("Idempotency-Key", "k-race")], body)

        threads = [threading.Thread(target=send, args=("a", b'{"n":1}')),
                   threading.Thread(target=send, args=("b", b'{"n":2}'))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(up.count(), 2, "both first attempts are sent")
        statuses = sorted(r.status for r in results.values())
        self.assertEqual(statuses, [202, 422], results)
        loser = [r for r in results.values() if r.status == 422][0]
        self.assertJsonError(loser, 422, "idempotency_key_reused")

    def test_another_path_is_another_request(self):
        up = self.upstream()
        rd = self.retryd(up, "--retry-interval", "300ms")
        self.complete_once(rd, up, "k-path")
        up.push(Response(200, body=b"other"))
        r = send_request(rd.port, "POST", "/api/v1/other", [("Idempotency-Key", "k-path")],
                         b'{"meeting_url":"https://meet.example/a"}')
        self.assertEqual((r.status, r.body), (200, b"other"), r)
        self.assertIsNone(r.header("retryd-replayed"), r)
        self.assertEqual(up.count(), 3)

    def test_past_keep_completed_the_key_is_free_again(self):
        up = self.upstream()
        rd = self.retryd(up, "--retry-interval", "300ms", "--keep-completed", "1s")
        body = b'{"meeting_url":"https://meet.example/a"}'
        self.complete_once(rd, up, "k-old", body)
        time.sleep(1.5)
        up.push(Response(200, body=b"fresh"))
        r = send_request(rd.port, "POST", "/api/v1/bot", [("Idempotency-Key", "k-old")], body)
        self.assertEqual((r.status, r.body), (200, b"fresh"), r)
        self.assertIsNone(r.header("retryd-replayed"), r)
        self.assertEqual(up.count(), 3)


class ReplayHttpTest(_Replay):
    TLS = False


class ReplayHttpsTest(_Replay):
    TLS = True


# ---- the last retryable answer ---------------------------------------------


class _LastAnswer(LifeBase):

    def test_the_first_attempts_answer_is_kept_and_shown(self):
        up = self.upstream()
        date = email.utils.formatdate(usegmt=True)
        up.default = Response(507, headers=[("Retry-After", "3600"),
                                            ("Content-Type", "application/json"),
                                            ("Date", date),
                                            ("Set-Cookie", "session=SECRET1"),
                                            ("X-Other", "not-kept")], body=RECALL_507)
        rd = self.retryd(up, "--retry-interval", "1h")
        r = send_request(rd.port, "POST", "/api/v1/bot", [], b"{}")
        self.assertEqual(r.status, 202, r)
        raw = send_request(rd.port, "GET", "/_retryd/requests/%s" % r.json()["id"])
        self.assertNotIn(b"SECRET1", raw.body)
        la = raw.json()["last_answer"]
        self.assertEqual(la["status"], 507, la)
        self.assertEqual(la["headers"], {"Retry-After": "3600",
                                         "Content-Type": "application/json",
                                         "Date": date}, la)
        self.assertEqual(la["body"], RECALL_507.decode(), la)

    def test_a_retrys_answer_replaces_it_and_bodies_are_cut_at_4_kib(self):
        up = self.upstream()
        big = b"x" * 5000
        up.push(Response(507, body=RECALL_507), Response(503, body=big))
        up.default = Response(502, body=b"later")
        rd = self.retryd(up, "--retry-interval", "1h")
        r = send_request(rd.port, "POST", "/api/v1/bot", [], b"{}")
        rid = r.json()["id"]
        self.assertEqual(get_stored(rd.port, rid)["last_answer"]["status"], 507)
        self.assertEqual(send_request(rd.port, "POST",
                                      "/_retryd/requests/%s/retry" % rid).status, 200)
        up.wait_for_requests(2)
        deadline = time.monotonic() + 5
        while True:
            obj = get_stored(rd.port, rid)
            if obj["attempts"] == 2 and obj["state"] == "queued":
                break
            self.assertLess(time.monotonic(), deadline, obj)
            time.sleep(0.05)
        la = obj["last_answer"]
        self.assertEqual(la["status"], 503, la)
        self.assertEqual(la["body"], "x" * 4096, "kept %d bytes" % len(la["body"]))

    def test_no_answer_yet_is_null(self):
        up = self.upstream()
        up.default = Response(close_without_answer=True)
        rd = self.retryd(up, "--retry-interval", "1h")
        r = send_request(rd.port, "POST", "/api/v1/bot", [], b"{}")
        self.assertEqual(r.status, 202, r)
        self.assertIsNone(get_stored(rd.port, r.json()["id"])["last_answer"])


class LastAnswerHttpTest(_LastAnswer):
    TLS = False


class LastAnswerHttpsTest(_LastAnswer):
    TLS = True


if __name__ == "__main__":
    unittest.main(verbosity=2)
