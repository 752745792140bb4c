#include "proxy/attempt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/retry_policy.h"
#include "proxy/upstream.h"
#include "proxy/upstream_request.h"

static void attempt_finish(attempt_t *a, CURLcode result);

static size_t attempt_header_cb(char *line, size_t size, size_t nitems, void *userp) {
  attempt_t *a = userp;
  size_t len = size * nitems;
  head_result_t r = response_head_line(&a->head, line, len);
  if (r == HEAD_ERROR) {
    snprintf(a->error, sizeof(a->error), "the upstream's answer head is malformed or too large");
    return 0;
  }
  /* The head is in: from now on the timer watches the body's flow. */
  if (r == HEAD_COMPLETE) {
    uv_timer_again(&a->timer);
    stats_upstream_answer(&a->app->stats, a->head.status, uv_hrtime() - a->sent_ns);
  }
  return len;
}

static size_t attempt_write_cb(char *data, size_t size, size_t nmemb, void *userp) {
  attempt_t *a = userp;
  size_t len = size * nmemb;
  uv_timer_again(&a->timer);
  size_t room = a->body.max - a->body.len;
  if (len > room) {
    a->truncated = true;
    buf_append(&a->body, data, room);
    return len; /* read on, keep what fits */
  }
  buf_append(&a->body, data, len);
  return len;
}

static void attempt_timeout_cb(uv_timer_t *t) {
  attempt_t *a = t->data;
  upstream_cancel(a->easy);
  snprintf(a->error, sizeof(a->error), "%s",
           a->head.complete ? "the answer's body stalled past --upstream-timeout"
                            : "no answer within --upstream-timeout");
  attempt_finish(a, CURLE_OPERATION_TIMEDOUT);
}

static void attempt_done_cb_curl(void *ctx, CURLcode result) {
  attempt_finish(ctx, result);
}

/* Decides the outcome from what came back. */
static void attempt_finish(attempt_t *a, CURLcode result) {
  const config_t *cfg = a->app->cfg;
  attempt_outcome_t *o = &a->outcome;
  if (a->finished)
    return;
  a->finished = true;
  uv_timer_stop(&a->timer);
  int64_t now = store_now_ms();
  memset(o, 0, sizeof(*o));
  if (a->cancelled) {
    o->kind = OUTCOME_RELEASE;
  } else if (result == CURLE_OK && a->head.complete &&
             !config_retryable_status(cfg, a->head.status)) {
    o->kind = OUTCOME_COMPLETED;
    o->last_status = a->head.status;
    o->response_status = a->head.status;
    response_head_serialize(&a->head, &a->resp_headers);
    o->response_headers = a->resp_headers.data ? a->resp_headers.data : "";
    o->response_headers_len = a->resp_headers.len;
    o->response_body = a->body.data ? a->body.data : "";
    o->response_body_len = a->body.len;
    if (a->truncated) {
      snprintf(a->error, sizeof(a->error), "the answer's body was over --max-body: kept truncated");
      o->last_error = a->error;
    }
  } else {
    bool answered = result == CURLE_OK && a->head.complete;
    if (!answered && a->error[0] == '\0')
      snprintf(a->error, sizeof(a->error), "%s", curl_easy_strerror(result));
    if (!a->head.complete)
      stats_upstream_answer(&a->app->stats, 0, uv_hrtime() - a->sent_ns);
    const char *retry_after = answered ? headers_get(&a->head.fields, "retry-after") : NULL;
    int64_t next = 0;
    bool retryable = answered || cfg->retry_on.network;
    bool dead = retry_policy_next(cfg, a->rq.attempts, a->rq.created_at, now, retry_after, &next);
    o->kind = retryable && !dead ? OUTCOME_RETRY : OUTCOME_DEAD;
    o->next_attempt_at = next;
    o->last_status = answered ? a->head.status : 0;
    o->last_error = answered ? NULL : a->error;
    if (o->kind == OUTCOME_DEAD && answered) {
      /* Say why it was given up; the status says what the upstream said. */
      snprintf(a->error, sizeof(a->error), "%s",
               cfg->max_attempts > 0 && a->rq.attempts >= (int64_t)cfg->max_attempts
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
  buf_init(&a->url, 8192 + app->cfg->max_header_bytes);
  buf_init(&a->body, app->cfg->max_body);
  buf_init(&a->resp_headers, app->cfg->max_response_header_bytes + 1024);
  response_head_init(&a->head, app->cfg->max_response_header_bytes);
  uv_timer_init(app->loop, &a->timer);
  a->timer.data = a;
  snprintf(a->finish.id, sizeof(a->finish.id), "%s", a->rq.id);

  upstream_request_t r = {
      .method = a->rq.method,
      .target = a->rq.target,
      .headers = a->rq.headers ? a->rq.headers : "",
      .headers_len = a->rq.headers_len,
      .body = a->rq.body,
      .body_len = a->rq.body_len,
  };
  a->easy = upstream_easy();
  if (a->easy == NULL ||
      upstream_request_setup(a->easy, app->cfg->upstream, &r, &a->slist, &a->url) != 0) {
    snprintf(a->error, sizeof(a->error), "could not prepare the upstream request");
    uv_timer_start(&a->timer, attempt_timeout_cb, 0, 0);
    return a;
  }
  curl_easy_setopt(a->easy, CURLOPT_HEADERFUNCTION, attempt_header_cb);
  curl_easy_setopt(a->easy, CURLOPT_HEADERDATA, a);
  curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, attempt_write_cb);
  curl_easy_setopt(a->easy, CURLOPT_WRITEDATA, a);
  uv_timer_start(&a->timer, attempt_timeout_cb, app->cfg->upstream_timeout_ms,
                 app->cfg->upstream_timeout_ms);
  app->stats.retries++;
  a->sent_ns = uv_hrtime();
  if (upstream_start(a->easy, attempt_done_cb_curl, a) != 0) {
    snprintf(a->error, sizeof(a->error), "could not start the upstream request");
    uv_timer_start(&a->timer, attempt_timeout_cb, 0, 0);
  }
  return a;
}

void attempt_cancel(attempt_t *a) {
  if (a->cancelled || a->finished)
    return;
  a->cancelled = true;
  upstream_cancel(a->easy);
  attempt_finish(a, CURLE_ABORTED_BY_CALLBACK);
}

static void attempt_timer_closed(uv_handle_t *h) {
  attempt_t *a = h->data;
  free(a);
}

void attempt_free(attempt_t *a) {
  upstream_release(a->easy);
  a->easy = NULL;
  curl_slist_free_all(a->slist);
  buf_free(&a->url);
  buf_free(&a->body);
  buf_free(&a->resp_headers);
  response_head_free(&a->head);
  stored_request_free(&a->rq);
  uv_close((uv_handle_t *)&a->timer, attempt_timer_closed);
}
