/* control_wait: a control API client held until a stored request ends —
 * Prefer: wait=N (RFC 7240) on GET /_retryd/requests/<id> and on its
 * /response, a long-poll an application can use instead of polling.
 *
 * The caller has read the row and found it unfinished (queued or
 * inflight). control_wait_hold() registers a scheduler waiter for its id
 * and a timer of wait_s seconds, and attaches itself to the connection as
 * its handler. The hold ends when the request ends (completed, dead or
 * cancelled: here, or on another replica of a shared queue, which the
 * scheduler hears of), when retryd stops (the scheduler lets its waiters
 * go), or when the time runs out; an outcome that leaves the request
 * retryable keeps the client held. Then ended() runs with the connection,
 * waiting for its answer: it reads the row again and answers as a plain
 * GET would, now. A client that leaves first releases the waiter and the
 * timer, and ended() never runs for it.
 *
 * Lifecycle: control_wait_hold() → ended() or the client gone → freed in
 * the timer's close callback. Loop thread only. */
#ifndef RETRYD_CONTROL_WAIT_H
#define RETRYD_CONTROL_WAIT_H

#include <stdint.h>

#include "proxy/http/http_conn.h"

struct app_s;

/* tag is the caller's, handed back as it was given. */
typedef void (*control_wait_ended_fn)(struct app_s *app, http_conn_t *c, const char *id,
                                      int64_t wait_s, uintptr_t tag);

/* 0; or UV_ENOMEM, UV_ECANCELED when retryd is stopping: nothing is held,
 * and the caller answers at once. */
int control_wait_hold(struct app_s *app, http_conn_t *c, const char *id, int64_t wait_s,
                      control_wait_ended_fn ended, uintptr_t tag);

#endif
