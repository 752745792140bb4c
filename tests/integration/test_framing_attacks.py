"""Strict HTTP parsing: ambiguous or malformed framing gets 400 with a JSON
body, the connection is closed, and nothing at all reaches the upstream.
Also: retryd never lets the request choose the destination (no open proxy)."""

import time
import unittest

from fake_upstream import echo_target
from harness import RawConn, RetrydTestCase, ConnectionClosed

H = b"Host: client.example\r\n"

CASES = [
    ("cl_and_te",
     b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n"),
    ("te_and_cl",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
     b"0\r\n\r\n"),
    ("two_different_cl",
     b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("duplicate_equal_cl",
     b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("cl_abc", b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n"),
    ("cl_negative", b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n"),
    ("cl_two_numbers", b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\nab"),
    ("cl_plus", b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello"),
    ("te_gzip",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nxxxx"),
    ("te_chunked_not_last",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    ("obs_fold_space",
     b"GET /x HTTP/1.1\r\n" + H + b"X-A: one\r\n two\r\n\r\n"),
    ("obs_fold_tab",
     b"GET /x HTTP/1.1\r\n" + H + b"X-A: one\r\n\ttwo\r\n\r\n"),
    # obs-fold in every form: a continuation of an empty first line (llhttp 8
    # takes it as the value), a continuation of only blanks, and in trailers.
    ("obs_fold_empty_first_line_te",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("obs_fold_empty_first_line",
     b"GET /x HTTP/1.1\r\n" + H + b"X-A:\r\n two\r\n\r\n"),
    ("obs_fold_empty_first_line_tab",
     b"GET /x HTTP/1.1\r\n" + H + b"X-A:   \r\n\ttwo\r\n\r\n"),
    ("obs_fold_blank_continuation",
     b"GET /x HTTP/1.1\r\n" + H + b"X-A: one\r\n \r\n\r\n"),
    ("obs_fold_blank_continuation_of_empty",
     b"GET /x HTTP/1.1\r\n" + H + b"X-A:\r\n \r\n\r\n"),
    ("obs_fold_host",
     b"GET /x HTTP/1.1\r\nHost:\r\n client.example\r\n\r\n"),
    ("obs_fold_in_trailer",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"1\r\na\r\n0\r\nX-T: one\r\n two\r\n\r\n"),
    ("obs_fold_empty_first_line_in_trailer",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"1\r\na\r\n0\r\nX-T:\r\n two\r\n\r\n"),
    ("bare_lf", b"GET /x HTTP/1.1\nHost: client.example\nX-A: 1\n\n"),
    ("bare_lf_in_headers", b"GET /x HTTP/1.1\r\nHost: client.example\nX-A: 1\r\n\r\n"),
    ("bare_cr_in_header", b"GET /x HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n"),
    ("nul_in_header_value", b"GET /x HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    ("bad_chunk_size",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("chunk_size_overflow",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("chunk_data_without_crlf",
     b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ("space_before_colon", b"GET /x HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n"),
    ("invalid_method_chars", b"G@T /x HTTP/1.1\r\n" + H + b"\r\n"),
    # Bytes 0x80-0xFF are not allowed raw in a request target (RFC 3986: they
    # are percent-encoded); llhttp 8 lets them through.
    ("target_utf8_bytes", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n"),
    ("target_high_byte_in_query", b"GET /x?q=\xff HTTP/1.1\r\n" + H + b"\r\n"),
    ("target_high_byte_first", b"GET /\x80 HTTP/1.1\r\n" + H + b"\r\n"),
    ("absolute_form_target",
     b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
    ("connect_method",
     b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n"),
]


class FramingAttackTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.rd = cls.class_retryd(cls.up)

    def setUp(self):
        self.up.clear()
        self.up.handler = echo_target

    def check_rejected(self, data):
        self.assertRejected400(self.rd.port, data)

    def test_malformed_requests_rejected(self):
        for name, data in CASES:
            with self.subTest(case=name):
                self.up.clear()
                self.check_rejected(data)
                self.assertNothingForwarded(self.up, settle=0.05)
        self.assertNothingForwarded(self.up, settle=0.3)

    def send_bytewise(self, c, data):
        """One byte per write (TCP_NODELAY): each is likely its own read, so a
        check that only looks inside one read misses what spans two."""
        for i in range(len(data)):
            try:
                c.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return  # already answered and closed
            time.sleep(0.002)

    def test_obs_fold_rejected_when_sent_one_byte_at_a_time(self):
        cases = dict(CASES)
        for name in ("obs_fold_space", "obs_fold_empty_first_line_te",
                     "obs_fold_blank_continuation", "obs_fold_in_trailer",
                     "obs_fold_empty_first_line_in_trailer"):
            with self.subTest(case=name):
                self.up.clear()
                with RawConn(self.rd.port, timeout=5) as c:
                    self.send_bytewise(c, cases[name])
                    r = c.read_response()
                    self.assertJsonError(r, 400, "bad_request")
                    self.assertTrue(c.is_closed(timeout=2), "connection left open after a 400")
                self.assertNothingForwarded(self.up, settle=0.05)

    def test_valid_request_sent_one_byte_at_a_time_is_forwarded_intact(self):
        # Empty values, values cut by the end of a read, and trailers that are
        # fine must not be mistaken for obs-fold.
        data = (b"POST /bytewise HTTP/1.1\r\n" + H + b"X-Empty:\r\nX-Blank:   \r\n"
                b"X-B: some  value\t here\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\nX-Trailer-Ok: fine value\r\n\r\n")
        with RawConn(self.rd.port, timeout=5) as c:
            self.send_bytewise(c, data)
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        req = self.up.wait_for_requests(1)[0]
        self.assertEqual(req.body, b"abc")
        self.assertEqual(req.header("x-empty"), "")
        self.assertEqual(req.header("x-blank"), "")
        self.assertEqual(req.header("x-b"), "some  value\t here")
        self.assertEqual(req.header("x-trailer-ok"), "fine value")

    def test_error_request_after_valid_one_on_same_connection(self):
        # A valid request, then a smuggling attempt on the same connection:
        # the first is answered, the second is a 400, nothing of it forwarded.
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(b"GET /ok HTTP/1.1\r\n" + H + b"\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"/ok")
            c.send(b"POST /smuggle HTTP/1.1\r\n" + H +
                   b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n")
            r = c.read_response()
            self.assertJsonError(r, 400, "bad_request")
            self.assertTrue(c.is_closed(timeout=2), "connection left open after a 400")
        time.sleep(0.3)
        self.assertEqual([q.target for q in self.up.requests], ["/ok"])

    def test_host_header_does_not_choose_destination(self):
        with RawConn(self.rd.port, timeout=5) as c:
            c.send(b"GET /hosted HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"/hosted")
        req = self.up.wait_for_requests(1)[0]
        self.assertEqual(req.target, "/hosted")
        self.assertEqual(req.header_all("host"), ["127.0.0.1:%d" % self.up.port])

    def test_still_serving_after_attacks(self):
        for _, data in CASES[:5]:
            with RawConn(self.rd.port, timeout=5) as c:
                c.send(data)
                try:
                    c.read_until_close(timeout=2)
                except OSError:
                    pass
        status, _, body = self.rd.request("GET", "/alive")
        self.assertEqual((status, body), (200, b"/alive"))


if __name__ == "__main__":
    unittest.main()
