#include "proxy/queue/scheduler.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/queue/route_table.h"
#include "proxy/http/headers.h"
#include "proxy/log.h"
#include "proxy/queue/retry_policy.h"

/* After a failed claim or commit, how long before trying the store again. */
#define SCHEDULER_STORE_RETRY_MS 1000

struct scheduler_s {
  app_t *app;
  scheduler_submit_fn submit; /* where claims and outcomes go */
  void *submit_arg;
  uv_timer_t timer;
  /* A shared queue also changes where this process is told nothing of it
   * (another replica stored rows and died, its leases ran out): the
   * stored flows are read again every store poll interval. */
  uv_timer_t poll_timer;
  int open_handles;  /* freed when both timers are closed */
  int64_t armed_for; /* Unix ms the timer fires at; 0: not armed */
  size_t active;     /* attempts talking to the upstream */
  size_t finishing;  /* outcomes known, their commit pending */
  bool claiming;
  bool claim_probe;         /* the claim out carries its flow's probe */
  flow_entry_t *claim_flow; /* the flow the claim out is for */
  size_t next_flow;         /* where the next look for a flow to claim starts */
  /* The stored flows, read again when this process may not know of some
   * of their rows (at start, another replica's notice, a due time earlier
   * than any it knows). */
  bool reading_flows;
  bool flows_stale; /* read again once the read out is back */
  store_job_t flows_job;
  storage_flow_t *flows_buf;
  bool stopping;
  void (*on_stopped)(app_t *app);
  store_job_t claim;
  list_t attempts; /* in flight and finishing, for cancel_all (attempt_t link) */
  list_t waiters;  /* scheduler_waiter_t link */
};

static void scheduler_claim(scheduler_t *s);
static void scheduler_read_flows(scheduler_t *s);

static void scheduler_arm(scheduler_t *s, int64_t due_ms);

/* The earliest due time among the flows (0: none known). */
static int64_t scheduler_earliest_due(const scheduler_t *s) {
  const route_table_t *t = s->app->routes;
  int64_t due = 0;
  for (size_t i = 0; i < t->nflows; i++) {
    int64_t d = t->flows[i]->next_due;
    if (d != 0 && (due == 0 || d < due))
      due = d;
  }
  return due;
}

/* Claims when a flow has rows due — from the timer, at the next turn of
 * the loop, so every slot freed in this turn goes into one claim instead
 * of one claim per slot. */
static void scheduler_claim_if_due(scheduler_t *s) {
  int64_t due = scheduler_earliest_due(s);
  if (due != 0)
    scheduler_arm(s, due);
}

static void scheduler_timer_cb(uv_timer_t *t) {
  scheduler_t *s = t->data;
  s->armed_for = 0;
  scheduler_claim(s);
}

static void scheduler_arm(scheduler_t *s, int64_t due_ms) {
  if (s->stopping || due_ms <= 0)
    return;
  if (s->armed_for != 0 && s->armed_for <= due_ms)
    return; /* already due earlier */
  int64_t now = store_now_ms();
  uint64_t delay = due_ms > now ? (uint64_t)(due_ms - now) : 0;
  s->armed_for = due_ms;
  uv_timer_start(&s->timer, scheduler_timer_cb, delay, 0);
}

void scheduler_note_flow_due(scheduler_t *s, const char *flow, int64_t due_ms) {
  if (s == NULL || due_ms <= 0 || s->stopping)
    return;
  flow_entry_t *e = route_table_flow(s->app->routes, flow ? flow : "", store_now_ms());
  if (e == NULL)
    return;
  if (e->next_due == 0 || due_ms < e->next_due)
    e->next_due = due_ms;
  scheduler_arm(s, due_ms);
}

void scheduler_note_due(scheduler_t *s, int64_t next_due_ms) {
  if (s == NULL || next_due_ms <= 0 || s->stopping)
    return;
  /* Every flow's due time is known here, as far as this process changed
   * the queue: a store that knows of an earlier one has rows this process
   * did not see (another replica's, or its flows not read yet). */
  int64_t known = scheduler_earliest_due(s);
  if (known == 0 || next_due_ms < known)
    scheduler_read_flows(s);
}

static void scheduler_maybe_stopped(scheduler_t *s) {
  if (s->stopping && s->active == 0 && s->finishing == 0 && !s->claiming && !s->reading_flows &&
      s->on_stopped != NULL) {
    void (*cb)(app_t *) = s->on_stopped;
    s->on_stopped = NULL;
    cb(s->app);
  }
}

/* ---- outcomes -------------------------------------------------------- */

/* Waiters are few (clients holding with Prefer: wait), so a list will do.
 * A waiter may register again from its callback; it goes to the head,
 * behind the walk. */
static void scheduler_notify_waiters(scheduler_t *s, const stored_request_t *row) {
  list_foreach_safe(l, &s->waiters) {
    scheduler_waiter_t *w = list_entry(l, scheduler_waiter_t, link);
    if (strcmp(w->id, row->id) == 0) {
      scheduler_unwait(w);
      w->cb(w, row);
    }
  }
}

static bool scheduler_has_waiter(scheduler_t *s, const char *id) {
  list_foreach(l, &s->waiters) {
    if (strcmp(list_entry(l, scheduler_waiter_t, link)->id, id) == 0)
      return true;
  }
  return false;
}

/* The row as an attempt's committed outcome left it: a view that borrows
 * the attempt's strings, for the waiters' callbacks only. */
static stored_request_t scheduler_row_after(const attempt_t *a) {
  const attempt_outcome_t *o = &a->outcome;
  stored_request_t row = a->rq;
  row.state = o->kind == OUTCOME_COMPLETED ? RQ_COMPLETED
              : o->kind == OUTCOME_DEAD    ? RQ_DEAD
                                           : RQ_QUEUED;
  row.next_attempt_at = o->kind == OUTCOME_RETRY ? o->next_attempt_at : 0;
  row.last_status = o->last_status;
  /* Read-only all the same: the callbacks get the row as const. */
  row.last_error = (char *)(uintptr_t)o->last_error;
  row.response_status = o->response_status;
  row.response_headers = (char *)(uintptr_t)o->response_headers;
  row.response_headers_len = o->response_headers_len;
  row.response_body = (char *)(uintptr_t)o->response_body;
  row.response_body_len = o->response_body_len;
  return row;
}

/* One line per retry, at debug: a queue retrying thousands of stored
 * requests would drown every other line at info, where retry_summary sums
 * them up instead. */
static void scheduler_log_outcome(const attempt_t *a) {
  static const char *const names[] = {"completed", "retry", "dead", "released"};
  log_line_t l;
  log_begin(&l, LOG_DEBUG, "attempt");
  log_str(&l, "id", a->rq.id);
  log_str(&l, "method", a->rq.method);
  log_strn(&l, "path", a->rq.target, strcspn(a->rq.target, "?"));
  log_int(&l, "attempt", a->rq.attempts);
  log_str(&l, "outcome", names[a->outcome.kind]);
  if (a->outcome.last_status > 0)
    log_int(&l, "upstream_status", a->outcome.last_status);
  else
    log_str(&l, "upstream_status", NULL);
  if (a->outcome.last_error != NULL)
    log_str(&l, "error", a->outcome.last_error);
  log_end(&l);
}

static void scheduler_finish_retry_cb(uv_timer_t *t);

static void scheduler_finish_committed(store_job_t *job) {
  attempt_t *a = job->ctx;
  scheduler_t *s = a->app->scheduler;
  if (job->result < 0 && job->result != -ENOENT) {
    /* The outcome is not stored yet: the row is still inflight on disk.
     * Try again shortly rather than lose it. */
    log_line_t l;
    log_begin(&l, LOG_ERROR, "cannot record an attempt's outcome; will retry");
    log_str(&l, "id", a->rq.id);
    log_int(&l, "error", job->result);
    log_end(&l);
    uv_timer_start(&a->timer, scheduler_finish_retry_cb, SCHEDULER_STORE_RETRY_MS, 0);
    return;
  }
  list_remove(&a->link);
  s->finishing--;
  if (a->outcome.kind == OUTCOME_COMPLETED)
    s->app->stats.recovered++;
  else if (a->outcome.kind == OUTCOME_DEAD)
    s->app->stats.dead++;
  if (a->outcome.kind != OUTCOME_RELEASE) {
    stored_request_t row = scheduler_row_after(a);
    scheduler_notify_waiters(s, &row);
  }
  if (a->outcome.kind == OUTCOME_RETRY)
    scheduler_note_flow_due(s, a->rq.flow, a->outcome.next_attempt_at);
  else if (a->outcome.kind == OUTCOME_RELEASE)
    scheduler_note_flow_due(s, a->rq.flow, store_now_ms());
  attempt_free(a);
  scheduler_note_due(s, job->next_due);
  scheduler_claim_if_due(s); /* due now: the timer fires next turn */
  scheduler_maybe_stopped(s);
}

static void scheduler_submit_finish(attempt_t *a) {
  a->finish.op = STORE_FINISH;
  a->finish.cb = scheduler_finish_committed;
  a->finish.ctx = a;
  a->finish.outcome = a->outcome;
  a->finish.outcome.claim_token = a->rq.claim_token;
  a->finish.now = 0;
  scheduler_t *s = a->app->scheduler;
  s->submit(s->submit_arg, &a->finish);
}

static void scheduler_finish_retry_cb(uv_timer_t *t) { scheduler_submit_finish(t->data); }

/* The slot frees as soon as the answer is in, not when its outcome is
 * committed: the claim that refills it goes out on the next turn of the
 * loop, usually into the same batch as the outcome. */
/* Every answer tells the route how its upstream is doing. */
static void scheduler_note_route(attempt_t *a) {
  flow_entry_t *e = a->flow;
  const attempt_outcome_t *o = &a->outcome;
  e->busy--;
  if (o->kind == OUTCOME_RELEASE) {
    if (a->probe)
      flow_untake(&e->flow, 0, true);
    return;
  }
  const char *ra = a->head.complete ? headers_get(&a->head.fields, "retry-after") : NULL;
  route_note(a->route, &e->flow, e->key, o->last_status, o->kind != OUTCOME_COMPLETED, ra, a->probe,
             store_now_ms());
}

static void scheduler_attempt_done(attempt_t *a) {
  scheduler_t *s = a->app->scheduler;
  scheduler_log_outcome(a);
  scheduler_note_route(a);
  s->active--;
  s->finishing++;
  scheduler_submit_finish(a);
  scheduler_claim_if_due(s);
}

/* ---- claiming -------------------------------------------------------- */

static void scheduler_claimed(store_job_t *job) {
  scheduler_t *s = job->ctx;
  flow_entry_t *e = s->claim_flow;
  s->claiming = false;
  s->claim_flow = NULL;
  e->busy--;
  bool probe = s->claim_probe;
  s->claim_probe = false;
  if (job->result < 0) {
    log_line_t l;
    log_begin(&l, LOG_ERROR, "cannot claim due requests; will retry");
    log_int(&l, "error", job->result);
    log_end(&l);
    free(job->rows);
    job->rows = NULL;
    flow_untake(&e->flow, job->limit, probe);
    if (!s->stopping)
      scheduler_arm(s, store_now_ms() + SCHEDULER_STORE_RETRY_MS);
    scheduler_maybe_stopped(s);
    return;
  }
  s->app->stats.dead += (uint64_t)job->expired;
  flow_untake(&e->flow, job->limit - (size_t)job->nrows, probe && job->nrows == 0);
  for (int i = 0; i < job->nrows; i++) {
    attempt_t *a = attempt_start(s->app, &job->rows[i], scheduler_attempt_done);
    if (a == NULL) {
      stored_request_free(&job->rows[i]);
      if (i == 0 && probe)
        flow_untake(&e->flow, 0, true);
      continue; /* stays inflight on disk until the next start */
    }
    a->probe = probe && i == 0;
    a->flow = e;
    e->busy++;
    s->active++;
    list_insert_head(&s->attempts, &a->link);
  }
  bool full = (size_t)job->nrows == job->limit;
  free(job->rows);
  job->rows = NULL;
  /* The store said when the flow has rows due next (now, after a full
   * claim that left more). */
  e->next_due = job->flow_next_due;
  scheduler_note_due(s, job->next_due);
  if (full)
    scheduler_claim(s); /* there may be more due right now */
  else
    scheduler_claim_if_due(s); /* slots freed meanwhile, other flows: next turn */
  scheduler_maybe_stopped(s);
}

/* The next flow to claim from, at most slots rows: the first, from where
 * the last look stopped, that has rows due and that its flow lets send
 * (*allowed). NULL when none; *wake is then when one may (0: not known). */
static flow_entry_t *scheduler_pick_flow(scheduler_t *s, size_t slots, int64_t now, size_t *allowed,
                                         int64_t *wake) {
  route_table_t *t = s->app->routes;
  *wake = 0;
  for (size_t k = 0; k < t->nflows; k++) {
    size_t i = (s->next_flow + k) % t->nflows;
    flow_entry_t *e = t->flows[i];
    int64_t at = e->next_due;
    if (at != 0 && at <= now) {
      *allowed = flow_claimable(&e->flow, now, slots);
      if (*allowed > 0) {
        s->next_flow = i + 1;
        return e;
      }
      /* While its probe is out, the probe's answer says when (0). */
      at = flow_next_send_at(&e->flow, now);
    }
    if (at > 0 && (*wake == 0 || at < *wake))
      *wake = at;
  }
  return NULL;
}

static void scheduler_claim(scheduler_t *s) {
  if (s->stopping || s->claiming)
    return;
  if (s->active >= s->app->cfg->retry_concurrency)
    return; /* a finishing attempt claims again */
  size_t slots = s->app->cfg->retry_concurrency - s->active;
  if (slots > 256)
    slots = 256; /* one batch; the next claim follows at once */
  int64_t now = store_now_ms();
  size_t allowed = 0;
  int64_t wake = 0;
  /* A flow may allow fewer (paused, probing, paced): claim what it allows,
   * reserved now, and look again when it allows more. */
  flow_entry_t *e = scheduler_pick_flow(s, slots, now, &allowed, &wake);
  if (e == NULL) {
    if (wake > 0)
      scheduler_arm(s, wake);
    return;
  }
  store_job_t *job = &s->claim;
  memset(job, 0, sizeof(*job));
  job->rows = calloc(allowed, sizeof(stored_request_t));
  if (job->rows == NULL) {
    scheduler_arm(s, store_now_ms() + SCHEDULER_STORE_RETRY_MS);
    return;
  }
  job->op = STORE_CLAIM;
  job->flow = e->key;
  job->limit = allowed;
  job->max_age_ms = e->route->retry.max_age_ms + RETRY_POLICY_LATE_MS;
  job->cb = scheduler_claimed;
  job->ctx = s;
  s->claim_probe = flow_took(&e->flow, allowed, now);
  s->claim_flow = e;
  e->busy++;
  s->claiming = true;
  s->submit(s->submit_arg, job);
}

/* ---- the stored flows ------------------------------------------------- */

#define SCHEDULER_FLOWS_MAX 1024

static void scheduler_flows_read(store_job_t *job) {
  scheduler_t *s = job->ctx;
  s->reading_flows = false;
  if (job->result >= 0 && !s->stopping) {
    int64_t now = store_now_ms();
    for (int i = 0; i < job->result; i++) {
      const storage_flow_t *f = &s->flows_buf[i];
      if (f->next_due == 0)
        continue;
      flow_entry_t *e = route_table_flow(s->app->routes, f->name, now);
      if (e != NULL && (e->next_due == 0 || f->next_due < e->next_due))
        e->next_due = f->next_due;
    }
    scheduler_claim_if_due(s);
  } else if (job->result < 0 && !s->stopping) {
    s->flows_stale = true;
    scheduler_arm(s, store_now_ms() + SCHEDULER_STORE_RETRY_MS);
  }
  if (s->flows_stale && !s->stopping) {
    s->flows_stale = false;
    scheduler_read_flows(s);
  }
  scheduler_maybe_stopped(s);
}

static void scheduler_read_flows(scheduler_t *s) {
  if (s->stopping)
    return;
  if (s->reading_flows) {
    s->flows_stale = true;
    return;
  }
  if (s->flows_buf == NULL) {
    s->flows_buf = calloc(SCHEDULER_FLOWS_MAX, sizeof(storage_flow_t));
    if (s->flows_buf == NULL)
      return;
  }
  store_job_t *job = &s->flows_job;
  memset(job, 0, sizeof(*job));
  job->op = STORE_FLOWS;
  job->flows = s->flows_buf;
  job->limit = SCHEDULER_FLOWS_MAX;
  job->cb = scheduler_flows_read;
  job->ctx = s;
  s->reading_flows = true;
  s->submit(s->submit_arg, job);
}

/* ---- public ---------------------------------------------------------- */

static void scheduler_poll_cb(uv_timer_t *t) { scheduler_read_flows(t->data); }

static void scheduler_submit_to_store(void *arg, store_job_t *job) {
  app_t *app = arg;
  store_submit(app->store, job);
}

int scheduler_start(app_t *app) {
  return scheduler_start_with(app, scheduler_submit_to_store, app);
}

int scheduler_start_with(app_t *app, scheduler_submit_fn submit, void *arg) {
  scheduler_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return UV_ENOMEM;
  s->app = app;
  s->submit = submit;
  s->submit_arg = arg;
  list_init(&s->attempts);
  list_init(&s->waiters);
  uv_timer_init(app->loop, &s->timer);
  s->timer.data = s;
  uv_timer_init(app->loop, &s->poll_timer);
  s->poll_timer.data = s;
  s->open_handles = 2;
  int64_t poll = app->store != NULL ? store_poll_ms(app->store) : 0;
  if (poll > 0)
    uv_timer_start(&s->poll_timer, scheduler_poll_cb, (uint64_t)poll, (uint64_t)poll);
  app->scheduler = s;
  /* Whatever is already due (or recovered from a crash) goes now: the
   * stored flows say what is due when. */
  scheduler_read_flows(s);
  return 0;
}

/* ---- what other replicas did ------------------------------------------ */

/* Another replica ended a row someone here waits for: read it, with its
 * answer, and tell them. */
static void scheduler_ended_read(store_job_t *job) {
  app_t *app = job->ctx; /* the scheduler may have closed meanwhile */
  scheduler_t *s = app->scheduler;
  if (job->result == 0 && job->rq.state >= RQ_COMPLETED && s != NULL)
    scheduler_notify_waiters(s, &job->rq);
  stored_request_free(&job->rq);
  free(job);
}

void scheduler_notice(scheduler_t *s, const storage_notice_t *n) {
  if (s == NULL || s->stopping)
    return;
  switch (n->kind) {
  case STORAGE_NOTICE_DUE:
    /* Which flow is not told: it is read, unless it is one known here. */
    scheduler_note_due(s, n->at_ms);
    break;
  case STORAGE_NOTICE_MISSED:
    scheduler_read_flows(s);
    break;
  case STORAGE_NOTICE_ENDED: {
    if (!scheduler_has_waiter(s, n->id))
      break;
    store_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
      break; /* the waiter gets its 202 when its wait ends */
    job->op = STORE_GET;
    job->with_payload = true;
    snprintf(job->id, sizeof(job->id), "%s", n->id);
    job->cb = scheduler_ended_read;
    job->ctx = s->app;
    s->submit(s->submit_arg, job);
    break;
  }
  }
}

void scheduler_row_changed(scheduler_t *s, const stored_request_t *row) {
  if (s != NULL)
    scheduler_notify_waiters(s, row);
}

void scheduler_wait(scheduler_t *s, scheduler_waiter_t *w) {
  list_insert_head(&s->waiters, &w->link);
}

void scheduler_unwait(scheduler_waiter_t *w) { list_remove(&w->link); }

void scheduler_stop(scheduler_t *s, void (*on_stopped)(app_t *app)) {
  s->stopping = true;
  s->on_stopped = on_stopped;
  uv_timer_stop(&s->timer);
  uv_timer_stop(&s->poll_timer);
  s->armed_for = 0;
  list_t *l;
  while ((l = list_pop_head(&s->waiters)) != NULL) {
    scheduler_waiter_t *w = list_entry(l, scheduler_waiter_t, link);
    w->cb(w, NULL);
  }
  scheduler_maybe_stopped(s);
}

void scheduler_cancel_all(scheduler_t *s) {
  list_foreach_safe(l, &s->attempts) { attempt_cancel(list_entry(l, attempt_t, link)); }
}

static void scheduler_timer_closed(uv_handle_t *h) {
  scheduler_t *s = h->data;
  if (--s->open_handles > 0)
    return;
  free(s->flows_buf);
  free(s);
}

void scheduler_close(scheduler_t *s) {
  s->app->scheduler = NULL;
  uv_close((uv_handle_t *)&s->timer, scheduler_timer_closed);
  uv_close((uv_handle_t *)&s->poll_timer, scheduler_timer_closed);
}
