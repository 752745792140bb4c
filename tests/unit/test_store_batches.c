/* store over a fake backend: the storage thread's own logic, without SQLite.
 *
 * Group commit (jobs that wait during a commit share the next one), the
 * failure of a batch (every job of it fails, nothing of it is handed back,
 * the backend is told to roll back), the health flag (only a commit that
 * synced writes sets it; reads never change it; the store's own probe
 * brings it back), which batches ask for a durable commit, purge slices
 * (each a transaction of its own, after the batch they came with), and
 * inserts handed over in runs (a batch's consecutive inserts in one
 * insert_many() call, each job getting its own row's outcome back). The
 * fake counts what it was asked and can hold a commit until the test lets
 * it go; it runs on the storage thread, the test on the loop thread. Its
 * inserts keep keys and --max-queue as a backend does, one row after the
 * other (the backends' own batched inserts are the conformance suite's:
 * test_storage_backend.c). */
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
#define MAX_RUNS 64
#define MAX_KEYS 64

typedef struct {
  storage_backend_t super;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  /* The script, set by the test. */
  bool hold_commits; /* a commit waits until this is false again */
  int fail_txn;      /* the transaction (1-based) whose commit fails, 0: none */
  int probe_result;  /* what probe() returns */
  int64_t purgeable; /* rows purge() may still delete */
  /* What happened, read by the test. */
  bool commit_waiting;
  int txns;
  int ops_in[MAX_TXNS]; /* operations run in each transaction */
  bool durable_in[MAX_TXNS];
  int rollbacks;
  int probes;
  int purges_finished;
  bool closed;
  int runs;                 /* insert_many() calls */
  size_t run_len[MAX_RUNS]; /* rows in each */
  /* The stored rows' keys (the fake keeps nothing else), and --max-queue. */
  char key[MAX_KEYS][32];
  char key_id[MAX_KEYS][40];
  int keys;
  int64_t max_queue;
  /* The open transaction. */
  bool wrote;
  int64_t unfinished;
} fake_t;

static fake_t fake;

static void fake_lock(void) { pthread_mutex_lock(&fake.mu); }

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

/* The stored row that holds key, or -1. */
static int fake_key_holder(const char *key) {
  for (int i = 0; key != NULL && i < fake.keys; i++)
    if (strcmp(fake.key[i], key) == 0)
      return i;
  return -1;
}

/* As a backend: a held key is -EEXIST with its holder, even when the queue
 * is full (a repeat takes no room); otherwise a row past --max-queue is
 * -EDQUOT. */
static int fake_insert(storage_backend_t *b, const stored_request_t *r,
                       stored_request_t *existing) {
  (void)b;
  fake_op(true);
  int holder = fake_key_holder(r->idempotency_key);
  if (holder >= 0) {
    memset(existing, 0, sizeof(*existing));
    snprintf(existing->id, sizeof(existing->id), "%s", fake.key_id[holder]);
    existing->method = strdup("POST");
    existing->idempotency_key = strdup(fake.key[holder]);
    return -EEXIST;
  }
  if (fake.unfinished >= fake.max_queue)
    return -EDQUOT;
  if (r->idempotency_key != NULL) {
    assert_true(fake.keys < MAX_KEYS);
    snprintf(fake.key[fake.keys], sizeof(fake.key[0]), "%s", r->idempotency_key);
    snprintf(fake.key_id[fake.keys], sizeof(fake.key_id[0]), "%s", r->id);
    fake.keys++;
  }
  fake.unfinished++;
  return 0;
}

static void fake_insert_many(storage_backend_t *b, const stored_request_t *const *rows, size_t n,
                             int *results, stored_request_t *existing) {
  fake_lock();
  assert_true(fake.runs < MAX_RUNS);
  fake.run_len[fake.runs++] = n;
  fake_unlock();
  storage_backend_insert_each(b, rows, n, results, existing);
}

static int fake_find(storage_backend_t *b, const char *key, const char *method, const char *target,
                     stored_request_t *out) {
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
static int fake_claim(storage_backend_t *b, int64_t now, const char *flow, int64_t max_age_ms,
                      size_t limit, stored_request_t *out, int64_t *dead_out) {
  (void)b, (void)now, (void)flow, (void)max_age_ms;
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

static int fake_flows(storage_backend_t *b, storage_flow_t *out, size_t cap) {
  (void)b, (void)out, (void)cap;
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
    .insert_many = fake_insert_many,
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
    .flows = fake_flows,
    .next_due = fake_next_due,
    .unfinished = fake_unfinished,
};

static int fake_open(storage_backend_t **out, const char *location, const storage_params_t *params,
                     char *err, size_t errlen) {
  (void)location, (void)err, (void)errlen;
  fake.super.ops = &fake_ops;
  fake.max_queue = params->max_queue;
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

static void fx_open_max(fx_t *fx, int64_t probe_interval_ms, int64_t max_queue) {
  store_options_t o = {.location = "fake",
                       .params.max_queue = max_queue,
                       .probe_interval_ms = probe_interval_ms,
                       .slice_rows = 16,
                       .open_backend = fake_open};
  char err[256] = "";
  assert_int_equal(store_open(&fx->store, &fx->loop, &o, err, sizeof(err)), 0);
}

static void fx_open(fx_t *fx, int64_t probe_interval_ms) {
  fx_open_max(fx, probe_interval_ms, 1000);
}

static void store_closed(void *arg) { ((fx_t *)arg)->closed = 1; }

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

static void job_done(store_job_t *j) { (*(int *)j->ctx)++; }

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

/* An insert of the row id, with key (NULL: none); the job owns its copy,
 * as the proxy's do. */
static void submit_insert(fx_t *fx, store_job_t *j, const char *id, const char *key, int *done) {
  memset(j, 0, sizeof(*j));
  j->op = STORE_INSERT;
  snprintf(j->rq.id, sizeof(j->rq.id), "%s", id);
  j->rq.method = strdup("POST");
  j->rq.idempotency_key = key != NULL ? strdup(key) : NULL;
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

/* Inserts waiting together reach the backend in one call; a job of
 * another kind between them ends a run, and keeps its place. */
static void a_batchs_consecutive_inserts_reach_the_backend_in_one_call(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  fake.hold_commits = true;
  store_job_t first, before[5], get, after[3];
  int done = 0;
  submit_insert(fx, &first, "r0", NULL, &done);
  wait_for_held_commit();
  for (int i = 0; i < 5; i++)
    submit_insert(fx, &before[i], "b", NULL, &done);
  submit(fx, &get, STORE_GET, &done);
  for (int i = 0; i < 3; i++)
    submit_insert(fx, &after[i], "a", NULL, &done);
  release_commits();
  run_until(fx, &done, 10);
  assert_int_equal(fake.txns, 2);
  assert_int_equal(fake.runs, 3);
  assert_int_equal(fake.run_len[0], 1);
  assert_int_equal(fake.run_len[1], 5);
  assert_int_equal(fake.run_len[2], 3);
  assert_int_equal(fake.ops_in[1], 5 + 1 + 3);
  assert_int_equal(get.result, -ENOENT);
  stored_request_free(&first.rq);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(before[i].result, 0);
    stored_request_free(&before[i].rq);
  }
  for (int i = 0; i < 3; i++) {
    assert_int_equal(after[i].result, 0);
    stored_request_free(&after[i].rq);
  }
}

/* The store's arrays for a run are bounded: a longer run of inserts goes
 * in several calls, every job still answered. */
static void a_run_longer_than_the_cap_takes_several_calls(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  enum { N = 300 };
  store_job_t *jobs = calloc(N + 1, sizeof(*jobs));
  assert_non_null(jobs);
  fake.hold_commits = true;
  int done = 0;
  submit_insert(fx, &jobs[N], "first", NULL, &done);
  wait_for_held_commit();
  for (int i = 0; i < N; i++)
    submit_insert(fx, &jobs[i], "row", NULL, &done);
  release_commits();
  run_until(fx, &done, N + 1);
  assert_int_equal(fake.txns, 2);
  assert_int_equal(fake.runs, 3);
  assert_int_equal(fake.run_len[1], 256);
  assert_int_equal(fake.run_len[2], N - 256);
  for (int i = 0; i <= N; i++) {
    assert_int_equal(jobs[i].result, 0);
    stored_request_free(&jobs[i].rq);
  }
  free(jobs);
}

/* A key repeated within one run: the first of the two is stored, the
 * second answered with the first's row, as if they had come one after
 * the other. */
static void a_repeated_key_in_one_batch_answers_the_repeat_with_the_first(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  fake.hold_commits = true;
  store_job_t first, a, repeat, other;
  int done = 0;
  submit_insert(fx, &first, "r0", NULL, &done);
  wait_for_held_commit();
  submit_insert(fx, &a, "row-a", "key-1", &done);
  submit_insert(fx, &repeat, "row-b", "key-1", &done);
  submit_insert(fx, &other, "row-c", "key-2", &done);
  release_commits();
  run_until(fx, &done, 4);
  assert_int_equal(fake.runs, 2);
  assert_int_equal(fake.run_len[1], 3);
  assert_int_equal(a.result, 0);
  assert_string_equal(a.rq.id, "row-a");
  assert_int_equal(repeat.result, -EEXIST);
  assert_string_equal(repeat.rq.id, "row-a"); /* the holder, in place of the repeat */
  assert_string_equal(repeat.rq.idempotency_key, "key-1");
  assert_int_equal(other.result, 0);
  assert_string_equal(other.rq.id, "row-c");
  assert_int_equal(fake.rollbacks, 0);
  stored_request_t *rqs[] = {&first.rq, &a.rq, &repeat.rq, &other.rq};
  for (size_t i = 0; i < sizeof(rqs) / sizeof(rqs[0]); i++)
    stored_request_free(rqs[i]);
}

/* --max-queue reached in the middle of a run: the rows before it are
 * stored, the rows after it refused, and a repeat still answered from its
 * twin (it takes no room). The batch commits. */
static void max_queue_reached_mid_batch_refuses_only_the_rows_beyond_it(void **state) {
  fx_t *fx = *state;
  fx_open_max(fx, 60000, 3);
  fake.hold_commits = true;
  store_job_t first, j[4];
  int done = 0;
  submit_insert(fx, &first, "r0", "key-0", &done);
  wait_for_held_commit();
  submit_insert(fx, &j[0], "r1", NULL, &done);
  submit_insert(fx, &j[1], "r2", NULL, &done);
  submit_insert(fx, &j[2], "r3", NULL, &done);
  submit_insert(fx, &j[3], "r4", "key-0", &done);
  release_commits();
  run_until(fx, &done, 5);
  assert_int_equal(fake.runs, 2);
  assert_int_equal(fake.run_len[1], 4);
  assert_int_equal(j[0].result, 0);
  assert_int_equal(j[1].result, 0);
  assert_int_equal(j[2].result, -EDQUOT);
  assert_string_equal(j[2].rq.id, "r3"); /* a refused job keeps its own row */
  assert_int_equal(j[3].result, -EEXIST);
  assert_string_equal(j[3].rq.id, "r0");
  assert_int_equal(fake.rollbacks, 0);
  assert_true(store_writable(fx->store));
  stored_request_free(&first.rq);
  for (int i = 0; i < 4; i++)
    stored_request_free(&j[i].rq);
}

/* A commit that fails fails every insert of the run, also those the
 * backend had answered with a repeat's twin. */
static void a_failed_commit_fails_every_insert_of_its_run(void **state) {
  fx_t *fx = *state;
  fx_open(fx, 60000);
  fake.hold_commits = true;
  fake.fail_txn = 2;
  store_job_t first, j[3];
  int done = 0;
  submit_insert(fx, &first, "r0", "key-0", &done);
  wait_for_held_commit();
  submit_insert(fx, &j[0], "r1", NULL, &done);
  submit_insert(fx, &j[1], "r2", "key-0", &done);
  submit_insert(fx, &j[2], "r3", "key-3", &done);
  release_commits();
  run_until(fx, &done, 4);
  assert_int_equal(first.result, 0);
  assert_int_equal(fake.runs, 2);
  assert_int_equal(fake.run_len[1], 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(j[i].result, -EIO);
  assert_int_equal(fake.rollbacks, 1);
  assert_false(store_writable(fx->store));
  stored_request_free(&first.rq);
  for (int i = 0; i < 3; i++)
    stored_request_free(&j[i].rq);
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
      T(a_batchs_consecutive_inserts_reach_the_backend_in_one_call),
      T(a_run_longer_than_the_cap_takes_several_calls),
      T(a_repeated_key_in_one_batch_answers_the_repeat_with_the_first),
      T(max_queue_reached_mid_batch_refuses_only_the_rows_beyond_it),
      T(a_failed_commit_fails_every_insert_of_its_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
