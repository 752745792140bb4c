#include "proxy/queue/retry_summary.h"

#include <stdlib.h>
#include <uv.h>

#include "proxy/app.h"
#include "proxy/log.h"

typedef struct retry_summary_s {
  uv_timer_t timer;
  app_t *app;
  /* The counters when the last summary was logged (or at start). */
  uint64_t retries;
  uint64_t recovered;
  uint64_t dead;
  uint64_t since_ns; /* uv_hrtime() then */
} retry_summary_t;

/* Logs the differences since the last summary, if there are any. */
static void retry_summary_log(retry_summary_t *rs) {
  const stats_t *st = &rs->app->stats;
  uint64_t retries = st->retries - rs->retries, recovered = st->recovered - rs->recovered,
           dead = st->dead - rs->dead;
  if (retries == 0 && recovered == 0 && dead == 0)
    return; /* nothing happened: nothing to say */
  uint64_t now = uv_hrtime();
  log_line_t l;
  log_begin(&l, LOG_INFO, "retry summary");
  log_int(&l, "retries", (int64_t)retries);
  log_int(&l, "recovered", (int64_t)recovered);
  log_int(&l, "dead", (int64_t)dead);
  log_ms(&l, "period_s", (double)(now - rs->since_ns) / 1e9);
  log_end(&l);
  rs->retries = st->retries;
  rs->recovered = st->recovered;
  rs->dead = st->dead;
  rs->since_ns = now;
}

static void retry_summary_tick(uv_timer_t *t) { retry_summary_log(t->data); }

static void retry_summary_closed(uv_handle_t *h) { free(h->data); }

void retry_summary_start(app_t *app) {
  retry_summary_t *rs = calloc(1, sizeof(*rs));
  app->summary = rs;
  if (rs == NULL) {
    log_msg(LOG_ERROR, "out of memory: retries will not be summed up in the log");
    return;
  }
  rs->app = app;
  rs->retries = app->stats.retries;
  rs->recovered = app->stats.recovered;
  rs->dead = app->stats.dead;
  rs->since_ns = uv_hrtime();
  uv_timer_init(app->loop, &rs->timer);
  rs->timer.data = rs;
  uint64_t every = app->cfg->log_summary_interval_ms;
  uv_timer_start(&rs->timer, retry_summary_tick, every, every);
}

void retry_summary_stop(app_t *app) {
  retry_summary_t *rs = app->summary;
  app->summary = NULL;
  if (rs == NULL)
    return;
  retry_summary_log(rs);
  uv_close((uv_handle_t *)&rs->timer, retry_summary_closed);
}
