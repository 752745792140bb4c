#include "proxy/deadline.h"

static void deadline_fired(uv_timer_t *t) {
  deadline_t *d = (deadline_t *)t;
  d->armed = 0;
  if (d->due == 0)
    return;
  uint64_t now = uv_now(t->loop);
  if (now < d->due) {
    /* Pushed back since it was armed: wait for the new time. */
    d->armed = d->due;
    uv_timer_start(&d->timer, deadline_fired, d->due - now, 0);
    return;
  }
  d->due = 0;
  d->cb(d);
}

void deadline_init(uv_loop_t *loop, deadline_t *d, deadline_cb cb, void *data) {
  uv_timer_init(loop, &d->timer);
  d->timer.data = data; /* what a close callback finds */
  d->cb = cb;
  d->data = data;
  d->due = 0;
  d->armed = 0;
}

void deadline_set(deadline_t *d, uint64_t ms) {
  uint64_t now = uv_now(d->timer.loop);
  d->due = now + ms;
  if (d->due == 0)
    d->due = 1; /* 0 means unset */
  if (d->armed == 0 || d->armed > d->due) {
    d->armed = d->due;
    uv_timer_start(&d->timer, deadline_fired, ms, 0);
  }
}

void deadline_clear(deadline_t *d) {
  /* The timer stays armed: it wakes once, finds nothing due, and stops. */
  d->due = 0;
}

void deadline_close(deadline_t *d, uv_close_cb close_cb) {
  d->due = 0;
  uv_close((uv_handle_t *)&d->timer, close_cb);
}
