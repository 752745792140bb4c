"""Scoped tokens. --admin-token may do everything; --read-token may read
what an application needs (GET and HEAD of one request, its stored answer,
listings, stats, metrics; health is open to all) and nothing else: a cancel,
a retry, any method that could change state is 403 with a JSON error saying
what the token may do, and changes nothing. Either token is accepted in
X-Retryd-Token or as Authorization: Bearer (a stock Prometheus scrape
config). --metrics-open on leaves GET /_retryd/metrics readable without a
token. With only --read-token set, nothing may change state: no token can.
Tokens never appear in logs or in the control API's answers."""

import subprocess
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, child_env, retryd_bin, send_request
from control_helpers import ctl, fake_uuid7, wait_state

ADMIN = "adm1n-CANARY-T0ken"
READER = "r3ad-CANARY-T0ken"


def bearer(token):
    return [("Authorization", "Bearer " + token)]


class ScopedTokensTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.up.default = Response(507, body=b"full")
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "1h", "--admin-token", ADMIN,
                                  "--read-token", READER)
        r = send_request(cls.rd.port, "POST", "/api/v1/bot/", [], b"{}")
        assert r.status == 202, r
        cls.rid = r.json()["id"]
        cls.up.wait_for_requests(1)

    def reads(self):
        rid = self.rid
        return [("GET", "/_retryd/requests/%s" % rid), ("HEAD", "/_retryd/requests/%s" % rid),
                ("GET", "/_retryd/requests/%s/response" % rid),
                ("GET", "/_retryd/requests"), ("GET", "/_retryd/requests?state=queued&limit=5"),
                ("GET", "/_retryd/stats"), ("HEAD", "/_retryd/stats"), ("GET", "/_retryd/metrics")]

    def writes(self):
        rid = self.rid
        return [("DELETE", "/_retryd/requests/%s" % rid),
                ("POST", "/_retryd/requests/%s/retry" % rid),
                ("PUT", "/_retryd/requests/%s" % rid), ("POST", "/_retryd/stats"),
                ("DELETE", "/_retryd/requests/%s" % fake_uuid7())]

    def assert_unchanged(self):
        time.sleep(0.3)
        r = ctl(self.rd.port, "GET", "/_retryd/requests/%s" % self.rid, token=ADMIN)
        obj = r.json()
        self.assertEqual((obj["state"], obj["attempts"]), ("queued", 1), obj)
        self.assertEqual(self.up.count(), 1, self.up.requests)

    def test_read_token_reads_in_either_field(self):
        for method, path in self.reads():
            for how in ("x-retryd-token", "bearer"):
                with self.subTest(method=method, path=path, how=how):
                    if how == "bearer":
                        r = ctl(self.rd.port, method, path, headers=bearer(READER))
                    else:
                        r = ctl(self.rd.port, method, path, token=READER)
                    # the answer's own status: /response of a queued request is 409
                    want = 409 if path.endswith("/response") else 200
                    self.assertEqual(r.status, want, r)

    def test_read_token_cannot_change_anything(self):
        for method, path in self.writes():
            for how in ("x-retryd-token", "bearer"):
                with self.subTest(method=method, path=path, how=how):
                    if how == "bearer":
                        r = ctl(self.rd.port, method, path, headers=bearer(READER))
                    else:
                        r = ctl(self.rd.port, method, path, token=READER)
                    obj = self.assertJsonError(r, 403, "forbidden")
                    self.assertEqual(set(obj), {"error", "message"}, obj)
                    self.assertIn("read", obj["message"])
                    self.assertIn("GET", obj["message"])
                    self.assertNotIn(READER, r.body.decode())
        self.assert_unchanged()

    def test_missing_or_wrong_token_is_401_for_reads_and_writes(self):
        for method, path in self.reads() + self.writes():
            for headers in ([], [("X-Retryd-Token", "wrong")], bearer("wrong"),
                            [("Authorization", "Basic " + ADMIN)], [("Authorization", ADMIN)]):
                with self.subTest(method=method, path=path, headers=headers):
                    r = ctl(self.rd.port, method, path, headers=headers)
                    self.assertEqual(r.status, 401, r)
                    self.assertIn("Bearer", " ".join(r.header_all("www-authenticate")), r)
                    if method != "HEAD":
                        self.assertJsonError(r, 401, "unauthorized")
        self.assert_unchanged()

    def test_admin_token_reads_in_either_field(self):
        for method, path in self.reads():
            with self.subTest(method=method, path=path):
                want = 409 if path.endswith("/response") else 200
                self.assertEqual(ctl(self.rd.port, method, path, token=ADMIN).status, want)
                self.assertEqual(ctl(self.rd.port, method, path, headers=bearer(ADMIN)).status,
                                 want)

    def test_health_needs_no_token(self):
        self.assertEqual(ctl(self.rd.port, "GET", "/_retryd/health").status, 200)

    def test_zz_admin_token_as_bearer_retries_and_cancels(self):
        port = self.rd.port
        self.up.push(Response(200, body=b"done"))
        r = ctl(port, "POST", "/_retryd/requests/%s/retry" % self.rid, headers=bearer(ADMIN))
        self.assertEqual(r.status, 200, r)
        wait_state(port, self.rid, "completed", token=READER)
        r = send_request(port, "POST", "/api/v1/bot/?n=2", [], b"{}")
        self.assertEqual(r.status, 202, r)
        r = ctl(port, "DELETE", "/_retryd/requests/%s" % r.json()["id"], headers=bearer(ADMIN))
        self.assertEqual((r.status, r.json()["state"]), (200, "cancelled"), r)

    def test_zzz_tokens_never_logged_nor_shown(self):
        port = self.rd.port
        for path in ("/_retryd/stats", "/_retryd/metrics", "/_retryd/requests",
                     "/_retryd/requests/%s" % self.rid, "/_retryd/"):
            body = ctl(port, "GET", path, token=ADMIN).body.decode("utf-8", "replace")
            self.assertNotIn(ADMIN, body)
            self.assertNotIn(READER, body)
        text = self.rd.stderr_text()
        self.assertNotIn("CANARY", text)


class MetricsOpenTest(RetrydTestCase):

    def test_metrics_open_leaves_only_the_metrics_readable_without_a_token(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--admin-token", ADMIN, "--read-token", READER,
                               "--metrics-open", "on")
        r = ctl(rd.port, "GET", "/_retryd/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"retryd_", r.body)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/metrics", token="wrong").status, 200)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/stats").status, 401)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/requests").status, 401)
        self.assertEqual(ctl(rd.port, "POST", "/_retryd/metrics").status, 401)
        self.assertNothingForwarded(up, settle=0.1)

    def test_metrics_closed_by_default(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--read-token", READER)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/metrics").status, 401)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/metrics", headers=bearer(READER)).status,
                         200)

    def test_from_the_environment(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, env={"RETRYD_READ_TOKEN": READER, "RETRYD_ADMIN_TOKEN": ADMIN,
                                        "RETRYD_METRICS_OPEN": "on"})
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/metrics").status, 200)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/stats").status, 401)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/stats", token=READER).status, 200)
        self.assertEqual(ctl(rd.port, "DELETE", "/_retryd/requests/%s" % fake_uuid7(),
                             token=READER).status, 403)
        self.assertEqual(ctl(rd.port, "DELETE", "/_retryd/requests/%s" % fake_uuid7(),
                             token=ADMIN).status, 404)


class ReadTokenAloneTest(RetrydTestCase):
    """Setting a read token must never leave an open write API: with no
    admin token, nothing may change state, whatever is sent."""

    def test_only_a_read_token_reads_and_nobody_writes(self):
        up = self.start_upstream()
        up.default = Response(507, body=b"full")
        rd = self.start_retryd(up, "--retry-interval", "1h", "--read-token", READER)
        r = send_request(rd.port, "POST", "/api/v1/bot/", [], b"{}")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/requests/%s" % rid, token=READER).status,
                         200)
        self.assertEqual(ctl(rd.port, "GET", "/_retryd/requests/%s" % rid).status, 401)
        for method, path in (("DELETE", "/_retryd/requests/%s" % rid),
                             ("POST", "/_retryd/requests/%s/retry" % rid)):
            with self.subTest(method=method):
                r = ctl(rd.port, method, path, token=READER)
                obj = self.assertJsonError(r, 403, "forbidden")
                self.assertIn("--admin-token", obj["message"])
                self.assertEqual(ctl(rd.port, method, path).status, 401)
                self.assertEqual(ctl(rd.port, method, path, token="").status, 401)
        obj = ctl(rd.port, "GET", "/_retryd/requests/%s" % rid, token=READER).json()
        self.assertEqual((obj["state"], obj["attempts"]), ("queued", 1), obj)
        self.assertEqual(up.count(), 1)


class TokenStartupTest(RetrydTestCase):

    def open_api_warnings(self, rd):
        rd.wait_log(lambda o: o.get("msg") == "started")
        time.sleep(0.2)
        return [o for o in rd.log_json() if o.get("level") == "warn"
                and "control API" in o.get("msg", "")]

    def test_a_read_token_alone_silences_the_open_network_warning(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--read-token", READER, listen="0.0.0.0:0")
        self.assertEqual(self.open_api_warnings(rd), [], rd.stderr_text())
        self.assertNotIn(READER, rd.stderr_text())

    def test_an_admin_token_alone_silences_it_too(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--admin-token", ADMIN, listen="0.0.0.0:0")
        self.assertEqual(self.open_api_warnings(rd), [], rd.stderr_text())

    def test_without_either_token_the_warning_names_both(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, listen="0.0.0.0:0")
        found = self.open_api_warnings(rd)
        self.assertEqual(len(found), 1, rd.stderr_text())
        self.assertIn("--admin-token", found[0]["msg"])
        self.assertIn("--read-token", found[0]["msg"])

    def test_the_same_token_for_both_is_refused(self):
        p = subprocess.run([retryd_bin(), "--upstream", "http://127.0.0.1:9", "--listen",
                            "127.0.0.1:0", "--admin-token", ADMIN, "--read-token", ADMIN],
                           env=child_env(), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=10, cwd="/tmp")
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("--read-token", err)
        self.assertIn("--admin-token", err)
        self.assertNotIn(ADMIN, err)


if __name__ == "__main__":
    unittest.main()
