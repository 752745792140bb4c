#include "storage/sqlite/sqlite_callbacks.h"
#include "storage/sqlite/sqlite_column.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CB_DUE, CB_FINISH, CB_NEXT_DUE, CB_COUNT, CB_PURGE, CB_NSTMT };

static const char *const callbacks_sql[CB_NSTMT] = {
    /* The request and its answer are joined at delivery: the answer is
     * read only when it fits the notice (?3), else only its size. */
    [CB_DUE] = "SELECT c.seq, c.request_id, c.url, c.request_state, c.attempts, c.final_status, "
               "c.sends, c.created_at, r.method, r.target, r.last_error, r.response_status, "
               "r.response_headers, "
               "CASE WHEN length(a.body) <= ?3 THEN a.body END, coalesce(length(a.body), 0) "
               "FROM callbacks c INDEXED BY callbacks_due "
               "LEFT JOIN requests r ON r.id = c.request_id "
               "LEFT JOIN answers a ON a.seq = r.seq "
               "WHERE c.state = 0 AND c.next_attempt_at <= ?1 "
               "ORDER BY c.next_attempt_at, c.seq LIMIT ?2",
    [CB_FINISH] = "UPDATE callbacks SET state = ?2, next_attempt_at = ?3, updated_at = ?4, "
                  "sends = sends + 1, last_error = ?5 WHERE seq = ?1 AND state = 0",
    [CB_NEXT_DUE] = "SELECT min(next_attempt_at) FROM callbacks INDEXED BY callbacks_due "
                    "WHERE state = 0",
    [CB_COUNT] = "SELECT state, count(*) FROM callbacks GROUP BY state",
    [CB_PURGE] = "DELETE FROM callbacks WHERE seq IN (SELECT seq FROM callbacks INDEXED BY "
                 "callbacks_finished WHERE state > 0 AND updated_at < ?1 ORDER BY updated_at "
                 "LIMIT ?2)",
};

struct sqlite_callbacks_s {
  sqlite3_stmt *st[CB_NSTMT];
};

static int callbacks_error(int rc) {
  switch (rc & 0xff) {
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_NOMEM:
    return -ENOMEM;
  default:
    return -EIO;
  }
}

sqlite_callbacks_t *sqlite_callbacks_open(sqlite3 *db) {
  sqlite_callbacks_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  for (int i = 0; i < CB_NSTMT; i++) {
    if (sqlite3_prepare_v3(db, callbacks_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL) !=
        SQLITE_OK) {
      sqlite_callbacks_close(c);
      return NULL;
    }
  }
  return c;
}

void sqlite_callbacks_close(sqlite_callbacks_t *c) {
  if (c == NULL)
    return;
  for (int i = 0; i < CB_NSTMT; i++)
    sqlite3_finalize(c->st[i]);
  free(c);
}

static sqlite3_stmt *callbacks_stmt(sqlite_callbacks_t *c, int which) {
  sqlite3_stmt *st = c->st[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static int callbacks_read(sqlite3_stmt *st, storage_callback_t *o) {
  memset(o, 0, sizeof(*o));
  o->seq = sqlite3_column_int64(st, 0);
  const unsigned char *id = sqlite3_column_text(st, 1);
  snprintf(o->request_id, sizeof(o->request_id), "%s", id ? (const char *)id : "");
  o->url = sqlite_column_dup(st, 2, NULL);
  o->request_state = (rq_state_t)sqlite3_column_int(st, 3);
  o->attempts = sqlite3_column_int64(st, 4);
  o->final_status = sqlite3_column_int(st, 5);
  o->sends = sqlite3_column_int64(st, 6);
  o->created_at = sqlite3_column_int64(st, 7);
  o->method = sqlite_column_dup(st, 8, NULL);
  o->target = sqlite_column_dup(st, 9, NULL);
  o->last_error = sqlite_column_dup(st, 10, NULL);
  o->response_status = sqlite3_column_int(st, 11);
  o->has_answer = sqlite3_column_type(st, 11) != SQLITE_NULL;
  o->response_headers = sqlite_column_dup(st, 12, &o->response_headers_len);
  o->response_body = sqlite_column_dup(st, 13, &o->response_body_len);
  if (o->response_body == NULL)
    o->response_body_len = (size_t)sqlite3_column_int64(st, 14);
  bool lost = o->url == NULL ||
              (sqlite3_column_type(st, 13) != SQLITE_NULL && o->response_body == NULL) ||
              (sqlite3_column_type(st, 12) != SQLITE_NULL && o->response_headers == NULL);
  if (lost) {
    storage_callback_free(o);
    return -ENOMEM;
  }
  return 0;
}

int sqlite_callbacks_due(sqlite_callbacks_t *c, int64_t now, size_t body_cap, size_t limit,
                         storage_callback_t *out) {
  sqlite3_stmt *st = callbacks_stmt(c, CB_DUE);
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)body_cap);
  int n = 0, rc;
  while ((size_t)n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int err = callbacks_read(st, &out[n]);
    if (err != 0) {
      while (n > 0)
        storage_callback_free(&out[--n]);
      sqlite3_reset(st);
      return err;
    }
    n++;
  }
  sqlite3_reset(st);
  if ((size_t)n < limit && rc != SQLITE_DONE) {
    while (n > 0)
      storage_callback_free(&out[--n]);
    return callbacks_error(rc);
  }
  return n;
}

int sqlite_callbacks_finish(sqlite_callbacks_t *c, int64_t seq, int64_t now, callback_state_t state,
                            int64_t next_at, const char *error) {
  sqlite3_stmt *st = callbacks_stmt(c, CB_FINISH);
  sqlite3_bind_int64(st, 1, seq);
  sqlite3_bind_int(st, 2, (int)state);
  if (state == CALLBACK_PENDING)
    sqlite3_bind_int64(st, 3, next_at);
  else
    sqlite3_bind_null(st, 3);
  sqlite3_bind_int64(st, 4, now);
  if (error != NULL)
    sqlite3_bind_text(st, 5, error, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return callbacks_error(rc);
  return 0;
}

int64_t sqlite_callbacks_next_due(sqlite_callbacks_t *c) {
  sqlite3_stmt *st = callbacks_stmt(c, CB_NEXT_DUE);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return v;
}

int sqlite_callbacks_count(sqlite_callbacks_t *c, int64_t *counts) {
  memset(counts, 0, sizeof(int64_t) * CALLBACK_NSTATES);
  sqlite3_stmt *st = callbacks_stmt(c, CB_COUNT);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int s = sqlite3_column_int(st, 0);
    if (s >= 0 && s < CALLBACK_NSTATES)
      counts[s] = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : callbacks_error(rc);
}

int64_t sqlite_callbacks_purge(sqlite_callbacks_t *c, int64_t cutoff, int64_t limit) {
  sqlite3_stmt *st = callbacks_stmt(c, CB_PURGE);
  sqlite3_bind_int64(st, 1, cutoff);
  sqlite3_bind_int64(st, 2, limit);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return callbacks_error(rc);
  return sqlite3_changes(sqlite3_db_handle(st));
}
