#!/usr/bin/env python3
"""pg_cluster: a throwaway PostgreSQL cluster for retryd's tests.

Nothing is assumed to be running: start() runs initdb into a fresh
temporary directory and starts a server of its own, listening only on
127.0.0.1 on a free port, with its unix socket in that directory. fsync,
synchronous_commit and full_page_writes are on, as in production: the
durability of a commit is what the tests are about.

Two ways in:
  TCP, as the role `retryd` with a password (scram-sha-256), into the
      database `retryd` (or one made by create_database()): the DSN
      postgres://retryd:PASSWORD@127.0.0.1:PORT/retryd, what retryd's
      --db gets. It is written to DIR/dsn (mode 0600) and held in memory;
      nothing else ever shows the password. The server itself never sees
      it either: the role is created with a SCRAM verifier computed here.
  the unix socket, as the superuser, by peer authentication: for the
      harness only (creating and dropping databases).

PostgreSQL refuses to run as root. When this runs as root (CI), the server
and its tools run as the `postgres` system user (Debian's package creates
it) through runuser, and the temporary directory is that user's; otherwise
they run as the current user.

DIR, the cluster directory, is what callers share: DIR/dsn and
DIR/cluster.json (where the server's files are, its port and user; no
secret). The server's own files live in the temporary directory, not in
DIR: its path is short (a socket path has a 107-byte limit) and reachable
by the postgres user whatever DIR's parents allow. Without a DIR, the
temporary directory is DIR too.

As a module:
    with PgCluster() as pg:            # start() ... cleanup()
        dsn = pg.create_database("t1")  # a database of its own per test
        pg.kill(); pg.start()           # a crash, then crash recovery
    pg = PgCluster.attach(os.environ["RETRYD_TEST_PG_DIR"])  # ctest's cluster
    rows = query(dsn, "SELECT state, count(*) FROM requests GROUP BY 1")

As a command (ctest's fixture, tests/CMakeLists.txt):
    pg_cluster.py start DIR            # prints one line, no secret
    pg_cluster.py stop DIR             # fast shutdown, removes what start made
    pg_cluster.py createdb DIR NAME... # the DSN is DIR/dsn with NAME as database
    pg_cluster.py dropdb DIR NAME...

Every wait is bounded (pg_ctl -w -t, subprocess timeouts). Errors are one
line (PgError); a missing PostgreSQL says how to install it.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROLE = "retryd"
DATABASE = "retryd"
# Seconds. Start-up includes crash recovery after kill(); a 2-core machine
# shared with builds can be slow.
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 60
KILL_TIMEOUT_S = 30
REAP_WAIT_S = 5
# A free port is picked, then bound by the server: another process may take
# it in between. Each try picks again.
START_TRIES = 3
SCRAM_ITERATIONS = 4096
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
STATE_FILE = "cluster.json"
DSN_FILE = "dsn"


class PgError(Exception):
    """One line saying what went wrong."""


def find_bindir():
    """The directory of initdb, pg_ctl and psql: RETRYD_PG_BINDIR, else the
    newest /usr/lib/postgresql/N/bin (Debian keeps them off PATH), else
    PATH."""
    env = os.environ.get("RETRYD_PG_BINDIR")
    candidates = [env] if env else []
    root = "/usr/lib/postgresql"
    if not env and os.path.isdir(root):
        versions = [v for v in os.listdir(root) if v.isdigit()]
        newest_first = sorted(versions, key=int, reverse=True)
        candidates += [os.path.join(root, v, "bin") for v in newest_first]
    for d in candidates:
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    found = shutil.which("initdb")
    if found and not env:
        return os.path.dirname(found)
    raise PgError("PostgreSQL is not installed (no initdb in %s): scripts/deps.sh --test "
                  "installs it" % (env or root + "/*/bin or PATH"))


def scram_verifier(password, iterations=SCRAM_ITERATIONS):
    """The SCRAM-SHA-256 secret PostgreSQL stores for password (RFC 5802,
    RFC 7677): handing it over instead of the password keeps the password
    out of the server's memory and logs."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(b):
        return base64.b64encode(b).decode()

    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


def _last_line(text):
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    return lines[-1] if lines else "no output"


def _proc_stat(pid):
    """(state, ppid) of a process from /proc, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid):
    """Whether pid runs. A zombie does not: PID 1 may be slow to reap the
    server once its parent (pg_ctl) has gone, or never reap it."""
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z"


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None and st[1] == pid:
                kids.append(int(entry))
    return kids


class PgCluster:
    """One throwaway cluster. Not thread-safe; one owner at a time."""

    def __init__(self, dir=None, bindir=None):
        self.bindir = bindir or find_bindir()
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgError("running as root needs the postgres system user (Debian's postgresql "
                              "package creates it): PostgreSQL refuses to run as root") from None
            self.os_user = "postgres"
            self._ids = (pw.pw_uid, pw.pw_gid)
        else:
            self.os_user = pwd.getpwuid(os.geteuid()).pw_name
            self._ids = None
        self.superuser = self.os_user  # peer authentication: the same name
        self.dir = os.path.abspath(dir) if dir else None
        self.runtime = None  # the temporary directory: data/, socket, log
        self.port = None
        self._password = None

    # ---- paths and commands --------------------------------------------

    @property
    def data(self):
        return os.path.join(self.runtime, "data")

    @property
    def log_path(self):
        return os.path.join(self.runtime, "postgres.log")

    @property
    def dsn(self):
        return self.dsn_for(DATABASE)

    def dsn_for(self, database):
        return "postgres://%s:%s@127.0.0.1:%d/%s" % (ROLE, self._password, self.port, database)

    def _tool(self, name):
        return os.path.join(self.bindir, name)

    def _run(self, argv, timeout=COMMAND_TIMEOUT_S, stdin=None, what=None):
        """Runs a PostgreSQL tool as the cluster's OS user; PgError on
        failure, with the tool's last line of output."""
        what = what or os.path.basename(argv[0])
        if self._ids is not None:
            argv = ["runuser", "-u", self.os_user, "--"] + argv
        env = dict(os.environ, LC_ALL="C")
        for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGDATA", "PGSERVICE"):
            env.pop(k, None)
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                               cwd=self.runtime or "/", env=env)
        except subprocess.TimeoutExpired:
            raise PgError("%s did not finish in %d s" % (what, timeout)) from None
        if p.returncode != 0:
            raise PgError("%s failed (exit %d): %s" % (what, p.returncode,
                                                        _last_line(p.stderr or p.stdout)))
        return p.stdout

    def psql(self, sql, database="postgres"):
        """Runs sql as the superuser over the unix socket; returns psql's
        unaligned output."""
        return self._run([self._tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", self.runtime, "-p", str(self.port), "-U", self.superuser,
                          "-d", database, "-f", "-"], stdin=sql, what="psql")

    # ---- life cycle -----------------------------------------------------

    def start(self):
        """Creates the cluster on first use, else starts it again (after
        stop() or kill(): crash recovery runs first). Returns self."""
        if self.runtime is None:
            self._create()
        elif not self.running():
            self._pg_ctl_start()
        return self

    def stop(self):
        """Fast shutdown: sessions are ended, then a checkpoint."""
        if self.runtime is None or not self.running():
            return
        self._run([self._tool("pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                   "-t", str(STOP_TIMEOUT_S), "-s", "stop"], timeout=STOP_TIMEOUT_S + 10,
                  what="pg_ctl stop")

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """SIGKILL to the postmaster, as a crash, and to every process it
        started: a child left running (each is a session of its own, out of
        reach of a signal to the postmaster's group) would hold the shared
        memory and keep the next start out. The postmaster is stopped first
        so that it starts no other. Returns once none of them runs."""
        pid = self.postmaster_pid()
        if pid is None or not _alive(pid):
            return
        os.kill(pid, signal.SIGSTOP)
        pids = [pid] + _children(pid)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while any(_alive(p) for p in pids):
            if time.monotonic() > deadline:
                raise PgError("the killed server's processes still run after %d s" % KILL_TIMEOUT_S)
            time.sleep(0.05)
        # The next start refuses a lock file naming a process that exists,
        # and an unreaped zombie does (PID 1 here reaps every second or two).
        # Once that has had its time, the lock file of a dead server goes.
        deadline = time.monotonic() + REAP_WAIT_S
        while _proc_stat(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if _proc_stat(pid) is not None:
            os.unlink(os.path.join(self.data, "postmaster.pid"))

    def running(self):
        pid = self.postmaster_pid()
        return pid is not None and _alive(pid)

    def postmaster_pid(self):
        """The pid in postmaster.pid, or None."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError, TypeError):
            return None

    def cleanup(self):
        """Stops the server (killing it if a fast shutdown fails) and removes
        the temporary directory, and DIR's files."""
        if self.runtime is not None:
            try:
                self.stop()
            except PgError:
                self.kill()
            shutil.rmtree(self.runtime, ignore_errors=True)
        if self.dir is not None and self.dir != self.runtime:
            for name in (DSN_FILE, STATE_FILE):
                try:
                    os.unlink(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass
            try:
                os.rmdir(self.dir)
            except OSError:
                pass  # not empty: not only ours
        self.runtime = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # ---- databases --------------------------------------------------------

    def create_database(self, name):
        """A fresh database owned by the role retryd; returns its DSN."""
        return self.create_databases([name])[0]

    def create_databases(self, names):
        """Several at once, in one session (each costs a fraction of a
        second; starting psql costs as much again). Returns their DSNs."""
        for name in names:
            self._check_name(name)
        self.psql("".join("CREATE DATABASE %s OWNER %s;\n" % (name, ROLE) for name in names))
        return [self.dsn_for(name) for name in names]

    def drop_database(self, name):
        """Drops it, ending the sessions still in it."""
        self.drop_databases([name])

    def drop_databases(self, names):
        for name in names:
            self._check_name(name)
        self.psql("".join("DROP DATABASE IF EXISTS %s WITH (FORCE);\n" % name for name in names))

    @staticmethod
    def _check_name(name):
        if not NAME_RE.match(name) or name in ("postgres", "template0", "template1", DATABASE):
            raise PgError("bad database name %r (lower-case letters, digits, _)" % name)

    # ---- creating ----------------------------------------------------------

    def _create(self):
        self.runtime = tempfile.mkdtemp(prefix="retryd-pg-")
        if self._ids is not None:
            os.chown(self.runtime, *self._ids)
        if self.dir is None:
            self.dir = self.runtime
        os.makedirs(self.dir, exist_ok=True)
        try:
            self._initdb()
            self._password = secrets.token_hex(16)
            for attempt in range(START_TRIES):
                self._configure(self._free_port())
                try:
                    self._pg_ctl_start()
                    break
                except PgError:
                    if attempt + 1 == START_TRIES or not self._port_was_taken():
                        raise
            self.psql("CREATE ROLE %s LOGIN PASSWORD '%s';\nCREATE DATABASE %s OWNER %s;\n"
                      % (ROLE, scram_verifier(self._password), DATABASE, ROLE))
            self._save()
        except BaseException:
            self.cleanup()
            raise

    def _initdb(self):
        # --no-sync: the files initdb writes need not survive a power cut of
        # the test machine (the cluster would be thrown away); the server
        # itself runs with fsync on.
        self._run([self._tool("initdb"), "-D", self.data, "-U", self.superuser, "-E", "UTF8",
                   "--locale=C", "--auth-local=peer", "--auth-host=scram-sha-256", "--no-sync",
                   "--no-instructions"], timeout=COMMAND_TIMEOUT_S * 2, what="initdb")

    def _configure(self, port):
        self.port = port
        conf = ("\n# pg_cluster.py\n"
                "listen_addresses = '127.0.0.1'\n"
                "port = %d\n"
                "unix_socket_directories = '%s'\n"
                "unix_socket_permissions = 0700\n"
                "fsync = on\n"
                "synchronous_commit = on\n"
                "full_page_writes = on\n"
                "password_encryption = 'scram-sha-256'\n"
                "max_connections = 100\n"
                "log_line_prefix = '%%m [%%p] %%q%%u@%%d '\n" % (port, self.runtime))
        # Only the superuser over the socket, and every role by password over
        # TCP on loopback: nothing is trusted.
        hba = ("local all %s peer\n"
               "host all all 127.0.0.1/32 scram-sha-256\n" % self.superuser)
        self._write_as_owner(os.path.join(self.data, "postgresql.auto.conf"), conf)
        self._write_as_owner(os.path.join(self.data, "pg_hba.conf"), hba)

    def _write_as_owner(self, path, text):
        with open(path, "w") as f:
            f.write(text)
        if self._ids is not None:
            os.chown(path, *self._ids)
        os.chmod(path, 0o600)

    @staticmethod
    def _free_port():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def _port_was_taken(self):
        try:
            with open(self.log_path) as f:
                return "could not bind" in f.read()
        except OSError:
            return False

    def _pg_ctl_start(self):
        try:
            self._run([self._tool("pg_ctl"), "-D", self.data, "-l", self.log_path, "-w",
                       "-t", str(START_TIMEOUT_S), "-s", "start"], timeout=START_TIMEOUT_S + 10,
                      what="pg_ctl start")
        except PgError as e:
            raise PgError("%s; server log: %s" % (e, self._log_tail())) from None

    def _log_tail(self):
        try:
            with open(self.log_path) as f:
                return _last_line(f.read())
        except OSError:
            return "none"

    # ---- DIR: what other processes share -----------------------------------

    def _save(self):
        state = {"runtime": self.runtime, "port": self.port, "bindir": self.bindir,
                 "os_user": self.os_user, "superuser": self.superuser}
        path = os.path.join(self.dir, STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(path + ".tmp", path)
        dsn_path = os.path.join(self.dir, DSN_FILE)
        fd = os.open(dsn_path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.dsn + "\n")
        os.replace(dsn_path + ".tmp", dsn_path)

    @classmethod
    def attach(cls, dir):
        """The cluster that `pg_cluster.py start DIR` (or another PgCluster)
        started into DIR."""
        dir = os.path.abspath(dir)
        try:
            with open(os.path.join(dir, STATE_FILE)) as f:
                state = json.load(f)
            with open(os.path.join(dir, DSN_FILE)) as f:
                dsn = f.read().strip()
        except (OSError, ValueError) as e:
            raise PgError("no cluster in %s (%s)" % (dir, e.__class__.__name__)) from None
        pg = cls(dir, bindir=state["bindir"])
        pg.runtime = state["runtime"]
        pg.port = state["port"]
        pg.superuser = state["superuser"]
        m = re.match(r"^postgres://%s:([^@]+)@" % ROLE, dsn)
        pg._password = m.group(1) if m else None
        return pg


class OwnClusterMixin:
    """For a unittest.TestCase whose tests need a cluster of their own
    (started before the class's first test, stopped after its last):
    cls.pg, and fresh_db(prefix) for a database per test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = PgCluster()
        cls.pg.start()
        cls.addClassCleanup(cls.pg.cleanup)
        cls.dbs = 0

    def fresh_db(self, prefix="db"):
        type(self).dbs += 1
        return self.pg.create_database("%s_%d" % (prefix, self.dbs))


def _start(dir):
    if os.path.exists(os.path.join(dir, STATE_FILE)):
        # An earlier run stopped before its cleanup: its server may still run.
        try:
            PgCluster.attach(dir).cleanup()
        except PgError:
            pass
    t0 = time.monotonic()
    pg = PgCluster(dir).start()
    print("pg_cluster: PostgreSQL started on 127.0.0.1:%d in %.1f s; DSN in %s"
          % (pg.port, time.monotonic() - t0, os.path.join(pg.dir, DSN_FILE)))


def _stop(dir):
    # Also after a start that failed: ctest runs a fixture's cleanup anyway,
    # and one failure is enough.
    if not os.path.exists(os.path.join(dir, STATE_FILE)):
        print("pg_cluster: no cluster in %s" % dir)
        return
    PgCluster.attach(dir).cleanup()
    print("pg_cluster: PostgreSQL stopped and removed")


def query(dsn, sql, bindir=None, timeout=COMMAND_TIMEOUT_S):
    """Runs sql through psql as the DSN's role, over TCP; returns the rows
    as lines of '|'-separated values. The password goes to psql in its
    environment, not on its command line (which any user can read)."""
    m = re.match(r"^(postgres(?:ql)?://[^:/@]+):([^@]*)@(.*)$", dsn)
    if not m:
        raise PgError("not a DSN with a password")
    env = dict(os.environ, PGPASSWORD=m.group(2), PGCONNECT_TIMEOUT="10")
    argv = [os.path.join(bindir or find_bindir(), "psql"), "-X", "-q", "-A", "-t", "-w",
            "-v", "ON_ERROR_STOP=1", "-d", "%s@%s" % (m.group(1), m.group(3)), "-f", "-"]
    try:
        p = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired:
        raise PgError("psql did not finish in %d s" % timeout) from None
    if p.returncode != 0:
        raise PgError("psql failed (exit %d): %s" % (p.returncode, _last_line(p.stderr)))
    return p.stdout.splitlines()


def main(argv=None):
    ap = argparse.ArgumentParser(description="A throwaway PostgreSQL cluster for retryd's tests.")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, help_text in (("start", "start a cluster; DIR/dsn gets its DSN"),
                            ("stop", "stop the cluster in DIR and remove it")):
        sub.add_parser(name, help=help_text).add_argument("dir")
    for name, help_text in (("createdb", "create databases NAME..., owned by retryd"),
                            ("dropdb", "drop databases NAME...")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("dir")
        p.add_argument("names", metavar="NAME", nargs="+")
    args = ap.parse_args(argv)
    try:
        if args.command == "start":
            _start(args.dir)
        elif args.command == "stop":
            _stop(args.dir)
        elif args.command == "createdb":
            PgCluster.attach(args.dir).create_databases(args.names)
        elif args.command == "dropdb":
            PgCluster.attach(args.dir).drop_databases(args.names)
    except PgError as e:
        print("pg_cluster.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
