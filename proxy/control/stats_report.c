#include "proxy/control/stats_report.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proxy/queue/request_json.h"

static double uptime_s(const stats_t *s, uint64_t now_ns) {
  return (double)(now_ns - s->started_ns) / 1e9;
}

/* A replica's name is retryd's own (host name characters and hex), so it
 * needs no escaping in JSON or in a label value. */
static bool has_replica(const char *replica) { return replica != NULL && replica[0] != '\0'; }

/* s as a JSON string, quotes and all. */
static int json_str(buf_t *out, const char *s, size_t len) {
  int rc = buf_append_str(out, "\"");
  if (rc == 0)
    rc = buf_append_json_escaped(out, s, len);
  return rc ? rc : buf_append_str(out, "\"");
}

/* How far from open a state is: a route shows its worst partition's. */
static int flow_rank(flow_state_t st) {
  switch (st) {
  case FLOW_PAUSED:
    return 3;
  case FLOW_PROBING:
    return 2;
  case FLOW_RAMPING:
    return 1;
  case FLOW_OPEN:
    break;
  }
  return 0;
}

/* A route's flows summed up: the worst one's state at now, and sums. */
typedef struct {
  const flow_entry_t *worst; /* NULL: no flow yet */
  route_flow_t worst_at;
  size_t flows;
  size_t paused;
  uint64_t pauses;
  uint64_t held;
  int64_t queued;
  int64_t inflight;
} route_sum_t;

static route_sum_t route_sum(const stats_report_in_t *in, const route_t *r) {
  route_sum_t sum = {0};
  const route_table_t *t = in->routes;
  for (size_t i = 0; i < t->nflows; i++) {
    const flow_entry_t *e = t->flows[i];
    if (e->route != r)
      continue;
    route_flow_t f = flow_at(&e->flow, in->now_ms);
    sum.flows++;
    sum.paused += f.state == FLOW_PAUSED;
    sum.pauses += f.pauses;
    sum.held += f.held;
    if (sum.worst == NULL || flow_rank(f.state) > flow_rank(sum.worst_at.state)) {
      sum.worst = e;
      sum.worst_at = f;
    }
  }
  char name[ROUTE_NAME_MAX];
  for (size_t i = 0; in->flows != NULL && i < in->nflows; i++) {
    route_name_of_flow(in->flows[i].name, name, sizeof(name));
    if (strcmp(name, r->is_default ? "" : r->name) == 0) {
      sum.queued += in->flows[i].queued;
      sum.inflight += in->flows[i].inflight;
    }
  }
  return sum;
}

/* One flow's state as JSON members (no braces). */
static int flow_json(buf_t *out, const route_flow_t *f, const flow_policy_t *p,
                     const char *partition_by) {
  int rc = buf_printf(out, "\"state\":\"%s\",\"paused_until\":", flow_state_name(f->state));
  if (rc == 0)
    rc = request_json_time(out, f->state == FLOW_PAUSED ? f->paused_until : 0);
  if (rc == 0)
    rc = buf_append_str(out, ",\"last_signal\":");
  if (rc == 0)
    rc = f->last_signal > 0 ? buf_printf(out, "%d", f->last_signal) : buf_append_str(out, "null");
  if (rc == 0)
    rc = buf_append_str(out, ",\"ramp_per_interval\":");
  if (rc == 0)
    rc = f->state == FLOW_RAMPING ? buf_printf(out, "%lld", (long long)f->ramp_allowed)
                                  : buf_append_str(out, "null");
  if (rc == 0)
    rc = buf_append_str(out, ",\"rate_limit\":");
  if (rc == 0 && p->limit > 0) {
    rc = buf_printf(out, "{\"limit\":%lld,\"period_ms\":%lld,\"tokens\":%.2f,\"by\":",
                    (long long)p->limit, (long long)p->period_ms, f->tokens);
    if (rc == 0)
      rc =
          partition_by[0] ? buf_printf(out, "\"%s\"}", partition_by) : buf_append_str(out, "null}");
  } else if (rc == 0) {
    rc = buf_append_str(out, "null");
  }
  return rc;
}

/* The first partitions of a partitioned route, one by one. */
#define STATS_PARTITIONS_SHOWN 50

static int route_json(buf_t *out, const stats_report_in_t *in, const route_t *r) {
  route_sum_t sum = route_sum(in, r);
  route_flow_t idle;
  if (sum.worst == NULL)
    flow_init(&idle, &r->flow_policy, in->now_ms);
  const route_flow_t *f = sum.worst ? &sum.worst_at : &idle;
  int rc = buf_printf(out, "{\"name\":\"%s\",\"upstream\":", r->name);
  if (rc == 0)
    rc = json_str(out, r->upstream_url, strlen(r->upstream_url));
  if (rc == 0)
    rc = buf_append_str(out, ",\"match\":{\"methods\":");
  for (size_t i = 0; rc == 0 && i < r->methods.n; i++)
    rc = buf_printf(out, "%s\"%s\"", i == 0 ? "[" : ",", r->methods.name[i]);
  if (rc == 0)
    rc = buf_append_str(out, r->methods.n ? "]" : "null");
  if (rc == 0)
    rc = buf_append_str(out, ",\"path_prefix\":");
  if (rc == 0)
    rc = r->path_prefix_len ? json_str(out, r->path_prefix, r->path_prefix_len)
                            : buf_append_str(out, "null");
  if (rc == 0)
    rc = buf_append_str(out, ",\"header\":");
  if (rc == 0)
    rc = r->header[0] ? json_str(out, r->header, strlen(r->header)) : buf_append_str(out, "null");
  if (rc == 0)
    rc = buf_append_str(out, "},");
  if (rc == 0)
    rc = flow_json(out, f, &r->flow_policy, r->partition_by);
  if (rc == 0)
    rc = buf_printf(out, ",\"pause_on_capacity\":%s,\"pauses\":%llu,\"held\":%llu,\"queued\":",
                    r->flow_policy.pause ? "true" : "false", (unsigned long long)sum.pauses,
                    (unsigned long long)sum.held);
  if (rc == 0)
    rc = in->flows != NULL ? buf_printf(out, "%lld,\"inflight\":%lld", (long long)sum.queued,
                                        (long long)sum.inflight)
                           : buf_append_str(out, "null,\"inflight\":null");
  if (rc == 0 && r->partition_by[0] != '\0') {
    rc = buf_printf(out, ",\"partitions\":%zu,\"partitions_paused\":%zu,\"partition_list\":[",
                    sum.flows, sum.paused);
    size_t shown = 0;
    const route_table_t *t = in->routes;
    for (size_t i = 0; rc == 0 && i < t->nflows && shown < STATS_PARTITIONS_SHOWN; i++) {
      const flow_entry_t *e = t->flows[i];
      if (e->route != r)
        continue;
      route_flow_t pf = flow_at(&e->flow, in->now_ms);
      rc = buf_printf(out, "%s{\"flow\":\"%s\",", shown ? "," : "", e->key);
      if (rc == 0)
        rc = flow_json(out, &pf, &r->flow_policy, r->partition_by);
      if (rc == 0)
        rc = buf_printf(out, ",\"held\":%llu}", (unsigned long long)pf.held);
      shown++;
    }
    if (rc == 0)
      rc = buf_append_str(out, "]");
  }
  if (rc == 0)
    rc = buf_append_str(out, "}");
  return rc;
}

int stats_report_json(buf_t *out, const stats_report_in_t *in) {
  const stats_t *s = in->stats;
  const queue_counts_t *q = in->queue;
  const char *replica = in->replica;
  uint64_t now_ns = in->now_ns;
  int rc = buf_append_str(out, "{");
  if (rc == 0 && has_replica(replica))
    rc = buf_printf(out, "\"replica\":\"%s\",", replica);
  if (rc == 0)
    rc = buf_append_str(out, "\"queue\":{");
  for (int i = 0; rc == 0 && i < RQ_NSTATES; i++)
    rc = buf_printf(out, "\"%s\":%lld,", rq_state_name((rq_state_t)i), (long long)q->count[i]);
  if (rc == 0)
    rc = buf_append_str(out, "\"oldest_queued_at\":");
  if (rc == 0)
    rc = request_json_time(out, q->oldest_queued_at);
  if (rc == 0)
    rc = buf_append_str(out, ",\"next_attempt_at\":");
  if (rc == 0)
    rc = request_json_time(out, q->next_attempt_at);
  if (rc == 0)
    rc = buf_printf(out, "},\"callbacks\":{\"pending\":%lld,\"delivered\":%lld,\"failed\":%lld",
                    (long long)q->callbacks[CALLBACK_PENDING],
                    (long long)q->callbacks[CALLBACK_DELIVERED],
                    (long long)q->callbacks[CALLBACK_FAILED]);
  if (rc == 0)
    rc = buf_printf(out,
                    "},\"totals\":{\"requests\":%llu,\"forwarded\":%llu,\"stored\":%llu,"
                    "\"retries\":%llu,\"recovered\":%llu,\"dead\":%llu,\"rejected\":%llu,"
                    "\"requeued_at_start\":%llu},",
                    (unsigned long long)s->requests, (unsigned long long)s->forwarded,
                    (unsigned long long)s->stored, (unsigned long long)s->retries,
                    (unsigned long long)s->recovered, (unsigned long long)s->dead,
                    (unsigned long long)s->rejected, (unsigned long long)s->requeued_at_start);
  if (rc == 0)
    rc = buf_append_str(out, "\"routes\":[");
  for (size_t i = 0; rc == 0 && i < in->routes->n; i++) {
    rc = route_json(out, in, &in->routes->routes[i]);
    if (rc == 0)
      rc = buf_append_str(out, ",");
  }
  if (rc == 0)
    rc = route_json(out, in, &in->routes->dflt);
  if (rc == 0)
    rc = buf_append_str(out, "],");
  if (rc == 0)
    rc = buf_append_str(out, "\"upstream\":{\"responses\":{");
  static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int c = 0; rc == 0 && c < 5; c++)
    rc = buf_printf(
        out, "\"%s\":%llu,", classes[c],
        (unsigned long long)stats_responses_between(s, (c + 1) * 100, (c + 1) * 100 + 99));
  if (rc == 0)
    rc = buf_append_str(out, "\"by_code\":{");
  bool first = true;
  for (int code = 100; rc == 0 && code < 600; code++) {
    if (s->responses_by_code[code] == 0)
      continue;
    rc = buf_printf(out, "%s\"%d\":%llu", first ? "" : ",", code,
                    (unsigned long long)s->responses_by_code[code]);
    first = false;
  }
  if (rc == 0)
    rc = buf_printf(
        out,
        "}},\"network_errors\":%llu,\"resent\":%llu,\"latency_ms\":{\"count\":%llu,\"p50\":%.3f,"
        "\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}},\"uptime_s\":%.0f}\n",
        (unsigned long long)s->network_errors, (unsigned long long)s->resent,
        (unsigned long long)s->latency_count, stats_latency_quantile_ms(s, 0.50),
        stats_latency_quantile_ms(s, 0.90), stats_latency_quantile_ms(s, 0.99),
        stats_latency_quantile_ms(s, 1.0), uptime_s(s, now_ns));
  return rc;
}

static int prom_head(buf_t *out, const char *name, const char *type, const char *help) {
  return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* lone: the label set of a series without other labels ("" or
 * {replica="..."}); lead: the same to go before other labels. */
typedef struct {
  char lone[128];
  char lead[128];
} prom_labels_t;

static int prom_counter(buf_t *out, const prom_labels_t *l, const char *name, const char *help,
                        uint64_t v) {
  int rc = prom_head(out, name, "counter", help);
  return rc ? rc : buf_printf(out, "%s%s %llu\n", name, l->lone, (unsigned long long)v);
}

/* A route of the report: the file's in order, then the default. */
static const route_t *prom_route(const stats_report_in_t *in, size_t i) {
  return i < in->routes->n ? &in->routes->routes[i] : &in->routes->dflt;
}

/* Each route's state (one of four set to 1: its partition furthest from
 * open), pauses and held requests, and its queued rows when read. */
static int prom_routes(buf_t *out, const prom_labels_t *l, const stats_report_in_t *in) {
  static const flow_state_t states[] = {FLOW_OPEN, FLOW_PAUSED, FLOW_PROBING, FLOW_RAMPING};
  size_t n = in->routes->n + 1;
  int rc = prom_head(out, "retryd_route_state", "gauge",
                     "A route's flow toward its upstream: 1 for the state it is in.");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const route_t *r = prom_route(in, i);
    route_sum_t sum = route_sum(in, r);
    flow_state_t st = sum.worst ? sum.worst_at.state : FLOW_OPEN;
    for (size_t k = 0; rc == 0 && k < 4; k++)
      rc = buf_printf(out, "retryd_route_state{%sroute=\"%s\",state=\"%s\"} %d\n", l->lead, r->name,
                      flow_state_name(states[k]), st == states[k]);
  }
  if (rc == 0)
    rc = prom_head(out, "retryd_route_pauses_total", "counter",
                   "Times a route paused on a capacity signal (507, 429, 503 with Retry-After).");
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = buf_printf(out, "retryd_route_pauses_total{%sroute=\"%s\"} %llu\n", l->lead,
                    prom_route(in, i)->name,
                    (unsigned long long)route_sum(in, prom_route(in, i)).pauses);
  if (rc == 0)
    rc = prom_head(out, "retryd_route_held_total", "counter",
                   "Requests a route stored without sending them (paused or over its limit).");
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = buf_printf(out, "retryd_route_held_total{%sroute=\"%s\"} %llu\n", l->lead,
                    prom_route(in, i)->name,
                    (unsigned long long)route_sum(in, prom_route(in, i)).held);
  if (rc == 0 && in->flows != NULL) {
    rc = prom_head(out, "retryd_route_queued", "gauge",
                   "Stored requests of a route waiting for an attempt.");
    for (size_t i = 0; rc == 0 && i < n; i++)
      rc = buf_printf(out, "retryd_route_queued{route=\"%s\"} %lld\n", prom_route(in, i)->name,
                      (long long)route_sum(in, prom_route(in, i)).queued);
  }
  return rc;
}

int stats_report_prometheus(buf_t *out, const stats_report_in_t *in) {
  const stats_t *s = in->stats;
  const queue_counts_t *q = in->queue;
  const char *replica = in->replica;
  int64_t now_ms = in->now_ms;
  uint64_t now_ns = in->now_ns;
  prom_labels_t l = {"", ""};
  if (has_replica(replica)) {
    snprintf(l.lone, sizeof(l.lone), "{replica=\"%s\"}", replica);
    snprintf(l.lead, sizeof(l.lead), "replica=\"%s\",", replica);
  }
  int rc = prom_head(out, "retryd_queue_requests", "gauge",
                     "Stored requests by state (the shared queue's, with replicas).");
  for (int i = 0; rc == 0 && i < RQ_NSTATES; i++)
    rc = buf_printf(out, "retryd_queue_requests{state=\"%s\"} %lld\n", rq_state_name((rq_state_t)i),
                    (long long)q->count[i]);
  if (rc == 0)
    rc = prom_head(out, "retryd_callbacks", "gauge",
                   "Completion notices by state: pending, delivered, failed (given up).");
  static const char *const cb_states[CALLBACK_NSTATES] = {"pending", "delivered", "failed"};
  for (int i = 0; rc == 0 && i < CALLBACK_NSTATES; i++)
    rc = buf_printf(out, "retryd_callbacks{state=\"%s\"} %lld\n", cb_states[i],
                    (long long)q->callbacks[i]);
  if (rc == 0)
    rc = prom_head(out, "retryd_oldest_queued_age_seconds", "gauge",
                   "Age of the oldest queued request (0 when none).");
  if (rc == 0)
    rc = buf_printf(out, "retryd_oldest_queued_age_seconds %.3f\n",
                    q->oldest_queued_at > 0 && now_ms > q->oldest_queued_at
                        ? (double)(now_ms - q->oldest_queued_at) / 1000
                        : 0.0);
  if (rc == 0)
    rc = prom_head(out, "retryd_next_attempt_timestamp_seconds", "gauge",
                   "When the next stored request is due (Unix time; 0 when none).");
  if (rc == 0)
    rc = buf_printf(out, "retryd_next_attempt_timestamp_seconds %.3f\n",
                    (double)q->next_attempt_at / 1000);
  struct {
    const char *name, *help;
    uint64_t v;
  } counters[] = {
      {"retryd_requests_total", "Client requests for the upstream.", s->requests},
      {"retryd_forwarded_total", "First attempts sent upstream.", s->forwarded},
      {"retryd_stored_total", "Requests committed to the queue.", s->stored},
      {"retryd_retries_total", "Attempts of stored requests.", s->retries},
      {"retryd_recovered_total", "Stored requests that got their final answer.", s->recovered},
      {"retryd_dead_total", "Stored requests given up.", s->dead},
      {"retryd_rejected_total", "Requests answered by retryd with an error.", s->rejected},
      {"retryd_upstream_network_errors_total", "Attempts that got no answer.", s->network_errors},
      {"retryd_upstream_resent_total",
       "Requests sent again at once after a kept-alive connection died unanswered.", s->resent},
  };
  for (size_t i = 0; rc == 0 && i < sizeof(counters) / sizeof(counters[0]); i++)
    rc = prom_counter(out, &l, counters[i].name, counters[i].help, counters[i].v);
  if (rc == 0)
    rc = prom_head(out, "retryd_upstream_responses_total", "counter",
                   "Upstream answers by status code.");
  for (int code = 100; rc == 0 && code < 600; code++)
    if (s->responses_by_code[code] > 0)
      rc = buf_printf(out, "retryd_upstream_responses_total{%scode=\"%d\",class=\"%dxx\"} %llu\n",
                      l.lead, code, code / 100, (unsigned long long)s->responses_by_code[code]);
  if (rc == 0)
    rc = prom_head(out, "retryd_upstream_latency_seconds", "histogram",
                   "Time from sending a request upstream to its answer's head (or failure).");
  for (int b = 0; rc == 0 && b < STATS_PROM_BUCKETS; b++)
    rc = buf_printf(out, "retryd_upstream_latency_seconds_bucket{%sle=\"%g\"} %llu\n", l.lead,
                    stats_prom_bounds_s[b], (unsigned long long)s->prom_buckets[b]);
  if (rc == 0)
    rc = buf_printf(out,
                    "retryd_upstream_latency_seconds_bucket{%sle=\"+Inf\"} %llu\n"
                    "retryd_upstream_latency_seconds_sum%s %.6f\n"
                    "retryd_upstream_latency_seconds_count%s %llu\n",
                    l.lead, (unsigned long long)s->latency_count, l.lone, s->latency_sum_ms / 1000,
                    l.lone, (unsigned long long)s->latency_count);
  if (rc == 0)
    rc = prom_routes(out, &l, in);
  if (rc == 0)
    rc = prom_head(out, "retryd_uptime_seconds", "gauge", "Seconds since retryd started.");
  if (rc == 0)
    rc = buf_printf(out, "retryd_uptime_seconds%s %.0f\n", l.lone, uptime_s(s, now_ns));
  return rc;
}
