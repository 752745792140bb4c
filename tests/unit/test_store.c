/* store: the storage thread seen from the loop, with a real libuv loop and
 * a real file, and an SQLite VFS of the test's own in front of the file
 * system that makes every sync fail on demand (as a failing disk does).
 *
 * Proves: the health flag is read by the loop while the storage thread
 * writes it without a data race (run under ThreadSanitizer to see it; the
 * test exercises exactly that); reads never make an unwritable store
 * writable, and the store's own probe does once syncs work again; a row
 * whose commit failed never comes back after a crash; purges run in slices
 * that let other jobs through and leave no free pages behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "storage/sqlite/sqlite_queue.h"
#include "storage/store.h"
#include "test_support.h"

#define BIG_QUEUE 1000000

/* ---- a VFS whose syncs fail on demand ---------------------------------- */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs faulty_vfs;
static atomic_int fail_syncs;    /* nonzero: every xSync fails */
static atomic_int syncs_failed;  /* how many did */

typedef struct {
  sqlite3_file base;
  sqlite3_file *real; /* right after this struct, in the same allocation */
} faulty_file_t;

static sqlite3_file *real_of(sqlite3_file *f) {
  return ((faulty_file_t *)f)->real;
}

static int ff_close(sqlite3_file *f) {
  return real_of(f)->pMethods->xClose(real_of(f));
}
static int ff_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
  return real_of(f)->pMethods->xRead(real_of(f), p, n, off);
}
static int ff_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
  return real_of(f)->pMethods->xWrite(real_of(f), p, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size) {
  return real_of(f)->pMethods->xTruncate(real_of(f), size);
}
static int ff_sync(sqlite3_file *f, int flags) {
  if (atomic_load(&fail_syncs)) {
    /* Like an injected EIO: the data was written, never made durable. */
    atomic_fetch_add(&syncs_failed, 1);
    return SQLITE_IOERR_FSYNC;
  }
  return real_of(f)->pMethods->xSync(real_of(f), flags);
}
static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size) {
  return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
static int ff_lock(sqlite3_file *f, int lock) {
  return real_of(f)->pMethods->xLock(real_of(f), lock);
}
static int ff_unlock(sqlite3_file *f, int lock) {
  return real_of(f)->pMethods->xUnlock(real_of(f), lock);
}
static int ff_check_reserved(sqlite3_file *f, int *out) {
  return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
static int ff_file_control(sqlite3_file *f, int op, void *arg) {
  return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
static int ff_sector_size(sqlite3_file *f) {
  return real_of(f)->pMethods->xSectorSize(real_of(f));
}
static int ff_device_characteristics(sqlite3_file *f) {
  return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
static int ff_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
  return real_of(f)->pMethods->xShmMap(real_of(f), pg, sz, extend, pp);
}
static int ff_shm_lock(sqlite3_file *f, int off, int n, int flags) {
  return real_of(f)->pMethods->xShmLock(real_of(f), off, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f) {
  real_of(f)->pMethods->xShmBarrier(real_of(f));
}
static int ff_shm_unmap(sqlite3_file *f, int del) {
  return real_of(f)->pMethods->xShmUnmap(real_of(f), del);
}
static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
  return real_of(f)->pMethods->xFetch(real_of(f), off, n, pp);
}
static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
  return real_of(f)->pMethods->xUnfetch(real_of(f), off, p);
}

static const sqlite3_io_methods faulty_io = {
    3,           ff_close,        ff_read,       ff_write,          ff_truncate,
    ff_sync,     ff_file_size,    ff_lock,       ff_unlock,         ff_check_reserved,
    ff_file_control, ff_sector_size, ff_device_characteristics, ff_shm_map, ff_shm_lock,
    ff_shm_barrier, ff_shm_unmap, ff_fetch,      ff_unfetch,
};

static int faulty_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                       int *out_flags) {
  (void)vfs;
  faulty_file_t *ff = (faulty_file_t *)f;
  ff->real = (sqlite3_file *)(ff + 1);
  int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
  f->pMethods = ff->real->pMethods != NULL ? &faulty_io : NULL;
  return rc;
}

static void faulty_vfs_install(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  faulty_vfs = *real_vfs;
  faulty_vfs.zName = "retryd-test-faulty";
  faulty_vfs.szOsFile = (int)sizeof(faulty_file_t) + real_vfs->szOsFile;
  faulty_vfs.xOpen = faulty_open;
  faulty_vfs.pNext = NULL;
  sqlite3_vfs_register(&faulty_vfs, 1); /* the default: queue_db opens with it */
}

/* ---- fixture ----------------------------------------------------------- */

typedef struct {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  store_t *store;
  int closed;
} fx_t;

static int fx_setup(void **state) {
  fx_t *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  if (test_dir_make(fx->dir, sizeof(fx->dir), "store") != 0) {
    free(fx);
    return -1;
  }
  snprintf(fx->path, sizeof(fx->path), "%s/queue.db", fx->dir);
  uv_loop_init(&fx->loop);
  atomic_store(&fail_syncs, 0);
  atomic_store(&syncs_failed, 0);
  *state = fx;
  return 0;
}

static void store_closed(void *arg) {
  ((fx_t *)arg)->closed = 1;
}

static void fx_close_store(fx_t *fx) {
  if (fx->store == NULL)
    return;
  atomic_store(&fail_syncs, 0);
  store_close(fx->store, store_closed, fx);
  while (!fx->closed)
    uv_run(&fx->loop, UV_RUN_ONCE);
  fx->store = NULL;
}

static int fx_teardown(void **state) {
  fx_t *fx = *state;
  fx_close_store(fx);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  int loop_rc = uv_loop_close(&fx->loop);
  test_dir_remove(fx->dir);
  free(fx);
  /* Every test ends with a loop that closes clean: no handle left behind. */
  return loop_rc == 0 ? 0 : -1;
}

static void fx_open(fx_t *fx, const store_options_t *extra) {
  store_options_t o = {.location = fx->path, .params.max_queue = BIG_QUEUE};
  if (extra != NULL) {
    o = *extra;
    o.location = fx->path;
    if (o.params.max_queue == 0)
      o.params.max_queue = BIG_QUEUE;
  }
  char err[512] = "";
  int rc = store_open(&fx->store, &fx->loop, &o, err, sizeof(err));
  if (rc != 0)
    fail_msg("store_open: %d %s", rc, err);
  fx->closed = 0;
}

/* ---- jobs, run from the loop ------------------------------------------- */

static void job_done(store_job_t *j) {
  (*(int *)j->ctx)++;
}

/* Submits job and runs the loop until its callback ran; returns its result. */
static int run_job(fx_t *fx, store_job_t *j) {
  int done = 0;
  j->cb = job_done;
  j->ctx = &done;
  store_submit(fx->store, j);
  while (!done)
    uv_run(&fx->loop, UV_RUN_ONCE);
  return j->result;
}

static int insert(fx_t *fx, const char *id, const char *body) {
  store_job_t j;
  memset(&j, 0, sizeof(j));
  j.op = STORE_INSERT;
  snprintf(j.rq.id, sizeof(j.rq.id), "%s", id);
  j.rq.state = RQ_QUEUED;
  j.rq.method = strdup("POST");
  j.rq.target = strdup("/api/v1/bot");
  j.rq.headers = strdup("Content-Type: application/json\r\n");
  j.rq.headers_len = strlen(j.rq.headers);
  j.rq.body = strdup(body);
  j.rq.body_len = strlen(body);
  j.rq.attempts = 1;
  j.rq.created_at = store_now_ms();
  j.rq.next_attempt_at = j.rq.created_at + 3600 * 1000;
  int rc = run_job(fx, &j);
  stored_request_free(&j.rq);
  return rc;
}

/* ---- the health flag across threads ------------------------------------ */

typedef struct {
  int done;
  int64_t reads;
} reader_t;

static void read_flag_cb(store_job_t *j) {
  reader_t *r = j->ctx;
  r->done++;
}

static void writable_is_read_by_the_loop_while_the_storage_thread_writes_it(void **state) {
  fx_t *fx = *state;
  fx_open(fx, NULL);
  /* Every durable commit writes the flag on the storage thread; the loop
   * reads it meanwhile, as health does. Under -fsanitize=thread a plain or
   * volatile flag is reported here as a data race. */
  enum { N = 50 };
  store_job_t jobs[N];
  reader_t r = {0, 0};
  memset(jobs, 0, sizeof(jobs));
  for (int i = 0; i < N; i++) {
    store_job_t *j = &jobs[i];
    j->op = STORE_INSERT;
    snprintf(j->rq.id, sizeof(j->rq.id), "race-%d", i);
    j->rq.method = strdup("POST");
    j->rq.target = strdup("/t");
    j->rq.headers = strdup("");
    j->rq.created_at = store_now_ms();
    j->rq.next_attempt_at = j->rq.created_at + 3600 * 1000;
    j->cb = read_flag_cb;
    j->ctx = &r;
    store_submit(fx->store, j);
    r.reads += store_writable(fx->store);
  }
  while (r.done < N) {
    r.reads += store_writable(fx->store);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(jobs[i].result, 0);
    stored_request_free(&jobs[i].rq);
  }
  assert_true(store_writable(fx->store));
  assert_true(r.reads > 0);
  store_job_t c;
  memset(&c, 0, sizeof(c));
  c.op = STORE_COUNTS;
  assert_int_equal(run_job(fx, &c), 0);
  assert_int_equal(c.counts.count[RQ_QUEUED], N);
}

/* ---- health: only durable writes say whether the store can write ------- */

static int simple_job(fx_t *fx, store_op_t op, const char *id) {
  store_job_t j;
  memset(&j, 0, sizeof(j));
  j.op = op;
  snprintf(j.id, sizeof(j.id), "%s", id ? id : "");
  stored_request_t rows[4];
  j.rows = rows;
  j.limit = 4;
  j.max_age_ms = 86400000;
  j.state = -1;
  int rc = run_job(fx, &j);
  for (int i = 0; i < j.nrows; i++)
    stored_request_free(&rows[i]);
  stored_request_free(&j.rq);
  return rc;
}

static void reads_claims_and_an_empty_purge_leave_a_failed_store_unwritable(void **state) {
  fx_t *fx = *state;
  fx_open(fx, NULL);
  assert_int_equal(insert(fx, "ok-1", "{}"), 0);
  assert_true(store_writable(fx->store));

  atomic_store(&fail_syncs, 1);
  assert_int_equal(insert(fx, "bad-1", "{}"), -EIO);
  assert_false(store_writable(fx->store));
  /* Each of these commits a batch of its own, none of which syncs. */
  assert_int_equal(simple_job(fx, STORE_COUNTS, NULL), 0);
  assert_false(store_writable(fx->store));
  assert_true(simple_job(fx, STORE_LIST, NULL) >= 0);
  assert_false(store_writable(fx->store));
  assert_true(simple_job(fx, STORE_CLAIM, NULL) >= 0);
  assert_false(store_writable(fx->store));
  assert_int_equal(simple_job(fx, STORE_GET, "ok-1"), 0);
  assert_false(store_writable(fx->store));
  /* A purge slice commits without a sync; a durable job that changes
   * nothing writes nothing, so syncs nothing. */
  assert_int_equal(simple_job(fx, STORE_PURGE, NULL), 0);
  assert_false(store_writable(fx->store));
  assert_int_equal(simple_job(fx, STORE_CANCEL, "no-such-id"), -ENOENT);
  assert_false(store_writable(fx->store));
  assert_int_equal(simple_job(fx, STORE_GET, "bad-1"), -ENOENT);

  atomic_store(&fail_syncs, 0);
  assert_int_equal(insert(fx, "ok-2", "{}"), 0);
  assert_true(store_writable(fx->store));
}

static void the_stores_own_probe_makes_it_writable_again_without_a_client_write(void **state) {
  fx_t *fx = *state;
  fx_open(fx, NULL);
  atomic_store(&fail_syncs, 1);
  assert_int_equal(insert(fx, "bad-1", "{}"), -EIO);
  assert_false(store_writable(fx->store));
  int failed = atomic_load(&syncs_failed);
  uv_sleep(2500); /* the default probe interval is 1 s: two probes, both failing */
  assert_false(store_writable(fx->store));
  assert_true(atomic_load(&syncs_failed) >= failed + 2);

  atomic_store(&fail_syncs, 0);
  for (int i = 0; i < 300 && !store_writable(fx->store); i++)
    uv_sleep(10);
  assert_true(store_writable(fx->store));
  assert_int_equal(insert(fx, "ok-1", "{}"), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

/* ---- a failed commit leaves nothing behind ------------------------------ */

static void child_insert_fails_then_dies(const char *path, const char *id, size_t body_len) {
  fx_t child;
  memset(&child, 0, sizeof(child));
  snprintf(child.path, sizeof(child.path), "%s", path);
  uv_loop_init(&child.loop); /* the parent's loop is not the child's to use */
  store_options_t o = {.location = child.path, .params.max_queue = BIG_QUEUE};
  char err[256];
  if (store_open(&child.store, &child.loop, &o, err, sizeof(err)) != 0)
    _exit(10);
  if (insert(&child, "kept-1", "{}") != 0)
    _exit(11);
  char *body = malloc(body_len + 1);
  if (body == NULL)
    _exit(12);
  memset(body, 'b', body_len);
  body[body_len] = '\0';
  atomic_store(&fail_syncs, 1);
  if (insert(&child, id, body) != -EIO)
    _exit(13);
  /* A read-only batch commits in between: it writes no page. */
  store_job_t c;
  memset(&c, 0, sizeof(c));
  c.op = STORE_COUNTS;
  if (run_job(&child, &c) != 0)
    _exit(14);
  _exit(0); /* a crash: no close, no checkpoint; the WAL stays as it is */
}

static void a_row_whose_commit_failed_never_comes_back_after_a_crash(void **state) {
  fx_t *fx = *state;
  /* One page and many: whatever the failed commit wrote must be gone. */
  static const size_t sizes[] = {16, 200 * 1024};
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    char id[32];
    snprintf(id, sizeof(id), "lost-%zu", sizes[k]);
    unlink(fx->path);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", fx->path);
    unlink(wal);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
      child_insert_fails_then_dies(fx->path, id, sizes[k]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    sqlite_queue_t *q = NULL;
    char err[256];
    assert_int_equal(sqlite_queue_open(&q, fx->path, BIG_QUEUE, err, sizeof(err)), 0);
    stored_request_t r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(sqlite_queue_get(q, "kept-1", false, &r), 0);
    stored_request_free(&r);
    if (sqlite_queue_get(q, id, false, &r) != -ENOENT)
      fail_msg("%s, whose commit failed, came back after the crash", id);
    assert_int_equal(sqlite_queue_unfinished(q), 1);
    sqlite_queue_close(q);
  }
}

/* ---- purge in slices --------------------------------------------------- */

/* Fills the file (before the store opens it) with n completed rows, each
 * with an answer of answer_len bytes, finished at done_at. */
static void fill_completed(const char *path, int n, size_t answer_len, int64_t done_at) {
  sqlite_queue_t *q = NULL;
  char err[256];
  assert_int_equal(sqlite_queue_open(&q, path, BIG_QUEUE, err, sizeof(err)), 0);
  char *answer = malloc(answer_len);
  assert_non_null(answer);
  for (size_t i = 0; i < answer_len; i++)
    answer[i] = (char)(i * 31 + 7);
  assert_int_equal(sqlite_queue_begin(q), 0);
  for (int i = 0; i < n; i++) {
    stored_request_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "done-%d", i);
    r.method = "POST";
    r.target = "/t";
    r.headers = "Authorization: Token x\r\n";
    r.headers_len = strlen(r.headers);
    r.created_at = done_at - 1000;
    r.next_attempt_at = done_at - 1000;
    assert_int_equal(sqlite_queue_insert(q, &r, NULL), 0);
    stored_request_t rows[1];
    int64_t dead = 0;
    assert_int_equal(sqlite_queue_claim(q, done_at - 1000, NULL, 86400000, 1, rows, &dead), 1);
    stored_request_free(&rows[0]);
    attempt_outcome_t o;
    memset(&o, 0, sizeof(o));
    o.kind = OUTCOME_COMPLETED;
    o.response_status = 200;
    o.response_body = answer;
    o.response_body_len = answer_len;
    assert_int_equal(sqlite_queue_finish(q, r.id, done_at + i, &o), 0);
  }
  assert_int_equal(sqlite_queue_commit(q), 0);
  free(answer);
  sqlite_queue_close(q);
}

static int64_t file_pragma(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void a_purge_goes_in_slices_with_commits_between_and_gives_free_pages_back(
    void **state) {
  fx_t *fx = *state;
  int64_t now = store_now_ms();
  fill_completed(fx->path, 50, 64 * 1024, now - 60000); /* 50 x 64 KiB, expired */
  struct stat st;
  assert_int_equal(stat(fx->path, &st), 0);
  assert_true(st.st_size > 50 * 64 * 1024);

  store_options_t o = {.slice_rows = 10, .slice_reclaim = 64, .slice_ms = 60000};
  fx_open(fx, &o);
  store_job_t purge;
  memset(&purge, 0, sizeof(purge));
  purge.op = STORE_PURGE;
  purge.cutoff = now - 1000;
  int slices = 0, row_slices = 0, client_commits = 0;
  int64_t last_purged = 0, last_reclaimed = 0;
  do {
    assert_int_equal(run_job(fx, &purge), 0);
    slices++;
    int64_t rows = purge.purged - last_purged;
    int64_t pages = purge.reclaimed - last_reclaimed;
    assert_true(rows <= 10);    /* a slice deletes no more than its cap */
    assert_true(pages <= 64);   /* nor gives back more pages */
    row_slices += rows > 0;
    last_purged = purge.purged;
    last_reclaimed = purge.reclaimed;
    /* Between two slices, a client's commit goes through. */
    char id[32];
    snprintf(id, sizeof(id), "between-%d", slices);
    assert_int_equal(insert(fx, id, "{}"), 0);
    client_commits++;
    assert_true(slices < 10000);
  } while (purge.more);
  assert_int_equal(purge.purged, 50);
  assert_int_equal(row_slices, 5);
  assert_true(purge.reclaimed >= 50 * 16); /* 64 KiB answers, 4 KiB pages */
  assert_true(slices >= 5 + purge.reclaimed / 64);

  store_job_t c;
  memset(&c, 0, sizeof(c));
  c.op = STORE_COUNTS;
  assert_int_equal(run_job(fx, &c), 0);
  assert_int_equal(c.counts.count[RQ_COMPLETED], 0);
  assert_int_equal(c.counts.count[RQ_QUEUED], client_commits);
  fx_close_store(fx);

  /* At most a quarter of the file is left free, and it holds little more
   * than its rows. */
  assert_true(file_pragma(fx->path, "PRAGMA freelist_count") * 4 <=
              file_pragma(fx->path, "PRAGMA page_count"));
  assert_int_equal(stat(fx->path, &st), 0);
  assert_true(st.st_size < 256 * 1024);
}

/* ---- flows ----------------------------------------------------------------- */

static int insert_in_flow(fx_t *fx, const char *id, int64_t due, const char *flow) {
  store_job_t j;
  memset(&j, 0, sizeof(j));
  j.op = STORE_INSERT;
  snprintf(j.rq.id, sizeof(j.rq.id), "%s", id);
  j.rq.state = RQ_QUEUED;
  j.rq.method = strdup("POST");
  j.rq.target = strdup("/api/v1/bot");
  j.rq.headers = strdup("");
  j.rq.flow = strdup(flow);
  j.rq.created_at = store_now_ms();
  j.rq.next_attempt_at = due;
  int rc = run_job(fx, &j);
  stored_request_free(&j.rq);
  return rc;
}

static void store_flows_lists_the_flows_and_store_claim_takes_one_flows_rows(void **state) {
  fx_t *fx = *state;
  fx_open(fx, NULL);
  int64_t now = store_now_ms();
  assert_int_equal(insert_in_flow(fx, "a-1", now - 30, "a"), 0);
  assert_int_equal(insert_in_flow(fx, "b-1", now - 50, "b"), 0);
  assert_int_equal(insert_in_flow(fx, "a-2", now - 20, "a"), 0);
  assert_int_equal(insert_in_flow(fx, "a-3", now + 3600 * 1000, "a"), 0);

  store_job_t f;
  memset(&f, 0, sizeof(f));
  storage_flow_t flows[4];
  f.op = STORE_FLOWS;
  f.flows = flows;
  f.limit = 4;
  assert_int_equal(run_job(fx, &f), 2);
  assert_int_equal(f.nflows, 2);
  assert_string_equal(flows[0].name, "a");
  assert_int_equal(flows[0].queued, 3);
  assert_int_equal(flows[0].next_due, now - 30);
  assert_string_equal(flows[1].name, "b");
  assert_int_equal(flows[1].queued, 1);

  /* The flow's name is the caller's, kept until the callback. */
  char *flow = strdup("a");
  store_job_t c;
  memset(&c, 0, sizeof(c));
  stored_request_t rows[4];
  c.op = STORE_CLAIM;
  c.flow = flow;
  c.rows = rows;
  c.limit = 4;
  c.max_age_ms = 86400000;
  c.now = now;
  assert_int_equal(run_job(fx, &c), 2);
  free(flow);
  assert_int_equal(c.nrows, 2);
  assert_string_equal(rows[0].id, "a-1");
  assert_string_equal(rows[1].id, "a-2");
  assert_string_equal(rows[0].flow, "a");
  for (int i = 0; i < c.nrows; i++)
    stored_request_free(&rows[i]);
  /* The other flow's row is still due: the scheduler is told so. */
  assert_int_equal(c.next_due, now - 50);

  memset(&f, 0, sizeof(f));
  f.op = STORE_FLOWS;
  f.flows = flows;
  f.limit = 1;
  assert_int_equal(run_job(fx, &f), 1);
  assert_string_equal(flows[0].name, "a");
  assert_int_equal(flows[0].queued, 1);
  assert_int_equal(flows[0].inflight, 2);
  assert_int_equal(flows[0].next_due, now + 3600 * 1000);
}

int main(void) {
  faulty_vfs_install();
  const struct CMUnitTest tests[] = {
      T(writable_is_read_by_the_loop_while_the_storage_thread_writes_it),
      T(reads_claims_and_an_empty_purge_leave_a_failed_store_unwritable),
      T(the_stores_own_probe_makes_it_writable_again_without_a_client_write),
      T(a_row_whose_commit_failed_never_comes_back_after_a_crash),
      T(a_purge_goes_in_slices_with_commits_between_and_gives_free_pages_back),
      T(store_flows_lists_the_flows_and_store_claim_takes_one_flows_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
