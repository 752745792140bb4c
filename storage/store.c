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
#define STORE_SLICE_RECLAIM_DEFAULT 8192
#define STORE_PURGE_CHUNK_ROWS 16
#define STORE_RECLAIM_CHUNK 64
/* The most consecutive inserts of a batch handed to the backend in one
 * insert_many() call; a longer run takes several. It sizes the store's
 * arrays for them, and bounds one statement on a backend that sends the
 * rows together (a few hundred KiB of 1 KiB requests). */
#define STORE_INSERT_RUN_MAX 256

struct store_s {
  uv_loop_t *loop;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
  uv_async_t async;
  storage_backend_t *db;

  /* Under mu. */
  list_t todo;
  list_t done;
  /* What a shared backend heard, for the loop (opts.on_notice): due
   * notices fold into the earliest one, an overflow into missed. */
  storage_notice_t notices[STORE_NOTICES_MAX];
  int nnotices;
  int64_t notice_due;
  bool notices_missed;
  bool async_ready; /* the loop's async handle exists: notices may wake it */
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
  storage_info_t info;
  bool has_callbacks; /* set at open, read-only after: the backend keeps completion notices */

  /* Storage thread only: while unwritable, when the next probe may run,
   * and when the backend's housekeeping is due next (uv_hrtime() ns). */
  uint64_t probe_at;
  uint64_t housekeep_at;

  /* Whether a durable write reached the disk the last time one was tried.
   * Written by the storage thread, read by the loop (health). An atomic, not
   * a volatile: a plain or volatile flag shared by two threads is a data
   * race. Release/acquire, so a reader that sees the new value also sees
   * the writes the storage thread made before it. */
  atomic_bool writable;

  /* Storage thread only: the run of inserts handed to insert_many(). */
  const stored_request_t *run_rows[STORE_INSERT_RUN_MAX];
  int run_results[STORE_INSERT_RUN_MAX];
  stored_request_t run_existing[STORE_INSERT_RUN_MAX];
};

int64_t store_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- storage thread -------------------------------------------------- */

#define JOB(l) list_entry(l, store_job_t, link)

/* An insert's outcome. On -EEXIST the job hands back the row that holds
 * the key in place of the caller's copy, which is freed here (the caller
 * frees what it gets back). */
static void store_insert_done(store_job_t *j, int result, stored_request_t *existing) {
  j->result = result;
  if (result == -EEXIST && existing->id[0]) {
    stored_request_t mine = j->rq;
    j->rq = *existing;
    memset(existing, 0, sizeof(*existing));
    stored_request_free(&mine);
  } else {
    stored_request_free(existing); /* nothing, unless a backend filled it anyway */
  }
}

/* Runs the insert at first and the inserts right after it, at most
 * STORE_INSERT_RUN_MAX, with one insert_many(); returns the job after them. */
static list_t *store_run_inserts(store_t *s, list_t *first, const list_t *jobs) {
  storage_backend_t *b = s->db;
  size_t n = 0;
  list_t *l = first;
  for (; l != jobs && JOB(l)->op == STORE_INSERT && n < STORE_INSERT_RUN_MAX; l = l->next)
    s->run_rows[n++] = &JOB(l)->rq;
  memset(s->run_existing, 0, n * sizeof(s->run_existing[0]));
  b->ops->insert_many(b, s->run_rows, n, s->run_results, s->run_existing);
  size_t i = 0;
  for (list_t *k = first; k != l; k = k->next, i++)
    store_insert_done(JOB(k), s->run_results[i], &s->run_existing[i]);
  return l;
}

/* The completion notices' jobs; -ENOTSUP where the backend keeps none. */
static void store_run_callback_job(storage_backend_t *b, store_job_t *j) {
  if (b->ops->callback_due == NULL) {
    j->result = -ENOTSUP;
    return;
  }
  if (j->op == STORE_CALLBACK_DUE) {
    j->result = b->ops->callback_due(b, j->now, j->callback.body_cap, j->limit, j->callback.rows);
    j->nrows = j->result > 0 ? j->result : 0;
  } else {
    j->result = b->ops->callback_finish(b, j->callback.seq, j->now, j->callback.state,
                                        j->callback.next_at, j->callback.error);
  }
  j->callback.next_due = j->result >= 0 ? b->ops->callback_next_due(b) : 0;
}

/* Any job but an insert, which goes in a run (store_run_inserts()). */
static void store_run_job(store_t *s, store_job_t *j) {
  storage_backend_t *b = s->db;
  switch (j->op) {
  case STORE_INSERT:
    break;
  case STORE_FIND_IDEMPOTENT: {
    stored_request_t found;
    j->result =
        b->ops->find_idempotent(b, j->rq.idempotency_key, j->rq.method, j->rq.target, &found);
    if (j->result == -ENOENT && b->ops->find_completed != NULL)
      j->result =
          b->ops->find_completed(b, j->rq.idempotency_key, j->rq.method, j->rq.target, &found);
    if (j->result == 0) {
      stored_request_free(&j->rq);
      j->rq = found;
    }
    break;
  }
  case STORE_GET:
    j->result = b->ops->get(b, j->id, j->with_payload, &j->rq);
    break;
  case STORE_CANCEL:
    j->result = b->ops->cancel(b, j->id, j->now, &j->rq);
    break;
  case STORE_RETRY_NOW:
    j->result = b->ops->retry_now(b, j->id, j->now, &j->rq);
    break;
  case STORE_CLAIM:
    j->result = b->ops->claim(b, j->now, j->flow, j->max_age_ms, j->limit, j->rows, &j->expired);
    j->nrows = j->result > 0 ? j->result : 0;
    if (j->result >= 0 && j->flow != NULL)
      j->flow_next_due = b->ops->flow_next_due(b, j->flow);
    break;
  case STORE_FINISH:
    j->result = b->ops->finish(b, j->id, j->now, &j->outcome);
    break;
  case STORE_PURGE:
    break; /* not a batch job: store_run_purge_slice() */
  case STORE_COUNTS:
    j->result = b->ops->counts(b, &j->counts);
    break;
  case STORE_LIST:
    j->result = b->ops->list(b, j->state, j->after_seq, j->limit, j->rows, &j->last_seq);
    j->nrows = j->result > 0 ? j->result : 0;
    break;
  case STORE_FLOWS:
    j->result = b->ops->flows(b, j->flows, j->limit);
    j->nflows = j->result > 0 ? j->result : 0;
    break;
  case STORE_LIST_FILTERED:
    j->result = b->ops->list_filtered(b, j->filter, j->scan, j->limit, j->rows, &j->page);
    j->nrows = j->result > 0 ? j->result : 0;
    break;
  case STORE_BULK:
    j->result = b->ops->bulk(b, j->bulk, j->filter, j->now, j->scan, j->limit, j->rows, &j->page);
    j->nrows = j->result > 0 ? j->result : 0;
    break;
  case STORE_CALLBACK_DUE:
  case STORE_CALLBACK_FINISH:
    store_run_callback_job(b, j);
    break;
  }
}

/* Frees what a job of a failed batch got, so the caller sees only the error. */
static void store_undo_outputs(store_job_t *j) {
  if (j->op == STORE_CLAIM || j->op == STORE_LIST || j->op == STORE_LIST_FILTERED ||
      j->op == STORE_BULK) {
    for (int i = 0; i < j->nrows; i++)
      stored_request_free(&j->rows[i]);
    j->nrows = 0;
  }
  if (j->op == STORE_FLOWS)
    j->nflows = 0; /* nothing owned: only what it said is taken back */
  if (j->op == STORE_CALLBACK_DUE) {
    for (int i = 0; i < j->nrows; i++)
      storage_callback_free(&j->callback.rows[i]);
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
  case STORE_BULK:
  case STORE_CALLBACK_FINISH: /* a delivered notice must not be sent again */
    return true;
  case STORE_CALLBACK_DUE:
  case STORE_PURGE: /* its slices commit on their own, without a sync */
  case STORE_FIND_IDEMPOTENT:
  case STORE_GET:
  case STORE_CLAIM:
  case STORE_COUNTS:
  case STORE_LIST:
  case STORE_LIST_FILTERED:
  case STORE_FLOWS:
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
static void store_probe(store_t *s) { store_note_durable_write(s, s->db->ops->probe(s->db) == 0); }

/* The backend's periodic work is due (storage thread only). */
static bool store_housekeep_due(const store_t *s) {
  return s->info.housekeep_ms > 0 && uv_hrtime() >= s->housekeep_at;
}

static void store_housekeep(store_t *s) {
  s->db->ops->housekeep(s->db);
  s->housekeep_at = uv_hrtime() + (uint64_t)s->info.housekeep_ms * 1000000u;
}

/* Under mu: sleeps until a job or a stop comes, or a probe or the
 * backend's housekeeping is due. */
static void store_wait(store_t *s) {
  uint64_t until = UINT64_MAX;
  if (!atomic_load_explicit(&s->writable, memory_order_relaxed))
    until = s->probe_at;
  if (s->info.housekeep_ms > 0 && s->housekeep_at < until)
    until = s->housekeep_at;
  if (until == UINT64_MAX) {
    uv_cond_wait(&s->cond, &s->mu);
    return;
  }
  uint64_t now = uv_hrtime();
  if (now < until)
    uv_cond_timedwait(&s->cond, &s->mu, until - now);
}

/* After a commit failed: nothing of it kept (the backend's promise), and
 * health told. */
static void store_commit_failed(store_t *s) {
  s->db->ops->rollback(s->db);
  store_note_durable_write(s, false);
}

static void store_fill_after(store_t *s, list_t *jobs) {
  int64_t next_due = s->db->ops->next_due(s->db);
  int64_t unfinished = s->db->ops->unfinished(s->db);
  list_foreach(l, jobs) {
    JOB(l)->next_due = next_due;
    JOB(l)->unfinished = unfinished;
  }
}

static int64_t store_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* One slice of a purge: expired rows first, a few at a time, then the
 * space they freed given back, until the budget is spent. Sets j->more
 * while anything is left; adds to j->purged and j->reclaimed. */
static int store_purge_slice_work(store_t *s, store_job_t *j) {
  storage_backend_t *b = s->db;
  uint64_t end = uv_hrtime() + (uint64_t)s->opts.slice_ms * 1000000u;
  bool rows_done = false, space_done = false;
  for (int64_t left = s->opts.slice_rows; left > 0 && !rows_done;) {
    int64_t chunk = store_min(left, STORE_PURGE_CHUNK_ROWS);
    int64_t n = b->ops->purge(b, j->cutoff, chunk);
    if (n < 0)
      return (int)n;
    j->purged += n;
    left -= n;
    rows_done = n < chunk;
    if (uv_hrtime() >= end)
      break;
  }
  for (int64_t left = s->opts.slice_reclaim; rows_done && left > 0 && !space_done;) {
    if (uv_hrtime() >= end)
      break;
    int64_t chunk = store_min(left, STORE_RECLAIM_CHUNK);
    int64_t n = b->ops->reclaim(b, chunk);
    if (n < 0)
      return (int)n;
    j->reclaimed += n;
    left -= n;
    space_done = n < chunk; /* nothing more worth giving back */
  }
  j->more = !(rows_done && space_done);
  return 0;
}

/* A purge slice is a transaction of its own, after the batch it came with
 * was answered, so the commits around it do not wait for it; none waits
 * longer than one slice. It skips the sync: a purge lost to a power cut is
 * done again. After the last slice of a purge that changed anything, the
 * backend lets what was deleted leave its logs. */
static void store_run_purge_slice(store_t *s, store_job_t *j) {
  storage_backend_t *b = s->db;
  bool synced;
  int rc = b->ops->begin(b, false);
  if (rc == 0) {
    rc = store_purge_slice_work(s, j);
    if (rc == 0)
      rc = b->ops->commit(b, &synced);
  }
  if (rc != 0) {
    store_commit_failed(s);
    j->result = rc;
    j->more = false;
  } else if (!j->more && (j->purged > 0 || j->reclaimed > 0)) {
    b->ops->purge_finished(b);
  }
}

/* In order; consecutive inserts reach the backend together, so that one
 * on the far side of a network may store them with one round trip. Jobs
 * between them keep their place: an insert after a cancel still sees the
 * room the cancel made. */
static void store_run_jobs(store_t *s, list_t *jobs) {
  list_t *l = jobs->next;
  while (l != jobs) {
    if (JOB(l)->op == STORE_INSERT) {
      l = store_run_inserts(s, l, jobs);
    } else {
      store_run_job(s, JOB(l));
      l = l->next;
    }
  }
}

static void store_run_batch(store_t *s, list_t *jobs) {
  storage_backend_t *b = s->db;
  bool durable = false;
  list_foreach(l, jobs) { durable = durable || store_job_needs_disk(JOB(l)); }
  /* A batch of claims and reads skips the sync; the next durable commit
   * carries its writes to disk. */
  bool synced = false;
  int rc = b->ops->begin(b, durable);
  if (rc == 0) {
    store_run_jobs(s, jobs);
    rc = b->ops->commit(b, &synced);
  }
  if (rc != 0) {
    /* Nothing of this batch is durable: every job fails with the reason. */
    list_foreach(l, jobs) {
      store_undo_outputs(JOB(l));
      JOB(l)->result = rc;
    }
    store_commit_failed(s);
  } else if (synced) {
    /* Only a commit that synced what it wrote says the disk takes durable
     * writes; reads, claims and a durable batch that changed nothing (a
     * cancel of a row that is not there) say nothing. */
    store_note_durable_write(s, true);
  }
  store_fill_after(s, jobs);
}

/* Moves the purge slices of jobs to slices (keeping both in order). */
static void store_take_purges(list_t *jobs, list_t *slices) {
  list_init(slices);
  list_foreach_safe(l, jobs) {
    if (JOB(l)->op == STORE_PURGE) {
      list_remove(l);
      list_insert_tail(slices, l);
    }
  }
}

/* Hands finished jobs to the loop; jobs is left empty. */
static void store_hand_back(store_t *s, list_t *jobs) {
  uv_mutex_lock(&s->mu);
  list_append_all(&s->done, jobs);
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

/* Runs one batch and then its purge slices, each answered on its own. */
static void store_run_waiting(store_t *s, list_t *jobs) {
  list_t slices;
  store_take_purges(jobs, &slices);
  if (!list_empty(jobs)) {
    store_run_batch(s, jobs);
    store_hand_back(s, jobs); /* answered before any purge slice runs */
  }
  list_t *l;
  while ((l = list_pop_head(&slices)) != NULL) {
    list_t one;
    list_init(&one);
    list_insert_tail(&one, l);
    store_run_purge_slice(s, JOB(l));
    store_fill_after(s, &one);
    store_hand_back(s, &one);
  }
}

static void store_thread_main(void *arg) {
  store_t *s = arg;
  /* A name of its own, so top -H, perf and /proc/PID/task tell the storage
   * thread's CPU and I/O from the loop's (bench/purge.py reads it). */
  pthread_setname_np(pthread_self(), "retryd-store");
  int rc = s->opts.open_backend(&s->db, s->opts.location, &s->opts.params, s->open_err,
                                sizeof(s->open_err));
  uv_mutex_lock(&s->mu);
  s->open_result = rc;
  s->opened = true;
  if (rc == 0) {
    s->info = s->db->info;
    s->has_callbacks = s->db->ops->callback_due != NULL;
    if (s->db->ops->housekeep == NULL)
      s->info.housekeep_ms = 0;
    s->housekeep_at = uv_hrtime() + (uint64_t)s->info.housekeep_ms * 1000000u;
  }
  uv_cond_broadcast(&s->cond);
  if (rc != 0) {
    uv_mutex_unlock(&s->mu);
    return;
  }
  for (;;) {
    while (list_empty(&s->todo) && !s->stopping && !store_probe_due(s) && !store_housekeep_due(s))
      store_wait(s);
    list_t jobs;
    list_move_all(&s->todo, &jobs);
    if (list_empty(&jobs) && s->stopping)
      break;
    uv_mutex_unlock(&s->mu);
    /* Housekeeping also runs between batches: a queue that never idles
     * must still renew its claims. */
    if (store_housekeep_due(s))
      store_housekeep(s);
    if (!list_empty(&jobs))
      store_run_waiting(s, &jobs);
    else if (store_probe_due(s))
      store_probe(s);
    uv_mutex_lock(&s->mu);
  }
  uv_mutex_unlock(&s->mu);
  s->db->ops->close(s->db);
  s->db = NULL;
  uv_mutex_lock(&s->mu);
  s->stopped = true;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

/* ---- notices (a thread of the backend's) ----------------------------- */

static void store_heard(void *arg, const storage_notice_t *n) {
  store_t *s = arg;
  uv_mutex_lock(&s->mu);
  if (n->kind == STORAGE_NOTICE_DUE) {
    if (s->notice_due == 0 || n->at_ms < s->notice_due)
      s->notice_due = n->at_ms;
  } else if (n->kind == STORAGE_NOTICE_MISSED || s->nnotices == STORE_NOTICES_MAX) {
    s->notices_missed = true;
  } else {
    s->notices[s->nnotices++] = *n;
  }
  bool wake = s->async_ready;
  uv_mutex_unlock(&s->mu);
  if (wake)
    uv_async_send(&s->async);
}

/* Loop thread: hands over what was heard since the last time. */
static void store_deliver_notices(store_t *s) {
  if (s->opts.on_notice == NULL)
    return;
  storage_notice_t taken[STORE_NOTICES_MAX];
  uv_mutex_lock(&s->mu);
  int n = s->nnotices;
  memcpy(taken, s->notices, (size_t)n * sizeof(taken[0]));
  int64_t due = s->notice_due;
  bool missed = s->notices_missed;
  s->nnotices = 0;
  s->notice_due = 0;
  s->notices_missed = false;
  uv_mutex_unlock(&s->mu);
  storage_notice_t one;
  memset(&one, 0, sizeof(one));
  if (missed) {
    one.kind = STORAGE_NOTICE_MISSED;
    s->opts.on_notice(s->opts.notice_arg, &one);
  }
  if (due != 0) {
    one.kind = STORAGE_NOTICE_DUE;
    one.at_ms = due;
    s->opts.on_notice(s->opts.notice_arg, &one);
  }
  for (int i = 0; i < n; i++)
    s->opts.on_notice(s->opts.notice_arg, &taken[i]);
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
  list_t done;
  uv_mutex_lock(&s->mu);
  list_move_all(&s->done, &done);
  bool stopped = s->stopped;
  uv_mutex_unlock(&s->mu);
  list_t *l;
  while ((l = list_pop_head(&done)) != NULL)
    JOB(l)->cb(JOB(l));
  store_deliver_notices(s);
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
  if (s->opts.slice_reclaim <= 0)
    s->opts.slice_reclaim = STORE_SLICE_RECLAIM_DEFAULT;
  if (s->opts.open_backend == NULL)
    s->opts.open_backend = storage_backend_open;
  if (s->opts.on_notice != NULL) {
    s->opts.params.notify = store_heard;
    s->opts.params.notify_arg = s;
  }
  list_init(&s->todo);
  list_init(&s->done);
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
  /* Start-up waits for the storage: nothing can be served without it, and
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
  /* What was heard while the storage opened waits for the first wake-up. */
  uv_mutex_lock(&s->mu);
  s->async_ready = true;
  bool heard = s->nnotices > 0 || s->notice_due != 0 || s->notices_missed;
  uv_mutex_unlock(&s->mu);
  if (heard)
    uv_async_send(&s->async);
  *out = s;
  return 0;
}

void store_submit(store_t *s, store_job_t *job) {
  job->result = 0;
  if (job->now == 0)
    job->now = store_now_ms();
  uv_mutex_lock(&s->mu);
  list_insert_tail(&s->todo, &job->link);
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
}

int64_t store_recovered(const store_t *s) { return s->info.recovered; }

bool store_reclaims_space(const store_t *s) { return s->info.reclaims_space; }

int64_t store_converted_ms(const store_t *s) { return s->info.converted_ms; }

int64_t store_poll_ms(const store_t *s) { return s->info.poll_ms; }

const char *store_replica(const store_t *s) { return s->info.replica; }

bool store_has_callbacks(const store_t *s) { return s->has_callbacks; }

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
