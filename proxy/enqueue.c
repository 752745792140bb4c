#include "proxy/enqueue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/conn_job.h"
#include "proxy/prefer.h"
#include "proxy/request_json.h"
#include "proxy/response_head.h"
#include "proxy/retry_policy.h"
#include "proxy/scheduler.h"
#include "storage/uuid7.h"

/* What the client asked for, kept until it is answered. */
typedef struct {
  prefer_t prefer;
  enqueue_miss_fn on_miss; /* Idempotency-Key lookups only */
} intake_t;

/* A client held for Prefer: wait. */
typedef struct {
  scheduler_waiter_t waiter;
  app_t *app;
  http_conn_t *conn;
  uv_timer_t timer;
  stored_request_t rq; /* brief copy for the 202 */
  int64_t wait_s;
} hold_t;

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static int64_t seconds_until(int64_t at_ms) {
  int64_t d = at_ms - store_now_ms();
  int64_t s = (d + 999) / 1000;
  return s < 1 ? 1 : s;
}

/* The 202 of DESIGN.md; applied names the honoured preference, or NULL. */
static void enqueue_reply_accepted(http_conn_t *c, const stored_request_t *rq,
                                   const char *applied) {
  buf_t body, extra;
  /* The 202 carries the last error (up to a head's worth, escaped). */
  buf_init(&body, 16 * 1024 + 6 * (rq->last_error ? strlen(rq->last_error) : 0));
  buf_init(&extra, 1024);
  int rc = request_json_accepted(&body, rq);
  rc = rc ? rc : buf_append_str(&extra, "Location: /_retryd/requests/");
  rc = rc ? rc : buf_append_str(&extra, rq->id);
  rc = rc ? rc : buf_append(&extra, "\r\n", 2);
  if (rq->state == RQ_QUEUED) {
    rc = rc ? rc : buf_append_str(&extra, "Retry-After: ");
    rc = rc ? rc : buf_append_int(&extra, seconds_until(rq->next_attempt_at));
    rc = rc ? rc : buf_append(&extra, "\r\n", 2);
  }
  if (applied != NULL)
    rc = rc ? rc : buf_append_field(&extra, "Preference-Applied", applied);
  http_conn_note_status(c, 202, rq->last_status);
  if (rc != 0) /* stored all the same: the id is what the client needs */
    http_conn_error(c, 500, "internal", "the request was stored, but its 202 could not be built");
  else
    http_conn_respond(c, 202, extra.data, "application/json", body.data, body.len);
  buf_free(&body);
  buf_free(&extra);
}

static void enqueue_reply_unavailable(app_t *app, http_conn_t *c, int err) {
  char extra[64];
  app->stats.rejected++;
  snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n",
           (unsigned long long)((app->cfg->retry_interval_ms + 999) / 1000));
  const char *code = err == -EDQUOT ? "queue_full" : "queue_unavailable";
  /* Not stored means never stored: a row whose commit failed cannot come
   * back after a crash (store.c overwrites what it left in the WAL), so the
   * client may send the request again without risking a second delivery. */
  const char *msg = err == -EDQUOT ? "the queue holds --max-queue requests; try again later"
                    : err == -ENOSPC
                        ? "the request was not stored (the disk is full); send it again later"
                        : "the request was not stored; send it again later";
  buf_t body;
  buf_init(&body, 1024);
  if (buf_printf(&body, "{\"error\":\"%s\",\"message\":\"%s\"}\n", code, msg) != 0)
    http_conn_error(c, 503, code, msg); /* out of memory: its own small body */
  else
    http_conn_respond(c, 503, extra, "application/json", body.data, body.len);
  buf_free(&body);
}

/* ---- holding for Prefer: wait ---------------------------------------- */

static void hold_timer_closed(uv_handle_t *h) {
  hold_t *hd = h->data;
  stored_request_free(&hd->rq);
  free(hd);
}

static void hold_release(hold_t *hd) {
  if (hd->conn != NULL)
    http_conn_attach(hd->conn, NULL, NULL);
  uv_close((uv_handle_t *)&hd->timer, hold_timer_closed);
}

static void hold_applied(const hold_t *hd, char *out, size_t len) {
  snprintf(out, len, "wait=%lld", (long long)hd->wait_s);
}

/* The stored request reached a final state while the client waited. */
static void hold_outcome(scheduler_waiter_t *w, const attempt_t *a) {
  hold_t *hd = (hold_t *)w;
  if (a != NULL && a->outcome.kind == OUTCOME_RETRY) {
    /* Not final yet: keep the figures current for the 202, wait on. */
    hd->rq.attempts = a->rq.attempts;
    hd->rq.last_status = a->outcome.last_status;
    hd->rq.next_attempt_at = a->outcome.next_attempt_at;
    free(hd->rq.last_error);
    hd->rq.last_error = dup_or_null(a->outcome.last_error);
    scheduler_wait(hd->app->scheduler, &hd->waiter);
    return;
  }
  uv_timer_stop(&hd->timer);
  char applied[48], extra_tail[80];
  hold_applied(hd, applied, sizeof(applied));
  if (a != NULL && a->outcome.kind == OUTCOME_COMPLETED) {
    const attempt_outcome_t *o = &a->outcome;
    buf_t extra;
    buf_init(&extra, o->response_headers_len + sizeof(extra_tail));
    int rc = response_head_copy_unframed(o->response_headers, o->response_headers_len, &extra);
    snprintf(extra_tail, sizeof(extra_tail), "Preference-Applied: %s\r\n", applied);
    rc = rc ? rc : buf_append_str(&extra, extra_tail);
    http_conn_note_status(hd->conn, o->response_status, o->response_status);
    if (rc != 0)
      http_conn_error(hd->conn, 500, "internal", "the final answer's fields could not be copied");
    else
      http_conn_respond(hd->conn, o->response_status, extra.data ? extra.data : "", NULL,
                        o->response_body, o->response_body_len);
    buf_free(&extra);
  } else {
    if (a != NULL) {
      /* Dead: say so with the row's latest figures. */
      hd->rq.state = RQ_DEAD;
      hd->rq.attempts = a->rq.attempts;
      hd->rq.last_status = a->outcome.last_status;
      free(hd->rq.last_error);
      hd->rq.last_error = dup_or_null(a->outcome.last_error);
    }
    enqueue_reply_accepted(hd->conn, &hd->rq, applied);
  }
  hold_release(hd);
}

static void hold_timeout_cb(uv_timer_t *t) {
  hold_t *hd = t->data;
  scheduler_unwait(hd->app->scheduler, &hd->waiter);
  char applied[48];
  hold_applied(hd, applied, sizeof(applied));
  enqueue_reply_accepted(hd->conn, &hd->rq, applied);
  hold_release(hd);
}

static void hold_client_gone(void *ctx) {
  hold_t *hd = ctx;
  hd->conn = NULL;
  scheduler_unwait(hd->app->scheduler, &hd->waiter);
  uv_timer_stop(&hd->timer);
  hold_release(hd);
}

static const http_handler_ops_t hold_ops = {.client_gone = hold_client_gone};

/* Answers for a stored row: holds the client when it asked to wait. */
static void enqueue_answer(app_t *app, http_conn_t *c, stored_request_t *rq,
                           const intake_t *in) {
  int64_t wait_s = in->prefer.wait_s;
  int64_t cap_s = (int64_t)(app->cfg->max_wait_ms / 1000);
  if (wait_s > cap_s)
    wait_s = cap_s;
  bool can_wait = wait_s > 0 && app->scheduler != NULL && !app->stopping &&
                  (rq->state == RQ_QUEUED || rq->state == RQ_INFLIGHT);
  if (!can_wait) {
    const char *applied = in->prefer.respond_async ? "respond-async" : NULL;
    char buf[48];
    if (in->prefer.wait_s >= 0 && !in->prefer.respond_async) {
      /* Asked to wait, but the row is already final (dead) or we stop. */
      snprintf(buf, sizeof(buf), "wait=%lld", (long long)(wait_s > 0 ? wait_s : 0));
      applied = buf;
    }
    enqueue_reply_accepted(c, rq, applied);
    return;
  }
  hold_t *hd = calloc(1, sizeof(*hd));
  if (hd == NULL) {
    enqueue_reply_accepted(c, rq, NULL);
    return;
  }
  hd->app = app;
  hd->conn = c;
  hd->wait_s = wait_s;
  hd->rq = *rq;
  memset(rq, 0, sizeof(*rq)); /* moved */
  snprintf(hd->waiter.id, sizeof(hd->waiter.id), "%s", hd->rq.id);
  hd->waiter.cb = hold_outcome;
  uv_timer_init(app->loop, &hd->timer);
  hd->timer.data = hd;
  uv_timer_start(&hd->timer, hold_timeout_cb, (uint64_t)wait_s * 1000, 0);
  scheduler_wait(app->scheduler, &hd->waiter);
  http_conn_attach(c, &hold_ops, hd);
}

/* ---- storing ----------------------------------------------------------- */

static void enqueue_stored(conn_job_t *cj) {
  store_job_t *job = &cj->job;
  scheduler_note_due(cj->app->scheduler, job->next_due);
  if (job->result == 0)
    cj->app->stats.stored++;
  if (cj->conn == NULL)
    return; /* stored all the same: it will be delivered */
  if (job->result == 0 || job->result == -EEXIST)
    enqueue_answer(cj->app, cj->conn, &job->rq, cj->data);
  else
    enqueue_reply_unavailable(cj->app, cj->conn, job->result);
}

static intake_t *intake_new(const request_t *req) {
  intake_t *in = calloc(1, sizeof(*in));
  if (in != NULL) {
    prefer_parse(headers_get(&req->headers, "prefer"), &in->prefer);
  }
  return in;
}

void enqueue_store(app_t *app, http_conn_t *c, request_t *req, buf_t *fields, int last_status,
                   const char *last_error, const char *retry_after) {
  const config_t *cfg = app->cfg;
  conn_job_t *cj = conn_job_new(app, c, STORE_INSERT, enqueue_stored);
  intake_t *in = cj ? intake_new(req) : NULL;
  if (in == NULL) {
    free(cj);
    enqueue_reply_unavailable(app, c, -ENOMEM);
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
  rq->target = strdup(req->target.data);
  rq->headers_len = fields->len;
  rq->headers = fields->data ? buf_steal(fields) : strdup("");
  if (req->has_body) {
    /* The first attempt is over: the body moves into the row. */
    rq->body_len = req->body.len;
    rq->body = req->body.data ? buf_steal(&req->body) : strdup("");
  }
  rq->idempotency_key = dup_or_null(headers_get(&req->headers, "idempotency-key"));
  rq->attempts = 1;
  rq->created_at = arrived;
  rq->updated_at = now;
  rq->last_status = last_status;
  rq->last_error = dup_or_null(last_error);
  bool dead = retry_policy_next(cfg, 1, arrived, now, retry_after, &rq->next_attempt_at);
  rq->state = dead ? RQ_DEAD : RQ_QUEUED;
  if (dead)
    rq->next_attempt_at = 0;
  if (rq->method == NULL || rq->target == NULL || rq->headers == NULL ||
      (req->has_body && rq->body == NULL)) {
    stored_request_free(rq);
    free(in);
    free(cj);
    enqueue_reply_unavailable(app, c, -ENOMEM);
    return;
  }
  cj->job.now = now;
  conn_job_submit(cj);
}

/* ---- Idempotency-Key ------------------------------------------------- */

static void enqueue_looked_up(conn_job_t *cj) {
  store_job_t *job = &cj->job;
  if (cj->conn == NULL)
    return;
  request_t *req = http_conn_request(cj->conn);
  intake_t *in = cj->data;
  if (job->result == 0) {
    enqueue_answer(cj->app, cj->conn, &job->rq, in);
  } else if (job->result == -ENOENT) {
    in->on_miss(cj->app, cj->conn, req);
  } else {
    enqueue_reply_unavailable(cj->app, cj->conn, job->result);
  }
}

void enqueue_dedupe(app_t *app, http_conn_t *c, request_t *req, enqueue_miss_fn on_miss) {
  conn_job_t *cj = conn_job_new(app, c, STORE_FIND_IDEMPOTENT, enqueue_looked_up);
  intake_t *in = cj ? intake_new(req) : NULL;
  if (in == NULL) {
    free(cj);
    on_miss(app, c, req);
    return;
  }
  in->on_miss = on_miss;
  cj->data = in;
  cj->free_data = free;
  stored_request_t *rq = &cj->job.rq;
  rq->idempotency_key = strdup(headers_get(&req->headers, "idempotency-key"));
  rq->method = strdup(req->method);
  rq->target = strdup(req->target.data);
  conn_job_submit(cj);
}
