"""--admin-token: every /_retryd/* endpoint except health and the status
page itself needs exactly the token, in X-Retryd-Token or as Authorization:
Bearer; anything else is 401 {"error":"unauthorized"} and has no effect. Control requests are never
forwarded upstream, and the token is never logged."""

import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, send_request
from control_helpers import ctl, ctl_json, fake_uuid7, wait_state

TOKEN = "s3cr3t-T0ken_with.chars~42"

WRONG_TOKENS = [
    None,                 # no header
    "",                   # empty value
    TOKEN[:-1],           # a prefix
    TOKEN[:1],
    TOKEN + "x",          # token plus a character
    TOKEN + TOKEN,
    TOKEN.upper(),
    TOKEN[:-1] + chr(ord(TOKEN[-1]) + 1),
    "x" + TOKEN[1:],
    "Bearer " + TOKEN,
]


class AdminTokenTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.up.default = Response(507, body=b"full")
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "1h", "--admin-token", TOKEN)
        r = send_request(cls.rd.port, "POST", "/api/v1/bot/?auth=1", [], b"{}")
        assert r.status == 202, r
        cls.rid = r.json()["id"]
        cls.up.wait_for_requests(1)

    def protected(self):
        rid = self.rid
        return [("GET", "/_retryd/stats"), ("GET", "/_retryd/metrics"),
                ("GET", "/_retryd/requests"), ("GET", "/_retryd/requests?state=queued&limit=5"),
                ("HEAD", "/_retryd/stats"),
                ("GET", "/_retryd/requests/%s" % rid), ("GET", "/_retryd/requests/%s/response" % rid),
                ("POST", "/_retryd/requests/%s/retry" % rid), ("DELETE", "/_retryd/requests/%s" % rid),
                ("GET", "/_retryd/requests/%s" % fake_uuid7()), ("GET", "/_retryd/requests/abc"),
                ("GET", "/_retryd/nope"), ("POST", "/_retryd/stats")]

    def test_wrong_or_missing_token_is_401_and_changes_nothing(self):
        for method, path in self.protected():
            for token in WRONG_TOKENS:
                with self.subTest(method=method, path=path, token=token):
                    r = ctl(self.rd.port, method, path, token=token)
                    self.assertEqual(r.status, 401, r)
                    if method != "HEAD":
                        obj = self.assertJsonError(r, 401, "unauthorized")
                        self.assertNotIn(TOKEN, r.body.decode("utf-8", "replace"))
                        self.assertEqual(set(obj), {"error", "message"}, obj)
        # the refused retry and delete had no effect
        time.sleep(0.5)
        obj = ctl_json(self.rd.port, "/_retryd/requests/%s" % self.rid, token=TOKEN)
        self.assertEqual((obj["state"], obj["attempts"]), ("queued", 1), obj)
        self.assertEqual(self.up.count(), 1, self.up.requests)

    def test_token_in_another_header_or_the_query_is_not_enough(self):
        for headers, path in (([("Authorization", "Basic " + TOKEN)], "/_retryd/stats"),
                              ([("Authorization", TOKEN)], "/_retryd/stats"),
                              ([("X-Retryd-Token-X", TOKEN)], "/_retryd/stats"),
                              ([], "/_retryd/stats?token=" + TOKEN),
                              ([], "/_retryd/stats?X-Retryd-Token=" + TOKEN)):
            with self.subTest(headers=headers, path=path):
                r = ctl(self.rd.port, "GET", path, headers=headers)
                self.assertJsonError(r, 401, "unauthorized")

    def test_right_token_is_accepted(self):
        port = self.rd.port
        s = ctl_json(port, "/_retryd/stats", token=TOKEN)
        self.assertEqual(s["queue"]["queued"], 1, s)
        self.assertEqual(ctl(port, "GET", "/_retryd/metrics", token=TOKEN).status, 200)
        page = ctl_json(port, "/_retryd/requests?state=queued", token=TOKEN)
        self.assertEqual([r["id"] for r in page["requests"]], [self.rid])
        self.assertEqual(ctl(port, "GET", "/_retryd/requests/%s" % fake_uuid7(),
                             token=TOKEN).status, 404)
        self.assertEqual(ctl(port, "GET", "/_retryd/requests/abc", token=TOKEN).status, 400)
        self.assertEqual(ctl(port, "GET", "/_retryd/nope", token=TOKEN).status, 404)
        # the name is case-insensitive, the value is not
        r = ctl(port, "GET", "/_retryd/stats", headers=[("x-retryd-token", TOKEN)])
        self.assertEqual(r.status, 200, r)
        # as a bearer token too (a stock Prometheus scrape config sends that)
        r = ctl(port, "GET", "/_retryd/metrics", headers=[("Authorization", "Bearer " + TOKEN)])
        self.assertEqual(r.status, 200, r)

    def test_health_and_status_page_need_no_token(self):
        r = ctl(self.rd.port, "GET", "/_retryd/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": "ok"})
        r = ctl(self.rd.port, "GET", "/_retryd/health", token="wrong")
        self.assertEqual(r.status, 200, r)
        r = ctl(self.rd.port, "GET", "/_retryd/")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("content-type") or "").startswith("text/html"), r)
        # the page itself holds no queue data: it fetches it with the token
        self.assertNotIn(self.rid.encode(), r.body)

    def test_zz_retry_and_cancel_with_the_token_work(self):
        port = self.rd.port
        self.up.push(Response(200, body=b"ok"))
        r = ctl(port, "POST", "/_retryd/requests/%s/retry" % self.rid, token=TOKEN)
        self.assertEqual(r.status, 200, r)
        wait_state(port, self.rid, "completed", token=TOKEN)
        r = send_request(port, "POST", "/api/v1/bot/?auth=2", [], b"{}")
        self.assertEqual(r.status, 202, r)
        other = r.json()["id"]
        r = ctl(port, "DELETE", "/_retryd/requests/%s" % other, token=TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["state"], "cancelled")
        self.assertEqual([q.target for q in self.up.requests],
                         ["/api/v1/bot/?auth=1", "/api/v1/bot/?auth=1", "/api/v1/bot/?auth=2"])

    def test_zzz_control_requests_never_forwarded_and_token_never_logged(self):
        for q in self.up.requests:
            self.assertFalse(q.target.startswith("/_retryd"), q)
            self.assertIsNone(q.header("x-retryd-token"), q)
        self.assertNotIn(TOKEN, self.rd.stderr_text())


class TokenFromEnvironmentTest(RetrydTestCase):

    def test_env_token(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, env={"RETRYD_ADMIN_TOKEN": "env-token-1"})
        self.assertJsonError(ctl(rd.port, "GET", "/_retryd/stats"), 401, "unauthorized")
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/stats", token="env-token-1").status, 200)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/health").status, 200)
        self.assertNothingForwarded(up, settle=0.1)


class NoTokenTest(RetrydTestCase):

    def test_without_admin_token_everything_is_open(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        for path in ("/_retryd/stats", "/_retryd/metrics", "/_retryd/requests", "/_retryd/"):
            with self.subTest(path=path):
                self.assertEqual(ctl(rd.port, "GET", path).status, 200)
                self.assertEqual(ctl(rd.port, "GET", path, token="anything").status, 200)
        self.assertNothingForwarded(up, settle=0.1)


if __name__ == "__main__":
    unittest.main()
