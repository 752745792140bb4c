"""The upstream fault matrix over https:// through libcurl (--upstream-http2
on; the fault server offers only HTTP/1.1, so libcurl speaks it): every
fault of upstream_fault_matrix.FAULTS is one test,
test_<fault>_over_https_curl, plus one run with retries running. The same
table as for retryd's own client, so both https clients are held to one
rule."""

import unittest

from upstream_fault_matrix import matrix_class

UpstreamFaultsHttpsCurlTest = matrix_class("https-curl", __name__)

if __name__ == "__main__":
    unittest.main()
