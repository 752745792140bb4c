/* Durations and sizes: what the command line accepts, and what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/units.h"

static void durations_in_every_unit_parse(void **state) {
  (void)state;
  uint64_t ms;
  assert_int_equal(units_parse_duration_ms("250ms", &ms), 0);
  assert_int_equal(ms, 250);
  assert_int_equal(units_parse_duration_ms("30s", &ms), 0);
  assert_int_equal(ms, 30000);
  assert_int_equal(units_parse_duration_ms("5m", &ms), 0);
  assert_int_equal(ms, 300000);
  assert_int_equal(units_parse_duration_ms("24h", &ms), 0);
  assert_int_equal(ms, 86400000);
  assert_int_equal(units_parse_duration_ms("0s", &ms), 0);
  assert_int_equal(ms, 0);
}

static void malformed_durations_are_refused(void **state) {
  (void)state;
  const char *bad[] = {"", "30", "s", "5x", "-1s", "+1s", " 1s", "1s ", "1.5s", "1 s", "1S",
                       "1ms5", "99999999999999999999s", "18446744073709551615h"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint64_t ms = 77;
    assert_int_not_equal(units_parse_duration_ms(bad[i], &ms), 0);
    assert_int_equal(ms, 77);
  }
}

static void sizes_with_binary_units_parse(void **state) {
  (void)state;
  uint64_t v;
  assert_int_equal(units_parse_size("512", &v), 0);
  assert_int_equal(v, 512);
  assert_int_equal(units_parse_size("64KiB", &v), 0);
  assert_int_equal(v, 65536);
  assert_int_equal(units_parse_size("10MiB", &v), 0);
  assert_int_equal(v, 10485760);
  assert_int_equal(units_parse_size("1GiB", &v), 0);
  assert_int_equal(v, 1073741824);
  assert_int_equal(units_parse_size("7B", &v), 0);
  assert_int_equal(v, 7);
}

static void malformed_sizes_are_refused(void **state) {
  (void)state;
  const char *bad[] = {"", "KiB", "10XB", "10kb", "10 MiB", "-5", "1.5MiB", "10MB",
                       "99999999999999999999", "18446744073709551615GiB"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint64_t v;
    assert_int_not_equal(units_parse_size(bad[i], &v), 0);
  }
}

static void whole_numbers_only(void **state) {
  (void)state;
  uint64_t v;
  assert_int_equal(units_parse_uint("0", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(units_parse_uint("1000000", &v), 0);
  assert_int_equal(v, 1000000);
  assert_int_not_equal(units_parse_uint("-1", &v), 0);
  assert_int_not_equal(units_parse_uint("1e3", &v), 0);
  assert_int_not_equal(units_parse_uint("", &v), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(durations_in_every_unit_parse),
      cmocka_unit_test(malformed_durations_are_refused),
      cmocka_unit_test(sizes_with_binary_units_parse),
      cmocka_unit_test(malformed_sizes_are_refused),
      cmocka_unit_test(whole_numbers_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
