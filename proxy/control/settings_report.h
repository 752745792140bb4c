/* settings_report: the body of GET /_retryd/settings, the settings in
 * force as an on-call engineer needs them next to the queue: where
 * requests go (upstream, listen), how they are retried (interval, what is
 * retryable, attempts, age, concurrency, timeout), the limits, and which
 * kind of store holds the queue.
 *
 * Never a secret: no token (only whether one is set), no callback secret,
 * no database location (a PostgreSQL URL may carry a password), only its
 * kind. Durations are in ms, "no limit" is null. Pure rendering; any
 * thread. */
#ifndef RETRYD_SETTINGS_REPORT_H
#define RETRYD_SETTINGS_REPORT_H

#include <stddef.h>

#include "proxy/buf.h"
#include "proxy/config.h"

/* routes: how many routes the --config file gave (0: none). */
int settings_report_json(buf_t *out, const config_t *cfg, size_t routes) BUF_MUST_CHECK;

#endif
