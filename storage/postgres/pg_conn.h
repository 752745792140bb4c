/* pg_conn: one libpq connection of the storage thread, and the small
 * helpers every PostgreSQL statement of retryd goes through.
 *
 * Blocking libpq on the storage thread, not non-blocking libpq on the loop:
 * the store already runs every backend call on its own thread (the loop
 * never waits for storage), a batch is a handful of statements in one
 * transaction whose latency is the commit's, and the blocking API keeps
 * each operation a few straight lines. The cost is one connection per
 * retryd, which group commit needs anyway.
 *
 * Connecting adds defaults a long-running sidecar needs, each overridable in
 * the URL: a connect timeout, TCP keepalives and a user timeout (a dead or
 * partitioned server is noticed in seconds, not hours), and an
 * application_name. Every session sets synchronous_commit = on: a COMMIT
 * returns only once the server made it durable. Error texts are libpq's
 * (which never repeat the password) with the URL itself never quoted. */
#ifndef RETRYD_PG_CONN_H
#define RETRYD_PG_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pg_conn_s pg_conn_t;
typedef struct pg_result pg_result_t; /* libpq's PGresult */

/* Called after every (re)connect, to prepare statements and set up the
 * session: 0, or a negative errno. */
typedef int (*pg_session_cb)(pg_conn_t *c, void *arg);

/* Connects to url. err gets one line on failure. */
int pg_conn_open(pg_conn_t **out, const char *url, pg_session_cb on_session, void *arg, char *err,
                 size_t errlen);
/* The same without connecting now: the first pg_conn_ready() does (for a
 * connection of a thread of its own, which may wait for it). */
int pg_conn_open_later(pg_conn_t **out, const char *url, pg_session_cb on_session, void *arg);
void pg_conn_close(pg_conn_t *c);
/* Sets the callback run after every later reconnect. */
void pg_conn_set_session(pg_conn_t *c, pg_session_cb on_session, void *arg);
/* Whether the connection is up; when it is not, tries once to reconnect,
 * at most once per backoff interval (1 s doubling to 30 s). */
bool pg_conn_ready(pg_conn_t *c);

/* A statement without parameters or rows (BEGIN, SET ...): 0 or an error. */
int pg_conn_exec(pg_conn_t *c, const char *sql);
/* A simple query, which may hold several statements sent in one round
 * trip ("BEGIN; SELECT ..."): 0 with *out the first value of the last
 * statement's first row, or the error of the first statement that failed
 * (those after it do not run). */
int pg_conn_exec_int(pg_conn_t *c, const char *sql, int64_t *out);
/* COMMIT: 0 only when the server answered "COMMIT" (a COMMIT of a failed
 * transaction answers "ROLLBACK"). */
int pg_conn_commit(pg_conn_t *c);
/* COMMIT, and a query of one integer after it in the same round trip (a
 * simple query, sql without parameters), so that what a caller asks after
 * every commit costs no round trip of its own. Returns what
 * pg_conn_commit() would; *out gets the query's value (0 when NULL) and
 * *out_ok whether it ran (not when the COMMIT failed with an error). */
int pg_conn_commit_then_int(pg_conn_t *c, const char *sql, int64_t *out, bool *out_ok);

/* Runs prepared statement name with n parameters (NULL: SQL NULL; lens[i]
 * > 0 or binary[i]: sent as binary, else as text) and binary results.
 * *res is the result when it returned rows or a command status; the caller
 * frees it with pg_result_free(). */
int pg_conn_run(pg_conn_t *c, const char *name, int n, const char *const *values, const int *lens,
                const int *binary, pg_result_t **res);
int pg_conn_prepare(pg_conn_t *c, const char *name, const char *sql);

/* Notifications (LISTEN), for a connection that only listens: the socket
 * to poll for input (-1 when down), and the next notification's payload
 * copied into payload (cut to len - 1 bytes), after reading whatever
 * arrived: 1 with one, 0 when none is left, -EIO when the connection
 * broke (pg_conn_ready() reconnects it). */
int pg_conn_socket(pg_conn_t *c);
int pg_conn_next_notification(pg_conn_t *c, char *payload, size_t len);

void pg_result_free(pg_result_t *r);
int pg_result_rows(const pg_result_t *r);
/* The number of rows a command changed ("UPDATE 3" → 3). */
int64_t pg_result_changed(pg_result_t *r);
bool pg_result_null(const pg_result_t *r, int row, int col);
/* A binary integer column (int2, int4 or int8); 0 when NULL. */
int64_t pg_result_int(const pg_result_t *r, int row, int col);
/* A text or bytea column, copied with a NUL after it (NULL when SQL NULL);
 * *len gets its length when len is not NULL. */
char *pg_result_dup(const pg_result_t *r, int row, int col, size_t *len);

#endif
