/* request_filter: the query of a filtered listing or a bulk action. Each
 * condition reaches the storage filter decoded; times are RFC 3339 or Unix
 * seconds; anything unknown, repeated (but state), empty or malformed is
 * refused naming the parameter; a listing takes limit and cursor, a bulk
 * action all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "proxy/control/request_filter.h"
#include "storage/stored_request.h"

#define LIST REQUEST_FILTER_LISTING
#define BULK REQUEST_FILTER_BULK

static void parse_ok(request_filter_t *rf, const char *target, request_filter_use_t use) {
  int rc = request_filter_parse(rf, target, use);
  if (rc != 0)
    fail_msg("%s: %d (%s: %s)", target, rc, rf->param, rf->message ? rf->message : "");
}

/* target is refused, and the parameter named is param. */
static void refused(const char *target, request_filter_use_t use, const char *param) {
  request_filter_t rf;
  int rc = request_filter_parse(&rf, target, use);
  if (rc != -EINVAL)
    fail_msg("%s: %d, want -EINVAL", target, rc);
  assert_string_equal(rf.param, param);
  assert_non_null(rf.message);
  assert_true(strlen(rf.message) > 10);
  request_filter_free(&rf);
}

static void no_query_matches_everything(void **state) {
  (void)state;
  request_filter_t rf;
  parse_ok(&rf, "/_retryd/requests", LIST);
  assert_false(rf.has_filter);
  assert_false(rf.all);
  assert_int_equal(rf.filter.states, 0);
  assert_null(rf.filter.method);
  assert_null(rf.filter.path_prefix);
  assert_null(rf.filter.idempotency_key);
  assert_int_equal(rf.filter.last_status, 0);
  assert_true(rf.filter.created_from == INT64_MIN);
  assert_true(rf.filter.created_until == INT64_MAX);
  assert_true(storage_filter_is_state_only(&rf.filter));
  request_filter_free(&rf);
  parse_ok(&rf, "/_retryd/requests?", LIST);
  assert_false(rf.has_filter);
  request_filter_free(&rf);
}

static void states_may_be_listed_and_repeated(void **state) {
  (void)state;
  request_filter_t rf;
  parse_ok(&rf, "/x?state=queued", LIST);
  assert_int_equal(rf.filter.states, 1u << RQ_QUEUED);
  assert_true(rf.has_filter);
  assert_true(storage_filter_is_state_only(&rf.filter));
  request_filter_free(&rf);
  parse_ok(&rf, "/x?state=queued,dead&state=cancelled", LIST);
  assert_int_equal(rf.filter.states, (1u << RQ_QUEUED) | (1u << RQ_DEAD) | (1u << RQ_CANCELLED));
  assert_false(storage_filter_is_state_only(&rf.filter));
  request_filter_free(&rf);
  parse_ok(&rf, "/x?state=inflight%2Ccompleted", LIST);
  assert_int_equal(rf.filter.states, (1u << RQ_INFLIGHT) | (1u << RQ_COMPLETED));
  request_filter_free(&rf);
  refused("/x?state=bogus", LIST, "state");
  refused("/x?state=queued,", LIST, "state");
  refused("/x?state=,queued", LIST, "state");
  refused("/x?state=", LIST, "state");
  refused("/x?state", LIST, "state");
  refused("/x?state=QUEUED", LIST, "state");
}

static void each_condition_reaches_the_filter_decoded(void **state) {
  (void)state;
  request_filter_t rf;
  parse_ok(&rf,
           "/x?method=PATCH&path_prefix=%2Fapi%2Fv1%2F&idempotency_key=a+b%2Fc%25"
           "&last_status=507",
           LIST);
  assert_true(rf.has_filter);
  assert_string_equal(rf.filter.method, "PATCH");
  assert_string_equal(rf.filter.path_prefix, "/api/v1/");
  assert_string_equal(rf.filter.idempotency_key, "a+b/c%"); /* '+' is a plus sign */
  assert_int_equal(rf.filter.last_status, 507);
  assert_false(storage_filter_is_state_only(&rf.filter));
  request_filter_free(&rf);
  parse_ok(&rf, "/x?path_prefix=/a%2520b", LIST);
  assert_string_equal(rf.filter.path_prefix, "/a%20b"); /* the target's own bytes */
  request_filter_free(&rf);
}

static void bad_values_name_their_parameter(void **state) {
  (void)state;
  refused("/x?method=", LIST, "method");
  refused("/x?method=P%20O", LIST, "method");
  refused("/x?method=GET%0D%0AX", LIST, "method");
  refused("/x?method=ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG", LIST, "method");
  refused("/x?path_prefix=api", LIST, "path_prefix");
  refused("/x?path_prefix=/a?b", LIST, "path_prefix");
  refused("/x?path_prefix=/a%3Fkey%3D", LIST, "path_prefix");
  refused("/x?path_prefix=%zz", LIST, "path_prefix");
  refused("/x?path_prefix=/a%2", LIST, "path_prefix");
  refused("/x?path_prefix=/a%00", LIST, "path_prefix");
  refused("/x?idempotency_key=", LIST, "idempotency_key");
  refused("/x?last_status=99", LIST, "last_status");
  refused("/x?last_status=600", LIST, "last_status");
  refused("/x?last_status=5xx", LIST, "last_status");
  refused("/x?last_status=-1", LIST, "last_status");
  refused("/x?created_after=soon", LIST, "created_after");
  refused("/x?created_before=1.5", LIST, "created_before");
}

static void only_state_may_repeat(void **state) {
  (void)state;
  refused("/x?method=GET&method=POST", LIST, "method");
  refused("/x?last_status=500&last_status=500", LIST, "last_status");
  refused("/x?created_after=1&created_after=2", LIST, "created_after");
  refused("/x?limit=5&limit=5", LIST, "limit");
  refused("/x?all=true&all=true", BULK, "all");
}

static void unknown_parameters_are_refused_with_their_name(void **state) {
  (void)state;
  refused("/x?stat=queued", LIST, "stat");
  refused("/x?state=queued&methd=POST", BULK, "methd");
  refused("/x?%22%3E=1", LIST, "%22%3E"); /* the raw name: the caller escapes it */
  /* each use has its own: limit and cursor page a listing, all widens a bulk action */
  refused("/x?all=true", LIST, "all");
  refused("/x?limit=5", BULK, "limit");
  refused("/x?cursor=5", BULK, "cursor");
}

static void listing_takes_limit_and_cursor(void **state) {
  (void)state;
  request_filter_t rf;
  parse_ok(&rf, "/x?limit=1000&cursor=42", LIST);
  assert_int_equal(rf.limit, 1000);
  assert_int_equal(rf.cursor, 42);
  assert_false(rf.has_filter); /* paging is not a condition */
  request_filter_free(&rf);
  refused("/x?limit=0", LIST, "limit");
  refused("/x?limit=1001", LIST, "limit");
  refused("/x?cursor=x", LIST, "cursor");
  refused("/x?cursor=9223372036854775808", LIST, "cursor");
}

static void bulk_takes_all_true_or_false(void **state) {
  (void)state;
  request_filter_t rf;
  parse_ok(&rf, "/x?all=true", BULK);
  assert_true(rf.all);
  assert_false(rf.has_filter);
  request_filter_free(&rf);
  parse_ok(&rf, "/x?all=false", BULK);
  assert_false(rf.all);
  request_filter_free(&rf);
  refused("/x?all=1", BULK, "all");
  refused("/x?all=TRUE", BULK, "all");
}

static int64_t time_ok(const char *s) {
  int64_t ms = 0;
  if (request_filter_parse_time(s, &ms) != 0)
    fail_msg("%s: not a time", s);
  return ms;
}

static void times_are_rfc3339_or_unix_seconds(void **state) {
  (void)state;
  const int64_t t = 1764756000000ll; /* 2025-12-03T10:00:00Z */
  assert_true(time_ok("2025-12-03T10:00:00Z") == t);
  assert_true(time_ok("2025-12-03t10:00:00z") == t);
  assert_true(time_ok("2025-12-03 10:00:00Z") == t);
  assert_true(time_ok("2025-12-03T11:30:00+01:30") == t);
  assert_true(time_ok("2025-12-03T05:00:00-05:00") == t);
  assert_true(time_ok("2025-12-03T10:00:00.250Z") == t + 250);
  assert_true(time_ok("2025-12-03T10:00:00.5Z") == t + 500);
  assert_true(time_ok("2025-12-03T10:00:00.123456789Z") == t + 123);
  assert_true(time_ok("2024-02-29T00:00:00Z") == 1709164800000ll);
  assert_true(time_ok("1764756000") == t);
  assert_true(time_ok("0") == 0);
  int64_t ms;
  const char *bad[] = {"",
                       "2025-12-03T10:00:00",
                       "2025-12-03",
                       "2025-13-03T10:00:00Z",
                       "2025-02-29T00:00:00Z",
                       "2025-04-31T00:00:00Z",
                       "2025-12-03T24:00:00Z",
                       "2025-12-03T10:60:00Z",
                       "2025-12-03T10:00:00.Z",
                       "2025-12-03T10:00:00+1:00",
                       "2025-12-03T10:00:00+24:00",
                       "2025-12-03T10:00:00Zjunk",
                       "-1",
                       "1e9",
                       "99999999999999999999",
                       "10:00"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (request_filter_parse_time(bad[i], &ms) == 0)
      fail_msg("%s: taken for a time", bad[i]);
}

static void created_bounds_reach_the_filter(void **state) {
  (void)state;
  request_filter_t rf;
  parse_ok(&rf, "/x?created_after=2025-12-03T10%3A00%3A00%2B01%3A00&created_before=1764756000",
           LIST);
  assert_true(rf.filter.created_from == 1764752400000ll);
  assert_true(rf.filter.created_until == 1764756000000ll);
  assert_true(rf.has_filter);
  request_filter_free(&rf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(no_query_matches_everything),
      cmocka_unit_test(states_may_be_listed_and_repeated),
      cmocka_unit_test(each_condition_reaches_the_filter_decoded),
      cmocka_unit_test(bad_values_name_their_parameter),
      cmocka_unit_test(only_state_may_repeat),
      cmocka_unit_test(unknown_parameters_are_refused_with_their_name),
      cmocka_unit_test(listing_takes_limit_and_cursor),
      cmocka_unit_test(bulk_takes_all_true_or_false),
      cmocka_unit_test(times_are_rfc3339_or_unix_seconds),
      cmocka_unit_test(created_bounds_reach_the_filter),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
