#include "proxy/queue/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/app.h"
#include "proxy/queue/route_table.h"
#include "proxy/buf.h"
#include "proxy/deadline.h"
#include "proxy/queue/enqueue.h"
#include "proxy/queue/last_answer.h"
#include "proxy/http/headers.h"
#include "proxy/http/http_status.h"
#include "proxy/upstream/response_head.h"
#include "proxy/queue/retry_decision.h"
#include "proxy/upstream/upstream.h"
#include "proxy/upstream/upstream_request.h"

/* Room for the status line and framing headers retryd adds to a head. */
#define FORWARD_HEAD_SLACK 512

typedef enum {
  FRAME_NONE,    /* no body: HEAD, 1xx, 204, 304 */
  FRAME_LENGTH,  /* the upstream's Content-Length */
  FRAME_CHUNKED, /* length unknown, HTTP/1.1 client */
  FRAME_CLOSE,   /* length unknown, HTTP/1.0 client: the close ends it */
} frame_t;

typedef struct {
  app_t *app;
  http_conn_t *conn;
  request_t *req;
  upstream_xfer_t *xfer;
  buf_t headers; /* the forwarded fields, as upstream_request_t wants them */
  response_head_t head;
  bool head_sent; /* committed to relaying this answer */
  buf_t head_out; /* the head, held back to go out with the first body bytes */
  /* A retryable answer: not relayed; its body is read and dropped, then
   * the request is stored. */
  bool absorb;
  last_answer_t answer; /* what the stored row keeps of it */
  char retry_after[128];
  uint64_t sent_ns; /* for the upstream latency figure */
  frame_t frame;
  bool keep_alive;
  bool paused;
  deadline_t timer;
  route_t *route;
  char flow[STORAGE_FLOW_MAX]; /* the flow key it is stored under */
  bool stores;                 /* its route stores this method */
  int64_t in_path_left;        /* not stored: tries left before the answer is relayed */
  bool in_path_waiting;        /* the timer waits for the next in-path try */
  char *target_owned;          /* the target without its route's prefix, when made */
} forward_t;

static void forward_client_gone(void *ctx);
static void forward_drained(void *ctx);
static void forward_timeout_cb(deadline_t *d);

static const http_handler_ops_t forward_ops = {
    .client_gone = forward_client_gone,
    .drained = forward_drained,
};

/* Finished forwards are kept for the next requests with their buffers
 * (forwarded fields, the answer's head, the head going out): malloc and
 * free were an eighth of a proxied request's instructions. Bounded: at
 * most FORWARD_SPARE_MAX are kept, and a buffer that grew past
 * FORWARD_SPARE_KEEP is freed, not kept. */
#define FORWARD_SPARE_MAX 256
#define FORWARD_SPARE_KEEP 16384

static struct {
  forward_t *list[FORWARD_SPARE_MAX];
  size_t n;
} spare;

static void forward_buf_trim(buf_t *b) {
  if (b->cap > FORWARD_SPARE_KEEP)
    buf_free(b);
  buf_reset(b);
}

static void forward_timer_closed(uv_handle_t *h) {
  forward_t *f = h->data;
  if (spare.n < FORWARD_SPARE_MAX) {
    forward_buf_trim(&f->headers);
    forward_buf_trim(&f->head_out);
    if (f->head.fields.data.cap > FORWARD_SPARE_KEEP)
      response_head_free(&f->head);
    last_answer_reset(&f->answer);
    spare.list[spare.n++] = f;
    return;
  }
  last_answer_free(&f->answer);
  response_head_free(&f->head);
  buf_free(&f->head_out);
  buf_free(&f->headers);
  free(f);
}

/* A forward with empty buffers: a spare one, or a new one. */
static forward_t *forward_take(const config_t *cfg) {
  forward_t *f;
  if (spare.n > 0) {
    f = spare.list[--spare.n];
    buf_t headers = f->headers, head_out = f->head_out;
    response_head_t head = f->head;
    last_answer_t answer = f->answer;
    memset(f, 0, sizeof(*f));
    f->headers = headers;
    f->head_out = head_out;
    f->head = head;
    f->answer = answer;
    response_head_reset(&f->head);
    return f;
  }
  f = calloc(1, sizeof(*f));
  if (f == NULL)
    return NULL;
  buf_init(&f->headers, cfg->max_header_bytes + 1024);
  response_head_init(&f->head, cfg->max_response_header_bytes);
  buf_init(&f->head_out, cfg->max_response_header_bytes + FORWARD_HEAD_SLACK);
  last_answer_init(&f->answer);
  return f;
}

/* The transfer is over (finished, failed or cancelled): free everything. */
static void forward_destroy(forward_t *f) {
  f->xfer = NULL;
  free(f->target_owned);
  f->target_owned = NULL;
  deadline_close(&f->timer, forward_timer_closed);
}

/* ---- the answer's head ----------------------------------------------- */

static int forward_send_head(forward_t *f) {
  const request_t *req = f->req;
  headers_t *h = &f->head.fields;
  int status = f->head.status;
  const char *connection = headers_connection_names(h);
  bool chunked_upstream = headers_get(h, "transfer-encoding") != NULL;
  bool has_length = headers_get(h, "content-length") != NULL && !chunked_upstream;
  bool no_length = status == 204 || status == 304;

  if (req->is_head || status < 200 || status == 204 || status == 304)
    f->frame = FRAME_NONE;
  else if (has_length)
    f->frame = FRAME_LENGTH;
  else if (req->http_minor >= 1)
    f->frame = FRAME_CHUNKED;
  else
    f->frame = FRAME_CLOSE;
  f->keep_alive = http_conn_may_keep_alive(f->conn) && f->frame != FRAME_CLOSE;

  buf_t *head = &f->head_out;
  buf_reset(head);
  /* The status is three digits (response_head_status parsed it so). */
  char line[16] = "HTTP/1.1 ";
  line[9] = (char)('0' + status / 100 % 10);
  line[10] = (char)('0' + status / 10 % 10);
  line[11] = (char)('0' + status % 10);
  line[12] = ' ';
  int rc = buf_append(head, line, 13);
  if (rc == 0)
    rc = buf_append_str(head, f->head.reason[0] ? f->head.reason : http_status_reason(status));
  if (rc == 0)
    rc = buf_append(head, "\r\n", 2);
  for (size_t i = 0; rc == 0 && i < h->count; i++) {
    const char *name = headers_name(h, i);
    if (headers_is_hop_by_hop(name, connection))
      continue;
    if ((chunked_upstream || no_length) && strcasecmp(name, "content-length") == 0)
      continue; /* next to chunked framing a length is not to be trusted;
                   a 204 or 304 has no body, so no length to tell */
    rc = buf_append_field(head, name, headers_value(h, i));
  }
  if (rc == 0 && f->frame == FRAME_CHUNKED)
    rc = buf_append_str(head, "Transfer-Encoding: chunked\r\n");
  if (rc == 0)
    rc = http_conn_append_persistence(f->conn, f->keep_alive, head);
  if (rc == 0)
    rc = buf_append(head, "\r\n", 2);
  if (rc == 0) {
    /* Held back: one write then carries the head and the first body bytes
     * (a small answer costs one syscall, not two). */
    http_conn_note_status(f->conn, status, status);
    f->head_sent = true;
    return 0;
  }
  buf_reset(head);
  return rc;
}

/* Sends bufs after the held-back head, if it is still waiting. */
static int forward_send(forward_t *f, uv_buf_t *bufs, unsigned n) {
  uv_buf_t all[4];
  unsigned k = 0;
  if (f->head_out.len > 0)
    all[k++] = uv_buf_init(f->head_out.data, (unsigned)f->head_out.len);
  for (unsigned i = 0; i < n && k < 4; i++)
    all[k++] = bufs[i];
  int rc = http_conn_sendv(f->conn, all, k);
  buf_reset(&f->head_out); /* sent, or copied by http_conn */
  return rc;
}

/* A retryable answer tells its flow (a capacity signal pauses it). */
static void forward_note_route(forward_t *f, int status, const char *retry_after) {
  flow_entry_t *e = route_table_flow(f->app->routes, f->flow, store_now_ms());
  if (e != NULL)
    route_note(f->route, &e->flow, f->flow, status, true, retry_after, false, store_now_ms());
}

static int forward_head_cb(void *ctx) {
  forward_t *f = ctx;
  stats_upstream_answer(&f->app->stats, f->head.status, uv_hrtime() - f->sent_ns);
  deadline_set(&f->timer, f->app->cfg->upstream_timeout_ms);
  if (retry_decide_status_retryable(&f->route->retry.retry_on, f->head.status)) {
    const char *ra = headers_get(&f->head.fields, "retry-after");
    /* Out of capacity says so for the whole route: known at the head. */
    forward_note_route(f, f->head.status, ra);
    if (!f->stores && f->in_path_left == 0)
      return forward_send_head(f); /* not stored: relayed as it is */
    f->absorb = true;
    last_answer_keep_head(&f->answer, &f->head.fields);
    size_t n = ra ? strnlen(ra, sizeof(f->retry_after) - 1) : 0;
    memcpy(f->retry_after, ra ? ra : "", n);
    f->retry_after[n] = '\0';
    return 0;
  }
  return forward_send_head(f);
}

/* ---- the answer's body ----------------------------------------------- */

static int forward_body_cb(void *ctx, const char *data, size_t len) {
  forward_t *f = ctx;
  if (f->absorb) {
    deadline_set(&f->timer, f->app->cfg->upstream_timeout_ms);
    last_answer_keep_body(&f->answer, data, len);
    return UPSTREAM_TAKEN;
  }
  if (!f->head_sent)
    return UPSTREAM_ABORT;
  if (f->frame == FRAME_NONE || len == 0)
    return UPSTREAM_TAKEN;
  if (http_conn_over_high_water(f->conn)) {
    /* The client fell behind: the upstream waits until it drains. */
    f->paused = true;
    deadline_clear(&f->timer);
    return UPSTREAM_PAUSE;
  }
  char size_line[24];
  uv_buf_t bufs[3];
  unsigned n = 0;
  if (f->frame == FRAME_CHUNKED) {
    int sl = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
    bufs[n++] = uv_buf_init(size_line, (unsigned)sl);
  }
  bufs[n++] = http_buf(data, len);
  if (f->frame == FRAME_CHUNKED)
    bufs[n++] = http_buf("\r\n", 2);
  if (forward_send(f, bufs, n) != 0)
    return UPSTREAM_ABORT;
  deadline_set(&f->timer, f->app->cfg->upstream_timeout_ms);
  return UPSTREAM_TAKEN;
}

static void forward_drained(void *ctx) {
  forward_t *f = ctx;
  if (!f->paused)
    return;
  f->paused = false;
  deadline_set(&f->timer, f->app->cfg->upstream_timeout_ms);
  /* May finish the transfer and free f: nothing after this line. */
  upstream_resume(f->xfer);
}

/* ---- endings --------------------------------------------------------- */

/* The first attempt ended without a final answer relayed whole: what
 * retry_decide() says it means. */
static void forward_fail(forward_t *f, attempt_end_t end, const char *what) {
  http_conn_t *c = f->conn;
  if (!f->head.complete) /* an answer's head was counted when it came */
    stats_upstream_answer(&f->app->stats, 0, uv_hrtime() - f->sent_ns);
  int status = end == ENDED_TIMEOUT ? 504 : 502;
  char msg[512];
  retry_decision_t d =
      retry_decide(&f->route->retry.retry_on, f->head.complete ? f->head.status : 0, end);
  if (!f->stores && (d == DECISION_RETRY_ANSWER || d == DECISION_RETRY_NO_ANSWER)) {
    /* Not stored: relayed as it is (what of it went out already is cut),
     * or, without an answer, retryd's own error. */
    d = f->head_sent ? DECISION_BROKEN_FINAL : DECISION_FAIL_NO_ANSWER;
  }
  switch (d) {
  case DECISION_RETRY_ANSWER:
    enqueue_store(f->app, c, f->req, &f->headers, f->route, f->flow, f->head.status, NULL,
                  f->retry_after, &f->answer);
    return;
  case DECISION_RETRY_NO_ANSWER:
    snprintf(msg, sizeof(msg), "%s", what);
    enqueue_store(f->app, c, f->req, &f->headers, f->route, f->flow, 0, msg, NULL, NULL);
    return;
  case DECISION_BROKEN_FINAL:
    if (f->head_sent && f->head_out.len == 0) {
      http_conn_abort(c); /* part of it reached the client: cut it */
      return;
    }
    /* Nothing reached the client yet (the head waits for the first body
     * bytes): it can still get a clean error. */
    buf_reset(&f->head_out);
    break;
  case DECISION_FINAL:
  case DECISION_FAIL_NO_ANSWER:
    break;
  }
  snprintf(msg, sizeof(msg), "upstream: %s", what);
  http_conn_note_status(c, status, f->head.complete ? f->head.status : 0);
  http_conn_error(c, status, status == 504 ? "gateway_timeout" : "bad_gateway", msg);
}

/* Whether the first attempt of a method its route does not store gets
 * another try in the path: after a retryable answer or none, while its
 * budget lasts. The timer then waits the route's delay. */
static bool forward_try_again(forward_t *f, upstream_result_t result) {
  if (f->stores || f->in_path_left == 0 || f->head_sent)
    return false;
  bool retryable =
      result == UPSTREAM_DONE
          ? f->absorb
          : (f->head.complete
                 ? retry_decide_status_retryable(&f->route->retry.retry_on, f->head.status)
                 : f->route->retry.retry_on.network);
  if (!retryable)
    return false;
  if (!f->head.complete) {
    stats_upstream_answer(&f->app->stats, 0, uv_hrtime() - f->sent_ns);
    forward_note_route(f, 0, NULL);
  }
  f->in_path_left--;
  f->in_path_waiting = true;
  f->xfer = NULL;
  deadline_set(&f->timer, (uint64_t)f->route->in_path_delay_ms);
  return true;
}

static void forward_done_cb(void *ctx, upstream_result_t result, const char *error) {
  forward_t *f = ctx;
  deadline_clear(&f->timer);
  if (forward_try_again(f, result))
    return;
  /* Detach first: finishing may dispatch the next pipelined request, whose
   * handler attaches itself to the same connection. */
  http_conn_attach(f->conn, NULL, NULL);
  if (result == UPSTREAM_DONE && f->absorb) {
    enqueue_store(f->app, f->conn, f->req, &f->headers, f->route, f->flow, f->head.status, NULL,
                  f->retry_after, &f->answer);
  } else if (result == UPSTREAM_DONE && f->head_sent) {
    uv_buf_t end = http_buf("0\r\n\r\n", 5);
    int rc = 0;
    if (f->frame == FRAME_CHUNKED || f->head_out.len > 0)
      rc = forward_send(f, &end, f->frame == FRAME_CHUNKED ? 1 : 0);
    if (rc == 0)
      http_conn_finish(f->conn, f->keep_alive);
  } else if (result == UPSTREAM_DONE) {
    forward_fail(f, ENDED_BROKEN, "the answer ended before its headers");
  } else {
    forward_fail(f, result == UPSTREAM_TIMEDOUT ? ENDED_TIMEOUT : ENDED_BROKEN,
                 error ? error : "the answer could not be relayed");
  }
  forward_destroy(f);
}

static bool forward_send_upstream(forward_t *f);

static void forward_timeout_cb(deadline_t *d) {
  forward_t *f = d->data;
  if (f->in_path_waiting) {
    /* The next in-path try of a method its route does not store. */
    f->in_path_waiting = false;
    f->absorb = false;
    response_head_reset(&f->head);
    if (forward_send_upstream(f))
      return;
    http_conn_attach(f->conn, NULL, NULL);
    http_conn_error(f->conn, 502, "bad_gateway", "could not start the upstream request");
    forward_destroy(f);
    return;
  }
  upstream_xfer_t *xfer = f->xfer;
  if (forward_try_again(f, UPSTREAM_TIMEDOUT)) {
    upstream_cancel(xfer);
    return;
  }
  upstream_cancel(f->xfer);
  http_conn_attach(f->conn, NULL, NULL);
  forward_fail(f, ENDED_TIMEOUT, retry_decision_timeout_text(f->head.complete));
  forward_destroy(f);
}

static void forward_client_gone(void *ctx) {
  forward_t *f = ctx;
  upstream_cancel(f->xfer);
  forward_destroy(f);
}

/* ---- the request ----------------------------------------------------- */

static void forward_resent_cb(void *ctx, const char *why) {
  forward_t *f = ctx;
  upstream_note_resent(&f->app->stats, &f->sent_ns, NULL, f->req->method, f->req->target.data, why);
}

static const upstream_ops_t forward_upstream_ops = {
    .head = forward_head_cb,
    .body = forward_body_cb,
    .done = forward_done_cb,
    .resent = forward_resent_cb,
};

/* The route holds req back (paused, or over its rate limit): it is stored
 * unsent, due when the route expects to send again, and answered 202. */
static void forward_hold(struct app_s *app, http_conn_t *c, request_t *req, route_t *r,
                         flow_entry_t *e, int64_t now) {
  buf_t fields;
  buf_init(&fields, app->cfg->max_header_bytes + 1024);
  if (upstream_request_headers(&req->headers, &fields) != 0) {
    buf_free(&fields);
    http_conn_error(c, 502, "bad_gateway", "could not start the upstream request");
    return;
  }
  char why[96];
  flow_state_t st = flow_state(&e->flow, now);
  snprintf(why, sizeof(why), "held: the route is %s",
           st == FLOW_OPEN ? "over its rate limit" : flow_state_name(st));
  enqueue_held(app, c, req, &fields, r, e->key, now, why);
  buf_free(&fields);
}

static const char *forward_request_header(void *arg, const char *name) {
  return headers_get(&((request_t *)arg)->headers, name);
}

/* Sends f's request upstream (again, for an in-path try). */
static bool forward_send_upstream(forward_t *f) {
  const request_t *req = f->req;
  upstream_request_t r = {
      .method = req->method,
      .target = f->target_owned != NULL
                    ? f->target_owned
                    : route_upstream_target(f->route, req->target.data, &f->target_owned),
      .headers = f->headers.data ? f->headers.data : "",
      .headers_len = f->headers.len,
      .body = req->has_body ? (req->body.data ? req->body.data : "") : NULL,
      .body_len = req->body.len,
  };
  if (r.target == NULL)
    return false;
  f->sent_ns = uv_hrtime();
  f->xfer = upstream_send(f->route->upstream, &r, &f->head, &forward_upstream_ops, f);
  if (f->xfer == NULL)
    return false;
  deadline_set(&f->timer, f->app->cfg->upstream_timeout_ms);
  return true;
}

void forward_start(struct app_s *app, http_conn_t *c, request_t *req) {
  int64_t now = store_now_ms();
  route_table_t *t = app->routes;
  route_t *r = route_match(t->routes, t->n, &t->dflt, req->method, req->target.data,
                           forward_request_header, req);
  char key[STORAGE_FLOW_MAX];
  route_flow_key(r, r->partition_by[0] ? headers_get(&req->headers, r->partition_by) : NULL, key,
                 sizeof(key));
  bool stores = route_stores_method(r, req->method);
  /* Held only where it can be stored: with the store failing, sending is
   * the request's one chance (a final answer is relayed as ever), and the
   * route is not asked, so it neither counts it held nor spends a token. A
   * method the route does not store is not held either: it is sent. */
  if (stores && store_writable(app->store)) {
    flow_entry_t *e = route_table_flow(t, key, now);
    if (e != NULL && !flow_take_first(&e->flow, now)) {
      forward_hold(app, c, req, r, e, now);
      return;
    }
  }
  forward_t *f = forward_take(app->cfg);
  if (f == NULL) {
    http_conn_error(c, 503, "unavailable", "out of memory");
    return;
  }
  f->app = app;
  f->conn = c;
  f->req = req;
  f->route = r;
  f->stores = stores;
  f->in_path_left = stores ? 0 : r->in_path_retries;
  memcpy(f->flow, key, sizeof(f->flow));
  deadline_init(app->loop, &f->timer, forward_timeout_cb, f);
  bool sent = upstream_request_headers(&req->headers, &f->headers) == 0 && forward_send_upstream(f);
  if (!sent) {
    http_conn_error(c, 502, "bad_gateway", "could not start the upstream request");
    forward_destroy(f);
    return;
  }
  http_conn_attach(c, &forward_ops, f);
  http_conn_note_forwarded(c);
  app->stats.forwarded++;
}
