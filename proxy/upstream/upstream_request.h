/* upstream_request: which of a client's header fields go upstream.
 *
 * Computed once, by forward.c for the first attempt; a stored request
 * keeps those same lines (enqueue.c takes them over), so every retry goes
 * out byte for byte like the first attempt. The fields that go
 * upstream are the client's minus hop-by-hop ones, retryd's own
 * (X-Retryd-Token, Retryd-*), Host (the upstream's is sent), Content-Length
 * (set from the body) and Expect; kept as
 * "Name: value\r\n" lines. Loop thread. */
#ifndef RETRYD_UPSTREAM_REQUEST_H
#define RETRYD_UPSTREAM_REQUEST_H

#include "proxy/buf.h"
#include "proxy/http/headers.h"

/* Appends the forwardable fields of a client request to out. */
int upstream_request_headers(const headers_t *client, buf_t *out) BUF_MUST_CHECK;

#endif
