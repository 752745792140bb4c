#include "proxy/router.h"

#include <string.h>

#include "proxy/app.h"
#include "proxy/callback/callback_request.h"
#include "proxy/control/control.h"
#include "proxy/queue/idempotency.h"
#include "proxy/queue/deadline_header.h"
#include "proxy/queue/forward.h"
#include "storage/store.h"

/* The control prefix, followed by '/', '?' or nothing. */
static bool router_is_control(const char *target, size_t len) {
  static const char prefix[] = "/_retryd";
  size_t plen = sizeof(prefix) - 1;
  if (len < plen || memcmp(target, prefix, plen) != 0)
    return false;
  return len == plen || target[plen] == '/' || target[plen] == '?';
}

void router_dispatch(struct app_s *app, http_conn_t *c, request_t *req) {
  if (router_is_control(req->target.data, req->target.len)) {
    control_handle(app, c, req);
    return;
  }
  app->stats.requests++;
  /* A bad deadline is the client's mistake: neither sent nor stored. */
  int64_t deadline;
  const char *why;
  if (deadline_header_parse(headers_get(&req->headers, "retryd-deadline"), store_now_ms(),
                            &deadline, &why) != 0) {
    http_conn_error(c, 400, "bad_deadline", why);
    return;
  }
  if (!callback_request_check(app, c, req))
    return;
  if (headers_get(&req->headers, "idempotency-key") != NULL)
    idempotency_dedupe(app, c, req, forward_start);
  else
    forward_start(app, c, req);
}
