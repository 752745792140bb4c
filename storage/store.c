#include "storage/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* While the store cannot write, how long it waits after the last durable
 * write it tried (a client's or its own) before it probes again. */
#define STORE_PROBE_INTERVAL_MS_DEFAULT 1000
/* A purge slice's budget: other commits wait at most about this long for
 * one. Within it, rows go a few at a time and pages a few dozen at a time,
 * so the clock is looked at often; the caps bound a slice on a clock that
 * jumps. */
#define STORE_SLICE_MS_DEFAULT 10
#define STORE_SLICE_ROWS_DEFAULT 1000
#define STORE_SLICE_PAGES_DEFAULT 8192
#define STORE_PURGE_CHUNK_ROWS 16
/* The share of the file's pages a purge leaves free (store_free_excess()). */
#define STORE_FREE_KEPT_PCT 25
#define STORE_VACUUM_CHUNK_PAGES 64

struct store_s {
  uv_loop_t *loop;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
  uv_async_t async;
  queue_db_t *db;

  /* Under mu. */
  store_job_t *todo_head, *todo_tail;
  store_job_t *done_head, *done_tail;
  bool stopping;
  bool stopped;
  bool opened; /* open finished (ok or not) */
  int open_result;
  char open_err[512];
  store_options_t opts; /* a copy: the caller's may not outlive store_open() */

  /* Loop side. */
  void (*close_cb)(void *arg);
  void *close_arg;
  /* Written by the storage thread before it signals that open finished,
   * read by the loop after store_open() saw that under mu. */
  int64_t recovered;
  bool reclaims;
  int64_t converted_ms;

  /* Storage thread only: while unwritable, when the next probe may run
   * (uv_hrtime() ns). */
  uint64_t probe_at;

  /* Whether a durable write reached the disk the last time one was tried.
   * Written by the storage thread, read by the loop (health). An atomic, not
   * a volatile: a plain or volatile flag shared by two threads is a data
   * race. Release/acquire, so a reader that sees the new value also sees
   * the writes the storage thread made before it. */
  atomic_bool writable;
};

int64_t store_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- storage thread -------------------------------------------------- */

static void store_run_job(store_t *s, store_job_t *j) {
  queue_db_t *q = s->db;
  switch (j->op) {
  case STORE_INSERT: {
    stored_request_t existing;
    memset(&existing, 0, sizeof(existing));
    j->result = queue_db_insert(q, &j->rq, &existing);
    if (j->result == -EEXIST && existing.id[0]) {
      /* The caller's copy is freed by the caller; hand back the existing row
       * in its place. */
      stored_request_t mine = j->rq;
      j->rq = existing;
      stored_request_free(&mine);
    }
    break;
  }
  case STORE_FIND_IDEMPOTENT: {
    stored_request_t found;
    j->result = queue_db_find_idempotent(q, j->rq.idempotency_key, j->rq.method, j->rq.target,
                                         &found);
    if (j->result == 0) {
      stored_request_free(&j->rq);
      j->rq = found;
    }
    break;
  }
  case STORE_GET:
    j->result = queue_db_get(q, j->id, j->with_payload, &j->rq);
    break;
  case STORE_CANCEL:
    j->result = queue_db_cancel(q, j->id, j->now, &j->rq);
    break;
  case STORE_RETRY_NOW:
    j->result = queue_db_retry_now(q, j->id, j->now, &j->rq);
    break;
  case STORE_CLAIM:
    j->result = queue_db_claim(q, j->now, j->max_age_ms, j->limit, j->rows, &j->expired);
    j->nrows = j->result > 0 ? j->result : 0;
    break;
  case STORE_FINISH:
    j->result = queue_db_finish(q, j->id, j->now, &j->outcome);
    break;
  case STORE_PURGE:
    break; /* not a batch job: store_run_purge_slice() */
  case STORE_COUNTS:
    j->result = queue_db_counts(q, &j->counts);
    break;
  case STORE_LIST:
    j->result = queue_db_list(q, j->state, j->after_seq, j->limit, j->rows, &j->last_seq);
    j->nrows = j->result > 0 ? j->result : 0;
    break;
  }
}

/* Frees what a job of a failed batch got, so the caller sees only the error. */
static void store_undo_outputs(store_job_t *j) {
  if (j->op == STORE_CLAIM || j->op == STORE_LIST) {
    for (int i = 0; i < j->nrows; i++)
      stored_request_free(&j->rows[i]);
    j->nrows = 0;
  }
}

/* Whether losing this job's effect to a power cut would break a promise.
 * An insert was acknowledged (202), a finish records an answer (losing it
 * means sending twice), a cancel or retry was confirmed. A claim is not: a
 * lost claim leaves the row queued, and inflight rows are queued again at
 * start-up anyway. Reads change nothing. */
static bool store_job_needs_disk(const store_job_t *j) {
  switch (j->op) {
  case STORE_INSERT:
  case STORE_CANCEL:
  case STORE_RETRY_NOW:
  case STORE_FINISH:
    return true;
  case STORE_PURGE: /* its slices commit on their own, without a sync */
  case STORE_FIND_IDEMPOTENT:
  case STORE_GET:
  case STORE_CLAIM:
  case STORE_COUNTS:
  case STORE_LIST:
    return false;
  }
  return true;
}

/* The outcome of a durable write: what health says until the next one. A
 * probe may follow only a full interval after this one. */
static void store_note_durable_write(store_t *s, bool reached_disk) {
  atomic_store_explicit(&s->writable, reached_disk, memory_order_release);
  s->probe_at = uv_hrtime() + (uint64_t)s->opts.probe_interval_ms * 1000000u;
}

static bool store_probe_due(const store_t *s) {
  return !atomic_load_explicit(&s->writable, memory_order_relaxed) && uv_hrtime() >= s->probe_at;
}

/* Health must say whether a durable write can succeed now, and nothing but
 * durable writes can tell: reads commit without a sync. When no client
 * write has been tried for an interval, the store tries a small one of its
 * own, so health comes back once the disk does even without traffic. */
static void store_probe(store_t *s) {
  store_note_durable_write(s, queue_db_probe(s->db) == 0);
}

/* A commit whose sync failed has written its pages to the WAL, whole,
 * after the last good commit; SQLite does not count them, and its next
 * commit writes over them. But if the process dies first, recovery at the
 * next start finds them valid and brings back rows whose clients were told
 * 503 — and delivers them, though the clients were told to send again. So
 * before any job of the failed batch is answered, a commit of our own
 * writes over them: its pages go where the failed commit's first went, and
 * what follows them no longer checksums, so recovery stops there. Its write
 * lands in the page cache even when its own sync fails, which is what a
 * crashed process leaves behind. Its outcome is not health's: right after a
 * failure, a one-page write may fit where the failed batch did not. */
static void store_overwrite_failed_commit(store_t *s) {
  (void)queue_db_probe(s->db);
}

/* Under mu: sleeps until a job or a stop comes, or a probe is due. */
static void store_wait(store_t *s) {
  if (atomic_load_explicit(&s->writable, memory_order_relaxed)) {
    uv_cond_wait(&s->cond, &s->mu);
    return;
  }
  uint64_t now = uv_hrtime();
  if (now < s->probe_at)
    uv_cond_timedwait(&s->cond, &s->mu, s->probe_at - now);
}

/* After a commit failed: rolled back, counted again, written over, and
 * health told. */
static void store_commit_failed(store_t *s) {
  queue_db_rollback(s->db);
  queue_db_recount(s->db);
  store_note_durable_write(s, false);
  store_overwrite_failed_commit(s);
}

static void store_fill_after(store_t *s, store_job_t *list) {
  int64_t next_due = queue_db_next_due(s->db);
  int64_t unfinished = queue_db_unfinished(s->db);
  for (store_job_t *j = list; j != NULL; j = j->next) {
    j->next_due = next_due;
    j->unfinished = unfinished;
  }
}

static int64_t store_min(int64_t a, int64_t b) {
  return a < b ? a : b;
}

/* Free pages beyond the quarter of the file that is kept free (or an
 * error). Those are reused by the next answers before the file grows, so
 * giving them back would only move live pages about (each one moved costs
 * reads and writes) and grow the file again; beyond that the file tracks
 * its live data. */
static int64_t store_free_excess(queue_db_t *q) {
  int64_t free_pages = queue_db_free_pages(q);
  int64_t pages = queue_db_pages(q);
  if (free_pages < 0)
    return free_pages;
  if (pages < 0)
    return pages;
  int64_t keep = pages * STORE_FREE_KEPT_PCT / 100;
  return free_pages > keep ? free_pages - keep : 0;
}

/* One slice of a purge: expired rows first, a few at a time, then the
 * pages they freed given back, until the budget is spent. Sets j->more
 * while anything is left; adds to j->purged and j->reclaimed. */
static int store_purge_slice_work(store_t *s, store_job_t *j) {
  queue_db_t *q = s->db;
  uint64_t end = uv_hrtime() + (uint64_t)s->opts.slice_ms * 1000000u;
  bool rows_done = false, pages_done = false;
  for (int64_t left = s->opts.slice_rows; left > 0 && !rows_done;) {
    int64_t chunk = store_min(left, STORE_PURGE_CHUNK_ROWS);
    int64_t n = queue_db_purge(q, j->cutoff, chunk);
    if (n < 0)
      return (int)n;
    j->purged += n;
    left -= n;
    rows_done = n < chunk;
    if (uv_hrtime() >= end)
      break;
  }
  for (int64_t left = s->opts.slice_pages; rows_done && left > 0 && !pages_done;) {
    if (uv_hrtime() >= end)
      break;
    int64_t excess = store_free_excess(q);
    if (excess < 0)
      return (int)excess;
    if (excess == 0) {
      pages_done = true;
      break;
    }
    int64_t chunk = store_min(store_min(left, STORE_VACUUM_CHUNK_PAGES), excess);
    int64_t n = queue_db_vacuum(q, chunk);
    if (n < 0)
      return (int)n;
    j->reclaimed += n;
    left -= n;
    pages_done = n < chunk; /* the free list is empty (or cannot shrink) */
  }
  j->more = !(rows_done && pages_done);
  return 0;
}

/* A purge slice is a transaction of its own, after the batch it came with
 * was answered, so the commits around it do not wait for it; none waits
 * longer than one slice. It skips the sync: a purge lost to a power cut is
 * done again. The last slice of a purge that changed anything checkpoints
 * with TRUNCATE, so what it deleted leaves the WAL and the file is cut to
 * its pages. */
static void store_run_purge_slice(store_t *s, store_job_t *j) {
  int rc = queue_db_set_durable(s->db, false);
  if (rc == 0)
    rc = queue_db_begin(s->db);
  if (rc == 0) {
    rc = store_purge_slice_work(s, j);
    if (rc == 0)
      rc = queue_db_commit(s->db);
  }
  if (rc != 0) {
    store_commit_failed(s);
    j->result = rc;
    j->more = false;
  } else if (!j->more && (j->purged > 0 || j->reclaimed > 0)) {
    queue_db_checkpoint(s->db);
  }
  store_fill_after(s, j);
}

static void store_run_batch(store_t *s, store_job_t *list) {
  bool durable = false;
  for (store_job_t *j = list; j != NULL && !durable; j = j->next)
    durable = store_job_needs_disk(j);
  /* A batch of claims and reads skips the fsync; the next durable commit
   * carries its frames to disk. */
  int64_t written = queue_db_pages_written(s->db);
  int rc = queue_db_set_durable(s->db, durable);
  if (rc == 0)
    rc = queue_db_begin(s->db);
  if (rc == 0) {
    for (store_job_t *j = list; j != NULL; j = j->next)
      store_run_job(s, j);
    rc = queue_db_commit(s->db);
  }
  if (rc != 0) {
    /* Nothing of this batch is durable: every job fails with the reason. */
    for (store_job_t *j = list; j != NULL; j = j->next) {
      store_undo_outputs(j);
      j->result = rc;
    }
    store_commit_failed(s);
  } else if (durable && queue_db_pages_written(s->db) != written) {
    /* Only a durable commit that wrote pages synced them: that one says the
     * disk takes durable writes. A batch of reads and claims commits
     * without a sync, and a durable batch that changed nothing (a cancel
     * of a row that is not there) wrote nothing: neither says anything. */
    store_note_durable_write(s, true);
  }
  store_fill_after(s, list);
}

/* Moves the purge slices out of *list (keeping both in order). */
static store_job_t *store_take_purges(store_job_t **list) {
  store_job_t *slices = NULL, **stail = &slices, **keep = list;
  while (*keep != NULL) {
    store_job_t *j = *keep;
    if (j->op == STORE_PURGE) {
      *keep = j->next;
      j->next = NULL;
      *stail = j;
      stail = &j->next;
    } else {
      keep = &j->next;
    }
  }
  return slices;
}

/* Hands finished jobs to the loop. */
static void store_hand_back(store_t *s, store_job_t *list) {
  store_job_t *tail = list;
  while (tail->next != NULL)
    tail = tail->next;
  uv_mutex_lock(&s->mu);
  if (s->done_tail)
    s->done_tail->next = list;
  else
    s->done_head = list;
  s->done_tail = tail;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

static void store_thread_main(void *arg) {
  store_t *s = arg;
  /* A name of its own, so top -H, perf and /proc/PID/task tell the storage
   * thread's CPU and I/O from the loop's (bench/purge.py reads it). */
  pthread_setname_np(pthread_self(), "retryd-store");
  int rc = queue_db_open(&s->db, s->opts.path, s->opts.max_queue, s->open_err,
                         sizeof(s->open_err));
  uv_mutex_lock(&s->mu);
  s->open_result = rc;
  s->opened = true;
  if (rc == 0) {
    s->recovered = queue_db_recovered(s->db);
    s->reclaims = queue_db_reclaims_space(s->db);
    s->converted_ms = queue_db_converted_ms(s->db);
  }
  uv_cond_broadcast(&s->cond);
  if (rc != 0) {
    uv_mutex_unlock(&s->mu);
    return;
  }
  for (;;) {
    while (s->todo_head == NULL && !s->stopping && !store_probe_due(s))
      store_wait(s);
    store_job_t *list = s->todo_head;
    s->todo_head = s->todo_tail = NULL;
    if (list == NULL && s->stopping)
      break;
    uv_mutex_unlock(&s->mu);
    if (list == NULL) {
      store_probe(s);
      uv_mutex_lock(&s->mu);
      continue;
    }
    store_job_t *slices = store_take_purges(&list);
    if (list != NULL) {
      store_run_batch(s, list);
      store_hand_back(s, list); /* answered before any purge slice runs */
    }
    while (slices != NULL) {
      store_job_t *j = slices;
      slices = j->next;
      j->next = NULL;
      store_run_purge_slice(s, j);
      store_hand_back(s, j);
    }
    uv_mutex_lock(&s->mu);
  }
  uv_mutex_unlock(&s->mu);
  queue_db_close(s->db);
  s->db = NULL;
  uv_mutex_lock(&s->mu);
  s->stopped = true;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

/* ---- loop side ------------------------------------------------------- */

static void store_async_closed(uv_handle_t *h) {
  store_t *s = h->data;
  void (*cb)(void *) = s->close_cb;
  void *arg = s->close_arg;
  uv_cond_destroy(&s->cond);
  uv_mutex_destroy(&s->mu);
  free(s);
  if (cb)
    cb(arg);
}

static void store_async_cb(uv_async_t *a) {
  store_t *s = a->data;
  uv_mutex_lock(&s->mu);
  store_job_t *list = s->done_head;
  s->done_head = s->done_tail = NULL;
  bool stopped = s->stopped;
  uv_mutex_unlock(&s->mu);
  while (list != NULL) {
    store_job_t *next = list->next;
    list->next = NULL;
    list->cb(list);
    list = next;
  }
  if (stopped && !uv_is_closing((uv_handle_t *)&s->async)) {
    uv_thread_join(&s->thread); /* it has returned already */
    uv_close((uv_handle_t *)&s->async, store_async_closed);
  }
}

int store_open(store_t **out, uv_loop_t *loop, const store_options_t *opts, char *err,
               size_t errlen) {
  *out = NULL;
  store_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->loop = loop;
  s->opts = *opts;
  if (s->opts.probe_interval_ms <= 0)
    s->opts.probe_interval_ms = STORE_PROBE_INTERVAL_MS_DEFAULT;
  if (s->opts.slice_ms <= 0)
    s->opts.slice_ms = STORE_SLICE_MS_DEFAULT;
  if (s->opts.slice_rows <= 0)
    s->opts.slice_rows = STORE_SLICE_ROWS_DEFAULT;
  if (s->opts.slice_pages <= 0)
    s->opts.slice_pages = STORE_SLICE_PAGES_DEFAULT;
  atomic_init(&s->writable, true);
  uv_mutex_init(&s->mu);
  uv_cond_init(&s->cond);
  int rc = uv_thread_create(&s->thread, store_thread_main, s);
  if (rc != 0) {
    snprintf(err, errlen, "cannot start the storage thread: %s", uv_strerror(rc));
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->mu);
    free(s);
    return rc;
  }
  /* Start-up waits for the database: nothing can be served without it, and
   * the loop is not running yet. */
  uv_mutex_lock(&s->mu);
  while (!s->opened)
    uv_cond_wait(&s->cond, &s->mu);
  rc = s->open_result;
  uv_mutex_unlock(&s->mu);
  if (rc != 0) {
    uv_thread_join(&s->thread);
    snprintf(err, errlen, "%s", s->open_err);
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->mu);
    free(s);
    return rc;
  }
  uv_async_init(loop, &s->async, store_async_cb);
  s->async.data = s;
  *out = s;
  return 0;
}

void store_submit(store_t *s, store_job_t *job) {
  job->next = NULL;
  job->result = 0;
  if (job->now == 0)
    job->now = store_now_ms();
  uv_mutex_lock(&s->mu);
  if (s->todo_tail)
    s->todo_tail->next = job;
  else
    s->todo_head = job;
  s->todo_tail = job;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
}

int64_t store_recovered(const store_t *s) {
  return s->recovered;
}

bool store_reclaims_space(const store_t *s) {
  return s->reclaims;
}

int64_t store_converted_ms(const store_t *s) {
  return s->converted_ms;
}

bool store_writable(const store_t *s) {
  return atomic_load_explicit(&s->writable, memory_order_acquire);
}

void store_close(store_t *s, void (*cb)(void *arg), void *arg) {
  s->close_cb = cb;
  s->close_arg = arg;
  uv_mutex_lock(&s->mu);
  s->stopping = true;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
}
