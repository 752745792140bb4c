"""GET /_retryd/: a self-contained HTML status page. It loads no external
asset, and rendered by headless Chromium (/usr/bin/chromium; the test fails
if it is missing -- scripts/deps.sh installs it) it shows the queue figures
/_retryd/stats gives and lists the queued requests."""

import html.parser
import os
import re
import shutil
import struct
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, send_request
from control_helpers import QUEUE_STATES, chromium, ctl, ctl_json, list_all


class _Collect(html.parser.HTMLParser):
    """Attributes that load something, plus the cards and table rows."""

    def __init__(self):
        super().__init__()
        self.urls = []
        self.cards = {}
        self.rows = []
        self._card = None
        self._in_b = False
        self._row = None
        self._in_td = False
        self._in_rows = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href", "action", "data", "poster", "srcset"):
            if a.get(k):
                self.urls.append((tag, k, a[k]))
        if tag == "div" and "card" in (a.get("class") or "").split():
            self._card = a.get("data-name")
        elif tag == "b" and self._card is not None:
            self._in_b = True
        elif tag == "tbody" and a.get("id") == "rows":
            self._in_rows = True
        elif tag == "tr" and self._in_rows:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._in_td = True
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "b":
            self._in_b = False
        elif tag == "div":
            self._card = None
        elif tag == "td":
            self._in_td = False
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_rows = False

    def handle_data(self, data):
        if self._in_b and self._card is not None:
            self.cards.setdefault(self._card, data.strip())
        if self._in_td and self._row is not None:
            self._row[-1] += data


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("not a PNG: %r" % head[:8])
    return struct.unpack(">II", head[16:24])


class StatusPageTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        # The browser's /favicon.ico is proxied upstream (see
        # test_viewing_the_page_sends_nothing_upstream); a 404 keeps it out of
        # the queue these tests count.
        cls.up.handler = lambda req: (Response(404, body=b"no icon")
                                      if req.target == "/favicon.ico" else None)
        cls.up.default = Response(507, body=b"full")
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "1h")
        cls.ids = []
        for i in range(7):
            r = send_request(cls.rd.port, "POST", "/api/v1/bot/?page=%d" % i, [], b"{}")
            assert r.status == 202, r
            cls.ids.append(r.json()["id"])
        r = ctl(cls.rd.port, "DELETE", "/_retryd/requests/%s" % cls.ids[3])
        assert r.status == 200, r
        cls.queued = [i for i in cls.ids if i != cls.ids[3]]
        cls.url = "http://127.0.0.1:%d/_retryd/" % cls.rd.port

    def test_html_is_self_contained(self):
        for path in ("/_retryd/", "/_retryd"):
            with self.subTest(path=path):
                r = ctl(self.rd.port, "GET", path)
                self.assertEqual(r.status, 200, r)
                self.assertTrue((r.header("content-type") or "").startswith("text/html"), r)
                text = r.body.decode("utf-8")
                self.assertRegex(text.lower(), r"^<!doctype html>")
                p = _Collect()
                p.feed(text)
                for tag, attr, url in p.urls:
                    self.assertNotRegex(url.strip().lower(), r"^(https?:)?//",
                                        "external %s %s=%r" % (tag, attr, url))
                self.assertIsNone(re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""",
                                            text, re.I), "external asset in the page")
                self.assertIsNone(re.search(r"@import|url\(\s*['\"]?(https?:)?//", text, re.I))

    def test_rendered_page_shows_the_queue(self):
        stats = ctl_json(self.rd.port, "/_retryd/stats")
        code, out, err, tmp = chromium(self.url, ["--dump-dom"])
        shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(code, 0, err.decode("utf-8", "replace")[-3000:])
        dom = out.decode("utf-8", "replace")
        p = _Collect()
        p.feed(dom)
        self.assertEqual(p.cards.get("queued"), str(stats["queue"]["queued"]),
                         "queued card: %r" % p.cards)
        self.assertEqual(p.cards.get("queued"), "6")
        for state in QUEUE_STATES:
            self.assertEqual(p.cards.get(state), str(stats["queue"][state]), state)
        self.assertEqual(p.cards.get("stored"), str(stats["totals"]["stored"]), p.cards)
        self.assertEqual(p.cards.get("507"), "7", p.cards)
        self.assertEqual([row[0] for row in p.rows], self.queued, "table rows: %r" % p.rows)
        listed, _ = list_all(self.rd.port, state="queued")
        for row, obj in zip(p.rows, listed):
            self.assertEqual(row[:5], [obj["id"], "POST", obj["path"], "1", "507"], row)
        self.assertNotIn(self.ids[3], [row[0] for row in p.rows],
                         "a cancelled request is in the queued table")
        self.assertRegex(dom, r'<tbody id="cancelled"><tr data-id="%s">' % self.ids[3],
                         "the cancelled request is not in the cancelled list")
        err_div = re.search(r'<div id="err">(.*?)</div>', dom, re.S)
        self.assertIsNotNone(err_div, dom[:2000])
        self.assertEqual(err_div.group(1).strip(), "", "the page reports an error")

    def test_screenshot(self):
        code, out, err, tmp = chromium(self.url, ["--screenshot={tmp}/page.png",
                                                  "--window-size=1200,900"])
        try:
            self.assertEqual(code, 0, err.decode("utf-8", "replace")[-3000:])
            png = os.path.join(tmp, "page.png")
            self.assertTrue(os.path.exists(png), "no screenshot; stderr %r" % err[-2000:])
            self.assertEqual(png_size(png), (1200, 900))
            # a blank page compresses to a few KiB; text, cards and a table do not
            self.assertGreater(os.path.getsize(png), 15000, "screenshot looks empty")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_viewing_the_page_sends_nothing_upstream(self):
        """A browser on the status page asks for /favicon.ico; that must not
        be proxied to the third-party API (and, answered 507, stored and
        retried for a day)."""
        up = self.start_upstream()
        up.default = Response(507, body=b"full")
        rd = self.start_retryd(up, "--retry-interval", "1h")
        code, out, err, tmp = chromium("http://127.0.0.1:%d/_retryd/" % rd.port, ["--dump-dom"])
        shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(code, 0, err[-2000:])
        stats = ctl_json(rd.port, "/_retryd/stats")
        self.assertEqual(up.requests, [], "the status page made the browser send these upstream")
        self.assertEqual(stats["queue"]["queued"], 0, stats)


if __name__ == "__main__":
    unittest.main()
