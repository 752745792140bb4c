/* retryd: an HTTP/1.1 proxy with a durable retry queue, run beside an
 * application. main() reads the configuration, starts the loop, and turns
 * SIGTERM/SIGINT into a graceful stop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "proxy/app.h"
#include "proxy/config.h"
#include "proxy/control/healthcheck.h"
#include "proxy/log.h"
#include "proxy/migrate_cmd.h"
#include "proxy/queue/retention.h"
#include "proxy/router.h"
#include "proxy/queue/scheduler.h"
#include "proxy/upstream/upstream.h"
#include "storage/storage_location.h"
#include "storage/store.h"
#include "storage/uuid7.h"
#include "proxy/version.h"

/* Shutdown runs in steps: clients drained and retries settled → the
 * store closed (its last jobs run first) → handles closed, the loop ends. */
static void app_store_closed(void *arg) {
  app_t *app = arg;
  uv_timer_stop(&app->shutdown_timer);
  uv_close((uv_handle_t *)&app->shutdown_timer, NULL);
  uv_close((uv_handle_t *)&app->sigterm, NULL);
  uv_close((uv_handle_t *)&app->sigint, NULL);
  upstream_close(app->upstream);
  app->upstream = NULL;
}

static void app_maybe_close_store(app_t *app) {
  if (app->server.owner.nconns > 0 || !app->server.draining || app->scheduler_running)
    return;
  if (app->store == NULL)
    return;
  store_t *store = app->store;
  app->store = NULL;
  if (app->scheduler != NULL)
    scheduler_close(app->scheduler);
  retention_stop(app);
  store_close(store, app_store_closed, app);
}

static void app_server_drained(server_t *srv) {
  app_maybe_close_store(srv->owner.app);
}

static void app_scheduler_stopped(app_t *app) {
  app->scheduler_running = false;
  app_maybe_close_store(app);
}

static void app_shutdown_deadline(uv_timer_t *t) {
  app_t *app = t->data;
  log_msg(LOG_WARN, "shutdown deadline reached: closing connections still busy");
  server_close_all(&app->server);
  if (app->scheduler != NULL)
    scheduler_cancel_all(app->scheduler);
}

static void app_signal_cb(uv_signal_t *s, int signum) {
  app_t *app = s->data;
  if (app->stopping) {
    log_msg(LOG_WARN, "second signal: closing connections now");
    server_close_all(&app->server);
    if (app->scheduler != NULL)
      scheduler_cancel_all(app->scheduler);
    return;
  }
  app->stopping = true;
  log_line_t l;
  log_begin(&l, LOG_INFO, "stopping");
  log_str(&l, "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  log_end(&l);
  uv_timer_start(&app->shutdown_timer, app_shutdown_deadline, app->cfg->shutdown_timeout_ms, 0);
  scheduler_stop(app->scheduler, app_scheduler_stopped);
  server_drain(&app->server, app_server_drained);
}

static void app_close_leftover(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int main(int argc, char **argv) {
  static config_t cfg;
  char err[1024];
  /* `retryd migrate FROM TO`: move a queue to another backend, then exit. */
  if (argc > 1 && strcmp(argv[1], "migrate") == 0)
    return migrate_cmd_run(argc - 1, argv + 1);
  /* `retryd healthcheck [OPTION...]`: ask a running retryd, then exit. */
  bool healthcheck = argc > 1 && strcmp(argv[1], "healthcheck") == 0;
  if (healthcheck) {
    argv[1] = argv[0];
    argv++;
    argc--;
  }
  int rc = config_load(&cfg, argc, argv, err, sizeof(err));
  if (rc == CONFIG_EXIT)
    return 0;
  if (rc != CONFIG_OK) {
    fprintf(stderr, "retryd: %s\n", err);
    return 2;
  }
  /* The options are copied by now: a password in --db need not stay
   * readable in ps and /proc/PID/cmdline (DESIGN: it appears nowhere). */
  for (int i = 1; i < argc; i++)
    (void)storage_location_mask_password(argv[i]);
  if (healthcheck)
    return healthcheck_run(&cfg);
  /* A client that goes away mid-write must not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  if (log_init(cfg.log_level) != 0) {
    fprintf(stderr, "retryd: cannot start the log writer\n");
    return 1;
  }

  static app_t app;
  app.loop = uv_default_loop();
  app.cfg = &cfg;
  stats_init(&app.stats);
  uuid7_init(); /* before the loop: seeding may read /dev/urandom */
  int exit_code = 0;
  app.upstream = upstream_new(app.loop, &cfg, cfg.upstream, err, sizeof(err));
  if (app.upstream == NULL) {
    log_line_t l;
    log_begin(&l, LOG_ERROR, "cannot start the upstream client");
    log_str(&l, "error", err);
    log_end(&l);
    exit_code = 1;
    goto out;
  }
  {
    store_options_t sopts = {.location = cfg.db_path,
                             .params = {.max_queue = (int64_t)cfg.max_queue,
                                        .lease_ms = (int64_t)cfg.claim_lease_ms}};
    rc = store_open(&app.store, app.loop, &sopts, err, sizeof(err));
    if (rc != 0) {
      /* Like a bad option: one plain line, before anything is served. */
      log_close();
      fprintf(stderr, "retryd: %s\n", err);
      upstream_close(app.upstream);
      uv_run(app.loop, UV_RUN_DEFAULT);
      uv_loop_close(app.loop);
      return 1;
    }
    app.stats.requeued_at_start = (uint64_t)store_recovered(app.store);
    if (store_recovered(app.store) > 0) {
      log_line_t l;
      log_begin(&l, LOG_WARN, "requests left inflight by a crash are queued again");
      log_int(&l, "count", store_recovered(app.store));
      log_end(&l);
    }
  }
  rc = server_start(&app.server, app.loop, &cfg, &app, router_dispatch, &app.stats.rejected);
  if (rc != 0) {
    log_line_t l;
    log_begin(&l, LOG_ERROR, "cannot listen");
    log_str(&l, "listen", cfg.listen_text);
    log_str(&l, "error", uv_strerror(rc));
    log_end(&l);
    exit_code = 1;
    /* The store closes its own handle once its thread has stopped: run the
     * loop until then, and only after that close what is left. */
    upstream_close(app.upstream);
    store_close(app.store, NULL, NULL);
    uv_run(app.loop, UV_RUN_DEFAULT);
    goto out;
  }
  if (cfg.admin_token[0] == '\0' && !server_addr_is_loopback(&cfg.listen_addr)) {
    /* Without a token anyone who can reach this address can list, retry
     * and cancel stored requests: allowed (a private network may be
     * trusted), but never silently. */
    log_line_t l;
    log_begin(&l, LOG_WARN, "the control API is open to the network: set --admin-token");
    log_str(&l, "listen", cfg.listen_text);
    log_str(&l, "hint", "/_retryd/* other than health then needs X-Retryd-Token");
    log_end(&l);
  }
  uv_timer_init(app.loop, &app.shutdown_timer);
  app.shutdown_timer.data = &app;
  uv_signal_init(app.loop, &app.sigterm);
  uv_signal_init(app.loop, &app.sigint);
  app.sigterm.data = app.sigint.data = &app;
  uv_signal_start(&app.sigterm, app_signal_cb, SIGTERM);
  uv_signal_start(&app.sigint, app_signal_cb, SIGINT);
  if (scheduler_start(&app) != 0) {
    log_msg(LOG_ERROR, "cannot start the scheduler");
    return 1;
  }
  app.scheduler_running = true;
  retention_start(&app);
  {
    log_line_t l;
    log_begin(&l, LOG_INFO, "started");
    log_str(&l, "version", RETRYD_VERSION);
    log_str(&l, "upstream", cfg.upstream);
    log_end(&l);
  }

  uv_run(app.loop, UV_RUN_DEFAULT);
  log_msg(LOG_INFO, "stopped");

out:
  uv_walk(app.loop, app_close_leftover, NULL);
  uv_run(app.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(app.loop) != 0)
    exit_code = exit_code ? exit_code : 1;
  log_close();
  return exit_code;
}
