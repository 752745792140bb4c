/* Control API access: the admin token may do everything, the read token
 * only GET and HEAD; either may come as X-Retryd-Token or Authorization:
 * Bearer; --metrics-open leaves the metrics readable without one; with no
 * admin token set nothing may change state; tokens compare in constant
 * time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxy/config.h"
#include "proxy/control/control_auth.h"
#include "proxy/http/request.h"

#define ADMIN "admin-T0ken_42"
#define READER "read-T0ken_43"

static config_t cfg_with(const char *admin, const char *reader, bool metrics_open) {
  config_t cfg;
  config_defaults(&cfg);
  snprintf(cfg.admin_token, sizeof(cfg.admin_token), "%s", admin);
  snprintf(cfg.read_token, sizeof(cfg.read_token), "%s", reader);
  cfg.metrics_open = metrics_open;
  return cfg;
}

/* The verdict on one request: method, target, and a header (name NULL:
 * none). */
static control_auth_t check(const config_t *cfg, const char *method, const char *target,
                            const char *name, const char *value) {
  request_t req;
  request_init(&req, cfg);
  snprintf(req.method, sizeof(req.method), "%s", method);
  assert_int_equal(buf_append(&req.target, target, strlen(target) + 1), 0);
  req.target.len--; /* NUL-terminated, as the parser leaves it */
  if (name != NULL)
    assert_int_equal(headers_add(&req.headers, name, strlen(name), value, strlen(value)), 0);
  control_auth_t verdict = control_auth_check(cfg, &req);
  request_free(&req);
  return verdict;
}

static void without_tokens_everything_is_open(void **state) {
  (void)state;
  config_t cfg = cfg_with("", "", false);
  assert_int_equal(check(&cfg, "GET", "/_retryd/stats", NULL, NULL), CONTROL_AUTH_ALLOWED);
  assert_int_equal(check(&cfg, "DELETE", "/_retryd/requests/x", NULL, NULL), CONTROL_AUTH_ALLOWED);
  assert_int_equal(check(&cfg, "POST", "/_retryd/requests/x/retry", "X-Retryd-Token", "any"),
                   CONTROL_AUTH_ALLOWED);
}

static void the_admin_token_may_do_everything_in_either_field(void **state) {
  (void)state;
  config_t cfg = cfg_with(ADMIN, READER, false);
  static const char *methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT"};
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    assert_int_equal(check(&cfg, methods[i], "/_retryd/requests/x", "X-Retryd-Token", ADMIN),
                     CONTROL_AUTH_ALLOWED);
    assert_int_equal(
        check(&cfg, methods[i], "/_retryd/requests/x", "Authorization", "Bearer " ADMIN),
        CONTROL_AUTH_ALLOWED);
  }
  /* The scheme is case-insensitive (RFC 9110 11.1), the token is not. */
  assert_int_equal(check(&cfg, "DELETE", "/_retryd/requests/x", "authorization", "bearer " ADMIN),
                   CONTROL_AUTH_ALLOWED);
  assert_int_equal(check(&cfg, "DELETE", "/_retryd/requests/x", "Authorization", "Bearer  " ADMIN),
                   CONTROL_AUTH_ALLOWED);
}

static void the_read_token_may_only_read(void **state) {
  (void)state;
  config_t cfg = cfg_with(ADMIN, READER, false);
  static const char *reads[] = {"/_retryd/requests/x", "/_retryd/requests/x/response",
                                "/_retryd/requests?state=queued", "/_retryd/stats",
                                "/_retryd/metrics"};
  for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
    assert_int_equal(check(&cfg, "GET", reads[i], "X-Retryd-Token", READER), CONTROL_AUTH_ALLOWED);
    assert_int_equal(check(&cfg, "HEAD", reads[i], "Authorization", "Bearer " READER),
                     CONTROL_AUTH_ALLOWED);
  }
  static const char *writes[][2] = {{"DELETE", "/_retryd/requests/x"},
                                    {"POST", "/_retryd/requests/x/retry"},
                                    {"POST", "/_retryd/stats"},
                                    {"PUT", "/_retryd/requests/x"},
                                    {"PATCH", "/_retryd/requests/x"}};
  for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
    assert_int_equal(check(&cfg, writes[i][0], writes[i][1], "X-Retryd-Token", READER),
                     CONTROL_AUTH_FORBIDDEN);
    assert_int_equal(check(&cfg, writes[i][0], writes[i][1], "Authorization", "Bearer " READER),
                     CONTROL_AUTH_FORBIDDEN);
  }
  assert_non_null(strstr(control_auth_forbidden_message(&cfg), "read"));
  assert_null(strstr(control_auth_forbidden_message(&cfg), READER));
}

static void a_missing_or_wrong_token_is_unauthorized(void **state) {
  (void)state;
  config_t cfg = cfg_with(ADMIN, READER, false);
  static const char *fields[][2] = {
      {NULL, NULL},
      {"X-Retryd-Token", ""},
      {"X-Retryd-Token", ADMIN "x"},
      {"X-Retryd-Token", "admin-T0ken_4"},
      {"X-Retryd-Token", "Bearer " ADMIN},
      {"X-Retryd-Token", "READ-T0KEN_43"},
      {"Authorization", ADMIN},
      {"Authorization", "Basic " ADMIN},
      {"Authorization", "Token " ADMIN},
      {"Authorization", "Bearer"},
      {"Authorization", "Bearer "},
      {"Authorization", "Bearer " ADMIN " extra"},
      {"Authorization", "Bearer" ADMIN},
      {"X-Retryd-Token-X", ADMIN},
  };
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
    assert_int_equal(check(&cfg, "GET", "/_retryd/stats", fields[i][0], fields[i][1]),
                     CONTROL_AUTH_UNAUTHORIZED);
    /* 401 before 403: a write without a valid token is not authenticated */
    assert_int_equal(check(&cfg, "DELETE", "/_retryd/requests/x", fields[i][0], fields[i][1]),
                     CONTROL_AUTH_UNAUTHORIZED);
  }
  assert_int_equal(check(&cfg, "GET", "/_retryd/stats?token=" ADMIN, NULL, NULL),
                   CONTROL_AUTH_UNAUTHORIZED);
}

/* Without an admin token nothing may change state, whatever is sent: a
 * read token alone must not leave an open write API. */
static void with_only_a_read_token_no_one_may_change_state(void **state) {
  (void)state;
  config_t cfg = cfg_with("", READER, false);
  assert_int_equal(check(&cfg, "GET", "/_retryd/stats", "X-Retryd-Token", READER),
                   CONTROL_AUTH_ALLOWED);
  assert_int_equal(check(&cfg, "GET", "/_retryd/stats", NULL, NULL), CONTROL_AUTH_UNAUTHORIZED);
  assert_int_equal(check(&cfg, "DELETE", "/_retryd/requests/x", "X-Retryd-Token", READER),
                   CONTROL_AUTH_FORBIDDEN);
  assert_int_equal(check(&cfg, "POST", "/_retryd/requests/x/retry", NULL, NULL),
                   CONTROL_AUTH_UNAUTHORIZED);
  /* An empty admin token is no token: it matches nothing. */
  assert_int_equal(check(&cfg, "DELETE", "/_retryd/requests/x", "X-Retryd-Token", ""),
                   CONTROL_AUTH_UNAUTHORIZED);
  assert_non_null(strstr(control_auth_forbidden_message(&cfg), "--admin-token"));
}

static void metrics_open_leaves_only_reading_the_metrics_open(void **state) {
  (void)state;
  config_t cfg = cfg_with(ADMIN, READER, true);
  assert_int_equal(check(&cfg, "GET", "/_retryd/metrics", NULL, NULL), CONTROL_AUTH_ALLOWED);
  assert_int_equal(check(&cfg, "HEAD", "/_retryd/metrics", NULL, NULL), CONTROL_AUTH_ALLOWED);
  assert_int_equal(check(&cfg, "GET", "/_retryd/metrics?x=1", "X-Retryd-Token", "wrong"),
                   CONTROL_AUTH_ALLOWED);
  assert_int_equal(check(&cfg, "POST", "/_retryd/metrics", NULL, NULL), CONTROL_AUTH_UNAUTHORIZED);
  assert_int_equal(check(&cfg, "GET", "/_retryd/stats", NULL, NULL), CONTROL_AUTH_UNAUTHORIZED);
  assert_int_equal(check(&cfg, "GET", "/_retryd/metricsx", NULL, NULL), CONTROL_AUTH_UNAUTHORIZED);
  assert_int_equal(check(&cfg, "GET", "/_retryd/metrics/x", NULL, NULL), CONTROL_AUTH_UNAUTHORIZED);
  cfg.metrics_open = false;
  assert_int_equal(check(&cfg, "GET", "/_retryd/metrics", NULL, NULL), CONTROL_AUTH_UNAUTHORIZED);
}

static void tokens_compare_whole(void **state) {
  (void)state;
  assert_true(control_auth_token_equal(ADMIN, strlen(ADMIN), ADMIN));
  assert_false(control_auth_token_equal(ADMIN, strlen(ADMIN) - 1, ADMIN));
  assert_false(control_auth_token_equal(ADMIN "x", strlen(ADMIN) + 1, ADMIN));
  assert_false(control_auth_token_equal("", 0, ADMIN));
  assert_false(control_auth_token_equal("", 0, "")); /* no token is set: nothing matches */
  assert_false(control_auth_token_equal("\0dmin", 5, "\0dmin"));
}

/* Nanoseconds that n compares of given against want take. */
static double time_compares(const char *given, const char *want, int n) {
  struct timespec a, b;
  size_t len = strlen(given);
  volatile int matched = 0;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; i++)
    matched += control_auth_token_equal(given, len, want);
  clock_gettime(CLOCK_MONOTONIC, &b);
  (void)matched;
  return (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
}

/* The time a compare takes says nothing about how much of the token was
 * right: a token wrong in its first byte, in its last, or too short takes
 * as long as one wrong nowhere else. Each is timed in many short rounds,
 * interleaved, and the fastest round kept, so a busy machine slows all
 * alike. An early exit (memcmp, strcmp) makes the first-byte case several
 * times faster on a 255-byte token. */
static void tokens_compare_in_constant_time(void **state) {
  (void)state;
  char want[256], first[256], last[256], shorter[256];
  for (int i = 0; i < 255; i++)
    want[i] = (char)('a' + i % 26);
  want[255] = '\0';
  memcpy(first, want, sizeof(want));
  memcpy(last, want, sizeof(want));
  first[0] = 'Z';
  last[254] = 'Z';
  snprintf(shorter, sizeof(shorter), "%.1s", want);
  double best_first = 1e18, best_last = 1e18, best_short = 1e18;
  for (int round = 0; round < 200; round++) {
    double f = time_compares(first, want, 2000);
    double l = time_compares(last, want, 2000);
    double s = time_compares(shorter, want, 2000);
    best_first = f < best_first ? f : best_first;
    best_last = l < best_last ? l : best_last;
    best_short = s < best_short ? s : best_short;
  }
  double ratio = best_first / best_last, ratio_short = best_short / best_last;
  if (ratio < 0.67 || ratio > 1.5 || ratio_short < 0.67 || ratio_short > 1.5)
    fail_msg("compare time depends on the token: wrong first byte %.0f ns, wrong last byte "
             "%.0f ns, one byte given %.0f ns (2000 compares)",
             best_first, best_last, best_short);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(without_tokens_everything_is_open),
      cmocka_unit_test(the_admin_token_may_do_everything_in_either_field),
      cmocka_unit_test(the_read_token_may_only_read),
      cmocka_unit_test(a_missing_or_wrong_token_is_unauthorized),
      cmocka_unit_test(with_only_a_read_token_no_one_may_change_state),
      cmocka_unit_test(metrics_open_leaves_only_reading_the_metrics_open),
      cmocka_unit_test(tokens_compare_whole),
      cmocka_unit_test(tokens_compare_in_constant_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
