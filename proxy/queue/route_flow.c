#include "proxy/queue/route_flow.h"

#include <string.h>

/* A probe that got its final answer allows this many sends in the first
 * step of the ramp. */
#define FLOW_RAMP_FIRST 2

const char *flow_state_name(flow_state_t s) {
  switch (s) {
  case FLOW_OPEN:
    return "open";
  case FLOW_PAUSED:
    return "paused";
  case FLOW_PROBING:
    return "probing";
  case FLOW_RAMPING:
    return "ramping";
  }
  return "unknown";
}

bool flow_is_capacity_signal(int status, bool has_retry_after) {
  return status == 507 || status == 429 || (status == 503 && has_retry_after);
}

/* Whether a token bucket paces sends (the route has a rate limit), and
 * its rate (per ms) and size. A ramp does not pace: it counts (below). */
static bool flow_paced(const route_flow_t *f, double *rate, double *size) {
  const flow_policy_t *p = &f->policy;
  if (p->limit <= 0 || p->period_ms <= 0)
    return false;
  *rate = (double)p->limit / (double)p->period_ms;
  /* One token at most: sends are spread evenly (one every period/N), so
   * no window of a period ever holds more than N, where a bucket that
   * saved up a period's worth would allow twice that across a boundary. */
  *size = 1;
  return true;
}

static void flow_refill(route_flow_t *f, int64_t now) {
  double rate, size;
  if (flow_paced(f, &rate, &size) && now > f->tokens_at) {
    f->tokens += rate * (double)(now - f->tokens_at);
    if (f->tokens > size)
      f->tokens = size;
  }
  if (now > f->tokens_at)
    f->tokens_at = now;
}

/* Whether the ramp reached the route's rate: its limit's, or its ceiling. */
static bool flow_ramp_done(const route_flow_t *f) {
  const flow_policy_t *p = &f->policy;
  if (p->limit > 0 && p->period_ms > 0)
    return (double)f->ramp_allowed * (double)p->period_ms >=
           (double)p->limit * (double)p->interval_ms;
  return f->ramp_allowed >= p->ramp_ceiling;
}

/* The ramp's next step: twice the sends, counted afresh; open once it
 * reaches the route's rate. */
static void flow_ramp_step(route_flow_t *f, int64_t now) {
  f->ramp_allowed *= 2;
  f->ramp_sent = 0;
  f->ramp_finals = 0;
  f->ramp_step_at = now + f->policy.interval_ms;
  if (flow_ramp_done(f))
    f->state = FLOW_OPEN;
}

/* Moves the state along the clock: a pause that ran out is probing, a ramp
 * steps up at least every interval. */
static void flow_advance(route_flow_t *f, int64_t now) {
  flow_refill(f, now);
  if (f->state == FLOW_PAUSED && now >= f->paused_until) {
    f->state = FLOW_PROBING;
    f->probe_out = false;
  }
  while (f->state == FLOW_RAMPING && now >= f->ramp_step_at)
    flow_ramp_step(f, f->ramp_step_at);
}

void flow_init(route_flow_t *f, const flow_policy_t *policy, int64_t now) {
  memset(f, 0, sizeof(*f));
  f->policy = *policy;
  if (f->policy.interval_ms <= 0)
    f->policy.interval_ms = 1;
  if (f->policy.ramp_ceiling <= 0)
    f->policy.ramp_ceiling = FLOW_RAMP_FIRST;
  f->state = FLOW_OPEN;
  f->tokens = f->policy.limit > 0 ? 1 : 0;
  f->tokens_at = now;
}

flow_state_t flow_state(route_flow_t *f, int64_t now) {
  flow_advance(f, now);
  return f->state;
}

bool flow_take_first(route_flow_t *f, int64_t now) {
  flow_advance(f, now);
  double rate, size;
  /* Held while paused, probing or ramping: the stored requests go first,
   * oldest first, as the route recovers. */
  bool send = f->state == FLOW_OPEN && (!flow_paced(f, &rate, &size) || f->tokens >= 1);
  if (send && flow_paced(f, &rate, &size))
    f->tokens -= 1;
  if (!send)
    f->held++;
  return send;
}

size_t flow_claimable(route_flow_t *f, int64_t now, size_t want) {
  flow_advance(f, now);
  double rate, size;
  switch (f->state) {
  case FLOW_PAUSED:
    return 0;
  case FLOW_PROBING:
    /* The probe is a send like any other: it waits for its token. */
    if (f->probe_out || want == 0 || (flow_paced(f, &rate, &size) && f->tokens < 1))
      return 0;
    return 1;
  case FLOW_OPEN:
  case FLOW_RAMPING:
    if (f->state == FLOW_RAMPING) {
      int64_t left = f->ramp_allowed - f->ramp_sent;
      if (left <= 0)
        return 0;
      if ((int64_t)want > left)
        want = (size_t)left;
    }
    if (!flow_paced(f, &rate, &size))
      return want;
    if (f->tokens < 1)
      return 0;
    return (double)want < f->tokens ? want : (size_t)f->tokens;
  }
  return 0;
}

bool flow_took(route_flow_t *f, size_t n, int64_t now) {
  flow_advance(f, now);
  if (n == 0)
    return false;
  double rate, size;
  if (flow_paced(f, &rate, &size))
    f->tokens -= (double)n; /* the probe too: it counts against the limit */
  if (f->state == FLOW_PROBING) {
    f->probe_out = true;
    return true;
  }
  if (f->state == FLOW_RAMPING)
    f->ramp_sent += (int64_t)n;
  return false;
}

void flow_untake(route_flow_t *f, size_t unused, bool probe_lost) {
  if (probe_lost && f->state == FLOW_PROBING)
    f->probe_out = false;
  if (f->state == FLOW_RAMPING) {
    f->ramp_sent -= (int64_t)unused;
    if (f->ramp_sent < 0)
      f->ramp_sent = 0;
  }
  double rate, size;
  if ((unused > 0 || (probe_lost && f->state == FLOW_PROBING)) && flow_paced(f, &rate, &size)) {
    if (f->state == FLOW_PROBING)
      unused = 1; /* the probe that never went gives its token back */
    f->tokens += (double)unused;
    if (f->tokens > size)
      f->tokens = size;
  }
}

void flow_probe_now(route_flow_t *f, int64_t now) {
  flow_advance(f, now);
  if (f->state == FLOW_PAUSED) {
    f->paused_until = now;
    flow_advance(f, now);
  }
}

route_flow_t flow_at(const route_flow_t *f, int64_t now) {
  route_flow_t copy = *f;
  flow_advance(&copy, now);
  return copy;
}

int64_t flow_next_send_at(route_flow_t *f, int64_t now) {
  flow_advance(f, now);
  double rate, size;
  switch (f->state) {
  case FLOW_PAUSED:
    return f->paused_until;
  case FLOW_PROBING:
    if (f->probe_out)
      return 0; /* the probe's answer says */
    break;
  case FLOW_OPEN:
  case FLOW_RAMPING:
    /* A ramp's step all sent: its answers or the interval step it up. */
    if (f->state == FLOW_RAMPING && f->ramp_sent >= f->ramp_allowed)
      return f->ramp_step_at;
    break;
  }
  if (!flow_paced(f, &rate, &size) || f->tokens >= 1 || rate <= 0)
    return now;
  /* The whole ms at which the next token is whole (timers count ms). */
  double wait = (1 - f->tokens) / rate;
  int64_t ms = (int64_t)wait;
  return now + ms + ((double)ms < wait ? 1 : 0);
}

static flow_change_t flow_pause(route_flow_t *f, int64_t until, int status) {
  bool was_paused = f->state == FLOW_PAUSED || f->state == FLOW_PROBING;
  if (f->state != FLOW_PAUSED || until > f->paused_until)
    f->paused_until = until;
  f->state = FLOW_PAUSED;
  f->probe_out = false;
  f->last_signal = status;
  if (was_paused)
    return FLOW_NO_CHANGE;
  f->pauses++;
  return FLOW_PAUSED_NOW;
}

flow_change_t flow_note(route_flow_t *f, int status, bool retryable, int64_t retry_at, bool probe,
                        int64_t now) {
  flow_advance(f, now);
  if (!f->policy.pause)
    return FLOW_NO_CHANGE;
  int64_t until = now + f->policy.interval_ms;
  if (retry_at > until)
    until = retry_at;
  /* Requests die at --max-age: a pause never outlasts their lives. */
  if (f->policy.max_pause_ms > 0 && until > now + f->policy.max_pause_ms)
    until = now + f->policy.max_pause_ms;
  if (retryable && flow_is_capacity_signal(status, retry_at > 0))
    return flow_pause(f, until, status);
  if (f->state == FLOW_RAMPING && !retryable && ++f->ramp_finals >= f->ramp_allowed)
    flow_ramp_step(f, now); /* the whole step answered: the next one now */
  if (!probe || f->state != FLOW_PROBING)
    return FLOW_NO_CHANGE;
  if (retryable) /* the probe failed otherwise (a 502, no answer): wait again */
    return flow_pause(f, until, status);
  f->state = FLOW_RAMPING;
  f->probe_out = false;
  f->ramp_allowed = FLOW_RAMP_FIRST;
  f->ramp_sent = 0;
  f->ramp_finals = 0;
  f->ramp_step_at = now + f->policy.interval_ms;
  /* The bucket goes on from the probe's send, which took its token: the
   * next send is a pace after the probe, never at once. */
  if (flow_ramp_done(f))
    f->state = FLOW_OPEN;
  return FLOW_RESUMED_NOW;
}
