/* scheduler: sends stored requests again when they are due.
 *
 * Design note. There is no polling: one timer is armed for the earliest
 * due time among the flows (route_table.h: a route, or one partition of
 * it), each of which knows its own — from the rows stored, retried and
 * claimed here, and from the stored flows, read at start and whenever the
 * store reports an earlier due time than any known here (another
 * replica's rows). When it fires, the scheduler claims due rows of one
 * flow at a time — earliest due first, then oldest, the flows in turn —
 * as many as the free slots of --retry-concurrency and the flow's pause
 * and rate limit allow, and starts an attempt for each. An attempt's slot frees as soon as its
 * answer is in; when rows are due, the claim that refills it goes out on the next turn of the loop,
 * one claim for every slot freed in that turn. Once its outcome is committed, the timer is re-armed
 * from the store's new earliest due time. One claim at a time; a failed claim or commit is tried
 * again a second later.
 *
 * Waiters (Prefer: wait) register for a request id and are told of each
 * outcome committed for it (they register again to hear the next), and of
 * its end wherever it came from: a cancel through the control API, or
 * another replica that delivered, gave up or cancelled it (a shared
 * queue's notice, after which the row is read again). On stop, waiters are
 * released at once, no new rows are claimed, and attempts in flight
 * finish; at the shutdown deadline, scheduler_cancel_all() returns the rest
 * to queued.
 *
 * A shared queue's other notices arm the timer: rows another replica made
 * due, and "look again" after notices may have been lost.
 *
 * The scheduler reaches the store only through its submit function: in
 * retryd store_submit() on the app's store (scheduler_start); a unit test
 * passes its own (scheduler_start_with) and answers claims and outcomes
 * itself, with no SQLite and no storage thread. Loop thread only. */
#ifndef RETRYD_SCHEDULER_H
#define RETRYD_SCHEDULER_H

#include <stdint.h>

#include "lib/list.h"
#include "proxy/queue/attempt.h"

struct app_s;
typedef struct scheduler_s scheduler_t;
typedef struct scheduler_waiter_s scheduler_waiter_t;

struct scheduler_waiter_s {
  char id[40];
  /* row is the request as it is now (its state, attempts, last status and
   * error, next attempt, and for a completed one the stored answer), read
   * only for the call; NULL when the scheduler stops. The waiter is already
   * unregistered. */
  void (*cb)(scheduler_waiter_t *w, const stored_request_t *row);
  list_t link; /* the scheduler's */
};

/* Hands a store job over; its callback runs later, on the loop thread. */
typedef void (*scheduler_submit_fn)(void *arg, store_job_t *job);

/* Starts claiming due rows from app->store. */
int scheduler_start(struct app_s *app);
/* The same with submit(arg, job) in place of store_submit(). */
int scheduler_start_with(struct app_s *app, scheduler_submit_fn submit, void *arg);
/* A storage job reported the earliest due time of the whole queue (0:
 * none queued): earlier than any flow's known here, the stored flows are
 * read again. */
void scheduler_note_due(scheduler_t *s, int64_t next_due_ms);
/* A row of flow (its key: route.h) is due at due_ms: stored, retried, or
 * asked to go now. */
void scheduler_note_flow_due(scheduler_t *s, const char *flow, int64_t due_ms);
/* What a shared queue's backend heard of another replica's changes. */
void scheduler_notice(scheduler_t *s, const storage_notice_t *n);
/* row changed here outside an attempt (a cancel): its waiters hear of it. */
void scheduler_row_changed(scheduler_t *s, const stored_request_t *row);
/* w stays registered until its callback runs or scheduler_unwait(), which
 * may be called for a waiter the callback already unregistered. */
void scheduler_wait(scheduler_t *s, scheduler_waiter_t *w);
void scheduler_unwait(scheduler_waiter_t *w);
/* Stops claiming; on_stopped runs once no attempt is in flight. */
void scheduler_stop(scheduler_t *s, void (*on_stopped)(struct app_s *app));
void scheduler_cancel_all(scheduler_t *s);
/* Frees it after stop (its timer closes on the loop). */
void scheduler_close(scheduler_t *s);

#endif
