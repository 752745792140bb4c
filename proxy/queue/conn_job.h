/* conn_job: a storage job made on behalf of a client connection.
 *
 * The client may leave while the storage thread works; the job must still
 * complete (it may have stored a request). A conn_job attaches itself to
 * the connection as its handler, so client_gone clears conn instead of
 * leaving a dangling pointer. done() runs on the loop after the commit with
 * conn NULL when the client left; the conn_job is freed after done()
 * returns (with its job's stored_request_t rows). Loop thread only. */
#ifndef RETRYD_CONN_JOB_H
#define RETRYD_CONN_JOB_H

#include "proxy/http/http_conn.h"
#include "storage/store.h"

struct app_s;
typedef struct conn_job_s conn_job_t;

struct conn_job_s {
  store_job_t job;
  struct app_s *app;
  http_conn_t *conn;
  void (*done)(conn_job_t *cj);
  void *data;               /* the caller's; freed by free_data if set */
  void (*free_data)(void *data);
};

conn_job_t *conn_job_new(struct app_s *app, http_conn_t *c, store_op_t op,
                         void (*done)(conn_job_t *cj));
void conn_job_submit(conn_job_t *cj);

#endif
