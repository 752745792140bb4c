#include "proxy/queue/scheduler.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/queue/route.h"
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
  int64_t armed_for; /* Unix ms the timer fires at; 0: not armed */
  size_t active;     /* attempts talking to the upstream */
  size_t finishing;  /* outcomes known, their commit pending */
  int64_t next_due;  /* the store's last word on the earliest due row */
  bool claiming;
  bool claim_probe; /* the claim out carries the route's probe */
  bool stopping;
  void (*on_stopped)(app_t *app);
  store_job_t claim;
  list_t attempts; /* in flight and finishing, for cancel_all (attempt_t link) */
  list_t waiters;  /* scheduler_waiter_t link */
};

static void scheduler_claim(scheduler_t *s);

static void scheduler_arm(scheduler_t *s, int64_t due_ms);

/* Claims when the store said rows are due by now — from the timer, at the
 * next turn of the loop, so every slot freed in this turn goes into one
 * claim instead of one claim per slot. */
static void scheduler_claim_if_due(scheduler_t *s) {
  if (s->next_due != 0 && s->next_due <= store_now_ms())
    scheduler_arm(s, s->next_due);
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

void scheduler_note_due(scheduler_t *s, int64_t next_due_ms) {
  if (s == NULL)
    return;
  if (next_due_ms > 0 && (s->next_due == 0 || next_due_ms < s->next_due))
    s->next_due = next_due_ms;
  scheduler_arm(s, next_due_ms);
}

static void scheduler_maybe_stopped(scheduler_t *s) {
  if (s->stopping && s->active == 0 && s->finishing == 0 && !s->claiming && s->on_stopped != NULL) {
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
  attempt_free(a);
  s->next_due = job->next_due;
  scheduler_arm(s, job->next_due); /* due now: the timer fires next turn */
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
  route_t *r = a->app->route;
  const attempt_outcome_t *o = &a->outcome;
  if (o->kind == OUTCOME_RELEASE) {
    if (a->probe)
      flow_untake(&r->flow, 0, true);
    return;
  }
  const char *ra = a->head.complete ? headers_get(&a->head.fields, "retry-after") : NULL;
  route_note(r, o->last_status, o->kind != OUTCOME_COMPLETED, ra, a->probe, store_now_ms());
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
  s->claiming = false;
  if (job->result < 0) {
    log_line_t l;
    log_begin(&l, LOG_ERROR, "cannot claim due requests; will retry");
    log_int(&l, "error", job->result);
    log_end(&l);
    free(job->rows);
    job->rows = NULL;
    flow_untake(&s->app->route->flow, job->limit, s->claim_probe);
    s->claim_probe = false;
    if (!s->stopping)
      scheduler_arm(s, store_now_ms() + SCHEDULER_STORE_RETRY_MS);
    scheduler_maybe_stopped(s);
    return;
  }
  s->app->stats.dead += (uint64_t)job->expired;
  bool probe = s->claim_probe;
  s->claim_probe = false;
  flow_untake(&s->app->route->flow, job->limit - (size_t)job->nrows, probe && job->nrows == 0);
  for (int i = 0; i < job->nrows; i++) {
    attempt_t *a = attempt_start(s->app, &job->rows[i], scheduler_attempt_done);
    if (a == NULL) {
      stored_request_free(&job->rows[i]);
      if (i == 0 && probe)
        flow_untake(&s->app->route->flow, 0, true);
      continue; /* stays inflight on disk until the next start */
    }
    a->probe = probe && i == 0;
    s->active++;
    list_insert_head(&s->attempts, &a->link);
  }
  bool full = (size_t)job->nrows == job->limit;
  free(job->rows);
  job->rows = NULL;
  s->next_due = job->next_due;
  /* Slots freed while this claim was out, and rows still due, are claimed
   * when the timer fires (at once when they are due now). */
  scheduler_arm(s, job->next_due);
  /* A shared queue also changes where this process cannot see it (another
   * replica stored rows and died, or a lease ran out): look again within
   * the store's poll interval whatever it said. */
  int64_t poll = s->app->store != NULL ? store_poll_ms(s->app->store) : 0;
  if (poll > 0)
    scheduler_arm(s, store_now_ms() + poll);
  if (full)
    scheduler_claim(s); /* there may be more due right now */
  scheduler_maybe_stopped(s);
}

static void scheduler_claim(scheduler_t *s) {
  if (s->stopping || s->claiming)
    return;
  if (s->active >= s->app->cfg->retry_concurrency)
    return; /* a finishing attempt claims again */
  size_t slots = s->app->cfg->retry_concurrency - s->active;
  if (slots > 256)
    slots = 256; /* one batch; the next claim follows at once */
  /* The route may allow fewer (paused, probing, paced): claim what it
   * allows, reserved now, and look again when it allows more. */
  route_flow_t *flow = &s->app->route->flow;
  int64_t now = store_now_ms();
  size_t allowed = flow_claimable(flow, now, slots);
  if (allowed == 0) {
    /* Look again when the route allows (a claim that finds nothing due is
     * cheap); while its probe is out, the probe's answer says when. */
    int64_t at = flow_next_send_at(flow, now);
    if (at > 0)
      scheduler_arm(s, at > s->next_due ? at : s->next_due);
    return;
  }
  slots = allowed;
  store_job_t *job = &s->claim;
  memset(job, 0, sizeof(*job));
  job->rows = calloc(slots, sizeof(stored_request_t));
  if (job->rows == NULL) {
    scheduler_arm(s, store_now_ms() + SCHEDULER_STORE_RETRY_MS);
    return;
  }
  job->op = STORE_CLAIM;
  job->limit = slots;
  job->max_age_ms = (int64_t)s->app->cfg->max_age_ms + RETRY_POLICY_LATE_MS;
  job->cb = scheduler_claimed;
  job->ctx = s;
  s->claim_probe = flow_took(flow, slots, now);
  s->claiming = true;
  s->submit(s->submit_arg, job);
}

/* ---- public ---------------------------------------------------------- */

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
  app->scheduler = s;
  /* Whatever is already due (or recovered from a crash) goes now; the
   * claim's answer arms the timer for the rest. */
  scheduler_claim(s);
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
    if (s->next_due == 0 || n->at_ms < s->next_due)
      s->next_due = n->at_ms;
    scheduler_arm(s, n->at_ms);
    break;
  case STORAGE_NOTICE_MISSED:
    scheduler_arm(s, store_now_ms());
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

static void scheduler_timer_closed(uv_handle_t *h) { free(h->data); }

void scheduler_close(scheduler_t *s) {
  s->app->scheduler = NULL;
  uv_close((uv_handle_t *)&s->timer, scheduler_timer_closed);
}
