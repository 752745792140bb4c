#include "proxy/http_delay.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>

#include "proxy/units.h"

int http_delay_parse(const char *value, int64_t now_ms, int64_t *at_ms) {
  *at_ms = 0;
  if (value == NULL)
    return -EINVAL;
  while (*value == ' ' || *value == '\t')
    value++;
  char trimmed[128];
  size_t len = strlen(value);
  while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  if (len == 0 || len >= sizeof(trimmed))
    return -EINVAL;
  memcpy(trimmed, value, len);
  trimmed[len] = '\0';
  uint64_t secs;
  if (units_parse_uint(trimmed, &secs) == 0) {
    if (secs > (uint64_t)(INT64_MAX - now_ms) / 1000) {
      *at_ms = INT64_MAX;
      return -ERANGE;
    }
    *at_ms = now_ms + (int64_t)secs * 1000;
    return 0;
  }
  if (strspn(trimmed, "0123456789") == len) {
    /* Seconds too many for a number: as far ahead as it gets. */
    *at_ms = INT64_MAX;
    return -ERANGE;
  }
  time_t t = curl_getdate(trimmed, NULL);
  if (t == (time_t)-1)
    return -EINVAL;
  /* curl takes years far ahead; their milliseconds would not fit. */
  if ((int64_t)t > INT64_MAX / 1000) {
    *at_ms = INT64_MAX;
    return -ERANGE;
  }
  *at_ms = (int64_t)t * 1000;
  return 0;
}
