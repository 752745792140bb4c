#include "proxy/control/control_wait.h"

#include <stdio.h>
#include <stdlib.h>

#include "proxy/app.h"
#include "proxy/queue/scheduler.h"

typedef struct {
  scheduler_waiter_t waiter; /* first: the scheduler hands it back */
  app_t *app;
  http_conn_t *conn; /* NULL once the client left */
  uv_timer_t timer;
  int64_t wait_s;
  control_wait_ended_fn ended;
  uintptr_t tag;
} control_wait_t;

static void control_wait_closed(uv_handle_t *h) { free(h->data); }

/* The hold is over: the client gets its answer through ended(), which
 * attaches its own handler (a store job) to the connection. */
static void control_wait_end(control_wait_t *w) {
  uv_timer_stop(&w->timer);
  http_conn_attach(w->conn, NULL, NULL);
  w->ended(w->app, w->conn, w->waiter.id, w->wait_s, w->tag);
  uv_close((uv_handle_t *)&w->timer, control_wait_closed);
}

/* An outcome was committed for the request (row is how it is now), it
 * ended elsewhere, or retryd stops (row NULL). The waiter is unregistered. */
static void control_wait_heard(scheduler_waiter_t *sw, const stored_request_t *row) {
  control_wait_t *w = (control_wait_t *)sw;
  if (row != NULL && (row->state == RQ_QUEUED || row->state == RQ_INFLIGHT)) {
    scheduler_wait(w->app->scheduler, &w->waiter); /* retryable again: hold on */
    return;
  }
  control_wait_end(w);
}

static void control_wait_timeout(uv_timer_t *t) {
  control_wait_t *w = t->data;
  scheduler_unwait(&w->waiter);
  control_wait_end(w);
}

static void control_wait_client_gone(void *ctx) {
  control_wait_t *w = ctx;
  w->conn = NULL;
  scheduler_unwait(&w->waiter);
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, control_wait_closed);
}

static const http_handler_ops_t control_wait_ops = {.client_gone = control_wait_client_gone};

int control_wait_hold(app_t *app, http_conn_t *c, const char *id, int64_t wait_s,
                      control_wait_ended_fn ended, uintptr_t tag) {
  if (app->scheduler == NULL || app->stopping)
    return UV_ECANCELED; /* no one would tell it of the end */
  control_wait_t *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return UV_ENOMEM;
  w->app = app;
  w->conn = c;
  w->wait_s = wait_s;
  w->ended = ended;
  w->tag = tag;
  snprintf(w->waiter.id, sizeof(w->waiter.id), "%s", id);
  w->waiter.cb = control_wait_heard;
  list_init(&w->waiter.link);
  uv_timer_init(app->loop, &w->timer);
  w->timer.data = w;
  uv_timer_start(&w->timer, control_wait_timeout, (uint64_t)wait_s * 1000, 0);
  scheduler_wait(app->scheduler, &w->waiter);
  http_conn_attach(c, &control_wait_ops, w);
  return 0;
}
