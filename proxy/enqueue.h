/* enqueue: a request whose first attempt failed becomes a stored request.
 *
 * The row is committed first; only then does the client get its answer
 * (invariant 2): 202 with Location and Retry-After, or — when it asked for
 * Prefer: wait=N — the final upstream answer if the stored request
 * completes within N seconds (capped by --max-wait), else the 202. A row
 * that cannot be stored gets 503 with Retry-After, never a 202.
 *
 * Idempotency-Key: a request carrying one is first looked up; while a row
 * with the same key, method and target is unfinished, the repeat gets that
 * row's 202 and is neither forwarded nor stored again. Loop thread. */
#ifndef RETRYD_ENQUEUE_H
#define RETRYD_ENQUEUE_H

#include "proxy/buf.h"
#include "proxy/http_conn.h"
#include "proxy/request.h"

struct app_s;

/* Stores req after a first attempt that got last_status (0: no answer,
 * with last_error) and the answer's Retry-After (may be NULL). fields are
 * the header lines that attempt sent (upstream_request_headers()); the row
 * takes them over, so the retries send exactly the same. */
void enqueue_store(struct app_s *app, http_conn_t *c, request_t *req, buf_t *fields,
                   int last_status, const char *last_error, const char *retry_after);

/* For a request with an Idempotency-Key: answer from its unfinished twin,
 * or, when it has none, hand it to on_miss (the router passes forward). */
typedef void (*enqueue_miss_fn)(struct app_s *app, http_conn_t *c, request_t *req);
void enqueue_dedupe(struct app_s *app, http_conn_t *c, request_t *req, enqueue_miss_fn on_miss);

#endif
