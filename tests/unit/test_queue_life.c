/* The pure parts of a stored request's life (issue 14): Retryd-Deadline's
 * values, the clamp of a next attempt to the deadline, the body hash an
 * Idempotency-Key repeat is compared by, and what is kept and shown of the
 * last retryable answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "proxy/queue/body_hash.h"
#include "proxy/queue/deadline_header.h"
#include "proxy/queue/last_answer.h"

#define NOW 1796278000000ll /* Thu, 03 Dec 2026 06:06:40 GMT */

static void deadline_in_seconds_counts_from_now(void **state) {
  (void)state;
  int64_t at = -1;
  const char *why = "x";
  assert_int_equal(deadline_header_parse("900", NOW, &at, &why), 0);
  assert_int_equal(at, NOW + 900000);
  assert_null(why);
  assert_int_equal(deadline_header_parse("  5\t", NOW, &at, &why), 0);
  assert_int_equal(at, NOW + 5000);
}

static void deadline_as_an_http_date_is_that_second(void **state) {
  (void)state;
  int64_t at = -1;
  const char *why;
  assert_int_equal(deadline_header_parse("Thu, 03 Dec 2026 06:20:00 GMT", NOW, &at, &why), 0);
  assert_int_equal(at, 1796278800000ll);
  /* RFC 850 and asctime, as HTTP allows. */
  assert_int_equal(deadline_header_parse("Thursday, 03-Dec-26 06:20:00 GMT", NOW, &at, &why), 0);
  assert_int_equal(at, 1796278800000ll);
  assert_int_equal(deadline_header_parse("Thu Dec  3 06:20:00 2026", NOW, &at, &why), 0);
  assert_int_equal(at, 1796278800000ll);
}

static void no_header_is_no_deadline(void **state) {
  (void)state;
  int64_t at = -1;
  const char *why;
  assert_int_equal(deadline_header_parse(NULL, NOW, &at, &why), 0);
  assert_int_equal(at, 0);
}

static void bad_or_past_deadlines_are_refused_with_a_reason(void **state) {
  (void)state;
  static const char *const bad[] = {"",
                                    "  ",
                                    "soon",
                                    "-5",
                                    "+5",
                                    "1.5",
                                    "30s",
                                    "5 5",
                                    "99999999999999999999999",
                                    "Thu, 03 Dec 2026 25:99:00 GMT"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t at = -1;
    const char *why = NULL;
    int rc = deadline_header_parse(bad[i], NOW, &at, &why);
    if (rc != -EINVAL && rc != -ERANGE)
      fail_msg("%s: %d", bad[i], rc);
    assert_int_equal(at, 0);
    assert_non_null(why);
    assert_non_null(strstr(why, "Retryd-Deadline"));
  }
  int64_t at;
  const char *why;
  assert_int_equal(deadline_header_parse("0", NOW, &at, &why), -ERANGE);
  assert_non_null(strstr(why, "passed"));
  assert_int_equal(deadline_header_parse("Sun, 06 Nov 1994 08:49:37 GMT", NOW, &at, &why), -ERANGE);
  assert_non_null(strstr(why, "passed"));
}

static void a_next_attempt_is_never_planned_after_the_deadline(void **state) {
  (void)state;
  assert_int_equal(deadline_header_clamp(NOW + 30000, NOW + 10000), NOW + 10000);
  assert_int_equal(deadline_header_clamp(NOW + 5000, NOW + 10000), NOW + 5000);
  assert_int_equal(deadline_header_clamp(NOW + 30000, 0), NOW + 30000);
}

static void body_hash_is_sha256_in_hex(void **state) {
  (void)state;
  char h[BODY_HASH_HEX_LEN + 1];
  assert_int_equal(body_hash_hex("test", 4, h), 0);
  assert_string_equal(h, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  assert_int_equal(body_hash_hex(NULL, 0, h), 0);
  assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  char h2[BODY_HASH_HEX_LEN + 1];
  assert_int_equal(body_hash_hex("", 0, h2), 0);
  assert_string_equal(h, h2); /* no body and an empty one are the same */
}

static void last_answer_keeps_three_fields_and_4_kib_of_body(void **state) {
  (void)state;
  headers_t h;
  headers_init(&h, 4096);
  static const char *const f[][2] = {{"Set-Cookie", "s=SECRET"},
                                     {"Retry-After", "30"},
                                     {"X-Other", "no"},
                                     {"Content-Type", "text/plain"},
                                     {"Date", "Thu, 03 Dec 2026 06:06:40 GMT"},
                                     {"Authorization", "Token SECRET"}};
  for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
    assert_int_equal(headers_add(&h, f[i][0], strlen(f[i][0]), f[i][1], strlen(f[i][1])), 0);
  last_answer_t a;
  last_answer_init(&a);
  last_answer_keep_body(&a, "before", 6); /* no head yet: nothing kept */
  assert_int_equal(a.body.len, 0);
  last_answer_keep_head(&a, &h);
  assert_true(a.kept);
  assert_string_equal(a.headers.data, "Retry-After: 30\r\nContent-Type: text/plain\r\n"
                                      "Date: Thu, 03 Dec 2026 06:06:40 GMT\r\n");
  char big[3000];
  memset(big, 'x', sizeof(big));
  last_answer_keep_body(&a, big, sizeof(big));
  last_answer_keep_body(&a, big, sizeof(big));
  assert_int_equal(a.body.len, LAST_ANSWER_BODY_MAX);

  buf_t out;
  buf_init(&out, 64 * 1024);
  assert_int_equal(last_answer_json(&out, 507, a.headers.data, a.headers.len, "a\"b\x01", 4), 0);
  assert_string_equal(out.data, "{\"status\":507,\"headers\":{\"Retry-After\":\"30\","
                                "\"Content-Type\":\"text/plain\",\"Date\":\"Thu, 03 Dec 2026 "
                                "06:06:40 GMT\"},\"body\":\"a\\\"b\\u0001\"}");
  buf_reset(&out);
  assert_int_equal(last_answer_json(&out, 507, NULL, 0, NULL, 0), 0);
  assert_string_equal(out.data, "null");
  buf_reset(&out);
  /* A stored credential would never be shown (none is kept today). */
  static const char cred[] = "Authorization: Token SECRET\r\n";
  assert_int_equal(last_answer_json(&out, 503, cred, sizeof(cred) - 1, "", 0), 0);
  assert_null(strstr(out.data, "SECRET"));
  assert_non_null(strstr(out.data, "[redacted]"));
  buf_free(&out);
  last_answer_free(&a);
  headers_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(deadline_in_seconds_counts_from_now),
      cmocka_unit_test(deadline_as_an_http_date_is_that_second),
      cmocka_unit_test(no_header_is_no_deadline),
      cmocka_unit_test(bad_or_past_deadlines_are_refused_with_a_reason),
      cmocka_unit_test(a_next_attempt_is_never_planned_after_the_deadline),
      cmocka_unit_test(body_hash_is_sha256_in_hex),
      cmocka_unit_test(last_answer_keeps_three_fields_and_4_kib_of_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
