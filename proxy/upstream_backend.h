/* upstream_backend: what each upstream client provides to upstream.c.
 * Internal to upstream*.c. */
#ifndef RETRYD_UPSTREAM_BACKEND_H
#define RETRYD_UPSTREAM_BACKEND_H

#include "proxy/upstream.h"

typedef struct {
  int (*init)(uv_loop_t *loop, const config_t *cfg);
  void (*close)(void);
  upstream_xfer_t *(*send)(const upstream_request_t *r, response_head_t *head,
                           const upstream_ops_t *ops, void *ctx);
  void (*cancel)(upstream_xfer_t *x);
  void (*resume)(upstream_xfer_t *x);
} upstream_backend_t;

/* libcurl multi: https, HTTP/2 (upstream_curl.c). */
extern const upstream_backend_t upstream_curl_backend;
/* retryd's own HTTP/1.1 client: http (upstream_h1.c). */
extern const upstream_backend_t upstream_h1_backend;

#endif
