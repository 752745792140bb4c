/* http_conn: one client connection — parsing, timeouts, and writing answers.
 *
 * Design note. Requests are parsed strictly with llhttp (no lenient flag).
 * When a request is complete (body included) the parser is paused and the
 * request is dispatched to the router; pipelined bytes that arrived after it
 * wait in a small capped buffer, and reading stops when that is full. Only
 * one request per connection is in progress at a time, so answers go out in
 * order. A handler answers through http_conn_sendv(), which writes at once
 * when the socket has room (uv_try_write) and copies only the rest; it
 * watches http_conn_queued() against the high-water mark and is told through
 * ops->drained when the client has caught up (back-pressure). When a
 * connection closes under a handler, ops->client_gone runs from the close
 * callback (never from inside a handler's own call), after which the handler
 * must not touch the connection.
 *
 * Parsing and every check on what a client sends live in request_parser,
 * which has no socket (so the fuzzer drives the same code); this module
 * turns its results into timers, 100 Continue, dispatch and error answers.
 *
 * Timers: a new connection and a request's headers get --client-timeout
 * (from the request's first byte); a body must keep flowing (no gap over
 * --client-timeout) and be complete within --client-body-timeout of the
 * headers (408 and close otherwise); an idle keep-alive connection gets
 * --keepalive-timeout; an answer the client stops reading gets
 * --client-timeout of no progress. At --max-connections the keep-alive
 * connection idle longest is closed to make room (http_conn_reclaim_idle).
 *
 * Lifecycle: server accepts → http_conn_start() → requests → close (by
 * either side, timeout, error or http_conn_drain()) → freed in the close
 * callback. Loop thread only. */
#ifndef RETRYD_HTTP_CONN_H
#define RETRYD_HTTP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/list.h"
#include "proxy/http/request.h"

/* uv_buf_t is not const-correct; a write never changes the bytes, so
 * constant data may go out without a copy. */
static inline uv_buf_t http_buf(const void *p, size_t len) {
  return uv_buf_init((char *)(uintptr_t)p, (unsigned)len);
}

typedef struct http_conn_s http_conn_t;
struct app_s;

/* Who answers a complete request (the router); handed in from main through
 * the server, so that the connection code knows nothing above it. */
typedef void (*http_dispatch_fn)(struct app_s *app, http_conn_t *c, request_t *req);

/* Whoever accepts the connections (the server). This module links every
 * connection it starts into conns (newest first) and counts them in nconns,
 * and keeps the idle keep-alive ones in idle (oldest first); the owner
 * initialises both lists (list_init) before the first connection, acts on
 * every connection through http_conn_drain_all() and http_conn_close_all(),
 * and hears of every close through closed(). */
typedef struct http_conn_owner_s http_conn_owner_t;
struct http_conn_owner_s {
  uv_loop_t *loop;
  const config_t *cfg;
  struct app_s *app;
  http_dispatch_fn dispatch;
  uint64_t *rejected; /* counts requests refused by the parser (stats) */
  size_t nconns;
  list_t conns; /* every connection not yet freed */
  list_t idle;  /* idle keep-alive connections */
  void (*closed)(http_conn_owner_t *owner); /* one connection fewer */
};

typedef struct {
  /* The connection closed before the handler finished. */
  void (*client_gone)(void *ctx);
  /* Queued output fell to the low-water mark after having been above it. */
  void (*drained)(void *ctx);
} http_handler_ops_t;

/* Accepts one pending connection from listener. 0 or a UV_E* code. */
int http_conn_start(http_conn_owner_t *owner, uv_stream_t *listener);

/* A handler takes the dispatched request; ops may be NULL for answers that
 * complete at once. */
void http_conn_attach(http_conn_t *c, const http_handler_ops_t *ops, void *ctx);
/* Writes bytes of the current answer. 0, or a UV_E* code when the
 * connection is gone (the handler then waits for client_gone). */
int http_conn_sendv(http_conn_t *c, const uv_buf_t *bufs, unsigned nbufs);
size_t http_conn_queued(const http_conn_t *c);
/* The request being answered. */
request_t *http_conn_request(http_conn_t *c);
bool http_conn_over_high_water(const http_conn_t *c);
/* Whether the answer may leave the connection open (the request asked for
 * it, the client has not closed, the server is not draining). */
bool http_conn_may_keep_alive(const http_conn_t *c);
/* Appends the fields that tell the client what becomes of the connection
 * after this answer, to a head being built: "Connection: close" when
 * keep_alive is false; else "Keep-Alive: timeout=N", N being
 * --keepalive-timeout in whole seconds rounded down, so that a client's
 * pool (Node's keep-alive agent) stops reusing the connection before
 * retryd closes it instead of sending into a closing socket, and for an
 * HTTP/1.0 client "Connection: keep-alive" too. keep_alive must already
 * include http_conn_may_keep_alive(). */
int http_conn_append_persistence(const http_conn_t *c, bool keep_alive, buf_t *head) BUF_MUST_CHECK;
/* For the access log. */
void http_conn_note_status(http_conn_t *c, int status, int upstream_status);
/* For the access log: the request went upstream (a first attempt). Without
 * it the line has no upstream status, whatever answer is relayed. */
void http_conn_note_forwarded(http_conn_t *c);
/* For the access log: the request's answer is about the stored request id
 * (stored now, or, with replay, an existing row an Idempotency-Key repeat
 * was answered from), so its line names the row a client will ask about. */
void http_conn_note_stored(http_conn_t *c, const char *id, bool replay);
/* The answer is complete. keep_alive false closes after the bytes are out. */
void http_conn_finish(http_conn_t *c, bool keep_alive);
/* The answer cannot be completed (the upstream failed mid-body): close now
 * so the client sees a truncated answer, never a wrong one. */
void http_conn_abort(http_conn_t *c);

/* A whole answer retryd makes itself: status, extra header lines (each
 * ending in CRLF, or NULL), a Content-Type (NULL: none), and a body.
 * Finishes the answer. */
void http_conn_respond(http_conn_t *c, int status, const char *extra_headers,
                       const char *content_type, const char *body, size_t len);
/* retryd's own error: {"error":code,"message":message} as JSON. */
void http_conn_error(http_conn_t *c, int status, const char *code, const char *message);
/* The same with extra header lines (each ending in CRLF), e.g. Allow. */
void http_conn_error_with(http_conn_t *c, int status, const char *extra_headers, const char *code,
                          const char *message);

/* Server shutdown: closes an idle connection now, or makes the one with a
 * request in progress close after its answer. */
void http_conn_drain(http_conn_t *c);
/* Closes at once, whatever it is doing (shutdown deadline). */
void http_conn_close(http_conn_t *c);
/* At --max-connections: closes the idle keep-alive connection that has been
 * idle longest, so a new client can take its place. False when every
 * connection is busy (in the middle of a request or an answer) or has not
 * sent a request yet. */
bool http_conn_reclaim_idle(http_conn_owner_t *owner);
/* Server shutdown and its deadline: http_conn_drain() or http_conn_close()
 * on every connection of the owner. */
void http_conn_drain_all(http_conn_owner_t *owner);
void http_conn_close_all(http_conn_owner_t *owner);

#endif
