/* upstream_h1: retryd's own HTTP/1.1 upstream client — over libuv TCP for
 * http://, with TLS (upstream_tls.c, OpenSSL on memory buffers) for
 * https://; answers read by answer_parser.c (strict llhttp, as for clients).
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

#include "lib/list.h"
#include "proxy/upstream/answer_parser.h"
#include "proxy/buf.h"
#include "proxy/upstream/resolver.h"
#include "proxy/upstream/upstream_backend.h"
#include "proxy/upstream/upstream_origin.h"
#include "proxy/upstream/upstream_tls.h"

/* One read buffer per connection; curl's default buffer is the same. */
#define H1_READ_BUF 16384
/* Idle connections kept for reuse; more are closed. */
#define H1_MAX_IDLE 1024
/* An idle connection older than this is closed rather than reused: servers
 * close idle ones after a while (nginx after 75 s), and a request sent into
 * a connection being closed has to be sent again. */
#define H1_IDLE_MAX_MS 30000
/* Ended transfers are kept for the next ones with their request buffer
 * (as forward.c keeps its state): at most H1_SPARE_MAX, and a buffer that
 * grew past H1_SPARE_KEEP is not kept. */
#define H1_SPARE_MAX 256
#define H1_SPARE_KEEP 16384

typedef enum {
  H1_RESOLVING,  /* waiting for the address lookup */
  H1_CONNECTING,
  H1_BUSY,       /* carrying a transfer */
  H1_IDLE,       /* in the pool */
  H1_CLOSED,     /* closing; freed in its close callback */
} h1_state_t;

typedef struct h1_conn_s h1_conn_t;

typedef struct h1_upstream_s h1_upstream_t;
typedef struct h1_xfer_s h1_xfer_t;

/* One request on its way; the base (owner, head, ops, ctx) comes first. */
struct h1_xfer_s {
  upstream_xfer_t super;
  h1_conn_t *conn;
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
  answer_parser_t answer;
  h1_state_t state;
  h1_upstream_t *up;
  h1_xfer_t *xfer;
  list_t link;            /* in the idle pool, or waiting for a lookup (or in neither) */
  char *rbuf;             /* the answer's bytes, as parsed */
  /* https://: the session, what the socket gave before decryption, and
   * what goes out to it (the buffer a uv_write in flight is sending). */
  upstream_tls_t *tls;
  char *cbuf;
  buf_t tls_out;
  int addr_index;         /* which of the origin's addresses */
  bool writing;
  bool reading;           /* uv_read_start is in force */
  bool reused;            /* has carried a transfer before */
  uint64_t idle_since;
};

/* One origin's client: its address, TLS context and pools. */
struct h1_upstream_s {
  upstream_t super;
  uv_loop_t *loop;
  upstream_origin_t origin;
  upstream_tls_ctx_t *tls; /* https:// only */
  size_t tls_out_max;
  char record[16384]; /* one TLS record's worth of request, put together */
  list_t idle;        /* most recently used first */
  size_t nidle;
  /* One lookup at a time: new connections wait for the one in flight. */
  resolver_t resolver;
  list_t resolving;
  bool resolver_closed;
  size_t nconns;      /* connections not yet closed */
  bool closing;       /* upstream_close() came: freed with the last one */
  /* Ended transfers kept for the next ones with their request buffer. */
  h1_xfer_t *spare[H1_SPARE_MAX];
  size_t nspare;
};

static void h1_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void h1_upstream_free(h1_upstream_t *u);
static void h1_upstream_maybe_free(h1_upstream_t *u);

static h1_upstream_t *h1_of(const h1_xfer_t *x) {
  return (h1_upstream_t *)x->super.owner;
}
static int h1_attach(h1_xfer_t *x);

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

static void h1_xfer_free(h1_xfer_t *x) {
  h1_upstream_t *u = h1_of(x);
  if (u->nspare < H1_SPARE_MAX && x->out.cap <= H1_SPARE_KEEP) {
    u->spare[u->nspare++] = x;
    return;
  }
  buf_free(&x->out);
  free(x);
}

/* A zeroed transfer, its request buffer empty and capped at max. */
static h1_xfer_t *h1_xfer_take(h1_upstream_t *u, size_t max) {
  h1_xfer_t *x;
  buf_t out = {0};
  if (u->nspare > 0) {
    x = u->spare[--u->nspare];
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
static void h1_end(h1_xfer_t *x, upstream_result_t result) {
  const upstream_ops_t *ops = x->super.ops;
  void *ctx = x->super.ctx;
  char error[sizeof(x->error)];
  memcpy(error, x->error, sizeof(error));
  h1_xfer_free(x);
  ops->done(ctx, result, result == UPSTREAM_DONE ? NULL : error);
}

static void h1_conn_closed(uv_handle_t *h) {
  h1_conn_t *conn = h->data;
  h1_xfer_t *x = conn->xfer;
  if (x != NULL) {
    /* A failure found inside upstream_send(), reported from here so the
     * caller never hears of it before upstream_send() returns. */
    x->conn = NULL;
    h1_end(x, UPSTREAM_FAILED);
  }
  upstream_tls_free(conn->tls);
  buf_free(&conn->tls_out);
  free(conn->cbuf);
  free(conn->rbuf);
  h1_upstream_t *u = conn->up;
  free(conn);
  u->nconns--;
  h1_upstream_maybe_free(u);
}

static h1_conn_t *h1_conn_of(list_t *link) {
  return list_entry(link, h1_conn_t, link);
}

static void h1_idle_unlink(h1_conn_t *conn) {
  list_remove(&conn->link);
  conn->up->nidle--;
}

static void h1_conn_close(h1_conn_t *conn) {
  h1_state_t was = conn->state;
  if (was == H1_CLOSED)
    return;
  conn->state = H1_CLOSED;
  if (was == H1_IDLE)
    h1_idle_unlink(conn);
  else if (was == H1_RESOLVING)
    list_remove(&conn->link);
  uv_close((uv_handle_t *)&conn->tcp, h1_conn_closed);
}

static void h1_detach(h1_xfer_t *x) {
  if (x->conn != NULL) {
    x->conn->xfer = NULL;
    x->conn = NULL;
  }
}

static void h1_fail(h1_xfer_t *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The transfer failed: its connection cannot be trusted any more. */
static void h1_fail(h1_xfer_t *x, const char *fmt, ...) {
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
  h1_xfer_t *x = conn->xfer;
  if (!x->answer_started && conn->reused && !x->resent) {
    /* The upstream closed a kept-alive connection as we sent: nothing
     * of ours was answered, so send it again on a new connection. */
    h1_detach(x);
    h1_conn_close(conn);
    x->resent = true;
    if (x->super.ops->resent != NULL)
      x->super.ops->resent(x->super.ctx, status == UV_EOF ? "the upstream closed a kept-alive connection "
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
  h1_upstream_t *u = conn->up;
  h1_xfer_t *x = conn->xfer;
  h1_detach(x);
  if (conn->tls != NULL && upstream_tls_has_plaintext(conn->tls))
    reusable = false; /* bytes after the answer, still inside the session */
  if (reusable && !conn->writing && u->nidle < H1_MAX_IDLE &&
      llhttp_should_keep_alive(&conn->answer.llhttp)) {
    conn->state = H1_IDLE;
    conn->reused = true;
    h1_read_on(conn); /* it may have ended right after a pause */
    conn->idle_since = uv_now(u->loop);
    list_insert_head(&u->idle, &conn->link);
    u->nidle++;
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
  h1_xfer_t *x = conn->xfer;
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
  h1_xfer_t *x = ((h1_conn_t *)p->owner)->xfer;
  if (x->super.ops->head(x->super.ctx) != 0) {
    snprintf(p->error, sizeof(p->error), "the answer could not be relayed");
    return -1;
  }
  return 0;
}

static int h1_answer_body(answer_parser_t *p, const char *at, size_t len) {
  h1_xfer_t *x = ((h1_conn_t *)p->owner)->xfer;
  switch (x->super.ops->body(x->super.ctx, at, len)) {
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
  /* Over TLS the socket's bytes are decrypted into rbuf, which a paused
   * parse may still point into: they land in their own buffer. */
  *buf = uv_buf_init(conn->tls != NULL ? conn->cbuf : conn->rbuf, H1_READ_BUF);
}

/* The socket ended (EOF) or failed while x was on conn. */
static void h1_read_ended(h1_conn_t *conn, int status) {
  if (status == UV_EOF && conn->xfer->answer_started) {
    /* An answer without a length ends with the connection. */
    llhttp_errno_t err = llhttp_finish(&conn->answer.llhttp);
    if (err == HPE_PAUSED && conn->answer.message_done) {
      h1_complete(conn, false);
      return;
    }
  }
  h1_conn_broke(conn, status);
}

static void h1_send_request(h1_conn_t *conn);
static void h1_tls_flush(h1_conn_t *conn);

/* Decrypts and parses what the session holds until it wants more bytes
 * from the socket, the caller pauses, or the transfer ends. */
static feed_t h1_tls_pump(h1_conn_t *conn) {
  for (;;) {
    size_t n = 0;
    tls_result_t r = upstream_tls_read(conn->tls, conn->rbuf, H1_READ_BUF, &n);
    if (r == TLS_WANT)
      return FEED_MORE;
    if (r == TLS_CLOSED) {
      h1_read_ended(conn, UV_EOF);
      return FEED_ENDED;
    }
    if (r == TLS_ERROR) {
      h1_fail(conn->xfer, "%s", upstream_tls_error(conn->tls));
      return FEED_ENDED;
    }
    conn->xfer->answer_started = true;
    feed_t f = h1_feed(conn, conn->rbuf, n);
    if (f != FEED_MORE)
      return f;
  }
}

/* Bytes from the socket of a TLS connection. */
static void h1_tls_received(h1_conn_t *conn, const char *data, size_t len) {
  h1_xfer_t *x = conn->xfer;
  if (upstream_tls_feed(conn->tls, data, len) != 0) {
    if (x != NULL)
      h1_fail(x, "out of memory");
    else
      h1_conn_close(conn);
    return;
  }
  if (x == NULL) {
    /* Idle: a session ticket is fine; an answer nobody asked for, the end
     * of the session or an error mean the connection goes. */
    size_t n = 0;
    if (upstream_tls_read(conn->tls, conn->rbuf, H1_READ_BUF, &n) != TLS_WANT)
      h1_conn_close(conn);
    return;
  }
  if (!upstream_tls_ready(conn->tls)) {
    tls_result_t r = upstream_tls_handshake(conn->tls);
    h1_tls_flush(conn);
    if (r == TLS_OK && conn->state != H1_CLOSED)
      h1_send_request(conn);
    else if (r == TLS_ERROR || r == TLS_CLOSED)
      h1_fail(x, "%s", upstream_tls_error(conn->tls));
    return;
  }
  h1_tls_pump(conn);
}

static void h1_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  h1_conn_t *conn = s->data;
  h1_xfer_t *x = conn->xfer;
  if (nread == 0 || conn->state == H1_CLOSED)
    return;
  if (nread > 0 && conn->tls != NULL) {
    h1_tls_received(conn, buf->base, (size_t)nread);
    return;
  }
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
  h1_read_ended(conn, (int)nread);
}

static void h1_write_cb(uv_write_t *req, int status) {
  h1_conn_t *conn = req->data;
  conn->writing = false;
  buf_reset(&conn->tls_out); /* sent (TLS), or unused (plain) */
  if (conn->state == H1_CLOSED)
    return;
  if (status >= 0 && conn->tls != NULL)
    h1_tls_flush(conn); /* what the session wrote meanwhile */
  if (conn->xfer == NULL || conn->state == H1_CLOSED)
    return; /* the transfer ended; conn is closing or back in the pool */
  if (status < 0 && !conn->xfer->answer_started)
    h1_conn_broke(conn, status);
  /* A write that failed after the answer began (the upstream answered
   * early and closed): the answer decides. */
}

/* Writes bufs: straight to the socket when it has room (the usual case: a
 * uv_write that completes still costs an epoll_ctl when libuv drains it),
 * the rest with uv_write. The bytes must stay put until h1_write_cb. An
 * error here is reported through the connection's close. */
static void h1_write(h1_conn_t *conn, uv_buf_t *bufs, unsigned n) {
  int sent = uv_try_write((uv_stream_t *)&conn->tcp, bufs, n);
  size_t skip = sent > 0 ? (size_t)sent : 0;
  unsigned first = 0;
  while (first < n && skip >= bufs[first].len)
    skip -= bufs[first++].len;
  if (first == n) {
    buf_reset(&conn->tls_out);
    return; /* all of it went */
  }
  bufs[first].base += skip;
  bufs[first].len -= skip;
  int rc = uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, bufs + first, n - first,
                    h1_write_cb);
  if (rc != 0) {
    /* Reported from the close callback: this may run inside
     * upstream_send(). */
    if (conn->xfer != NULL)
      snprintf(conn->xfer->error, sizeof(conn->xfer->error), "could not send to the upstream: %s",
               uv_strerror(rc));
    h1_conn_close(conn);
    return;
  }
  conn->writing = true;
}

/* Sends what the TLS session has for the socket, unless a write is in
 * flight (its callback flushes again). */
static void h1_tls_flush(h1_conn_t *conn) {
  if (conn->writing || conn->state == H1_CLOSED)
    return;
  if (upstream_tls_take_out(conn->tls, &conn->tls_out) != 0) {
    if (conn->xfer != NULL)
      snprintf(conn->xfer->error, sizeof(conn->xfer->error),
               "could not send to the upstream: the request is too large");
    h1_conn_close(conn);
    return;
  }
  if (conn->tls_out.len == 0)
    return;
  uv_buf_t b = uv_buf_init(conn->tls_out.data, (unsigned)conn->tls_out.len);
  h1_write(conn, &b, 1);
}

static void h1_send_request(h1_conn_t *conn) {
  h1_xfer_t *x = conn->xfer;
  answer_parser_start(&conn->answer, x->super.head, x->is_head, &h1_answer_ops, conn);
  bool body = x->body != NULL && x->body_len > 0 && !x->is_head;
  if (conn->tls != NULL) {
    /* A small request goes out as one TLS record, as from libcurl: a
     * server that reads one record, answers and closes would otherwise
     * reset the connection over the unread body. */
    size_t blen = body ? x->body_len : 0;
    int rc;
    if (blen > 0 && x->out.len + blen <= sizeof(conn->up->record)) {
      char *record = conn->up->record;
      memcpy(record, x->out.data, x->out.len);
      memcpy(record + x->out.len, x->body, blen);
      rc = upstream_tls_write(conn->tls, record, x->out.len + blen);
    } else {
      rc = upstream_tls_write(conn->tls, x->out.data, x->out.len);
      if (rc == 0 && blen > 0)
        rc = upstream_tls_write(conn->tls, x->body, blen);
    }
    if (rc != 0) {
      snprintf(x->error, sizeof(x->error), "%s", upstream_tls_error(conn->tls));
      h1_conn_close(conn);
      return;
    }
    h1_tls_flush(conn);
    return;
  }
  uv_buf_t bufs[2];
  unsigned n = 0;
  bufs[n++] = uv_buf_init(x->out.data, (unsigned)x->out.len);
  if (body)
    bufs[n++] = uv_buf_init((char *)(uintptr_t)x->body, (unsigned)x->body_len);
  h1_write(conn, bufs, n);
}

static void h1_connect_cb(uv_connect_t *req, int status);

static void h1_connect_error(h1_xfer_t *x, int status) {
  h1_upstream_t *u = h1_of(x);
  snprintf(x->error, sizeof(x->error), "could not connect to the upstream %s: %s",
           u->origin.authority, uv_strerror(status));
}

/* Connects conn to the origin's address i. */
static int h1_connect(h1_conn_t *conn, int i) {
  h1_upstream_t *u = conn->up;
  conn->state = H1_CONNECTING;
  conn->addr_index = i;
  return uv_tcp_connect(&conn->connect_req, &conn->tcp,
                        (const struct sockaddr *)&u->origin.addrs[i], h1_connect_cb);
}

static h1_conn_t *h1_conn_new(h1_xfer_t *x) {
  h1_upstream_t *u = h1_of(x);
  h1_conn_t *conn = calloc(1, sizeof(*conn));
  if (conn == NULL)
    return NULL;
  conn->rbuf = malloc(H1_READ_BUF);
  if (u->tls != NULL) {
    conn->cbuf = malloc(H1_READ_BUF);
    conn->tls = upstream_tls_new(u->tls);
    buf_init(&conn->tls_out, u->tls_out_max);
  }
  if (conn->rbuf == NULL || (u->tls != NULL && (conn->cbuf == NULL || conn->tls == NULL)) ||
      uv_tcp_init(u->loop, &conn->tcp) != 0) {
    upstream_tls_free(conn->tls);
    free(conn->cbuf);
    free(conn->rbuf);
    free(conn);
    return NULL;
  }
  conn->up = u;
  list_init(&conn->link);
  u->nconns++;
  conn->tcp.data = conn;
  conn->connect_req.data = conn;
  conn->write_req.data = conn;
  conn->xfer = x;
  x->conn = conn;
  return conn;
}

static void h1_connect_cb(uv_connect_t *req, int status) {
  h1_conn_t *conn = req->data;
  h1_upstream_t *u = conn->up;
  h1_xfer_t *x = conn->xfer;
  if (x == NULL || conn->state == H1_CLOSED)
    return; /* cancelled */
  if (status < 0) {
    int next = conn->addr_index + 1;
    h1_detach(x);
    h1_conn_close(conn);
    if (next < u->origin.naddrs) {
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
  if (conn->tls == NULL) {
    h1_send_request(conn);
    return;
  }
  /* The ClientHello goes out; the request follows the handshake. */
  if (upstream_tls_handshake(conn->tls) == TLS_ERROR) {
    h1_fail(x, "%s", upstream_tls_error(conn->tls));
    return;
  }
  h1_tls_flush(conn);
}

/* The lookup ended: every connection waiting for it goes on. */
static void h1_resolved(resolver_t *r, int status, struct addrinfo *res) {
  h1_upstream_t *u = r->data;
  if (status == 0)
    upstream_origin_learn(&u->origin, res, uv_now(u->loop));
  if (res != NULL)
    freeaddrinfo(res);
  bool fresh = upstream_origin_fresh(&u->origin, uv_now(u->loop));
  list_t *l;
  while ((l = list_pop_head(&u->resolving)) != NULL) {
    h1_conn_t *conn = h1_conn_of(l);
    conn->state = H1_CONNECTING;
    h1_xfer_t *x = conn->xfer;
    if (!fresh) {
      h1_fail(x, "could not look up the upstream's host %s: %s", u->origin.host,
              status != 0 ? resolver_strerror(status) : "no address");
      continue;
    }
    int rc = h1_connect(conn, 0);
    if (rc != 0) {
      h1_connect_error(x, rc);
      h1_fail(x, NULL);
    }
  }
}

/* An idle connection young enough to reuse, or NULL. */
static h1_conn_t *h1_idle_take(h1_upstream_t *u) {
  uint64_t now = uv_now(u->loop);
  while (!list_empty(&u->idle)) {
    h1_conn_t *conn = h1_conn_of(list_first(&u->idle));
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
static int h1_attach(h1_xfer_t *x) {
  h1_upstream_t *u = h1_of(x);
  h1_conn_t *conn = x->resent ? NULL : h1_idle_take(u);
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
  if (upstream_origin_fresh(&u->origin, uv_now(u->loop))) {
    rc = h1_connect(conn, 0);
  } else {
    rc = resolver_busy(&u->resolver) ? 0
                                      : resolver_start(&u->resolver, u->origin.host, u->origin.port);
    if (rc == 0) {
      conn->state = H1_RESOLVING;
      list_insert_head(&u->resolving, &conn->link);
    }
  }
  if (rc != 0) {
    /* Reported from the close callback, after upstream_send() returned. */
    h1_connect_error(x, rc);
    h1_conn_close(conn);
  }
  return 0;
}

/* ---- the backend ----------------------------------------------------- */

static int h1_build(h1_xfer_t *x, const upstream_request_t *r) {
  h1_upstream_t *u = h1_of(x);
  const upstream_origin_t *o = &u->origin;
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

static upstream_xfer_t *h1_send(upstream_t *up, const upstream_request_t *r,
                                response_head_t *head, const upstream_ops_t *ops, void *ctx) {
  h1_upstream_t *u = (h1_upstream_t *)up;
  h1_xfer_t *x = h1_xfer_take(u, strlen(r->method) + strlen(u->origin.prefix) + strlen(r->target) +
                                     strlen(u->origin.authority) + r->headers_len + 96);
  if (x == NULL)
    return NULL;
  upstream_xfer_init(&x->super, up, head, ops, ctx);
  x->body = r->body;
  x->body_len = r->body_len;
  x->is_head = strcmp(r->method, "HEAD") == 0;
  if (h1_build(x, r) != 0 || h1_attach(x) != 0) {
    h1_xfer_free(x);
    return NULL;
  }
  return &x->super;
}

static void h1_cancel(upstream_xfer_t *base) {
  h1_xfer_t *x = (h1_xfer_t *)base;
  h1_conn_t *conn = x->conn;
  h1_detach(x);
  if (conn != NULL)
    h1_conn_close(conn); /* mid-request: it cannot carry another */
  h1_xfer_free(x);
}

static void h1_resume(upstream_xfer_t *base) {
  h1_xfer_t *x = (h1_xfer_t *)base;
  h1_conn_t *conn = x->conn;
  if (!x->paused || conn == NULL)
    return;
  x->paused = false;
  if (x->pending != NULL) {
    int r = x->super.ops->body(x->super.ctx, x->pending, x->pending_len);
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
  if (h1_feed(conn, rest, rest_len) != FEED_MORE)
    return;
  /* Over TLS more of the answer may wait, decrypted or not, in the
   * session: it comes before the socket's next bytes. */
  if (conn->tls == NULL || h1_tls_pump(conn) == FEED_MORE)
    h1_read_on(conn);
}

static void h1_upstream_free(h1_upstream_t *u) {
  while (u->nspare > 0) {
    h1_xfer_t *x = u->spare[--u->nspare];
    buf_free(&x->out);
    free(x);
  }
  /* Sessions still closing hold their own reference to OpenSSL's context. */
  upstream_tls_ctx_free(u->tls);
  free(u);
}

/* The upstream's memory goes with the last of its handles: the resolver's
 * and every connection's. */
static void h1_upstream_maybe_free(h1_upstream_t *u) {
  if (u->closing && u->nconns == 0 && u->resolver_closed)
    h1_upstream_free(u);
}

static void h1_resolver_closed(uv_handle_t *h) {
  h1_upstream_t *u = ((resolver_t *)h->data)->data;
  u->resolver_closed = true;
  h1_upstream_maybe_free(u);
}

static upstream_t *h1_create(uv_loop_t *loop, const config_t *cfg, const char *url, char *err,
                             size_t errlen) {
  h1_upstream_t *u = calloc(1, sizeof(*u));
  if (u == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  u->loop = loop;
  list_init(&u->idle);
  list_init(&u->resolving);
  if (resolver_init(&u->resolver, loop, h1_resolved) != 0) {
    snprintf(err, errlen, "out of memory");
    free(u);
    return NULL;
  }
  u->resolver.data = u;
  if (upstream_origin_parse(&u->origin, url) != 0) {
    snprintf(err, errlen, "not an http:// or https:// URL: %s", url);
    goto fail;
  }
  if (u->origin.tls) {
    u->tls = upstream_tls_ctx_new(u->origin.host, cfg->upstream_ca, err, errlen);
    if (u->tls == NULL)
      goto fail;
    /* A request's head and body, encrypted: TLS adds at most a few
     * hundred bytes per 16 KiB record. */
    u->tls_out_max = cfg->max_body + cfg->max_body / 32 + 2 * cfg->max_header_bytes + 65536;
  }
  return &u->super;
fail:
  u->closing = true;
  resolver_close(&u->resolver, h1_resolver_closed);
  return NULL;
}

static void h1_close(upstream_t *up) {
  h1_upstream_t *u = (h1_upstream_t *)up;
  u->closing = true;
  while (!list_empty(&u->idle))
    h1_conn_close(h1_conn_of(list_first(&u->idle)));
  /* A lookup still running is abandoned, not waited for. */
  resolver_close(&u->resolver, h1_resolver_closed);
  h1_upstream_maybe_free(u);
}

const upstream_backend_t upstream_h1_backend = {
    .create = h1_create,
    .close = h1_close,
    .send = h1_send,
    .cancel = h1_cancel,
    .resume = h1_resume,
};
