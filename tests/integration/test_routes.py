"""Routes from a --config file (proxy/routes_file.h, proxy/queue/route.h).

A route matches requests by method, path prefix and header and names its
upstream, so one retryd fronts several APIs; requests that match none go to
--upstream as before. Each route has its own policy (retryable set,
interval, methods stored, in-path retries for the others) and its own flow:
a pause on capacity signals and a rate limit, per partition when the limit
is partitioned by a header (Recall counts per API key). Mistakes in the
file stop start-up with exit status 2 and FILE:LINE: route "NAME": FIELD.

Every test runs with retryd's own client over plain HTTP and TLS, and with
libcurl (HTTP/2 by ALPN): routes are the production path's too."""

import os
import subprocess
import tempfile
import threading
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, control_get, retryd_bin, send_request, wait_stored_state
from test_upstream_h1_tls import TlsUpstreamMixin


def write_config(test, text):
    d = tempfile.mkdtemp(prefix="retryd-routes-")
    test.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
    path = os.path.join(d, "routes.cfg")
    with open(path, "w") as f:
        f.write(text)
    return path


class Recorder:
    """An upstream handler that answers from a script per path and keeps
    (time, method, target, authorization) of every request."""

    def __init__(self, answer):
        self.answer = answer
        self.lock = threading.Lock()
        self.seen = []

    def __call__(self, req):
        with self.lock:
            self.seen.append((time.monotonic(), req.method, req.target,
                              req.header("authorization")))
        return self.answer(req)

    def targets(self):
        with self.lock:
            return [t for _, _, t, _ in self.seen]

    def by_key(self):
        with self.lock:
            out = {}
            for t, _, _, k in self.seen:
                out.setdefault(k, []).append(t)
            return out


class RoutesTest(RetrydTestCase):

    def stats_routes(self, rd):
        return {r["name"]: r for r in control_get(rd.port, "/_retryd/stats").json()["routes"]}

    def test_two_upstreams_by_path_prefix_first_attempts_and_retries(self):
        default_up = self.start_upstream()
        eu_up = self.start_upstream()
        default_rec = Recorder(lambda req: Response(200, body=b"default " + req.target.encode()))
        eu_state = {"n": 0}

        def eu_answer(req):
            eu_state["n"] += 1
            if eu_state["n"] == 1:
                return Response(507, body=b"no bots")
            return Response(201, body=b"eu " + req.target.encode())
        eu_rec = Recorder(eu_answer)
        default_up.handler, eu_up.handler = default_rec, eu_rec
        cfg = write_config(self, """
            routes = (
              { name = "eu";
                path_prefix = "/eu";
                strip_prefix = true;
                upstream = "%s";
                retry_interval = "1s"; }
            );
        """ % eu_up.url)
        rd = self.start_retryd(default_up, "--config", cfg, "--retry-interval", "30s")

        r = send_request(rd.port, "GET", "/api/v1/bot/?a=1")
        self.assertEqual((r.status, r.body), (200, b"default /api/v1/bot/?a=1"))
        # "/europe" is not under the segment "/eu": the default route's.
        r = send_request(rd.port, "GET", "/europe")
        self.assertEqual((r.status, r.body), (200, b"default /europe"))

        r = send_request(rd.port, "POST", "/eu/api/v1/bot/", [], b"{}")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        # The retry goes to the route's upstream, after the route's 1 s.
        row = wait_stored_state(rd.port, rid, "completed", timeout=10)
        self.assertEqual(row["response_status"], 201)
        self.assertEqual(row["path"], "/eu/api/v1/bot/")
        self.assertEqual(eu_rec.targets(), ["/api/v1/bot/", "/api/v1/bot/"])
        self.assertEqual(default_rec.targets(), ["/api/v1/bot/?a=1", "/europe"])
        r = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
        self.assertEqual((r.status, r.body), (201, b"eu /api/v1/bot/"))

        routes = self.stats_routes(rd)
        self.assertEqual(sorted(routes), ["default", "eu"])
        self.assertEqual(routes["eu"]["upstream"], eu_up.url)
        self.assertEqual(routes["eu"]["match"]["path_prefix"], "/eu")
        self.assertEqual(routes["default"]["upstream"], default_up.url)
        self.assertEqual(routes["eu"]["queued"], 0)

    def test_a_header_chooses_the_route(self):
        a_up, b_up = self.start_upstream(), self.start_upstream()
        a_up.handler = lambda req: Response(200, body=b"a")
        b_up.handler = lambda req: Response(200, body=b"b")
        cfg = write_config(self, """
            routes = ( { name = "beta"; header = "X-Region: beta"; upstream = "%s"; } );
        """ % b_up.url)
        rd = self.start_retryd(a_up, "--config", cfg)
        self.assertEqual(send_request(rd.port, "GET", "/x", [("X-Region", "beta")]).body, b"b")
        self.assertEqual(send_request(rd.port, "GET", "/x", [("X-Region", "alpha")]).body, b"a")
        self.assertEqual(send_request(rd.port, "GET", "/x").body, b"a")

    def test_policy_per_route_retryable_set_and_methods_stored(self):
        up = self.start_upstream()
        rec = Recorder(lambda req: Response(503, headers=[("X-Why", "load")], body=b"busy"))
        up.handler = rec
        cfg = write_config(self, """
            routes = (
              { name = "bots";
                path_prefix = "/api/v1/bot/";
                store_methods = [ "POST" ];
                in_path_retries = 2;
                in_path_delay = "50ms";
                retry_on = "503";
                max_attempts = 2;
                retry_interval = "1s"; }
            );
        """)
        rd = self.start_retryd(up, "--config", cfg)
        # GET is not stored on this route: tried 3 times in the path, then
        # the retryable answer is relayed as it is.
        r = send_request(rd.port, "GET", "/api/v1/bot/123/")
        self.assertEqual((r.status, r.body, r.header("x-why")), (503, b"busy", "load"))
        self.assertEqual(rec.targets(), ["/api/v1/bot/123/"] * 3)
        # POST is stored, and dies after the route's 2 attempts.
        r = send_request(rd.port, "POST", "/api/v1/bot/", [], b"{}")
        self.assertEqual(r.status, 202, r)
        row = wait_stored_state(rd.port, r.json()["id"], "dead", timeout=10)
        self.assertEqual(row["attempts"], 2)
        # The route retries only 503: a 500 is its final answer, relayed.
        rec.answer = lambda req: Response(500, body=b"broken")
        r = send_request(rd.port, "POST", "/api/v1/bot/", [], b"{}")
        self.assertEqual((r.status, r.body), (500, b"broken"))
        # Outside the route, the command line's policy: 500 is stored.
        r = send_request(rd.port, "POST", "/other", [], b"{}")
        self.assertEqual(r.status, 202, r)

    def test_a_partitioned_route_pauses_and_paces_per_key(self):
        up = self.start_upstream()
        # Key A's workspace is out of bots; key B's is fine.
        rec = Recorder(lambda req: Response(507, body=b"no bots")
                       if req.header("authorization") == "Token A"
                       else Response(201, body=b"created"))
        up.handler = rec
        cfg = write_config(self, """
            routes = (
              { name = "recall-bots";
                methods = [ "POST" ];
                path_prefix = "/api/v1/bot/";
                retry_interval = "1s";
                rate_limit = "4/1s";
                rate_limit_by = "Authorization";
                pause = true; }
            );
        """)
        rd = self.start_retryd(up, "--config", cfg)
        r = send_request(rd.port, "POST", "/api/v1/bot/", [("Authorization", "Token A")], b"{}")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["attempts"], 1)
        # A's partition is paused: A's next requests are held unsent...
        for _ in range(3):
            r = send_request(rd.port, "POST", "/api/v1/bot/", [("Authorization", "Token A")],
                             b"{}")
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json()["attempts"], 0, r.json())
        # ... and B's go straight through, paced at 4 a second.
        t0 = time.monotonic()
        statuses = []
        for _ in range(8):
            r = send_request(rd.port, "POST", "/api/v1/bot/", [("Authorization", "Token B")],
                             b"{}")
            statuses.append(r.status)
        # Over B's limit, a first attempt is held (202) rather than sent to
        # collect a 429; held ones go out as the limit allows.
        self.assertIn(201, statuses)
        b_times = rec.by_key().get("Token B", [])
        deadline = time.monotonic() + 10
        while len(rec.by_key().get("Token B", [])) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        b_times = rec.by_key()["Token B"]
        self.assertEqual(len(b_times), 8, rec.by_key())
        # No window of 1 s holds more than 4 of B's sends (a little slack
        # for the timer).
        for i in range(len(b_times)):
            in_window = [t for t in b_times if b_times[i] <= t < b_times[i] + 0.95]
            self.assertLessEqual(len(in_window), 4, b_times)
        self.assertGreaterEqual(b_times[-1] - t0, 0.9, b_times)
        # A's partition sent one probe per interval at most.
        time.sleep(2.5)
        a_times = rec.by_key()["Token A"]
        self.assertLessEqual(len(a_times) - 1, (time.monotonic() - a_times[0]) / 1.0 + 0.5,
                             a_times)
        route = self.stats_routes(rd)["recall-bots"]
        self.assertEqual(route["partitions"], 2, route)
        self.assertEqual(route["partitions_paused"] + sum(
            1 for p in route["partition_list"] if p["state"] == "probing"), 1, route)
        self.assertEqual(route["rate_limit"]["by"], "Authorization")
        self.assertGreaterEqual(route["queued"], 3, route)
        # The API key never appears: the partition is its hash.
        self.assertNotIn("Token A", control_get(rd.port, "/_retryd/stats").body.decode())
        self.assertNotIn("Token", rd.stderr_text())

    def test_exponential_backoff_spreads_retries(self):
        up = self.start_upstream()
        rec = Recorder(lambda req: Response(503, body=b"busy"))
        up.handler = rec
        cfg = write_config(self, """
            routes = ( { name = "slow"; retry_interval = "200ms"; backoff = "exponential";
                         backoff_cap = "800ms"; max_attempts = 5; } );
        """)
        rd = self.start_retryd(up, "--config", cfg)
        r = send_request(rd.port, "POST", "/x", [], b"{}")
        self.assertEqual(r.status, 202, r)
        wait_stored_state(rd.port, r.json()["id"], "dead", timeout=15)
        times = [t for t, _, _, _ in rec.seen]
        self.assertEqual(len(times), 5)
        gaps = [b - a for a, b in zip(times, times[1:])]
        # Waits of 200, 400, 800, 800 ms with jitter: each in [half, whole].
        for gap, d in zip(gaps, (0.2, 0.4, 0.8, 0.8)):
            self.assertGreaterEqual(gap, d / 2 - 0.05, gaps)
            self.assertLessEqual(gap, d + 0.6, gaps)
        self.assertGreater(gaps[2], gaps[0], gaps)


    def test_the_recall_example_in_deploy_routes_regions_and_paces_create_bot(self):
        us, eu = self.start_upstream(), self.start_upstream()
        us_rec = Recorder(lambda req: Response(201, body=b"us"))
        eu_rec = Recorder(lambda req: Response(201, body=b"eu"))
        us.handler, eu.handler = us_rec, eu_rec
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "..", "deploy", "recall-routes.cfg")) as f:
            text = f.read()
        text = text.replace("https://us-east-1.recall.ai", us.url)
        text = text.replace("https://eu-central-1.recall.ai", eu.url)
        cfg = write_config(self, text)
        rd = self.start_retryd(us, "--config", cfg)
        key = [("Authorization", "Token k1")]
        self.assertEqual(send_request(rd.port, "POST", "/eu-central-1/api/v1/bot/", key,
                                      b"{}").body, b"eu")
        self.assertEqual(send_request(rd.port, "GET", "/us-east-1/api/v1/bot/42/", key).body,
                         b"us")
        self.assertEqual(eu_rec.targets(), ["/api/v1/bot/"])
        self.assertEqual(us_rec.targets(), ["/api/v1/bot/42/"])
        routes = self.stats_routes(rd)
        self.assertEqual(sorted(routes),
                         ["default", "eu", "eu-create-bot", "us", "us-create-bot"])
        bots = routes["eu-create-bot"]
        self.assertEqual(bots["rate_limit"]["limit"], 120)
        self.assertEqual(bots["rate_limit"]["period_ms"], 60000)
        self.assertEqual(bots["rate_limit"]["by"], "Authorization")
        self.assertTrue(bots["pause_on_capacity"])
        self.assertEqual(bots["match"]["methods"], ["POST"])


class RoutesTlsTest(TlsUpstreamMixin, RoutesTest):
    """The same over TLS, retryd's own HTTP/1.1 client."""


class RoutesCurlTest(TlsUpstreamMixin, RoutesTest):
    """The same through libcurl (HTTP/2 where the upstream offers it)."""

    def start_retryd(self, upstream, *args, **kw):
        return super().start_retryd(upstream, "--upstream-http2", "on", *args, **kw)


class RoutesFileErrorsTest(unittest.TestCase):
    """A mistake in the routes file: exit 2, one line naming the file, the
    line and the field, before anything starts."""

    def run_retryd(self, text):
        d = tempfile.mkdtemp(prefix="retryd-routes-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        path = os.path.join(d, "routes.cfg")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([retryd_bin(), "--config", path, "--db", os.path.join(d, "q.db"),
                            "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=10)
        return p, path

    def assertBad(self, text, *needles):
        p, path = self.run_retryd(text)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("retryd: " + path + ":"), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        return lines[0]

    def test_bad_value_names_file_line_route_and_field(self):
        self.assertBad('routes = (\n  { name = "a";\n    retry_interval = "soon"; }\n);\n',
                       ':3: route "a": retry_interval:', "'soon' is not a duration")

    def test_unknown_field(self):
        self.assertBad('routes = ( { name = "a";\n  retry_intervall = "1s"; } );\n',
                       ':2: route "a": retry_intervall: unknown field')

    def test_syntax_error(self):
        self.assertBad('routes = ( { name = "a" } \n', ":2:")

    def test_duplicate_name_and_missing_name(self):
        self.assertBad('routes = ( { name = "a"; },\n { name = "a"; } );\n',
                       ':2: name:', "also the name of the route at line 1")
        self.assertBad('routes = ( { path_prefix = "/x"; } );\n', "a route has no name")

    def test_bad_upstream_limit_and_prefix(self):
        self.assertBad('routes = ( { name = "a";\n upstream = "ftp://x"; } );\n',
                       ':2: route "a": upstream:')
        self.assertBad('routes = ( { name = "a";\n rate_limit = "many"; } );\n',
                       ':2: route "a": rate_limit:')
        self.assertBad('routes = ( { name = "a";\n path_prefix = "api"; } );\n',
                       ':2: route "a": path_prefix:')

    def test_strip_prefix_must_lead_path_prefix(self):
        self.assertBad('routes = ( { name = "a"; path_prefix = "/eu/v1";\n'
                       ' strip_prefix = "/us"; } );\n',
                       ':2: route "a": strip_prefix:', "not a leading part of path_prefix")

    def test_missing_file(self):
        p = subprocess.run([retryd_bin(), "--config", "/nonexistent/routes.cfg"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--config: cannot read /nonexistent/routes.cfg", p.stderr)


if __name__ == "__main__":
    unittest.main()
