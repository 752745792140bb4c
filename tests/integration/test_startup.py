"""Start-up failures that are not bad configuration: one clear line, a
non-zero exit, and no crash (a listen port already taken)."""
import os
import socket
import subprocess
import tempfile
import unittest

from harness import retryd_bin


class StartupTest(unittest.TestCase):
    def test_a_taken_port_exits_1_with_a_clear_message(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
            p = subprocess.run([retryd_bin(), "--listen", "127.0.0.1:%d" % port,
                                "--db", os.path.join(tmp, "q.db"),
                                "--upstream", "http://127.0.0.1:9"],
                               capture_output=True, text=True, timeout=20, env=env)
        taken.close()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("address already in use", p.stderr)
        self.assertNotIn("Assertion", p.stderr)
        self.assertNotIn("Sanitizer", p.stderr)


if __name__ == "__main__":
    unittest.main()
