/* storage_backend conformance: every backend keeps the queue the same way.
 *
 * Each scenario runs once per backend, driven only through
 * storage/storage_backend.h (storage_backend_open(), then b->ops), with
 * transactions as the store makes them (storage/store.c): a write is a
 * durable batch, a claim or a read a batch that is not, a purge slice a
 * batch of its own followed by purge_finished(); next_due() and
 * unfinished() are asked after the commit, outside a transaction, as
 * store_fill_after() asks them. A scenario may close its backend and open
 * it again, as a restarted retryd does.
 *
 *   sqlite    always: "sqlite:" and a file in a temporary directory.
 *   postgres  when RETRYD_TEST_PG_DIR names a running cluster
 *             (tests/pg/pg_cluster.py; ctest's fixture "pg"): a database
 *             of its own per test, made and dropped by pg_cluster.py, and
 *             the cluster's DSN with that database as location. A backend
 *             that cannot open it fails every test of the group; so does a
 *             cluster that cannot make the databases.
 *
 * What is asserted is what the SQLite backend does today
 * (tests/unit/test_sqlite_queue.c tests its SQLite side: the file and the
 * files it refuses, migrations, locking, the WAL, pages, recovery at open).
 * Ids are UUID-shaped, as retryd's are, so a backend may keep them in a
 * uuid column; keys and header values are bytes, not UTF-8 (HTTP allows
 * obs-text in a field value). The states' names (stored_request.h) are
 * tested once, without a backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "storage/postgres/pg_conn.h"
#include "storage/postgres/pg_schema.h"
#include "storage/sqlite/schema.h"
#include "storage/storage_backend.h"
#include "storage/storage_migrate.h"
#include "test_support.h"

#define BIG_QUEUE 1000000
#define T0 1700000000000ll                     /* a plausible "now", Unix ms */
#define NEVER_EXPIRES (100ll * 365 * 86400000) /* a --max-age no row reaches */
#define ROWS_MAX 16                            /* rows a helper claims or lists at once */

/* A row's id: its name in a test is the last two hex digits. */
#define ID(n) "0190a1b2-c3d4-7e5f-8a6b-0000000000" #n

typedef enum { ON_SQLITE, ON_POSTGRES } backend_kind_t;

typedef struct {
  backend_kind_t kind;
  char location[512]; /* what storage_backend_open() gets */
  char dir[64];       /* SQLite: this test's temporary directory */
  char dbname[64];    /* PostgreSQL: this test's database */
  storage_backend_t *b;
  char err[256];
} fx_t;

/* ---- fixture: one backend per test ------------------------------------- */

static int sqlite_setup(void **state) {
  fx_t *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  fx->kind = ON_SQLITE;
  if (test_dir_make(fx->dir, sizeof(fx->dir), "backend") != 0) {
    free(fx);
    return -1;
  }
  snprintf(fx->location, sizeof(fx->location), "sqlite:%s/queue.db", fx->dir);
  *state = fx;
  return 0;
}

/* The PostgreSQL group's databases, one per test, made together by the
 * group's setup and dropped together by its teardown: a database costs a
 * fraction of a second, starting pg_cluster.py as much again. */
#define PG_DATABASES_MAX 64

static struct {
  const char *dir; /* RETRYD_TEST_PG_DIR */
  int count;       /* databases made */
  int used;        /* handed to tests */
} pg;

static void pg_database_name(int i, char *out, size_t outlen) {
  snprintf(out, outlen, "backend_%d_%d", (int)getpid(), i);
}

/* Runs tests/pg/pg_cluster.py COMMAND DIR and the names of databases 0 to
 * count-1; 0 when it exited 0. It prints nothing but its one-line error. */
static int pg_cluster(const char *command, int count) {
  char cmd[16], dir[512], names[PG_DATABASES_MAX][48];
  char *argv[PG_DATABASES_MAX + 5];
  int argc = 0;
  snprintf(cmd, sizeof(cmd), "%s", command);
  snprintf(dir, sizeof(dir), "%s", pg.dir);
  argv[argc++] = RETRYD_PYTHON;
  argv[argc++] = RETRYD_PG_CLUSTER;
  argv[argc++] = cmd;
  argv[argc++] = dir;
  for (int i = 0; i < count && i < PG_DATABASES_MAX; i++) {
    pg_database_name(i, names[i], sizeof(names[i]));
    argv[argc++] = names[i];
  }
  argv[argc] = NULL;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    execv(RETRYD_PYTHON, argv);
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The cluster's DSN (DIR/dsn: postgres://retryd:PASSWORD@127.0.0.1:PORT/retryd)
 * with dbname as its database. Never printed: it holds the password. */
static int pg_location(const char *dbname, char *out, size_t outlen) {
  char path[512], dsn[400];
  snprintf(path, sizeof(path), "%s/dsn", pg.dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  bool got = fgets(dsn, sizeof(dsn), f) != NULL;
  fclose(f);
  char *slash = got ? strrchr(dsn, '/') : NULL;
  if (slash == NULL)
    return -1;
  *slash = '\0';
  int n = snprintf(out, outlen, "%s/%s", dsn, dbname);
  return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int postgres_group_setup(void **state) {
  (void)state;
  if (pg.count > PG_DATABASES_MAX || pg_cluster("createdb", pg.count) != 0) {
    print_error("could not create %d databases in the cluster of %s\n", pg.count, pg.dir);
    pg.count = 0;
    return -1;
  }
  return 0;
}

static int postgres_group_teardown(void **state) {
  (void)state;
  if (pg.count > 0 && pg_cluster("dropdb", pg.count) != 0)
    print_error("could not drop the test databases in the cluster of %s\n", pg.dir);
  return 0;
}

static int postgres_setup(void **state) {
  fx_t *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  fx->kind = ON_POSTGRES;
  *state = fx;
  if (pg.used >= pg.count)
    return -1;
  pg_database_name(pg.used++, fx->dbname, sizeof(fx->dbname));
  if (pg_location(fx->dbname, fx->location, sizeof(fx->location)) != 0) {
    print_error("no DSN in %s/dsn\n", pg.dir);
    return -1;
  }
  return 0;
}

static void forget_claims(void);

static int fx_teardown(void **state) {
  fx_t *fx = *state;
  forget_claims();
  if (fx->b != NULL)
    fx->b->ops->close(fx->b);
  if (fx->kind == ON_SQLITE)
    test_dir_remove(fx->dir);
  free(fx);
  return 0;
}

/* Opens this test's backend; a backend that cannot is a failure, never a
 * skip. The location is not shown: a DSN holds a password. */
static storage_backend_t *open_ok(fx_t *fx, int64_t max_queue) {
  fx->err[0] = '\0';
  /* The scenarios move a made-up clock by minutes: claims must not expire
   * under them (a shared backend's lease is tested with real replicas in
   * tests/integration/test_pg_replicas.py). */
  storage_params_t params = {.max_queue = max_queue, .lease_ms = 365ll * 24 * 3600 * 1000};
  int rc = storage_backend_open(&fx->b, fx->location, &params, fx->err, sizeof(fx->err));
  if (rc != 0)
    fail_msg("storage_backend_open(%s) = %d: %s", fx->kind == ON_SQLITE ? fx->location : fx->dbname,
             rc, fx->err);
  assert_non_null(fx->b);
  assert_non_null(fx->b->ops);
  return fx->b;
}

/* Closes this test's backend and opens it again, as a restarted retryd. */
static storage_backend_t *reopen(fx_t *fx, int64_t max_queue) {
  fx->b->ops->close(fx->b);
  fx->b = NULL;
  return open_ok(fx, max_queue);
}

/* ---- transactions --------------------------------------------------------- */

static void begin_ok(storage_backend_t *b, bool durable) {
  assert_int_equal(b->ops->begin(b, durable), 0);
}

/* Returns *synced. */
static bool commit_ok(storage_backend_t *b) {
  bool synced = false;
  assert_int_equal(b->ops->commit(b, &synced), 0);
  return synced;
}

/* ---- batches of one job, as the store runs them ------------------------------- */

/* A row is test_support.h's new_row() (a queued POST with HEADERS and
 * BODY), an outcome its simple_outcome() unless a test says more. */

static int batch_insert(storage_backend_t *b, const stored_request_t *r,
                        stored_request_t *existing) {
  if (existing != NULL)
    memset(existing, 0, sizeof(*existing));
  begin_ok(b, true);
  int rc = b->ops->insert(b, r, existing);
  commit_ok(b);
  return rc;
}

/* rows[0..n) with one insert_many() in a durable batch of their own:
 * results[i] and existing[i] (zeroed first) as it gave them; returns
 * *synced. */
static bool batch_insert_many(storage_backend_t *b, const stored_request_t *rows, size_t n,
                              int *results, stored_request_t *existing) {
  const stored_request_t **ptrs = calloc(n, sizeof(*ptrs));
  assert_non_null(ptrs);
  for (size_t i = 0; i < n; i++)
    ptrs[i] = &rows[i];
  memset(existing, 0, n * sizeof(*existing));
  begin_ok(b, true);
  b->ops->insert_many(b, ptrs, n, results, existing);
  bool synced = commit_ok(b);
  free(ptrs);
  return synced;
}

static void insert_ok(storage_backend_t *b, const char *id, int64_t created, int64_t due,
                      const char *key) {
  stored_request_t r = new_row(id, created, due, key);
  int rc = batch_insert(b, &r, NULL);
  if (rc != 0)
    fail_msg("insert %s: %d", id, rc);
}

static int batch_get(storage_backend_t *b, const char *id, bool with_payload,
                     stored_request_t *out) {
  memset(out, 0, sizeof(*out));
  begin_ok(b, false);
  int rc = b->ops->get(b, id, with_payload, out);
  commit_ok(b);
  return rc;
}

static rq_state_t state_of(storage_backend_t *b, const char *id) {
  stored_request_t r;
  assert_int_equal(batch_get(b, id, false, &r), 0);
  rq_state_t s = r.state;
  stored_request_free(&r);
  return s;
}

static int batch_find(storage_backend_t *b, const char *key, const char *method, const char *target,
                      stored_request_t *out) {
  memset(out, 0, sizeof(*out));
  begin_ok(b, false);
  int rc = b->ops->find_idempotent(b, key, method, target, out);
  commit_ok(b);
  return rc;
}

/* The latest claim token each row was claimed under, as the scheduler keeps
 * it with the attempt: a finish that names none is given its row's (a
 * shared backend records an outcome only under the claim it ran under). */
static struct {
  char id[40];
  int64_t token;
} claimed[64];

static void note_claims(const stored_request_t *rows, int n) {
  for (int i = 0; i < n; i++) {
    size_t k = 0;
    while (k < sizeof(claimed) / sizeof(claimed[0]) && claimed[k].id[0] != '\0' &&
           strcmp(claimed[k].id, rows[i].id) != 0)
      k++;
    assert_true(k < sizeof(claimed) / sizeof(claimed[0]));
    snprintf(claimed[k].id, sizeof(claimed[k].id), "%s", rows[i].id);
    claimed[k].token = rows[i].claim_token;
  }
}

static void forget_claims(void) { memset(claimed, 0, sizeof(claimed)); }

static int64_t token_of(const char *id) {
  for (size_t k = 0; k < sizeof(claimed) / sizeof(claimed[0]) && claimed[k].id[0] != '\0'; k++)
    if (strcmp(claimed[k].id, id) == 0)
      return claimed[k].token;
  return 0;
}

/* A claim of flow's due rows (NULL: any flow's) in a batch of its own. */
static int batch_claim_flow(storage_backend_t *b, int64_t now, const char *flow, int64_t max_age_ms,
                            size_t limit, stored_request_t *rows, int64_t *dead) {
  *dead = -1;
  begin_ok(b, false);
  int n = b->ops->claim(b, now, flow, max_age_ms, limit, rows, dead);
  commit_ok(b);
  if (n > 0)
    note_claims(rows, n);
  return n;
}

static int batch_claim(storage_backend_t *b, int64_t now, int64_t max_age_ms, size_t limit,
                       stored_request_t *rows, int64_t *dead) {
  return batch_claim_flow(b, now, NULL, max_age_ms, limit, rows, dead);
}

/* Claims everything due at now (no expiry) and frees the rows. */
static int claim_count(storage_backend_t *b, int64_t now) {
  stored_request_t rows[ROWS_MAX];
  int64_t dead;
  int n = batch_claim(b, now, NEVER_EXPIRES, ROWS_MAX, rows, &dead);
  assert_true(n >= 0);
  assert_int_equal(dead, 0);
  for (int i = 0; i < n; i++)
    stored_request_free(&rows[i]);
  return n;
}

/* Claims exactly one row due at now and expects it to be id. */
static void claim_one(storage_backend_t *b, int64_t now, const char *id) {
  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(batch_claim(b, now, NEVER_EXPIRES, 4, rows, &dead), 1);
  assert_string_equal(rows[0].id, id);
  stored_request_free(&rows[0]);
}

static int batch_finish(storage_backend_t *b, const char *id, int64_t now,
                        const attempt_outcome_t *given) {
  attempt_outcome_t o = *given;
  if (o.claim_token == 0)
    o.claim_token = token_of(id);
  begin_ok(b, true);
  int rc = b->ops->finish(b, id, now, &o);
  commit_ok(b);
  return rc;
}

static void finish_ok(storage_backend_t *b, const char *id, int64_t now, outcome_t kind) {
  attempt_outcome_t o = simple_outcome(kind, now);
  assert_int_equal(batch_finish(b, id, now, &o), 0);
}

static int batch_cancel(storage_backend_t *b, const char *id, int64_t now, stored_request_t *out) {
  memset(out, 0, sizeof(*out));
  begin_ok(b, true);
  int rc = b->ops->cancel(b, id, now, out);
  commit_ok(b);
  return rc;
}

static void cancel_ok(storage_backend_t *b, const char *id, int64_t now) {
  stored_request_t r;
  assert_int_equal(batch_cancel(b, id, now, &r), 0);
  stored_request_free(&r);
}

static int batch_retry_now(storage_backend_t *b, const char *id, int64_t now,
                           stored_request_t *out) {
  memset(out, 0, sizeof(*out));
  begin_ok(b, true);
  int rc = b->ops->retry_now(b, id, now, out);
  commit_ok(b);
  return rc;
}

/* A purge slice: its own batch without a sync, then purge_finished(). */
static int64_t batch_purge(storage_backend_t *b, int64_t cutoff, int64_t limit) {
  begin_ok(b, false);
  int64_t n = b->ops->purge(b, cutoff, limit);
  commit_ok(b);
  if (n > 0)
    b->ops->purge_finished(b);
  return n;
}

static void counts_ok(storage_backend_t *b, queue_counts_t *c) {
  memset(c, 0xff, sizeof(*c));
  begin_ok(b, false);
  assert_int_equal(b->ops->counts(b, c), 0);
  commit_ok(b);
}

static int batch_list(storage_backend_t *b, int state, int64_t after_seq, size_t limit,
                      stored_request_t *rows, int64_t *last_seq) {
  *last_seq = -1;
  begin_ok(b, false);
  int n = b->ops->list(b, state, after_seq, limit, rows, last_seq);
  commit_ok(b);
  return n;
}

/* As store_fill_after() asks them: after the commit. */
static int64_t unfinished(storage_backend_t *b) { return b->ops->unfinished(b); }
static int64_t next_due(storage_backend_t *b) { return b->ops->next_due(b); }

/* n bytes in which every byte value occurs, NUL included. */
static char *every_byte(size_t n) {
  char *p = malloc(n);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = (char)((i * 7 + i / 256) & 0xff);
  return p;
}

/* ---- insert and get --------------------------------------------------------- */

static void insert_then_get_with_payload_returns_every_field_byte_exact(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  static const char headers[] = "X-A: 1\r\nAuthorization: Bearer s3cr3t\r\nX-Empty: \r\n";
  const size_t body_len = 64 * 1024;
  char *body = every_byte(body_len);
  stored_request_t in = new_row(ID(a1), T0, T0 + 500, "key-1");
  in.method = "PUT";
  in.target = "/api/v1/bot/123/?x=1";
  in.headers = headers;
  in.headers_len = sizeof(headers) - 1;
  in.body = body;
  in.body_len = body_len;
  in.attempts = 2;
  in.updated_at = T0 + 7;
  in.last_status = 503;
  in.last_error = "upstream said 503";
  int rc = batch_insert(b, &in, NULL);
  assert_int_equal(rc, 0);

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(a1), true, &r), 0);
  assert_string_equal(r.id, ID(a1));
  assert_int_equal(r.state, RQ_QUEUED);
  assert_string_equal(r.method, "PUT");
  assert_string_equal(r.target, "/api/v1/bot/123/?x=1");
  assert_int_equal(r.headers_len, sizeof(headers) - 1);
  assert_memory_equal(r.headers, headers, sizeof(headers) - 1);
  assert_int_equal(r.body_len, body_len);
  assert_memory_equal(r.body, body, body_len);
  assert_string_equal(r.idempotency_key, "key-1");
  assert_int_equal(r.attempts, 2);
  assert_int_equal(r.created_at, T0);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  assert_int_equal(r.updated_at, T0 + 7);
  assert_int_equal(r.last_status, 503);
  assert_string_equal(r.last_error, "upstream said 503");
  assert_int_equal(r.response_status, 0);
  assert_null(r.response_headers);
  assert_null(r.response_body);
  stored_request_free(&r);
  free(body);
}

static void get_brief_leaves_the_payloads_out(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  stored_request_t in = new_row(ID(a1), T0, T0 + 500, "key-1");
  in.attempts = 2;
  in.last_status = 503;
  assert_int_equal(batch_insert(b, &in, NULL), 0);

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(a1), false, &r), 0);
  assert_string_equal(r.id, ID(a1));
  assert_int_equal(r.state, RQ_QUEUED);
  assert_string_equal(r.method, "POST");
  assert_string_equal(r.target, "/api/v1/bot");
  assert_string_equal(r.idempotency_key, "key-1");
  assert_int_equal(r.attempts, 2);
  assert_int_equal(r.created_at, T0);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  assert_int_equal(r.last_status, 503);
  assert_null(r.headers);
  assert_int_equal(r.headers_len, 0);
  assert_null(r.body);
  assert_int_equal(r.body_len, 0);
  stored_request_free(&r);
}

static void a_request_without_body_key_or_error_reads_back_as_none(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  stored_request_t in = new_row(ID(a1), T0, T0, NULL);
  in.method = "GET";
  in.body = NULL;
  in.body_len = 0;
  assert_int_equal(batch_insert(b, &in, NULL), 0);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(a1), true, &r), 0);
  assert_string_equal(r.method, "GET");
  assert_null(r.body);
  assert_int_equal(r.body_len, 0);
  assert_null(r.idempotency_key);
  assert_int_equal(r.last_status, 0);
  assert_null(r.last_error);
  assert_int_equal(r.updated_at, T0); /* none given: created_at */
  stored_request_free(&r);
}

static void get_of_an_unknown_id_is_enoent(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(a1), T0, T0, NULL);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(ff), false, &r), -ENOENT);
  stored_request_free(&r);
  assert_int_equal(batch_get(b, ID(ff), true, &r), -ENOENT);
  stored_request_free(&r);
}

/* HTTP lets a field value carry bytes 0x80-0xFF (obs-text): they are kept
 * as they came, in the key as in the headers, request and answer alike. */
static void keys_and_header_values_beyond_ascii_round_trip_byte_exact(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  static const char headers[] = "X-Name: Ren\xe9\r\nX-Raw: \xff\xfe\x80\r\n";
  static const char key[] = "k-\xff\xe9-\x80";
  stored_request_t in = new_row(ID(a1), T0, T0, key);
  in.headers = headers;
  in.headers_len = sizeof(headers) - 1;
  assert_int_equal(batch_insert(b, &in, NULL), 0);

  stored_request_t r;
  assert_int_equal(batch_find(b, key, "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, ID(a1));
  assert_string_equal(r.idempotency_key, key);
  stored_request_free(&r);
  stored_request_t dup = new_row(ID(a2), T0, T0, key);
  assert_int_equal(batch_insert(b, &dup, &r), -EEXIST);
  assert_string_equal(r.id, ID(a1));
  stored_request_free(&r);

  claim_one(b, T0, ID(a1));
  static const char answer_headers[] =
      "Content-Type: text/plain; charset=latin1\r\nX-R: \xe9\xff\r\n";
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_COMPLETED;
  o.response_status = 200;
  o.response_headers = answer_headers;
  o.response_headers_len = sizeof(answer_headers) - 1;
  o.response_body = "caf\xe9";
  o.response_body_len = 4;
  assert_int_equal(batch_finish(b, ID(a1), T0 + 1, &o), 0);

  assert_int_equal(batch_get(b, ID(a1), true, &r), 0);
  assert_int_equal(r.headers_len, sizeof(headers) - 1);
  assert_memory_equal(r.headers, headers, sizeof(headers) - 1);
  assert_int_equal(r.response_headers_len, sizeof(answer_headers) - 1);
  assert_memory_equal(r.response_headers, answer_headers, sizeof(answer_headers) - 1);
  assert_int_equal(r.response_body_len, 4);
  assert_memory_equal(r.response_body, "caf\xe9", 4);
  stored_request_free(&r);
}

/* ---- idempotency ------------------------------------------------------------- */

/* The store runs many jobs in one transaction: a conflict is the answer to
 * one of them, not the end of the others. (PostgreSQL aborts a whole
 * transaction on a unique violation unless the backend avoids raising it.) */
static void a_held_key_is_eexist_naming_the_holder_and_the_batch_still_commits(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(a1), T0, T0, "idem-1");

  begin_ok(b, true);
  stored_request_t before = new_row(ID(b1), T0 + 1, T0 + 1000, NULL);
  assert_int_equal(b->ops->insert(b, &before, NULL), 0);
  stored_request_t dup = new_row(ID(b2), T0 + 2, T0 + 1000, "idem-1");
  stored_request_t existing;
  memset(&existing, 0, sizeof(existing));
  assert_int_equal(b->ops->insert(b, &dup, &existing), -EEXIST);
  assert_string_equal(existing.id, ID(a1));
  assert_string_equal(existing.idempotency_key, "idem-1");
  assert_int_equal(existing.state, RQ_QUEUED);
  assert_int_equal(existing.created_at, T0);
  stored_request_free(&existing);
  /* The same transaction goes on: a write, a read, another conflict. */
  stored_request_t after = new_row(ID(b3), T0 + 3, T0 + 1000, "idem-2");
  assert_int_equal(b->ops->insert(b, &after, NULL), 0);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(b->ops->get(b, ID(b1), false, &r), 0);
  stored_request_free(&r);
  stored_request_t dup2 = new_row(ID(b4), T0 + 4, T0 + 4, "idem-2");
  memset(&existing, 0, sizeof(existing));
  assert_int_equal(b->ops->insert(b, &dup2, &existing), -EEXIST);
  assert_string_equal(existing.id, ID(b3)); /* held by a row of this very transaction */
  stored_request_free(&existing);
  assert_true(commit_ok(b));

  assert_int_equal(state_of(b, ID(b1)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(b3)), RQ_QUEUED);
  assert_int_equal(batch_get(b, ID(b2), false, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(b4), false, &r), -ENOENT);
  assert_int_equal(unfinished(b), 3);

  /* Still a conflict while the holder is inflight. */
  claim_one(b, T0, ID(a1));
  memset(&existing, 0, sizeof(existing));
  assert_int_equal(batch_insert(b, &dup, &existing), -EEXIST);
  assert_string_equal(existing.id, ID(a1));
  assert_int_equal(existing.state, RQ_INFLIGHT);
  stored_request_free(&existing);
  assert_int_equal(unfinished(b), 3);
}

static void find_idempotent_finds_the_unfinished_row_and_not_a_finished_one(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(a1), T0, T0, "idem-1");
  stored_request_t r;
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, ID(a1));
  assert_int_equal(r.state, RQ_QUEUED);
  assert_string_equal(r.idempotency_key, "idem-1");
  assert_null(r.headers); /* without payloads */
  assert_null(r.body);
  stored_request_free(&r);

  claim_one(b, T0, ID(a1));
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, ID(a1));
  assert_int_equal(r.state, RQ_INFLIGHT);
  stored_request_free(&r);

  finish_ok(b, ID(a1), T0 + 1, OUTCOME_COMPLETED);
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot", &r), -ENOENT);
  stored_request_free(&r);
  /* Key, method and target together name the request. */
  insert_ok(b, ID(a2), T0 + 2, T0 + 2, "idem-1");
  assert_int_equal(batch_find(b, "idem-1", "PUT", "/api/v1/bot", &r), -ENOENT);
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot/x", &r), -ENOENT);
  assert_int_equal(batch_find(b, "idem-2", "POST", "/api/v1/bot", &r), -ENOENT);
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, ID(a2));
  stored_request_free(&r);
}

static void a_key_may_be_used_again_once_its_row_finished(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(a1), T0, T0, "idem-1");
  claim_one(b, T0, ID(a1));
  finish_ok(b, ID(a1), T0 + 1, OUTCOME_COMPLETED);
  insert_ok(b, ID(a2), T0 + 2, T0 + 2, "idem-1");
  claim_one(b, T0 + 2, ID(a2));
  finish_ok(b, ID(a2), T0 + 3, OUTCOME_DEAD);
  insert_ok(b, ID(a3), T0 + 4, T0 + 1000000, "idem-1");
  cancel_ok(b, ID(a3), T0 + 5);
  insert_ok(b, ID(a4), T0 + 6, T0 + 6, "idem-1");
  assert_int_equal(unfinished(b), 1);

  stored_request_t r;
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, ID(a4));
  stored_request_free(&r);
  /* The finished ones are all still there. */
  assert_int_equal(state_of(b, ID(a1)), RQ_COMPLETED);
  assert_int_equal(state_of(b, ID(a2)), RQ_DEAD);
  assert_int_equal(state_of(b, ID(a3)), RQ_CANCELLED);
}

static void a_different_method_target_or_key_is_no_conflict(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(a1), T0, T0, "idem-1");
  stored_request_t other = new_row(ID(a2), T0, T0, "idem-1");
  other.method = "PUT";
  assert_int_equal(batch_insert(b, &other, NULL), 0);
  other = new_row(ID(a3), T0, T0, "idem-1");
  other.target = "/api/v1/bot/other";
  assert_int_equal(batch_insert(b, &other, NULL), 0);
  insert_ok(b, ID(a4), T0, T0, "idem-2");
  /* Rows without a key never conflict. */
  insert_ok(b, ID(a5), T0, T0, NULL);
  insert_ok(b, ID(a6), T0, T0, NULL);
  assert_int_equal(unfinished(b), 6);

  /* Each keyed row is found by its own key, method and target. */
  const struct {
    const char *key, *method, *target, *id;
  } finds[] = {{"idem-1", "POST", "/api/v1/bot", ID(a1)},
               {"idem-1", "PUT", "/api/v1/bot", ID(a2)},
               {"idem-1", "POST", "/api/v1/bot/other", ID(a3)},
               {"idem-2", "POST", "/api/v1/bot", ID(a4)}};
  for (size_t i = 0; i < sizeof(finds) / sizeof(finds[0]); i++) {
    stored_request_t r;
    assert_int_equal(batch_find(b, finds[i].key, finds[i].method, finds[i].target, &r), 0);
    assert_string_equal(r.id, finds[i].id);
    stored_request_free(&r);
  }
}

/* Pages through rows in state (-1: all) limit at a time, and expects ids. */
static void expect_pages(storage_backend_t *b, int state, size_t limit, const char *const *ids,
                         size_t n) {
  size_t seen = 0;
  int64_t after = 0, last;
  for (int pages = 0; pages < 20; pages++) {
    stored_request_t rows[ROWS_MAX];
    int got = batch_list(b, state, after, limit, rows, &last);
    assert_true(got >= 0 && (size_t)got <= limit);
    if (got == 0) {
      assert_int_equal(last, after);
      break;
    }
    assert_true(last > after);
    for (int i = 0; i < got; i++) {
      assert_true(seen < n);
      assert_string_equal(rows[i].id, ids[seen]);
      if (state >= 0)
        assert_int_equal(rows[i].state, state);
      assert_null(rows[i].headers); /* listings are brief */
      assert_null(rows[i].body);
      assert_null(rows[i].response_body);
      seen++;
      stored_request_free(&rows[i]);
    }
    after = last;
  }
  assert_int_equal(seen, n);
}

/* ---- many inserts at once ------------------------------------------------------ */

/* What the store does with a batch's consecutive inserts: each row gets
 * what one insert after the other would have given it, every field kept
 * byte-exact, and the counts stay exact. */
static void insert_many_gives_each_row_what_one_insert_after_another_would(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(a1), T0, T0, "idem-1");
  static const char headers[] = "X-A: 1\r\nX-Raw: \xff\xfe\x80\r\nX-Empty: \r\n";
  static const char key[] = "k-\xff\xe9-\x80";
  const size_t body_len = 64 * 1024;
  char *body = every_byte(body_len);
  stored_request_t in[7];
  in[0] = new_row(ID(b1), T0 + 1, T0 + 500, key);
  in[0].method = "PUT";
  in[0].target = "/api/v1/bot/123/?x=1";
  in[0].headers = headers;
  in[0].headers_len = sizeof(headers) - 1;
  in[0].body = body;
  in[0].body_len = body_len;
  in[0].attempts = 2;
  in[0].updated_at = T0 + 7;
  in[0].last_status = 503;
  in[0].last_error = "upstream said 503";
  in[1] = new_row(ID(b2), T0 + 2, T0 + 2, "idem-1"); /* held by a stored row */
  in[2] = new_row(ID(b3), T0 + 3, T0 + 3, NULL);
  in[2].method = "GET";
  in[2].body = NULL;
  in[2].body_len = 0;
  in[3] = new_row(ID(b4), T0 + 4, T0 + 4, "idem-2");
  in[4] = new_row(ID(b5), T0 + 5, T0 + 5, "idem-2"); /* held by the row before it */
  in[5] = new_row(ID(b6), T0 + 6, T0 + 6, "idem-2");
  in[5].method = "PUT";                         /* another method: no repeat */
  in[6] = new_row(ID(b7), T0 + 7, T0 + 7, key); /* held by the first */
  in[6].method = "PUT";
  in[6].target = "/api/v1/bot/123/?x=1";
  int res[7];
  stored_request_t ex[7];
  assert_true(batch_insert_many(b, in, 7, res, ex));
  const int want[7] = {0, -EEXIST, 0, 0, -EEXIST, 0, -EEXIST};
  const char *holder[7] = {NULL, ID(a1), NULL, NULL, ID(b4), NULL, ID(b1)};
  for (int i = 0; i < 7; i++) {
    assert_int_equal(res[i], want[i]);
    if (holder[i] != NULL) {
      assert_string_equal(ex[i].id, holder[i]);
      assert_int_equal(ex[i].state, RQ_QUEUED);
    } else {
      assert_int_equal(ex[i].id[0], 0);
    }
    stored_request_free(&ex[i]);
  }

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(b1), true, &r), 0);
  assert_string_equal(r.method, "PUT");
  assert_string_equal(r.target, "/api/v1/bot/123/?x=1");
  assert_int_equal(r.headers_len, sizeof(headers) - 1);
  assert_memory_equal(r.headers, headers, sizeof(headers) - 1);
  assert_int_equal(r.body_len, body_len);
  assert_memory_equal(r.body, body, body_len);
  assert_string_equal(r.idempotency_key, key);
  assert_int_equal(r.attempts, 2);
  assert_int_equal(r.created_at, T0 + 1);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  assert_int_equal(r.updated_at, T0 + 7);
  assert_int_equal(r.last_status, 503);
  assert_string_equal(r.last_error, "upstream said 503");
  stored_request_free(&r);
  assert_int_equal(batch_get(b, ID(b3), true, &r), 0);
  assert_string_equal(r.method, "GET");
  assert_null(r.body);
  assert_null(r.idempotency_key);
  assert_int_equal(r.last_status, 0);
  assert_null(r.last_error);
  assert_int_equal(r.updated_at, T0 + 3);
  stored_request_free(&r);
  assert_int_equal(batch_get(b, ID(b2), false, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(b5), false, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(b7), false, &r), -ENOENT);

  assert_int_equal(unfinished(b), 5);
  queue_counts_t c;
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_QUEUED], 5);
  /* Stored in the order given. */
  const char *ids[] = {ID(a1), ID(b1), ID(b3), ID(b4), ID(b6)};
  expect_pages(b, -1, 3, ids, 5);
  free(body);
}

/* Near --max-queue: the rows that fit are stored, the rows after them
 * refused, repeats answered from their twins (they take no room). */
static void insert_many_at_max_queue_refuses_where_one_insert_after_another_would(void **state) {
  storage_backend_t *b = open_ok(*state, 5);
  insert_ok(b, ID(a1), T0, T0, "idem-1");
  insert_ok(b, ID(a2), T0, T0, NULL);
  stored_request_t in[2] = {new_row(ID(b1), T0 + 1, T0 + 1, NULL),
                            new_row(ID(b2), T0 + 2, T0 + 2, NULL)};
  int res[6];
  stored_request_t ex[6];
  batch_insert_many(b, in, 2, res, ex); /* exactly fills up to one short */
  assert_int_equal(res[0], 0);
  assert_int_equal(res[1], 0);
  assert_int_equal(unfinished(b), 4);

  stored_request_t more[6] = {
      new_row(ID(c1), T0 + 3, T0 + 3, "idem-1"), /* a repeat: no room needed */
      new_row(ID(c2), T0 + 4, T0 + 4, "idem-3"), /* the fifth */
      new_row(ID(c3), T0 + 5, T0 + 5, NULL),     /* beyond */
      new_row(ID(c4), T0 + 6, T0 + 6, "idem-3"), /* a repeat of the fifth */
      new_row(ID(c5), T0 + 7, T0 + 7, "idem-4"), /* beyond */
      new_row(ID(c6), T0 + 8, T0 + 8, "idem-1"),
  };
  batch_insert_many(b, more, 6, res, ex);
  const int want[6] = {-EEXIST, 0, -EDQUOT, -EEXIST, -EDQUOT, -EEXIST};
  const char *holder[6] = {ID(a1), NULL, NULL, ID(c2), NULL, ID(a1)};
  for (int i = 0; i < 6; i++) {
    assert_int_equal(res[i], want[i]);
    if (holder[i] != NULL)
      assert_string_equal(ex[i].id, holder[i]);
    stored_request_free(&ex[i]);
  }
  assert_int_equal(unfinished(b), 5);
  queue_counts_t c;
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_QUEUED], 5);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(c3), false, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(c5), false, &r), -ENOENT);
  assert_int_equal(state_of(b, ID(c2)), RQ_QUEUED);
}

/* Rows stored together leave together with a rollback, counts included;
 * and a batch of hundreds keeps every row, in order, counted once. */
static void insert_many_rolls_back_whole_and_counts_every_row_once(void **state) {
  fx_t *fx = *state;
  storage_backend_t *b = open_ok(fx, BIG_QUEUE);
  enum { N = 300 };
  stored_request_t *in = calloc(N, sizeof(*in));
  char(*ids)[40] = calloc(N, sizeof(*ids));
  const char **order = calloc(N, sizeof(*order));
  char(*keys)[16] = calloc(N, sizeof(*keys));
  int *res = calloc(N, sizeof(*res));
  stored_request_t *ex = calloc(N, sizeof(*ex));
  const stored_request_t **ptrs = calloc(N, sizeof(*ptrs));
  assert_true(in && ids && order && keys && res && ex && ptrs);
  for (int i = 0; i < N; i++) {
    /* Ids descending: only the insertion order explains the listing's. */
    snprintf(ids[i], sizeof(ids[i]), "0190a1b2-c3d4-7e5f-8a6b-%012x", N - i);
    snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
    in[i] = new_row(ids[i], T0 + i, T0 + i, i % 3 == 0 ? keys[i] : NULL);
    ptrs[i] = &in[i];
    order[i] = ids[i];
  }

  begin_ok(b, true);
  b->ops->insert_many(b, ptrs, N, res, ex);
  for (int i = 0; i < N; i++)
    assert_int_equal(res[i], 0);
  b->ops->rollback(b);
  assert_int_equal(unfinished(b), 0);
  queue_counts_t c;
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_QUEUED], 0);
  stored_request_t r;
  assert_int_equal(batch_get(b, ids[0], false, &r), -ENOENT);

  batch_insert_many(b, in, N, res, ex);
  for (int i = 0; i < N; i++)
    assert_int_equal(res[i], 0);
  assert_int_equal(unfinished(b), N);
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_QUEUED], N);
  expect_pages(b, -1, ROWS_MAX, order, N);
  /* The count is the stored rows', also for a backend that reads it back. */
  b = reopen(fx, BIG_QUEUE);
  assert_int_equal(unfinished(b), N);
  free(in);
  free(ids);
  free(order);
  free(keys);
  free(res);
  free(ex);
  free(ptrs);
}

/* ---- claim ------------------------------------------------------------------ */

static void claim_takes_due_rows_earliest_first_then_oldest(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  /* Inserted oldest first, ids descending: ties on the due time go to the
   * older row, whatever the ids say. */
  insert_ok(b, ID(05), T0 + 0, T0 + 30, NULL);
  insert_ok(b, ID(04), T0 + 1, T0 + 10, NULL);
  insert_ok(b, ID(03), T0 + 2, T0 + 20, NULL);
  insert_ok(b, ID(02), T0 + 3, T0 + 10, NULL);
  insert_ok(b, ID(01), T0 + 4, T0 + 20, NULL);

  stored_request_t rows[8];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0 + 100, NEVER_EXPIRES, 8, rows, &dead), 5);
  assert_int_equal(dead, 0);
  const char *want[] = {ID(04), ID(02), ID(03), ID(01), ID(05)};
  for (int i = 0; i < 5; i++) {
    assert_string_equal(rows[i].id, want[i]);
    stored_request_free(&rows[i]);
  }
}

static void claim_takes_only_due_rows_and_at_most_limit(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  insert_ok(b, ID(02), T0 + 1, T0 + 1, NULL);
  insert_ok(b, ID(03), T0 + 2, T0 + 1000, NULL);
  insert_ok(b, ID(04), T0 + 3, T0 + 1001, NULL);

  stored_request_t rows[8];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0 + 1000, NEVER_EXPIRES, 2, rows, &dead), 2);
  assert_string_equal(rows[0].id, ID(01));
  assert_string_equal(rows[1].id, ID(02));
  stored_request_free(&rows[0]);
  stored_request_free(&rows[1]);
  assert_int_equal(state_of(b, ID(03)), RQ_QUEUED);

  /* Due exactly at now counts; one millisecond later does not. */
  assert_int_equal(batch_claim(b, T0 + 1000, NEVER_EXPIRES, 8, rows, &dead), 1);
  assert_string_equal(rows[0].id, ID(03));
  stored_request_free(&rows[0]);
  assert_int_equal(batch_claim(b, T0 + 1000, NEVER_EXPIRES, 8, rows, &dead), 0);
  assert_int_equal(state_of(b, ID(04)), RQ_QUEUED);

  /* A limit of 0 claims nothing. */
  assert_int_equal(batch_claim(b, T0 + 5000, NEVER_EXPIRES, 0, rows, &dead), 0);
  assert_int_equal(state_of(b, ID(04)), RQ_QUEUED);
  claim_one(b, T0 + 1001, ID(04));
}

static void claimed_rows_are_inflight_with_their_payload_and_one_more_attempt(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  stored_request_t in = new_row(ID(01), T0, T0, "k");
  in.attempts = 3;
  assert_int_equal(batch_insert(b, &in, NULL), 0);
  insert_ok(b, ID(02), T0 + 1, T0 + 1, NULL);

  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0 + 50, NEVER_EXPIRES, 1, rows, &dead), 1);
  assert_string_equal(rows[0].id, ID(01));
  assert_int_equal(rows[0].state, RQ_INFLIGHT);
  assert_int_equal(rows[0].attempts, 4);
  assert_int_equal(rows[0].updated_at, T0 + 50);
  assert_int_equal(rows[0].created_at, T0);
  assert_string_equal(rows[0].method, "POST");
  assert_string_equal(rows[0].target, "/api/v1/bot");
  assert_string_equal(rows[0].idempotency_key, "k");
  assert_int_equal(rows[0].headers_len, sizeof(HEADERS) - 1);
  assert_memory_equal(rows[0].headers, HEADERS, sizeof(HEADERS) - 1);
  assert_int_equal(rows[0].body_len, sizeof(BODY) - 1);
  assert_memory_equal(rows[0].body, BODY, sizeof(BODY) - 1);
  stored_request_free(&rows[0]);

  /* The stored row agrees, and an inflight row is not claimed again. */
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_INFLIGHT);
  assert_int_equal(r.attempts, 4);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.updated_at, T0 + 50);
  stored_request_free(&r);
  claim_one(b, T0 + 50, ID(02));
  assert_int_equal(claim_count(b, T0 + 100000), 0);
  assert_int_equal(unfinished(b), 2); /* inflight is unfinished */
}

static void claim_makes_due_rows_older_than_max_age_dead_and_counts_them(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  const int64_t now = T0 + 100000, max_age = 60000;
  insert_ok(b, ID(01), now - 90000, now - 10, NULL);   /* old, due */
  insert_ok(b, ID(02), now - 70000, now - 20, NULL);   /* old, due */
  insert_ok(b, ID(03), now - 60000, now - 5, NULL);    /* exactly max_age: not older */
  insert_ok(b, ID(04), now - 1000, now - 10, NULL);    /* young, due */
  insert_ok(b, ID(05), now - 90000, now + 1000, NULL); /* old, not due yet */
  assert_int_equal(unfinished(b), 5);

  stored_request_t rows[8];
  int64_t dead = -1;
  assert_int_equal(batch_claim(b, now, max_age, 8, rows, &dead), 2);
  assert_int_equal(dead, 2);
  assert_string_equal(rows[0].id, ID(04));
  assert_string_equal(rows[1].id, ID(03));
  stored_request_free(&rows[0]);
  stored_request_free(&rows[1]);
  assert_int_equal(unfinished(b), 3);

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_DEAD);
  assert_int_equal(r.attempts, 0);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.updated_at, now);
  assert_non_null(r.last_error);
  assert_non_null(strstr(r.last_error, "expired"));
  stored_request_free(&r);
  assert_int_equal(state_of(b, ID(02)), RQ_DEAD);
  assert_int_equal(state_of(b, ID(05)), RQ_QUEUED);

  /* Nothing is left to expire until the old row falls due. */
  assert_int_equal(batch_claim(b, now + 1, max_age, 8, rows, &dead), 0);
  assert_int_equal(dead, 0);
  assert_int_equal(batch_claim(b, now + 1000, max_age, 8, rows, &dead), 0);
  assert_int_equal(dead, 1);
  assert_int_equal(state_of(b, ID(05)), RQ_DEAD);
}

/* ---- finish ------------------------------------------------------------------ */

static void finish_completed_keeps_the_answer(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01));

  static const char rh[] = "Content-Type: application/octet-stream\r\nX-Id: 9\r\n";
  const size_t rb_len = 16 * 1024;
  char *rb = every_byte(rb_len);
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_COMPLETED;
  o.last_status = 201;
  o.response_status = 201;
  o.response_headers = rh;
  o.response_headers_len = sizeof(rh) - 1;
  o.response_body = rb;
  o.response_body_len = rb_len;
  assert_int_equal(batch_finish(b, ID(01), T0 + 10, &o), 0);
  assert_int_equal(unfinished(b), 0);

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), true, &r), 0);
  assert_int_equal(r.state, RQ_COMPLETED);
  assert_int_equal(r.response_status, 201);
  assert_int_equal(r.last_status, 201);
  assert_int_equal(r.response_headers_len, sizeof(rh) - 1);
  assert_memory_equal(r.response_headers, rh, sizeof(rh) - 1);
  assert_int_equal(r.response_body_len, rb_len);
  assert_memory_equal(r.response_body, rb, rb_len);
  assert_int_equal(r.updated_at, T0 + 10);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.body_len, sizeof(BODY) - 1); /* the request is kept too */
  stored_request_free(&r);
  free(rb);

  /* Brief: the status, not the stored answer. */
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.response_status, 201);
  assert_null(r.response_headers);
  assert_null(r.response_body);
  stored_request_free(&r);
  assert_int_equal(claim_count(b, T0 + 100000), 0);
}

static void finish_retry_queues_again_at_next_attempt_with_last_status_and_error(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01));

  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RETRY;
  o.next_attempt_at = T0 + 30000;
  o.last_status = 503;
  o.last_error = "upstream answered 503";
  assert_int_equal(batch_finish(b, ID(01), T0 + 5, &o), 0);
  assert_int_equal(unfinished(b), 1);
  assert_int_equal(next_due(b), T0 + 30000);

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), true, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 30000);
  assert_int_equal(r.updated_at, T0 + 5);
  assert_int_equal(r.last_status, 503);
  assert_string_equal(r.last_error, "upstream answered 503");
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.response_status, 0);
  assert_null(r.response_body);
  stored_request_free(&r);

  /* Not before its time; then again, with the attempt counted. */
  assert_int_equal(claim_count(b, T0 + 29999), 0);
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0 + 30000, NEVER_EXPIRES, 2, rows, &dead), 1);
  assert_int_equal(rows[0].attempts, 2);
  assert_int_equal(rows[0].last_status, 503);
  stored_request_free(&rows[0]);

  /* A network error: no status, an error. */
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RETRY;
  o.next_attempt_at = T0 + 60000;
  o.last_error = "connection refused";
  assert_int_equal(batch_finish(b, ID(01), T0 + 30001, &o), 0);
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.last_status, 0);
  assert_string_equal(r.last_error, "connection refused");
  assert_int_equal(r.next_attempt_at, T0 + 60000);
  stored_request_free(&r);
}

static void finish_dead_makes_the_row_dead_and_unclaimable(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01));
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_DEAD;
  o.next_attempt_at = T0 + 1000; /* ignored: a dead row is not due */
  o.last_status = 500;
  o.last_error = "out of attempts";
  assert_int_equal(batch_finish(b, ID(01), T0 + 1, &o), 0);
  assert_int_equal(unfinished(b), 0);
  assert_int_equal(next_due(b), 0);

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_DEAD);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.updated_at, T0 + 1);
  assert_int_equal(r.last_status, 500);
  assert_string_equal(r.last_error, "out of attempts");
  stored_request_free(&r);
  assert_int_equal(claim_count(b, T0 + 100000), 0);
}

/* Claimed, then not attempted after all (shutdown): as if never claimed. */
static void finish_release_queues_again_without_counting_the_attempt(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01)); /* attempt 1 */
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RETRY;
  o.next_attempt_at = T0 + 100;
  o.last_status = 502;
  o.last_error = "bad gateway";
  assert_int_equal(batch_finish(b, ID(01), T0 + 1, &o), 0);
  claim_one(b, T0 + 100, ID(01)); /* attempt 2, never sent */

  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RELEASE;
  assert_int_equal(batch_finish(b, ID(01), T0 + 200, &o), 0);
  assert_int_equal(unfinished(b), 1);

  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.last_status, 502);
  assert_string_equal(r.last_error, "bad gateway");
  assert_true(r.next_attempt_at != 0 && r.next_attempt_at <= T0 + 200);
  stored_request_free(&r);

  /* Due at once. */
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0 + 200, NEVER_EXPIRES, 2, rows, &dead), 1);
  assert_int_equal(rows[0].attempts, 2);
  stored_request_free(&rows[0]);
}

static void finish_on_a_row_not_inflight_is_enoent_and_changes_nothing(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0 + 1000000, NULL); /* queued */
  insert_ok(b, ID(02), T0, T0, NULL);
  claim_one(b, T0, ID(02));
  finish_ok(b, ID(02), T0 + 1, OUTCOME_COMPLETED);

  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  const outcome_t kinds[] = {OUTCOME_COMPLETED, OUTCOME_RETRY, OUTCOME_DEAD, OUTCOME_RELEASE};
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    o.kind = kinds[i];
    o.next_attempt_at = T0 + 5;
    o.response_status = kinds[i] == OUTCOME_COMPLETED ? 200 : 0;
    assert_int_equal(batch_finish(b, ID(01), T0 + 2, &o), -ENOENT);
    assert_int_equal(batch_finish(b, ID(02), T0 + 2, &o), -ENOENT);
    assert_int_equal(batch_finish(b, ID(ff), T0 + 2, &o), -ENOENT);
  }
  assert_int_equal(unfinished(b), 1);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 1000000);
  stored_request_free(&r);
  assert_int_equal(batch_get(b, ID(02), false, &r), 0);
  assert_int_equal(r.state, RQ_COMPLETED);
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.response_status, 200);
  assert_int_equal(r.updated_at, T0 + 1);
  stored_request_free(&r);
}

/* ---- cancel and retry now ------------------------------------------------------- */

static void cancel_moves_a_queued_row_to_cancelled_once(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  stored_request_t r;
  assert_int_equal(batch_cancel(b, ID(01), T0 + 5, &r), 0);
  assert_string_equal(r.id, ID(01));
  assert_int_equal(r.state, RQ_CANCELLED);
  stored_request_free(&r);
  assert_int_equal(unfinished(b), 0);
  assert_int_equal(next_due(b), 0);

  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_CANCELLED);
  assert_int_equal(r.updated_at, T0 + 5);
  assert_int_equal(r.next_attempt_at, 0);
  stored_request_free(&r);
  assert_int_equal(claim_count(b, T0 + 100000), 0);

  assert_int_equal(batch_cancel(b, ID(01), T0 + 6, &r), -EPERM);
  assert_int_equal(r.state, RQ_CANCELLED);
  stored_request_free(&r);
  assert_int_equal(batch_cancel(b, ID(ff), T0 + 6, &r), -ENOENT);
  stored_request_free(&r);
}

static void cancel_of_an_inflight_or_finished_row_is_eperm_with_the_row(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01));
  insert_ok(b, ID(02), T0, T0 + 1, NULL);
  claim_one(b, T0 + 1, ID(02));
  finish_ok(b, ID(02), T0 + 2, OUTCOME_COMPLETED);

  stored_request_t r;
  assert_int_equal(batch_cancel(b, ID(01), T0 + 3, &r), -EPERM);
  assert_string_equal(r.id, ID(01));
  assert_int_equal(r.state, RQ_INFLIGHT); /* *out tells the state it is in */
  stored_request_free(&r);
  assert_int_equal(batch_cancel(b, ID(02), T0 + 3, &r), -EPERM);
  assert_int_equal(r.state, RQ_COMPLETED);
  stored_request_free(&r);

  assert_int_equal(state_of(b, ID(01)), RQ_INFLIGHT);
  assert_int_equal(state_of(b, ID(02)), RQ_COMPLETED);
  assert_int_equal(unfinished(b), 1);
}

static void retry_now_queues_a_dead_row_now_and_its_age_starts_again(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01));
  finish_ok(b, ID(01), T0 + 1, OUTCOME_DEAD);
  assert_int_equal(unfinished(b), 0);

  stored_request_t r;
  assert_int_equal(batch_retry_now(b, ID(01), T0 + 500, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  assert_int_equal(r.created_at, T0 + 500);
  stored_request_free(&r);
  assert_int_equal(unfinished(b), 1);
  assert_int_equal(next_due(b), T0 + 500);

  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  assert_int_equal(r.created_at, T0 + 500);
  assert_int_equal(r.updated_at, T0 + 500);
  stored_request_free(&r);
  /* A --max-age counts from the retry, not from the first store. */
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0 + 499, NEVER_EXPIRES, 2, rows, &dead), 0);
  assert_int_equal(batch_claim(b, T0 + 600, 400, 2, rows, &dead), 1);
  assert_int_equal(dead, 0);
  assert_string_equal(rows[0].id, ID(01));
  assert_int_equal(rows[0].attempts, 2);
  stored_request_free(&rows[0]);
}

static void retry_now_makes_a_queued_row_due_now(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0 + 1000000, NULL);
  stored_request_t r;
  assert_int_equal(batch_retry_now(b, ID(01), T0 + 600, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 600);
  assert_int_equal(r.created_at, T0); /* still the same life */
  stored_request_free(&r);
  assert_int_equal(unfinished(b), 1);
  assert_int_equal(next_due(b), T0 + 600);
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.created_at, T0);
  stored_request_free(&r);
  claim_one(b, T0 + 600, ID(01));
}

static void retry_now_of_an_inflight_completed_or_cancelled_row_is_eperm(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01));
  finish_ok(b, ID(01), T0 + 1, OUTCOME_COMPLETED);
  insert_ok(b, ID(02), T0, T0 + 2, NULL);
  claim_one(b, T0 + 2, ID(02));
  insert_ok(b, ID(03), T0, T0 + 1000000, NULL);
  cancel_ok(b, ID(03), T0 + 3);

  stored_request_t r;
  assert_int_equal(batch_retry_now(b, ID(01), T0 + 4, &r), -EPERM);
  assert_int_equal(r.state, RQ_COMPLETED);
  stored_request_free(&r);
  assert_int_equal(batch_retry_now(b, ID(02), T0 + 4, &r), -EPERM);
  assert_int_equal(r.state, RQ_INFLIGHT);
  stored_request_free(&r);
  assert_int_equal(batch_retry_now(b, ID(03), T0 + 4, &r), -EPERM);
  assert_int_equal(r.state, RQ_CANCELLED);
  stored_request_free(&r);
  assert_int_equal(batch_retry_now(b, ID(ff), T0 + 4, &r), -ENOENT);
  stored_request_free(&r);

  assert_int_equal(state_of(b, ID(01)), RQ_COMPLETED);
  assert_int_equal(state_of(b, ID(02)), RQ_INFLIGHT);
  assert_int_equal(state_of(b, ID(03)), RQ_CANCELLED);
  assert_int_equal(unfinished(b), 1);
}

/* ---- --max-queue ----------------------------------------------------------------- */

static void max_queue_refuses_the_insert_beyond_it_with_edquot(void **state) {
  storage_backend_t *b = open_ok(*state, 2);
  insert_ok(b, ID(01), T0, T0, "idem-1");
  insert_ok(b, ID(02), T0 + 1, T0 + 1, NULL);
  stored_request_t r3 = new_row(ID(03), T0 + 2, T0 + 1000000, NULL);
  assert_int_equal(batch_insert(b, &r3, NULL), -EDQUOT);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(03), false, &r), -ENOENT);
  assert_int_equal(unfinished(b), 2);

  /* A repeat of a stored request takes no room: its twin answers it. */
  stored_request_t repeat = new_row(ID(04), T0 + 2, T0 + 2, "idem-1");
  assert_int_equal(batch_insert(b, &repeat, &r), -EEXIST);
  assert_string_equal(r.id, ID(01));
  stored_request_free(&r);

  /* Inflight rows still count. */
  claim_one(b, T0, ID(01));
  assert_int_equal(unfinished(b), 2);
  assert_int_equal(batch_insert(b, &r3, NULL), -EDQUOT);

  /* A finished row frees its place. */
  finish_ok(b, ID(01), T0 + 3, OUTCOME_DEAD);
  assert_int_equal(unfinished(b), 1);
  assert_int_equal(batch_insert(b, &r3, NULL), 0);
  assert_int_equal(unfinished(b), 2);

  /* Bringing a dead row back needs room too. */
  assert_int_equal(batch_retry_now(b, ID(01), T0 + 4, &r), -EDQUOT);
  stored_request_free(&r);
  assert_int_equal(state_of(b, ID(01)), RQ_DEAD);

  /* A retry keeps its place; a cancel frees it. */
  claim_one(b, T0 + 5, ID(02));
  finish_ok(b, ID(02), T0 + 6, OUTCOME_RETRY);
  assert_int_equal(unfinished(b), 2);
  cancel_ok(b, ID(03), T0 + 7);
  assert_int_equal(unfinished(b), 1);
  assert_int_equal(batch_retry_now(b, ID(01), T0 + 8, &r), 0);
  stored_request_free(&r);
  assert_int_equal(unfinished(b), 2);
}

/* After a restart the count is that of the stored rows (a backend that
 * keeps it in memory counts again at open). Nothing is inflight at the
 * close: that is each backend's own recovery (test_sqlite_queue.c, and
 * tests/integration/test_pg_replicas.py for a shared backend). */
static void a_reopened_backend_counts_its_stored_rows_against_max_queue(void **state) {
  fx_t *fx = *state;
  storage_backend_t *b = open_ok(fx, 2);
  insert_ok(b, ID(01), T0, T0, NULL);
  insert_ok(b, ID(02), T0 + 1, T0 + 1, "idem-1");
  claim_one(b, T0, ID(01));
  finish_ok(b, ID(01), T0 + 1, OUTCOME_COMPLETED);
  insert_ok(b, ID(03), T0 + 2, T0 + 1000000, NULL);
  claim_one(b, T0 + 2, ID(02));
  finish_ok(b, ID(02), T0 + 3, OUTCOME_RETRY); /* due at T0+1003 */
  cancel_ok(b, ID(03), T0 + 4);
  assert_int_equal(unfinished(b), 1);

  /* unfinished() and next_due() are asked after a commit, as ever. */
  b = reopen(fx, 2);
  assert_int_equal(b->info.recovered, 0);
  assert_int_equal(state_of(b, ID(01)), RQ_COMPLETED);
  assert_int_equal(state_of(b, ID(03)), RQ_CANCELLED);
  stored_request_t r;
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, ID(02));
  assert_int_equal(r.attempts, 1);
  stored_request_free(&r);
  assert_int_equal(unfinished(b), 1);
  assert_int_equal(next_due(b), T0 + 1003);

  insert_ok(b, ID(04), T0 + 5, T0 + 5, NULL);
  assert_int_equal(unfinished(b), 2);
  stored_request_t r5 = new_row(ID(05), T0 + 6, T0 + 6, NULL);
  assert_int_equal(batch_insert(b, &r5, NULL), -EDQUOT);
  assert_int_equal(batch_get(b, ID(05), false, &r), -ENOENT);
}

static void unfinished_counts_queued_and_inflight_rows(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  assert_int_equal(unfinished(b), 0);
  for (int i = 0; i < 6; i++) {
    char id[40];
    snprintf(id, sizeof(id), ID(0) "%d", i);
    insert_ok(b, id, T0 + i, T0 + i, NULL);
  }
  assert_int_equal(unfinished(b), 6);
  claim_one(b, T0, ID(00)); /* inflight */
  claim_one(b, T0 + 1, ID(01));
  finish_ok(b, ID(01), T0 + 10, OUTCOME_COMPLETED);
  claim_one(b, T0 + 2, ID(02));
  finish_ok(b, ID(02), T0 + 10, OUTCOME_DEAD);
  cancel_ok(b, ID(03), T0 + 10);
  claim_one(b, T0 + 4, ID(04));
  finish_ok(b, ID(04), T0 + 10, OUTCOME_RETRY); /* queued again */
  /* ID(05) queued, ID(04) queued, ID(00) inflight. */
  assert_int_equal(unfinished(b), 3);
}

/* ---- transactions ------------------------------------------------------------------ */

static void a_rolled_back_transaction_keeps_nothing(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  insert_ok(b, ID(02), T0 + 1, T0 + 1000000, NULL);
  assert_int_equal(unfinished(b), 2);

  begin_ok(b, true);
  stored_request_t r = new_row(ID(03), T0 + 2, T0 + 2, "idem-1");
  assert_int_equal(b->ops->insert(b, &r, NULL), 0);
  r = new_row(ID(06), T0 + 3, T0 + 1000000, NULL);
  assert_int_equal(b->ops->insert(b, &r, NULL), 0);
  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(b->ops->claim(b, T0 + 2, NULL, NEVER_EXPIRES, 4, rows, &dead), 2); /* 01, 03 */
  note_claims(rows, 2);
  stored_request_free(&rows[0]);
  stored_request_free(&rows[1]);
  memset(&r, 0, sizeof(r));
  assert_int_equal(b->ops->cancel(b, ID(02), T0 + 3, &r), 0);
  stored_request_free(&r);
  b->ops->rollback(b);

  assert_int_equal(unfinished(b), 2);
  queue_counts_t c;
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_QUEUED], 2);
  assert_int_equal(c.count[RQ_INFLIGHT], 0);
  assert_int_equal(c.count[RQ_CANCELLED], 0);
  assert_int_equal(batch_get(b, ID(06), false, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(03), false, &r), -ENOENT);
  assert_int_equal(batch_find(b, "idem-1", "POST", "/api/v1/bot", &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.attempts, 0);
  stored_request_free(&r);
  assert_int_equal(state_of(b, ID(02)), RQ_QUEUED);
  assert_int_equal(next_due(b), T0);

  /* And the backend goes on: the next transaction commits. */
  begin_ok(b, true);
  r = new_row(ID(04), T0 + 4, T0 + 4, "idem-1");
  assert_int_equal(b->ops->insert(b, &r, NULL), 0);
  r = new_row(ID(05), T0 + 5, T0 + 5, NULL);
  assert_int_equal(b->ops->insert(b, &r, NULL), 0);
  assert_true(commit_ok(b));
  assert_int_equal(unfinished(b), 4);
  assert_int_equal(state_of(b, ID(04)), RQ_QUEUED);
}

/* Every refusal an operation answers leaves the batch it ran in usable:
 * the jobs after it, and the commit, go through. */
static void an_operations_refusal_does_not_spoil_its_batch(void **state) {
  storage_backend_t *b = open_ok(*state, 3);
  insert_ok(b, ID(01), T0, T0 + 1000000, "idem-1"); /* queued */
  insert_ok(b, ID(02), T0 + 1, T0 + 1, NULL);
  claim_one(b, T0 + 1, ID(02)); /* inflight */
  insert_ok(b, ID(03), T0 + 2, T0 + 2, NULL);
  claim_one(b, T0 + 2, ID(03));
  finish_ok(b, ID(03), T0 + 3, OUTCOME_COMPLETED); /* completed */

  stored_request_t r, existing;
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_COMPLETED;
  o.response_status = 200;
  begin_ok(b, true);
  r = new_row(ID(10), T0 + 4, T0 + 4, "idem-1");
  memset(&existing, 0, sizeof(existing));
  assert_int_equal(b->ops->insert(b, &r, &existing), -EEXIST);
  stored_request_free(&existing);
  memset(&r, 0, sizeof(r));
  assert_int_equal(b->ops->get(b, ID(ff), true, &r), -ENOENT);
  assert_int_equal(b->ops->cancel(b, ID(ff), T0 + 4, &r), -ENOENT);
  stored_request_free(&r);
  assert_int_equal(b->ops->finish(b, ID(01), T0 + 4, &o), -ENOENT);
  assert_int_equal(b->ops->cancel(b, ID(02), T0 + 4, &r), -EPERM);
  stored_request_free(&r);
  assert_int_equal(b->ops->retry_now(b, ID(03), T0 + 4, &r), -EPERM);
  stored_request_free(&r);
  r = new_row(ID(11), T0 + 5, T0 + 5, NULL);
  assert_int_equal(b->ops->insert(b, &r, NULL), 0); /* the third unfinished row */
  r = new_row(ID(12), T0 + 6, T0 + 6, NULL);
  assert_int_equal(b->ops->insert(b, &r, NULL), -EDQUOT);
  memset(&r, 0, sizeof(r));
  assert_int_equal(b->ops->cancel(b, ID(01), T0 + 7, &r), 0);
  stored_request_free(&r);
  r = new_row(ID(13), T0 + 8, T0 + 8, NULL);
  assert_int_equal(b->ops->insert(b, &r, NULL), 0);
  o.claim_token = token_of(ID(02));
  assert_int_equal(b->ops->finish(b, ID(02), T0 + 9, &o), 0);
  assert_true(commit_ok(b));

  assert_int_equal(state_of(b, ID(01)), RQ_CANCELLED);
  assert_int_equal(state_of(b, ID(02)), RQ_COMPLETED);
  assert_int_equal(state_of(b, ID(11)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(13)), RQ_QUEUED);
  assert_int_equal(batch_get(b, ID(10), false, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(12), false, &r), -ENOENT);
  assert_int_equal(unfinished(b), 2);
}

static void a_transaction_sees_its_own_writes(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  begin_ok(b, true);
  stored_request_t in = new_row(ID(01), T0, T0, "idem-1");
  assert_int_equal(b->ops->insert(b, &in, NULL), 0);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(b->ops->get(b, ID(01), true, &r), 0);
  assert_int_equal(r.body_len, sizeof(BODY) - 1);
  stored_request_free(&r);
  assert_int_equal(b->ops->find_idempotent(b, "idem-1", "POST", "/api/v1/bot", &r), 0);
  stored_request_free(&r);
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(b->ops->claim(b, T0, NULL, NEVER_EXPIRES, 2, rows, &dead), 1);
  note_claims(rows, 1);
  stored_request_free(&rows[0]);
  queue_counts_t c;
  assert_int_equal(b->ops->counts(b, &c), 0);
  assert_int_equal(c.count[RQ_INFLIGHT], 1);
  assert_true(commit_ok(b));
  assert_int_equal(state_of(b, ID(01)), RQ_INFLIGHT);
}

/* Health trusts *synced: only a durable commit that wrote something made a
 * write durable. */
static void commit_says_synced_only_for_a_durable_transaction_that_wrote(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  stored_request_t r = new_row(ID(01), T0, T0, NULL);
  begin_ok(b, true);
  assert_int_equal(b->ops->insert(b, &r, NULL), 0);
  assert_true(commit_ok(b));

  /* Durable, but only reads. */
  begin_ok(b, true);
  memset(&r, 0, sizeof(r));
  assert_int_equal(b->ops->get(b, ID(01), true, &r), 0);
  stored_request_free(&r);
  queue_counts_t c;
  assert_int_equal(b->ops->counts(b, &c), 0);
  assert_false(commit_ok(b));

  /* Durable, and a write that found nothing to change. */
  begin_ok(b, true);
  assert_int_equal(b->ops->cancel(b, ID(ff), T0, &r), -ENOENT);
  stored_request_free(&r);
  assert_false(commit_ok(b));

  /* Not durable: a claim writes, and is not synced. */
  begin_ok(b, false);
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(b->ops->claim(b, T0, NULL, NEVER_EXPIRES, 2, rows, &dead), 1);
  note_claims(rows, 1);
  stored_request_free(&rows[0]);
  assert_false(commit_ok(b));
  begin_ok(b, false);
  assert_int_equal(b->ops->get(b, ID(01), false, &r), 0);
  stored_request_free(&r);
  assert_false(commit_ok(b));

  /* A durable finish is. */
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_COMPLETED;
  o.response_status = 200;
  o.claim_token = token_of(ID(01));
  begin_ok(b, true);
  assert_int_equal(b->ops->finish(b, ID(01), T0 + 1, &o), 0);
  assert_true(commit_ok(b));

  /* And the probe, outside any transaction, reaches the disk. */
  assert_int_equal(b->ops->probe(b), 0);
}

/* ---- purge, counts, list ------------------------------------------------------------ */

static void purge_deletes_only_finished_rows_older_than_the_cutoff(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);           /* completed at T0+10 */
  insert_ok(b, ID(02), T0, T0, NULL);           /* dead at T0+10 */
  insert_ok(b, ID(03), T0, T0 + 1000000, NULL); /* cancelled at T0+10 */
  insert_ok(b, ID(04), T0, T0 + 1000000, NULL); /* queued */
  insert_ok(b, ID(05), T0, T0 + 1, NULL);       /* inflight */
  insert_ok(b, ID(06), T0, T0 + 2, NULL);       /* completed at T0+5000 */
  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0, NEVER_EXPIRES, 4, rows, &dead), 2);
  stored_request_free(&rows[0]);
  stored_request_free(&rows[1]);
  finish_ok(b, ID(01), T0 + 10, OUTCOME_COMPLETED);
  finish_ok(b, ID(02), T0 + 10, OUTCOME_DEAD);
  cancel_ok(b, ID(03), T0 + 10);
  claim_one(b, T0 + 1, ID(05));
  claim_one(b, T0 + 2, ID(06));
  finish_ok(b, ID(06), T0 + 5000, OUTCOME_COMPLETED);

  assert_int_equal(batch_purge(b, T0 + 1000, 100), 3);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), true, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(02), true, &r), -ENOENT);
  assert_int_equal(batch_get(b, ID(03), true, &r), -ENOENT);
  assert_int_equal(state_of(b, ID(04)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(05)), RQ_INFLIGHT);
  assert_int_equal(state_of(b, ID(06)), RQ_COMPLETED);
  assert_int_equal(unfinished(b), 2);

  /* The cutoff is exclusive: updated_at == cutoff stays. */
  assert_int_equal(batch_purge(b, T0 + 5000, 100), 0);
  assert_int_equal(batch_purge(b, T0 + 5001, 100), 1);
  assert_int_equal(batch_get(b, ID(06), true, &r), -ENOENT);
  queue_counts_t c;
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_COMPLETED], 0);
  assert_int_equal(c.count[RQ_DEAD], 0);
  assert_int_equal(c.count[RQ_CANCELLED], 0);
  assert_int_equal(c.count[RQ_QUEUED], 1);
  assert_int_equal(c.count[RQ_INFLIGHT], 1);

  /* Giving space back, in the backend's own unit, loses no row. */
  begin_ok(b, false);
  int64_t given = b->ops->reclaim(b, 1000);
  commit_ok(b);
  assert_true(given >= 0 && given <= 1000);
  assert_int_equal(state_of(b, ID(04)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(05)), RQ_INFLIGHT);
}

static void purge_takes_the_oldest_finished_first_and_at_most_limit(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  /* Finished at T0+10, +9, ... +1: the last finished first goes first. */
  for (int i = 0; i < 10; i++) {
    char id[40];
    snprintf(id, sizeof(id), ID(0) "%d", i);
    insert_ok(b, id, T0 + i, T0, NULL);
    claim_one(b, T0, id);
    finish_ok(b, id, T0 + 10 - i, OUTCOME_COMPLETED);
  }
  assert_int_equal(batch_purge(b, T0 + 100, 3), 3);
  for (int i = 0; i < 10; i++) {
    char id[40];
    snprintf(id, sizeof(id), ID(0) "%d", i);
    stored_request_t r;
    int rc = batch_get(b, id, false, &r);
    assert_int_equal(rc, i >= 7 ? -ENOENT : 0); /* 09, 08, 07 finished first */
    stored_request_free(&r);
  }
  assert_int_equal(batch_purge(b, T0 + 100, 4), 4);
  assert_int_equal(batch_purge(b, T0 + 100, 4), 3);
  assert_int_equal(batch_purge(b, T0 + 100, 4), 0);
  queue_counts_t c;
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_COMPLETED], 0);
}

static void counts_tell_each_state_the_oldest_queued_and_the_next_due(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  queue_counts_t c;
  counts_ok(b, &c);
  for (int i = 0; i < RQ_NSTATES; i++)
    assert_int_equal(c.count[i], 0);
  assert_int_equal(c.oldest_queued_at, 0);
  assert_int_equal(c.next_attempt_at, 0);

  insert_ok(b, ID(01), T0 - 400, T0, NULL);       /* inflight */
  insert_ok(b, ID(02), T0 - 300, T0 + 1, NULL);   /* completed */
  insert_ok(b, ID(03), T0 - 200, T0 + 2, NULL);   /* dead */
  insert_ok(b, ID(04), T0 - 100, T0 + 100, NULL); /* cancelled */
  claim_one(b, T0, ID(01));
  claim_one(b, T0 + 1, ID(02));
  finish_ok(b, ID(02), T0 + 3, OUTCOME_COMPLETED);
  claim_one(b, T0 + 2, ID(03));
  finish_ok(b, ID(03), T0 + 3, OUTCOME_DEAD);
  cancel_ok(b, ID(04), T0 + 4);
  insert_ok(b, ID(05), T0 + 10, T0 + 8000, NULL);
  insert_ok(b, ID(06), T0 + 20, T0 + 7000, NULL);
  insert_ok(b, ID(07), T0 + 50, T0 + 9000, NULL);

  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_QUEUED], 3);
  assert_int_equal(c.count[RQ_INFLIGHT], 1);
  assert_int_equal(c.count[RQ_COMPLETED], 1);
  assert_int_equal(c.count[RQ_DEAD], 1);
  assert_int_equal(c.count[RQ_CANCELLED], 1);
  /* Among queued rows only: older finished or inflight rows do not count. */
  assert_int_equal(c.oldest_queued_at, T0 + 10);
  assert_int_equal(c.next_attempt_at, T0 + 7000);
}

static void next_due_is_the_earliest_due_time_among_queued_rows(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  assert_int_equal(next_due(b), 0);
  insert_ok(b, ID(01), T0, T0 + 50, NULL);
  insert_ok(b, ID(02), T0 + 1, T0 + 300, NULL);
  insert_ok(b, ID(03), T0 + 2, T0 + 200, NULL);
  assert_int_equal(next_due(b), T0 + 50);
  claim_one(b, T0 + 50, ID(01)); /* inflight rows are not due */
  assert_int_equal(next_due(b), T0 + 200);
  cancel_ok(b, ID(03), T0 + 60);
  assert_int_equal(next_due(b), T0 + 300);
  finish_ok(b, ID(01), T0 + 70, OUTCOME_RETRY); /* due at T0+1070 */
  assert_int_equal(next_due(b), T0 + 300);
  claim_one(b, T0 + 300, ID(02));
  assert_int_equal(next_due(b), T0 + 1070);
  claim_one(b, T0 + 1070, ID(01));
  assert_int_equal(next_due(b), 0);
}

static void list_pages_by_state_and_all_oldest_first_without_repeats_or_gaps(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  /* Ids descending: only the insertion order explains the order. */
  const char *ids[] = {ID(09), ID(08), ID(07), ID(06), ID(05), ID(04), ID(03)};
  const int64_t due[] = {9000, 8000, 7000, 6000, 2000, 4000, 1000};
  const size_t n = sizeof(ids) / sizeof(ids[0]);
  for (size_t i = 0; i < n; i++)
    insert_ok(b, ids[i], T0 + (int64_t)i, T0 + due[i], NULL);
  claim_one(b, T0 + 1000, ID(03)); /* due first: inflight, then completed */
  finish_ok(b, ID(03), T0 + 1001, OUTCOME_COMPLETED);
  claim_one(b, T0 + 2000, ID(05)); /* next: inflight */

  const char *queued[] = {ID(09), ID(08), ID(07), ID(06), ID(04)};
  for (size_t limit = 1; limit <= n + 1; limit++) {
    expect_pages(b, -1, limit, ids, n);
    expect_pages(b, RQ_QUEUED, limit, queued, 5);
  }
  const char *inflight[] = {ID(05)}, *completed[] = {ID(03)};
  expect_pages(b, RQ_INFLIGHT, 8, inflight, 1);
  expect_pages(b, RQ_COMPLETED, 8, completed, 1);
  expect_pages(b, RQ_DEAD, 8, NULL, 0);

  stored_request_t rows[2];
  int64_t last;
  assert_int_equal(batch_list(b, RQ_COMPLETED, 0, 2, rows, &last), 1);
  assert_int_equal(rows[0].response_status, 200); /* the status, not the answer */
  stored_request_free(&rows[0]);
}

/* ---- filtered listings and bulk actions --------------------------------- */

/* Follows list_filtered() pages of at most limit rows, each found in a
 * scan of at most scan rows, to the end; the ids in order go to got
 * (ROWS_MAX at most). Returns how many; *pages counts the calls. */
static int list_filtered_all(storage_backend_t *b, const storage_filter_t *f, size_t scan,
                             size_t limit, char got[][40], int *pages) {
  storage_page_t page = {.after_seq = 0};
  int n = 0;
  *pages = 0;
  do {
    stored_request_t rows[ROWS_MAX];
    begin_ok(b, false);
    int k = b->ops->list_filtered(b, f, scan, limit, rows, &page);
    commit_ok(b);
    assert_true(k >= 0 && (size_t)k <= limit);
    for (int i = 0; i < k; i++) {
      assert_true(n < ROWS_MAX);
      memcpy(got[n++], rows[i].id, sizeof(rows[i].id));
      stored_request_free(&rows[i]);
    }
    page.after_seq = page.last_seq;
    assert_true(++*pages < 100);
  } while (page.more);
  return n;
}

/* Every combination of scan and limit gives want, in order; a call reads
 * at most scan rows, so the walk over the scanned rows (those of f's state
 * when it names one, else every row) takes at least scanned / scan calls. */
static void expect_filtered_scanning(storage_backend_t *b, const storage_filter_t *f,
                                     const char *const *want, int nwant, size_t scanned) {
  for (size_t scan = 1; scan <= 8; scan++) {
    for (size_t limit = 1; limit <= 4; limit++) {
      char got[ROWS_MAX][40];
      int pages;
      int n = list_filtered_all(b, f, scan, limit, got, &pages);
      if (n != nwant)
        fail_msg("scan %zu limit %zu: %d rows, want %d", scan, limit, n, nwant);
      for (int i = 0; i < n; i++)
        assert_string_equal(got[i], want[i]);
      if ((size_t)pages < (scanned + scan - 1) / scan)
        fail_msg("scan %zu: %d calls read %zu rows", scan, pages, scanned);
    }
  }
}

static void expect_filtered(storage_backend_t *b, const storage_filter_t *f,
                            const char *const *want, int nwant) {
  expect_filtered_scanning(b, f, want, nwant, 7);
}

/* Seven rows that differ in every field a filter looks at. */
static void insert_filter_rows(storage_backend_t *b) {
  static const struct {
    const char *id, *method, *target, *key;
    int last_status;
  } rows[] = {
      {ID(b1), "POST", "/api/v1/bot/?n=1", "key-1", 507},
      {ID(b2), "PATCH", "/api/v1/bot/2", NULL, 507},
      {ID(b3), "POST", "/api/v2/calendar/", NULL, 503},
      {ID(b4), "POST", "/api/v1/bot/\xff", "key-\xfe", 0},
      {ID(b5), "POST", "/api/v1/bo", NULL, 507},
      {ID(b6), "DELETE", "/api/v1/bot/6", NULL, 429},
      {ID(b7), "POST", "/api/v1/bot/7", NULL, 507},
  };
  for (int i = 0; i < 7; i++) {
    stored_request_t r = new_row(rows[i].id, T0 + i * 1000, T0 + 3600000, rows[i].key);
    r.method = rows[i].method;
    r.target = rows[i].target;
    r.last_status = rows[i].last_status;
    assert_int_equal(batch_insert(b, &r, NULL), 0);
  }
  cancel_ok(b, ID(b6), T0 + 10000);
}

static void list_filtered_matches_each_condition_in_bounded_scans(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_filter_rows(b);
  storage_filter_t f;
  storage_filter_init(&f);
  const char *every[] = {ID(b1), ID(b2), ID(b3), ID(b4), ID(b5), ID(b6), ID(b7)};
  expect_filtered(b, &f, every, 7);

  f.states = (1u << RQ_QUEUED);
  const char *queued[] = {ID(b1), ID(b2), ID(b3), ID(b4), ID(b5), ID(b7)};
  expect_filtered_scanning(b, &f, queued, 6, 6);
  f.states = (1u << RQ_CANCELLED) | (1u << RQ_DEAD);
  const char *cancelled[] = {ID(b6)};
  expect_filtered(b, &f, cancelled, 1);

  storage_filter_init(&f);
  f.method = "PATCH";
  const char *patch[] = {ID(b2)};
  expect_filtered(b, &f, patch, 1);

  storage_filter_init(&f);
  f.path_prefix = "/api/v1/bot/"; /* bytes: b5's /api/v1/bo is shorter, b4's \xff matches */
  const char *bots[] = {ID(b1), ID(b2), ID(b4), ID(b6), ID(b7)};
  expect_filtered(b, &f, bots, 5);
  f.path_prefix = "/api/v1/bot/\xff";
  const char *ff[] = {ID(b4)};
  expect_filtered(b, &f, ff, 1);

  storage_filter_init(&f);
  f.idempotency_key = "key-\xfe";
  expect_filtered(b, &f, ff, 1);

  storage_filter_init(&f);
  f.last_status = 507;
  const char *s507[] = {ID(b1), ID(b2), ID(b5), ID(b7)};
  expect_filtered(b, &f, s507, 4);

  storage_filter_init(&f);
  f.created_from = T0 + 2000;  /* inclusive */
  f.created_until = T0 + 4000; /* exclusive */
  const char *window[] = {ID(b3), ID(b4)};
  expect_filtered(b, &f, window, 2);

  storage_filter_init(&f);
  f.states = 1u << RQ_QUEUED;
  f.method = "POST";
  f.last_status = 507;
  f.path_prefix = "/api/v1/";
  const char *combined[] = {ID(b1), ID(b5), ID(b7)};
  expect_filtered_scanning(b, &f, combined, 3, 6);

  storage_filter_init(&f);
  f.method = "PUT";
  expect_filtered(b, &f, NULL, 0);
}

/* One bulk step in a durable batch of its own, as the store runs it. */
static int batch_bulk(storage_backend_t *b, storage_bulk_t op, const storage_filter_t *f,
                      int64_t now, size_t scan, size_t limit, stored_request_t *out,
                      storage_page_t *page) {
  begin_ok(b, true);
  int n = b->ops->bulk(b, op, f, now, scan, limit, out, page);
  commit_ok(b);
  return n;
}

/* Runs a bulk action to its end in steps; returns how many rows it changed. */
static int64_t bulk_all(storage_backend_t *b, storage_bulk_t op, const storage_filter_t *f,
                        int64_t now, size_t scan, size_t limit, bool *full) {
  storage_page_t page = {.after_seq = 0};
  int64_t total = 0;
  int steps = 0;
  do {
    stored_request_t rows[ROWS_MAX];
    int n = batch_bulk(b, op, f, now, scan, limit, rows, &page);
    assert_true(n >= 0 && (size_t)n <= limit);
    for (int i = 0; i < n; i++) {
      assert_int_equal(rows[i].state, op == STORAGE_BULK_CANCEL ? RQ_CANCELLED : RQ_QUEUED);
      if (op == STORAGE_BULK_RETRY)
        assert_int_equal(rows[i].next_attempt_at, now);
      stored_request_free(&rows[i]);
    }
    total += n;
    page.after_seq = page.last_seq;
    assert_true(++steps < 100);
  } while (page.more);
  *full = page.full;
  return total;
}

static void bulk_cancel_changes_only_matching_queued_rows_in_steps(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_filter_rows(b);
  storage_filter_t f;
  storage_filter_init(&f);
  f.path_prefix = "/api/v1/bot/";
  bool full;
  /* b1, b2, b4, b7 are queued under the prefix; b6 is cancelled already */
  assert_int_equal(bulk_all(b, STORAGE_BULK_CANCEL, &f, T0 + 20000, 2, 1, &full), 4);
  assert_false(full);
  assert_int_equal(state_of(b, ID(b1)), RQ_CANCELLED);
  assert_int_equal(state_of(b, ID(b3)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(b5)), RQ_QUEUED);
  assert_int_equal(unfinished(b), 2);
  queue_counts_t c;
  counts_ok(b, &c);
  assert_int_equal(c.count[RQ_QUEUED], 2);
  assert_int_equal(c.count[RQ_CANCELLED], 5);
  /* Again: nothing left to change. */
  assert_int_equal(bulk_all(b, STORAGE_BULK_CANCEL, &f, T0 + 20000, 3, 2, &full), 0);
  /* A state the action may not change matches nothing. */
  storage_filter_init(&f);
  f.states = 1u << RQ_COMPLETED;
  assert_int_equal(bulk_all(b, STORAGE_BULK_CANCEL, &f, T0 + 20000, 3, 2, &full), 0);
}

/* Makes id dead: claimed, then given up. */
static void make_dead(storage_backend_t *b, const char *id, int64_t now) {
  stored_request_t r;
  assert_int_equal(batch_retry_now(b, id, now, &r), 0);
  stored_request_free(&r);
  claim_one(b, now, id);
  finish_ok(b, id, now + 1, OUTCOME_DEAD);
}

static void bulk_retry_revives_dead_and_queued_rows_due_now_within_max_queue(void **state) {
  storage_backend_t *b = open_ok(*state, 3);
  insert_ok(b, ID(c0), T0, T0 + 3600000, NULL);
  insert_ok(b, ID(c1), T0 + 1, T0 + 3600000, NULL);
  insert_ok(b, ID(c2), T0 + 2, T0 + 3600000, NULL);
  make_dead(b, ID(c0), T0 + 100);
  make_dead(b, ID(c1), T0 + 200);
  make_dead(b, ID(c2), T0 + 300);
  insert_ok(b, ID(c3), T0 + 3, T0 + 3600000, NULL);
  assert_int_equal(unfinished(b), 1);
  /* Room for two more unfinished rows: c1 and c2 (c0 is older than the
   * filter's time), and c3, queued, made due now. */
  storage_filter_t f;
  storage_filter_init(&f);
  f.created_from = T0 + 1;
  bool full;
  assert_int_equal(bulk_all(b, STORAGE_BULK_RETRY, &f, T0 + 5000, 2, 1, &full), 3);
  assert_false(full);
  assert_int_equal(state_of(b, ID(c0)), RQ_DEAD);
  assert_int_equal(state_of(b, ID(c1)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(c2)), RQ_QUEUED);
  assert_int_equal(unfinished(b), 3);
  assert_int_equal(next_due(b), T0 + 5000);
  /* A dead row's age starts again, as with retry_now(); a queued one's not. */
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(c1), false, &r), 0);
  assert_int_equal(r.created_at, T0 + 5000);
  assert_int_equal(r.next_attempt_at, T0 + 5000);
  stored_request_free(&r);
  assert_int_equal(batch_get(b, ID(c3), false, &r), 0);
  assert_int_equal(r.created_at, T0 + 3);
  assert_int_equal(r.next_attempt_at, T0 + 5000);
  stored_request_free(&r);
  /* --max-queue reached: the next dead row stops the action, unchanged. */
  storage_filter_init(&f);
  f.states = 1u << RQ_DEAD;
  assert_int_equal(bulk_all(b, STORAGE_BULK_RETRY, &f, T0 + 6000, 8, 4, &full), 0);
  assert_true(full);
  assert_int_equal(state_of(b, ID(c0)), RQ_DEAD);
  assert_int_equal(unfinished(b), 3);
}

/* ---- flows ------------------------------------------------------------------ */

static void insert_in_flow_ok(storage_backend_t *b, const char *id, int64_t created, int64_t due,
                              const char *flow) {
  stored_request_t r = new_row(id, created, due, NULL);
  r.flow = flow; /* not freed: the row is the test's */
  int rc = batch_insert(b, &r, NULL);
  if (rc != 0)
    fail_msg("insert %s in flow %s: %d", id, flow != NULL ? flow : "(null)", rc);
}

static const char *flow_of(storage_backend_t *b, const char *id) {
  static char flow[STORAGE_FLOW_MAX];
  stored_request_t r;
  assert_int_equal(batch_get(b, id, false, &r), 0);
  assert_non_null(r.flow);
  snprintf(flow, sizeof(flow), "%s", r.flow);
  stored_request_free(&r);
  return flow;
}

/* flows() in a batch of its own, as a status page asks it. */
static int batch_flows(storage_backend_t *b, storage_flow_t *out, size_t cap) {
  memset(out, 0xff, cap * sizeof(*out));
  begin_ok(b, false);
  int n = b->ops->flows(b, out, cap);
  commit_ok(b);
  return n;
}

static void a_rows_flow_round_trips_through_every_way_in_and_out(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  /* The longest flow there may be: a route's name, '#', a partition key. */
  char longest[STORAGE_FLOW_MAX];
  memset(longest, 'f', sizeof(longest) - 1);
  longest[sizeof(longest) - 1] = '\0';
  memcpy(longest, "create-bot#", 11);
  insert_in_flow_ok(b, ID(01), T0, T0, "create-bot#9f86d081884c7d65");
  insert_in_flow_ok(b, ID(02), T0 + 1, T0 + 1, NULL); /* the default route's: "" */
  insert_in_flow_ok(b, ID(03), T0 + 2, T0 + 2, longest);
  stored_request_t many[2] = {new_row(ID(04), T0 + 3, T0 + 3, "k4"),
                              new_row(ID(05), T0 + 4, T0 + 4, NULL)};
  many[0].flow = "list-bots";
  int results[2];
  stored_request_t ex[2];
  batch_insert_many(b, many, 2, results, ex);
  assert_int_equal(results[0], 0);
  assert_int_equal(results[1], 0);

  assert_string_equal(flow_of(b, ID(01)), "create-bot#9f86d081884c7d65");
  assert_string_equal(flow_of(b, ID(02)), "");
  assert_string_equal(flow_of(b, ID(03)), longest);
  assert_string_equal(flow_of(b, ID(04)), "list-bots");
  assert_string_equal(flow_of(b, ID(05)), "");
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), true, &r), 0);
  assert_string_equal(r.flow, "create-bot#9f86d081884c7d65");
  stored_request_free(&r);
  assert_int_equal(batch_find(b, "k4", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.flow, "list-bots");
  stored_request_free(&r);

  const char *want[] = {"create-bot#9f86d081884c7d65", "", longest, "list-bots", ""};
  stored_request_t rows[8];
  int64_t last;
  assert_int_equal(batch_list(b, -1, 0, 8, rows, &last), 5);
  for (int i = 0; i < 5; i++) {
    assert_string_equal(rows[i].flow, want[i]);
    stored_request_free(&rows[i]);
  }
  int64_t dead;
  assert_int_equal(batch_claim(b, T0 + 10, NEVER_EXPIRES, 8, rows, &dead), 5);
  for (int i = 0; i < 5; i++) {
    assert_string_equal(rows[i].flow, want[i]);
    stored_request_free(&rows[i]);
  }
}

static void a_flow_too_long_is_einval_and_spoils_no_other_row(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  char too_long[STORAGE_FLOW_MAX + 1];
  memset(too_long, 'f', sizeof(too_long) - 1);
  too_long[sizeof(too_long) - 1] = '\0';
  stored_request_t r = new_row(ID(01), T0, T0, NULL);
  r.flow = too_long;
  assert_int_equal(batch_insert(b, &r, NULL), -EINVAL);
  stored_request_t many[3] = {new_row(ID(02), T0, T0, NULL), new_row(ID(03), T0, T0, NULL),
                              new_row(ID(04), T0, T0, NULL)};
  many[0].flow = "a";
  many[1].flow = too_long;
  many[2].flow = "b";
  int results[3];
  stored_request_t ex[3];
  batch_insert_many(b, many, 3, results, ex);
  assert_int_equal(results[0], 0);
  assert_int_equal(results[1], -EINVAL);
  assert_int_equal(results[2], 0);
  assert_string_equal(flow_of(b, ID(02)), "a");
  assert_string_equal(flow_of(b, ID(04)), "b");
  stored_request_t got;
  assert_int_equal(batch_get(b, ID(03), false, &got), -ENOENT);
  assert_int_equal(unfinished(b), 2);
}

static void claim_with_a_flow_takes_only_its_due_rows_earliest_first_then_oldest(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  /* Interleaved with another flow's rows that are due earlier. */
  insert_in_flow_ok(b, ID(01), T0 + 0, T0 + 30, "a");
  insert_in_flow_ok(b, ID(02), T0 + 1, T0 + 1, "b");
  insert_in_flow_ok(b, ID(03), T0 + 2, T0 + 10, "a");
  insert_in_flow_ok(b, ID(04), T0 + 3, T0 + 2, "");
  insert_in_flow_ok(b, ID(05), T0 + 4, T0 + 10, "a");
  insert_in_flow_ok(b, ID(06), T0 + 5, T0 + 500, "a"); /* not due yet */
  insert_in_flow_ok(b, ID(07), T0 + 6, T0 + 3, "a#1"); /* a prefix is another flow */

  stored_request_t rows[8];
  int64_t dead;
  assert_int_equal(batch_claim_flow(b, T0 + 100, "a", NEVER_EXPIRES, 2, rows, &dead), 2);
  assert_int_equal(dead, 0);
  assert_string_equal(rows[0].id, ID(03));
  assert_string_equal(rows[1].id, ID(05));
  assert_string_equal(rows[0].flow, "a");
  assert_int_equal(rows[0].state, RQ_INFLIGHT);
  stored_request_free(&rows[0]);
  stored_request_free(&rows[1]);
  assert_int_equal(batch_claim_flow(b, T0 + 100, "a", NEVER_EXPIRES, 8, rows, &dead), 1);
  assert_string_equal(rows[0].id, ID(01));
  stored_request_free(&rows[0]);
  assert_int_equal(batch_claim_flow(b, T0 + 100, "a", NEVER_EXPIRES, 8, rows, &dead), 0);
  /* After its due rows are claimed, the flow says when it has rows due
   * next: 06's time, not "b"'s or "a#1"'s earlier ones. */
  assert_int_equal(b->ops->flow_next_due(b, "a"), T0 + 500);
  assert_int_equal(b->ops->flow_next_due(b, "b"), T0 + 1);
  assert_int_equal(b->ops->flow_next_due(b, "nobody"), 0);
  assert_int_equal(batch_claim_flow(b, T0 + 100, "nobody", NEVER_EXPIRES, 8, rows, &dead), 0);
  assert_int_equal(state_of(b, ID(02)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(04)), RQ_QUEUED);
  assert_int_equal(state_of(b, ID(07)), RQ_QUEUED);

  /* The default route's flow is "", a flow like any other. */
  assert_int_equal(batch_claim_flow(b, T0 + 100, "", NEVER_EXPIRES, 8, rows, &dead), 1);
  assert_string_equal(rows[0].id, ID(04));
  stored_request_free(&rows[0]);

  /* NULL: every flow's due rows, in the one order. */
  assert_int_equal(batch_claim(b, T0 + 1000, NEVER_EXPIRES, 8, rows, &dead), 3);
  assert_string_equal(rows[0].id, ID(02));
  assert_string_equal(rows[1].id, ID(07));
  assert_string_equal(rows[2].id, ID(06));
  for (int i = 0; i < 3; i++)
    stored_request_free(&rows[i]);
}

static void claim_with_a_flow_buries_only_its_own_rows_past_max_age(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  const int64_t now = T0 + 100000, max_age = 60000;
  insert_in_flow_ok(b, ID(01), now - 90000, now - 10, "a"); /* old, due */
  insert_in_flow_ok(b, ID(02), now - 90000, now - 20, "b"); /* old, due: another flow */
  insert_in_flow_ok(b, ID(03), now - 1000, now - 5, "a");   /* young, due */
  insert_in_flow_ok(b, ID(04), now - 80000, now - 1, "a");  /* old, due */

  stored_request_t rows[8];
  int64_t dead = -1;
  assert_int_equal(batch_claim_flow(b, now, "a", max_age, 8, rows, &dead), 1);
  assert_int_equal(dead, 2);
  assert_string_equal(rows[0].id, ID(03));
  stored_request_free(&rows[0]);
  assert_int_equal(state_of(b, ID(01)), RQ_DEAD);
  assert_int_equal(state_of(b, ID(04)), RQ_DEAD);
  assert_int_equal(state_of(b, ID(02)), RQ_QUEUED);
  assert_int_equal(unfinished(b), 2);

  assert_int_equal(batch_claim_flow(b, now, "b", max_age, 8, rows, &dead), 0);
  assert_int_equal(dead, 1);
  assert_int_equal(state_of(b, ID(02)), RQ_DEAD);
  assert_int_equal(unfinished(b), 1);
}

static void flows_lists_unfinished_flows_by_name_with_counts_and_next_due(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  storage_flow_t f[8];
  assert_int_equal(batch_flows(b, f, 8), 0);

  insert_in_flow_ok(b, ID(01), T0, T0, "b"); /* claimed: inflight */
  insert_in_flow_ok(b, ID(02), T0 + 1, T0 + 700, "b");
  insert_in_flow_ok(b, ID(03), T0 + 2, T0 + 500, "b");
  insert_in_flow_ok(b, ID(04), T0 + 3, T0 + 1, "a#2"); /* claimed: inflight only */
  insert_in_flow_ok(b, ID(05), T0 + 4, T0 + 900, "");
  insert_in_flow_ok(b, ID(06), T0 + 5, T0 + 2, "c");   /* finished: not listed */
  insert_in_flow_ok(b, ID(07), T0 + 6, T0 + 800, "d"); /* cancelled: not listed */
  insert_in_flow_ok(b, ID(08), T0 + 7, T0 + 300, "a");
  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(batch_claim_flow(b, T0 + 10, "b", NEVER_EXPIRES, 4, rows, &dead), 1);
  stored_request_free(&rows[0]);
  assert_int_equal(batch_claim_flow(b, T0 + 10, "a#2", NEVER_EXPIRES, 4, rows, &dead), 1);
  stored_request_free(&rows[0]);
  claim_one(b, T0 + 10, ID(06));
  finish_ok(b, ID(06), T0 + 11, OUTCOME_COMPLETED);
  cancel_ok(b, ID(07), T0 + 12);

  /* Ordered bytewise: "" < "a" < "a#2" < "b". */
  assert_int_equal(batch_flows(b, f, 8), 4);
  assert_string_equal(f[0].name, "");
  assert_int_equal(f[0].queued, 1);
  assert_int_equal(f[0].inflight, 0);
  assert_int_equal(f[0].next_due, T0 + 900);
  assert_string_equal(f[1].name, "a");
  assert_int_equal(f[1].queued, 1);
  assert_int_equal(f[1].inflight, 0);
  assert_int_equal(f[1].next_due, T0 + 300);
  assert_string_equal(f[2].name, "a#2");
  assert_int_equal(f[2].queued, 0);
  assert_int_equal(f[2].inflight, 1);
  assert_int_equal(f[2].next_due, 0);
  assert_string_equal(f[3].name, "b");
  assert_int_equal(f[3].queued, 2);
  assert_int_equal(f[3].inflight, 1);
  assert_int_equal(f[3].next_due, T0 + 500);

  /* At most cap, the first by name; outside a transaction too. */
  memset(f, 0xff, sizeof(f));
  assert_int_equal(b->ops->flows(b, f, 2), 2);
  assert_string_equal(f[0].name, "");
  assert_string_equal(f[1].name, "a");
  assert_int_equal(f[2].queued, -1); /* untouched past cap */
  assert_int_equal(batch_flows(b, f, 0), 0);
}

/* A database an older retryd left (SQLite schema 2, PostgreSQL schema 3:
 * before flows), with a queued row in it, made with the shipped steps up
 * to that version and a row written in that schema's own terms. */
static void make_pre_flow_database(fx_t *fx) {
  char err[256] = "";
  if (fx->kind == ON_SQLITE) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->location + strlen("sqlite:"), &db), SQLITE_OK);
    assert_int_equal(schema_migrate_to(db, 2, err, sizeof(err)), 0);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO requests (id, state, method, target, headers, "
                                  "attempts, created_at, next_attempt_at, updated_at) VALUES ('" ID(
                                      01) "', 0, 'POST', '/v1', 'A: b\r\n', 1, 1700000000000, "
                                          "1700000000000, 1700000000000)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return;
  }
  pg_conn_t *c = NULL;
  assert_int_equal(pg_conn_open(&c, fx->location, NULL, NULL, err, sizeof(err)), 0);
  assert_int_equal(pg_schema_migrate_to(c, 3, err, sizeof(err)), 0);
  assert_int_equal(pg_conn_exec(c,
                                "INSERT INTO retryd_requests (id, state, method, target, "
                                "headers, attempts, created_at, next_attempt_at, updated_at) "
                                "VALUES ('" ID(01) "', 0, 'POST', '\\x2f7631', '\\x', 1, "
                                                   "1700000000000, 1700000000000, 1700000000000)"),
                   0);
  pg_conn_close(c);
}

static void a_database_from_before_flows_migrates_its_rows_to_the_default_flow(void **state) {
  fx_t *fx = *state;
  make_pre_flow_database(fx);
  storage_backend_t *b = open_ok(fx, BIG_QUEUE);
  assert_int_equal(unfinished(b), 1);
  assert_string_equal(flow_of(b, ID(01)), "");
  storage_flow_t f[4];
  assert_int_equal(batch_flows(b, f, 4), 1);
  assert_string_equal(f[0].name, "");
  assert_int_equal(f[0].queued, 1);
  assert_int_equal(f[0].next_due, T0);

  /* New rows name their flow; the old row is claimed under "". */
  insert_in_flow_ok(b, ID(02), T0, T0 - 1, "a");
  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(batch_claim_flow(b, T0, "", NEVER_EXPIRES, 4, rows, &dead), 1);
  assert_string_equal(rows[0].id, ID(01));
  assert_string_equal(rows[0].flow, "");
  assert_string_equal(rows[0].target, "/v1");
  assert_int_equal(rows[0].attempts, 2);
  stored_request_free(&rows[0]);
  assert_int_equal(state_of(b, ID(02)), RQ_QUEUED);

  /* Migrated once: a reopened backend has nothing left to do. */
  b = reopen(fx, BIG_QUEUE);
  assert_string_equal(flow_of(b, ID(02)), "a");
}

/* retryd migrate: rows move from a SQLite file to this backend with their
 * flows. */
static void migrate_carries_each_rows_flow(void **state) {
  fx_t *fx = *state;
  char dir[64], from[128], err[512] = "";
  assert_int_equal(test_dir_make(dir, sizeof(dir), "migrate-src"), 0);
  snprintf(from, sizeof(from), "sqlite:%s/src.db", dir);
  storage_backend_t *src = NULL;
  storage_params_t params = {.max_queue = BIG_QUEUE};
  assert_int_equal(storage_backend_open(&src, from, &params, err, sizeof(err)), 0);
  insert_in_flow_ok(src, ID(01), T0, T0, "create-bot#00ff");
  insert_in_flow_ok(src, ID(02), T0 + 1, T0 + 1, "");
  src->ops->close(src);

  storage_migrate_result_t moved;
  int rc = storage_migrate(from, fx->location, &moved, err, sizeof(err));
  test_dir_remove(dir);
  if (rc != 0)
    fail_msg("storage_migrate: %d %s", rc, err);
  assert_int_equal(moved.moved, 2);
  storage_backend_t *b = open_ok(fx, BIG_QUEUE);
  assert_string_equal(flow_of(b, ID(01)), "create-bot#00ff");
  assert_string_equal(flow_of(b, ID(02)), "");
}

/* ---- the states' names (stored_request.h), once ---------------------------------------- */

static void state_names_and_parse_round_trip(void **state) {
  (void)state;
  const char *names[] = {"queued", "inflight", "completed", "dead", "cancelled"};
  for (int i = 0; i < RQ_NSTATES; i++) {
    assert_string_equal(rq_state_name((rq_state_t)i), names[i]);
    assert_int_equal(rq_state_parse(names[i]), i);
  }
  assert_int_equal(rq_state_parse("QUEUED"), -1);
  assert_int_equal(rq_state_parse(""), -1);
  assert_string_equal(rq_state_name((rq_state_t)7), "unknown");
}

/* ---- shared backends --------------------------------------------------------------- */

/* The lease ran out (open_ok's is a year) and the row was claimed again,
 * here by the same replica, as one whose attempt outlived its lease does:
 * the stale claim's outcome, a result or a release, is refused and changes
 * nothing; the new claim's is recorded. */
static void a_stale_claim_cannot_record_its_outcome(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(batch_claim(b, T0, NEVER_EXPIRES, 2, rows, &dead), 1);
  int64_t stale = rows[0].claim_token;
  stored_request_free(&rows[0]);
  assert_true(stale > 0);

  int64_t later = T0 + 2 * 365ll * 24 * 3600 * 1000;
  assert_int_equal(batch_claim(b, later, NEVER_EXPIRES, 2, rows, &dead), 1);
  int64_t current = rows[0].claim_token;
  assert_int_equal(rows[0].attempts, 2);
  stored_request_free(&rows[0]);
  assert_true(current > stale);

  attempt_outcome_t o = simple_outcome(OUTCOME_COMPLETED, later + 1);
  o.claim_token = stale;
  assert_int_equal(batch_finish(b, ID(01), later + 1, &o), -ENOENT);
  o.kind = OUTCOME_RELEASE;
  assert_int_equal(batch_finish(b, ID(01), later + 1, &o), -ENOENT);
  assert_int_equal(state_of(b, ID(01)), RQ_INFLIGHT);

  o = simple_outcome(OUTCOME_COMPLETED, later + 2);
  o.claim_token = current;
  assert_int_equal(batch_finish(b, ID(01), later + 2, &o), 0);
  assert_int_equal(state_of(b, ID(01)), RQ_COMPLETED);
}

/* ---- the life of a stored request (issue 14) --------------------------------- */

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define LA_HEADERS "Retry-After: 30\r\nContent-Type: application/json\r\n"
#define LA_BODY "{\"detail\":\"No adhoc bots\"}"
static const char la_headers[] = LA_HEADERS;
static const char la_body[] = LA_BODY;

static stored_request_t life_row(const char *id, int64_t due, int64_t deadline, const char *key) {
  stored_request_t r = new_row(id, T0, due, key);
  r.deadline_at = deadline;
  r.body_sha256 = HASH_A;
  r.last_status = 507;
  r.last_answer_headers = LA_HEADERS;
  r.last_answer_headers_len = sizeof(la_headers) - 1;
  r.last_answer_body = LA_BODY;
  r.last_answer_body_len = sizeof(la_body) - 1;
  return r;
}

static void expect_life_fields(storage_backend_t *b, const char *id, int64_t deadline) {
  for (int full = 0; full < 2; full++) {
    stored_request_t r;
    assert_int_equal(batch_get(b, id, full, &r), 0);
    assert_int_equal(r.deadline_at, deadline);
    assert_non_null(r.body_sha256);
    assert_string_equal(r.body_sha256, HASH_A);
    assert_int_equal(r.last_answer_headers_len, sizeof(la_headers) - 1);
    assert_memory_equal(r.last_answer_headers, la_headers, sizeof(la_headers) - 1);
    assert_int_equal(r.last_answer_body_len, sizeof(la_body) - 1);
    assert_memory_equal(r.last_answer_body, la_body, sizeof(la_body) - 1);
    stored_request_free(&r);
  }
}

static void deadline_hash_and_last_answer_round_trip_through_insert_and_insert_many(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  stored_request_t one = life_row(ID(01), T0, T0 + 5000, "k1");
  assert_int_equal(batch_insert(b, &one, NULL), 0);
  expect_life_fields(b, ID(01), T0 + 5000);

  stored_request_t rows[2] = {life_row(ID(02), T0, T0 + 6000, NULL), new_row(ID(03), T0, T0, NULL)};
  int results[2];
  stored_request_t existing[2];
  batch_insert_many(b, rows, 2, results, existing);
  assert_int_equal(results[0], 0);
  assert_int_equal(results[1], 0);
  expect_life_fields(b, ID(02), T0 + 6000);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(03), false, &r), 0);
  assert_int_equal(r.deadline_at, 0);
  assert_null(r.body_sha256);
  assert_null(r.last_answer_headers);
  assert_null(r.last_answer_body);
  stored_request_free(&r);
}

static void claim_buries_a_due_row_at_or_past_its_deadline_with_reason_deadline(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  const int64_t now = T0 + 10000;
  stored_request_t r1 = life_row(ID(01), now - 10, now - 1, NULL); /* past */
  stored_request_t r2 = life_row(ID(02), now - 5, now, NULL);      /* at it */
  stored_request_t r3 = life_row(ID(03), now - 1, now + 1, NULL);  /* still in time */
  assert_int_equal(batch_insert(b, &r1, NULL), 0);
  assert_int_equal(batch_insert(b, &r2, NULL), 0);
  assert_int_equal(batch_insert(b, &r3, NULL), 0);
  stored_request_t rows[4];
  int64_t dead = -1;
  assert_int_equal(batch_claim(b, now, NEVER_EXPIRES, 4, rows, &dead), 1);
  assert_int_equal(dead, 2);
  assert_string_equal(rows[0].id, ID(03));
  assert_int_equal(rows[0].deadline_at, now + 1);
  stored_request_free(&rows[0]);
  assert_int_equal(unfinished(b), 1);
  for (int i = 0; i < 2; i++) {
    stored_request_t r;
    assert_int_equal(batch_get(b, i == 0 ? ID(01) : ID(02), false, &r), 0);
    assert_int_equal(r.state, RQ_DEAD);
    assert_int_equal(r.attempts, 0);
    assert_int_equal(r.last_status, 507); /* what the upstream said stays */
    assert_non_null(r.last_error);
    assert_true(strncmp(r.last_error, "deadline", 8) == 0);
    assert_non_null(r.last_answer_body);
    stored_request_free(&r);
  }
}

static void finish_keeps_the_last_answer_until_another_replaces_it(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  insert_ok(b, ID(01), T0, T0, NULL);
  claim_one(b, T0, ID(01));
  attempt_outcome_t o = simple_outcome(OUTCOME_RETRY, T0);
  o.last_status = 507;
  o.last_answer_headers = la_headers;
  o.last_answer_headers_len = sizeof(la_headers) - 1;
  o.last_answer_body = la_body;
  o.last_answer_body_len = sizeof(la_body) - 1;
  assert_int_equal(batch_finish(b, ID(01), T0, &o), 0);
  stored_request_t r;
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.last_answer_body_len, sizeof(la_body) - 1);
  assert_memory_equal(r.last_answer_body, la_body, sizeof(la_body) - 1);
  stored_request_free(&r);

  /* No answer this time (a network error): the last one stays. */
  claim_one(b, T0 + 1000, ID(01));
  o = simple_outcome(OUTCOME_RETRY, T0 + 1000);
  o.last_error = "connection refused";
  assert_int_equal(batch_finish(b, ID(01), T0 + 1000, &o), 0);
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.last_answer_headers_len, sizeof(la_headers) - 1);
  assert_memory_equal(r.last_answer_body, la_body, sizeof(la_body) - 1);
  stored_request_free(&r);

  /* Another answer replaces it, an empty body included. */
  claim_one(b, T0 + 2000, ID(01));
  o = simple_outcome(OUTCOME_RETRY, T0 + 2000);
  o.last_status = 503;
  o.last_answer_headers = "";
  o.last_answer_body = "";
  assert_int_equal(batch_finish(b, ID(01), T0 + 2000, &o), 0);
  assert_int_equal(batch_get(b, ID(01), false, &r), 0);
  assert_int_equal(r.last_status, 503);
  assert_non_null(r.last_answer_headers);
  assert_int_equal(r.last_answer_headers_len, 0);
  assert_int_equal(r.last_answer_body_len, 0);
  stored_request_free(&r);
}

static int batch_find_completed(storage_backend_t *b, const char *key, const char *method,
                                const char *target, stored_request_t *out) {
  memset(out, 0, sizeof(*out));
  begin_ok(b, false);
  int rc = b->ops->find_completed(b, key, method, target, out);
  commit_ok(b);
  return rc;
}

static void find_completed_finds_the_latest_completed_row_with_the_key(void **state) {
  storage_backend_t *b = open_ok(*state, BIG_QUEUE);
  stored_request_t r;
  assert_non_null(b->ops->find_completed);
  insert_ok(b, ID(01), T0, T0, "k");
  assert_int_equal(batch_find_completed(b, "k", "POST", "/api/v1/bot", &r), -ENOENT);
  claim_one(b, T0, ID(01));
  finish_ok(b, ID(01), T0 + 1, OUTCOME_COMPLETED);
  insert_ok(b, ID(02), T0 + 2, T0 + 2, "k");
  claim_one(b, T0 + 2, ID(02));
  finish_ok(b, ID(02), T0 + 3, OUTCOME_COMPLETED);
  insert_ok(b, ID(03), T0 + 4, T0 + 4, "k"); /* dead: never replayed */
  claim_one(b, T0 + 4, ID(03));
  finish_ok(b, ID(03), T0 + 5, OUTCOME_DEAD);

  assert_int_equal(batch_find_completed(b, "k", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, ID(02));
  assert_int_equal(r.state, RQ_COMPLETED);
  assert_int_equal(r.response_status, 200);
  stored_request_free(&r);
  assert_int_equal(batch_find_completed(b, "k", "PUT", "/api/v1/bot", &r), -ENOENT);
  assert_int_equal(batch_find_completed(b, "k", "POST", "/api/v1/other", &r), -ENOENT);
  assert_int_equal(batch_find_completed(b, "other", "POST", "/api/v1/bot", &r), -ENOENT);
  /* find_idempotent still sees unfinished rows only. */
  assert_int_equal(batch_find(b, "k", "POST", "/api/v1/bot", &r), -ENOENT);
}

/* retryd migrate: rows move with their deadline, body hash and last answer. */
static void migrate_carries_deadline_hash_and_last_answer(void **state) {
  fx_t *fx = *state;
  char dir[64], from[128], err[512] = "";
  assert_int_equal(test_dir_make(dir, sizeof(dir), "migrate-life"), 0);
  snprintf(from, sizeof(from), "sqlite:%s/src.db", dir);
  storage_backend_t *src = NULL;
  storage_params_t params = {.max_queue = BIG_QUEUE};
  assert_int_equal(storage_backend_open(&src, from, &params, err, sizeof(err)), 0);
  stored_request_t r = life_row(ID(01), T0, T0 + 7000, "k");
  assert_int_equal(batch_insert(src, &r, NULL), 0);
  src->ops->close(src);

  storage_migrate_result_t moved;
  int rc = storage_migrate(from, fx->location, &moved, err, sizeof(err));
  test_dir_remove(dir);
  if (rc != 0)
    fail_msg("storage_migrate: %d %s", rc, err);
  assert_int_equal(moved.moved, 1);
  expect_life_fields(open_ok(fx, BIG_QUEUE), ID(01), T0 + 7000);
}

/* ---- every scenario, once per backend ------------------------------------------------ */

#define SCENARIOS(X)                                                                               \
  X(insert_then_get_with_payload_returns_every_field_byte_exact)                                   \
  X(get_brief_leaves_the_payloads_out)                                                             \
  X(a_request_without_body_key_or_error_reads_back_as_none)                                        \
  X(get_of_an_unknown_id_is_enoent)                                                                \
  X(keys_and_header_values_beyond_ascii_round_trip_byte_exact)                                     \
  X(a_held_key_is_eexist_naming_the_holder_and_the_batch_still_commits)                            \
  X(find_idempotent_finds_the_unfinished_row_and_not_a_finished_one)                               \
  X(a_key_may_be_used_again_once_its_row_finished)                                                 \
  X(a_different_method_target_or_key_is_no_conflict)                                               \
  X(insert_many_gives_each_row_what_one_insert_after_another_would)                                \
  X(insert_many_at_max_queue_refuses_where_one_insert_after_another_would)                         \
  X(insert_many_rolls_back_whole_and_counts_every_row_once)                                        \
  X(claim_takes_due_rows_earliest_first_then_oldest)                                               \
  X(claim_takes_only_due_rows_and_at_most_limit)                                                   \
  X(claimed_rows_are_inflight_with_their_payload_and_one_more_attempt)                             \
  X(claim_makes_due_rows_older_than_max_age_dead_and_counts_them)                                  \
  X(finish_completed_keeps_the_answer)                                                             \
  X(finish_retry_queues_again_at_next_attempt_with_last_status_and_error)                          \
  X(finish_dead_makes_the_row_dead_and_unclaimable)                                                \
  X(finish_release_queues_again_without_counting_the_attempt)                                      \
  X(finish_on_a_row_not_inflight_is_enoent_and_changes_nothing)                                    \
  X(cancel_moves_a_queued_row_to_cancelled_once)                                                   \
  X(cancel_of_an_inflight_or_finished_row_is_eperm_with_the_row)                                   \
  X(retry_now_queues_a_dead_row_now_and_its_age_starts_again)                                      \
  X(retry_now_makes_a_queued_row_due_now)                                                          \
  X(retry_now_of_an_inflight_completed_or_cancelled_row_is_eperm)                                  \
  X(max_queue_refuses_the_insert_beyond_it_with_edquot)                                            \
  X(a_reopened_backend_counts_its_stored_rows_against_max_queue)                                   \
  X(unfinished_counts_queued_and_inflight_rows)                                                    \
  X(a_rolled_back_transaction_keeps_nothing)                                                       \
  X(an_operations_refusal_does_not_spoil_its_batch)                                                \
  X(a_transaction_sees_its_own_writes)                                                             \
  X(commit_says_synced_only_for_a_durable_transaction_that_wrote)                                  \
  X(purge_deletes_only_finished_rows_older_than_the_cutoff)                                        \
  X(purge_takes_the_oldest_finished_first_and_at_most_limit)                                       \
  X(counts_tell_each_state_the_oldest_queued_and_the_next_due)                                     \
  X(next_due_is_the_earliest_due_time_among_queued_rows)                                           \
  X(list_pages_by_state_and_all_oldest_first_without_repeats_or_gaps)                              \
  X(list_filtered_matches_each_condition_in_bounded_scans)                                         \
  X(bulk_cancel_changes_only_matching_queued_rows_in_steps)                                        \
  X(bulk_retry_revives_dead_and_queued_rows_due_now_within_max_queue)                              \
  X(a_rows_flow_round_trips_through_every_way_in_and_out)                                          \
  X(a_flow_too_long_is_einval_and_spoils_no_other_row)                                             \
  X(claim_with_a_flow_takes_only_its_due_rows_earliest_first_then_oldest)                          \
  X(claim_with_a_flow_buries_only_its_own_rows_past_max_age)                                       \
  X(flows_lists_unfinished_flows_by_name_with_counts_and_next_due)                                 \
  X(a_database_from_before_flows_migrates_its_rows_to_the_default_flow)                            \
  X(migrate_carries_each_rows_flow)                                                                \
  X(deadline_hash_and_last_answer_round_trip_through_insert_and_insert_many)                       \
  X(claim_buries_a_due_row_at_or_past_its_deadline_with_reason_deadline)                           \
  X(finish_keeps_the_last_answer_until_another_replaces_it)                                        \
  X(find_completed_finds_the_latest_completed_row_with_the_key)                                    \
  X(migrate_carries_deadline_hash_and_last_answer)

/* Shared backends only: a backend of one process has no leases to lose. */
#define SHARED_SCENARIOS(X) X(a_stale_claim_cannot_record_its_outcome)

#define ON_SQLITE_TEST(f) cmocka_unit_test_setup_teardown(f, sqlite_setup, fx_teardown),
#define ON_POSTGRES_TEST(f) cmocka_unit_test_setup_teardown(f, postgres_setup, fx_teardown),

int main(void) {
  const struct CMUnitTest no_backend[] = {cmocka_unit_test(state_names_and_parse_round_trip)};
  const struct CMUnitTest on_sqlite[] = {SCENARIOS(ON_SQLITE_TEST)};
  const struct CMUnitTest on_postgres[] = {SCENARIOS(ON_POSTGRES_TEST)
                                               SHARED_SCENARIOS(ON_POSTGRES_TEST)};
  int failed = cmocka_run_group_tests_name("stored_request", no_backend, NULL, NULL);
  /* cmocka does not print a group's name: say which backend runs. */
  printf("[----------] sqlite\n");
  fflush(stdout);
  failed += cmocka_run_group_tests_name("sqlite", on_sqlite, NULL, NULL);
  pg.dir = getenv("RETRYD_TEST_PG_DIR");
  if (pg.dir != NULL && pg.dir[0] != '\0') {
    pg.count = (int)(sizeof(on_postgres) / sizeof(on_postgres[0]));
    printf("[----------] postgres\n");
    fflush(stdout);
    failed += cmocka_run_group_tests_name("postgres", on_postgres, postgres_group_setup,
                                          postgres_group_teardown);
  } else {
    printf(
        "[  SKIPPED ] postgres: RETRYD_TEST_PG_DIR is not set (ctest's fixture \"pg\" sets it)\n");
  }
  return failed;
}
