#include "proxy/http/http_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/deadline.h"
#include "proxy/http/http_status.h"
#include "proxy/log.h"
#include "proxy/http/request_parser.h"

/* Bytes read from a socket at once. The read buffer is shared by every
 * connection of the loop (bytes are parsed or copied before the next read),
 * so idle connections cost no buffer at all. */
#define CONN_READ_SIZE (64 * 1024)
/* Unparsed bytes a connection may hold while its request is in progress:
 * reading stops at CONN_READ_SIZE, so one more read fits under this. */
#define CONN_PENDING_MAX (2 * CONN_READ_SIZE)
/* After an answer that closes the connection, how long we keep reading
 * (and discarding) so the client gets our answer instead of a reset. */
#define CONN_LINGER_MS 2000
/* retryd's own part of an answer's head: status line and framing. */
#define CONN_OWN_HEAD_MAX 1024

typedef enum {
  CONN_IDLE,       /* between requests */
  CONN_READING,    /* a request has begun */
  CONN_READY,      /* a request is complete, not yet dispatched */
  CONN_DISPATCHED, /* a handler is answering */
  CONN_LINGER,     /* answer sent, write side shut, draining input */
} conn_state_t;

struct http_conn_s {
  uv_tcp_t tcp;
  deadline_t timer;
  int open_handles;
  http_conn_owner_t *srv; /* the owner: its lists and count are kept here */
  const config_t *cfg;
  list_t link;      /* in the owner's conns */
  list_t idle_link; /* in the owner's idle keep-alive list, oldest first (or in none) */

  request_parser_t parser;
  request_t req;
  conn_state_t state;
  buf_t pending;          /* received, not yet parsed */
  uint64_t body_due;      /* loop time by which the body must be in (--client-body-timeout) */
  bool refused;           /* the request was refused: answer, then close */
  bool reading;
  bool peer_eof;
  bool closing;
  bool close_after_flush;
  bool in_process;
  bool draining;

  const http_handler_ops_t *ops;
  void *ctx;
  size_t queued;
  bool above_high_water;
  int status;
  int upstream_status;
  bool forwarded;     /* a first attempt went upstream */
  char stored_id[40]; /* the stored request the answer is about, or "" */
  bool replay;        /* answered from an existing row (Idempotency-Key) */
  uint64_t bytes_out;
  bool logged;
};

typedef struct {
  uv_write_t req;
  http_conn_t *conn;
  size_t len;
  char data[];
} conn_write_t;

static char conn_read_buf[CONN_READ_SIZE];

static void conn_process(http_conn_t *c);
static void conn_update_reading(http_conn_t *c);

/* A request retryd refused before any handler saw it. */
static void conn_count_rejected(http_conn_t *c) {
  (*c->srv->rejected)++;
}
static void conn_begin_close_after_flush(http_conn_t *c);

/* ---- idle keep-alive connections ------------------------------------ */

/* Idle keep-alive connections are kept in the order they went idle, so
 * that at --max-connections the one idle longest can make room for a new
 * client (the server asks, http_conn_reclaim_idle). */
static void conn_idle_add(http_conn_t *c) {
  if (!list_linked(&c->idle_link))
    list_insert_tail(&c->srv->idle, &c->idle_link);
}

static void conn_idle_remove(http_conn_t *c) {
  list_remove(&c->idle_link);
}

bool http_conn_reclaim_idle(http_conn_owner_t *srv) {
  list_foreach(l, &srv->idle) {
    http_conn_t *c = list_entry(l, http_conn_t, idle_link);
    /* Idle means nothing is owed either way: no request begun, no answer
     * bytes still queued. */
    if (c->state == CONN_IDLE && c->queued == 0 && c->pending.len == 0 && !c->closing) {
      http_conn_close(c);
      return true;
    }
  }
  return false;
}

/* ---- timers ---------------------------------------------------------- */

static const char *conn_timeout_message(http_conn_t *c) {
  if (!request_parser_head_done(&c->parser))
    return "the request headers did not arrive within --client-timeout";
  if (uv_now(c->srv->loop) >= c->body_due)
    return "the request body did not arrive within --client-body-timeout";
  return "the request body stopped flowing for longer than --client-timeout";
}

static void conn_timer_cb(deadline_t *d) {
  http_conn_t *c = d->data;
  switch (c->state) {
  case CONN_READING:
    conn_count_rejected(c);
    c->refused = true;
    http_conn_error(c, 408, "request_timeout", conn_timeout_message(c));
    return;
  case CONN_IDLE:
  case CONN_LINGER:
    http_conn_close(c);
    return;
  case CONN_READY:
  case CONN_DISPATCHED:
    /* The client stopped reading the answer. */
    http_conn_close(c);
    return;
  }
}

static void conn_timer_start(http_conn_t *c, uint64_t ms) {
  deadline_set(&c->timer, ms);
}

/* A body must keep flowing (--client-timeout between pieces) and be
 * complete by body_due (--client-body-timeout), so a client that sends a
 * byte now and then cannot hold a connection forever. */
static void conn_body_timer(http_conn_t *c) {
  uint64_t now = uv_now(c->srv->loop);
  uint64_t left = c->body_due > now ? c->body_due - now : 0;
  conn_timer_start(c, left < c->cfg->client_timeout_ms ? left : c->cfg->client_timeout_ms);
}

/* ---- input ----------------------------------------------------------- */

/* The first byte of a request: it must now arrive within --client-timeout. */
static void conn_request_begun(http_conn_t *c) {
  conn_idle_remove(c);
  c->state = CONN_READING;
  c->req.started_ns = uv_hrtime();
  conn_timer_start(c, c->cfg->client_timeout_ms);
}

/* The head is in and checked. 0, or -1 when the connection closed. */
static int conn_head_done(http_conn_t *c) {
  c->body_due = uv_now(c->srv->loop) + c->cfg->client_body_timeout_ms;
  conn_body_timer(c);
  if (request_parser_expects_continue(&c->parser)) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = http_buf(cont, sizeof(cont) - 1);
    if (http_conn_sendv(c, &b, 1) != 0)
      return -1;
    c->bytes_out -= b.len; /* not part of the answer */
  }
  return 0;
}

/* Feeds bytes to the request parser; returns how many it consumed. A
 * complete request leaves the connection CONN_READY; on a refused request
 * the connection is answered and closing on return. */
static size_t conn_feed(http_conn_t *c, const char *data, size_t len) {
  size_t off = 0;
  for (;;) {
    bool begun = request_parser_in_message(&c->parser);
    size_t body = c->req.body.len;
    size_t used = 0;
    request_parser_result_t res = request_parser_feed(&c->parser, data + off, len - off, &used);
    off += used;
    if (!begun && request_parser_in_message(&c->parser))
      conn_request_begun(c);
    if (c->req.body.len != body && res == RP_MORE)
      conn_body_timer(c);
    switch (res) {
    case RP_MORE:
      return off;
    case RP_HEAD:
      /* Fed again even with nothing left: a request without a body is
       * complete right after its head. */
      if (conn_head_done(c) != 0)
        return len;
      continue;
    case RP_COMPLETE:
      c->state = CONN_READY;
      deadline_clear(&c->timer);
      return off;
    case RP_ERROR:
      conn_count_rejected(c);
      c->refused = true;
      http_conn_error(c, request_parser_status(&c->parser), request_parser_code(&c->parser),
                      request_parser_message(&c->parser));
      return len;
    }
  }
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = conn_read_buf;
  buf->len = sizeof(conn_read_buf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  http_conn_t *c = s->data;
  if (nread == 0)
    return; /* EAGAIN, not EOF */
  if (nread < 0) {
    if (nread != UV_EOF || c->state == CONN_IDLE || c->state == CONN_LINGER ||
        c->state == CONN_READING) {
      /* A reset, or an end in the middle of (or between) requests: no one
       * is left to answer. */
      http_conn_close(c);
      return;
    }
    /* A client may shut its sending side after a complete request and
     * still wait for the answer (half-close). */
    c->peer_eof = true;
    conn_update_reading(c);
    return;
  }
  if (c->state == CONN_LINGER)
    return; /* discarded */
  size_t used = 0;
  if (c->pending.len == 0 && (c->state == CONN_IDLE || c->state == CONN_READING)) {
    used = conn_feed(c, buf->base, (size_t)nread);
    if (c->closing)
      return;
  }
  if (used < (size_t)nread) {
    /* Cannot fail: reading stops before pending reaches CONN_READ_SIZE. */
    if (buf_append(&c->pending, buf->base + used, (size_t)nread - used) != 0) {
      http_conn_close(c);
      return;
    }
  }
  conn_process(c);
}

static void conn_update_reading(http_conn_t *c) {
  bool want = !c->closing && (!c->peer_eof || c->state == CONN_LINGER) &&
              (c->state == CONN_LINGER || c->pending.len < CONN_READ_SIZE);
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) == 0)
      c->reading = true;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

/* Parses what is pending and dispatches complete requests, one at a time.
 * Re-entrant calls (a handler answering synchronously) return at once; the
 * outer loop picks up the new state, so pipelines do not recurse. */
static void conn_process(http_conn_t *c) {
  if (c->in_process)
    return;
  c->in_process = true;
  while (!c->closing) {
    if (c->state == CONN_READY) {
      c->state = CONN_DISPATCHED;
      c->srv->dispatch(c->srv->app, c, &c->req);
      continue;
    }
    if (c->state != CONN_IDLE && c->state != CONN_READING)
      break;
    if (c->pending.len == 0)
      break;
    size_t used = conn_feed(c, c->pending.data, c->pending.len);
    if (c->closing)
      break;
    buf_consume(&c->pending, used);
    if (c->state != CONN_READY)
      break;
  }
  c->in_process = false;
  if (!c->closing) {
    if (c->peer_eof && (c->state == CONN_IDLE || c->state == CONN_READING))
      http_conn_close(c); /* nothing more will come */
    else
      conn_update_reading(c);
  }
}

/* ---- output ---------------------------------------------------------- */

static void conn_write_cb(uv_write_t *req, int status) {
  conn_write_t *w = (conn_write_t *)req;
  http_conn_t *c = w->conn;
  c->queued -= w->len;
  free(w);
  if (status < 0 || c->closing) {
    http_conn_close(c);
    return;
  }
  if (c->state == CONN_DISPATCHED) {
    /* Progress: the client is reading; stalls are timed from here. */
    if (c->queued > 0)
      conn_timer_start(c, c->cfg->client_timeout_ms);
    else
      deadline_clear(&c->timer);
  } else if (c->state == CONN_IDLE && c->queued == 0) {
    conn_timer_start(c, c->cfg->keepalive_timeout_ms);
  }
  if (c->above_high_water && c->queued <= c->cfg->write_high_water / 2) {
    c->above_high_water = false;
    if (c->ops != NULL && c->ops->drained != NULL)
      c->ops->drained(c->ctx);
  }
  if (c->queued == 0 && c->close_after_flush)
    conn_begin_close_after_flush(c);
}

int http_conn_sendv(http_conn_t *c, const uv_buf_t *bufs, unsigned nbufs) {
  if (c->closing || c->close_after_flush)
    return UV_ECANCELED;
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++)
    total += bufs[i].len;
  c->bytes_out += total;
  size_t skip = 0;
  if (c->queued == 0) {
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    if (n < 0 && n != UV_EAGAIN) {
      http_conn_close(c);
      return n;
    }
    skip = n > 0 ? (size_t)n : 0;
    if (skip == total)
      return 0;
  }
  conn_write_t *w = malloc(sizeof(*w) + (total - skip));
  if (w == NULL) {
    http_conn_close(c);
    return UV_ENOMEM;
  }
  w->conn = c;
  w->len = total - skip;
  size_t off = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    const char *p = bufs[i].base;
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(w->data + off, p + skip, len - skip);
    off += len - skip;
    skip = 0;
  }
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
  if (rc != 0) {
    free(w);
    http_conn_close(c);
    return rc;
  }
  if (c->queued == 0)
    conn_timer_start(c, c->cfg->client_timeout_ms);
  c->queued += w->len;
  if (c->queued > c->cfg->write_high_water)
    c->above_high_water = true;
  return 0;
}

request_t *http_conn_request(http_conn_t *c) {
  return &c->req;
}

size_t http_conn_queued(const http_conn_t *c) {
  return c->queued;
}

bool http_conn_over_high_water(const http_conn_t *c) {
  return c->queued > c->cfg->write_high_water;
}

bool http_conn_may_keep_alive(const http_conn_t *c) {
  return c->req.keep_alive && !c->peer_eof && !c->draining && !c->refused;
}

int http_conn_append_persistence(const http_conn_t *c, bool keep_alive, buf_t *head) {
  if (!keep_alive)
    return buf_append_str(head, "Connection: close\r\n");
  int rc = buf_append_str(head, "Keep-Alive: timeout=");
  rc = rc ? rc : buf_append_uint(head, c->cfg->keepalive_timeout_ms / 1000);
  rc = rc ? rc : buf_append(head, "\r\n", 2);
  if (rc == 0 && c->req.http_major == 1 && c->req.http_minor == 0)
    rc = buf_append_str(head, "Connection: keep-alive\r\n");
  return rc;
}

void http_conn_note_status(http_conn_t *c, int status, int upstream_status) {
  c->status = status;
  c->upstream_status = upstream_status;
}

void http_conn_note_forwarded(http_conn_t *c) { c->forwarded = true; }

void http_conn_note_stored(http_conn_t *c, const char *id, bool replay) {
  snprintf(c->stored_id, sizeof(c->stored_id), "%s", id);
  c->replay = replay;
}

void http_conn_attach(http_conn_t *c, const http_handler_ops_t *ops, void *ctx) {
  c->ops = ops;
  c->ctx = ctx;
}

/* One access-log line per request, once, whichever way it ended. Only the
 * path is logged: queries can carry tokens. */
static void conn_log_request(http_conn_t *c, const char *outcome) {
  if (c->logged || c->req.started_ns == 0 || !request_parser_head_done(&c->parser))
    return;
  c->logged = true;
  const request_t *r = &c->req;
  log_line_t l;
  log_begin(&l, LOG_INFO, "request");
  log_str(&l, "method", r->method);
  size_t plen = strcspn(r->target.data ? r->target.data : "", "?");
  log_strn(&l, "path", r->target.data ? r->target.data : "", plen);
  log_int(&l, "status", c->status);
  /* Only what the upstream said to this request: an Idempotency-Key
   * repeat answered from the queue sent nothing. */
  if (c->upstream_status > 0 && c->forwarded)
    log_int(&l, "upstream_status", c->upstream_status);
  else
    log_str(&l, "upstream_status", NULL);
  log_ms(&l, "duration_ms", (double)(uv_hrtime() - r->started_ns) / 1e6);
  log_int(&l, "bytes_in", (int64_t)r->bytes_in);
  log_int(&l, "bytes_out", (int64_t)c->bytes_out);
  if (outcome != NULL)
    log_str(&l, "outcome", outcome);
  if (c->stored_id[0] != '\0')
    log_str(&l, "id", c->stored_id);
  if (c->replay)
    log_bool(&l, "replay", true);
  log_end(&l);
}

/* Back to reading the next request on the same connection. */
static void conn_next_request(http_conn_t *c) {
  request_reset(&c->req);
  c->ops = NULL;
  c->ctx = NULL;
  c->status = 0;
  c->upstream_status = 0;
  c->forwarded = false;
  c->stored_id[0] = '\0';
  c->replay = false;
  c->bytes_out = 0;
  c->logged = false;
  c->refused = false;
  c->state = CONN_IDLE;
  request_parser_next(&c->parser);
  if (c->draining && c->pending.len == 0) {
    http_conn_close(c);
    return;
  }
  if (c->queued == 0)
    conn_timer_start(c, c->cfg->keepalive_timeout_ms);
  conn_process(c);
  if (!c->closing && c->state == CONN_IDLE)
    conn_idle_add(c); /* no pipelined request began */
}

void http_conn_finish(http_conn_t *c, bool keep_alive) {
  if (c->closing)
    return;
  conn_log_request(c, NULL);
  if (!keep_alive || !http_conn_may_keep_alive(c)) {
    c->ops = NULL;
    c->ctx = NULL;
    c->close_after_flush = true;
    if (c->queued == 0)
      conn_begin_close_after_flush(c);
    return;
  }
  conn_next_request(c);
}

void http_conn_abort(http_conn_t *c) {
  conn_log_request(c, "aborted");
  c->ops = NULL;
  c->ctx = NULL;
  http_conn_close(c);
}

void http_conn_respond(http_conn_t *c, int status, const char *extra_headers,
                       const char *content_type, const char *body, size_t len) {
  bool keep = http_conn_may_keep_alive(c) && request_parser_head_done(&c->parser);
  buf_t head;
  buf_init(&head, c->cfg->max_response_header_bytes + CONN_OWN_HEAD_MAX);
  int rc = buf_append_str(&head, "HTTP/1.1 ");
  if (rc == 0)
    rc = buf_append_int(&head, status);
  if (rc == 0)
    rc = buf_append(&head, " ", 1);
  if (rc == 0)
    rc = buf_append_str(&head, http_status_reason(status));
  if (rc == 0)
    rc = buf_append(&head, "\r\n", 2);
  if (rc == 0 && content_type != NULL)
    rc = buf_append_field(&head, "Content-Type", content_type);
  if (rc == 0)
    rc = buf_append_str(&head, "Content-Length: ");
  if (rc == 0)
    rc = buf_append_uint(&head, len);
  if (rc == 0)
    rc = buf_append(&head, "\r\n", 2);
  if (rc == 0 && extra_headers != NULL)
    rc = buf_append_str(&head, extra_headers);
  if (rc == 0)
    rc = http_conn_append_persistence(c, keep, &head);
  if (rc == 0)
    rc = buf_append(&head, "\r\n", 2);
  if (rc != 0) {
    buf_free(&head);
    http_conn_close(c);
    return;
  }
  uv_buf_t bufs[2] = {uv_buf_init(head.data, (unsigned)head.len), http_buf(body, len)};
  if (c->state != CONN_DISPATCHED)
    c->state = CONN_DISPATCHED; /* an answer to a rejected request */
  c->status = status;
  rc = http_conn_sendv(c, bufs, c->req.is_head || len == 0 ? 1 : 2);
  buf_free(&head);
  if (rc == 0)
    http_conn_finish(c, keep);
}

void http_conn_error_with(http_conn_t *c, int status, const char *extra_headers, const char *code,
                          const char *message) {
  buf_t body;
  size_t mlen = strlen(message);
  /* Room for the message escaped (six bytes a byte at worst). */
  buf_init(&body, 64 + strlen(code) + 6 * mlen);
  int rc = buf_printf(&body, "{\"error\":\"%s\",\"message\":\"", code);
  rc = rc ? rc : buf_append_json_escaped(&body, message, mlen);
  rc = rc ? rc : buf_append_str(&body, "\"}\n");
  if (rc != 0) {
    /* Out of memory: a fixed body rather than half a document. */
    static const char fallback[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}\n";
    http_conn_respond(c, status, extra_headers, "application/json", fallback,
                      sizeof(fallback) - 1);
  } else {
    http_conn_respond(c, status, extra_headers, "application/json", body.data, body.len);
  }
  buf_free(&body);
}

void http_conn_error(http_conn_t *c, int status, const char *code, const char *message) {
  http_conn_error_with(c, status, NULL, code, message);
}

/* ---- closing --------------------------------------------------------- */

static void conn_shutdown_cb(uv_shutdown_t *req, int status) {
  http_conn_t *c = req->data;
  free(req);
  if (status < 0 || c->closing || c->peer_eof) {
    http_conn_close(c);
    return;
  }
  c->state = CONN_LINGER;
  conn_timer_start(c, CONN_LINGER_MS);
  conn_update_reading(c);
}

static void conn_begin_close_after_flush(http_conn_t *c) {
  if (c->closing || c->state == CONN_LINGER)
    return;
  c->close_after_flush = false; /* shutdown is under way */
  c->state = CONN_LINGER;
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req == NULL) {
    http_conn_close(c);
    return;
  }
  req->data = c;
  if (uv_shutdown(req, (uv_stream_t *)&c->tcp, conn_shutdown_cb) != 0) {
    free(req);
    http_conn_close(c);
  }
}

static void conn_closed_cb(uv_handle_t *h) {
  http_conn_t *c = h->data;
  if (--c->open_handles > 0)
    return;
  if (c->ops != NULL && c->ops->client_gone != NULL) {
    const http_handler_ops_t *ops = c->ops;
    c->ops = NULL;
    ops->client_gone(c->ctx);
  }
  request_free(&c->req);
  buf_free(&c->pending);
  http_conn_owner_t *srv = c->srv;
  list_remove(&c->link);
  free(c);
  srv->nconns--;
  srv->closed(srv);
}

void http_conn_close(http_conn_t *c) {
  if (c->closing)
    return;
  c->closing = true;
  conn_idle_remove(c);
  if (c->ops != NULL)
    conn_log_request(c, "client_closed");
  uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
  deadline_close(&c->timer, conn_closed_cb);
}

void http_conn_drain(http_conn_t *c) {
  c->draining = true;
  if (!c->closing && c->state == CONN_IDLE && c->pending.len == 0 && c->queued == 0)
    http_conn_close(c);
}

int http_conn_start(http_conn_owner_t *srv, uv_stream_t *listener) {
  http_conn_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return UV_ENOMEM;
  c->srv = srv;
  c->cfg = srv->cfg;
  request_init(&c->req, srv->cfg);
  buf_init(&c->pending, CONN_PENDING_MAX);
  request_parser_init(&c->parser, &c->req, srv->cfg);
  uv_tcp_init(srv->loop, &c->tcp);
  deadline_init(srv->loop, &c->timer, conn_timer_cb, c);
  c->tcp.data = c;
  c->open_handles = 2;
  list_init(&c->idle_link);
  list_insert_head(&srv->conns, &c->link);
  srv->nconns++;
  int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
  if (rc != 0) {
    http_conn_close(c);
    return rc;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->state = CONN_IDLE;
  conn_timer_start(c, c->cfg->client_timeout_ms);
  conn_update_reading(c);
  return 0;
}

void http_conn_drain_all(http_conn_owner_t *owner) {
  list_foreach_safe(l, &owner->conns) {
    http_conn_drain(list_entry(l, http_conn_t, link));
  }
}

void http_conn_close_all(http_conn_owner_t *owner) {
  list_foreach_safe(l, &owner->conns) {
    http_conn_close(list_entry(l, http_conn_t, link));
  }
}
