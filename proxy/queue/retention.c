#include "proxy/queue/retention.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/log.h"

#define RETENTION_MIN_PERIOD_MS 1000
#define RETENTION_MAX_PERIOD_MS 60000

/* One retryd's purges. Outlives retention_stop() while a slice is out: the
 * store still calls back with it. */
typedef struct {
  app_t *app;
  store_job_t job;
  bool busy;          /* a slice is with the store */
  bool stopped;       /* retention_stop() was called */
  bool timer_closed;
  uint64_t started;   /* uv_hrtime() at the purge's first slice */
  int64_t slices;
} retention_t;

static void retention_free_if_done(retention_t *rt) {
  if (rt->stopped && rt->timer_closed && !rt->busy)
    free(rt);
}

static void retention_report(retention_t *rt) {
  store_job_t *job = &rt->job;
  log_line_t l;
  if (job->result < 0) {
    log_begin(&l, LOG_WARN, "purge of finished requests failed");
    log_int(&l, "error", job->result);
    log_int(&l, "count", job->purged);
    log_end(&l);
  } else if (job->purged > 0 || job->reclaimed > 0) {
    log_begin(&l, LOG_INFO, "purged finished requests");
    log_int(&l, "count", job->purged);
    log_int(&l, "pages_given_back", job->reclaimed);
    log_int(&l, "slices", rt->slices);
    log_ms(&l, "duration_ms", (double)(uv_hrtime() - rt->started) / 1e6);
    log_end(&l);
  }
}

static void retention_slice_done(store_job_t *job) {
  retention_t *rt = job->ctx;
  rt->busy = false;
  rt->slices++;
  if (job->result == 0 && job->more && !rt->stopped && !rt->app->stopping) {
    /* Back to the end of the store's queue: whatever clients sent while
     * this slice ran commits before the next one. */
    rt->busy = true;
    store_submit(rt->app->store, job);
    return;
  }
  retention_report(rt);
  retention_free_if_done(rt);
}

static void retention_tick(uv_timer_t *t) {
  retention_t *rt = t->data;
  if (rt->busy)
    return; /* the last purge is still going: it covers this one's rows */
  app_t *app = rt->app;
  store_job_t *job = &rt->job;
  memset(job, 0, sizeof(*job));
  job->op = STORE_PURGE;
  job->now = store_now_ms();
  job->cutoff = job->now - (int64_t)app->cfg->keep_completed_ms;
  job->cb = retention_slice_done;
  job->ctx = rt;
  rt->busy = true;
  rt->started = uv_hrtime();
  rt->slices = 0;
  store_submit(app->store, job);
}

static void retention_timer_closed(uv_handle_t *h) {
  retention_t *rt = h->data;
  rt->timer_closed = true;
  retention_free_if_done(rt);
}

void retention_start(app_t *app) {
  int64_t converted = store_converted_ms(app->store);
  if (converted >= 0) {
    log_line_t l;
    log_begin(&l, LOG_INFO, "queue file converted to incremental auto-vacuum (once)");
    log_int(&l, "duration_ms", converted);
    log_end(&l);
  } else if (!store_reclaims_space(app->store)) {
    log_msg(LOG_WARN, "the queue file cannot give free pages back: converting it failed "
                      "(is the disk full?); tried again at the next start");
  }
  retention_t *rt = calloc(1, sizeof(*rt));
  uv_timer_init(app->loop, &app->retention_timer);
  app->retention_timer.data = rt;
  if (rt == NULL) {
    log_msg(LOG_ERROR, "out of memory: finished requests will not be purged");
    return;
  }
  rt->app = app;
  uint64_t period = app->cfg->keep_completed_ms / 2;
  if (period < RETENTION_MIN_PERIOD_MS)
    period = RETENTION_MIN_PERIOD_MS;
  if (period > RETENTION_MAX_PERIOD_MS)
    period = RETENTION_MAX_PERIOD_MS;
  uv_timer_start(&app->retention_timer, retention_tick, period, period);
}

void retention_stop(app_t *app) {
  retention_t *rt = app->retention_timer.data;
  if (rt != NULL)
    rt->stopped = true;
  uv_close((uv_handle_t *)&app->retention_timer, rt ? retention_timer_closed : NULL);
}
