/* route_flow: how much one route may send to its upstream now, for first
 * attempts and retries alike — its pause on capacity signals and its rate
 * limit.
 *
 * The upstream says things about a whole endpoint ("out of capacity": a
 * 507, a 429, a 503 with Retry-After); asking again with every stored
 * request only burns its limit and bursts into 429s on recovery. So:
 *
 *   open     sends freely, within the rate limit (when one is set)
 *   paused   after a capacity signal, until the later of Retry-After and
 *            the retry interval: nothing is sent; new requests are stored
 *            (held) and answered 202 at once
 *   probing  the pause is over: exactly one request goes (the scheduler's
 *            oldest due row); new ones are still held
 *   ramping  the probe got a final answer: the route sends in steps, 2
 *            in the first, twice as many in each next one, until a step
 *            reaches its rate limit per interval (or, without one, twice
 *            --retry-concurrency), and is open again. A step ends when
 *            all its sends got final answers, or an interval after it
 *            began, whichever comes first (TCP's slow start: the answers
 *            clock it, so a recovered upstream is back at full rate
 *            within a few round trips, while one that fails again is
 *            asked only a few times before it pauses the route again)
 * A capacity signal in any state pauses again; while probing, any answer
 * that is not final does too (the probe failed). Sending is paced by one
 * token bucket at the limit's rate, which holds one token: sends are
 * spread evenly, and no window of a period holds more than the limit.
 * Held requests are stored due at once: they wait for the route, not for
 * a time, and go earliest due first.
 *
 * Times are Unix ms passed in by the caller: pure state, no clock, no
 * handles; loop thread. */
#ifndef RETRYD_ROUTE_FLOW_H
#define RETRYD_ROUTE_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { FLOW_OPEN, FLOW_PAUSED, FLOW_PROBING, FLOW_RAMPING } flow_state_t;

typedef struct {
  bool pause;           /* pausing on capacity signals is on (--route-pause) */
  int64_t interval_ms;  /* --retry-interval: the shortest pause, a ramp step */
  int64_t limit;        /* sends per period at most (0: no limit) */
  int64_t period_ms;    /* the limit's period */
  int64_t ramp_ceiling; /* sends per interval that end a ramp without a limit */
  int64_t max_pause_ms; /* a Retry-After pauses no longer (--max-age; 0: no cap) */
} flow_policy_t;

typedef struct {
  flow_policy_t policy;
  flow_state_t state;
  int64_t paused_until; /* paused: when probing may start */
  int last_signal;      /* the status that paused it last */
  bool probe_out;       /* probing: the probe is in flight */
  int64_t ramp_allowed; /* ramping: sends allowed in this step */
  int64_t ramp_sent;    /* ramping: sent in this step */
  int64_t ramp_finals;  /* ramping: final answers in this step */
  int64_t ramp_step_at; /* ramping: when it steps up at the latest */
  double tokens;        /* the bucket, when it paces (see flow_paced) */
  int64_t tokens_at;    /* when tokens was last brought up to date */
  uint64_t pauses;      /* times it paused */
  uint64_t held;        /* first attempts stored without being sent */
} route_flow_t;

/* What a change of state was, for the caller's one log line per change. */
typedef enum { FLOW_NO_CHANGE, FLOW_PAUSED_NOW, FLOW_RESUMED_NOW, FLOW_OPENED_NOW } flow_change_t;

void flow_init(route_flow_t *f, const flow_policy_t *policy, int64_t now);
const char *flow_state_name(flow_state_t s);

/* The state at now (a pause that ran out is probing). */
flow_state_t flow_state(route_flow_t *f, int64_t now);
/* A first attempt may be sent now (and takes its token), or is to be held:
 * stored without contacting the upstream. */
bool flow_take_first(route_flow_t *f, int64_t now);
/* How many stored rows the scheduler may claim now, at most want; it then
 * reports what it claimed with flow_took(). */
size_t flow_claimable(route_flow_t *f, int64_t now, size_t want);
/* n rows are being claimed (reserved before the claim goes out); returns
 * whether the first of them is the probe. */
bool flow_took(route_flow_t *f, size_t n, int64_t now);
/* The claim came back with unused fewer rows than it reserved; probe_lost:
 * the probe was among them (no row came, or its attempt was not made). */
void flow_untake(route_flow_t *f, size_t unused, bool probe_lost);
/* An operator asked for a stored request to be tried now (retry-now): a
 * paused route ends its pause and probes at once. */
void flow_probe_now(route_flow_t *f, int64_t now);
/* f as it is at now, for a report: a copy moved along the clock. */
route_flow_t flow_at(const route_flow_t *f, int64_t now);
/* When flow_claimable() may next be above 0, for a scheduler that has due
 * rows it could not claim (now when it already is). */
int64_t flow_next_send_at(route_flow_t *f, int64_t now);

/* An attempt's answer: status (0: none), whether it is retryable, when the
 * upstream asked to be tried again (Retry-After as a time; 0: it did not
 * say), and whether the attempt was the probe. */
flow_change_t flow_note(route_flow_t *f, int status, bool retryable, int64_t retry_at, bool probe,
                        int64_t now);
/* Whether an answer is a capacity signal: 507, 429, or 503 with
 * Retry-After. */
bool flow_is_capacity_signal(int status, bool has_retry_after);

#endif
