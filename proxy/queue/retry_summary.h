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
 * retry_summary_stop() when retryd stops (freed when its timer closed).
 * Loop thread only. */
#ifndef RETRYD_RETRY_SUMMARY_H
#define RETRYD_RETRY_SUMMARY_H

struct app_s;

/* Sets app->summary (left NULL when out of memory: no summaries then, said
 * once in the log). */
void retry_summary_start(struct app_s *app);
/* Logs what is left, and frees app->summary once its timer has closed. */
void retry_summary_stop(struct app_s *app);

#endif
