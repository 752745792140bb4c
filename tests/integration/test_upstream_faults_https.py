"""The upstream fault matrix over https://, retryd's own HTTP/1.1 client over
TLS, the default (with a test CA as --upstream-ca): every fault of upstream_fault_matrix.FAULTS (the
table, with the expected answer for a POST and for a GET) is one test,
test_<fault>_over_https, plus one run with retries running. The TLS faults
(wrong name, unknown CA, a handshake that stalls) are https-only; every
other row is the same one test_upstream_faults_http.py runs over http://,
so the two clients are held to one rule."""

import unittest

from upstream_fault_matrix import matrix_class

UpstreamFaultsHttpsTest = matrix_class("https", __name__)

if __name__ == "__main__":
    unittest.main()
