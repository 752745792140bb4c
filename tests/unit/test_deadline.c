/* deadline: a pushed-back timeout fires at its new time, never earlier;
 * a cleared one never fires; an earlier one is not held up by a later one.
 * Runs a real libuv loop: the times asserted are the loop's own clock,
 * which is what a deadline compares against. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "proxy/deadline.h"

typedef struct {
  deadline_t d;
  int fired;
  uint64_t fired_at;
  uint64_t due_at; /* what the test expects, at the latest setting */
} probe_t;

static void probe_cb(deadline_t *d) {
  probe_t *p = d->data;
  p->fired++;
  p->fired_at = uv_now(d->timer.loop);
}

static void probe_closed(uv_handle_t *h) {
  (void)h;
}

static void probe_run_and_close(uv_loop_t *loop, probe_t *p) {
  uv_run(loop, UV_RUN_DEFAULT); /* until nothing is armed */
  deadline_close(&p->d, probe_closed);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void push_back(uv_timer_t *t) {
  probe_t *p = t->data;
  deadline_set(&p->d, 60);
  p->due_at = uv_now(t->loop) + 60;
}

static void pushed_back_fires_at_the_new_time_once(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  probe_t p = {0};
  deadline_init(&loop, &p.d, probe_cb, &p);
  deadline_set(&p.d, 30);
  uv_timer_t mover;
  uv_timer_init(&loop, &mover);
  mover.data = &p;
  uv_timer_start(&mover, push_back, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&mover, NULL);
  probe_run_and_close(&loop, &p);
  assert_int_equal(p.fired, 1);
  assert_true(p.fired_at >= p.due_at); /* not at the first time (30 ms) */
}

static void cleared_never_fires(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  probe_t p = {0};
  deadline_init(&loop, &p.d, probe_cb, &p);
  deadline_set(&p.d, 20);
  deadline_clear(&p.d);
  probe_run_and_close(&loop, &p);
  assert_int_equal(p.fired, 0);
}

static void earlier_setting_is_not_held_up(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  probe_t p = {0};
  deadline_init(&loop, &p.d, probe_cb, &p);
  uint64_t start = uv_now(&loop);
  deadline_set(&p.d, 60000);
  deadline_set(&p.d, 10);
  probe_run_and_close(&loop, &p);
  assert_int_equal(p.fired, 1);
  assert_true(p.fired_at >= start + 10);
  assert_true(p.fired_at < start + 60000);
}

static void set_again_after_firing_fires_again(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  probe_t p = {0};
  deadline_init(&loop, &p.d, probe_cb, &p);
  deadline_set(&p.d, 5);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(p.fired, 1);
  deadline_set(&p.d, 5);
  probe_run_and_close(&loop, &p);
  assert_int_equal(p.fired, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pushed_back_fires_at_the_new_time_once),
      cmocka_unit_test(cleared_never_fires),
      cmocka_unit_test(earlier_setting_is_not_held_up),
      cmocka_unit_test(set_again_after_firing_fires_again),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
