/* tests/core/stream_test.c: streams over socketpairs and loopback TCP. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
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

#include "raloop/core/listen.h"
#include "raloop/core/stream.h"

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* What the callbacks saw. */
typedef struct ctx {
  ra_loop *loop;
  ra_stream *s;
  uint8_t in[1 << 16];
  size_t in_len;
  size_t consume_max; /* on_read consumes at most this much (0: all) */
  int reads;
  int drains;
  int eofs;
  int closes;
  int close_err;
  int close_on_eof;
  int pause_after_first; /* pause reading in the first on_read */
  size_t eof_in_len;     /* in_len when on_eof came */
  ra_timer guard;
} ctx;

static size_t c_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  ctx *c = ud;
  assert_ptr_equal(s, c->s);
  c->reads++;
  size_t take = c->consume_max && n > c->consume_max ? c->consume_max : n;
  assert_true(c->in_len + take <= sizeof c->in);
  memcpy(c->in + c->in_len, d, take);
  c->in_len += take;
  if (c->pause_after_first && c->reads == 1) ra_stream_pause_read(s);
  return take;
}
static void c_drain(ra_stream *s, void *ud) {
  (void)s;
  ((ctx *)ud)->drains++;
}
static void c_eof(ra_stream *s, void *ud) {
  ctx *c = ud;
  c->eofs++;
  c->eof_in_len = c->in_len;
  if (c->close_on_eof) ra_stream_close(s);
}
static void c_close(ra_stream *s, int err, void *ud) {
  ctx *c = ud;
  assert_ptr_equal(s, c->s);
  c->closes++;
  c->close_err = err;
}
static const ra_stream_cbs all_cbs = {c_read, c_drain, c_eof, c_close};

static void on_guard(ra_timer *t, void *ud) {
  (void)t;
  (void)ud;
  fail_msg("test timed out");
}

/* A loop and a stream on one end of a socketpair; *peer is the other end,
 * non-blocking, driven by the test directly. */
static void setup_pair(ctx *c, int *peer, const ra_stream_cbs *cbs) {
  memset(c, 0, sizeof *c);
  assert_int_equal(ra_loop_new(&c->loop), 0);
  assert_non_null(c->loop);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(ra_stream_new(c->loop, sv[0], cbs ? cbs : &all_cbs, c, &c->s), 0);
  assert_non_null(c->s);
  assert_int_equal(ra_stream_fd(c->s), sv[0]);
  assert_ptr_equal(ra_stream_loop(c->s), c->loop);
  assert_ptr_equal(ra_stream_userdata(c->s), c);
  *peer = sv[1];
  ra_timer_init(c->loop, &c->guard, on_guard, c);
  ra_timer_unref(&c->guard);
  ra_timer_start(&c->guard, 10000, 0);
}

static void teardown(ctx *c) {
  ra_timer_stop(&c->guard);
  assert_int_equal(ra_loop_run(c->loop), 0);
  ra_loop_free(c->loop);
}

static void run_until(ctx *c, int *flag, int value) {
  while (*flag < value) assert_true(ra_loop_run_once(c->loop, 1000) >= 0);
}

/* Reads everything currently available from fd (non-blocking). */
static size_t drain_fd(int fd, uint8_t *out, size_t cap) {
  size_t got = 0;
  for (;;) {
    uint8_t tmp[65536];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) return got;
    if (out && got + (size_t)n <= cap) memcpy(out + got, tmp, (size_t)n);
    got += (size_t)n;
  }
}

/* ---- reading ------------------------------------------------------------- */

static void test_read_partial_consume(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  c.consume_max = 3;
  assert_int_equal(write(peer, "hello", 5), 5);
  run_until(&c, &c.reads, 1);
  assert_int_equal(c.in_len, 3); /* "hel", "lo" kept */
  /* the rest comes again, first, with the next bytes */
  c.consume_max = 0;
  assert_int_equal(write(peer, " world", 6), 6);
  run_until(&c, &c.reads, 2);
  assert_int_equal(c.in_len, 11);
  assert_memory_equal(c.in, "hello world", 11);
  /* all consumed: nothing pending, and a bigger message in one piece */
  uint8_t big[40000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 31);
  assert_int_equal(write(peer, big, sizeof big), (ssize_t)sizeof big);
  c.in_len = 0;
  while (c.in_len < sizeof big) assert_true(ra_loop_run_once(c.loop, 1000) >= 0);
  assert_memory_equal(c.in, big, sizeof big);
  /* the peer closes: default on_eof absent here, ours counts */
  close(peer);
  c.close_on_eof = 1;
  run_until(&c, &c.closes, 1);
  assert_int_equal(c.eofs, 1);
  assert_int_equal(c.close_err, 0);
  teardown(&c);
}

/* Two "requests" in one read; the first on_read takes one and pauses:
 * "req2" is held. */
static void setup_paused_with_held_input(ctx *c, int *peer) {
  setup_pair(c, peer, NULL);
  c->consume_max = 4;
  c->pause_after_first = 1;
  assert_int_equal(write(*peer, "req1req2", 8), 8);
  run_until(c, &c->reads, 1);
  assert_int_equal(c->in_len, 4);
}

static void test_pause_resume_reoffers(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_paused_with_held_input(&c, &peer);
  /* paused: no callbacks, even though bytes are buffered */
  for (int i = 0; i < 3; i++) ra_loop_run_once(c.loop, 5);
  assert_int_equal(c.reads, 1);
  /* resume: the leftover is offered again without any new input */
  ra_stream_resume_read(c.s);
  assert_int_equal(c.reads, 1); /* not from inside resume */
  run_until(&c, &c.reads, 2);
  assert_int_equal(c.in_len, 8);
  assert_memory_equal(c.in, "req1req2", 8);
  ra_stream_abort(c.s, 0);
  close(peer);
  teardown(&c);
  assert_int_equal(c.closes, 1);
}

/* Input held while paused comes before the end: the peer's FIN, read in
 * the loop turn of the resume (before the deferred re-offer ran), must not
 * overtake it (ra-gateway lost the tail of an answer so: it closes its
 * upstream on EOF). */
static void test_resume_then_eof_delivers_held_input(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_paused_with_held_input(&c, &peer);
  assert_int_equal(shutdown(peer, SHUT_WR), 0);
  for (int i = 0; i < 3; i++) ra_loop_run_once(c.loop, 5);
  assert_int_equal(c.eofs, 0); /* paused: the FIN is not read either */
  ra_stream_resume_read(c.s);
  run_until(&c, &c.eofs, 1);
  assert_int_equal(c.in_len, 8);
  assert_int_equal(c.eof_in_len, 8); /* everything before the end */
  ra_stream_abort(c.s, 0);
  close(peer);
  teardown(&c);
}

/* ---- switching callbacks (an upgrade) ------------------------------------ */

static size_t upgrade_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  ctx *c = ud;
  c->reads++;
  /* takes "UP\n" and hands the rest to the new callbacks */
  assert_true(n >= 3);
  ra_stream_set_userdata(s, &all_cbs, c);
  return 3;
}

static void test_set_userdata_reoffers(void **state) {
  (void)state;
  ctx c;
  int peer;
  static const ra_stream_cbs up = {upgrade_read, NULL, NULL, c_close};
  setup_pair(&c, &peer, &up);
  assert_int_equal(write(peer, "UP\nframe", 8), 8);
  run_until(&c, &c.reads, 2);
  assert_int_equal(c.in_len, 5);
  assert_memory_equal(c.in, "frame", 5);
  c.close_on_eof = 1;
  close(peer);
  run_until(&c, &c.closes, 1);
  teardown(&c);
}

/* Setting callbacks or resuming with nothing left over costs no deferred
 * call: the loop has nothing to run (the server does this per accept). */
static void test_set_userdata_idle_no_defer(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  ra_stream_set_userdata(c.s, &all_cbs, &c);
  ra_stream_pause_read(c.s);
  ra_stream_resume_read(c.s);
  assert_int_equal(ra_loop_run_once(c.loop, 0), 0);
  /* with input left over, the re-offer still comes */
  c.consume_max = 2;
  assert_int_equal(write(peer, "abcdef", 6), 6);
  assert_int_equal(ra_loop_run_once(c.loop, 1000), 1);
  assert_int_equal(c.in_len, 2);
  c.consume_max = 0;
  ra_stream_set_userdata(c.s, &all_cbs, &c);
  assert_int_equal(ra_loop_run_once(c.loop, 0), 1);
  assert_int_equal(c.in_len, 6);
  assert_memory_equal(c.in, "abcdef", 6);
  ra_stream_abort(c.s, 0);
  close(peer);
  teardown(&c);
}

/* ---- writing, watermarks, drain ------------------------------------------ */

static void test_write_queue_watermarks(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  int small = 4096;
  setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  setsockopt(ra_stream_fd(c.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ra_stream_set_watermarks(c.s, 64 * 1024, 16 * 1024);
  /* a peer that does not read: the kernel fills up and the rest queues */
  static uint8_t blk[8192];
  size_t total = 0;
  for (int i = 0; i < 32; i++) {
    memset(blk, 'a' + i % 26, sizeof blk);
    assert_int_equal(ra_stream_write(c.s, blk, sizeof blk), 0);
    total += sizeof blk;
  }
  size_t q = ra_stream_queued(c.s);
  assert_true(q > 64 * 1024); /* above the high-water mark */
  assert_true(q <= total);
  /* above the mark reading is paused: the peer's bytes are not read */
  assert_int_equal(write(peer, "x", 1), 1);
  for (int i = 0; i < 3; i++) ra_loop_run_once(c.loop, 5);
  assert_int_equal(c.reads, 0);
  assert_int_equal(c.drains, 0);
  assert_true(ra_stream_queued(c.s) > 16 * 1024);
  /* the peer reads: the queue drains, on_drain fires, reading resumes */
  static uint8_t got[32 * 8192 + 16];
  size_t n = 0;
  while (c.drains == 0) {
    n += drain_fd(peer, got + n, sizeof got - n);
    ra_loop_run_once(c.loop, 10);
  }
  assert_true(ra_stream_queued(c.s) <= 16 * 1024);
  run_until(&c, &c.reads, 1);
  assert_int_equal(c.in_len, 1);
  while (n < total) {
    n += drain_fd(peer, got + n, sizeof got - n);
    ra_loop_run_once(c.loop, 10);
  }
  assert_int_equal(n, total);
  assert_int_equal(ra_stream_queued(c.s), 0);
  for (size_t i = 0; i < total; i++)
    if (got[i] != 'a' + (i / 8192) % 26) fail_msg("byte %zu out of order", i);
  /* writev of several pieces goes out in order */
  struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
  assert_int_equal(ra_stream_writev(c.s, iov, 3), 0);
  struct pollfd pfd = {peer, POLLIN, 0};
  poll(&pfd, 1, 1000);
  assert_int_equal(drain_fd(peer, got, sizeof got), 5);
  assert_memory_equal(got, "abcde", 5);
  ra_stream_abort(c.s, ECONNRESET); /* positive is taken as negative */
  close(peer);
  teardown(&c);
  assert_int_equal(c.close_err, -ECONNRESET);
}

/* ---- write_ref: free_cb once on every path ------------------------------- */

typedef struct refc {
  int freed;
  ra_stream *s;
} refc;

static void ref_free(void *ud) { ((refc *)ud)->freed++; }

static void ref_free_writes(void *ud) {
  /* user code inside free_cb may call back into the stream */
  refc *r = ud;
  r->freed++;
  int rc = ra_stream_write(r->s, "z", 1);
  assert_true(rc == 0 || rc == -EPIPE);
}

static void test_write_ref(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  int small = 4096;
  setsockopt(ra_stream_fd(c.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  /* written at once: freed before write_ref returns */
  refc r1 = {0};
  assert_int_equal(ra_stream_write_ref(c.s, "now", 3, ref_free, &r1), 0);
  assert_int_equal(r1.freed, 1);
  /* queued: freed once the kernel took the bytes */
  static uint8_t big[256 * 1024];
  memset(big, 'q', sizeof big);
  refc r2 = {0};
  assert_int_equal(ra_stream_write_ref(c.s, big, sizeof big, ref_free, &r2), 0);
  assert_int_equal(r2.freed, 0);
  assert_true(ra_stream_queued(c.s) > 0);
  /* mixed with copies, order kept */
  assert_int_equal(ra_stream_write(c.s, "END", 3), 0);
  static uint8_t got[256 * 1024 + 16];
  size_t n = 0;
  while (n < 3 + sizeof big + 3) {
    n += drain_fd(peer, got + n, sizeof got - n);
    ra_loop_run_once(c.loop, 10);
  }
  assert_int_equal(r2.freed, 1);
  assert_memory_equal(got, "now", 3);
  assert_memory_equal(got + 3 + sizeof big, "END", 3);
  /* queued, then the stream is aborted: freed once, by the abort */
  refc r3 = {0}, r4 = {0};
  r4.s = c.s;
  assert_int_equal(ra_stream_write_ref(c.s, big, sizeof big, ref_free, &r3), 0);
  assert_int_equal(ra_stream_write_ref(c.s, big, sizeof big, ref_free_writes, &r4), 0);
  ra_stream_abort(c.s, 0);
  assert_int_equal(r3.freed, 1);
  assert_int_equal(r4.freed, 1);
  /* after close: fails with -EPIPE and still frees */
  refc r5 = {0};
  assert_int_equal(ra_stream_write_ref(c.s, "x", 1, ref_free, &r5), -EPIPE);
  assert_int_equal(r5.freed, 1);
  assert_int_equal(ra_stream_write(c.s, "x", 1), -EPIPE);
  run_until(&c, &c.closes, 1);
  close(peer);
  teardown(&c);
  assert_int_equal(r1.freed + r2.freed + r3.freed + r4.freed + r5.freed, 5);
}

static void test_write_ref_graceful_and_peer_reset(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  int small = 4096;
  setsockopt(ra_stream_fd(c.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  static uint8_t big[128 * 1024];
  refc r = {0};
  assert_int_equal(ra_stream_write_ref(c.s, big, sizeof big, ref_free, &r), 0);
  ra_stream_close(c.s);
  assert_int_equal(ra_stream_write(c.s, "x", 1), -EPIPE); /* closing: no more writes */
  /* the peer goes away without reading: the flush fails, free_cb once */
  close(peer);
  run_until(&c, &c.closes, 1);
  assert_int_equal(r.freed, 1);
  assert_true(c.close_err < 0); /* -EPIPE or -ECONNRESET */
  teardown(&c);
}

/* ---- half-close ------------------------------------------------------------ */

static void test_half_close(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  /* the peer half-closes: on_eof, and we can still answer */
  assert_int_equal(write(peer, "question", 8), 8);
  shutdown(peer, SHUT_WR);
  run_until(&c, &c.eofs, 1);
  assert_int_equal(c.in_len, 8);
  assert_int_equal(c.closes, 0);
  assert_int_equal(ra_stream_write(c.s, "answer", 6), 0);
  /* our half-close: the peer reads the answer, then EOF */
  ra_stream_shutdown(c.s);
  assert_int_equal(ra_stream_write(c.s, "late", 4), -EPIPE);
  uint8_t buf[16];
  struct pollfd pfd = {peer, POLLIN, 0};
  poll(&pfd, 1, 1000);
  assert_int_equal(read(peer, buf, sizeof buf), 6);
  assert_memory_equal(buf, "answer", 6);
  assert_int_equal(read(peer, buf, sizeof buf), 0);
  ra_stream_close(c.s);
  run_until(&c, &c.closes, 1);
  assert_int_equal(c.close_err, 0);
  close(peer);
  teardown(&c);
}

static void test_default_eof_closes_after_flush(void **state) {
  (void)state;
  ctx c;
  int peer;
  static const ra_stream_cbs no_eof = {c_read, NULL, NULL, c_close};
  setup_pair(&c, &peer, &no_eof);
  int small = 4096;
  setsockopt(ra_stream_fd(c.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  static uint8_t big[100000];
  memset(big, 'b', sizeof big);
  assert_int_equal(ra_stream_write(c.s, big, sizeof big), 0);
  assert_true(ra_stream_queued(c.s) > 0);
  shutdown(peer, SHUT_WR);
  /* the stream closes itself, but only once all was written */
  static uint8_t got[sizeof big];
  size_t n = 0;
  while (!c.closes) {
    n += drain_fd(peer, got + n, sizeof got - n);
    ra_loop_run_once(c.loop, 10);
  }
  n += drain_fd(peer, got + n, sizeof got - n);
  assert_int_equal(n, sizeof big);
  assert_int_equal(c.close_err, 0);
  close(peer);
  teardown(&c);
}

/* ---- idle timeout ---------------------------------------------------------- */

static void test_idle_timeout(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  ra_stream_set_idle_timeout(c.s, 100);
  uint64_t start = mono_ms();
  /* activity keeps it open */
  uint64_t last = 0;
  for (int i = 0; i < 4; i++) {
    usleep(30 * 1000);
    last = mono_ms();
    assert_int_equal(write(peer, "k", 1), 1);
    ra_loop_run_once(c.loop, 0);
    ra_loop_run_once(c.loop, 0);
  }
  assert_int_equal(c.closes, 0);
  assert_true(mono_ms() - start >= 120);
  /* silence closes it with -ETIMEDOUT */
  assert_int_equal(c.reads, 4);
  run_until(&c, &c.closes, 1);
  assert_int_equal(c.close_err, -ETIMEDOUT);
  uint64_t took = mono_ms() - last; /* since the last byte the peer sent */
  if (!(took >= 99 && took < 1000)) fail_msg("idle close after %llu ms", (unsigned long long)took);
  uint8_t buf[8];
  assert_int_equal(read(peer, buf, sizeof buf), 0); /* closed */
  close(peer);
  teardown(&c);
}

static void test_idle_timeout_off(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  ra_stream_set_idle_timeout(c.s, 20);
  ra_stream_set_idle_timeout(c.s, 0);
  ra_loop_run_once(c.loop, 60);
  assert_int_equal(c.closes, 0);
  ra_stream_abort(c.s, -ECONNABORTED);
  close(peer);
  teardown(&c);
  assert_int_equal(c.close_err, -ECONNABORTED);
}

/* ---- write timeout ----------------------------------------------------------- */

/* Fills the kernel's buffers until the stream queues (the peer never reads). */
static void fill_until_queued(ctx *c) {
  static uint8_t blob[256 * 1024];
  for (int i = 0; i < 64 && ra_stream_queued(c->s) == 0; i++)
    assert_int_equal(ra_stream_write(c->s, blob, sizeof blob), 0);
  assert_true(ra_stream_queued(c->s) > 0);
}

/* A peer that never reads is dropped with -ETIMEDOUT once the queue made no
 * progress for the write timeout, even while it keeps sending (which keeps
 * the idle timeout happy). */
static void test_write_timeout(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  ra_stream_set_idle_timeout(c.s, 5000);
  ra_stream_set_write_timeout(c.s, 150);
  uint64_t start = mono_ms();
  fill_until_queued(&c);
  while (c.closes == 0 && mono_ms() - start < 3000) {
    assert_int_equal(write(peer, "k", 1), 1); /* chatty, but never reads */
    usleep(10 * 1000);
    ra_loop_run_once(c.loop, 0);
  }
  assert_int_equal(c.closes, 1);
  assert_int_equal(c.close_err, -ETIMEDOUT);
  uint64_t took = mono_ms() - start;
  if (!(took >= 140 && took < 1000)) fail_msg("write timeout after %llu ms", (unsigned long long)took);
  close(peer);
  teardown(&c);
}

/* A peer that reads slowly but steadily is kept: every write that takes
 * queued bytes re-arms the timeout. And nothing queued: never fires. */
static void test_write_timeout_progress(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  ra_stream_set_write_timeout(c.s, 150);
  ra_loop_run_once(c.loop, 200); /* empty queue: nothing to time */
  assert_int_equal(c.closes, 0);
  fill_until_queued(&c);
  uint64_t start = mono_ms();
  while (mono_ms() - start < 600) {
    drain_fd(peer, NULL, 0); /* what is there, every 50 ms */
    usleep(50 * 1000);
    ra_loop_run_once(c.loop, 0);
    assert_int_equal(c.closes, 0);
    if (ra_stream_queued(c.s) < 65536) fill_until_queued(&c);
  }
  assert_int_equal(c.closes, 0);
  ra_stream_set_write_timeout(c.s, 0); /* off: a stuck queue is kept */
  ra_loop_run_once(c.loop, 250);
  assert_int_equal(c.closes, 0);
  ra_stream_abort(c.s, -ECONNABORTED);
  close(peer);
  teardown(&c);
  assert_int_equal(c.close_err, -ECONNABORTED);
}

/* ---- close ------------------------------------------------------------------ */

static void test_graceful_close_flushes(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  int small = 4096;
  setsockopt(ra_stream_fd(c.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  static uint8_t big[300000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)i;
  assert_int_equal(ra_stream_write(c.s, big, sizeof big), 0);
  assert_true(ra_stream_queued(c.s) > 0);
  ra_stream_close(c.s);
  ra_stream_close(c.s); /* idempotent */
  assert_int_equal(c.closes, 0); /* on_close is never called from inside close */
  /* nothing is read after close */
  assert_int_equal(write(peer, "ignored", 7), 7);
  static uint8_t got[sizeof big];
  size_t n = 0;
  while (!c.closes) {
    n += drain_fd(peer, got + n, sizeof got - n);
    ra_loop_run_once(c.loop, 10);
  }
  n += drain_fd(peer, got + n, sizeof got - n);
  assert_int_equal(n, sizeof big);
  assert_memory_equal(got, big, sizeof big);
  assert_int_equal(c.close_err, 0);
  assert_int_equal(c.reads, 0);
  close(peer);
  teardown(&c);
}

static void test_graceful_close_bounded(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  int small = 4096;
  setsockopt(ra_stream_fd(c.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  static uint8_t big[300000];
  assert_int_equal(ra_stream_write(c.s, big, sizeof big), 0);
  /* a peer that never reads cannot hold the close forever */
  ra_stream_set_idle_timeout(c.s, 50);
  uint64_t start = mono_ms();
  ra_stream_close(c.s);
  run_until(&c, &c.closes, 1);
  assert_int_equal(c.close_err, -ETIMEDOUT);
  if (mono_ms() - start >= 1000) fail_msg("bounded close took %llu ms", (unsigned long long)(mono_ms() - start));
  close(peer);
  teardown(&c);
}

static void test_abort(void **state) {
  (void)state;
  ctx c;
  int peer;
  setup_pair(&c, &peer, NULL);
  int small = 4096;
  setsockopt(ra_stream_fd(c.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  static uint8_t big[300000];
  assert_int_equal(ra_stream_write(c.s, big, sizeof big), 0);
  ra_stream_abort(c.s, -EIO);
  assert_int_equal(c.closes, 0); /* deferred */
  assert_int_equal(ra_stream_fd(c.s), -1);
  ra_stream_abort(c.s, -EINVAL); /* second call: no-op */
  ra_stream_close(c.s);
  run_until(&c, &c.closes, 1);
  assert_int_equal(c.close_err, -EIO);
  /* the peer sees the connection end, with only part of the data */
  size_t n = drain_fd(peer, NULL, 0);
  assert_true(n < sizeof big);
  uint8_t b;
  assert_int_equal(read(peer, &b, 1), 0);
  close(peer);
  teardown(&c);
}

/* Closing from inside on_read, and a peer reset. */
static size_t close_in_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  ctx *c = ud;
  c->reads++;
  ra_stream_abort(s, -ECANCELED);
  assert_int_equal(ra_stream_write(s, d, n), -EPIPE);
  return 0; /* ignored: the stream is gone */
}

static void test_close_inside_read(void **state) {
  (void)state;
  ctx c;
  int peer;
  static const ra_stream_cbs cbs = {close_in_read, NULL, NULL, c_close};
  setup_pair(&c, &peer, &cbs);
  assert_int_equal(write(peer, "boom", 4), 4);
  run_until(&c, &c.closes, 1);
  assert_int_equal(c.reads, 1);
  assert_int_equal(c.close_err, -ECANCELED);
  close(peer);
  teardown(&c);
}

/* ---- TCP: connect, echo, lingering close ----------------------------------- */

typedef struct tcp {
  ra_loop *loop;
  ra_listener *l;
  ra_stream *srv, *cli;
  int srv_closed, cli_closed, cli_err;
  size_t cli_got;
  int connected;
  ra_timer guard;
} tcp;

static const char resp[] = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n";

static size_t tsrv_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)d;
  /* a server that refuses what it is sent: answers, then closes while the
   * client is still sending. The answer must arrive intact. */

  if (ra_stream_write(s, resp, sizeof resp - 1) == 0) ra_stream_close(s);
  return n;
}
static void tsrv_close(ra_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  ((tcp *)ud)->srv_closed++;
}
static const ra_stream_cbs tsrv_cbs = {tsrv_read, NULL, NULL, tsrv_close};

static void t_accept(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *ud) {
  tcp *t = ud;
  assert_int_equal(ra_stream_new(t->loop, fd, &tsrv_cbs, t, &t->srv), 0);
  assert_non_null(t->srv);
}

static size_t tcli_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  tcp *t = ud;
  t->cli_got += n;
  return n;
}
static void tcli_eof(ra_stream *s, void *ud) { ra_stream_abort(s, 0); }
static void tcli_close(ra_stream *s, int err, void *ud) {
  tcp *t = ud;
  t->cli_closed++;
  t->cli_err = err;
}
static const ra_stream_cbs tcli_cbs = {tcli_read, NULL, tcli_eof, tcli_close};

static void t_connected(ra_stream *s, int status, void *ud) {
  tcp *t = ud;
  assert_int_equal(status, 0);
  t->cli = s;
  t->connected = 1;
  /* keep sending a body the server will refuse */
  static uint8_t body[200000];
  assert_int_equal(ra_stream_write(s, body, sizeof body), 0);
}

static void test_tcp_lingering_close(void **state) {
  (void)state;
  tcp t = {0};
  assert_int_equal(ra_loop_new(&t.loop), 0);
  ra_timer_init(t.loop, &t.guard, on_guard, &t);
  ra_timer_unref(&t.guard);
  ra_timer_start(&t.guard, 10000, 0);
  assert_int_equal(ra_listen(t.loop, "127.0.0.1:0", NULL, t_accept, &t, &t.l), 0);
  assert_int_equal(ra_stream_connect(t.loop, "127.0.0.1", ra_listener_port(t.l), &tcli_cbs,
                                     t_connected, &t), 0);
  assert_int_equal(t.connected, 0); /* never from inside connect */
  while (!(t.srv_closed && t.cli_closed)) assert_true(ra_loop_run_once(t.loop, 1000) >= 0);
  assert_int_equal(t.cli_got, sizeof resp - 1); /* the whole answer, no reset */
  assert_int_equal(t.cli_err, 0);
  ra_listener_close(t.l);
  ra_timer_stop(&t.guard);
  assert_int_equal(ra_loop_run(t.loop), 0);
  ra_loop_free(t.loop);
}

/* ---- stress: echo over loopback with back-pressure ------------------------ */

enum { ST_CLIENTS = 16, ST_BYTES = 512 * 1024 };

typedef struct st_client {
  struct st *st;
  int id;
  ra_stream *s;
  uint8_t *data; /* what it sends (and expects back) */
  size_t got;
  int closed;
} st_client;

typedef struct st {
  ra_loop *loop;
  ra_listener *l;
  st_client c[ST_CLIENTS];
  int srv_open, srv_closed, cli_closed, refs_freed, refs_made, drains;
  unsigned rnd;
} st;

static unsigned st_rand(st *t) {
  t->rnd = t->rnd * 1103515245u + 12345u;
  return (t->rnd >> 8) & 0xffffff;
}

static size_t st_srv_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  /* a framed protocol: whole 64-byte units only; the rest is offered again
   * with the next bytes (ST_BYTES is a multiple of 64) */
  size_t take = n & ~(size_t)63;
  if (take) assert_int_equal(ra_stream_write(s, d, take), 0);
  return take;
}
static void st_srv_close(ra_stream *s, int err, void *ud) {
  st *t = ud;
  assert_int_equal(err, 0);
  t->srv_closed++;
}
static void st_srv_drain(ra_stream *s, void *ud) { ((st *)ud)->drains++; }
static const ra_stream_cbs st_srv_cbs = {st_srv_read, st_srv_drain, NULL, st_srv_close};

static void st_accept(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *ud) {
  st *t = ud;
  ra_stream *s;
  assert_int_equal(ra_stream_new(t->loop, fd, &st_srv_cbs, t, &s), 0);
  assert_non_null(s);
  ra_stream_set_watermarks(s, 16 * 1024, 4 * 1024);
  int small = 8192; /* so the kernel pushes back and the queue is used */
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  t->srv_open++;
}

static size_t st_cli_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  st_client *c = ud;
  assert_true(c->got + n <= ST_BYTES);
  if (memcmp(d, c->data + c->got, n) != 0) fail_msg("client %d: wrong bytes at %zu", c->id, c->got);
  c->got += n;
  if (c->got == ST_BYTES) ra_stream_close(s);
  return n;
}
static void st_cli_close(ra_stream *s, int err, void *ud) {
  st_client *c = ud;
  assert_int_equal(err, 0);
  c->closed = 1;
  c->st->cli_closed++;
}
static const ra_stream_cbs st_cli_cbs = {st_cli_read, NULL, NULL, st_cli_close};

static void st_ref_free(void *ud) { ((st *)ud)->refs_freed++; }

static void st_connected(ra_stream *s, int status, void *ud) {
  st_client *c = ud;
  st *t = c->st;
  assert_int_equal(status, 0);
  c->s = s;
  /* the whole payload in random pieces, copies and references mixed */
  size_t off = 0;
  while (off < ST_BYTES) {
    size_t n = 1 + st_rand(t) % 20000;
    if (n > ST_BYTES - off) n = ST_BYTES - off;
    if (st_rand(t) % 2) {
      t->refs_made++;
      assert_int_equal(ra_stream_write_ref(s, c->data + off, n, st_ref_free, t), 0);
    } else {
      struct iovec iov[2] = {{c->data + off, n / 2}, {c->data + off + n / 2, n - n / 2}};
      assert_int_equal(ra_stream_writev(s, iov, 2), 0);
    }
    off += n;
  }
}

static void test_echo_stress(void **state) {
  (void)state;
  static st t;
  memset(&t, 0, sizeof t);
  t.rnd = 12345;
  assert_int_equal(ra_loop_new(&t.loop), 0);
  ra_timer guard;
  ra_timer_init(t.loop, &guard, on_guard, NULL);
  ra_timer_unref(&guard);
  ra_timer_start(&guard, 60000, 0);
  assert_int_equal(ra_listen(t.loop, "127.0.0.1:0", NULL, st_accept, &t, &t.l), 0);
  for (int i = 0; i < ST_CLIENTS; i++) {
    st_client *c = &t.c[i];
    c->st = &t;
    c->id = i;
    c->data = malloc(ST_BYTES);
    for (size_t k = 0; k < ST_BYTES; k++) c->data[k] = (uint8_t)(st_rand(&t) ^ (unsigned)i);
    assert_int_equal(ra_stream_connect(t.loop, i % 2 ? "127.0.0.1" : "localhost",
                                       ra_listener_port(t.l), &st_cli_cbs, st_connected, c), 0);
  }
  while (t.cli_closed < ST_CLIENTS || t.srv_closed < ST_CLIENTS)
    assert_true(ra_loop_run_once(t.loop, 1000) >= 0);
  for (int i = 0; i < ST_CLIENTS; i++) {
    assert_int_equal(t.c[i].got, ST_BYTES);
    free(t.c[i].data);
  }
  assert_int_equal(t.refs_freed, t.refs_made);
  print_message("server drains: %d\n", t.drains);
  assert_true(t.drains > 0); /* back-pressure did pause the echo */
  ra_listener_close(t.l);
  ra_timer_stop(&guard);
  assert_int_equal(ra_loop_run(t.loop), 0);
  ra_loop_free(t.loop);
}

/* ---- memory: an idle stream holds no buffers -------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define RA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RA_ASAN 1
#endif
#endif

#ifndef RA_ASAN
static size_t heap_used(void) { return mallinfo2().uordblks; }

static void noop_io(ra_loop *loop, int fd, unsigned events, void *ud) {}

#endif

static void test_idle_stream_memory(void **state) {
  (void)state;
#ifdef RA_ASAN
  skip(); /* mallinfo2 does not see the sanitizer's allocator */
#else
  enum { N = 200 };
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  static int peers[N];
  static ra_stream *ss[N];
  static ctx cs[N];
  /* grow the fd table first: it is per loop, not per stream */
  int hi = dup2(0, 2 * N + 64 + 3);
  assert_true(hi > 0);
  static const ra_stream_cbs cbs = {c_read, NULL, NULL, c_close};
  assert_int_equal(ra_loop_watch(loop, hi, 0, noop_io, NULL), 0);
  ra_loop_unwatch(loop, hi);
  close(hi);
  int sv[N][2];
  for (int i = 0; i < N; i++)
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
  size_t before = heap_used();
  for (int i = 0; i < N; i++) {
    memset(&cs[i], 0, sizeof cs[i]);
    cs[i].loop = loop;
    assert_int_equal(ra_stream_new(loop, sv[i][0], &cbs, &cs[i], &cs[i].s), 0);
    ss[i] = cs[i].s;
    assert_non_null(ss[i]);
    ra_stream_set_idle_timeout(ss[i], 60000);
    peers[i] = sv[i][1];
  }
  size_t per = (heap_used() - before) / N;
  print_message("idle stream: %zu bytes of heap\n", per);
  assert_true(per < 1024);
  /* a request/response cycle (partial consume, then the rest) leaves no
   * buffer behind */
  for (int i = 0; i < N; i++) {
    cs[i].consume_max = 2;
    assert_int_equal(write(peers[i], "abcd", 4), 4);
  }
  for (int k = 0; k < 20; k++) ra_loop_run_once(loop, 0);
  assert_true(heap_used() - before > (size_t)N * per); /* leftovers held */
  for (int i = 0; i < N; i++) {
    cs[i].consume_max = 0;
    assert_int_equal(write(peers[i], "e", 1), 1);
  }
  for (int k = 0; k < 20; k++) ra_loop_run_once(loop, 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(cs[i].in_len, 5);
    assert_int_equal(ra_stream_write(ss[i], "ok", 2), 0);
  }
  size_t after = heap_used();
  print_message("after cycle: %zu (idle: %zu)\n", after - before, (size_t)N * per);
  assert_true(after - before <= (size_t)N * per + 4096); /* + malloc caches */
  for (int i = 0; i < N; i++) {
    ra_stream_abort(ss[i], 0);
    close(peers[i]);
  }
  assert_int_equal(ra_loop_run(loop), 0);
  ra_loop_free(loop);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_partial_consume),
      cmocka_unit_test(test_pause_resume_reoffers),
      cmocka_unit_test(test_resume_then_eof_delivers_held_input),
      cmocka_unit_test(test_set_userdata_reoffers),
      cmocka_unit_test(test_set_userdata_idle_no_defer),
      cmocka_unit_test(test_write_queue_watermarks),
      cmocka_unit_test(test_write_ref),
      cmocka_unit_test(test_write_ref_graceful_and_peer_reset),
      cmocka_unit_test(test_half_close),
      cmocka_unit_test(test_default_eof_closes_after_flush),
      cmocka_unit_test(test_idle_timeout),
      cmocka_unit_test(test_idle_timeout_off),
      cmocka_unit_test(test_write_timeout),
      cmocka_unit_test(test_write_timeout_progress),
      cmocka_unit_test(test_graceful_close_flushes),
      cmocka_unit_test(test_graceful_close_bounded),
      cmocka_unit_test(test_abort),
      cmocka_unit_test(test_close_inside_read),
      cmocka_unit_test(test_tcp_lingering_close),
      cmocka_unit_test(test_echo_stress),
      cmocka_unit_test(test_idle_stream_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
