/* tests/attest/tunnel/server_rotate_test.c: key rotation with the provider
 * off the loop (ra_tunnel_server_rotate_start, core/work.h), with a
 * provider that takes its time (the simulated TEE behind a delay). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/tunnel/server.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/http/router.h"
#include "tests/attest/tunnel/slow_provider.h"

/* The sim provider behind a delay, failing on demand; counts its calls
 * and notes the thread they came from. */

typedef struct fx {
  char dir[64];
  ra_loop *loop;
  ra_router *router;
  ra_tunnel_server *ts;
  slow *prov;
  ra_timer tick;
  int ticks, done_calls, done_status, ticks_at_done;
} fx;

static void on_tick(ra_timer *t, void *ud) {
  (void)t;
  ((fx *)ud)->ticks++;
}

static int setup(void **st) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/ra-rotate-test-XXXXXX");
  if (!f || !mkdtemp(f->dir)) return -1;
  char sim[128];
  snprintf(sim, sizeof sim, "%s/sim", f->dir);
  ra_log_set_level(RA_LOG_OFF);
  assert_int_equal(ra_loop_new(&f->loop), 0);
  assert_int_equal(ra_router_new(&f->router), 0);
  ra_quote_provider *p;
  assert_int_equal(slow_provider_new(sim, 0, &f->prov, &p), 0);
  ra_tunnel_server_opts o = {.adopt_provider = true};
  assert_int_equal(ra_tunnel_server_new(f->loop, f->router, p, &o, &f->ts), 0);
  ra_timer_init(f->loop, &f->tick, on_tick, f);
  ra_timer_unref(&f->tick);
  ra_timer_start(&f->tick, 10, 10);
  f->prov->delay_ms = 300; /* from now on: the start-up key came at once */
  *st = f;
  return 0;
}

static int teardown(void **st) {
  fx *f = *st;
  ra_timer_stop(&f->tick);
  ra_tunnel_server_free(f->ts); /* waits for a rotation under way */
  ra_router_free(f->router);
  ra_loop_free(f->loop);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->dir);
  free(f);
  return 0;
}

static void on_rotated(ra_tunnel_server *ts, int status, void *ud) {
  fx *f = ud;
  assert_ptr_equal(ts, f->ts);
  f->done_calls++;
  f->done_status = status;
  f->ticks_at_done = f->ticks;
}

static void run_until_done(fx *f) {
  for (int i = 0; i < 400 && !f->done_calls; i++) assert_true(ra_loop_run_once(f->loop, 50) >= 0);
  assert_int_equal(f->done_calls, 1);
}

/* The provider's 300 ms pass on its own thread: the loop's timer keeps
 * firing, the old key serves until the new one is in, then the switch. */
static void test_rotation_keeps_the_loop_turning(void **state) {
  fx *f = *state;
  uint8_t before[32];
  memcpy(before, ra_tunnel_server_public_key(f->ts), 32);
  assert_int_equal(ra_tunnel_server_rotate_start(f->ts, on_rotated, f), 0);
  assert_int_equal(f->done_calls, 0); /* never inside the call */
  assert_memory_equal(ra_tunnel_server_public_key(f->ts), before, 32); /* not yet */
  run_until_done(f);
  assert_int_equal(f->done_status, 0);
  assert_true(f->ticks_at_done >= 15);
  assert_false(pthread_equal(f->prov->last_thread, pthread_self()));
  assert_memory_not_equal(ra_tunnel_server_public_key(f->ts), before, 32);
  ra_tunnel_stats st;
  ra_tunnel_server_stats(f->ts, &st);
  assert_int_equal(st.rotations, 1);
  assert_int_equal(st.rotations_failed, 0);
}

/* One rotation at a time: a second start, or the blocking call, meanwhile
 * is refused with -EALREADY and changes nothing. */
static void test_one_rotation_at_a_time(void **state) {
  fx *f = *state;
  assert_int_equal(ra_tunnel_server_rotate_start(f->ts, on_rotated, f), 0);
  assert_int_equal(ra_tunnel_server_rotate_start(f->ts, on_rotated, f), -EALREADY);
  assert_int_equal(ra_tunnel_server_rotate(f->ts), -EALREADY);
  run_until_done(f);
  assert_int_equal(atomic_load(&f->prov->calls), 2); /* start-up and this one */
  f->prov->delay_ms = 0;
  assert_int_equal(ra_tunnel_server_rotate(f->ts), 0); /* free again */
}

/* A provider failure: the current key stays, the failure is counted. */
static void test_failed_rotation_keeps_the_key(void **state) {
  fx *f = *state;
  uint8_t before[32];
  memcpy(before, ra_tunnel_server_public_key(f->ts), 32);
  atomic_store(&f->prov->fail, 1);
  assert_int_equal(ra_tunnel_server_rotate_start(f->ts, on_rotated, f), 0);
  run_until_done(f);
  assert_int_equal(f->done_status, -EIO);
  assert_memory_equal(ra_tunnel_server_public_key(f->ts), before, 32);
  ra_tunnel_stats st;
  ra_tunnel_server_stats(f->ts, &st);
  assert_int_equal(st.rotations, 0);
  assert_int_equal(st.rotations_failed, 1);
}

/* Freed while the provider works: free waits for the provider's call to
 * return before freeing the (adopted) provider, the callback never runs,
 * nothing leaks (ASan). */
static void test_free_during_rotation(void **state) {
  fx *f = *state;
  int unfinished = -1;
  f->prov->unfinished_at_free = &unfinished;
  assert_int_equal(ra_tunnel_server_rotate_start(f->ts, on_rotated, f), 0);
  for (int i = 0; i < 200 && atomic_load(&f->prov->calls) < 2; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(atomic_load(&f->prov->calls), 2); /* start-up's and this one, under way */
  assert_int_equal(atomic_load(&f->prov->finished), 1);
  ra_tunnel_server_free(f->ts);
  f->ts = NULL;
  assert_int_equal(unfinished, 0); /* the call had returned when the provider went */
  for (int i = 0; i < 10; i++) ra_loop_run_once(f->loop, 50);
  assert_int_equal(f->done_calls, 0);
}

/* The key's lifetime runs out: the scheduled rotation takes the same
 * path (the loop keeps turning through the provider's delay). */
static void test_scheduled_rotation_off_the_loop(void **state) {
  fx *f = *state;
  uint8_t before[32];
  memcpy(before, ra_tunnel_server_public_key(f->ts), 32);
  assert_int_equal(ra_tunnel_server_set_key_lifetime(f->ts, 50, 1000), 0);
  int ticks0 = f->ticks;
  ra_tunnel_stats st = {0};
  for (int i = 0; i < 400 && st.rotations == 0; i++) {
    assert_true(ra_loop_run_once(f->loop, 50) >= 0);
    ra_tunnel_server_stats(f->ts, &st);
  }
  assert_int_equal(st.rotations, 1);
  assert_true(f->ticks - ticks0 >= 20); /* ~50 ms lifetime + 300 ms provider */
  assert_memory_not_equal(ra_tunnel_server_public_key(f->ts), before, 32);
  assert_false(pthread_equal(f->prov->last_thread, pthread_self()));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_rotation_keeps_the_loop_turning, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_rotation_at_a_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_rotation_keeps_the_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_during_rotation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scheduled_rotation_off_the_loop, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
