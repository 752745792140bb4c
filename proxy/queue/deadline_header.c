#include "proxy/queue/deadline_header.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>

#include "proxy/units.h"

int deadline_header_parse(const char *value, int64_t now_ms, int64_t *at_ms, const char **why) {
  *at_ms = 0;
  *why = NULL;
  if (value == NULL)
    return 0;
  while (*value == ' ' || *value == '\t')
    value++;
  char trimmed[128];
  size_t len = strlen(value);
  while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  *why = "Retryd-Deadline must be an HTTP-date or a number of seconds from now";
  if (len == 0 || len >= sizeof(trimmed))
    return -EINVAL;
  memcpy(trimmed, value, len);
  trimmed[len] = '\0';
  uint64_t secs;
  int64_t at;
  if (units_parse_uint(trimmed, &secs) == 0) {
    if (secs > (uint64_t)(INT64_MAX - now_ms) / 1000) {
      *why = "Retryd-Deadline is too far ahead";
      return -ERANGE;
    }
    at = now_ms + (int64_t)secs * 1000;
  } else {
    /* Digits alone are seconds: curl would read some of them as a date. */
    if (strspn(trimmed, "0123456789") == len)
      return -EINVAL;
    time_t t = curl_getdate(trimmed, NULL);
    if (t == (time_t)-1)
      return -EINVAL;
    if ((int64_t)t > INT64_MAX / 1000) {
      *why = "Retryd-Deadline is too far ahead";
      return -ERANGE;
    }
    at = (int64_t)t * 1000;
  }
  if (at <= now_ms) {
    *why = "Retryd-Deadline has already passed";
    return -ERANGE;
  }
  *why = NULL;
  *at_ms = at;
  return 0;
}

int64_t deadline_header_clamp(int64_t next_ms, int64_t deadline_ms) {
  return deadline_ms != 0 && next_ms > deadline_ms ? deadline_ms : next_ms;
}
