/* control_auth: who may do what in the control API.
 *
 * Two tokens. --admin-token may do everything. --read-token may read what
 * an application needs — GET and HEAD of a stored request, its stored
 * answer, the listings, stats and metrics — and nothing else: any other
 * method could change state (retry, cancel), and is forbidden to it. A
 * token comes in X-Retryd-Token or as "Authorization: Bearer <token>", the
 * form a stock Prometheus scrape config sends.
 *
 * The rules, in order:
 *   1. no token configured: everything is open (retryd on loopback, beside
 *      its application, the default);
 *   2. --metrics-open on: GET and HEAD of /_retryd/metrics are open;
 *   3. a request with no token that matches a configured one: 401;
 *   4. GET and HEAD: allowed to either token;
 *   5. any other method: allowed to the admin token only, else 403. With
 *      only --read-token set, no token can change state: setting a read
 *      token must never leave an open write API behind.
 * Health and the status page are the caller's: open to all, always.
 *
 * Every configured token is compared with every token the request carries,
 * each compare without an early exit, so the time taken says nothing about
 * how much of a token was right. No token is ever copied, logged or put in
 * an answer. Pure; loop thread (it reads a request). */
#ifndef RETRYD_CONTROL_AUTH_H
#define RETRYD_CONTROL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/config.h"
#include "proxy/http/request.h"

typedef enum {
  CONTROL_AUTH_ALLOWED,
  CONTROL_AUTH_UNAUTHORIZED, /* 401: no token that matches a configured one */
  CONTROL_AUTH_FORBIDDEN,    /* 403: a valid token that may not do this */
} control_auth_t;

/* The verdict on a control request (not health, not the status page). */
control_auth_t control_auth_check(const config_t *cfg, const request_t *req);
/* The 403's message: what the token may do, and who may do the rest. */
const char *control_auth_forbidden_message(const config_t *cfg);
/* Whether given (len bytes) is exactly want, a NUL-terminated configured
 * token; an empty want (no token set) matches nothing. The time taken
 * depends on want's length alone. */
bool control_auth_token_equal(const char *given, size_t len, const char *want);

#endif
