/* sqlite_queue: what only the SQLite backend has (storage/sqlite/): open
 * and the refusal of files that are not retryd's, the lock that keeps a
 * second retryd out, the file's mode, application_id, user_version and the
 * migration from schema 1, the WAL and its checkpoint, secure_delete, free
 * pages and vacuum, crash recovery at open (rows left inflight), and the
 * in-memory unfinished count after a rollback. What every backend does
 * (insert and get, claim order, outcomes, expiry, cancel and retry,
 * idempotency, --max-queue, purge, counts and listing) is tested through
 * storage/storage_backend.h by tests/unit/test_storage_backend.c, on SQLite
 * too. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
#include "test_support.h"

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
  if (fx == NULL || test_dir_make(fx->dir, sizeof(fx->dir), "queue-db") != 0) {
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
  test_dir_remove(fx->dir);
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

/* Claims exactly one row due at now and expects it to be id. */
static void claim_one(sqlite_queue_t *q, int64_t now, const char *id) {
  stored_request_t rows[4];
  int64_t dead = -1;
  int n = sqlite_queue_claim(q, now, NULL, 100ll * 365 * 86400000, 4, rows, &dead);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].id, id);
  stored_request_free(&rows[0]);
}

static void finish_ok(sqlite_queue_t *q, const char *id, int64_t now, outcome_t kind) {
  attempt_outcome_t o = simple_outcome(kind, now);
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

/* The file as another application sees it. */
static sqlite3 *open_readonly(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  return db;
}

static void assert_journal_mode(sqlite3 *db, const char *mode) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), mode);
  sqlite3_finalize(st);
}

/* Opening the file must fail with rc, hand back no queue and say why in
 * fx->err. */
static void open_refused(fx_t *fx, int rc) {
  sqlite_queue_t *q = (sqlite_queue_t *)0x1;
  fx->err[0] = '\0';
  assert_int_equal(sqlite_queue_open(&q, fx->path, BIG_QUEUE, fx->err, sizeof(fx->err)), rc);
  assert_null(q);
  assert_true(fx->err[0] != '\0');
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

  open_refused(fx, -EINVAL);

  size_t len;
  char *after = fx->buf[0] = read_all(fx->path, &len);
  assert_int_equal(len, sizeof(junk));
  assert_memory_equal(after, junk, sizeof(junk));
}

static void another_applications_database_is_refused_with_einval(void **state) {
  fx_t *fx = *state;
  make_foreign_database(fx->path);
  open_refused(fx, -EINVAL);
  assert_non_null(strstr(fx->err, "not a retryd database"));

  /* Its data is still there and no retryd table was added. */
  sqlite3 *db = open_readonly(fx->path);
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

  open_refused(fx, -EINVAL);

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

  sqlite3 *db = open_readonly(fx->path);
  assert_journal_mode(db, "delete");
  sqlite3_close(db);
}

static void a_database_with_a_newer_schema_version_is_refused(void **state) {
  fx_t *fx = *state;
  char sql[128];
  snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = 99",
           SCHEMA_APPLICATION_ID);
  sqlite_exec_file(fx->path, sql);

  open_refused(fx, -EINVAL);
  assert_non_null(strstr(fx->err, "99"));

  /* Not migrated "down" or stamped with our version. */
  sqlite3 *db = open_readonly(fx->path);
  assert_int_equal(sql_int(db, "PRAGMA user_version"), 99);
  assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
  sqlite3_close(db);
}

static void a_second_open_of_the_same_file_fails_with_ebusy_until_the_first_closes(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  insert_ok(q, "r1", T0, T0, NULL);

  open_refused(fx, -EBUSY);

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

  open_refused(fx, -EBUSY);

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
  assert_journal_mode(db, "wal");

  /* And they are on disk: another connection sees them after close. */
  sqlite_queue_close(q);
  fx->q = NULL;
  db = open_readonly(fx->path);
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
  sqlite3 *db = open_readonly(fx->path);
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

/* ---- the unfinished count ------------------------------------------- */

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
  assert_int_equal(sqlite_queue_claim(q, T0 + 10, NULL, 86400000, 4, rows, &dead), 1);
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
    if (sqlite_queue_claim(q, T0, NULL, 86400000, 2, rows, &dead) != 1)
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

/* ---- purge, checkpoint and vacuum ------------------------------------ */

/* Checkpoints, expects the WAL emptied, and reads the database file into
 * fx->buf[0] (in place of what was there); *len gets its size. */
static char *checkpointed_file(fx_t *fx, size_t *len) {
  assert_int_equal(sqlite_queue_checkpoint(fx->q), 0);
  char wal[160];
  snprintf(wal, sizeof(wal), "%s-wal", fx->path);
  struct stat st;
  if (stat(wal, &st) == 0)
    assert_int_equal(st.st_size, 0); /* TRUNCATE */
  free(fx->buf[0]);
  fx->buf[0] = read_all(fx->path, len);
  return fx->buf[0];
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
  size_t len;
  char *bytes = checkpointed_file(fx, &len);
  assert_false(contains(bytes, len, "SECRET-7f3a9c"));
  assert_false(contains(bytes, len, "BODY-SECRET-42e1"));
  assert_int_equal(state_of(q, "r2"), RQ_QUEUED);
}

/* len varied bytes with mark every 1000 bytes (so a test can look for it
 * in the file); the caller frees them. */
static char *marked_bytes(size_t len, const char *mark) {
  char *p = malloc(len);
  assert_non_null(p);
  for (size_t i = 0; i < len; i++)
    p[i] = (char)('a' + (i * 7) % 26);
  for (size_t i = 0; i + strlen(mark) <= len; i += 1000)
    memcpy(p + i, mark, strlen(mark));
  return p;
}

/* A completed row with big payloads (each spans overflow pages): the
 * request's headers and body carry cred, the answer carries answer_mark,
 * and the answer's headers set a cookie with cred. */
static void insert_completed_big(sqlite_queue_t *q, const char *id, int64_t done_at,
                                 const char *cred, const char *answer_mark, size_t headers_len,
                                 size_t body_len, size_t answer_len) {
  char *h = marked_bytes(headers_len, cred), *b = marked_bytes(body_len, cred);
  char *a = marked_bytes(answer_len, answer_mark);
  stored_request_t r = new_row(id, T0, T0, NULL);
  r.headers = h;
  r.headers_len = headers_len;
  r.body = b;
  r.body_len = body_len;
  assert_int_equal(sqlite_queue_insert(q, &r, NULL), 0);
  claim_one(q, T0, id);
  attempt_outcome_t o = simple_outcome(OUTCOME_COMPLETED, done_at);
  char cookie[96];
  snprintf(cookie, sizeof(cookie), "Set-Cookie: session=COOKIE-%s\r\n", cred);
  o.response_headers = cookie;
  o.response_headers_len = strlen(cookie);
  o.response_body = a;
  o.response_body_len = answer_len;
  assert_int_equal(sqlite_queue_finish(q, id, done_at, &o), 0);
  free(h);
  free(b);
  free(a);
}

static void vacuum_gives_the_pages_of_purged_answers_back_in_slices(void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  sqlite3 *db = sqlite_queue_handle(q);
  for (int i = 0; i < 40; i++) {
    char id[16];
    snprintf(id, sizeof(id), "big%d", i);
    /* 4 rows finish late and stay; 36 are purged */
    insert_completed_big(q, id, i < 36 ? T0 + 1 : T0 + 1000, "m", "m", 100, 100, 128 * 1024);
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

static void purged_credentials_leave_the_file_at_once_and_answers_once_given_back(
    void **state) {
  fx_t *fx = *state;
  sqlite_queue_t *q = open_ok(fx, BIG_QUEUE);
  const size_t hl = 20 * 1024, bl = 100 * 1024, al = 300 * 1024;
  insert_completed_big(q, "gone", T0 + 1, "TOKEN-SECRET-7f3a9c", "ANSWER-BYTES-81b0", hl, bl, al);
  insert_completed_big(q, "stays", T0 + 1000, "TOKEN-KEPT-42e1", "ANSWER-KEPT-3c9d", hl, bl, al);
  size_t len;
  char *bytes = checkpointed_file(fx, &len);
  assert_true(contains(bytes, len, "TOKEN-SECRET-7f3a9c")); /* the test can see them */
  assert_true(contains(bytes, len, "COOKIE-TOKEN-SECRET-7f3a9c"));
  assert_true(contains(bytes, len, "ANSWER-BYTES-81b0"));

  /* The purge zeroes the request's row, overflow pages included: its
   * credentials leave the file with the checkpoint. */
  assert_int_equal(sqlite_queue_purge(q, T0 + 2, 100), 1);
  bytes = checkpointed_file(fx, &len);
  assert_false(contains(bytes, len, "TOKEN-SECRET-7f3a9c"));
  assert_false(contains(bytes, len, "COOKIE-TOKEN-SECRET"));
  assert_true(contains(bytes, len, "TOKEN-KEPT-42e1"));

  /* The answer's pages were freed unread: its bytes go once they are
   * given back (or reused). */
  assert_true(sqlite_queue_free_pages(q) >= 300 * 1024 / 4096);
  while (sqlite_queue_vacuum(q, 64) > 0) {
  }
  assert_int_equal(sqlite_queue_free_pages(q), 0);
  bytes = checkpointed_file(fx, &len);
  assert_false(contains(bytes, len, "ANSWER-BYTES-81b0"));
  assert_true(contains(bytes, len, "ANSWER-KEPT-3c9d"));
  stored_request_t r;
  memset(&r, 0, sizeof(r));
  assert_int_equal(sqlite_queue_get(q, "stays", true, &r), 0);
  assert_int_equal(r.response_body_len, 300 * 1024);
  assert_int_equal(r.body_len, 100 * 1024);
  stored_request_free(&r);
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
      T(recount_restores_the_unfinished_count_after_a_rollback),
      T(rows_left_inflight_at_close_are_queued_again_on_reopen),
      T(rows_inflight_when_the_process_dies_are_queued_again_on_reopen),
      T(purged_secrets_do_not_linger_in_the_database_or_wal_after_checkpoint),
      T(vacuum_gives_the_pages_of_purged_answers_back_in_slices),
      T(purged_credentials_leave_the_file_at_once_and_answers_once_given_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
