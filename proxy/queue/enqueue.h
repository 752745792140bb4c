/* enqueue: a request whose first attempt failed, or that its route held
 * back without sending it, becomes a stored request.
 *
 * The row is committed first; only then does the client get its answer
 * (invariant 2): 202 with Location and Retry-After, or — when it asked for
 * Prefer: wait=N — the final upstream answer if the stored request
 * completes within N seconds (capped by --max-wait), else the 202. A row
 * that cannot be stored gets 503 with Retry-After, never a 202. The words
 * of both answers are accepted.c's, the waiting is hold.c's, and
 * Idempotency-Key repeats are found by idempotency.c. Loop thread. */
#ifndef RETRYD_ENQUEUE_H
#define RETRYD_ENQUEUE_H

#include "proxy/buf.h"
#include "proxy/http/http_conn.h"
#include "proxy/http/request.h"
#include "proxy/queue/last_answer.h"

struct app_s;
struct route_s;

/* Stores req after a first attempt that got last_status (0: no answer,
 * with last_error) and the answer's Retry-After (may be NULL), under
 * route's policy and in its flow (route.h). fields are the header lines
 * that attempt sent (upstream_request_headers()); the row takes them over,
 * so the retries send exactly the same. answer: what the row keeps of a
 * retryable answer (NULL after none). A Retryd-Deadline (checked by the
 * router) goes with the row: no attempt is planned after it, and a row
 * whose first attempt outlasted it is stored dead. */
void enqueue_store(struct app_s *app, http_conn_t *c, request_t *req, buf_t *fields,
                   const struct route_s *route, const char *flow, int last_status,
                   const char *last_error, const char *retry_after, const last_answer_t *answer);
/* Stores req without having sent it (its route is paused, or over its rate
 * limit: route.h), due at due_ms, with no attempt counted; why says which,
 * in last_error. */
void enqueue_held(struct app_s *app, http_conn_t *c, request_t *req, buf_t *fields,
                  const struct route_s *route, const char *flow, int64_t due_ms, const char *why);

#endif
