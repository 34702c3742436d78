/* tests/core/work_test.c: blocking work off the loop's thread (core/work.h). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "raloop/core/work.h"

typedef struct fx {
  ra_loop *loop;
  ra_timer tick;
  int ticks;
  unsigned sleep_ms;
  pthread_t loop_thread, fn_thread;
  atomic_int fn_done;
  int done_calls, ticks_at_done;
} fx;

static void on_tick(ra_timer *t, void *ud) {
  (void)t;
  ((fx *)ud)->ticks++;
}

static void slow(void *ud) {
  fx *f = ud;
  f->fn_thread = pthread_self();
  nanosleep(&(struct timespec){0, (long)f->sleep_ms * 1000000L}, NULL);
  atomic_store(&f->fn_done, 1);
}

static void on_done(ra_work *w, void *ud) {
  fx *f = ud;
  assert_non_null(w);
  assert_true(pthread_equal(pthread_self(), f->loop_thread));
  assert_int_equal(atomic_load(&f->fn_done), 1); /* after fn, never during it */
  f->done_calls++;
  f->ticks_at_done = f->ticks;
  ra_timer_stop(&f->tick);
}

static void fx_open(fx *f, unsigned sleep_ms) {
  *f = (fx){.sleep_ms = sleep_ms, .loop_thread = pthread_self()};
  assert_int_equal(ra_loop_new(&f->loop), 0);
  ra_timer_init(f->loop, &f->tick, on_tick, f);
  ra_timer_unref(&f->tick);
  ra_timer_start(&f->tick, 10, 10);
}

/* fn runs on another thread while the loop keeps turning (its timer fires
 * through the 200 ms fn takes); done follows on the loop's thread, and the
 * pending work alone keeps ra_loop_run alive until then. */
static void test_work_runs_off_the_loop(void **state) {
  (void)state;
  fx f;
  fx_open(&f, 200);
  ra_work *w = NULL;
  assert_int_equal(ra_work_start(f.loop, slow, on_done, &f, &w), 0);
  assert_non_null(w);
  assert_int_equal(f.done_calls, 0);
  assert_int_equal(ra_loop_run(f.loop), 0); /* returns once done ran */
  assert_int_equal(f.done_calls, 1);
  assert_false(pthread_equal(f.fn_thread, f.loop_thread));
  assert_true(f.ticks_at_done >= 10);
  ra_loop_free(f.loop);
}

/* Cancel waits for fn to return, frees the work, and done never runs. */
static void test_cancel_waits_for_fn(void **state) {
  (void)state;
  fx f;
  fx_open(&f, 100);
  ra_work *w;
  assert_int_equal(ra_work_start(f.loop, slow, on_done, &f, &w), 0);
  ra_work_cancel(w);
  assert_int_equal(atomic_load(&f.fn_done), 1);
  ra_timer_stop(&f.tick);
  assert_int_equal(ra_loop_run(f.loop), 0); /* nothing left: the work is gone */
  assert_int_equal(f.done_calls, 0);
  ra_work_cancel(NULL); /* a no-op */
  ra_loop_free(f.loop);
}

/* Many works at once: each done exactly once. */
static void test_many_works(void **state) {
  (void)state;
  fx f[16];
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  for (int i = 0; i < 16; i++) {
    f[i] = (fx){.loop = loop, .sleep_ms = (unsigned)(i % 4) * 5, .loop_thread = pthread_self()};
    ra_timer_init(loop, &f[i].tick, on_tick, &f[i]);
    assert_int_equal(ra_work_start(loop, slow, on_done, &f[i], NULL), 0);
  }
  assert_int_equal(ra_loop_run(loop), 0);
  for (int i = 0; i < 16; i++) assert_int_equal(f[i].done_calls, 1);
  ra_loop_free(loop);
}

static void test_bad_arguments(void **state) {
  (void)state;
  fx f;
  fx_open(&f, 0);
  ra_work *w = (ra_work *)&f;
  assert_int_equal(ra_work_start(NULL, slow, on_done, &f, &w), -EINVAL);
  assert_null(w);
  assert_int_equal(ra_work_start(f.loop, NULL, on_done, &f, NULL), -EINVAL);
  assert_int_equal(ra_work_start(f.loop, slow, NULL, &f, NULL), -EINVAL);
  ra_timer_stop(&f.tick);
  ra_loop_free(f.loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_work_runs_off_the_loop),
      cmocka_unit_test(test_cancel_waits_for_fn),
      cmocka_unit_test(test_many_works),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
