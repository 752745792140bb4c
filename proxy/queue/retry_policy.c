#include "proxy/queue/retry_policy.h"

#include <curl/curl.h>
#include <string.h>

#include "proxy/units.h"

int64_t retry_policy_parse_retry_after(const char *value, int64_t now_ms) {
  if (value == NULL)
    return -1;
  while (*value == ' ' || *value == '\t')
    value++;
  char trimmed[128];
  size_t len = strlen(value);
  while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  if (len == 0 || len >= sizeof(trimmed))
    return -1;
  memcpy(trimmed, value, len);
  trimmed[len] = '\0';
  uint64_t secs;
  if (units_parse_uint(trimmed, &secs) == 0) {
    if (secs > (uint64_t)INT64_MAX / 1000)
      return INT64_MAX;
    return (int64_t)secs * 1000;
  }
  /* An HTTP-date (IMF-fixdate, RFC 850 or asctime): curl's parser knows
   * them all. A date in the past means "now". */
  time_t t = curl_getdate(trimmed, NULL);
  if (t == (time_t)-1)
    return -1;
  /* curl takes years far ahead; their milliseconds would not fit. */
  if ((int64_t)t > INT64_MAX / 1000)
    return INT64_MAX;
  if ((int64_t)t < 0)
    return 0;
  int64_t at_ms = (int64_t)t * 1000;
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
