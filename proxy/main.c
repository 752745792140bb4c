/* retryd: an HTTP/1.1 proxy with a durable retry queue, run beside an
 * application. main() reads the configuration, starts the pieces of retryd
 * (app_start), runs the loop, and turns SIGTERM/SIGINT into a graceful stop.
 *
 * Design note. One start, one stop. app_start() brings the pieces up in
 * order (app_stage_t) and records how far it got; app_stop() takes down
 * what was started, last first. A start that fails half-way goes to
 * app_stop() from its one failure label, and main runs the loop on until
 * what was started has closed: the store's thread has stopped before
 * main() returns, whichever way it ends. A graceful stop drains clients
 * and settles retries first, then comes to the same app_stop(). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/app.h"
#include "proxy/config.h"
#include "proxy/control/healthcheck.h"
#include "proxy/log.h"
#include "proxy/migrate_cmd.h"
#include "proxy/callback/callback_delivery.h"
#include "proxy/queue/retention.h"
#include "proxy/queue/retry_summary.h"
#include "proxy/router.h"
#include "proxy/queue/route_table.h"
#include "proxy/routes_file.h"
#include "proxy/queue/scheduler.h"
#include "proxy/upstream/upstream.h"
#include "storage/storage_location.h"
#include "storage/store.h"
#include "storage/uuid7.h"
#include "proxy/version.h"

/* Every route's upstream: one client per origin, shared by the routes
 * that name it; the default route's is app->upstream. */
static int app_open_upstreams(app_t *app, char *why, size_t whylen) {
  route_table_t *t = app->routes;
  t->dflt.upstream = app->upstream;
  for (size_t i = 0; i < t->n; i++) {
    route_t *r = &t->routes[i];
    r->upstream = NULL;
    if (strcmp(r->upstream_url, t->dflt.upstream_url) == 0)
      r->upstream = app->upstream;
    for (size_t k = 0; k < i && r->upstream == NULL; k++) {
      if (strcmp(r->upstream_url, t->routes[k].upstream_url) == 0)
        r->upstream = t->routes[k].upstream;
    }
    if (r->upstream != NULL)
      continue;
    r->upstream = upstream_new(app->loop, app->cfg, r->upstream_url, why, whylen);
    if (r->upstream == NULL)
      return -1;
    r->owns_upstream = true;
  }
  return 0;
}

static void app_close_upstreams(app_t *app) {
  route_table_t *t = app->routes;
  for (size_t i = 0; t != NULL && i < t->n; i++) {
    if (t->routes[i].owns_upstream)
      upstream_close(t->routes[i].upstream);
    t->routes[i].owns_upstream = false;
    t->routes[i].upstream = NULL;
  }
  upstream_close(app->upstream);
  app->upstream = NULL;
}

/* The last of app_stop(): the signal handlers and the shutdown deadline
 * stay until the store has closed, so that a second signal while it
 * commits its last jobs is still caught (and changes nothing) instead of
 * killing the process; the upstream goes last, as it came first. */
static void app_store_closed(void *arg) {
  app_t *app = arg;
  if (app->started >= APP_SIGNALS) {
    uv_timer_stop(&app->shutdown_timer);
    uv_close((uv_handle_t *)&app->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
  }
  app_close_upstreams(app);
  app->started = APP_NOTHING;
}

/* Takes down what app_start() started, last first; the loop must run on
 * until it has closed. Once: on shutdown, after clients are drained and
 * retries settled; or from a start that failed. */
static void app_stop(app_t *app) {
  if (app->started >= APP_RUNNING) {
    history_stop(&app->history);
    retention_stop(app);
    callback_delivery_stop(app->callbacks); /* pending notices stay due in the store */
    app->callbacks = NULL;
    retry_summary_stop(app); /* retries are settled by now: the last figures */
    scheduler_close(app->scheduler);
  }
  if (app->started >= APP_SERVER && !app->server.draining)
    server_drain(&app->server, NULL); /* closes the listener */
  if (app->started < APP_STORE) {
    app_store_closed(app);
    return;
  }
  store_t *store = app->store;
  app->store = NULL;
  store_close(store, app_store_closed, app); /* its last jobs run first */
}

/* Shutdown runs in steps: clients drained and retries settled → app_stop()
 * → the loop ends. */
static void app_maybe_stop(app_t *app) {
  if (app->server.owner.nconns > 0 || !app->server.draining || app->scheduler_running)
    return;
  if (app->store == NULL)
    return; /* stopping already */
  app_stop(app);
}

static void app_server_drained(server_t *srv) { app_maybe_stop(srv->owner.app); }

static void app_scheduler_stopped(app_t *app) {
  app->scheduler_running = false;
  app_maybe_stop(app);
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

/* ---- starting -------------------------------------------------------- */

static void app_log_error(const char *msg, const char *key, const char *value) {
  log_line_t l;
  log_begin(&l, LOG_ERROR, msg);
  log_str(&l, key, value);
  log_end(&l);
}

/* A shared queue's backend heard what another replica did. */
static void app_heard(void *arg, const storage_notice_t *n) {
  app_t *app = arg;
  scheduler_notice(app->scheduler, n);
}

static int app_open_store(app_t *app, char *err, size_t errlen) {
  store_options_t sopts = {.location = app->cfg->db_path,
                           .params = {.max_queue = (int64_t)app->cfg->max_queue,
                                      .lease_ms = (int64_t)app->cfg->claim_lease_ms},
                           .on_notice = app_heard,
                           .notice_arg = app};
  int rc = store_open(&app->store, app->loop, &sopts, err, errlen);
  if (rc != 0)
    return rc;
  app->stats.requeued_at_start = (uint64_t)store_recovered(app->store);
  if (store_recovered(app->store) > 0) {
    log_line_t l;
    log_begin(&l, LOG_WARN, "requests left inflight by a crash are queued again");
    log_int(&l, "count", store_recovered(app->store));
    log_end(&l);
  }
  return 0;
}

static int app_listen(app_t *app) {
  const config_t *cfg = app->cfg;
  int rc = server_start(&app->server, app->loop, cfg, app, router_dispatch, &app->stats.rejected);
  if (rc != 0) {
    log_line_t l;
    log_begin(&l, LOG_ERROR, "cannot listen");
    log_str(&l, "listen", cfg->listen_text);
    log_str(&l, "error", uv_strerror(rc));
    log_end(&l);
    return rc;
  }
  if (cfg->admin_token[0] == '\0' && cfg->read_token[0] == '\0' &&
      !server_addr_is_loopback(&cfg->listen_addr)) {
    /* Without a token anyone who can reach this address can list, retry
     * and cancel stored requests: allowed (a private network may be
     * trusted), but never silently. A read token alone closes it too:
     * reads then need it, and nothing may change state. */
    log_line_t l;
    log_begin(&l, LOG_WARN,
              "the control API is open to the network: set --admin-token or --read-token");
    log_str(&l, "listen", cfg->listen_text);
    log_str(&l, "hint",
            "/_retryd/* other than health then needs a token (X-Retryd-Token or "
            "Authorization: Bearer)");
    log_end(&l);
  }
  return 0;
}

/* One warning per RETRYD_* variable that names no option: set, it was
 * meant to change something, and changes nothing. */
static void app_warn_unknown_env(const char *name, size_t len, void *arg) {
  (void)arg;
  log_line_t l;
  log_begin(&l, LOG_WARN, "unknown environment variable ignored");
  log_strn(&l, "name", name, len);
  log_str(&l, "hint", "RETRYD_<OPTION> sets an option of --help, upper case, '-' as '_'");
  log_end(&l);
}

static void app_catch_signals(app_t *app) {
  uv_timer_init(app->loop, &app->shutdown_timer);
  app->shutdown_timer.data = app;
  uv_signal_init(app->loop, &app->sigterm);
  uv_signal_init(app->loop, &app->sigint);
  app->sigterm.data = app->sigint.data = app;
  uv_signal_start(&app->sigterm, app_signal_cb, SIGTERM);
  uv_signal_start(&app->sigint, app_signal_cb, SIGINT);
}

static void app_log_started(const app_t *app) {
  log_line_t l;
  log_begin(&l, LOG_INFO, "started");
  log_str(&l, "version", RETRYD_VERSION);
  log_str(&l, "upstream", app->cfg->upstream);
  if (app->routes->n > 0)
    log_int(&l, "routes", (int64_t)app->routes->n);
  log_end(&l);
}

/* Starts the pieces of retryd in order, each step recorded in
 * app->started. 0, or the exit status (1) after a failure, which is logged,
 * or, when it is the log writer or the store (like a bad option), left in
 * err as one line for stderr once the log is closed; what was started is
 * then being taken down, and the loop must run until it has closed. */
static int app_start(app_t *app, const config_t *cfg, route_table_t *routes, char *err,
                     size_t errlen) {
  app->loop = uv_default_loop();
  app->cfg = cfg;
  app->routes = routes;
  stats_init(&app->stats);
  char why[1024];
  if (log_init(cfg->log_level) != 0) {
    snprintf(err, errlen, "cannot start the log writer");
    goto fail;
  }
  config_each_unknown_env(environ, app_warn_unknown_env, NULL);
  uuid7_init(); /* before the loop: seeding may read /dev/urandom */
  app->upstream = upstream_new(app->loop, cfg, cfg->upstream, why, sizeof(why));
  if (app->upstream == NULL || app_open_upstreams(app, why, sizeof(why)) != 0) {
    app_log_error("cannot start the upstream client", "error", why);
    goto fail;
  }
  app->started = APP_UPSTREAM;
  if (app_open_store(app, err, errlen) != 0)
    goto fail;
  app->started = APP_STORE;
  if (app_listen(app) != 0)
    goto fail;
  app->started = APP_SERVER;
  app_catch_signals(app);
  app->started = APP_SIGNALS;
  if (scheduler_start(app) != 0) {
    log_msg(LOG_ERROR, "cannot start the scheduler");
    goto fail;
  }
  app->scheduler_running = true;
  retention_start(app);
  app->callbacks = callback_delivery_start(app);
  retry_summary_start(app);
  if (history_start(&app->history, app->loop, &app->stats, app->store) != 0)
    log_msg(LOG_WARN, "cannot start the status page's history sampler");
  app->started = APP_RUNNING;
  app_log_started(app);
  return 0;
fail:
  app_stop(app);
  return 1;
}

/* ---- the end --------------------------------------------------------- */

static void app_close_leftover(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* After the loop ran out: whatever handle is left is closed, the loop and
 * then the log writer with it, and a start-up failure meant for stderr is
 * printed last, alone. Returns the exit status. */
static int app_finish(app_t *app, int exit_code, const char *err) {
  uv_walk(app->loop, app_close_leftover, NULL);
  uv_run(app->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(app->loop) != 0 && exit_code == 0)
    exit_code = 1;
  log_close();
  if (err[0] != '\0')
    fprintf(stderr, "retryd: %s\n", err);
  return exit_code;
}

int main(int argc, char **argv) {
  static config_t cfg;
  char err[1024] = "";
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

  /* The routes file is read before anything starts: a mistake in it is a
   * bad option (exit 2), with its file, line and field. */
  static route_table_t routes; /* lives as long as the process, like app */
  route_table_init(&routes, &cfg);
  if (cfg.config_file[0] != '\0' &&
      routes_file_load(&routes, &cfg, err, sizeof(err)) != CONFIG_OK) {
    fprintf(stderr, "retryd: %s\n", err);
    return 2;
  }

  static app_t app;
  err[0] = '\0';
  int exit_code = app_start(&app, &cfg, &routes, err, sizeof(err));
  /* Serves until stopped; after a failed start, runs until what was
   * started has closed (the store's thread included). */
  uv_run(app.loop, UV_RUN_DEFAULT);
  if (exit_code == 0)
    log_msg(LOG_INFO, "stopped");
  exit_code = app_finish(&app, exit_code, err);
  route_table_free(&routes);
  return exit_code;
}
