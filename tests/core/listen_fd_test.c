/* tests/core/listen_fd_test.c: ra_listen("fd:N") adopts an inherited
 * listening socket (serve/workers.c): its port, connections accepted from
 * the loop (also ones queued before the adoption), the descriptor owned and
 * closed by the listener; what is not a listening socket is refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/listen.h"

static int accepted;
static void on_conn(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *ud) {
  accepted++;
  close(fd);
  if (accepted == 2) ra_loop_stop(ud);
}

static int listening_socket(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0); /* blocking, inheritable: as a supervisor's */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void adopts(void **state) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  uint16_t port;
  int fd = listening_socket(&port);
  int early = connect_to(port); /* queued before anybody accepts */
  char addr[32];
  snprintf(addr, sizeof addr, "fd:%d", fd);
  ra_listener *l;
  assert_int_equal(ra_listen(loop, addr, NULL, on_conn, loop, &l), 0);
  assert_int_equal(ra_listener_port(l), port);
  assert_int_equal(ra_listener_fd(l), fd);
  assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  int late = connect_to(port);
  accepted = 0;
  assert_int_equal(ra_loop_run(loop), 0);
  assert_int_equal(accepted, 2);
  ra_listener_close(l);
  assert_int_equal(fcntl(fd, F_GETFD), -1); /* the listener closed it */
  close(early);
  close(late);
  ra_loop_free(loop);
}

static void refuses(void **state) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_listener *l;
  int s = socket(AF_INET, SOCK_STREAM, 0); /* not listening */
  char addr[32];
  snprintf(addr, sizeof addr, "fd:%d", s);
  assert_int_equal(ra_listen(loop, addr, NULL, on_conn, loop, &l), -EINVAL);
  assert_null(l);
  assert_true(fcntl(s, F_GETFD) >= 0); /* not taken */
  close(s);
  assert_int_equal(ra_listen(loop, "fd:", NULL, on_conn, loop, &l), -EINVAL);
  assert_int_equal(ra_listen(loop, "fd:3x", NULL, on_conn, loop, &l), -EINVAL);
  assert_int_equal(ra_listen(loop, "fd:-1", NULL, on_conn, loop, &l), -EINVAL);
  assert_int_equal(ra_listen(loop, "fd:999999", NULL, on_conn, loop, &l), -EBADF);
  ra_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(adopts), cmocka_unit_test(refuses)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
