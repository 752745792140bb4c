/* upstream_request: which of a client's header fields go upstream.
 *
 * One rule for both senders: the first attempt (forward.c, from the
 * client's request) and the stored copy every retry sends (enqueue.c), so a
 * retry goes out byte for byte like the first attempt. The fields that go
 * upstream are the client's minus hop-by-hop ones, Host (the upstream's is
 * sent), Content-Length (set from the body) and Expect; kept as
 * "Name: value\r\n" lines. Loop thread. */
#ifndef RETRYD_UPSTREAM_REQUEST_H
#define RETRYD_UPSTREAM_REQUEST_H

#include "proxy/buf.h"
#include "proxy/headers.h"

/* Appends the forwardable fields of a client request to out. */
int upstream_request_headers(const headers_t *client, buf_t *out);

#endif
