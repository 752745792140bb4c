#include "proxy/queue/retry_policy.h"

#include <errno.h>
#include <string.h>

#include "proxy/http_delay.h"

int64_t retry_policy_parse_retry_after(const char *value, int64_t now_ms) {
  int64_t at_ms;
  int rc = http_delay_parse(value, now_ms, &at_ms);
  if (rc == -ERANGE)
    return INT64_MAX;
  if (rc != 0)
    return -1;
  /* A date in the past means "now". */
  return at_ms > now_ms ? at_ms - now_ms : 0;
}

void retry_policy_from_config(retry_policy_t *p, const config_t *cfg) {
  memset(p, 0, sizeof(*p));
  p->retry_on = cfg->retry_on;
  p->interval_ms = (int64_t)cfg->retry_interval_ms;
  p->backoff_cap_ms = (int64_t)cfg->retry_interval_ms;
  p->max_attempts = (int64_t)cfg->max_attempts;
  p->max_age_ms = (int64_t)cfg->max_age_ms;
}

/* A number in [0, 1) that differs from request to request and attempt to
 * attempt, for jitter: a mix of the time and the attempt (splitmix64), so
 * the function stays pure and a test can predict its range. */
static double retry_policy_jitter(int64_t now_ms, int64_t attempts) {
  uint64_t z = (uint64_t)now_ms * 0x9e3779b97f4a7c15ull + (uint64_t)attempts;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

/* The wait without a Retry-After: the interval, or with exponential
 * backoff the interval times 2^(attempts - 1) up to the cap, jittered. */
static int64_t retry_policy_backoff_ms(const retry_policy_t *p, int64_t attempts, int64_t now_ms) {
  if (!p->exponential)
    return p->interval_ms;
  int64_t d = p->interval_ms;
  for (int64_t k = 1; k < attempts && d < p->backoff_cap_ms; k++)
    d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
  if (d > p->backoff_cap_ms)
    d = p->backoff_cap_ms;
  return d / 2 + (int64_t)((double)(d - d / 2) * retry_policy_jitter(now_ms, attempts));
}

int64_t retry_policy_delay_ms(const retry_policy_t *p, int64_t attempts, const char *retry_after,
                              int64_t now_ms) {
  int64_t d = retry_policy_parse_retry_after(retry_after, now_ms);
  if (d < 0)
    return retry_policy_backoff_ms(p, attempts, now_ms);
  int64_t lo = 1000, hi = p->max_age_ms;
  if (d < lo)
    d = lo;
  if (d > hi)
    d = hi;
  return d;
}

bool retry_policy_next(const retry_policy_t *p, int64_t attempts, int64_t created_ms,
                       int64_t now_ms, const char *retry_after, int64_t *next_ms) {
  int64_t deadline = created_ms + p->max_age_ms;
  if (p->max_attempts > 0 && attempts >= p->max_attempts)
    return true;
  if (now_ms >= deadline)
    return true;
  int64_t next = now_ms + retry_policy_delay_ms(p, attempts, retry_after, now_ms);
  *next_ms = next < deadline ? next : deadline;
  return false;
}
