"""Completion callbacks (issue 14): a stored request with Retryd-Callback (or
--callback-url) gets a signed JSON notice POSTed when it ends — completed,
dead or cancelled — delivered durably with retries of its own.

The receiver is a fake upstream that records what it got; each notice's
Standard Webhooks signature is checked here with hmac/hashlib, as a user's
receiver would (the README's example does the same). Plain http:// and
https:// receivers both go through retryd's own upstream client."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from fake_upstream import FakeUpstream, Response
from harness import RetrydTestCase, closed_port, control_get, retryd_bin, send_request
from control_helpers import ctl, prometheus_parse, prometheus_samples, wait_until
from test_tls_upstream import make_pki

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def verify(req, key=KEY, tolerance=300):
    """What a receiver does: the signature over id.timestamp.body, and a
    fresh timestamp. Returns the parsed body; raises AssertionError."""
    msg_id = req.header("webhook-id")
    ts = req.header("webhook-timestamp")
    sig = req.header("webhook-signature")
    assert msg_id and ts and sig, req
    signed = msg_id.encode() + b"." + ts.encode() + b"." + req.body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    got = [s.split(",", 1)[1] for s in sig.split(" ") if s.startswith("v1,")]
    assert any(hmac.compare_digest(want, g) for g in got), (sig, want)
    assert abs(time.time() - int(ts)) < tolerance, ts
    return json.loads(req.body)


def stats(rd):
    return control_get(rd.port, "/_retryd/stats").json()


class CallbackCase(RetrydTestCase):
    ARGS = ("--retry-interval", "300ms", "--callback-secret", SECRET)

    def receiver(self, **kw):
        return self.start_upstream(**kw)

    def hook(self, receiver, path="/hooks/retryd?tenant=7"):
        return receiver.url + path

    def store(self, rd, headers=(), body=b'{"bot":1}', target="/api/v1/bot"):
        r = send_request(rd.port, "POST", target,
                         [("Content-Type", "application/json")] + list(headers), body)
        self.assertEqual(r.status, 202, r)
        return r.json()["id"]


class CallbackNoticeTest(CallbackCase):

    def test_completed_notice_is_signed_and_carries_the_answer(self):
        up = self.start_upstream()
        up.push(Response(507), Response(201, headers=[("Content-Type", "application/json"),
                                                      ("X-Bot", "b1")],
                                        body=b'{"id":"bot_1"}'))
        rx = self.receiver()
        rd = self.start_retryd(up, *self.ARGS)
        rid = self.store(rd, [("Retryd-Callback", self.hook(rx))])
        got = rx.wait_for_requests(1, timeout=10)[0]
        self.assertEqual((got.method, got.target), ("POST", "/hooks/retryd?tenant=7"))
        self.assertTrue(got.header("content-type").startswith("application/json"))
        self.assertTrue(got.header("webhook-id").startswith("msg_"), got)
        notice = verify(got)
        self.assertEqual(notice["type"], "request.completed")
        data = notice["data"]
        self.assertEqual(data["id"], rid)
        self.assertEqual(data["state"], "completed")
        self.assertEqual(data["attempts"], 2)
        self.assertEqual(data["status"], 201)
        self.assertEqual(data["method"], "POST")
        self.assertEqual(data["path"], "/api/v1/bot")
        self.assertEqual(data["response_url"], "/_retryd/requests/%s/response" % rid)
        resp = data["response"]
        self.assertEqual(resp["status"], 201)
        self.assertEqual(resp["body"], '{"id":"bot_1"}')
        self.assertIn(["X-Bot", "b1"], resp["headers"])
        # Retryd-* headers are retryd's: the upstream never saw the callback.
        for req in up.requests:
            self.assertFalse(req.has_header("retryd-callback"), req)
        wait_until(lambda: stats(rd)["callbacks"]["delivered"] == 1, what="delivered in stats")
        self.assertEqual(stats(rd)["callbacks"]["pending"], 0)
        samples = prometheus_samples(prometheus_parse(
            ctl(rd.port, "GET", "/_retryd/metrics").body.decode()))
        for state, n in (("pending", 0), ("delivered", 1), ("failed", 0)):
            self.assertEqual(samples[("retryd_callbacks", frozenset({("state", state)}))], n)

    def test_dead_notice_has_the_last_status_and_no_answer(self):
        up = self.start_upstream()
        up.default = Response(503)
        rx = self.receiver()
        rd = self.start_retryd(up, *self.ARGS, "--max-attempts", "2")
        rid = self.store(rd, [("Retryd-Callback", self.hook(rx))])
        notice = verify(rx.wait_for_requests(1, timeout=10)[0])
        self.assertEqual(notice["type"], "request.dead")
        self.assertEqual(notice["data"]["id"], rid)
        self.assertEqual(notice["data"]["state"], "dead")
        self.assertEqual(notice["data"]["reason"], "max_attempts")
        self.assertEqual(notice["data"]["attempts"], 2)
        self.assertEqual(notice["data"]["status"], 503)
        self.assertIsNone(notice["data"]["response"])
        self.assertNotIn("response_url", notice["data"])

    def test_cancelled_notice(self):
        up = self.start_upstream()
        up.default = Response(507)
        rx = self.receiver()
        rd = self.start_retryd(up, "--retry-interval", "1h", "--callback-secret", SECRET)
        rid = self.store(rd, [("Retryd-Callback", self.hook(rx))])
        r = ctl(rd.port, "DELETE", "/_retryd/requests/%s" % rid)
        self.assertEqual(r.status, 200, r)
        notice = verify(rx.wait_for_requests(1, timeout=10)[0])
        self.assertEqual(notice["type"], "request.cancelled")
        self.assertEqual(notice["data"]["state"], "cancelled")
        self.assertEqual(notice["data"]["reason"], "cancelled")
        self.assertEqual(notice["data"]["attempts"], 1)
        self.assertEqual(notice["data"]["status"], 507)

    def test_default_callback_url_applies_to_requests_without_their_own(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200, body=b"done"))
        rx = self.receiver()
        rd = self.start_retryd(up, *self.ARGS, "--callback-url", self.hook(rx, "/default"))
        rid = self.store(rd)
        got = rx.wait_for_requests(1, timeout=10)[0]
        self.assertEqual(got.target, "/default")
        self.assertEqual(verify(got)["data"]["id"], rid)

    def test_no_callback_no_notice(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        rx = self.receiver()
        rd = self.start_retryd(up, *self.ARGS)
        rid = self.store(rd)
        wait_until(lambda: control_get(rd.port, "/_retryd/requests/%s" % rid).json()["state"]
                   == "completed", what="completed")
        time.sleep(1.5)  # a look for due notices at least every second
        self.assertEqual(rx.count(), 0)
        self.assertEqual(stats(rd)["callbacks"], {"pending": 0, "delivered": 0, "failed": 0})

    def test_big_answer_is_linked_not_inlined(self):
        up = self.start_upstream()
        big = b"x" * (64 * 1024 + 1)
        up.push(Response(507), Response(200, body=big))
        rx = self.receiver()
        rd = self.start_retryd(up, *self.ARGS)
        rid = self.store(rd, [("Retryd-Callback", self.hook(rx))])
        resp = verify(rx.wait_for_requests(1, timeout=10)[0])["data"]["response"]
        self.assertIsNone(resp["body"])
        self.assertTrue(resp["body_truncated"])
        self.assertEqual(resp["body_size"], len(big))
        r = control_get(rd.port, "/_retryd/requests/%s/response" % rid)
        self.assertEqual(r.body, big)

    def test_answer_full_of_control_characters_still_fits(self):
        # Each \x01 is escaped as \u0001: six bytes in the notice for one.
        up = self.start_upstream()
        body = b"\x01" * (64 * 1024)
        up.push(Response(507), Response(200, body=body))
        rx = self.receiver()
        rd = self.start_retryd(up, *self.ARGS)
        self.store(rd, [("Retryd-Callback", self.hook(rx))])
        resp = verify(rx.wait_for_requests(1, timeout=10)[0])["data"]["response"]
        self.assertEqual(resp["body"].encode(), body)

    def test_binary_answer_goes_as_base64(self):
        up = self.start_upstream()
        blob = bytes(range(256))
        up.push(Response(507), Response(200, body=blob))
        rx = self.receiver()
        rd = self.start_retryd(up, *self.ARGS)
        self.store(rd, [("Retryd-Callback", self.hook(rx))])
        resp = verify(rx.wait_for_requests(1, timeout=10)[0])["data"]["response"]
        self.assertNotIn("body", resp)
        self.assertEqual(base64.b64decode(resp["body_base64"]), blob)

    def test_a_plain_text_secret_signs_with_its_bytes(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        rx = self.receiver()
        rd = self.start_retryd(up, "--retry-interval", "300ms", "--callback-secret", "s3cret")
        self.store(rd, [("Retryd-Callback", self.hook(rx))])
        verify(rx.wait_for_requests(1, timeout=10)[0], key=b"s3cret")


class CallbackRetryTest(CallbackCase):

    def test_failed_delivery_is_retried_with_the_same_webhook_id(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        rx = self.receiver()
        rx.push(Response(500), Response(404))  # then the default 200
        # The backoff starts at 1 s and doubles, capped by --retry-interval.
        rd = self.start_retryd(up, "--retry-interval", "3s", "--callback-secret", SECRET)
        self.store(rd, [("Retryd-Callback", self.hook(rx))])
        got = rx.wait_for_requests(3, timeout=20)
        ids = {g.header("webhook-id") for g in got}
        self.assertEqual(len(ids), 1, ids)
        for g in got:
            verify(g)
        self.assertEqual(got[0].body, got[2].body)
        first, second = (got[1].received_at - got[0].received_at,
                         got[2].received_at - got[1].received_at)
        self.assertGreater(first, 0.9, first)
        self.assertGreater(second, 1.9, second)
        self.assertLess(second, 3.5, second)
        wait_until(lambda: stats(rd)["callbacks"]["delivered"] == 1, what="delivered")
        time.sleep(1.5)
        self.assertEqual(rx.count(), 3)

    def test_pending_notice_is_delivered_after_a_restart(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        port = closed_port()
        url = "http://127.0.0.1:%d/hook" % port
        tmp = tempfile.mkdtemp(prefix="retryd-cb-")
        self.addCleanup(shutil.rmtree, tmp, True)
        db = self.fresh_db(tmp)
        rd = self.start_retryd(up, *self.ARGS, db=db, tmpdir=tmp)
        rid = self.store(rd, [("Retryd-Callback", url)])
        wait_until(lambda: stats(rd)["callbacks"]["pending"] == 1, what="notice pending")
        self.assertIsNotNone(rd.wait_log(lambda o: o.get("msg") == "callback_failed", timeout=10))
        rd.stop()
        rx = FakeUpstream(port=port).start()
        self.addCleanup(rx.stop)
        rd2 = self.start_retryd(up, *self.ARGS, db=db, tmpdir=tmp)
        got = rx.wait_for_requests(1, timeout=10)[0]
        self.assertEqual(verify(got)["data"]["id"], rid)
        wait_until(lambda: stats(rd2)["callbacks"]["delivered"] == 1, what="delivered")

    def test_stop_while_a_notice_is_in_flight_sends_it_again_after_restart(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        rx = self.receiver()
        rx.push(Response(200, delay=30))  # never answered before the stop
        tmp = tempfile.mkdtemp(prefix="retryd-cb-")
        self.addCleanup(shutil.rmtree, tmp, True)
        db = self.fresh_db(tmp)
        lease = ("--claim-lease", "1s")  # PostgreSQL: the dropped send's lease
        rd = self.start_retryd(up, *self.ARGS, *lease, db=db, tmpdir=tmp)
        self.store(rd, [("Retryd-Callback", self.hook(rx))])
        first = rx.wait_for_requests(1, timeout=10)[0]
        rd.stop()
        self.assertEqual(rd.returncode, 0, rd.stderr_text()[-2000:])
        rd2 = self.start_retryd(up, *self.ARGS, *lease, db=db, tmpdir=tmp)
        again = rx.wait_for_requests(2, timeout=10)[1]
        self.assertEqual(again.header("webhook-id"), first.header("webhook-id"))
        self.assertEqual(again.body, first.body)
        verify(again)
        wait_until(lambda: stats(rd2)["callbacks"]["delivered"] == 1, what="delivered")

    def test_given_up_after_max_age(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        url = "http://127.0.0.1:%d/hook" % closed_port()
        rd = self.start_retryd(up, *self.ARGS, "--max-age", "2s")
        self.store(rd, [("Retryd-Callback", url)])
        wait_until(lambda: stats(rd)["callbacks"]["failed"] == 1, timeout=15, what="given up")
        self.assertEqual(stats(rd)["callbacks"]["pending"], 0)
        self.assertIsNotNone(rd.wait_log(lambda o: o.get("msg") == "callback_gave_up", timeout=5))


class CallbackOriginTest(CallbackCase):

    def test_other_origin_is_refused_at_request_time(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, *self.ARGS)
        for url in ("http://example.com/hook", "http://127.0.0.1@example.com/hook",
                    "http://10.0.0.1:8080/x", "file:///etc/passwd", "not a url"):
            r = send_request(rd.port, "POST", "/api/v1/bot", [("Retryd-Callback", url)], b"{}")
            self.assertIn(r.json()["error"], ("callback_not_allowed", "bad_callback"), url)
            self.assertJsonError(r, 400)
        self.assertNothingForwarded(up)
        listing = control_get(rd.port, "/_retryd/requests").json()
        self.assertEqual(listing["requests"], [])

    def test_callback_allow_names_the_origins(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        rx = self.receiver()
        other = self.receiver()
        rd = self.start_retryd(up, *self.ARGS, "--callback-allow", "http://example.com, " + rx.url)
        r = send_request(rd.port, "POST", "/x", [("Retryd-Callback", other.url + "/h")], b"{}")
        self.assertJsonError(r, 400, "callback_not_allowed")
        self.store(rd, [("Retryd-Callback", rx.url + "/h")])
        verify(rx.wait_for_requests(1, timeout=10)[0])

    def test_bad_configuration_exits_2(self):
        for args in (["--callback-url", "http://example.com/hook"],
                     ["--callback-secret", "whsec_***"],
                     ["--callback-allow", "http://example.com/path"],
                     ["--callback-allow", "ftp://example.com"]):
            p = subprocess.run([retryd_bin(), "--upstream", "http://127.0.0.1:9"] + args,
                               capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(b"--callback-", p.stderr)


class CallbackRouteDefaultTest(CallbackCase):
    """A route of the --config file may name the callback of its requests
    that carry none: it wins over --callback-url for that route only."""

    def routes_file(self, text):
        d = tempfile.mkdtemp(prefix="retryd-cb-routes-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "routes.cfg")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_a_routes_default_callback_and_the_global_one(self):
        up = self.start_upstream()
        up.default = Response(507)
        rx = self.receiver()
        cfg = self.routes_file(
            'routes = ( { name = "bots"; path_prefix = "/api/v1/bot/"; '
            'callback_url = "%s"; } );\n' % self.hook(rx, "/bots"))
        rd = self.start_retryd(up, "--retry-interval", "1h", "--callback-secret", SECRET,
                               "--config", cfg, "--callback-url", self.hook(rx, "/global"))
        bot = self.store(rd, target="/api/v1/bot/")
        other = self.store(rd, target="/api/v1/calendar/")
        own = self.store(rd, [("Retryd-Callback", self.hook(rx, "/own"))], target="/api/v1/bot/")
        for rid in (bot, other, own):
            self.assertEqual(ctl(rd.port, "DELETE", "/_retryd/requests/%s" % rid).status, 200)
        got = {verify(r)["data"]["id"]: r.target for r in rx.wait_for_requests(3, timeout=10)}
        self.assertEqual(got, {bot: "/bots", other: "/global", own: "/own"})

    def test_a_routes_callback_outside_the_allowed_origins_stops_start_up(self):
        cfg = self.routes_file('routes = ( { name = "bots"; path_prefix = "/b";\n'
                               '  callback_url = "http://example.com/hook"; } );\n')
        p = subprocess.run([retryd_bin(), "--upstream", "http://127.0.0.1:9", "--config", cfg],
                           capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"routes.cfg:2: route \"bots\": callback_url:", p.stderr)


def readme_receiver():
    """The README's receiver example, run as the user would paste it."""
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    section = text.split("### Completion callbacks", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    ns = {"__name__": "readme_receiver"}
    exec(compile(code, "README.md", "exec"), ns)
    return ns


class CallbackReadmeTest(CallbackCase):

    def test_the_readme_receiver_accepts_a_notice_and_refuses_a_forgery(self):
        ns = readme_receiver()
        self.assertEqual(ns["SECRET"], SECRET)
        got = []

        class Recording(ns["Receiver"]):
            def log_message(self, *a):
                pass

            def send_response(self, code, message=None):
                got.append(code)
                super().send_response(code, message)

        server = ns["HTTPServer"](("127.0.0.1", 0), Recording)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = "http://127.0.0.1:%d/hooks/retryd" % server.server_address[1]
        up = self.start_upstream()
        up.push(Response(507), Response(200))
        # Signed with another key: the receiver refuses it (400), and retryd
        # keeps the notice pending.
        rd = self.start_retryd(up, "--retry-interval", "300ms", "--callback-secret", "wrong")
        self.store(rd, [("Retryd-Callback", url)])
        wait_until(lambda: 400 in got, what="a forged notice refused")
        self.assertEqual(stats(rd)["callbacks"]["delivered"], 0)
        up.push(Response(507), Response(200))
        rd2 = self.start_retryd(up, *self.ARGS)
        self.store(rd2, [("Retryd-Callback", url)])
        wait_until(lambda: 204 in got, what="a notice accepted")
        wait_until(lambda: stats(rd2)["callbacks"]["delivered"] == 1, what="delivered")


class CallbackTlsTest(CallbackCase):
    """An https:// receiver, through retryd's own client over TLS, verified
    with --upstream-ca."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="retryd-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        make_pki(cls.pki)

    def test_https_receiver(self):
        up = self.start_upstream()
        up.push(Response(507), Response(200, body=b"ok"))
        rx = self.receiver(certfile=os.path.join(self.pki, "srv.pem"),
                           keyfile=os.path.join(self.pki, "srv.key"))
        rd = self.start_retryd(up, *self.ARGS, "--upstream-ca", os.path.join(self.pki, "ca.pem"))
        rid = self.store(rd, [("Retryd-Callback", rx.url + "/tls")])
        self.assertEqual(verify(rx.wait_for_requests(1, timeout=10)[0])["data"]["id"], rid)


if __name__ == "__main__":
    unittest.main()
