"""Keep-Alive hint: every answer that leaves the client's connection open
says for how long it stays open idle, `Keep-Alive: timeout=N` with N the
--keepalive-timeout in whole seconds (rounded down), so a client's pool (a
Node keep-alive agent) stops reusing the connection before retryd closes
it, instead of sending into a closing socket (ECONNRESET). Answers that
close the connection carry `Connection: close` and no hint. The upstream's
own Keep-Alive field is about its connection to retryd: never relayed."""

import json
import os
import shutil
import subprocess
import textwrap
import unittest

from fake_upstream import Response
from harness import RawConn, RetrydTestCase, send_request


class KeepAliveHintTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        # 7.9 s: the hint is rounded down, never promising more than retryd keeps.
        cls.rd = cls.class_retryd(cls.up, "--keepalive-timeout", "7900ms",
                                  "--retry-interval", "1h")

    def setUp(self):
        self.up.clear()
        self.up.handler = None

    def exchange(self, data, method="GET"):
        """Sends data on a new connection; returns (answer, closed after it)."""
        with RawConn(self.rd.port, timeout=10) as c:
            c.send(data)
            r = c.read_response(method=method)
            return r, c.is_closed(timeout=0.5)

    def assertHint(self, r, closed):
        self.assertFalse(closed, "retryd closed a kept-alive connection: %r" % r)
        self.assertEqual(r.header_all("keep-alive"), ["timeout=7"], r)
        self.assertNotEqual((r.header("connection") or "").lower(), "close", r)

    def assertNoHint(self, r, closed):
        self.assertTrue(closed, "connection left open after %r" % r)
        self.assertEqual(r.header_all("keep-alive"), [], r)
        self.assertEqual((r.header("connection") or "").lower(), "close", r)

    def test_relayed_answer_on_a_kept_alive_connection_carries_the_hint(self):
        self.up.push(Response(200, headers=[("Keep-Alive", "timeout=99, max=5")], body=b"hi"))
        r, closed = self.exchange(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((r.status, r.body), (200, b"hi"))
        self.assertHint(r, closed)

    def test_relayed_chunked_and_bodiless_answers_carry_the_hint(self):
        self.up.push(Response(200, pieces=[b"a", b"b"], chunked=True),
                     Response(204))
        for path, status in (("/chunked", 200), ("/empty", 204)):
            with self.subTest(path=path):
                r, closed = self.exchange(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
                self.assertEqual(r.status, status, r)
                self.assertHint(r, closed)

    def test_own_answers_carry_the_hint(self):
        self.up.default = Response(507, body=b"full")
        try:
            cases = [(b"GET /_retryd/health HTTP/1.1\r\nHost: x\r\n\r\n", 200),
                     (b"GET /_retryd/nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
                     (b"POST /stored HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 202)]
            for data, status in cases:
                with self.subTest(status=status):
                    r, closed = self.exchange(data)
                    self.assertEqual(r.status, status, r)
                    self.assertHint(r, closed)
        finally:
            self.up.default = Response(200, body=b"ok")

    def test_every_answer_of_a_reused_connection_carries_the_hint(self):
        with RawConn(self.rd.port, timeout=10) as c:
            for i in range(3):
                c.send(b"GET /again/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header_all("keep-alive"), ["timeout=7"], r)

    def test_http10_keep_alive_client_gets_the_hint_and_keep_alive(self):
        for path in (b"/ten", b"/_retryd/health"):
            with self.subTest(path=path):
                r, closed = self.exchange(b"GET %s HTTP/1.0\r\nHost: x\r\n"
                                          b"Connection: keep-alive\r\n\r\n" % path)
                self.assertEqual(r.status, 200, r)
                self.assertFalse(closed, r)
                self.assertEqual(r.header_all("keep-alive"), ["timeout=7"], r)
                self.assertEqual((r.header("connection") or "").lower(), "keep-alive", r)

    def test_answers_that_close_carry_no_hint(self):
        cases = [
            ("client asked to close", b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            ("own answer, client asked to close",
             b"GET /_retryd/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            ("HTTP/1.0 without keep-alive", b"GET /ten HTTP/1.0\r\nHost: x\r\n\r\n"),
            ("refused request", b"GET /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                                b"Content-Length: 2\r\n\r\nab"),
        ]
        for what, data in cases:
            with self.subTest(what):
                r, closed = self.exchange(data)
                self.assertNoHint(r, closed)

    def test_close_delimited_answer_to_http10_carries_no_hint(self):
        # No length from the upstream and an HTTP/1.0 client: only the close
        # can end the body, so the connection cannot be kept.
        self.up.push(Response(200, pieces=[b"x", b"y"], chunked=True))
        r, closed = self.exchange(b"GET /close-delimited HTTP/1.0\r\nHost: x\r\n"
                                  b"Connection: keep-alive\r\n\r\n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header_all("keep-alive"), [], r)
        self.assertTrue(closed)


class SubSecondKeepAliveTest(RetrydTestCase):

    def test_under_a_second_the_hint_is_zero(self):
        # Node's agent reads timeout=0 as "do not reuse": right, since
        # retryd closes before a second has passed.
        up = self.start_upstream()
        rd = self.start_retryd(up, "--keepalive-timeout", "800ms")
        r = send_request(rd.port, "GET", "/sub")
        self.assertEqual(r.header_all("keep-alive"), ["timeout=0"], r)


NODE_CLIENT = textwrap.dedent("""
    // Two GETs through one keep-alive agent (with an idle timeout of its own,
    // as Node's global agent has), with a pause between them longer than the
    // hint but shorter than retryd's --keepalive-timeout. Prints whether the
    // second one reused the first one's connection.
    const http = require('http');
    const port = Number(process.argv[2]), pause = Number(process.argv[3]);
    const agent = new http.Agent({keepAlive: true, timeout: 30000, maxSockets: 1});
    function get(path) {
      return new Promise((resolve, reject) => {
        const req = http.get({port, host: '127.0.0.1', path, agent}, (res) => {
          res.resume();
          res.on('end', () => resolve({status: res.statusCode, reused: req.reusedSocket,
                                       hint: res.headers['keep-alive'] || null}));
        });
        req.on('error', reject);
      });
    }
    (async () => {
      const a = await get('/node/1');
      await new Promise((r) => setTimeout(r, pause));
      const b = await get('/node/2');
      console.log(JSON.stringify({first: a, second: b}));
      agent.destroy();
    })().catch((e) => { console.log(JSON.stringify({error: String(e)})); process.exit(1); });
""")


class NodeAgentTest(RetrydTestCase):
    """The point of the hint, with the client it was asked for. Node is not
    one of retryd's test dependencies: skipped where it is not installed."""

    def test_node_agent_does_not_reuse_a_connection_past_the_hint(self):
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            self.skipTest("node is not installed")
        up = self.start_upstream()
        # timeout=3: Node frees the idle socket after 2 s (20.x and later:
        # the hint less a second) or 3 s (older); retryd closes at 3.9 s.
        rd = self.start_retryd(up, "--keepalive-timeout", "3900ms")
        path = os.path.join(rd.tmpdir, "client.js")
        with open(path, "w") as f:
            f.write(NODE_CLIENT)
        p = subprocess.run([node, path, str(rd.port), "3400"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(out["first"]["hint"], "timeout=3", out)
        self.assertEqual((out["first"]["status"], out["second"]["status"]), (200, 200), out)
        self.assertFalse(out["second"]["reused"],
                         "Node reused a connection past the hint retryd gave: %r" % out)


if __name__ == "__main__":
    unittest.main()
