/* retry_policy: when a stored request is tried next, and when it is dead.
 *
 * A route's policy (the command line's for the default route, a routes
 * file's for the others: proxy/routes_file.h) says it. The upstream's own
 * Retry-After wins (delay-seconds or an HTTP-date, clamped to 1 s ..
 * max age); without one, the next attempt comes the interval after the
 * answer — always the same interval (fixed backoff, the default), or,
 * with exponential backoff, the interval doubled with every attempt up to
 * its cap, with jitter (half the wait, plus a random part of the other
 * half) so that requests that failed together do not return together. A
 * request is dead once it has had max attempts (when set) or once it is
 * max age old. Pure functions; any thread. */
#ifndef RETRYD_RETRY_POLICY_H
#define RETRYD_RETRY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/config.h"

typedef struct {
  retry_on_t retry_on;    /* what is retryable */
  int64_t interval_ms;    /* the wait between attempts (the first, when exponential) */
  bool exponential;       /* backoff doubles the wait with every attempt */
  int64_t backoff_cap_ms; /* exponential: the longest wait */
  int64_t max_attempts;   /* 0: no limit */
  int64_t max_age_ms;
} retry_policy_t;

/* The command line's policy (--retry-on, --retry-interval, --max-attempts,
 * --max-age): the default route's, and every route's starting point. */
void retry_policy_from_config(retry_policy_t *p, const config_t *cfg);

/* The wait Retry-After asks for, in ms from now_ms, or -1 when value is
 * absent or not a valid Retry-After. */
int64_t retry_policy_parse_retry_after(const char *value, int64_t now_ms);

/* The delay before the next attempt after the attempts-th, given the
 * answer's Retry-After (may be NULL). */
int64_t retry_policy_delay_ms(const retry_policy_t *p, int64_t attempts, const char *retry_after,
                              int64_t now_ms);

/* After a failed attempt at now_ms, the request's attempts-th: true when
 * it is dead (out of attempts, or at or past --max-age); otherwise *next_ms
 * is when to try again — after the delay, but never past its deadline, so
 * the last attempt falls at the end of its life. */
bool retry_policy_next(const retry_policy_t *p, int64_t attempts, int64_t created_ms,
                       int64_t now_ms, const char *retry_after, int64_t *next_ms);

/* How late a due request may be claimed and still count as within its
 * --max-age (a timer, a busy loop); later than that it is dead unsent. */
#define RETRY_POLICY_LATE_MS 1000

#endif
