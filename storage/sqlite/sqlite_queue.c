#include "storage/sqlite/sqlite_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/sqlite/schema.h"
#include "storage/sqlite/sqlite_column.h"

/* The columns of a full row, in the order row_read() expects. */
#define ROW_COLUMNS                                                                                \
  "seq, id, state, method, target, headers, body, idempotency_key, attempts, "                     \
  "created_at, "                                                                                   \
  "next_attempt_at, updated_at, last_status, last_error, response_status, "                        \
  "response_headers, "                                                                             \
  "(SELECT body FROM answers WHERE answers.seq = requests.seq), flow, deadline_at, body_sha256, "  \
  "last_answer_headers, last_answer_body"
/* The same without the payloads, for status answers and listings. */
#define ROW_COLUMNS_BRIEF                                                                          \
  "seq, id, state, method, target, NULL, NULL, idempotency_key, attempts, "                        \
  "created_at, "                                                                                   \
  "next_attempt_at, updated_at, last_status, last_error, response_status, "                        \
  "NULL, NULL, flow, deadline_at, body_sha256, last_answer_headers, last_answer_body"

/* A filter's conditions but the state (ST_LIST_FILTERED*). */
#define SQL_FILTER_REST                                                                            \
  "AND (?4 IS NULL OR method = ?4) "                                                               \
  "AND (?5 IS NULL OR substr(CAST(target AS BLOB), 1, length(?5)) = ?5) "                          \
  "AND (?6 IS NULL OR idempotency_key = ?6) AND (?7 IS NULL OR last_status = ?7) "                 \
  "AND created_at >= ?8 AND created_at < ?9 ORDER BY seq LIMIT ?10"

enum {
  ST_INSERT,
  ST_FIND_IDEM,
  ST_FIND_DONE,
  ST_BURY_DEADLINE,
  ST_GET_FULL,
  ST_GET_BRIEF,
  ST_SET_STATE,
  ST_EXPIRE,
  ST_REVIVE,
  ST_DUE,
  ST_DUE_FLOW,
  ST_CLAIM_ONE,
  ST_FINISH,
  ST_ANSWER_PUT,
  ST_RELEASE,
  ST_NEXT_DUE,
  ST_NEXT_DUE_FLOW,
  ST_PURGE_PICK,
  ST_PURGE_ANSWER,
  ST_PURGE_ROW,
  ST_OLDEST_QUEUED,
  ST_LIST_STATE,
  ST_LIST_ALL,
  ST_WINDOW_ALL,
  ST_WINDOW_STATE,
  ST_LIST_FILTERED,
  ST_LIST_FILTERED_STATE,
  ST_FLOWS,
  ST_PROBE,
  ST_FREE_PAGES,
  ST_PAGE_COUNT,
  ST_COUNT
};

static const char *const statement_sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT INTO requests (id, state, method, target, headers, body, "
                  "idempotency_key, attempts, created_at, next_attempt_at, updated_at, "
                  "last_status, last_error, flow, deadline_at, body_sha256, "
                  "last_answer_headers, last_answer_body, callback_url) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [ST_FIND_IDEM] = "SELECT " ROW_COLUMNS_BRIEF " FROM requests WHERE idempotency_key = ? AND "
                     "method = ? AND target = ? AND state IN (" SQL_QUEUED ", " SQL_INFLIGHT ")",
    [ST_FIND_DONE] = "SELECT " ROW_COLUMNS_BRIEF " FROM requests INDEXED BY "
                     "requests_idempotency_done WHERE idempotency_key = ? AND method = ? AND "
                     "target = ? AND state = " SQL_COMPLETED " ORDER BY seq DESC LIMIT 1",
    /* Not delivered by its deadline: the reason replaces the last error. */
    [ST_BURY_DEADLINE] =
        "UPDATE requests SET state = " SQL_DEAD ", next_attempt_at = NULL, updated_at = ?1, "
        "last_error = 'deadline: not delivered by its Retryd-Deadline' "
        "WHERE seq = ?2 AND state = " SQL_QUEUED,
    [ST_GET_FULL] = "SELECT " ROW_COLUMNS " FROM requests WHERE id = ?",
    [ST_GET_BRIEF] = "SELECT " ROW_COLUMNS_BRIEF " FROM requests WHERE id = ?",
    [ST_SET_STATE] = "UPDATE requests SET state = ?, next_attempt_at = ?, updated_at = ? "
                     "WHERE id = ?",
    [ST_EXPIRE] =
        "UPDATE requests SET state = " SQL_DEAD ", next_attempt_at = NULL, updated_at = ?1, "
        "last_error = coalesce(last_error, 'expired: older than --max-age') "
        "WHERE seq = ?2 AND state = " SQL_QUEUED,
    /* A dead row retried by hand starts a new life: its age counts again. */
    [ST_REVIVE] =
        "UPDATE requests SET state = " SQL_QUEUED ", next_attempt_at = ?1, updated_at = ?1, "
        "created_at = CASE WHEN state = " SQL_DEAD " THEN ?1 ELSE created_at END, "
        "deadline_at = CASE WHEN state = " SQL_DEAD " THEN NULL ELSE deadline_at END WHERE id = ?2",
    /* INDEXED BY: the planner would otherwise walk every queued row through
     * requests_by_state; the partial index answers from its first entries. */
    [ST_DUE] = "SELECT " ROW_COLUMNS " FROM requests INDEXED BY requests_due "
               "WHERE state = " SQL_QUEUED
               " AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
    /* One flow's due rows, in the same order, from the flow's part of its
     * index: the other flows' rows are never read. */
    [ST_DUE_FLOW] = "SELECT " ROW_COLUMNS " FROM requests INDEXED BY requests_flow_due "
                    "WHERE state = " SQL_QUEUED " AND flow = ?3"
                    " AND next_attempt_at <= ?1 ORDER BY next_attempt_at, seq LIMIT ?2",
    [ST_CLAIM_ONE] = "UPDATE requests SET state = " SQL_INFLIGHT ", attempts = attempts + 1, "
                     "next_attempt_at = NULL, updated_at = ? WHERE seq = ? AND "
                     "state = " SQL_QUEUED,
    [ST_FINISH] = "UPDATE requests SET state = ?, next_attempt_at = ?, updated_at = ?, "
                  "last_status = ?, last_error = ?, response_status = ?, "
                  "response_headers = ?, "
                  "last_answer_headers = coalesce(?9, last_answer_headers), "
                  "last_answer_body = CASE WHEN ?9 IS NULL THEN last_answer_body ELSE ?10 END "
                  "WHERE id = ?8 AND state = " SQL_INFLIGHT " RETURNING seq",
    /* The answer's body, in its own table (schema step 2 says why). */
    [ST_ANSWER_PUT] = "INSERT OR REPLACE INTO answers (seq, body) VALUES (?, ?)",
    /* Not attempted after all: the attempt is not counted, the last real
     * one's status and error stay. */
    [ST_RELEASE] =
        "UPDATE requests SET state = " SQL_QUEUED ", next_attempt_at = ?1, updated_at = ?1, "
        "attempts = attempts - 1 WHERE id = ?2 AND state = " SQL_INFLIGHT,
    [ST_NEXT_DUE] = "SELECT min(next_attempt_at) FROM requests INDEXED BY requests_due "
                    "WHERE state = " SQL_QUEUED,
    [ST_NEXT_DUE_FLOW] = "SELECT min(next_attempt_at) FROM requests INDEXED BY requests_flow_due "
                         "WHERE state = " SQL_QUEUED " AND flow = ?1",
    /* Oldest finish first, a bounded number at a time (the caller slices a
     * purge so other commits get through between the slices). */
    [ST_PURGE_PICK] =
        "SELECT seq, state FROM requests INDEXED BY requests_finished "
        "WHERE state >= " SQL_FIRST_FINISHED " AND updated_at < ?1 ORDER BY updated_at LIMIT ?2",
    [ST_PURGE_ANSWER] = "DELETE FROM answers WHERE seq = ?",
    [ST_PURGE_ROW] = "DELETE FROM requests WHERE seq = ?",
    /* Rows are inserted in creation order, so the first queued seq is the
     * oldest: one index probe instead of a walk. */
    [ST_OLDEST_QUEUED] =
        "SELECT created_at FROM requests WHERE state = " SQL_QUEUED " ORDER BY seq LIMIT 1",
    [ST_LIST_STATE] = "SELECT " ROW_COLUMNS_BRIEF " FROM requests WHERE state = ? AND seq > ? "
                      "ORDER BY seq LIMIT ?",
    [ST_LIST_ALL] = "SELECT " ROW_COLUMNS_BRIEF " FROM requests WHERE seq > ? ORDER BY seq "
                    "LIMIT ?",
    /* The end of a filtered step's scan: the seq of the scan-th row after
     * ?1 (?2 is scan - 1), of any state or of state ?3 (through its index);
     * no row: the scan reaches the table's end. */
    [ST_WINDOW_ALL] = "SELECT seq FROM requests WHERE seq > ?1 ORDER BY seq LIMIT 1 OFFSET ?2",
    [ST_WINDOW_STATE] = "SELECT seq FROM requests INDEXED BY requests_by_state "
                        "WHERE state = ?3 AND seq > ?1 ORDER BY seq LIMIT 1 OFFSET ?2",
    /* The rows of a scan (?1, ?2] that match a filter (storage_filter_t);
     * an absent condition is NULL. The prefix compares bytes. */
    [ST_LIST_FILTERED] = "SELECT " ROW_COLUMNS_BRIEF " FROM requests WHERE seq > ?1 AND seq <= ?2 "
                         "AND (?3 = 0 OR ((?3 >> state) & 1) = 1) " SQL_FILTER_REST,
    [ST_LIST_FILTERED_STATE] =
        "SELECT " ROW_COLUMNS_BRIEF " FROM requests INDEXED BY "
        "requests_by_state WHERE state = ?3 AND seq > ?1 AND seq <= ?2 " SQL_FILTER_REST,
    /* Queued rows from the per-flow due index alone (it holds the flow and
     * the due time: no row is read), inflight ones (few: at most what the
     * attempts in flight hold) through the state index. BINARY collation:
     * names in byte order. */
    [ST_FLOWS] = "SELECT flow, sum(q), sum(i), min(d) FROM ("
                 "SELECT flow, 1 AS q, 0 AS i, next_attempt_at AS d FROM requests "
                 "INDEXED BY requests_flow_due WHERE state = " SQL_QUEUED " "
                 "UNION ALL SELECT flow, 0, 1, NULL FROM requests WHERE state = " SQL_INFLIGHT
                 ") GROUP BY flow ORDER BY flow LIMIT ?",
    /* A different value every time: SQLite skips writing a row rewritten
     * with the same bytes, and the probe must write. */
    [ST_PROBE] = "UPDATE store_probe SET n = n + 1 WHERE id = 1",
    [ST_FREE_PAGES] = "PRAGMA freelist_count",
    [ST_PAGE_COUNT] = "PRAGMA page_count",
};

struct sqlite_queue_s {
  sqlite3 *db;
  sqlite3_stmt *st[ST_COUNT];
  int64_t max_queue;
  /* Rows per state, kept in step with every change so counts and the
   * --max-queue check never walk the table. */
  int64_t count[RQ_NSTATES];
  int64_t recovered;
  bool durable;         /* synchronous=FULL in force */
  bool reclaims;        /* auto_vacuum = INCREMENTAL: free pages can be given back */
  int64_t converted_ms; /* -1, or how long the conversion to it took at open */
};

/* Maps SQLite's result codes to the errors of storage/stored_request.h. */
static int sqlite_queue_error(int rc) {
  switch (rc & 0xff) {
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_CONSTRAINT:
    return -EEXIST;
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
    return -EINVAL;
  default:
    return -EIO;
  }
}

static int64_t row_read(sqlite3_stmt *st, stored_request_t *r) {
  memset(r, 0, sizeof(*r));
  int64_t seq = sqlite3_column_int64(st, 0);
  const unsigned char *id = sqlite3_column_text(st, 1);
  snprintf(r->id, sizeof(r->id), "%s", id ? (const char *)id : "");
  r->state = (rq_state_t)sqlite3_column_int(st, 2);
  r->method = sqlite_column_dup(st, 3, NULL);
  r->target = sqlite_column_dup(st, 4, NULL);
  r->headers = sqlite_column_dup(st, 5, &r->headers_len);
  r->body = sqlite_column_dup(st, 6, &r->body_len);
  r->idempotency_key = sqlite_column_dup(st, 7, NULL);
  r->attempts = sqlite3_column_int64(st, 8);
  r->created_at = sqlite3_column_int64(st, 9);
  r->next_attempt_at = sqlite3_column_int64(st, 10);
  r->updated_at = sqlite3_column_int64(st, 11);
  r->last_status = sqlite3_column_int(st, 12);
  r->last_error = sqlite_column_dup(st, 13, NULL);
  r->response_status = sqlite3_column_int(st, 14);
  r->response_headers = sqlite_column_dup(st, 15, &r->response_headers_len);
  r->response_body = sqlite_column_dup(st, 16, &r->response_body_len);
  r->flow = sqlite_column_dup(st, 17, NULL);
  if (r->flow == NULL)
    r->flow = calloc(1, 1); /* never NULL in a row read back */
  r->deadline_at = sqlite3_column_int64(st, 18);
  r->body_sha256 = sqlite_column_dup(st, 19, NULL);
  r->last_answer_headers = sqlite_column_dup(st, 20, &r->last_answer_headers_len);
  r->last_answer_body = sqlite_column_dup(st, 21, &r->last_answer_body_len);
  return seq;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static void bind_blob_or_null(sqlite3_stmt *st, int i, const void *p, size_t len) {
  if (p)
    sqlite3_bind_blob64(st, i, p, len, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static void bind_time_or_null(sqlite3_stmt *st, int i, int64_t t) {
  if (t)
    sqlite3_bind_int64(st, i, t);
  else
    sqlite3_bind_null(st, i);
}

static sqlite3_stmt *stmt(sqlite_queue_t *q, int which) {
  sqlite3_stmt *st = q->st[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

/* Runs a statement that returns at most one row into out (brief or full). */
static int get_one(sqlite_queue_t *q, sqlite3_stmt *st, stored_request_t *out) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    row_read(st, out);
    sqlite3_reset(st);
    return 0;
  }
  sqlite3_reset(st);
  (void)q;
  return rc == SQLITE_DONE ? -ENOENT : sqlite_queue_error(rc);
}

static int exec_simple(sqlite3 *db, const char *sql) {
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : sqlite_queue_error(rc);
}

int sqlite_queue_set_durable(sqlite_queue_t *q, bool durable) {
  if (q->durable == durable)
    return 0;
  int rc =
      exec_simple(q->db, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  if (rc == 0)
    q->durable = durable;
  return rc;
}

int sqlite_queue_begin(sqlite_queue_t *q) { return exec_simple(q->db, "BEGIN IMMEDIATE"); }

int sqlite_queue_commit(sqlite_queue_t *q) { return exec_simple(q->db, "COMMIT"); }

void sqlite_queue_rollback(sqlite_queue_t *q) {
  if (!sqlite3_get_autocommit(q->db))
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
}

int64_t sqlite_queue_pages_written(sqlite_queue_t *q) {
  int cur = 0, high = 0;
  sqlite3_db_status(q->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &high, 0);
  return cur;
}

int sqlite_queue_probe(sqlite_queue_t *q) {
  int rc = sqlite_queue_set_durable(q, true);
  if (rc == 0)
    rc = sqlite_queue_begin(q);
  if (rc == 0) {
    sqlite3_stmt *st = stmt(q, ST_PROBE);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    rc = step == SQLITE_DONE ? 0 : sqlite_queue_error(step);
  }
  if (rc == 0)
    rc = sqlite_queue_commit(q);
  if (rc != 0)
    sqlite_queue_rollback(q);
  return rc;
}

/* One walk of the state index: at open, and after a rolled-back batch. */
static void count_states(sqlite_queue_t *q) {
  sqlite3_stmt *st;
  memset(q->count, 0, sizeof(q->count));
  if (sqlite3_prepare_v2(q->db, "SELECT state, count(*) FROM requests GROUP BY state", -1, &st,
                         NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      int state = sqlite3_column_int(st, 0);
      if (state >= 0 && state < RQ_NSTATES)
        q->count[state] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
  }
}

static int64_t unfinished(const sqlite_queue_t *q) {
  return q->count[RQ_QUEUED] + q->count[RQ_INFLIGHT];
}

static void move_count(sqlite_queue_t *q, rq_state_t from, rq_state_t to, int64_t n) {
  q->count[from] -= n;
  q->count[to] += n;
}

/* A failed step of opening, said in one line a user can act on. */
static int open_error(sqlite_queue_t *q, int rc, const char *path, char *err, size_t errlen) {
  int result = sqlite_queue_error(rc);
  snprintf(err, errlen, "%s: %s", path,
           result == -EBUSY    ? "in use by another process (is another retryd running?)"
           : result == -EINVAL ? "not a database, or corrupt (left untouched)"
                               : sqlite3_errmsg(q->db));
  return result;
}

static int64_t pragma_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    return -1;
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A file written by a retryd before incremental auto-vacuum (schema 1) is
 * rewritten once with it, by a VACUUM: that takes as long as writing the
 * file's live data, and for a while as much free disk again (a temporary
 * copy, then the WAL). Without it the file never shrinks and freeing a big
 * answer reads its whole overflow chain, so it is worth one slow start; if
 * it fails (a full disk), retryd runs on without, and tries again at the
 * next start. Outside a transaction, before statements are prepared. */
static void convert_to_incremental_vacuum(sqlite_queue_t *q) {
  q->converted_ms = -1;
  q->reclaims = pragma_int(q->db, "PRAGMA auto_vacuum") == 2;
  if (q->reclaims)
    return;
  int64_t t0 = monotonic_ms();
  if (sqlite3_exec(q->db, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM", NULL, NULL, NULL) !=
      SQLITE_OK)
    return;
  q->reclaims = pragma_int(q->db, "PRAGMA auto_vacuum") == 2;
  if (q->reclaims)
    q->converted_ms = monotonic_ms() - t0;
}

int sqlite_queue_open(sqlite_queue_t **out, const char *path, int64_t max_queue, char *err,
                      size_t errlen) {
  *out = NULL;
  /* Create the file ourselves so it is 0600 from its first byte; SQLite
   * gives its -wal file the same mode. An existing file is not opened here:
   * closing a descriptor would drop every POSIX lock this process holds on
   * it, and it may not be ours to change. */
  bool created = false;
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    created = true;
    close(fd);
  } else if (errno != EEXIST) {
    snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
    return -errno;
  }
  sqlite_queue_t *q = calloc(1, sizeof(*q));
  if (q == NULL)
    return -ENOMEM;
  q->max_queue = max_queue;
  int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  int result = -EIO;
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot open %s: %s", path, q->db ? sqlite3_errmsg(q->db) : "no memory");
    goto fail;
  }
  sqlite3_extended_result_codes(q->db, 1);
  /* Exclusive locking: the first write below takes a lock held until
   * close, so a second retryd on the same file is refused, and the WAL
   * index lives in memory (no -shm file). */
  static const char *const pragmas[] = {
      "PRAGMA locking_mode = EXCLUSIVE",
      "PRAGMA busy_timeout = 0",
      "PRAGMA synchronous = FULL",
      "PRAGMA secure_delete = ON",
  };
  char why[512] = "";
  for (size_t i = 0; i < sizeof(pragmas) / sizeof(pragmas[0]); i++) {
    rc = sqlite3_exec(q->db, pragmas[i], NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      result = open_error(q, rc, path, err, errlen);
      goto fail;
    }
  }
  /* Whose file is it? Checked before anything is written, WAL mode
   * included: a file that is not ours is left exactly as it was. */
  result = schema_check_owner(q->db, why, sizeof(why));
  if (result != 0) {
    snprintf(err, errlen, "%s: %s", path, why);
    goto fail;
  }
  /* Before WAL mode writes the first page: a new file is created with
   * incremental auto-vacuum (a pointer map, and free pages that can be
   * given back). On a file that has tables it only says what the VACUUM
   * below converts it to. */
  rc = sqlite3_exec(q->db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(q->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    result = open_error(q, rc, path, err, errlen);
    goto fail;
  }
  result = schema_migrate(q->db, why, sizeof(why));
  if (result != 0) {
    snprintf(err, errlen, "%s: %s", path, why);
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    goto fail;
  }
  /* Rows a crash left inflight were maybe sent, maybe not: at-least-once
   * says send them again. */
  rc = sqlite3_exec(q->db,
                    "UPDATE requests SET state = " SQL_QUEUED ", next_attempt_at = updated_at "
                    "WHERE state = " SQL_INFLIGHT,
                    NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    q->recovered = sqlite3_changes64(q->db);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    result = sqlite_queue_error(rc);
    snprintf(err, errlen, "%s: cannot recover inflight rows: %s", path, sqlite3_errmsg(q->db));
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    goto fail;
  }
  convert_to_incremental_vacuum(q);
  for (int i = 0; i < ST_COUNT; i++) {
    rc =
        sqlite3_prepare_v3(q->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL);
    if (rc != SQLITE_OK) {
      snprintf(err, errlen, "%s: cannot prepare a statement: %s", path, sqlite3_errmsg(q->db));
      result = -EIO;
      goto fail;
    }
  }
  count_states(q);
  q->durable = true;
  if (!created && chmod(path, 0600) != 0) {
    snprintf(err, errlen, "cannot make %s private (0600): %s", path, strerror(errno));
    result = -EPERM;
    goto fail;
  }
  *out = q;
  return 0;
fail:
  sqlite_queue_close(q);
  return result;
}

void sqlite_queue_close(sqlite_queue_t *q) {
  if (q == NULL)
    return;
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(q->st[i]);
  sqlite3_close(q->db);
  free(q);
}

sqlite3 *sqlite_queue_handle(sqlite_queue_t *q) { return q->db; }

int64_t sqlite_queue_recovered(const sqlite_queue_t *q) { return q->recovered; }

int64_t sqlite_queue_unfinished(const sqlite_queue_t *q) { return unfinished(q); }

void sqlite_queue_recount(sqlite_queue_t *q) { count_states(q); }

int sqlite_queue_insert(sqlite_queue_t *q, const stored_request_t *r, stored_request_t *existing) {
  const char *flow = r->flow != NULL ? r->flow : "";
  if (strlen(flow) >= STORAGE_FLOW_MAX)
    return -EINVAL;
  bool takes_room = r->state == RQ_QUEUED || r->state == RQ_INFLIGHT;
  if (takes_room && unfinished(q) >= q->max_queue) {
    /* A repeat of a stored request is answered from its twin even when
     * the queue is full: it takes no room. */
    if (r->idempotency_key != NULL && existing != NULL &&
        sqlite_queue_find_idempotent(q, r->idempotency_key, r->method, r->target, existing) == 0)
      return -EEXIST;
    return -EDQUOT;
  }
  sqlite3_stmt *st = stmt(q, ST_INSERT);
  sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, r->state);
  sqlite3_bind_text(st, 3, r->method, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, r->target, -1, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 5, r->headers ? r->headers : "", r->headers_len, SQLITE_STATIC);
  bind_blob_or_null(st, 6, r->body, r->body_len);
  bind_text_or_null(st, 7, r->idempotency_key);
  sqlite3_bind_int64(st, 8, r->attempts);
  sqlite3_bind_int64(st, 9, r->created_at);
  bind_time_or_null(st, 10, r->next_attempt_at);
  sqlite3_bind_int64(st, 11, r->updated_at ? r->updated_at : r->created_at);
  if (r->last_status)
    sqlite3_bind_int(st, 12, r->last_status);
  bind_text_or_null(st, 13, r->last_error);
  sqlite3_bind_text(st, 14, flow, -1, SQLITE_STATIC);
  bind_time_or_null(st, 15, r->deadline_at);
  bind_text_or_null(st, 16, r->body_sha256);
  bind_blob_or_null(st, 17, r->last_answer_headers, r->last_answer_headers_len);
  bind_blob_or_null(st, 18, r->last_answer_body, r->last_answer_body_len);
  bind_text_or_null(st, 19, r->callback_url);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) {
    q->count[r->state]++;
    return 0;
  }
  int err = sqlite_queue_error(rc);
  if (err == -EEXIST && r->idempotency_key != NULL && existing != NULL) {
    int found = sqlite_queue_find_idempotent(q, r->idempotency_key, r->method, r->target, existing);
    if (found != 0)
      return found;
  }
  return err;
}

int sqlite_queue_find_idempotent(sqlite_queue_t *q, const char *key, const char *method,
                                 const char *target, stored_request_t *out) {
  sqlite3_stmt *st = stmt(q, ST_FIND_IDEM);
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, method, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
  return get_one(q, st, out);
}

int sqlite_queue_find_completed(sqlite_queue_t *q, const char *key, const char *method,
                                const char *target, stored_request_t *out) {
  sqlite3_stmt *st = stmt(q, ST_FIND_DONE);
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, method, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
  return get_one(q, st, out);
}

int sqlite_queue_get(sqlite_queue_t *q, const char *id, bool with_payload, stored_request_t *out) {
  sqlite3_stmt *st = stmt(q, with_payload ? ST_GET_FULL : ST_GET_BRIEF);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  return get_one(q, st, out);
}

static int set_state(sqlite_queue_t *q, const char *id, rq_state_t state, int64_t next,
                     int64_t now) {
  sqlite3_stmt *st = stmt(q, ST_SET_STATE);
  sqlite3_bind_int(st, 1, state);
  bind_time_or_null(st, 2, next);
  sqlite3_bind_int64(st, 3, now);
  sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : sqlite_queue_error(rc);
}

int sqlite_queue_cancel(sqlite_queue_t *q, const char *id, int64_t now, stored_request_t *out) {
  int rc = sqlite_queue_get(q, id, false, out);
  if (rc != 0)
    return rc;
  if (out->state != RQ_QUEUED)
    return -EPERM;
  rc = set_state(q, id, RQ_CANCELLED, 0, now);
  if (rc == 0) {
    move_count(q, RQ_QUEUED, RQ_CANCELLED, 1);
    out->state = RQ_CANCELLED;
    out->next_attempt_at = 0;
    out->updated_at = now;
  }
  return rc;
}

int sqlite_queue_retry_now(sqlite_queue_t *q, const char *id, int64_t now, stored_request_t *out) {
  int rc = sqlite_queue_get(q, id, false, out);
  if (rc != 0)
    return rc;
  if (out->state != RQ_QUEUED && out->state != RQ_DEAD)
    return -EPERM;
  if (out->state == RQ_DEAD && unfinished(q) >= q->max_queue)
    return -EDQUOT;
  sqlite3_stmt *st = stmt(q, ST_REVIVE);
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  rc = rc == SQLITE_DONE ? 0 : sqlite_queue_error(rc);
  if (rc == 0) {
    move_count(q, out->state, RQ_QUEUED, 1);
    if (out->state == RQ_DEAD)
      out->created_at = now;
    out->state = RQ_QUEUED;
    out->next_attempt_at = now;
    out->updated_at = now;
  }
  return rc;
}

int sqlite_queue_claim(sqlite_queue_t *q, int64_t now, const char *flow, int64_t max_age_ms,
                       size_t limit, stored_request_t *out, int64_t *dead_out) {
  *dead_out = 0;
  size_t n = 0;
  int rc = SQLITE_DONE;
  /* Due rows come earliest first; one past its age is made dead instead of
   * claimed, and the next one is looked at, so a claim costs the rows it
   * returns plus the ones it buries, never a walk of the queue. */
  while (n < limit) {
    sqlite3_stmt *st = stmt(q, flow != NULL ? ST_DUE_FLOW : ST_DUE);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, 1);
    if (flow != NULL)
      sqlite3_bind_text(st, 3, flow, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
      sqlite3_reset(st);
      break;
    }
    int64_t seq = row_read(st, &out[n]);
    sqlite3_reset(st);
    bool late = out[n].deadline_at != 0 && out[n].deadline_at <= now;
    bool expired = late || now - out[n].created_at > max_age_ms;
    st = stmt(q, late ? ST_BURY_DEADLINE : expired ? ST_EXPIRE : ST_CLAIM_ONE);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, seq);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      stored_request_free(&out[n]);
      break;
    }
    if (expired) {
      stored_request_free(&out[n]);
      move_count(q, RQ_QUEUED, RQ_DEAD, 1);
      (*dead_out)++;
      continue;
    }
    move_count(q, RQ_QUEUED, RQ_INFLIGHT, 1);
    out[n].state = RQ_INFLIGHT;
    out[n].attempts++;
    out[n].next_attempt_at = 0;
    out[n].updated_at = now;
    n++;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    for (size_t k = 0; k < n; k++)
      stored_request_free(&out[k]);
    return sqlite_queue_error(rc);
  }
  return (int)n;
}

int sqlite_queue_finish(sqlite_queue_t *q, const char *id, int64_t now,
                        const attempt_outcome_t *o) {
  sqlite3_stmt *st;
  rq_state_t state = o->kind == OUTCOME_COMPLETED ? RQ_COMPLETED
                     : o->kind == OUTCOME_DEAD    ? RQ_DEAD
                                                  : RQ_QUEUED;
  if (o->kind == OUTCOME_RELEASE) {
    st = stmt(q, ST_RELEASE);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
  } else {
    st = stmt(q, ST_FINISH);
    sqlite3_bind_int(st, 1, state);
    bind_time_or_null(st, 2, o->kind == OUTCOME_RETRY ? o->next_attempt_at : 0);
    sqlite3_bind_int64(st, 3, now);
    if (o->last_status)
      sqlite3_bind_int(st, 4, o->last_status);
    bind_text_or_null(st, 5, o->last_error);
    if (o->response_status) {
      sqlite3_bind_int(st, 6, o->response_status);
      sqlite3_bind_blob64(st, 7, o->response_headers ? o->response_headers : "",
                          o->response_headers_len, SQLITE_STATIC);
    }
    sqlite3_bind_text(st, 8, id, -1, SQLITE_STATIC);
    if (o->last_answer_headers != NULL) {
      sqlite3_bind_blob64(st, 9, o->last_answer_headers, o->last_answer_headers_len, SQLITE_STATIC);
      sqlite3_bind_blob64(st, 10, o->last_answer_body ? o->last_answer_body : "",
                          o->last_answer_body_len, SQLITE_STATIC);
    }
  }
  int rc = sqlite3_step(st);
  int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  if (rc == SQLITE_ROW)
    rc = sqlite3_step(st); /* RETURNING: the change is done once stepped to the end */
  sqlite3_reset(st);
  if (rc != SQLITE_DONE)
    return sqlite_queue_error(rc);
  if (sqlite3_changes64(q->db) == 0)
    return -ENOENT;
  if (o->kind != OUTCOME_RELEASE && o->response_status) {
    st = stmt(q, ST_ANSWER_PUT);
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_blob64(st, 2, o->response_body ? o->response_body : "", o->response_body_len,
                        SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
      return sqlite_queue_error(rc);
  }
  move_count(q, RQ_INFLIGHT, state, 1);
  return 0;
}

int64_t sqlite_queue_next_due(sqlite_queue_t *q) {
  sqlite3_stmt *st = stmt(q, ST_NEXT_DUE);
  int64_t t = 0;
  if (sqlite3_step(st) == SQLITE_ROW)
    t = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return t;
}

int64_t sqlite_queue_flow_next_due(sqlite_queue_t *q, const char *flow) {
  sqlite3_stmt *st = stmt(q, ST_NEXT_DUE_FLOW);
  sqlite3_bind_text(st, 1, flow, -1, SQLITE_STATIC);
  int64_t t = 0;
  if (sqlite3_step(st) == SQLITE_ROW)
    t = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return t;
}

/* Runs st to its end (a pragma that sets a value returns it as a row). */
static int step_done(sqlite3_stmt *st) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : sqlite_queue_error(rc);
}

/* Deletes the rows in seqs: each answer without zeroing it (a big answer is
 * an overflow chain, and zeroing it means reading and rewriting every page
 * of it; with the pointer map, freeing it reads almost none), then the rows
 * themselves zeroed (secure_delete, as for every other change of a row): they
 * hold the credentials. */
static int purge_rows(sqlite_queue_t *q, const int64_t *seqs, int n) {
  /* Not prepared statements: this pragma acts when it is compiled. */
  int rc = exec_simple(q->db, "PRAGMA secure_delete = FAST");
  for (int i = 0; i < n && rc == 0; i++) {
    sqlite3_stmt *st = stmt(q, ST_PURGE_ANSWER);
    sqlite3_bind_int64(st, 1, seqs[i]);
    rc = step_done(st);
  }
  int on = exec_simple(q->db, "PRAGMA secure_delete = ON");
  if (rc == 0)
    rc = on;
  for (int i = 0; i < n && rc == 0; i++) {
    sqlite3_stmt *st = stmt(q, ST_PURGE_ROW);
    sqlite3_bind_int64(st, 1, seqs[i]);
    rc = step_done(st);
  }
  return rc;
}

#define PURGE_BATCH 64

int64_t sqlite_queue_purge(sqlite_queue_t *q, int64_t cutoff, int64_t limit) {
  int64_t total = 0;
  while (total < limit) {
    int64_t want = limit - total < PURGE_BATCH ? limit - total : PURGE_BATCH;
    int64_t seqs[PURGE_BATCH];
    int states[PURGE_BATCH];
    int n = 0, rc;
    sqlite3_stmt *st = stmt(q, ST_PURGE_PICK);
    sqlite3_bind_int64(st, 1, cutoff);
    sqlite3_bind_int64(st, 2, want);
    while (n < want && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      seqs[n] = sqlite3_column_int64(st, 0);
      states[n] = sqlite3_column_int(st, 1);
      n++;
    }
    sqlite3_reset(st);
    if (n < want && rc != SQLITE_DONE)
      return sqlite_queue_error(rc);
    if (n == 0)
      break;
    rc = purge_rows(q, seqs, n);
    if (rc != 0)
      return rc;
    for (int i = 0; i < n; i++)
      if (states[i] >= 0 && states[i] < RQ_NSTATES)
        q->count[states[i]]--;
    total += n;
    if (n < want)
      break;
  }
  return total;
}

static int64_t stmt_int(sqlite_queue_t *q, int which) {
  sqlite3_stmt *st = stmt(q, which);
  int rc = sqlite3_step(st);
  int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : sqlite_queue_error(rc);
  sqlite3_reset(st);
  return v;
}

int64_t sqlite_queue_free_pages(sqlite_queue_t *q) { return stmt_int(q, ST_FREE_PAGES); }

int64_t sqlite_queue_pages(sqlite_queue_t *q) { return stmt_int(q, ST_PAGE_COUNT); }

int64_t sqlite_queue_vacuum(sqlite_queue_t *q, int64_t pages) {
  if (!q->reclaims || pages <= 0)
    return 0;
  /* Counted on the free list: the file shrinks by a little more when a
   * pointer-map page goes with the pages it mapped. */
  int64_t before = sqlite_queue_free_pages(q);
  if (before <= 0)
    return before;
  /* A pragma takes no bound parameter: the count is ours, an integer. */
  char sql[64];
  snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%lld)", (long long)pages);
  int rc = exec_simple(q->db, sql);
  if (rc != 0)
    return rc;
  int64_t after = sqlite_queue_free_pages(q);
  if (after < 0)
    return after;
  return before - after;
}

bool sqlite_queue_reclaims_space(const sqlite_queue_t *q) { return q->reclaims; }

int64_t sqlite_queue_converted_ms(const sqlite_queue_t *q) { return q->converted_ms; }

int sqlite_queue_checkpoint(sqlite_queue_t *q) {
  int rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
  return rc == SQLITE_OK ? 0 : sqlite_queue_error(rc);
}

int sqlite_queue_counts(sqlite_queue_t *q, queue_counts_t *out) {
  memset(out, 0, sizeof(*out));
  memcpy(out->count, q->count, sizeof(out->count));
  sqlite3_stmt *st = stmt(q, ST_OLDEST_QUEUED);
  if (sqlite3_step(st) == SQLITE_ROW)
    out->oldest_queued_at = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  out->next_attempt_at = sqlite_queue_next_due(q);
  return 0;
}

int sqlite_queue_list(sqlite_queue_t *q, int state, int64_t after_seq, size_t limit,
                      stored_request_t *out, int64_t *last_seq) {
  sqlite3_stmt *st;
  if (state >= 0) {
    st = stmt(q, ST_LIST_STATE);
    sqlite3_bind_int(st, 1, state);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
  } else {
    st = stmt(q, ST_LIST_ALL);
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
  }
  size_t n = 0;
  *last_seq = after_seq;
  while (n < limit && sqlite3_step(st) == SQLITE_ROW)
    *last_seq = row_read(st, &out[n++]);
  sqlite3_reset(st);
  return (int)n;
}

int sqlite_queue_flows(sqlite_queue_t *q, storage_flow_t *out, size_t cap) {
  sqlite3_stmt *st = stmt(q, ST_FLOWS);
  sqlite3_bind_int64(st, 1, (sqlite3_int64)cap);
  size_t n = 0;
  int rc = SQLITE_DONE;
  while (n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    storage_flow_t *f = &out[n++];
    memset(f, 0, sizeof(*f));
    const unsigned char *name = sqlite3_column_text(st, 0);
    snprintf(f->name, sizeof(f->name), "%s", name != NULL ? (const char *)name : "");
    f->queued = sqlite3_column_int64(st, 1);
    f->inflight = sqlite3_column_int64(st, 2);
    f->next_due = sqlite3_column_int64(st, 3);
  }
  sqlite3_reset(st);
  if (n < cap && rc != SQLITE_DONE)
    return sqlite_queue_error(rc);
  return (int)n;
}

/* The end of a step's scan (INT64_MAX: the table's end), over the rows of
 * state (through its index) or of any state (state < 0). */
static int window_end(sqlite_queue_t *q, int state, int64_t after_seq, size_t scan, int64_t *end) {
  sqlite3_stmt *st = stmt(q, state >= 0 ? ST_WINDOW_STATE : ST_WINDOW_ALL);
  sqlite3_bind_int64(st, 1, after_seq);
  sqlite3_bind_int64(st, 2, scan > 0 ? (sqlite3_int64)scan - 1 : 0);
  if (state >= 0)
    sqlite3_bind_int(st, 3, state);
  int rc = sqlite3_step(st);
  *end = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MAX;
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_queue_error(rc);
}

/* Reads the rows of f in states (a mask, not 0) within the step's scan,
 * at most limit; *seqs gets their seqs (limit entries, may be NULL). */
static int find_filtered(sqlite_queue_t *q, const storage_filter_t *f, unsigned states, size_t scan,
                         size_t limit, stored_request_t *out, int64_t *seqs, storage_page_t *page) {
  int one = storage_states_single(states);
  int64_t end;
  int rc = window_end(q, one, page->after_seq, scan, &end);
  if (rc != 0)
    return rc;
  sqlite3_stmt *st = stmt(q, one >= 0 ? ST_LIST_FILTERED_STATE : ST_LIST_FILTERED);
  sqlite3_bind_int64(st, 1, page->after_seq);
  sqlite3_bind_int64(st, 2, end);
  sqlite3_bind_int64(st, 3, one >= 0 ? one : (sqlite3_int64)states);
  bind_text_or_null(st, 4, f->method);
  bind_blob_or_null(st, 5, f->path_prefix, f->path_prefix ? strlen(f->path_prefix) : 0);
  bind_text_or_null(st, 6, f->idempotency_key);
  if (f->last_status)
    sqlite3_bind_int(st, 7, f->last_status);
  sqlite3_bind_int64(st, 8, f->created_from);
  sqlite3_bind_int64(st, 9, f->created_until);
  sqlite3_bind_int64(st, 10, (sqlite3_int64)limit);
  size_t n = 0;
  int64_t last = page->after_seq;
  while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    last = row_read(st, &out[n]);
    if (seqs != NULL)
      seqs[n] = last;
    n++;
  }
  sqlite3_reset(st);
  if (n < limit && rc != SQLITE_DONE) {
    for (size_t k = 0; k < n; k++)
      stored_request_free(&out[k]);
    return sqlite_queue_error(rc);
  }
  storage_page_end(page, n, limit, last, end);
  return (int)n;
}

int sqlite_queue_list_filtered(sqlite_queue_t *q, const storage_filter_t *f, size_t scan,
                               size_t limit, stored_request_t *out, storage_page_t *page) {
  unsigned states = f->states != 0 ? f->states : (1u << RQ_NSTATES) - 1;
  return find_filtered(q, f, states, scan, limit, out, NULL, page);
}

/* One row of a bulk step, by its id, as retry_now() or cancel() changes
 * one; *r becomes the row after the change. */
static int bulk_one(sqlite_queue_t *q, storage_bulk_t op, int64_t now, stored_request_t *r) {
  stored_request_t after;
  int rc = op == STORAGE_BULK_CANCEL ? sqlite_queue_cancel(q, r->id, now, &after)
                                     : sqlite_queue_retry_now(q, r->id, now, &after);
  if (rc == 0) {
    stored_request_free(r);
    *r = after;
  } else {
    stored_request_free(&after);
  }
  return rc;
}

int sqlite_queue_bulk(sqlite_queue_t *q, storage_bulk_t op, const storage_filter_t *f, int64_t now,
                      size_t scan, size_t limit, stored_request_t *out, storage_page_t *page) {
  unsigned states = (f->states != 0 ? f->states : (1u << RQ_NSTATES) - 1) & storage_bulk_states(op);
  page->full = false;
  if (states == 0) {
    page->last_seq = page->after_seq;
    page->more = false;
    return 0;
  }
  int64_t *seqs = calloc(limit > 0 ? limit : 1, sizeof(*seqs));
  if (seqs == NULL)
    return -EIO;
  int n = find_filtered(q, f, states, scan, limit, out, seqs, page);
  int changed = 0, rc = 0;
  for (int i = 0; n > 0 && i < n && rc == 0; i++) {
    rc = bulk_one(q, op, now, &out[i]);
    if (rc == -EDQUOT) {
      /* No room for this dead row: the ones before it stay changed, and
       * the action ends here. */
      page->full = true;
      page->more = false;
      page->last_seq = i > 0 ? seqs[i - 1] : page->after_seq;
      rc = 0;
      for (int k = i; k < n; k++)
        stored_request_free(&out[k]);
      break;
    }
    if (rc == 0)
      changed++;
  }
  free(seqs);
  if (n < 0)
    return n;
  if (rc != 0) {
    for (int k = 0; k < n; k++)
      stored_request_free(&out[k]);
    return rc;
  }
  return changed;
}
