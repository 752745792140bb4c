/* settings_report: GET /_retryd/settings says what is in force and never a
 * secret (tokens, the database's password). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/config.h"
#include "proxy/control/settings_report.h"

static void set(config_t *cfg, const char *name, const char *value) {
  char err[512];
  assert_int_equal(config_set(cfg, name, value, err, sizeof(err)), CONFIG_OK);
}

static char *render(const config_t *cfg, size_t routes) {
  static char text[8192];
  buf_t b;
  buf_init(&b, sizeof(text));
  assert_int_equal(settings_report_json(&b, cfg, routes), 0);
  assert_true(b.len < sizeof(text));
  memcpy(text, b.data, b.len);
  text[b.len] = '\0';
  buf_free(&b);
  return text;
}

static void defaults_say_no_limit_as_null(void **state) {
  (void)state;
  static config_t cfg;
  config_defaults(&cfg);
  const char *j = render(&cfg, 0);
  assert_non_null(strstr(j, "\"upstream\":\"https://us-east-1.recall.ai\""));
  assert_non_null(strstr(j, "\"store\":\"sqlite\""));
  assert_non_null(strstr(j, "\"retry_interval_ms\":30000,"));
  assert_non_null(strstr(j, "\"retry_on\":[\"429\",\"5xx\",\"network\"]"));
  assert_non_null(strstr(j, "\"max_attempts\":null"));
  assert_non_null(strstr(j, "\"rate_limit\":null"));
  assert_non_null(strstr(j, "\"admin_token\":false,\"read_token\":false}"));
}

static void tokens_and_the_database_password_never_appear(void **state) {
  (void)state;
  static config_t cfg;
  config_defaults(&cfg);
  set(&cfg, "admin-token", "admin-sekrit-1");
  set(&cfg, "read-token", "read-sekrit-2");
  set(&cfg, "db", "postgres://retryd:pw-sekrit-3@db.internal:5432/queue");
  set(&cfg, "max-attempts", "5");
  set(&cfg, "retry-on", "507,409");
  const char *j = render(&cfg, 3);
  assert_null(strstr(j, "sekrit"));
  assert_null(strstr(j, "db.internal"));
  assert_non_null(strstr(j, "\"store\":\"postgres\""));
  assert_non_null(strstr(j, "\"max_attempts\":5"));
  assert_non_null(strstr(j, "\"retry_on\":[\"409\",\"507\"]"));
  assert_non_null(strstr(j, "\"routes\":3"));
  assert_non_null(strstr(j, "\"admin_token\":true,\"read_token\":true}"));
}

static void a_buffer_too_small_is_an_error_not_a_cut_document(void **state) {
  (void)state;
  static config_t cfg;
  config_defaults(&cfg);
  buf_t b;
  buf_init(&b, 64);
  assert_int_not_equal(settings_report_json(&b, &cfg, 0), 0);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_say_no_limit_as_null),
      cmocka_unit_test(tokens_and_the_database_password_never_appear),
      cmocka_unit_test(a_buffer_too_small_is_an_error_not_a_cut_document),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
