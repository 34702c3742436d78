/* tunnel-collateral-check: the tunnel client's PCCS path (opts.pccs_url)
 * through the C API, against ra-hello --tee sim and the PCS stand-in
 * (pcs_server.js serving the sim's collateral); collateral.sh sets the
 * stand-in's mode before each run.
 *
 *   tunnel-collateral-check MODE ORIGIN SIM_DIR PCCS_URL
 *     ok       requests made before the handshake wait for the fetch, then
 *              all succeed; on_ready once, status 0, the verdict UpToDate
 *     refuse   (the stand-in answers 404) on_ready -EACCES with
 *              RA_ERR_COLLATERAL_UNAVAILABLE and the collateral check
 *              failed; the pending request fails -EACCES
 *     cancel   (the stand-in never answers) the client is freed while the
 *              fetch is in flight: the request fails -ECANCELED, nothing
 *              else runs (ASan: nothing leaks)
 *     timeout  (never answers) connect_timeout_ms covers the fetch:
 *              on_ready -ETIMEDOUT, the request fails, no channel
 *     reuse    (ORIGIN: node_server.js, which has /drop) with reconnect: the
 *              tunnel drops, the fresh handshake verifies with the collateral
 *              kept from the first (collateral.sh checks the stand-in saw
 *              one fetch's four requests, the on-disk cache being off)
 *     einval   collateral and pccs_url together: -EINVAL
 * Prints one line per check; exits 0 only if all passed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/core/loop.h"

static int failures;
#define CHECK(cond, ...)                              \
  do {                                                \
    if (cond) printf("ok   " __VA_ARGS__);             \
    else { printf("FAIL " __VA_ARGS__); failures++; } \
    printf("\n");                                     \
  } while (0)

static ra_loop *loop;
static int n_ready, ready_status, ready_err, ready_coll_check;
static ra_tcb_status ready_tcb;
static bool ready_evaluated;
static int n_done, last_err, n_ok;

static void on_ready(ra_tunnel_client *c, int status, const ra_verdict *vd, void *ud) {
  (void)c, (void)ud;
  n_ready++;
  ready_status = status;
  if (vd) {
    ready_err = vd->err;
    ready_tcb = vd->tcb_status;
    ready_evaluated = vd->tcb_evaluated;
    ready_coll_check = vd->checks[RA_CHECK_COLLATERAL];
  }
}

static void on_resp(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  (void)c, (void)ud, (void)msg;
  n_done++;
  last_err = err;
  if (!err && r->status == 200) n_ok++;
}

static void stop(ra_timer *t, void *ud) { (void)t, (void)ud; ra_loop_stop(loop); }

/* Runs the loop until cond or ms pass. */
#define RUN_UNTIL(cond, ms)                                   \
  do {                                                        \
    ra_timer guard;                                           \
    ra_timer_init(loop, &guard, stop, NULL);                  \
    for (int _i = 0; _i < (ms) / 10 && !(cond); _i++) {       \
      ra_timer_start(&guard, 10, 0);                          \
      ra_loop_run(loop);                                      \
    }                                                         \
    ra_timer_stop(&guard);                                    \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: tunnel-collateral-check MODE ORIGIN SIM_DIR PCCS_URL\n");
    return 2;
  }
  const char *mode = argv[1], *origin = argv[2], *sim = argv[3], *pccs = argv[4];
  ra_loop_new(&loop);
  ra_verifier *v;
  ra_verifier_new(0, &v);
  char root[4096];
  snprintf(root, sizeof root, "%s/%s", sim, RA_SIM_ROOT_FILE);
  if (ra_verifier_add_root_file(v, root) <= 0) { fprintf(stderr, "cannot load %s\n", root); return 2; }
  ra_tunnel_client_opts o = {.verifier = v, .on_ready = on_ready, .pccs_url = pccs, .pccs_no_cache = true};
  if (!strcmp(mode, "timeout")) o.connect_timeout_ms = 400;
  if (!strcmp(mode, "reuse")) {
    o.reconnect = true;
    o.reconnect_delay_ms = 50;
  }
  ra_tunnel_client *c = NULL;
  if (!strcmp(mode, "einval")) {
    ra_collateral *dummy = (ra_collateral *)&o; /* never dereferenced: refused first */
    o.collateral = dummy;
    CHECK(ra_tunnel_client_new(loop, origin, &o, &c) == -EINVAL && !c,
          "collateral and pccs_url together: -EINVAL");
    goto out;
  }
  int rc = ra_tunnel_client_new(loop, origin, &o, &c);
  CHECK(rc == 0, "client created");
  if (rc) goto out;
  ra_tunnel_request req = {.url = "/hello"};
  int n = !strcmp(mode, "ok") ? 3 : 1;
  if (!strcmp(mode, "reuse")) {
    ra_tunnel_fetch(c, &req, on_resp, NULL);
    RUN_UNTIL(n_done == 1, 10000);
    CHECK(n_ok == 1 && n_ready == 1 && ready_status == 0 && ready_tcb == RA_TCB_UP_TO_DATE,
          "first handshake with fetched collateral (%s)", ra_tcb_status_name(ready_tcb));
    ra_tunnel_request drop = {.url = "/drop"};
    ra_tunnel_fetch(c, &drop, on_resp, NULL);
    RUN_UNTIL(n_done == 2, 10000);
    CHECK(last_err == -ECONNRESET, "the tunnel dropped (%d)", last_err);
    ready_tcb = RA_TCB_NONE;
    RUN_UNTIL(n_ready == 2, 10000);
    CHECK(n_ready == 2 && ready_status == 0 && ready_evaluated && ready_tcb == RA_TCB_UP_TO_DATE,
          "second handshake: TCB evaluated again, UpToDate (%d, %s)", ready_status,
          ra_tcb_status_name(ready_tcb));
    ra_tunnel_fetch(c, &req, on_resp, NULL);
    RUN_UNTIL(n_done == 3, 10000);
    CHECK(n_ok == 2, "a request over the new tunnel (%d)", n_ok);
    goto out;
  }
  for (int i = 0; i < n; i++) ra_tunnel_fetch(c, &req, on_resp, NULL);
  if (!strcmp(mode, "ok")) {
    RUN_UNTIL(n_done == 3, 10000);
    CHECK(n_ok == 3, "three requests made before the handshake all answered 200 (%d)", n_ok);
    CHECK(n_ready == 1 && ready_status == 0, "on_ready once, status 0 (%d, %d)", n_ready, ready_status);
    CHECK(ready_evaluated && ready_tcb == RA_TCB_UP_TO_DATE, "the verdict: TCB evaluated, UpToDate (%s)",
          ra_tcb_status_name(ready_tcb));
    const ra_verdict *vd = ra_tunnel_client_verdict(c);
    CHECK(vd && vd->checks[RA_CHECK_TCB_STATUS] == RA_CHECK_PASS, "ra_tunnel_client_verdict: tcb_status pass");
  } else if (!strcmp(mode, "refuse")) {
    RUN_UNTIL(n_done == 1, 10000);
    CHECK(n_ready == 1 && ready_status == -EACCES, "on_ready -EACCES (%d)", ready_status);
    CHECK(ready_err == RA_ERR_COLLATERAL_UNAVAILABLE, "the verdict: %s", ra_err_name(ready_err));
    CHECK(ready_coll_check == RA_CHECK_FAIL && !ready_evaluated, "the collateral check failed, TCB not evaluated");
    CHECK(n_done == 1 && last_err == -EACCES && n_ok == 0, "the pending request failed -EACCES (%d)", last_err);
    CHECK(!ra_tunnel_client_ready(c), "no channel");
  } else if (!strcmp(mode, "cancel")) {
    RUN_UNTIL(ra_tunnel_client_server_key(c) != NULL, 10000);
    CHECK(ra_tunnel_client_server_key(c) != NULL && n_ready == 0, "server_kx in, fetch in flight");
    RUN_UNTIL(false, 100);
    CHECK(n_ready == 0 && n_done == 0, "nothing finished while the PCCS is silent");
    ra_tunnel_client_free(c);
    c = NULL;
    CHECK(n_done == 1 && last_err == -ECANCELED, "free: the request failed -ECANCELED (%d)", last_err);
    RUN_UNTIL(false, 200);
    CHECK(n_ready == 0, "no callback after free");
  } else if (!strcmp(mode, "timeout")) {
    RUN_UNTIL(n_done == 1, 10000);
    CHECK(n_ready == 1 && ready_status == -ETIMEDOUT, "on_ready -ETIMEDOUT (%d)", ready_status);
    CHECK(n_done == 1 && last_err != 0 && n_ok == 0, "the request failed (%d)", last_err);
    CHECK(!ra_tunnel_client_ready(c), "no channel");
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    failures++;
  }
out:
  if (c) ra_tunnel_client_free(c);
  RUN_UNTIL(false, 100);
  ra_verifier_free(v);
  ra_loop_free(loop);
  return failures ? 1 : 0;
}
