#include "proxy/queue/attempt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/queue/deadline_header.h"
#include "proxy/queue/retry_decision.h"
#include "proxy/queue/retry_policy.h"
#include "proxy/upstream/upstream.h"

static void attempt_finish(attempt_t *a, upstream_result_t result);

static int attempt_head_cb(void *ctx) {
  attempt_t *a = ctx;
  /* The head is in: from now on the timer watches the body's flow. */
  uv_timer_again(&a->timer);
  stats_upstream_answer(&a->app->stats, a->head.status, uv_hrtime() - a->sent_ns);
  return 0;
}

static int attempt_body_cb(void *ctx, const char *data, size_t len) {
  attempt_t *a = ctx;
  uv_timer_again(&a->timer);
  size_t room = a->body.max - a->body.len;
  if (len > room) {
    a->truncated = true;
    len = room; /* read on, keep what fits */
  }
  /* Out of memory keeps what came so far, said as a truncation too. */
  if (len > 0 && buf_append(&a->body, data, len) != 0)
    a->truncated = true;
  return UPSTREAM_TAKEN;
}

static void attempt_upstream_done_cb(void *ctx, upstream_result_t result, const char *error) {
  attempt_t *a = ctx;
  a->xfer = NULL;
  if (error != NULL && a->error[0] == '\0')
    snprintf(a->error, sizeof(a->error), "%s", error);
  attempt_finish(a, result);
}

static void attempt_timeout_cb(uv_timer_t *t) {
  attempt_t *a = t->data;
  upstream_cancel(a->xfer);
  a->xfer = NULL;
  if (a->error[0] == '\0')
    snprintf(a->error, sizeof(a->error), "%s", retry_decision_timeout_text(a->head.complete));
  attempt_finish(a, UPSTREAM_TIMEDOUT);
}

static void attempt_resent_cb(void *ctx, const char *why) {
  attempt_t *a = ctx;
  upstream_note_resent(&a->app->stats, &a->sent_ns, a->rq.id, a->rq.method, a->rq.target, why);
}

static const upstream_ops_t attempt_upstream_ops = {
    .head = attempt_head_cb,
    .body = attempt_body_cb,
    .done = attempt_upstream_done_cb,
    .resent = attempt_resent_cb,
};

/* Decides the outcome from what came back. */
static void attempt_finish(attempt_t *a, upstream_result_t result) {
  const retry_policy_t *policy = &a->route->retry;
  attempt_outcome_t *o = &a->outcome;
  if (a->finished)
    return;
  a->finished = true;
  uv_timer_stop(&a->timer);
  int64_t now = store_now_ms();
  memset(o, 0, sizeof(*o));
  attempt_end_t end = result == UPSTREAM_DONE       ? ENDED_WHOLE
                      : result == UPSTREAM_TIMEDOUT ? ENDED_TIMEOUT
                                                    : ENDED_BROKEN;
  retry_decision_t decision =
      retry_decide(&policy->retry_on, a->head.complete ? a->head.status : 0, end);
  if (a->cancelled) {
    o->kind = OUTCOME_RELEASE;
  } else if (decision == DECISION_BROKEN_FINAL) {
    /* The upstream acted on it: sending it again could do it twice. */
    o->kind = OUTCOME_DEAD;
    o->last_status = a->head.status;
    char why[sizeof(a->error)];
    snprintf(why, sizeof(why), "%s", a->error[0] ? a->error : "cut");
    snprintf(a->error, sizeof(a->error),
             "gave up: the final answer broke off (%.150s); not sent again, it may have been "
             "acted on",
             why);
    o->last_error = a->error;
  } else if (decision == DECISION_FINAL) {
    o->kind = OUTCOME_COMPLETED;
    o->last_status = a->head.status;
    o->response_status = a->head.status;
    if (response_head_serialize(&a->head, &a->resp_headers) != 0) {
      /* Kept without its fields rather than with some of them. */
      buf_reset(&a->resp_headers);
      snprintf(a->error, sizeof(a->error), "the answer's fields could not be kept");
      o->last_error = a->error;
    }
    o->response_headers = a->resp_headers.data ? a->resp_headers.data : "";
    o->response_headers_len = a->resp_headers.len;
    o->response_body = a->body.data ? a->body.data : "";
    o->response_body_len = a->body.len;
    if (a->truncated) {
      snprintf(a->error, sizeof(a->error), "the answer's body was over --max-body: kept truncated");
      o->last_error = a->error;
    }
  } else {
    bool answered = decision == DECISION_RETRY_ANSWER;
    if (!answered && a->error[0] == '\0')
      snprintf(a->error, sizeof(a->error), "the upstream request failed");
    if (!a->head.complete)
      stats_upstream_answer(&a->app->stats, 0, uv_hrtime() - a->sent_ns);
    const char *retry_after = answered ? headers_get(&a->head.fields, "retry-after") : NULL;
    int64_t next = 0;
    bool retryable = decision != DECISION_FAIL_NO_ANSWER;
    bool dead =
        retry_policy_next(policy, a->rq.attempts, a->rq.created_at, now, retry_after, &next);
    /* No attempt after the deadline: the row dies at it (its claim buries
     * it), or now when it has passed already. */
    bool late = !dead && a->rq.deadline_at != 0 && a->rq.deadline_at <= now;
    next = deadline_header_clamp(next, a->rq.deadline_at);
    o->kind = retryable && !dead && !late ? OUTCOME_RETRY : OUTCOME_DEAD;
    o->next_attempt_at = next;
    o->last_status = answered ? a->head.status : 0;
    o->last_error = answered ? NULL : a->error;
    if (answered) {
      last_answer_keep_head(&a->answer, &a->head.fields);
      last_answer_keep_body(&a->answer, a->body.data, a->body.len);
      o->last_answer_headers = a->answer.headers.data ? a->answer.headers.data : "";
      o->last_answer_headers_len = a->answer.headers.len;
      o->last_answer_body = a->answer.body.data ? a->answer.body.data : "";
      o->last_answer_body_len = a->answer.body.len;
    }
    if (late && retryable) {
      snprintf(a->error, sizeof(a->error), "%s", DEADLINE_HEADER_GAVE_UP);
      o->last_error = a->error;
    } else if (o->kind == OUTCOME_DEAD && answered) {
      /* Say why it was given up; the status says what the upstream said. */
      snprintf(a->error, sizeof(a->error), "%s",
               policy->max_attempts > 0 && a->rq.attempts >= policy->max_attempts
                   ? "gave up: --max-attempts reached"
                   : "gave up: --max-age reached");
      o->last_error = a->error;
    }
  }
  a->done(a);
}

attempt_t *attempt_start(struct app_s *app, stored_request_t *rq, attempt_done_cb done) {
  attempt_t *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return NULL;
  a->app = app;
  a->rq = *rq;
  memset(rq, 0, sizeof(*rq));
  a->done = done;
  buf_init(&a->body, app->cfg->max_body);
  last_answer_init(&a->answer);
  /* Stored as "Name: value\r\n" lines: two more bytes a field than the
   * head's own store, which holds at most max_response_header_bytes. */
  buf_init(&a->resp_headers, 2 * app->cfg->max_response_header_bytes);
  response_head_init(&a->head, app->cfg->max_response_header_bytes);
  uv_timer_init(app->loop, &a->timer);
  a->timer.data = a;
  snprintf(a->finish.id, sizeof(a->finish.id), "%s", a->rq.id);
  a->route = route_table_route_of_row(app->routes, &a->rq);

  upstream_request_t r = {
      .method = a->rq.method,
      .target = route_upstream_target(a->route, a->rq.target, &a->target_owned),
      .headers = a->rq.headers ? a->rq.headers : "",
      .headers_len = a->rq.headers_len,
      .body = a->rq.body,
      .body_len = a->rq.body_len,
  };
  app->stats.retries++;
  a->sent_ns = uv_hrtime();
  a->xfer = r.target == NULL
                ? NULL
                : upstream_send(a->route->upstream, &r, &a->head, &attempt_upstream_ops, a);
  if (a->xfer == NULL) {
    snprintf(a->error, sizeof(a->error), "could not start the upstream request");
    uv_timer_start(&a->timer, attempt_timeout_cb, 0, 0);
    return a;
  }
  uv_timer_start(&a->timer, attempt_timeout_cb, app->cfg->upstream_timeout_ms,
                 app->cfg->upstream_timeout_ms);
  return a;
}

void attempt_cancel(attempt_t *a) {
  if (a->cancelled || a->finished)
    return;
  a->cancelled = true;
  upstream_cancel(a->xfer);
  a->xfer = NULL;
  attempt_finish(a, UPSTREAM_FAILED);
}

static void attempt_timer_closed(uv_handle_t *h) {
  attempt_t *a = h->data;
  free(a);
}

void attempt_free(attempt_t *a) {
  buf_free(&a->body);
  buf_free(&a->resp_headers);
  last_answer_free(&a->answer);
  response_head_free(&a->head);
  stored_request_free(&a->rq);
  free(a->target_owned);
  uv_close((uv_handle_t *)&a->timer, attempt_timer_closed);
}
