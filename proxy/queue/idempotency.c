#include "proxy/queue/idempotency.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/queue/accepted.h"
#include "proxy/app.h"
#include "proxy/queue/conn_job.h"
#include "proxy/queue/hold.h"
#include "proxy/queue/prefer.h"

/* What the client asked for, kept until the lookup answers. */
typedef struct {
  prefer_t prefer;
  idempotency_miss_fn on_miss;
} intake_t;

static void idempotency_looked_up(conn_job_t *cj) {
  store_job_t *job = &cj->job;
  if (cj->conn == NULL)
    return;
  request_t *req = http_conn_request(cj->conn);
  intake_t *in = cj->data;
  if (job->result == 0) {
    http_conn_note_stored(cj->conn, job->rq.id, true);
    hold_answer(cj->app, cj->conn, &job->rq, &in->prefer);
  } else if (job->result == -ENOENT) {
    in->on_miss(cj->app, cj->conn, req);
  } else {
    accepted_unavailable(cj->app, cj->conn, job->result);
  }
}

void idempotency_dedupe(app_t *app, http_conn_t *c, request_t *req, idempotency_miss_fn on_miss) {
  conn_job_t *cj = conn_job_new(app, c, STORE_FIND_IDEMPOTENT, idempotency_looked_up);
  intake_t *in = cj ? calloc(1, sizeof(*in)) : NULL;
  if (in == NULL) {
    free(cj);
    on_miss(app, c, req);
    return;
  }
  prefer_parse(headers_get(&req->headers, "prefer"), &in->prefer);
  in->on_miss = on_miss;
  cj->data = in;
  cj->free_data = free;
  stored_request_t *rq = &cj->job.rq;
  rq->idempotency_key = strdup(headers_get(&req->headers, "idempotency-key"));
  rq->method = strdup(req->method);
  rq->target = strdup(req->target.data);
  conn_job_submit(cj);
}
