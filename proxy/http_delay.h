/* http_delay: a time as HTTP's Retry-After writes it (RFC 9110 10.2.3):
 * delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime).
 *
 * Read for the upstream's Retry-After (proxy/queue/retry_policy.h) and a
 * client's Retryd-Deadline (proxy/queue/deadline_header.h): one grammar,
 * one parser. Spaces and tabs around the value are ignored. Digits alone
 * are always seconds (a date parser would read some of them as a date).
 * Pure function; any thread. */
#ifndef RETRYD_HTTP_DELAY_H
#define RETRYD_HTTP_DELAY_H

#include <stdint.h>

/* *at_ms gets the moment value names, in Unix ms (seconds count from
 * now_ms; a date may lie in the past). 0; -EINVAL when value is neither
 * (or NULL or empty); -ERANGE when the moment is beyond what Unix ms hold
 * (*at_ms is then INT64_MAX). */
int http_delay_parse(const char *value, int64_t now_ms, int64_t *at_ms);

#endif
