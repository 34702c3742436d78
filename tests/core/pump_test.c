/* tests/core/pump_test.c: the byte pump between socketpairs and loopback
 * TCP, driven by two test endpoints on the same loop: bytes exact both ways
 * (splice and read/write), half-close each way, back-pressure with bounded
 * memory, idle timeout, errors, free before the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/loop.h"
#include "raloop/core/pump.h"

/* The pattern: byte i of a stream with seed s is T[(i + s) % P]; T is
 * doubled so that any window of up to P bytes is contiguous (memcpy and
 * memcmp instead of a byte loop: fast under ASan too). */
#define P 65521u
static uint8_t T[2 * P];
static const uint8_t *pat_at(uint64_t i, unsigned seed) {
  if (!T[1]) /* the first call fills the table */
    for (uint32_t k = 0; k < 2 * P; k++) T[k] = (uint8_t)(((k % P) * 2654435761u) >> 11) | 1u;
  return T + (i + seed) % P;
}

/* A test endpoint: sends tx_total pattern bytes (then shuts down its write
 * side if shut_after), checks what it receives against the peer's pattern. */
typedef struct ep {
  ra_loop *loop;
  int fd;
  unsigned seed, peer_seed;
  uint64_t tx_total, tx, rx;
  bool shut_after, shut, eof, reading, bad;
  int rx_err;
} ep;

static void ep_io(ra_loop *loop, int fd, unsigned events, void *ud);

static void ep_update(ep *e) {
  if (e->fd < 0) return;
  if (e->tx == e->tx_total && e->shut_after && !e->shut) {
    shutdown(e->fd, SHUT_WR);
    e->shut = true;
  }
  unsigned ev = (e->reading && !e->eof ? RA_READABLE : 0u) | (e->tx < e->tx_total ? RA_WRITABLE : 0u);
  if (ev) ra_loop_watch(e->loop, e->fd, ev, ep_io, e);
  else ra_loop_unwatch(e->loop, e->fd);
}

static void ep_io(ra_loop *loop, int fd, unsigned events, void *ud) {
  ep *e = ud;
  uint8_t buf[P];
  if ((events & (RA_WRITABLE | RA_ERROR)) && e->tx < e->tx_total) {
    size_t n = e->tx_total - e->tx > P ? P : (size_t)(e->tx_total - e->tx);
    ssize_t w = send(fd, pat_at(e->tx, e->seed), n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) e->tx += (uint64_t)w;
  }
  if (e->tx == e->tx_total && e->shut_after && !e->shut) {
    shutdown(fd, SHUT_WR);
    e->shut = true;
  }
  if ((events & (RA_READABLE | RA_ERROR)) && e->reading && !e->eof) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) e->eof = true;
    else if (n < 0 && errno != EAGAIN) {
      e->rx_err = -errno;
      e->eof = true;
    }
    if (n > 0 && memcmp(buf, pat_at(e->rx, e->peer_seed), (size_t)n) != 0) e->bad = true;
    if (n > 0) e->rx += (uint64_t)n;
  }
  ep_update(e);
}

typedef struct done_rec {
  int calls, err;
  uint64_t ab, ba;
  bool spliced;
} done_rec;

static void on_done(ra_pump *p, int err, void *ud) {
  done_rec *d = ud;
  d->calls++;
  d->err = err;
  d->ab = ra_pump_bytes(p, RA_PUMP_A_TO_B);
  d->ba = ra_pump_bytes(p, RA_PUMP_B_TO_A);
  d->spliced = ra_pump_spliced(p, RA_PUMP_A_TO_B) && ra_pump_spliced(p, RA_PUMP_B_TO_A);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs the loop until cond or timeout. */
#define RUN_UNTIL(loop, cond, ms)                                         \
  do {                                                                    \
    uint64_t t0_ = mono_ms();                                             \
    while (!(cond) && mono_ms() - t0_ < (ms)) ra_loop_run_once(loop, 20); \
  } while (0)

/* Two pairs: [outer_a | pump a] and [pump b | outer_b]. */
static void pairs(int family, int outer[2], int inner[2]) {
  if (family == AF_UNIX) {
    int p[2], q[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, q), 0);
    outer[0] = p[0];
    inner[0] = p[1];
    inner[1] = q[0];
    outer[1] = q[1];
    return;
  }
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(l, 4), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
  for (int i = 0; i < 2; i++) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    assert_true(s >= 0);
    fcntl(c, F_SETFL, O_NONBLOCK);
    outer[i] = c;
    inner[i] = s;
  }
  close(l);
}

static void both_ways(int family, bool no_splice, uint64_t a_bytes, uint64_t b_bytes) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int outer[2], inner[2];
  pairs(family, outer, inner);
  done_rec d = {0};
  ra_pump_opts o = {.no_splice = no_splice};
  ra_pump *p;
  assert_int_equal(ra_pump_new(loop, inner[0], inner[1], &o, on_done, &d, &p), 0);
  ep a = {.loop = loop, .fd = outer[0], .seed = 1, .peer_seed = 2, .tx_total = a_bytes, .shut_after = true, .reading = true};
  ep b = {.loop = loop, .fd = outer[1], .seed = 2, .peer_seed = 1, .tx_total = b_bytes, .shut_after = true, .reading = true};
  ep_update(&a);
  ep_update(&b);
  RUN_UNTIL(loop, a.eof && b.eof && d.calls, 20000);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.err, 0);
  assert_true(a.eof && b.eof);
  assert_false(a.bad || b.bad);
  assert_int_equal(b.rx, a_bytes);
  assert_int_equal(a.rx, b_bytes);
  assert_int_equal(d.ab, a_bytes);
  assert_int_equal(d.ba, b_bytes);
  assert_int_equal(d.spliced, !no_splice);
  ra_loop_unwatch(loop, outer[0]);
  ra_loop_unwatch(loop, outer[1]);
  close(outer[0]);
  close(outer[1]);
  ra_loop_free(loop);
}

static void test_unix_splice(void **s) { both_ways(AF_UNIX, false, 3u << 20, 2u << 20); }
static void test_unix_readwrite(void **s) { both_ways(AF_UNIX, true, 3u << 20, 2u << 20); }
static void test_tcp_splice(void **s) { both_ways(AF_INET, false, 4u << 20, 3u << 20); }
static void test_tcp_readwrite(void **s) { both_ways(AF_INET, true, 3u << 20, 1u << 20); }
static void test_empty(void **s) { both_ways(AF_INET, false, 0, 0); }

/* a closes its write side early: b sees EOF, b's bytes still reach a, and
 * the pump ends only when b closes too. */
static void half_close(bool no_splice) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int outer[2], inner[2];
  pairs(AF_INET, outer, inner);
  done_rec d = {0};
  ra_pump_opts o = {.no_splice = no_splice};
  ra_pump *p;
  assert_int_equal(ra_pump_new(loop, inner[0], inner[1], &o, on_done, &d, &p), 0);
  ep a = {.loop = loop, .fd = outer[0], .seed = 3, .peer_seed = 4, .tx_total = 1000, .shut_after = true, .reading = true};
  ep b = {.loop = loop, .fd = outer[1], .seed = 4, .peer_seed = 3, .tx_total = 0, .reading = true};
  ep_update(&a);
  ep_update(&b);
  RUN_UNTIL(loop, b.eof, 5000);
  assert_true(b.eof);
  assert_int_equal(b.rx, 1000);
  /* Now b talks back over the half-closed connection. */
  b.tx_total = 3u << 20;
  b.shut_after = true;
  ep_update(&b);
  RUN_UNTIL(loop, a.eof && d.calls, 10000);
  assert_false(a.bad || b.bad);
  assert_int_equal(a.rx, 3u << 20);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.err, 0);
  close(outer[0]);
  close(outer[1]);
  ra_loop_free(loop);
}
static void test_half_close_splice(void **s) { half_close(false); }
static void test_half_close_readwrite(void **s) { half_close(true); }

static size_t heap_used(void) { return mallinfo2().uordblks; }

/* b never reads: a's writes must stop (the pump stops reading a), and the
 * heap must not grow with what a pushes; once b reads, everything arrives. */
static void back_pressure(bool no_splice) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int outer[2], inner[2];
  pairs(AF_INET, outer, inner);
  done_rec d = {0};
  ra_pump_opts o = {.no_splice = no_splice, .buffer = 16384};
  ra_pump *p;
  assert_int_equal(ra_pump_new(loop, inner[0], inner[1], &o, on_done, &d, &p), 0);
  uint64_t total = 24u << 20; /* more than loopback's socket buffers take */
  ep a = {.loop = loop, .fd = outer[0], .seed = 5, .peer_seed = 6, .tx_total = total, .shut_after = true, .reading = true};
  ep b = {.loop = loop, .fd = outer[1], .seed = 6, .peer_seed = 5, .shut_after = true, .reading = false};
  ep_update(&a);
  ep_update(&b);
  size_t heap0 = heap_used();
  /* Until a's sends stall for a while. */
  uint64_t last = 0, t_still = mono_ms();
  while (mono_ms() - t_still < 300) {
    ra_loop_run_once(loop, 20);
    if (a.tx != last) {
      last = a.tx;
      t_still = mono_ms();
    }
  }
  assert_true(a.tx < total);
  /* What left a is in the kernel buffers and at most one buffer in the pump. */
  assert_true(d.ab <= a.tx);
  size_t heap1 = heap_used();
  assert_true(heap1 < heap0 + 64 * 1024);
  b.reading = true;
  ep_update(&b);
  RUN_UNTIL(loop, b.eof && a.eof && d.calls, 30000);
  assert_int_equal(b.rx, total);
  assert_false(b.bad);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.err, 0);
  close(outer[0]);
  close(outer[1]);
  ra_loop_free(loop);
}
static void test_back_pressure_splice(void **s) { back_pressure(false); }
static void test_back_pressure_readwrite(void **s) { back_pressure(true); }

static void test_idle_timeout(void **s) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int outer[2], inner[2];
  pairs(AF_UNIX, outer, inner);
  done_rec d = {0};
  ra_pump_opts o = {.idle_timeout_ms = 150};
  ra_pump *p;
  assert_int_equal(ra_pump_new(loop, inner[0], inner[1], &o, on_done, &d, &p), 0);
  ep a = {.loop = loop, .fd = outer[0], .seed = 7, .peer_seed = 8, .reading = true};
  ep b = {.loop = loop, .fd = outer[1], .seed = 8, .peer_seed = 7, .reading = true};
  ep_update(&a);
  ep_update(&b);
  /* Traffic every 50 ms keeps it open past the timeout... */
  uint64_t t0 = mono_ms();
  for (int i = 0; i < 8; i++) {
    a.tx_total += 10;
    ep_update(&a);
    RUN_UNTIL(loop, false, 50);
  }
  assert_int_equal(d.calls, 0);
  assert_int_equal(b.rx, 80);
  /* ...silence ends it, and both sides see the close. */
  RUN_UNTIL(loop, d.calls && a.eof && b.eof, 3000);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.err, -ETIMEDOUT);
  assert_true(mono_ms() - t0 >= 400 + 150);
  assert_true(a.eof && b.eof);
  close(outer[0]);
  close(outer[1]);
  ra_loop_free(loop);
}

/* b goes away entirely while a keeps sending: the pump ends with an error
 * and a sees its connection closed. */
static void test_peer_gone(void **s) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int outer[2], inner[2];
  pairs(AF_INET, outer, inner);
  done_rec d = {0};
  ra_pump *p;
  assert_int_equal(ra_pump_new(loop, inner[0], inner[1], NULL, on_done, &d, &p), 0);
  ep a = {.loop = loop, .fd = outer[0], .seed = 9, .peer_seed = 10, .tx_total = 32u << 20, .reading = true};
  ep_update(&a);
  RUN_UNTIL(loop, a.tx > (1u << 20), 5000);
  struct linger lg = {1, 0}; /* RST */
  setsockopt(outer[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(outer[1]);
  RUN_UNTIL(loop, d.calls && a.eof, 5000);
  assert_int_equal(d.calls, 1);
  assert_true(d.err < 0);
  assert_true(a.eof);
  close(outer[0]);
  ra_loop_free(loop);
}

/* ra_pump_free closes both fds, no callback. */
static void test_pump_free(void **s) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int outer[2], inner[2];
  pairs(AF_UNIX, outer, inner);
  done_rec d = {0};
  ra_pump *p;
  assert_int_equal(ra_pump_new(loop, inner[0], inner[1], NULL, on_done, &d, &p), 0);
  ep a = {.loop = loop, .fd = outer[0], .seed = 1, .peer_seed = 2, .tx_total = 100, .reading = true};
  ep b = {.loop = loop, .fd = outer[1], .seed = 2, .peer_seed = 1, .reading = true};
  ep_update(&a);
  ep_update(&b);
  RUN_UNTIL(loop, b.rx == 100, 3000);
  ra_pump_free(p);
  RUN_UNTIL(loop, a.eof && b.eof, 3000);
  assert_true(a.eof && b.eof);
  assert_int_equal(d.calls, 0);
  close(outer[0]);
  close(outer[1]);
  ra_loop_free(loop);
}

static void test_bad_args(void **s) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int sp[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
  ra_pump *p = (ra_pump *)1;
  assert_int_equal(ra_pump_new(loop, sp[0], -1, NULL, on_done, NULL, &p), -EINVAL);
  assert_null(p);
  /* sp[0] was taken (closed) even though the call failed. */
  assert_int_equal(fcntl(sp[0], F_GETFD), -1);
  close(sp[1]);
  ra_pump_free(NULL);
  ra_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unix_splice),
      cmocka_unit_test(test_unix_readwrite),
      cmocka_unit_test(test_tcp_splice),
      cmocka_unit_test(test_tcp_readwrite),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_half_close_splice),
      cmocka_unit_test(test_half_close_readwrite),
      cmocka_unit_test(test_back_pressure_splice),
      cmocka_unit_test(test_back_pressure_readwrite),
      cmocka_unit_test(test_idle_timeout),
      cmocka_unit_test(test_peer_gone),
      cmocka_unit_test(test_pump_free),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
