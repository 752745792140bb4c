#include "proxy/queue/deadline_header.h"

#include <errno.h>
#include <stddef.h>

#include "proxy/http_delay.h"

int deadline_header_parse(const char *value, int64_t now_ms, int64_t *at_ms, const char **why) {
  *at_ms = 0;
  *why = NULL;
  if (value == NULL)
    return 0;
  int64_t at;
  int rc = http_delay_parse(value, now_ms, &at);
  if (rc == -EINVAL) {
    *why = "Retryd-Deadline must be an HTTP-date or a number of seconds from now";
    return rc;
  }
  if (rc != 0) {
    *why = "Retryd-Deadline is too far ahead";
    return rc;
  }
  if (at <= now_ms) {
    *why = "Retryd-Deadline has already passed";
    return -ERANGE;
  }
  *at_ms = at;
  return 0;
}

int64_t deadline_header_clamp(int64_t next_ms, int64_t deadline_ms) {
  return deadline_ms != 0 && next_ms > deadline_ms ? deadline_ms : next_ms;
}
