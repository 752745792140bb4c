"""The status page as an on-call engineer uses it, in headless Chromium
driven over the DevTools protocol (cdp.py): the queued, dead and cancelled
lists with their last errors and reasons, "50 of N" where a list is cut,
relative times, the route's state, the settings in force, the chart of the
last hour, the detail view of one request with its answer, and the retry
and cancel buttons, which ask for the admin token when the page holds only
the read token."""

import json
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, send_request
from control_helpers import ctl, ctl_json, wait_state
from cdp import Browser

ADMIN = "admin-secret-4c1d"
READ = "read-secret-77aa"
QUEUED = 53     # more than the page's 50 rows
CANCELLED = 2
DEAD = 3
ANSWER = b'{"bot":"ready","n":42}'


class OnCallPageTest(RetrydTestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = cls.class_upstream()
        cls.ready = set()  # paths the upstream now answers 201

        def handler(req):
            if req.target == "/favicon.ico":
                return Response(404, body=b"no icon")
            if req.target in cls.ready:
                return Response(201, headers=[("Content-Type", "application/json")],
                                body=ANSWER)
            return None
        cls.up.handler = handler
        cls.up.default = Response(507, body=b"adhoc bot pool empty")
        cls.rd = cls.class_retryd(cls.up, "--retry-interval", "1h", "--max-attempts", "2",
                                  "--admin-token", ADMIN, "--read-token", READ)
        cls.ids = []
        for i in range(QUEUED + CANCELLED + DEAD + 1):
            r = send_request(cls.rd.port, "POST", "/api/v1/bot/%d" % i, [], b"{}")
            assert r.status == 202, r
            cls.ids.append(r.json()["id"])
        cls.cancelled = cls.ids[QUEUED:QUEUED + CANCELLED]
        cls.dead = cls.ids[QUEUED + CANCELLED:QUEUED + CANCELLED + DEAD]
        cls.done = cls.ids[-1]
        for rid in cls.cancelled:
            assert ctl(cls.rd.port, "DELETE", "/_retryd/requests/" + rid, token=ADMIN).status == 200
        for rid in cls.dead:  # a second 507 with --max-attempts 2: given up
            assert ctl(cls.rd.port, "POST", "/_retryd/requests/%s/retry" % rid,
                       token=ADMIN).status == 200
            wait_state(cls.rd.port, rid, ("dead",), token=ADMIN)
        cls.ready.add("/api/v1/bot/%d" % (len(cls.ids) - 1))
        assert ctl(cls.rd.port, "POST", "/_retryd/requests/%s/retry" % cls.done,
                   token=ADMIN).status == 200
        wait_state(cls.rd.port, cls.done, ("completed",), token=ADMIN)
        cls.url = "http://127.0.0.1:%d/_retryd/" % cls.rd.port

    def setUp(self):
        self.b = Browser()
        self.addCleanup(self.b.close)
        # The page holds the read token, as an on-call engineer's would.
        self.b.goto(self.url)
        self.b.eval("sessionStorage.setItem('retryd-token', %s)" % json.dumps(READ))
        self.b.goto(self.url)
        self.b.wait("document.querySelectorAll('#rows tr').length > 0", what="the queued rows")

    def text(self, selector):
        return self.b.eval("document.querySelector(%s).textContent" % json.dumps(selector))

    def cells(self, tbody):
        return self.b.eval("[...document.querySelectorAll('#%s tr')].map(tr => "
                           "[...tr.children].map(td => td.textContent))" % tbody)

    def test_lists_say_how_many_they_show_of_how_many(self):
        stats = ctl_json(self.rd.port, "/_retryd/stats", token=READ)
        q = stats["queue"]
        # Other tests of this class cancel one and deliver a dead one.
        self.assertGreaterEqual(q["queued"], QUEUED - 1, stats)
        self.assertEqual(self.text("#queued-count"), "— 50 of %d" % q["queued"])
        self.assertIn("50 of %d" % q["queued"], self.text("#queued-more"))
        self.assertEqual(len(self.cells("rows")), 50)
        self.assertGreaterEqual(q["dead"], DEAD - 1)
        self.assertEqual(self.text("#dead-count"), "— %d" % q["dead"])
        self.assertEqual(len(self.cells("dead")), q["dead"])
        self.assertEqual(self.text("#dead-more"), "")
        self.assertEqual(self.text("#cancelled-count"), "— %d" % q["cancelled"])
        self.assertEqual(self.text("#err"), "")

    def test_rows_show_the_last_error_reason_and_relative_times(self):
        rows = self.cells("rows")
        first = rows[0]
        self.assertEqual(first[0], self.ids[0])
        self.assertEqual(first[1:5], ["POST", "/api/v1/bot/0", "1", "507"])
        self.assertRegex(first[5], r"^(just now|\d+ s ago)$")
        self.assertRegex(first[6], r"^in (59|60) m$")
        self.assertEqual(first[7], "answered 507")
        dead = self.cells("dead")
        self.assertGreaterEqual(len(dead), DEAD - 1)
        self.assertEqual([r[0] for r in dead], [i for i in self.dead if i in [r[0] for r in dead]])
        for r in dead:
            self.assertEqual(r[3], "2", r)
            self.assertIn("max-attempts", r[7], r)
        cancelled = self.cells("cancelled")
        listed = [r[0] for r in cancelled]
        self.assertEqual([i for i in listed if i in self.cancelled], self.cancelled)
        for r in cancelled:
            self.assertIn("cancelled by an operator", r[7], r)
            self.assertIn("507", r[7], r)

    def test_a_paused_route_shows_its_state_and_until_when(self):
        up = self.start_upstream()
        up.default = Response(507, body=b"full", headers=[("Retry-After", "120")])
        rd = self.start_retryd(up, "--retry-interval", "1h", "--route-pause", "on")
        self.assertEqual(send_request(rd.port, "POST", "/api/v1/bot/", [], b"{}").status, 202)
        self.b.goto("http://127.0.0.1:%d/_retryd/" % rd.port)
        self.b.wait("document.querySelector('#routes tr')", what="the routes")
        route = self.cells("routes")[0]
        self.assertEqual(route[0], "default")
        self.assertEqual(route[3], "paused", "a 507 pauses the route: %r" % route)
        self.assertRegex(route[4], r"^in \d+ (s|m) \(20")
        self.assertEqual(route[5], "507")
        self.assertEqual(self.text("#health"), "1 route paused")
        # A request sent while the route is paused is held, not sent: the
        # page says it waits for the route, not that it is due.
        self.assertEqual(send_request(rd.port, "POST", "/api/v1/bot/", [], b"{}").status, 202)
        self.b.wait("document.querySelectorAll('#rows tr').length === 2", what="the held row")
        held = self.cells("rows")[1]
        self.assertEqual(held[3], "0", held)
        self.assertEqual(held[6], "when the route reopens", held)
        self.assertIn("held", held[7], held)

    def test_settings_in_force_without_secrets(self):
        settings = self.b.eval("Object.fromEntries([...document.querySelectorAll('#settings dt')]"
                               ".map(dt => [dt.textContent, dt.nextSibling.textContent]))")
        self.assertEqual(settings["upstream"], self.up.url.rstrip("/"))
        self.assertEqual(settings["retry interval"], "1h")
        self.assertEqual(settings["max attempts"], "2")
        self.assertEqual(settings["store"], "sqlite" if "postgres" not in self.rd.db else "postgres")
        self.assertEqual(settings["admin token"], "set")
        html = self.b.eval("document.documentElement.outerHTML")
        self.assertNotIn(ADMIN, html)
        self.assertNotIn(READ, html)

    def test_chart_draws_the_samples(self):
        self.b.wait("document.querySelectorAll('#chart svg').length === 2", what="the chart")
        self.assertGreaterEqual(int(self.b.eval("document.getElementById('chart').dataset.samples")), 1)
        # The minute in progress: stored and upstream answers drawn as bars,
        # the queued count as a line.
        self.assertGreater(self.b.eval("document.querySelectorAll('#chart svg')[0]"
                                       ".querySelectorAll('rect').length"), 0)
        self.assertGreater(self.b.eval("document.querySelectorAll('#chart svg')[1]"
                                       ".querySelectorAll('rect').length"), 0)
        self.assertTrue(self.b.eval("!!document.getElementById('queued-line')"))

    def test_detail_view_shows_the_request_and_its_answer(self):
        self.b.eval("location.hash = %s" % json.dumps("#" + self.done))
        self.b.wait("!document.getElementById('detail').hidden && "
                    "document.getElementById('answer')", what="the detail view")
        self.assertEqual(self.b.eval("document.getElementById('detail').dataset.state"), "completed")
        self.assertEqual(self.text("#answer"), ANSWER.decode())
        self.assertIn("201", self.text("#detail h2:nth-of-type(2)"))
        # A queued one: its last error and next attempt, no answer yet.
        self.b.eval("location.hash = %s" % json.dumps("#" + self.ids[1]))
        self.b.wait("document.getElementById('detail').dataset.state === 'queued'")
        detail = self.text("#detail")
        self.assertIn("No final answer yet", detail)
        self.assertIn("/api/v1/bot/1", detail)
        self.assertRegex(detail, r"next attempt.*\(in \d+ m\)")

    def click_and_give_admin_token(self, selector):
        self.b.eval("document.querySelector(%s).click()" % json.dumps(selector))
        self.b.wait("!document.getElementById('askadmin').hidden", what="the admin token form")
        self.b.eval("document.getElementById('admintoken').value = %s;"
                    "document.querySelector('#askadmin button').click()" % json.dumps(ADMIN))

    def test_cancel_button_asks_for_the_admin_token_then_cancels(self):
        rid = self.ids[10]
        self.click_and_give_admin_token("#rows tr[data-id='%s'] button[data-act=cancel]" % rid)
        wait_state(self.rd.port, rid, ("cancelled",), token=ADMIN)
        self.b.wait("document.querySelector(\"#cancelled tr[data-id='%s']\")" % rid,
                    what="the cancelled row")
        self.assertIn("cancelled: " + rid, self.text("#notice"))

    def test_retry_button_delivers_a_dead_request(self):
        rid = self.dead[0]
        self.cls_ready(self.ids.index(rid))
        self.click_and_give_admin_token("#dead tr[data-id='%s'] button[data-act=retry]" % rid)
        wait_state(self.rd.port, rid, ("completed",), token=ADMIN)
        self.b.wait("!document.querySelector(\"#dead tr[data-id='%s']\")" % rid,
                    what="the row leaving the dead list")

    def test_buttons_with_only_the_read_token_change_nothing(self):
        rid = self.ids[20]
        self.b.eval("document.querySelector(\"#rows tr[data-id='%s'] "
                    "button[data-act=cancel]\").click()" % rid)
        self.b.wait("!document.getElementById('askadmin').hidden")
        self.b.eval("document.getElementById('askcancel').click()")
        self.assertEqual(ctl_json(self.rd.port, "/_retryd/requests/" + rid,
                                  token=READ)["state"], "queued")

    def cls_ready(self, i):
        type(self).ready.add("/api/v1/bot/%d" % i)


if __name__ == "__main__":
    unittest.main()
