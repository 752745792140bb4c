#include "proxy/upstream.h"

#include <string.h>

#include "proxy/upstream_backend.h"

static const upstream_backend_t *backend;

int upstream_init(uv_loop_t *loop, const config_t *cfg) {
  /* config.c accepts only http:// and https:// URLs. */
  backend = strncmp(cfg->upstream, "http://", 7) == 0 ? &upstream_h1_backend
                                                       : &upstream_curl_backend;
  return backend->init(loop, cfg);
}

void upstream_close(void) {
  if (backend != NULL)
    backend->close();
  backend = NULL;
}

upstream_xfer_t *upstream_send(const upstream_request_t *r, response_head_t *head,
                               const upstream_ops_t *ops, void *ctx) {
  return backend->send(r, head, ops, ctx);
}

void upstream_cancel(upstream_xfer_t *x) {
  if (x != NULL)
    backend->cancel(x);
}

void upstream_resume(upstream_xfer_t *x) {
  backend->resume(x);
}
