#include "storage/sqlite/schema.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>

/* The notice a request's end queues (schema step 5). */
#define NOTICE_VALUES                                                                              \
  "(request_id, url, request_state, attempts, final_status, created_at, next_attempt_at, "         \
  "updated_at) VALUES (NEW.id, NEW.callback_url, NEW.state, NEW.attempts, "                        \
  "coalesce(NEW.response_status, NEW.last_status), NEW.updated_at, NEW.updated_at, "               \
  "NEW.updated_at)"

/* Each step takes the schema from version i to i + 1. Never edit a step
 * that has shipped: add one. */
static const char *const schema_steps[] = {
    /* 1: the queue. seq is the rowid: insertion order, and the listing
     * cursor. The partial indexes hold only the rows they serve, so "next
     * due" and the idempotency check stay small however many finished rows
     * are kept. */
    "CREATE TABLE requests ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  state INTEGER NOT NULL,"
    "  method TEXT NOT NULL,"
    "  target TEXT NOT NULL,"
    "  headers BLOB NOT NULL,"
    "  body BLOB,"
    "  idempotency_key TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  next_attempt_at INTEGER,"
    "  updated_at INTEGER NOT NULL,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  response_status INTEGER,"
    "  response_headers BLOB,"
    "  response_body BLOB"
    ");"
    "CREATE INDEX requests_due ON requests(next_attempt_at, seq) WHERE state "
    "= " SQL_QUEUED ";"
    "CREATE INDEX requests_by_state ON requests(state, seq);"
    "CREATE UNIQUE INDEX requests_idempotency ON requests(idempotency_key, "
    "method, target)"
    "  WHERE idempotency_key IS NOT NULL AND state IN (" SQL_QUEUED ", " SQL_INFLIGHT ");"
    "CREATE INDEX requests_finished ON requests(updated_at) WHERE state "
    ">= " SQL_FIRST_FINISHED ";",
    /* 2: one row the store rewrites when it must find out whether a durable
     * write succeeds (health's probe) and to overwrite what a failed commit
     * left in the WAL (sqlite_queue_probe()). And final answers' bodies move to
     * a table of their own: a big one is then deleted without zeroing it
     * page by page (secure_delete is lifted for that table only), while a
     * request's row, which holds its credentials, stays small and is still
     * zeroed when deleted. */
    "CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), n "
    "INTEGER NOT NULL);"
    "INSERT INTO store_probe (id, n) VALUES (1, 0);"
    "CREATE TABLE answers (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);"
    "INSERT INTO answers (seq, body) SELECT seq, response_body FROM requests"
    "  WHERE response_body IS NOT NULL;"
    "ALTER TABLE requests DROP COLUMN response_body;",
    /* 3: flows (issue 13). A row carries the flow it is claimed under (its
     * route, or a partition of its route's rate limit; '' for the default
     * route, which every older row was), and each flow claims its due rows
     * by an index of its own, in the order requests_due gives them all. */
    "ALTER TABLE requests ADD COLUMN flow TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX requests_flow_due ON requests(flow, next_attempt_at, seq) WHERE state "
    "= " SQL_QUEUED ";",
    /* 4: the life of a stored request (issue 14). A row may carry a
     * deadline (Retryd-Deadline: dead when not delivered by then), the
     * SHA-256 of its body (an Idempotency-Key repeat with another body is
     * refused), and the last retryable answer's kept part. Completed rows
     * with a key get an index of their own: a repeat after completion
     * finds the answer to replay without walking the finished rows. */
    "ALTER TABLE requests ADD COLUMN deadline_at INTEGER;"
    "ALTER TABLE requests ADD COLUMN body_sha256 TEXT;"
    "ALTER TABLE requests ADD COLUMN last_answer_headers BLOB;"
    "ALTER TABLE requests ADD COLUMN last_answer_body BLOB;"
    "CREATE INDEX requests_idempotency_done ON requests(idempotency_key, method, target, seq)"
    "  WHERE idempotency_key IS NOT NULL AND state = " SQL_COMPLETED ";",
    /* 5: completion callbacks (issue 14). A request may name where a notice
     * goes when it ends; the notice is a row of its own, queued by a
     * trigger in the very statement that ends the request, so whatever
     * ends it (an attempt, --max-age, a cancel, or an insert already dead)
     * commits the notice with it and a crash loses neither. A notice keeps
     * a snapshot of how its request ended: a dead request retried by hand
     * ends again later with a notice of its own. */
    "ALTER TABLE requests ADD COLUMN callback_url TEXT;"
    "CREATE TABLE callbacks ("
    "  seq INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL,"
    "  url TEXT NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  request_state INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  final_status INTEGER,"
    "  sends INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  next_attempt_at INTEGER,"
    "  updated_at INTEGER NOT NULL,"
    "  last_error TEXT"
    ");"
    "CREATE INDEX callbacks_due ON callbacks(next_attempt_at, seq) WHERE state = 0;"
    "CREATE INDEX callbacks_finished ON callbacks(updated_at) WHERE state > 0;"
    "CREATE TRIGGER requests_ended_notice AFTER UPDATE OF state ON requests"
    "  WHEN NEW.callback_url IS NOT NULL AND NEW.state >= " SQL_FIRST_FINISHED
    "  AND OLD.state < " SQL_FIRST_FINISHED "  BEGIN INSERT INTO callbacks " NOTICE_VALUES "; END;"
    "CREATE TRIGGER requests_stored_ended_notice AFTER INSERT ON requests"
    "  WHEN NEW.callback_url IS NOT NULL AND NEW.state >= " SQL_FIRST_FINISHED
    "  BEGIN INSERT INTO callbacks " NOTICE_VALUES "; END;",
};

_Static_assert(sizeof(schema_steps) / sizeof(schema_steps[0]) == SCHEMA_VERSION,
               "SCHEMA_VERSION must count the steps");

static int schema_int(sqlite3 *db, const char *sql, int *out) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    return -1;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : -1;
}

int schema_check_owner(sqlite3 *db, char *err, size_t errlen) {
  int app_id = 0, version = 0, tables = 0;
  if (schema_int(db, "PRAGMA application_id", &app_id) != 0 ||
      schema_int(db, "PRAGMA user_version", &version) != 0 ||
      schema_int(db, "SELECT count(*) FROM sqlite_schema", &tables) != 0) {
    int code = sqlite3_errcode(db) & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
      snprintf(err, errlen, "in use by another process (is another retryd running?)");
      return -EBUSY;
    }
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
      snprintf(err, errlen, "not a database, or corrupt (left untouched)");
      return -EINVAL;
    }
    snprintf(err, errlen, "cannot read the database: %s", sqlite3_errmsg(db));
    return -EIO;
  }
  if (app_id != SCHEMA_APPLICATION_ID && (app_id != 0 || tables != 0)) {
    snprintf(err, errlen, "not a retryd database (it holds other data); refusing to touch it");
    return -EINVAL;
  }
  if (version > SCHEMA_VERSION) {
    snprintf(err, errlen, "the database has schema version %d, newer than this retryd (%d)",
             version, SCHEMA_VERSION);
    return -EINVAL;
  }
  return 0;
}

int schema_migrate(sqlite3 *db, char *err, size_t errlen) {
  return schema_migrate_to(db, SCHEMA_VERSION, err, errlen);
}

int schema_migrate_to(sqlite3 *db, int target, char *err, size_t errlen) {
  if (target < 1 || target > SCHEMA_VERSION) {
    snprintf(err, errlen, "no schema version %d", target);
    return -EINVAL;
  }
  int rc = schema_check_owner(db, err, errlen);
  if (rc != 0)
    return rc;
  int version = 0;
  if (schema_int(db, "PRAGMA user_version", &version) != 0) {
    snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
    return -EIO;
  }
  int steps = target;
  if (version > steps)
    return 0;
  for (int v = version; v < steps; v++) {
    char *msg = NULL;
    if (sqlite3_exec(db, schema_steps[v], NULL, NULL, &msg) != SQLITE_OK) {
      snprintf(err, errlen, "migration to schema version %d failed: %s", v + 1,
               msg ? msg : "unknown error");
      sqlite3_free(msg);
      return -EIO;
    }
  }
  char sql[96];
  snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = %d",
           SCHEMA_APPLICATION_ID, steps);
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot record the schema version: %s", sqlite3_errmsg(db));
    return -EIO;
  }
  return 0;
}
