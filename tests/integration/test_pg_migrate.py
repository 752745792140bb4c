"""`retryd migrate FROM TO`: a SQLite queue moved into PostgreSQL keeps every
queued request (same ids, so status URLs keep working), leaves cancelled ones
behind, can be run again without copying twice, and never prints the
database password. The requests are then delivered by a retryd on
PostgreSQL."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))

from fake_upstream import Response  # noqa: E402
from harness import (RetrydTestCase, child_env, exchange, get_stored, retryd_bin,  # noqa: E402
                     send_request, wait_stored_state)
from pg_cluster import PgCluster  # noqa: E402


class MigrateTest(RetrydTestCase):

    def migrate(self, src, dst):
        return subprocess.run([retryd_bin(), "migrate", src, dst], capture_output=True,
                              text=True, timeout=60, env=child_env())

    def test_sqlite_queue_moves_to_postgres_and_is_delivered_there(self):
        pg = PgCluster.attach(os.environ["RETRYD_TEST_PG_DIR"])
        name = "migrate_%d" % os.getpid()
        dsn = pg.create_database(name)
        self.addCleanup(pg.drop_database, name)
        password = dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]

        up = self.start_upstream()
        up.default = Response(503, body=b"busy")
        rd = self.start_retryd(up, "--retry-interval", "1h")
        ids = []
        for i in range(10):
            headers = [("Idempotency-Key", "key-%d" % i)] if i == 0 else []
            r = send_request(rd.port, "POST", "/api/v1/bot/?n=%d" % i, headers, b'{"n":%d}' % i)
            self.assertEqual(r.status, 202, r)
            ids.append(r.json()["id"])
        cancelled = ids.pop()
        resp, _ = exchange(rd.port, ("DELETE /_retryd/requests/%s HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Length: 0\r\n\r\n" % cancelled).encode(),
                                method="DELETE")
        self.assertEqual(resp.status, 200, resp)
        sqlite_path = rd.db
        self.assertEqual(rd.stop(), 0)

        p = self.migrate("sqlite:" + sqlite_path, dsn)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("migrated 9 requests (0 were there already)", p.stdout)
        self.assertNotIn(password, p.stdout + p.stderr)
        again = self.migrate(sqlite_path, dsn)  # cut short or repeated: nothing twice
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("migrated 0 requests (9 were there already)", again.stdout)

        up.default = Response(200, body=b"delivered")
        on_pg = self.start_retryd(up, "--retry-interval", "1h", db=dsn)
        for rid in ids:
            self.assertEqual(get_stored(on_pg.port, rid)["state"], "queued")
        resp, _ = exchange(on_pg.port, ("GET /_retryd/requests/%s HTTP/1.1\r\nHost: x\r\n\r\n"
                                             % cancelled).encode())
        self.assertEqual(resp.status, 404, "a cancelled request was moved")
        # A repeat of the keyed request finds its twin, moved with its key.
        r = send_request(on_pg.port, "POST", "/api/v1/bot/?n=0", [("Idempotency-Key", "key-0")],
                         b'{"n":0}')
        self.assertEqual((r.status, r.json()["id"]), (202, ids[0]))
        # Retry them now, as an operator would after the switch.
        for rid in ids:
            resp, _ = exchange(on_pg.port, ("POST /_retryd/requests/%s/retry HTTP/1.1\r\n"
                                                 "Host: x\r\nContent-Length: 0\r\n\r\n"
                                                 % rid).encode(), method="POST")
            self.assertEqual(resp.status, 200, resp)
        for rid in ids:
            wait_stored_state(on_pg.port, rid, "completed", timeout=20)
        time.sleep(0.2)
        self.assertEqual(up.count() - 10, len(ids), "each moved request delivered once")

    def test_bad_usage_exits_2(self):
        p = self.migrate("only-one", "")
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([retryd_bin(), "migrate", "a.db"], capture_output=True, text=True,
                           timeout=30, env=child_env())
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage", p.stderr)


if __name__ == "__main__":
    unittest.main()
