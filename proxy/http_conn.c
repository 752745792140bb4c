#include "proxy/http_conn.h"

#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/deadline.h"
#include "proxy/http_status.h"
#include "proxy/log.h"
#include "proxy/server.h"

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
/* Bytes a header field costs beyond its name and value (": " and CRLF),
 * so many tiny fields also hit the header cap. */
#define CONN_FIELD_OVERHEAD 4
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
  server_t *srv;
  const config_t *cfg;
  http_conn_t *prev, *next; /* server's list */

  llhttp_t parser;
  request_t req;
  conn_state_t state;
  buf_t pending;          /* received, not yet parsed */
  size_t header_bytes;
  bool headers_done;
  bool reading;
  bool peer_eof;
  bool closing;
  bool close_after_flush;
  bool in_process;
  bool upgrade;           /* llhttp saw Upgrade/CONNECT: no further parsing */
  bool draining;
  /* llhttp 8 skips the two bytes after chunk data without looking at them;
   * we check them ourselves. feed_end bounds the bytes being parsed, and
   * crlf_left says how many of "\r\n" are still to come in the next feed. */
  const char *feed_start, *feed_end;
  int crlf_left;
  /* llhttp 8 hands an obs-fold continuation over as one more piece of the
   * value. A legitimate second piece only happens when the value was cut by
   * the end of one read and goes on at the start of the next. */
  bool value_open;
  bool value_cut;
  /* Set by a parser callback that rejects the request; answered after
   * llhttp_execute returns. */
  int reject_status;
  const char *reject_code;
  const char *reject_message;

  const http_handler_ops_t *ops;
  void *ctx;
  size_t queued;
  bool above_high_water;
  int status;
  int upstream_status;
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
static llhttp_settings_t conn_settings;
static bool conn_settings_ready;

static void conn_process(http_conn_t *c);
static void conn_update_reading(http_conn_t *c);

/* A request retryd refused before any handler saw it. */
static void conn_count_rejected(http_conn_t *c) {
  (*c->srv->rejected)++;
}
static void conn_begin_close_after_flush(http_conn_t *c);

/* ---- timers ---------------------------------------------------------- */

static void conn_timer_cb(deadline_t *d) {
  http_conn_t *c = d->data;
  switch (c->state) {
  case CONN_READING:
    conn_count_rejected(c);
    http_conn_error(c, 408, "request_timeout", "the request did not arrive within --client-timeout");
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

/* ---- parser callbacks ------------------------------------------------ */

static http_conn_t *conn_of(llhttp_t *p) {
  return p->data;
}

static int conn_reject(http_conn_t *c, int status, const char *code, const char *message) {
  c->reject_status = status;
  c->reject_code = code;
  c->reject_message = message;
  return HPE_USER;
}

static int conn_count_header_bytes(http_conn_t *c, size_t len) {
  c->header_bytes += len;
  if (c->header_bytes > c->cfg->max_header_bytes)
    return conn_reject(c, 431, "headers_too_large",
                       "the request line and headers exceed the 64KiB limit");
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  http_conn_t *c = conn_of(p);
  c->state = CONN_READING;
  c->req.started_ns = uv_hrtime();
  conn_timer_start(c, c->cfg->client_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = conn_of(p);
  if (conn_count_header_bytes(c, len) != 0)
    return HPE_USER;
  if (buf_append(&c->req.target, at, len) != 0)
    return conn_reject(c, 431, "headers_too_large", "the request target is too long");
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = conn_of(p);
  if (conn_count_header_bytes(c, len) != 0)
    return HPE_USER;
  if (headers_name_piece(&c->req.headers, at, len) != 0)
    return conn_reject(c, 431, "headers_too_large", "the request headers are too large");
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = conn_of(p);
  if (c->value_open && !(c->value_cut && at == c->feed_start))
    return conn_reject(c, 400, "bad_request", "obs-fold (a header line continued) is not accepted");
  c->value_open = true;
  c->value_cut = at + len == c->feed_end;
  if (conn_count_header_bytes(c, len) != 0)
    return HPE_USER;
  if (headers_value_piece(&c->req.headers, at, len) != 0)
    return conn_reject(c, 431, "headers_too_large", "the request headers are too large");
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  conn_of(p)->value_open = false;
  return conn_count_header_bytes(conn_of(p), CONN_FIELD_OVERHEAD);
}

/* RFC 9110 5.6.2: a field name is a token. */
static bool conn_is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* llhttp 8 accepts a space before the colon and obs-fold continuation
 * lines; both have been used to smuggle requests past proxies, so every
 * name must be a token and every value plain field content (RFC 9110
 * 5.5: visible bytes, SP and HTAB; no CR, LF or NUL). */
static bool conn_fields_are_clean(const headers_t *h) {
  for (size_t i = 0; i < h->count; i++) {
    const unsigned char *n = (const unsigned char *)headers_name(h, i);
    if (*n == '\0')
      return false;
    for (; *n; n++)
      if (!conn_is_tchar(*n))
        return false;
    /* The value is NUL-terminated by us: a NUL inside ends it early. */
    size_t stored = (i + 1 < h->count ? h->items[i + 1].name : h->data.len) - h->items[i].value;
    const unsigned char *v = (const unsigned char *)headers_value(h, i);
    size_t vlen = strlen((const char *)v);
    if (vlen + 1 != stored)
      return false;
    for (; *v; v++)
      if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
        return false;
  }
  return true;
}

/* Everything llhttp's strict mode leaves to the application: clean fields,
 * the target form, Host, and what retryd does not support. */
static int conn_check_request(http_conn_t *c) {
  request_t *r = &c->req;
  const headers_t *h = &r->headers;
  if (!conn_fields_are_clean(h))
    return conn_reject(c, 400, "bad_request", "malformed header field");
  if (r->method_id == HTTP_CONNECT)
    return conn_reject(c, 400, "bad_request", "CONNECT is not supported");
  if (r->target.len == 0 || r->target.data[0] != '/')
    return conn_reject(c, 400, "bad_request",
                       "only origin-form request targets (starting with '/') are accepted");
  size_t hosts = headers_count_named(h, "host");
  if (hosts > 1 || (hosts == 0 && r->http_minor >= 1))
    return conn_reject(c, 400, "bad_request", "an HTTP/1.1 request needs exactly one Host header");
  size_t cls = headers_count_named(h, "content-length");
  const char *te = headers_get(h, "transfer-encoding");
  if (cls > 1)
    return conn_reject(c, 400, "bad_request", "more than one Content-Length header");
  if (te != NULL && cls > 0)
    return conn_reject(c, 400, "bad_request", "both Content-Length and Transfer-Encoding");
  if (te != NULL &&
      (headers_count_named(h, "transfer-encoding") > 1 || strcasecmp(te, "chunked") != 0))
    return conn_reject(c, 400, "bad_request", "the only accepted Transfer-Encoding is chunked");
  r->has_body = te != NULL || cls > 0;
  if (cls > 0 && c->parser.content_length > c->cfg->max_body)
    return conn_reject(c, 413, "body_too_large", "the request body exceeds --max-body");
  const char *expect = headers_get(h, "expect");
  if (expect != NULL) {
    if (strcasecmp(expect, "100-continue") != 0)
      return conn_reject(c, 417, "expectation_failed", "only Expect: 100-continue is supported");
    if (r->http_minor >= 1 && r->has_body) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      uv_buf_t b = http_buf(cont, sizeof(cont) - 1);
      if (http_conn_sendv(c, &b, 1) != 0)
        return HPE_USER;
      c->bytes_out -= b.len; /* not part of the answer */
    }
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  http_conn_t *c = conn_of(p);
  request_t *r = &c->req;
  if (headers_end(&r->headers) != 0)
    return conn_reject(c, 431, "headers_too_large", "the request headers are too large");
  c->headers_done = true;
  r->method_id = llhttp_get_method(p);
  const char *method = llhttp_method_name((llhttp_method_t)r->method_id);
  size_t mlen = strnlen(method, sizeof(r->method) - 1);
  memcpy(r->method, method, mlen);
  r->method[mlen] = '\0';
  r->is_head = r->method_id == HTTP_HEAD;
  r->http_major = llhttp_get_http_major(p);
  r->http_minor = llhttp_get_http_minor(p);
  if (r->http_major != 1)
    return conn_reject(c, 400, "bad_request", "only HTTP/1.x is accepted");
  return conn_check_request(c);
}

/* Checks that the bytes from pos on continue "\r\n" where crlf_left
 * bytes of it are still expected; returns false on a mismatch. */
static bool conn_check_crlf(http_conn_t *c, const char *pos) {
  while (c->crlf_left > 0 && pos < c->feed_end) {
    char want = c->crlf_left == 2 ? '\r' : '\n';
    if (*pos++ != want)
      return false;
    c->crlf_left--;
  }
  return true;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = conn_of(p);
  if ((p->flags & F_CHUNKED) && p->content_length == 0) {
    /* This piece ends a chunk: its CRLF must follow. */
    c->crlf_left = 2;
    if (!conn_check_crlf(c, at + len))
      return conn_reject(c, 400, "bad_request", "chunk data not followed by CRLF");
  }
  if (buf_append(&c->req.body, at, len) != 0)
    return conn_reject(c, 413, "body_too_large", "the request body exceeds --max-body");
  /* A body must keep flowing, not arrive within a fixed time. */
  conn_timer_start(c, c->cfg->client_timeout_ms);
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  http_conn_t *c = conn_of(p);
  c->req.keep_alive = llhttp_should_keep_alive(p) != 0;
  c->state = CONN_READY;
  deadline_clear(&c->timer);
  return HPE_PAUSED;
}

static void conn_settings_init(void) {
  if (conn_settings_ready)
    return;
  llhttp_settings_init(&conn_settings);
  conn_settings.on_message_begin = on_message_begin;
  conn_settings.on_url = on_url;
  conn_settings.on_header_field = on_header_field;
  conn_settings.on_header_value = on_header_value;
  conn_settings.on_header_value_complete = on_header_value_complete;
  conn_settings.on_headers_complete = on_headers_complete;
  conn_settings.on_body = on_body;
  conn_settings.on_message_complete = on_message_complete;
  conn_settings_ready = true;
}

/* ---- input ----------------------------------------------------------- */

/* Feeds bytes to the parser; returns how many it consumed. On a request
 * error the connection is answered and closing on return. */
static size_t conn_feed(http_conn_t *c, const char *data, size_t len) {
  c->feed_start = data;
  c->feed_end = data + len;
  llhttp_errno_t err;
  if (!conn_check_crlf(c, data)) {
    conn_reject(c, 400, "bad_request", "chunk data not followed by CRLF");
    err = HPE_USER;
  } else {
    err = llhttp_execute(&c->parser, data, len);
  }
  if (err == HPE_OK) {
    c->req.bytes_in += len;
    return len;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
    c->req.bytes_in += used;
    if (err == HPE_PAUSED_UPGRADE) {
      /* retryd does not tunnel upgrades: answer this one, then close. */
      c->upgrade = true;
      c->req.keep_alive = false;
    }
    return used;
  }
  conn_count_rejected(c);
  if (c->reject_status != 0) {
    if (c->reject_code != NULL)
      http_conn_error(c, c->reject_status, c->reject_code, c->reject_message);
    else
      http_conn_close(c);
  } else {
    char msg[160];
    snprintf(msg, sizeof(msg), "malformed request: %s", llhttp_get_error_reason(&c->parser));
    http_conn_error(c, 400, "bad_request", msg);
  }
  return len;
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
  if (c->pending.len == 0 && (c->state == CONN_IDLE || c->state == CONN_READING) && !c->upgrade) {
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
    if (c->pending.len == 0 || c->upgrade)
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
  return c->req.keep_alive && !c->peer_eof && !c->draining && !c->upgrade;
}

void http_conn_note_status(http_conn_t *c, int status, int upstream_status) {
  c->status = status;
  c->upstream_status = upstream_status;
}

void http_conn_attach(http_conn_t *c, const http_handler_ops_t *ops, void *ctx) {
  c->ops = ops;
  c->ctx = ctx;
}

/* One access-log line per request, once, whichever way it ended. Only the
 * path is logged: queries can carry tokens. */
static void conn_log_request(http_conn_t *c, const char *outcome) {
  if (c->logged || c->req.started_ns == 0 || !c->headers_done)
    return;
  c->logged = true;
  const request_t *r = &c->req;
  log_line_t l;
  log_begin(&l, LOG_INFO, "request");
  log_str(&l, "method", r->method);
  size_t plen = strcspn(r->target.data ? r->target.data : "", "?");
  log_strn(&l, "path", r->target.data ? r->target.data : "", plen);
  log_int(&l, "status", c->status);
  if (c->upstream_status > 0)
    log_int(&l, "upstream_status", c->upstream_status);
  else
    log_str(&l, "upstream_status", NULL);
  log_ms(&l, "duration_ms", (double)(uv_hrtime() - r->started_ns) / 1e6);
  log_int(&l, "bytes_in", (int64_t)r->bytes_in);
  log_int(&l, "bytes_out", (int64_t)c->bytes_out);
  if (outcome != NULL)
    log_str(&l, "outcome", outcome);
  log_end(&l);
}

/* Back to reading the next request on the same connection. */
static void conn_next_request(http_conn_t *c) {
  request_reset(&c->req);
  c->ops = NULL;
  c->ctx = NULL;
  c->status = 0;
  c->upstream_status = 0;
  c->bytes_out = 0;
  c->logged = false;
  c->header_bytes = 0;
  c->headers_done = false;
  c->crlf_left = 0;
  c->state = CONN_IDLE;
  llhttp_resume(&c->parser);
  if (c->draining && c->pending.len == 0) {
    http_conn_close(c);
    return;
  }
  if (c->queued == 0)
    conn_timer_start(c, c->cfg->keepalive_timeout_ms);
  conn_process(c);
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
  bool keep = http_conn_may_keep_alive(c) && c->reject_status == 0 && c->headers_done;
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
  if (rc == 0 && !keep)
    rc = buf_append_str(&head, "Connection: close\r\n");
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
  buf_init(&body, 4096);
  buf_printf(&body, "{\"error\":\"%s\",\"message\":\"", code);
  buf_append_json_escaped(&body, message, strlen(message));
  buf_append_str(&body, "\"}\n");
  http_conn_respond(c, status, extra_headers, "application/json", body.data ? body.data : "",
                    body.len);
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
  server_t *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  free(c);
  server_conn_closed(srv, NULL);
}

void http_conn_close(http_conn_t *c) {
  if (c->closing)
    return;
  c->closing = true;
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

int http_conn_start(server_t *srv, uv_stream_t *listener) {
  conn_settings_init();
  http_conn_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return UV_ENOMEM;
  c->srv = srv;
  c->cfg = srv->cfg;
  request_init(&c->req, srv->cfg);
  buf_init(&c->pending, CONN_PENDING_MAX);
  llhttp_init(&c->parser, HTTP_REQUEST, &conn_settings);
  c->parser.data = c;
  uv_tcp_init(srv->loop, &c->tcp);
  deadline_init(srv->loop, &c->timer, conn_timer_cb, c);
  c->tcp.data = c;
  c->open_handles = 2;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  server_conn_opened(srv, c);
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

http_conn_t *http_conn_next(const http_conn_t *c) {
  return c->next;
}
