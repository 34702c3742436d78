/* tests/serve/workers_test.c: ra_serve with workers = 2 and metrics, in a
 * child process (the supervisor): both workers answer (their PIDs differ),
 * GET /metrics sums both whichever answers, a bad address fails before
 * anything is forked, SIGTERM stops everything with exit status 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop.h"
#include "raloop/serve/workers.h"

static void h_pid(ra_req *req, ra_res *res, void *ud) { ra_res_sendf(res, 200, "%d", (int)getpid()); }

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* GET path on a new connection; the body into out. Returns the status, or
 * -1 if the connection failed. */
static int get(uint16_t port, const char *path, char *out, size_t outlen) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  static char buf[65536];
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
  close(fd);
  buf[got] = 0;
  int status = -1;
  if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) return -1;
  const char *body = strstr(buf, "\r\n\r\n");
  snprintf(out, outlen, "%s", body ? body + 4 : "");
  return status;
}

static pid_t start(uint16_t port, unsigned workers) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    ra_log_set_level(RA_LOG_WARN);
    ra_router *r;
    ra_router_new(&r);
    ra_route(r, "GET", "/pid", h_pid, NULL);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    const char *listen[] = {addr};
    const char *labels[] = {"GET /pid"};
    ra_serve_opts o = {.listen = listen, .n_listen = 1, .tee = "none", .workers = workers,
                       .metrics = true, .metrics_routes = labels, .n_metrics_routes = 1,
                       .shutdown_timeout_ms = 3000};
    int rc = ra_serve(r, &o);
    ra_router_free(r);
    _exit(rc == 0 ? 0 : 3);
  }
  char body[64];
  for (int i = 0; i < 200; i++) {
    if (get(port, "/pid", body, sizeof body) == 200) return pid;
    usleep(20000);
  }
  fail_msg("the service did not start");
  return -1;
}

static void two_workers_serve_and_stop(void **state) {
  uint16_t port = free_port();
  pid_t sup = start(port, 2);
  usleep(200000); /* both workers are up by now */
  int pids[2] = {0, 0}, distinct = 0;
  char body[65536];
  for (int i = 0; i < 40; i++) {
    assert_int_equal(get(port, "/pid", body, sizeof body), 200);
    int p = atoi(body);
    assert_true(p > 0 && p != sup);
    if (distinct < 2 && p != pids[0]) pids[distinct++] = p;
  }
  assert_int_equal(distinct, 2); /* the kernel spread 40 connections over both */
  /* the sum over both workers, whichever answers (1 + 40 requests, plus
   * this scrape not yet) */
  for (int i = 0; i < 4; i++) {
    assert_int_equal(get(port, "/metrics", body, sizeof body), 200);
    assert_non_null(strstr(body, "ra_http_requests_total{route=\"GET /pid\",status=\"200\",transport=\"http\"} 41\n"));
    assert_non_null(strstr(body, "\nra_workers 2\n"));
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(kill(sup, SIGTERM), 0);
  int status;
  assert_int_equal(waitpid(sup, &status, 0), sup);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_true(t1.tv_sec - t0.tv_sec < 4);
  for (int i = 0; i < 2; i++) assert_int_equal(kill(pids[i], 0), -1); /* the workers are gone */
  assert_int_equal(get(port, "/pid", body, sizeof body), -1);
}

static void bad_address_fails_before_forking(void **state) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  const char *listen[] = {"unix:/tmp/nope.sock"};
  ra_serve_opts o = {.listen = listen, .n_listen = 1, .tee = "none", .workers = 2};
  ra_log_set_level(RA_LOG_OFF);
  assert_int_equal(ra_serve(r, &o), -EINVAL);
  ra_log_set_level(RA_LOG_INFO);
  ra_router_free(r);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(two_workers_serve_and_stop),
      cmocka_unit_test(bad_address_fails_before_forking),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
