/* idempotency: a request carrying an Idempotency-Key is first looked up;
 * while a stored row with the same key, method and target is unfinished,
 * the repeat gets that row's answer (its 202, or held for Prefer: wait) and
 * is neither forwarded nor stored again. Once the row completed, and for
 * --keep-completed after, a repeat gets the stored final answer replayed
 * (status, fields, body, plus Retryd-Replayed: true and Retryd-Request-Id)
 * without a second upstream call; it is logged as a replay of the row. The
 * same key with another body (the SHA-256 stored with the row differs) is
 * answered 422 idempotency_key_reused, as Stripe does. Loop thread. */
#ifndef RETRYD_IDEMPOTENCY_H
#define RETRYD_IDEMPOTENCY_H

#include "proxy/http/http_conn.h"
#include "proxy/http/request.h"

struct app_s;

/* Answers from req's unfinished twin, or, when it has none, hands req to
 * on_miss (the router passes forward). */
typedef void (*idempotency_miss_fn)(struct app_s *app, http_conn_t *c, request_t *req);
void idempotency_dedupe(struct app_s *app, http_conn_t *c, request_t *req,
                        idempotency_miss_fn on_miss);

#endif
