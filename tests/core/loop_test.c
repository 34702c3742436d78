/* tests/core/loop_test.c: timers, deferred calls, fd watches, signals. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/loop.h"

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- timers ------------------------------------------------------------- */

typedef struct rec {
  int order[64];
  int n;
} rec;

typedef struct ttimer {
  ra_timer t;
  rec *r;
  int id;
  int fired;
  struct ttimer *other; /* a timer this one stops */
  int stop_after;       /* stop itself after this many firings (repeat) */
} ttimer;

static void on_tt(ra_timer *t, void *ud) {
  ttimer *tt = ud;
  assert_ptr_equal(t, &tt->t);
  tt->fired++;
  if (tt->r && tt->r->n < 64) tt->r->order[tt->r->n++] = tt->id;
  if (tt->other) ra_timer_stop(&tt->other->t);
  if (tt->stop_after && tt->fired >= tt->stop_after) ra_timer_stop(t);
}

static void test_timer_order(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  assert_non_null(loop);
  rec r = {0};
  ttimer t[6];
  uint64_t timeouts[6] = {30, 10, 20, 10, 0, 20};
  for (int i = 0; i < 6; i++) {
    memset(&t[i], 0, sizeof t[i]);
    t[i].r = &r;
    t[i].id = i;
    ra_timer_init(loop, &t[i].t, on_tt, &t[i]);
    assert_false(ra_timer_active(&t[i].t));
    assert_int_equal(ra_timer_start(&t[i].t, timeouts[i], 0), 0);
    assert_true(ra_timer_active(&t[i].t));
  }
  uint64_t start = mono_ms();
  assert_int_equal(ra_loop_run(loop), 0);
  uint64_t took = mono_ms() - start;
  /* by due time, FIFO among equal due times */
  int want[6] = {4, 1, 3, 2, 5, 0};
  assert_int_equal(r.n, 6);
  for (int i = 0; i < 6; i++) assert_int_equal(r.order[i], want[i]);
  assert_true(took >= 29);
  assert_true(took < 1000);
  for (int i = 0; i < 6; i++) assert_false(ra_timer_active(&t[i].t));
  ra_loop_free(loop);
}

static void test_timer_repeat_stop_self(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ttimer t = {0};
  t.stop_after = 5;
  ra_timer_init(loop, &t.t, on_tt, &t);
  uint64_t start = mono_ms();
  assert_int_equal(ra_timer_start(&t.t, 1, 2), 0);
  assert_int_equal(ra_loop_run(loop), 0); /* exits once the timer stopped itself */
  assert_int_equal(t.fired, 5);
  assert_false(ra_timer_active(&t.t));
  assert_true(mono_ms() - start >= 9);
  ra_loop_free(loop);
}

static void test_timer_stop_other_same_turn(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  rec r = {0};
  ttimer a = {0}, b = {0}, c = {0};
  a.r = b.r = c.r = &r;
  a.id = 1, b.id = 2, c.id = 3;
  a.other = &b; /* a and b are due in the same turn; a runs first, stops b */
  ra_timer_init(loop, &a.t, on_tt, &a);
  ra_timer_init(loop, &b.t, on_tt, &b);
  ra_timer_init(loop, &c.t, on_tt, &c);
  ra_timer_start(&a.t, 5, 0);
  ra_timer_start(&b.t, 5, 0);
  ra_timer_start(&c.t, 5, 0);
  usleep(10 * 1000); /* all three are due when the loop next looks */
  ra_loop_run(loop);
  assert_int_equal(a.fired, 1);
  assert_int_equal(b.fired, 0);
  assert_int_equal(c.fired, 1);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.order[0], 1);
  assert_int_equal(r.order[1], 3);
  ra_loop_free(loop);
}

typedef struct restarter {
  ra_timer t;
  int fired;
} restarter;

static void on_restart(ra_timer *t, void *ud) {
  restarter *r = ud;
  if (++r->fired < 3) ra_timer_start(t, 0, 0);
}

static void test_timer_restart_zero_from_cb(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  restarter r = {0};
  ra_timer_init(loop, &r.t, on_restart, &r);
  ra_timer_start(&r.t, 0, 0);
  /* a timer re-armed with 0 from its callback waits for the next turn */
  assert_int_equal(ra_loop_run_once(loop, 0), 1);
  assert_int_equal(r.fired, 1);
  assert_int_equal(ra_loop_run_once(loop, 0), 1);
  assert_int_equal(r.fired, 2);
  ra_loop_run(loop);
  assert_int_equal(r.fired, 3);
  ra_loop_free(loop);
}

static void count_cb(ra_timer *t, void *ud) {
  (void)t;
  (*(size_t *)ud)++;
}

static void test_timer_million(void **state) {
  (void)state;
  enum { N = 1000000 };
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_timer *ts = calloc(N, sizeof *ts);
  assert_non_null(ts);
  size_t fired = 0;
  uint64_t start = mono_ms();
  for (size_t i = 0; i < N; i++) {
    ra_timer_init(loop, &ts[i], count_cb, &fired);
    assert_int_equal(ra_timer_start(&ts[i], 1000 + (i * 7919) % 50000, 0), 0);
  }
  /* restart a third (moves them around the heap), stop all but 1000 */
  for (size_t i = 0; i < N; i += 3) ra_timer_start(&ts[i], 60000 - i % 1000, 0);
  for (size_t i = 0; i < N; i++)
    if (i % 1000 != 0) ra_timer_stop(&ts[i]);
  /* and the remaining 1000 fire soon, in due order */
  for (size_t i = 0; i < N; i += 1000) ra_timer_start(&ts[i], (i / 1000) % 5, 0);
  uint64_t took = mono_ms() - start;
  assert_true(took < 5000);
  assert_int_equal(ra_loop_run(loop), 0);
  assert_int_equal(fired, 1000);
  for (size_t i = 0; i < N; i++) assert_false(ra_timer_active(&ts[i]));
  free(ts);
  ra_loop_free(loop);
}

static void test_timer_unref(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  size_t a = 0, b = 0;
  ra_timer house, work;
  ra_timer_init(loop, &house, count_cb, &a);
  ra_timer_init(loop, &work, count_cb, &b);
  ra_timer_unref(&house);
  ra_timer_start(&house, 1, 1); /* repeating, but does not keep the loop alive */
  ra_timer_start(&work, 20, 0);
  uint64_t start = mono_ms();
  assert_int_equal(ra_loop_run(loop), 0);
  assert_true(mono_ms() - start < 1000);
  assert_int_equal(b, 1);
  assert_true(a >= 1);
  assert_true(ra_timer_active(&house));
  ra_timer_stop(&house);
  ra_loop_free(loop);
}

/* ---- deferred calls ------------------------------------------------------ */

typedef struct drec {
  ra_loop *loop;
  ra_defer d[4];
  int order[16];
  int n;
  int requeue; /* d[0] requeues itself this many times */
} drec;

static void on_d(ra_defer *d, void *ud) {
  drec *r = ud;
  int id = (int)(d - r->d);
  r->order[r->n++] = id;
  if (id == 1) ra_defer_cancel(r->loop, &r->d[2]); /* cancel one queued in this batch */
  if (id == 0 && r->requeue-- > 0) ra_loop_defer(r->loop, d);
}

static void test_defer_fifo_cancel(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  drec r = {0};
  r.loop = loop;
  r.requeue = 1;
  for (int i = 0; i < 4; i++) ra_defer_init(&r.d[i], on_d, &r);
  ra_loop_defer(loop, &r.d[3]);
  ra_loop_defer(loop, &r.d[0]);
  ra_loop_defer(loop, &r.d[1]);
  ra_loop_defer(loop, &r.d[1]); /* no-op: already queued */
  ra_loop_defer(loop, &r.d[2]);
  ra_loop_defer(loop, &r.d[3]); /* no-op */
  ra_defer_cancel(loop, &r.d[3]);
  ra_loop_defer(loop, &r.d[3]); /* now last */
  /* first turn: 0 1 (cancels 2) 3; 0 requeued itself: runs next turn */
  ra_loop_run_once(loop, 0);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.order[0], 0);
  assert_int_equal(r.order[1], 1);
  assert_int_equal(r.order[2], 3);
  assert_int_equal(ra_loop_run(loop), 0);
  assert_int_equal(r.n, 4);
  assert_int_equal(r.order[3], 0);
  ra_loop_free(loop);
}

/* ---- fd watches ------------------------------------------------------------ */

typedef struct pipes {
  ra_loop *loop;
  int p[2][2]; /* two pipes */
  int calls[2];
  int unwatch_other; /* callback of pipe i unwatches and closes the other */
} pipes;

static void on_pipe(ra_loop *loop, int fd, unsigned events, void *ud) {
  pipes *ps = ud;
  int i = fd == ps->p[0][0] ? 0 : 1;
  assert_int_equal(fd, ps->p[i][0]);
  assert_true(events & RA_READABLE);
  ps->calls[i]++;
  char buf[16];
  assert_true(read(fd, buf, sizeof buf) > 0);
  if (ps->unwatch_other) {
    int o = 1 - i;
    ra_loop_unwatch(loop, ps->p[o][0]);
    close(ps->p[o][0]);
    /* and reuse the number at once: the stale event must not reach it */
    int fds[2];
    assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
    close(ps->p[o][1]);
    ps->p[o][0] = fds[0];
    ps->p[o][1] = fds[1];
    assert_int_equal(ra_loop_watch(loop, fds[0], RA_READABLE, on_pipe, ps), 0);
    ps->unwatch_other = 0;
  }
  ra_loop_unwatch(loop, fd);
}

static void test_unwatch_in_callback(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  pipes ps = {0};
  ps.loop = loop;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pipe2(ps.p[i], O_NONBLOCK), 0);
    assert_int_equal(ra_loop_watch(loop, ps.p[i][0], RA_READABLE, on_pipe, &ps), 0);
    assert_int_equal(write(ps.p[i][1], "x", 1), 1);
  }
  ps.unwatch_other = 1;
  /* both are readable in the same turn; the first callback unwatches and
   * closes the other and a new pipe takes over its fd number */
  assert_int_equal(ra_loop_run_once(loop, 1000), 1);
  assert_int_equal(ps.calls[0] + ps.calls[1], 1);
  assert_int_equal(ra_loop_run_once(loop, 10), 0); /* the new pipe is quiet */
  ra_loop_unwatch(loop, ps.p[0][0]);
  ra_loop_unwatch(loop, ps.p[1][0]);
  assert_int_equal(ra_loop_run(loop), 0); /* nothing watched: returns */
  for (int i = 0; i < 2; i++) {
    close(ps.p[i][0]);
    close(ps.p[i][1]);
  }
  ra_loop_free(loop);
}

typedef struct wtoggle {
  int calls;
  unsigned last;
} wtoggle;

static void on_toggle(ra_loop *loop, int fd, unsigned events, void *ud) {
  wtoggle *w = ud;
  w->calls++;
  w->last = events;
  ra_loop_watch(loop, fd, 0, on_toggle, ud); /* silence, but stay registered */
}

static void test_watch_modify(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int p[2];
  assert_int_equal(pipe(p), 0);
  wtoggle w = {0};
  assert_int_equal(ra_loop_watch(loop, p[1], RA_WRITABLE, on_toggle, &w), 0);
  assert_int_equal(ra_loop_run_once(loop, 1000), 1);
  assert_int_equal(w.calls, 1);
  assert_int_equal(w.last, RA_WRITABLE);
  /* events == 0 does not keep the loop alive and reports nothing */
  assert_int_equal(ra_loop_run(loop), 0);
  assert_int_equal(ra_loop_run_once(loop, 10), 0);
  assert_int_equal(w.calls, 1);
  /* re-enable: reported again */
  assert_int_equal(ra_loop_watch(loop, p[1], RA_WRITABLE, on_toggle, &w), 0);
  assert_int_equal(ra_loop_run_once(loop, 1000), 1);
  assert_int_equal(w.calls, 2);
  /* toggled within one turn: the changes collapse */
  ra_loop_watch(loop, p[1], 0, on_toggle, &w);
  ra_loop_watch(loop, p[1], RA_WRITABLE, on_toggle, &w);
  ra_loop_watch(loop, p[1], 0, on_toggle, &w);
  assert_int_equal(ra_loop_run_once(loop, 10), 0);
  assert_int_equal(w.calls, 2);
  ra_loop_unwatch(loop, p[1]);
  ra_loop_unwatch(loop, p[1]); /* twice is fine */
  /* errors reach the caller: a regular file cannot be polled */
  char tmpl[] = "/tmp/ra_loop_test_XXXXXX";
  int f = mkstemp(tmpl);
  assert_true(f >= 0);
  unlink(tmpl);
  assert_int_equal(ra_loop_watch(loop, f, RA_READABLE, on_toggle, &w), -EPERM);
  assert_int_equal(ra_loop_watch(loop, -1, RA_READABLE, on_toggle, &w), -EBADF);
  close(f);
  /* an fd far above the initial table */
  int hi = dup2(p[1], 5000);
  if (hi == 5000) {
    assert_int_equal(ra_loop_watch(loop, hi, RA_WRITABLE, on_toggle, &w), 0);
    assert_int_equal(ra_loop_run_once(loop, 1000), 1);
    assert_int_equal(w.calls, 3);
    ra_loop_unwatch(loop, hi);
    close(hi);
  }
  close(p[0]);
  close(p[1]);
  ra_loop_free(loop);
}

/* ---- signals -------------------------------------------------------------- */

typedef struct sigrec {
  int got;
  int signo;
} sigrec;

static void on_sig(ra_loop *loop, int signo, void *ud) {
  sigrec *s = ud;
  s->got++;
  s->signo = signo;
  ra_loop_stop(loop);
}

static void test_signal(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  sigrec s = {0};
  assert_int_equal(ra_loop_on_signal(loop, SIGUSR1, on_sig, &s), 0);
  assert_int_equal(ra_loop_on_signal(loop, SIGKILL, on_sig, &s), -EINVAL);
  assert_int_equal(ra_loop_on_signal(loop, 0, on_sig, &s), -EINVAL);
  /* a handler alone does not keep the loop running */
  assert_int_equal(ra_loop_run(loop), 0);
  assert_int_equal(s.got, 0);
  /* raise() with the signal blocked: it waits in the signalfd */
  assert_int_equal(raise(SIGUSR1), 0);
  ra_timer keep;
  size_t n = 0;
  ra_timer_init(loop, &keep, count_cb, &n);
  ra_timer_start(&keep, 5000, 0);
  uint64_t start = mono_ms();
  assert_int_equal(ra_loop_run(loop), 0); /* stopped by the handler */
  assert_true(mono_ms() - start < 2000);
  assert_int_equal(s.got, 1);
  assert_int_equal(s.signo, SIGUSR1);
  ra_timer_stop(&keep);
  /* removing the handler unblocks the signal again */
  assert_int_equal(ra_loop_on_signal(loop, SIGUSR1, NULL, NULL), 0);
  sigset_t cur;
  sigprocmask(SIG_BLOCK, NULL, &cur);
  assert_false(sigismember(&cur, SIGUSR1));
  ra_loop_free(loop);
}

/* ---- run / stop ------------------------------------------------------------ */

static void stop_cb(ra_timer *t, void *ud) {
  (void)ud;
  ra_loop_stop(t->loop);
}

static void test_run_exits_and_stop(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  uint64_t start = mono_ms();
  assert_int_equal(ra_loop_run(loop), 0); /* nothing at all */
  assert_true(mono_ms() - start < 100);
  ra_timer a, b;
  size_t n = 0;
  ra_timer_init(loop, &a, stop_cb, NULL);
  ra_timer_init(loop, &b, count_cb, &n);
  ra_timer_start(&a, 5, 0);
  ra_timer_start(&b, 60000, 0);
  assert_int_equal(ra_loop_run(loop), 0); /* stopped although b is pending */
  assert_true(mono_ms() - start < 1000);
  assert_true(ra_timer_active(&b));
  ra_timer_stop(&b);
  assert_int_equal(ra_loop_run(loop), 0); /* the stop flag does not stick */
  uint64_t t0 = ra_loop_now(loop);
  usleep(3000);
  assert_int_equal(ra_loop_now(loop), t0); /* cached */
  assert_true(ra_loop_update_time(loop) >= t0 + 3);
  ra_loop_free(loop);
}

/* ---- ra_loop_free finishes what is deferred ----------------------------- */

/* A handle that frees itself from a deferred call, the way a closed stream
 * does: only ra_loop_free's run of the queue can release it. */
typedef struct selffree {
  ra_defer d;
  ra_loop *loop;
  int *freed;
  struct selffree *then; /* queued from this call: a second round */
} selffree;

static void selffree_cb(ra_defer *d, void *ud) {
  selffree *h = ud;
  (void)d;
  (*h->freed)++;
  if (h->then) ra_loop_defer(h->loop, &h->then->d);
  free(h);
}

static int forever_runs;
static void forever_cb(ra_defer *d, void *ud) {
  forever_runs++;
  ra_loop_defer(ud, d); /* never settles: ra_loop_free must give up */
}

static void test_free_runs_defers(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int freed = 0;
  selffree *second = calloc(1, sizeof *second);
  selffree *first = calloc(1, sizeof *first);
  assert_non_null(second);
  assert_non_null(first);
  second->freed = first->freed = &freed;
  first->loop = loop;
  ra_defer_init(&second->d, selffree_cb, second);
  ra_defer_init(&first->d, selffree_cb, first);
  first->then = second;
  ra_loop_defer(loop, &first->d);
  ra_loop_free(loop); /* no extra turns: ASan reports a leak if they were needed */
  assert_int_equal(freed, 2);

  /* a call that re-queues itself forever is cancelled after a bounded run */
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_defer d;
  ra_defer_init(&d, forever_cb, loop);
  ra_loop_defer(loop, &d);
  forever_runs = 0;
  ra_loop_free(loop);
  assert_true(forever_runs >= 1 && forever_runs <= 16);
  assert_false(d.queued);
  ra_loop_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timer_order),
      cmocka_unit_test(test_timer_repeat_stop_self),
      cmocka_unit_test(test_timer_stop_other_same_turn),
      cmocka_unit_test(test_timer_restart_zero_from_cb),
      cmocka_unit_test(test_timer_million),
      cmocka_unit_test(test_timer_unref),
      cmocka_unit_test(test_defer_fifo_cancel),
      cmocka_unit_test(test_unwatch_in_callback),
      cmocka_unit_test(test_watch_modify),
      cmocka_unit_test(test_signal),
      cmocka_unit_test(test_run_exits_and_stop),
      cmocka_unit_test(test_free_runs_defers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
