"""GET /_retryd/metrics: the whole output is accepted by the reference
Prometheus text parser (prometheus_client, run by /usr/bin/python3; the test
fails if it is missing -- scripts/deps.sh installs python3-prometheus-client),
every family has HELP and TYPE, and its figures are the ones /_retryd/stats
shows."""

import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, closed_port, parse_timestamp, send_request
from control_helpers import (QUEUE_STATES, ctl, ctl_json, prometheus_parse,
                             prometheus_samples)

REQUIRED = {
    "retryd_queue_requests": "gauge",
    "retryd_oldest_queued_age_seconds": "gauge",
    "retryd_upstream_latency_seconds": "histogram",
    "retryd_upstream_responses": "counter",
}

TOTALS_TO_COUNTERS = {
    "requests": "retryd_requests_total",
    "forwarded": "retryd_forwarded_total",
    "stored": "retryd_stored_total",
    "retries": "retryd_retries_total",
    "recovered": "retryd_recovered_total",
    "dead": "retryd_dead_total",
    "rejected": "retryd_rejected_total",
}


def sample(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise AssertionError("no sample %s%r; have %r" % (name, labels, sorted(
            k for k in samples if k[0].startswith(name))))
    return samples[key]


class MetricsTest(RetrydTestCase):

    def fetch(self, port):
        r = ctl(port, "GET", "/_retryd/metrics")
        self.assertEqual(r.status, 200, r)
        ctype = (r.header("content-type") or "").lower()
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertIn("version=0.0.4", ctype)
        text = r.body.decode("utf-8")
        self.assertTrue(text.endswith("\n"), "exposition must end with a newline")
        return text, prometheus_parse(text)

    def assertHelpAndType(self, text, families):
        lines = text.splitlines()
        for fam in families:
            # the parser names counters without their _total suffix
            names = [fam["name"], fam["name"] + "_total"]
            self.assertTrue(any("# TYPE %s %s" % (n, fam["type"]) in lines for n in names),
                            "no TYPE line for %s" % fam["name"])
            self.assertTrue(any(ln.startswith("# HELP %s " % n) for n in names
                                for ln in lines), "no HELP line for %s" % fam["name"])
            self.assertTrue(fam["help"], "empty HELP for %s" % fam["name"])
        types = {f["name"]: f["type"] for f in families}
        for name, typ in REQUIRED.items():
            self.assertEqual(types.get(name), typ, "family %s" % name)

    def assertHistogram(self, samples, count):
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                          if k[0] == "retryd_upstream_latency_seconds_bucket"))
        self.assertGreaterEqual(len(buckets), 5, buckets)
        self.assertEqual(buckets[-1][0], float("inf"))
        values = [v for _, v in buckets]
        self.assertEqual(values, sorted(values), "buckets are not cumulative: %r" % buckets)
        self.assertEqual(buckets[-1][1], count)
        self.assertEqual(sample(samples, "retryd_upstream_latency_seconds_count"), count)
        total = sample(samples, "retryd_upstream_latency_seconds_sum")
        self.assertGreaterEqual(total, 0)
        if count:
            self.assertGreater(total, 0)
            self.assertLess(total / count, 10, "mean latency over 10 s?")
        return buckets

    def test_validator_is_not_vacuous(self):
        with self.assertRaises(AssertionError):
            prometheus_parse("retryd_x{state=\"queued\" 1\n")
        with self.assertRaises(AssertionError):
            prometheus_parse("# TYPE retryd_x gauge\nretryd_x one\n")

    def test_empty_instance(self):
        up = self.start_upstream()
        rd = self.start_retryd(up)
        text, fams = self.fetch(rd.port)
        self.assertHelpAndType(text, fams)
        samples = prometheus_samples(fams)
        for state in QUEUE_STATES:
            self.assertEqual(sample(samples, "retryd_queue_requests", state=state), 0)
        self.assertEqual(sample(samples, "retryd_oldest_queued_age_seconds"), 0)
        self.assertHistogram(samples, 0)
        self.assertNothingForwarded(up, settle=0.1)

    def test_figures_match_stats(self):
        up = self.start_upstream()
        up.default = Response(507, body=b"full")
        rd = self.start_retryd(up, "--retry-interval", "1h", "--max-attempts", "2")
        ids = []
        for i in range(4):
            r = send_request(rd.port, "POST", "/api/v1/bot/?m=%d" % i, [], b"{}")
            self.assertEqual(r.status, 202, r)
            ids.append(r.json()["id"])
        up.push(Response(200, body=b"a"), Response(200, body=b"b"))
        for i in range(2):
            self.assertEqual(send_request(rd.port, "GET", "/api/v1/ok%d" % i).status, 200)
        up.push(Response(400, body=b"bad"))
        self.assertEqual(send_request(rd.port, "POST", "/api/v1/bad", [], b"{}").status, 400)
        # one recovered via retry, one dead, one cancelled, one still queued
        up.push(Response(201, body=b"made"))
        self.assertEqual(ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % ids[0]).status,
                         200)
        self.assertEqual(ctl(rd.port, "POST", "/_retryd/requests/%s/retry" % ids[1]).status,
                         200)
        self.assertEqual(ctl(rd.port, "DELETE", "/_retryd/requests/%s" % ids[2]).status, 200)
        deadline = time.monotonic() + 10
        while True:
            q = ctl_json(rd.port, "/_retryd/stats")["queue"]
            if q["completed"] == 1 and q["dead"] == 1:
                break
            self.assertLess(time.monotonic(), deadline, q)
            time.sleep(0.05)
        # a refused connection counts as a network error (on another instance)
        rd2 = self.start_retryd("http://127.0.0.1:%d" % closed_port(), "--retry-interval", "1h")
        self.assertEqual(send_request(rd2.port, "POST", "/x", [], b"{}").status, 202)

        for inst in (rd, rd2):
            stats = ctl_json(inst.port, "/_retryd/stats")
            t_stats = time.time()
            text, fams = self.fetch(inst.port)
            self.assertHelpAndType(text, fams)
            samples = prometheus_samples(fams)
            q = stats["queue"]
            for state in QUEUE_STATES:
                self.assertEqual(sample(samples, "retryd_queue_requests", state=state), q[state],
                                 state)
            age = sample(samples, "retryd_oldest_queued_age_seconds")
            want_age = t_stats - parse_timestamp(q["oldest_queued_at"])
            self.assertAlmostEqual(age, want_age, delta=2.0)
            self.assertGreater(age, 0)
            nxt = sample(samples, "retryd_next_attempt_timestamp_seconds")
            self.assertAlmostEqual(nxt, parse_timestamp(q["next_attempt_at"]), delta=0.002)
            for key, name in TOTALS_TO_COUNTERS.items():
                self.assertEqual(sample(samples, name), stats["totals"][key], name)
            self.assertEqual(sample(samples, "retryd_upstream_network_errors_total"),
                             stats["upstream"]["network_errors"])
            by_code = {dict(k[1])["code"]: (dict(k[1])["class"], v) for k, v in samples.items()
                       if k[0] == "retryd_upstream_responses_total"}
            self.assertEqual({c: v for c, (_, v) in by_code.items()},
                             stats["upstream"]["responses"]["by_code"])
            for code, (cls, _) in by_code.items():
                self.assertEqual(cls, code[0] + "xx")
            self.assertHistogram(samples, stats["upstream"]["latency_ms"]["count"])
            self.assertAlmostEqual(sample(samples, "retryd_uptime_seconds"), stats["uptime_s"],
                                   delta=1.0)

        s1 = ctl_json(rd.port, "/_retryd/stats")
        self.assertEqual(s1["upstream"]["responses"]["by_code"],
                         {"200": 2, "201": 1, "400": 1, "507": 5})
        self.assertEqual((s1["totals"]["recovered"], s1["totals"]["dead"]), (1, 1), s1)
        s2 = ctl_json(rd2.port, "/_retryd/stats")
        self.assertEqual(s2["upstream"]["network_errors"], 1, s2)
        # control requests were never forwarded
        for r in up.requests:
            self.assertFalse(r.target.startswith("/_retryd"), r)
        self.assertEqual(up.count(), 9, up.requests)


if __name__ == "__main__":
    unittest.main()
