"""Flow control toward the upstream (proxy/queue/route.h, route_flow.h).

With retryd's defaults (the route pauses on capacity signals): a 507, a 429
or a 503 with Retry-After pauses the route until the later of Retry-After
and --retry-interval; meanwhile new requests are stored unsent and answered
202 at once, nothing stored is sent, and once the pause is over exactly one
probe goes per interval; a final answer to it resumes the route with a ramp
(2 sends in its first step, doubling each time a step's answers are all
final, or after an interval). One log line when it pauses and one
when it resumes. --rate-limit N/DUR paces first attempts and retries alike;
--route-pause off restores one schedule per request. Stats and metrics
show the route's state."""

import json
import threading
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, control_get, send_request, wait_stored_state
from control_helpers import ctl, prometheus_parse, prometheus_samples
from test_upstream_h1_tls import TlsUpstreamMixin


class Outage:
    """An upstream handler: status (with headers) while failing, else 201
    echoing X-Marker; keeps each request's arrival time and marker."""

    def __init__(self, status=507, headers=(), delay=0.0):
        self.lock = threading.Lock()
        self.delay = delay   # each answer takes this long once recovered
        self.failing = True
        self.status, self.headers = status, list(headers)
        self.seen = []       # (monotonic time, marker, answered status)

    def __call__(self, req):
        with self.lock:
            st = self.status if self.failing else 201
            self.seen.append((time.monotonic(), req.header("x-marker"), st))
        if st != 201:
            return Response(st, headers=self.headers, body=b'{"code":"out_of_capacity"}')
        if self.delay:
            time.sleep(self.delay)
        return Response(201, body=b"created " + (req.header("x-marker") or "").encode())

    def recover(self):
        with self.lock:
            self.failing = False

    def arrivals(self):
        with self.lock:
            return list(self.seen)


def post(rd, marker, path="/api/v1/bot/"):
    return send_request(rd.port, "POST", path, [("X-Marker", marker)], b"{}")


class RouteFlowTest(RetrydTestCase):

    def route_of(self, rd):
        routes = control_get(rd.port, "/_retryd/stats").json()["routes"]
        self.assertEqual([r["name"] for r in routes], ["default"])
        return routes[0]

    def log_lines(self, rd, msg_prefix):
        out = []
        for line in rd.stderr_text().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("msg", "").startswith(msg_prefix):
                out.append(obj)
        return out

    def test_a_507_pauses_holds_new_requests_and_probes_once_per_interval(self):
        up = self.start_upstream()
        h = Outage(507)
        up.handler = h
        rd = self.start_retryd(up, "--retry-interval", "1s", route_pause=None)  # the default
        r = post(rd, "m-00")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["attempts"], 1)
        for i in range(1, 11):
            r = post(rd, "m-%02d" % i)
            self.assertEqual(r.status, 202, r)
            obj = r.json()
            self.assertEqual(obj["attempts"], 0, obj)
            self.assertIsNone(obj["last_status"], obj)
            self.assertTrue(obj["last_error"].startswith("held: the route is"), obj)
        self.assertEqual(len(h.arrivals()), 1, "held requests reached the upstream")
        route = self.route_of(rd)
        self.assertIn(route["state"], ("paused", "probing"), route)
        self.assertEqual((route["pauses"], route["held"], route["last_signal"]), (1, 10, 507))
        samples = prometheus_samples(prometheus_parse(
            ctl(rd.port, "GET", "/_retryd/metrics").body.decode()))
        self.assertEqual(samples[("retryd_route_held_total",
                                  frozenset({("route", "default")}))], 10)
        self.assertEqual(samples[("retryd_route_pauses_total",
                                  frozenset({("route", "default")}))], 1)
        self.assertEqual(sum(samples[("retryd_route_state",
                                      frozenset({("route", "default"), ("state", s)}))]
                             for s in ("paused", "probing")), 1)

        time.sleep(4.0)  # the outage goes on: one probe per interval at most
        seen = h.arrivals()
        times = [t for t, _, _ in seen]
        self.assertLessEqual(len(times) - 1, (time.monotonic() - times[0]) / 1.0,
                             "more than one probe per interval: %r" % seen)
        self.assertGreaterEqual(len(times) - 1, 2, "the paused route was never probed: %r" % seen)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(g >= 0.9 for g in gaps), gaps)

        h.delay = 0.3
        h.recover()
        t_recovered = time.monotonic()
        deadline = t_recovered + 15
        while time.monotonic() < deadline:
            done = {m for _, m, st in h.arrivals() if st == 201}
            if len(done) == 11:
                break
            time.sleep(0.1)
        delivered = [(t, m) for t, m, st in h.arrivals() if st == 201]
        self.assertEqual(sorted(m for _, m in delivered), ["m-%02d" % i for i in range(11)],
                         "each stored request delivered once")
        # The ramp, clocked by the answers (each takes 0.3 s now): the probe
        # alone, then a step of 2, then 4, then the rest.
        first = delivered[0][0]
        waves = [len([t for t, _ in delivered if lo <= t - first < lo + 0.25])
                 for lo in (0.0, 0.3, 0.6)]
        self.assertEqual(waves[0], 1, delivered)
        self.assertLessEqual(waves[1], 2, delivered)
        self.assertLessEqual(waves[2], 4, delivered)
        self.assertEqual(len(self.log_lines(rd, "route paused")), 1)
        self.assertEqual(len(self.log_lines(rd, "route resumed")), 1)
        self.assertIn(self.route_of(rd)["state"], ("ramping", "open"))

    def test_a_429_with_retry_after_pauses_until_it(self):
        up = self.start_upstream()
        h = Outage(429, headers=[("Retry-After", "3")])
        up.handler = h
        rd = self.start_retryd(up, "--retry-interval", "1s", route_pause="on")
        t0 = time.monotonic()
        self.assertEqual(post(rd, "a").status, 202)
        self.assertEqual(post(rd, "b").status, 202)
        time.sleep(2.5)
        self.assertEqual(len(h.arrivals()), 1, "sent while Retry-After said to wait")
        h.recover()
        wait_until = time.monotonic() + 10
        while len(h.arrivals()) < 2 and time.monotonic() < wait_until:
            time.sleep(0.05)
        self.assertGreaterEqual(h.arrivals()[1][0] - t0, 2.9, h.arrivals())

    def test_a_503_without_retry_after_does_not_pause(self):
        up = self.start_upstream()
        h = Outage(503)
        up.handler = h
        rd = self.start_retryd(up, "--retry-interval", "1h", route_pause="on")
        for i in range(5):
            self.assertEqual(post(rd, "m%d" % i).status, 202)
        self.assertEqual(len(h.arrivals()), 5)
        self.assertEqual(self.route_of(rd)["state"], "open")

    def test_route_pause_off_sends_every_request(self):
        up = self.start_upstream()
        h = Outage(507)
        up.handler = h
        rd = self.start_retryd(up, "--retry-interval", "1h", route_pause="off")
        for i in range(5):
            r = post(rd, "m%d" % i)
            self.assertEqual((r.status, r.json()["attempts"]), (202, 1))
        self.assertEqual(len(h.arrivals()), 5)
        route = self.route_of(rd)
        self.assertEqual((route["state"], route["pause_on_capacity"]), ("open", False))

    def test_retry_now_ends_a_pause_with_a_probe(self):
        up = self.start_upstream()
        h = Outage(507)
        up.handler = h
        rd = self.start_retryd(up, "--retry-interval", "1h", route_pause="on")
        rid = post(rd, "first").json()["id"]
        held = post(rd, "held").json()
        self.assertEqual(held["attempts"], 0, held)
        h.recover()
        r = send_request(rd.port, "POST", "/_retryd/requests/%s/retry" % rid)
        self.assertEqual(r.status, 200, r)
        wait_stored_state(rd.port, rid, "completed", timeout=5)
        wait_stored_state(rd.port, held["id"], "completed", timeout=5)

    def test_a_rate_limit_paces_first_attempts_and_retries_alike(self):
        up = self.start_upstream()
        h = Outage(507)
        h.recover()  # 201 throughout
        up.handler = h
        rd = self.start_retryd(up, "--rate-limit", "5/1s", "--retry-interval", "1s",
                               route_pause="on")
        statuses = [post(rd, "r%02d" % i).status for i in range(20)]
        # Spread evenly (one send every 200 ms): the first goes, the others
        # sent at once are held and follow at that pace.
        self.assertEqual(statuses[0], 201, statuses)
        self.assertEqual(statuses.count(202), 20 - statuses.count(201), statuses)
        self.assertGreaterEqual(statuses.count(202), 15, statuses)
        deadline = time.monotonic() + 15
        while len(h.arrivals()) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = h.arrivals()
        self.assertEqual(sorted(m for _, m, _ in seen), ["r%02d" % i for i in range(20)])
        times = [t for t, _, _ in seen]
        for t in times:  # 5 a second in any second (and a little slack for timers)
            in_window = [u for u in times if t <= u < t + 0.95]
            self.assertLessEqual(len(in_window), 5, "over the limit: %r" % times)
        self.assertLess(times[-1] - times[0], 5.0, "slower than the limit allows: %r" % times)
        route = self.route_of(rd)
        self.assertEqual(route["rate_limit"]["limit"], 5)
        self.assertEqual(route["held"], statuses.count(202))

    def test_a_bad_rate_limit_is_refused_at_start(self):
        for bad in ("5", "x/1s", "5/x", "0/1s", "5/0s"):
            rd = self.start_retryd_expect_exit(bad)
            self.assertEqual(rd[0], 2, bad)
            self.assertIn("--rate-limit", rd[1], bad)

    def start_retryd_expect_exit(self, value):
        import subprocess
        from harness import retryd_bin
        p = subprocess.run([retryd_bin(), "--rate-limit", value], capture_output=True,
                           text=True, timeout=10)
        return p.returncode, p.stderr


# The same over the production path: retryd's own client over TLS, and
# libcurl for HTTP/2 (the route hears the same answers from either).
class RouteFlowOverTlsTest(TlsUpstreamMixin, RouteFlowTest):
    pass


class RouteFlowOverTlsCurlTest(TlsUpstreamMixin, RouteFlowTest):
    def start_retryd(self, upstream, *args, **kw):
        return super().start_retryd(upstream, "--upstream-http2", "on", *args, **kw)


if __name__ == "__main__":
    unittest.main()
