/* deadline: a timeout that is pushed back far more often than it fires.
 *
 * Design note. Every request moves its connection's timeout several times
 * (request begun, body flowing, answer's head, answer's body, keep-alive),
 * and each uv_timer_start/stop is a remove and an insert in libuv's timer
 * heap; profiling put that at about a tenth of a proxied request's
 * instructions. A deadline only writes down when it is due. The libuv timer
 * is moved only when the new time is earlier than the one it is armed for;
 * when it fires early it re-arms itself for the time now written down, so
 * a timeout still fires at its time, at the cost of one spare wake-up per
 * period. Loop thread only. */
#ifndef RETRYD_DEADLINE_H
#define RETRYD_DEADLINE_H

#include <stdint.h>
#include <uv.h>

typedef struct deadline_s deadline_t;
typedef void (*deadline_cb)(deadline_t *d);

struct deadline_s {
  uv_timer_t timer; /* first: the timer callback finds the deadline */
  deadline_cb cb;
  void *data;       /* the owner's */
  uint64_t due;     /* loop time it is due at; 0: not set */
  uint64_t armed;   /* loop time the libuv timer fires at; 0: not armed */
};

void deadline_init(uv_loop_t *loop, deadline_t *d, deadline_cb cb, void *data);
/* Due ms from now (replacing any earlier setting). */
void deadline_set(deadline_t *d, uint64_t ms);
void deadline_clear(deadline_t *d);
/* Closes the timer; close_cb gets its handle, whose data is the owner's. */
void deadline_close(deadline_t *d, uv_close_cb close_cb);

#endif
