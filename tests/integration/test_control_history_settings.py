"""GET /_retryd/settings: the settings in force, never a secret; and
GET /_retryd/history: the sampler's ring of per-period samples (a minute;
shortened here through RETRYD_TEST_HISTORY_PERIOD_MS) plus the period in
progress, never more than 60 samples. Both need a token like the rest of
the control API (the read token is enough) and only answer GET and HEAD."""

import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, send_request
from control_helpers import ctl, ctl_json, wait_until

ADMIN = "admin-tok-e5f1"
READ = "read-tok-0b2c"


class SettingsTest(RetrydTestCase):

    def test_settings_in_force_without_secrets(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--retry-interval", "45s", "--retry-on", "507,503,network",
                               "--max-attempts", "7", "--max-age", "2h",
                               "--retry-concurrency", "3", "--admin-token", ADMIN,
                               "--read-token", READ)
        r = ctl(rd.port, "GET", "/_retryd/settings", token=READ)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "application/json")
        body = r.body.decode()
        for secret in (ADMIN, READ):
            self.assertNotIn(secret, body)
        s = r.json()
        self.assertEqual(s["upstream"], up.url.rstrip("/"))
        self.assertRegex(s["listen"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(s["retry_interval_ms"], 45000)
        self.assertEqual(s["retry_on"], ["503", "507", "network"])
        self.assertEqual(s["max_attempts"], 7)
        self.assertEqual(s["max_age_ms"], 7200000)
        self.assertEqual(s["retry_concurrency"], 3)
        self.assertIn(s["store"], ("sqlite", "postgres"))
        self.assertIs(s["admin_token"], True)
        self.assertIs(s["read_token"], True)
        self.assertEqual(s["routes"], 0)

    def test_defaults_say_no_limit_as_null(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        s = ctl_json(rd.port, "/_retryd/settings")
        self.assertIsNone(s["max_attempts"])
        self.assertEqual(s["retry_on"], ["429", "5xx", "network"])
        self.assertIs(s["admin_token"], False)

    def test_settings_and_history_need_a_token_and_only_read(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--admin-token", ADMIN, "--read-token", READ)
        for path in ("/_retryd/settings", "/_retryd/history"):
            with self.subTest(path=path):
                self.assertJsonError(ctl(rd.port, "GET", path), 401, "unauthorized")
                self.assertEqual(ctl(rd.port, "GET", path, token=READ).status, 200)
                self.assertEqual(ctl(rd.port, "GET", path, token=ADMIN).status, 200)
                r = ctl(rd.port, "POST", path, token=ADMIN)
                self.assertJsonError(r, 405, "method_not_allowed")


class HistoryTest(RetrydTestCase):

    def test_the_period_in_progress_counts_what_happened(self):
        up = self.start_upstream()
        up.handler = lambda req: Response(201) if req.target.startswith("/ok") else None
        up.default = Response(507, body=b"full")
        rd = self.start_retryd(up, "--retry-interval", "1h")
        for i in range(4):
            self.assertEqual(send_request(rd.port, "POST", "/bot/%d" % i, [], b"{}").status, 202)
        self.assertEqual(send_request(rd.port, "GET", "/ok", [], b"").status, 201)
        h = ctl_json(rd.port, "/_retryd/history")
        self.assertEqual(h["period_s"], 60)
        self.assertEqual(h["slots"], 60)
        self.assertEqual(h["samples"], [], "no minute has ended yet")
        c = h["current"]
        self.assertEqual(c["queued"], 4)
        self.assertEqual(c["stored"], 4)
        self.assertEqual(c["delivered"], 0)
        self.assertEqual(c["answers"], {"2xx": 1, "3xx": 0, "4xx": 0, "5xx": 4, "network": 0})
        self.assertRegex(c["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_samples_keep_the_last_sixty_periods_oldest_first(self):
        up = self.start_upstream()
        up.default = Response(507, body=b"full")
        rd = self.start_retryd(up, "--retry-interval", "1h",
                               env={"RETRYD_TEST_HISTORY_PERIOD_MS": "100"})
        self.assertEqual(send_request(rd.port, "POST", "/bot", [], b"{}").status, 202)
        wait_until(lambda: len(ctl_json(rd.port, "/_retryd/history")["samples"]) >= 3,
                   timeout=10, what="three samples")
        h = ctl_json(rd.port, "/_retryd/history")
        self.assertAlmostEqual(h["period_s"], 0.1)
        self.assertEqual(sum(s["stored"] for s in h["samples"]) + h["current"]["stored"], 1)
        self.assertEqual(h["samples"][-1]["queued"], 1, "each sample counts the queued rows")
        wait_until(lambda: len(ctl_json(rd.port, "/_retryd/history")["samples"]) >= 60,
                   timeout=30, what="sixty samples")
        time.sleep(0.5)  # five more periods: the oldest go
        h = ctl_json(rd.port, "/_retryd/history")
        self.assertEqual(len(h["samples"]), 60)
        ats = [s["at"] for s in h["samples"]] + [h["current"]["at"]]
        self.assertEqual(ats, sorted(ats), "samples oldest first, then the current one")
        self.assertEqual(len(set(ats)), len(ats))
        self.assertEqual(sum(s["stored"] for s in h["samples"]), 0,
                         "the period that stored the request has left the ring")


if __name__ == "__main__":
    unittest.main()
