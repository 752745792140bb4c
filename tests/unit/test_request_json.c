/* request_json: a stored request's target is shown with its query values
 * redacted, names kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/buf.h"
#include "proxy/queue/request_json.h"

static void expect_target(const char *target, const char *json) {
  buf_t b;
  buf_init(&b, 4096);
  assert_int_equal(request_json_target(&b, target), 0);
  assert_int_equal(buf_append(&b, "", 1), 0);
  assert_string_equal(b.data, json);
  buf_free(&b);
}

static void query_values_redacted_and_names_kept(void **state) {
  (void)state;
  expect_target("/api/v1/bot/", "\"/api/v1/bot/\"");
  expect_target("/p?api_key=s3cret", "\"/p?api_key=[redacted]\"");
  expect_target("/p?api_key=s3cret&x=1", "\"/p?api_key=[redacted]&x=[redacted]\"");
  expect_target("/p?a=&b==c", "\"/p?a=[redacted]&b=[redacted]\"");
}

static void bare_query_elements_redacted_whole(void **state) {
  (void)state;
  /* ?TOKEN alone may be the secret itself. */
  expect_target("/p?s3cret", "\"/p?[redacted]\"");
  expect_target("/p?a=1&s3cret&b=2", "\"/p?a=[redacted]&[redacted]&b=[redacted]\"");
  expect_target("/p?", "\"/p?\"");
  expect_target("/p?a=1&&b=2", "\"/p?a=[redacted]&&b=[redacted]\"");
}

static void names_and_paths_stay_valid_json(void **state) {
  (void)state;
  expect_target("/p\"q?n\"m=v", "\"/p\\\"q?n\\\"m=[redacted]\"");
  buf_t b;
  buf_init(&b, 64);
  assert_int_equal(request_json_target(&b, NULL), 0);
  assert_int_equal(b.len, 4);
  assert_memory_equal(b.data, "null", 4);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(query_values_redacted_and_names_kept),
      cmocka_unit_test(bare_query_elements_redacted_whole),
      cmocka_unit_test(names_and_paths_stay_valid_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
