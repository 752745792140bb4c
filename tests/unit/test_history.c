/* history: the period in progress is what the counters moved since it
 * began, and GET /_retryd/history renders the ring oldest first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/control/history.h"

static history_t h;
static stats_t st;

static void the_period_in_progress_counts_what_moved_since_it_began(void **state) {
  (void)state;
  memset(&h, 0, sizeof(h));
  stats_init(&st);
  st.stored = 10;
  st.recovered = 3;
  stats_upstream_answer(&st, 507, 1000);
  h.stats = &st;
  /* The period began here: base is the totals then. */
  h.base.stored = 10;
  h.base.delivered = 3;
  h.base.answers[HISTORY_5XX] = 1;
  h.base.at_ms = 1700000000000;
  st.stored = 14;
  st.recovered = 5;
  st.dead = 1;
  stats_upstream_answer(&st, 201, 1000);
  stats_upstream_answer(&st, 503, 1000);
  stats_upstream_answer(&st, 0, 1000); /* no answer */
  history_sample_t cur;
  history_current(&h, 9, &cur);
  assert_int_equal(cur.at_ms, 1700000000000);
  assert_int_equal(cur.queued, 9);
  assert_int_equal(cur.stored, 4);
  assert_int_equal(cur.delivered, 2);
  assert_int_equal(cur.dead, 1);
  assert_int_equal(cur.answers[HISTORY_2XX], 1);
  assert_int_equal(cur.answers[HISTORY_5XX], 1);
  assert_int_equal(cur.answers[HISTORY_4XX], 0);
  assert_int_equal(cur.answers[HISTORY_NETWORK], 1);
}

static void json_lists_samples_oldest_first_then_the_current_one(void **state) {
  (void)state;
  memset(&h, 0, sizeof(h));
  h.period_ms = HISTORY_PERIOD_MS;
  history_ring_init(&h.ring);
  for (int i = 0; i < HISTORY_SLOTS + 2; i++) {
    history_sample_t s = {.at_ms = 1700000000000 + (int64_t)i * 60000, .queued = i, .stored = 1};
    history_ring_push(&h.ring, &s);
  }
  history_sample_t cur = {.at_ms = 1700000000000 + 62 * 60000, .queued = -1};
  cur.answers[HISTORY_2XX] = 7;
  buf_t b;
  buf_init(&b, 64 * 1024);
  assert_int_equal(history_json(&b, &h, &cur), 0);
  assert_int_equal(buf_append(&b, "", 1), 0);
  const char *j = b.data;
  assert_non_null(strstr(j, "{\"period_s\":60,\"slots\":60,\"samples\":[{\"at\":"));
  /* The first two samples left the ring: it starts at queued 2. */
  assert_null(strstr(j, "\"queued\":0,"));
  assert_null(strstr(j, "\"queued\":1,"));
  const char *first = strstr(j, "\"queued\":2,");
  const char *last = strstr(j, "\"queued\":61,");
  assert_non_null(first);
  assert_non_null(last);
  assert_true(first < last);
  const char *current = strstr(j, "],\"current\":{");
  assert_non_null(current);
  assert_true(last < current);
  assert_non_null(strstr(current, "\"queued\":null,"));
  assert_non_null(strstr(current, "\"2xx\":7,"));
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(the_period_in_progress_counts_what_moved_since_it_began),
      cmocka_unit_test(json_lists_samples_oldest_first_then_the_current_one),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
