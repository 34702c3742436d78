/* tests/core/listen_test.c: listeners (v4, v6, port 0, unix, SO_REUSEPORT)
 * reached through ra_stream_connect, with an echo over the accepted stream. */
#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/error.h"
#include "raloop/core/listen.h"
#include "raloop/core/stream.h"

/* A server that echoes every stream, and a client that sends "ping" and
 * expects "ping" back, then closes. */
typedef struct echo {
  ra_loop *loop;
  ra_listener *l;
  int accepted;
  int family;      /* of the last peer */
  int server_closed;
  int client_status;
  int client_closed;
  char got[16];
  size_t got_len;
  ra_timer guard; /* fails the test instead of hanging */
} echo;

static size_t srv_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)ud;
  assert_int_equal(ra_stream_write(s, d, n), 0);
  return n;
}
static void srv_close(ra_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  ((echo *)ud)->server_closed++;
}
static const ra_stream_cbs srv_cbs = {srv_read, NULL, NULL, srv_close};

static void on_conn(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *ud) {
  echo *e = ud;
  assert_ptr_equal(l, e->l);
  assert_true(len > 0);
  e->family = peer->sa_family;
  e->accepted++;
  ra_stream *s;
  assert_int_equal(ra_stream_new(e->loop, fd, &srv_cbs, e, &s), 0);
}

static size_t cli_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  echo *e = ud;
  assert_true(e->got_len + n <= sizeof e->got);
  memcpy(e->got + e->got_len, d, n);
  e->got_len += n;
  if (e->got_len == 4) ra_stream_close(s);
  return n;
}
static void cli_close(ra_stream *s, int err, void *ud) {
  (void)s;
  assert_int_equal(err, 0);
  ((echo *)ud)->client_closed++;
}
static const ra_stream_cbs cli_cbs = {cli_read, NULL, NULL, cli_close};

static void on_connected(ra_stream *s, int status, void *ud) {
  echo *e = ud;
  e->client_status = status ? status : 1;
  if (status == 0) {
    assert_non_null(s);
    assert_int_equal(ra_stream_write(s, "ping", 4), 0);
  } else {
    assert_null(s);
  }
}

static void on_many_noop(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t len,
                         void *ud) {
  close(fd);
}

static void on_guard(ra_timer *t, void *ud) {
  (void)t;
  (void)ud;
  fail_msg("test timed out");
}

static void echo_init(echo *e) {
  memset(e, 0, sizeof *e);
  assert_int_equal(ra_loop_new(&e->loop), 0);
  assert_non_null(e->loop);
  ra_timer_init(e->loop, &e->guard, on_guard, e);
  ra_timer_unref(&e->guard);
  ra_timer_start(&e->guard, 10000, 0);
}

/* Runs until the client got its echo and both sides closed. */
static void echo_run(echo *e, const char *host, uint16_t port) {
  assert_int_equal(ra_stream_connect(e->loop, host, port, &cli_cbs, on_connected, e), 0);
  while (!(e->client_closed && e->server_closed) && e->client_status <= 1)
    assert_true(ra_loop_run_once(e->loop, 1000) >= 0);
  assert_int_equal(e->client_status, 1);
  assert_int_equal(e->got_len, 4);
  assert_memory_equal(e->got, "ping", 4);
}

static void echo_done(echo *e) {
  ra_timer_stop(&e->guard);
  ra_loop_free(e->loop);
}

static void test_v4_port0(void **state) {
  (void)state;
  echo e;
  echo_init(&e);
  assert_int_equal(ra_listen(e.loop, "127.0.0.1:0", NULL, on_conn, &e, &e.l), 0);
  uint16_t port = ra_listener_port(e.l);
  assert_true(port > 0);
  assert_true(ra_listener_fd(e.l) >= 0);
  echo_run(&e, "127.0.0.1", port);
  assert_int_equal(e.accepted, 1);
  assert_int_equal(e.family, AF_INET);
  /* and by name */
  e.client_closed = e.server_closed = e.client_status = 0;
  e.got_len = 0;
  echo_run(&e, "localhost", port);
  ra_listener_close(e.l);
  assert_int_equal(ra_loop_run(e.loop), 0);
  echo_done(&e);
}

static bool have_v6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in6 a = {0};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void test_v6(void **state) {
  (void)state;
  if (!have_v6()) skip();
  echo e;
  echo_init(&e);
  assert_int_equal(ra_listen(e.loop, "[::1]:0", NULL, on_conn, &e, &e.l), 0);
  uint16_t port = ra_listener_port(e.l);
  assert_true(port > 0);
  echo_run(&e, "::1", port);
  assert_int_equal(e.family, AF_INET6);
  e.client_closed = e.server_closed = e.client_status = 0;
  e.got_len = 0;
  echo_run(&e, "[::1]", port);
  ra_listener_close(e.l);
  echo_done(&e);
}

static void test_any_dual_stack(void **state) {
  (void)state;
  echo e;
  echo_init(&e);
  assert_int_equal(ra_listen(e.loop, ":0", NULL, on_conn, &e, &e.l), 0);
  uint16_t port = ra_listener_port(e.l);
  assert_true(port > 0);
  echo_run(&e, "127.0.0.1", port); /* v4 client on the dual-stack socket */
  if (have_v6()) {
    e.client_closed = e.server_closed = e.client_status = 0;
    e.got_len = 0;
    echo_run(&e, "::1", port);
  }
  ra_listener_close(e.l);
  echo_done(&e);
}

static void test_unix(void **state) {
  (void)state;
  echo e;
  echo_init(&e);
  char path[64], addr[80];
  snprintf(path, sizeof path, "/tmp/ra_listen_test_%d.sock", (int)getpid());
  snprintf(addr, sizeof addr, "unix:%s", path);
  /* a stale socket file is replaced */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un un = {0};
  un.sun_family = AF_UNIX;
  strcpy(un.sun_path, path);
  unlink(path);
  assert_int_equal(bind(s, (struct sockaddr *)&un, sizeof un), 0);
  close(s);
  assert_int_equal(ra_listen(e.loop, addr, NULL, on_conn, &e, &e.l), 0);
  assert_int_equal(ra_listener_port(e.l), 0);
  echo_run(&e, addr, 0);
  assert_int_equal(e.family, AF_UNIX);
  ra_listener_close(e.l);
  struct stat st;
  assert_int_equal(stat(path, &st), -1); /* removed on close */
  /* a regular file is not replaced */
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  ra_listener *l2 = NULL;
  assert_int_equal(ra_listen(e.loop, addr, NULL, on_conn, &e, &l2), -EADDRINUSE);
  assert_null(l2);
  unlink(path);
  echo_done(&e);
}

static void test_reuseport(void **state) {
  (void)state;
  echo e;
  echo_init(&e);
  ra_listen_opts o = {.reuseport = true};
  ra_listener *l1, *l2, *l3;
  assert_int_equal(ra_listen(e.loop, "127.0.0.1:0", &o, on_conn, &e, &l1), 0);
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", ra_listener_port(l1));
  assert_int_equal(ra_listen(e.loop, addr, &o, on_conn, &e, &l2), 0);
  assert_int_equal(ra_listener_port(l2), ra_listener_port(l1));
  /* without the option the port is taken */
  assert_int_equal(ra_listen(e.loop, addr, NULL, on_conn, &e, &l3), -EADDRINUSE);
  /* connections reach one of the two; close l1 and they reach l2 */
  e.l = NULL;
  ra_listener_close(l1);
  e.l = l2;
  echo_run(&e, "127.0.0.1", ra_listener_port(l2));
  assert_int_equal(e.accepted, 1);
  ra_listener_close(l2);
  echo_done(&e);
}

static void test_vsock(void **state) {
  (void)state;
  int probe = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (probe < 0) skip(); /* no vsock in this kernel */
  close(probe);
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_listener *l = NULL;
  char addr[48];
  unsigned port = 40000 + (unsigned)getpid() % 20000;
  snprintf(addr, sizeof addr, "vsock::%u", port);
  int rc = ra_listen(loop, addr, NULL, on_many_noop, NULL, &l);
  if (rc == -EADDRNOTAVAIL || rc == -ENODEV || rc == -EAFNOSUPPORT) skip(); /* no transport */
  assert_int_equal(rc, 0);
  struct sockaddr_vm vm;
  socklen_t vl = sizeof vm;
  assert_int_equal(getsockname(ra_listener_fd(l), (struct sockaddr *)&vm, &vl), 0);
  assert_int_equal(vm.svm_family, AF_VSOCK);
  assert_int_equal(vm.svm_port, port);
  assert_int_equal(ra_listener_port(l), 0);
  ra_listener_close(l);
  snprintf(addr, sizeof addr, "vsock:-1:%u", port);
  assert_int_equal(ra_listen(loop, addr, NULL, on_many_noop, NULL, &l), 0);
  ra_listener_close(l);
  const char *bad[] = {"vsock:", "vsock:1", "vsock:x:1", "vsock:1:", "vsock:1:99999999999", "vsock:1:2x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(ra_listen(loop, bad[i], NULL, on_many_noop, NULL, &l), -EINVAL);
  assert_int_equal(ra_loop_run(loop), 0);
  ra_loop_free(loop);
}

static void test_bad_addresses(void **state) {
  (void)state;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_listener *l = (ra_listener *)1;
  const char *bad[] = {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:12x",
                       "::1:80", "[::1]80", "[::1", "[nothost]:80", "unix:"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(ra_listen(loop, bad[i], NULL, on_conn, NULL, &l), -EINVAL);
    assert_null(l);
  }
  assert_int_equal(ra_listen(loop, "no.such.host.invalid:80", NULL, on_conn, NULL, &l),
                   -EADDRNOTAVAIL);
  assert_int_equal(ra_listen(loop, "192.0.2.1:0", NULL, on_conn, NULL, &l), -EADDRNOTAVAIL);
  /* connect errors: refused (either at once or through the callback) */
  ra_listener *tmp;
  assert_int_equal(ra_listen(loop, "127.0.0.1:0", NULL, on_conn, NULL, &tmp), 0);
  uint16_t port = ra_listener_port(tmp);
  ra_listener_close(tmp);
  echo e = {0};
  int rc = ra_stream_connect(loop, "127.0.0.1", port, &cli_cbs, on_connected, &e);
  if (rc == 0) {
    assert_int_equal(ra_loop_run(loop), 0);
    assert_int_equal(e.client_status, -ECONNREFUSED);
  } else {
    assert_int_equal(rc, -ECONNREFUSED);
  }
  /* a name resolves off the loop's thread: its failure comes through on_connect */
  e.client_status = 0;
  assert_int_equal(ra_stream_connect(loop, "no.such.host.invalid", 80, &cli_cbs, on_connected, &e), 0);
  assert_int_equal(ra_loop_run(loop), 0);
  assert_int_equal(e.client_status, RA_ERR_HOST_UNKNOWN);
  assert_int_equal(ra_stream_connect(loop, "unix:/nonexistent/x.sock", 0, &cli_cbs, on_connected, &e),
                   -ENOENT);
  ra_loop_free(loop);
}

/* ---- accept batches, pause, close inside the callback, EMFILE ---------- */

typedef struct many {
  ra_loop *loop;
  ra_listener *l;
  int accepted;
  int close_at; /* close the listener from the callback at this count */
} many;

static void on_many(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *ud) {
  many *m = ud;
  close(fd);
  if (++m->accepted == m->close_at) ra_listener_close(l);
}

static int connect_blocking(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void test_accept_batch_pause_close(void **state) {
  (void)state;
  many m = {0};
  assert_int_equal(ra_loop_new(&m.loop), 0);
  assert_int_equal(ra_listen(m.loop, "127.0.0.1:0", NULL, on_many, &m, &m.l), 0);
  uint16_t port = ra_listener_port(m.l);
  int c[100];
  for (int i = 0; i < 100; i++) c[i] = connect_blocking(port);
  /* one readiness event accepts at most 64 */
  assert_int_equal(ra_loop_run_once(m.loop, 1000), 1);
  assert_int_equal(m.accepted, 64);
  ra_listener_pause(m.l);
  assert_int_equal(ra_loop_run_once(m.loop, 20), 0);
  assert_int_equal(m.accepted, 64);
  ra_listener_resume(m.l);
  m.close_at = 80; /* closing from inside the batch is safe */
  assert_int_equal(ra_loop_run_once(m.loop, 1000), 1);
  assert_int_equal(m.accepted, 80);
  assert_int_equal(ra_loop_run(m.loop), 0);
  for (int i = 0; i < 100; i++) close(c[i]);
  ra_loop_free(m.loop);
}

static void test_emfile(void **state) {
  (void)state;
  struct rlimit old, lim;
  getrlimit(RLIMIT_NOFILE, &old);
  many m = {0};
  assert_int_equal(ra_loop_new(&m.loop), 0);
  assert_int_equal(ra_listen(m.loop, "127.0.0.1:0", NULL, on_many, &m, &m.l), 0);
  uint16_t port = ra_listener_port(m.l);
  int c1 = connect_blocking(port);
  int c2 = connect_blocking(port);
  /* use up every descriptor */
  int fill[4096], nfill = 0;
  lim = old;
  lim.rlim_cur = 256 < old.rlim_cur ? 256 : old.rlim_cur;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
  int f;
  while (nfill < 4096 && (f = dup(ra_listener_fd(m.l))) >= 0) fill[nfill++] = f;
  assert_int_equal(errno, EMFILE);
  /* the listener pauses instead of spinning: one turn, no accept, and the
   * next turns sleep (the retry timer) rather than report the listener */
  int spins = 0;
  for (int i = 0; i < 5; i++) spins += ra_loop_run_once(m.loop, 0);
  assert_true(spins <= 1);
  assert_int_equal(m.accepted, 0);
  for (int i = 0; i < nfill; i++) close(fill[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  /* after the pause it accepts both */
  m.close_at = 2;
  assert_int_equal(ra_loop_run(m.loop), 0);
  assert_int_equal(m.accepted, 2);
  close(c1);
  close(c2);
  ra_loop_free(m.loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_v4_port0),
      cmocka_unit_test(test_v6),
      cmocka_unit_test(test_any_dual_stack),
      cmocka_unit_test(test_unix),
      cmocka_unit_test(test_reuseport),
      cmocka_unit_test(test_vsock),
      cmocka_unit_test(test_bad_addresses),
      cmocka_unit_test(test_accept_batch_pause_close),
      cmocka_unit_test(test_emfile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
