"""Requests and final answers pass through retryd unchanged.

Proves: every method is forwarded with method, target, headers (order and
values) and body byte-identical; Host is the upstream's; hop-by-hop headers and
Expect are dropped; retryd adds no Accept/Content-Type/User-Agent; answers
(status, headers, body; 4xx; HEAD; chunked; gzip) are relayed unchanged and
4xx answers reach the upstream exactly once.
"""

import gzip
import random
import socket
import time
import unittest

from fake_upstream import Response, echo_target
from harness import RawConn, RetrydTestCase

HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "upgrade",
              "proxy-connection", "transfer-encoding", "x-hop-custom"}
# Headers a proxy may legitimately add; anything else added is a failure.
TOLERATED_ADDED = {"host", "content-length", "via", "forwarded", "x-forwarded-for",
                   "x-forwarded-proto", "x-forwarded-host", "x-request-id"}


def body_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def raw_request(method, target, headers, body=b"", host="client.example"):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class PassthroughTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        # A short retry interval: a 4xx that was wrongly stored for retry would
        # reach the upstream a second time within the test.
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "200ms")

    def setUp(self):
        self.up.clear()
        self.up.handler = None

    def send(self, data, method="GET"):
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(data)
            return c.read_response(method=method)

    def assert_headers_forwarded(self, sent, got):
        """Every client header (minus Host) arrives, in order, value unchanged."""
        sent_l = [(k.lower(), v) for k, v in sent]
        names = {k for k, _ in sent_l}
        got_l = [(k.lower(), v) for k, v in got.headers if k.lower() in names]
        self.assertEqual(got_l, sent_l, "upstream headers: %r" % got.headers)

    def assert_upstream_host(self, req):
        self.assertEqual(req.header_all("host"), ["127.0.0.1:%d" % self.up.port],
                         req.headers)

    # ------------------------------------------------------------------
    def test_every_method_forwarded_unchanged(self):
        target = "/v1/bot/?a=1&b=%2F%20%C3%A9&c=a+b&d=&e"
        for i, method in enumerate(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]):
            with self.subTest(method=method):
                self.up.clear()
                body = b"" if method in ("GET", "HEAD", "OPTIONS") else body_bytes(300 + i, i)
                hdrs = [("X-First", "1"), ("Authorization", "Token abc"),
                        ("X-Custom", "a,  b ;q=\"x\""), ("Idempotency-Key", "k-%d" % i),
                        ("X-Second", "two")]
                if body:
                    hdrs.append(("Content-Type", "application/octet-stream"))
                    hdrs.append(("Content-Length", str(len(body))))
                self.up.push(Response(200, body=b"answer-" + method.encode()))
                r = self.send(raw_request(method, target, hdrs, body), method=method)
                self.assertEqual(r.status, 200, r)
                if method != "HEAD":
                    self.assertEqual(r.body, b"answer-" + method.encode())
                req = self.up.wait_for_requests(1)[0]
                self.assertEqual(req.method, method)
                self.assertEqual(req.target, target)
                self.assertEqual(req.body, body)
                self.assert_upstream_host(req)
                self.assert_headers_forwarded(
                    [h for h in hdrs if h[0] != "Content-Length"], req)
                if body:
                    self.assertEqual(req.header("content-length"), str(len(body)))
                self.assertEqual(self.up.parse_errors, [])

    def test_targets_kept_exactly(self):
        targets = ["/a/../b", "/a/./b/", "//double//slash", "/%7Euser/%2e%2e/x",
                   "/p%20q/%2F?x=%41&y=a%2Bb&z=%25", "/q?x=?y&a=/b/../c",
                   "/trailing/", "/"]
        self.up.handler = echo_target
        for t in targets:
            with self.subTest(target=t):
                self.up.clear()
                r = self.send(raw_request("GET", t, []))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, t.encode())
                self.assertEqual(self.up.wait_for_requests(1)[0].target, t)

    def test_client_host_replaced_by_upstream_host(self):
        r = self.send(raw_request("GET", "/h", [("X-A", "1")], host="evil.example"))
        self.assertEqual(r.status, 200, r)
        req = self.up.wait_for_requests(1)[0]
        self.assert_upstream_host(req)
        self.assertNotIn("evil.example", req.raw_head.decode("latin-1"))

    def test_request_bodies_0_1k_1m(self):
        for n in (0, 1024, 1024 * 1024):
            with self.subTest(size=n):
                self.up.clear()
                body = body_bytes(n, n)
                r = self.send(raw_request("POST", "/body", [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", str(n))], body))
                self.assertEqual(r.status, 200, r)
                req = self.up.wait_for_requests(1)[0]
                self.assertEqual(len(req.body), n)
                self.assertTrue(req.body == body, "body differs")
                if req.has_header("content-length"):
                    self.assertEqual(req.header("content-length"), str(n))
                self.assertIsNone(req.header("expect"), req.headers)

    def test_chunked_upload_arrives_dechunked(self):
        body = body_bytes(100000, 7)
        sizes = [1, 15, 4096, 30000, 65888]
        assert sum(sizes) == len(body)
        chunks, off = [], 0
        for i, n in enumerate(sizes):
            ext = ";name=v" if i == 2 else ""
            chunks.append(b"%x%s\r\n" % (n, ext.encode()) + body[off:off + n] + b"\r\n")
            off += n
        data = raw_request("PUT", "/chunked", [("Transfer-Encoding", "chunked"),
                                               ("X-Z", "z")]) + b"".join(chunks) + b"0\r\n\r\n"
        r = self.send(data)
        self.assertEqual(r.status, 200, r)
        req = self.up.wait_for_requests(1)[0]
        self.assertEqual(self.up.parse_errors, [])
        self.assertEqual(req.method, "PUT")
        self.assertEqual(len(req.body), len(body))
        self.assertTrue(req.body == body, "body differs")
        self.assertEqual(req.header("x-z"), "z")

    def test_hop_by_hop_headers_not_forwarded(self):
        hdrs = [("Connection", "keep-alive, X-Hop-Custom"), ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "h2c"),
                ("Proxy-Connection", "keep-alive"), ("X-Hop-Custom", "secret-hop"),
                ("X-Keep", "1")]
        r = self.send(raw_request("GET", "/hop", hdrs))
        self.assertEqual(r.status, 200, r)
        req = self.up.wait_for_requests(1)[0]
        names = {k.lower() for k in req.header_names()}
        for h in ("keep-alive", "te", "trailer", "upgrade", "proxy-connection", "x-hop-custom"):
            self.assertNotIn(h, names, req.headers)
        for v in req.header_all("connection"):
            self.assertNotIn("x-hop-custom", v.lower(), req.headers)
        self.assertNotIn("secret-hop", req.raw_head.decode("latin-1"))
        self.assertEqual(req.header("x-keep"), "1")

    def test_expect_not_forwarded(self):
        body = b'{"meeting_url":"x"}'
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(raw_request("POST", "/expect", [
                ("Content-Type", "application/json"), ("Expect", "100-continue"),
                ("Content-Length", str(len(body)))]))
            c.settimeout(2)
            try:  # 100 Continue is test_keepalive_pipeline's subject, not this one's
                head = c.read_head()
                self.assertEqual(head.status, 100, head)
            except socket.timeout:
                pass
            c.settimeout(10)
            c.send(body)
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        req = self.up.wait_for_requests(1)[0]
        self.assertIsNone(req.header("expect"), req.headers)
        self.assertEqual(req.body, body)

    def test_no_headers_added(self):
        r = self.send(raw_request("GET", "/min", []))
        self.assertEqual(r.status, 200, r)
        body = b"a=1&b=2"
        r = self.send(raw_request("POST", "/min-post", [("Content-Length", str(len(body)))], body))
        self.assertEqual(r.status, 200, r)
        reqs = self.up.wait_for_requests(2)
        for req in reqs:
            names = {k.lower() for k in req.header_names()}
            for h in ("accept", "content-type", "user-agent", "expect", "accept-encoding"):
                self.assertNotIn(h, names, "%s added: %r" % (h, req.headers))
            extra = names - TOLERATED_ADDED
            self.assertEqual(extra, set(), "headers added by retryd: %r" % req.headers)
        self.assertEqual(reqs[1].body, body)

    # ------------------------------------------------------------------
    def test_response_relayed_unchanged(self):
        up_headers = [("X-Custom", "v1"), ("Set-Cookie", "a=1; Path=/"),
                      ("Cache-Control", "no-store"), ("Set-Cookie", "b=2; HttpOnly"),
                      ("X-Multi", "x, y"), ("Content-Type", "application/json"),
                      ("Location", "/v1/bot/123/")]
        body = b'{"id":"123","status":"created"}'
        self.up.push(Response(201, headers=up_headers, body=body))
        r = self.send(raw_request("POST", "/v1/bot/", [("Content-Length", "2")], b"{}"))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.body, body)
        names = {k.lower() for k, _ in up_headers}
        got = [(k.lower(), v) for k, v in r.headers if k.lower() in names]
        self.assertEqual(got, [(k.lower(), v) for k, v in up_headers], r.headers)
        self.assertEqual(r.header_all("set-cookie"), ["a=1; Path=/", "b=2; HttpOnly"])

    def test_4xx_relayed_and_sent_once(self):
        codes = [400, 401, 404, 409, 422]
        for code in codes:
            with self.subTest(status=code):
                body = b'{"detail":"status %d"}' % code
                self.up.push(Response(code, headers=[("Content-Type", "application/json"),
                                                     ("X-Code", str(code))], body=body))
                r = self.send(raw_request("POST", "/four/%d" % code,
                                          [("Content-Length", "2")], b"{}"))
                self.assertEqual(r.status, code, r)
                self.assertEqual(r.body, body)
                self.assertEqual(r.header("x-code"), str(code))
                self.assertEqual(r.header("content-type"), "application/json")
        time.sleep(0.8)  # > several retry intervals: a stored 4xx would come back
        targets = [q.target for q in self.up.requests]
        self.assertEqual(sorted(targets), sorted("/four/%d" % c for c in codes))

    def test_head_response_has_headers_and_no_body(self):
        self.up.push(Response(200, headers=[("Content-Length", "1234"),
                                            ("X-Head", "yes")]))
        self.up.push(Response(200, body=b"second"))
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(raw_request("HEAD", "/head", []))
            r = c.read_response(method="HEAD")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("content-length"), "1234")
            self.assertEqual(r.header("x-head"), "yes")
            # If any body byte followed the HEAD answer, this next answer would
            # not parse.
            c.send(raw_request("GET", "/after-head", []))
            r2 = c.read_response()
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual(r2.body, b"second")
        self.assertEqual(self.up.wait_for_requests(2)[0].method, "HEAD")

    def test_chunked_response_intact(self):
        pieces = [b"first-", body_bytes(70000, 3), b"", b"-last"]
        self.up.push(Response(200, headers=[("X-C", "1")], pieces=pieces, chunked=True))
        r = self.send(raw_request("GET", "/chunked-answer", []))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-c"), "1")
        self.assertTrue(r.body == b"".join(pieces), "body differs (%d B)" % len(r.body))

    def test_close_delimited_response_intact(self):
        body = body_bytes(50000, 11)
        self.up.push(Response(200, body=body, no_length=True))
        r = self.send(raw_request("GET", "/close-delimited", []))
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == body, "body differs (%d B)" % len(r.body))

    def test_gzip_body_not_decompressed(self):
        plain = b'{"k":"' + b"v" * 5000 + b'"}'
        gz = gzip.compress(plain, mtime=0)
        for accept in (True, False):
            with self.subTest(client_accepts_gzip=accept):
                self.up.push(Response(200, headers=[("Content-Encoding", "gzip"),
                                                    ("Content-Type", "application/json"),
                                                    ("Vary", "Accept-Encoding")], body=gz))
                hdrs = [("Accept-Encoding", "gzip")] if accept else []
                r = self.send(raw_request("GET", "/gz", hdrs))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("content-encoding"), "gzip")
                self.assertTrue(r.body == gz, "body was changed (%d B)" % len(r.body))
                cl = r.header("content-length")
                if cl is not None:
                    self.assertEqual(int(cl), len(gz))

    def test_redirect_relayed_not_followed(self):
        for code in (301, 302, 303, 307, 308):
            with self.subTest(status=code):
                self.up.clear()
                self.up.push(Response(code, headers=[("Location", "/elsewhere/%d" % code)],
                                      body=b"moved"))
                r = self.send(raw_request("GET", "/moved", []))
                self.assertEqual(r.status, code, r)
                self.assertEqual(r.header("location"), "/elsewhere/%d" % code)
                self.assertEqual(r.body, b"moved")
                time.sleep(0.1)
                self.assertEqual([q.target for q in self.up.requests], ["/moved"])

    def test_204_and_304_relayed(self):
        self.up.push(Response(204, headers=[("X-N", "1")]),
                     Response(304, headers=[("ETag", '"abc"')]),
                     Response(200, body=b"third"))
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(raw_request("DELETE", "/v1/bot/1", []))
            r = c.read_response()
            self.assertEqual((r.status, r.header("x-n")), (204, "1"))
            c.send(raw_request("GET", "/cached", [("If-None-Match", '"abc"')]))
            r = c.read_response()
            self.assertEqual((r.status, r.header("etag")), (304, '"abc"'))
            # no stray body bytes after the 204/304: the next answer parses
            c.send(raw_request("GET", "/third", []))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"third"))
        self.assertEqual(self.up.wait_for_requests(3)[1].header("if-none-match"), '"abc"')


class UpstreamPathPrefixTest(RetrydTestCase):

    def test_path_prefix_prepended(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up.url + "/api/v2")
        with RawConn(rd.port, timeout=10) as c:
            c.send(raw_request("GET", "/bot/?x=%2F1", []))
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        req = up.wait_for_requests(1)[0]
        self.assertEqual(req.target, "/api/v2/bot/?x=%2F1")
        self.assertEqual(req.header_all("host"), ["127.0.0.1:%d" % up.port])


if __name__ == "__main__":
    unittest.main()
