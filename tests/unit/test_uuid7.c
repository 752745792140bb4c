/* uuid7: valid, distinct, strictly increasing ids, whatever the clock does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/uuid7.h"

#define MANY 10000

/* The generator keeps state across calls (last millisecond, counter), and
 * every test runs in this one process: each test starts from a millisecond
 * later than anything an earlier test used, so tests do not depend on
 * their order. */
static uint64_t fresh_ms(void) {
  static uint64_t base = 1700000000000ull;
  base += 1000000000ull; /* ~11 days past anything generated so far */
  return base;
}

static uint64_t ms_of(const char *id) {
  char hex[13];
  memcpy(hex, id, 8);
  memcpy(hex + 8, id + 9, 4);
  hex[12] = '\0';
  return strtoull(hex, NULL, 16);
}

static void check_form(const char *id) {
  assert_true(uuid7_is_valid(id));
  assert_int_equal(strlen(id), UUID7_STRLEN);
  assert_int_equal(id[14], '7'); /* version nibble */
  assert_non_null(strchr("89ab", id[19])); /* variant bits 10 */
}

static int cmp_ids(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

static void assert_all_distinct(char (*ids)[UUID7_STRLEN + 1], size_t n) {
  char (*sorted)[UUID7_STRLEN + 1] = malloc(n * sizeof(*sorted));
  assert_non_null(sorted);
  memcpy(sorted, ids, n * sizeof(*sorted));
  qsort(sorted, n, sizeof(*sorted), cmp_ids);
  for (size_t i = 1; i < n; i++)
    assert_true(strcmp(sorted[i - 1], sorted[i]) != 0);
  free(sorted);
}

static void ids_carry_the_millisecond_version_7_and_variant_10(void **state) {
  (void)state;
  uint64_t ms = fresh_ms();
  char id[UUID7_STRLEN + 1];
  uuid7_generate(id, ms);
  check_form(id);
  assert_int_equal(ms_of(id), ms);
  /* Dashes at 8, 13, 18, 23 (8-4-4-4-12). */
  assert_int_equal(id[8], '-');
  assert_int_equal(id[13], '-');
  assert_int_equal(id[18], '-');
  assert_int_equal(id[23], '-');
  assert_int_equal(id[36], '\0');
}

static void ten_thousand_ids_over_a_moving_clock_are_valid_distinct_and_increasing(void **state) {
  (void)state;
  char (*ids)[UUID7_STRLEN + 1] = malloc(MANY * sizeof(*ids));
  assert_non_null(ids);
  uint64_t ms = fresh_ms();
  for (size_t i = 0; i < MANY; i++) {
    uuid7_generate(ids[i], ms + i / 7); /* a few ids per millisecond */
    check_form(ids[i]);
    if (i > 0)
      assert_true(strcmp(ids[i - 1], ids[i]) < 0);
  }
  assert_int_equal(ms_of(ids[0]), ms);
  assert_all_distinct(ids, MANY);
  free(ids);
}

static void ten_thousand_ids_in_one_millisecond_stay_strictly_increasing(void **state) {
  (void)state;
  char (*ids)[UUID7_STRLEN + 1] = malloc(MANY * sizeof(*ids));
  assert_non_null(ids);
  uint64_t ms = fresh_ms();
  for (size_t i = 0; i < MANY; i++) {
    uuid7_generate(ids[i], ms); /* the clock never moves */
    check_form(ids[i]);
    if (i > 0)
      assert_true(strcmp(ids[i - 1], ids[i]) < 0);
  }
  /* 10,000 exceed the 12-bit counter of one millisecond: the generator
   * borrows the next milliseconds, but never goes below the clock and
   * never runs far ahead of it. */
  assert_int_equal(ms_of(ids[0]), ms);
  assert_true(ms_of(ids[MANY - 1]) > ms);
  assert_true(ms_of(ids[MANY - 1]) <= ms + MANY / 0xc00 + 1);
  assert_all_distinct(ids, MANY);
  free(ids);
}

static void ids_stay_strictly_increasing_when_the_clock_goes_backwards(void **state) {
  (void)state;
  char (*ids)[UUID7_STRLEN + 1] = malloc(MANY * sizeof(*ids));
  assert_non_null(ids);
  uint64_t ms = fresh_ms();
  for (size_t i = 0; i < MANY; i++) {
    /* Jumps back by up to a minute every 100 ids, forward in between. */
    uint64_t now = ms + (i % 100) - (i / 100 % 3) * 60000;
    uuid7_generate(ids[i], now);
    check_form(ids[i]);
    if (i > 0)
      assert_true(strcmp(ids[i - 1], ids[i]) < 0);
  }
  /* A step back never puts an id's time below one already given out. */
  assert_true(ms_of(ids[MANY - 1]) >= ms_of(ids[0]));
  assert_all_distinct(ids, MANY);
  free(ids);

  /* A single big step back, then forward again past the old time. */
  char a[UUID7_STRLEN + 1], b[UUID7_STRLEN + 1], c[UUID7_STRLEN + 1];
  uint64_t t = fresh_ms();
  uuid7_generate(a, t);
  uuid7_generate(b, t - 3600000);
  uuid7_generate(c, t + 5);
  assert_true(strcmp(a, b) < 0);
  assert_true(strcmp(b, c) < 0);
  assert_int_equal(ms_of(b), t);
  assert_int_equal(ms_of(c), t + 5);
}

static void is_valid_accepts_only_the_lowercase_36_character_form(void **state) {
  (void)state;
  const char *good = "0190a1b2-c3d4-7e5f-8a6b-0123456789ab";
  assert_true(uuid7_is_valid(good));

  char s[64];
  /* Uppercase hex. */
  assert_false(uuid7_is_valid("0190A1B2-C3D4-7E5F-8A6B-0123456789AB"));
  snprintf(s, sizeof(s), "%s", good);
  s[35] = 'B';
  assert_false(uuid7_is_valid(s));
  /* Wrong length. */
  assert_false(uuid7_is_valid(""));
  assert_false(uuid7_is_valid("0190a1b2-c3d4-7e5f-8a6b-0123456789a"));   /* 35 */
  assert_false(uuid7_is_valid("0190a1b2-c3d4-7e5f-8a6b-0123456789abc")); /* 37 */
  /* Missing or misplaced dashes. */
  assert_false(uuid7_is_valid("0190a1b2c3d47e5f8a6b0123456789ab"));
  assert_false(uuid7_is_valid("0190a1b20c3d4-7e5f-8a6b-0123456789ab")); /* dash 1 is hex */
  for (int pos = 0; pos < UUID7_STRLEN; pos++) {
    if (good[pos] != '-')
      continue;
    snprintf(s, sizeof(s), "%s", good);
    s[pos] = '0';
    assert_false(uuid7_is_valid(s));
  }
  snprintf(s, sizeof(s), "%s", good);
  s[0] = '-'; /* a dash where a digit belongs */
  assert_false(uuid7_is_valid(s));
  /* Not hex. */
  assert_false(uuid7_is_valid("0190a1b2-c3d4-7e5f-8a6b-0123456789ag"));
  assert_false(uuid7_is_valid("0190a1b2-c3d4-7e5f-8a6b-01234567 9ab"));
  assert_false(uuid7_is_valid("{190a1b2-c3d4-7e5f-8a6b-0123456789a}"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ids_carry_the_millisecond_version_7_and_variant_10),
      cmocka_unit_test(ten_thousand_ids_over_a_moving_clock_are_valid_distinct_and_increasing),
      cmocka_unit_test(ten_thousand_ids_in_one_millisecond_stay_strictly_increasing),
      cmocka_unit_test(ids_stay_strictly_increasing_when_the_clock_goes_backwards),
      cmocka_unit_test(is_valid_accepts_only_the_lowercase_36_character_form),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
