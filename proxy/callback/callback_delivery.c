#include "proxy/callback/callback_delivery.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/callback/callback_notice.h"
#include "proxy/callback/callback_sign.h"
#include "proxy/callback/callback_url.h"
#include "proxy/deadline.h"
#include "proxy/log.h"
#include "proxy/upstream/upstream.h"
#include "proxy/version.h"

/* Notices sent at once, and read per round. */
#define CALLBACK_BATCH 16
/* The longest wait between two looks for due notices: a request's end
 * queues its notice in the store without a word to this module. */
#define CALLBACK_POLL_MS 1000
/* The first wait after a failed delivery; it doubles up to --retry-interval. */
#define CALLBACK_BACKOFF_MS 1000
/* Room for a notice's own header lines beyond its body. */
#define CALLBACK_HEAD_MAX 1024

typedef struct callback_send_s callback_send_t;

struct callback_delivery_s {
  app_t *app;
  uv_timer_t tick;
  store_job_t due; /* the round's read */
  storage_callback_t rows[CALLBACK_BATCH];
  callback_send_t *sends[CALLBACK_BATCH];
  int busy;     /* notices of the round not yet recorded */
  bool reading; /* the round's read is with the store */
  bool stopping;
  bool tick_closed;
  int live; /* sends not yet freed */
  callback_key_t key;
  bool signed_notices;
};

/* One notice's delivery attempt. */
struct callback_send_s {
  callback_delivery_t *d;
  int slot;
  storage_callback_t *n; /* the round's row */
  upstream_t *upstream;
  upstream_xfer_t *xfer;
  response_head_t head;
  deadline_t timer;
  buf_t body;
  buf_t fields;
  char webhook_id[80];
  callback_url_t url;
  store_job_t finish;
  char error[256];
  bool ended;
};

static void callback_round(callback_delivery_t *d);
static void callback_tick_cb(uv_timer_t *t);

static void callback_maybe_free(callback_delivery_t *d) {
  if (d->stopping && d->tick_closed && d->live == 0 && !d->reading)
    free(d);
}

static void callback_arm(callback_delivery_t *d, int64_t next_due) {
  if (d->stopping)
    return;
  int64_t wait = CALLBACK_POLL_MS;
  if (next_due > 0) {
    int64_t until = next_due - store_now_ms();
    wait = until < 0 ? 0 : (until < wait ? until : wait);
  }
  uv_timer_start(&d->tick, callback_tick_cb, (uint64_t)wait, 0);
}

static void callback_send_freed(uv_handle_t *h) {
  callback_send_t *s = ((deadline_t *)h)->data;
  callback_delivery_t *d = s->d;
  response_head_free(&s->head);
  buf_free(&s->body);
  buf_free(&s->fields);
  free(s);
  d->live--;
  callback_maybe_free(d);
}

/* The send is over and recorded (or dropped): its upstream and timer go. */
static void callback_send_release(callback_send_t *s) {
  if (s->upstream != NULL)
    upstream_close(s->upstream);
  s->upstream = NULL;
  deadline_close(&s->timer, callback_send_freed);
}

/* One notice of the round is settled; the last one ends the round. */
static void callback_settled(callback_delivery_t *d, int slot, int64_t next_due) {
  storage_callback_free(&d->rows[slot]);
  d->sends[slot] = NULL;
  if (--d->busy == 0)
    callback_arm(d, next_due);
}

static void callback_tick_cb(uv_timer_t *t) { callback_round(t->data); }

static void callback_recorded(store_job_t *job) {
  callback_send_t *s = job->ctx;
  callback_delivery_t *d = s->d;
  if (job->result < 0) {
    log_line_t l;
    log_begin(&l, LOG_WARN, "callback_record_failed");
    log_str(&l, "webhook_id", s->webhook_id);
    log_int(&l, "error", job->result);
    log_end(&l);
  }
  int slot = s->slot;
  callback_send_release(s);
  callback_settled(d, slot, job->callback.next_due);
}

/* Writes down how the attempt went: delivered, due again, or given up. */
static void callback_record(callback_send_t *s, bool delivered) {
  callback_delivery_t *d = s->d;
  const config_t *cfg = d->app->cfg;
  storage_callback_t *n = s->n;
  int64_t now = store_now_ms();
  store_job_t *j = &s->finish;
  memset(j, 0, sizeof(*j));
  j->op = STORE_CALLBACK_FINISH;
  j->cb = callback_recorded;
  j->ctx = s;
  j->now = now;
  j->callback.seq = n->seq;
  j->callback.error = delivered ? NULL : s->error;
  log_line_t l;
  if (delivered) {
    j->callback.state = CALLBACK_DELIVERED;
    log_begin(&l, LOG_INFO, "callback_delivered");
  } else if (now - n->created_at >= (int64_t)cfg->max_age_ms) {
    j->callback.state = CALLBACK_FAILED;
    log_begin(&l, LOG_WARN, "callback_gave_up");
  } else {
    int64_t wait = CALLBACK_BACKOFF_MS;
    for (int64_t i = 0; i < n->sends && wait < (int64_t)cfg->retry_interval_ms; i++)
      wait *= 2;
    if (wait > (int64_t)cfg->retry_interval_ms)
      wait = (int64_t)cfg->retry_interval_ms;
    j->callback.state = CALLBACK_PENDING;
    j->callback.next_at = now + wait;
    log_begin(&l, LOG_INFO, "callback_failed");
    log_int(&l, "retry_in_ms", wait);
  }
  log_str(&l, "id", n->request_id);
  log_str(&l, "webhook_id", s->webhook_id);
  log_str(&l, "origin", s->url.origin);
  log_int(&l, "sends", n->sends + 1);
  if (s->head.complete)
    log_int(&l, "status", s->head.status);
  if (!delivered)
    log_str(&l, "error", s->error);
  log_end(&l);
  store_submit(d->app->store, j);
}

static void callback_end(callback_send_t *s, bool delivered) {
  if (s->ended)
    return;
  s->ended = true;
  deadline_clear(&s->timer);
  callback_record(s, delivered);
}

static int callback_head_cb(void *ctx) {
  (void)ctx;
  return 0;
}

static int callback_body_cb(void *ctx, const char *data, size_t len) {
  (void)ctx;
  (void)data;
  (void)len;
  return UPSTREAM_TAKEN; /* the receiver's answer body says nothing we keep */
}

static void callback_done_cb(void *ctx, upstream_result_t result, const char *error) {
  callback_send_t *s = ctx;
  s->xfer = NULL;
  bool ok =
      result == UPSTREAM_DONE && s->head.complete && s->head.status >= 200 && s->head.status < 300;
  if (!ok) {
    if (result == UPSTREAM_DONE)
      snprintf(s->error, sizeof(s->error), "the receiver answered %d", s->head.status);
    else
      snprintf(s->error, sizeof(s->error), "%s", error ? error : "no answer");
  }
  callback_end(s, ok);
}

static void callback_timeout_cb(deadline_t *t) {
  callback_send_t *s = t->data;
  if (s->xfer != NULL)
    upstream_cancel(s->xfer);
  s->xfer = NULL;
  snprintf(s->error, sizeof(s->error), "no answer within --upstream-timeout");
  callback_end(s, false);
}

static const upstream_ops_t callback_upstream_ops = {
    .head = callback_head_cb,
    .body = callback_body_cb,
    .done = callback_done_cb,
};

/* The notice's header lines: Standard Webhooks' three, and its type. */
static int callback_fields(callback_send_t *s, int64_t ts) {
  callback_delivery_t *d = s->d;
  char num[24];
  snprintf(num, sizeof(num), "%" PRId64, ts);
  int rc = buf_append_field(&s->fields, "Content-Type", "application/json");
  if (rc == 0)
    rc = buf_append_field(&s->fields, "User-Agent", "retryd/" RETRYD_VERSION);
  if (rc == 0)
    rc = buf_append_field(&s->fields, "webhook-id", s->webhook_id);
  if (rc == 0)
    rc = buf_append_field(&s->fields, "webhook-timestamp", num);
  if (rc == 0 && d->signed_notices) {
    char sig[CALLBACK_SIGNATURE_MAX];
    if (callback_sign(&d->key, s->webhook_id, ts, s->body.data, s->body.len, sig) != 0)
      return -1;
    rc = buf_append_field(&s->fields, "webhook-signature", sig);
  }
  return rc;
}

/* Builds and sends notice n; false when it could not even start (error
 * says why), which counts as a failed attempt. */
static bool callback_send_start(callback_send_t *s) {
  callback_delivery_t *d = s->d;
  storage_callback_t *n = s->n;
  char why[200];
  snprintf(s->webhook_id, sizeof(s->webhook_id), "msg_%s_%" PRId64, n->request_id, n->seq);
  if (callback_url_parse(n->url, &s->url, why, sizeof(why)) != 0 ||
      !callback_url_allowed(&s->url, d->app->cfg->callback_allow)) {
    /* Allowed when stored, but --callback-allow changed since. */
    snprintf(s->error, sizeof(s->error), "the callback URL is no longer allowed");
    return false;
  }
  if (callback_notice_json(&s->body, n) != 0 || callback_fields(s, store_now_ms() / 1000) != 0) {
    snprintf(s->error, sizeof(s->error), "the notice could not be built");
    return false;
  }
  s->upstream = upstream_new(d->app->loop, d->app->cfg, s->url.origin, why, sizeof(why));
  if (s->upstream == NULL) {
    snprintf(s->error, sizeof(s->error), "%s", why);
    return false;
  }
  upstream_request_t r = {.method = "POST",
                          .target = s->url.target,
                          .headers = s->fields.data,
                          .headers_len = s->fields.len,
                          .body = s->body.data,
                          .body_len = s->body.len};
  s->xfer = upstream_send(s->upstream, &r, &s->head, &callback_upstream_ops, s);
  if (s->xfer == NULL) {
    snprintf(s->error, sizeof(s->error), "out of memory");
    return false;
  }
  deadline_set(&s->timer, d->app->cfg->upstream_timeout_ms);
  return true;
}

static void callback_send(callback_delivery_t *d, int slot) {
  callback_send_t *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    callback_settled(d, slot, 0); /* still due: the next round tries it */
    return;
  }
  s->d = d;
  s->slot = slot;
  s->n = &d->rows[slot];
  d->sends[slot] = s;
  d->live++;
  const config_t *cfg = d->app->cfg;
  /* The notice's worst case: the answer's body, its fields and the
   * request's target, each JSON-escaped at six bytes a byte (a control
   * character becomes \u00XX), and the fixed words around them. */
  buf_init(&s->body,
           6 * (cfg->callback_body_max + cfg->max_response_header_bytes + cfg->max_header_bytes) +
               CALLBACK_HEAD_MAX);
  buf_init(&s->fields, CALLBACK_HEAD_MAX);
  response_head_init(&s->head, cfg->max_response_header_bytes);
  deadline_init(d->app->loop, &s->timer, callback_timeout_cb, s);
  if (!callback_send_start(s))
    callback_end(s, false);
}

static void callback_read(store_job_t *job) {
  callback_delivery_t *d = job->ctx;
  d->reading = false;
  if (d->stopping) {
    for (int i = 0; i < job->nrows; i++)
      storage_callback_free(&d->rows[i]);
    callback_maybe_free(d);
    return;
  }
  if (job->result <= 0) {
    callback_arm(d, job->result == 0 ? job->callback.next_due : 0);
    return;
  }
  d->busy = job->nrows;
  for (int i = 0; i < job->nrows; i++)
    callback_send(d, i);
}

static void callback_round(callback_delivery_t *d) {
  if (d->stopping || d->busy > 0 || d->reading)
    return;
  store_job_t *j = &d->due;
  memset(j, 0, sizeof(*j));
  j->op = STORE_CALLBACK_DUE;
  j->cb = callback_read;
  j->ctx = d;
  j->now = store_now_ms();
  j->limit = CALLBACK_BATCH;
  j->callback.rows = d->rows;
  j->callback.body_cap = d->app->cfg->callback_body_max;
  d->reading = true;
  store_submit(d->app->store, j);
}

callback_delivery_t *callback_delivery_start(app_t *app) {
  if (!store_has_callbacks(app->store))
    return NULL;
  callback_delivery_t *d = calloc(1, sizeof(*d));
  if (d == NULL) {
    log_msg(LOG_ERROR, "cannot start the callbacks' delivery: out of memory");
    return NULL;
  }
  d->app = app;
  if (app->cfg->callback_secret[0] != '\0')
    d->signed_notices = callback_key_parse(app->cfg->callback_secret, &d->key) == 0;
  uv_timer_init(app->loop, &d->tick);
  d->tick.data = d;
  uv_timer_start(&d->tick, callback_tick_cb, 0, 0);
  return d;
}

static void callback_tick_closed(uv_handle_t *h) {
  callback_delivery_t *d = h->data;
  d->tick_closed = true;
  callback_maybe_free(d);
}

void callback_delivery_stop(callback_delivery_t *d) {
  if (d == NULL)
    return;
  d->stopping = true;
  uv_timer_stop(&d->tick);
  uv_close((uv_handle_t *)&d->tick, callback_tick_closed);
  /* Transfers in flight are dropped: their notices stay due in the store,
   * and the next start sends them, with the same webhook-id. */
  for (int i = 0; i < CALLBACK_BATCH; i++) {
    callback_send_t *s = d->sends[i];
    if (s == NULL || s->ended)
      continue; /* an ended one's record comes back and settles it */
    s->ended = true;
    if (s->xfer != NULL)
      upstream_cancel(s->xfer);
    s->xfer = NULL;
    deadline_clear(&s->timer);
    callback_send_release(s);
    callback_settled(d, i, 0);
  }
}
