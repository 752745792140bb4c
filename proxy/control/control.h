/* control: the control API under /_retryd/.
 *
 * Health and the status page, open to all; then, as control_auth allows:
 * stats and metrics, listings, one stored request and its stored answer
 * (GET and HEAD; with Prefer: wait=N a long-poll, control_wait), retry now
 * (POST .../retry) and cancel (DELETE). Reads and changes go to the store
 * as jobs; nothing here blocks. An unknown control path answers 404 with a
 * JSON error; none is ever forwarded. Loop thread only. */
#ifndef RETRYD_CONTROL_H
#define RETRYD_CONTROL_H

#include "proxy/http/http_conn.h"
#include "proxy/http/request.h"

struct app_s;

void control_handle(struct app_s *app, http_conn_t *c, request_t *req);

#endif
