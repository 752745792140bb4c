"""Listing filters and bulk actions (issue 14).

GET /_retryd/requests takes state (one or more), method, path_prefix,
idempotency_key, last_status, created_after and created_before (RFC 3339
or Unix seconds); POST /_retryd/requests/retry and /_retryd/requests/cancel
act on every row such a filter matches (retry: queued and dead rows become
due now; cancel: queued rows) and answer how many they changed. A bad value
is a 400 naming the parameter; a bulk action with no filter is refused
unless all=true; bulk actions need the admin token.

Registered for both stores (tests/CMakeLists.txt: RETRYD_BOTH_BACKENDS_TESTS),
so every test here runs on SQLite and on PostgreSQL."""

import shutil
import tempfile
import threading
import time
import unittest
import urllib.parse

from fake_upstream import Response
from harness import STORAGE, RetrydTestCase, parse_timestamp, send_request
from control_helpers import ctl, ctl_json, list_all, wait_state, wait_until

TRY_LATER = Response(507, body=b'{"code":"adhoc_bot_pool_empty"}')
ADMIN = "filters-adm1n-T0ken"
READER = "filters-r3ad-T0ken"


def store(port, method="POST", target="/api/v1/bot/", headers=(), body=b'{"n":1}'):
    r = send_request(port, method, target, list(headers), body)
    if r.status != 202:
        raise AssertionError("expected a 202 for %s %s: %r" % (method, target, r))
    return r.json()["id"]


def ids_of(port, query, token=None):
    """Every id the filtered listing gives, across its pages (limit 2, so
    that the cursor is followed)."""
    got, cursor, pages = [], None, 0
    while True:
        q = query + ("&" if query else "") + "limit=2"
        if cursor is not None:
            q += "&cursor=" + cursor
        page = ctl_json(port, "/_retryd/requests?" + q, token=token)
        got += [r["id"] for r in page["requests"]]
        cursor = page["next_cursor"]
        pages += 1
        if cursor is None or pages > 1000:
            return got


def rfc3339(ts):
    """Unix seconds (float) -> RFC 3339 UTC with milliseconds."""
    whole = int(ts)
    ms = int(round((ts - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%03dZ" % ms


def bulk(port, action, query, token=None):
    return ctl(port, "POST", "/_retryd/requests/%s%s" % (action, "?" + query if query else ""),
               token=token)


class ListingFiltersTest(RetrydTestCase):
    """One queue of rows that differ in each filtered field; each filter is
    checked against the ids it must give, in order."""

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.up.default = TRY_LATER
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "1h", "--max-attempts", "2")
        port = cls.rd.port
        cls.a = store(port, "POST", "/api/v1/bot/?n=a", [("Idempotency-Key", "key-a")])
        cls.b = store(port, "PATCH", "/api/v1/bot/b")
        cls.up.push(Response(503, body=b"busy"))
        cls.c = store(port, "POST", "/api/v2/calendar/")
        # the second batch is created at least a second later (Unix seconds)
        time.sleep(1.1)
        cls.d = store(port, "POST", "/api/v1/bot/?n=d", [("Idempotency-Key", "key+d/1")])
        cls.e = store(port, "POST", "/api/v1/bot/e")
        cls.f = store(port, "POST", "/api/v1/bot/f")
        # d becomes dead (second attempt of two), e cancelled, f completed
        r = ctl(port, "POST", "/_retryd/requests/%s/retry" % cls.d)
        assert r.status == 200, r
        wait_state(port, cls.d, "dead")
        assert ctl(port, "DELETE", "/_retryd/requests/%s" % cls.e).status == 200
        cls.up.push(Response(200, body=b"ok"))
        assert ctl(port, "POST", "/_retryd/requests/%s/retry" % cls.f).status == 200
        wait_state(port, cls.f, "completed")
        cls.created = {rid: ctl_json(port, "/_retryd/requests/%s" % rid)["created_at"]
                       for rid in (cls.a, cls.b, cls.c, cls.d, cls.e, cls.f)}
        cls.all = [cls.a, cls.b, cls.c, cls.d, cls.e, cls.f]

    def check(self, query, want):
        with self.subTest(query=query):
            self.assertEqual(ids_of(self.rd.port, query), want)

    def test_no_filter_lists_everything(self):
        self.check("", self.all)

    def test_state_one_or_more(self):
        self.check("state=queued", [self.a, self.b, self.c])
        self.check("state=dead", [self.d])
        self.check("state=queued,dead", [self.a, self.b, self.c, self.d])
        self.check("state=dead&state=completed", [self.d, self.f])
        self.check("state=cancelled%2Ccompleted", [self.e, self.f])
        self.check("state=inflight", [])

    def test_method(self):
        self.check("method=PATCH", [self.b])
        self.check("method=POST", [self.a, self.c, self.d, self.e, self.f])
        self.check("method=post", [])  # methods are case-sensitive
        self.check("method=DELETE", [])

    def test_path_prefix(self):
        self.check("path_prefix=/api/v1/bot/", [self.a, self.b, self.d, self.e, self.f])
        self.check("path_prefix=%2Fapi%2Fv2%2F", [self.c])  # percent-decoded
        self.check("path_prefix=/api/v1/bot/e", [self.e])
        self.check("path_prefix=/api/v3", [])
        self.check("path_prefix=/", self.all)

    def test_idempotency_key(self):
        self.check("idempotency_key=key-a", [self.a])
        self.check("idempotency_key=" + urllib.parse.quote("key+d/1", safe=""), [self.d])
        self.check("idempotency_key=key+d/1", [self.d])  # '+' is a plus sign
        self.check("idempotency_key=key-b", [])

    def test_last_status(self):
        self.check("last_status=503", [self.c])
        self.check("last_status=507", [self.a, self.b, self.d, self.e])
        self.check("last_status=200", [self.f])
        self.check("last_status=404", [])

    def test_created_after_and_before_rfc3339(self):
        t_c = self.created[self.c]
        t_d = self.created[self.d]
        self.check("created_after=" + t_d, [self.d, self.e, self.f])  # inclusive
        self.check("created_before=" + t_d, [self.a, self.b, self.c])  # exclusive
        self.check("created_after=%s&created_before=%s" % (t_c, t_d), [self.c])
        # an offset names the same instant
        ts = parse_timestamp(t_d)
        local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(ts) + 3600))
        local += ".%03d+01:00" % int(round((ts - int(ts)) * 1000))
        self.check("created_after=" + urllib.parse.quote(local, safe=""), [self.d, self.e, self.f])

    def test_created_after_and_before_unix_seconds(self):
        # the second batch starts in a later whole second than the first ends
        first_end = max(parse_timestamp(self.created[r]) for r in (self.a, self.b, self.c))
        second = int(first_end) + 1
        self.assertLessEqual(second, parse_timestamp(self.created[self.d]))
        self.check("created_after=%d" % second, [self.d, self.e, self.f])
        self.check("created_before=%d" % second, [self.a, self.b, self.c])
        self.check("created_after=0", self.all)
        self.check("created_before=0", [])

    def test_filters_combine(self):
        self.check("state=queued&path_prefix=/api/v1/", [self.a, self.b])
        self.check("method=POST&last_status=507&state=queued,dead", [self.a, self.d])
        self.check("path_prefix=/api/v1/&created_before=%s" % self.created[self.c],
                   [self.a, self.b])

    def test_a_page_that_holds_every_match_has_no_cursor(self):
        page = ctl_json(self.rd.port, "/_retryd/requests?state=queued&method=PATCH")
        self.assertEqual([r["id"] for r in page["requests"]], [self.b])
        self.assertIsNone(page["next_cursor"])

    def test_bad_values_name_the_parameter(self):
        cases = [
            ("state=bogus", "state"), ("state=queued,", "state"), ("state=", "state"),
            ("method=P%20O", "method"), ("method=", "method"),
            ("path_prefix=api", "path_prefix"), ("path_prefix=/api%3Fkey%3D1", "path_prefix"),
            ("path_prefix=/a?b", "path_prefix"),
            ("last_status=99", "last_status"), ("last_status=600", "last_status"),
            ("last_status=5xx", "last_status"),
            ("created_after=yesterday", "created_after"),
            ("created_after=2026-02-30T00:00:00Z", "created_after"),
            ("created_before=2026-12-03T10:00:00", "created_before"),
            ("created_before=-5", "created_before"),
            ("idempotency_key=", "idempotency_key"), ("idempotency_key=a%00b", "idempotency_key"),
            ("method=POST&method=PUT", "method"), ("path_prefix=%zz", "path_prefix"),
            ("limit=0", "limit"), ("limit=1001", "limit"), ("cursor=x", "cursor"),
            ("stat=queued", "stat"), ("all=true", "all"),
        ]
        for query, param in cases:
            with self.subTest(query=query):
                r = ctl(self.rd.port, "GET", "/_retryd/requests?" + query)
                obj = self.assertJsonError(r, 400, "bad_request")
                self.assertEqual(obj.get("parameter"), param, obj)
                self.assertTrue(obj.get("message"), obj)

    def test_nothing_under_retryd_is_forwarded(self):
        for r in self.up.requests:
            self.assertFalse(r.target.startswith("/_retryd"), r)


class BulkActionsTest(RetrydTestCase):
    """Each test has a queue of its own: bulk actions change it."""

    def queue(self, *args):
        up = self.start_upstream()
        up.default = TRY_LATER
        rd = self.start_retryd(up, "--retry-interval", "1h", "--max-attempts", "2", *args)
        return up, rd

    def make_dead(self, rd, rid, token=None):
        r = ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % rid, token=token)
        self.assertEqual(r.status, 200, r)
        wait_state(rd.port, rid, "dead", token=token)

    def state_of(self, rd, rid, token=None):
        return ctl_json(rd.port, "/_retryd/requests/%s" % rid, token=token)["state"]

    def test_cancel_by_path_prefix_changes_only_the_queued_rows_it_matches(self):
        up, rd = self.queue()
        bots = [store(rd.port, target="/api/v1/bot/?i=%d" % i) for i in range(3)]
        other = store(rd.port, target="/api/v1/calendar/")
        dead = store(rd.port, target="/api/v1/bot/dead")
        self.make_dead(rd, dead)
        r = bulk(rd.port, "cancel", "path_prefix=/api/v1/bot/")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("content-type") or "").startswith("application/json"), r)
        self.assertEqual(r.json(), {"action": "cancel", "changed": 3})
        for rid in bots:
            self.assertEqual(self.state_of(rd, rid), "cancelled")
        self.assertEqual(self.state_of(rd, other), "queued")
        self.assertEqual(self.state_of(rd, dead), "dead")  # cancel takes queued rows only
        # again: nothing left to change
        self.assertEqual(bulk(rd.port, "cancel", "path_prefix=/api/v1/bot/").json()["changed"], 0)
        stats = ctl_json(rd.port, "/_retryd/stats")["queue"]
        self.assertEqual((stats["queued"], stats["cancelled"], stats["dead"]), (1, 3, 1), stats)
        self.assertEqual(up.count(), 6, up.requests)  # 5 first attempts + the dead one's second

    def test_retry_dead_since_a_time_attempts_them_now(self):
        up, rd = self.queue()
        early = store(rd.port, target="/api/v1/bot/?early")
        self.make_dead(rd, early)
        time.sleep(0.05)
        since = rfc3339(time.time())
        time.sleep(0.05)
        late = [store(rd.port, target="/api/v1/bot/?late=%d" % i) for i in range(2)]
        for rid in late:
            self.make_dead(rd, rid)
        queued = store(rd.port, target="/api/v1/bot/?queued")
        before = up.count()
        up.push(Response(201, body=b"made"), Response(201, body=b"made"))
        r = bulk(rd.port, "retry", "state=dead&created_after=" + since)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"action": "retry", "changed": 2})
        # due now, though --retry-interval is an hour: the scheduler was woken
        for rid in late:
            obj = wait_state(rd.port, rid, "completed", timeout=10)
            self.assertEqual(obj["response_status"], 201, obj)
        self.assertEqual(self.state_of(rd, early), "dead")
        self.assertEqual(self.state_of(rd, queued), "queued")
        self.assertEqual(up.count(), before + 2, up.requests)

    def test_retry_makes_queued_rows_due_now(self):
        up, rd = self.queue()
        rows = [store(rd.port, method="POST", target="/api/v1/bot/?q=%d" % i) for i in range(3)]
        keep = store(rd.port, method="PATCH", target="/api/v1/bot/keep")
        up.default = Response(200, body=b"ok")
        r = bulk(rd.port, "retry", "state=queued&method=POST")
        self.assertEqual(r.json(), {"action": "retry", "changed": 3}, r)
        for rid in rows:
            wait_state(rd.port, rid, "completed", timeout=10)
        self.assertEqual(self.state_of(rd, keep), "queued")

    def test_bulk_without_a_filter_is_refused_unless_all_true(self):
        up, rd = self.queue()
        rows = [store(rd.port, target="/api/v1/bot/?n=%d" % i) for i in range(3)]
        for action in ("cancel", "retry"):
            for query in ("", "all=false"):
                with self.subTest(action=action, query=query):
                    r = bulk(rd.port, action, query)
                    obj = self.assertJsonError(r, 400, "filter_required")
                    self.assertIn("all=true", obj["message"])
        for rid in rows:
            self.assertEqual(self.state_of(rd, rid), "queued")
        self.assertEqual(up.count(), 3)
        r = bulk(rd.port, "cancel", "all=true")
        self.assertEqual(r.json(), {"action": "cancel", "changed": 3}, r)
        for rid in rows:
            self.assertEqual(self.state_of(rd, rid), "cancelled")

    def test_bulk_cancel_answers_clients_held_on_its_rows(self):
        up, rd = self.queue()
        rid = store(rd.port, target="/api/v1/bot/held")
        held = {}

        def hold():
            t0 = time.monotonic()
            held["r"] = send_request(rd.port, "GET", "/_retryd/requests/%s" % rid,
                                     [("Prefer", "wait=20")], timeout=30)
            held["took"] = time.monotonic() - t0
        t = threading.Thread(target=hold)
        t.start()
        time.sleep(0.5)  # the GET is held by now
        self.assertEqual(bulk(rd.port, "cancel", "path_prefix=/api/v1/bot/held").json()["changed"],
                         1)
        t.join(25)
        self.assertFalse(t.is_alive())
        self.assertEqual(held["r"].status, 200, held["r"])
        self.assertEqual(held["r"].json()["state"], "cancelled")
        self.assertLess(held["took"], 10, "the held client waited out its wait")

    def test_a_typo_is_an_error_not_a_wider_action(self):
        up, rd = self.queue()
        rows = [store(rd.port, target="/api/v1/bot/?n=%d" % i) for i in range(2)]
        cases = [("state=queued&methd=POST", "methd"), ("stat=queued", "stat"),
                 ("state=queud", "state"), ("all=yes", "all"), ("limit=5&all=true", "limit"),
                 ("created_after=10:00", "created_after")]
        for query, param in cases:
            with self.subTest(query=query):
                obj = self.assertJsonError(bulk(rd.port, "cancel", query), 400, "bad_request")
                self.assertEqual(obj["parameter"], param, obj)
        for rid in rows:
            self.assertEqual(self.state_of(rd, rid), "queued")

    def test_only_post(self):
        up, rd = self.queue()
        for method in ("GET", "DELETE", "PUT"):
            for action in ("retry", "cancel"):
                with self.subTest(method=method, action=action):
                    r = ctl(rd.port, method, "/_retryd/requests/%s?all=true" % action)
                    self.assertJsonError(r, 405)
                    self.assertEqual(r.header("allow"), "POST")

    def test_more_rows_than_one_step(self):
        # a step changes at most 256 rows in one commit: 600 take three
        up, rd = self.queue()
        n = 600
        for i in range(n):
            store(rd.port, target="/api/v1/bot/?many=%d" % i)
        keep = store(rd.port, target="/api/v1/other/")
        r = bulk(rd.port, "cancel", "path_prefix=/api/v1/bot/")
        self.assertEqual(r.json(), {"action": "cancel", "changed": n}, r)
        rows, _ = list_all(rd.port, state="cancelled", limit=1000)
        self.assertEqual(len(rows), n)
        self.assertEqual(self.state_of(rd, keep), "queued")

    def test_retry_stops_at_max_queue(self):
        up, rd = self.queue("--max-queue", "3")
        dead = [store(rd.port, target="/api/v1/bot/?d=%d" % i) for i in range(3)]
        for rid in dead:
            self.make_dead(rd, rid)
        for i in range(2):
            store(rd.port, target="/api/v1/bot/?q=%d" % i)
        before = up.count()
        r = bulk(rd.port, "retry", "state=dead")
        obj = self.assertJsonError(r, 503, "queue_full")
        self.assertEqual(obj["changed"], 1, obj)  # room for one more unfinished row
        self.assertEqual(obj["action"], "retry", obj)
        # the first dead row was revived and sent at once; the others stay dead
        up.wait_for_requests(before + 1)
        self.assertEqual(up.requests[-1].target, "/api/v1/bot/?d=0")
        self.assertEqual([self.state_of(rd, rid) for rid in dead[1:]], ["dead", "dead"])


@unittest.skipUnless(STORAGE == "postgres", "replicas share a PostgreSQL queue only")
class SharedQueueTest(RetrydTestCase):
    """A bulk action on one replica of a shared queue is heard by the others."""

    def test_a_bulk_cancel_on_one_replica_answers_a_client_held_on_another(self):
        up = self.start_upstream()
        up.default = TRY_LATER
        tmp = tempfile.mkdtemp(prefix="retryd-filters-")
        self.addCleanup(shutil.rmtree, tmp, True)
        db = self.fresh_db(tmp)
        a = self.start_retryd(up, "--retry-interval", "1h", db=db)
        b = self.start_retryd(up, "--retry-interval", "1h", db=db)
        rid = store(a.port, target="/api/v1/bot/shared")
        held = {}

        def hold():
            t0 = time.monotonic()
            held["r"] = send_request(a.port, "GET", "/_retryd/requests/%s" % rid,
                                     [("Prefer", "wait=20")], timeout=30)
            held["took"] = time.monotonic() - t0
        t = threading.Thread(target=hold)
        t.start()
        time.sleep(0.5)
        r = bulk(b.port, "cancel", "path_prefix=/api/v1/bot/shared")
        self.assertEqual(r.json(), {"action": "cancel", "changed": 1}, r)
        t.join(25)
        self.assertFalse(t.is_alive())
        self.assertEqual(held["r"].json()["state"], "cancelled", held["r"])
        self.assertLess(held["took"], 10, "replica a never heard of the cancel")


class BulkTokensTest(RetrydTestCase):

    def test_admin_token_may_a_read_token_may_not(self):
        up = self.start_upstream()
        up.default = TRY_LATER
        rd = self.start_retryd(up, "--retry-interval", "1h", "--admin-token", ADMIN,
                               "--read-token", READER)
        rows = [store(rd.port, target="/api/v1/bot/?t=%d" % i) for i in range(2)]
        for action in ("retry", "cancel"):
            with self.subTest(action=action, token="read"):
                r = bulk(rd.port, action, "state=queued", token=READER)
                obj = self.assertJsonError(r, 403, "forbidden")
                self.assertNotIn(READER, r.body.decode("utf-8", "replace"))
                self.assertIn("admin", obj["message"])
            with self.subTest(action=action, token=None):
                self.assertJsonError(bulk(rd.port, action, "state=queued"), 401, "unauthorized")
            with self.subTest(action=action, token="wrong"):
                self.assertJsonError(bulk(rd.port, action, "state=queued", token="nope"), 401)
        # nothing changed; a read token may still list with filters
        page = ctl_json(rd.port, "/_retryd/requests?state=queued&path_prefix=/api/", token=READER)
        self.assertEqual([r["id"] for r in page["requests"]], rows)
        for r in page["requests"]:
            self.assertEqual(r["attempts"], 1, r)
        self.assertEqual(up.count(), 2)
        r = bulk(rd.port, "cancel", "state=queued", token=ADMIN)
        self.assertEqual(r.json(), {"action": "cancel", "changed": 2}, r)
        page = ctl_json(rd.port, "/_retryd/requests?state=cancelled", token=READER)
        self.assertEqual([r["id"] for r in page["requests"]], rows)


if __name__ == "__main__":
    unittest.main()
