/* sqlite_backend: the SQLite queue (sqlite_queue.h) as a storage backend
 * (storage/storage_backend.h). It adds what the interface promises beyond
 * plain SQL: a commit tells whether it synced anything, a rollback after a
 * failed commit writes over what that commit left in the WAL, and reclaim()
 * keeps a share of the file free for the next answers. */
#include "storage/storage_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/sqlite/sqlite_callbacks.h"
#include "storage/sqlite/sqlite_queue.h"

/* The share of the file's pages a purge leaves free (sqlite_free_excess()). */
#define SQLITE_FREE_KEPT_PCT 25

typedef struct {
  storage_backend_t super;
  sqlite_queue_t *q;
  sqlite_callbacks_t *cb; /* the completion notices, on q's connection */
  bool durable;           /* the open transaction's */
  int64_t pages_at_begin; /* WAL pages written before it */
} sqlite_backend_t;

static sqlite_queue_t *Q(storage_backend_t *b) { return ((sqlite_backend_t *)b)->q; }

static sqlite_callbacks_t *CB(storage_backend_t *b) { return ((sqlite_backend_t *)b)->cb; }

static void sqlite_backend_close(storage_backend_t *b) {
  sqlite_callbacks_close(CB(b));
  sqlite_queue_close(Q(b));
  free(b);
}

static int sqlite_backend_begin(storage_backend_t *b, bool durable) {
  sqlite_backend_t *sb = (sqlite_backend_t *)b;
  sb->durable = durable;
  sb->pages_at_begin = sqlite_queue_pages_written(sb->q);
  int rc = sqlite_queue_set_durable(sb->q, durable);
  return rc != 0 ? rc : sqlite_queue_begin(sb->q);
}

/* Only a durable commit that wrote pages synced them: a durable batch that
 * changed nothing (a cancel of a row that is not there) wrote nothing. */
static int sqlite_backend_commit(storage_backend_t *b, bool *synced) {
  sqlite_backend_t *sb = (sqlite_backend_t *)b;
  int rc = sqlite_queue_commit(sb->q);
  *synced = rc == 0 && sb->durable && sqlite_queue_pages_written(sb->q) != sb->pages_at_begin;
  return rc;
}

/* A commit whose sync failed has written its pages to the WAL, whole,
 * after the last good commit; SQLite does not count them, and its next
 * commit writes over them. But if the process dies first, recovery at the
 * next start finds them valid and brings back rows whose clients were told
 * 503 — and delivers them, though the clients were told to send again. So
 * a commit of our own (the probe) writes over them: its pages go where the
 * failed commit's first went, and what follows them no longer checksums,
 * so recovery stops there. Its write lands in the page cache even when its
 * own sync fails, which is what a crashed process leaves behind. Its
 * outcome is not health's: right after a failure, a one-page write may fit
 * where the failed batch did not. */
static void sqlite_backend_rollback(storage_backend_t *b) {
  sqlite_queue_rollback(Q(b));
  sqlite_queue_recount(Q(b));
  (void)sqlite_queue_probe(Q(b));
}

static int sqlite_backend_probe(storage_backend_t *b) { return sqlite_queue_probe(Q(b)); }

static int sqlite_backend_insert(storage_backend_t *b, const stored_request_t *r,
                                 stored_request_t *existing) {
  return sqlite_queue_insert(Q(b), r, existing);
}

static int sqlite_backend_find_idempotent(storage_backend_t *b, const char *key, const char *method,
                                          const char *target, stored_request_t *out) {
  return sqlite_queue_find_idempotent(Q(b), key, method, target, out);
}

static int sqlite_backend_find_completed(storage_backend_t *b, const char *key, const char *method,
                                         const char *target, stored_request_t *out) {
  return sqlite_queue_find_completed(Q(b), key, method, target, out);
}

static int sqlite_backend_get(storage_backend_t *b, const char *id, bool with_payload,
                              stored_request_t *out) {
  return sqlite_queue_get(Q(b), id, with_payload, out);
}

static int sqlite_backend_cancel(storage_backend_t *b, const char *id, int64_t now,
                                 stored_request_t *out) {
  return sqlite_queue_cancel(Q(b), id, now, out);
}

static int sqlite_backend_retry_now(storage_backend_t *b, const char *id, int64_t now,
                                    stored_request_t *out) {
  return sqlite_queue_retry_now(Q(b), id, now, out);
}

static int sqlite_backend_claim(storage_backend_t *b, int64_t now, const char *flow,
                                int64_t max_age_ms, size_t limit, stored_request_t *out,
                                int64_t *dead_out) {
  return sqlite_queue_claim(Q(b), now, flow, max_age_ms, limit, out, dead_out);
}

static int sqlite_backend_finish(storage_backend_t *b, const char *id, int64_t now,
                                 const attempt_outcome_t *o) {
  return sqlite_queue_finish(Q(b), id, now, o);
}

/* Old delivered or given-up notices go with the rows of the same age. */
static int64_t sqlite_backend_purge(storage_backend_t *b, int64_t cutoff, int64_t limit) {
  int64_t n = sqlite_queue_purge(Q(b), cutoff, limit);
  if (n < 0 || n >= limit)
    return n;
  int64_t notices = sqlite_callbacks_purge(CB(b), cutoff, limit - n);
  return notices < 0 ? notices : n + notices;
}

/* Free pages beyond the quarter of the file that is kept free (or an
 * error). Those are reused by the next answers before the file grows, so
 * giving them back would only move live pages about (each one moved costs
 * reads and writes) and grow the file again; beyond that the file tracks
 * its live data. */
static int64_t sqlite_free_excess(sqlite_queue_t *q) {
  int64_t free_pages = sqlite_queue_free_pages(q);
  int64_t pages = sqlite_queue_pages(q);
  if (free_pages < 0)
    return free_pages;
  if (pages < 0)
    return pages;
  int64_t keep = pages * SQLITE_FREE_KEPT_PCT / 100;
  return free_pages > keep ? free_pages - keep : 0;
}

/* Each page given back shrinks the file and so the share kept free: the
 * excess is looked at again after every step. */
static int64_t sqlite_backend_reclaim(storage_backend_t *b, int64_t limit) {
  int64_t given = 0;
  while (given < limit) {
    int64_t excess = sqlite_free_excess(Q(b));
    if (excess <= 0)
      return excess < 0 ? excess : given;
    int64_t ask = excess < limit - given ? excess : limit - given;
    int64_t n = sqlite_queue_vacuum(Q(b), ask);
    if (n < 0)
      return n;
    given += n;
    if (n < ask)
      break; /* the free list is empty, or the file cannot shrink */
  }
  return given;
}

/* TRUNCATE: what the purge deleted leaves the WAL, and the file is cut to
 * its pages. */
static void sqlite_backend_purge_finished(storage_backend_t *b) {
  (void)sqlite_queue_checkpoint(Q(b));
}

static int sqlite_backend_counts(storage_backend_t *b, queue_counts_t *out) {
  int rc = sqlite_queue_counts(Q(b), out);
  return rc != 0 ? rc : sqlite_callbacks_count(CB(b), out->callbacks);
}

static int sqlite_backend_callback_due(storage_backend_t *b, int64_t now, size_t body_cap,
                                       size_t limit, storage_callback_t *out) {
  return sqlite_callbacks_due(CB(b), now, body_cap, limit, out);
}

static int sqlite_backend_callback_finish(storage_backend_t *b, int64_t seq, int64_t now,
                                          callback_state_t state, int64_t next_at,
                                          const char *error) {
  return sqlite_callbacks_finish(CB(b), seq, now, state, next_at, error);
}

static int64_t sqlite_backend_callback_next_due(storage_backend_t *b) {
  return sqlite_callbacks_next_due(CB(b));
}

static int sqlite_backend_list(storage_backend_t *b, int state, int64_t after_seq, size_t limit,
                               stored_request_t *out, int64_t *last_seq) {
  return sqlite_queue_list(Q(b), state, after_seq, limit, out, last_seq);
}

static int sqlite_backend_list_filtered(storage_backend_t *b, const storage_filter_t *f,
                                        size_t scan, size_t limit, stored_request_t *out,
                                        storage_page_t *page) {
  return sqlite_queue_list_filtered(Q(b), f, scan, limit, out, page);
}

static int sqlite_backend_bulk(storage_backend_t *b, storage_bulk_t op, const storage_filter_t *f,
                               int64_t now, size_t scan, size_t limit, stored_request_t *out,
                               storage_page_t *page) {
  return sqlite_queue_bulk(Q(b), op, f, now, scan, limit, out, page);
}

static int sqlite_backend_flows(storage_backend_t *b, storage_flow_t *out, size_t cap) {
  return sqlite_queue_flows(Q(b), out, cap);
}

static int64_t sqlite_backend_next_due(storage_backend_t *b) { return sqlite_queue_next_due(Q(b)); }

static int64_t sqlite_backend_flow_next_due(storage_backend_t *b, const char *flow) {
  return sqlite_queue_flow_next_due(Q(b), flow);
}

static int64_t sqlite_backend_unfinished(storage_backend_t *b) {
  return sqlite_queue_unfinished(Q(b));
}

static const storage_backend_ops_t sqlite_backend_ops = {
    .name = "sqlite",
    .close = sqlite_backend_close,
    .begin = sqlite_backend_begin,
    .commit = sqlite_backend_commit,
    .rollback = sqlite_backend_rollback,
    .probe = sqlite_backend_probe,
    .insert = sqlite_backend_insert,
    .insert_many = storage_backend_insert_each,
    .find_idempotent = sqlite_backend_find_idempotent,
    .find_completed = sqlite_backend_find_completed,
    .get = sqlite_backend_get,
    .cancel = sqlite_backend_cancel,
    .retry_now = sqlite_backend_retry_now,
    .claim = sqlite_backend_claim,
    .finish = sqlite_backend_finish,
    .purge = sqlite_backend_purge,
    .reclaim = sqlite_backend_reclaim,
    .purge_finished = sqlite_backend_purge_finished,
    .counts = sqlite_backend_counts,
    .list = sqlite_backend_list,
    .list_filtered = sqlite_backend_list_filtered,
    .bulk = sqlite_backend_bulk,
    .flows = sqlite_backend_flows,
    .next_due = sqlite_backend_next_due,
    .flow_next_due = sqlite_backend_flow_next_due,
    .unfinished = sqlite_backend_unfinished,
    .callback_due = sqlite_backend_callback_due,
    .callback_finish = sqlite_backend_callback_finish,
    .callback_next_due = sqlite_backend_callback_next_due,
};

int sqlite_backend_open(storage_backend_t **out, const char *path, const storage_params_t *params,
                        char *err, size_t errlen) {
  *out = NULL;
  sqlite_backend_t *sb = calloc(1, sizeof(*sb));
  if (sb == NULL)
    return -ENOMEM;
  int rc = sqlite_queue_open(&sb->q, path, params->max_queue, err, errlen);
  if (rc != 0) {
    free(sb);
    return rc;
  }
  sb->cb = sqlite_callbacks_open(sqlite_queue_handle(sb->q));
  if (sb->cb == NULL) {
    snprintf(err, errlen, "cannot prepare the callbacks' statements");
    sqlite_queue_close(sb->q);
    free(sb);
    return -ENOMEM;
  }
  sb->super.ops = &sqlite_backend_ops;
  sb->super.info.recovered = sqlite_queue_recovered(sb->q);
  sb->super.info.reclaims_space = sqlite_queue_reclaims_space(sb->q);
  sb->super.info.converted_ms = sqlite_queue_converted_ms(sb->q);
  *out = &sb->super;
  return 0;
}
