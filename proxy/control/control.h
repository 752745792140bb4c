/* control: the control API under /_retryd/.
 *
 * For now: GET /_retryd/health. Every other control path answers 404 with a
 * JSON error; none is ever forwarded. Loop thread only. */
#ifndef RETRYD_CONTROL_H
#define RETRYD_CONTROL_H

#include "proxy/http/http_conn.h"
#include "proxy/http/request.h"

struct app_s;

void control_handle(struct app_s *app, http_conn_t *c, request_t *req);

#endif
