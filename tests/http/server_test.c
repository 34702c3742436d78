/* tests/http/server_test.c: the server over real loopback sockets: a
 * request, the connection cap (accept pauses and resumes), the protocol
 * upgrade hand-over (101, then the raw stream with the bytes read past the
 * request), graceful shutdown (listener closed, done called). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raloop/core/loop.h"
#include "raloop/core/stream.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"

static void h_hello(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "world"); }

/* ---- upgrade: echo the rest, then "bye" and close --------------------------- */

static char up_rest[64];
static size_t up_rest_len;

static size_t up_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  ra_stream_write(s, d, n); /* raw echo */
  return n;
}
static void up_close(ra_stream *s, int err, void *ud) {}
static const ra_stream_cbs up_cbs = {.on_read = up_read, .on_close = up_close};

static void on_upgraded(ra_stream *s, const uint8_t *rest, size_t n, ra_conn_slot *slot, void *ud) {
  ra_conn_slot_release(slot); /* not counted: this raw echo is not the server's business */
  memcpy(up_rest, rest, n < sizeof up_rest ? n : sizeof up_rest);
  up_rest_len = n;
  ra_stream_set_userdata(s, &up_cbs, NULL);
  ra_stream_write(s, "raw:", 4);
  ra_stream_write(s, rest, n);
}

static void h_upgrade(ra_req *req, ra_res *res, void *ud) {
  ra_res_add_header(res, "Upgrade", "x-test");
  ra_res_add_header(res, "Connection", "Upgrade");
  int rc = ra_res_upgrade(res, on_upgraded, NULL);
  if (rc) ra_res_send_text(res, 500, "upgrade failed");
}

/* ---- upgrade behind a pending answer, connection lost before the hand-over ---- */

static int up_streams, up_nulls;
static ra_res *held;

static void on_upgraded_count(ra_stream *s, const uint8_t *rest, size_t n, ra_conn_slot *slot,
                              void *ud) {
  ra_conn_slot_release(slot);
  if (!s) {
    assert_null(slot);
    assert_null(rest);
    assert_int_equal(n, 0);
    up_nulls++;
    return;
  }
  up_streams++;
  ra_stream_abort(s, -ECONNABORTED);
}

static void h_upgrade_count(ra_req *req, ra_res *res, void *ud) {
  ra_res_add_header(res, "Upgrade", "x-test");
  assert_int_equal(ra_res_upgrade(res, on_upgraded_count, NULL), 0);
}

static void on_held_cancel(ra_res *res, void *ud) {
  held = NULL;
  ra_res_end(res);
}

static void h_hold(ra_req *req, ra_res *res, void *ud) {
  held = res;
  ra_res_on_cancel(res, on_held_cancel, NULL);
}

/* ---- a streaming handler paced by ra_res_pending / on_drain ---------------------- */

#define PACE_WINDOW (16 * 1024)
#define PACE_CHUNKS 256

static int paced_i;

static void paced_more(ra_res *res, void *ud) {
  static char chunk[1024];
  memset(chunk, 'p', sizeof chunk);
  while (paced_i < PACE_CHUNKS && ra_res_pending(res) < PACE_WINDOW) {
    if (ra_res_write(res, chunk, sizeof chunk) < 0) return;
    paced_i++;
  }
  if (paced_i == PACE_CHUNKS) {
    paced_i++;
    ra_res_write(res, "END", 3);
    ra_res_end(res);
  }
}

static void h_paced(ra_req *req, ra_res *res, void *ud) {
  paced_i = 0;
  ra_res_on_drain(res, paced_more, NULL);
  paced_more(res, NULL);
}

/* ---- an endless paced stream (ra-hello's /stream?n=1e8) ------------------------- */

static int endless_cancels;
static uint64_t endless_cancel_at;
static void endless_more(ra_res *res, void *ud) {
  static char chunk[1024];
  memset(chunk, 'e', sizeof chunk);
  while (ra_res_pending(res) < PACE_WINDOW)
    if (ra_res_write(res, chunk, sizeof chunk) < 0) return;
}
static void endless_cancel(ra_res *res, void *ud) {
  endless_cancels++;
  endless_cancel_at = ra_loop_update_time(ra_res_loop(res));
  ra_res_end(res);
}
static void h_endless(ra_req *req, ra_res *res, void *ud) {
  ra_res_on_cancel(res, endless_cancel, NULL);
  ra_res_on_drain(res, endless_more, NULL);
  endless_more(res, NULL);
}

/* ---- helpers --------------------------------------------------------------------- */

static uint64_t fx_write_timeout_ms; /* limits.write_timeout_ms for fx_open */

typedef struct fx {
  ra_loop *loop;
  ra_router *router;
  ra_http_server *srv;
  uint16_t port;
} fx;

static void fx_open(fx *f, size_t max_conns) {
  assert_int_equal(ra_loop_new(&f->loop), 0);
  assert_int_equal(ra_router_new(&f->router), 0);
  ra_route(f->router, "GET", "/hello", h_hello, NULL);
  ra_route(f->router, "GET", "/up", h_upgrade, NULL);
  ra_route(f->router, "GET", "/up2", h_upgrade_count, NULL);
  ra_route(f->router, "GET", "/hold", h_hold, NULL);
  ra_route(f->router, "GET", "/paced", h_paced, NULL);
  ra_route(f->router, "GET", "/endless", h_endless, NULL);
  ra_http_server_opts o = {0};
  o.limits.max_connections = max_conns;
  o.limits.write_timeout_ms = fx_write_timeout_ms;
  assert_int_equal(ra_http_server_new(f->loop, f->router, &o, &f->srv), 0);
  assert_non_null(f->srv);
  assert_int_equal(ra_http_server_listen(f->srv, "127.0.0.1:0", NULL), 0);
  f->port = ra_http_server_port(f->srv);
  assert_true(f->port != 0);
}

static void fx_close(fx *f) {
  ra_http_server_free(f->srv);
  ra_router_free(f->router);
  ra_loop_free(f->loop);
}

static int client(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  if (rc < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static void turns(fx *f, int n) {
  for (int i = 0; i < n; i++) ra_loop_run_once(f->loop, 2);
}

/* Runs the loop until fd has `want` in what it read (or ~2 s). */
static size_t read_until(fx *f, int fd, char *buf, size_t cap, const char *want) {
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < 1000 && !strstr(buf, want); i++) {
    ra_loop_run_once(f->loop, 2);
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n > 0) {
      len += (size_t)n;
      buf[len] = '\0';
    }
  }
  return len;
}

static void send_all(int fd, const char *s) {
  size_t n = strlen(s);
  assert_int_equal(write(fd, s, n), (ssize_t)n);
}

/* ---------------------------------------------------------------------------- */

static void test_request_and_cap(void **state) {
  fx f;
  fx_open(&f, 2);
  int a = client(f.port), b = client(f.port);
  turns(&f, 5);
  char buf[2048];
  send_all(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  read_until(&f, a, buf, sizeof buf, "world");
  assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
  /* a third connection waits in the backlog: the cap is 2 */
  int c = client(f.port);
  send_all(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  turns(&f, 20);
  char tmp[256];
  assert_true(read(c, tmp, sizeof tmp) < 0 && errno == EAGAIN);
  /* one leaves: the third is accepted and served */
  close(b);
  read_until(&f, c, buf, sizeof buf, "world");
  assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
  close(a);
  close(c);
  fx_close(&f);
}

static void test_upgrade(void **state) {
  fx f;
  fx_open(&f, 0);
  int fd = client(f.port);
  turns(&f, 3);
  /* the request and raw bytes after it in one write */
  send_all(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\nEXTRA");
  char buf[4096];
  read_until(&f, fd, buf, sizeof buf, "raw:EXTRA");
  const char *ok = strstr(buf, "HTTP/1.1 200 OK"), *sw = strstr(buf, "HTTP/1.1 101 Switching Protocols\r\n");
  assert_non_null(ok);
  assert_non_null(sw);
  assert_true(ok < sw);
  assert_non_null(strstr(sw, "Upgrade: x-test\r\n"));
  assert_non_null(strstr(sw, "\r\n\r\nraw:EXTRA"));
  assert_int_equal(up_rest_len, 5);
  /* from now on the stream is ours, not HTTP's */
  send_all(fd, "GET /hello HTTP/1.1\r\n\r\n");
  read_until(&f, fd, buf, sizeof buf, "GET /hello HTTP/1.1\r\n\r\n");
  assert_string_equal(buf, "GET /hello HTTP/1.1\r\n\r\n");
  close(fd);
  turns(&f, 5);
  fx_close(&f);
}

/* The 101 is ready but waits behind an earlier answer when the connection
 * goes away (the shutdown deadline aborts it, or the server is freed): the
 * upgrade callback is still called, once, with no stream, so its owner can
 * free what it prepared. */
static void test_upgrade_connection_gone(void **state) {
  for (int how = 0; how < 2; how++) {
    fx f;
    fx_open(&f, 0);
    up_streams = up_nulls = 0;
    held = NULL;
    int fd = client(f.port);
    turns(&f, 3);
    send_all(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /up2 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n");
    for (int i = 0; i < 500 && !held; i++) ra_loop_run_once(f.loop, 2);
    assert_non_null(held);
    turns(&f, 5);
    assert_int_equal(up_streams + up_nulls, 0); /* waits behind /hold */
    if (how == 0) {
      ra_http_server_shutdown(f.srv, 20, NULL, NULL);
      for (int i = 0; i < 500 && !up_nulls; i++) ra_loop_run_once(f.loop, 2);
    } else {
      ra_http_server_free(f.srv);
      f.srv = NULL;
    }
    assert_int_equal(up_nulls, 1);
    assert_int_equal(up_streams, 0);
    assert_null(held); /* cancelled */
    close(fd);
    turns(&f, 5);
    assert_int_equal(up_nulls + up_streams, 1); /* exactly once */
    fx_close(&f);
  }
}

/* A handler that writes while ra_res_pending() is below its window, then
 * waits for on_drain: it must be called again even when the bytes it saw
 * pending (held by the connection to coalesce writes) all went straight to
 * the kernel, or the response stalls. */
static void test_paced_stream(void **state) {
  fx f;
  fx_open(&f, 0);
  int fd = client(f.port);
  turns(&f, 3);
  send_all(fd, "GET /paced HTTP/1.1\r\nHost: x\r\n\r\n");
  static char buf[PACE_CHUNKS * 1024 + 8192];
  size_t n = read_until(&f, fd, buf, sizeof buf, "END\r\n0\r\n\r\n");
  assert_true(n > PACE_CHUNKS * 1024);
  assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(buf, "END\r\n0\r\n\r\n"));
  assert_int_equal(paced_i, PACE_CHUNKS + 1);
  close(fd);
  turns(&f, 5);
  fx_close(&f);
}

/* A client that asks for a large streamed answer and never reads it is
 * dropped once the response made no progress for write_timeout_ms (its
 * response is cancelled), while a client that keeps reading is not. */
static void test_write_timeout(void **state) {
  fx f;
  fx_write_timeout_ms = 300;
  fx_open(&f, 0);
  fx_write_timeout_ms = 0;
  int fd = client(f.port);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  turns(&f, 3);
  endless_cancels = 0;
  send_all(fd, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n");
  uint64_t start = ra_loop_update_time(f.loop);
  while (!endless_cancels && ra_loop_update_time(f.loop) - start < 5000) ra_loop_run_once(f.loop, 20);
  assert_int_equal(endless_cancels, 1);
  uint64_t took = endless_cancel_at - start;
  if (!(took >= 250 && took < 3000)) fail_msg("dropped after %llu ms", (unsigned long long)took);
  /* (the response is cancelled only when its connection is gone) */
  char buf[65536];
  ssize_t n;
  close(fd);

  /* a reader, slower than the server but steady, is kept past the timeout
   * (a small receive buffer, so that each read opens the TCP window) */
  fd = client(f.port);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  turns(&f, 3);
  endless_cancels = 0;
  send_all(fd, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n");
  start = ra_loop_update_time(f.loop);
  size_t got = 0;
  while (ra_loop_update_time(f.loop) - start < 900) {
    ra_loop_run_once(f.loop, 20);
    n = read(fd, buf, 8192);
    if (n > 0) got += (size_t)n;
  }
  assert_int_equal(endless_cancels, 0);
  assert_true(got > 8192);
  close(fd);
  for (int i = 0; i < 200 && !endless_cancels; i++) ra_loop_run_once(f.loop, 10);
  assert_int_equal(endless_cancels, 1);
  fx_close(&f);
}

static int done_calls;
static void on_done(ra_http_server *srv, void *ud) { done_calls++; }

static void test_shutdown(void **state) {
  fx f;
  fx_open(&f, 0);
  int idle = client(f.port);
  turns(&f, 5);
  send_all(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  char buf[2048];
  read_until(&f, idle, buf, sizeof buf, "world");
  done_calls = 0;
  ra_http_server_shutdown(f.srv, 2000, on_done, NULL);
  /* the idle keep-alive connection is closed at once (we see EOF) */
  ssize_t n = -1;
  for (int i = 0; i < 500; i++) {
    n = read(idle, buf, sizeof buf);
    if (n >= 0) break;
    ra_loop_run_once(f.loop, 2);
  }
  assert_int_equal(n, 0);
  /* once we close too, the server's lingering close ends: done */
  close(idle);
  for (int i = 0; i < 500 && !done_calls; i++) ra_loop_run_once(f.loop, 2);
  assert_int_equal(done_calls, 1);
  /* the listener is gone */
  int late = client(f.port);
  if (late >= 0) {
    for (int i = 0; i < 50; i++) ra_loop_run_once(f.loop, 2);
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(late, SOL_SOCKET, SO_ERROR, &err, &el);
    assert_int_equal(err, ECONNREFUSED);
    close(late);
  }
  fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_and_cap),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_upgrade_connection_gone),
      cmocka_unit_test(test_paced_stream),
      cmocka_unit_test(test_write_timeout),
      cmocka_unit_test(test_shutdown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
