"""A 200 MiB upstream answer streams to a slow client with back-pressure:
every byte arrives intact and retryd's resident memory stays under 100 MiB."""

import socket
import sys
import threading
import time
import unittest

from fake_upstream import PatternChecker, Response
from harness import RetrydTestCase, rss_kb

SIZE = 200 * 1024 * 1024
RSS_LIMIT_KB = 100 * 1024
SLOW_PHASE_S = 4.0


class BigResponseTest(RetrydTestCase):

    def test_200mib_to_slow_client_bounded_memory(self):
        up = self.start_upstream()
        up.push(Response(200, headers=[("Content-Type", "application/octet-stream")],
                         body_size=SIZE, piece_size=256 * 1024))
        rd = self.start_retryd(up)

        samples = []
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                try:
                    samples.append(rss_kb(rd.pid))
                except (OSError, RuntimeError):
                    return
                stop.wait(0.02)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        self.addCleanup(stop.set)

        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(30)
        s.connect(("127.0.0.1", rd.port))
        self.addCleanup(s.close)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: client.example\r\n\r\n")

        # head
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            self.assertTrue(d, "closed before the answer head")
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"HTTP/1.1 200"), lines[0])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower()] = v.strip()
        self.assertNotIn(b"transfer-encoding", hdrs, "expected the upstream's Content-Length")
        self.assertEqual(hdrs.get(b"content-length"), str(SIZE).encode())

        checker = PatternChecker()
        checker.feed(rest)

        # slow phase: 64 KiB at a time with pauses, while the upstream pushes
        # as fast as it can
        t_end = time.monotonic() + SLOW_PHASE_S
        while time.monotonic() < t_end and checker.length < SIZE:
            d = s.recv(64 * 1024)
            self.assertTrue(d, "closed early at %d bytes" % checker.length)
            checker.feed(d)
            time.sleep(0.05)
        slow_bytes = checker.length
        rss_after_slow = rss_kb(rd.pid)

        # fast phase
        bufsz = 1024 * 1024
        mv = memoryview(bytearray(bufsz))
        while checker.length < SIZE:
            n = s.recv_into(mv, min(bufsz, SIZE - checker.length))
            self.assertTrue(n, "closed early at %d of %d bytes" % (checker.length, SIZE))
            checker.feed(bytes(mv[:n]))
        stop.set()
        th.join(2)

        self.assertEqual(checker.length, SIZE)
        self.assertTrue(checker.ok, "body differs from the pattern at byte %s"
                        % checker.first_mismatch)
        self.assertLess(slow_bytes, SIZE // 2, "slow phase was not slow (%d bytes)" % slow_bytes)

        hwm = None
        with open("/proc/%d/status" % rd.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        peak = max(samples + [rss_after_slow])
        sys.stderr.write("big response: %d B in slow phase, %d B total, RSS peak %d KiB "
                         "(VmHWM %d KiB, %d samples)\n"
                         % (slow_bytes, checker.length, peak, hwm, len(samples)))
        self.assertGreater(len(samples), 10)
        self.assertLess(peak, RSS_LIMIT_KB, "sampled RSS peak %d KiB" % peak)
        self.assertLess(hwm, RSS_LIMIT_KB, "VmHWM %d KiB" % hwm)

        # still serving
        up.push(Response(200, body=b"after"))
        status, _, body = rd.request("GET", "/after")
        self.assertEqual((status, body), (200, b"after"))

    def test_client_abort_mid_stream(self):
        up = self.start_upstream()
        up.push(Response(200, body_size=50 * 1024 * 1024, piece_size=256 * 1024))
        rd = self.start_retryd(up)
        s = socket.create_connection(("127.0.0.1", rd.port), timeout=10)
        s.sendall(b"GET /abort HTTP/1.1\r\nHost: client.example\r\n\r\n")
        got = 0
        while got < 1024 * 1024:
            d = s.recv(65536)
            self.assertTrue(d, "closed early")
            got += len(d)
        s.close()  # the client goes away mid-answer
        # retryd drops the upstream transfer instead of reading it all
        deadline = time.monotonic() + 5
        while up.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(up.open_connections, 0,
                         "upstream connection kept open after the client left")
        up.push(Response(200, body=b"after"))
        status, _, body = rd.request("GET", "/after-abort")
        self.assertEqual((status, body), (200, b"after"))


if __name__ == "__main__":
    unittest.main()
