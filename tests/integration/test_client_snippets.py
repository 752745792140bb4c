"""The client snippets of docs/clients/ (pasted into README.md), run as they
are, in a subprocess, against a real retryd and the fake upstream: the
Python one with requests, the JavaScript one with Node's built-in fetch.

Each must: send its POST with an Idempotency-Key; on a 202, long-poll the
status URL with Prefer: wait and return the final answer from /response
(the upstream's 507, then its 201: the snippet prints the 201 and its body);
keep polling when a long-poll runs out (--max-wait below the snippet's wait);
report a request that ends dead or cancelled, and exit non-zero; send
retryd's read token when RETRYD_TOKEN is set (and retryd never forwards it);
and, when the answer to its POST is lost on the way back, send it again with
the same key, so the request is stored and delivered once.

Run as they are: the Python snippet by this interpreter (it needs
requests: Debian's python3-requests), the JavaScript one by node (18 or
later); each class is skipped, saying why, where its runtime is missing."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, control_get, send_request

CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "clients")
PY_SNIPPET = os.path.join(CLIENTS, "create_bot.py")
JS_SNIPPET = os.path.join(CLIENTS, "create-bot.mjs")
MEETING = "https://meet.example/abc-defg-hij"
BOT = b'{"id":"bot-1","status":"ready"}'
JSON = [("Content-Type", "application/json")]


class LossyRelay:
    """A TCP relay in front of retryd that passes the first connection's
    request on and then closes that connection instead of giving the client
    retryd's answer (an answer lost on the way back); later connections are
    relayed both ways."""

    def __init__(self, port):
        self.port = port
        self.conns = 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            self.conns += 1
            server = socket.create_connection(("127.0.0.1", self.port))
            lose = self.conns == 1
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, lose), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, lose):
        try:
            while True:
                data = src.recv(65536)
                if not data or lose:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.lsock.close()


class SnippetCases:
    """The cases every snippet passes; a subclass names how to run it."""

    def command(self):
        raise NotImplementedError

    def run_snippet(self, url, env=None, timeout=60):
        return subprocess.run(self.command() + [MEETING], env=self.snippet_env(url, env),
                              capture_output=True, text=True, timeout=timeout)

    def start_snippet(self, url, env=None):
        return subprocess.Popen(self.command() + [MEETING], env=self.snippet_env(url, env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def snippet_env(url, extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
        env.update({"RETRYD_URL": url, "RECALL_API_KEY": "test-key"})
        env.update(extra or {})
        return env

    def url(self, rd):
        return "http://127.0.0.1:%d" % rd.port

    def assertPrinted(self, p, status, body):
        self.assertEqual(p.stdout.strip(), "%d %s" % (status, body.decode()),
                         "stdout %r, stderr %r" % (p.stdout, p.stderr))

    def assertBotPosts(self, up, n):
        """The upstream got n POSTs of the snippet's request, all with one
        Idempotency-Key, the API key, and none of retryd's own headers."""
        reqs = up.wait_for_requests(n, timeout=10)
        self.assertEqual(len(reqs), n, reqs)
        keys = {r.header("idempotency-key") for r in reqs}
        self.assertEqual(len(keys), 1, keys)
        self.assertTrue(keys.pop())
        for r in reqs:
            self.assertEqual((r.method, r.target), ("POST", "/api/v1/bot/"), r)
            self.assertEqual(r.header("authorization"), "Token test-key", r)
            self.assertIsNone(r.header("x-retryd-token"), r)
            self.assertIsNone(r.header("prefer"), r)
            self.assertEqual(json.loads(r.body)["meeting_url"], MEETING, r)

    def stored_rows(self, rd):
        return control_get(rd.port, "/_retryd/requests?limit=100").json()["requests"]

    # ---- the cases ----

    def test_507_then_201_prints_the_final_answer(self):
        up = self.start_upstream()
        up.push(Response(507, headers=JSON, body=b'{"code":"pool_empty"}'),
                Response(201, headers=JSON, body=BOT))
        rd = self.start_retryd(up, "--retry-interval", "500ms")
        p = self.run_snippet(self.url(rd))
        self.assertEqual(p.returncode, 0, p)
        self.assertPrinted(p, 201, BOT)
        self.assertBotPosts(up, 2)
        rows = self.stored_rows(rd)
        self.assertEqual([(r["state"], r["attempts"]) for r in rows], [("completed", 2)], rows)

    def test_a_final_first_answer_is_printed_as_it_is(self):
        up = self.start_upstream()
        up.push(Response(201, headers=JSON, body=BOT))
        rd = self.start_retryd(up)
        p = self.run_snippet(self.url(rd))
        self.assertEqual(p.returncode, 0, p)
        self.assertPrinted(p, 201, BOT)
        self.assertBotPosts(up, 1)
        self.assertEqual(self.stored_rows(rd), [])

    def test_a_final_error_is_printed_and_fails(self):
        up = self.start_upstream()
        body = b'{"meeting_url":["not a meeting"]}'
        up.push(Response(507), Response(400, headers=JSON, body=body))
        rd = self.start_retryd(up, "--retry-interval", "300ms")
        p = self.run_snippet(self.url(rd))
        self.assertEqual(p.returncode, 1, p)
        self.assertPrinted(p, 400, body)

    def test_polls_again_when_a_long_poll_runs_out(self):
        up = self.start_upstream()
        up.push(Response(507), Response(201, headers=JSON, body=BOT))
        # retryd holds each poll 1 s (its --max-wait), the retry comes at 3 s
        rd = self.start_retryd(up, "--retry-interval", "3s", "--max-wait", "1s")
        t0 = time.monotonic()
        p = self.run_snippet(self.url(rd))
        self.assertEqual(p.returncode, 0, p)
        self.assertPrinted(p, 201, BOT)
        self.assertGreater(time.monotonic() - t0, 2.5)

    def test_dead_is_reported(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "300ms", "--max-attempts", "2")
        p = self.run_snippet(self.url(rd))
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(p.stdout, "", p)
        self.assertIn("dead after 2 attempts (last_status 507", p.stderr, p)
        self.assertNotIn("Traceback", p.stderr, p)
        self.assertBotPosts(up, 2)

    def test_cancelled_is_reported(self):
        up = self.start_upstream()
        up.default = Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1h")
        proc = self.start_snippet(self.url(rd))
        self.addCleanup(proc.kill)
        deadline = time.monotonic() + 15
        while not self.stored_rows(rd):
            self.assertLess(time.monotonic(), deadline, "the snippet's request was not stored")
            time.sleep(0.05)
        time.sleep(0.5)  # held in its long-poll by now
        rid = self.stored_rows(rd)[0]["id"]
        self.assertEqual(send_request(rd.port, "DELETE", "/_retryd/requests/%s" % rid).status, 200)
        out, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 1, (out, err))
        self.assertEqual(out, "")
        self.assertIn("%s cancelled after 1 attempts" % rid, err)

    def test_read_token_is_sent_to_retryd_only(self):
        up = self.start_upstream()
        up.push(Response(507), Response(201, headers=JSON, body=BOT))
        rd = self.start_retryd(up, "--retry-interval", "500ms", "--read-token", "s3cret-read")
        p = self.run_snippet(self.url(rd), {"RETRYD_TOKEN": "s3cret-read"})
        self.assertEqual(p.returncode, 0, p)
        self.assertPrinted(p, 201, BOT)
        self.assertBotPosts(up, 2)  # and no X-Retryd-Token among their fields

    def test_a_lost_202_is_sent_again_and_stored_once(self):
        up = self.start_upstream()
        up.push(Response(507), Response(201, headers=JSON, body=BOT))
        # The repeat comes while the row is still queued: that is when
        # retryd answers it from the row (after completion retryd forwards
        # a repeat again, and the upstream's own Idempotency-Key check is
        # what dedupes it).
        rd = self.start_retryd(up, "--retry-interval", "4s")
        relay = LossyRelay(rd.port)
        self.addCleanup(relay.close)
        p = self.run_snippet(relay.url)
        self.assertEqual(p.returncode, 0, p)
        self.assertPrinted(p, 201, BOT)
        self.assertGreaterEqual(relay.conns, 2, "the snippet did not send its POST again")
        # the repeat got the stored row's 202: one row, one first attempt, one retry
        self.assertBotPosts(up, 2)
        rows = self.stored_rows(rd)
        self.assertEqual([(r["state"], r["attempts"]) for r in rows], [("completed", 2)], rows)

    def test_a_503_from_retryd_is_sent_again_after_retry_after(self):
        up = self.start_upstream()
        bot = iter([Response(507), Response(507), Response(201, headers=JSON, body=BOT)])
        up.handler = lambda req: next(bot) if req.target == "/api/v1/bot/" else Response(507)
        # the queue is full (--max-queue 1): the snippet's 507 cannot be
        # stored, and retryd answers 503 with Retry-After: 1
        rd = self.start_retryd(up, "--retry-interval", "1s", "--max-queue", "1")
        r = send_request(rd.port, "POST", "/blocker", JSON, b"{}")
        self.assertEqual(r.status, 202, r)
        proc = self.start_snippet(self.url(rd))
        self.addCleanup(proc.kill)
        deadline = time.monotonic() + 15
        while control_get(rd.port, "/_retryd/stats").json()["totals"]["rejected"] < 1:
            self.assertLess(time.monotonic(), deadline, "the snippet's request was not refused")
            time.sleep(0.02)
        r = send_request(rd.port, "DELETE", "/_retryd/requests/%s" % r.json()["id"])
        self.assertEqual(r.status, 200, r)
        out, err = proc.communicate(timeout=30)
        self.assertEqual((proc.returncode, out.strip()), (0, "201 " + BOT.decode()), err)
        bots = [r for r in self.stored_rows(rd) if r["path"] == "/api/v1/bot/"]
        self.assertEqual([r["state"] for r in bots], ["completed"], bots)


class SnippetDocsTest(unittest.TestCase):

    def test_the_readme_blocks_are_the_files(self):
        # Both the folder's README and the project's show them.
        for readme in (os.path.join(CLIENTS, "README.md"),
                       os.path.join(CLIENTS, "..", "..", "README.md")):
            with open(readme) as f:
                doc = f.read()
            for lang, path in (("python", PY_SNIPPET), ("js", JS_SNIPPET)):
                with open(path) as f:
                    text = f.read()
                self.assertIn("```%s\n%s```\n" % (lang, text), doc,
                              "%s's %s block is not %s" % (readme, lang, path))
                self.assertLessEqual(text.count("\n"), 50, path)


class PythonSnippetTest(SnippetCases, RetrydTestCase):

    def setUp(self):
        try:
            import requests  # noqa: F401
        except ImportError:
            self.skipTest("python3-requests is not installed (docs/clients/create_bot.py uses it)")

    def command(self):
        return [sys.executable, PY_SNIPPET]


class NodeSnippetTest(SnippetCases, RetrydTestCase):

    def setUp(self):
        self.node = shutil.which("node") or shutil.which("nodejs")
        if self.node is None:
            self.skipTest("node is not installed (docs/clients/create-bot.mjs needs Node 18+)")

    def command(self):
        return [self.node, JS_SNIPPET]


if __name__ == "__main__":
    unittest.main()
