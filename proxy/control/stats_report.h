/* stats_report: the figures of GET /_retryd/stats (JSON) and
 * GET /_retryd/metrics (Prometheus text exposition format 0.0.4).
 *
 * Both render the same inputs: the loop's counters and the store's counts
 * by state, so the two never disagree. Pure rendering; any thread. */
#ifndef RETRYD_STATS_REPORT_H
#define RETRYD_STATS_REPORT_H

#include <stdint.h>

#include "proxy/buf.h"
#include "proxy/stats.h"
#include "storage/stored_request.h"

int stats_report_json(buf_t *out, const stats_t *s, const queue_counts_t *q, int64_t now_ms,
                      uint64_t now_ns) BUF_MUST_CHECK;
int stats_report_prometheus(buf_t *out, const stats_t *s, const queue_counts_t *q,
                            int64_t now_ms, uint64_t now_ns) BUF_MUST_CHECK;

#endif
