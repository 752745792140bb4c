/* router: decides who answers a complete request.
 *
 * /_retryd and everything under it is the control API and is never
 * forwarded; every other origin-form target goes to the upstream. Loop
 * thread only. */
#ifndef RETRYD_ROUTER_H
#define RETRYD_ROUTER_H

#include "proxy/http/http_conn.h"
#include "proxy/http/request.h"

struct app_s;

void router_dispatch(struct app_s *app, http_conn_t *c, request_t *req);

#endif
