/* route_flow: a route pauses on capacity signals (507, 429, 503 with
 * Retry-After) until the later of Retry-After and the interval, holding
 * first attempts and claiming nothing; then sends exactly one probe; a
 * final answer to it starts a ramp that doubles per step (its answers, or
 * an interval) up to the
 * route's rate and ends open, a failed one pauses again; a rate limit paces
 * first attempts and claims alike. Pure state over a made-up clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/queue/route_flow.h"

#define T0 1700000000000ll
#define INTERVAL 30000

static route_flow_t flow_with(bool pause, int64_t limit, int64_t period_ms) {
  flow_policy_t p = {.pause = pause,
                     .interval_ms = INTERVAL,
                     .limit = limit,
                     .period_ms = period_ms,
                     .ramp_ceiling = 32};
  route_flow_t f;
  flow_init(&f, &p, T0);
  return f;
}

static void capacity_signals_are_507_429_and_503_with_retry_after(void **state) {
  (void)state;
  assert_true(flow_is_capacity_signal(507, false));
  assert_true(flow_is_capacity_signal(429, false));
  assert_true(flow_is_capacity_signal(503, true));
  assert_false(flow_is_capacity_signal(503, false));
  assert_false(flow_is_capacity_signal(502, true));
  assert_false(flow_is_capacity_signal(0, false));
}

static void an_open_route_without_limit_sends_everything(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 0, 0);
  for (int i = 0; i < 1000; i++)
    assert_true(flow_take_first(&f, T0 + i));
  assert_int_equal(flow_claimable(&f, T0, 256), 256);
  assert_int_equal(f.held, 0);
  /* A 502, a 503 without Retry-After or no answer is no capacity signal. */
  assert_int_equal(flow_note(&f, 502, true, 0, false, T0), FLOW_NO_CHANGE);
  assert_int_equal(flow_note(&f, 503, true, 0, false, T0), FLOW_NO_CHANGE);
  assert_int_equal(flow_note(&f, 0, true, 0, false, T0), FLOW_NO_CHANGE);
  assert_int_equal(flow_state(&f, T0), FLOW_OPEN);
}

static void a_507_pauses_for_the_interval_holding_and_claiming_nothing(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 0, 0);
  assert_int_equal(flow_note(&f, 507, true, 0, false, T0), FLOW_PAUSED_NOW);
  assert_int_equal(f.pauses, 1);
  assert_int_equal(flow_state(&f, T0 + 1), FLOW_PAUSED);
  assert_false(flow_take_first(&f, T0 + 1));
  assert_false(flow_take_first(&f, T0 + INTERVAL - 1));
  assert_int_equal(f.held, 2);
  assert_int_equal(flow_claimable(&f, T0 + INTERVAL - 1, 16), 0);
  assert_int_equal(flow_next_send_at(&f, T0 + 5), T0 + INTERVAL);
  /* More signals while paused are no new pause, and do not shorten it. */
  assert_int_equal(flow_note(&f, 507, true, 0, false, T0 + 10), FLOW_NO_CHANGE);
  assert_int_equal(f.pauses, 1);
  assert_int_equal(f.paused_until, T0 + 10 + INTERVAL);
}

static void retry_after_beyond_the_interval_sets_the_pause(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 0, 0);
  int64_t later = T0 + 5 * 60000;
  assert_int_equal(flow_note(&f, 429, true, later, false, T0), FLOW_PAUSED_NOW);
  assert_int_equal(flow_state(&f, later - 1), FLOW_PAUSED);
  assert_int_equal(flow_state(&f, later), FLOW_PROBING);
  /* A Retry-After shorter than the interval does not shorten the pause. */
  route_flow_t g = flow_with(true, 0, 0);
  assert_int_equal(flow_note(&g, 503, true, T0 + 1000, false, T0), FLOW_PAUSED_NOW);
  assert_int_equal(g.paused_until, T0 + INTERVAL);
}

static void after_the_pause_exactly_one_probe_goes_and_new_requests_are_held(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 0, 0);
  flow_note(&f, 507, true, 0, false, T0);
  int64_t t = T0 + INTERVAL;
  assert_int_equal(flow_state(&f, t), FLOW_PROBING);
  assert_false(flow_take_first(&f, t)); /* the probe is a stored row */
  assert_int_equal(flow_claimable(&f, t, 16), 1);
  assert_true(flow_took(&f, 1, t));
  assert_int_equal(flow_claimable(&f, t + 1, 16), 0);
  assert_int_equal(flow_next_send_at(&f, t + 1), 0); /* its answer says */
  /* Another attempt's answer (not the probe's) decides nothing. */
  assert_int_equal(flow_note(&f, 200, false, 0, false, t + 2), FLOW_NO_CHANGE);
  assert_int_equal(flow_state(&f, t + 2), FLOW_PROBING);
}

static void a_failed_probe_pauses_again(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 0, 0);
  flow_note(&f, 507, true, 0, false, T0);
  int64_t t = T0 + INTERVAL;
  assert_int_equal(flow_claimable(&f, t, 16), 1);
  assert_true(flow_took(&f, 1, t));
  assert_int_equal(flow_note(&f, 0, true, 0, true, t + 100), FLOW_NO_CHANGE); /* no answer */
  assert_int_equal(flow_state(&f, t + 101), FLOW_PAUSED);
  assert_int_equal(f.paused_until, t + 100 + INTERVAL);
  assert_int_equal(flow_claimable(&f, t + 101, 16), 0);
  /* A 507 to the next probe: paused again, one pause all along. */
  t = f.paused_until;
  assert_true(flow_took(&f, flow_claimable(&f, t, 16), t));
  assert_int_equal(flow_note(&f, 507, true, 0, true, t + 5), FLOW_NO_CHANGE);
  assert_int_equal(flow_state(&f, t + 6), FLOW_PAUSED);
  assert_int_equal(f.pauses, 1);
}

static void a_final_probe_ramps_doubling_per_step_then_opens(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 0, 0); /* ceiling 32 */
  flow_note(&f, 507, true, 0, false, T0);
  int64_t t = T0 + INTERVAL;
  assert_true(flow_took(&f, flow_claimable(&f, t, 16), t));
  assert_int_equal(flow_note(&f, 201, false, 0, true, t + 50), FLOW_RESUMED_NOW);
  t += 50;
  assert_int_equal(flow_state(&f, t), FLOW_RAMPING);
  assert_false(flow_take_first(&f, t)); /* the queue first, oldest first */
  /* Steps of 2, 4, 8, 16: each sent at once, the next only once all of
   * this one's sends came back final (or an interval went by). */
  int64_t steps[] = {2, 4, 8, 16};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(flow_state(&f, t), FLOW_RAMPING);
    assert_int_equal(f.ramp_allowed, steps[i]);
    size_t n = flow_claimable(&f, t, 256);
    assert_int_equal(n, steps[i]);
    flow_took(&f, n, t);
    assert_int_equal(flow_claimable(&f, t, 256), 0);
    assert_int_equal(flow_next_send_at(&f, t), t + INTERVAL); /* or the answers */
    for (size_t k = 0; k + 1 < n; k++)
      flow_note(&f, 201, false, 0, false, t + 10);
    assert_int_equal(flow_claimable(&f, t + 10, 256), 0); /* one answer still out */
    flow_note(&f, 201, false, 0, false, t + 20);
    t += 20;
  }
  /* 32, the ceiling: open, unlimited. */
  assert_int_equal(flow_state(&f, t), FLOW_OPEN);
  assert_true(flow_take_first(&f, t));
  assert_int_equal(flow_claimable(&f, t, 256), 256);
  /* Without answers, a step still ends after an interval. */
  route_flow_t h = flow_with(true, 0, 0);
  flow_note(&h, 507, true, 0, false, T0);
  flow_took(&h, flow_claimable(&h, T0 + INTERVAL, 1), T0 + INTERVAL);
  flow_note(&h, 200, false, 0, true, T0 + INTERVAL);
  flow_took(&h, flow_claimable(&h, T0 + INTERVAL, 16), T0 + INTERVAL);
  assert_int_equal(flow_claimable(&h, T0 + 2 * INTERVAL - 1, 16), 0);
  assert_int_equal(flow_claimable(&h, T0 + 2 * INTERVAL, 16), 4);
  /* A capacity signal while ramping pauses again. */
  route_flow_t g = flow_with(true, 0, 0);
  flow_note(&g, 507, true, 0, false, T0);
  flow_took(&g, flow_claimable(&g, T0 + INTERVAL, 1), T0 + INTERVAL);
  flow_note(&g, 200, false, 0, true, T0 + INTERVAL);
  assert_int_equal(flow_note(&g, 429, true, 0, false, T0 + INTERVAL + 10), FLOW_PAUSED_NOW);
  assert_int_equal(g.pauses, 2);
}

static void a_rate_limit_paces_first_attempts_and_claims_alike(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 120, 60000); /* 120 a minute: one per 500 ms */
  int sent = 0;
  for (int i = 0; i < 200; i++)
    sent += flow_take_first(&f, T0);
  assert_int_equal(sent, 1); /* spread evenly: no burst */
  assert_int_equal(f.held, 199);
  assert_int_equal(flow_claimable(&f, T0, 16), 0);
  assert_int_equal(flow_next_send_at(&f, T0), T0 + 500);  /* the pace, not a ms later */
  assert_int_equal(flow_claimable(&f, T0 + 1000, 16), 1); /* one token at most */
  flow_took(&f, 1, T0 + 1000);
  assert_int_equal(flow_claimable(&f, T0 + 1000, 16), 0);
  /* In any minute: 120 at most, taken as soon as allowed. */
  int claimed = 0;
  for (int64_t t = T0 + 1000; t < T0 + 61000; t += 10) {
    size_t n = flow_claimable(&f, t, 16);
    flow_took(&f, n, t);
    if (t < T0 + 61000)
      claimed += (int)n;
  }
  assert_in_range(claimed, 119, 120);
}

/* The probe is a send: it takes its token, so the first send after a
 * resume is a pace after the probe, and no period that starts with the
 * probe holds more than the limit (the probe had skipped the bucket, and
 * the resume refilled it: 121 in a minute of a 120/min limit, the 121st
 * refused 429 and the route paused again). */
static void the_probe_counts_against_the_rate_limit(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 120, 60000); /* one per 500 ms */
  flow_note(&f, 507, true, 0, false, T0);
  int64_t t = T0 + INTERVAL;
  assert_int_equal(flow_claimable(&f, t, 16), 1);
  assert_true(flow_took(&f, 1, t));
  assert_int_equal(flow_note(&f, 201, false, 0, true, t + 5), FLOW_RESUMED_NOW);
  assert_int_equal(flow_claimable(&f, t + 5, 16), 0);
  assert_int_equal(flow_next_send_at(&f, t + 5), t + 500);
  int sent = 1; /* the probe */
  for (int64_t now = t + 5; now < t + 60000; now++) {
    size_t n = flow_claimable(&f, now, 16);
    flow_took(&f, n, now);
    sent += (int)n;
    if (flow_state(&f, now) == FLOW_RAMPING)
      flow_note(&f, 201, false, 0, false, now); /* each answered: the ramp steps up */
  }
  assert_in_range(sent, 110, 120);
  /* A probe waits for its token too: a limit slower than the pause. */
  route_flow_t slow = flow_with(true, 1, 3600000); /* one an hour */
  assert_true(flow_take_first(&slow, T0));
  flow_note(&slow, 507, true, 0, false, T0);
  assert_int_equal(flow_state(&slow, T0 + INTERVAL), FLOW_PROBING);
  assert_int_equal(flow_claimable(&slow, T0 + INTERVAL, 1), 0);
  assert_in_range(flow_next_send_at(&slow, T0 + INTERVAL), T0 + 3600000, T0 + 3600001);
  /* A probe claimed but never sent gives its token back. */
  assert_int_equal(flow_claimable(&slow, T0 + 3600001, 1), 1);
  flow_took(&slow, 1, T0 + 3600001);
  flow_untake(&slow, 1, true);
  assert_int_equal(flow_claimable(&slow, T0 + 3600001, 1), 1);
}

static void a_ramp_with_a_limit_ends_at_the_limit(void **state) {
  (void)state;
  route_flow_t f = flow_with(true, 8, INTERVAL); /* 8 per interval */
  flow_note(&f, 507, true, 0, false, T0);
  int64_t t = T0 + INTERVAL;
  flow_took(&f, flow_claimable(&f, t, 1), t);
  flow_note(&f, 200, false, 0, true, t);
  /* The limit still paces the ramp: one token at a time, the probe's
   * taken. */
  assert_int_equal(flow_claimable(&f, t, 100), 0);
  assert_int_equal(flow_claimable(&f, t + INTERVAL / 8, 100), 1);
  assert_int_equal(flow_state(&f, t + INTERVAL), FLOW_RAMPING);  /* 4 */
  assert_int_equal(flow_state(&f, t + 2 * INTERVAL), FLOW_OPEN); /* 8: the limit */
  assert_int_equal(flow_claimable(&f, t + 2 * INTERVAL, 100), 1);
}

static void with_pausing_off_signals_change_nothing(void **state) {
  (void)state;
  route_flow_t f = flow_with(false, 0, 0);
  assert_int_equal(flow_note(&f, 507, true, 0, false, T0), FLOW_NO_CHANGE);
  assert_int_equal(flow_note(&f, 429, true, T0 + 60000, false, T0), FLOW_NO_CHANGE);
  assert_int_equal(flow_state(&f, T0 + 1), FLOW_OPEN);
  assert_true(flow_take_first(&f, T0 + 1));
  assert_int_equal(flow_claimable(&f, T0 + 1, 16), 16);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(capacity_signals_are_507_429_and_503_with_retry_after),
      cmocka_unit_test(an_open_route_without_limit_sends_everything),
      cmocka_unit_test(a_507_pauses_for_the_interval_holding_and_claiming_nothing),
      cmocka_unit_test(retry_after_beyond_the_interval_sets_the_pause),
      cmocka_unit_test(after_the_pause_exactly_one_probe_goes_and_new_requests_are_held),
      cmocka_unit_test(a_failed_probe_pauses_again),
      cmocka_unit_test(a_final_probe_ramps_doubling_per_step_then_opens),
      cmocka_unit_test(a_rate_limit_paces_first_attempts_and_claims_alike),
      cmocka_unit_test(the_probe_counts_against_the_rate_limit),
      cmocka_unit_test(a_ramp_with_a_limit_ends_at_the_limit),
      cmocka_unit_test(with_pausing_off_signals_change_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
