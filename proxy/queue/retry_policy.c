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

int64_t retry_policy_delay_ms(const config_t *cfg, const char *retry_after, int64_t now_ms) {
  int64_t d = retry_policy_parse_retry_after(retry_after, now_ms);
  if (d < 0)
    return (int64_t)cfg->retry_interval_ms;
  int64_t lo = 1000, hi = (int64_t)cfg->max_age_ms;
  if (d < lo)
    d = lo;
  if (d > hi)
    d = hi;
  return d;
}

bool retry_policy_next(const config_t *cfg, int64_t attempts, int64_t created_ms,
                       int64_t now_ms, const char *retry_after, int64_t *next_ms) {
  int64_t deadline = created_ms + (int64_t)cfg->max_age_ms;
  if (cfg->max_attempts > 0 && attempts >= (int64_t)cfg->max_attempts)
    return true;
  if (now_ms >= deadline)
    return true;
  int64_t next = now_ms + retry_policy_delay_ms(cfg, retry_after, now_ms);
  *next_ms = next < deadline ? next : deadline;
  return false;
}
