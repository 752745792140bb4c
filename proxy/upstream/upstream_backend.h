/* upstream_backend: what each upstream client provides, and the base
 * structs it embeds (h2o's pattern: each client's upstream begins with
 * upstream_t super, each transfer with upstream_xfer_t super, and the
 * generic code in upstream.c only ever sees the bases).
 * Internal to upstream*.c; it includes no upstream.h, so the interface and
 * its clients do not include each other. */
#ifndef RETRYD_UPSTREAM_BACKEND_H
#define RETRYD_UPSTREAM_BACKEND_H

#include <uv.h>

#include "proxy/config.h"
#include "proxy/upstream/response_head.h"
#include "proxy/upstream/upstream_types.h"

typedef struct upstream_backend_s upstream_backend_t;

struct upstream_s {
  const upstream_backend_t *backend;
};

struct upstream_xfer_s {
  upstream_t *owner;
  response_head_t *head;
  const upstream_ops_t *ops;
  void *ctx;
};

/* Fills the base of a new transfer: what every client's send() does first. */
static inline void upstream_xfer_init(upstream_xfer_t *x, upstream_t *owner,
                                      response_head_t *head, const upstream_ops_t *ops,
                                      void *ctx) {
  x->owner = owner;
  x->head = head;
  x->ops = ops;
  x->ctx = ctx;
}

struct upstream_backend_s {
  /* NULL on failure, with err set. url: the origin and path prefix. */
  upstream_t *(*create)(uv_loop_t *loop, const config_t *cfg, const char *url, char *err,
                        size_t errlen);
  void (*close)(upstream_t *u);
  upstream_xfer_t *(*send)(upstream_t *u, const upstream_request_t *r, response_head_t *head,
                           const upstream_ops_t *ops, void *ctx);
  void (*cancel)(upstream_xfer_t *x);
  void (*resume)(upstream_xfer_t *x);
};

/* libcurl multi: https with HTTP/2 by ALPN (upstream_curl.c). */
extern const upstream_backend_t upstream_curl_backend;
/* retryd's own HTTP/1.1 client, plain or TLS (upstream_h1.c). */
extern const upstream_backend_t upstream_h1_backend;

#endif
