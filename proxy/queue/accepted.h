/* accepted: what the client of a request retryd stored is told — the 202 of
 * DESIGN.md (Location, Retry-After, the row as JSON) — and what it is told
 * when the request could not be stored: 503 with Retry-After, never a 202.
 * Shared by storing (enqueue), Idempotency-Key repeats (idempotency) and
 * Prefer: wait (hold). Loop thread. */
#ifndef RETRYD_ACCEPTED_H
#define RETRYD_ACCEPTED_H

#include "proxy/http/http_conn.h"
#include "storage/stored_request.h"

struct app_s;

/* The 202 for rq; applied names the honoured preference, or NULL. */
void accepted_reply(http_conn_t *c, const stored_request_t *rq, const char *applied);
/* 503 queue_full / queue_unavailable for a store error (negative errno). */
void accepted_unavailable(struct app_s *app, http_conn_t *c, int err);

#endif
