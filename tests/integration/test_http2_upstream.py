"""With --upstream-http2 on, an upstream that offers HTTP/2 (over TLS) is
spoken to in HTTP/2 (libcurl), and its answers reach an HTTP/1.1 client
intact: status, fields, a 5 MB body; a 507 over HTTP/2 is stored like any
other. Without it, retryd's own client speaks HTTP/1.1 over TLS to the same
upstream, with the same results. The upstream is a real nginx (Debian's
nginx-light) with a self-signed certificate made for the test."""
import hashlib
import http.client
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import RetrydTestCase, closed_port, wait_port

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %(d)s/body;
  server {
    listen 127.0.0.1:%(port)d ssl http2;
    ssl_certificate %(d)s/cert.pem;
    ssl_certificate_key %(d)s/key.pem;
    location / {
      default_type application/json;
      add_header X-Proto $server_protocol;
      add_header X-Canary kept;
      return 200 '{"ok":true}';
    }
    location /big { alias %(d)s/big.bin; }
    location /full { return 507 '{"code":"insufficient_bots"}'; }
  }
}
"""


class Http2UpstreamTest(RetrydTestCase):
    CLIENT_ARGS = ("--upstream-http2", "on")
    PROTO = "HTTP/2.0"

    def setUp(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.assertTrue(os.path.exists(nginx), "nginx is missing (scripts/deps.sh --test installs it)")
        self.dir = tempfile.mkdtemp(prefix="retryd-h2-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", os.path.join(self.dir, "key.pem"),
                        "-out", os.path.join(self.dir, "cert.pem"), "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        with open(os.path.join(self.dir, "big.bin"), "wb") as f:
            f.write(os.urandom(5 * 1024 * 1024))
        self.port = closed_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"d": self.dir, "port": self.port})
        self.nginx = subprocess.Popen([nginx, "-c", conf], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop_nginx)
        wait_port(self.port)
        self.rd = self.start_retryd("https://127.0.0.1:%d" % self.port,
                                    "--upstream-ca", os.path.join(self.dir, "cert.pem"),
                                    "--retry-interval", "1h", *self.CLIENT_ARGS)

    def stop_nginx(self):
        self.nginx.terminate()
        self.nginx.wait(10)

    def get(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.rd.port, timeout=30)
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def test_answers_come_over_the_protocol_and_are_relayed_as_http11(self):
        r, data = self.get("GET", "/x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.version, 11)
        self.assertEqual(r.getheader("x-proto"), self.PROTO, "the upstream was spoken to in another protocol")
        self.assertEqual(r.getheader("x-canary"), "kept")
        self.assertEqual(data, b'{"ok":true}')

    def test_a_5mb_body_over_http2_arrives_intact(self):
        r, data = self.get("GET", "/big")
        self.assertEqual(r.status, 200)
        with open(os.path.join(self.dir, "big.bin"), "rb") as f:
            want = f.read()
        self.assertEqual(len(data), len(want))
        self.assertEqual(hashlib.sha256(data).hexdigest(), hashlib.sha256(want).hexdigest())

    def test_a_507_over_http2_is_stored(self):
        r, data = self.get("POST", "/full", body=b'{"meeting_url":"x"}')
        self.assertEqual(r.status, 202, data)
        self.assertTrue(r.getheader("location").startswith("/_retryd/requests/"))
        r2, status = self.get("GET", r.getheader("location"))
        self.assertEqual(r2.status, 200)
        self.assertIn(b'"last_status":507', status)


class Http11OverTlsToAnHttp2UpstreamTest(Http2UpstreamTest):
    CLIENT_ARGS = ()
    PROTO = "HTTP/1.1"


if __name__ == "__main__":
    unittest.main()
