/* tests/serve/serve_tls_test.c: ra_service with a TLS-only listener from
 * in-memory certificates (the way an RA-TLS certificate made at start-up
 * is given): an HTTPS GET answered, a reload swapping the certificate, a
 * bad key refused at start with RA_ERR_TLS_CONFIG. */
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
#include "tests/tls/certgen.h"

static test_cert g_a, g_b;

static void hello(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "world"); }

typedef struct probe {
  ra_service *svc;
  ra_stream *s;
  char reply[512];
  size_t n;
  X509 *peer; /* the certificate served */
  int status;
  bool stop;
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
    if (p->stop) ra_service_stop(p->svc);
  }
  return len;
}
static void probe_close(ra_stream *s, int err, void *ud) {}
static const ra_stream_cbs probe_cbs = {.on_read = probe_read, .on_close = probe_close};

static void probe_connected(ra_stream *s, int status, void *ud) {
  probe *p = ud;
  p->status = status;
  if (status) {
    ra_service_stop(p->svc);
    return;
  }
  p->peer = X509_dup(ra_stream_tls_peer_cert(s));
  static const char get[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(ra_stream_write(s, get, sizeof get - 1), 0);
}

static void serves_https_and_reloads(void **state) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  ra_route(r, "GET", "/hello", hello, NULL);
  const char *listen[] = {"127.0.0.1:0"};
  ra_tls_cert cert = {.cert = g_a.cert, .key = g_a.key};
  ra_tls_server_opts tls = {.certs = &cert, .ncerts = 1};
  ra_serve_opts o = {.listen_tls = listen, .n_listen_tls = 1, .tls = &tls, .tee = "none"};
  ra_service *svc;
  assert_int_equal(ra_service_new(r, &o, &svc), 0);
  ra_http_server *http = ra_service_http(svc);
  uint16_t port = ra_http_server_tls_port(http);
  assert_true(port > 0);
  assert_int_equal(ra_http_server_port(http), port); /* TLS only: no plain listener */

  ra_tls_client_opts co = {.insecure_skip_verify = true};
  ra_tls_ctx *cli;
  assert_int_equal(ra_tls_client_ctx_new(&co, &cli, NULL, 0), 0);
  ra_loop *loop = ra_service_loop(svc);
  probe p1 = {.svc = svc};
  assert_int_equal(ra_stream_connect_tls(loop, "127.0.0.1", port, cli, NULL, &probe_cbs,
                                         probe_connected, &p1), 0);
  while (!strstr(p1.reply, "world") && !p1.status) assert_true(ra_loop_run_once(loop, 1000) >= 0);
  assert_int_equal(p1.status, 0);
  assert_non_null(strstr(p1.reply, "HTTP/1.1 200"));
  assert_int_equal(X509_cmp(p1.peer, g_a.cert), 0);

  /* reload with b's certificate (what SIGHUP does) */
  cert.cert = g_b.cert;
  cert.key = g_b.key;
  assert_int_equal(ra_service_reload_tls(svc), 0);
  cert.key = g_a.key; /* a mismatched pair: refused, b stays */
  assert_int_equal(ra_service_reload_tls(svc), RA_ERR_TLS_CONFIG);
  probe p2 = {.svc = svc, .stop = true};
  assert_int_equal(ra_stream_connect_tls(loop, "127.0.0.1", port, cli, NULL, &probe_cbs,
                                         probe_connected, &p2), 0);
  assert_int_equal(ra_service_run(svc), 0);
  assert_int_equal(p2.status, 0);
  assert_non_null(strstr(p2.reply, "HTTP/1.1 200"));
  assert_int_equal(X509_cmp(p2.peer, g_b.cert), 0);
  X509_free(p1.peer);
  X509_free(p2.peer);
  ra_tls_ctx_unref(cli);
  ra_service_free(svc);
  ra_router_free(r);
}

static void bad_certificate_fails(void **state) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  const char *listen[] = {"127.0.0.1:0"};
  ra_tls_cert cert = {.cert = g_a.cert, .key = g_b.key};
  ra_tls_server_opts tls = {.certs = &cert, .ncerts = 1};
  ra_serve_opts o = {.listen_tls = listen, .n_listen_tls = 1, .tls = &tls, .tee = "none"};
  ra_service *svc = (ra_service *)&svc;
  assert_int_equal(ra_service_new(r, &o, &svc), RA_ERR_TLS_CONFIG);
  assert_null(svc);
  o.tls = NULL;
  assert_int_equal(ra_service_new(r, &o, &svc), -EINVAL);
  assert_null(svc);
  ra_router_free(r);
}

static int setup(void **state) {
  if (!test_cert_make(&g_a, "a.test", -1, 30) || !test_cert_make(&g_b, "b.test", -1, 30)) return -1;
  return 0;
}
static int teardown(void **state) {
  test_cert_free(&g_a);
  test_cert_free(&g_b);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(serves_https_and_reloads),
      cmocka_unit_test(bad_certificate_fails),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
