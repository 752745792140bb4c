"""The ctest fixture's cluster (tests/CMakeLists.txt: fixture "pg") is what
the PostgreSQL tests are promised: reachable with the DSN in
$RETRYD_TEST_PG_DIR/dsn by password only, durable settings on, a database
of its own per test, and the password nowhere but in that file."""

import os
import re
import stat
import subprocess
import unittest

from pg_cluster import DATABASE, ROLE, PgCluster, PgError, query

DSN_RE = re.compile(r"^postgres://%s:([0-9a-f]{32})@127\.0\.0\.1:(\d+)/%s$" % (ROLE, DATABASE))


class FixtureClusterTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = os.environ.get("RETRYD_TEST_PG_DIR")
        if not cls.dir:
            raise unittest.SkipTest("RETRYD_TEST_PG_DIR is not set (run through ctest)")
        cls.pg = PgCluster.attach(cls.dir)
        with open(os.path.join(cls.dir, "dsn")) as f:
            cls.dsn = f.read().strip()
        m = DSN_RE.match(cls.dsn)
        if not m:
            raise AssertionError("DSN not of the form "
                                 "postgres://retryd:PASSWORD@127.0.0.1:PORT/retryd")
        cls.password, cls.port = m.group(1), int(m.group(2))

    def psql(self, *args, password=None):
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        if password is not None:
            env["PGPASSWORD"] = password
        argv = [os.path.join(self.pg.bindir, "psql"), "-X", "-A", "-t", "-w"] + list(args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)

    def test_psql_connects_with_the_dsn_and_selects_1(self):
        p = self.psql("-d", self.dsn, "-c", "SELECT 1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "1")
        self.assertEqual(query(self.dsn, "SELECT current_user, current_database()"),
                         ["%s|%s" % (ROLE, DATABASE)])

    def test_the_dsn_file_is_private(self):
        mode = stat.S_IMODE(os.stat(os.path.join(self.dir, "dsn")).st_mode)
        self.assertEqual(mode, 0o600)

    def test_tcp_needs_the_password(self):
        base = "postgres://%s@127.0.0.1:%d/%s" % (ROLE, self.port, DATABASE)
        wrong = self.psql("-d", base, "-c", "SELECT 1", password="0" * 32)
        self.assertNotEqual(wrong.returncode, 0)
        self.assertIn("password authentication failed", wrong.stderr)
        none = self.psql("-d", base, "-c", "SELECT 1")
        self.assertNotEqual(none.returncode, 0)
        # Not even the superuser gets in over TCP without a password.
        su = self.psql("-h", "127.0.0.1", "-p", str(self.port), "-U", self.pg.superuser,
                       "-d", "postgres", "-c", "SELECT 1")
        self.assertNotEqual(su.returncode, 0)

    def test_durability_settings_are_production_ones_and_only_loopback_listens(self):
        rows = query(self.dsn, "SHOW fsync; SHOW synchronous_commit; SHOW full_page_writes; "
                               "SHOW listen_addresses; SHOW password_encryption")
        self.assertEqual(rows, ["on", "on", "on", "127.0.0.1", "scram-sha-256"])

    def test_the_role_owns_its_database_and_is_no_superuser(self):
        rows = query(self.dsn, "SELECT rolsuper, rolcreatedb FROM pg_roles "
                               "WHERE rolname = current_user")
        self.assertEqual(rows, ["f|f"])
        rows = query(self.dsn, "CREATE TABLE smoke (x int); INSERT INTO smoke VALUES (7); "
                               "SELECT x FROM smoke; DROP TABLE smoke")
        self.assertEqual(rows, ["7"])

    def test_a_database_per_test_does_not_see_the_others_rows(self):
        name = "smoke_%d" % os.getpid()
        dsn = self.pg.create_database(name)
        self.addCleanup(self.pg.drop_database, name)
        self.assertTrue(dsn.endswith("/" + name))
        self.assertEqual(dsn.rsplit("/", 1)[0], self.dsn.rsplit("/", 1)[0])
        query(dsn, "CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)")
        self.assertEqual(query(self.dsn, "SELECT to_regclass('mine') IS NULL"), ["t"])
        self.assertEqual(query(dsn, "SELECT count(*) FROM mine"), ["1"])
        with self.assertRaises(PgError):
            self.pg.create_database("bad-name; DROP DATABASE retryd")

    def test_the_password_is_nowhere_but_in_the_dsn_file(self):
        with open(os.path.join(self.dir, "cluster.json")) as f:
            self.assertNotIn(self.password, f.read())
        with open(self.pg.log_path) as f:
            self.assertNotIn(self.password, f.read())
        # The server keeps a SCRAM verifier, never the password.
        for root, _, files in os.walk(self.pg.runtime):
            for name in files:
                path = os.path.join(root, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    try:
                        with open(path, "rb") as f:
                            data = f.read()
                    except FileNotFoundError:
                        continue  # the running server removed it meanwhile
                    self.assertNotIn(self.password.encode(), data, path)


if __name__ == "__main__":
    unittest.main()
