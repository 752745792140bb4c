/* request_json: a stored request as the JSON a client or operator reads.
 *
 * Used by the 202 answer and the control API, so both say the same thing
 * the same way. Never includes headers or bodies (they may carry secrets),
 * nor query values (api_key=... is common): a target is shown with each
 * query value as [redacted], names kept.
 * Times are ISO 8601 UTC with milliseconds. Any thread. */
#ifndef RETRYD_REQUEST_JSON_H
#define RETRYD_REQUEST_JSON_H

#include <stdint.h>

#include "proxy/buf.h"
#include "storage/stored_request.h"

/* The 202 body: id, state, attempts, last_status, last_error,
 * next_attempt_at, status_url. */
int request_json_accepted(buf_t *out, const stored_request_t *r) BUF_MUST_CHECK;
/* The full status: also method, path, created_at, response_status. */
int request_json_status(buf_t *out, const stored_request_t *r) BUF_MUST_CHECK;
/* target as a JSON string with its query values redacted:
 * "/p?api_key=[redacted]&x=[redacted]"; an element without '=' is
 * redacted whole. null (unquoted) for NULL. */
int request_json_target(buf_t *out, const char *target) BUF_MUST_CHECK;
/* Why a request ended without a final answer, as a word a program can
 * test: for a dead one "deadline" (Retryd-Deadline), "max_attempts",
 * "max_age", or "gave_up" (anything else: a final answer that broke off);
 * "cancelled" for a cancelled one; NULL for any other state. Read from
 * last_error, which says it in words. */
const char *request_json_reason(rq_state_t state, const char *last_error);
/* "2026-11-27T00:00:30.000Z", or null (unquoted) for 0. */
int request_json_time(buf_t *out, int64_t unix_ms) BUF_MUST_CHECK;

#endif
