#include "proxy/queue/hold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/queue/accepted.h"
#include "proxy/queue/conn_job.h"
#include "proxy/upstream/response_head.h"
#include "proxy/queue/scheduler.h"

/* A client held for Prefer: wait. */
typedef struct {
  scheduler_waiter_t waiter;
  app_t *app;
  http_conn_t *conn;
  uv_timer_t timer;
  stored_request_t rq; /* brief copy for the 202 */
  int64_t wait_s;
  bool at_deadline; /* the timer ends at the row's deadline, before the wait */
} hold_t;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

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

/* Keeps the held copy's figures current for the 202. */
static void hold_take_figures(hold_t *hd, const stored_request_t *row) {
  hd->rq.state = row->state;
  hd->rq.attempts = row->attempts;
  hd->rq.last_status = row->last_status;
  hd->rq.next_attempt_at = row->next_attempt_at;
  hd->rq.updated_at = row->updated_at;
  if (row->last_error != hd->rq.last_error) {
    free(hd->rq.last_error);
    hd->rq.last_error = dup_or_null(row->last_error);
  }
}

/* Answers the held client with row as it is (NULL: the held copy): the
 * final answer when completed, else the 202 with the row's figures. */
static void hold_reply(hold_t *hd, const stored_request_t *row) {
  uv_timer_stop(&hd->timer);
  char applied[48], extra_tail[80];
  hold_applied(hd, applied, sizeof(applied));
  if (row != NULL && row->state == RQ_COMPLETED) {
    buf_t extra;
    buf_init(&extra, row->response_headers_len + sizeof(extra_tail));
    int rc = response_head_copy_unframed(row->response_headers, row->response_headers_len, &extra);
    snprintf(extra_tail, sizeof(extra_tail), "Preference-Applied: %s\r\n", applied);
    rc = rc ? rc : buf_append_str(&extra, extra_tail);
    http_conn_note_status(hd->conn, row->response_status, row->response_status);
    if (rc != 0)
      http_conn_error(hd->conn, 500, "internal", "the final answer's fields could not be copied");
    else
      http_conn_respond(hd->conn, row->response_status, extra.data ? extra.data : "", NULL,
                        row->response_body, row->response_body_len);
    buf_free(&extra);
  } else {
    /* Dead or cancelled (say so with the row's latest figures), or retryd
     * stops: the 202 as it stands. */
    if (row != NULL)
      hold_take_figures(hd, row);
    accepted_reply(hd->conn, &hd->rq, applied);
  }
  hold_release(hd);
}

/* The stored request changed while the client waited: here (an attempt's
 * outcome, a cancel) or on another replica. row is NULL when retryd stops. */
static void hold_outcome(scheduler_waiter_t *w, const stored_request_t *row) {
  hold_t *hd = (hold_t *)w;
  if (row != NULL && (row->state == RQ_QUEUED || row->state == RQ_INFLIGHT)) {
    /* Not final yet: wait on. */
    hold_take_figures(hd, row);
    scheduler_wait(hd->app->scheduler, &hd->waiter);
    return;
  }
  hold_reply(hd, row);
}

/* How long after a row's Retryd-Deadline its held client is answered: the
 * claim that buries the row runs at the deadline, and is done by then. */
#define HOLD_DEADLINE_GRACE_MS 500

/* The row as it is just after its deadline, read for the held client. */
static void hold_deadline_read(conn_job_t *cj) {
  hold_t *hd = cj->data;
  hd->conn = cj->conn;
  if (hd->conn == NULL) {
    hold_release(hd); /* the client left meanwhile */
    return;
  }
  hold_reply(hd, cj->job.result == 0 ? &cj->job.rq : NULL);
}

static void hold_timeout_cb(uv_timer_t *t) {
  hold_t *hd = t->data;
  scheduler_unwait(&hd->waiter);
  if (hd->at_deadline) {
    /* A row buried at its deadline tells no waiter (the claim names only
     * the rows it sends): the client is answered with the row as it is
     * now, dead as a rule, not kept to the end of its wait. */
    conn_job_t *cj = conn_job_new(hd->app, hd->conn, STORE_GET, hold_deadline_read);
    if (cj != NULL) {
      cj->data = hd;
      snprintf(cj->job.id, sizeof(cj->job.id), "%s", hd->rq.id);
      cj->job.with_payload = true; /* completed in time: its answer */
      conn_job_submit(cj);
      return;
    }
  }
  char applied[48];
  hold_applied(hd, applied, sizeof(applied));
  accepted_reply(hd->conn, &hd->rq, applied);
  hold_release(hd);
}

static void hold_client_gone(void *ctx) {
  hold_t *hd = ctx;
  hd->conn = NULL;
  scheduler_unwait(&hd->waiter);
  uv_timer_stop(&hd->timer);
  hold_release(hd);
}

static const http_handler_ops_t hold_ops = {.client_gone = hold_client_gone};

void hold_answer(app_t *app, http_conn_t *c, stored_request_t *rq, const prefer_t *prefer) {
  int64_t wait_s = prefer->wait_s;
  int64_t cap_s = (int64_t)(app->cfg->max_wait_ms / 1000);
  if (wait_s > cap_s)
    wait_s = cap_s;
  bool can_wait = wait_s > 0 && app->scheduler != NULL && !app->stopping &&
                  (rq->state == RQ_QUEUED || rq->state == RQ_INFLIGHT);
  if (!can_wait) {
    const char *applied = prefer->respond_async ? "respond-async" : NULL;
    char buf[48];
    if (prefer->wait_s >= 0 && !prefer->respond_async) {
      /* Asked to wait, but the row is already final (dead) or we stop. */
      snprintf(buf, sizeof(buf), "wait=%lld", (long long)(wait_s > 0 ? wait_s : 0));
      applied = buf;
    }
    accepted_reply(c, rq, applied);
    return;
  }
  hold_t *hd = calloc(1, sizeof(*hd));
  if (hd == NULL) {
    accepted_reply(c, rq, NULL);
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
  int64_t wait_ms = wait_s * 1000;
  if (hd->rq.deadline_at != 0) {
    int64_t until = hd->rq.deadline_at - store_now_ms() + HOLD_DEADLINE_GRACE_MS;
    hd->at_deadline = until < wait_ms;
    if (hd->at_deadline)
      wait_ms = until > 0 ? until : 0;
  }
  uv_timer_start(&hd->timer, hold_timeout_cb, (uint64_t)wait_ms, 0);
  scheduler_wait(app->scheduler, &hd->waiter);
  http_conn_attach(c, &hold_ops, hd);
}
