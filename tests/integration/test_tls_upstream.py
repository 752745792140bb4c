"""https upstreams: the certificate is verified (chain and name); --upstream-ca
supplies the trusted CA. Run for both https clients: retryd's own HTTP/1.1
client over OpenSSL (the default) and libcurl (--upstream-http2 on)."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

from fake_upstream import Response
from harness import RetrydTestCase, RawConn

# Network failures are answered directly (see test_upstream_errors.py).
DIRECT_ERROR_ARGS = ["--retry-on", "5xx"]


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d):
    """CA + server certs in d: good (127.0.0.1/localhost) and wrong-name."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=retryd test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, cn, san in (("srv", "127.0.0.1", "IP:127.0.0.1,DNS:localhost"),
                          ("wrong", "wrong.example", "DNS:wrong.example")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + cn, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                "-extfile", name + ".ext", cwd=d)


class TlsUpstreamTest(RetrydTestCase):
    CLIENT_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="retryd-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        make_pki(cls.pki)

    def p(self, name):
        return os.path.join(self.pki, name)

    def get(self, rd, path):
        with RawConn(rd.port, timeout=10) as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: client.example\r\n\r\n" % path.encode())
            return c.read_response()

    def wait_tls_error(self, up, timeout=3.0):
        deadline = time.monotonic() + timeout
        while not up.tls_errors and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(up.tls_errors)

    def start_retryd(self, upstream, *args, **kw):
        return super().start_retryd(upstream, *self.CLIENT_ARGS, *args, **kw)

    def test_untrusted_certificate_502(self):
        up = self.start_upstream(certfile=self.p("srv.pem"), keyfile=self.p("srv.key"))
        up.push(Response(200, body=b"secret answer"))
        rd = self.start_retryd(up, *DIRECT_ERROR_ARGS)
        self.assertTrue(up.url.startswith("https://127.0.0.1:"))
        r = self.get(rd, "/untrusted")
        self.assertJsonError(r, 502, "bad_gateway")
        self.assertNotIn(b"secret answer", r.body)
        self.assertEqual(up.count(), 0, "request completed over an unverified connection")
        self.assertTrue(self.wait_tls_error(up), "upstream saw no failed handshake")

    def test_trusted_with_upstream_ca_200(self):
        up = self.start_upstream(certfile=self.p("srv.pem"), keyfile=self.p("srv.key"))
        up.push(Response(200, headers=[("X-Tls", "yes")], body=b"over tls"))
        rd = self.start_retryd(up, "--upstream-ca", self.p("ca.pem"), *DIRECT_ERROR_ARGS)
        r = self.get(rd, "/trusted")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"over tls")
        self.assertEqual(r.header("x-tls"), "yes")
        req = up.wait_for_requests(1)[0]
        self.assertEqual(req.target, "/trusted")
        self.assertEqual(req.header_all("host"), ["127.0.0.1:%d" % up.port])
        self.assertEqual(up.tls_errors, [])

    def test_wrong_hostname_502_even_with_ca(self):
        up = self.start_upstream(certfile=self.p("wrong.pem"), keyfile=self.p("wrong.key"))
        up.push(Response(200, body=b"secret answer"))
        rd = self.start_retryd(up, "--upstream-ca", self.p("ca.pem"), *DIRECT_ERROR_ARGS)
        r = self.get(rd, "/wrong-name")
        self.assertJsonError(r, 502, "bad_gateway")
        self.assertEqual(up.count(), 0, "request completed to a host with the wrong name")

    def test_certificate_refusal_is_stored_as_a_network_error(self):
        up = self.start_upstream(certfile=self.p("srv.pem"), keyfile=self.p("srv.key"))
        rd = self.start_retryd(up, "--retry-interval", "1h")
        with RawConn(rd.port, timeout=10) as c:
            c.send(b"POST /v1/bot HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
            r = c.read_response("POST")
        self.assertEqual(r.status, 202, r)
        self.assertIsNone(r.json()["last_status"])
        self.assertTrue(r.json()["last_error"], r.json())
        self.assertEqual(up.count(), 0)


class TlsUpstreamCurlTest(TlsUpstreamTest):
    CLIENT_ARGS = ("--upstream-http2", "on")


if __name__ == "__main__":
    unittest.main()
