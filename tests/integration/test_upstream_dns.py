"""A DNS outage toward the upstream, for every upstream client (http://,
https:// with retryd's own client, https:// through libcurl with
--upstream-http2 on): every client still gets an answer, stored requests are stored,
and the control API keeps answering.

The outage is made by tests/shims/dns_fault.c (LD_PRELOAD): a lookup of
*.dns-stall.test blocks for a while and then fails, as a resolver that does
not answer does; *.nxdomain.test fails at once.

Regression: with an https:// upstream and a stalling resolver, retryd kept
a poll handle for libcurl's resolver socketpair after libcurl had closed
it; the next client connection accepted on the recycled descriptor number
was never read, and soon no client (health included) got an answer."""

import concurrent.futures
import os
import threading
import time
import unittest

from harness import RetrydTestCase, dns_fault_env

STALL_MS = 500


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class DnsOutageTest(RetrydTestCase):

    def outage(self, scheme, host, *args):
        rd = self.start_retryd("%s://%s" % (scheme, host), "--retry-interval", "1s",
                               "--retry-concurrency", "4", *args, env=dns_fault_env(STALL_MS))
        return rd

    def post_and_health_under_outage(self, rd, n_posts=20):
        """POSTs one after another (each must be stored: 202 after about one
        stalled lookup) while health is asked every 100 ms from another
        thread (each must answer 200 quickly)."""
        stop = threading.Event()
        health = []

        def ask_health():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    st, _, _ = rd.request("GET", "/_retryd/health", timeout=3)
                except OSError as e:
                    st = repr(e)
                health.append((st, time.monotonic() - t0))
                time.sleep(0.1)

        th = threading.Thread(target=ask_health)
        th.start()
        statuses = []
        try:
            for i in range(n_posts):
                try:
                    st, _, body = rd.request("POST", "/api/v1/bot/", body=b'{"n":%d}' % i,
                                             headers={"Content-Type": "application/json"},
                                             timeout=STALL_MS / 1000 * 2 + 3)
                except OSError as e:
                    st = repr(e)
                statuses.append(st)
        finally:
            stop.set()
            th.join()
        self.assertEqual(statuses, [202] * n_posts)
        bad = [h for h in health if h[0] != 200 or h[1] > 1.0]
        self.assertTrue(health)
        self.assertEqual(bad, [], "health answers that failed or took over 1 s")

    def test_https_dns_stall_every_client_answered_and_health_stays_200(self):
        rd = self.outage("https", "api.dns-stall.test")
        self.post_and_health_under_outage(rd)

    def test_https_curl_dns_stall_every_client_answered_and_health_stays_200(self):
        rd = self.outage("https", "api.dns-stall.test", "--upstream-http2", "on")
        self.post_and_health_under_outage(rd)

    def test_http_dns_stall_every_client_answered_and_health_stays_200(self):
        rd = self.outage("http", "api.dns-stall.test")
        self.post_and_health_under_outage(rd)

    def test_https_curl_nxdomain_every_client_answered(self):
        rd = self.outage("https", "api.nxdomain.test", "--upstream-http2", "on")
        self.post_and_health_under_outage(rd, n_posts=30)

    def test_https_curl_get_abandoned_during_lookup_does_not_block_the_loop(self):
        """A client that gives up while its request's lookup is pending:
        the transfer is cancelled, and cancelling must not wait for the
        resolver on the loop thread."""
        rd = self.start_retryd("https://api.dns-stall.test", "--retry-interval", "1s",
                               "--upstream-http2", "on", env=dns_fault_env(3000))
        for _ in range(3):
            c = rd.connect()
            c.send(b"GET /v1/x HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(0.2)
            c.close()
        time.sleep(0.3)
        t0 = time.monotonic()
        st, _, _ = rd.request("GET", "/_retryd/health", timeout=5)
        self.assertEqual(st, 200)
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_lookup_outlasting_the_upstream_timeout_blocks_nothing(self):
        """--upstream-timeout ends an attempt whose lookup still runs: the
        transfer is dropped without waiting for the lookup (libcurl joined
        its resolver thread on the loop, for seconds), for every client."""
        for client_args in ((), ("--upstream-http2", "on")):
            with self.subTest(client=client_args):
                rd = self.start_retryd("https://api.dns-stall.test", "--upstream-timeout", "1s",
                                       "--retry-interval", "1h", *client_args,
                                       env=dns_fault_env(4000))
                for i in range(3):
                    t0 = time.monotonic()
                    st, _, _ = rd.request("POST", "/v1/bot", body=b"{}", timeout=10)
                    self.assertEqual(st, 202)
                    self.assertLess(time.monotonic() - t0, 2.5, "POST %d" % i)
                    t0 = time.monotonic()
                    st, _, _ = rd.request("GET", "/_retryd/health", timeout=10)
                    self.assertEqual(st, 200)
                    self.assertLess(time.monotonic() - t0, 0.5, "health after POST %d" % i)

    def test_https_curl_dns_stall_no_descriptor_leak(self):
        rd = self.outage("https", "api.dns-stall.test", "--upstream-http2", "on")
        base = open_fds(rd.pid)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            sts = list(ex.map(lambda i: rd.request("POST", "/x", body=b"{}", timeout=10)[0],
                              range(16)))
        self.assertEqual(sts, [202] * 16)
        # Let the retries' lookups run out, then the count is back.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and open_fds(rd.pid) > base:
            time.sleep(0.2)
        self.assertLessEqual(open_fds(rd.pid), base)


if __name__ == "__main__":
    unittest.main()
