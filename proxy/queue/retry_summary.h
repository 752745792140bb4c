/* retry_summary: now and then, one info line saying what the retries did.
 *
 * Each retry's own line ("attempt", with the stored request's id) is at
 * debug: at info, a queue retrying thousands of stored requests would
 * drown every other line. Instead a libuv timer, every
 * --log-summary-interval (60 s), compares the counters a retry moves
 * (stats: retries, recovered, dead) with those of the last summary and,
 * when any moved, logs one "retry summary" line with the differences and
 * the seconds they cover; a quiet period logs nothing. retry_summary_stop()
 * sums up what is left, so a stop loses nothing.
 *
 * Lifecycle: retry_summary_start() once the scheduler runs →
 * retry_summary_stop() when retryd stops (the timer closes on the loop).
 * Loop thread only. */
#ifndef RETRYD_RETRY_SUMMARY_H
#define RETRYD_RETRY_SUMMARY_H

#include <stdint.h>
#include <uv.h>

struct app_s;

typedef struct {
  uv_timer_t timer;
  /* The counters when the last summary was logged (or at start). */
  uint64_t retries;
  uint64_t recovered;
  uint64_t dead;
  uint64_t since_ns; /* uv_hrtime() then */
} retry_summary_t;

void retry_summary_start(struct app_s *app);
void retry_summary_stop(struct app_s *app);

#endif
