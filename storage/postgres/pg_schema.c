#include "storage/postgres/pg_schema.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The key of the advisory lock that serialises migrations ("rtry"). */
#define PG_SCHEMA_LOCK "1920234617"

/* Step i takes the schema from version i to i + 1. States are
 * rq_state_t's numbers (storage/stored_request.h pins them). */
static const char *const pg_schema_steps[] = {
    /* 1: the queue, its answers, the counters and their trigger, and the
     * probe row. The target and the idempotency key are bytes, as the client
     * sent them: a text column would refuse what is not UTF-8. lease_owner and lease_until: the
     * replica that claimed an inflight row, and until when its claim holds. */
    "CREATE TABLE retryd_requests ("
    "  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  id text NOT NULL UNIQUE,"
    "  state smallint NOT NULL,"
    "  method text NOT NULL,"
    "  target bytea NOT NULL,"
    "  headers bytea NOT NULL,"
    "  body bytea,"
    "  idempotency_key bytea,"
    "  attempts bigint NOT NULL DEFAULT 0,"
    "  created_at bigint NOT NULL,"
    "  next_attempt_at bigint,"
    "  updated_at bigint NOT NULL,"
    "  last_status integer,"
    "  last_error text,"
    "  response_status integer,"
    "  response_headers bytea,"
    "  lease_owner text,"
    "  lease_until bigint);"
    "CREATE INDEX retryd_requests_due ON retryd_requests (next_attempt_at, seq) WHERE state = 0;"
    "CREATE INDEX retryd_requests_by_state ON retryd_requests (state, seq);"
    "CREATE UNIQUE INDEX retryd_requests_idempotency"
    "  ON retryd_requests (idempotency_key, method, target)"
    "  WHERE idempotency_key IS NOT NULL AND state IN (0, 1);"
    "CREATE INDEX retryd_requests_finished ON retryd_requests (updated_at) WHERE state >= 2;"
    "CREATE INDEX retryd_requests_leases ON retryd_requests (lease_until) WHERE state = 1;"
    "CREATE TABLE retryd_answers ("
    "  seq bigint PRIMARY KEY REFERENCES retryd_requests (seq) ON DELETE CASCADE,"
    "  body bytea NOT NULL);"
    "CREATE TABLE retryd_counts ("
    "  replica text NOT NULL,"
    "  state smallint NOT NULL,"
    "  n bigint NOT NULL,"
    "  PRIMARY KEY (replica, state));"
    "CREATE FUNCTION retryd_count(replica text, st smallint, delta bigint) RETURNS void"
    "  LANGUAGE sql AS $$"
    "    INSERT INTO retryd_counts AS c (replica, state, n) VALUES (replica, st, delta)"
    "    ON CONFLICT (replica, state) DO UPDATE SET n = c.n + delta $$;"
    "CREATE FUNCTION retryd_count_change() RETURNS trigger LANGUAGE plpgsql AS $$"
    "  DECLARE me text := coalesce(current_setting('retryd.replica', true), '');"
    "  BEGIN"
    "    IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM retryd_count(me, OLD.state, -1); END IF;"
    "    IF TG_OP IN ('UPDATE', 'INSERT') THEN PERFORM retryd_count(me, NEW.state, 1); END IF;"
    "    RETURN NULL;"
    "  END $$;"
    "CREATE TRIGGER retryd_count_rows AFTER INSERT OR DELETE ON retryd_requests"
    "  FOR EACH ROW EXECUTE FUNCTION retryd_count_change();"
    "CREATE TRIGGER retryd_count_states AFTER UPDATE OF state ON retryd_requests"
    "  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)"
    "  EXECUTE FUNCTION retryd_count_change();"
    "CREATE TABLE retryd_probe (n bigint NOT NULL);"
    "INSERT INTO retryd_probe VALUES (0);",
    /* 2: fencing tokens. Each claim of a row takes the next number of one
     * sequence, and an attempt's outcome is recorded only under the claim
     * it ran under: a replica whose lease ran out and that claimed the row
     * again (or whose row another replica took over) cannot record the
     * outcome of its first, stale attempt. */
    "ALTER TABLE retryd_requests ADD COLUMN claim_token bigint;"
    "CREATE SEQUENCE retryd_claim_tokens;",
    /* 3: inserted rows are counted once per statement, not once per row.
     * A batch's rows go in with one statement (postgres_backend.c,
     * insert_many), and a row-level trigger updated the same counter row
     * once for each of them: a plpgsql call, an upsert and a dead tuple
     * per row, the largest share of a batch's time on the server. The
     * statement-level trigger reads the rows the statement inserted (a
     * transition table: rows ON CONFLICT DO NOTHING skipped are not in it)
     * and adds their count per state. Deletes keep their row-level trigger
     * (a trigger with a transition table takes one event only), renamed
     * after what it counts now; state changes keep theirs. Self-contained:
     * replaces only retryd_count_rows of step 1. */
    "DROP TRIGGER retryd_count_rows ON retryd_requests;"
    "CREATE TRIGGER retryd_count_deletes AFTER DELETE ON retryd_requests"
    "  FOR EACH ROW EXECUTE FUNCTION retryd_count_change();"
    "CREATE FUNCTION retryd_count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$"
    "  BEGIN"
    "    INSERT INTO retryd_counts AS c (replica, state, n)"
    "      SELECT coalesce(current_setting('retryd.replica', true), ''), a.state, count(*)"
    "      FROM retryd_inserted a GROUP BY a.state"
    "      ON CONFLICT (replica, state) DO UPDATE SET n = c.n + EXCLUDED.n;"
    "    RETURN NULL;"
    "  END $$;"
    "CREATE TRIGGER retryd_count_inserts AFTER INSERT ON retryd_requests"
    "  REFERENCING NEW TABLE AS retryd_inserted"
    "  FOR EACH STATEMENT EXECUTE FUNCTION retryd_count_inserts();",
    /* 4: flows (issue 13). A row carries the flow it is claimed under (its
     * route, or a partition of its route's rate limit; '' for the default
     * route, which every older row was: a constant default, so adding the
     * column rewrites no row), and each flow claims its due rows by an
     * index of its own, in the order retryd_requests_due gives them all. */
    "ALTER TABLE retryd_requests ADD COLUMN flow text NOT NULL DEFAULT '';"
    "CREATE INDEX retryd_requests_flow_due ON retryd_requests (flow, next_attempt_at, seq)"
    "  WHERE state = 0;",
    /* 5: the life of a stored request (issue 14). A row may carry a
     * deadline (Retryd-Deadline: dead when not delivered by then), the
     * SHA-256 of its body (an Idempotency-Key repeat with another body is
     * refused), and the last retryable answer's kept part. Completed rows
     * with a key get an index of their own: a repeat after completion
     * finds the answer to replay without walking the finished rows. No
     * default: adding the columns rewrites no row. */
    "ALTER TABLE retryd_requests ADD COLUMN deadline_at bigint,"
    "  ADD COLUMN body_sha256 text, ADD COLUMN last_answer_headers bytea,"
    "  ADD COLUMN last_answer_body bytea;"
    "CREATE INDEX retryd_requests_idempotency_done"
    "  ON retryd_requests (idempotency_key, method, target, seq)"
    "  WHERE idempotency_key IS NOT NULL AND state = 2;",
    /* 6: completion callbacks (issue 14), as SQLite's step 5: a request may
     * name where a notice goes when it ends, and a trigger queues the
     * notice in the statement that ends the request, whichever replica
     * ends it and however (an attempt, --max-age, a cancel, an insert
     * already dead), so the notice commits with the end or not at all.
     * The triggers' WHEN keeps the plpgsql call off every other row.
     * Self-contained: depends on no step after 5. */
    "ALTER TABLE retryd_requests ADD COLUMN callback_url text;"
    "CREATE TABLE retryd_callbacks ("
    "  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  request_id text NOT NULL,"
    "  url text NOT NULL,"
    "  state smallint NOT NULL DEFAULT 0,"
    "  request_state smallint NOT NULL,"
    "  attempts bigint NOT NULL,"
    "  final_status integer,"
    "  sends bigint NOT NULL DEFAULT 0,"
    "  created_at bigint NOT NULL,"
    "  next_attempt_at bigint,"
    "  updated_at bigint NOT NULL,"
    "  last_error text);"
    "CREATE INDEX retryd_callbacks_due ON retryd_callbacks (next_attempt_at, seq) WHERE state = 0;"
    "CREATE INDEX retryd_callbacks_finished ON retryd_callbacks (updated_at) WHERE state > 0;"
    "CREATE FUNCTION retryd_callback_queue() RETURNS trigger LANGUAGE plpgsql AS $$"
    "  BEGIN"
    "    INSERT INTO retryd_callbacks (request_id, url, request_state, attempts, final_status,"
    "      created_at, next_attempt_at, updated_at)"
    "    VALUES (NEW.id, NEW.callback_url, NEW.state, NEW.attempts,"
    "      coalesce(NEW.response_status, NEW.last_status), NEW.updated_at, NEW.updated_at,"
    "      NEW.updated_at);"
    "    RETURN NULL;"
    "  END $$;"
    "CREATE TRIGGER retryd_callback_ended AFTER UPDATE OF state ON retryd_requests"
    "  FOR EACH ROW WHEN (NEW.callback_url IS NOT NULL AND NEW.state >= 2 AND OLD.state < 2)"
    "  EXECUTE FUNCTION retryd_callback_queue();"
    "CREATE TRIGGER retryd_callback_stored_ended AFTER INSERT ON retryd_requests"
    "  FOR EACH ROW WHEN (NEW.callback_url IS NOT NULL AND NEW.state >= 2)"
    "  EXECUTE FUNCTION retryd_callback_queue();",
};

#define PG_NSTEPS (int)(sizeof(pg_schema_steps) / sizeof(pg_schema_steps[0]))
_Static_assert(PG_NSTEPS == PG_SCHEMA_VERSION, "one step per schema version");

/* The version recorded in the database (0: none yet), or a negative errno. */
static int pg_schema_version(pg_conn_t *c) {
  int rc = pg_conn_exec(c, "CREATE TABLE IF NOT EXISTS retryd_schema (version integer NOT NULL)");
  if (rc != 0)
    return rc;
  rc = pg_conn_prepare(c, "schema_version", "SELECT max(version)::int8 FROM retryd_schema");
  if (rc != 0)
    return rc;
  pg_result_t *r;
  rc = pg_conn_run(c, "schema_version", 0, NULL, NULL, NULL, &r);
  if (rc != 0)
    return rc;
  int v = (int)pg_result_int(r, 0, 0);
  pg_result_free(r);
  return v;
}

static int pg_schema_apply(pg_conn_t *c, int from, int to, char *err, size_t errlen) {
  for (int v = from; v < to; v++) {
    int rc = pg_conn_exec(c, pg_schema_steps[v]);
    if (rc != 0) {
      snprintf(err, errlen, "cannot create retryd's tables (schema step %d)", v + 1);
      return rc;
    }
  }
  char sql[96];
  snprintf(sql, sizeof(sql), "DELETE FROM retryd_schema; INSERT INTO retryd_schema VALUES (%d)",
           to);
  return from >= to ? 0 : pg_conn_exec(c, sql);
}

int pg_schema_migrate(pg_conn_t *c, char *err, size_t errlen) {
  return pg_schema_migrate_to(c, PG_SCHEMA_VERSION, err, errlen);
}

int pg_schema_migrate_to(pg_conn_t *c, int target, char *err, size_t errlen) {
  if (target < 1 || target > PG_NSTEPS) {
    snprintf(err, errlen, "no retryd schema version %d", target);
    return -EINVAL;
  }
  int rc = pg_conn_exec(c, "BEGIN");
  if (rc == 0)
    rc = pg_conn_exec(c, "SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ")");
  if (rc != 0) {
    snprintf(err, errlen, "cannot lock retryd's schema for its upgrade");
    pg_conn_exec(c, "ROLLBACK");
    return rc;
  }
  int v = pg_schema_version(c);
  if (v < 0) {
    snprintf(err, errlen, "cannot read retryd's schema version");
    pg_conn_exec(c, "ROLLBACK");
    return v;
  }
  if (v > PG_SCHEMA_VERSION) {
    snprintf(err, errlen,
             "the database holds retryd schema version %d, newer than this retryd's %d: "
             "upgrade retryd",
             v, PG_SCHEMA_VERSION);
    pg_conn_exec(c, "ROLLBACK");
    return -EINVAL;
  }
  rc = pg_schema_apply(c, v, target, err, errlen);
  if (rc == 0)
    rc = pg_conn_commit(c);
  else
    pg_conn_exec(c, "ROLLBACK");
  if (rc != 0 && err[0] == '\0')
    snprintf(err, errlen, "cannot commit retryd's schema");
  return rc;
}
