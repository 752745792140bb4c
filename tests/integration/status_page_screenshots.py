"""Takes the screenshots of docs/status-page.md: the status page of a real
retryd in the states an on-call engineer meets (a paused route, a queue
draining after the upstream came back, requests given up, one request's
detail view), in headless Chromium (cdp.py). Not a test: run it by hand,
from a build tree, when the page changes:

    RETRYD_BIN=build/retryd python3 tests/integration/status_page_screenshots.py docs/

The history sampler's period is shortened to SAMPLE_MS (through
RETRYD_TEST_HISTORY_PERIOD_MS) so that the chart fills in seconds, not in
an hour; the chart says so ("Queue per 2 s")."""

import json
import os
import sys
import threading
import time

from fake_upstream import FakeUpstream, Response
from harness import Retryd, retire, send_request
from control_helpers import ctl, wait_state
from cdp import Browser

SAMPLE_MS = 2000
ENV = {"RETRYD_TEST_HISTORY_PERIOD_MS": str(SAMPLE_MS)}
BOT = b'{"id":"9f1c1f0e-2a1b-4a53-9d8e-3d1f0b6c2a10","status_changes":[{"code":"ready"}]}'


def post(rd, i, body=b'{"meeting_url":"https://meet.example/abc","bot_name":"Notes"}'):
    return send_request(rd.port, "POST", "/api/v1/bot/", [("Idempotency-Key", "k-%d" % i),
                        ("Content-Type", "application/json")], body)


def shoot(rd, name, outdir, hash_=None, height=1200):
    b = Browser(width=1280, height=height)
    try:
        url = "http://127.0.0.1:%d/_retryd/" % rd.port + ("#" + hash_ if hash_ else "")
        b.goto(url)
        b.wait("document.querySelector('#chart svg') && document.querySelector('#routes tr')")
        if hash_:
            b.wait("!document.getElementById('detail').hidden")
        time.sleep(0.5)
        path = os.path.join(outdir, "status-page-%s.png" % name)
        b.screenshot(path)
        print("wrote", path)
    finally:
        b.close()


def trickle(rd, n, every_s, start=0):
    for i in range(start, start + n):
        post(rd, i)
        time.sleep(every_s)


def paused_route(outdir):
    up = FakeUpstream().start()
    up.default = Response(507, headers=[("Retry-After", "90")],
                          body=b'{"detail":"adhoc bot pool empty, retry in 30 seconds"}')
    rd = Retryd(up.url, args=("--retry-interval", "30s", "--route-pause", "on"), env=ENV)
    rd.start()
    try:
        trickle(rd, 18, 0.6)
        shoot(rd, "paused-route", outdir)
    finally:
        retire(rd)
        up.stop()


def draining(outdir):
    up = FakeUpstream().start()
    state = {"full": True}
    up.handler = lambda req: (Response(507, body=b"adhoc bot pool empty")
                              if state["full"] else
                              Response(201, headers=[("Content-Type", "application/json")],
                                       body=BOT, delay=0.35))
    rd = Retryd(up.url, args=("--retry-interval", "4s", "--retry-concurrency", "1",
                              "--route-pause", "off"), env=ENV)
    rd.start()
    try:
        t = threading.Thread(target=trickle, args=(rd, 140, 0.05))
        t.start()
        t.join()
        time.sleep(4)
        state["full"] = False  # the pool has bots again
        time.sleep(12)
        shoot(rd, "draining", outdir)
        done = json.loads(ctl(rd.port, "GET", "/_retryd/requests?state=completed&limit=1").body)
        shoot(rd, "detail", outdir, hash_=done["requests"][0]["id"])
    finally:
        retire(rd)
        up.stop()


def dead(outdir):
    up = FakeUpstream().start()
    up.default = Response(503, body=b'{"detail":"dropped due to high load, please retry"}')
    rd = Retryd(up.url, args=("--retry-interval", "1s", "--max-attempts", "3",
                              "--route-pause", "off"), env=ENV)
    rd.start()
    try:
        ids = [json.loads(post(rd, i).body)["id"] for i in range(9)]
        for rid in ids[6:]:
            ctl(rd.port, "DELETE", "/_retryd/requests/" + rid)
        for rid in ids[:6]:
            wait_state(rd.port, rid, ("dead",), timeout=30)
        time.sleep(2 * SAMPLE_MS / 1000)
        shoot(rd, "dead", outdir)
    finally:
        retire(rd)
        up.stop()


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "docs"
    paused_route(outdir)
    draining(outdir)
    dead(outdir)


if __name__ == "__main__":
    main()
