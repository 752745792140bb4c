/* retry_policy: when a stored request is tried next, and when it is dead.
 *
 * The upstream's own Retry-After wins (delay-seconds or an HTTP-date,
 * clamped to 1 s .. --max-age); without one, the next attempt comes
 * --retry-interval after the answer. A request is dead once it has had
 * --max-attempts attempts (when set) or once it is --max-age old. Pure functions; any thread. */
#ifndef RETRYD_RETRY_POLICY_H
#define RETRYD_RETRY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/config.h"

/* The wait Retry-After asks for, in ms from now_ms, or -1 when value is
 * absent or not a valid Retry-After. */
int64_t retry_policy_parse_retry_after(const char *value, int64_t now_ms);

/* The delay before the next attempt, given the answer's Retry-After (may
 * be NULL). */
int64_t retry_policy_delay_ms(const config_t *cfg, const char *retry_after, int64_t now_ms);

/* After a failed attempt at now_ms, the request's attempts-th: true when
 * it is dead (out of attempts, or at or past --max-age); otherwise *next_ms
 * is when to try again — after the delay, but never past its deadline, so
 * the last attempt falls at the end of its life. */
bool retry_policy_next(const config_t *cfg, int64_t attempts, int64_t created_ms,
                       int64_t now_ms, const char *retry_after, int64_t *next_ms);

/* How late a due request may be claimed and still count as within its
 * --max-age (a timer, a busy loop); later than that it is dead unsent. */
#define RETRY_POLICY_LATE_MS 1000

#endif
