/* upstream_h1: the upstream client for http:// upstreams — HTTP/1.1 over
 * libuv TCP, answers parsed by llhttp (strict, as for clients).
 *
 * Design note. A transfer (upstream_xfer_t) runs on a connection
 * (h1_conn_t). Connections are kept alive in an idle pool, most recently
 * used first, and an idle one keeps reading so that the upstream closing it
 * is noticed and it is dropped at once. A new connection waits for an
 * address lookup only when the origin's cached addresses (upstream_origin.c)
 * have expired, and tries each address in turn.
 *
 * A request sent on a kept-alive connection that dies before any byte of
 * the answer came (the upstream closed it while we were sending) is sent
 * again once on a new connection, as curl and browsers do; any other
 * failure is reported and the caller's retry rules decide.
 *
 * The request head goes out in one write together with the body. The
 * answer is parsed where it lands in the connection's read buffer; when the
 * caller pauses (ops->body answered UPSTREAM_PAUSE), reading stops and the
 * unread part of the buffer stays put until upstream_resume(), so memory
 * per connection is one read buffer whatever the answer's size. Every
 * callback into the caller comes from a libuv callback, never from
 * upstream_send() itself. Loop thread only. */
#include <llhttp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/answer_parser.h"
#include "proxy/buf.h"
#include "proxy/upstream_backend.h"
#include "proxy/upstream_origin.h"

/* One read buffer per connection; curl's default buffer is the same. */
#define H1_READ_BUF 16384
/* Idle connections kept for reuse; more are closed. */
#define H1_MAX_IDLE 1024
/* An idle connection older than this is closed rather than reused: servers
 * close idle ones after a while (nginx after 75 s), and a request sent into
 * a connection being closed has to be sent again. */
#define H1_IDLE_MAX_MS 30000

typedef enum {
  H1_RESOLVING,  /* waiting for the address lookup */
  H1_CONNECTING,
  H1_BUSY,       /* carrying a transfer */
  H1_IDLE,       /* in the pool */
  H1_CLOSED,     /* closing; freed in its close callback */
} h1_state_t;

typedef struct h1_conn_s h1_conn_t;

struct upstream_xfer_s {
  h1_conn_t *conn;
  response_head_t *head;
  const upstream_ops_t *ops;
  void *ctx;
  buf_t out;            /* request line and header fields */
  const char *body;     /* the caller's */
  size_t body_len;
  bool is_head;         /* a HEAD request: the answer has no body */
  bool answer_started;  /* a byte of the answer came: never send again */
  bool resent;          /* already sent again on a new connection */
  bool paused;
  const char *pending;  /* body bytes the caller did not take at the pause */
  size_t pending_len;
  const char *rest;     /* bytes not yet parsed at the pause */
  size_t rest_len;
  char error[512];
};

struct h1_conn_s {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  uv_getaddrinfo_t lookup;
  answer_parser_t answer;
  h1_state_t state;
  upstream_xfer_t *xfer;
  h1_conn_t *prev, *next; /* the idle list */
  char *rbuf;
  int addr_index;         /* which of the origin's addresses */
  bool writing;
  bool reading;           /* uv_read_start is in force */
  bool reused;            /* has carried a transfer before */
  uint64_t idle_since;
};

static struct {
  uv_loop_t *loop;
  upstream_origin_t origin;
  h1_conn_t *idle; /* most recently used first */
  size_t nidle;
} H;

static void h1_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int h1_attach(upstream_xfer_t *x);

/* ---- reading ---------------------------------------------------------- */

static void h1_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* A connection reads whenever it is not paused: while busy for the answer,
 * while idle to notice the upstream closing it. */
static void h1_read_on(h1_conn_t *conn) {
  if (!conn->reading && uv_read_start((uv_stream_t *)&conn->tcp, h1_alloc_cb, h1_read_cb) == 0)
    conn->reading = true;
}

static void h1_read_off(h1_conn_t *conn) {
  if (conn->reading)
    uv_read_stop((uv_stream_t *)&conn->tcp);
  conn->reading = false;
}

/* ---- endings --------------------------------------------------------- */

/* Ended transfers are kept for the next ones with their request buffer
 * (as forward.c keeps its state): at most H1_SPARE_MAX, and a buffer that
 * grew past H1_SPARE_KEEP is not kept. */
#define H1_SPARE_MAX 256
#define H1_SPARE_KEEP 16384

static struct {
  upstream_xfer_t *list[H1_SPARE_MAX];
  size_t n;
} spare;

static void h1_xfer_free(upstream_xfer_t *x) {
  if (spare.n < H1_SPARE_MAX && x->out.cap <= H1_SPARE_KEEP) {
    spare.list[spare.n++] = x;
    return;
  }
  buf_free(&x->out);
  free(x);
}

/* A zeroed transfer, its request buffer empty and capped at max. */
static upstream_xfer_t *h1_xfer_take(size_t max) {
  upstream_xfer_t *x;
  buf_t out = {0};
  if (spare.n > 0) {
    x = spare.list[--spare.n];
    out = x->out;
    memset(x, 0, sizeof(*x));
  } else {
    x = calloc(1, sizeof(*x));
    if (x == NULL)
      return NULL;
  }
  x->out = out;
  x->out.len = 0;
  x->out.max = max;
  return x;
}

/* Reports the end to the caller. x must be detached from its connection. */
static void h1_end(upstream_xfer_t *x, upstream_result_t result) {
  const upstream_ops_t *ops = x->ops;
  void *ctx = x->ctx;
  char error[sizeof(x->error)];
  memcpy(error, x->error, sizeof(error));
  h1_xfer_free(x);
  ops->done(ctx, result, result == UPSTREAM_DONE ? NULL : error);
}

static void h1_conn_closed(uv_handle_t *h) {
  h1_conn_t *conn = h->data;
  upstream_xfer_t *x = conn->xfer;
  if (x != NULL) {
    /* A failure found inside upstream_send(), reported from here so the
     * caller never hears of it before upstream_send() returns. */
    x->conn = NULL;
    h1_end(x, UPSTREAM_FAILED);
  }
  free(conn->rbuf);
  free(conn);
}

static void h1_idle_unlink(h1_conn_t *conn) {
  if (conn->prev != NULL)
    conn->prev->next = conn->next;
  else
    H.idle = conn->next;
  if (conn->next != NULL)
    conn->next->prev = conn->prev;
  conn->prev = conn->next = NULL;
  H.nidle--;
}

static void h1_conn_close(h1_conn_t *conn) {
  h1_state_t was = conn->state;
  if (was == H1_CLOSED)
    return;
  conn->state = H1_CLOSED;
  if (was == H1_IDLE)
    h1_idle_unlink(conn);
  /* A lookup in flight still uses conn: its callback closes it. */
  if (was != H1_RESOLVING)
    uv_close((uv_handle_t *)&conn->tcp, h1_conn_closed);
}

static void h1_detach(upstream_xfer_t *x) {
  if (x->conn != NULL) {
    x->conn->xfer = NULL;
    x->conn = NULL;
  }
}

static void h1_fail(upstream_xfer_t *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The transfer failed: its connection cannot be trusted any more. */
static void h1_fail(upstream_xfer_t *x, const char *fmt, ...) {
  if (fmt != NULL && x->error[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->error, sizeof(x->error), fmt, ap);
    va_end(ap);
  }
  h1_conn_t *conn = x->conn;
  h1_detach(x);
  if (conn != NULL)
    h1_conn_close(conn);
  h1_end(x, UPSTREAM_FAILED);
}

/* The connection broke (a write or read failed, or the upstream closed
 * it) while x was on it. */
static void h1_conn_broke(h1_conn_t *conn, int status) {
  upstream_xfer_t *x = conn->xfer;
  if (!x->answer_started && conn->reused && !x->resent) {
    /* The upstream closed a kept-alive connection as we sent: nothing
     * of ours was answered, so send it again on a new connection. */
    h1_detach(x);
    h1_conn_close(conn);
    x->resent = true;
    if (x->ops->resent != NULL)
      x->ops->resent(x->ctx, status == UV_EOF ? "the upstream closed a kept-alive connection "
                                                "without answering; sent again"
                                              : uv_strerror(status));
    if (h1_attach(x) != 0)
      h1_fail(x, "could not open a new connection to the upstream");
    return;
  }
  if (status == UV_EOF)
    h1_fail(x, x->answer_started ? "the upstream closed the connection mid-answer"
                                 : "the upstream closed the connection without answering");
  else
    h1_fail(x, "the upstream connection failed: %s", uv_strerror(status));
}

/* The answer is complete: the connection goes back to the pool if it may. */
static void h1_complete(h1_conn_t *conn, bool reusable) {
  upstream_xfer_t *x = conn->xfer;
  h1_detach(x);
  if (reusable && !conn->writing && H.nidle < H1_MAX_IDLE &&
      llhttp_should_keep_alive(&conn->answer.llhttp)) {
    conn->state = H1_IDLE;
    conn->reused = true;
    h1_read_on(conn); /* it may have ended right after a pause */
    conn->idle_since = uv_now(H.loop);
    conn->prev = NULL;
    conn->next = H.idle;
    if (H.idle != NULL)
      H.idle->prev = conn;
    H.idle = conn;
    H.nidle++;
  } else {
    h1_conn_close(conn);
  }
  h1_end(x, UPSTREAM_DONE);
}

/* ---- parsing the answer ---------------------------------------------- */

typedef enum {
  FEED_MORE,   /* wants more bytes */
  FEED_PAUSED, /* the caller paused */
  FEED_ENDED,  /* the transfer ended (x is gone) */
} feed_t;

static feed_t h1_feed(h1_conn_t *conn, const char *data, size_t len) {
  upstream_xfer_t *x = conn->xfer;
  llhttp_errno_t err = answer_parser_feed(&conn->answer, data, len);
  if (err == HPE_OK)
    return FEED_MORE;
  if (err == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&conn->answer.llhttp);
    if (conn->answer.message_done) {
      /* Bytes after the answer were never asked for: do not reuse. */
      h1_complete(conn, pos == data + len);
      return FEED_ENDED;
    }
    x->rest = pos;
    x->rest_len = (size_t)(data + len - pos);
    h1_read_off(conn);
    return FEED_PAUSED;
  }
  h1_fail(x, "%s", answer_parser_error(&conn->answer));
  return FEED_ENDED;
}

/* What the answer parser hands over, passed on to the caller. */
static int h1_answer_head(answer_parser_t *p) {
  upstream_xfer_t *x = ((h1_conn_t *)p->owner)->xfer;
  if (x->ops->head(x->ctx) != 0) {
    snprintf(p->error, sizeof(p->error), "the answer could not be relayed");
    return -1;
  }
  return 0;
}

static int h1_answer_body(answer_parser_t *p, const char *at, size_t len) {
  upstream_xfer_t *x = ((h1_conn_t *)p->owner)->xfer;
  switch (x->ops->body(x->ctx, at, len)) {
  case UPSTREAM_TAKEN:
    return 0;
  case UPSTREAM_PAUSE:
    x->paused = true;
    x->pending = at;
    x->pending_len = len;
    return HPE_PAUSED;
  default:
    snprintf(p->error, sizeof(p->error), "the answer could not be relayed");
    return -1;
  }
}

static const answer_parser_ops_t h1_answer_ops = {
    .head = h1_answer_head,
    .body = h1_answer_body,
};

/* ---- the connection's I/O -------------------------------------------- */

static void h1_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  h1_conn_t *conn = h->data;
  *buf = uv_buf_init(conn->rbuf, H1_READ_BUF);
}

static void h1_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  h1_conn_t *conn = s->data;
  upstream_xfer_t *x = conn->xfer;
  if (nread == 0 || conn->state == H1_CLOSED)
    return;
  if (x == NULL) {
    /* Idle: the upstream closed it, or sent what nobody asked for. */
    h1_conn_close(conn);
    return;
  }
  if (nread > 0) {
    x->answer_started = true;
    h1_feed(conn, buf->base, (size_t)nread);
    return;
  }
  if (nread == UV_EOF && x->answer_started) {
    /* An answer without a length ends with the connection. */
    llhttp_errno_t err = llhttp_finish(&conn->answer.llhttp);
    if (err == HPE_PAUSED && conn->answer.message_done) {
      h1_complete(conn, false);
      return;
    }
  }
  h1_conn_broke(conn, (int)nread);
}

static void h1_write_cb(uv_write_t *req, int status) {
  h1_conn_t *conn = req->data;
  conn->writing = false;
  if (conn->xfer == NULL || conn->state == H1_CLOSED)
    return; /* the transfer ended; conn is closing or back in the pool */
  if (status < 0 && !conn->xfer->answer_started)
    h1_conn_broke(conn, status);
  /* A write that failed after the answer began (the upstream answered
   * early and closed): the answer decides. */
}

static void h1_send_request(h1_conn_t *conn) {
  upstream_xfer_t *x = conn->xfer;
  answer_parser_start(&conn->answer, x->head, x->is_head, &h1_answer_ops, conn);
  uv_buf_t bufs[2];
  unsigned n = 0;
  bufs[n++] = uv_buf_init(x->out.data, (unsigned)x->out.len);
  if (x->body != NULL && x->body_len > 0 && !x->is_head)
    bufs[n++] = uv_buf_init((char *)(uintptr_t)x->body, (unsigned)x->body_len);
  /* Straight to the socket when it has room (the usual case): a uv_write
   * that completes still costs an epoll_ctl when libuv drains it. An
   * error here is left for uv_write to report from its callback. */
  int sent = uv_try_write((uv_stream_t *)&conn->tcp, bufs, n);
  size_t skip = sent > 0 ? (size_t)sent : 0;
  unsigned first = 0;
  while (first < n && skip >= bufs[first].len)
    skip -= bufs[first++].len;
  if (first == n)
    return; /* all of it went */
  bufs[first].base += skip;
  bufs[first].len -= skip;
  int rc = uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, bufs + first, n - first,
                    h1_write_cb);
  if (rc != 0) {
    /* Reported from the close callback: this may run inside
     * upstream_send(). */
    snprintf(x->error, sizeof(x->error), "could not send to the upstream: %s", uv_strerror(rc));
    h1_conn_close(conn);
    return;
  }
  conn->writing = true;
}

static void h1_connect_cb(uv_connect_t *req, int status);

static void h1_connect_error(upstream_xfer_t *x, int status) {
  snprintf(x->error, sizeof(x->error), "could not connect to the upstream %s: %s",
           H.origin.authority, uv_strerror(status));
}

/* Connects conn to the origin's address i. */
static int h1_connect(h1_conn_t *conn, int i) {
  conn->state = H1_CONNECTING;
  conn->addr_index = i;
  return uv_tcp_connect(&conn->connect_req, &conn->tcp,
                        (const struct sockaddr *)&H.origin.addrs[i], h1_connect_cb);
}

static h1_conn_t *h1_conn_new(upstream_xfer_t *x) {
  h1_conn_t *conn = calloc(1, sizeof(*conn));
  if (conn == NULL)
    return NULL;
  conn->rbuf = malloc(H1_READ_BUF);
  if (conn->rbuf == NULL || uv_tcp_init(H.loop, &conn->tcp) != 0) {
    free(conn->rbuf);
    free(conn);
    return NULL;
  }
  conn->tcp.data = conn;
  conn->connect_req.data = conn;
  conn->write_req.data = conn;
  conn->lookup.data = conn;
  conn->xfer = x;
  x->conn = conn;
  return conn;
}

static void h1_connect_cb(uv_connect_t *req, int status) {
  h1_conn_t *conn = req->data;
  upstream_xfer_t *x = conn->xfer;
  if (x == NULL || conn->state == H1_CLOSED)
    return; /* cancelled */
  if (status < 0) {
    int next = conn->addr_index + 1;
    h1_detach(x);
    h1_conn_close(conn);
    if (next < H.origin.naddrs) {
      h1_conn_t *again = h1_conn_new(x);
      if (again == NULL) {
        h1_fail(x, "out of memory");
        return;
      }
      int rc = h1_connect(again, next);
      if (rc != 0) {
        h1_connect_error(x, rc);
        h1_conn_close(again); /* its close callback reports the failure */
      }
      return;
    }
    h1_connect_error(x, status);
    h1_fail(x, NULL);
    return;
  }
  conn->state = H1_BUSY;
  uv_tcp_nodelay(&conn->tcp, 1);
  uv_tcp_keepalive(&conn->tcp, 1, 60);
  h1_read_on(conn);
  h1_send_request(conn);
}

static void h1_lookup_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  h1_conn_t *conn = req->data;
  upstream_xfer_t *x = conn->xfer;
  if (status == 0)
    upstream_origin_learn(&H.origin, res, uv_now(H.loop));
  uv_freeaddrinfo(res);
  if (conn->state == H1_CLOSED) { /* cancelled while looking up */
    uv_close((uv_handle_t *)&conn->tcp, h1_conn_closed);
    return;
  }
  conn->state = H1_CONNECTING; /* no lookup pending: closing is plain now */
  if (status < 0 || !upstream_origin_fresh(&H.origin, uv_now(H.loop))) {
    h1_fail(x, "could not look up the upstream's host %s: %s", H.origin.host,
            status < 0 ? uv_strerror(status) : "no address");
    return;
  }
  int rc = h1_connect(conn, 0);
  if (rc != 0) {
    h1_connect_error(x, rc);
    h1_fail(x, NULL);
  }
}

/* An idle connection young enough to reuse, or NULL. */
static h1_conn_t *h1_idle_take(void) {
  uint64_t now = uv_now(H.loop);
  while (H.idle != NULL) {
    h1_conn_t *conn = H.idle;
    h1_idle_unlink(conn);
    if (now - conn->idle_since <= H1_IDLE_MAX_MS) {
      conn->state = H1_BUSY;
      return conn;
    }
    conn->state = H1_BUSY; /* so that closing does not unlink it again */
    h1_conn_close(conn);
  }
  return NULL;
}

/* Puts x on a connection: an idle one, else a new one (after a lookup if
 * the cached addresses expired). -1 only when nothing could be started. */
static int h1_attach(upstream_xfer_t *x) {
  h1_conn_t *conn = x->resent ? NULL : h1_idle_take();
  if (conn != NULL) {
    conn->xfer = x;
    x->conn = conn;
    h1_read_on(conn);
    h1_send_request(conn);
    return 0;
  }
  conn = h1_conn_new(x);
  if (conn == NULL)
    return -1;
  int rc;
  if (upstream_origin_fresh(&H.origin, uv_now(H.loop))) {
    rc = h1_connect(conn, 0);
  } else {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    conn->state = H1_RESOLVING;
    rc = uv_getaddrinfo(H.loop, &conn->lookup, h1_lookup_cb, H.origin.host, H.origin.port, &hints);
    if (rc != 0)
      conn->state = H1_CONNECTING; /* nothing pending: closing is plain */
  }
  if (rc != 0) {
    /* Reported from the close callback, after upstream_send() returned. */
    h1_connect_error(x, rc);
    h1_conn_close(conn);
  }
  return 0;
}

/* ---- the backend ----------------------------------------------------- */

static int h1_build(upstream_xfer_t *x, const upstream_request_t *r) {
  const upstream_origin_t *o = &H.origin;
  size_t plen = strlen(o->prefix);
  bool lines_end = r->headers_len == 0 || r->headers[r->headers_len - 1] == '\n';
  int rc = buf_append_str(&x->out, r->method);
  rc = rc ? rc : buf_append(&x->out, " ", 1);
  rc = rc ? rc : buf_append(&x->out, o->prefix, plen);
  rc = rc ? rc : buf_append_str(&x->out, r->target);
  rc = rc ? rc : buf_append_str(&x->out, " HTTP/1.1\r\nHost: ");
  rc = rc ? rc : buf_append_str(&x->out, o->authority);
  rc = rc ? rc : buf_append(&x->out, "\r\n", 2);
  rc = rc ? rc : buf_append(&x->out, r->headers, r->headers_len);
  if (!lines_end)
    rc = rc ? rc : buf_append(&x->out, "\r\n", 2);
  if (r->body != NULL && !x->is_head) {
    rc = rc ? rc : buf_append_str(&x->out, "Content-Length: ");
    rc = rc ? rc : buf_append_uint(&x->out, r->body_len);
    rc = rc ? rc : buf_append(&x->out, "\r\n", 2);
  }
  rc = rc ? rc : buf_append(&x->out, "\r\n", 2);
  return rc;
}

static upstream_xfer_t *h1_send(const upstream_request_t *r, response_head_t *head,
                                const upstream_ops_t *ops, void *ctx) {
  upstream_xfer_t *x = h1_xfer_take(strlen(r->method) + strlen(H.origin.prefix) +
                                     strlen(r->target) + strlen(H.origin.authority) +
                                     r->headers_len + 96);
  if (x == NULL)
    return NULL;
  x->head = head;
  x->ops = ops;
  x->ctx = ctx;
  x->body = r->body;
  x->body_len = r->body_len;
  x->is_head = strcmp(r->method, "HEAD") == 0;
  if (h1_build(x, r) != 0 || h1_attach(x) != 0) {
    h1_xfer_free(x);
    return NULL;
  }
  return x;
}

static void h1_cancel(upstream_xfer_t *x) {
  h1_conn_t *conn = x->conn;
  h1_detach(x);
  if (conn != NULL)
    h1_conn_close(conn); /* mid-request: it cannot carry another */
  h1_xfer_free(x);
}

static void h1_resume(upstream_xfer_t *x) {
  h1_conn_t *conn = x->conn;
  if (!x->paused || conn == NULL)
    return;
  x->paused = false;
  if (x->pending != NULL) {
    int r = x->ops->body(x->ctx, x->pending, x->pending_len);
    if (r == UPSTREAM_PAUSE) {
      x->paused = true;
      return;
    }
    if (r != UPSTREAM_TAKEN) {
      h1_fail(x, "the answer could not be relayed");
      return;
    }
    x->pending = NULL;
  }
  llhttp_resume(&conn->answer.llhttp);
  /* Parsed even when nothing is left: llhttp may still owe the end of
   * the message. */
  const char *rest = x->rest;
  size_t rest_len = x->rest_len;
  x->rest = NULL;
  x->rest_len = 0;
  if (h1_feed(conn, rest, rest_len) == FEED_MORE)
    h1_read_on(conn);
}

static int h1_init(uv_loop_t *loop, const config_t *cfg) {
  memset(&H, 0, sizeof(H));
  H.loop = loop;
  if (upstream_origin_parse(&H.origin, cfg->upstream) != 0)
    return UV_EINVAL;
  return 0;
}

static void h1_close(void) {
  while (H.idle != NULL)
    h1_conn_close(H.idle);
}

const upstream_backend_t upstream_h1_backend = {
    .init = h1_init,
    .close = h1_close,
    .send = h1_send,
    .cancel = h1_cancel,
    .resume = h1_resume,
};
