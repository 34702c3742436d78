/* tests/attest/tunnel/client_att_test.c: the client's own attestation
 * (PROTOCOL.md §10) made off the loop: a client provider that takes 300 ms
 * (the simulated TEE behind a delay) while the loop serves on; a quote for
 * a client freed meanwhile is waited for and dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/attest/tunnel/server.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/http/router.h"
#include "tests/attest/tunnel/slow_provider.h"
#include "raloop/http/server.h"


typedef struct fx {
  char dir[64], origin[64];
  ra_loop *loop;
  ra_router *router;
  ra_http_server *http;
  ra_tunnel_server *ts;
  ra_verifier *v, *cv; /* the client's verifier of the server; the server's of clients */
  ra_tunnel_client_policy cp;
  ra_quote_provider *client_prov;
  slow *slow;
  ra_timer tick;
  int ticks;
} fx;

static void on_tick(ra_timer *t, void *ud) {
  (void)t;
  ((fx *)ud)->ticks++;
}

static void whoami(ra_req *req, ra_res *res, void *ud) {
  (void)ud;
  ra_res_send_text(res, 200, ra_req_client_identity(req) ? "attested client" : "anonymous");
}

static int setup(void **st) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/ra-client-att-XXXXXX");
  if (!f || !mkdtemp(f->dir)) return -1;
  char sim[128], root[192];
  snprintf(sim, sizeof sim, "%s/sim", f->dir);
  snprintf(root, sizeof root, "%s/%s", sim, RA_SIM_ROOT_FILE);
  ra_log_set_level(RA_LOG_OFF);
  assert_int_equal(ra_loop_new(&f->loop), 0);
  assert_int_equal(ra_router_new(&f->router), 0);
  assert_int_equal(ra_route_ex(f->router, "GET", "/whoami", whoami, NULL, RA_ROUTE_CLIENT_ATTESTED), 0);
  ra_quote_provider *sp;
  assert_int_equal(ra_quote_provider_sim(sim, &sp), 0);
  /* clients are checked against the same simulated root, signatures only */
  assert_int_equal(ra_verifier_new(0, &f->cv), 0);
  assert_true(ra_verifier_add_root_file(f->cv, root) > 0);
  f->cp.verifier = f->cv;
  f->cp.policy.signature_only = true;
  ra_tunnel_server_opts o = {.client_policy = &f->cp};
  assert_int_equal(ra_tunnel_server_new(f->loop, f->router, sp, &o, &f->ts), 0);
  ra_quote_provider_free(sp);
  assert_int_equal(ra_http_server_new(f->loop, f->router, NULL, &f->http), 0);
  assert_int_equal(ra_http_server_listen(f->http, "127.0.0.1:0", NULL), 0);
  snprintf(f->origin, sizeof f->origin, "http://127.0.0.1:%u", ra_http_server_port(f->http));
  assert_int_equal(ra_verifier_new(0, &f->v), 0);
  assert_true(ra_verifier_add_root_file(f->v, root) > 0);
  /* the client's own provider: the same sim, 300 ms per quote */
  assert_int_equal(slow_provider_new(sim, 300, &f->slow, &f->client_prov), 0);
  ra_timer_init(f->loop, &f->tick, on_tick, f);
  ra_timer_unref(&f->tick);
  ra_timer_start(&f->tick, 10, 10);
  *st = f;
  return 0;
}

static int teardown(void **st) {
  fx *f = *st;
  ra_timer_stop(&f->tick);
  ra_http_server_free(f->http);
  ra_tunnel_server_free(f->ts);
  for (int i = 0; i < 5; i++) ra_loop_run_once(f->loop, 5);
  ra_router_free(f->router);
  ra_loop_free(f->loop);
  ra_verifier_free(f->v);
  ra_verifier_free(f->cv);
  ra_quote_provider_free(f->client_prov);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->dir);
  free(f);
  return 0;
}

typedef struct got {
  bool done;
  int err, status, ticks_at;
  char body[64];
} got;

static int g_ticks;
static void on_resp(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  (void)c, (void)msg;
  got *g = ud;
  g->done = true;
  g->err = err;
  g->ticks_at = g_ticks;
  if (!err) {
    g->status = r->status;
    snprintf(g->body, sizeof g->body, "%.*s", (int)r->body_len, (const char *)r->body);
  }
}

static ra_tunnel_client *client(fx *f) {
  ra_tunnel_client_opts o = {.verifier = f->v, .client_provider = f->client_prov};
  ra_tunnel_client *c;
  assert_int_equal(ra_tunnel_client_new(f->loop, f->origin, &o, &c), 0);
  return c;
}

/* The handshake waits 300 ms for the client's quote; the loop's timer
 * fires through it; the attested route then answers the attested client. */
static void test_client_quote_off_the_loop(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f);
  got g = {0};
  ra_tunnel_request q = {.url = "/whoami"};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  for (int i = 0; i < 400 && !g.done; i++) {
    ra_loop_run_once(f->loop, 50);
    g_ticks = f->ticks;
  }
  assert_true(g.done);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  assert_string_equal(g.body, "attested client");
  assert_int_equal(atomic_load(&f->slow->calls), 1);
  assert_false(pthread_equal(f->slow->last_thread, pthread_self()));
  assert_true(f->ticks >= 20); /* the loop turned while the quote was made */
  ra_tunnel_client_free(c);
}

/* Freed while its quote is being made: free waits for the provider, the
 * quote is dropped, nothing is sent, nothing leaks (ASan). */
static void test_free_while_quoting(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f);
  got g = {0};
  ra_tunnel_request q = {.url = "/whoami"};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  for (int i = 0; i < 400 && atomic_load(&f->slow->calls) == 0; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(atomic_load(&f->slow->calls), 1); /* the quote is being made */
  assert_int_equal(atomic_load(&f->slow->finished), 0);
  ra_tunnel_client_free(c);
  assert_int_equal(atomic_load(&f->slow->finished), 1); /* free waited for the provider */
  assert_true(g.done);
  assert_int_equal(g.err, -ECANCELED);
  for (int i = 0; i < 20; i++) ra_loop_run_once(f->loop, 10);
  ra_tunnel_stats s;
  ra_tunnel_server_stats(f->ts, &s);
  assert_int_equal(s.keyed, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_client_quote_off_the_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_while_quoting, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
