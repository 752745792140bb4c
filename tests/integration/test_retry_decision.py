"""One decision for what an attempt's ending means, the same on the first
attempt and on every retry (proxy/queue/retry_decision.c): a final answer whose
body breaks off is never sent again, since the upstream acted on it. Run
over http, over https with retryd's own client, and over https through
libcurl (--upstream-http2 on)."""

import json
import time
import unittest

from fake_upstream import Response
from harness import ConnectionClosed, RetrydTestCase, wait_stored_state
from test_upstream_h1_tls import TlsUpstreamMixin

BROKEN_FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"


class RetryDecisionTest(RetrydTestCase):

    def test_first_attempt_broken_final_answer_is_cut_and_not_stored(self):
        """Its head and first bytes reached the client, so the client's
        connection is cut (the README's rule); nothing is stored."""
        up = self.start_upstream()
        up.push(Response(raw=BROKEN_FINAL, close=True))
        rd = self.start_retryd(up, "--retry-interval", "1s")
        with rd.connect() as c:
            c.send(b"POST /v1/bot HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
            with self.assertRaises(ConnectionClosed):
                c.read_response("POST")
        time.sleep(1.5)
        self.assertEqual(up.count(), 1)
        st, _, body = rd.request("GET", "/_retryd/stats")
        self.assertEqual(json.loads(body)["totals"]["stored"], 0)

    def test_retry_broken_final_answer_is_dead_and_never_sent_again(self):
        up = self.start_upstream()
        up.push(Response(507), Response(raw=BROKEN_FINAL, close=True))
        rd = self.start_retryd(up, "--retry-interval", "1s")
        with rd.connect() as c:
            c.send(b"POST /v1/bot HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
            r = c.read_response("POST")
        self.assertEqual(r.status, 202, r)
        row = wait_stored_state(rd.port, r.json()["id"], ("dead",), timeout=10)
        self.assertEqual(row["state"], "dead", row)
        self.assertEqual(row["last_status"], 200, row)
        self.assertIn("broke off", row["last_error"], row)
        time.sleep(2.5)  # two more intervals: nothing else goes out
        self.assertEqual(up.count(), 2)


class RetryDecisionOverTlsTest(TlsUpstreamMixin, RetryDecisionTest):
    pass


class RetryDecisionOverTlsCurlTest(TlsUpstreamMixin, RetryDecisionTest):
    def start_retryd(self, upstream, *args, **kw):
        return super().start_retryd(upstream, "--upstream-http2", "on", *args, **kw)


if __name__ == "__main__":
    unittest.main()
