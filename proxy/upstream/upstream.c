#include "proxy/upstream/upstream.h"

#include <stdbool.h>
#include <string.h>

#include "proxy/log.h"
#include "proxy/upstream/upstream_backend.h"

upstream_t *upstream_new(uv_loop_t *loop, const config_t *cfg, const char *url, char *err,
                         size_t errlen) {
  /* config.c accepts only http:// and https:// URLs. HTTP/1.1, over TLS
   * or not, is retryd's own client; HTTP/2 is libcurl's. */
  bool https = strncmp(url, "https://", 8) == 0;
  const upstream_backend_t *backend =
      https && cfg->upstream_http2 ? &upstream_curl_backend : &upstream_h1_backend;
  upstream_t *u = backend->create(loop, cfg, url, err, errlen);
  if (u != NULL)
    u->backend = backend;
  return u;
}

void upstream_close(upstream_t *u) {
  if (u != NULL)
    u->backend->close(u);
}

upstream_xfer_t *upstream_send(upstream_t *u, const upstream_request_t *r, response_head_t *head,
                               const upstream_ops_t *ops, void *ctx) {
  return u->backend->send(u, r, head, ops, ctx);
}

void upstream_note_resent(stats_t *stats, uint64_t *sent_ns, const char *id, const char *method,
                          const char *target, const char *why) {
  uint64_t now = uv_hrtime();
  stats_upstream_answer(stats, 0, now - *sent_ns);
  stats->resent++;
  *sent_ns = now;
  log_line_t l;
  log_begin(&l, LOG_INFO, "upstream_resend");
  if (id != NULL)
    log_str(&l, "id", id);
  log_str(&l, "method", method);
  log_strn(&l, "path", target, strcspn(target, "?")); /* query values may be secrets */
  log_str(&l, "error", why);
  log_end(&l);
}

void upstream_cancel(upstream_xfer_t *x) {
  if (x != NULL)
    x->owner->backend->cancel(x);
}

void upstream_resume(upstream_xfer_t *x) {
  x->owner->backend->resume(x);
}
