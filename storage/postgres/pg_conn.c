#include "storage/postgres/pg_conn.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_BACKOFF_FIRST_MS 1000
#define PG_BACKOFF_MAX_MS 30000

struct pg_conn_s {
  PGconn *conn;
  char *url;
  pg_session_cb on_session;
  void *arg;
  bool session_ok;     /* on_session succeeded on this connection */
  int64_t retry_at_ms; /* no reconnect before (monotonic) */
  int64_t backoff_ms;
};

static int64_t pg_monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Defaults first, the URL (expanded from dbname) after them: libpq keeps
 * the last value of a repeated keyword, so the URL's win. */
static PGconn *pg_connect(const char *url) {
  static const char *const keys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                                     "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                     "application_name",    "dbname",           NULL};
  const char *values[] = {"10", "1", "10", "5", "3", "30000", "retryd", url, NULL};
  return PQconnectdbParams(keys, values, 1);
}

/* The server's notices ("relation already exists, skipping") would go to
 * stderr, between retryd's JSON log lines: they carry nothing to act on. */
static void pg_drop_notice(void *arg, const PGresult *res) { (void)arg, (void)res; }

/* One line: libpq's messages end with a newline and may run over two. */
static void pg_one_line(char *dst, size_t len, const char *msg) {
  snprintf(dst, len, "%s", msg != NULL ? msg : "unknown error");
  for (char *p = dst; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  /* Runs of blanks (libpq indents its second line) become one. */
  char *w = dst;
  for (const char *r = dst; *r; r++)
    if (*r != ' ' || (w > dst && w[-1] != ' '))
      *w++ = *r;
  while (w > dst && w[-1] == ' ')
    w--;
  *w = '\0';
}

static int pg_start_session(pg_conn_t *c) {
  c->session_ok = false;
  int rc = pg_conn_exec(c, "SET synchronous_commit = on");
  if (rc == 0 && c->on_session != NULL)
    rc = c->on_session(c, c->arg);
  c->session_ok = rc == 0;
  return rc;
}

int pg_conn_open_later(pg_conn_t **out, const char *url, pg_session_cb on_session, void *arg) {
  *out = NULL;
  pg_conn_t *c = calloc(1, sizeof(*c));
  if (c == NULL || (c->url = strdup(url)) == NULL) {
    free(c);
    return -ENOMEM;
  }
  c->on_session = on_session;
  c->arg = arg;
  c->backoff_ms = PG_BACKOFF_FIRST_MS;
  *out = c;
  return 0;
}

int pg_conn_open(pg_conn_t **out, const char *url, pg_session_cb on_session, void *arg, char *err,
                 size_t errlen) {
  pg_conn_t *c;
  int rc = pg_conn_open_later(&c, url, on_session, arg);
  if (rc != 0)
    return rc;
  c->conn = pg_connect(url);
  if (c->conn != NULL)
    PQsetNoticeReceiver(c->conn, pg_drop_notice, NULL);
  if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
    char why[400];
    pg_one_line(why, sizeof(why), c->conn ? PQerrorMessage(c->conn) : "out of memory");
    snprintf(err, errlen, "cannot connect to PostgreSQL: %s", why);
    pg_conn_close(c);
    return -EIO;
  }
  rc = pg_start_session(c);
  if (rc != 0) {
    char why[400];
    pg_one_line(why, sizeof(why), PQerrorMessage(c->conn));
    snprintf(err, errlen, "cannot set up the PostgreSQL session: %s", why);
    pg_conn_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

void pg_conn_set_session(pg_conn_t *c, pg_session_cb on_session, void *arg) {
  c->on_session = on_session;
  c->arg = arg;
}

void pg_conn_close(pg_conn_t *c) {
  if (c == NULL)
    return;
  if (c->conn != NULL)
    PQfinish(c->conn);
  free(c->url);
  free(c);
}

bool pg_conn_ready(pg_conn_t *c) {
  if (PQstatus(c->conn) == CONNECTION_OK && c->session_ok)
    return true;
  int64_t now = pg_monotonic_ms();
  if (now < c->retry_at_ms)
    return false;
  if (c->conn != NULL) {
    PQreset(c->conn);
  } else if ((c->conn = pg_connect(c->url)) != NULL) {
    PQsetNoticeReceiver(c->conn, pg_drop_notice, NULL);
  }
  if (PQstatus(c->conn) == CONNECTION_OK && pg_start_session(c) == 0) {
    c->backoff_ms = PG_BACKOFF_FIRST_MS;
    return true;
  }
  c->retry_at_ms = now + c->backoff_ms;
  c->backoff_ms = c->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : c->backoff_ms * 2;
  return false;
}

/* SQLSTATE → the errors of storage/stored_request.h. */
static int pg_error(pg_conn_t *c, const PGresult *res) {
  const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (PQstatus(c->conn) != CONNECTION_OK || state == NULL)
    return -EIO;
  if (strcmp(state, "53100") == 0) /* disk_full */
    return -ENOSPC;
  if (strcmp(state, "23505") == 0) /* unique_violation */
    return -EEXIST;
  return -EIO;
}

int pg_conn_exec(pg_conn_t *c, const char *sql) {
  PGresult *res = PQexec(c->conn, sql);
  ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : pg_error(c, res);
  PQclear(res);
  return rc;
}

int pg_conn_commit(pg_conn_t *c) {
  PGresult *res = PQexec(c->conn, "COMMIT");
  int rc;
  if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
    rc = strcmp(PQcmdStatus(res), "COMMIT") == 0 ? 0 : -EIO;
  else
    rc = pg_error(c, res);
  PQclear(res);
  return rc;
}

int pg_conn_prepare(pg_conn_t *c, const char *name, const char *sql) {
  PGresult *res = PQprepare(c->conn, name, sql, 0, NULL);
  int rc = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(c, res);
  PQclear(res);
  return rc;
}

int pg_conn_run(pg_conn_t *c, const char *name, int n, const char *const *values, const int *lens,
                const int *binary, pg_result_t **out) {
  *out = NULL;
  PGresult *res = PQexecPrepared(c->conn, name, n, values, lens, binary, 1);
  ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    int rc = pg_error(c, res);
    PQclear(res);
    return rc;
  }
  *out = (pg_result_t *)res;
  return 0;
}

void pg_result_free(pg_result_t *r) { PQclear((PGresult *)r); }

int pg_result_rows(const pg_result_t *r) { return PQntuples((const PGresult *)r); }

int64_t pg_result_changed(pg_result_t *r) {
  const char *n = PQcmdTuples((PGresult *)r);
  return n != NULL && *n ? strtoll(n, NULL, 10) : 0;
}

bool pg_result_null(const pg_result_t *r, int row, int col) {
  return PQgetisnull((const PGresult *)r, row, col) != 0;
}

/* Binary integers arrive in network byte order, 2, 4 or 8 bytes wide. */
int64_t pg_result_int(const pg_result_t *r, int row, int col) {
  const PGresult *res = (const PGresult *)r;
  if (PQgetisnull(res, row, col))
    return 0;
  const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
  int len = PQgetlength(res, row, col);
  uint64_t v = 0;
  for (int i = 0; i < len; i++)
    v = v << 8 | p[i];
  if (len > 0 && len < 8 && (p[0] & 0x80)) /* sign-extend int2 and int4 */
    v |= ~(uint64_t)0 << (8 * len);
  return (int64_t)v;
}

char *pg_result_dup(const pg_result_t *r, int row, int col, size_t *len) {
  const PGresult *res = (const PGresult *)r;
  if (len != NULL)
    *len = 0;
  if (PQgetisnull(res, row, col))
    return NULL;
  size_t n = (size_t)PQgetlength(res, row, col);
  char *s = malloc(n + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, PQgetvalue(res, row, col), n);
  s[n] = '\0';
  if (len != NULL)
    *len = n;
  return s;
}

int pg_conn_socket(pg_conn_t *c) {
  return PQstatus(c->conn) == CONNECTION_OK ? PQsocket(c->conn) : -1;
}

int pg_conn_next_notification(pg_conn_t *c, char *payload, size_t len) {
  if (PQstatus(c->conn) != CONNECTION_OK || !PQconsumeInput(c->conn))
    return -EIO;
  PGnotify *n = PQnotifies(c->conn);
  if (n == NULL)
    return 0;
  snprintf(payload, len, "%s", n->extra != NULL ? n->extra : "");
  PQfreemem(n);
  return 1;
}
