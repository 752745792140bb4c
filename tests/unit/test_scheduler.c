/* scheduler: claims go out for the free slots of --retry-concurrency, one
 * at a time; a claim's rows become attempts; a slot freed by an answer is
 * claimed again on the next turn of the loop (one claim for every slot
 * freed in that turn); a failed claim or outcome commit is tried again a
 * second later; a stop waits for the attempts in flight.
 *
 * In process, on a real libuv loop, with neither SQLite nor a storage
 * thread: the test is the store (its submit function records each job, and
 * the test answers it by filling it and calling its callback, as store.c
 * would), and the upstream is a fake backend whose transfers the test ends
 * by calling their done callback, as an upstream client would. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "proxy/app.h"
#include "proxy/queue/route_table.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/queue/retry_policy.h"
#include "proxy/queue/scheduler.h"
#include "proxy/upstream/upstream_backend.h"

#define MAX_JOBS 1024
#define MAX_XFERS 512

/* A transfer the fake upstream was asked for. */
typedef struct {
  upstream_xfer_t super;
  const char *method; /* the attempt's, valid until it ends */
  const char *target;
  bool cancelled;
  bool ended; /* done was called, or it was cancelled: no callback is left */
} fake_xfer_t;

/* A job the scheduler submitted; op and limit as they were then (the claim
 * job is one struct, reused by every claim). */
typedef struct {
  store_job_t *job;
  store_op_t op;
  size_t limit;
  bool answered;
} submitted_t;

typedef struct {
  uv_loop_t loop;
  config_t cfg;
  app_t app;
  route_table_t routes;
  /* The stored flows the store reports when the scheduler reads them. */
  storage_flow_t flows[4];
  int nflows;
  upstream_t upstream;
  submitted_t jobs[MAX_JOBS];
  int njobs;
  fake_xfer_t xfers[MAX_XFERS];
  int nxfers;
  int stopped; /* on_stopped calls */
} fixture_t;

static fixture_t *fx; /* the fake backend's and on_stopped's way back */

/* ---- the fake upstream ------------------------------------------------ */

static upstream_xfer_t *fake_send(upstream_t *u, const upstream_request_t *r, response_head_t *head,
                                  const upstream_ops_t *ops, void *ctx) {
  assert_true(fx->nxfers < MAX_XFERS);
  fake_xfer_t *x = &fx->xfers[fx->nxfers++];
  x->super = (upstream_xfer_t){.owner = u, .head = head, .ops = ops, .ctx = ctx};
  x->method = r->method;
  x->target = r->target;
  return &x->super;
}

static void fake_cancel(upstream_xfer_t *x) {
  fake_xfer_t *f = (fake_xfer_t *)x;
  assert_false(f->ended);
  f->cancelled = f->ended = true;
}

static void fake_resume(upstream_xfer_t *x) { (void)x; }

static const upstream_backend_t fake_backend = {
    .send = fake_send,
    .cancel = fake_cancel,
    .resume = fake_resume,
};

/* The upstream could not be reached: a network error, retryable. */
static void fail_xfer(int i) {
  fake_xfer_t *x = &fx->xfers[i];
  assert_false(x->ended);
  x->ended = true;
  x->super.ops->done(x->super.ctx, UPSTREAM_FAILED, "connection refused");
}

/* ---- the fake store --------------------------------------------------- */

static void record_submit(void *arg, store_job_t *job) {
  fixture_t *f = arg;
  if (job->op == STORE_FLOWS) {
    /* The stored flows: answered at once, never recorded. */
    memcpy(job->flows, f->flows, sizeof(f->flows));
    job->result = f->nflows;
    job->cb(job);
    return;
  }
  assert_true(f->njobs < MAX_JOBS);
  f->jobs[f->njobs++] = (submitted_t){.job = job, .op = job->op, .limit = job->limit};
}

/* Answers the claim submitted as job i with n due rows (row-0, row-1, ...),
 * saying the earliest row still queued is due at next_due (0: none). */
static void answer_claim(int i, int n, int64_t next_due) {
  submitted_t *sub = &fx->jobs[i];
  assert_int_equal(sub->op, STORE_CLAIM);
  assert_false(sub->answered);
  sub->answered = true;
  store_job_t *job = sub->job;
  assert_true((size_t)n <= job->limit);
  int64_t now = store_now_ms();
  for (int r = 0; r < n; r++) {
    stored_request_t *row = &job->rows[r];
    snprintf(row->id, sizeof(row->id), "row-%d", r);
    row->state = RQ_INFLIGHT;
    row->method = strdup("POST");
    row->target = strdup("/api/v1/bot/");
    row->attempts = 1;
    row->created_at = now;
  }
  job->nrows = n;
  job->result = n;
  job->next_due = next_due;
  job->flow_next_due = next_due;
  job->cb(job);
}

static void fail_job(int i, int error) {
  assert_false(fx->jobs[i].answered);
  fx->jobs[i].answered = true;
  store_job_t *job = fx->jobs[i].job;
  job->result = error;
  job->cb(job);
}

/* Commits the outcome submitted as job i. */
static void answer_finish(int i, int64_t next_due) {
  assert_int_equal(fx->jobs[i].op, STORE_FINISH);
  assert_false(fx->jobs[i].answered);
  fx->jobs[i].answered = true;
  store_job_t *job = fx->jobs[i].job;
  job->result = 0;
  job->next_due = next_due;
  job->cb(job);
}

/* One turn of the loop, without waiting: whatever is due now runs. */
static void turn(void) { uv_run(&fx->loop, UV_RUN_NOWAIT); }

static void start(uint64_t concurrency);

/* ---- set-up and the clean end ----------------------------------------- */

static int setup(void **state) {
  fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  config_defaults(&fx->cfg);
  fx->upstream.backend = &fake_backend;
  fx->app.loop = &fx->loop;
  fx->app.cfg = &fx->cfg;
  fx->app.upstream = &fx->upstream;
  route_table_init(&fx->routes, &fx->cfg);
  fx->routes.dflt.upstream = &fx->upstream;
  fx->app.routes = &fx->routes;
  /* What is stored: the default route's rows, due now. */
  fx->nflows = 1;
  fx->flows[0] = (storage_flow_t){.name = "", .queued = 1, .next_due = store_now_ms()};
  stats_init(&fx->app.stats);
  *state = fx;
  return 0;
}

static void start(uint64_t concurrency) {
  fx->cfg.retry_concurrency = concurrency;
  assert_int_equal(scheduler_start_with(&fx->app, record_submit, fx), 0);
  assert_non_null(fx->app.scheduler);
  turn(); /* the stored flows were read: what is due is claimed */
}

static void on_stopped(app_t *app) {
  assert_ptr_equal(app, &fx->app);
  fx->stopped++;
}

/* Every test ends here: stopped, closed, and the loop closes clean (no
 * handle left: every attempt was freed). What a test left in flight (a
 * test that failed half-way) is released and answered first. */
static int teardown(void **state) {
  (void)state;
  if (fx->app.scheduler != NULL) {
    scheduler_stop(fx->app.scheduler, on_stopped);
    scheduler_cancel_all(fx->app.scheduler);
    for (int i = 0; i < fx->njobs; i++) {
      if (fx->jobs[i].answered)
        continue;
      if (fx->jobs[i].op == STORE_CLAIM)
        answer_claim(i, 0, 0);
      else
        answer_finish(i, 0);
    }
    scheduler_close(fx->app.scheduler);
  }
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&fx->loop);
  route_table_free(&fx->routes);
  free(fx);
  fx = NULL;
  assert_int_equal(rc, 0);
  return 0;
}

/* Ends every transfer not yet ended and commits each outcome, so that
 * nothing is in flight. */
static void settle(void) {
  for (int i = 0; i < fx->nxfers; i++) {
    if (fx->xfers[i].ended)
      continue;
    int before = fx->njobs;
    fail_xfer(i);
    assert_int_equal(fx->njobs, before + 1);
    answer_finish(before, 0);
  }
}

/* ---- the tests -------------------------------------------------------- */

static void start_claims_every_free_slot_at_once(void **state) {
  (void)state;
  start(3);
  assert_int_equal(fx->njobs, 1);
  assert_int_equal(fx->jobs[0].op, STORE_CLAIM);
  assert_int_equal(fx->jobs[0].limit, 3);
  /* Rows due longer than --max-age (with a second's grace) are the
   * store's to make dead. */
  assert_int_equal(fx->jobs[0].job->max_age_ms, (int64_t)fx->cfg.max_age_ms + RETRY_POLICY_LATE_MS);
  answer_claim(0, 0, 0); /* every claim is answered: its rows are freed then */
}

static void claimed_rows_become_attempts(void **state) {
  (void)state;
  start(3);
  answer_claim(0, 2, 0);
  assert_int_equal(fx->nxfers, 2);
  assert_string_equal(fx->xfers[0].method, "POST");
  assert_string_equal(fx->xfers[0].target, "/api/v1/bot/");
  assert_int_equal(fx->app.stats.retries, 2);
  /* Fewer rows than asked for and nothing more due: no claim follows. */
  turn();
  assert_int_equal(fx->njobs, 1);
  settle();
}

static void a_claim_asks_for_at_most_256_and_a_full_one_is_followed_at_once(void **state) {
  (void)state;
  start(300);
  assert_int_equal(fx->jobs[0].limit, 256);
  answer_claim(0, 256, store_now_ms());
  assert_int_equal(fx->nxfers, 256);
  /* The store says more are due now: the rest of the slots are claimed
   * without waiting for the loop. */
  assert_int_equal(fx->njobs, 2);
  assert_int_equal(fx->jobs[1].op, STORE_CLAIM);
  assert_int_equal(fx->jobs[1].limit, 300 - 256);
  answer_claim(1, 0, 0);
  settle();
}

static void no_claim_while_every_slot_is_busy(void **state) {
  (void)state;
  start(2);
  /* A full claim, and the store says more rows are due now. */
  answer_claim(0, 2, store_now_ms());
  turn();
  turn();
  assert_int_equal(fx->nxfers, 2);
  assert_int_equal(fx->njobs, 1);
  settle();
}

static void answers_in_one_turn_refill_their_slots_with_one_claim(void **state) {
  (void)state;
  start(3);
  answer_claim(0, 3, store_now_ms()); /* more are due */
  turn();
  assert_int_equal(fx->njobs, 1);
  fail_xfer(0);
  fail_xfer(2);
  /* Each answer goes to the store at once, as an outcome to commit... */
  assert_int_equal(fx->njobs, 3);
  assert_int_equal(fx->jobs[1].op, STORE_FINISH);
  assert_string_equal(fx->jobs[1].job->id, "row-0");
  assert_int_equal(fx->jobs[1].job->outcome.kind, OUTCOME_RETRY);
  assert_int_equal(fx->jobs[2].op, STORE_FINISH);
  assert_string_equal(fx->jobs[2].job->id, "row-2");
  /* ...and both freed slots are claimed together on the next turn, before
   * the outcomes are committed. */
  turn();
  assert_int_equal(fx->njobs, 4);
  assert_int_equal(fx->jobs[3].op, STORE_CLAIM);
  assert_int_equal(fx->jobs[3].limit, 2);
  answer_finish(1, 0);
  answer_finish(2, 0);
  answer_claim(3, 2, 0);
  assert_int_equal(fx->nxfers, 5);
  assert_int_equal(fx->app.stats.retries, 5);
  settle();
}

static void no_second_claim_while_one_is_outstanding(void **state) {
  (void)state;
  start(4);
  /* The store reports rows due now while the first claim is out. */
  scheduler_note_due(fx->app.scheduler, store_now_ms());
  turn();
  turn();
  assert_int_equal(fx->njobs, 1);
  /* Its answer re-arms for what is still due: the free slots go in the
   * next claim. */
  answer_claim(0, 1, store_now_ms());
  assert_int_equal(fx->njobs, 1);
  turn();
  assert_int_equal(fx->njobs, 2);
  assert_int_equal(fx->jobs[1].op, STORE_CLAIM);
  assert_int_equal(fx->jobs[1].limit, 3);
  answer_claim(1, 0, 0);
  settle();
}

static void a_due_time_in_the_future_claims_then_and_not_before(void **state) {
  (void)state;
  start(2);
  answer_claim(0, 0, store_now_ms() + 150);
  uint64_t from = uv_now(&fx->loop);
  turn();
  assert_int_equal(fx->njobs, 1);
  uv_run(&fx->loop, UV_RUN_ONCE); /* waits for the timer */
  assert_int_equal(fx->njobs, 2);
  assert_true(uv_now(&fx->loop) - from >= 100);
  assert_int_equal(fx->jobs[1].limit, 2);
  answer_claim(1, 0, 0);
}

static void a_failed_claim_starts_nothing_and_is_tried_again_a_second_later(void **state) {
  (void)state;
  start(2);
  uint64_t from = uv_now(&fx->loop);
  fail_job(0, -EIO);
  assert_int_equal(fx->nxfers, 0);
  assert_null(fx->jobs[0].job->rows); /* the rows asked for are freed */
  turn();
  assert_int_equal(fx->njobs, 1);
  uv_run(&fx->loop, UV_RUN_ONCE); /* waits for the retry timer */
  assert_int_equal(fx->njobs, 2);
  assert_int_equal(fx->jobs[1].op, STORE_CLAIM);
  assert_int_equal(fx->jobs[1].limit, 2);
  assert_true(uv_now(&fx->loop) - from >= 900);
  answer_claim(1, 0, 0);
}

static void a_failed_outcome_commit_is_submitted_again_a_second_later(void **state) {
  (void)state;
  start(1);
  answer_claim(0, 1, 0);
  fail_xfer(0);
  assert_int_equal(fx->njobs, 2);
  uint64_t from = uv_now(&fx->loop);
  fail_job(1, -EIO);
  turn();
  assert_int_equal(fx->njobs, 2);
  uv_run(&fx->loop, UV_RUN_ONCE);
  /* The same outcome again: the row is still inflight on disk. */
  assert_int_equal(fx->njobs, 3);
  assert_int_equal(fx->jobs[2].op, STORE_FINISH);
  assert_ptr_equal(fx->jobs[2].job, fx->jobs[1].job);
  assert_int_equal(fx->jobs[2].job->outcome.kind, OUTCOME_RETRY);
  assert_true(uv_now(&fx->loop) - from >= 900);
  answer_finish(2, 0);
}

static void stop_claims_no_more_and_waits_for_attempts_in_flight(void **state) {
  (void)state;
  start(2);
  answer_claim(0, 2, store_now_ms());
  scheduler_stop(fx->app.scheduler, on_stopped);
  fail_xfer(0);
  fail_xfer(1);
  turn();
  assert_int_equal(fx->njobs, 3); /* two outcomes, no claim */
  answer_finish(1, store_now_ms());
  assert_int_equal(fx->stopped, 0); /* one outcome still uncommitted */
  answer_finish(2, store_now_ms());
  assert_int_equal(fx->stopped, 1);
  turn();
  assert_int_equal(fx->njobs, 3);
}

static void cancel_all_releases_the_attempts_in_flight(void **state) {
  (void)state;
  start(2);
  answer_claim(0, 2, 0);
  scheduler_stop(fx->app.scheduler, on_stopped);
  scheduler_cancel_all(fx->app.scheduler);
  assert_true(fx->xfers[0].cancelled);
  assert_true(fx->xfers[1].cancelled);
  assert_int_equal(fx->njobs, 3);
  for (int i = 1; i <= 2; i++) {
    assert_int_equal(fx->jobs[i].op, STORE_FINISH);
    assert_int_equal(fx->jobs[i].job->outcome.kind, OUTCOME_RELEASE);
  }
  answer_finish(1, 0);
  answer_finish(2, 0);
  assert_int_equal(fx->stopped, 1);
}

/* Flows are claimed one at a time, each within what its flow allows: a
 * paused flow's rows are not claimed while another flow's are. */
static void each_flow_is_claimed_on_its_own_and_a_paused_one_not_at_all(void **state) {
  (void)state;
  int64_t now = store_now_ms();
  fx->cfg.route_pause = true;
  route_table_free(&fx->routes);
  route_table_init(&fx->routes, &fx->cfg);
  fx->routes.dflt.upstream = &fx->upstream;
  fx->nflows = 2;
  fx->flows[0] = (storage_flow_t){.name = "bots#aa", .queued = 3, .next_due = now};
  fx->flows[1] = (storage_flow_t){.name = "bots#bb", .queued = 3, .next_due = now};
  /* Key aa's partition said 507: paused. */
  flow_entry_t *aa = route_table_flow(&fx->routes, "bots#aa", now);
  flow_note(&aa->flow, 507, true, 0, false, now);
  start(4);
  assert_int_equal(fx->njobs, 1);
  assert_int_equal(fx->jobs[0].op, STORE_CLAIM);
  assert_string_equal(fx->jobs[0].job->flow, "bots#bb");
  assert_int_equal(fx->jobs[0].limit, 4);
  answer_claim(0, 2, 0); /* bb has no more due: nothing else is claimed */
  turn();
  assert_int_equal(fx->njobs, 1);
  assert_int_equal(route_table_find_flow(&fx->routes, "bots#bb")->next_due, 0);
  settle();
}

int main(void) {
  /* The attempts' outcome lines are info: kept out of the test's output. */
  if (log_init(LOG_WARN) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(start_claims_every_free_slot_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(claimed_rows_become_attempts, setup, teardown),
      cmocka_unit_test_setup_teardown(each_flow_is_claimed_on_its_own_and_a_paused_one_not_at_all,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          a_claim_asks_for_at_most_256_and_a_full_one_is_followed_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(no_claim_while_every_slot_is_busy, setup, teardown),
      cmocka_unit_test_setup_teardown(answers_in_one_turn_refill_their_slots_with_one_claim, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(no_second_claim_while_one_is_outstanding, setup, teardown),
      cmocka_unit_test_setup_teardown(a_due_time_in_the_future_claims_then_and_not_before, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          a_failed_claim_starts_nothing_and_is_tried_again_a_second_later, setup, teardown),
      cmocka_unit_test_setup_teardown(a_failed_outcome_commit_is_submitted_again_a_second_later,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(stop_claims_no_more_and_waits_for_attempts_in_flight, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(cancel_all_releases_the_attempts_in_flight, setup, teardown),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  log_close();
  return failed;
}
