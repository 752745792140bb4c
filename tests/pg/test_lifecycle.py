"""pg_cluster.py itself, on clusters of its own (not the ctest fixture's):
the command line that ctest's fixture runs, and the module's start, kill,
crash recovery, restart and cleanup that crash tests will rely on."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import pg_cluster
from pg_cluster import PgCluster, PgError, query

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pg_cluster.py")


def owner_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def expected_uid():
    return pg_cluster.pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()


class CommandLineTest(unittest.TestCase):

    def run_cli(self, *args):
        return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True,
                              text=True, timeout=300)

    def test_start_then_stop_leaves_nothing_behind_and_prints_no_secret(self):
        parent = tempfile.mkdtemp(prefix="retryd-pg-cli-")
        self.addCleanup(shutil.rmtree, parent, True)
        d = os.path.join(parent, "cluster")
        p = self.run_cli("start", d)
        self.addCleanup(self.run_cli, "stop", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(d, "dsn")) as f:
            dsn = f.read().strip()
        password = dsn.split(":")[2].split("@")[0]
        self.assertNotIn(password, p.stdout + p.stderr)
        self.assertEqual(len((p.stdout + p.stderr).strip().splitlines()), 1)
        self.assertEqual(query(dsn, "SELECT 1"), ["1"])

        pg = PgCluster.attach(d)
        pid, runtime = pg.postmaster_pid(), pg.runtime
        self.assertEqual(owner_uid(pid), expected_uid())
        self.assertEqual(os.stat(runtime).st_uid, expected_uid())

        # createdb: the DSN is the cluster's with the new database's name.
        c = self.run_cli("createdb", d, "cli_db")
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(query(dsn.rsplit("/", 1)[0] + "/cli_db", "SELECT current_database()"),
                         ["cli_db"])
        self.assertEqual(self.run_cli("dropdb", d, "cli_db").returncode, 0)

        s = self.run_cli("stop", d)
        self.assertEqual(s.returncode, 0, s.stderr)
        self.assertFalse(pg_cluster._alive(pid))
        self.assertFalse(os.path.exists(runtime))
        self.assertFalse(os.path.exists(d))
        # Stopping again is not an error (ctest runs the cleanup after a
        # failed start too).
        self.assertEqual(self.run_cli("stop", d).returncode, 0)

    def test_a_missing_postgresql_is_one_clear_line(self):
        d = tempfile.mkdtemp(prefix="retryd-pg-cli-")
        self.addCleanup(shutil.rmtree, d, True)
        env = dict(os.environ, RETRYD_PG_BINDIR=os.path.join(d, "nowhere"))
        p = subprocess.run([sys.executable, SCRIPT, "start", os.path.join(d, "c")],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("PostgreSQL is not installed", p.stderr)
        self.assertNotIn("Traceback", p.stderr)


class ModuleTest(unittest.TestCase):

    def setUp(self):
        self.pg = PgCluster()
        self.addCleanup(self.pg.cleanup)
        self.pg.start()

    def test_a_committed_row_survives_a_kill_and_crash_recovery(self):
        pg = self.pg
        query(pg.dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
        pid = pg.postmaster_pid()
        pg.kill()
        self.assertFalse(pg.running())
        self.assertFalse(pg_cluster._alive(pid))
        with self.assertRaises(PgError):
            query(pg.dsn, "SELECT 1", timeout=15)
        pg.start()
        self.assertTrue(pg.running())
        self.assertNotEqual(pg.postmaster_pid(), pid)
        self.assertEqual(query(pg.dsn, "SELECT sum(x) FROM t"), ["3"])
        with open(pg.log_path) as f:
            self.assertIn("database system was not properly shut down", f.read())

    def test_restart_keeps_port_password_and_rows(self):
        pg = self.pg
        dsn = pg.create_database("kept")
        query(dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (5)")
        pid = pg.postmaster_pid()
        pg.restart()
        self.assertNotEqual(pg.postmaster_pid(), pid)
        self.assertEqual(pg.create_database("other").rsplit("/", 1)[0], dsn.rsplit("/", 1)[0])
        self.assertEqual(query(dsn, "SELECT x FROM t"), ["5"])
        pg.stop()
        self.assertFalse(pg.running())
        with self.assertRaises(PgError):
            query(dsn, "SELECT 1", timeout=15)

    def test_cleanup_stops_the_server_and_removes_its_directory(self):
        pg = self.pg
        pid, runtime = pg.postmaster_pid(), pg.runtime
        self.assertTrue(os.path.isfile(os.path.join(runtime, "dsn")))
        pg.cleanup()
        self.assertFalse(pg_cluster._alive(pid))
        self.assertFalse(os.path.exists(runtime))


if __name__ == "__main__":
    unittest.main()
