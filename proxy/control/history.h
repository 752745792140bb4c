/* history: the sampler behind GET /_retryd/history and the status page's
 * chart of the last hour.
 *
 * Every HISTORY_PERIOD_MS (a minute) a timer on the loop takes what the
 * counters (stats_t) moved since the last sample, asks the store how many
 * rows are queued (one STORE_COUNTS job, answered on the loop), and pushes
 * the sample into a history_ring (60 of them: an hour) when the count comes
 * back. One count at a time: a period whose count has not come back by the
 * next tick goes in with queued -1 (uncounted), so a slow store never
 * shifts the chart's periods nor piles jobs up. Memory is fixed;
 * nothing survives a restart. The period is a compile-time constant; tests
 * may shorten it with the environment variable HISTORY_PERIOD_ENV (read
 * once, at start), so that a chart fills in seconds.
 *
 * Lifecycle: history_start() once the store is open → history_stop() before
 * the store closes (a count still in flight then completes harmlessly: the
 * history_t must outlive the store, which the app's does). Loop thread
 * only. */
#ifndef RETRYD_HISTORY_H
#define RETRYD_HISTORY_H

#include <stdbool.h>
#include <uv.h>

#include "proxy/buf.h"
#include "proxy/control/history_ring.h"
#include "proxy/stats.h"
#include "storage/store.h"

#define HISTORY_PERIOD_MS 60000
#define HISTORY_PERIOD_ENV "RETRYD_TEST_HISTORY_PERIOD_MS"

typedef struct {
  uv_timer_t timer;
  const stats_t *stats;
  store_t *store;
  uint64_t period_ms;
  history_ring_t ring;
  history_sample_t base;    /* the counters' totals when the period began */
  history_sample_t pending; /* a finished period, waiting for its count */
  bool holding;             /* pending is not in the ring yet */
  uint64_t period;          /* periods ended since start */
  uint64_t counted_period;  /* the period job counts for */
  store_job_t job;
  bool counting; /* job is with the store */
  bool running;
} history_t;

/* 0 or a negative UV_E* error. */
int history_start(history_t *h, uv_loop_t *loop, const stats_t *stats, store_t *store);
void history_stop(history_t *h);

/* The period in progress, so far: what the counters moved since it began,
 * with queued as given (the caller's fresh count, or -1). */
void history_current(const history_t *h, int64_t queued, history_sample_t *out);

/* {"period_s":..,"slots":60,"samples":[oldest..newest],"current":{...}} */
int history_json(buf_t *out, const history_t *h, const history_sample_t *current) BUF_MUST_CHECK;

#endif
