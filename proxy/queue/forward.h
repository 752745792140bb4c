/* forward: one client request sent to the upstream, its answer relayed.
 *
 * The request goes out with its method, target, headers (minus hop-by-hop
 * ones and Host, which is the upstream's) and body unchanged (upstream.h).
 * Once the head of a final answer is complete, it is written to the client
 * with framing for HTTP/1.1 (the upstream's Content-Length, else chunked,
 * or close-delimited for an HTTP/1.0 client), held back to leave in one
 * write with the first body bytes, and the body is streamed as it arrives.
 * When the client falls behind, the transfer is paused (UPSTREAM_PAUSE) and
 * resumed when it catches up, so memory stays bounded whatever the
 * answer's size. A retryable answer (or none) is not relayed: the request
 * is stored (enqueue.c) and the client gets a 202.
 *
 * --upstream-timeout bounds the time from the start to the answer's head,
 * and after that any gap in the body while the transfer is not paused.
 * Loop thread only. */
#ifndef RETRYD_FORWARD_H
#define RETRYD_FORWARD_H

#include "proxy/http/http_conn.h"
#include "proxy/http/request.h"

struct app_s;

/* Takes over answering req on c. */
void forward_start(struct app_s *app, http_conn_t *c, request_t *req);

#endif
