"""retryd's own HTTP/1.1 client over TLS (https://, the default https
client): every test of test_upstream_h1.py, run against a TLS upstream with
a test CA. The keep-alive pool, the resend on a dead kept-alive connection,
idle connections the upstream closes, interim answers, malformed answers,
answers paused by a slow client (decrypted bytes waiting in the session)
and retries byte for byte must hold over TLS exactly as over plain TCP.

Tests about plain-TCP specifics (a port-80 default, IPv6 and name lookups
of test_upstream_h1's HostNameTest) are run over http only."""

import os
import shutil
import tempfile
import unittest

import test_upstream_h1 as plain
from test_tls_upstream import make_pki


class TlsUpstreamMixin:
    """Makes start_upstream serve TLS with the test CA's certificate and
    start_retryd trust that CA."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = tempfile.mkdtemp(prefix="retryd-h1tls-")
        cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        make_pki(cls.pki)

    def start_upstream(self, **kw):
        kw.setdefault("certfile", os.path.join(self.pki, "srv.pem"))
        kw.setdefault("keyfile", os.path.join(self.pki, "srv.key"))
        return super().start_upstream(**kw)

    def start_retryd(self, upstream, *args, **kw):
        return super().start_retryd(upstream, "--upstream-ca", os.path.join(self.pki, "ca.pem"),
                                    *args, **kw)


class KeepAlivePoolTlsTest(TlsUpstreamMixin, plain.KeepAlivePoolTest):
    pass


class DeadConnectionResendTlsTest(TlsUpstreamMixin, plain.DeadConnectionResendTest):
    pass


class IdleConnectionClosedTlsTest(TlsUpstreamMixin, plain.IdleConnectionClosedTest):
    pass


class AnswerParsingTlsTest(TlsUpstreamMixin, plain.AnswerParsingTest):
    pass


class PausedAnswerTlsTest(TlsUpstreamMixin, plain.PausedAnswerTest):
    pass


class RetriedRequestTlsTest(TlsUpstreamMixin, plain.RetriedRequestTest):
    pass


if __name__ == "__main__":
    unittest.main()
