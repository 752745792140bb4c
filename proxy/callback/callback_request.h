/* callback_request: a client's Retryd-Callback, checked when its request
 * arrives and read when the request is stored.
 *
 * A request that names a callback its retryd may not send to (a bad URL,
 * an origin outside --callback-allow, or a store that keeps no notices) is
 * answered 400 with a JSON error before anything is forwarded or stored:
 * the client learns at once, and no stored request waits on a notice that
 * could never go. Retryd-* headers are retryd's own and never forwarded
 * upstream (proxy/http/headers.c). Loop thread. */
#ifndef RETRYD_CALLBACK_REQUEST_H
#define RETRYD_CALLBACK_REQUEST_H

#include <stdbool.h>

#include "proxy/http/http_conn.h"
#include "proxy/http/request.h"

struct app_s;

/* true when req may go on; false once it was answered 400. */
bool callback_request_check(struct app_s *app, http_conn_t *c, const request_t *req);
/* Where req's notice goes: its Retryd-Callback, else its route's default
 * (the route's callback_url, or --callback-url), else NULL (also when the
 * store keeps no notices). Valid while req and the route are. */
const char *callback_request_url(const struct app_s *app, const request_t *req,
                                 const char *route_default);

#endif
