/* app: the pieces of one running retryd, shared by its modules.
 *
 * One per process, created by main() and owned by the loop thread. */
#ifndef RETRYD_APP_H
#define RETRYD_APP_H

#include <stdbool.h>
#include <uv.h>

#include "proxy/config.h"
#include "proxy/control/history.h"
#include "proxy/http/server.h"
#include "proxy/stats.h"
#include "proxy/upstream/upstream_types.h"
#include "storage/store.h"

struct scheduler_s;
struct retry_summary_s;
struct route_table_s;
struct callback_delivery_s;

/* How far start-up got (main.c's app_start, in this order): stopping takes
 * down exactly what was started, last first. */
typedef enum {
  APP_NOTHING,
  APP_UPSTREAM, /* the upstream client */
  APP_STORE,    /* the storage thread and its file */
  APP_SERVER,   /* the listener */
  APP_SIGNALS,  /* SIGTERM, SIGINT and the shutdown deadline */
  APP_RUNNING,  /* the scheduler, purges and the retry summary too: everything */
} app_stage_t;

typedef struct app_s {
  uv_loop_t *loop;
  const config_t *cfg;
  server_t server;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  uv_timer_t shutdown_timer;
  bool stopping;
  store_t *store;
  struct scheduler_s *scheduler;
  bool scheduler_running;
  uv_timer_t retention_timer;
  struct retry_summary_s *summary; /* the retries' log line (proxy/queue/retry_summary.h) */
  stats_t stats;
  upstream_t *upstream;         /* --upstream: the default route's origin */
  struct route_table_s *routes; /* the routes and their flows (proxy/queue/route_table.h) */
  history_t history;            /* the status page's last hour (proxy/control/history.h) */
  struct callback_delivery_s *callbacks; /* completion notices (proxy/callback/); NULL: none */
  app_stage_t started;
} app_t;

#endif
