/* tests/core/resolve_test.c: host names resolved off the loop's thread
 * (core/resolve.c) and connects to names through it (core/stream.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/error.h"
#include "raloop/core/listen.h"
#include "raloop/core/resolve_internal.h"
#include "raloop/core/stream.h"

typedef struct fx {
  ra_loop *loop;
  ra_listener *l;
  ra_timer tick, guard;
  int ticks, accepted, connected, status, answers, err;
  ra_stream *cli;
  struct addrinfo *list;
} fx;

static void on_tick(ra_timer *t, void *ud) {
  (void)t;
  ((fx *)ud)->ticks++;
}
static void on_guard(ra_timer *t, void *ud) {
  (void)t;
  (void)ud;
  fail_msg("the test did not finish in time");
}
static void on_accept(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *ud) {
  (void)l, (void)peer, (void)len;
  ((fx *)ud)->accepted++;
  close(fd);
}
static void on_connected(ra_stream *s, int status, void *ud) {
  fx *f = ud;
  f->connected++;
  f->status = status;
  f->cli = s;
  if (s) ra_stream_abort(s, 0);
}
static void on_answer(struct addrinfo *list, int err, void *ud) {
  fx *f = ud;
  f->answers++;
  f->err = err;
  f->list = list;
}

static void fx_open(fx *f, unsigned delay_ms) {
  memset(f, 0, sizeof *f);
  ra_resolve__test_delay_ms = delay_ms;
  assert_int_equal(ra_loop_new(&f->loop), 0);
  ra_timer_init(f->loop, &f->guard, on_guard, f);
  ra_timer_unref(&f->guard);
  ra_timer_start(&f->guard, 30000, 0);
  ra_timer_init(f->loop, &f->tick, on_tick, f);
  ra_timer_unref(&f->tick);
  assert_int_equal(ra_listen(f->loop, "127.0.0.1:0", NULL, on_accept, f, &f->l), 0);
}

static void fx_close(fx *f) {
  ra_resolve__test_delay_ms = 0;
  if (f->list) freeaddrinfo(f->list);
  ra_listener_close(f->l);
  ra_timer_stop(&f->guard);
  ra_timer_stop(&f->tick);
  assert_int_equal(ra_loop_run(f->loop), 0);
  ra_loop_free(f->loop);
}

/* A name resolves on the resolver's thread: the loop keeps turning (its
 * timer fires) while the thread waits, and the connect completes after. */
static void test_connect_to_name_does_not_stall_the_loop(void **state) {
  (void)state;
  fx f;
  fx_open(&f, 300);
  ra_timer_start(&f.tick, 10, 10);
  assert_int_equal(ra_stream_connect(f.loop, "localhost", ra_listener_port(f.l), NULL, on_connected, &f), 0);
  assert_int_equal(f.connected, 0); /* never from inside connect */
  while (!f.connected) assert_true(ra_loop_run_once(f.loop, 1000) >= 0);
  assert_int_equal(f.status, 0);
  assert_true(f.ticks >= 10); /* the loop ran through the 300 ms the name took */
  while (!f.accepted) assert_true(ra_loop_run_once(f.loop, 1000) >= 0);
  fx_close(&f);
}

/* Numeric addresses never go to the thread: with the thread's delay set
 * beyond the guard, a connect to 127.0.0.1 still completes at once. */
static void test_numeric_address_resolves_inline(void **state) {
  (void)state;
  fx f;
  fx_open(&f, 60000);
  assert_int_equal(ra_stream_connect(f.loop, "127.0.0.1", ra_listener_port(f.l), NULL, on_connected, &f), 0);
  while (!f.connected) assert_true(ra_loop_run_once(f.loop, 1000) >= 0);
  assert_int_equal(f.status, 0);
  fx_close(&f);
}

/* A name that does not resolve fails through on_connect, from the loop. */
static void test_unknown_name_fails_through_on_connect(void **state) {
  (void)state;
  fx f;
  fx_open(&f, 0);
  assert_int_equal(ra_stream_connect(f.loop, "no-such-host.invalid", 80, NULL, on_connected, &f), 0);
  assert_int_equal(f.connected, 0);
  while (!f.connected) assert_true(ra_loop_run_once(f.loop, 1000) >= 0);
  assert_int_equal(f.status, RA_ERR_HOST_UNKNOWN);
  assert_null(f.cli);
  fx_close(&f);
}

/* The resolver on its own: the list is the callee's; bad arguments are
 * refused before any thread starts. */
static void test_resolve_hands_over_the_list(void **state) {
  (void)state;
  fx f;
  fx_open(&f, 0);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  assert_int_equal(ra_resolve_start(f.loop, "localhost", "8080", &hints, on_answer, &f), 0);
  assert_int_equal(f.answers, 0);
  while (!f.answers) assert_true(ra_loop_run_once(f.loop, 1000) >= 0);
  assert_int_equal(f.err, 0);
  assert_non_null(f.list);
  const struct sockaddr_in *sin = (const struct sockaddr_in *)f.list->ai_addr;
  assert_int_equal(sin->sin_family, AF_INET);
  assert_int_equal(ntohs(sin->sin_port), 8080);
  assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
  char big[300];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(ra_resolve_start(f.loop, big, "80", &hints, on_answer, &f), -EINVAL);
  assert_int_equal(ra_resolve_start(f.loop, "", "80", &hints, on_answer, &f), -EINVAL);
  assert_int_equal(ra_resolve_start(f.loop, "localhost", "80", &hints, NULL, &f), -EINVAL);
  assert_int_equal(f.answers, 1);
  fx_close(&f);
}

/* getaddrinfo's codes as errnos. */
static void test_resolve_error_codes(void **state) {
  (void)state;
  assert_int_equal(ra_resolve_error(0, 0), 0);
  assert_int_equal(ra_resolve_error(EAI_NONAME, 0), RA_ERR_HOST_UNKNOWN);
  assert_int_equal(ra_resolve_error(EAI_AGAIN, 0), RA_ERR_HOST_UNKNOWN);
  assert_int_equal(ra_resolve_error(EAI_MEMORY, 0), -ENOMEM);
  assert_int_equal(ra_resolve_error(EAI_SYSTEM, EMFILE), -EMFILE);
  assert_int_equal(ra_resolve_error(EAI_SYSTEM, 0), -EIO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_to_name_does_not_stall_the_loop),
      cmocka_unit_test(test_numeric_address_resolves_inline),
      cmocka_unit_test(test_unknown_name_fails_through_on_connect),
      cmocka_unit_test(test_resolve_hands_over_the_list),
      cmocka_unit_test(test_resolve_error_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
