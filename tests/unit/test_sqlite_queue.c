/* queue_db: the queue's rows in SQLite: open and refusals, migrations,
 * insert/get, claim order, outcomes, expiry, cancel and retry, idempotency,
 * --max-queue, crash recovery, purge, counts and listing. Each test works in
 * its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/sqlite/sqlite_queue.h"
#include "storage/sqlite/schema.h"

#define BIG_QUEUE 1000000
#define T0 1700000000000ll /* a plausible "now", Unix ms */

typedef struct {
  char dir[64];
  char path[128];
  sqlite_queue_t *q;
  char err[512];
  char *buf[2]; /* file contents; freed by teardown even when a test fails */
} fx_t;

/* ---- fixture and helpers ---------------------------------------------- */

static int fx_setup(void **state) {
  fx_t *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  snprintf(fx->dir, sizeof(fx->dir), "/tmp/retryd-test-queue-db-XXXXXX");
  if (mkdtemp(fx->dir) == NULL) {
    free(fx);
    return -1;
  }
  snprintf(fx->path, sizeof(fx->path), "%s/queue.db", fx->dir);
  *state = fx;
  return 0;
}

static int fx_teardown(void **state) {
  fx_t *fx = *state;
  sqlite_queue_close(fx->q);
  DIR *d = opendir(fx->dir);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      char p[512];
      snprintf(p, sizeof(p), "%s/%s", fx->dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(fx->dir);
  free(fx->buf[0]);
  free(fx->buf[1]);
  free(fx);
  return 0;
}

static sqlite_queue_t *open_ok(fx_t *fx, int64_t max_queue) {
  fx->err[0] = '\0';
  int rc = sqlite_queue_open(&fx->q, fx->path, max_queue, fx->err, sizeof(fx->err));
  if (rc != 0)
    fail_msg("sqlite_queue_open: %d %s", rc, fx->err);
  assert_non_null(fx->q);
  return fx->q;
}

static void reopen(fx_t *fx, int64_t max_queue) {
  sqlite_queue_close(fx->q);
  fx->q = NULL;
  open_ok(fx, max_queue);
}

static const char HEADERS[] = "Content-Type: application/json\r\nAuthorization: Token abc\r\n";
static const char BODY[] = "{\"meeting_url\":\"https://x\"}";

/* A queued row with a small payload; the caller owns nothing. */
static stored_request_t new_row(const char *id, int64_t created, int64_t due, const char *key) {
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  snprintf(r.id, sizeof(r.id), "%s", id);
  r.state = RQ_QUEUED;
  r.method = "POST";
  r.target = "/api/v1/bot";
  r.headers = HEADERS;
  r.headers_len = sizeof(HEADERS) - 1;
  r.body = BODY;
  r.body_len = sizeof(BODY) - 1;
  r.idempotency_key = key;
  r.created_at = created;
  r.next_attempt_at = due;
  return r;
}

static void insert_ok(sqlite_queue_t *q, const char *id, int64_t created, int64_t due,
                      const char *key) {
  stored_request_t r = new_row(id, created, due, key);
  int rc = sqlite_queue_insert(q, &r, NULL);
  if (rc != 0)
    fail_msg("insert %s: %d", id, rc);
}

static rq_state_t state_of(sqlite_queue_t *q, const char *id) {
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, id, false, &r), 0);
  rq_state_t s = r.state;
  stored_request_free(&r);
  return s;
}

/* Claims everything due at now (no expiry) and frees the rows. */
static int claim_count(sqlite_queue_t *q, int64_t now) {
  stored_request_t rows[16];
  int64_t dead = -1;
  int n = sqlite_queue_claim(q, now, 100ll * 365 * 86400000, 16, rows, &dead);
  assert_true(n >= 0);
  assert_int_equal(dead, 0);
  for (int i = 0; i < n; i++)
    stored_request_free(&rows[i]);
  return n;
}

/* Claims exactly one row due at now and expects it to be id. */
static void claim_one(sqlite_queue_t *q, int64_t now, const char *id) {
  stored_request_t rows[4];
  int64_t dead = -1;
  int n = sqlite_queue_claim(q, now, 100ll * 365 * 86400000, 4, rows, &dead);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].id, id);
  stored_request_free(&rows[0]);
}

static void finish_ok(sqlite_queue_t *q, const char *id, int64_t now, outcome_t kind) {
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = kind;
  if (kind == OUTCOME_COMPLETED)
    o.response_status = 200;
  if (kind == OUTCOME_RETRY)
    o.next_attempt_at = now + 1000;
  assert_int_equal(sqlite_queue_finish(q, id, now, &o), 0);
}

static int64_t sql_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static bool contains(const char *hay, size_t hay_len, const char *needle) {
  size_t n = strlen(needle);
  if (n > hay_len)
    return false;
  for (size_t i = 0; i + n <= hay_len; i++)
    if (memcmp(hay + i, needle, n) == 0)
      return true;
  return false;
}

/* Runs sql on path with SQLite directly (another application's view). */
static void sqlite_exec_file(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                   SQLITE_OK);
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    fail_msg("%s: %s", sql, msg ? msg : "?");
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Another application's SQLite file: a table of its own, application_id 0,
 * the default (rollback) journal. */
static void make_foreign_database(const char *path) {
  sqlite_exec_file(path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);"
                         "INSERT INTO notes (text) VALUES ('keep me'), ('and me');");
}

/* ---- open ----------------------------------------------------------- */

static void open_creates_the_database_file_with_mode_0600(void **state) {
  fx_t *fx = *state;
  mode_t old = umask(0); /* a permissive umask must not widen the file */
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  umask(old);
  struct stat st;
  assert_int_equal(stat(fx->path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  /* The WAL holds the same secrets; it is private too. */
  insert_ok(q, "r1", T0, T0, NULL);
  char wal[160];
  snprintf(wal, sizeof(wal), "%s-wal", fx->path);
  if (stat(wal, &st) == 0)
    assert_int_equal(st.st_mode & 07777, 0600);
  /* Exclusive locking keeps the WAL index in memory: no -shm file. */
  char shm[160];
  snprintf(shm, sizeof(shm), "%s-shm", fx->path);
  assert_false(file_exists(shm));
}

static void reopening_a_retryd_database_keeps_its_rows(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, "k1");
  insert_ok(q, "r2", T0 + 1, T0 + 1, NULL);
  reopen(fx, BIG_QUEUE);
  q = fx->q;
  assert_int_equal(sqlite_queue_recovered(q), 0);
  assert_int_equal(sqlite_queue_unfinished(q), 2);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", true, &r), 0);
  assert_string_equal(r.idempotency_key, "k1");
  assert_int_equal(r.body_len, sizeof(BODY) - 1);
  assert_memory_equal(r.body, BODY, r.body_len);
  stored_request_free(&r);
  assert_int_equal(state_of(q, "r2"), RQ_QUEUED);
  assert_int_equal(sql_int(sqlite_queue_handle(q), "PRAGMA user_version"), SCHEMA_VERSION);
}

static void a_file_of_random_bytes_is_refused_with_einval_and_left_byte_identical(void **state) {
  fx_t *fx = *state;
  char junk[8192];
  uint32_t x = 0x12345678u;
  for (size_t i = 0; i < sizeof(junk); i++) {
    x = x * 1103515245u + 12345u;
    junk[i] = (char)(x >> 16);
  }
  FILE *f = fopen(fx->path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
  fclose(f);

  sqlite_queue_t *q = (sqlite_queue_t *)0x1;
  int rc = sqlite_queue_open(&q, fx->path, BIG_QUEUE, fx->err, sizeof(fx->err));
  assert_int_equal(rc, -EINVAL);
  assert_null(q);
  assert_true(fx->err[0] != '\0');

  size_t len;
  char *after = fx->buf[0] = read_all(fx->path, &len);
  assert_int_equal(len, sizeof(junk));
  assert_memory_equal(after, junk, sizeof(junk));
}

static void another_applications_database_is_refused_with_einval(void **state) {
  fx_t *fx = *state;
  make_foreign_database(fx->path);
  sqlite_queue_t *q = (sqlite_queue_t *)0x1;
  int rc = sqlite_queue_open(&q, fx->path, BIG_QUEUE, fx->err, sizeof(fx->err));
  assert_int_equal(rc, -EINVAL);
  assert_null(q);
  assert_non_null(strstr(fx->err, "not a retryd database"));

  /* Its data is still there and no retryd table was added. */
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sql_int(db, "SELECT count(*) FROM notes"), 2);
  assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'requests'"), 0);
  assert_int_equal(sql_int(db, "PRAGMA application_id"), 0);
  assert_int_equal(sql_int(db, "PRAGMA user_version"), 0);
  sqlite3_close(db);
}

/* schema.c says "refusing to touch it" and schema.h "retryd never writes
 * into somebody else's SQLite file": the refused file must be unchanged. */
static void another_applications_database_is_left_byte_identical_when_refused(void **state) {
  fx_t *fx = *state;
  make_foreign_database(fx->path);
  size_t before_len;
  char *before = fx->buf[0] = read_all(fx->path, &before_len);

  sqlite_queue_t *q = NULL;
  assert_int_equal(sqlite_queue_open(&q, fx->path, BIG_QUEUE, fx->err, sizeof(fx->err)), -EINVAL);

  size_t after_len;
  char *after = fx->buf[1] = read_all(fx->path, &after_len);
  /* The header's file format bytes (offsets 18 and 19) say 1 for a
   * rollback-journal database and 2 for WAL. */
  assert_int_equal(before[18], 1);
  if (after[18] != 1 || after[19] != 1)
    fail_msg("the refused database was switched to WAL journal mode (header bytes 18/19 "
             "now %d/%d, were 1/1)",
             after[18], after[19]);
  assert_int_equal(after_len, before_len);
  assert_memory_equal(after, before, before_len);

  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "delete");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void a_database_with_a_newer_schema_version_is_refused(void **state) {
  fx_t *fx = *state;
  char sql[128];
  snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = 99",
           SCHEMA_APPLICATION_ID);
  sqlite_exec_file(fx->path, sql);

  sqlite_queue_t *q = (sqlite_queue_t *)0x1;
  assert_int_equal(sqlite_queue_open(&q, fx->path, BIG_QUEUE, fx->err, sizeof(fx->err)), -EINVAL);
  assert_null(q);
  assert_non_null(strstr(fx->err, "99"));

  /* Not migrated "down" or stamped with our version. */
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sql_int(db, "PRAGMA user_version"), 99);
  assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
  sqlite3_close(db);
}

static void a_second_open_of_the_same_file_fails_with_ebusy_until_the_first_closes(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);

  sqlite_queue_t *q2 = (sqlite_queue_t *)0x1;
  char err[512] = "";
  assert_int_equal(sqlite_queue_open(&q2, fx->path, BIG_QUEUE, err, sizeof(err)), -EBUSY);
  assert_null(q2);
  assert_true(err[0] != '\0');

  /* The first connection is unharmed. */
  insert_ok(q, "r2", T0, T0, NULL);
  assert_int_equal(state_of(q, "r1"), RQ_QUEUED);

  sqlite_queue_close(q);
  fx->q = NULL;
  q = open_ok(fx, BIG_QUEUE);
  assert_int_equal(sqlite_queue_unfinished(q), 2);
}

/* True when a process other than this one sees a lock on path (the locks
 * SQLite takes are POSIX advisory locks, owned by the process). */
static bool another_process_sees_a_lock(const char *path) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open(path, O_RDWR);
    if (fd < 0)
      _exit(2);
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0; /* the whole file and beyond: SQLite locks bytes past 1 GiB */
    if (fcntl(fd, F_GETLK, &fl) != 0)
      _exit(2);
    _exit(fl.l_type == F_UNLCK ? 1 : 0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_not_equal(WEXITSTATUS(status), 2);
  return WEXITSTATUS(status) == 0;
}

/* The lock that keeps a second retryd out must survive a refused open in
 * this process: sqlite_queue_open() must not close() a descriptor of a file
 * this process has locked (POSIX drops all of the process's locks on it). */
static void a_refused_second_open_does_not_drop_the_first_connections_lock(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  assert_true(another_process_sees_a_lock(fx->path));

  sqlite_queue_t *q2 = NULL;
  char err[512];
  assert_int_equal(sqlite_queue_open(&q2, fx->path, BIG_QUEUE, err, sizeof(err)), -EBUSY);

  if (!another_process_sees_a_lock(fx->path))
    fail_msg("after a refused second sqlite_queue_open() in this process, other processes no "
             "longer see the first connection's lock: another retryd could open the file");
}

/* ---- migrations ------------------------------------------------------ */

static void a_fresh_database_gets_the_schema_version_application_id_and_wal(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  sqlite3 *db = sqlite_queue_handle(q);
  assert_int_equal(sql_int(db, "PRAGMA user_version"), SCHEMA_VERSION);
  assert_int_equal(sql_int(db, "PRAGMA application_id"), SCHEMA_APPLICATION_ID);
  assert_int_equal(sql_int(db, "PRAGMA secure_delete"), 1);
  assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'requests'"), 1);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);

  /* And they are on disk: another connection sees them after close. */
  sqlite_queue_close(q);
  fx->q = NULL;
  assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sql_int(db, "PRAGMA user_version"), SCHEMA_VERSION);
  assert_int_equal(sql_int(db, "PRAGMA application_id"), SCHEMA_APPLICATION_ID);
  sqlite3_close(db);
}

static void an_empty_foreign_file_with_application_id_0_and_no_tables_is_adopted(void **state) {
  fx_t *fx = *state;
  /* An empty SQLite database (what a zero-byte file is) is not somebody
   * else's data: it is migrated. */
  sqlite_exec_file(fx->path, "PRAGMA user_version = 0");
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  assert_int_equal(sql_int(sqlite_queue_handle(q), "PRAGMA user_version"), SCHEMA_VERSION);
}

static void a_fresh_database_can_give_free_pages_back_and_keeps_answers_apart(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  sqlite3 *db = sqlite_queue_handle(q);
  /* Incremental auto-vacuum: free pages can be given back in slices, and
   * the pointer map frees an overflow chain without reading it. */
  assert_int_equal(sql_int(db, "PRAGMA auto_vacuum"), 2);
  assert_true(sqlite_queue_reclaims_space(q));
  assert_int_equal(sqlite_queue_converted_ms(q), -1);
  /* Final answers have a table of their own (deleted without zeroing). */
  assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'answers'"), 1);
}

/* The schema of version 1, as it shipped: a file written by an older
 * retryd, without auto-vacuum. */
static const char SCHEMA_V1[] =
    "PRAGMA journal_mode = WAL;"
    "CREATE TABLE requests (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, state INTEGER NOT "
    "NULL, method TEXT NOT NULL, target TEXT NOT NULL, headers BLOB NOT NULL, body BLOB, "
    "idempotency_key TEXT, attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, "
    "next_attempt_at INTEGER, updated_at INTEGER NOT NULL, last_status INTEGER, last_error "
    "TEXT, response_status INTEGER, response_headers BLOB, response_body BLOB);"
    "CREATE INDEX requests_due ON requests(next_attempt_at, seq) WHERE state = 0;"
    "CREATE INDEX requests_by_state ON requests(state, seq);"
    "CREATE UNIQUE INDEX requests_idempotency ON requests(idempotency_key, method, target) "
    "WHERE idempotency_key IS NOT NULL AND state IN (0, 1);"
    "CREATE INDEX requests_finished ON requests(updated_at) WHERE state >= 2;"
    "INSERT INTO requests (id, state, method, target, headers, body, attempts, created_at, "
    "next_attempt_at, updated_at) VALUES ('old-1', 0, 'POST', '/v1', 'A: b\r\n', "
    "zeroblob(300000), 1, 1700000000000, 1700000000000, 1700000000000);"
    "INSERT INTO requests (id, state, method, target, headers, attempts, created_at, "
    "updated_at, response_status, response_body) VALUES ('old-2', 2, 'GET', '/v2', '', 1, "
    "1700000000000, 1700000000000, 200, zeroblob(200000));"
    "PRAGMA application_id = 1920234105; PRAGMA user_version = 1;";

static void a_version_1_file_without_auto_vacuum_is_converted_keeping_its_rows(void **state) {
  fx_t *fx = *state;
  _Static_assert(SCHEMA_APPLICATION_ID == 1920234105, "SCHEMA_V1 spells the application id");
  sqlite_exec_file(fx->path, SCHEMA_V1);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sql_int(db, "PRAGMA auto_vacuum"), 0);
  sqlite3_close(db);

  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  db = sqlite_queue_handle(q);
  assert_int_equal(sql_int(db, "PRAGMA user_version"), SCHEMA_VERSION);
  assert_int_equal(sql_int(db, "PRAGMA auto_vacuum"), 2);
  assert_true(sqlite_queue_reclaims_space(q));
  assert_true(sqlite_queue_converted_ms(q) >= 0);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "old-1", true, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.body_len, 300000);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_get(q, "old-2", true, &r), 0);
  assert_int_equal(r.response_body_len, 200000);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_unfinished(q), 1);

  /* Converted once: the next open has nothing to do. */
  reopen(fx, BIG_QUEUE);
  assert_int_equal(sqlite_queue_converted_ms(fx->q), -1);
  assert_true(sqlite_queue_reclaims_space(fx->q));
}

/* ---- insert and get -------------------------------------------------- */

static void insert_then_get_round_trips_every_field_and_payload_bytes_exactly(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  static const char headers[] = "X-A: 1\r\nAuthorization: Bearer s3cr3t\r\nX-Empty: \r\n";
  static const char body[] = {'a', '\0', 'b', '\0', '\0', '\xff', 'c', '\0'};
  stored_request_t in = new_row("0190a1b2-c3d4-7e5f-8a6b-0123456789ab", T0, T0 + 500, "key-1");
  in.method = "PUT";
  in.target = "/api/v1/bot/123/?x=1";
  in.headers = headers;
  in.headers_len = sizeof(headers) - 1;
  in.body = body;
  in.body_len = sizeof(body);
  in.attempts = 2;
  in.updated_at = T0 + 7;
  in.last_status = 503;
  in.last_error = "upstream said 503";
  assert_int_equal(sqlite_queue_insert(q, &in, NULL), 0);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, in.id, true, &r), 0);
  assert_string_equal(r.id, in.id);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_string_equal(r.method, "PUT");
  assert_string_equal(r.target, "/api/v1/bot/123/?x=1");
  assert_int_equal(r.headers_len, sizeof(headers) - 1);
  assert_memory_equal(r.headers, headers, sizeof(headers) - 1);
  assert_int_equal(r.body_len, sizeof(body));
  assert_memory_equal(r.body, body, sizeof(body));
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

  /* Brief: the same row without the payloads. */
  assert_int_equal(sqlite_queue_get(q, in.id, false, &r), 0);
  assert_string_equal(r.id, in.id);
  assert_string_equal(r.method, "PUT");
  assert_string_equal(r.target, "/api/v1/bot/123/?x=1");
  assert_string_equal(r.idempotency_key, "key-1");
  assert_int_equal(r.attempts, 2);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  assert_int_equal(r.last_status, 503);
  assert_null(r.headers);
  assert_int_equal(r.headers_len, 0);
  assert_null(r.body);
  assert_int_equal(r.body_len, 0);
  stored_request_free(&r);
}

static void a_request_without_body_or_key_reads_back_as_none(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  stored_request_t in = new_row("r1", T0, T0, NULL);
  in.method = "GET";
  in.body = NULL;
  in.body_len = 0;
  assert_int_equal(sqlite_queue_insert(q, &in, NULL), 0);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", true, &r), 0);
  assert_null(r.body);
  assert_int_equal(r.body_len, 0);
  assert_null(r.idempotency_key);
  assert_int_equal(r.last_status, 0);
  assert_null(r.last_error);
  assert_int_equal(r.updated_at, T0); /* defaults to created_at */
  stored_request_free(&r);
}

static void get_of_an_unknown_id_is_enoent(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "nope", false, &r), -ENOENT);
  assert_int_equal(sqlite_queue_get(q, "nope", true, &r), -ENOENT);
  stored_request_free(&r);
}

/* ---- claim ----------------------------------------------------------- */

static void claim_takes_the_earliest_due_first_then_insertion_order(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  /* Ids sort differently from insertion order, so only seq explains ties. */
  insert_ok(q, "c", T0, T0 + 30, NULL);
  insert_ok(q, "z", T0, T0 + 10, NULL);
  insert_ok(q, "a", T0, T0 + 20, NULL);
  insert_ok(q, "y", T0, T0 + 10, NULL);
  insert_ok(q, "b", T0, T0 + 20, NULL);

  stored_request_t rows[8];
  int64_t dead = -1;
  assert_int_equal(sqlite_queue_claim(q, T0 + 100, 86400000, 8, rows, &dead), 5);
  assert_int_equal(dead, 0);
  const char *want[] = {"z", "y", "a", "b", "c"};
  for (int i = 0; i < 5; i++) {
    assert_string_equal(rows[i].id, want[i]);
    stored_request_free(&rows[i]);
  }
}

static void claim_skips_rows_not_yet_due_and_respects_the_limit(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  insert_ok(q, "r2", T0, T0 + 1, NULL);
  insert_ok(q, "r3", T0, T0 + 2, NULL);
  insert_ok(q, "later", T0, T0 + 1001, NULL);

  stored_request_t rows[8];
  int64_t dead = -1;
  assert_int_equal(sqlite_queue_claim(q, T0 + 1000, 86400000, 2, rows, &dead), 2);
  assert_string_equal(rows[0].id, "r1");
  assert_string_equal(rows[1].id, "r2");
  stored_request_free(&rows[0]);
  stored_request_free(&rows[1]);
  assert_int_equal(state_of(q, "r3"), RQ_QUEUED);

  /* Due exactly at now counts; one millisecond later does not. */
  assert_int_equal(sqlite_queue_claim(q, T0 + 1000, 86400000, 8, rows, &dead), 1);
  assert_string_equal(rows[0].id, "r3");
  stored_request_free(&rows[0]);
  assert_int_equal(state_of(q, "later"), RQ_QUEUED);
  assert_int_equal(sqlite_queue_claim(q, T0 + 1000, 86400000, 8, rows, &dead), 0);
  assert_int_equal(sqlite_queue_claim(q, T0 + 1001, 86400000, 8, rows, &dead), 1);
  assert_string_equal(rows[0].id, "later");
  stored_request_free(&rows[0]);

  /* A limit of 0 claims nothing. */
  insert_ok(q, "r5", T0, T0, NULL);
  assert_int_equal(sqlite_queue_claim(q, T0 + 2000, 86400000, 0, rows, &dead), 0);
  assert_int_equal(state_of(q, "r5"), RQ_QUEUED);
}

static void claimed_rows_are_inflight_with_one_more_attempt_and_their_payload(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  stored_request_t in = new_row("r1", T0, T0, "k");
  in.attempts = 3;
  assert_int_equal(sqlite_queue_insert(q, &in, NULL), 0);

  stored_request_t rows[2];
  int64_t dead = -1;
  assert_int_equal(sqlite_queue_claim(q, T0 + 50, 86400000, 2, rows, &dead), 1);
  assert_string_equal(rows[0].id, "r1");
  assert_int_equal(rows[0].state, RQ_INFLIGHT);
  assert_int_equal(rows[0].attempts, 4);
  assert_int_equal(rows[0].updated_at, T0 + 50);
  assert_string_equal(rows[0].method, "POST");
  assert_string_equal(rows[0].target, "/api/v1/bot");
  assert_int_equal(rows[0].headers_len, sizeof(HEADERS) - 1);
  assert_memory_equal(rows[0].headers, HEADERS, sizeof(HEADERS) - 1);
  assert_int_equal(rows[0].body_len, sizeof(BODY) - 1);
  assert_memory_equal(rows[0].body, BODY, sizeof(BODY) - 1);
  stored_request_free(&rows[0]);

  /* The table agrees with what claim returned. */
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.state, RQ_INFLIGHT);
  assert_int_equal(r.attempts, 4);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.updated_at, T0 + 50);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_unfinished(q), 1); /* inflight is still unfinished */
}

static void a_second_claim_does_not_return_inflight_rows(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  insert_ok(q, "r2", T0, T0 + 1, NULL);
  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(sqlite_queue_claim(q, T0 + 1, 86400000, 1, rows, &dead), 1);
  assert_string_equal(rows[0].id, "r1");
  stored_request_free(&rows[0]);
  /* r1 is inflight now: the next claim skips it. */
  assert_int_equal(sqlite_queue_claim(q, T0 + 1, 86400000, 4, rows, &dead), 1);
  assert_string_equal(rows[0].id, "r2");
  stored_request_free(&rows[0]);
  assert_int_equal(sqlite_queue_claim(q, T0 + 100000, 86400000, 4, rows, &dead), 0);
  assert_int_equal(state_of(q, "r1"), RQ_INFLIGHT);
  assert_int_equal(state_of(q, "r2"), RQ_INFLIGHT);
}

/* ---- finish ---------------------------------------------------------- */

static void finish_completed_stores_the_response_status_headers_and_body(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  claim_one(q, T0, "r1");

  static const char rh[] = "Content-Type: application/json\r\nX-Id: 9\r\n";
  static const char rb[] = {'{', '}', '\0', 'z'};
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_COMPLETED;
  o.last_status = 201;
  o.response_status = 201;
  o.response_headers = rh;
  o.response_headers_len = sizeof(rh) - 1;
  o.response_body = rb;
  o.response_body_len = sizeof(rb);
  assert_int_equal(sqlite_queue_finish(q, "r1", T0 + 10, &o), 0);
  assert_int_equal(sqlite_queue_unfinished(q), 0);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", true, &r), 0);
  assert_int_equal(r.state, RQ_COMPLETED);
  assert_int_equal(r.response_status, 201);
  assert_int_equal(r.response_headers_len, sizeof(rh) - 1);
  assert_memory_equal(r.response_headers, rh, sizeof(rh) - 1);
  assert_int_equal(r.response_body_len, sizeof(rb));
  assert_memory_equal(r.response_body, rb, sizeof(rb));
  assert_int_equal(r.updated_at, T0 + 10);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.attempts, 1);
  stored_request_free(&r);

  /* Brief: the status, not the stored answer. */
  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.response_status, 201);
  assert_null(r.response_headers);
  assert_null(r.response_body);
  stored_request_free(&r);

  assert_int_equal(claim_count(q, T0 + 100000), 0);
}

static void finish_retry_requeues_at_next_attempt_with_last_status_and_error(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  claim_one(q, T0, "r1");

  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RETRY;
  o.next_attempt_at = T0 + 30000;
  o.last_status = 503;
  o.last_error = "upstream answered 503";
  assert_int_equal(sqlite_queue_finish(q, "r1", T0 + 5, &o), 0);
  assert_int_equal(sqlite_queue_unfinished(q), 1);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", true, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 30000);
  assert_int_equal(r.last_status, 503);
  assert_string_equal(r.last_error, "upstream answered 503");
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.response_status, 0);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_next_due(q), T0 + 30000);

  /* Not before its time; then again, with the attempt counted. */
  assert_int_equal(claim_count(q, T0 + 29999), 0);
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(sqlite_queue_claim(q, T0 + 30000, 86400000, 2, rows, &dead), 1);
  assert_int_equal(rows[0].attempts, 2);
  assert_int_equal(rows[0].last_status, 503);
  stored_request_free(&rows[0]);

  /* A network error: no status, an error. */
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RETRY;
  o.next_attempt_at = T0 + 60000;
  o.last_error = "connection refused";
  assert_int_equal(sqlite_queue_finish(q, "r1", T0 + 30001, &o), 0);
  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.last_status, 0);
  assert_string_equal(r.last_error, "connection refused");
  stored_request_free(&r);
}

static void finish_dead_marks_the_row_dead_and_unclaimable(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  claim_one(q, T0, "r1");
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_DEAD;
  o.next_attempt_at = T0 + 1000; /* ignored: a dead row is not due */
  o.last_status = 500;
  o.last_error = "out of attempts";
  assert_int_equal(sqlite_queue_finish(q, "r1", T0 + 1, &o), 0);
  assert_int_equal(sqlite_queue_unfinished(q), 0);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.state, RQ_DEAD);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.last_status, 500);
  assert_string_equal(r.last_error, "out of attempts");
  stored_request_free(&r);
  assert_int_equal(claim_count(q, T0 + 100000), 0);
  assert_int_equal(sqlite_queue_next_due(q), 0);
}

static void finish_release_requeues_without_counting_the_attempt_or_touching_last_status(
    void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  claim_one(q, T0, "r1"); /* attempt 1 */
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RETRY;
  o.next_attempt_at = T0 + 100;
  o.last_status = 502;
  o.last_error = "bad gateway";
  assert_int_equal(sqlite_queue_finish(q, "r1", T0 + 1, &o), 0);
  claim_one(q, T0 + 100, "r1"); /* attempt 2, then shutdown before sending */

  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_RELEASE;
  assert_int_equal(sqlite_queue_finish(q, "r1", T0 + 200, &o), 0);
  assert_int_equal(sqlite_queue_unfinished(q), 1);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.last_status, 502);
  assert_string_equal(r.last_error, "bad gateway");
  assert_true(r.next_attempt_at != 0 && r.next_attempt_at <= T0 + 200);
  stored_request_free(&r);

  /* Due at once, and claimable again. */
  stored_request_t rows[2];
  int64_t dead;
  assert_int_equal(sqlite_queue_claim(q, T0 + 200, 86400000, 2, rows, &dead), 1);
  assert_int_equal(rows[0].attempts, 2);
  stored_request_free(&rows[0]);
}

static void finish_on_a_row_that_is_not_inflight_is_enoent(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "queued", T0, T0 + 1000000, NULL);
  insert_ok(q, "done", T0, T0, NULL);
  claim_one(q, T0, "done");
  finish_ok(q, "done", T0 + 1, OUTCOME_COMPLETED);
  assert_int_equal(sqlite_queue_unfinished(q), 1);

  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  const outcome_t kinds[] = {OUTCOME_COMPLETED, OUTCOME_RETRY, OUTCOME_DEAD, OUTCOME_RELEASE};
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    o.kind = kinds[i];
    o.next_attempt_at = T0 + 5;
    o.response_status = kinds[i] == OUTCOME_COMPLETED ? 200 : 0;
    assert_int_equal(sqlite_queue_finish(q, "queued", T0 + 2, &o), -ENOENT);
    assert_int_equal(sqlite_queue_finish(q, "done", T0 + 2, &o), -ENOENT);
    assert_int_equal(sqlite_queue_finish(q, "missing", T0 + 2, &o), -ENOENT);
  }
  /* Nothing changed, the counter included. */
  assert_int_equal(state_of(q, "queued"), RQ_QUEUED);
  assert_int_equal(state_of(q, "done"), RQ_COMPLETED);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "done", true, &r), 0);
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.response_status, 200);
  stored_request_free(&r);
}

/* ---- max age --------------------------------------------------------- */

static void claim_marks_due_rows_older_than_max_age_dead_and_does_not_claim_them(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  const int64_t now = T0 + 100000, max_age = 60000;
  insert_ok(q, "old1", now - 90000, now - 10, NULL);
  insert_ok(q, "young", now - 1000, now - 10, NULL);
  insert_ok(q, "old2", now - 70000, now - 20, NULL);
  assert_int_equal(sqlite_queue_unfinished(q), 3);

  stored_request_t rows[8];
  int64_t dead = -1;
  assert_int_equal(sqlite_queue_claim(q, now, max_age, 8, rows, &dead), 1);
  assert_int_equal(dead, 2);
  assert_string_equal(rows[0].id, "young");
  stored_request_free(&rows[0]);
  assert_int_equal(sqlite_queue_unfinished(q), 1);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "old1", false, &r), 0);
  assert_int_equal(r.state, RQ_DEAD);
  assert_int_equal(r.attempts, 0);
  assert_int_equal(r.next_attempt_at, 0);
  assert_int_equal(r.updated_at, now);
  assert_non_null(r.last_error);
  assert_non_null(strstr(r.last_error, "expired"));
  stored_request_free(&r);
  assert_int_equal(state_of(q, "old2"), RQ_DEAD);

  /* Nothing left to expire the second time. */
  assert_int_equal(sqlite_queue_claim(q, now + 1, max_age, 8, rows, &dead), 0);
  assert_int_equal(dead, 0);
}

/* ---- cancel and retry_now -------------------------------------------- */

static void cancel_moves_a_queued_row_to_cancelled(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_cancel(q, "r1", T0 + 5, &r), 0);
  assert_int_equal(r.state, RQ_CANCELLED);
  assert_string_equal(r.id, "r1");
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_unfinished(q), 0);

  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.state, RQ_CANCELLED);
  assert_int_equal(r.updated_at, T0 + 5);
  assert_int_equal(r.next_attempt_at, 0);
  stored_request_free(&r);
  assert_int_equal(claim_count(q, T0 + 100000), 0);

  /* Twice is not allowed; an unknown id is ENOENT. */
  assert_int_equal(sqlite_queue_cancel(q, "r1", T0 + 6, &r), -EPERM);
  stored_request_free(&r);
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_cancel(q, "nope", T0 + 6, &r), -ENOENT);
  stored_request_free(&r);
}

static void cancel_of_an_inflight_or_completed_row_is_eperm_and_changes_nothing(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "inflight", T0, T0, NULL);
  claim_one(q, T0, "inflight");
  insert_ok(q, "done", T0, T0 + 1, NULL);
  claim_one(q, T0 + 1, "done");
  finish_ok(q, "done", T0 + 2, OUTCOME_COMPLETED);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_cancel(q, "inflight", T0 + 3, &r), -EPERM);
  assert_int_equal(r.state, RQ_INFLIGHT); /* out tells the state it is in */
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_cancel(q, "done", T0 + 3, &r), -EPERM);
  assert_int_equal(r.state, RQ_COMPLETED);
  stored_request_free(&r);

  assert_int_equal(state_of(q, "inflight"), RQ_INFLIGHT);
  assert_int_equal(state_of(q, "done"), RQ_COMPLETED);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
}

static void retry_now_requeues_a_dead_row_due_now(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  claim_one(q, T0, "r1");
  finish_ok(q, "r1", T0 + 1, OUTCOME_DEAD);
  assert_int_equal(sqlite_queue_unfinished(q), 0);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_retry_now(q, "r1", T0 + 500, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
  assert_int_equal(sqlite_queue_next_due(q), T0 + 500);

  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.next_attempt_at, T0 + 500);
  stored_request_free(&r);
  assert_int_equal(claim_count(q, T0 + 499), 0);
  claim_one(q, T0 + 500, "r1");

  /* A queued row not yet due is brought forward. */
  insert_ok(q, "r2", T0, T0 + 1000000, NULL);
  assert_int_equal(sqlite_queue_retry_now(q, "r2", T0 + 600, &r), 0);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_unfinished(q), 2);
  claim_one(q, T0 + 600, "r2");
}

static void retry_now_of_a_completed_inflight_or_cancelled_row_is_eperm(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "done", T0, T0, NULL);
  claim_one(q, T0, "done");
  finish_ok(q, "done", T0 + 1, OUTCOME_COMPLETED);
  insert_ok(q, "inflight", T0, T0 + 2, NULL);
  claim_one(q, T0 + 2, "inflight");
  insert_ok(q, "cancelled", T0, T0 + 1000000, NULL);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_cancel(q, "cancelled", T0 + 3, &r), 0);
  stored_request_free(&r);

  assert_int_equal(sqlite_queue_retry_now(q, "done", T0 + 4, &r), -EPERM);
  assert_int_equal(r.state, RQ_COMPLETED);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_retry_now(q, "inflight", T0 + 4, &r), -EPERM);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_retry_now(q, "cancelled", T0 + 4, &r), -EPERM);
  stored_request_free(&r);
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_retry_now(q, "nope", T0 + 4, &r), -ENOENT);
  stored_request_free(&r);

  assert_int_equal(state_of(q, "done"), RQ_COMPLETED);
  assert_int_equal(state_of(q, "inflight"), RQ_INFLIGHT);
  assert_int_equal(state_of(q, "cancelled"), RQ_CANCELLED);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
}

/* ---- idempotency ----------------------------------------------------- */

static void a_second_unfinished_insert_with_the_same_key_is_eexist_naming_the_first(
    void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "first", T0, T0, "idem-1");

  stored_request_t dup = new_row("second", T0 + 1, T0 + 1, "idem-1");
  stored_request_t existing;
  memset(&existing, 0, sizeof(existing));
  assert_int_equal(sqlite_queue_insert(q, &dup, &existing), -EEXIST);
  assert_string_equal(existing.id, "first");
  assert_string_equal(existing.idempotency_key, "idem-1");
  stored_request_free(&existing);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "second", false, &r), -ENOENT);

  assert_int_equal(sqlite_queue_find_idempotent(q, "idem-1", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, "first");
  stored_request_free(&r);

  /* Still a conflict while the first is inflight. */
  claim_one(q, T0, "first");
  memset(&existing, 0, sizeof(existing));
  assert_int_equal(sqlite_queue_insert(q, &dup, &existing), -EEXIST);
  assert_string_equal(existing.id, "first");
  assert_int_equal(existing.state, RQ_INFLIGHT);
  stored_request_free(&existing);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
}

static void after_the_first_completes_the_same_key_can_be_inserted_again(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "first", T0, T0, "idem-1");
  claim_one(q, T0, "first");
  finish_ok(q, "first", T0 + 1, OUTCOME_COMPLETED);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_find_idempotent(q, "idem-1", "POST", "/api/v1/bot", &r), -ENOENT);
  insert_ok(q, "second", T0 + 2, T0 + 2, "idem-1");
  assert_int_equal(sqlite_queue_unfinished(q), 1);
  assert_int_equal(sqlite_queue_find_idempotent(q, "idem-1", "POST", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, "second");
  stored_request_free(&r);

  /* Likewise after dead and cancelled. */
  claim_one(q, T0 + 2, "second");
  finish_ok(q, "second", T0 + 3, OUTCOME_DEAD);
  insert_ok(q, "third", T0 + 4, T0 + 1000000, "idem-1");
  assert_int_equal(sqlite_queue_cancel(q, "third", T0 + 5, &r), 0);
  stored_request_free(&r);
  insert_ok(q, "fourth", T0 + 6, T0 + 6, "idem-1");
  assert_int_equal(sqlite_queue_unfinished(q), 1);
}

static void a_different_method_or_target_is_not_an_idempotency_conflict(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "first", T0, T0, "idem-1");
  stored_request_t other = new_row("put", T0, T0, "idem-1");
  other.method = "PUT";
  assert_int_equal(sqlite_queue_insert(q, &other, NULL), 0);
  other = new_row("elsewhere", T0, T0, "idem-1");
  other.target = "/api/v1/bot/other";
  assert_int_equal(sqlite_queue_insert(q, &other, NULL), 0);
  other = new_row("other-key", T0, T0, "idem-2");
  assert_int_equal(sqlite_queue_insert(q, &other, NULL), 0);
  /* Rows without a key never conflict. */
  insert_ok(q, "nokey1", T0, T0, NULL);
  insert_ok(q, "nokey2", T0, T0, NULL);
  assert_int_equal(sqlite_queue_unfinished(q), 6);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_find_idempotent(q, "idem-1", "PUT", "/api/v1/bot", &r), 0);
  assert_string_equal(r.id, "put");
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_find_idempotent(q, "idem-1", "POST", "/api/v1/bot/other", &r), 0);
  assert_string_equal(r.id, "elsewhere");
  stored_request_free(&r);
}

/* ---- --max-queue ----------------------------------------------------- */

static void max_queue_refuses_the_next_unfinished_insert_with_edquot(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, 2);
  insert_ok(q, "r1", T0, T0, NULL);
  insert_ok(q, "r2", T0, T0 + 1, NULL);
  assert_int_equal(sqlite_queue_unfinished(q), 2);

  stored_request_t r3 = new_row("r3", T0, T0 + 1000000, NULL);
  assert_int_equal(sqlite_queue_insert(q, &r3, NULL), -EDQUOT);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r3", false, &r), -ENOENT);
  assert_int_equal(sqlite_queue_unfinished(q), 2);

  /* Inflight rows still count. */
  claim_one(q, T0, "r1");
  assert_int_equal(sqlite_queue_unfinished(q), 2);
  assert_int_equal(sqlite_queue_insert(q, &r3, NULL), -EDQUOT);

  /* A finished row frees its place. */
  finish_ok(q, "r1", T0 + 1, OUTCOME_COMPLETED);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
  assert_int_equal(sqlite_queue_insert(q, &r3, NULL), 0);
  assert_int_equal(sqlite_queue_unfinished(q), 2);

  /* A retry keeps its place; a cancel frees it. */
  claim_one(q, T0 + 1, "r2");
  finish_ok(q, "r2", T0 + 2, OUTCOME_RETRY);
  assert_int_equal(sqlite_queue_unfinished(q), 2);
  assert_int_equal(sqlite_queue_cancel(q, "r3", T0 + 3, &r), 0);
  stored_request_free(&r);
  assert_int_equal(sqlite_queue_unfinished(q), 1);

  /* The count survives a reopen (it is counted from the table). */
  reopen(fx, 2);
  assert_int_equal(sqlite_queue_unfinished(fx->q), 1);
  insert_ok(fx->q, "r4", T0, T0, NULL);
  stored_request_t r5 = new_row("r5", T0, T0, NULL);
  assert_int_equal(sqlite_queue_insert(fx->q, &r5, NULL), -EDQUOT);
}

static void recount_restores_the_unfinished_count_after_a_rollback(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "kept", T0, T0, NULL);
  assert_int_equal(sqlite_queue_begin(q), 0);
  insert_ok(q, "rolled-back", T0, T0, NULL);
  sqlite_queue_rollback(q);
  sqlite_queue_recount(q);
  assert_int_equal(sqlite_queue_unfinished(q), 1);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "rolled-back", false, &r), -ENOENT);

  /* A committed batch stays. */
  assert_int_equal(sqlite_queue_begin(q), 0);
  insert_ok(q, "batch1", T0, T0, NULL);
  insert_ok(q, "batch2", T0, T0, NULL);
  assert_int_equal(sqlite_queue_commit(q), 0);
  reopen(fx, BIG_QUEUE);
  assert_int_equal(sqlite_queue_unfinished(fx->q), 3);
}

/* ---- crash recovery -------------------------------------------------- */

static void rows_left_inflight_at_close_are_queued_again_on_reopen(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);
  insert_ok(q, "r2", T0, T0 + 1000000, NULL);
  claim_one(q, T0 + 10, "r1");
  reopen(fx, BIG_QUEUE);
  q = fx->q;
  assert_int_equal(sqlite_queue_recovered(q), 1);
  assert_int_equal(sqlite_queue_unfinished(q), 2);

  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "r1", false, &r), 0);
  assert_int_equal(r.state, RQ_QUEUED);
  assert_int_equal(r.attempts, 1); /* maybe sent: the attempt counts */
  assert_true(r.next_attempt_at != 0 && r.next_attempt_at <= T0 + 10);
  stored_request_free(&r);

  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(sqlite_queue_claim(q, T0 + 10, 86400000, 4, rows, &dead), 1);
  assert_string_equal(rows[0].id, "r1");
  assert_int_equal(rows[0].attempts, 2);
  stored_request_free(&rows[0]);

  /* Nothing to recover after a clean close with nothing inflight. */
  finish_ok(q, "r1", T0 + 11, OUTCOME_COMPLETED);
  reopen(fx, BIG_QUEUE);
  assert_int_equal(sqlite_queue_recovered(fx->q), 0);
}

static void rows_inflight_when_the_process_dies_are_queued_again_on_reopen(void **state) {
  fx_t *fx = *state;
  /* A real crash: the child claims and exits without closing, so the WAL
   * is never checkpointed and the lock dies with the process. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    sqlite_queue_t *q = NULL;
    char err[256];
    if (sqlite_queue_open(&q, fx->path, BIG_QUEUE, err, sizeof(err)) != 0)
      _exit(1);
    stored_request_t r = new_row("r1", T0, T0, "k");
    if (sqlite_queue_insert(q, &r, NULL) != 0)
      _exit(2);
    stored_request_t rows[2];
    int64_t dead;
    if (sqlite_queue_claim(q, T0, 86400000, 2, rows, &dead) != 1)
      _exit(3);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  assert_int_equal(sqlite_queue_recovered(q), 1);
  assert_int_equal(state_of(q, "r1"), RQ_QUEUED);
  claim_one(q, T0 + 1, "r1");
}

/* ---- purge and checkpoint -------------------------------------------- */

static void purge_deletes_finished_rows_older_than_the_cutoff_and_keeps_the_rest(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "completed-old", T0, T0, NULL);
  insert_ok(q, "dead-old", T0, T0, NULL);
  insert_ok(q, "cancelled-old", T0, T0 + 1000000, NULL);
  insert_ok(q, "queued-old", T0, T0 + 1000000, NULL);
  insert_ok(q, "inflight-old", T0, T0 + 1, NULL);
  insert_ok(q, "completed-new", T0, T0 + 2, NULL);
  stored_request_t rows[4];
  int64_t dead;
  assert_int_equal(sqlite_queue_claim(q, T0, 86400000, 4, rows, &dead), 2);
  stored_request_free(&rows[0]);
  stored_request_free(&rows[1]);
  finish_ok(q, "completed-old", T0 + 10, OUTCOME_COMPLETED);
  finish_ok(q, "dead-old", T0 + 10, OUTCOME_DEAD);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_cancel(q, "cancelled-old", T0 + 10, &r), 0);
  stored_request_free(&r);
  claim_one(q, T0 + 1, "inflight-old");
  claim_one(q, T0 + 2, "completed-new");
  finish_ok(q, "completed-new", T0 + 5000, OUTCOME_COMPLETED);

  assert_int_equal(sqlite_queue_purge(q, T0 + 1000, 100), 3);
  const char *gone[] = {"completed-old", "dead-old", "cancelled-old"};
  for (int i = 0; i < 3; i++) {
    memset(&r, 0, sizeof(r));
    assert_int_equal(sqlite_queue_get(q, gone[i], true, &r), -ENOENT);
  }
  assert_int_equal(state_of(q, "queued-old"), RQ_QUEUED);
  assert_int_equal(state_of(q, "inflight-old"), RQ_INFLIGHT);
  assert_int_equal(state_of(q, "completed-new"), RQ_COMPLETED);
  assert_int_equal(sqlite_queue_unfinished(q), 2);

  /* The cutoff is exclusive: updated_at == cutoff stays. */
  assert_int_equal(sqlite_queue_purge(q, T0 + 5000, 100), 0);
  assert_int_equal(sqlite_queue_purge(q, T0 + 5001, 100), 1);
  assert_int_equal(sqlite_queue_checkpoint(q), 0);
}

static void purged_secrets_do_not_linger_in_the_database_or_wal_after_checkpoint(
    void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  static const char secret_headers[] = "Authorization: Token SECRET-7f3a9c-TOKEN\r\n";
  stored_request_t in = new_row("r1", T0, T0, NULL);
  in.headers = secret_headers;
  in.headers_len = sizeof(secret_headers) - 1;
  in.body = "BODY-SECRET-42e1";
  in.body_len = strlen(in.body);
  assert_int_equal(sqlite_queue_insert(q, &in, NULL), 0);
  insert_ok(q, "r2", T0, T0 + 1000000, NULL); /* a row that stays */
  claim_one(q, T0, "r1");
  finish_ok(q, "r1", T0 + 1, OUTCOME_COMPLETED);
  assert_int_equal(sqlite_queue_checkpoint(q), 0);

  assert_int_equal(sqlite_queue_purge(q, T0 + 2, 100), 1);
  assert_int_equal(sqlite_queue_checkpoint(q), 0);

  char wal[160];
  snprintf(wal, sizeof(wal), "%s-wal", fx->path);
  struct stat st;
  if (stat(wal, &st) == 0)
    assert_int_equal(st.st_size, 0); /* TRUNCATE */
  size_t len;
  char *bytes = fx->buf[0] = read_all(fx->path, &len);
  assert_false(contains(bytes, len, "SECRET-7f3a9c"));
  assert_false(contains(bytes, len, "BODY-SECRET-42e1"));
  assert_int_equal(state_of(q, "r2"), RQ_QUEUED);
}

/* A completed row with big payloads: headers, body and answer each carry
 * marker (so a test can look for their bytes in the file). */
static void insert_completed_big(sqlite_queue_t *q, const char *id, int64_t done_at,
                                 const char *marker, size_t headers_len, size_t body_len,
                                 size_t answer_len) {
  size_t ml = strlen(marker);
  char *h = malloc(headers_len), *b = malloc(body_len), *a = malloc(answer_len);
  assert_non_null(h);
  assert_non_null(b);
  assert_non_null(a);
  /* Varied bytes, with the marker every 4 KiB: a marker in every page. */
  for (size_t i = 0; i < headers_len; i++)
    h[i] = (char)('a' + (i * 7) % 26);
  for (size_t i = 0; i < body_len; i++)
    b[i] = (char)('A' + (i * 11) % 26);
  for (size_t i = 0; i < answer_len; i++)
    a[i] = (char)('0' + (i * 13) % 10);
  for (size_t i = 0; i + ml <= headers_len; i += 4096)
    memcpy(h + i, marker, ml);
  for (size_t i = 0; i + ml <= body_len; i += 4096)
    memcpy(b + i, marker, ml);
  for (size_t i = 0; i + ml <= answer_len; i += 4096)
    memcpy(a + i, marker, ml);
  stored_request_t r = new_row(id, T0, T0, NULL);
  r.headers = h;
  r.headers_len = headers_len;
  r.body = b;
  r.body_len = body_len;
  assert_int_equal(sqlite_queue_insert(q, &r, NULL), 0);
  claim_one(q, T0, id);
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_COMPLETED;
  o.response_status = 200;
  o.response_headers = "Content-Type: application/octet-stream\r\n";
  o.response_headers_len = strlen(o.response_headers);
  o.response_body = a;
  o.response_body_len = answer_len;
  assert_int_equal(sqlite_queue_finish(q, id, done_at, &o), 0);
  free(h);
  free(b);
  free(a);
}

static void purge_deletes_at_most_limit_rows_oldest_finished_first(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  /* Finished at T0+10, +9, ... +1: the oldest finish goes first. */
  for (int i = 0; i < 10; i++) {
    char id[16];
    snprintf(id, sizeof(id), "r%d", i);
    insert_ok(q, id, T0, T0, NULL);
    claim_one(q, T0, id);
    finish_ok(q, id, T0 + 10 - i, OUTCOME_COMPLETED);
  }
  assert_int_equal(sqlite_queue_purge(q, T0 + 100, 3), 3);
  stored_request_t r;
  for (int i = 0; i < 10; i++) {
    char id[16];
    snprintf(id, sizeof(id), "r%d", i);
    memset(&r, 0, sizeof(r));
    int rc = sqlite_queue_get(q, id, false, &r);
    assert_int_equal(rc, i >= 7 ? -ENOENT : 0); /* r9, r8, r7 finished first */
    stored_request_free(&r);
  }
  assert_int_equal(sqlite_queue_purge(q, T0 + 100, 4), 4);
  assert_int_equal(sqlite_queue_purge(q, T0 + 100, 4), 3);
  assert_int_equal(sqlite_queue_purge(q, T0 + 100, 4), 0);
  queue_counts_t c;
  assert_int_equal(sqlite_queue_counts(q, &c), 0);
  assert_int_equal(c.count[RQ_COMPLETED], 0);
}

static void vacuum_gives_the_pages_of_purged_answers_back_in_slices(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  sqlite3 *db = sqlite_queue_handle(q);
  for (int i = 0; i < 40; i++) {
    char id[16];
    snprintf(id, sizeof(id), "big%d", i);
    /* 4 rows finish late and stay; 36 are purged */
    insert_completed_big(q, id, i < 36 ? T0 + 1 : T0 + 1000, "m", 100, 100, 128 * 1024);
  }
  int64_t pages_full = sql_int(db, "PRAGMA page_count");
  assert_int_equal(sqlite_queue_purge(q, T0 + 10, 1000), 36);
  int64_t free_after_purge = sqlite_queue_free_pages(q);
  assert_true(free_after_purge >= 36 * 32); /* 128 KiB of 4 KiB pages each */
  assert_int_equal(sql_int(db, "PRAGMA page_count"), pages_full); /* nothing given back yet */

  int slices = 0;
  int64_t freed_total = 0;
  for (;;) {
    int64_t freed = sqlite_queue_vacuum(q, 64);
    assert_true(freed >= 0);
    assert_true(freed <= 64);
    if (freed == 0)
      break;
    freed_total += freed;
    slices++;
    assert_true(slices < 10000);
  }
  assert_int_equal(sqlite_queue_free_pages(q), 0);
  assert_int_equal(freed_total, free_after_purge);
  assert_true(slices >= free_after_purge / 64);
  /* The file lost those pages, and the pointer-map pages that mapped them. */
  int64_t pages_now = sql_int(db, "PRAGMA page_count");
  assert_true(pages_now <= pages_full - free_after_purge);
  assert_true(pages_now >= pages_full - free_after_purge - 2);
  assert_int_equal(sqlite_queue_checkpoint(q), 0);

  /* The file tracks its live data: 4 answers of 128 KiB, and little else. */
  struct stat st;
  assert_int_equal(stat(fx->path, &st), 0);
  int64_t live = 4 * 128 * 1024;
  assert_true(st.st_size <= live + 64 * 1024);
  for (int i = 36; i < 40; i++) {
    char id[16];
    snprintf(id, sizeof(id), "big%d", i);
    stored_request_t r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(sqlite_queue_get(q, id, true, &r), 0);
    assert_int_equal(r.response_body_len, 128 * 1024);
    stored_request_free(&r);
  }
}

/* A completed row whose request carries big headers and body, and whose
 * answer is big: each spans overflow pages. */
static void insert_completed_with_secrets(sqlite_queue_t *q, const char *id, int64_t done_at,
                                          const char *cred, const char *answer_marker) {
  size_t hl = 20 * 1024, bl = 100 * 1024, al = 300 * 1024;
  char *h = malloc(hl), *b = malloc(bl), *a = malloc(al);
  assert_non_null(h);
  assert_non_null(b);
  assert_non_null(a);
  for (size_t i = 0; i < hl; i++)
    h[i] = (char)('a' + (i * 7) % 26);
  for (size_t i = 0; i < bl; i++)
    b[i] = (char)('A' + (i * 11) % 26);
  for (size_t i = 0; i < al; i++)
    a[i] = (char)('0' + (i * 13) % 10);
  /* In every page's worth of the request, and of the answer. */
  for (size_t i = 0; i + strlen(cred) <= hl; i += 1000)
    memcpy(h + i, cred, strlen(cred));
  for (size_t i = 0; i + strlen(cred) <= bl; i += 1000)
    memcpy(b + i, cred, strlen(cred));
  for (size_t i = 0; i + strlen(answer_marker) <= al; i += 1000)
    memcpy(a + i, answer_marker, strlen(answer_marker));
  stored_request_t r = new_row(id, T0, T0, NULL);
  r.headers = h;
  r.headers_len = hl;
  r.body = b;
  r.body_len = bl;
  assert_int_equal(sqlite_queue_insert(q, &r, NULL), 0);
  claim_one(q, T0, id);
  attempt_outcome_t o;
  memset(&o, 0, sizeof(o));
  o.kind = OUTCOME_COMPLETED;
  o.response_status = 200;
  char cookie[96];
  snprintf(cookie, sizeof(cookie), "Set-Cookie: session=COOKIE-%s\r\n", cred);
  o.response_headers = cookie;
  o.response_headers_len = strlen(cookie);
  o.response_body = a;
  o.response_body_len = al;
  assert_int_equal(sqlite_queue_finish(q, id, done_at, &o), 0);
  free(h);
  free(b);
  free(a);
}

static void purged_credentials_leave_the_file_at_once_and_answers_once_given_back(
    void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_completed_with_secrets(q, "gone", T0 + 1, "TOKEN-SECRET-7f3a9c", "ANSWER-BYTES-81b0");
  insert_completed_with_secrets(q, "stays", T0 + 1000, "TOKEN-KEPT-42e1", "ANSWER-KEPT-3c9d");
  assert_int_equal(sqlite_queue_checkpoint(q), 0);
  size_t len;
  char *bytes = fx->buf[0] = read_all(fx->path, &len);
  assert_true(contains(bytes, len, "TOKEN-SECRET-7f3a9c")); /* the test can see them */
  assert_true(contains(bytes, len, "COOKIE-TOKEN-SECRET-7f3a9c"));
  assert_true(contains(bytes, len, "ANSWER-BYTES-81b0"));
  free(bytes);
  fx->buf[0] = NULL;

  /* The purge zeroes the request's row, overflow pages included: its
   * credentials leave the file with the checkpoint. */
  assert_int_equal(sqlite_queue_purge(q, T0 + 2, 100), 1);
  assert_int_equal(sqlite_queue_checkpoint(q), 0);
  char wal[160];
  snprintf(wal, sizeof(wal), "%s-wal", fx->path);
  struct stat st;
  if (stat(wal, &st) == 0)
    assert_int_equal(st.st_size, 0); /* TRUNCATE */
  bytes = fx->buf[0] = read_all(fx->path, &len);
  assert_false(contains(bytes, len, "TOKEN-SECRET-7f3a9c"));
  assert_false(contains(bytes, len, "COOKIE-TOKEN-SECRET"));
  assert_true(contains(bytes, len, "TOKEN-KEPT-42e1"));
  free(bytes);
  fx->buf[0] = NULL;

  /* The answer's pages were freed unread: its bytes go once they are
   * given back (or reused). */
  assert_true(sqlite_queue_free_pages(q) >= 300 * 1024 / 4096);
  while (sqlite_queue_vacuum(q, 64) > 0) {
  }
  assert_int_equal(sqlite_queue_free_pages(q), 0);
  assert_int_equal(sqlite_queue_checkpoint(q), 0);
  bytes = fx->buf[0] = read_all(fx->path, &len);
  assert_false(contains(bytes, len, "ANSWER-BYTES-81b0"));
  assert_true(contains(bytes, len, "ANSWER-KEPT-3c9d"));
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "stays", true, &r), 0);
  assert_int_equal(r.response_body_len, 300 * 1024);
  assert_int_equal(r.body_len, 100 * 1024);
  stored_request_free(&r);
}

/* ---- counts and list ------------------------------------------------- */

static void counts_report_each_state_the_oldest_queued_and_the_next_due(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  queue_counts_t c;
  assert_int_equal(sqlite_queue_counts(q, &c), 0);
  for (int i = 0; i < RQ_NSTATES; i++)
    assert_int_equal(c.count[i], 0);
  assert_int_equal(c.oldest_queued_at, 0);
  assert_int_equal(c.next_attempt_at, 0);
  assert_int_equal(sqlite_queue_next_due(q), 0);

  insert_ok(q, "inflight", T0 - 100, T0, NULL);
  insert_ok(q, "completed", T0 - 200, T0 + 1, NULL);
  insert_ok(q, "dead", T0 - 300, T0 + 2, NULL);
  claim_one(q, T0, "inflight");
  claim_one(q, T0 + 1, "completed");
  finish_ok(q, "completed", T0 + 3, OUTCOME_COMPLETED);
  claim_one(q, T0 + 2, "dead");
  finish_ok(q, "dead", T0 + 3, OUTCOME_DEAD);
  /* Rows are stored in creation order (created_at is the insert time). */
  insert_ok(q, "queued-c", T0 + 10, T0 + 8000, NULL);
  insert_ok(q, "queued-b", T0 + 20, T0 + 7000, NULL);
  insert_ok(q, "queued-a", T0 + 50, T0 + 9000, NULL);
  insert_ok(q, "cancelled", T0 - 400, T0 + 100, NULL);
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_cancel(q, "cancelled", T0 + 4, &r), 0);
  stored_request_free(&r);

  assert_int_equal(sqlite_queue_counts(q, &c), 0);
  assert_int_equal(c.count[RQ_QUEUED], 3);
  assert_int_equal(c.count[RQ_INFLIGHT], 1);
  assert_int_equal(c.count[RQ_COMPLETED], 1);
  assert_int_equal(c.count[RQ_DEAD], 1);
  assert_int_equal(c.count[RQ_CANCELLED], 1);
  /* Among queued rows only: older finished rows do not count. */
  assert_int_equal(c.oldest_queued_at, T0 + 10);
  assert_int_equal(c.next_attempt_at, T0 + 7000);
  assert_int_equal(sqlite_queue_next_due(q), T0 + 7000);
}

static void list_by_state_and_all_pages_every_row_exactly_once_in_insertion_order(
    void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  /* Ids in reverse alphabetical order: only seq explains the order. */
  const char *ids[] = {"r9", "r8", "r7", "r6", "r5", "r4", "r3"};
  const int64_t due[] = {9000, 8000, 7000, 6000, 2000, 4000, 1000};
  const size_t n = sizeof(ids) / sizeof(ids[0]);
  for (size_t i = 0; i < n; i++)
    insert_ok(q, ids[i], T0, T0 + due[i], NULL);
  /* r3 (due first) goes inflight, then completed; r5 (next) inflight. */
  claim_one(q, T0 + 1000, "r3");
  finish_ok(q, "r3", T0 + 1001, OUTCOME_COMPLETED);
  claim_one(q, T0 + 2000, "r5");

  for (size_t limit = 1; limit <= n + 1; limit++) {
    /* All states. */
    size_t seen = 0;
    int64_t after = 0, last = -1;
    for (int pages = 0; pages < 20; pages++) {
      stored_request_t rows[8];
      int got = sqlite_queue_list(q, -1, after, limit, rows, &last);
      assert_true(got >= 0 && (size_t)got <= limit);
      if (got == 0) {
        assert_int_equal(last, after);
        break;
      }
      assert_true(last > after);
      for (int i = 0; i < got; i++) {
        assert_true(seen < n);
        assert_string_equal(rows[i].id, ids[seen]);
        assert_null(rows[i].headers); /* listings are brief */
        assert_null(rows[i].body);
        seen++;
        stored_request_free(&rows[i]);
      }
      after = last;
    }
    assert_int_equal(seen, n);

    /* Queued only: r9 r8 r7 r6 r4. */
    const char *queued[] = {"r9", "r8", "r7", "r6", "r4"};
    seen = 0;
    after = 0;
    for (int pages = 0; pages < 20; pages++) {
      stored_request_t rows[8];
      int got = sqlite_queue_list(q, RQ_QUEUED, after, limit, rows, &last);
      if (got == 0)
        break;
      for (int i = 0; i < got; i++) {
        assert_true(seen < 5);
        assert_string_equal(rows[i].id, queued[seen]);
        assert_int_equal(rows[i].state, RQ_QUEUED);
        seen++;
        stored_request_free(&rows[i]);
      }
      after = last;
    }
    assert_int_equal(seen, 5);
  }

  stored_request_t rows[8];
  int64_t last = -1;
  assert_int_equal(sqlite_queue_list(q, RQ_INFLIGHT, 0, 8, rows, &last), 1);
  assert_string_equal(rows[0].id, "r5");
  stored_request_free(&rows[0]);
  assert_int_equal(sqlite_queue_list(q, RQ_COMPLETED, 0, 8, rows, &last), 1);
  assert_string_equal(rows[0].id, "r3");
  assert_int_equal(rows[0].response_status, 200);
  stored_request_free(&rows[0]);
  assert_int_equal(sqlite_queue_list(q, RQ_DEAD, 0, 8, rows, &last), 0);
  assert_int_equal(last, 0);
}

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

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(open_creates_the_database_file_with_mode_0600),
      T(reopening_a_retryd_database_keeps_its_rows),
      T(a_file_of_random_bytes_is_refused_with_einval_and_left_byte_identical),
      T(another_applications_database_is_refused_with_einval),
      T(another_applications_database_is_left_byte_identical_when_refused),
      T(a_database_with_a_newer_schema_version_is_refused),
      T(a_second_open_of_the_same_file_fails_with_ebusy_until_the_first_closes),
      T(a_refused_second_open_does_not_drop_the_first_connections_lock),
      T(a_fresh_database_gets_the_schema_version_application_id_and_wal),
      T(an_empty_foreign_file_with_application_id_0_and_no_tables_is_adopted),
      T(a_fresh_database_can_give_free_pages_back_and_keeps_answers_apart),
      T(a_version_1_file_without_auto_vacuum_is_converted_keeping_its_rows),
      T(insert_then_get_round_trips_every_field_and_payload_bytes_exactly),
      T(a_request_without_body_or_key_reads_back_as_none),
      T(get_of_an_unknown_id_is_enoent),
      T(claim_takes_the_earliest_due_first_then_insertion_order),
      T(claim_skips_rows_not_yet_due_and_respects_the_limit),
      T(claimed_rows_are_inflight_with_one_more_attempt_and_their_payload),
      T(a_second_claim_does_not_return_inflight_rows),
      T(finish_completed_stores_the_response_status_headers_and_body),
      T(finish_retry_requeues_at_next_attempt_with_last_status_and_error),
      T(finish_dead_marks_the_row_dead_and_unclaimable),
      T(finish_release_requeues_without_counting_the_attempt_or_touching_last_status),
      T(finish_on_a_row_that_is_not_inflight_is_enoent),
      T(claim_marks_due_rows_older_than_max_age_dead_and_does_not_claim_them),
      T(cancel_moves_a_queued_row_to_cancelled),
      T(cancel_of_an_inflight_or_completed_row_is_eperm_and_changes_nothing),
      T(retry_now_requeues_a_dead_row_due_now),
      T(retry_now_of_a_completed_inflight_or_cancelled_row_is_eperm),
      T(a_second_unfinished_insert_with_the_same_key_is_eexist_naming_the_first),
      T(after_the_first_completes_the_same_key_can_be_inserted_again),
      T(a_different_method_or_target_is_not_an_idempotency_conflict),
      T(max_queue_refuses_the_next_unfinished_insert_with_edquot),
      T(recount_restores_the_unfinished_count_after_a_rollback),
      T(rows_left_inflight_at_close_are_queued_again_on_reopen),
      T(rows_inflight_when_the_process_dies_are_queued_again_on_reopen),
      T(purge_deletes_finished_rows_older_than_the_cutoff_and_keeps_the_rest),
      T(purged_secrets_do_not_linger_in_the_database_or_wal_after_checkpoint),
      T(purge_deletes_at_most_limit_rows_oldest_finished_first),
      T(vacuum_gives_the_pages_of_purged_answers_back_in_slices),
      T(purged_credentials_leave_the_file_at_once_and_answers_once_given_back),
      T(counts_report_each_state_the_oldest_queued_and_the_next_due),
      T(list_by_state_and_all_pages_every_row_exactly_once_in_insertion_order),
      T(state_names_and_parse_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
