/* tunnel-rotate-check: key rotation end to end in one process (issue 17):
 * our tunnel server (simulated TEE, provider adopted, short grace and drain)
 * and our C tunnel client on loopback.
 *   - a loop of GETs (4 in flight) across ra_tunnel_server_rotate, the old
 *     tunnel's grace, its drain (GETs refused with the rotation 503 while a
 *     POST holds it open) and the forced close 1012: zero failed GETs
 *   - the POST in flight at the forced close fails with -ECONNRESET and its
 *     handler ran once (not replayed)
 *   - the client rekeyed on its own (a second handshake, without the
 *     `reconnect` option) to the server's new key
 *   - stats: one rotation, one tunnel drained for it, and one key generation
 *     left once the old tunnel is gone (the old secret key wiped)
 *   - a scheduled rotation (key_lifetime_ms) runs; lifetime 0 stops them
 *   - a provider error keeps the current key and the tunnel goes on
 * Prints one line per check; exits 0 only if all passed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/attest/tunnel/server.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/http/response.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"

static int failures;
#define CHECK(cond, ...)                              \
  do {                                                \
    if (cond) printf("ok   " __VA_ARGS__);             \
    else { printf("FAIL " __VA_ARGS__); failures++; } \
    printf("\n");                                     \
  } while (0)

static ra_loop *loop;
static ra_tunnel_server *ts;
static ra_tunnel_client *cl;

static void h_hello(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "hi"); }
static int holds;
static ra_res *held;
static bool hold_cancelled;
static void hold_cancel(ra_res *res, void *ud) { hold_cancelled = true; }
static void h_hold(ra_req *req, ra_res *res, void *ud) {
  holds++;
  held = res;
  ra_res_on_cancel(res, hold_cancel, NULL);
}

static int readies, ready_fail;
static void on_ready(ra_tunnel_client *c, int status, const ra_verdict *vd, void *ud) {
  if (status) ready_fail++;
  else readies++;
}

static int get_ok, get_fail, gets_out;
static bool keep_going = true;
static char first_err[300];
static void get_more(void);
static void on_get(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  gets_out--;
  if (!err && r->status == 200) get_ok++;
  else {
    get_fail++;
    if (!first_err[0]) snprintf(first_err, sizeof first_err, "%d %d %s", err, err ? 0 : r->status, msg ? msg : "");
  }
  get_more();
}
static void get_more(void) {
  while (keep_going && gets_out < 4) {
    ra_tunnel_request q = {.method = "GET", .url = "/hello"};
    if (ra_tunnel_fetch(cl, &q, on_get, NULL)) { get_fail++; return; }
    gets_out++;
  }
}

static bool post_done;
static int post_err;
static char post_msg[300];
static void on_post(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  post_done = true;
  post_err = err ? err : r->status;
  snprintf(post_msg, sizeof post_msg, "%s", msg ? msg : "");
}

/* the sim provider, wrapped so that a rotation can be made to fail */
static bool provider_fails;
static int flaky_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  return provider_fails ? -EIO : ra_quote_provider_get(self, pub, ev);
}
static void flaky_free(void *self) { ra_quote_provider_free(self); }
static const ra_quote_provider_ops flaky_ops = {"flaky-sim", flaky_get, flaky_free};

static int rotate_rc = 1;
static uint64_t gens_after_rotate;
static void rotate_fire(ra_timer *t, void *ud) {
  rotate_rc = ra_tunnel_server_rotate(ts);
  ra_tunnel_stats st;
  ra_tunnel_server_stats(ts, &st);
  gens_after_rotate = st.key_generations;
}
static void stop_fire(ra_timer *t, void *ud) { keep_going = false; }
static void guard_fire(ra_timer *t, void *ud) { *(bool *)ud = true; ra_loop_stop(loop); }
static void tick_fire(ra_timer *t, void *ud) { ra_loop_stop(loop); }

/* Runs the loop until cond() or ms passed. */
static void run_until(bool (*cond)(void), uint64_t ms) {
  bool timeout = false;
  ra_timer g, tick;
  ra_timer_init(loop, &g, guard_fire, &timeout);
  ra_timer_start(&g, ms, 0);
  ra_timer_init(loop, &tick, tick_fire, NULL);
  ra_timer_start(&tick, 10, 10);
  while (!cond() && !timeout) ra_loop_run(loop);
  ra_timer_stop(&g);
  ra_timer_stop(&tick);
}
static bool is_ready(void) { return readies > 0 || ready_fail > 0; }
static bool all_done(void) { return !keep_going && !gets_out && post_done; }
static bool two_rotations(void) {
  ra_tunnel_stats st;
  ra_tunnel_server_stats(ts, &st);
  return st.rotations >= 2;
}
static bool no_gets_out(void) { return !gets_out; }
static bool one_gen(void) {
  ra_tunnel_stats st;
  ra_tunnel_server_stats(ts, &st);
  return st.key_generations == 1;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  char dir[] = "/tmp/ra-rotate-XXXXXX", sim[64], root[128];
  if (!mkdtemp(dir)) return 2;
  snprintf(sim, sizeof sim, "%s/sim", dir);
  snprintf(root, sizeof root, "%s/%s", sim, RA_SIM_ROOT_FILE);
  ra_log_set_level(RA_LOG_WARN);
  ra_loop_new(&loop);
  ra_router *router;
  ra_router_new(&router);
  ra_route(router, "GET", "/hello", h_hello, NULL);
  ra_route(router, "POST", "/hold", h_hold, NULL);
  ra_quote_provider *inner, *p;
  if (ra_quote_provider_sim(sim, &inner)) return 2;
  if (ra_quote_provider_new(&flaky_ops, inner, true, true, &p)) return 2;
  ra_tunnel_server_opts so = {.adopt_provider = true, .key_lifetime_ms = RA_TUNNEL_KEY_FOREVER,
                              .old_key_grace_ms = 600, .drain_timeout_ms = 800};
  if (ra_tunnel_server_new(loop, router, p, &so, &ts)) { ra_quote_provider_free(p); return 2; }
  ra_http_server *http;
  ra_http_server_new(loop, router, NULL, &http);
  if (ra_http_server_listen(http, "127.0.0.1:0", NULL)) return 2;
  char origin[64];
  snprintf(origin, sizeof origin, "http://127.0.0.1:%u", ra_http_server_port(http));

  ra_verifier *v;
  ra_verifier_new(0, &v);
  if (ra_verifier_add_root_file(v, root) <= 0) return 2;
  ra_policy pol;
  memset(&pol, 0, sizeof pol);
  ra_tunnel_client_opts co = {.verifier = v, .policy = &pol, .on_ready = on_ready};
  if (ra_tunnel_client_new(loop, origin, &co, &cl)) return 2;

  ra_tunnel_request hq = {.method = "GET", .url = "/hello"};
  gets_out++;
  ra_tunnel_fetch(cl, &hq, on_get, NULL);
  run_until(is_ready, 10000);
  CHECK(readies == 1, "first handshake");
  uint8_t pk1[32];
  memcpy(pk1, ra_tunnel_client_server_key(cl), 32);

  ra_tunnel_request pq = {.method = "POST", .url = "/hold", .has_body = true, .body = "x", .body_len = 1};
  ra_tunnel_fetch(cl, &pq, on_post, NULL);
  get_more();
  ra_timer rot, stop;
  ra_timer_init(loop, &rot, rotate_fire, NULL);
  ra_timer_start(&rot, 200, 0);
  ra_timer_init(loop, &stop, stop_fire, NULL);
  ra_timer_start(&stop, 2500, 0);
  run_until(all_done, 8000);
  CHECK(rotate_rc == 0, "ra_tunnel_server_rotate: %d", rotate_rc);
  CHECK(gens_after_rotate == 2, "two key generations while the old tunnel lives (%llu)",
        (unsigned long long)gens_after_rotate);
  CHECK(all_done(), "the GET loop and the POST ended");
  CHECK(get_fail == 0 && get_ok > 20, "GETs across the rotation: %d ok, %d failed %s", get_ok, get_fail, first_err);
  CHECK(post_done && post_err == -ECONNRESET, "the POST in flight at the forced close failed: %d %s", post_err,
        post_msg);
  CHECK(holds == 1, "the POST reached its handler once (not replayed): %d", holds);
  CHECK(hold_cancelled, "its response was cancelled with the tunnel");
  if (held) ra_res_send_text(held, 200, "late"); /* a late answer: frees it */
  CHECK(readies == 2 && !ready_fail, "the client rekeyed on its own (%d handshakes, %d failed)", readies, ready_fail);
  const uint8_t *pk2 = ra_tunnel_client_server_key(cl);
  CHECK(pk2 && memcmp(pk1, pk2, 32) && !memcmp(pk2, ra_tunnel_server_public_key(ts), 32),
        "the client now uses the server's new key");
  run_until(one_gen, 3000);
  ra_tunnel_stats st;
  ra_tunnel_server_stats(ts, &st);
  CHECK(st.rotations == 1 && st.tunnels_rekeyed == 1 && st.rotations_failed == 0,
        "stats: %llu rotation(s), %llu tunnel(s) drained for it", (unsigned long long)st.rotations,
        (unsigned long long)st.tunnels_rekeyed);
  CHECK(st.key_generations == 1, "the old key is gone (wiped) with its last tunnel: %llu generation(s)",
        (unsigned long long)st.key_generations);
  CHECK(st.key_age_ms < 10000, "key age reported: %llu ms", (unsigned long long)st.key_age_ms);


  /* on a schedule: key_lifetime_ms from a loop timer */
  CHECK(ra_tunnel_server_set_key_lifetime(ts, 150, 0) == 0, "ra_tunnel_server_set_key_lifetime");
  run_until(two_rotations, 3000);
  ra_tunnel_server_stats(ts, &st);
  CHECK(st.rotations >= 2 && st.key_age_ms < 1000, "a scheduled rotation ran: %llu rotation(s)",
        (unsigned long long)st.rotations);
  ra_tunnel_server_set_key_lifetime(ts, 0, 0); /* only on demand from now on */
  /* a provider error: the current key stays */
  uint8_t cur[32];
  memcpy(cur, ra_tunnel_server_public_key(ts), 32);
  ra_tunnel_server_stats(ts, &st);
  uint64_t gens = st.key_generations;
  provider_fails = true;
  int frc = ra_tunnel_server_rotate(ts);
  provider_fails = false;
  ra_tunnel_server_stats(ts, &st);
  CHECK(frc == -EIO && st.rotations_failed == 1 && !memcmp(cur, ra_tunnel_server_public_key(ts), 32) &&
            st.key_generations == gens,
        "a failed rotation (%d) keeps the current key", frc);
  ra_tunnel_request gq = {.method = "GET", .url = "/hello"};
  int before = get_ok;
  gets_out++;
  ra_tunnel_fetch(cl, &gq, on_get, NULL);
  run_until(no_gets_out, 5000);
  CHECK(get_ok == before + 1, "and the tunnel goes on");
  uint64_t n = st.rotations;
  bool never = false;
  ra_timer wait;
  ra_timer_init(loop, &wait, guard_fire, &never);
  ra_timer_start(&wait, 400, 0);
  while (!never) ra_loop_run(loop);
  ra_tunnel_server_stats(ts, &st);
  CHECK(st.rotations == n, "lifetime 0: no more scheduled rotations");

  ra_timer_stop(&rot);
  ra_timer_stop(&stop);
  ra_tunnel_client_free(cl);
  ra_timer done;
  ra_timer_init(loop, &done, tick_fire, NULL);
  ra_timer_start(&done, 100, 0);
  ra_loop_run(loop); /* the control channel's close */
  ra_tunnel_server_free(ts);
  ra_http_server_free(http);
  ra_router_free(router);
  ra_verifier_free(v);
  ra_loop_free(loop);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
  printf(failures ? "%d failure(s)\n" : "all passed\n", failures);
  return failures ? 1 : 0;
}
