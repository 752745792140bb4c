"""What a hostile client cannot do (issue 10, item 4): smuggle fields in
through chunked trailers, leave a connection in an undefined state with an
Upgrade request, make retryd pass its own headers (X-Retryd-Token, Retryd-*)
to the upstream, and whether retryd says so when its control API is open to
a network."""

import time
import unittest

from fake_upstream import Response, echo_target
from harness import (RawConn, RetrydTestCase, ConnectionClosed, build_request,
                     send_request, wait_stored_state)

H = b"Host: client.example\r\n"


def chunked_post(target, head_fields, trailer_fields, body=b"hello"):
    """A chunked POST with the given head and trailer lines (bytes each)."""
    data = b"POST " + target + b" HTTP/1.1\r\n" + H
    data += b"".join(f + b"\r\n" for f in head_fields)
    data += b"Transfer-Encoding: chunked\r\n\r\n"
    data += b"%x\r\n" % len(body) + body + b"\r\n0\r\n"
    data += b"".join(f + b"\r\n" for f in trailer_fields)
    return data + b"\r\n"


class TrailerTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.rd = cls.class_retryd(cls.up)

    def setUp(self):
        self.up.clear()
        self.up.handler = echo_target

    def assert_rejected_nothing_forwarded(self, data):
        self.assertRejected400(self.rd.port, data)
        self.assertNothingForwarded(self.up, settle=0.1)

    def test_trailer_field_with_space_before_colon_is_400_and_nothing_forwarded(self):
        self.assert_rejected_nothing_forwarded(
            chunked_post(b"/t", [], [b"Host : evil.example"]))

    def test_trailer_fields_get_the_head_checks(self):
        bad = {
            "space_before_colon": b"X-T : 1",
            "nul_in_value": b"X-T: a\x00b",
            "control_byte_in_value": b"X-T: a\x01b",
            "bad_name_char": b"X(T): 1",
            "empty_name": b": 1",
        }
        for name, field in bad.items():
            with self.subTest(case=name):
                self.up.clear()
                self.assert_rejected_nothing_forwarded(chunked_post(b"/t", [], [field]))

    def test_framing_routing_auth_and_own_trailers_are_not_merged(self):
        never = [b"Host: evil.example", b"Connection: close", b"Keep-Alive: timeout=1", b"TE: trailers",
                 b"Trailer: X-More", b"Upgrade: websocket", b"Proxy-Connection: close",
                 b"Authorization: Bearer trailer-token", b"Proxy-Authorization: Basic trailer",
                 b"Cookie: sid=trailer", b"X-Api-Key: trailer-key", b"Expect: 100-continue",
                 b"Content-Type: text/evil", b"Content-Encoding: gzip", b"Range: bytes=0-1",
                 b"If-None-Match: *", b"Max-Forwards: 0", b"Cache-Control: no-cache",
                 b"Prefer: wait=5", b"Idempotency-Key: trailer-key",
                 b"X-Retryd-Token: trailer-token", b"Retryd-Deadline: 1"]
        data = chunked_post(b"/merge", [b"Authorization: Bearer head-token",
                                        b"Content-Type: application/json"],
                            never + [b"X-Checksum: abc123"])
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(data)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            # a Connection: close trailer does not close the connection either
            c.send(b"GET /next HTTP/1.1\r\n" + H + b"\r\n")
            self.assertEqual(c.read_response().body, b"/next")
        req = self.up.wait_for_requests(2)[0]
        self.assertEqual(req.body, b"hello")
        self.assertEqual(req.header("x-checksum"), "abc123", req.headers)
        self.assertEqual(req.header_all("host"), ["127.0.0.1:%d" % self.up.port])
        self.assertEqual(req.header_all("content-length"), ["5"])
        self.assertEqual(req.header_all("authorization"), ["Bearer head-token"])
        self.assertEqual(req.header_all("content-type"), ["application/json"])
        raw = req.raw_head.decode("latin-1").lower()
        for word in ("evil", "trailer-token", "trailer-key", "sid=trailer", "basic trailer",
                     "websocket", "x-more", "gzip", "range", "if-none-match", "max-forwards",
                     "cache-control", "prefer", "idempotency-key", "retryd", "expect",
                     "transfer-encoding", "keep-alive"):
            self.assertNotIn(word, raw, req.raw_head)


    def test_transfer_encoding_trailer_is_400(self):
        # llhttp itself refuses a second Transfer-Encoding, in a trailer too.
        for field in (b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"):
            with self.subTest(field=field):
                self.up.clear()
                self.assert_rejected_nothing_forwarded(chunked_post(b"/te", [], [field]))

    def test_content_length_trailer_never_reaches_the_upstream(self):
        for field in (b"Content-Length: 999", b"Content-Length: 5"):
            with self.subTest(field=field):
                self.up.clear()
                with RawConn(self.rd.port, timeout=5) as c:
                    c.send(chunked_post(b"/framing", [], [field]))
                    r = c.read_response()
                self.assertEqual(r.status, 200, r)
                req = self.up.wait_for_requests(1)[0]
                self.assertEqual(req.body, b"hello")
                self.assertEqual(req.header_all("content-length"), ["5"])
                self.assertIsNone(req.header("transfer-encoding"), req.headers)


class UpgradeTest(RetrydTestCase):
    """retryd does not tunnel: it ignores Upgrade (RFC 9110 7.8 lets a server
    do so), answers the request as HTTP/1.1 and keeps serving the
    connection."""

    UPGRADE = (b"GET /ws HTTP/1.1\r\n" + H +
               b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.rd = cls.class_retryd(cls.up)

    def setUp(self):
        self.up.clear()
        self.up.handler = echo_target

    def assert_plain_answer_that_keeps_the_connection(self, r, body):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, body)
        self.assertIsNone(r.header("upgrade"), r)
        # the answer says what happens to the connection: it stays open
        self.assertNotIn("close", (r.header("connection") or "").lower(), r)

    def test_upgrade_request_answered_and_the_next_request_served_at_once(self):
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(self.UPGRADE)
            self.assert_plain_answer_that_keeps_the_connection(c.read_response(), b"/ws")
            t0 = time.monotonic()
            c.send(b"GET /after HTTP/1.1\r\n" + H + b"\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"/after"))
            self.assertLess(time.monotonic() - t0, 2.0)
        got = self.up.wait_for_requests(2)
        self.assertEqual([q.target for q in got], ["/ws", "/after"])
        self.assertIsNone(got[0].header("upgrade"), got[0].headers)

    def test_upgrade_request_with_a_pipelined_request_behind_it(self):
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(self.UPGRADE + b"GET /pipelined HTTP/1.1\r\n" + H + b"\r\n")
            self.assert_plain_answer_that_keeps_the_connection(c.read_response(), b"/ws")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"/pipelined"))
            self.assertFalse(c.is_closed(timeout=0.3), "connection closed after the answers")

    def test_upgrade_post_with_a_body_then_next_request(self):
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(b"POST /h2c HTTP/1.1\r\n" + H +
                   b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Length: 3\r\n\r\nabc"
                   b"GET /again HTTP/1.1\r\n" + H + b"\r\n")
            self.assert_plain_answer_that_keeps_the_connection(c.read_response(), b"/h2c")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"/again"))
        got = self.up.wait_for_requests(2)
        self.assertEqual(got[0].body, b"abc")
        for name in ("upgrade", "http2-settings"):
            self.assertIsNone(got[0].header(name), got[0].headers)


class OwnHeadersNotForwardedTest(RetrydTestCase):
    """retryd's own headers (X-Retryd-Token, Retryd-*) never leave it: not on
    the first attempt, not on a retry of the stored request."""

    OWN = [("X-Retryd-Token", "CANARY-token"), ("Retryd-Note", "CANARY-note"),
           ("RETRYD-SHOUT", "CANARY-shout"), ("retryd-lower", "CANARY-lower")]

    def assert_no_own_header(self, req):
        for name in req.header_names():
            low = name.lower()
            self.assertFalse(low == "x-retryd-token" or low.startswith("retryd-"), req.headers)
        self.assertNotIn(b"CANARY", req.raw_head)
        self.assertEqual(req.header("x-keep"), "kept")

    def test_forwarded_request_carries_no_retryd_header(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up)
        r = send_request(rd.port, "GET", "/own", self.OWN + [("X-Keep", "kept")])
        self.assertEqual(r.status, 200, r)
        self.assert_no_own_header(up.wait_for_requests(1)[0])

    def test_stored_then_retried_request_carries_no_retryd_header(self):
        up = self.start_upstream()
        up.push(Response(507, body=b'{"code":"adhoc_bot_pool_empty"}'))
        up.handler = echo_target
        rd = self.start_retryd(up, "--retry-interval", "300ms")
        r = send_request(rd.port, "POST", "/own-stored", self.OWN + [("X-Keep", "kept")],
                         b'{"bot":1}')
        self.assertEqual(r.status, 202, r)
        wait_stored_state(rd.port, r.json()["id"], "completed")
        got = up.wait_for_requests(2)
        for req in got:
            self.assert_no_own_header(req)
            self.assertEqual(req.body, b'{"bot":1}')


class OpenControlApiWarningTest(RetrydTestCase):

    def warnings(self, rd):
        time.sleep(0.2)  # the start-up lines are written by the log thread
        return [o for o in rd.log_json() if o.get("level") == "warn"
                and "admin-token" in o.get("msg", "") + str(o.get("hint", ""))]

    def test_non_loopback_listen_without_admin_token_logs_a_warning(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, listen="0.0.0.0:0")
        found = self.warnings(rd)
        self.assertEqual(len(found), 1, rd.stderr_text())
        self.assertIn("control API", found[0]["msg"])
        self.assertEqual(found[0].get("listen"), "0.0.0.0:0")
        self.assertEqual(send_request(rd.port, "GET", "/_retryd/health").status, 200)

    def test_ipv6_any_listen_without_admin_token_logs_a_warning(self):
        up = self.start_upstream()
        try:
            rd = self.start_retryd(up, listen="[::]:0")
        except Exception as e:  # no IPv6 on this machine
            self.skipTest("cannot listen on [::]: %s" % e)
        self.assertEqual(len(self.warnings(rd)), 1, rd.stderr_text())

    def test_loopback_listen_logs_no_warning(self):
        up = self.start_upstream()
        for listen in ("127.0.0.1:0", "localhost:0"):
            with self.subTest(listen=listen):
                rd = self.start_retryd(up, listen=listen)
                self.assertEqual(self.warnings(rd), [], rd.stderr_text())

    def test_non_loopback_listen_with_admin_token_logs_no_warning(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, "--admin-token", "s3cret-token-value", listen="0.0.0.0:0")
        self.assertEqual(self.warnings(rd), [], rd.stderr_text())


if __name__ == "__main__":
    unittest.main()
