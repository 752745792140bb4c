"""Configuration: bad values stop start-up with exit status 2 and one stderr
line naming the option; environment RETRYD_*; a flag wins over the
environment; --help and --version."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from fake_upstream import FakeUpstream
from harness import Retryd, RetrydTestCase, RawConn, child_env, retryd_bin, retire

DESIGN_OPTIONS = ["upstream", "listen", "db", "retry-interval", "retry-on", "max-attempts",
                  "max-age", "retry-concurrency", "upstream-timeout", "max-body", "max-queue",
                  "keep-completed", "max-wait", "upstream-ca", "max-connections",
                  "admin-token", "log-level", "help", "version"]

# (case name, option named in the error, argv tail)
BAD = [
    ("retry_interval_5x", "retry-interval", ["--retry-interval", "5x"]),
    ("retry_interval_eq_form", "retry-interval", ["--retry-interval=5x"]),
    ("max_body_10XB", "max-body", ["--max-body", "10XB"]),
    ("listen_nohost", "listen", ["--listen", "nohost"]),
    ("listen_port_99999", "listen", ["--listen", "127.0.0.1:99999"]),
    ("upstream_ftp", "upstream", ["--upstream", "ftp://x"]),
    ("upstream_notaurl", "upstream", ["--upstream", "notaurl"]),
    ("max_attempts_negative", "max-attempts", ["--max-attempts", "-1"]),
    ("retry_on_6xx", "retry-on", ["--retry-on", "6xx"]),
    ("log_level_loud", "log-level", ["--log-level", "loud"]),
    ("unknown_flag", "nope", ["--nope"]),
    ("missing_value_at_end", "upstream", ["--upstream"]),
]


class ConfigTest(RetrydTestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="retryd-cfg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def run_bin(self, args, env=None, timeout=3):
        try:
            p = subprocess.run([retryd_bin()] + args, env=child_env(env),
                               stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout, cwd=self.tmp)
        except subprocess.TimeoutExpired as e:
            self.fail("retryd %r kept running (started instead of exiting); stderr: %r"
                      % (args, e.stderr))
        return p

    def base_args(self, without):
        args = []
        if without != "upstream":
            args += ["--upstream", "http://127.0.0.1:9"]
        if without != "listen":
            args += ["--listen", "127.0.0.1:0"]
        args += ["--db", os.path.join(self.tmp, "q.db")]
        return args

    def assert_config_error(self, p, option):
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 2, "exit status %s; stderr %r" % (p.returncode, err))
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "want exactly one stderr line, got %r" % err)
        self.assertTrue(lines[0].startswith("retryd: "), lines[0])
        self.assertIn(option, lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "q.db")),
                         "database created despite the bad configuration")

    def test_bad_values_exit_2_naming_option(self):
        for name, option, tail in BAD:
            with self.subTest(case=name):
                p = self.run_bin(self.base_args(without=option) + tail)
                self.assert_config_error(p, option)

    def test_bad_value_from_environment(self):
        p = self.run_bin(self.base_args(without=None), env={"RETRYD_RETRY_INTERVAL": "5x"})
        self.assert_config_error(p, "retry-interval")

    def test_flag_wins_over_environment(self):
        up = FakeUpstream().start()
        self.addCleanup(up.stop)
        rd = self.start_retryd(up, env={"RETRYD_LISTEN": "bad"})  # --listen 127.0.0.1:0
        status, _, body = rd.request("GET", "/flag-wins")
        self.assertEqual((status, body), (200, b"ok"))

    def test_environment_value_applies(self):
        up = FakeUpstream().start()
        self.addCleanup(up.stop)
        rd = self.start_retryd(up, env={"RETRYD_MAX_BODY": "1KiB"})
        with RawConn(rd.port, timeout=5) as c:
            try:
                c.send(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + b"a" * 2000)
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.read_response()
        self.assertEqual(r.status, 413, r)
        self.assertEqual(up.count(), 0)

    def unknown_env_warnings(self, rd):
        return [o for o in rd.log_json() if o.get("level") == "warn"
                and "environment" in o.get("msg", "")]

    def test_an_unknown_retryd_variable_is_named_in_one_warning_never_its_value(self):
        up = FakeUpstream().start()
        self.addCleanup(up.stop)
        rd = self.start_retryd(up, env={"RETRYD_RETRY_INTERVL": "CANARY-VALUE-7",
                                        "RETRYD_MAX_BODY": "1KiB"})
        self.assertIsNotNone(rd.wait_log(lambda o: o.get("msg") == "started"))
        found = self.unknown_env_warnings(rd)
        self.assertEqual(len(found), 1, rd.stderr_text())
        self.assertEqual(found[0].get("name"), "RETRYD_RETRY_INTERVL", found[0])
        self.assertNotIn("CANARY-VALUE-7", rd.stderr_text())
        # it starts all the same, with the known variable applied
        status, _, _ = rd.request("POST", "/big", body=b"a" * 2000)
        self.assertEqual(status, 413)

    def test_known_retryd_variables_give_no_warning(self):
        up = FakeUpstream().start()
        self.addCleanup(up.stop)
        rd = self.start_retryd(up, env={"RETRYD_MAX_BODY": "1KiB",
                                        "RETRYD_ADMIN_TOKEN": "CANARY-TOKEN-8"})
        self.assertIsNotNone(rd.wait_log(lambda o: o.get("msg") == "started"))
        self.assertEqual(self.unknown_env_warnings(rd), [], rd.stderr_text())
        self.assertNotIn("CANARY-TOKEN-8", rd.stderr_text())

    def test_equals_form_accepted(self):
        up = FakeUpstream().start()
        self.addCleanup(up.stop)
        rd = Retryd(None, args=["--upstream=" + up.url, "--max-body=1KiB"])
        self.addCleanup(retire, rd)
        rd.start()
        status, _, body = rd.request("GET", "/eq")
        self.assertEqual((status, body), (200, b"ok"))
        status, _, _ = rd.request("POST", "/eq", body=b"a" * 2000)
        self.assertEqual(status, 413)

    def test_help_lists_every_design_option(self):
        p = self.run_bin(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        missing = [o for o in DESIGN_OPTIONS if "--" + o not in text]
        self.assertEqual(missing, [], "options missing from --help")

    def test_help_lists_timeout_options(self):
        p = self.run_bin(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        for o in ("client-timeout", "keepalive-timeout"):
            self.assertIn("--" + o, text)

    def test_version(self):
        p = self.run_bin(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode("utf-8", "replace")
        self.assertRegex(out, r"^retryd \d+\.\d+\.\d+")
        self.assertEqual(len(out.strip().splitlines()), 1, out)


if __name__ == "__main__":
    unittest.main()
