/* tests/apps/workers/lb_c_client.c: the C tunnel client (attest/tunnel/
 * client.h, reconnect on) through an L4 balancer in front of two ra-hello
 * backends. Usage: lb-c-client LB_ORIGIN A_ORIGIN B_ORIGIN PID_A SIM_DIR N
 * A tunnel's backend is the X25519 key of its server_kx (each backend has
 * its own; learnt first by connecting to A and B directly). N clients
 * through the balancer each fetch /delay?ms=40..100 in a loop (in flight
 * most of the time); after a second,
 * backend A is killed (SIGKILL); 2.5 s later the run ends. Checks: both
 * backends had tunnels; those on B had no failure and no second handshake;
 * those on A made a new handshake (a new key, the quote verified again) and
 * succeeded again, on B. Prints one summary line; exit 1 on failure. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop.h"
#include "raloop/attest/quote/sim.h"

#define MAXC 64

typedef struct cl {
  ra_tunnel_client *c;
  int first, now;        /* backend: 0 A, 1 B, -1 unknown */
  int handshakes, ok, failed, ok_after_kill;
  bool busy;
} cl;

static ra_loop *loop;
static cl cls[MAXC];
static int n;
static uint8_t key_a[32], key_b[32];
static bool killed;
static int pid_a;

static int backend_of(ra_tunnel_client *c) {
  const uint8_t *k = ra_tunnel_client_server_key(c);
  if (!k) return -1;
  return memcmp(k, key_a, 32) == 0 ? 0 : memcmp(k, key_b, 32) == 0 ? 1 : -1;
}

static void on_ready(ra_tunnel_client *c, int status, const ra_verdict *vd, void *ud) {
  cl *x = ud;
  if (status) return; /* a failed attempt (A gone): the client retries */
  x->handshakes++;
  x->now = backend_of(c);
  if (x->first < 0) x->first = x->now;
}

static void on_fetch(ra_tunnel_client *c, int err, const ra_tunnel_response *res, const char *msg,
                     void *ud) {
  cl *x = ud;
  x->busy = false;
  if (!err && res->status == 200 && res->body_len == 2 && memcmp(res->body, "ok", 2) == 0) {
    x->ok++;
    if (killed) x->ok_after_kill++;
  } else {
    x->failed++;
  }
}

static void on_tick(ra_timer *t, void *ud) {
  for (int i = 0; i < n; i++) {
    cl *x = &cls[i];
    if (x->busy || !ra_tunnel_client_ready(x->c)) continue;
    /* a different pace per tunnel: they do not all sit idle at once */
    static const char *const urls[] = {"/delay?ms=40", "/delay?ms=50", "/delay?ms=60", "/delay?ms=70",
                                       "/delay?ms=80", "/delay?ms=90", "/delay?ms=100"};
    ra_tunnel_request rq = {.url = urls[i % 7], .timeout_ms = 5000};
    x->busy = true;
    if (ra_tunnel_fetch(x->c, &rq, on_fetch, x)) x->busy = false;
  }
}

static void on_kill(ra_timer *t, void *ud) {
  kill(pid_a, SIGKILL);
  killed = true;
}

static void on_end(ra_timer *t, void *ud) { ra_loop_stop(loop); }

/* Runs the loop until *flag or ms passed. */
static void run_until(bool (*done)(void), uint64_t ms) {
  uint64_t end = ra_loop_update_time(loop) + ms;
  while (!done() && ra_loop_update_time(loop) < end) ra_loop_run_once(loop, 20);
}

static ra_tunnel_client *probe;
static bool probe_ready(void) { return ra_tunnel_client_ready(probe); }
static int made; /* clients created so far */
static bool all_ready(void) {
  for (int i = 0; i < made; i++)
    if (!ra_tunnel_client_ready(cls[i].c)) return false;
  return true;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: lb-c-client LB A B PID_A SIM_DIR N\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  ra_log_set_level(RA_LOG_ERROR);
  pid_a = atoi(argv[4]);
  n = atoi(argv[6]);
  if (n < 2 || n > MAXC) return 2;
  ra_loop_new(&loop);
  ra_verifier *v;
  ra_verifier_new(0, &v);
  char root[4096];
  snprintf(root, sizeof root, "%s/%s", argv[5], RA_SIM_ROOT_FILE);
  if (ra_verifier_add_root_file(v, root) <= 0) {
    fprintf(stderr, "cannot load %s\n", root);
    return 2;
  }
  ra_tdx_expect ex;
  memset(&ex, 0, sizeof ex);
  memset(ex.mrtd, 0x5d, 48); /* the sim's default TD */
  ex.has = RA_TDX_MRTD;
  ra_policy pol;
  memset(&pol, 0, sizeof pol);
  pol.tdx = &ex;
  pol.n_tdx = 1;
  /* the backends' keys, directly */
  for (int b = 0; b < 2; b++) {
    ra_tunnel_client_opts o = {.verifier = v, .policy = &pol};
    if (ra_tunnel_client_new(loop, argv[2 + b], &o, &probe)) return 2;
    run_until(probe_ready, 10000);
    if (!ra_tunnel_client_ready(probe)) {
      fprintf(stderr, "backend %c: no tunnel\n", 'A' + b);
      return 1;
    }
    memcpy(b ? key_b : key_a, ra_tunnel_client_server_key(probe), 32);
    ra_tunnel_client_free(probe);
    for (int i = 0; i < 5; i++) ra_loop_run_once(loop, 10);
  }
  for (int i = 0; i < n; i++) {
    cls[i].first = cls[i].now = -1;
    ra_tunnel_client_opts o = {.verifier = v, .policy = &pol, .reconnect = true,
                               .reconnect_delay_ms = 50, .on_ready = on_ready, .ud = &cls[i]};
    if (ra_tunnel_client_new(loop, argv[1], &o, &cls[i].c)) return 2;
    made = i + 1;
    run_until(all_ready, 10000); /* one at a time: the balancer alternates */
  }
  ra_timer tick, tkill, tend;
  ra_timer_init(loop, &tick, on_tick, NULL);
  ra_timer_init(loop, &tkill, on_kill, NULL);
  ra_timer_init(loop, &tend, on_end, NULL);
  ra_timer_start(&tick, 5, 5);
  ra_timer_start(&tkill, 1000, 0);
  ra_timer_start(&tend, 3500, 0);
  ra_loop_run(loop);
  ra_timer_stop(&tick);
  int on_a = 0, on_b = 0, fa = 0, fb = 0, ok = 0, problems = 0;
  for (int i = 0; i < n; i++) {
    cl *x = &cls[i];
    ok += x->ok;
    if (x->first == 0) {
      on_a++;
      fa += x->failed;
      if (x->handshakes < 2 || x->now != 1 || !x->ok_after_kill) {
        printf("tunnel %d on A: %d handshakes, now on %d, %d ok after the kill\n", i, x->handshakes,
               x->now, x->ok_after_kill);
        problems++;
      }
    } else if (x->first == 1) {
      on_b++;
      fb += x->failed;
      if (x->failed || x->handshakes != 1) {
        printf("tunnel %d on B noticed: %d failed, %d handshakes\n", i, x->failed, x->handshakes);
        problems++;
      }
    } else {
      problems++;
    }
  }
  if (!on_a || !on_b) problems++;
  if (!fa) { /* requests take 40-100 ms: A's tunnels had some in flight when it died */
    printf("no request failed on A: none in flight?\n");
    problems++;
  }
  printf("C client: %d tunnels (%d on A, %d on B), %d ok, failed on A %d, on B %d, %d problem(s)\n", n,
         on_a, on_b, ok, fa, fb, problems);
  for (int i = 0; i < n; i++) ra_tunnel_client_free(cls[i].c);
  for (int i = 0; i < 20; i++) ra_loop_run_once(loop, 10); /* the control channels' closes */
  ra_verifier_free(v);
  ra_loop_free(loop);
  return problems ? 1 : 0;
}
