#include "proxy/queue/conn_job.h"

#include <stdlib.h>

#include "proxy/app.h"

static void conn_job_client_gone(void *ctx) {
  conn_job_t *cj = ctx;
  cj->conn = NULL;
}

static const http_handler_ops_t conn_job_ops = {.client_gone = conn_job_client_gone};

static void conn_job_complete(store_job_t *job) {
  conn_job_t *cj = job->ctx;
  if (cj->conn != NULL)
    http_conn_attach(cj->conn, NULL, NULL);
  cj->done(cj);
  stored_request_free(&cj->job.rq);
  if (cj->job.rows != NULL) {
    for (int i = 0; i < cj->job.nrows; i++)
      stored_request_free(&cj->job.rows[i]);
    free(cj->job.rows);
  }
  if (cj->free_data)
    cj->free_data(cj->data);
  free(cj);
}

conn_job_t *conn_job_new(struct app_s *app, http_conn_t *c, store_op_t op,
                         void (*done)(conn_job_t *cj)) {
  conn_job_t *cj = calloc(1, sizeof(*cj));
  if (cj == NULL)
    return NULL;
  cj->app = app;
  cj->conn = c;
  cj->done = done;
  cj->job.op = op;
  cj->job.cb = conn_job_complete;
  cj->job.ctx = cj;
  return cj;
}

void conn_job_submit(conn_job_t *cj) {
  if (cj->conn != NULL)
    http_conn_attach(cj->conn, &conn_job_ops, cj);
  store_submit(cj->app->store, &cj->job);
}
