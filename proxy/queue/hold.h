/* hold: answering for a stored request — its 202 at once, or, when the
 * client asked for Prefer: wait=N (RFC 7240; N capped by --max-wait), the
 * client held while the request is retried on its normal schedule: the
 * final upstream answer if it completes within N seconds, else the 202.
 * A row with a Retryd-Deadline before the wait's end is read again just
 * after its deadline and the client answered with it as it is then (dead,
 * as a rule), not held to the end of its wait. Answers say what was
 * honoured in Preference-Applied. Loop thread. */
#ifndef RETRYD_HOLD_H
#define RETRYD_HOLD_H

#include "proxy/http/http_conn.h"
#include "proxy/queue/prefer.h"
#include "storage/stored_request.h"

struct app_s;

/* Answers c for the stored row rq (taken over: rq is left empty). */
void hold_answer(struct app_s *app, http_conn_t *c, stored_request_t *rq, const prefer_t *prefer);

#endif
