/* postgres_backend: the retry queue in a PostgreSQL database shared by any
 * number of retryd replicas (storage/storage_backend.h).
 *
 * One connection on the storage thread (pg_conn.h says why), the tables of
 * pg_schema.h. What sharing adds to what the SQLite file does:
 *   claims  due rows are picked with FOR UPDATE SKIP LOCKED, so replicas
 *           claiming at once never take the same row and never wait for
 *           each other; a claimed row records its replica (lease_owner)
 *           and until when the claim holds (lease_until).
 *   leases  a replica renews its leases while it runs (housekeep()); rows
 *           whose lease ran out (their replica died) are queued again by
 *           the next claim of any replica, and next_due() wakes the
 *           scheduler when the earliest foreign lease runs out.
 *   finish  an attempt's result is recorded only while the claim it ran
 *           under still holds: the same replica (lease_owner) and the same
 *           fencing token (claim_token, a new number from one sequence at
 *           every claim). A replica that lost its lease cannot overwrite
 *           the result of the replica that took the row over, nor, having
 *           claimed the row again itself, record its stale first attempt.
 *   purge   one replica at a time (a transaction-scoped advisory lock).
 *   notices a transaction that made rows due or ended rows tells the other
 *           replicas with NOTIFY (sent by the COMMIT, so never for what
 *           rolled back); each replica LISTENs on a connection of its own
 *           (pg_listen.h) and hands what it hears to the store. A due time
 *           is told only when it is earlier than the last one told, or that
 *           one has passed: a replica woken by it claims, and its claim's
 *           answer brings the next due time from the table. Polling stays,
 *           slower, for what a replica that died never told.
 * And what a server across a network changes: every statement is a round
 * trip, so a batch's inserts go in one statement (insert_many(): one
 * array per column, unnested), not one per row.
 * A COMMIT that fails because the connection broke has an unknown outcome:
 * the batch is reported failed (its clients get 503 and send again), and
 * if it did commit, the rows are delivered as well: at least once. */
#include "storage/storage_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "storage/postgres/pg_array.h"
#include "storage/postgres/pg_callbacks.h"
#include "storage/postgres/pg_conn.h"
#include "storage/postgres/pg_listen.h"
#include "storage/postgres/pg_schema.h"

/* How long a claim holds without renewal unless --claim-lease says; it is
 * renewed three times per lease. */
#define PG_LEASE_MS_DEFAULT 30000
/* How often a replica looks for due rows it was not told of: rows another
 * replica stored and then died without retrying, or whose lease ran out. */
#define PG_POLL_MS 2000
/* The same while notices arrive: only an insurance. */
#define PG_POLL_MS_LISTENING 10000
/* The channel replicas tell each other on, and a payload's size that
 * NOTIFY takes (it refuses 8000 bytes or more). */
#define PG_CHANNEL "retryd"
#define PG_PAYLOAD_MAX 7900
/* The advisory lock that lets one replica purge at a time. */
#define PG_PURGE_LOCK "1920234618"
/* The most bytes of requests one statement of insert_many() carries: a run
 * of big requests goes in several statements (libpq's lengths are ints,
 * and the server holds a statement's parameters whole). */
#define PG_MANY_BYTES_MAX (16 * 1024 * 1024)
/* What a row costs in such a statement beyond its payloads: its id,
 * method, times and the arrays' per-element lengths. */
#define PG_MANY_ROW_BYTES 256

#define PG_INSERT_COLUMNS                                                                          \
  "id, state, method, target, headers, body, idempotency_key, attempts, created_at, "              \
  "next_attempt_at, updated_at, last_status, last_error, flow, deadline_at, body_sha256, "         \
  "last_answer_headers, last_answer_body, callback_url"

#define PG_ROW                                                                                     \
  "r.seq, r.id, r.state, r.method, r.target, r.headers, r.body, r.idempotency_key, r.attempts, "   \
  "r.created_at, r.next_attempt_at, r.updated_at, r.last_status, r.last_error, "                   \
  "r.response_status, r.response_headers, "                                                        \
  "(SELECT a.body FROM retryd_answers a WHERE a.seq = r.seq), r.claim_token, r.flow, "             \
  "r.deadline_at, r.body_sha256, r.last_answer_headers, r.last_answer_body"
#define PG_ROW_BRIEF                                                                               \
  "r.seq, r.id, r.state, r.method, r.target, NULL::bytea, NULL::bytea, r.idempotency_key, "        \
  "r.attempts, r.created_at, r.next_attempt_at, r.updated_at, r.last_status, r.last_error, "       \
  "r.response_status, NULL::bytea, NULL::bytea, r.claim_token, r.flow, r.deadline_at, "            \
  "r.body_sha256, r.last_answer_headers, r.last_answer_body"

/* The rows of a step's scan ($1, $2] that match a filter
 * (storage_filter_t): an absent condition is NULL. The prefix compares
 * bytes; a state mask $3 (0: any), or one state. */
#define PG_FILTER_REST                                                                             \
  "AND ($4::text IS NULL OR method = $4::text) "                                                   \
  "AND ($5::bytea IS NULL OR substring(target FROM 1 FOR length($5::bytea)) = $5::bytea) "         \
  "AND ($6::bytea IS NULL OR idempotency_key = $6::bytea) "                                        \
  "AND ($7::int4 IS NULL OR last_status = $7::int4) AND created_at >= $8 AND created_at < $9 "     \
  "ORDER BY seq LIMIT $10"
#define PG_FILTER_MASK                                                                             \
  "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE seq > $1 AND seq <= $2 "                   \
  "AND ($3::int4 = 0 OR (($3::int4 >> state) & 1) = 1) " PG_FILTER_REST
#define PG_FILTER_STATE                                                                            \
  "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE state = $3::int4 AND seq > $1 "            \
  "AND seq <= $2 " PG_FILTER_REST

static const struct {
  const char *name;
  const char *sql;
} pg_statements[] = {
    {"insert",
     "INSERT INTO retryd_requests AS r (" PG_INSERT_COLUMNS ") "
     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, "
     "$18, $19) "
     "ON CONFLICT DO NOTHING RETURNING r.seq"},
    /* insert()'s rows, many at once: one array per column. The rows go in
     * in the arrays' order, so that of two with the same key the first is
     * stored and the second skipped, as one insert after the other would
     * have it: unnest() in the select list (a ProjectSet) steps through
     * the arrays together, one row at a time, in order. In FROM it would
     * first copy every row into a tuplestore (a Function Scan). */
    {"insert_many",
     "INSERT INTO retryd_requests AS r (" PG_INSERT_COLUMNS ") "
     "SELECT unnest($1::text[]), unnest($2::int2[]), unnest($3::text[]), unnest($4::bytea[]), "
     "unnest($5::bytea[]), unnest($6::bytea[]), unnest($7::bytea[]), unnest($8::int8[]), "
     "unnest($9::int8[]), unnest($10::int8[]), unnest($11::int8[]), unnest($12::int4[]), "
     "unnest($13::text[]), unnest($14::text[]), unnest($15::int8[]), unnest($16::text[]), "
     "unnest($17::bytea[]), unnest($18::bytea[]), unnest($19::text[]) "
     "ON CONFLICT DO NOTHING RETURNING r.id"},
    {"find", "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE idempotency_key = $1 AND "
             "method = $2 AND target = $3 AND state IN (0, 1)"},
    {"find_done", "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE idempotency_key = $1 AND "
                  "method = $2 AND target = $3 AND state = 2 ORDER BY seq DESC LIMIT 1"},
    {"get_full", "SELECT " PG_ROW " FROM retryd_requests r WHERE id = $1"},
    {"get_brief", "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE id = $1"},
    {"get_locked", "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE id = $1 FOR UPDATE"},
    {"cancel", "UPDATE retryd_requests SET state = 4, next_attempt_at = NULL, updated_at = $2 "
               "WHERE id = $1"},
    /* A dead row retried by hand starts a new life: its age counts again. */
    {"revive", "UPDATE retryd_requests SET state = 0, next_attempt_at = $2, updated_at = $2, "
               "created_at = CASE WHEN state = 3 THEN $2 ELSE created_at END, "
               "deadline_at = CASE WHEN state = 3 THEN NULL ELSE deadline_at END WHERE id = $1"},
    {"expire_leases", "UPDATE retryd_requests SET state = 0, next_attempt_at = $1, "
                      "updated_at = $1, lease_owner = NULL, lease_until = NULL "
                      "WHERE state = 1 AND lease_until < $1"},
    {"due",
     "SELECT seq, created_at, coalesce(deadline_at, 0) FROM retryd_requests WHERE state = 0 AND "
     "next_attempt_at <= $1 ORDER BY next_attempt_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED"},
    /* One flow's due rows, in the same order, from the flow's part of
     * retryd_requests_flow_due: the other flows' rows are never read. */
    {"due_flow", "SELECT seq, created_at, coalesce(deadline_at, 0) FROM retryd_requests WHERE "
                 "state = 0 AND flow = $3 AND "
                 "next_attempt_at <= $1 ORDER BY next_attempt_at, seq LIMIT $2 "
                 "FOR UPDATE SKIP LOCKED"},
    {"claim_one", "UPDATE retryd_requests r SET state = 1, attempts = attempts + 1, "
                  "next_attempt_at = NULL, updated_at = $2, lease_owner = $3, lease_until = $4, "
                  "claim_token = nextval('retryd_claim_tokens') WHERE seq = $1 RETURNING " PG_ROW},
    {"expire_one",
     "UPDATE retryd_requests SET state = 3, next_attempt_at = NULL, updated_at = $2, "
     "last_error = coalesce(last_error, 'expired: older than --max-age') WHERE seq = $1 "
     "RETURNING id"},
    /* Not delivered by its deadline: the reason replaces the last error. */
    {"bury_late", "UPDATE retryd_requests SET state = 3, next_attempt_at = NULL, updated_at = $2, "
                  "last_error = 'deadline: not delivered by its Retryd-Deadline' WHERE seq = $1 "
                  "RETURNING id"},
    {"finish", "UPDATE retryd_requests SET state = $2, next_attempt_at = $3, updated_at = $4, "
               "last_status = $5, last_error = $6, response_status = $7, response_headers = $8, "
               "lease_owner = NULL, lease_until = NULL, "
               "last_answer_headers = coalesce($11, last_answer_headers), "
               "last_answer_body = CASE WHEN $11 IS NULL THEN last_answer_body ELSE $12 END "
               "WHERE id = $1 AND state = 1 AND lease_owner = $9 AND claim_token = $10 "
               "RETURNING seq"},
    {"answer_put", "INSERT INTO retryd_answers (seq, body) VALUES ($1, $2) "
                   "ON CONFLICT (seq) DO UPDATE SET body = EXCLUDED.body"},
    /* Not attempted after all: the attempt is not counted, the last real
     * one's status and error stay. */
    {"release", "UPDATE retryd_requests SET state = 0, next_attempt_at = $2, updated_at = $2, "
                "attempts = attempts - 1, lease_owner = NULL, lease_until = NULL "
                "WHERE id = $1 AND state = 1 AND lease_owner = $3 AND claim_token = $4"},
    {"next_due", "SELECT least((SELECT min(next_attempt_at) FROM retryd_requests WHERE state = 0), "
                 "(SELECT min(lease_until) FROM retryd_requests WHERE state = 1 AND "
                 "lease_owner IS DISTINCT FROM $1))"},
    {"next_queued", "SELECT min(next_attempt_at) FROM retryd_requests WHERE state = 0"},
    /* next_due within one flow: its queued rows, and its rows whose claim
     * by another replica runs out (claimed again then). */
    {"next_due_flow", "SELECT least((SELECT min(next_attempt_at) FROM retryd_requests "
                      "WHERE state = 0 AND flow = $2), (SELECT min(lease_until) FROM "
                      "retryd_requests WHERE state = 1 AND flow = $2 AND "
                      "lease_owner IS DISTINCT FROM $1))"},
    {"purge_lock", "SELECT pg_try_advisory_xact_lock(" PG_PURGE_LOCK ")::int4"},
    {"purge", "WITH p AS (SELECT seq FROM retryd_requests WHERE state >= 2 AND updated_at < $1 "
              "ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
              "DELETE FROM retryd_requests r USING p WHERE r.seq = p.seq"},
    {"counts", "SELECT state::int8, sum(n)::int8 FROM retryd_counts GROUP BY state"},
    {"oldest_queued",
     "SELECT created_at FROM retryd_requests WHERE state = 0 ORDER BY seq LIMIT 1"},
    {"list_state", "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE state = $1 AND seq > $2 "
                   "ORDER BY seq LIMIT $3"},
    {"list_all", "SELECT " PG_ROW_BRIEF " FROM retryd_requests r WHERE seq > $1 "
                 "ORDER BY seq LIMIT $2"},
    /* The end of a filtered step's scan: the seq of the scan-th row after
     * $1 ($2 is scan - 1), of any state or of state $3 (its index). */
    {"window_all", "SELECT seq FROM retryd_requests WHERE seq > $1 ORDER BY seq OFFSET $2 LIMIT 1"},
    {"window_state", "SELECT seq FROM retryd_requests WHERE state = $3 AND seq > $1 "
                     "ORDER BY seq OFFSET $2 LIMIT 1"},
    {"filter_mask", PG_FILTER_MASK},
    {"filter_state", PG_FILTER_STATE},
    /* A bulk step's rows, locked until its commit: their states stay as
     * read, so the counts it keeps are right. */
    {"pick_mask", PG_FILTER_MASK " FOR UPDATE"},
    {"pick_state", PG_FILTER_STATE " FOR UPDATE"},
    {"bulk_retry", "UPDATE retryd_requests r SET state = 0, next_attempt_at = $2, updated_at = $2, "
                   "created_at = CASE WHEN state = 3 THEN $2 ELSE created_at END, "
                   "deadline_at = CASE WHEN state = 3 THEN NULL ELSE deadline_at END "
                   "WHERE seq = ANY($1::int8[]) AND state IN (0, 3) RETURNING " PG_ROW_BRIEF},
    {"bulk_cancel", "UPDATE retryd_requests r SET state = 4, next_attempt_at = NULL, "
                    "updated_at = $2 WHERE seq = ANY($1::int8[]) AND state = 0 "
                    "RETURNING " PG_ROW_BRIEF},
    /* COLLATE "C": names in byte order, as SQLite's BINARY gives them,
     * whatever the database's collation. */
    {"flows", "SELECT flow, count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1), "
              "coalesce(least(min(next_attempt_at) FILTER (WHERE state = 0), min(lease_until) "
              "FILTER (WHERE state = 1 AND lease_owner IS DISTINCT FROM $2)), 0) "
              "FROM retryd_requests WHERE state IN (0, 1) "
              "GROUP BY flow ORDER BY flow COLLATE \"C\" LIMIT $1"},
    {"unfinished", "SELECT coalesce(sum(n), 0)::int8 FROM retryd_counts WHERE state IN (0, 1)"},
    {"probe", "UPDATE retryd_probe SET n = n + 1"},
    {"renew", "UPDATE retryd_requests SET lease_until = $2 WHERE state = 1 AND lease_owner = $1"},
    {"notify", "SELECT pg_notify('" PG_CHANNEL "', $1)"},
};

#define PG_NSTATEMENTS (sizeof(pg_statements) / sizeof(pg_statements[0]))

/* One of the statements above, run from a simple query (several statements
 * in one round trip): EXECUTE reuses the prepared plan, where the query's
 * own text would be parsed and planned again at every batch. */
#define PG_EXECUTE(name) "EXECUTE " name

typedef struct {
  storage_backend_t super;
  pg_conn_t *c;
  char replica[96]; /* this process's name in lease_owner and retryd_counts */
  /* COMMIT's round trip also asks next_due (pg_commit()). */
  char next_due_sql[160];
  int64_t max_queue;
  int64_t lease_ms;
  int64_t unfinished; /* as of the last look, plus this batch's changes */
  bool durable;       /* the open transaction's */
  bool wrote;         /* it changed a row */
  /* What the open transaction tells the other replicas at its commit: the
   * earliest due time it set (0: none) and the ids of the rows it ended
   * ("id id ..."); told_due is the last due time a commit told. */
  int64_t tell_due;
  int64_t told_due;
  char *ended;
  size_t ended_len, ended_cap;
  pg_listen_t *listen; /* NULL: nobody listens (params.notify) */
  void (*notify)(void *arg, const storage_notice_t *n);
  void *notify_arg;
  /* next_due() as read right after the last commit, in its round trip;
   * next_due() takes it once. */
  int64_t next_due;
  bool next_due_known;
} pg_backend_t;

static pg_backend_t *PG(storage_backend_t *b) { return (pg_backend_t *)b; }

static int64_t pg_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- parameters -------------------------------------------------------- */

#define PG_MAX_PARAMS 20

typedef struct {
  const char *v[PG_MAX_PARAMS];
  int len[PG_MAX_PARAMS];
  int bin[PG_MAX_PARAMS];
  char num[PG_MAX_PARAMS][24];
  int n;
} pg_params_t;

static void p_text(pg_params_t *p, const char *s) {
  p->v[p->n] = s;
  p->len[p->n] = 0;
  p->bin[p->n] = 0;
  p->n++;
}

static void p_int(pg_params_t *p, int64_t x) {
  snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)x);
  p_text(p, p->num[p->n]);
}

/* 0 means "none" for times and statuses, as in stored_request_t. */
static void p_int_or_null(pg_params_t *p, int64_t x) {
  if (x != 0)
    p_int(p, x);
  else
    p_text(p, NULL);
}

static void p_bytes(pg_params_t *p, const char *data, size_t len) {
  p->v[p->n] = data;
  p->len[p->n] = (int)len;
  p->bin[p->n] = 1;
  p->n++;
}

static int pg_run(pg_backend_t *pb, const char *name, pg_params_t *p, pg_result_t **res) {
  return pg_conn_run(pb->c, name, p != NULL ? p->n : 0, p != NULL ? p->v : NULL,
                     p != NULL ? p->len : NULL, p != NULL ? p->bin : NULL, res);
}

/* Runs a statement whose rows do not matter: its changed-row count, or an
 * error. */
static int64_t pg_change(pg_backend_t *pb, const char *name, pg_params_t *p) {
  pg_result_t *r;
  int rc = pg_run(pb, name, p, &r);
  if (rc != 0)
    return rc;
  int64_t n = pg_result_changed(r);
  pg_result_free(r);
  return n;
}

/* ---- rows -------------------------------------------------------------- */

/* Reads a PG_ROW or PG_ROW_BRIEF row; returns its seq. */
static int64_t pg_row_read(const pg_result_t *r, int row, stored_request_t *out) {
  memset(out, 0, sizeof(*out));
  int64_t seq = pg_result_int(r, row, 0);
  char *id = pg_result_dup(r, row, 1, NULL);
  snprintf(out->id, sizeof(out->id), "%s", id != NULL ? id : "");
  free(id);
  out->state = (rq_state_t)pg_result_int(r, row, 2);
  out->method = pg_result_dup(r, row, 3, NULL);
  out->target = pg_result_dup(r, row, 4, NULL);
  out->headers = pg_result_dup(r, row, 5, &out->headers_len);
  out->body = pg_result_dup(r, row, 6, &out->body_len);
  out->idempotency_key = pg_result_dup(r, row, 7, NULL);
  out->attempts = pg_result_int(r, row, 8);
  out->created_at = pg_result_int(r, row, 9);
  out->next_attempt_at = pg_result_int(r, row, 10);
  out->updated_at = pg_result_int(r, row, 11);
  out->last_status = (int)pg_result_int(r, row, 12);
  out->last_error = pg_result_dup(r, row, 13, NULL);
  out->response_status = (int)pg_result_int(r, row, 14);
  out->response_headers = pg_result_dup(r, row, 15, &out->response_headers_len);
  out->response_body = pg_result_dup(r, row, 16, &out->response_body_len);
  out->claim_token = pg_result_int(r, row, 17);
  out->flow = pg_result_dup(r, row, 18, NULL);
  if (out->flow == NULL)
    out->flow = calloc(1, 1); /* never NULL in a row read back */
  out->deadline_at = pg_result_int(r, row, 19);
  out->body_sha256 = pg_result_dup(r, row, 20, NULL);
  out->last_answer_headers = pg_result_dup(r, row, 21, &out->last_answer_headers_len);
  out->last_answer_body = pg_result_dup(r, row, 22, &out->last_answer_body_len);
  return seq;
}

/* A statement that returns at most one row into out: 0, -ENOENT, or an
 * error. */
static int pg_get_one(pg_backend_t *pb, const char *name, pg_params_t *p, stored_request_t *out) {
  pg_result_t *r;
  int rc = pg_run(pb, name, p, &r);
  if (rc != 0)
    return rc;
  if (pg_result_rows(r) == 0) {
    pg_result_free(r);
    return -ENOENT;
  }
  pg_row_read(r, 0, out);
  pg_result_free(r);
  return 0;
}

static int pg_get_by_id(pg_backend_t *pb, const char *stmt, const char *id, stored_request_t *out) {
  pg_params_t p = {.n = 0};
  p_text(&p, id);
  return pg_get_one(pb, stmt, &p, out);
}

/* ---- the session ------------------------------------------------------- */

static int pg_on_session(pg_conn_t *c, void *arg) {
  pg_backend_t *pb = arg;
  char sql[160];
  /* The replica name is ours (host name and random hex), never a user's. */
  snprintf(sql, sizeof(sql), "SET retryd.replica = '%s'", pb->replica);
  int rc = pg_conn_exec(c, sql);
  for (size_t i = 0; i < PG_NSTATEMENTS && rc == 0; i++)
    rc = pg_conn_prepare(c, pg_statements[i].name, pg_statements[i].sql);
  if (rc == 0)
    rc = pg_callbacks_prepare(c);
  return rc;
}

/* host-XXXXXXXX: readable in listings, unique per process. */
static void pg_replica_name(char *out, size_t len) {
  char host[64] = "retryd";
  if (gethostname(host, sizeof(host)) != 0)
    snprintf(host, sizeof(host), "retryd");
  host[sizeof(host) - 1] = '\0';
  for (char *h = host; *h; h++)
    if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
          *h == '-' || *h == '.'))
      *h = '-';
  uint32_t rnd = 0;
  if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
    rnd = (uint32_t)getpid() ^ (uint32_t)pg_now_ms();
  snprintf(out, len, "%s-%08x", host, rnd);
}

/* ---- notices ----------------------------------------------------------- */

static void pg_tell_due(pg_backend_t *pb, int64_t at) {
  if (at > 0 && (pb->tell_due == 0 || at < pb->tell_due))
    pb->tell_due = at;
}

/* A row this transaction ended. Told only if there is room: an id that
 * cannot be kept is a client held with Prefer: wait on another replica
 * that gets its 202 at the end of its wait instead of the answer. */
static void pg_tell_ended(pg_backend_t *pb, const char *id) {
  size_t n = strlen(id);
  if (pb->ended_len + n + 1 > pb->ended_cap) {
    size_t cap = pb->ended_cap ? pb->ended_cap * 2 : 1024;
    while (cap < pb->ended_len + n + 1)
      cap *= 2;
    char *p = realloc(pb->ended, cap);
    if (p == NULL)
      return;
    pb->ended = p;
    pb->ended_cap = cap;
  }
  memcpy(pb->ended + pb->ended_len, id, n);
  pb->ended_len += n;
  pb->ended[pb->ended_len++] = ' ';
}

static int pg_notify_payload(pg_backend_t *pb, const char *payload) {
  pg_params_t p = {.n = 0};
  p_text(&p, payload);
  int64_t n = pg_change(pb, "notify", &p);
  return n < 0 ? (int)n : 0;
}

/* Queues this transaction's notices, which its COMMIT sends: "REPLICA d
 * MS" and "REPLICA e ID ID ...", the ids in payloads that NOTIFY takes.
 * *told_due gets the due time told (0: none). */
static int pg_tell_others(pg_backend_t *pb, int64_t *told_due) {
  *told_due = 0;
  char head[128];
  int hl = snprintf(head, sizeof(head), "%s ", pb->replica);
  char payload[PG_PAYLOAD_MAX + 64];
  int rc = 0;
  int64_t now = pg_now_ms();
  if (pb->tell_due != 0 &&
      (pb->told_due == 0 || pb->tell_due < pb->told_due || pb->told_due <= now)) {
    snprintf(payload, sizeof(payload), "%sd %lld", head, (long long)pb->tell_due);
    rc = pg_notify_payload(pb, payload);
    if (rc == 0)
      *told_due = pb->tell_due;
  }
  size_t at = 0;
  while (rc == 0 && at < pb->ended_len) {
    /* As many whole ids as fit after the head. */
    size_t len = 0;
    while (at + len < pb->ended_len) {
      const char *sp = memchr(pb->ended + at + len, ' ', pb->ended_len - at - len);
      size_t next = (size_t)(sp - (pb->ended + at)) + 1;
      if (len > 0 && (size_t)hl + 2 + next > PG_PAYLOAD_MAX)
        break;
      len = next;
    }
    snprintf(payload, sizeof(payload), "%se %.*s", head, (int)(len - 1), pb->ended + at);
    rc = pg_notify_payload(pb, payload);
    at += len;
  }
  return rc;
}

/* What the listening connection heard (NULL: it may have missed some). */
static void pg_heard(void *arg, const char *payload) {
  pg_backend_t *pb = arg;
  storage_notice_t n;
  memset(&n, 0, sizeof(n));
  if (payload == NULL) {
    n.kind = STORAGE_NOTICE_MISSED;
    pb->notify(pb->notify_arg, &n);
    return;
  }
  size_t rl = strlen(pb->replica);
  if (strncmp(payload, pb->replica, rl) == 0 && payload[rl] == ' ')
    return; /* our own: this process knew already */
  const char *p = strchr(payload, ' ');
  if (p == NULL || p[1] == '\0' || p[2] != ' ')
    return;
  char kind = p[1];
  p += 3;
  if (kind == 'd') {
    n.kind = STORAGE_NOTICE_DUE;
    n.at_ms = strtoll(p, NULL, 10);
    if (n.at_ms > 0)
      pb->notify(pb->notify_arg, &n);
    return;
  }
  if (kind != 'e')
    return;
  n.kind = STORAGE_NOTICE_ENDED;
  while (*p != '\0') {
    size_t len = strcspn(p, " ");
    if (len > 0 && len < sizeof(n.id)) {
      memcpy(n.id, p, len);
      n.id[len] = '\0';
      pb->notify(pb->notify_arg, &n);
    }
    p += len;
    p += strspn(p, " ");
  }
}

/* ---- transactions ------------------------------------------------------ */

static int64_t pg_read_unfinished(pg_backend_t *pb) {
  pg_result_t *r;
  int rc = pg_run(pb, "unfinished", NULL, &r);
  if (rc != 0)
    return rc;
  int64_t n = pg_result_int(r, 0, 0);
  pg_result_free(r);
  return n;
}

static int pg_begin(storage_backend_t *b, bool durable) {
  pg_backend_t *pb = PG(b);
  if (!pg_conn_ready(pb->c))
    return -EIO;
  pb->durable = durable;
  pb->wrote = false;
  pb->tell_due = 0;
  pb->ended_len = 0;
  pb->next_due_known = false;
  /* A batch of reads and claims need not wait for the disk (a lost claim
   * is claimed again once its lease runs out). The unfinished count, which
   * other replicas change, comes with the BEGIN: one round trip, not two. */
  static const char *const begin_sql[2] = {
      "BEGIN; SET LOCAL synchronous_commit = off; " PG_EXECUTE("unfinished"),
      "BEGIN; " PG_EXECUTE("unfinished"),
  };
  int64_t n;
  int rc = pg_conn_exec_int(pb->c, begin_sql[durable], &n);
  if (rc != 0)
    return rc;
  pb->unfinished = n;
  return 0;
}

/* The store asks next_due() after every commit: it comes with the COMMIT,
 * read once the commit is done (what the commit stored counts), in the
 * same round trip. */
static int pg_commit(storage_backend_t *b, bool *synced) {
  pg_backend_t *pb = PG(b);
  int64_t told_due = 0;
  int rc = pg_tell_others(pb, &told_due);
  if (rc == 0)
    rc = pg_conn_commit_then_int(pb->c, pb->next_due_sql, &pb->next_due, &pb->next_due_known);
  if (rc == 0 && told_due != 0)
    pb->told_due = told_due;
  *synced = rc == 0 && pb->durable && pb->wrote;
  return rc;
}

/* A failed transaction of PostgreSQL keeps nothing once rolled back; when
 * the connection is gone the server rolls it back itself. */
static void pg_rollback(storage_backend_t *b) {
  pg_backend_t *pb = PG(b);
  pb->next_due_known = false;
  (void)pg_conn_exec(pb->c, "ROLLBACK");
  int64_t n = pg_conn_ready(pb->c) ? pg_read_unfinished(pb) : -EIO;
  if (n >= 0)
    pb->unfinished = n;
}

static int pg_probe(storage_backend_t *b) {
  pg_backend_t *pb = PG(b);
  if (!pg_conn_ready(pb->c))
    return -EIO;
  int64_t n = pg_change(pb, "probe", NULL);
  return n < 0 ? (int)n : 0;
}

/* ---- rows in and out --------------------------------------------------- */

/* A string sent as bytes (a bytea column): whatever the client sent. */
static void p_bytes_of(pg_params_t *p, const char *s) {
  if (s != NULL)
    p_bytes(p, s, strlen(s));
  else
    p_text(p, NULL);
}

static int pg_find(storage_backend_t *b, const char *key, const char *method, const char *target,
                   stored_request_t *out) {
  pg_params_t p = {.n = 0};
  p_bytes_of(&p, key);
  p_text(&p, method);
  p_bytes_of(&p, target);
  return pg_get_one(PG(b), "find", &p, out);
}

static int pg_find_completed(storage_backend_t *b, const char *key, const char *method,
                             const char *target, stored_request_t *out) {
  pg_params_t p = {.n = 0};
  p_bytes_of(&p, key);
  p_text(&p, method);
  p_bytes_of(&p, target);
  return pg_get_one(PG(b), "find_done", &p, out);
}

/* NULL means the default route's flow. */
static const char *pg_flow_of(const stored_request_t *r) { return r->flow != NULL ? r->flow : ""; }

static bool pg_flow_ok(const stored_request_t *r) {
  return strlen(pg_flow_of(r)) < STORAGE_FLOW_MAX;
}

static bool pg_takes_room(const stored_request_t *r) {
  return r->state == RQ_QUEUED || r->state == RQ_INFLIGHT;
}

/* r was stored by this transaction. */
static void pg_inserted(pg_backend_t *pb, const stored_request_t *r) {
  pb->wrote = true;
  if (pg_takes_room(r))
    pb->unfinished++;
  if (r->state == RQ_QUEUED)
    pg_tell_due(pb, r->next_attempt_at);
}

/* ON CONFLICT DO NOTHING skipped r: the key's unfinished row holds it (or,
 * vanishingly rarely, another row has the id). */
static int pg_insert_conflict(storage_backend_t *b, const stored_request_t *r,
                              stored_request_t *existing) {
  if (r->idempotency_key != NULL && existing != NULL &&
      pg_find(b, r->idempotency_key, r->method, r->target, existing) == 0)
    return -EEXIST;
  return r->idempotency_key != NULL ? -EEXIST : -EIO;
}

/* ON CONFLICT DO NOTHING: a unique violation would abort the whole batch's
 * transaction, and with it every other client's insert. */
static int pg_insert(storage_backend_t *b, const stored_request_t *r, stored_request_t *existing) {
  pg_backend_t *pb = PG(b);
  if (!pg_flow_ok(r))
    return -EINVAL;
  if (pg_takes_room(r) && pb->unfinished >= pb->max_queue) {
    /* A repeat of a stored request is answered from its twin even when
     * the queue is full: it takes no room. */
    if (r->idempotency_key != NULL && existing != NULL &&
        pg_find(b, r->idempotency_key, r->method, r->target, existing) == 0)
      return -EEXIST;
    return -EDQUOT;
  }
  pg_params_t p = {.n = 0};
  p_text(&p, r->id);
  p_int(&p, r->state);
  p_text(&p, r->method);
  p_bytes_of(&p, r->target);
  p_bytes(&p, r->headers != NULL ? r->headers : "", r->headers_len);
  if (r->body != NULL)
    p_bytes(&p, r->body, r->body_len);
  else
    p_text(&p, NULL);
  p_bytes_of(&p, r->idempotency_key);
  p_int(&p, r->attempts);
  p_int(&p, r->created_at);
  p_int_or_null(&p, r->next_attempt_at);
  p_int(&p, r->updated_at != 0 ? r->updated_at : r->created_at);
  p_int_or_null(&p, r->last_status);
  p_text(&p, r->last_error);
  p_text(&p, pg_flow_of(r));
  p_int_or_null(&p, r->deadline_at);
  p_text(&p, r->body_sha256);
  if (r->last_answer_headers != NULL)
    p_bytes(&p, r->last_answer_headers, r->last_answer_headers_len);
  else
    p_text(&p, NULL);
  if (r->last_answer_body != NULL)
    p_bytes(&p, r->last_answer_body, r->last_answer_body_len);
  else
    p_text(&p, NULL);
  p_text(&p, r->callback_url);
  pg_result_t *res;
  int rc = pg_run(pb, "insert", &p, &res);
  if (rc != 0)
    return rc;
  int rows = pg_result_rows(res);
  pg_result_free(res);
  if (rows == 0)
    return pg_insert_conflict(b, r, existing);
  pg_inserted(pb, r);
  return 0;
}

/* The parameters of "insert_many": one array per column, as "insert"
 * takes the row's fields. */
enum { PG_MANY_COLUMNS = 19 };

static const uint32_t pg_many_oids[PG_MANY_COLUMNS] = {
    PG_OID_TEXT, PG_OID_INT2, PG_OID_TEXT,  PG_OID_BYTEA, PG_OID_BYTEA, PG_OID_BYTEA, PG_OID_BYTEA,
    PG_OID_INT8, PG_OID_INT8, PG_OID_INT8,  PG_OID_INT8,  PG_OID_INT4,  PG_OID_TEXT,  PG_OID_TEXT,
    PG_OID_INT8, PG_OID_TEXT, PG_OID_BYTEA, PG_OID_BYTEA, PG_OID_TEXT,
};

static void pg_many_add(pg_array_t *col, const stored_request_t *r) {
  pg_array_add_str(&col[0], r->id);
  pg_array_add_int(&col[1], r->state);
  pg_array_add_str(&col[2], r->method);
  pg_array_add_str(&col[3], r->target);
  pg_array_add(&col[4], r->headers != NULL ? r->headers : "", r->headers_len);
  pg_array_add(&col[5], r->body, r->body_len);
  pg_array_add_str(&col[6], r->idempotency_key);
  pg_array_add_int(&col[7], r->attempts);
  pg_array_add_int(&col[8], r->created_at);
  if (r->next_attempt_at != 0) /* 0 means none, as in insert() */
    pg_array_add_int(&col[9], r->next_attempt_at);
  else
    pg_array_add(&col[9], NULL, 0);
  pg_array_add_int(&col[10], r->updated_at != 0 ? r->updated_at : r->created_at);
  if (r->last_status != 0)
    pg_array_add_int(&col[11], r->last_status);
  else
    pg_array_add(&col[11], NULL, 0);
  pg_array_add_str(&col[12], r->last_error);
  pg_array_add_str(&col[13], pg_flow_of(r));
  if (r->deadline_at != 0)
    pg_array_add_int(&col[14], r->deadline_at);
  else
    pg_array_add(&col[14], NULL, 0);
  pg_array_add_str(&col[15], r->body_sha256);
  pg_array_add(&col[16], r->last_answer_headers, r->last_answer_headers_len);
  pg_array_add(&col[17], r->last_answer_body, r->last_answer_body_len);
  pg_array_add_str(&col[18], r->callback_url);
}

/* Marks in stored[] the row whose id the statement returned. Rows come
 * back in the order they went in, so the search starts after the last
 * one found; *from moves on. */
static void pg_many_mark(const stored_request_t *const *rows, size_t n, bool *stored,
                         const char *id, size_t *from) {
  for (size_t k = 0; k < n; k++) {
    size_t i = (*from + k) % n;
    if (!stored[i] && strcmp(rows[i]->id, id) == 0) {
      stored[i] = true;
      *from = i + 1;
      return;
    }
  }
}

/* Runs "insert_many" on rows: 0 with stored[i] telling whether rows[i] was
 * stored (false: a conflict skipped it), or the statement's error. */
static int pg_many_run(pg_backend_t *pb, const stored_request_t *const *rows, size_t n,
                       bool *stored) {
  pg_array_t col[PG_MANY_COLUMNS];
  for (int c = 0; c < PG_MANY_COLUMNS; c++)
    pg_array_init(&col[c], pg_many_oids[c]);
  for (size_t i = 0; i < n; i++)
    pg_many_add(col, rows[i]);
  pg_params_t p = {.n = 0};
  int rc = 0;
  for (int c = 0; c < PG_MANY_COLUMNS && rc == 0; c++) {
    rc = pg_array_finish(&col[c]);
    if (col[c].len > INT32_MAX)
      rc = -ENOMEM;
    p_bytes(&p, col[c].data, col[c].len);
  }
  pg_result_t *res = NULL;
  if (rc == 0)
    rc = pg_run(pb, "insert_many", &p, &res);
  for (int c = 0; c < PG_MANY_COLUMNS; c++)
    pg_array_free(&col[c]);
  if (rc != 0)
    return rc;
  memset(stored, 0, n * sizeof(stored[0]));
  size_t from = 0;
  for (int k = 0; k < pg_result_rows(res); k++) {
    char *id = pg_result_dup(res, k, 0, NULL);
    if (id != NULL)
      pg_many_mark(rows, n, stored, id, &from);
    free(id);
  }
  pg_result_free(res);
  return 0;
}

/* Rows that go in one statement when they all fit below --max-queue. */
static void pg_insert_chunk(pg_backend_t *pb, const stored_request_t *const *rows, size_t n,
                            int *results, stored_request_t *existing) {
  int64_t room = 0;
  bool flows_ok = true;
  for (size_t i = 0; i < n; i++) {
    room += pg_takes_room(rows[i]);
    flows_ok = flows_ok && pg_flow_ok(rows[i]);
  }
  /* Near --max-queue, whether a row still fits depends on whether the rows
   * before it were stored or skipped as repeats: one at a time then, as
   * insert() decides; and so for a row insert() refuses (its flow too
   * long), which must not spoil the others. */
  bool one_by_one = n == 1 || !flows_ok || pb->unfinished + room > pb->max_queue;
  bool *stored = one_by_one ? NULL : malloc(n * sizeof(*stored));
  if (stored == NULL) { /* also out of memory: the slow way needs none */
    for (size_t i = 0; i < n; i++)
      results[i] = pg_insert(&pb->super, rows[i], &existing[i]);
    return;
  }
  int rc = pg_many_run(pb, rows, n, stored);
  for (size_t i = 0; i < n; i++) {
    if (rc != 0) {
      results[i] = rc; /* the transaction is lost: its commit fails too */
    } else if (stored[i]) {
      pg_inserted(pb, rows[i]);
      results[i] = 0;
    } else {
      results[i] = pg_insert_conflict(&pb->super, rows[i], &existing[i]);
    }
  }
  free(stored);
}

static size_t pg_row_bytes(const stored_request_t *r) {
  return PG_MANY_ROW_BYTES + r->headers_len + r->body_len +
         (r->target != NULL ? strlen(r->target) : 0) +
         (r->idempotency_key != NULL ? strlen(r->idempotency_key) : 0) +
         (r->last_error != NULL ? strlen(r->last_error) : 0) + strlen(pg_flow_of(r)) +
         r->last_answer_headers_len + r->last_answer_body_len;
}

/* One statement per PG_MANY_BYTES_MAX of rows: a batch's round trips are
 * a handful, not one per row. A row repeated by a later one of the same
 * statement is stored once (ON CONFLICT DO NOTHING skips the later). */
static void pg_insert_many(storage_backend_t *b, const stored_request_t *const *rows, size_t n,
                           int *results, stored_request_t *existing) {
  size_t i = 0;
  while (i < n) {
    size_t k = 1, bytes = pg_row_bytes(rows[i]);
    for (; i + k < n && bytes + pg_row_bytes(rows[i + k]) <= PG_MANY_BYTES_MAX; k++)
      bytes += pg_row_bytes(rows[i + k]);
    pg_insert_chunk(PG(b), rows + i, k, results + i, existing + i);
    i += k;
  }
}

static int pg_get(storage_backend_t *b, const char *id, bool with_payload, stored_request_t *out) {
  return pg_get_by_id(PG(b), with_payload ? "get_full" : "get_brief", id, out);
}

static int pg_cancel(storage_backend_t *b, const char *id, int64_t now, stored_request_t *out) {
  pg_backend_t *pb = PG(b);
  int rc = pg_get_by_id(pb, "get_locked", id, out);
  if (rc != 0)
    return rc;
  if (out->state != RQ_QUEUED)
    return -EPERM;
  pg_params_t p = {.n = 0};
  p_text(&p, id);
  p_int(&p, now);
  int64_t n = pg_change(pb, "cancel", &p);
  if (n < 0)
    return (int)n;
  pb->wrote = true;
  pb->unfinished--;
  pg_tell_ended(pb, id);
  out->state = RQ_CANCELLED;
  out->next_attempt_at = 0;
  out->updated_at = now;
  return 0;
}

static int pg_retry_now(storage_backend_t *b, const char *id, int64_t now, stored_request_t *out) {
  pg_backend_t *pb = PG(b);
  int rc = pg_get_by_id(pb, "get_locked", id, out);
  if (rc != 0)
    return rc;
  if (out->state != RQ_QUEUED && out->state != RQ_DEAD)
    return -EPERM;
  if (out->state == RQ_DEAD && pb->unfinished >= pb->max_queue)
    return -EDQUOT;
  pg_params_t p = {.n = 0};
  p_text(&p, id);
  p_int(&p, now);
  int64_t n = pg_change(pb, "revive", &p);
  if (n < 0)
    return (int)n;
  pb->wrote = true;
  pg_tell_due(pb, now);
  if (out->state == RQ_DEAD) {
    pb->unfinished++;
    out->created_at = now;
  }
  out->state = RQ_QUEUED;
  out->next_attempt_at = now;
  out->updated_at = now;
  return 0;
}

/* Rows whose replica stopped renewing its claim go back to the queue. */
static int64_t pg_expire_leases(pg_backend_t *pb, int64_t now) {
  pg_params_t p = {.n = 0};
  p_int(&p, now);
  int64_t n = pg_change(pb, "expire_leases", &p);
  if (n > 0)
    pg_tell_due(pb, now);
  return n;
}

/* Claims one picked row, or buries it when it is past its age: 1 when
 * claimed (out filled), 0 when buried, or an error. */
static int pg_claim_or_bury(pg_backend_t *pb, int64_t seq, bool expired, bool late, int64_t now,
                            stored_request_t *out) {
  pg_params_t p = {.n = 0};
  p_int(&p, seq);
  p_int(&p, now);
  if (expired || late) {
    pg_result_t *r;
    int rc = pg_run(pb, late ? "bury_late" : "expire_one", &p, &r);
    if (rc != 0)
      return rc;
    if (pg_result_rows(r) > 0) {
      char *id = pg_result_dup(r, 0, 0, NULL);
      if (id != NULL)
        pg_tell_ended(pb, id);
      free(id);
    }
    pg_result_free(r);
    return 0;
  }
  p_text(&p, pb->replica);
  p_int(&p, now + pb->lease_ms);
  int rc = pg_get_one(pb, "claim_one", &p, out);
  return rc == 0 ? 1 : rc;
}

static int pg_claim(storage_backend_t *b, int64_t now, const char *flow, int64_t max_age_ms,
                    size_t limit, stored_request_t *out, int64_t *dead_out) {
  pg_backend_t *pb = PG(b);
  *dead_out = 0;
  int64_t back = pg_expire_leases(pb, now);
  if (back < 0)
    return (int)back;
  size_t n = 0;
  int rc = 0;
  /* As with SQLite, a row past its age is buried instead of claimed and
   * does not count against the limit: pick again until it is reached or
   * nothing is due. */
  while (rc == 0 && n < limit) {
    pg_params_t p = {.n = 0};
    p_int(&p, now);
    p_int(&p, (int64_t)(limit - n));
    if (flow != NULL)
      p_text(&p, flow);
    pg_result_t *due;
    rc = pg_run(pb, flow != NULL ? "due_flow" : "due", &p, &due);
    if (rc != 0)
      break;
    int rows = pg_result_rows(due);
    for (int i = 0; i < rows && rc == 0; i++) {
      bool expired = now - pg_result_int(due, i, 1) > max_age_ms;
      int64_t deadline = pg_result_int(due, i, 2);
      bool late = deadline != 0 && deadline <= now;
      int got = pg_claim_or_bury(pb, pg_result_int(due, i, 0), expired, late, now, &out[n]);
      if (got < 0)
        rc = got;
      else if (got == 1)
        n++;
      else
        (*dead_out)++;
    }
    pg_result_free(due);
    if (rows == 0)
      break;
  }
  if (rc != 0) {
    for (size_t k = 0; k < n; k++)
      stored_request_free(&out[k]);
    return rc;
  }
  pb->unfinished -= *dead_out;
  return (int)n;
}

static int pg_finish(storage_backend_t *b, const char *id, int64_t now,
                     const attempt_outcome_t *o) {
  pg_backend_t *pb = PG(b);
  pg_params_t p = {.n = 0};
  p_text(&p, id);
  if (o->kind == OUTCOME_RELEASE) {
    p_int(&p, now);
    p_text(&p, pb->replica);
    p_int(&p, o->claim_token);
    int64_t n = pg_change(pb, "release", &p);
    if (n < 0)
      return (int)n;
    pb->wrote = pb->wrote || n > 0;
    if (n > 0)
      pg_tell_due(pb, now);
    return n > 0 ? 0 : -ENOENT;
  }
  rq_state_t state = o->kind == OUTCOME_COMPLETED ? RQ_COMPLETED
                     : o->kind == OUTCOME_DEAD    ? RQ_DEAD
                                                  : RQ_QUEUED;
  p_int(&p, state);
  p_int_or_null(&p, o->kind == OUTCOME_RETRY ? o->next_attempt_at : 0);
  p_int(&p, now);
  p_int_or_null(&p, o->last_status);
  p_text(&p, o->last_error);
  p_int_or_null(&p, o->response_status);
  if (o->response_status)
    p_bytes(&p, o->response_headers != NULL ? o->response_headers : "", o->response_headers_len);
  else
    p_text(&p, NULL);
  p_text(&p, pb->replica);
  p_int(&p, o->claim_token);
  if (o->last_answer_headers != NULL) {
    p_bytes(&p, o->last_answer_headers, o->last_answer_headers_len);
    p_bytes(&p, o->last_answer_body != NULL ? o->last_answer_body : "", o->last_answer_body_len);
  } else {
    p_text(&p, NULL);
    p_text(&p, NULL);
  }
  pg_result_t *r;
  int rc = pg_run(pb, "finish", &p, &r);
  if (rc != 0)
    return rc;
  if (pg_result_rows(r) == 0) {
    pg_result_free(r);
    return -ENOENT; /* not inflight, or no longer this claim's */
  }
  int64_t seq = pg_result_int(r, 0, 0);
  pg_result_free(r);
  pb->wrote = true;
  if (state != RQ_QUEUED) {
    pb->unfinished--;
    pg_tell_ended(pb, id);
  } else {
    pg_tell_due(pb, o->next_attempt_at);
  }
  if (!o->response_status)
    return 0;
  pg_params_t a = {.n = 0};
  p_int(&a, seq);
  p_bytes(&a, o->response_body != NULL ? o->response_body : "", o->response_body_len);
  int64_t n = pg_change(pb, "answer_put", &a);
  return n < 0 ? (int)n : 0;
}

/* ---- purge, counts, listings ------------------------------------------- */

/* Another replica purging holds the lock: this one then deletes nothing,
 * and says so by returning 0 (nothing more to do). */
static int64_t pg_purge(storage_backend_t *b, int64_t cutoff, int64_t limit) {
  pg_backend_t *pb = PG(b);
  pg_result_t *r;
  int rc = pg_run(pb, "purge_lock", NULL, &r);
  if (rc != 0)
    return rc;
  bool mine = pg_result_int(r, 0, 0) != 0;
  pg_result_free(r);
  if (!mine)
    return 0;
  pg_params_t p = {.n = 0};
  p_int(&p, cutoff);
  p_int(&p, limit);
  int64_t n = pg_change(pb, "purge", &p);
  if (n < 0 || n >= limit)
    return n;
  /* Old delivered or given-up notices go with the rows of the same age. */
  int64_t notices = pg_callbacks_purge(pb->c, cutoff, limit - n);
  return notices < 0 ? notices : n + notices;
}

/* PostgreSQL's autovacuum reuses and returns the space: nothing to do. */
static int64_t pg_reclaim(storage_backend_t *b, int64_t limit) {
  (void)b, (void)limit;
  return 0;
}

static void pg_purge_finished(storage_backend_t *b) { (void)b; }

static int64_t pg_single_int(pg_backend_t *pb, const char *name, pg_params_t *p) {
  pg_result_t *r;
  int rc = pg_run(pb, name, p, &r);
  if (rc != 0)
    return rc;
  int64_t v = pg_result_rows(r) > 0 ? pg_result_int(r, 0, 0) : 0;
  pg_result_free(r);
  return v;
}

static int64_t pg_next_due(storage_backend_t *b) {
  pg_backend_t *pb = PG(b);
  int64_t t = pb->next_due;
  if (!pb->next_due_known) {
    pg_params_t p = {.n = 0};
    p_text(&p, pb->replica);
    t = pg_single_int(pb, "next_due", &p);
  }
  pb->next_due_known = false;
  return t > 0 ? t : 0;
}

static int64_t pg_flow_next_due(storage_backend_t *b, const char *flow) {
  pg_backend_t *pb = PG(b);
  pg_params_t p = {.n = 0};
  p_text(&p, pb->replica);
  p_text(&p, flow);
  int64_t t = pg_single_int(pb, "next_due_flow", &p);
  return t > 0 ? t : 0;
}

static int pg_counts(storage_backend_t *b, queue_counts_t *out) {
  pg_backend_t *pb = PG(b);
  memset(out, 0, sizeof(*out));
  pg_result_t *r;
  int rc = pg_run(pb, "counts", NULL, &r);
  if (rc != 0)
    return rc;
  for (int i = 0; i < pg_result_rows(r); i++) {
    int64_t state = pg_result_int(r, i, 0);
    if (state >= 0 && state < RQ_NSTATES)
      out->count[state] = pg_result_int(r, i, 1);
  }
  pg_result_free(r);
  int64_t oldest = pg_single_int(pb, "oldest_queued", NULL);
  if (oldest < 0)
    return (int)oldest;
  out->oldest_queued_at = oldest;
  int64_t next = pg_single_int(pb, "next_queued", NULL);
  if (next < 0)
    return (int)next;
  out->next_attempt_at = next;
  return pg_callbacks_count(pb->c, out->callbacks);
}

static int pg_list(storage_backend_t *b, int state, int64_t after_seq, size_t limit,
                   stored_request_t *out, int64_t *last_seq) {
  pg_backend_t *pb = PG(b);
  pg_params_t p = {.n = 0};
  if (state >= 0)
    p_int(&p, state);
  p_int(&p, after_seq);
  p_int(&p, (int64_t)limit);
  pg_result_t *r;
  int rc = pg_run(pb, state >= 0 ? "list_state" : "list_all", &p, &r);
  if (rc != 0)
    return rc;
  int rows = pg_result_rows(r);
  *last_seq = after_seq;
  for (int i = 0; i < rows; i++)
    *last_seq = pg_row_read(r, i, &out[i]);
  pg_result_free(r);
  return rows;
}

/* The end of a step's scan (INT64_MAX: the table's end), over the rows of
 * state or of any state (state < 0). */
static int pg_window_end(pg_backend_t *pb, int state, int64_t after_seq, size_t scan,
                         int64_t *end) {
  pg_params_t p = {.n = 0};
  p_int(&p, after_seq);
  p_int(&p, scan > 0 ? (int64_t)scan - 1 : 0);
  if (state >= 0)
    p_int(&p, state);
  pg_result_t *r;
  int rc = pg_run(pb, state >= 0 ? "window_state" : "window_all", &p, &r);
  if (rc != 0)
    return rc;
  *end = pg_result_rows(r) > 0 ? pg_result_int(r, 0, 0) : INT64_MAX;
  pg_result_free(r);
  return 0;
}

/* Reads the rows of f in states (a mask, not 0) within the step's scan, at
 * most limit, locked when lock; *seqs gets their seqs (may be NULL). */
static int pg_find_filtered(pg_backend_t *pb, const storage_filter_t *f, unsigned states, bool lock,
                            size_t scan, size_t limit, stored_request_t *out, int64_t *seqs,
                            storage_page_t *page) {
  int one = storage_states_single(states);
  int64_t end;
  int rc = pg_window_end(pb, one, page->after_seq, scan, &end);
  if (rc != 0)
    return rc;
  pg_params_t p = {.n = 0};
  p_int(&p, page->after_seq);
  p_int(&p, end);
  p_int(&p, one >= 0 ? one : (int64_t)states);
  p_text(&p, f->method);
  p_bytes_of(&p, f->path_prefix);
  p_bytes_of(&p, f->idempotency_key);
  p_int_or_null(&p, f->last_status);
  p_int(&p, f->created_from);
  p_int(&p, f->created_until);
  p_int(&p, (int64_t)limit);
  static const char *const names[2][2] = {{"filter_mask", "filter_state"},
                                          {"pick_mask", "pick_state"}};
  pg_result_t *r;
  rc = pg_run(pb, names[lock][one >= 0], &p, &r);
  if (rc != 0)
    return rc;
  int rows = pg_result_rows(r);
  int64_t last = page->after_seq;
  for (int i = 0; i < rows; i++) {
    last = pg_row_read(r, i, &out[i]);
    if (seqs != NULL)
      seqs[i] = last;
  }
  pg_result_free(r);
  storage_page_end(page, (size_t)rows, limit, last, end);
  return rows;
}

static int pg_list_filtered(storage_backend_t *b, const storage_filter_t *f, size_t scan,
                            size_t limit, stored_request_t *out, storage_page_t *page) {
  unsigned states = f->states != 0 ? f->states : (1u << RQ_NSTATES) - 1;
  return pg_find_filtered(PG(b), f, states, false, scan, limit, out, NULL, page);
}

/* How many of the n picked rows a bulk step changes: all of them, but a
 * retry revives dead ones only while --max-queue leaves room; at the
 * first without, the action ends there (page->full). */
static int pg_bulk_take(pg_backend_t *pb, storage_bulk_t op, const stored_request_t *rows, int n,
                        const int64_t *seqs, storage_page_t *page) {
  int64_t room = pb->max_queue - pb->unfinished;
  for (int i = 0; i < n; i++) {
    if (op != STORAGE_BULK_RETRY || rows[i].state != RQ_DEAD)
      continue;
    if (room <= 0) {
      page->full = true;
      page->more = false;
      page->last_seq = i > 0 ? seqs[i - 1] : page->after_seq;
      return i;
    }
    room--;
  }
  return n;
}

/* "{1,2,3}": an int8[] in text form. */
static char *pg_seq_array(const int64_t *seqs, int n) {
  size_t cap = (size_t)n * 21 + 3;
  char *s = malloc(cap);
  if (s == NULL)
    return NULL;
  size_t len = 0;
  s[len++] = '{';
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(s + len, cap - len, i > 0 ? ",%lld" : "%lld", (long long)seqs[i]);
  snprintf(s + len, cap - len, "}");
  return s;
}

/* Changes the rows of seqs (locked by the pick) and reads them back into
 * out; keeps the backend's unfinished count and notices in step. */
static int pg_bulk_change(pg_backend_t *pb, storage_bulk_t op, int64_t now, const int64_t *seqs,
                          int n, int dead, stored_request_t *out) {
  char *arr = pg_seq_array(seqs, n);
  if (arr == NULL)
    return -EIO;
  pg_params_t p = {.n = 0};
  p_text(&p, arr);
  p_int(&p, now);
  pg_result_t *r;
  int rc = pg_run(pb, op == STORAGE_BULK_RETRY ? "bulk_retry" : "bulk_cancel", &p, &r);
  free(arr);
  if (rc != 0)
    return rc;
  int rows = pg_result_rows(r);
  for (int i = 0; i < rows; i++) {
    pg_row_read(r, i, &out[i]);
    if (op == STORAGE_BULK_CANCEL)
      pg_tell_ended(pb, out[i].id);
  }
  pg_result_free(r);
  if (rows > 0) {
    pb->wrote = true;
    if (op == STORAGE_BULK_RETRY) {
      pg_tell_due(pb, now);
      pb->unfinished += dead;
    } else {
      pb->unfinished -= rows;
    }
  }
  return rows;
}

static int pg_bulk(storage_backend_t *b, storage_bulk_t op, const storage_filter_t *f, int64_t now,
                   size_t scan, size_t limit, stored_request_t *out, storage_page_t *page) {
  pg_backend_t *pb = PG(b);
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
  int n = pg_find_filtered(pb, f, states, true, scan, limit, out, seqs, page);
  if (n <= 0) {
    free(seqs);
    return n;
  }
  int take = pg_bulk_take(pb, op, out, n, seqs, page);
  int dead = 0;
  for (int i = 0; i < take; i++)
    dead += out[i].state == RQ_DEAD;
  /* The picked rows give way to the changed ones, read back. */
  for (int i = 0; i < n; i++)
    stored_request_free(&out[i]);
  int rc = take > 0 ? pg_bulk_change(pb, op, now, seqs, take, dead, out) : 0;
  free(seqs);
  return rc;
}

static int pg_flows(storage_backend_t *b, storage_flow_t *out, size_t cap) {
  pg_params_t p = {.n = 0};
  p_int(&p, cap < INT32_MAX ? (int64_t)cap : INT32_MAX);
  p_text(&p, PG(b)->replica);
  pg_result_t *r;
  int rc = pg_run(PG(b), "flows", &p, &r);
  if (rc != 0)
    return rc;
  int rows = pg_result_rows(r);
  for (int i = 0; i < rows; i++) {
    storage_flow_t *f = &out[i];
    memset(f, 0, sizeof(*f));
    char *name = pg_result_dup(r, i, 0, NULL);
    snprintf(f->name, sizeof(f->name), "%s", name != NULL ? name : "");
    free(name);
    f->queued = pg_result_int(r, i, 1);
    f->inflight = pg_result_int(r, i, 2);
    f->next_due = pg_result_int(r, i, 3);
  }
  pg_result_free(r);
  return rows;
}

static int64_t pg_unfinished(storage_backend_t *b) { return PG(b)->unfinished; }

/* Renews this replica's leases while its attempts run: autocommit, with a
 * sync (a renewal lost to a crash only shortens a lease). */
static void pg_housekeep(storage_backend_t *b) {
  pg_backend_t *pb = PG(b);
  if (!pg_conn_ready(pb->c))
    return;
  pg_params_t p = {.n = 0};
  p_text(&p, pb->replica);
  p_int(&p, pg_now_ms() + pb->lease_ms);
  (void)pg_change(pb, "renew", &p);
}

/* A notice read for delivery is leased for --claim-lease: another replica
 * (or this one after a crash) sends it again only once that ran out. */
static int pg_callback_due(storage_backend_t *b, int64_t now, size_t body_cap, size_t limit,
                           storage_callback_t *out) {
  pg_backend_t *pb = PG(b);
  return pg_callbacks_due(pb->c, now, now + pb->lease_ms, body_cap, limit, out);
}

static int pg_callback_finish(storage_backend_t *b, int64_t seq, int64_t now,
                              callback_state_t state, int64_t next_at, const char *error) {
  PG(b)->wrote = true;
  return pg_callbacks_finish(PG(b)->c, seq, now, state, next_at, error);
}

static int64_t pg_callback_next_due(storage_backend_t *b) {
  return pg_callbacks_next_due(PG(b)->c);
}

static void pg_close(storage_backend_t *b) {
  pg_backend_t *pb = PG(b);
  pg_listen_stop(pb->listen);
  pg_conn_close(pb->c);
  free(pb->ended);
  free(pb);
}

static const storage_backend_ops_t pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .probe = pg_probe,
    .insert = pg_insert,
    .insert_many = pg_insert_many,
    .find_idempotent = pg_find,
    .find_completed = pg_find_completed,
    .get = pg_get,
    .cancel = pg_cancel,
    .retry_now = pg_retry_now,
    .claim = pg_claim,
    .finish = pg_finish,
    .purge = pg_purge,
    .reclaim = pg_reclaim,
    .purge_finished = pg_purge_finished,
    .counts = pg_counts,
    .list = pg_list,
    .list_filtered = pg_list_filtered,
    .bulk = pg_bulk,
    .flows = pg_flows,
    .next_due = pg_next_due,
    .flow_next_due = pg_flow_next_due,
    .unfinished = pg_unfinished,
    .housekeep = pg_housekeep,
    .callback_due = pg_callback_due,
    .callback_finish = pg_callback_finish,
    .callback_next_due = pg_callback_next_due,
};

int postgres_backend_open(storage_backend_t **out, const char *url, const storage_params_t *params,
                          char *err, size_t errlen) {
  *out = NULL;
  pg_backend_t *pb = calloc(1, sizeof(*pb));
  if (pb == NULL)
    return -ENOMEM;
  pb->max_queue = params->max_queue;
  pb->lease_ms = params->lease_ms > 0 ? params->lease_ms : PG_LEASE_MS_DEFAULT;
  pg_replica_name(pb->replica, sizeof(pb->replica));
  /* The replica name is ours (host name and random hex), never a user's:
   * it may stand in the SQL. */
  snprintf(pb->next_due_sql, sizeof(pb->next_due_sql), PG_EXECUTE("next_due") "('%s')",
           pb->replica);
  /* The schema first, on a session without prepared statements (they name
   * tables that may not exist yet), then the session proper. */
  int rc = pg_conn_open(&pb->c, url, NULL, NULL, err, errlen);
  if (rc == 0)
    rc = pg_schema_migrate(pb->c, err, errlen);
  if (rc == 0) {
    rc = pg_on_session(pb->c, pb);
    if (rc != 0)
      snprintf(err, errlen, "cannot prepare retryd's statements");
  }
  if (rc == 0)
    pg_conn_set_session(pb->c, pg_on_session, pb);
  int64_t recovered = rc == 0 ? pg_expire_leases(pb, pg_now_ms()) : 0;
  if (recovered >= 0 && rc == 0) {
    int64_t n = pg_read_unfinished(pb); /* right from the start, not only after a batch */
    if (n >= 0)
      pb->unfinished = n;
  }
  if (recovered < 0) {
    rc = (int)recovered;
    snprintf(err, errlen, "cannot queue again the requests of stopped replicas");
  }
  if (rc == 0 && params->notify != NULL) {
    pb->notify = params->notify;
    pb->notify_arg = params->notify_arg;
    rc = pg_listen_start(&pb->listen, url, PG_CHANNEL, pg_heard, pb);
    if (rc != 0)
      snprintf(err, errlen, "cannot start listening for other replicas");
  }
  if (rc != 0) {
    pg_conn_close(pb->c);
    free(pb);
    return rc;
  }
  pb->super.ops = &pg_ops;
  pb->super.info.recovered = recovered;
  pb->super.info.reclaims_space = true;
  pb->super.info.converted_ms = -1;
  pb->super.info.poll_ms = pb->listen != NULL ? PG_POLL_MS_LISTENING : PG_POLL_MS;
  snprintf(pb->super.info.replica, sizeof(pb->super.info.replica), "%s", pb->replica);
  pb->super.info.housekeep_ms = pb->lease_ms / 3 > 0 ? pb->lease_ms / 3 : 1;
  *out = &pb->super;
  return 0;
}
