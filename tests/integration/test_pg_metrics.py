"""Stats and metrics of replicas sharing one PostgreSQL queue.

Each replica names itself (/_retryd/stats "replica"); the queue's figures
are the shared queue's, the same on every replica and without a replica
label; everything a replica counts itself (requests, retries, upstream
answers and latency, uptime) is labelled replica="<its name>" in
/_retryd/metrics, so the series of several replicas never collide in one
Prometheus. The output is checked by the reference parser."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))

from fake_upstream import Response  # noqa: E402
from harness import RetrydTestCase, send_request  # noqa: E402
from control_helpers import ctl, ctl_json, prometheus_parse, prometheus_samples  # noqa: E402
from pg_cluster import OwnClusterMixin  # noqa: E402

# Families a replica counts itself: every sample of them carries its label.
OWN_FAMILIES = ("retryd_requests", "retryd_forwarded", "retryd_stored", "retryd_retries",
                "retryd_recovered", "retryd_dead", "retryd_rejected",
                "retryd_upstream_network_errors", "retryd_upstream_resent",
                "retryd_upstream_responses", "retryd_upstream_latency_seconds",
                "retryd_uptime_seconds",
                # a route's flow is each replica's own too
                "retryd_route_state", "retryd_route_pauses", "retryd_route_held")
SHARED_FAMILIES = ("retryd_queue_requests", "retryd_oldest_queued_age_seconds",
                   "retryd_next_attempt_timestamp_seconds")


class PgMetricsTest(OwnClusterMixin, RetrydTestCase):

    def metrics(self, port):
        r = ctl(port, "GET", "/_retryd/metrics")
        self.assertEqual(r.status, 200, r)
        return prometheus_parse(r.body.decode("utf-8"))

    def test_replicas_label_their_own_figures_and_share_the_queues(self):
        dsn = self.fresh_db("metrics")
        up = self.start_upstream()
        up.default = Response(503)
        a = self.start_retryd(up, "--retry-interval", "1h", db=dsn)
        b = self.start_retryd(up, "--retry-interval", "1h", db=dsn)
        for i in range(3):
            self.assertEqual(send_request(a.port, "POST", "/a%d" % i, body=b"{}").status, 202)
        self.assertEqual(send_request(b.port, "POST", "/b", body=b"{}").status, 202)

        sa, sb = ctl_json(a.port, "/_retryd/stats"), ctl_json(b.port, "/_retryd/stats")
        self.assertRegex(sa.get("replica", ""), r"^[A-Za-z0-9.-]+-[0-9a-f]{8}$", sa)
        self.assertRegex(sb.get("replica", ""), r"^[A-Za-z0-9.-]+-[0-9a-f]{8}$", sb)
        self.assertNotEqual(sa["replica"], sb["replica"])
        self.assertEqual((sa["totals"]["stored"], sb["totals"]["stored"]), (3, 1))
        self.assertEqual(sa["queue"]["queued"], 4, sa)  # the shared queue
        self.assertEqual(sb["queue"]["queued"], 4, sb)

        for port, stats in ((a.port, sa), (b.port, sb)):
            families = self.metrics(port)
            names = {f["name"] for f in families}
            for fam in OWN_FAMILIES + SHARED_FAMILIES:
                self.assertIn(fam, names)
            for f in families:
                for name, labels, _ in f["samples"]:
                    if f["name"] in OWN_FAMILIES:
                        self.assertEqual(labels.get("replica"), stats["replica"],
                                         "%s%r" % (name, labels))
                    else:
                        self.assertNotIn("replica", labels, "%s%r" % (name, labels))
            samples = prometheus_samples(families)
            own = frozenset({("replica", stats["replica"])})
            self.assertEqual(samples[("retryd_stored_total", own)], stats["totals"]["stored"])
            queued = frozenset({("state", "queued")})
            self.assertEqual(samples[("retryd_queue_requests", queued)], 4)
            self.assertEqual(
                samples[("retryd_upstream_responses_total",
                         frozenset({("replica", stats["replica"]), ("code", "503"),
                                    ("class", "5xx")}))],
                stats["totals"]["stored"])


if __name__ == "__main__":
    unittest.main()
