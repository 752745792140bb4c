"""Helpers for test_container.py: a throw-away podman set-up, a locally made
debian:bookworm-slim base image, and reading the deploy/ files.

Python 3 standard library only (YAML through python3-yaml, from this
interpreter or /usr/bin/python3).

Everything podman writes goes under one temporary directory (its own
containers.conf, storage.conf and registries.conf, overlay storage, tmp dir,
volumes), and cleanup() removes it, unmounting what is still mounted, plus
the few host paths podman creates anyway (/var/lib/containers/cache,
/run/libpod, /run/containers) when they were not there before.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"

# Host paths podman may create whatever its configuration says.
HOST_PATHS = ["/var/lib/containers/cache", "/var/lib/containers", "/run/libpod",
              "/run/containers/storage", "/run/containers"]

# What the official debian:*-slim images carry (debuerreotype's minimizing
# config): no docs, man pages or locales, apt leaves no caches behind, dpkg
# does not fsync every file.
SLIM_DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
SLIM_APT_CLEAN = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""


class CommandError(AssertionError):
    pass


def log(msg):
    print("[container] %s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def require_tools(*names):
    """Raise (a failure, never a skip) when a tool is missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise AssertionError("missing %s: install them (scripts/deps.sh: podman buildah "
                             "runc debootstrap)" % ", ".join(missing))
    if os.geteuid() != 0:
        raise AssertionError("the container test needs root (rootful podman, debootstrap)")


# --------------------------------------------------------------------------
# Debian mirror, as apt on this machine is configured
# --------------------------------------------------------------------------

def _apt_entries():
    """(uri, suites) from /etc/apt/sources.list{,.d/*.list,.d/*.sources}."""
    out = []
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for ln in stanza.splitlines():
                    if ln.startswith("#") or ":" not in ln:
                        continue
                    k, _, v = ln.partition(":")
                    fields[k.strip().lower()] = v.split()
                if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
                    for uri in fields.get("uris", []):
                        out.append((uri, fields.get("suites", [])))
        else:
            for ln in text.splitlines():
                ln = re.sub(r"\[[^]]*\]", " ", ln.split("#", 1)[0]).split()
                if len(ln) >= 3 and ln[0] == "deb":
                    out.append((ln[1], [ln[2]]))
    return out


def debian_mirrors():
    """(main mirror, security mirror) for bookworm from apt's configuration."""
    main = security = None
    for uri, suites in _apt_entries():
        uri = uri.rstrip("/")
        if main is None and "bookworm" in suites:
            main = uri
        if security is None and "bookworm-security" in suites:
            security = uri
    return (main or "http://deb.debian.org/debian",
            security or "http://deb.debian.org/debian-security")


# --------------------------------------------------------------------------
# Podman in a temporary directory
# --------------------------------------------------------------------------

class Podman:
    def __init__(self):
        self.host_before = {p: os.path.exists(p) for p in HOST_PATHS}
        self.dir = tempfile.mkdtemp(prefix="retryd-container-test-")
        d = self.dir
        for sub in ("tmp", "net"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "containers.conf"), "w") as f:
            f.write('[containers]\n'
                    'default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]\n'
                    'log_driver = "k8s-file"\n'
                    '[network]\n'
                    'network_config_dir = "%s/net"\n'
                    '[engine]\n'
                    'runtime = "runc"\n'
                    'cgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\n'
                    'events_logfile_path = "%s/events.log"\n'
                    'tmp_dir = "%s/tmp"\n'
                    'image_copy_tmp_dir = "%s/tmp"\n' % (d, d, d, d))
        with open(os.path.join(d, "storage.conf"), "w") as f:
            f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s/graph"\n'
                    'runroot = "%s/run"\n' % (d, d))
        with open(os.path.join(d, "registries.conf"), "w") as f:
            f.write('unqualified-search-registries = ["docker.io"]\n'
                    'short-name-mode = "permissive"\n')
        self.env = dict(os.environ)
        self.env.update({
            "CONTAINERS_CONF": os.path.join(d, "containers.conf"),
            "CONTAINERS_STORAGE_CONF": os.path.join(d, "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": os.path.join(d, "registries.conf"),
            "TMPDIR": os.path.join(d, "tmp"),
        })

    def run(self, *args, check=True, timeout=120, input=None):
        """podman ARGS; returns CompletedProcess (text)."""
        argv = ["podman"] + [str(a) for a in args]
        try:
            p = subprocess.run(argv, env=self.env, input=input, capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise CommandError("%s: no answer within %ss; stderr: %s"
                               % (" ".join(argv), timeout, e.stderr)) from None
        if check and p.returncode != 0:
            raise CommandError("%s exited %d\nstdout: %s\nstderr: %s"
                               % (" ".join(argv), p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
        return p

    def out(self, *args, **kw):
        return self.run(*args, **kw).stdout.strip()

    def inspect(self, kind, name):
        return json.loads(self.out(kind, "inspect", name))[0]

    # ---- base image ----
    def make_base_image(self, timeout=600):
        """debootstrap a minbase bookworm, trim it the way the official slim
        image is, and import it as debian:bookworm-slim."""
        main, security = debian_mirrors()
        root = os.path.join(self.dir, "rootfs")
        log("debootstrap --variant=minbase bookworm from %s" % main)
        t0 = time.monotonic()
        p = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root, main],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise CommandError("debootstrap exited %d:\n%s\n%s"
                               % (p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
        log("debootstrap took %.0fs" % (time.monotonic() - t0))
        for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin",
                        "var/lib/apt/lists/*", "var/log/*", "tmp/*", "usr/share/man/*",
                        "usr/share/info/*", "usr/share/locale/*", "usr/share/groff/*",
                        "usr/share/lintian/overrides/*", "debootstrap"):
            for path in glob.glob(os.path.join(root, pattern)):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.unlink(path)
        for path in glob.glob(os.path.join(root, "usr/share/doc/*/*")):
            if os.path.islink(os.path.dirname(path)) or os.path.basename(path) == "copyright":
                continue  # a doc dir may be a symlink to another package's
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        for path in ("etc/resolv.conf", "etc/hostname", "etc/apt/sources.list"):
            if os.path.lexists(os.path.join(root, path)):
                os.unlink(os.path.join(root, path))
        _write(root, "etc/dpkg/dpkg.cfg.d/docker", SLIM_DPKG_EXCLUDES)
        _write(root, "etc/dpkg/dpkg.cfg.d/docker-apt-speedup", "force-unsafe-io\n")
        _write(root, "etc/apt/apt.conf.d/docker-clean", SLIM_APT_CLEAN)
        _write(root, "etc/apt/apt.conf.d/docker-no-languages", 'Acquire::Languages "none";\n')
        _write(root, "etc/apt/sources.list.d/debian.sources",
               "Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n"
               "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
               "Types: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n"
               "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" % (main, security))
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", root, "-c", "."],
                               stdout=subprocess.PIPE)
        try:
            p = subprocess.run(["podman", "import", "--quiet", "-", BASE_IMAGE], stdin=tar.stdout,
                               env=self.env, capture_output=True, text=True, timeout=300)
        finally:
            tar.stdout.close()
            tar.wait()
        if p.returncode != 0 or tar.returncode != 0:
            raise CommandError("podman import exited %d (tar %d): %s"
                               % (p.returncode, tar.returncode, p.stderr[-3000:]))
        shutil.rmtree(root)
        log("base image %s: %s" % (BASE_IMAGE, human(self.inspect("image", BASE_IMAGE)["Size"])))

    def build(self, tag, timeout=900):
        log("podman build %s from %s/Dockerfile" % (tag, REPO))
        t0 = time.monotonic()
        p = self.run("build", "--pull=never", "--format", "docker", "--network", "host",
                     "--layers=false", "--jobs", "2", "-f", os.path.join(REPO, "Dockerfile"),
                     "-t", tag, REPO, check=False, timeout=timeout)
        if p.returncode != 0:
            raise CommandError("podman build exited %d\n%s\n%s"
                               % (p.returncode, p.stdout[-6000:], p.stderr[-3000:]))
        log("build took %.0fs" % (time.monotonic() - t0))

    # ---- cleanup ----
    def cleanup(self):
        for args in (("rm", "--all", "--force", "--time", "0"),
                     ("volume", "rm", "--all", "--force"),
                     ("rmi", "--all", "--force")):
            try:
                self.run(*args, check=False, timeout=120)
            except CommandError:
                pass
        _unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        for path in HOST_PATHS:
            if not self.host_before[path] and os.path.exists(path):
                _unmount_under(path)
                shutil.rmtree(path, ignore_errors=True)


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _unmount_under(prefix):
    prefix = os.path.realpath(prefix)
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4].replace("\\040", " ") for ln in f]
    for mp in sorted((m for m in points if m == prefix or m.startswith(prefix + "/")),
                     key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def human(n):
    return "%.1f MB" % (n / 1e6)


# --------------------------------------------------------------------------
# deploy/ files and the Dockerfile
# --------------------------------------------------------------------------

def load_yaml_all(path):
    """Every document of a YAML file, through python3-yaml (this interpreter's,
    or Debian's /usr/bin/python3)."""
    try:
        import yaml  # noqa: F401
    except ImportError:
        yaml = None
    if yaml is not None:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    p = subprocess.run(["/usr/bin/python3", "-c",
                        "import json,sys,yaml; print(json.dumps([d for d in "
                        "yaml.safe_load_all(open(sys.argv[1])) if d is not None]))", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("cannot parse %s with python3-yaml (install python3-yaml): %s"
                             % (path, p.stderr[-2000:]))
    return json.loads(p.stdout)


def dockerfile_instructions(path=None):
    """[(INSTRUCTION, argument text)] of the Dockerfile, continuation lines
    joined and comments dropped."""
    path = path or os.path.join(REPO, "Dockerfile")
    out = []
    cur = ""
    with open(path) as f:
        for ln in f:
            s = ln.strip()
            if not cur and (not s or s.startswith("#")):
                continue
            if cur and s.startswith("#"):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            word, _, rest = cur.partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def dockerfile_runtime():
    """What the final stage of the Dockerfile declares: env, volumes, ports,
    user, healthcheck command (a list), stop signal."""
    instr = dockerfile_instructions()
    last_from = max(i for i, (w, _) in enumerate(instr) if w == "FROM")
    final = instr[last_from:]
    info = {"env": {}, "volumes": [], "ports": [], "user": None, "healthcheck": None,
            "stopsignal": None, "from": [a for w, a in instr if w == "FROM"]}
    for word, arg in final:
        if word == "ENV":
            for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', arg):
                info["env"][m.group(1)] = m.group(2).strip('"')
        elif word == "VOLUME":
            info["volumes"] += json.loads(arg) if arg.startswith("[") else arg.split()
        elif word == "EXPOSE":
            info["ports"] += [int(p.split("/")[0]) for p in arg.split()]
        elif word == "USER":
            info["user"] = arg
        elif word == "STOPSIGNAL":
            info["stopsignal"] = arg
        elif word == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(\[.*\])\s*$", arg)
            info["healthcheck"] = json.loads(m.group(1)) if m else arg
    return info


def retryd_env_names():
    """RETRYD_<NAME> of every option in README.md's options table."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    names = set()
    for m in re.finditer(r"^\|\s*`--([a-z][a-z0-9-]*)[^`]*`", text, re.M):
        if m.group(1) not in ("help", "version"):
            names.add("RETRYD_" + m.group(1).upper().replace("-", "_"))
    return names
