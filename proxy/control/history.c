#include "proxy/control/history.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/queue/request_json.h"
#include "proxy/units.h"

/* The counters' totals now, in a sample's shape (at_ms and queued unset). */
static void history_totals(const stats_t *s, history_sample_t *out) {
  memset(out, 0, sizeof(*out));
  out->stored = s->stored;
  out->delivered = s->recovered;
  out->dead = s->dead;
  out->answers[HISTORY_2XX] = stats_responses_between(s, 200, 299);
  out->answers[HISTORY_3XX] = stats_responses_between(s, 300, 399);
  out->answers[HISTORY_4XX] = stats_responses_between(s, 400, 499);
  out->answers[HISTORY_5XX] = stats_responses_between(s, 500, 599);
  out->answers[HISTORY_NETWORK] = s->network_errors;
}

/* What moved between base and now, as the sample of a period. */
static void history_delta(const history_sample_t *base, const history_sample_t *now,
                          history_sample_t *out) {
  out->at_ms = base->at_ms;
  out->stored = now->stored - base->stored;
  out->delivered = now->delivered - base->delivered;
  out->dead = now->dead - base->dead;
  for (int i = 0; i < HISTORY_NCLASSES; i++)
    out->answers[i] = now->answers[i] - base->answers[i];
}

void history_current(const history_t *h, int64_t queued, history_sample_t *out) {
  history_sample_t now;
  history_totals(h->stats, &now);
  history_delta(&h->base, &now, out);
  out->queued = queued;
}

static void history_counted(store_job_t *job) {
  history_t *h = job->ctx;
  h->counting = false;
  if (!h->running)
    return; /* stopped while the store counted: the sample is dropped */
  /* A count that came back after its period's sample went in uncounted
   * is not the next period's (it was taken before that one ended). */
  if (!h->holding || h->counted_period != h->period)
    return;
  h->pending.queued = job->result == 0 ? job->counts.count[RQ_QUEUED] : -1;
  history_ring_push(&h->ring, &h->pending);
  h->holding = false;
}

static void history_tick(uv_timer_t *t) {
  history_t *h = t->data;
  history_sample_t now;
  int64_t now_ms = store_now_ms();
  if (h->holding) {
    /* The last period's count has not come back: its sample goes in
     * uncounted, so that a slow store never shifts the chart's minutes. */
    h->pending.queued = -1;
    history_ring_push(&h->ring, &h->pending);
  }
  history_totals(h->stats, &now);
  history_delta(&h->base, &now, &h->pending);
  h->base = now;
  h->base.at_ms = now_ms;
  h->period++;
  h->holding = true;
  if (h->counting)
    return; /* one count at a time: this period goes in uncounted */
  memset(&h->job, 0, sizeof(h->job));
  h->job.op = STORE_COUNTS;
  h->job.cb = history_counted;
  h->job.ctx = h;
  h->job.now = now_ms;
  h->counting = true;
  h->counted_period = h->period;
  store_submit(h->store, &h->job);
}

/* The period: HISTORY_PERIOD_MS unless a test set HISTORY_PERIOD_ENV. */
static uint64_t history_period_ms(void) {
  const char *v = getenv(HISTORY_PERIOD_ENV);
  uint64_t ms;
  if (v != NULL && units_parse_uint(v, &ms) == 0 && ms >= 100 && ms <= HISTORY_PERIOD_MS)
    return ms;
  return HISTORY_PERIOD_MS;
}

int history_start(history_t *h, uv_loop_t *loop, const stats_t *stats, store_t *store) {
  memset(h, 0, sizeof(*h));
  history_ring_init(&h->ring);
  h->stats = stats;
  h->store = store;
  h->period_ms = history_period_ms();
  history_totals(stats, &h->base);
  h->base.at_ms = store_now_ms();
  int rc = uv_timer_init(loop, &h->timer);
  if (rc != 0)
    return rc;
  h->timer.data = h;
  h->running = true;
  return uv_timer_start(&h->timer, history_tick, h->period_ms, h->period_ms);
}

void history_stop(history_t *h) {
  if (!h->running)
    return;
  h->running = false;
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, NULL);
}

static int history_sample_json(buf_t *out, const history_sample_t *s) {
  int rc = buf_append_str(out, "{\"at\":");
  if (rc == 0)
    rc = request_json_time(out, s->at_ms);
  if (rc == 0)
    rc = s->queued >= 0 ? buf_printf(out, ",\"queued\":%lld", (long long)s->queued)
                        : buf_append_str(out, ",\"queued\":null");
  if (rc == 0)
    rc = buf_printf(out,
                    ",\"stored\":%llu,\"delivered\":%llu,\"dead\":%llu,\"answers\":{\"2xx\":%llu,"
                    "\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"network\":%llu}}",
                    (unsigned long long)s->stored, (unsigned long long)s->delivered,
                    (unsigned long long)s->dead, (unsigned long long)s->answers[HISTORY_2XX],
                    (unsigned long long)s->answers[HISTORY_3XX],
                    (unsigned long long)s->answers[HISTORY_4XX],
                    (unsigned long long)s->answers[HISTORY_5XX],
                    (unsigned long long)s->answers[HISTORY_NETWORK]);
  return rc;
}

int history_json(buf_t *out, const history_t *h, const history_sample_t *current) {
  int rc = buf_printf(out, "{\"period_s\":%.3g,\"slots\":%d,\"samples\":[",
                      (double)h->period_ms / 1000.0, HISTORY_SLOTS);
  size_t n = history_ring_len(&h->ring);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (i > 0)
      rc = buf_append_str(out, ",");
    if (rc == 0)
      rc = history_sample_json(out, history_ring_at(&h->ring, i));
  }
  if (rc == 0)
    rc = buf_append_str(out, "],\"current\":");
  if (rc == 0)
    rc = history_sample_json(out, current);
  if (rc == 0)
    rc = buf_append_str(out, "}\n");
  return rc;
}
