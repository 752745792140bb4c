#include "proxy/queue/enqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/callback/callback_request.h"
#include "proxy/queue/accepted.h"
#include "proxy/queue/body_hash.h"
#include "proxy/queue/deadline_header.h"
#include "proxy/queue/conn_job.h"
#include "proxy/queue/hold.h"
#include "proxy/queue/prefer.h"
#include "proxy/queue/retry_policy.h"
#include "proxy/queue/route.h"
#include "proxy/queue/scheduler.h"
#include "storage/uuid7.h"

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* What the client asked for (Prefer), and its body's hash, kept until it is
 * answered. */
typedef struct {
  prefer_t prefer;
  char body_sha256[BODY_HASH_HEX_LEN + 1]; /* "": none */
} intake_t;

/* A twin stored meanwhile with another body: the key was reused. */
static bool enqueue_twin_differs(const intake_t *in, const stored_request_t *twin) {
  return in->body_sha256[0] != '\0' && twin->body_sha256 != NULL &&
         strcmp(in->body_sha256, twin->body_sha256) != 0;
}

static void enqueue_stored(conn_job_t *cj) {
  store_job_t *job = &cj->job;
  intake_t *in = cj->data;
  if (job->result == 0) {
    cj->app->stats.stored++;
    if (job->rq.state == RQ_QUEUED)
      scheduler_note_flow_due(cj->app->scheduler, job->rq.flow, job->rq.next_attempt_at);
  }
  scheduler_note_due(cj->app->scheduler, job->next_due);
  if (cj->conn == NULL)
    return; /* stored all the same: it will be delivered */
  if (job->result == -EEXIST && enqueue_twin_differs(in, &job->rq)) {
    http_conn_note_stored(cj->conn, job->rq.id, true);
    http_conn_error(cj->conn, 422, "idempotency_key_reused",
                    "this Idempotency-Key was used with another request body");
  } else if (job->result == 0 || job->result == -EEXIST) {
    /* -EEXIST: the twin of an Idempotency-Key stored meanwhile answers. */
    http_conn_note_stored(cj->conn, job->rq.id, job->result == -EEXIST);
    hold_answer(cj->app, cj->conn, &job->rq, &in->prefer);
  } else {
    accepted_unavailable(cj->app, cj->conn, job->result);
  }
}

static intake_t *intake_of(const request_t *req) {
  intake_t *in = calloc(1, sizeof(*in));
  if (in != NULL)
    prefer_parse(headers_get(&req->headers, "prefer"), &in->prefer);
  return in;
}

/* The row for req, its attempts so far and its next attempt (or dead);
 * submitted once built. */
typedef struct {
  int64_t attempts;
  int last_status;
  const char *last_error;
  const char *retry_after;     /* sent: the answer's; the next attempt follows it */
  int64_t due_ms;              /* held: when to send it first */
  const route_t *route;        /* its policy */
  const char *flow;            /* its flow's key */
  const last_answer_t *answer; /* sent: the retryable answer's kept part, or NULL */
} enqueue_how_t;

/* Copies what the row keeps of the last retryable answer. */
static int enqueue_keep_answer(stored_request_t *rq, const last_answer_t *a) {
  if (a == NULL || !a->kept)
    return 0;
  rq->last_answer_headers = malloc(a->headers.len + 1);
  rq->last_answer_body = malloc(a->body.len + 1);
  if (rq->last_answer_headers == NULL || rq->last_answer_body == NULL)
    return -ENOMEM;
  memcpy(rq->last_answer_headers, a->headers.data ? a->headers.data : "", a->headers.len);
  rq->last_answer_headers[a->headers.len] = '\0';
  rq->last_answer_headers_len = a->headers.len;
  memcpy(rq->last_answer_body, a->body.data ? a->body.data : "", a->body.len);
  rq->last_answer_body[a->body.len] = '\0';
  rq->last_answer_body_len = a->body.len;
  return 0;
}

/* The body's hash, for a row an Idempotency-Key repeat may be compared
 * with (computed before the body moves into the row). */
static int enqueue_hash_body(stored_request_t *rq, const request_t *req) {
  if (rq->idempotency_key == NULL)
    return 0;
  rq->body_sha256 = malloc(BODY_HASH_HEX_LEN + 1);
  if (rq->body_sha256 == NULL)
    return -ENOMEM;
  return body_hash_hex(req->has_body ? req->body.data : NULL, req->has_body ? req->body.len : 0,
                       rq->body_sha256);
}

static void enqueue_row(app_t *app, http_conn_t *c, request_t *req, buf_t *fields,
                        const enqueue_how_t *how) {
  conn_job_t *cj = conn_job_new(app, c, STORE_INSERT, enqueue_stored);
  intake_t *in = cj ? intake_of(req) : NULL;
  if (in == NULL) {
    free(cj);
    accepted_unavailable(app, c, -ENOMEM);
    return;
  }
  cj->data = in;
  cj->free_data = free;
  stored_request_t *rq = &cj->job.rq;
  int64_t now = store_now_ms();
  /* Its age (--max-age) counts from when the client sent it, not from
   * when the first attempt gave up. */
  int64_t arrived = now - (int64_t)((uv_hrtime() - req->started_ns) / 1000000);
  uuid7_generate(rq->id, (uint64_t)arrived);
  rq->method = strdup(req->method);
  rq->flow = strdup(how->flow);
  rq->target = strdup(req->target.data);
  rq->headers_len = fields->len;
  rq->headers = fields->data ? buf_steal(fields) : strdup("");
  rq->idempotency_key = dup_or_null(headers_get(&req->headers, "idempotency-key"));
  int kept = enqueue_hash_body(rq, req);
  if (kept == 0 && rq->body_sha256 != NULL)
    memcpy(in->body_sha256, rq->body_sha256, sizeof(in->body_sha256));
  if (kept == 0)
    kept = enqueue_keep_answer(rq, how->answer);
  /* The router refused a bad value; one that passed meanwhile is due now
   * and dies at its claim. */
  const char *why;
  if (deadline_header_parse(headers_get(&req->headers, "retryd-deadline"), arrived,
                            &rq->deadline_at, &why) != 0)
    rq->deadline_at = now;
  if (req->has_body) {
    /* The first attempt is over: the body moves into the row. */
    rq->body_len = req->body.len;
    rq->body = req->body.data ? buf_steal(&req->body) : strdup("");
  }
  const char *callback = callback_request_url(app, req, how->route->callback_url);
  rq->callback_url = dup_or_null(callback);
  rq->attempts = how->attempts;
  rq->created_at = arrived;
  rq->updated_at = now;
  rq->last_status = how->last_status;
  rq->last_error = dup_or_null(how->last_error);
  bool dead = false;
  if (how->attempts > 0)
    dead = retry_policy_next(&how->route->retry, how->attempts, arrived, now, how->retry_after,
                             &rq->next_attempt_at);
  else
    rq->next_attempt_at = how->due_ms > now ? how->due_ms : now;
  if (!dead && rq->deadline_at != 0 && rq->deadline_at <= now) {
    /* The first attempt ran past the deadline: nothing left to try. */
    dead = true;
    free(rq->last_error);
    rq->last_error = strdup(DEADLINE_HEADER_GAVE_UP);
  }
  rq->next_attempt_at = deadline_header_clamp(rq->next_attempt_at, rq->deadline_at);
  rq->state = dead ? RQ_DEAD : RQ_QUEUED;
  if (dead)
    rq->next_attempt_at = 0;
  if (kept != 0 || rq->method == NULL || rq->flow == NULL || rq->target == NULL ||
      rq->headers == NULL || (req->has_body && rq->body == NULL) ||
      (callback != NULL && rq->callback_url == NULL)) {
    stored_request_free(rq);
    free(in);
    free(cj);
    accepted_unavailable(app, c, -ENOMEM);
    return;
  }
  cj->job.now = now;
  conn_job_submit(cj);
}

void enqueue_store(app_t *app, http_conn_t *c, request_t *req, buf_t *fields, const route_t *route,
                   const char *flow, int last_status, const char *last_error,
                   const char *retry_after, const last_answer_t *answer) {
  enqueue_how_t how = {.attempts = 1,
                       .answer = answer,
                       .last_status = last_status,
                       .last_error = last_error,
                       .retry_after = retry_after,
                       .route = route,
                       .flow = flow};
  enqueue_row(app, c, req, fields, &how);
}

void enqueue_held(app_t *app, http_conn_t *c, request_t *req, buf_t *fields, const route_t *route,
                  const char *flow, int64_t due_ms, const char *why) {
  enqueue_how_t how = {
      .attempts = 0, .last_error = why, .due_ms = due_ms, .route = route, .flow = flow};
  enqueue_row(app, c, req, fields, &how);
}
