"""The upstream fault matrix over http://, retryd's own HTTP/1.1 client:
every fault of upstream_fault_matrix.FAULTS (the table, with the expected
answer for a POST and for a GET) is one test, test_<fault>_over_http, plus
one run with retries running. The same table runs over https:// in
test_upstream_faults_https.py, so the two clients are held to one rule."""

import unittest

from upstream_fault_matrix import matrix_class

UpstreamFaultsHttpTest = matrix_class("http", __name__)

if __name__ == "__main__":
    unittest.main()
