/* When a stored request is tried next, when it is dead, and Prefer parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/config.h"
#include "proxy/queue/prefer.h"
#include "proxy/queue/retry_policy.h"

static retry_policy_t cfg_with(uint64_t interval_ms, uint64_t max_age_ms, uint64_t max_attempts) {
  config_t cfg;
  config_defaults(&cfg);
  cfg.retry_interval_ms = interval_ms;
  cfg.max_age_ms = max_age_ms;
  cfg.max_attempts = max_attempts;
  retry_policy_t p;
  retry_policy_from_config(&p, &cfg);
  return p;
}

static void retry_after_seconds_and_http_dates_parse(void **state) {
  (void)state;
  const int64_t now = 1784000000000; /* 2026-07-14T03:33:20Z */
  assert_int_equal(retry_policy_parse_retry_after("30", now), 30000);
  assert_int_equal(retry_policy_parse_retry_after(" 0 ", now), 0);
  /* 10 s after now, as an IMF-fixdate. */
  assert_int_equal(retry_policy_parse_retry_after("Tue, 14 Jul 2026 03:33:30 GMT", now), 10000);
  /* A date in the past means now. */
  assert_int_equal(retry_policy_parse_retry_after("Tue, 14 Jul 2026 03:00:00 GMT", now), 0);
  assert_int_equal(retry_policy_parse_retry_after(NULL, now), -1);
  assert_int_equal(retry_policy_parse_retry_after("", now), -1);
  assert_int_equal(retry_policy_parse_retry_after("soon", now), -1);
  assert_int_equal(retry_policy_parse_retry_after("-5", now), -1);
}

/* Found by fuzz_retry_after: curl_getdate takes years far ahead, and the
 * milliseconds overflowed (undefined behaviour, an abort under UBSan). A
 * date beyond what int64 milliseconds hold is "as late as can be", and
 * retry_policy_delay_ms clamps it to --max-age. */
static void retry_after_dates_beyond_int64_milliseconds_do_not_overflow(void **state) {
  (void)state;
  assert_int_equal(retry_policy_parse_retry_after("1Jul999999999", 0), INT64_MAX);
  assert_int_equal(retry_policy_parse_retry_after("999994999Jun9", 0), INT64_MAX);
  /* Digits alone are seconds, however many: never read as a date. */
  assert_int_equal(retry_policy_parse_retry_after("99999999999999999999999", 0), INT64_MAX);
  retry_policy_t cfg = cfg_with(30000, 3600000, 0);
  assert_int_equal(retry_policy_delay_ms(&cfg, 1, "1Jul999999999", 0), 3600000);
}

static void the_delay_is_retry_after_clamped_or_the_interval(void **state) {
  (void)state;
  retry_policy_t cfg = cfg_with(30000, 3600000, 0);
  assert_int_equal(retry_policy_delay_ms(&cfg, 1, NULL, 0), 30000);
  assert_int_equal(retry_policy_delay_ms(&cfg, 1, "garbage", 0), 30000);
  assert_int_equal(retry_policy_delay_ms(&cfg, 1, "5", 0), 5000);
  assert_int_equal(retry_policy_delay_ms(&cfg, 1, "0", 0), 1000);         /* at least 1 s */
  assert_int_equal(retry_policy_delay_ms(&cfg, 1, "999999", 0), 3600000); /* at most max-age */
}

static void the_last_attempt_falls_on_the_deadline_then_it_is_dead(void **state) {
  (void)state;
  retry_policy_t cfg = cfg_with(30000, 100000, 0);
  int64_t next = 0;
  assert_false(retry_policy_next(&cfg, 1, 0, 10000, NULL, &next));
  assert_int_equal(next, 40000);
  assert_false(retry_policy_next(&cfg, 3, 0, 80000, NULL, &next));
  assert_int_equal(next, 100000); /* not 110000: the deadline */
  assert_true(retry_policy_next(&cfg, 4, 0, 100000, NULL, &next));
  assert_true(retry_policy_next(&cfg, 4, 0, 150000, NULL, &next));
}

static void max_attempts_makes_a_request_dead(void **state) {
  (void)state;
  retry_policy_t cfg = cfg_with(1000, 86400000, 3);
  int64_t next = 0;
  assert_false(retry_policy_next(&cfg, 2, 0, 5000, NULL, &next));
  assert_true(retry_policy_next(&cfg, 3, 0, 5000, NULL, &next));
  cfg.max_attempts = 0; /* no limit */
  assert_false(retry_policy_next(&cfg, 1000, 0, 5000, NULL, &next));
}

/* Exponential backoff: the interval doubled per attempt up to the cap,
 * jittered within [half, whole]; a Retry-After still wins. */
static void exponential_backoff_doubles_to_its_cap_with_jitter(void **state) {
  (void)state;
  retry_policy_t p = cfg_with(1000, 86400000, 0);
  p.exponential = true;
  p.backoff_cap_ms = 8000;
  int64_t expect[] = {1000, 2000, 4000, 8000, 8000, 8000};
  bool varied = false;
  for (int64_t attempts = 1; attempts <= 6; attempts++) {
    int64_t first = -1;
    for (int64_t now = 0; now < 50000; now += 997) {
      int64_t d = retry_policy_delay_ms(&p, attempts, NULL, now);
      assert_in_range(d, expect[attempts - 1] / 2, expect[attempts - 1]);
      if (first >= 0 && d != first)
        varied = true;
      first = d;
    }
  }
  assert_true(varied); /* jitter: not all the same */
  assert_int_equal(retry_policy_delay_ms(&p, 6, "3", 0), 3000);
  /* Fixed (the default): the interval whatever the attempt. */
  p.exponential = false;
  assert_int_equal(retry_policy_delay_ms(&p, 6, NULL, 0), 1000);
  /* Huge attempt counts do not overflow. */
  p.exponential = true;
  assert_in_range(retry_policy_delay_ms(&p, INT64_MAX, NULL, 0), 4000, 8000);
}

static void prefer_wait_and_respond_async_are_read(void **state) {
  (void)state;
  prefer_t p;
  prefer_parse(NULL, &p);
  assert_false(p.respond_async);
  assert_int_equal(p.wait_s, -1);
  prefer_parse("respond-async, wait=10", &p);
  assert_true(p.respond_async);
  assert_int_equal(p.wait_s, 10);
  prefer_parse("wait = \"7\"; foo=bar, handling=lenient", &p);
  assert_false(p.respond_async);
  assert_int_equal(p.wait_s, 7);
  prefer_parse("wait=abc, waitx=5, return=minimal", &p);
  assert_int_equal(p.wait_s, -1);
  prefer_parse("RESPOND-ASYNC", &p);
  assert_true(p.respond_async);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(retry_after_seconds_and_http_dates_parse),
      cmocka_unit_test(the_delay_is_retry_after_clamped_or_the_interval),
      cmocka_unit_test(retry_after_dates_beyond_int64_milliseconds_do_not_overflow),
      cmocka_unit_test(the_last_attempt_falls_on_the_deadline_then_it_is_dead),
      cmocka_unit_test(max_attempts_makes_a_request_dead),
      cmocka_unit_test(exponential_backoff_doubles_to_its_cap_with_jitter),
      cmocka_unit_test(prefer_wait_and_respond_async_are_read),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
