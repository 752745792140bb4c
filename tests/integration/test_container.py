"""The sidecar container image (Dockerfile) and the deploy/ examples.

Builds the image from the Dockerfile with rootful podman (a debian:bookworm-
slim base made locally with debootstrap: there is no registry), runs retryd in
it against the fake upstream on loopback (--network host), and checks what a
user of the image relies on: relaying, a 507 stored in the volume, a clean
stop of PID 1 on SIGTERM, delivery after a restart, the non-root uid, the
0600 database file, the health check, the image's size.

Needs root, podman, buildah, runc, debootstrap and network access to the
Debian mirror apt uses. A missing tool is a failure, not a skip. Everything
podman writes lives in a temporary directory that is removed at the end.
"""

import json
import os
import stat
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import container_helpers as ch  # noqa: E402
from harness import FakeUpstream, Response, closed_port  # noqa: E402
import http.client  # noqa: E402

IMAGE = "localhost/retryd:container-test"
UID = 10001
QUEUE_DIR = "/var/lib/retryd"
MAX_IMAGE_BYTES = 100 * 1000 * 1000  # "under 100 MB", as docker/podman count them


def http_request(port, method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


# --------------------------------------------------------------------------
# The image, built once for the class
# --------------------------------------------------------------------------

class ContainerImage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        ch.require_tools("podman", "buildah", "runc", "debootstrap", "tar")
        cls.pm = ch.Podman()
        cls.addClassCleanup(cls.pm.cleanup)
        t0 = time.monotonic()
        cls.pm.make_base_image()
        cls.pm.build(IMAGE)
        cls.image = cls.pm.inspect("image", IMAGE)
        ch.log("image %s: %s (%d bytes); base + build %.0fs"
               % (IMAGE, ch.human(cls.image["Size"]), cls.image["Size"], time.monotonic() - t0))

    # ---- helpers ----
    def logs(self, name):
        p = self.pm.run("logs", name, check=False)
        return (p.stdout + p.stderr)[-4000:]

    def run_retryd(self, name, volume, port, upstream_url, extra_env=()):
        args = ["run", "--detach", "--name", name, "--network", "host",
                # what deploy/kubernetes.yaml and docker-compose.yml ask for
                "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--volume", "%s:%s" % (volume, QUEUE_DIR),
                "--env", "RETRYD_LISTEN=127.0.0.1:%d" % port,
                "--env", "RETRYD_UPSTREAM=%s" % upstream_url,
                "--env", "RETRYD_RETRY_INTERVAL=2s"]
        for kv in extra_env:
            args += ["--env", kv]
        self.pm.run(*args, IMAGE)
        self.addCleanup(self.pm.run, "rm", "--force", "--time", "0", name, check=False)
        self.wait_health(name, port)

    def wait_health(self, name, port, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, _, body = http_request(port, "GET", "/_retryd/health", timeout=2)
                if status == 200:
                    return json.loads(body)
            except OSError:
                pass
            state = self.pm.inspect("container", name)["State"]
            if not state.get("Running"):
                self.fail("container %s exited (%s) before answering; logs:\n%s"
                          % (name, state.get("ExitCode"), self.logs(name)))
            time.sleep(0.1)
        self.fail("retryd in %s did not answer /_retryd/health within %ss; logs:\n%s"
                  % (name, timeout, self.logs(name)))

    def stop_clean(self, name):
        """podman stop: SIGTERM to PID 1, which must exit 0 by itself."""
        t0 = time.monotonic()
        self.pm.run("stop", "--time", "30", name, timeout=60)
        took = time.monotonic() - t0
        state = self.pm.inspect("container", name)["State"]
        self.assertEqual(state["Status"], "exited", state)
        self.assertEqual(state["ExitCode"], 0,
                         "retryd exited %s on podman stop (137 = SIGKILL after the grace "
                         "period); logs:\n%s" % (state["ExitCode"], self.logs(name)))
        self.assertLess(took, 25, "podman stop took %.1fs: SIGTERM not handled?" % took)
        logs = [json.loads(ln) for ln in self.logs(name).splitlines() if ln.startswith("{")]
        self.assertTrue(any(o.get("msg") == "stopping" and o.get("signal") == "SIGTERM"
                            for o in logs), "no 'stopping' on SIGTERM in the logs: %r" % logs[-5:])
        return took

    def proc1(self, name):
        text = self.pm.out("exec", name, "cat", "/proc/1/status")
        return dict((k, v.split()) for k, _, v in
                    (ln.partition(":") for ln in text.splitlines()))

    # ---- the image as built ----
    def test_image_config(self):
        cfg = self.image["Config"]
        self.assertEqual(cfg.get("User"), "%d:%d" % (UID, UID))
        env = dict(e.split("=", 1) for e in cfg.get("Env", []))
        self.assertEqual(env.get("RETRYD_LISTEN"), "0.0.0.0:8080")
        self.assertEqual(env.get("RETRYD_DB"), QUEUE_DIR + "/queue.db")
        self.assertEqual(list(cfg.get("Volumes") or {}), [QUEUE_DIR])
        self.assertEqual(list(cfg.get("ExposedPorts") or {}), ["8080/tcp"])
        self.assertEqual(cfg.get("StopSignal"), "SIGTERM")
        self.assertEqual(cfg.get("Entrypoint"), ["/usr/local/bin/retryd"])
        hc = self.image.get("Healthcheck") or cfg.get("Healthcheck") or {}
        self.assertEqual(hc.get("Test"), ["CMD", "/usr/local/bin/retryd", "healthcheck"],
                         "HEALTHCHECK missing (built in OCI format?): %r" % self.image)
        ch.log("config: %s" % json.dumps({k: cfg.get(k) for k in
                                          ("User", "Env", "Volumes", "ExposedPorts")}))

    def test_image_contents(self):
        """Runtime libraries, CA bundle and the binary; no compiler, no headers."""
        script = r"""
            set -e
            dpkg-query -W -f '${Package}\n'
            echo "--"
            stat -c '%u:%g %a' /var/lib/retryd
            test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok
            ldd /usr/local/bin/retryd | grep -c 'not found' || true
            for f in /usr/bin/gcc /usr/bin/cc /usr/bin/cmake /usr/bin/make /usr/include/uv.h \
                     /usr/include/curl/curl.h /usr/include/sqlite3.h /usr/share/llhttp /src; do
              if [ -e "$f" ]; then echo "present: $f"; fi
            done
            /usr/local/bin/retryd --version
        """
        out = self.pm.out("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh",
                          IMAGE, "-c", script)
        pkgs, _, rest = out.partition("\n--\n")
        pkgs = set(pkgs.split())
        for p in ("libuv1", "libcurl4", "libsqlite3-0", "ca-certificates"):
            self.assertIn(p, pkgs)
        unwanted = sorted(p for p in pkgs if p.endswith("-dev") or p in (
            "build-essential", "gcc", "gcc-12", "cpp", "binutils", "make", "cmake",
            "pkg-config", "node-llhttp", "python3", "podman"))
        self.assertEqual(unwanted, [], "build tools in the runtime image")
        lines = rest.splitlines()
        self.assertEqual(lines[0], "%d:%d 700" % (UID, UID), "owner/mode of %s" % QUEUE_DIR)
        self.assertEqual(lines[1], "ca-ok")
        self.assertEqual(lines[2], "0", "unresolved shared libraries: %s" % rest)
        self.assertEqual([ln for ln in lines if ln.startswith("present:")], [])
        self.assertIn("0.1", lines[-1])

    def test_image_size(self):
        size = self.image["Size"]
        ch.log("IMAGE SIZE %s: %s (%d bytes)" % (IMAGE, ch.human(size), size))
        print("image size: %s" % ch.human(size))
        self.assertLess(size, MAX_IMAGE_BYTES, "image is %s" % ch.human(size))

    # ---- the sidecar's life ----
    def test_sidecar_lifecycle(self):
        up = FakeUpstream().start()
        self.addCleanup(up.stop)
        mode = {"bot": 507}
        lock = threading.Lock()

        def handler(req):
            if req.target.startswith("/relay/"):
                return Response(200, headers=[("Content-Type", "text/plain"),
                                              ("X-Upstream", "fake")],
                                body=b"relayed " + req.target.encode())
            with lock:
                code = mode["bot"]
            if code == 507:
                return Response(507, headers=[("Content-Type", "application/json")],
                                body=b'{"code":"no_bots_available"}')
            return Response(201, headers=[("Content-Type", "application/json")],
                            body=b'{"id":"bot-1","echo":' + req.body + b'}')
        up.handler = handler

        volume = "retryd-queue-%s" % uuid.uuid4().hex[:8]
        self.pm.run("volume", "create", volume)
        self.addCleanup(self.pm.run, "volume", "rm", "--force", volume, check=False)
        port = closed_port()
        name = "retryd-%s" % uuid.uuid4().hex[:8]
        self.run_retryd(name, volume, port, up.url)

        # PID 1 is retryd, as the non-root uid, with no init in front of it.
        st = self.proc1(name)
        self.assertEqual(st["Name"], ["retryd"], st)
        self.assertEqual(st["Uid"], [str(UID)] * 4, "uid of PID 1: %r" % st["Uid"])
        self.assertEqual(st["Gid"], [str(UID)] * 4, "gid of PID 1: %r" % st["Gid"])
        cmdline = self.pm.out("exec", name, "cat", "/proc/1/cmdline")
        self.assertTrue(cmdline.startswith("/usr/local/bin/retryd"), cmdline)

        # A request through it reaches the fake upstream and comes back as is.
        status, headers, body = http_request(port, "GET", "/relay/hello?x=1",
                                             headers={"X-Client": "c1"})
        self.assertEqual((status, body), (200, b"relayed /relay/hello?x=1"))
        self.assertEqual(headers.get("x-upstream"), "fake")
        seen = up.wait_for_requests(1, timeout=5)[0]
        self.assertEqual(seen.target, "/relay/hello?x=1")
        self.assertEqual(seen.header("x-client"), "c1")

        # A 507 is answered 202 and stored.
        marker = "marker-%s" % uuid.uuid4().hex
        payload = json.dumps({"meeting_url": "https://meet.example/" + marker}).encode()
        status, headers, body = http_request(
            port, "POST", "/api/v1/bot/", body=payload,
            headers={"Content-Type": "application/json",
                     "Authorization": "Token secret-" + marker})
        self.assertEqual(status, 202, body)
        stored = json.loads(body)
        rid = stored["id"]
        self.assertEqual(stored["state"], "queued", stored)
        self.assertEqual(stored["last_status"], 507, stored)
        self.assertEqual(headers.get("location"), "/_retryd/requests/" + rid)

        # The health check of the image says healthy...
        hc = self.pm.run("healthcheck", "run", name, check=False)
        self.assertEqual(hc.returncode, 0, "podman healthcheck run: %s %s" % (hc.stdout, hc.stderr))
        health = self.pm.inspect("container", name)["State"].get("Health") or \
            self.pm.inspect("container", name)["State"].get("Healthcheck") or {}
        self.assertEqual(health.get("Status"), "healthy", health)
        # ...and is a real probe: pointed at a port nothing listens on, it fails.
        bad = self.pm.run("exec", "--env", "RETRYD_LISTEN=127.0.0.1:%d" % closed_port(),
                          name, "/usr/local/bin/retryd", "healthcheck", check=False)
        self.assertNotEqual(bad.returncode, 0, "healthcheck passed with nothing listening")

        # No zombies (retryd forks nothing; exec'd probes are reaped by conmon).
        stats = self.pm.out("exec", name, "sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null")
        zombies = [ln for ln in stats.splitlines() if ln.split(") ", 1)[-1].startswith("Z")]
        self.assertEqual(zombies, [], "zombie processes in the container")

        # The database lives in the volume, 0600, owned by the uid.
        mountpoint = self.pm.inspect("volume", volume)["Mountpoint"]
        db = os.path.join(mountpoint, "queue.db")
        for path in [db] + [db + s for s in ("-wal", "-shm") if os.path.exists(db + s)]:
            s = os.stat(path)
            self.assertEqual(stat.S_IMODE(s.st_mode), 0o600, "%s is %o" % (path, s.st_mode))
            self.assertEqual(s.st_uid, UID, path)

        # podman stop: SIGTERM to PID 1, exit 0; the request is in the volume.
        took = self.stop_clean(name)
        ch.log("podman stop took %.2fs, exit 0" % took)
        data = b""
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                with open(db + suffix, "rb") as f:
                    data += f.read()
        self.assertIn(marker.encode(), data, "the stored request is not in the volume's database")

        # Start it again; the upstream now has bots: the stored request is delivered.
        with lock:
            mode["bot"] = 201
        up.clear()
        self.pm.run("start", name)
        self.wait_health(name, port)
        deadline = time.monotonic() + 20
        delivered = None
        while delivered is None and time.monotonic() < deadline:
            delivered = next((r for r in list(up.requests) if r.target == "/api/v1/bot/"), None)
            time.sleep(0.1)
        self.assertIsNotNone(delivered, "stored request not delivered after restart; logs:\n%s"
                             % self.logs(name))
        self.assertEqual(delivered.method, "POST")
        self.assertEqual(delivered.body, payload)
        self.assertEqual(delivered.header("authorization"), "Token secret-" + marker)
        final = self.wait_state(port, rid, "completed")
        self.assertEqual(final.get("response_status"), 201, final)
        status, _, body = http_request(port, "GET", "/_retryd/requests/%s/response" % rid)
        self.assertEqual(status, 201)
        self.assertEqual(body, b'{"id":"bot-1","echo":' + payload + b'}')
        st = self.proc1(name)
        self.assertEqual(st["Uid"], [str(UID)] * 4)
        self.stop_clean(name)

        # A new container on the same volume (an upgrade) finds the queue.
        self.pm.run("rm", name)
        name2 = name + "-b"
        self.run_retryd(name2, volume, port, up.url)
        final = self.wait_state(port, rid, "completed", timeout=5)
        self.assertEqual(final.get("response_status"), 201, final)
        self.assertEqual(len([r for r in up.requests if r.target == "/api/v1/bot/"]), 1,
                         "the completed request was delivered again")
        self.stop_clean(name2)

    def wait_state(self, port, rid, want, timeout=20):
        deadline = time.monotonic() + timeout
        obj = None
        while time.monotonic() < deadline:
            status, _, body = http_request(port, "GET", "/_retryd/requests/" + rid)
            if status == 200:
                obj = json.loads(body)
                if obj.get("state") == want:
                    return obj
            time.sleep(0.2)
        self.fail("request %s not %s within %ss: %r" % (rid, want, timeout, obj))


# --------------------------------------------------------------------------
# deploy/: parses, and agrees with the Dockerfile (no podman needed)
# --------------------------------------------------------------------------

class DeployFiles(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.df = ch.dockerfile_runtime()
        cls.options = ch.retryd_env_names()
        deploy = os.path.join(ch.REPO, "deploy")
        cls.compose = ch.load_yaml_all(os.path.join(deploy, "docker-compose.yml"))
        cls.k8s = ch.load_yaml_all(os.path.join(deploy, "kubernetes.yaml"))
        with open(os.path.join(deploy, "kubernetes.yaml")) as f:
            cls.k8s_text = f.read()
        with open(os.path.join(deploy, "README.md")) as f:
            cls.readme = f.read()

    def test_dockerfile(self):
        df = self.df
        self.assertEqual(df["from"], ["debian:bookworm-slim AS build", "debian:bookworm-slim"])
        self.assertEqual(df["volumes"], [QUEUE_DIR])
        self.assertEqual(df["ports"], [8080])
        self.assertEqual(df["user"], "%d:%d" % (UID, UID))
        self.assertEqual(df["stopsignal"], "SIGTERM")
        self.assertEqual(df["healthcheck"], ["/usr/local/bin/retryd", "healthcheck"])
        self.assertEqual(df["env"].get("RETRYD_LISTEN"), "0.0.0.0:8080")
        self.assertEqual(os.path.dirname(df["env"]["RETRYD_DB"]), QUEUE_DIR)
        for name in df["env"]:
            self.assertIn(name, self.options, "Dockerfile sets an unknown option")

    def test_compose(self):
        self.assertEqual(len(self.compose), 1)
        doc = self.compose[0]
        services = doc["services"]
        self.assertEqual(set(services), {"retryd", "app"})
        rd, app = services["retryd"], services["app"]
        self.assertEqual(rd["build"]["context"], "..")
        # The queue: a named volume at the Dockerfile's VOLUME.
        mounts = [v.split(":") for v in rd["volumes"]]
        self.assertEqual([m[1] for m in mounts], self.df["volumes"])
        self.assertIn(mounts[0][0], doc.get("volumes") or {}, "not a named volume")
        env = rd["environment"]
        for name in env:
            self.assertIn(name, self.options, "unknown option in the compose file")
        self.assertEqual(os.path.dirname(env.get("RETRYD_DB", self.df["env"]["RETRYD_DB"])),
                         self.df["volumes"][0])
        listen = env.get("RETRYD_LISTEN", self.df["env"]["RETRYD_LISTEN"])
        self.assertEqual(int(listen.rsplit(":", 1)[1]), self.df["ports"][0])
        self.assertEqual(rd["healthcheck"]["test"], ["CMD"] + (self.df["healthcheck"] or ["<none>"]))
        self.assertEqual(rd.get("stop_signal"), self.df["stopsignal"])
        self.assertGreater(_seconds(rd["stop_grace_period"]),
                           _seconds(env.get("RETRYD_SHUTDOWN_TIMEOUT", "20s")))
        # The application shares retryd's network namespace and points at it.
        self.assertEqual(app["network_mode"], "service:retryd")
        self.assertIn("http://127.0.0.1:%d" % self.df["ports"][0],
                      [str(v) for v in app["environment"].values()])
        self.assertEqual(app["depends_on"]["retryd"]["condition"], "service_healthy")

    def test_kubernetes(self):
        kinds = {d["kind"]: d for d in self.k8s}
        self.assertEqual(set(kinds), {"Deployment", "PersistentVolumeClaim"})
        dep = kinds["Deployment"]
        self.assertEqual(dep["apiVersion"], "apps/v1")
        spec = dep["spec"]["template"]["spec"]
        self.assertEqual(spec["terminationGracePeriodSeconds"], 30)
        sc = spec["securityContext"]
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertEqual((sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]), (UID, UID, UID))
        sidecars = [c for c in spec["initContainers"] if c.get("restartPolicy") == "Always"]
        self.assertEqual([c["name"] for c in sidecars], ["retryd"])
        rd = sidecars[0]
        ports = {p["name"]: p["containerPort"] for p in rd["ports"]}
        self.assertEqual(list(ports.values()), self.df["ports"])
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            get = rd[probe]["httpGet"]
            self.assertEqual(get["path"], "/_retryd/health", probe)
            self.assertEqual(ports.get(get["port"], get["port"]), self.df["ports"][0], probe)
        env = {e["name"]: e.get("value") for e in rd["env"]}
        for name in env:
            self.assertIn(name, self.options, "unknown option in kubernetes.yaml")
        listen = env.get("RETRYD_LISTEN") or self.df["env"]["RETRYD_LISTEN"]
        self.assertEqual(int(listen.rsplit(":", 1)[1]), self.df["ports"][0])
        self.assertEqual(os.path.dirname(env.get("RETRYD_DB") or self.df["env"]["RETRYD_DB"]),
                         self.df["volumes"][0])
        self.assertLess(_seconds(env.get("RETRYD_SHUTDOWN_TIMEOUT") or "20s"),
                        spec["terminationGracePeriodSeconds"])
        # The queue on the PersistentVolumeClaim, at the Dockerfile's VOLUME.
        mount = [m for m in rd["volumeMounts"] if m["mountPath"] == self.df["volumes"][0]]
        self.assertEqual(len(mount), 1)
        vol = [v for v in spec["volumes"] if v["name"] == mount[0]["name"]][0]
        self.assertEqual(vol["persistentVolumeClaim"]["claimName"],
                         kinds["PersistentVolumeClaim"]["metadata"]["name"])
        self.assertIn("emptyDir", self.k8s_text.split("persistentVolumeClaim:\n")[0][-800:],
                      "the comment on what an emptyDir would lose")
        # The application points at retryd on loopback.
        app_env = [e.get("value") for c in spec["containers"] for e in c.get("env", [])]
        self.assertIn("http://127.0.0.1:%d" % self.df["ports"][0], app_env)

    def test_kubernetes_postgres(self):
        """Three replicas sharing one PostgreSQL queue: a rolling update, the
        DSN from a Secret, no volume for the queue, and no health-based
        readiness or liveness (a database outage would take every pod down)."""
        docs = ch.load_yaml_all(os.path.join(ch.REPO, "deploy", "kubernetes-postgres.yaml"))
        kinds = {d["kind"]: d for d in docs}
        self.assertEqual(set(kinds), {"Deployment"})
        dep = kinds["Deployment"]["spec"]
        self.assertEqual(dep["replicas"], 3)
        self.assertEqual(dep["strategy"]["type"], "RollingUpdate")
        self.assertEqual(dep["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        spec = dep["template"]["spec"]
        sidecars = [c for c in spec["initContainers"] if c.get("restartPolicy") == "Always"]
        self.assertEqual([c["name"] for c in sidecars], ["retryd"])
        rd = sidecars[0]
        env = {e["name"]: e for e in rd["env"]}
        for name in env:
            self.assertIn(name, self.options, "unknown option in kubernetes-postgres.yaml")
        self.assertNotIn("value", env["RETRYD_DB"], "the DSN must come from a Secret")
        self.assertEqual(env["RETRYD_DB"]["valueFrom"]["secretKeyRef"]["name"], "retryd")
        self.assertEqual(rd["startupProbe"]["httpGet"]["path"], "/_retryd/health")
        self.assertNotIn("readinessProbe", rd)
        self.assertNotIn("httpGet", rd["livenessProbe"])
        self.assertFalse([v for v in spec["volumes"] if "persistentVolumeClaim" in v])
        self.assertLess(_seconds(env["RETRYD_SHUTDOWN_TIMEOUT"]["value"]),
                        spec["terminationGracePeriodSeconds"])

    def test_compose_postgres(self):
        """Two application replicas, each with its retryd, on one postgres
        service; the password from the environment, never in the URL."""
        docs = ch.load_yaml_all(os.path.join(ch.REPO, "deploy", "docker-compose-postgres.yml"))
        services = docs[0]["services"]
        self.assertEqual(set(services), {"postgres", "retryd-1", "retryd-2", "app-1", "app-2"})
        for i in (1, 2):
            rd, app = services["retryd-%d" % i], services["app-%d" % i]
            env = rd["environment"]
            for name in env:
                if not name.startswith("PG"):  # libpq's own environment
                    self.assertIn(name, self.options, "unknown option in the compose file")
            self.assertTrue(env["RETRYD_DB"].startswith("postgres://retryd@postgres:"),
                            env["RETRYD_DB"])
            self.assertIn("PGPASSWORD", env)
            self.assertEqual(rd["depends_on"]["postgres"]["condition"], "service_healthy")
            self.assertEqual(app["network_mode"], "service:retryd-%d" % i)
            self.assertEqual(app["depends_on"]["retryd-%d" % i]["condition"], "service_healthy")
            self.assertGreater(_seconds(rd["stop_grace_period"]),
                               _seconds(env["RETRYD_SHUTDOWN_TIMEOUT"]))

    def test_readme(self):
        for needle in ("docker-compose.yml", "kubernetes.yaml", "docker-compose-postgres.yml",
                       "kubernetes-postgres.yaml", "PGPASSWORD", "PID 1", "zombie",
                       "emptyDir", str(UID), "/_retryd/health", "--format docker"):
            self.assertIn(needle, self.readme)


def _seconds(text):
    text = str(text).strip()
    for suffix, mult in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "").isdigit():
            return float(text[:-len(suffix)]) * mult
    return float(text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
