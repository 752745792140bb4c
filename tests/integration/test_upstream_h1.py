"""retryd's own HTTP/1.1 client for http:// upstreams (proxy/upstream/upstream_h1.c).

Proves what is specific to that client: the keep-alive pool (reuse, several
connections, no reuse after "Connection: close", an HTTP/1.0 answer, stray
bytes after an answer, or an answer that ended while the client was slow); a
request that dies unanswered on a kept-alive connection is sent again once
on a new connection, and never otherwise; an idle connection the upstream
closes leaves the pool at once; host names are looked up and each address
tried in turn; interim 1xx answers are skipped; malformed answers are 502s;
retried stored requests go out byte for byte as the first attempt, path
prefix included; Host follows the upstream URL (IPv6 literal, default port).

Most runs pass `--retry-on 5xx` (no `network`), as test_upstream_errors.py
does, so that a failed exchange shows as a 502 instead of being stored."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from fake_upstream import Response, echo_target, pattern
from harness import RawConn, RetrydTestCase, build_request, send_request, wait_stored_state

DIRECT_ERROR_ARGS = ["--retry-on", "5xx"]


def answer(body, status=200, reason="OK", extra=b""):
    """Exact bytes of a Content-Length answer."""
    return (b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, reason.encode(), len(body))
            + extra + b"\r\n" + body)


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


class H1TestCase(RetrydTestCase):

    def get(self, c, target, headers=(), method="GET", body=b""):
        """One request on the open RawConn c; returns its RawResponse."""
        c.send(build_request(method, target, headers, body))
        return c.read_response(method=method)

    def fetch(self, rd, target, headers=(), method="GET", body=b""):
        """One request on a new client connection."""
        return send_request(rd.port, method, target, headers, body)

    def conn_ids(self, up):
        return [(r.target, r.conn_id) for r in up.requests]

    def assertBadGateway(self, r):
        obj = self.assertJsonError(r, 502, "bad_gateway")
        self.assertIsInstance(obj.get("message"), str)
        return obj


# ---------------------------------------------------------------------------
# 1. The keep-alive pool
# ---------------------------------------------------------------------------

class KeepAlivePoolTest(H1TestCase):

    def test_sequential_requests_share_one_upstream_connection(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, "--upstream-timeout", "5s", *DIRECT_ERROR_ARGS)
        with RawConn(rd.port, timeout=10) as c:
            for i in range(4):
                r = self.get(c, "/seq/%d" % i)
                self.assertEqual((r.status, r.body), (200, b"/seq/%d" % i), r)
            r = self.get(c, "/post", [("Content-Type", "text/plain")], "POST", b"payload")
            self.assertEqual((r.status, r.body), (200, b"/post"), r)
            # Bodyless answers keep the connection in step: a HEAD answer's
            # Content-Length announces a body that never comes, 204 and 304
            # have none.
            up.push(Response(200, body=b"x" * 1000))
            r = self.get(c, "/head", method="HEAD")
            self.assertEqual((r.status, r.header("content-length")), (200, "1000"), r)
            up.push(Response(204), Response(304, headers=[("ETag", '"e"')]))
            self.assertEqual(self.get(c, "/204").status, 204)
            self.assertEqual(self.get(c, "/304").status, 304)
            up.push(Response(200, pieces=[b"chunk-1;", b"chunk-2"], chunked=True))
            r = self.get(c, "/chunked")
            self.assertEqual((r.status, r.body), (200, b"chunk-1;chunk-2"), r)
            r = self.get(c, "/after-bodyless")
            self.assertEqual((r.status, r.body), (200, b"/after-bodyless"), r)
        # The pool is retryd's, not the client connection's.
        for i in range(3):
            r = self.fetch(rd, "/other-client/%d" % i)
            self.assertEqual((r.status, r.body), (200, b"/other-client/%d" % i), r)
        self.assertEqual(up.connections, 1, self.conn_ids(up))
        self.assertEqual({r.conn_id for r in up.requests}, {1})
        self.assertEqual([r.index_in_conn for r in up.requests], list(range(13)))
        self.assertEqual(up.parse_errors, [])

    def test_request_larger_than_socket_buffers_arrives_intact_then_reuses(self):
        # More than the kernel takes at once: the request goes out partly
        # written straight away and partly queued.
        body = os.urandom(9 << 20)
        up = self.start_upstream()
        up.handler = lambda req: Response(200, body=b"%d" % len(req.body))
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        with RawConn(rd.port, timeout=20) as c:
            r = self.get(c, "/upload", [("Content-Type", "application/octet-stream")], "PUT", body)
            self.assertEqual((r.status, r.body), (200, b"%d" % len(body)), r)
            r = self.get(c, "/small", [], "POST", b"tiny")
            self.assertEqual((r.status, r.body), (200, b"4"), r)
        big, small = up.wait_for_requests(2)
        self.assertEqual(big.header("content-length"), str(len(body)))
        self.assertTrue(big.body == body, "the upstream got a different body")
        self.assertEqual(small.body, b"tiny")
        self.assertEqual((big.conn_id, small.conn_id), (1, 1))
        self.assertEqual(up.parse_errors, [])

    def test_connection_close_or_http10_answer_is_not_reused(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        # The fake upstream keeps its side open after each of these answers:
        # only retryd's reading of the answer can stop the reuse.
        finals = [
            ("connection-close", Response(200, body=b"closing", headers=[("Connection", "close")])),
            ("http10", Response(raw=b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhttp")),
            ("http10-close", Response(raw=b"HTTP/1.0 200 OK\r\nConnection: close\r\n"
                                          b"Content-Length: 2\r\n\r\nok")),
        ]
        seen = 0
        for name, resp in finals:
            with self.subTest(answer=name):
                up.push(resp)
                r = self.fetch(rd, "/" + name)
                self.assertEqual(r.status, 200, r)
                r = self.fetch(rd, "/next-" + name)
                self.assertEqual((r.status, r.body), (200, b"/next-" + name.encode()), r)
                reqs = up.wait_for_requests(seen + 2)
                first, nxt = reqs[seen], reqs[seen + 1]
                seen += 2
                self.assertNotEqual(nxt.conn_id, first.conn_id,
                                    "reused after %s: %r" % (name, self.conn_ids(up)))
                # retryd closed the connection it would not reuse; only the
                # one it pooled after /next-* stays open.
                self.assertTrue(up.wait_open_connections(1),
                                "retryd left the connection open (%d open)" % up.open_connections)
        self.assertEqual(up.connections, 4, self.conn_ids(up))

    def test_concurrent_requests_get_own_connections_which_are_all_pooled(self):
        up = self.start_upstream()
        barrier = threading.Barrier(3, timeout=5)

        def together(req):
            # Answer only once all three are in: they are in flight at once.
            if req.target.startswith("/together"):
                barrier.wait()
            return echo_target(req)

        up.handler = together
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)

        def three_at_once(tag):
            out = [None] * 3

            def one(i):
                out[i] = self.fetch(rd, "/together/%s/%d" % (tag, i))

            ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(15)
            for i, r in enumerate(out):
                self.assertIsNotNone(r)
                self.assertEqual((r.status, r.body),
                                 (200, ("/together/%s/%d" % (tag, i)).encode()), r)

        three_at_once("a")
        self.assertEqual(up.connections, 3, self.conn_ids(up))
        for i in range(4):
            self.assertEqual(self.fetch(rd, "/one/%d" % i).status, 200)
        barrier.reset()
        three_at_once("b")
        # All three idle connections were kept and used again.
        self.assertEqual(up.connections, 3, self.conn_ids(up))
        self.assertEqual(len({r.conn_id for r in up.requests[-3:]}), 3, self.conn_ids(up))


# ---------------------------------------------------------------------------
# 2. A kept-alive connection that dies under a request
# ---------------------------------------------------------------------------

def pool_two_connections(test, up, rd):
    """Two requests in flight at once, so that retryd pools two upstream
    connections (1 and 2)."""
    barrier = threading.Barrier(2, timeout=5)
    prev = up.handler

    def together(req):
        if req.target.startswith("/pool-"):
            barrier.wait()
            return Response(200, body=req.target.encode())
        return prev(req) if prev else None

    up.handler = together
    out = {}
    ts = [threading.Thread(target=lambda t=t: out.update({t: test.fetch(rd, t)}))
          for t in ("/pool-a", "/pool-b")]
    for t in ts:
        t.start()
    for t in ts:
        t.join(15)
    up.handler = prev
    for t in ("/pool-a", "/pool-b"):
        test.assertEqual((out[t].status, out[t].body), (200, t.encode()), out[t])
    test.assertEqual(up.connections, 2)


class DeadConnectionResendTest(H1TestCase):

    def send_two(self, rd):
        """/first then POST /second on one client connection."""
        with RawConn(rd.port, timeout=10) as c:
            r1 = self.get(c, "/first")
            self.assertEqual((r1.status, r1.body), (200, b"first"), r1)
            return self.get(c, "/second", [("Content-Type", "application/json"),
                                           ("Idempotency-Key", "k-2")],
                            "POST", b'{"n":2}')

    def test_request_on_dead_kept_alive_connection_is_resent_once_on_a_new_one(self):
        up = self.start_upstream()
        up.push(Response(200, body=b"first"),
                Response(close_without_answer=True),          # conn 1 dies under /second
                Response(201, body=b"second, really"))        # answered on conn 2
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        r = self.send_two(rd)
        self.assertEqual((r.status, r.body), (201, b"second, really"), r)
        reqs = up.wait_for_requests(3)
        self.assertEqual([(q.target, q.conn_id) for q in reqs],
                         [("/first", 1), ("/second", 1), ("/second", 2)])
        self.assertEqual(reqs[2].raw_head, reqs[1].raw_head)
        self.assertEqual(reqs[2].raw_body, reqs[1].raw_body)
        self.assertEqual(reqs[2].body, b'{"n":2}')
        self.assertEqual(up.count(), 3)

    def test_resend_is_counted_and_logged_as_an_attempt_without_answer(self):
        up = self.start_upstream()
        up.push(Response(200, body=b"first"),
                Response(close_without_answer=True),
                Response(201, body=b"second, really"))
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        self.assertEqual(self.send_two(rd).status, 201)
        stats = json.loads(self.fetch(rd, "/_retryd/stats").body)
        self.assertEqual(stats["upstream"]["resent"], 1, stats)
        self.assertEqual(stats["upstream"]["network_errors"], 1, stats)
        self.assertEqual(stats["upstream"]["latency_ms"]["count"], 3, stats)
        line = rd.wait_log(lambda o: o.get("msg") == "upstream_resend")
        self.assertIsNotNone(line, rd.stderr_text())
        self.assertEqual((line["method"], line["path"]), ("POST", "/second"), line)
        self.assertIn("kept-alive", line["error"])
        metrics = self.fetch(rd, "/_retryd/metrics").body.decode()
        self.assertIn("retryd_upstream_resent_total 1", metrics)

    def test_resend_goes_on_a_new_connection_not_another_pooled_one(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        pool_two_connections(self, up, rd)
        # The pooled one the request lands on dies; the other pooled one may
        # be just as stale, so the resend opens connection 3.
        up.push(Response(close_without_answer=True), Response(200, body=b"resent"))
        r = self.fetch(rd, "/x", method="PUT", body=b"body")
        self.assertEqual((r.status, r.body), (200, b"resent"), r)
        died, resent = up.requests[2:]
        self.assertIn(died.conn_id, (1, 2))
        self.assertEqual((resent.target, resent.conn_id), ("/x", 3), self.conn_ids(up))
        self.assertEqual(up.count(), 4)

    def test_resend_happens_only_once(self):
        up = self.start_upstream()
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        pool_two_connections(self, up, rd)
        up.push(Response(close_without_answer=True),
                Response(close_without_answer=True),
                Response(close_without_answer=True))
        self.assertBadGateway(self.fetch(rd, "/twice", method="POST", body=b"b"))
        sent = [q for q in up.requests if q.target == "/twice"]
        self.assertEqual(len(sent), 2, self.conn_ids(up))
        self.assertEqual(sent[1].conn_id, 3, self.conn_ids(up))

    def test_fresh_connection_closed_without_answer_is_not_resent(self):
        up = self.start_upstream()
        up.push(Response(close_without_answer=True))
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        r = self.fetch(rd, "/fresh", method="POST", body=b"once")
        self.assertBadGateway(r)
        self.assertEqual([(q.target, q.conn_id) for q in up.requests], [("/fresh", 1)])
        self.assertEqual(up.connections, 1)

    def test_kept_alive_connection_dying_mid_answer_is_not_resent(self):
        up = self.start_upstream()
        # Part of an answer's head, then the connection ends: the upstream
        # had started answering, so the request may have been acted on.
        up.push(Response(200, body=b"first"),
                Response(raw=b"HTTP/1.1 200 OK\r\nContent-Le", close=True))
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        self.assertBadGateway(self.send_two(rd))
        self.assertEqual([(q.target, q.conn_id) for q in up.requests],
                         [("/first", 1), ("/second", 1)])
        self.assertEqual(up.connections, 1)


# ---------------------------------------------------------------------------
# 3. An idle pooled connection that the upstream closes
# ---------------------------------------------------------------------------

class IdleConnectionClosedTest(H1TestCase):

    def test_idle_connection_closed_by_upstream_is_dropped_at_once(self):
        up = self.start_upstream()
        up.handler = echo_target
        # FIN 0.2 s after the answer, but the fake goes on reading: a request
        # retryd wrongly sent on that connection would be recorded there.
        up.push(Response(200, body=b"first", idle_close_after=0.2))
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        r = self.fetch(rd, "/first")
        self.assertEqual((r.status, r.body), (200, b"first"), r)
        self.assertTrue(up.wait_open_connections(0, timeout=5),
                        "retryd did not close the idle connection the upstream closed")
        t0 = time.monotonic()
        r = self.fetch(rd, "/second")
        self.assertEqual((r.status, r.body), (200, b"/second"), r)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual([(q.target, q.conn_id) for q in up.requests],
                         [("/first", 1), ("/second", 2)])


# ---------------------------------------------------------------------------
# 4. Host names, addresses and Host
# ---------------------------------------------------------------------------

HOSTS_V6_FIRST = "::1 localhost\n127.0.0.1 localhost\n"


def private_hosts_prefix(hosts_path):
    """A command prefix that runs the binary with hosts_path bind-mounted on
    /etc/hosts in a private mount namespace (exec keeps the pid)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', hosts_path]


class HostNameTest(H1TestCase):

    def test_host_name_upstream_is_looked_up_and_sent_as_host(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd("http://localhost:%d" % up.port, *DIRECT_ERROR_ARGS)
        for t in ("/named/1", "/named/2"):
            r = self.fetch(rd, t)
            self.assertEqual((r.status, r.body), (200, t.encode()), r)
        reqs = up.wait_for_requests(2)
        for q in reqs:
            self.assertEqual(q.header_all("host"), ["localhost:%d" % up.port], q.headers)
        self.assertEqual(up.connections, 1)

    def test_host_name_falls_through_to_the_next_address(self):
        # localhost resolves to ::1 first, where nothing listens on the port;
        # the fake upstream is on 127.0.0.1, the second address.
        if os.geteuid() != 0 or shutil.which("unshare") is None or not ipv6_loopback():
            self.skipTest("needs root, unshare and IPv6 loopback for a private /etc/hosts")
        tmp = tempfile.mkdtemp(prefix="retryd-h1-hosts-")
        self.addCleanup(shutil.rmtree, tmp, True)
        hosts = os.path.join(tmp, "hosts")
        with open(hosts, "w") as f:
            f.write(HOSTS_V6_FIRST)
        probe = subprocess.run(private_hosts_prefix(hosts) + ["getent", "ahosts", "localhost"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        first = probe.stdout.split(b"\n", 1)[0].split()
        if probe.returncode != 0 or not first or first[0] != b"::1":
            self.skipTest("no private /etc/hosts here: %r %r" % (probe.stdout, probe.stderr))
        up = self.start_upstream()
        up.handler = echo_target
        # Hold [::1]:port without listening, so connecting there is refused.
        hold = socket.socket(socket.AF_INET6)
        self.addCleanup(hold.close)
        hold.bind(("::1", up.port))
        rd = self.start_retryd("http://localhost:%d" % up.port, *DIRECT_ERROR_ARGS,
                               prefix=private_hosts_prefix(hosts))
        r = self.fetch(rd, "/fallthrough")
        self.assertEqual((r.status, r.body), (200, b"/fallthrough"), r)
        req = up.wait_for_requests(1)[0]
        self.assertEqual(req.header_all("host"), ["localhost:%d" % up.port], req.headers)

    def test_ipv6_literal_upstream_host_in_brackets(self):
        if not ipv6_loopback():
            self.skipTest("no IPv6 loopback")
        up = self.start_upstream(host="::1")
        up.handler = echo_target
        rd = self.start_retryd(up.url + "/v6", *DIRECT_ERROR_ARGS)
        r = self.fetch(rd, "/x?y=1")
        self.assertEqual((r.status, r.body), (200, b"/v6/x?y=1"), r)
        req = up.wait_for_requests(1)[0]
        self.assertEqual(req.header_all("host"), ["[::1]:%d" % up.port], req.headers)

    def test_default_port_is_left_out_of_host(self):
        try:
            up = self.start_upstream(port=80)
        except OSError as e:
            self.skipTest("cannot listen on port 80: %s" % e)
        up.handler = echo_target
        for url in ("http://127.0.0.1/p", "http://127.0.0.1:80/p"):
            with self.subTest(upstream=url):
                up.clear()
                rd = self.start_retryd(url, *DIRECT_ERROR_ARGS)
                r = self.fetch(rd, "/x")
                self.assertEqual((r.status, r.body), (200, b"/p/x"), r)
                req = up.wait_for_requests(1)[0]
                self.assertEqual(req.header_all("host"), ["127.0.0.1"], req.headers)


# ---------------------------------------------------------------------------
# 5-7. What the upstream answers
# ---------------------------------------------------------------------------

INTERIM = [b"HTTP/1.1 100 Continue\r\n\r\n",
           b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"]
FINAL = answer(b"hello", extra=b"X-Final: yes\r\n")


class AnswerParsingTest(H1TestCase):

    def test_interim_answers_are_skipped_and_the_final_one_relayed_intact(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        cases = [
            ("one write", Response(raw=b"".join(INTERIM) + FINAL)),
            ("one write per answer", Response(raw=INTERIM + [FINAL], piece_delay=0.05)),
            ("split inside heads", Response(raw=[INTERIM[0][:9], INTERIM[0][9:] + INTERIM[1][:30],
                                                 INTERIM[1][30:] + FINAL[:20], FINAL[20:]],
                                            piece_delay=0.05)),
            ("100 only", Response(raw=INTERIM[0] + FINAL)),
        ]
        with RawConn(rd.port, timeout=10) as c:
            for name, resp in cases:
                with self.subTest(case=name):
                    up.push(resp)
                    r = self.get(c, "/upload", [("Content-Type", "text/plain")], "POST",
                                 b"data")
                    self.assertEqual(r.interim, [], "an interim answer reached the client")
                    self.assertEqual((r.status, r.reason), (200, "OK"), r)
                    self.assertEqual(r.header("x-final"), "yes", r)
                    self.assertIsNone(r.header("link"), "a 103's field leaked into the answer")
                    self.assertEqual(r.body, b"hello")
                    self.assertNotIn(b"Early Hints", r.raw_head)
                    # The connection stays in step for the next request.
                    r = self.get(c, "/after")
                    self.assertEqual((r.status, r.body), (200, b"/after"), r)
        self.assertEqual(up.connections, 1, self.conn_ids(up))

    def test_malformed_answer_is_a_502_and_its_connection_is_dropped(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        cases = [
            ("content-length abc", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"),
            ("two content-lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                    b"Content-Length: 6\r\n\r\nhello!"),
            ("garbage status code", b"HTTP/1.1 2x0 Fine\r\nContent-Length: 0\r\n\r\n"),
            ("not http", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
            ("space before colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
            ("switching protocols", b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                                    b"Upgrade: websocket\r\n\r\n"),
        ]
        seen = 0
        for name, raw in cases:
            with self.subTest(case=name):
                # The fake keeps its side open: retryd has to drop it.
                up.push(Response(raw=raw))
                r = self.fetch(rd, "/bad")
                self.assertBadGateway(r)
                self.assertEqual(up.count(), seen + 1, "sent again after a malformed answer")
                # retryd keeps serving, on a new connection.
                r = self.fetch(rd, "/good")
                self.assertEqual((r.status, r.body), (200, b"/good"), r)
                bad, good = up.wait_for_requests(seen + 2)[seen:]
                seen += 2
                self.assertNotEqual(good.conn_id, bad.conn_id, self.conn_ids(up))
                self.assertTrue(up.wait_open_connections(1),
                                "the malformed answer's connection is still open")

    def test_bytes_after_a_complete_answer_stop_reuse(self):
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        stray = answer(b"stray")
        cases = [
            ("same write", Response(raw=answer(b"mine") + stray)),
            ("while idle", Response(raw=[answer(b"mine"), stray], piece_delay=0.2)),
        ]
        seen = 0
        for name, resp in cases:
            with self.subTest(case=name):
                up.push(resp)
                with RawConn(rd.port, timeout=10) as c:
                    r = self.get(c, "/mine")
                    self.assertEqual((r.status, r.body), (200, b"mine"), r)
                    # The fake goes on reading: retryd closes the connection
                    # once it sees the stray answer.
                    self.assertTrue(up.wait_open_connections(0),
                                    "connection with stray bytes still open")
                    r = self.get(c, "/next")
                    self.assertEqual((r.status, r.body), (200, b"/next"), r)
                    self.assertFalse(c.is_closed(timeout=0.2))  # and nothing else came
                mine, nxt = up.wait_for_requests(seen + 2)[seen:]
                seen += 2
                self.assertNotEqual(nxt.conn_id, mine.conn_id, self.conn_ids(up))
        self.assertEqual(up.connections, 3, self.conn_ids(up))


# ---------------------------------------------------------------------------
# Back-pressure: an answer that ends while the client is slow
# ---------------------------------------------------------------------------

class PausedAnswerTest(H1TestCase):

    def test_answer_ending_after_a_pause_leaves_its_connection_watched_in_the_pool(self):
        # The client falls behind, so the upstream answer is paused after its
        # last body bytes; once the client drains, the answer ends inside the
        # resume and its connection goes back to the pool, where it must be
        # read again: to notice the upstream closing it, and to get the next
        # answer on it.
        big = 8 << 20  # more than the kernel buffers and retryd's 256 KiB high water
        up = self.start_upstream()
        up.handler = echo_target
        rd = self.start_retryd(up, "--retry-interval", "200ms", "--max-body", "16MiB",
                               "--upstream-timeout", "3s", *DIRECT_ERROR_ARGS)
        # A stored request whose final answer is big: its /response is
        # written to a client in one go.
        up.push(Response(507), Response(200, body_size=big),
                Response(200, body=b"small", idle_close_after=0.2))
        r = self.fetch(rd, "/big", method="POST", body=b"x")
        self.assertEqual(r.status, 202, r)
        rid = r.json()["id"]
        wait_stored_state(rd.port, rid, "completed", timeout=10)
        self.assertEqual(up.connections, 1)
        with RawConn(rd.port, timeout=15) as c:
            # Pipelined: the 8 MiB /response fills everything between retryd
            # and this client, which does not read; /small is forwarded
            # meanwhile, and its body cannot be relayed until the client
            # reads.
            c.send(build_request("GET", "/_retryd/requests/%s/response" % rid)
                   + build_request("GET", "/small"))
            up.wait_for_requests(3)
            time.sleep(0.3)  # let the answer land and be paused
            r1 = c.read_response()
            self.assertEqual((r1.status, len(r1.body)), (200, big))
            self.assertTrue(r1.body == pattern(0, big), "stored answer differs")
            r2 = c.read_response()
            self.assertEqual((r2.status, r2.body), (200, b"small"), r2)
            # The upstream closes the pooled connection 0.2 s after /small.
            self.assertTrue(up.wait_open_connections(0, timeout=5),
                            "the pooled connection is not read: its close went unnoticed")
            t0 = time.monotonic()
            r3 = self.get(c, "/after")
            self.assertEqual((r3.status, r3.body), (200, b"/after"), r3)
            self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual([(q.target, q.conn_id) for q in up.requests],
                         [("/big", 1), ("/big", 1), ("/small", 1), ("/after", 2)])


# ---------------------------------------------------------------------------
# 8-9. Retried stored requests, path prefix
# ---------------------------------------------------------------------------

class RetriedRequestTest(H1TestCase):

    def test_retried_request_is_byte_identical_with_prefix_host_and_length(self):
        up = self.start_upstream()
        rd = self.start_retryd(up.url + "/api/v2", "--retry-interval", "200ms",
                               *DIRECT_ERROR_ARGS)
        body = "{\"meeting_url\":\"https://meet.example/x\",\"name\":\"N\u00f6te\"}".encode()
        chunked = (b"POST /bot/?chunked=1 HTTP/1.1\r\nHost: client.example\r\n"
                   b"Transfer-Encoding: chunked\r\nX-Tag: c\r\n\r\n"
                   b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        cases = [
            ("post with body", build_request(
                "POST", "/bot/?a=1&b=%2F", [("Authorization", "Token t"),
                                            ("Content-Type", "application/json"),
                                            ("X-Dup", "1"), ("X-Dup", "2")], body),
             "/api/v2/bot/?a=1&b=%2F", body),
            ("chunked upload", chunked, "/api/v2/bot/?chunked=1", b"hello, world"),
            ("post empty body", build_request("POST", "/empty", [], b""), "/api/v2/empty", b""),
            ("get", build_request("GET", "/bot/1", [("Accept", "*/*")]), "/api/v2/bot/1", None),
        ]
        seen = 0
        for name, raw, target, sent_body in cases:
            with self.subTest(case=name):
                up.push(Response(507, body=b"later"), Response(200, body=b"done"))
                with RawConn(rd.port, timeout=10) as c:
                    c.send(raw)
                    r = c.read_response()
                self.assertEqual(r.status, 202, r)
                wait_stored_state(rd.port, r.json()["id"], "completed", timeout=10)
                reqs = up.wait_for_requests(seen + 2)
                first, retry = reqs[seen], reqs[seen + 1]
                seen += 2
                self.assertEqual(retry.raw_head, first.raw_head)
                self.assertEqual(retry.raw_body, first.raw_body)
                for q in (first, retry):
                    self.assertEqual(q.target, target)
                    self.assertEqual(q.header_all("host"), ["127.0.0.1:%d" % up.port])
                    self.assertIsNone(q.header("transfer-encoding"), q.headers)
                    if sent_body is None:
                        self.assertIsNone(q.header("content-length"), q.headers)
                    else:
                        self.assertEqual(q.header_all("content-length"), [str(len(sent_body))])
                        self.assertEqual(q.body, sent_body)
        self.assertEqual(up.parse_errors, [])


if __name__ == "__main__":
    unittest.main()
