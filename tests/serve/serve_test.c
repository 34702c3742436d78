/* tests/serve/serve_test.c: ra_service assembles, serves and stops; bad
 * options fail with a code and leave nothing behind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop.h"

static void hello(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "world"); }

static char g_sim[64];

static int setup(void **state) {
  strcpy(g_sim, "/tmp/ra_serve_test_XXXXXX");
  assert_non_null(mkdtemp(g_sim));
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_sim);
  return system(cmd);
}

/* ---- a plain HTTP/1.1 GET from a child socket, answered by the service ---- */

typedef struct probe {
  ra_service *svc;
  ra_stream *s;
  char reply[512];
  size_t n;
} probe;

static size_t probe_read(ra_stream *s, const uint8_t *d, size_t len, void *ud) {
  probe *p = ud;
  size_t room = sizeof p->reply - 1 - p->n;
  size_t take = len < room ? len : room;
  memcpy(p->reply + p->n, d, take);
  p->n += take;
  p->reply[p->n] = 0;
  if (strstr(p->reply, "world")) {
    ra_stream_close(s);
    ra_service_stop(p->svc); /* graceful stop, as SIGTERM would */
  }
  return len;
}
static void probe_close(ra_stream *s, int err, void *ud) {}
static const ra_stream_cbs probe_cbs = {.on_read = probe_read, .on_close = probe_close};

static void probe_connected(ra_stream *s, int status, void *ud) {
  assert_int_equal(status, 0);
  static const char get[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(ra_stream_write(s, get, sizeof get - 1), 0);
}

static void serves_and_stops(void **state) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  ra_route(r, "GET", "/hello", hello, NULL);
  const char *listen[] = {"127.0.0.1:0"};
  ra_serve_opts o = {.listen = listen, .n_listen = 1, .tee = "sim", .sim_dir = g_sim};
  ra_service *svc;
  assert_int_equal(ra_service_new(r, &o, &svc), 0);
  assert_non_null(ra_service_tunnel(svc)); /* /__ra__ is served */
  uint16_t port = ra_http_server_port(ra_service_http(svc));
  assert_true(port > 0);
  probe p = {.svc = svc};
  assert_int_equal(ra_stream_connect(ra_service_loop(svc), "127.0.0.1", port, &probe_cbs,
                                     probe_connected, &p), 0);
  assert_int_equal(ra_service_run(svc), 0);
  assert_non_null(strstr(p.reply, "HTTP/1.1 200"));
  ra_service_free(svc);
  ra_router_free(r);
}

static void no_tunnel_with_tee_none(void **state) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  const char *listen[] = {"127.0.0.1:0"};
  ra_serve_opts o = {.listen = listen, .n_listen = 1, .tee = "none"};
  ra_service *svc;
  assert_int_equal(ra_service_new(r, &o, &svc), 0);
  assert_null(ra_service_tunnel(svc));
  ra_service_free(svc);
  ra_router_free(r);
}

static void bad_options_fail_cleanly(void **state) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  ra_service *svc = (ra_service *)&svc;
  const char *bad_addr[] = {"not-an-address"};
  ra_serve_opts o = {.listen = bad_addr, .n_listen = 1, .tee = "none"};
  assert_int_equal(ra_service_new(r, &o, &svc), -EINVAL);
  assert_null(svc);
  const char *listen[] = {"127.0.0.1:0"};
  ra_serve_opts t = {.listen = listen, .n_listen = 1, .tee = "quantum"};
  assert_int_equal(ra_service_new(r, &t, &svc), -EINVAL);
  assert_null(svc);
  ra_serve_opts f = {.listen = listen, .n_listen = 1, .tee = "file:/nonexistent/quote"};
  assert_int_equal(ra_service_new(r, &f, &svc), -ENOENT);
  assert_null(svc);
  ra_router_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(serves_and_stops),
      cmocka_unit_test(no_tunnel_with_tee_none),
      cmocka_unit_test(bad_options_fail_cleanly),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
