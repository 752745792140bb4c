/* stats_report: the figures of GET /_retryd/stats (JSON) and
 * GET /_retryd/metrics (Prometheus text exposition format 0.0.4).
 *
 * Both render the same inputs: the loop's counters and the store's counts
 * by state, so the two never disagree. replica is this process's name when
 * replicas share the queue (else NULL or ""): the queue's figures are the
 * shared queue's, the rest this process's own, which the JSON says under
 * "replica" and the metrics label replica="...". Each route shows where
 * it goes, what it matches, and its flows (route_flow.h): state, pause,
 * pacing, requests held unsent — for a partitioned route the state of the
 * partition furthest from open (paused, probing, ramping, open), the
 * partitions' count and sums, and the first partitions one by one — and,
 * when the stored flows were read, how many of its rows are queued and
 * inflight. Pure rendering; any thread. */
#ifndef RETRYD_STATS_REPORT_H
#define RETRYD_STATS_REPORT_H

#include <stdint.h>

#include "proxy/buf.h"
#include "proxy/queue/route_table.h"
#include "storage/storage_backend.h"
#include "proxy/stats.h"
#include "storage/stored_request.h"

/* What a report shows. */
typedef struct {
  const stats_t *stats;
  const queue_counts_t *queue;
  const char *replica;         /* NULL or "": the queue is not shared */
  const route_table_t *routes; /* their flows as they are at now_ms */
  const storage_flow_t *flows; /* the stored flows (NULL: not read) */
  size_t nflows;
  int64_t now_ms;
  uint64_t now_ns;
} stats_report_in_t;

int stats_report_json(buf_t *out, const stats_report_in_t *in) BUF_MUST_CHECK;
int stats_report_prometheus(buf_t *out, const stats_report_in_t *in) BUF_MUST_CHECK;

#endif
