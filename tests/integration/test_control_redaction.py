"""Secrets stay secret (DESIGN invariant 6). Requests carry canary values in
Authorization, Proxy-Authorization, Cookie and X-Api-Key; the upstream
answers with Set-Cookie canaries (507, so they are stored). Then every
endpoint is exercised -- 202 bodies and headers, error bodies, stats,
metrics, listings, each request's view, retry/cancel answers, the status
page (raw and rendered by headless Chromium) -- and the stderr log (at
debug level). No canary may appear in any of it, except in:

  (a) GET /_retryd/requests/<id>/response, which relays the upstream's final
      answer verbatim (so it carries that answer's Set-Cookie), and
  (b) the requests the upstream receives, which must carry the client's
      credentials (Authorization, Cookie, X-Api-Key)."""

import os
import secrets
import shutil
import time
import unittest

from fake_upstream import Response
from harness import RawConn, RetrydTestCase, build_request, send_request
from control_helpers import (QUEUE_STATES, chromium, ctl, ctl_json, fake_uuid7, wait_state,
                             wait_until)


def canary(tag):
    return "CANARY-%s-%s" % (tag, secrets.token_hex(8))


class RedactionTest(RetrydTestCase):

    def setUp(self):
        self.c = {k: canary(k) for k in ("auth", "proxy", "cookie", "apikey",
                                         "setcookie", "final", "ctlauth")}
        self.seen = []   # (what, bytes) that must hold no canary

    def client_headers(self, extra=()):
        c = self.c
        return [("Authorization", "Bearer " + c["auth"]),
                ("Proxy-Authorization", "Basic " + c["proxy"]),
                ("Cookie", "session=%s; theme=dark" % c["cookie"]),
                ("X-Api-Key", c["apikey"]),
                ("Content-Type", "application/json")] + list(extra)

    def keep(self, what, r):
        self.seen.append((what, r.raw_head + r.body))
        return r

    def post(self, target, extra=(), body=b'{"bot":1}'):
        r = self.keep("POST %s" % target,
                      send_request(self.rd.port, "POST", target, self.client_headers(extra), body))
        return r

    def control(self, method, path):
        # control requests carry secrets too: they must not echo them
        return self.keep("%s %s" % (method, path),
                         ctl(self.rd.port, method, path,
                             headers=[("Authorization", "Bearer " + self.c["ctlauth"]),
                                      ("Cookie", "c=" + self.c["ctlauth"])]))

    def test_no_secret_anywhere(self):
        c = self.c
        up = self.start_upstream()
        up.default = Response(507, headers=[("Set-Cookie", "sid=%s; HttpOnly" % c["setcookie"]),
                                            ("Content-Type", "application/json")],
                              body=b'{"code":"adhoc_bot_pool_empty"}')
        self.rd = rd = self.start_retryd(up, "--retry-interval", "1h", "--max-attempts", "2",
                                         "--max-body", "1KiB", "--log-level", "debug")
        port = rd.port

        # stored requests: queued (A), completed (B), dead (C), cancelled (D)
        ra = self.post("/api/v1/bot/?a=1", [("Idempotency-Key", "idem-a")])
        rb = self.post("/api/v1/bot/?b=1")
        rc = self.post("/api/v1/bot/?c=1")
        rd_ = self.post("/api/v1/bot/?d=1")
        for r in (ra, rb, rc, rd_):
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.header_all("set-cookie"), [], "202 relays Set-Cookie: %r" % r)
        ids = {k: r.json()["id"] for k, r in zip("abcd", (ra, rb, rc, rd_))}
        # the idempotent repeat gets A's 202 again
        again = self.post("/api/v1/bot/?a=1", [("Idempotency-Key", "idem-a")])
        self.assertEqual((again.status, again.json()["id"]), (202, ids["a"]), again)

        up.push(Response(201, headers=[("Set-Cookie", "final=%s" % c["final"]),
                                       ("Content-Type", "application/json")],
                         body=b'{"id":"bot-b"}'))
        self.assertEqual(self.control("POST", "/_retryd/requests/%s/retry" % ids["b"]).status, 200)
        wait_state(port, ids["b"], "completed")
        self.assertEqual(self.control("POST", "/_retryd/requests/%s/retry" % ids["c"]).status, 200)
        wait_state(port, ids["c"], "dead")
        self.assertEqual(self.control("DELETE", "/_retryd/requests/%s" % ids["d"]).status, 200)

        # retryd's own error answers to requests carrying secrets
        r = self.post("/api/v1/bot/?big=1", body=b"x" * 4096)
        self.assertEqual(r.status, 413, r)
        with RawConn(port) as conn:
            conn.send(build_request("POST", "/api/v1/bot/?framing=1",
                                    self.client_headers([("Transfer-Encoding", "chunked")]),
                                    b"{}"))
            self.assertEqual(self.keep("bad framing", conn.read_response()).status, 400)
        for method, path, status in (
                ("GET", "/_retryd/requests/%s" % fake_uuid7(), 404),
                ("GET", "/_retryd/requests/not-an-id", 400),
                ("DELETE", "/_retryd/requests/%s" % ids["b"], 409),
                ("POST", "/_retryd/requests/%s/retry" % ids["d"], 409),
                ("GET", "/_retryd/requests/%s/response" % ids["a"], 409),
                ("PUT", "/_retryd/stats", 405),
                ("GET", "/_retryd/requests?state=nope", 400),
                ("GET", "/_retryd/nope", 404)):
            self.assertEqual(self.control(method, path).status, status, (method, path))

        # every read-only view
        for path in ("/_retryd/health", "/_retryd/stats", "/_retryd/metrics", "/_retryd/",
                     "/_retryd/requests", "/_retryd/requests?limit=1000"):
            self.assertEqual(self.control("GET", path).status, 200, path)
        for state in QUEUE_STATES:
            self.assertEqual(self.control("GET", "/_retryd/requests?state=%s" % state).status,
                             200)
        for rid in ids.values():
            self.assertEqual(self.control("GET", "/_retryd/requests/%s" % rid).status, 200)
        s = ctl_json(port, "/_retryd/stats")
        self.assertEqual({k: s["queue"][k] for k in ("queued", "completed", "dead", "cancelled")},
                         {"queued": 1, "completed": 1, "dead": 1, "cancelled": 1}, s)

        # the status page as a browser renders it (it fetches stats and the listing)
        code, out, err, tmp = chromium("http://127.0.0.1:%d/_retryd/" % port, ["--dump-dom"])
        shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(code, 0, err[-2000:])
        self.assertIn(ids["a"].encode(), out, "the rendered page lists the queued request")
        self.seen.append(("rendered status page", out))

        # (a) /response relays the final answer verbatim, Set-Cookie included
        r = ctl(port, "GET", "/_retryd/requests/%s/response" % ids["b"])
        self.assertEqual(r.status, 201, r)
        self.assertIn("final=%s" % c["final"], r.header_all("set-cookie"))

        # (b) the upstream got the credentials on every attempt
        time.sleep(0.3)
        # (the browser's own /favicon.ico fetch is test_control_status_page's business)
        reqs = [q for q in up.requests if q.target != "/favicon.ico"]
        self.assertEqual(len(reqs), 6, reqs)  # a, b, c, d + retries of b and c
        for q in reqs:
            self.assertEqual(q.header("authorization"), "Bearer " + c["auth"], q)
            self.assertEqual(q.header("cookie"), "session=%s; theme=dark" % c["cookie"], q)
            self.assertEqual(q.header("x-api-key"), c["apikey"], q)
            self.assertFalse(q.target.startswith("/_retryd"), q)
            self.assertNotIn(c["ctlauth"].encode(), q.raw_head)

        # and nowhere else -- the log last, after a clean stop flushed it
        self.assertEqual(rd.stop(), 0)
        log = rd.stderr_bytes()
        self.assertIn(b'"request"', log, "the access log is empty?")
        self.seen.append(("stderr log", log))
        with open(rd.stdout_path, "rb") as f:
            self.seen.append(("stdout", f.read()))
        for what, blob in self.seen:
            for name, value in c.items():
                with self.subTest(where=what, canary=name):
                    self.assertNotIn(value.encode(), blob,
                                     "%s canary leaked in %s: %r" % (name, what, blob[:3000]))
        self.assertGreater(len(self.seen), 30)

    def test_query_values_redacted_in_202_listings_and_status(self):
        """Query values (api_key=..., tokens) are shown as [redacted] wherever
        retryd shows a stored request; names stay, and the upstream still
        gets the query exactly, on the first attempt and on retries."""
        key, other, bare = canary("qkey"), canary("qother"), canary("qbare")
        target = "/api/v1/bot/?api_key=%s&x=%s&%s&empty=" % (key, other, bare)
        up = self.start_upstream()
        up.push(Response(507), Response(507))
        self.rd = rd = self.start_retryd(up, "--retry-interval", "1h", "--log-level", "debug")
        r = self.post(target)
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        shown = "/api/v1/bot/?api_key=[redacted]&x=[redacted]&[redacted]&empty=[redacted]"
        self.assertEqual(ctl_json(rd.port, "/_retryd/requests/%s" % rid)["path"], shown)
        listing = ctl_json(rd.port, "/_retryd/requests")["requests"]
        self.assertEqual([q["path"] for q in listing], [shown])
        self.assertEqual(self.control("POST", "/_retryd/requests/%s/retry" % rid).status, 200)
        wait_until(lambda: ctl_json(rd.port, "/_retryd/requests/%s" % rid)["attempts"] == 2,
                   10, what="the second attempt")
        for path in ("/_retryd/requests", "/_retryd/requests?state=queued",
                     "/_retryd/requests/%s" % rid, "/_retryd/stats", "/_retryd/metrics"):
            self.control("GET", path)
        got = up.wait_for_requests(2)
        self.assertEqual([q.target for q in got], [target, target])
        self.assertEqual(rd.stop(), 0)
        self.seen.append(("stderr log", rd.stderr_bytes()))
        for what, blob in self.seen:
            for name, value in (("api_key", key), ("x", other), ("bare", bare)):
                with self.subTest(where=what, canary=name):
                    self.assertNotIn(value.encode(), blob,
                                     "%s canary leaked in %s: %r" % (name, what, blob[:3000]))

    def test_secrets_not_in_the_database_file_listing_views(self):
        """The stored request's own views name no header at all."""
        up = self.start_upstream()
        up.default = Response(507, headers=[("Set-Cookie", "sid=" + self.c["setcookie"])])
        self.rd = rd = self.start_retryd(up, "--retry-interval", "1h")
        r = self.post("/api/v1/bot/?v=1")
        rid = r.json()["id"]
        obj = ctl_json(rd.port, "/_retryd/requests/%s" % rid)
        text = repr(obj)
        for v in self.c.values():
            self.assertNotIn(v, text)
        self.assertEqual(os.stat(rd.db).st_mode & 0o077, 0, "db readable by group/others")


if __name__ == "__main__":
    unittest.main()
