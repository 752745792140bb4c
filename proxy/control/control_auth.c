#include "proxy/control/control_auth.h"

#include <string.h>
#include <strings.h>

#define CONTROL_AUTH_METRICS "/_retryd/metrics"
#define CONTROL_AUTH_BEARER "Bearer"

typedef enum { GRANT_NONE, GRANT_READ, GRANT_ADMIN } grant_t;

bool control_auth_token_equal(const char *given, size_t len, const char *want) {
  size_t wl = strlen(want);
  unsigned char diff = (unsigned char)((len != wl) | (wl == 0));
  if (len == 0)
    given = "\xff"; /* something to read; the length already differs */
  /* Every byte of want is looked at the same way, whatever given holds: no
   * early exit, and no branch on the bytes (past given's end its first
   * byte stands in, picked by a mask). */
  for (size_t i = 0; i < wl; i++) {
    size_t inside = (size_t)0 - (size_t)(i < len);
    diff |= (unsigned char)(want[i] ^ given[i & inside]);
  }
  return diff == 0;
}

/* The token of "Authorization: Bearer <token>" (RFC 6750 2.1: the scheme is
 * case-insensitive, one or more spaces before the token), or NULL. */
static const char *control_auth_bearer(const request_t *req) {
  const char *v = headers_get(&req->headers, "authorization");
  size_t slen = strlen(CONTROL_AUTH_BEARER);
  if (v == NULL || strncasecmp(v, CONTROL_AUTH_BEARER, slen) != 0 || v[slen] != ' ')
    return NULL;
  v += slen;
  while (*v == ' ')
    v++;
  return v;
}

/* What one token the request carries (NULL: none) is worth. Both configured
 * tokens are always compared, so the time taken does not tell which one it
 * nearly was. */
static grant_t control_auth_grant_of(const config_t *cfg, const char *given) {
  if (given == NULL)
    return GRANT_NONE;
  size_t len = strlen(given);
  bool admin = control_auth_token_equal(given, len, cfg->admin_token);
  bool reader = control_auth_token_equal(given, len, cfg->read_token);
  return admin ? GRANT_ADMIN : reader ? GRANT_READ : GRANT_NONE;
}

static bool control_auth_is_read(const request_t *req) {
  return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

static bool control_auth_is_metrics(const request_t *req) {
  size_t plen = strcspn(req->target.data, "?");
  return plen == strlen(CONTROL_AUTH_METRICS) &&
         memcmp(req->target.data, CONTROL_AUTH_METRICS, plen) == 0;
}

control_auth_t control_auth_check(const config_t *cfg, const request_t *req) {
  if (cfg->admin_token[0] == '\0' && cfg->read_token[0] == '\0')
    return CONTROL_AUTH_ALLOWED;
  bool read = control_auth_is_read(req);
  if (read && cfg->metrics_open && control_auth_is_metrics(req))
    return CONTROL_AUTH_ALLOWED;
  grant_t in_header = control_auth_grant_of(cfg, headers_get(&req->headers, "x-retryd-token"));
  grant_t as_bearer = control_auth_grant_of(cfg, control_auth_bearer(req));
  grant_t grant = in_header > as_bearer ? in_header : as_bearer;
  if (grant == GRANT_NONE)
    return CONTROL_AUTH_UNAUTHORIZED;
  if (read || grant == GRANT_ADMIN)
    return CONTROL_AUTH_ALLOWED;
  return CONTROL_AUTH_FORBIDDEN;
}

const char *control_auth_forbidden_message(const config_t *cfg) {
  if (cfg->admin_token[0] == '\0')
    return "this token may only read (GET or HEAD of /_retryd/requests, "
           "/_retryd/requests/<id>, /_retryd/requests/<id>/response, /_retryd/stats, "
           "/_retryd/metrics, /_retryd/health); no --admin-token is set, so nothing may retry, "
           "cancel or change state";
  return "this token may only read (GET or HEAD of /_retryd/requests, "
         "/_retryd/requests/<id>, /_retryd/requests/<id>/response, /_retryd/stats, "
         "/_retryd/metrics, /_retryd/health); retry, cancel and other changes need the admin "
         "token";
}
