/* tests/serve/drain_test.c: ra_service's graceful stop drains the attested
 * tunnel too (issue 10): a tunnelled request in flight when the stop
 * starts is answered, within the same deadline as plain ones. In process,
 * over loopback, with the simulated TEE and our tunnel client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/core/log.h"
#include "raloop/serve/serve.h"

static ra_res *g_held;
static void hold(ra_req *req, ra_res *res, void *ud) { g_held = res; }

typedef struct got {
  bool done;
  int err, status;
  char body[64];
} got;
static void on_resp(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  got *g = ud;
  g->done = true;
  g->err = err;
  if (!err) {
    g->status = r->status;
    snprintf(g->body, sizeof g->body, "%.*s", (int)r->body_len, r->body ? (const char *)r->body : "");
  }
}

static void test_stop_answers_tunnelled_request(void **st) {
  (void)st;
  char dir[64] = "/tmp/ra-serve-test-XXXXXX", sim[128], root[192], origin[64];
  assert_non_null(mkdtemp(dir));
  snprintf(sim, sizeof sim, "%s/sim", dir);
  ra_log_set_level(RA_LOG_ERROR);
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  ra_route(r, "GET", "/hold", hold, NULL);
  static const char *const listen[] = {"127.0.0.1:0"};
  ra_serve_opts o = {.listen = listen, .n_listen = 1, .tee = "sim", .sim_dir = sim,
                     .shutdown_timeout_ms = 5000};
  ra_service *s;
  assert_int_equal(ra_service_new(r, &o, &s), 0);
  ra_loop *loop = ra_service_loop(s);
  snprintf(origin, sizeof origin, "http://127.0.0.1:%u", ra_http_server_port(ra_service_http(s)));
  ra_verifier *v;
  ra_verifier_new(0, &v);
  snprintf(root, sizeof root, "%s/%s", sim, RA_SIM_ROOT_FILE);
  assert_true(ra_verifier_add_root_file(v, root) > 0);
  ra_tunnel_client_opts co = {.verifier = v};
  ra_tunnel_client *c;
  assert_int_equal(ra_tunnel_client_new(loop, origin, &co, &c), 0);
  got g = {0};
  ra_tunnel_request q = {.url = "/hold", .timeout_ms = 5000};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  for (int i = 0; i < 2000 && !g_held; i++) ra_loop_run_once(loop, 5);
  assert_non_null(g_held);
  ra_service_stop(s);
  for (int i = 0; i < 20; i++) ra_loop_run_once(loop, 5);
  assert_false(g.done); /* not cut */
  ra_res_send_text(g_held, 200, "answered");
  g_held = NULL;
  for (int i = 0; i < 2000 && !g.done; i++) ra_loop_run_once(loop, 5);
  assert_true(g.done);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  assert_string_equal(g.body, "answered");
  /* then the tunnel server is drained and freed */
  for (int i = 0; i < 2000 && ra_service_tunnel(s); i++) ra_loop_run_once(loop, 5);
  assert_null(ra_service_tunnel(s));
  ra_tunnel_client_free(c);
  /* the closing handshakes finish (ra_service_run's loop would end then) */
  for (int i = 0; i < 50; i++) ra_loop_run_once(loop, 5);
  ra_service_free(s);
  ra_router_free(r);
  ra_verifier_free(v);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_stop_answers_tunnelled_request),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
