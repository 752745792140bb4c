"""A request that cannot be stored gets 503 with Retry-After and a JSON error,
never a 202, and retryd keeps serving:

  (a) disk full: the db on a small tmpfs (root only; skipped otherwise);
      202s resume once space is freed;
  (b) I/O error: fsync/fdatasync fail with EIO (strace fault injection;
      skipped without strace or ptrace);
  (c) --max-queue reached: 503 queue_full until the queue drains.

Health while syncs fail (EIO injected): reads (stats, listings) never make
it 200 again, only a durable write that reached the disk does, and the
store's own probe finds out by itself once syncs work again. A request
refused 503 after a failed sync never comes back after a crash (SIGKILL):
its row is not in the restarted queue and is never delivered.

Runs on both backends (tests/CMakeLists.txt); (a) and (b) act on the SQLite
file and are skipped on PostgreSQL, whose outage test_pg_replicas.py covers."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from fake_upstream import Response
from harness import (STORAGE, Retryd, RetrydTestCase, control_get, descendant_pids, retire,
                     send_request, wait_stored_state)

BIG = 100 * 1024

# On PostgreSQL (integration-pg/) the database server, not retryd, writes and
# syncs the queue: what (a) and (b) do to retryd's own file does not apply.
ON_POSTGRES = STORAGE == "postgres"
SQLITE_FSYNC = ("SQLite-only: EIO is injected with strace into retryd's own fsync of "
                "the SQLite file")


def can_mount_tmpfs():
    if os.geteuid() != 0:
        return "not root: cannot mount a tmpfs"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount not found"
    d = tempfile.mkdtemp(prefix="retryd-mnt-probe-")
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            return "mount -t tmpfs failed: %s" % p.stdout.decode(errors="replace").strip()
        subprocess.run(["umount", d])
        return None
    finally:
        os.rmdir(d)


def strace_usable():
    if shutil.which("strace") is None:
        return "strace not found"
    p = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "true"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        return "strace cannot trace here: %s" % p.stdout.decode(errors="replace").strip()
    return None


class FaultTest(RetrydTestCase):

    def assertQueueRefused(self, r, codes=("queue_unavailable",)):
        self.assertEqual(r.status, 503, r)
        ra = r.header("retry-after")
        self.assertIsNotNone(ra, "503 without Retry-After: %r" % r)
        self.assertRegex(ra, r"^[0-9]+$")
        ctype = (r.header("content-type") or "").lower()
        self.assertTrue(ctype.startswith("application/json"), r)
        obj = r.json()
        self.assertIn(obj.get("error"), codes, obj)
        self.assertIsInstance(obj.get("message"), str, obj)
        self.assertIsNone(r.header("location"), r)

    # ---------------------------------------------------------------- (a)
    @unittest.skipIf(ON_POSTGRES, "SQLite-only: the disk that fills is a tmpfs holding the "
                     "SQLite file")
    def test_disk_full_gives_503_then_recovers(self):
        why = can_mount_tmpfs()
        if why:
            self.skipTest(why)
        mnt = tempfile.mkdtemp(prefix="retryd-full-")
        self.addCleanup(os.rmdir, mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", mnt],
                       check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (1536 * 1024))
            f.flush()
            os.fsync(f.fileno())

        up = self.start_upstream()
        up.default = Response(507)
        logs = tempfile.mkdtemp(prefix="retryd-full-logs-")
        self.addCleanup(shutil.rmtree, logs, True)
        rd = Retryd(up.url, args=("--retry-interval", "60s", "--max-body", "1MiB"),
                    tmpdir=logs, db=os.path.join(mnt, "q.db"))
        self.addCleanup(retire, rd)  # stops it before the umount (cleanups run LIFO)
        rd.start()

        body = os.urandom(BIG)  # incompressible
        accepted = 0
        first_503 = None
        for i in range(40):
            r = send_request(rd.port, "POST", "/full/%d" % i, [("X-N", str(i))], body,
                             timeout=15)
            if r.status == 202:
                accepted += 1
                continue
            self.assertQueueRefused(r)
            first_503 = i
            break
        self.assertIsNotNone(first_503, "3 MiB tmpfs never filled after %d x 100 KiB" % accepted)
        self.assertGreater(accepted, 0, "nothing was stored before the disk filled")

        # still full: never a 202; retryd alive; health answers and says so
        for j in range(5):
            r = send_request(rd.port, "POST", "/full/again/%d" % j, [], body, timeout=15)
            self.assertNotEqual(r.status, 202, "202 while the disk is full: %r" % r)
            self.assertQueueRefused(r)
        self.assertTrue(rd.alive())
        h = control_get(rd.port, "/_retryd/health")
        self.assertEqual(h.status, 503, "health while the store cannot write: %r" % h)
        # plain pass-through still works
        up.push(Response(200, body=b"still serving"))
        r = send_request(rd.port, "GET", "/passthrough")
        self.assertEqual((r.status, r.body), (200, b"still serving"))

        os.unlink(filler)
        ok = None
        for k in range(20):
            r = send_request(rd.port, "POST", "/full/freed/%d" % k, [], body, timeout=15)
            if r.status == 202:
                ok = r
                break
            self.assertQueueRefused(r)
            time.sleep(0.25)
        self.assertIsNotNone(ok, "no 202 after space was freed")
        print("\ndisk full: %d x 100 KiB stored before the first 503; 202 again %d request(s) "
              "after freeing space" % (accepted, k + 1))
        wait_stored_state(rd.port, ok.json()["id"], ("queued", "inflight"), timeout=5)
        deadline = time.monotonic() + 5
        while control_get(rd.port, "/_retryd/health").status != 200:
            self.assertLess(time.monotonic(), deadline, "health stays 503 after recovery")
            time.sleep(0.1)

    # ---------------------------------------------------------------- (b)
    def _strace_retryd(self, up, tmp, inject_from, inject_to=None):
        """retryd under strace; from its inject_from-th sync on (to inject_to
        included, when given; counted per thread), every fdatasync and fsync
        fails with EIO."""
        trace = os.path.join(tmp, "strace.out")
        prefix = ["strace", "-f", "-qq", "-o", trace, "-e", "trace=fdatasync,fsync"]
        if inject_from:
            when = ("%d..%d" % (inject_from, inject_to) if inject_to else "%d+" % inject_from)
            prefix += ["-e", "inject=fdatasync:error=EIO:when=%s" % when,
                       "-e", "inject=fsync:error=EIO:when=%s" % when]
        rd = Retryd(up.url, args=("--retry-interval", "60s"), tmpdir=tmp,
                    db=os.path.join(tmp, "q.db"), prefix=prefix)

        def stop():
            # the started process is strace; stop retryd itself, by its pid
            for pid in descendant_pids(rd.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            rd.kill()
        self.addCleanup(stop)
        rd.start(timeout=20)
        return rd, trace, stop

    def _max_syncs_per_thread(self, trace):
        per = {}
        with open(trace) as f:
            for ln in f:
                parts = ln.split(None, 1)
                if len(parts) == 2 and ("fdatasync(" in parts[1] or "fsync(" in parts[1]):
                    name = "fdatasync" if "fdatasync(" in parts[1] else "fsync"
                    per[(parts[0], name)] = per.get((parts[0], name), 0) + 1
        return max(per.values()) if per else 0

    def _startup_syncs(self, up):
        """How many syncs start-up makes (per thread, per syscall)."""
        tmp = tempfile.mkdtemp(prefix="retryd-eio-probe-")
        self.addCleanup(shutil.rmtree, tmp, True)
        rd, trace, stop = self._strace_retryd(up, tmp, 0)
        time.sleep(0.3)
        startup = self._max_syncs_per_thread(trace)
        r = send_request(rd.port, "POST", "/probe", [], b"{}")
        self.assertEqual(r.status, 202, r)
        stop()
        return startup

    @unittest.skipIf(ON_POSTGRES, SQLITE_FSYNC)
    def test_fsync_eio_gives_503_never_202(self):
        why = strace_usable()
        if why:
            self.skipTest(why)
        up = self.start_upstream()
        up.default = Response(507)

        # 1. how many syncs does start-up make (per thread, per syscall)?
        startup = self._startup_syncs(up)

        # 2. every sync after start-up fails
        tmp = tempfile.mkdtemp(prefix="retryd-eio-")
        self.addCleanup(shutil.rmtree, tmp, True)
        rd, trace, stop = self._strace_retryd(up, tmp, startup + 1)
        time.sleep(0.3)
        for i in range(5):
            r = send_request(rd.port, "POST", "/eio/%d" % i, [("X-N", str(i))], b'{"n":1}',
                             timeout=15)
            self.assertNotEqual(r.status, 202, "202 although fsync failed: %r" % r)
            self.assertQueueRefused(r)
        with open(trace) as f:
            injected = sum(1 for ln in f if "EIO" in ln and "INJECTED" in ln)
        self.assertGreater(injected, 0, "no sync failed: the injection did not apply")
        print("\nEIO: %d sync calls per thread at start-up; %d failed syncs injected"
              % (startup, injected))
        self.assertTrue(rd.alive(), "retryd died on EIO:\n%s" % rd.stderr_text()[-2000:])
        h = control_get(rd.port, "/_retryd/health")
        self.assertEqual(h.status, 503, h)
        up.push(Response(200, body=b"pass"))
        r = send_request(rd.port, "GET", "/passthrough")
        self.assertEqual((r.status, r.body), (200, b"pass"))
        stop()

    @unittest.skipIf(ON_POSTGRES, SQLITE_FSYNC)
    def test_stats_and_listings_do_not_make_health_200_while_every_sync_fails(self):
        why = strace_usable()
        if why:
            self.skipTest(why)
        up = self.start_upstream()
        up.default = Response(507)
        startup = self._startup_syncs(up)
        tmp = tempfile.mkdtemp(prefix="retryd-eio-health-")
        self.addCleanup(shutil.rmtree, tmp, True)
        rd, trace, stop = self._strace_retryd(up, tmp, startup + 1)
        r = send_request(rd.port, "POST", "/eio/health", [], b'{"n":1}', timeout=15)
        self.assertQueueRefused(r)
        self.assertEqual(control_get(rd.port, "/_retryd/health").status, 503)
        # Reads commit batches of their own (without a sync): none of them
        # says that a durable write can succeed. Long enough for the store's
        # own probes (one a second while unwritable) to have failed too.
        deadline = time.monotonic() + 3.5
        rounds = 0
        while time.monotonic() < deadline:
            for path in ("/_retryd/stats", "/_retryd/requests",
                         "/_retryd/requests?state=queued", "/_retryd/metrics"):
                g = control_get(rd.port, path)
                self.assertEqual(g.status, 200, (path, g))
                h = control_get(rd.port, "/_retryd/health")
                self.assertEqual(h.status, 503,
                                 "health 200 after GET %s while every sync fails (round %d)"
                                 % (path, rounds))
            rounds += 1
            time.sleep(0.05)
        r = send_request(rd.port, "POST", "/eio/health/2", [], b'{"n":2}', timeout=15)
        self.assertQueueRefused(r)
        self.assertEqual(control_get(rd.port, "/_retryd/health").status, 503)
        self.assertTrue(rd.alive())
        stop()

    @unittest.skipIf(ON_POSTGRES, SQLITE_FSYNC)
    def test_health_comes_back_by_its_own_probe_once_syncs_succeed_again(self):
        why = strace_usable()
        if why:
            self.skipTest(why)
        up = self.start_upstream()
        up.default = Response(507)
        startup = self._startup_syncs(up)
        tmp = tempfile.mkdtemp(prefix="retryd-eio-heal-")
        self.addCleanup(shutil.rmtree, tmp, True)
        # the first 4 syncs after start-up fail, later ones succeed
        rd, trace, stop = self._strace_retryd(up, tmp, startup + 1, startup + 4)
        n_before = up.count()
        r = send_request(rd.port, "POST", "/eio/heal", [], b'{"n":1}', timeout=15)
        self.assertQueueRefused(r)
        self.assertEqual(control_get(rd.port, "/_retryd/health").status, 503)
        # No client writes from here on: only the store's probe can tell.
        deadline = time.monotonic() + 15
        while control_get(rd.port, "/_retryd/health").status != 200:
            self.assertLess(time.monotonic(), deadline,
                            "health still 503 15 s after syncs work again")
            time.sleep(0.1)
        with open(trace) as f:
            injected = sum(1 for ln in f if "EIO" in ln and "INJECTED" in ln)
        self.assertGreater(injected, 0, "no sync failed: the injection did not apply")
        self.assertEqual(up.count(), n_before + 1, up.requests)  # no other write was tried
        r = send_request(rd.port, "POST", "/eio/heal/2", [], b'{"n":2}', timeout=15)
        self.assertEqual(r.status, 202, r)
        stop()

    @unittest.skipIf(ON_POSTGRES, SQLITE_FSYNC)
    def test_a_request_refused_after_a_failed_sync_never_comes_back_after_sigkill(self):
        why = strace_usable()
        if why:
            self.skipTest(why)
        up = self.start_upstream()
        up.default = Response(507)
        startup = self._startup_syncs(up)
        # Killed at once after the 503s, and after the store's probes ran.
        for trial, linger in enumerate((0.0, 1.5)):
            tmp = tempfile.mkdtemp(prefix="retryd-eio-crash-")
            self.addCleanup(shutil.rmtree, tmp, True)
            up.default = Response(507)
            rd, trace, stop = self._strace_retryd(up, tmp, startup + 1)
            markers = ["t%d-m%d" % (trial, i) for i in range(3)]
            for m in markers:
                r = send_request(rd.port, "POST", "/eio/crash/" + m, [("X-Marker", m)],
                                 b'{"n":1}', timeout=15)
                self.assertQueueRefused(r)
            g = control_get(rd.port, "/_retryd/stats")  # a read-only batch in between
            self.assertEqual(g.status, 200, g)
            time.sleep(linger)
            stop()  # SIGKILL, retryd first

            n_before = up.count()
            up.default = Response(200, body=b"delivered")
            rd2 = Retryd(up.url, args=("--retry-interval", "200ms"), tmpdir=tmp,
                         db=os.path.join(tmp, "q.db"))
            self.addCleanup(retire, rd2)
            rd2.start(timeout=15)
            time.sleep(1.5)  # several retry intervals: anything queued goes out
            listing = control_get(rd2.port, "/_retryd/requests").json()
            self.assertEqual(listing.get("requests"), [],
                             "trial %d: a request answered 503 came back after the crash: %r"
                             % (trial, listing))
            stats = control_get(rd2.port, "/_retryd/stats").json()
            self.assertEqual(sum(stats["queue"][k] for k in
                                 ("queued", "inflight", "completed", "dead", "cancelled")), 0,
                             stats)
            sent = [q.header("x-marker") for q in up.requests[n_before:]]
            self.assertEqual([m for m in sent if m in markers], [],
                             "trial %d: delivered after the crash although answered 503"
                             % trial)
            retire(rd2)

    # ---------------------------------------------------------------- (c)
    def test_max_queue_gives_503_queue_full(self):
        up = self.start_upstream()
        ok = threading.Event()
        up.handler = lambda req: Response(200) if ok.is_set() else Response(507)
        rd = self.start_retryd(up, "--retry-interval", "1s", "--max-queue", "3")
        ids = []
        for i in range(3):
            r = send_request(rd.port, "POST", "/q/%d" % i, [], b"{}")
            self.assertEqual(r.status, 202, r)
            ids.append(r.json()["id"])
        n = up.count()
        for i in range(3):
            r = send_request(rd.port, "POST", "/q/over/%d" % i, [], b"{}")
            self.assertQueueRefused(r, ("queue_full",))
        self.assertTrue(rd.alive())
        self.assertEqual(control_get(rd.port, "/_retryd/health").status, 200)
        ok.set()
        for rid in ids:
            wait_stored_state(rd.port, rid, "completed", timeout=10)
        ok.clear()
        r = send_request(rd.port, "POST", "/q/after", [], b"{}")
        self.assertEqual(r.status, 202, "queue drained but still refused: %r" % r)
        self.assertGreaterEqual(up.count(), n)


if __name__ == "__main__":
    unittest.main()
