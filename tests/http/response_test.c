/* tests/http/response_test.c: the response's yielding contract
 * (http/response.h): a producer paced by ra_res_pending yields within one
 * turn even on a sink that discards everything, a producer that ignores it
 * gets -EAGAIN, and a HEAD answer is complete with its head (the producer
 * is told to stop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "raloop/core/loop.h"
#include "raloop/http/request.h"
#include "raloop/http/response.h"
#include "raloop/http/token.h"

/* A sink that discards every byte and never holds any. */
typedef struct sink {
  int heads, ends;
  uint64_t body_bytes;
} sink;

static int s_head(void *s, int status, const ra_header *h, size_t n, int64_t clen) {
  (void)status, (void)h, (void)n, (void)clen;
  ((sink *)s)->heads++;
  return 0;
}
static int s_body(void *s, const void *d, size_t n) {
  (void)d;
  ((sink *)s)->body_bytes += n;
  return 0;
}
static int s_end(void *s) {
  ((sink *)s)->ends++;
  return 0;
}
static size_t s_pending(void *s) {
  (void)s;
  return 0;
}
static const ra_res_sink_ops discard_ops = {
    .head = s_head, .body = s_body, .end = s_end, .pending = s_pending};

/* The pacing loop of ra-hello's /stream. */
#define WINDOW (64 * 1024)
typedef struct producer {
  uint64_t i, n;       /* chunks */
  uint64_t writes;     /* ra_res_write calls */
  uint64_t max_turn;   /* most bytes taken in one call of more() */
  int drains, cancels, ended;
  int last_err;
} producer;

static void more(ra_res *res, void *ud) {
  producer *p = ud;
  char chunk[64];
  memset(chunk, 'x', sizeof chunk);
  uint64_t took = 0;
  while (p->i < p->n && ra_res_pending(res) < WINDOW) {
    p->writes++;
    int rc = ra_res_write(res, chunk, sizeof chunk);
    if (rc < 0) {
      p->last_err = rc;
      break;
    }
    took += sizeof chunk;
    p->i++;
  }
  if (took > p->max_turn) p->max_turn = took;
  if (p->i >= p->n) {
    p->ended++;
    ra_res_end(res);
  }
}

static void on_drain(ra_res *res, void *ud) {
  ((producer *)ud)->drains++;
  more(res, ud);
}

static void on_cancel(ra_res *res, void *ud) {
  ((producer *)ud)->cancels++;
  ((producer *)ud)->ended++;
  ra_res_end(res);
}

static ra_res *start(ra_loop *loop, const char *method, sink *sk, producer *p, uint64_t n) {
  memset(sk, 0, sizeof *sk);
  memset(p, 0, sizeof *p);
  p->n = n;
  ra_req *req;
  assert_int_equal(ra_req_new(ra_str_cstr(method), RA_STR("/stream"), 11, false, &req), 0);
  ra_res *res;
  assert_int_equal(ra_res_new(loop, req, &discard_ops, sk, &res), 0);
  ra_res_on_cancel(res, on_cancel, p);
  ra_res_on_drain(res, on_drain, p);
  return res;
}

static int ticks; /* timer runs while the producer was still producing */
static void on_tick(ra_timer *t, void *ud) {
  (void)t;
  if (!((producer *)ud)->ended) ticks++;
}

/* A sink that discards everything: the producer still yields every
 * RA_RES_TURN_BUDGET bytes, on_drain brings it back on a later turn, and a
 * timer gets to run in between. Without the budget the first call writes
 * all 4 MiB in one go. */
static void test_discard_sink_yields(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  sink sk;
  producer p;
  uint64_t n = 4 * 1024 * 1024 / 64;
  ra_res *res = start(loop, "GET", &sk, &p, n);
  more(res, &p);
  assert_int_equal(sk.heads, 1);
  assert_true(sk.body_bytes <= RA_RES_TURN_BUDGET + 64);
  assert_true(p.i < n);
  assert_true(ra_res_pending(res) >= WINDOW);
  ra_timer tick;
  ra_timer_init(loop, &tick, on_tick, &p);
  ra_timer_start(&tick, 0, 1);
  ticks = 0;
  for (int i = 0; i < 200 && !p.ended; i++) ra_loop_run_once(loop, 10);
  assert_int_equal(p.ended, 1);
  assert_int_equal(sk.ends, 1);
  assert_int_equal(sk.body_bytes, n * 64);
  assert_true(p.max_turn <= RA_RES_TURN_BUDGET + 64);
  assert_true(p.drains >= (int)(n * 64 / RA_RES_TURN_BUDGET) - 1);
  assert_true(ticks >= 1); /* the loop ran a timer in between */
  assert_int_equal(p.cancels, 0);
  ra_timer_stop(&tick);
  ra_loop_free(loop);
}

/* A producer that ignores ra_res_pending: -EAGAIN past RA_RES_TURN_MAX in
 * one turn; the next turn takes more again. */
static void test_ignoring_producer_gets_eagain(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  sink sk;
  producer p;
  ra_res *res = start(loop, "GET", &sk, &p, 1);
  ra_res_on_drain(res, NULL, NULL);
  static char big[64 * 1024];
  int rc = 0;
  size_t calls = 0;
  while ((rc = ra_res_write(res, big, sizeof big)) == 0) calls++;
  assert_int_equal(rc, -EAGAIN);
  assert_int_equal(sk.body_bytes, RA_RES_TURN_MAX);
  assert_int_equal(calls * sizeof big, RA_RES_TURN_MAX);
  ra_loop_run_once(loop, 0);
  assert_int_equal(ra_res_write(res, big, sizeof big), 0);
  /* One write is never refused for its size alone. */
  ra_loop_run_once(loop, 0);
  static char huge[RA_RES_TURN_MAX + 1];
  assert_int_equal(ra_res_write(res, huge, sizeof huge), 0);
  assert_int_equal(ra_res_end(res), 0);
  assert_int_equal(sk.ends, 1);
  ra_loop_free(loop);
}

/* HEAD of a huge streamed answer: complete with its head. The first write
 * sends the head and the transport's end; later writes are refused at once
 * and on_cancel (from the loop, not inside a write) stops the producer.
 * Without it the producer "writes" all 10^8 chunks into the void. */
static void test_head_streamed_ends(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  sink sk;
  producer p;
  ra_res *res = start(loop, "HEAD", &sk, &p, 100000000);
  more(res, &p);
  assert_int_equal(sk.heads, 1);
  assert_int_equal(sk.ends, 1); /* the transport is done at once */
  assert_int_equal(sk.body_bytes, 0);
  assert_true(p.writes <= 2);
  assert_true(ra_res_cancelled(res));
  assert_true(ra_res_pending(res) >= WINDOW);
  assert_int_equal(ra_res_write(res, "x", 1), -ECANCELED);
  assert_int_equal(p.cancels, 0); /* never inside a write */
  for (int i = 0; i < 4 && !p.ended; i++) ra_loop_run_once(loop, 0);
  assert_int_equal(p.cancels, 1);
  assert_int_equal(p.ended, 1);
  assert_int_equal(sk.ends, 1);
  ra_loop_free(loop);
}

/* HEAD answered with ra_res_send: success, one head, one end, no callback. */
static void test_head_send(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  sink sk;
  producer p;
  ra_res *res = start(loop, "HEAD", &sk, &p, 1);
  assert_int_equal(ra_res_send(res, 200, "text/plain", "hello", 5), 0);
  assert_int_equal(sk.heads, 1);
  assert_int_equal(sk.ends, 1);
  assert_int_equal(sk.body_bytes, 0);
  ra_loop_run_once(loop, 0);
  assert_int_equal(p.cancels, 0);
  /* and a bodiless end */
  res = start(loop, "HEAD", &sk, &p, 1);
  ra_res_set_status(res, 204);
  assert_int_equal(ra_res_end(res), 0);
  assert_int_equal(sk.heads, 1);
  assert_int_equal(sk.ends, 1);
  ra_loop_run_once(loop, 0);
  assert_int_equal(p.cancels, 0);
  ra_loop_free(loop);
}

/* Header names: the token table (token.c) agrees with ra_http_tchar on
 * every byte, and the response refuses what is not a token. */
static void test_header_tokens(void **state) {
  (void)state;
  for (unsigned c = 0; c < 256; c++) {
    char b[3] = {'x', (char)c, 'y'};
    assert_int_equal(ra_http_token_valid(ra_str_make(b, 3)), ra_http_tchar((unsigned char)c));
    assert_int_equal(ra_http_token_valid(ra_str_make(b + 1, 1)), ra_http_tchar((unsigned char)c));
  }
  assert_true(ra_http_token_valid(RA_STR("Content-Type")));
  assert_true(ra_http_token_valid(RA_STR("!#$%&'*+-.^_`|~09AZaz")));
  assert_false(ra_http_token_valid(RA_STR("")));
  assert_false(ra_http_token_valid(RA_STR("a b")));
  assert_false(ra_http_token_valid(RA_STR("a:b")));
  assert_false(ra_http_token_valid(ra_str_make("a\0b", 3)));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_discard_sink_yields),
      cmocka_unit_test(test_ignoring_producer_gets_eagain),
      cmocka_unit_test(test_head_streamed_ends),
      cmocka_unit_test(test_head_send),
      cmocka_unit_test(test_header_tokens),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
