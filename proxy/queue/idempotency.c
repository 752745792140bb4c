#include "proxy/queue/idempotency.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/queue/accepted.h"
#include "proxy/queue/body_hash.h"
#include "proxy/queue/conn_job.h"
#include "proxy/queue/hold.h"
#include "proxy/queue/prefer.h"
#include "proxy/upstream/response_head.h"

/* What the client asked for, kept until the lookup answers. */
typedef struct {
  prefer_t prefer;
  idempotency_miss_fn on_miss;
} intake_t;

/* Whether req's body is not the one the row was stored with: the key is
 * reused for another request. A row stored before bodies were hashed, or
 * a hash that could not be made, tells nothing: not a mismatch. */
static bool idempotency_body_differs(const request_t *req, const stored_request_t *rq) {
  char hash[BODY_HASH_HEX_LEN + 1];
  if (rq->body_sha256 == NULL)
    return false;
  if (body_hash_hex(req->has_body ? req->body.data : NULL, req->has_body ? req->body.len : 0,
                    hash) != 0)
    return false;
  return strcmp(hash, rq->body_sha256) != 0;
}

/* The completed twin's answer, as stored, marked as a replay: no second
 * upstream call. Logged as a replay of the row, with no upstream status. */
static void idempotency_replayed(conn_job_t *cj) {
  http_conn_t *c = cj->conn;
  const stored_request_t *rq = &cj->job.rq;
  if (c == NULL)
    return;
  if (cj->job.result != 0 || rq->state != RQ_COMPLETED || rq->response_status == 0) {
    /* Purged (or changed) between the two reads: a request of its own. */
    intake_t *in = cj->data;
    if (cj->job.result == 0 || cj->job.result == -ENOENT)
      in->on_miss(cj->app, c, http_conn_request(c));
    else
      accepted_unavailable(cj->app, c, cj->job.result);
    return;
  }
  buf_t extra;
  buf_init(&extra, rq->response_headers_len + 256);
  int rc = response_head_copy_unframed(rq->response_headers ? rq->response_headers : "",
                                       rq->response_headers_len, &extra);
  if (rc == 0)
    rc = buf_append_field(&extra, "Retryd-Replayed", "true");
  if (rc == 0)
    rc = buf_append_field(&extra, "Retryd-Request-Id", rq->id);
  http_conn_note_stored(c, rq->id, true);
  if (rc != 0) {
    http_conn_error(c, 500, "internal", "the stored answer's fields could not be copied");
  } else {
    http_conn_note_status(c, rq->response_status, 0);
    http_conn_respond(c, rq->response_status, extra.data ? extra.data : "", NULL,
                      rq->response_body ? rq->response_body : "", rq->response_body_len);
  }
  buf_free(&extra);
}

/* Reads the completed twin's stored answer, then replays it. */
static void idempotency_replay(conn_job_t *found) {
  conn_job_t *cj = conn_job_new(found->app, found->conn, STORE_GET, idempotency_replayed);
  if (cj == NULL) {
    accepted_unavailable(found->app, found->conn, -ENOMEM);
    return;
  }
  /* The intake moves over: the miss path still needs it. */
  cj->data = found->data;
  cj->free_data = found->free_data;
  found->data = NULL;
  found->free_data = NULL;
  snprintf(cj->job.id, sizeof(cj->job.id), "%s", found->job.rq.id);
  cj->job.with_payload = true;
  conn_job_submit(cj);
}

static void idempotency_looked_up(conn_job_t *cj) {
  store_job_t *job = &cj->job;
  if (cj->conn == NULL)
    return;
  request_t *req = http_conn_request(cj->conn);
  intake_t *in = cj->data;
  if (job->result == 0 && idempotency_body_differs(req, &job->rq)) {
    http_conn_note_stored(cj->conn, job->rq.id, true);
    http_conn_error(cj->conn, 422, "idempotency_key_reused",
                    "this Idempotency-Key was used with another request body");
  } else if (job->result == 0 && job->rq.state == RQ_COMPLETED) {
    /* Purged rows are gone anyway; one the purge has not reached yet is
     * past --keep-completed all the same: a request of its own. */
    int64_t kept_until = job->rq.updated_at + (int64_t)cj->app->cfg->keep_completed_ms;
    if (store_now_ms() < kept_until)
      idempotency_replay(cj);
    else
      in->on_miss(cj->app, cj->conn, req);
  } else if (job->result == 0) {
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
