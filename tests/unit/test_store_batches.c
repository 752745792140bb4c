/* store over a fake backend: the storage thread's own logic, without SQLite.
 *
 * Group commit (jobs that wait during a commit share the next one), the
 * failure of a batch (every job of it fails, nothing of it is handed back,
 * the backend is told to roll back), the health flag (only a commit that
 * synced writes sets it; reads never change it; the store's own probe
 * brings it back), which batches ask for a durable commit, and purge slices
 * (each a transaction of its own, after the batch they came with). The fake
 * counts what it was asked and can hold a commit until the test lets it go;
 * it runs on the storage thread, the test on the loop thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "storage/store.h"

#define MAX_TXNS 64

typedef struct {
  storage_backend_t super;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  /* The script, set by the test. */
  bool hold_commits;  /* a commit waits until this is false again */
  int fail_txn;       /* the transaction (1-based) whose commit fails, 0: none */
  int probe_result;   /* what probe() returns */
  int64_t purgeable;  /* rows purge() may still delete */
  /* What happened, read by the test. */
  bool commit_waiting;
  int txns;
  int ops_in[MAX_TXNS]; /* operations run in each transaction */
  bool durable_in[MAX_TXNS];
  int rollbacks;
  int probes;
  int purges_finished;
  bool closed;
  /* The open transaction. */
  bool wrote;
  int64_t unfinished;
} fake_t;

static fake_t fake;

static void fake_lock(void) {
  pthread_mutex_lock(&fake.mu);
}

static void fake_unlock(void) {
  pthread_cond_broadcast(&fake.cond);
  pthread_mutex_unlock(&fake.mu);
}

/* Counts one operation of the open transaction. */
static void fake_op(bool writes) {
  fake_lock();
  fake.ops_in[fake.txns - 1]++;
  fake.wrote = fake.wrote || writes;
  fake_unlock();
}

static void fake_close(storage_backend_t *b) {
  (void)b;
  fake_lock();
  fake.closed = true;
  fake_unlock();
}

static int fake_begin(storage_backend_t *b, bool durable) {
  (void)b;
  fake_lock();
  assert_true(fake.txns < MAX_TXNS);
  fake.durable_in[fake.txns++] = durable;
  fake.wrote = false;
  fake_unlock();
  return 0;
}

static int fake_commit(storage_backend_t *b, bool *synced) {
  (void)b;
  fake_lock();
  fake.commit_waiting = true;
  pthread_cond_broadcast(&fake.cond);
  while (fake.hold_commits)
    pthread_cond_wait(&fake.cond, &fake.mu);
  fake.commit_waiting = false;
  int rc = fake.txns == fake.fail_txn ? -EIO : 0;
  *synced = rc == 0 && fake.durable_in[fake.txns - 1] && fake.wrote;
  fake_unlock();
  return rc;
}

static void fake_rollback(storage_backend_t *b) {
  (void)b;
  fake_lock();
  fake.rollbacks++;
  fake_unlock();
}

static int fake_probe(storage_backend_t *b) {
  (void)b;
  fake_lock();
  fake.probes++;
  int rc = fake.probe_result;
  fake_unlock();
  return rc;
}

static int fake_insert(storage_backend_t *b, const stored_request_t *r,
                       stored_request_t *existing) {
  (void)b, (void)r, (void)existing;
  fake_op(true);
  return 0;
}

static int fake_find(storage_backend_t *b, const char *key, const char *method,
                     const char *target, stored_request_t *out) {
  (void)b, (void)key, (void)method, (void)target, (void)out;
  fake_op(false);
  return -ENOENT;
}

static int fake_get(storage_backend_t *b, const char *id, bool with_payload,
                    stored_request_t *out) {
  (void)b, (void)id, (void)with_payload, (void)out;
  fake_op(false);
  return -ENOENT;
}

static int fake_change(storage_backend_t *b, const char *id, int64_t now, stored_request_t *out) {
  (void)b, (void)id, (void)now, (void)out;
  fake_op(true);
  return 0;
}

/* Claims limit rows with owned strings: a failed batch must free them
 * (ASan's leak check says when it does not). */
static int fake_claim(storage_backend_t *b, int64_t now, int64_t max_age_ms, size_t limit,
                      stored_request_t *out, int64_t *dead_out) {
  (void)b, (void)now, (void)max_age_ms;
  fake_op(true);
  for (size_t i = 0; i < limit; i++) {
    memset(&out[i], 0, sizeof(out[i]));
    snprintf(out[i].id, sizeof(out[i].id), "claimed-%zu", i);
    out[i].method = strdup("POST");
    out[i].target = strdup("/api/v1/bot/");
  }
  *dead_out = 0;
  return (int)limit;
}

static int fake_finish(storage_backend_t *b, const char *id, int64_t now,
                       const attempt_outcome_t *o) {
  (void)b, (void)id, (void)now, (void)o;
  fake_op(true);
  return 0;
}

static int64_t fake_purge(storage_backend_t *b, int64_t cutoff, int64_t limit) {
  (void)b, (void)cutoff;
  fake_lock();
  int64_t n = fake.purgeable < limit ? fake.purgeable : limit;
  fake.purgeable -= n;
  fake.wrote = fake.wrote || n > 0;
  fake_unlock();
  return n;
}

static int64_t fake_reclaim(storage_backend_t *b, int64_t limit) {
  (void)b, (void)limit;
  return 0;
}

static void fake_purge_finished(storage_backend_t *b) {
  (void)b;
  fake_lock();
  fake.purges_finished++;
  fake_unlock();
}

static int fake_counts(storage_backend_t *b, queue_counts_t *out) {
  (void)b;
  memset(out, 0, sizeof(*out));
  fake_op(false);
  return 0;
}

static int fake_list(storage_backend_t *b, int state, int64_t after_seq, size_t limit,
                     stored_request_t *out, int64_t *last_seq) {
  (void)b, (void)state, (void)after_seq, (void)limit, (void)out;
  *last_seq = 0;
  fake_op(false);
  return 0;
}

static int64_t fake_next_due(storage_backend_t *b) {
  (void)b;
  return 0;
}

static int64_t fake_unfinished(storage_backend_t *b) {
  (void)b;
  return 0;
}

static const storage_backend_ops_t fake_ops = {
    .name = "fake",
    .close = fake_close,
    .begin = fake_begin,
    .commit = fake_commit,
    .rollback = fake_rollback,
    .probe = fake_probe,
    .insert = fake_insert,
    .find_idempotent = fake_find,
    .get = fake_get,
    .cancel = fake_change,
    .retry_now = fake_change,
    .claim = fake_claim,
    .finish = fake_finish,
    .purge = fake_purge,
    .reclaim = fake_reclaim,
    .purge_finished = fake_purge_finished,
    .counts = fake_counts,
    .list = fake_list,
    .next_due = fake_next_due,
    .unfinished = fake_unfinished,
};

static int fake_open(storage_backend_t **out, const char *location,
                     const storage_params_t *params, char *err, size_t errlen) {
  (void)location, (void)params, (void)err, (void)errlen;
  fake.super.ops = &fake_ops;
  *out = &fake.super;
  return 0;
}

/* ---- fixture: a loop and a store over the fake --------------------------- */

typedef struct {
  uv_loop_t loop;
  store_t *store;
  int closed;
} fx_t;

static int fx_setup(void **state) {
  memset(&fake, 0, sizeof(fake));
  pthread_mutex_init(&fake.mu, NULL);
  pthread_cond_init(&fake.cond, NULL);
  fx_t *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  uv_loop_init(&fx->loop);
  *state = fx;
  return 0;
}

static void fx_open(fx_t *fx, int64_t probe_interval_ms) {
  store_options_t o = {.location = "fake",
                       .params.max_queue = 1000,
                       .probe_interval_ms = probe_interval_ms,
                       .slice_rows = 16,
                       .open_backend = fake_open};
  char err[256] = "";
  assert_int_equal(store_open(&fx->store, &fx->loop, &o, err, sizeof(err)), 0);
}

static void store_closed(void *arg) {
  ((fx_t *)arg)->closed = 1;
}

static int fx_teardown(void **state) {
  fx_t *fx = *state;
  fake_lock();
  fake.hold_commits = false;
  fake_unlock();
  if (fx->store != NULL) {
    store_close(fx->store, store_closed, fx);
    while (!fx->closed)
      uv_run(&fx->loop, UV_RUN_ONCE);
  }
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&fx->loop);
  bool closed = fake.closed;
  pthread_cond_destroy(&fake.cond);
  pthread_mutex_destroy(&fake.mu);
  free(fx);
  return rc == 0 && closed ? 0 : -1;
}

static void job_done(store_job_t *j) {
  (*(int *)j->ctx)++;
}

static void submit(fx_t *fx, store_job_t *j, store_op_t op, int *done) {
  memset(j, 0, sizeof(*j));
  j->op = op;
  j->cb = job_done;
  j->ctx = done;
  store_submit(fx->store, j);
}

static void submit_claim(fx_t *fx, store_job_t *j, stored_request_t *rows, size_t limit,
                         int *done) {
  memset(j, 0, sizeof(*j));
  j->op = STORE_CLAIM;
  j->limit = limit;
  j->rows = rows;
  j->cb = job_done;
  j->ctx = done;
  store_submit(fx->store, j);
}

static void run_until(fx_t *fx, const int *done, int want) {
  while (*done < want)
    uv_run(&fx->loop, UV_RUN_ONCE);
}

/* Blocks the test (not the loop's callbacks: none are due) until the
 * storage thread sits in a commit the fake holds. */
static void wait_for_held_commit(void) {
  fake_lock();
  while (!fake.commit_waiting)
    pthread_cond_wait(&fake.cond, &fake.mu);
  fake_unlock();
}

/* The storage thread keeps probing meanwhile: read under the lock. */
static int fake_probes(void) {
  fake_lock();
  int n = fake.probes;
  fake_unlock();
  return n;
}

static void release_commits(void) {
  fake_lock();
  fake.hold_commits = false;
  fake_unlock();
}

/* ---- tests --------------------------------------------------------------- */

static void jobs_that_wait_during_a_commit_share_the_next_one(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  fake.hold_commits = true;
  store_job_t first, later[5];
  int done = 0;
  submit(fx, &first, STORE_INSERT, &done);
  wait_for_held_commit();
  for (int i = 0; i < 5; i++)
    submit(fx, &later[i], STORE_INSERT, &done);
  release_commits();
  run_until(fx, &done, 6);
  assert_int_equal(fake.txns, 2);
  assert_int_equal(fake.ops_in[0], 1);
  assert_int_equal(fake.ops_in[1], 5);
  assert_int_equal(first.result, 0);
  for (int i = 0; i < 5; i++)
    assert_int_equal(later[i].result, 0);
  assert_int_equal(fake.rollbacks, 0);
  assert_true(store_writable(fx->store));
}

static void a_failed_commit_fails_every_job_of_its_batch(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  fake.hold_commits = true;
  fake.fail_txn = 2;
  store_job_t ok, insert, claim;
  stored_request_t rows[3];
  int done = 0;
  submit(fx, &ok, STORE_INSERT, &done);
  wait_for_held_commit();
  submit(fx, &insert, STORE_INSERT, &done);
  submit_claim(fx, &claim, rows, 3, &done);
  release_commits();
  run_until(fx, &done, 3);
  assert_int_equal(ok.result, 0);
  assert_int_equal(insert.result, -EIO);
  /* The claim ran in the failed transaction: its rows are not handed back
   * (they were freed: ASan's leak check would say otherwise). */
  assert_int_equal(claim.result, -EIO);
  assert_int_equal(claim.nrows, 0);
  assert_int_equal(fake.ops_in[1], 2);
  assert_int_equal(fake.rollbacks, 1);
  assert_false(store_writable(fx->store));
}

static void only_a_batch_that_changes_something_asks_for_a_durable_commit(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  store_job_t get, claim, counts, finish;
  stored_request_t rows[1];
  int done = 0;
  submit(fx, &get, STORE_GET, &done);
  run_until(fx, &done, 1);
  submit_claim(fx, &claim, rows, 1, &done);
  run_until(fx, &done, 2);
  stored_request_free(&rows[0]);
  submit(fx, &counts, STORE_COUNTS, &done);
  run_until(fx, &done, 3);
  submit(fx, &finish, STORE_FINISH, &done);
  run_until(fx, &done, 4);
  assert_int_equal(fake.txns, 4);
  assert_false(fake.durable_in[0]); /* a read */
  assert_false(fake.durable_in[1]); /* a claim: lost, it is queued again */
  assert_false(fake.durable_in[2]);
  assert_true(fake.durable_in[3]); /* an answer recorded */
}

static void writable_comes_back_only_with_a_synced_write(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000); /* no probe during this test */
  fake.fail_txn = 1;
  store_job_t j;
  int done = 0;
  submit(fx, &j, STORE_INSERT, &done);
  run_until(fx, &done, 1);
  assert_false(store_writable(fx->store));
  /* Reads commit without a sync: they say nothing about the disk. */
  submit(fx, &j, STORE_GET, &done);
  run_until(fx, &done, 2);
  assert_int_equal(j.result, -ENOENT);
  assert_false(store_writable(fx->store));
  /* A client's write that synced does. */
  submit(fx, &j, STORE_INSERT, &done);
  run_until(fx, &done, 3);
  assert_int_equal(j.result, 0);
  assert_true(store_writable(fx->store));
  assert_int_equal(fake.probes, 0);
}

static void the_stores_probe_brings_writable_back_without_clients(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 20);
  fake.fail_txn = 1;
  fake.probe_result = -EIO;
  store_job_t j;
  int done = 0;
  submit(fx, &j, STORE_INSERT, &done);
  run_until(fx, &done, 1);
  assert_false(store_writable(fx->store));
  /* Failing probes keep it false... */
  for (int i = 0; i < 400 && fake_probes() < 2; i++)
    nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
  assert_true(fake_probes() >= 2);
  assert_false(store_writable(fx->store));
  /* ...and the first that succeeds makes it true. */
  fake_lock();
  fake.probe_result = 0;
  fake_unlock();
  for (int i = 0; i < 400 && !store_writable(fx->store); i++)
    nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
  assert_true(store_writable(fx->store));
}

static void a_purge_goes_in_slices_of_their_own_after_the_batch(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  fake.purgeable = 40; /* three slices of at most 16 rows */
  fake.hold_commits = true;
  store_job_t first, insert, purge;
  int done = 0;
  submit(fx, &first, STORE_INSERT, &done);
  wait_for_held_commit();
  submit(fx, &purge, STORE_PURGE, &done);
  submit(fx, &insert, STORE_INSERT, &done);
  release_commits();
  int slices = 0;
  for (;;) {
    run_until(fx, &done, 3 + slices);
    slices++;
    if (!purge.more)
      break;
    store_submit(fx->store, &purge);
  }
  assert_int_equal(purge.result, 0);
  assert_int_equal(purge.purged, 40);
  assert_int_equal(slices, 3);
  /* The insert that came with the purge had a transaction of its own, and
   * the purge's slices one each after it. */
  assert_int_equal(fake.txns, 2 + slices);
  assert_int_equal(fake.ops_in[1], 1);
  assert_true(fake.durable_in[1]);
  for (int i = 2; i < fake.txns; i++)
    assert_false(fake.durable_in[i]);
  assert_int_equal(fake.purges_finished, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(jobs_that_wait_during_a_commit_share_the_next_one),
      T(a_failed_commit_fails_every_job_of_its_batch),
      T(only_a_batch_that_changes_something_asks_for_a_durable_commit),
      T(writable_comes_back_only_with_a_synced_write),
      T(the_stores_probe_brings_writable_back_without_clients),
      T(a_purge_goes_in_slices_of_their_own_after_the_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
