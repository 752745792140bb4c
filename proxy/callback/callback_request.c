#include "proxy/callback/callback_request.h"

#include <stdio.h>

#include "proxy/app.h"
#include "proxy/callback/callback_url.h"

#define CALLBACK_HEADER "retryd-callback"

bool callback_request_check(struct app_s *app, http_conn_t *c, const request_t *req) {
  const char *url = headers_get(&req->headers, CALLBACK_HEADER);
  if (url == NULL)
    return true;
  if (!store_has_callbacks(app->store)) {
    http_conn_error(c, 400, "callback_unsupported",
                    "Retryd-Callback needs a store that keeps notices");
    return false;
  }
  callback_url_t u;
  char why[200];
  if (callback_url_parse(url, &u, why, sizeof(why)) != 0) {
    http_conn_error(c, 400, "bad_callback", why);
    return false;
  }
  if (!callback_url_allowed(&u, app->cfg->callback_allow)) {
    char msg[CALLBACK_URL_MAX + 96];
    snprintf(msg, sizeof(msg), "Retryd-Callback: origin %s is not allowed (--callback-allow%s)",
             u.origin, app->cfg->callback_allow[0] == '\0' ? ": loopback only" : "");
    http_conn_error(c, 400, "callback_not_allowed", msg);
    return false;
  }
  return true;
}

const char *callback_request_url(const struct app_s *app, const request_t *req,
                                 const char *route_default) {
  if (!store_has_callbacks(app->store))
    return NULL;
  const char *url = headers_get(&req->headers, CALLBACK_HEADER);
  if (url != NULL)
    return url;
  return route_default != NULL && route_default[0] != '\0' ? route_default : NULL;
}
