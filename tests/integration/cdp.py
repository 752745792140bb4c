"""A headless Chromium driven through the DevTools protocol over a pipe
(--remote-debugging-pipe: fd 3 carries commands in, fd 4 answers out, each
message JSON ended by a NUL byte), so a test can click buttons, fill forms
and take screenshots of a page in a given state with the standard library
alone. A test fails -- never skips -- when Chromium is missing."""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from control_helpers import chromium_path


class Browser:
    def __init__(self, width=1280, height=900, timeout=30.0):
        self.tmp = tempfile.mkdtemp(prefix="retryd-cdp-")
        self.timeout = timeout
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        argv = [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--remote-debugging-pipe",
                "--user-data-dir=%s" % os.path.join(self.tmp, "profile"),
                "--window-size=%d,%d" % (width, height), "about:blank"]
        env = dict(os.environ, HOME=self.tmp)
        # Chromium reads fd 3 and writes fd 4: a small Python exec wrapper
        # moves our ends there (a shell could not name fds past 9).
        # Copies above 9 first: the ends may themselves be fds 3 or 4.
        mover = ("import fcntl,os,sys\n"
                 "a,b=fcntl.fcntl(%d,fcntl.F_DUPFD,10),fcntl.fcntl(%d,fcntl.F_DUPFD,10)\n"
                 "os.close(%d); os.close(%d); os.dup2(a,3); os.dup2(b,4)\n"
                 "os.close(a); os.close(b)\n"
                 "os.execv(sys.argv[1], sys.argv[1:])\n"
                 % (to_chrome_r, from_chrome_w, to_chrome_r, from_chrome_w))
        self.proc = subprocess.Popen([sys.executable, "-c", mover] + argv,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     pass_fds=(to_chrome_r, from_chrome_w), env=env)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page = [t for t in targets if t["type"] == "page"][0]
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method, session=False, **params):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" not in self._buf:
                if time.monotonic() > deadline:
                    raise AssertionError("chromium did not answer %s" % method)
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise AssertionError("chromium closed the pipe during %s" % method)
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            m = json.loads(raw)
            if m.get("id") == self._next:
                if "error" in m:
                    raise AssertionError("%s: %r" % (method, m["error"]))
                return m["result"]

    def eval(self, expr):
        """The value of a JavaScript expression (awaited when a promise)."""
        r = self.call("Runtime.evaluate", session=True, expression=expr, awaitPromise=True,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError("%s: %r" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def goto(self, url):
        # A mark on the old document tells it apart from the new one, which
        # may be the same URL.
        self.eval("window.__leaving = true")
        self.call("Page.navigate", session=True, url=url)
        self.wait("!window.__leaving && document.readyState === 'complete'",
                  what="load of " + url)

    def wait(self, expr, timeout=15.0, what=None):
        deadline = time.monotonic() + timeout
        while True:
            if self.eval("!!(%s)" % expr):
                return
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s" % (what or expr))
            time.sleep(0.1)

    def screenshot(self, path, whole_page=False):
        data = self.call("Page.captureScreenshot", session=True, format="png",
                         captureBeyondViewport=whole_page)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close")
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.tmp, ignore_errors=True)
