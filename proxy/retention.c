#include "proxy/retention.h"

#include <stdlib.h>

#include "proxy/app.h"
#include "proxy/log.h"

#define RETENTION_MIN_PERIOD_MS 1000
#define RETENTION_MAX_PERIOD_MS 60000

static void retention_purged(store_job_t *job) {
  if (job->result < 0) {
    log_line_t l;
    log_begin(&l, LOG_WARN, "purge of finished requests failed");
    log_int(&l, "error", job->result);
    log_end(&l);
  } else if (job->purged > 0) {
    log_line_t l;
    log_begin(&l, LOG_INFO, "purged finished requests");
    log_int(&l, "count", job->purged);
    log_end(&l);
  }
  free(job);
}

static void retention_tick(uv_timer_t *t) {
  app_t *app = t->data;
  store_job_t *job = calloc(1, sizeof(*job));
  if (job == NULL)
    return;
  job->op = STORE_PURGE;
  job->now = store_now_ms();
  job->cutoff = job->now - (int64_t)app->cfg->keep_completed_ms;
  job->cb = retention_purged;
  store_submit(app->store, job);
}

void retention_start(app_t *app) {
  uint64_t period = app->cfg->keep_completed_ms / 2;
  if (period < RETENTION_MIN_PERIOD_MS)
    period = RETENTION_MIN_PERIOD_MS;
  if (period > RETENTION_MAX_PERIOD_MS)
    period = RETENTION_MAX_PERIOD_MS;
  uv_timer_init(app->loop, &app->retention_timer);
  app->retention_timer.data = app;
  uv_timer_start(&app->retention_timer, retention_tick, period, period);
}

void retention_stop(app_t *app) {
  uv_close((uv_handle_t *)&app->retention_timer, NULL);
}
