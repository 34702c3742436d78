/* tests/serve/metrics_test.c: serve/metrics.h without a server: route and
 * status labels (registered, "other"), histogram buckets (cumulative, on
 * their bounds), slots shared with a forked process and summed, a retired
 * slot's counters kept and its gauges dropped, route labels refused when
 * repeated or too many. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop.h"

static ra_req *mkreq(const char *method, const char *target) {
  ra_req *r;
  assert_int_equal(ra_req_new(ra_str_cstr(method), ra_str_cstr(target), 11, false, &r), 0);
  return r;
}

static void request(ra_metrics *m, const char *method, const char *target, int status, uint64_t us,
                    bool tunnel) {
  ra_req *r = mkreq(method, target);
  ra_metrics_request(m, r, status, us, tunnel);
  ra_req_free(r);
}

/* The rendered text, or fails. Caller frees. */
static char *render(ra_metrics *m) {
  char *t;
  size_t n;
  assert_int_equal(ra_metrics_render(m, &t, &n), 0);
  assert_int_equal(strlen(t), n);
  return t;
}

static void labels_and_buckets(void **state) {
  ra_metrics *m;
  assert_int_equal(ra_metrics_new(1, &m), 0);
  assert_int_equal(ra_metrics_add_route(m, "GET", "/hello"), 0);
  assert_int_equal(ra_metrics_add_route(m, "GET", "/hello"), -EEXIST);
  request(m, "GET", "/hello?x=1", 200, 100, false); /* the query is not the path */
  request(m, "GET", "/hello", 200, 101, false);
  request(m, "POST", "/hello", 405, 5, false);      /* another method: other */
  request(m, "GET", "/nope", 404, 3000000, false);  /* past the last bound: +Inf only */
  request(m, "GET", "/hello", 299, 7, true);        /* a status not in the list */
  char *t = render(m);
  assert_non_null(strstr(t, "ra_http_requests_total{route=\"GET /hello\",status=\"200\",transport=\"http\"} 2\n"));
  assert_non_null(strstr(t, "ra_http_requests_total{route=\"other\",status=\"405\",transport=\"http\"} 1\n"));
  assert_non_null(strstr(t, "ra_http_requests_total{route=\"other\",status=\"404\",transport=\"http\"} 1\n"));
  assert_non_null(strstr(t, "ra_http_requests_total{route=\"GET /hello\",status=\"other\",transport=\"tunnel\"} 1\n"));
  /* 100 us is in le=0.0001 (bounds are inclusive), 101 us is not */
  assert_non_null(strstr(t, "ra_http_request_duration_seconds_bucket{transport=\"http\",le=\"0.0001\"} 2\n"));
  assert_non_null(strstr(t, "ra_http_request_duration_seconds_bucket{transport=\"http\",le=\"0.00025\"} 3\n"));
  assert_non_null(strstr(t, "ra_http_request_duration_seconds_bucket{transport=\"http\",le=\"2.5\"} 3\n"));
  assert_non_null(strstr(t, "ra_http_request_duration_seconds_bucket{transport=\"http\",le=\"+Inf\"} 4\n"));
  assert_non_null(strstr(t, "ra_http_request_duration_seconds_count{transport=\"http\"} 4\n"));
  assert_non_null(strstr(t, "ra_http_request_duration_seconds_sum{transport=\"http\"} 3.000206\n"));
  assert_non_null(strstr(t, "\nra_workers 1\n"));
  assert_non_null(strstr(t, "\nra_tunnel_key_age_seconds 0\n")); /* no tunnel attached */
  free(t);
  ra_metrics_free(m);
}

static void too_many_routes(void **state) {
  ra_metrics *m;
  assert_int_equal(ra_metrics_new(1, &m), 0);
  char path[16];
  for (int i = 0; i < RA_METRICS_MAX_ROUTES; i++) {
    snprintf(path, sizeof path, "/r%d", i);
    assert_int_equal(ra_metrics_add_route(m, "GET", path), 0);
  }
  assert_int_equal(ra_metrics_add_route(m, "GET", "/more"), -ENOSPC);
  char longp[200];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  ra_metrics *m2;
  assert_int_equal(ra_metrics_new(1, &m2), 0);
  assert_int_equal(ra_metrics_add_route(m2, "GET", longp), -ENAMETOOLONG);
  ra_metrics_free(m2);
  assert_int_equal(ra_metrics_new(0, &m2), -EINVAL);
  assert_null(m2);
  ra_metrics_free(m);
}

static void shared_slots_and_retire(void **state) {
  ra_metrics *m;
  assert_int_equal(ra_metrics_new(4, &m), 0);
  assert_int_equal(ra_metrics_add_route(m, "GET", "/a"), 0);
  /* two "workers": forked processes writing slots 1 and 2 */
  for (unsigned w = 0; w < 2; w++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      ra_metrics_use_slot(m, w + 1, w);
      for (unsigned i = 0; i < 10 * (w + 1); i++) request(m, "GET", "/a", 200, 50, false);
      _exit(0); /* the slot stays "live" until the supervisor retires it */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  char *t = render(m); /* the parent reads both slots */
  assert_non_null(strstr(t, "ra_http_requests_total{route=\"GET /a\",status=\"200\",transport=\"http\"} 30\n"));
  assert_non_null(strstr(t, "\nra_workers 2\n"));
  free(t);
  ra_metrics_retire(m, 1); /* worker 0 is gone: its counters stay, its gauges go */
  t = render(m);
  assert_non_null(strstr(t, "ra_http_requests_total{route=\"GET /a\",status=\"200\",transport=\"http\"} 30\n"));
  assert_non_null(strstr(t, "\nra_workers 1\n"));
  free(t);
  /* a new process in slot 1 starts from zero and adds up */
  ra_metrics_use_slot(m, 1, 0);
  request(m, "GET", "/a", 200, 50, false);
  t = render(m);
  assert_non_null(strstr(t, "ra_http_requests_total{route=\"GET /a\",status=\"200\",transport=\"http\"} 31\n"));
  assert_non_null(strstr(t, "\nra_workers 2\n"));
  free(t);
  ra_metrics_retire(m, 99); /* out of range: ignored */
  ra_metrics_free(m);
}

static void attached_gauges(void **state) {
  ra_loop *loop;
  ra_router *r;
  ra_http_server *srv;
  assert_int_equal(ra_loop_new(&loop), 0);
  assert_int_equal(ra_router_new(&r), 0);
  assert_int_equal(ra_http_server_new(loop, r, NULL, &srv), 0);
  ra_metrics *m;
  assert_int_equal(ra_metrics_new(1, &m), 0);
  assert_int_equal(ra_metrics_attach(m, loop, srv, NULL), 0);
  char *t = render(m);
  assert_non_null(strstr(t, "\nra_http_connections 0\n"));
  assert_non_null(strstr(t, "# TYPE ra_http_bytes_received_total counter\n"));
  assert_non_null(strstr(t, "# TYPE ra_tunnels_open gauge\n"));
  free(t);
  ra_metrics_detach(m);
  ra_metrics_free(m);
  ra_http_server_free(srv);
  ra_router_free(r);
  ra_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(labels_and_buckets),
      cmocka_unit_test(too_many_routes),
      cmocka_unit_test(shared_slots_and_retire),
      cmocka_unit_test(attached_gauges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
