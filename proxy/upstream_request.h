/* upstream_request: how a request is put on a curl easy handle.
 *
 * One way for both senders: the first attempt (forward.c, from the
 * client's request) and every retry (attempt.c, from the stored row), so a
 * retry goes out byte for byte like the first attempt. The headers that go
 * upstream are the client's minus hop-by-hop ones, Host (curl sets the
 * upstream's), Content-Length (curl sets it from the body) and Expect;
 * stored as "Name: value\r\n" lines. Loop thread. */
#ifndef RETRYD_UPSTREAM_REQUEST_H
#define RETRYD_UPSTREAM_REQUEST_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "proxy/buf.h"
#include "proxy/headers.h"

typedef struct {
  const char *method;
  const char *target;
  const char *headers; /* "Name: value\r\n" lines */
  size_t headers_len;
  const char *body;    /* NULL: the request had no body framing */
  size_t body_len;
} upstream_request_t;

/* Appends the forwardable fields of a client request to out. */
int upstream_request_headers(const headers_t *client, buf_t *out);

/* Sets URL, method, headers and body on e. *slist and url are the caller's
 * to free after the transfer; r's strings must outlive it too. */
int upstream_request_setup(CURL *e, const char *upstream, const upstream_request_t *r,
                           struct curl_slist **slist, buf_t *url);

#endif
