/* Completion callbacks' pure parts: the Standard Webhooks signature (the
 * spec's own test vector), secrets, and which origins a callback may use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/callback/callback_sign.h"
#include "proxy/callback/callback_url.h"

static void signature_matches_the_standard_webhooks_vector(void **state) {
  (void)state;
  callback_key_t key;
  assert_int_equal(callback_key_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key), 0);
  assert_int_equal(key.len, 24);
  const char *body = "{\"test\": 2432232314}";
  char sig[CALLBACK_SIGNATURE_MAX];
  assert_int_equal(
      callback_sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig), 0);
  assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static void plain_secret_is_its_bytes_and_bad_whsec_is_refused(void **state) {
  (void)state;
  callback_key_t key;
  assert_int_equal(callback_key_parse("s3cret", &key), 0);
  assert_int_equal(key.len, 6);
  assert_memory_equal(key.bytes, "s3cret", 6);
  const char *bad[] = {"whsec_", "whsec_***", "whsec_abc",
                       "whsec_====", "whsec_" /* too long below */};
  for (size_t i = 0; i + 1 < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_not_equal(callback_key_parse(bad[i], &key), 0);
  char long_secret[CALLBACK_KEY_MAX + 2];
  memset(long_secret, 'k', sizeof(long_secret) - 1);
  long_secret[sizeof(long_secret) - 1] = '\0';
  assert_int_not_equal(callback_key_parse(long_secret, &key), 0);
}

static bool allowed(const char *url, const char *allow) {
  callback_url_t u;
  char why[200];
  return callback_url_parse(url, &u, why, sizeof(why)) == 0 && callback_url_allowed(&u, allow);
}

static void loopback_is_the_default_and_nothing_else(void **state) {
  (void)state;
  assert_true(allowed("http://127.0.0.1:9000/hook", ""));
  assert_true(allowed("http://localhost/hook?x=1", ""));
  assert_true(allowed("https://[::1]:8443/", ""));
  assert_true(allowed("http://LOCALHOST:1/", ""));
  assert_false(allowed("http://example.com/hook", ""));
  assert_false(allowed("http://127.0.0.2/hook", ""));
  assert_false(allowed("http://127.0.0.1.example.com/hook", ""));
  assert_false(allowed("http://127.0.0.1@example.com/hook", ""));
  assert_false(allowed("http://user@127.0.0.1/hook", ""));
  assert_false(allowed("http://127.0.0.1/hook#frag", ""));
  assert_false(allowed("ftp://127.0.0.1/", ""));
  assert_false(allowed("gopher://127.0.0.1:70/", ""));
}

static void allow_list_matches_whole_origins(void **state) {
  (void)state;
  const char *allow = "https://hooks.example.com, http://10.0.0.5:8080";
  assert_true(allowed("https://hooks.example.com/a/b?c=d", allow));
  assert_true(allowed("https://hooks.example.com:443/a", allow));
  assert_true(allowed("http://10.0.0.5:8080/x", allow));
  assert_false(allowed("http://hooks.example.com/a", allow));       /* scheme */
  assert_false(allowed("https://hooks.example.com:8443/a", allow)); /* port */
  assert_false(allowed("http://10.0.0.5/x", allow));
  assert_false(allowed("http://127.0.0.1:9000/hook", allow)); /* a list replaces loopback */
}

static void url_splits_into_origin_and_target(void **state) {
  (void)state;
  callback_url_t u;
  char why[200];
  assert_int_equal(callback_url_parse("http://Example.COM/h?x=1", &u, why, sizeof(why)), 0);
  assert_string_equal(u.origin, "http://example.com:80");
  assert_string_equal(u.target, "/h?x=1");
  assert_int_equal(callback_url_parse("https://[::1]", &u, why, sizeof(why)), 0);
  assert_string_equal(u.origin, "https://[::1]:443");
  assert_string_equal(u.target, "/");
}

static void configuration_is_checked_whole(void **state) {
  (void)state;
  char err[300];
  assert_int_equal(callback_url_check_config("", "", "", err, sizeof(err)), 0);
  assert_int_equal(
      callback_url_check_config("", "http://127.0.0.1:9/h", "whsec_c2VjcmV0", err, sizeof(err)), 0);
  assert_int_not_equal(callback_url_check_config("", "http://example.com/h", "", err, sizeof(err)),
                       0);
  assert_non_null(strstr(err, "--callback-url"));
  assert_int_not_equal(callback_url_check_config("http://a.example/p", "", "", err, sizeof(err)),
                       0);
  assert_non_null(strstr(err, "--callback-allow"));
  assert_int_not_equal(callback_url_check_config("http://a.example,", "", "", err, sizeof(err)), 0);
  assert_int_not_equal(callback_url_check_config("", "", "whsec_!", err, sizeof(err)), 0);
  assert_non_null(strstr(err, "--callback-secret"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(signature_matches_the_standard_webhooks_vector),
      cmocka_unit_test(plain_secret_is_its_bytes_and_bad_whsec_is_refused),
      cmocka_unit_test(loopback_is_the_default_and_nothing_else),
      cmocka_unit_test(allow_list_matches_whole_origins),
      cmocka_unit_test(url_splits_into_origin_and_target),
      cmocka_unit_test(configuration_is_checked_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
