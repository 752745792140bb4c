"""A stored request whose path is long (up to the 64 KiB head cap, and
each byte of it possibly JSON-escaped) is shown whole, as valid JSON, by
the control API: its status, the listing and the 202. A body that cannot
be built is a JSON error, never a cut document."""

import json
import unittest

from fake_upstream import Response
from harness import RetrydTestCase


class LongPathTest(RetrydTestCase):

    def test_a_48kib_path_is_shown_whole_in_status_listing_and_202(self):
        up = self.start_upstream()
        up.push(Response(507))
        rd = self.start_retryd(up, "--retry-interval", "1h")
        path = "/v1/" + "a%5C" * 12000  # 48 KiB, under the 64 KiB head cap
        st, _, body = rd.request("POST", path, body=b"{}")
        self.assertEqual(st, 202, body[:200])
        accepted = json.loads(body)
        st, _, body = rd.request("GET", "/_retryd/requests/" + accepted["id"])
        self.assertEqual(st, 200, body[:200])
        shown = json.loads(body)
        self.assertEqual(shown["path"], path)
        st, _, body = rd.request("GET", "/_retryd/requests?state=queued")
        self.assertEqual(st, 200, body[:200])
        listed = json.loads(body)["requests"]
        self.assertEqual([r["path"] for r in listed], [shown["path"]])


if __name__ == "__main__":
    unittest.main()
