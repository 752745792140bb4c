/* store: the storage thread, and the only way the loop reaches the queue's
 * storage (a backend: storage/storage_backend.h).
 *
 * Design note. The loop thread never calls the backend (invariant 1): its
 * calls block. It fills a store_job_t and hands it to store_submit(); the
 * storage thread, which owns the backend, takes every job waiting, runs
 * them all inside one transaction, and hands them back. One durable commit
 * (one fsync) thus covers every request that arrived while the previous
 * commit was on disk: group commit, so durable throughput grows with
 * concurrency. The batch's consecutive inserts reach the backend in one
 * call (insert_many()), so that a backend across a network stores them
 * with one statement, not one round trip each. A job's callback runs on
 * the loop thread, from one uv_async_t whose callback drains the whole
 * completion list, and only after the commit returned: a 202 sent from it
 * is durable (invariant 2). If the commit fails, every job of the batch
 * fails with the commit's error and nothing of the batch is kept, not even
 * after a crash (the backend's rollback promises it), so a 503 always means
 * "not stored".
 *
 * Purges are the exception to one batch, one commit: a STORE_PURGE job is
 * one slice of a purge (a few milliseconds of deleting expired rows, then
 * of giving freed space back), run in a transaction of its own after the
 * batch it arrived with was answered. The caller submits it again while it
 * says there is more, so client commits go between the slices.
 *
 * Lifecycle: store_open() (before the loop runs: it waits for the thread to
 * open, lock, migrate and recover the storage) → store_submit()... →
 * store_close(cb), which runs the jobs still waiting, closes the database
 * and calls cb on the loop. */
#ifndef RETRYD_STORE_H
#define RETRYD_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lib/list.h"
#include "storage/storage_backend.h"
#include "storage/stored_request.h"

typedef struct store_s store_t;
typedef struct store_job_s store_job_t;
typedef void (*store_done_cb)(store_job_t *job);

typedef enum {
  STORE_INSERT,          /* rq in; on -EEXIST rq out is the existing row */
  STORE_FIND_IDEMPOTENT, /* rq.idempotency_key, method, target in; rq out: the unfinished
                            row, else the latest completed one (find_completed()) */
  STORE_GET,             /* id, with_payload in; rq out */
  STORE_CANCEL,          /* id in; rq out */
  STORE_RETRY_NOW,       /* id in; rq out */
  STORE_CLAIM,           /* flow, limit, max_age_ms in; rows, nrows, expired, flow_next_due out */
  STORE_FINISH,          /* id, outcome in */
  STORE_PURGE,           /* one slice: cutoff in; purged, reclaimed added to; more out */
  STORE_COUNTS,          /* counts out */
  STORE_LIST,            /* state, after_seq, limit in; rows, nrows, last_seq out */
  STORE_FLOWS,           /* flows, limit in; flows[0..nflows) out (storage_backend.h, flows()) */
  STORE_LIST_FILTERED,   /* filter, scan, limit, page.after_seq in; rows, nrows, page out */
  STORE_BULK,            /* bulk, filter, scan, limit, page.after_seq in; rows (the changed
                            ones), nrows, page out: one bounded step (storage_backend.h) */
  STORE_CALLBACK_DUE,    /* limit, callback.body_cap in; callback.rows[0..nrows) out */
  STORE_CALLBACK_FINISH, /* callback.seq, state, next_at, error in */
} store_op_t;

struct store_job_s {
  list_t link; /* the store's: waiting, or done */
  store_op_t op;
  store_done_cb cb;
  void *ctx;
  int64_t now; /* Unix ms the job acts at */
  int result;  /* 0, a count (claim, list, flows), or a negative errno
                  (stored_request.h) */

  char id[40];
  bool with_payload;
  stored_request_t rq;

  size_t limit;
  int64_t max_age_ms;
  const char *flow;       /* NULL: any flow; else only that flow's rows; the caller keeps it
                             valid until cb */
  stored_request_t *rows; /* caller-allocated, limit entries */
  int nrows;
  int64_t expired;

  storage_flow_t *flows; /* caller-allocated, limit entries */
  int nflows;
  /* A claim of one flow: the earliest next attempt of that flow's queued
   * rows after it (0: none), flow_next_due(). */
  int64_t flow_next_due;

  attempt_outcome_t outcome; /* its pointers must stay valid until cb */

  /* A purge goes in slices: the caller submits the same job again while
   * more is set after it came back; purged and reclaimed (space given back)
   * add up over the slices, so they start at 0. */
  int64_t cutoff;
  int64_t purged;
  int64_t reclaimed;
  bool more;

  queue_counts_t counts;

  /* Completion notices (storage_backend.h, callback_due/finish). -ENOTSUP
   * when the backend keeps none. */
  struct {
    storage_callback_t *rows; /* caller-allocated, limit entries */
    size_t body_cap;
    int64_t seq;
    callback_state_t state;
    int64_t next_at;
    const char *error; /* the caller keeps it valid until cb */
    int64_t next_due;  /* filled after every callback job: the next pending notice (0: none) */
  } callback;

  int state;
  int64_t after_seq;
  int64_t last_seq;

  /* A filtered listing or a bulk action goes in steps, each reading at
   * most scan rows and returning or changing at most limit: the caller
   * submits the job again from page.last_seq while page.more is set.
   * filter and what it points to stay the caller's until cb. */
  const storage_filter_t *filter;
  storage_bulk_t bulk;
  size_t scan;
  storage_page_t page;

  /* Filled for every job: the earliest next attempt of a queued row after
   * the batch (0: none), and the number of unfinished rows. */
  int64_t next_due;
  int64_t unfinished;
};

/* Copied by store_open(); location must stay valid until the store closed. */
typedef struct {
  const char *location; /* what --db says (storage/storage_location.h) */
  storage_params_t params;
  /* While the store cannot write: the wait after the last durable write
   * tried before the store probes with one of its own (0: 1 s). */
  int64_t probe_interval_ms;
  /* One purge slice's budget, and its caps in rows deleted and space given
   * back, in the backend's units (0: 10 ms, 1000 rows, 8192 units). */
  int64_t slice_ms;
  int64_t slice_rows;
  int64_t slice_reclaim;
  /* Called on the loop thread with each change another process made to a
   * shared queue, as the backend heard of it (NULL: not wanted). Notices
   * are kept until the loop takes them, at most STORE_NOTICES_MAX; beyond
   * that they are dropped for one STORAGE_NOTICE_MISSED. */
  void (*on_notice)(void *arg, const storage_notice_t *n);
  void *notice_arg;
  /* Opens the backend on the storage thread (NULL: storage_backend_open,
   * which picks it by location). Unit tests pass a fake one. */
  int (*open_backend)(storage_backend_t **out, const char *location, const storage_params_t *params,
                      char *err, size_t errlen);
} store_options_t;

/* err gets one line on failure. */
#define STORE_NOTICES_MAX 256

int store_open(store_t **out, uv_loop_t *loop, const store_options_t *opts, char *err,
               size_t errlen);
void store_submit(store_t *s, store_job_t *job);
int64_t store_recovered(const store_t *s);
/* Whether purged space goes back to the file system, and how long
 * converting older storage to that took at open (-1: nothing to convert). */
bool store_reclaims_space(const store_t *s);
int64_t store_converted_ms(const store_t *s);
/* The longest the scheduler may wait before it looks for due rows again,
 * whatever it was told (0: no limit; storage_info_t.poll_ms). */
int64_t store_poll_ms(const store_t *s);
/* This process's name among a shared queue's replicas ("" when the
 * backend is not shared; storage_info_t.replica). */
const char *store_replica(const store_t *s);
/* Whether the backend keeps completion notices (storage_backend.h). */
bool store_has_callbacks(const store_t *s);
/* Whether the last durable write tried reached the disk: false after any
 * failed commit, true again only after a commit that synced what it wrote
 * (a client's, or the store's own probe, tried once per probe interval
 * while false). Reads never change it. Health reports it. */
bool store_writable(const store_t *s);
void store_close(store_t *s, void (*cb)(void *arg), void *arg);

/* Unix time in ms (wall clock: rows outlive the process). */
int64_t store_now_ms(void);

#endif
