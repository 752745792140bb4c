/* history_ring: the status page's last hour keeps the newest 60 samples,
 * oldest first, and never more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/control/history_ring.h"

static history_sample_t sample(int64_t n) {
  history_sample_t s = {.at_ms = n * 60000, .queued = n, .stored = (uint64_t)n};
  s.answers[HISTORY_5XX] = (uint64_t)n * 2;
  return s;
}

static void an_empty_ring_holds_nothing(void **state) {
  (void)state;
  history_ring_t r;
  history_ring_init(&r);
  assert_int_equal(history_ring_len(&r), 0);
}

static void samples_come_back_oldest_first_before_the_ring_is_full(void **state) {
  (void)state;
  history_ring_t r;
  history_ring_init(&r);
  for (int64_t n = 1; n <= 5; n++) {
    history_sample_t s = sample(n);
    history_ring_push(&r, &s);
  }
  assert_int_equal(history_ring_len(&r), 5);
  for (size_t i = 0; i < 5; i++) {
    const history_sample_t *s = history_ring_at(&r, i);
    assert_int_equal(s->at_ms, (int64_t)(i + 1) * 60000);
    assert_int_equal(s->queued, (int64_t)i + 1);
    assert_int_equal(s->answers[HISTORY_5XX], (i + 1) * 2);
  }
}

static void exactly_full_keeps_every_sample(void **state) {
  (void)state;
  history_ring_t r;
  history_ring_init(&r);
  for (int64_t n = 0; n < HISTORY_SLOTS; n++) {
    history_sample_t s = sample(n);
    history_ring_push(&r, &s);
  }
  assert_int_equal(history_ring_len(&r), HISTORY_SLOTS);
  assert_int_equal(history_ring_at(&r, 0)->queued, 0);
  assert_int_equal(history_ring_at(&r, HISTORY_SLOTS - 1)->queued, HISTORY_SLOTS - 1);
}

static void a_full_ring_drops_the_oldest_and_keeps_the_last_hour(void **state) {
  (void)state;
  history_ring_t r;
  history_ring_init(&r);
  const int64_t pushed = 3 * HISTORY_SLOTS + 7; /* wraps several times, ends mid-ring */
  for (int64_t n = 0; n < pushed; n++) {
    history_sample_t s = sample(n);
    history_ring_push(&r, &s);
    assert_true(history_ring_len(&r) <= HISTORY_SLOTS);
  }
  assert_int_equal(history_ring_len(&r), HISTORY_SLOTS);
  for (size_t i = 0; i < HISTORY_SLOTS; i++) {
    int64_t want = pushed - HISTORY_SLOTS + (int64_t)i;
    assert_int_equal(history_ring_at(&r, i)->queued, want);
    assert_int_equal(history_ring_at(&r, i)->stored, (uint64_t)want);
  }
}

static void a_pushed_sample_is_a_copy(void **state) {
  (void)state;
  history_ring_t r;
  history_ring_init(&r);
  history_sample_t s = sample(4);
  history_ring_push(&r, &s);
  s.queued = 99;
  assert_int_equal(history_ring_at(&r, 0)->queued, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(an_empty_ring_holds_nothing),
      cmocka_unit_test(samples_come_back_oldest_first_before_the_ring_is_full),
      cmocka_unit_test(exactly_full_keeps_every_sample),
      cmocka_unit_test(a_full_ring_drops_the_oldest_and_keeps_the_last_hour),
      cmocka_unit_test(a_pushed_sample_is_a_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
