#include "proxy/http/request.h"

#include <string.h>

/* A body buffer up to this size is kept for the connection's next request;
 * a larger one is freed, so an idle connection holds little. */
#define REQUEST_BODY_KEEP (64 * 1024)

void request_init(request_t *r, const config_t *cfg) {
  memset(r, 0, sizeof(*r));
  buf_init(&r->target, cfg->max_header_bytes);
  headers_init(&r->headers, cfg->max_header_bytes);
  headers_init(&r->trailers, cfg->max_header_bytes);
  buf_init(&r->body, cfg->max_body);
}

void request_reset(request_t *r) {
  buf_reset(&r->target);
  headers_reset(&r->headers);
  headers_reset(&r->trailers);
  /* A large body is not kept around for the next request on the connection. */
  if (r->body.cap > REQUEST_BODY_KEEP)
    buf_free(&r->body);
  else
    buf_reset(&r->body);
  r->method[0] = '\0';
  r->method_id = 0;
  r->has_body = false;
  r->is_head = false;
  r->http_major = r->http_minor = 0;
  r->keep_alive = false;
  r->started_ns = 0;
  r->bytes_in = 0;
}

void request_free(request_t *r) {
  buf_free(&r->target);
  headers_free(&r->headers);
  headers_free(&r->trailers);
  buf_free(&r->body);
}
