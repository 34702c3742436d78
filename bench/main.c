/* bench/main.c: ra-bench, the tunnel-overhead benchmark (issue 6).
 *
 *   ra-bench [--scenario NAME]... [--tunnel|--plain|--both]
 *            [--trust-sim DIR] [--root PEM]... [--mrtd HEX] [--rtmr0..3 HEX]
 *            [--report-data HEX] [--no-binding] [--allow-debug] [--any-measurement-insecure]
 *            [--collateral PATH | --pccs URL [--collateral-cache DIR | --no-collateral-cache]
 *             [--ca-file PEM]] [--accept-tcb LIST] [--allow-advisory ID]...
 *            [--allow-expired-collateral] [--require-sept-ve-disable] [--allow-mr-servicetd]
 *            [--format table|csv|json] [--chart FILE.svg] [counts...] URL
 *
 * Scenarios (the reference's three, then two of ours):
 *   concurrent  N GET /hello issued at once (one tunnel / a pool of up to N
 *               keep-alive connections)                          [N = 100]
 *   serial      N GET /hello one after the other                 [N = 50]
 *   large       N POST /echo of 1 MiB each, the echo checked byte for byte,
 *               one after the other; plus the crypto floor ("floor")  [N = 50]
 *   throughput  C tunnels / connections, each with one request in flight,
 *               for D seconds in all: requests/s and latency [C = 32, D = 5]
 *   handshake   new tunnels (full handshake incl. quote verification) then
 *               one GET /hello each, C at a time; plain: new TCP connection
 *               + GET /hello with Connection: close        [N = 500, C = 4]
 * Each scenario starts with an uncounted warm-up on the same transport, then
 * runs R rounds (--rounds, default 5) alternating plain and tunnel so that
 * both see the same background load; a round of concurrent, serial and
 * large is the whole scenario (n = R x N samples), throughput and handshake
 * split their duration / count over the rounds. The rounds' samples are
 * pooled (--pick pool), or each mode reports its best round (--pick best:
 * lowest average, highest rate for throughput; n is then one round's) -- on
 * a machine shared with other jobs, the best round filters out the rounds a
 * neighbour disturbed, alike for both modes. Latency percentiles are taken
 * as the reference's benchmark takes them: sorted[floor(n * q)].
 * Exit status: 0, 1 when a request failed or a body did not verify, 2 for
 * bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sodium.h>

#include "apps/common/policy_flags.h"
#include "bench/bench.h"
#include "bench/floor.h"
#include "bench/http_client.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "bench/tunnel.h"
#include "raloop/core/log.h"

/* ---- helpers shared by the modules --------------------------------------------- */

int bench_parse_origin(const char *url, bench_origin *o) {
  memset(o, 0, sizeof *o);
  if (strncmp(url, "http://", 7) != 0) return -EINVAL;
  const char *h = url + 7, *end = h + strcspn(h, "/?#");
  const char *hs = h, *he, *colon;
  if (*h == '[') {
    he = memchr(h, ']', (size_t)(end - h));
    if (!he) return -EINVAL;
    hs = h + 1;
    colon = he + 1 < end && he[1] == ':' ? he + 1 : NULL;
    if (!colon && he + 1 != end) return -EINVAL;
  } else {
    colon = memchr(h, ':', (size_t)(end - h));
    he = colon ? colon : end;
  }
  size_t hl = (size_t)(he - hs);
  if (hl == 0 || hl >= sizeof o->host) return -EINVAL;
  memcpy(o->host, hs, hl);
  o->port = 80;
  if (colon) {
    long port = 0;
    const char *p = colon + 1;
    if (p == end) return -EINVAL;
    for (; p < end; p++) {
      if (*p < '0' || *p > '9') return -EINVAL;
      port = port * 10 + (*p - '0');
      if (port > 65535) return -EINVAL;
    }
    if (port == 0) return -EINVAL;
    o->port = (uint16_t)port;
  }
  snprintf(o->url, sizeof o->url, "http://%.*s", (int)(end - h), h);
  return 0;
}

int bench_run_until(ra_loop *loop, const bool *done, uint64_t timeout_ms) {
  uint64_t deadline = bench_now_ns() + timeout_ms * 1000000u;
  while (!*done) {
    uint64_t now = bench_now_ns();
    if (now >= deadline) return -ETIMEDOUT;
    uint64_t left_ms = (deadline - now) / 1000000u + 1;
    ra_loop_run_once(loop, left_ms > 100 ? 100 : (int)left_ms);
  }
  return 0;
}

/* ---- the runner: W closed-loop workers ---------------------------------------- *
 * Each worker issues a request, and when it completes, the next one, until
 * `limit` requests were issued or the deadline passed. concurrent is W = N
 * with limit N (all issued in one go); serial and large are W = 1;
 * throughput is W = C with a deadline; handshake is W = C with a limit. */

typedef struct run run;
typedef struct worker {
  run *r;
  uint64_t start;
  bool busy;
} worker;

struct run {
  bench_target *t;
  const bench_req *req;
  const uint8_t *expect; /* the body the response must carry */
  size_t expect_len;
  worker *w;
  size_t nw, limit, issued, done, inflight;
  uint64_t deadline_ns; /* 0: none */
  bench_samples *samples; /* NULL: warm-up */
  uint64_t first_ns, last_ns;
  int err;
  char errmsg[300];
  bool finished;
};

static void worker_issue(worker *w);

static void run_fail(run *r, int err, const char *fmt, const char *detail) {
  if (!r->err) {
    r->err = err ? err : -EIO;
    snprintf(r->errmsg, sizeof r->errmsg, fmt, detail);
  }
}

static void on_done(void *ud, int err, int status, const uint8_t *body, size_t len,
                    const char *errmsg) {
  worker *w = ud;
  run *r = w->r;
  uint64_t now = bench_now_ns();
  w->busy = false;
  r->inflight--;
  r->done++;
  r->last_ns = now;
  if (err) {
    run_fail(r, err, "request failed: %s", errmsg ? errmsg : strerror(-err));
  } else if (status != 200) {
    char s[16];
    snprintf(s, sizeof s, "%d", status);
    run_fail(r, -EPROTO, "unexpected status %s", s);
  } else if (len != r->expect_len || memcmp(body, r->expect, len) != 0) {
    char s[96];
    size_t i = 0;
    while (i < len && i < r->expect_len && body[i] == r->expect[i]) i++;
    snprintf(s, sizeof s, "%zu bytes, expected %zu, first difference at byte %zu", len,
             r->expect_len, i);
    run_fail(r, -EPROTO, "response body does not match: %s", s);
  } else if (r->samples && bench_samples_add(r->samples, (double)(now - w->start) / 1e6)) {
    run_fail(r, -ENOMEM, "%s", "out of memory");
  }
  if (!r->err) worker_issue(w);
  if (r->inflight == 0) r->finished = true;
}

static void worker_issue(worker *w) {
  run *r = w->r;
  if (r->limit && r->issued >= r->limit) return;
  if (r->deadline_ns && bench_now_ns() >= r->deadline_ns) return;
  w->start = bench_now_ns();
  if (!r->first_ns) r->first_ns = w->start;
  w->busy = true;
  r->issued++;
  r->inflight++;
  int rc = bench_target_request(r->t, r->req, on_done, w);
  if (rc) {
    w->busy = false;
    r->issued--;
    r->inflight--;
    run_fail(r, rc, "cannot send a request: %s", strerror(-rc));
  }
}

/* Returns 0 or the first error (message in r->errmsg). */
static int run_workers(run *r, uint64_t timeout_ms) {
  r->w = calloc(r->nw, sizeof *r->w);
  if (!r->w) return -ENOMEM;
  for (size_t i = 0; i < r->nw; i++) r->w[i].r = r;
  for (size_t i = 0; i < r->nw && !r->err; i++) worker_issue(&r->w[i]);
  if (r->inflight == 0) r->finished = true;
  int rc = bench_run_until(r->t->loop, &r->finished, timeout_ms);
  if (rc && !r->err) run_fail(r, rc, "%s", "timed out waiting for responses");
  free(r->w);
  r->w = NULL;
  return r->err;
}

/* ---- configuration --------------------------------------------------------------- */

enum { M_TUNNEL = 1, M_PLAIN = 2 };
enum { S_CONCURRENT, S_SERIAL, S_LARGE, S_THROUGHPUT, S_HANDSHAKE, S_IDLE, S__COUNT };
static const char *scenario_names[S__COUNT] = {"concurrent", "serial", "large", "throughput",
                                               "handshake",  "idle"};

typedef struct cfg {
  bench_origin origin;
  bench_policy pol;
  unsigned modes;
  bool scen[S__COUNT];
  size_t n_concurrent, n_serial, n_large, large_size, conns, n_handshake, hs_conc, warmup_div;
  size_t rounds;
  double duration_s;
  size_t idle_n, idle_conc; /* idle: --tunnels N, opened C at a time */
  double hold_s;            /* idle: --hold SECONDS */
  const char *format, *chart, *label, *json_out;
  bool quiet, no_floor, pick_best, per_round;
  long server_pid; /* --per-round: also the server's run-queue delay */
} cfg;

typedef struct ctx {
  ra_loop *loop;
  cfg *c;
  bench_results results;
  uint8_t *payload; /* the `large` body */
  char what[S__COUNT][160];
  char what_floor[160];
  size_t msg_req_len, msg_resp_len; /* throughput's tunnelled GET /hello (bench_tunnel_msg_sizes) */
} ctx;

static void say(const ctx *x, const char *fmt, const char *a, const char *b) {
  if (x->c->quiet) return;
  fprintf(stderr, "ra-bench: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n");
}

static bench_target *make_target(ctx *x, unsigned mode, size_t n, bool one_shot) {
  if (mode == M_PLAIN) return bench_http_new(x->loop, &x->c->origin, n, one_shot);
  char err[256] = "";
  bench_target *t = bench_tunnel_new(x->loop, &x->c->origin, &x->c->pol, n, one_shot, err, sizeof err);
  if (!t) fprintf(stderr, "ra-bench: tunnel: %s\n", err[0] ? err : "out of memory");
  return t;
}

/* Lets deferred closes (stream on_close after an abort) run. */
static void settle(ra_loop *loop) {
  for (int i = 0; i < 8; i++) ra_loop_run_once(loop, 0);
}

static void drain_timeout(ra_timer *t, void *ud) { ra_loop_stop(ud); }

/* Before exit: runs the loop until every handle is gone (closing
 * handshakes of freed tunnels take a round trip), at most ms. */
static void drain(ra_loop *loop, uint64_t ms) {
  ra_timer t;
  ra_timer_init(loop, &t, drain_timeout, loop);
  ra_timer_unref(&t); /* does not keep the loop alive by itself */
  if (ra_timer_start(&t, ms, 0) == 0) ra_loop_run(loop);
  ra_timer_stop(&t);
}

/* One mode's state across the rounds of a scenario. */
typedef struct mode_run {
  unsigned mode;
  const char *name;
  bench_target *t;
  bench_samples samples; /* pooled over the rounds (--pick pool) */
  uint64_t wall_ns;
  bench_summary best;    /* the best round so far (--pick best) */
  bool has_best, failed;
} mode_run;

/* --pick best: the round with the lowest average latency, or for
 * throughput the highest rate. */
static bool better(int sc, const bench_summary *a, const bench_summary *b) {
  return sc == S_THROUGHPUT ? a->rps > b->rps : a->avg_ms < b->avg_ms;
}

/* Sets up a run of scenario sc on t (per-round counts; the samples and
 * deadline are the caller's). */
static void scenario_run(ctx *x, int sc, bool warmup, run *r, bench_target *t, const bench_req *get,
                         const bench_req *post) {
  cfg *c = x->c;
  static const uint8_t world[] = "world";
  memset(r, 0, sizeof *r);
  r->t = t;
  r->req = get;
  r->expect = world;
  r->expect_len = 5;
  size_t rounds = c->rounds;
  switch (sc) {
  case S_CONCURRENT:
    r->nw = r->limit = c->n_concurrent;
    break;
  case S_SERIAL:
    r->nw = 1;
    r->limit = warmup ? c->n_serial / c->warmup_div + 1 : c->n_serial;
    break;
  case S_LARGE:
    r->req = post;
    r->expect = x->payload;
    r->expect_len = c->large_size;
    r->nw = 1;
    r->limit = warmup ? c->n_large / c->warmup_div + 1 : c->n_large;
    break;
  case S_THROUGHPUT: {
    r->nw = c->conns;
    double d = warmup ? c->duration_s / c->warmup_div : c->duration_s / (double)rounds;
    r->deadline_ns = bench_now_ns() + (uint64_t)(d * 1e9);
    break;
  }
  case S_HANDSHAKE: {
    r->nw = c->hs_conc;
    size_t per = (c->n_handshake + rounds - 1) / rounds;
    r->limit = warmup ? c->n_handshake / c->warmup_div / rounds + 1 : per;
    break;
  }
  }
}

/* Runs scenario sc in every selected mode: an uncounted warm-up per mode,
 * then `rounds` measured rounds that alternate between the modes (plain,
 * tunnel, plain, tunnel...), so that both columns see the same background
 * load on a shared machine; the rounds' samples are pooled. */
/* Run-queue delay so far (ns) of a process's main thread, from
 * /proc/PID/schedstat (second field: time spent runnable but not running,
 * i.e. waiting for a CPU); 0 when unavailable. pid 0: this process. */
static uint64_t runq_delay_ns(long pid) {
  char path[64];
  snprintf(path, sizeof path, pid ? "/proc/%ld/schedstat" : "/proc/self/schedstat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  unsigned long long on_cpu = 0, wait = 0;
  int n = fscanf(f, "%llu %llu", &on_cpu, &wait);
  fclose(f);
  return n == 2 ? (uint64_t)wait : 0;
}

static int run_scenario(ctx *x, int sc) {
  cfg *c = x->c;
  bench_req get = {.method = "GET", .path = "/hello"};
  bench_req post = {.method = "POST", .path = "/echo", .content_type = "application/octet-stream",
                    .body = x->payload, .body_len = c->large_size};
  mode_run m[2] = {{.mode = M_PLAIN, .name = "plain"}, {.mode = M_TUNNEL, .name = "tunnel"}};
  int rc = 0;
  const uint64_t timeout_ms = 300000;
  for (int k = 0; k < 2; k++) {
    if (!(c->modes & m[k].mode)) continue;
    size_t ntarget = 1;
    bool one_shot = false;
    switch (sc) {
    case S_CONCURRENT:
      /* plain: a pool of up to N connections, as a browser or Node's fetch
       * would open for N requests at once; tunnel: one tunnel */
      ntarget = m[k].mode == M_PLAIN ? c->n_concurrent : 1;
      break;
    case S_THROUGHPUT: ntarget = c->conns; break;
    case S_HANDSHAKE:
      ntarget = c->hs_conc;
      one_shot = true;
      break;
    default: break;
    }
    m[k].t = make_target(x, m[k].mode, ntarget, one_shot);
    if (!m[k].t) {
      m[k].failed = true;
      rc = -ENOMEM;
      continue;
    }
    say(x, "%s / %s: warm-up", scenario_names[sc], m[k].name);
    run warm;
    scenario_run(x, sc, true, &warm, m[k].t, &get, &post);
    if (run_workers(&warm, timeout_ms)) {
      fprintf(stderr, "ra-bench: %s / %s (warm-up): %s\n", scenario_names[sc], m[k].name, warm.errmsg);
      m[k].failed = true;
      rc = warm.err;
      /* requests may still be in flight (timeout): drop them with the
       * target before the loop runs again */
      bench_target_free(m[k].t);
      m[k].t = NULL;
    }
  }
  for (size_t round = 0; round < c->rounds; round++) {
    for (int k = 0; k < 2; k++) {
      if (!m[k].t) continue;
      if (round == 0) say(x, "%s / %s: measuring", scenario_names[sc], m[k].name);
      run meas;
      bench_samples round_samples = {0};
      uint64_t wait_cli = c->per_round ? runq_delay_ns(0) : 0;
      uint64_t wait_srv = c->per_round && c->server_pid ? runq_delay_ns(c->server_pid) : 0;
      scenario_run(x, sc, false, &meas, m[k].t, &get, &post);
      meas.samples = c->pick_best || c->per_round ? &round_samples : &m[k].samples;
      if (run_workers(&meas, timeout_ms)) {
        fprintf(stderr, "ra-bench: %s / %s: %s\n", scenario_names[sc], m[k].name, meas.errmsg);
        m[k].failed = true;
        rc = meas.err;
        bench_target_free(m[k].t);
        m[k].t = NULL;
      } else if (c->pick_best || c->per_round) {
        /* the round's own figures: pooled afterwards unless --pick best */
        if (!c->pick_best)
          for (size_t i = 0; i < round_samples.n; i++)
            if (bench_samples_add(&m[k].samples, round_samples.ms[i])) rc = -ENOMEM;
        bench_summary rs;
        bench_summarize(&round_samples, meas.last_ns - meas.first_ns, &rs);
        if (c->per_round) /* issue 18: where a stall falls (which round, which mode) */
          fprintf(stderr,
                  "round %zu %s/%s: n %zu avg %.3f p50 %.3f p99 %.3f max %.3f ms;"
                  " waiting for a CPU: client %.3f ms, server %.3f ms\n",
                  round + 1, scenario_names[sc], m[k].name, rs.n, rs.avg_ms, rs.p50_ms, rs.p99_ms,
                  rs.max_ms, (double)(runq_delay_ns(0) - wait_cli) / 1e6,
                  c->server_pid ? (double)(runq_delay_ns(c->server_pid) - wait_srv) / 1e6 : 0.0);
        if (!m[k].has_best || better(sc, &rs, &m[k].best)) m[k].best = rs;
        m[k].has_best = true;
      }
      bench_samples_free(&round_samples);
      m[k].wall_ns += meas.last_ns - meas.first_ns;
    }
  }
  for (int k = 0; k < 2; k++) {
    if (sc == S_THROUGHPUT && m[k].mode == M_TUNNEL && m[k].t &&
        bench_tunnel_msg_sizes(m[k].t, &x->msg_req_len, &x->msg_resp_len))
      x->msg_req_len = x->msg_resp_len = 0;
    if (m[k].t && !m[k].failed) {
      bench_summary s;
      if (c->pick_best) s = m[k].best;
      else bench_summarize(&m[k].samples, m[k].wall_ns, &s);
      int e = bench_results_add(&x->results, scenario_names[sc], m[k].name, x->what[sc], &s);
      if (e) rc = e;
    }
    bench_samples_free(&m[k].samples);
    bench_target_free(m[k].t);
  }
  settle(x->loop);
  return rc;
}

/* idle (issue 18): opens N tunnels / keep-alive connections (each with one
 * GET /hello, C in flight at a time: a sample is one open + first answer),
 * holds them all open and idle for --hold seconds (while whoever runs this
 * measures the server from outside: bench/idle_bench.sh), then closes them.
 * No warm-up, one round; rps is tunnels opened per second. */
static void hold_done(ra_timer *t, void *ud) {
  (void)t;
  *(bool *)ud = true;
}

static int run_idle(ctx *x) {
  cfg *c = x->c;
  bench_req get = {.method = "GET", .path = "/hello"};
  static const char *names[2] = {"plain", "tunnel"};
  static const unsigned modes[2] = {M_PLAIN, M_TUNNEL};
  int rc = 0;
  for (int k = 0; k < 2 && rc == 0; k++) {
    if (!(c->modes & modes[k])) continue;
    bench_target *t = make_target(x, modes[k], c->idle_n, false);
    if (!t) return -ENOMEM;
    t->spread = true;
    run r;
    bench_samples samples = {0};
    static const uint8_t world[] = "world";
    memset(&r, 0, sizeof r);
    r.t = t;
    r.req = &get;
    r.expect = world;
    r.expect_len = 5;
    r.nw = c->idle_conc < c->idle_n ? c->idle_conc : c->idle_n;
    r.limit = c->idle_n;
    r.samples = &samples;
    rc = run_workers(&r, 600000);
    if (rc) {
      fprintf(stderr, "ra-bench: idle / %s: %s\n", names[k], r.errmsg);
    } else {
      /* unconditional: the line a measuring script waits for */
      fprintf(stderr, "ra-bench: idle: %zu %s open, holding %.1f s\n", c->idle_n,
              modes[k] == M_TUNNEL ? "tunnels" : "connections", c->hold_s);
      bool held = false;
      ra_timer tm;
      ra_timer_init(x->loop, &tm, hold_done, &held);
      if (ra_timer_start(&tm, (uint64_t)(c->hold_s * 1000), 0) == 0)
        bench_run_until(x->loop, &held, (uint64_t)(c->hold_s * 1000) + 60000);
      ra_timer_stop(&tm);
      fprintf(stderr, "ra-bench: idle: closing\n");
      bench_summary sum;
      bench_summarize(&samples, r.last_ns - r.first_ns, &sum);
      rc = bench_results_add(&x->results, "idle", names[k], x->what[S_IDLE], &sum);
    }
    bench_samples_free(&samples);
    bench_target_free(t);
    settle(x->loop);
  }
  return rc;
}

/* The cipher floor (bench/floor.h) of scenario sc, added as its mode
 * "floor": `per` samples of `batch` round trips with up / down bytes
 * sealed and opened, as the tunnel's rounds are taken (pooled, or with
 * --pick best the best of `rounds` groups). */
static int run_floor(ctx *x, int sc, size_t up, size_t down, size_t batch, size_t per, size_t warmup,
                     const char *what) {
  cfg *c = x->c;
  size_t groups = c->pick_best ? c->rounds : 1;
  per = c->pick_best ? per : per * c->rounds;
  bench_summary best = {0};
  int rc = 0;
  for (size_t g = 0; g < groups && rc == 0; g++) {
    bench_samples s = {0};
    uint64_t wall = 0;
    rc = bench_crypto_floor(up, down, batch, per, g == 0 ? warmup : 0, &s, &wall);
    if (rc == 0) {
      bench_summary sum;
      bench_summarize(&s, wall, &sum);
      sum.rps = sum.avg_ms > 0 ? 1e3 / sum.avg_ms : 0; /* round trips per second, one core */
      if (g == 0 || sum.avg_ms < best.avg_ms) best = sum;
    }
    bench_samples_free(&s);
  }
  if (rc == 0) rc = bench_results_add(&x->results, scenario_names[sc], "floor", what, &best);
  else fprintf(stderr, "ra-bench: %s: crypto floor: %s\n", scenario_names[sc], strerror(-rc));
  return rc;
}

static int run_floors(ctx *x, int sc) {
  cfg *c = x->c;
  if (c->no_floor) return 0;
  if (sc == S_LARGE)
    return run_floor(x, sc, c->large_size, c->large_size, 1, c->n_large, c->n_large / c->warmup_div + 1,
                     x->what[S_LARGE]);
  if (sc != S_THROUGHPUT || !x->msg_req_len) return 0; /* no tunnel answer: no sizes */
  snprintf(x->what_floor, sizeof x->what_floor,
           "4 x crypto_secretbox per request: the %zu B http_request, the %zu B http_response",
           x->msg_req_len, x->msg_resp_len);
  /* a sample is 200 round trips (~1 ms), not one: the clock read would
   * weigh on a few microseconds */
  return run_floor(x, sc, x->msg_req_len, x->msg_resp_len, 200, 20, 5, x->what_floor);
}

/* ---- command line -------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: ra-bench [--scenario concurrent|serial|large|throughput|handshake|idle|all]...\n"
          "                [--tunnel|--plain|--both] [--format table|csv|json] [--json-out FILE]\n"
          "                [--chart FILE.svg]\n"
          "                [--trust-sim DIR] [--root PEM]... [--mrtd HEX] [--rtmr0..3 HEX]\n"
          "                [--report-data HEX] [--no-binding] [--allow-debug]\n"
          "                [--any-measurement-insecure]\n"
          "                [--collateral PATH | --pccs URL [--collateral-cache DIR |\n"
          "                 --no-collateral-cache] [--ca-file PEM]] [--accept-tcb LIST]\n"
          "                [--allow-advisory ID]... [--allow-expired-collateral]\n"
          "                [--require-sept-ve-disable] [--allow-mr-servicetd]\n"
          "                [--concurrent N] [--serial N] [--large N] [--large-size BYTES]\n"
          "                [--conns N] [--duration SECONDS] [--handshakes N]\n"
          "                [--handshake-concurrency N] [--rounds N] [--pick pool|best] [--no-floor]\n"
          "                [--vcache N] [--tunnels N] [--hold SECONDS] [--idle-concurrency N]\n"
          "                [--label TEXT] [--per-round [--server-pid PID]] [--quiet] URL\n"
          "Measures the same scenarios through the attested tunnel and over plain\n"
          "HTTP/1.1 on one server (default: --both, every scenario but idle).\n"
          "--vcache N: the tunnels share a verified-quote cache of N entries.\n"
          "--per-round: each round's n/avg/p50/p99/max on stderr (where a stall falls), with\n"
          "the time ra-bench (and --server-pid PID) waited for a CPU during the round.\n"
          "idle: opens --tunnels N [1000] tunnels or connections, --idle-concurrency\n"
          "at a time [100], holds them idle for --hold SECONDS [10], closes them.\n");
}

static bool parse_size(const char *s, size_t lo, size_t hi, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) return false;
  *out = (size_t)v;
  return true;
}

/* Says what was wrong with a policy flag, in ra-bench's words; the exit
 * code. */
static int report_flag_error(const policy_flags *pf, const char *a, const char *v) {
  if (pf->error == POLICY_FLAG_NO_VALUE) {
    fprintf(stderr, "ra-bench: %s needs a value\n", a);
  } else if (pf->error == POLICY_FLAG_TOO_MANY) {
    fprintf(stderr, "ra-bench: bad %s (too many): %s\n", pf->error_flag, v);
  } else if (pf->error == POLICY_FLAG_BAD_STATUS) {
    fprintf(stderr, "ra-bench: bad %s (a comma-separated list of Intel's TCB statuses): %s\n",
            pf->error_flag, v);
  } else {
    const char *f = strncmp(pf->error_flag, "--rtmr", 6) ? pf->error_flag : "--rtmrN";
    fprintf(stderr, "ra-bench: bad %s (%zu hex digits): %s\n", f, 2 * pf->error_bytes, v);
  }
  return 2;
}

/* The tunnel's policy as ra-bench's own struct (bench/tunnel.h) holds it. */
static void policy_from_flags(const policy_flags *pf, bench_policy *pol) {
  pol->trust_sim_dir = pf->trust_sim_dir;
  pol->n_roots = pf->n_roots;
  for (size_t i = 0; i < pf->n_roots; i++) pol->roots[i] = pf->roots[i];
  pol->has_mrtd = pf->tdx.has & RA_TDX_MRTD;
  memcpy(pol->mrtd, pf->tdx.mrtd, 48);
  for (int k = 0; k < 4; k++) pol->has_rtmr[k] = pf->tdx.has & (RA_TDX_RTMR0 << k);
  memcpy(pol->rtmr, pf->tdx.rtmr, sizeof pol->rtmr);
  pol->has_report_data = pf->tdx.has & RA_TDX_REPORT_DATA;
  memcpy(pol->report_data, pf->tdx.report_data, 64);
  pol->no_binding = pf->no_binding;
  pol->allow_debug = pf->allow_debug;
  pol->any_measurement = pf->any_measurement;
  pol->collateral = pf->collateral;
  pol->pccs = pf->pccs;
  pol->pccs_cache_dir = pf->collateral_cache;
  pol->pccs_ca_file = pf->ca_file;
  pol->pccs_no_cache = pf->no_collateral_cache;
  pol->accept_tcb = pf->accept_tcb;
  pol->allowed_advisories = pf->n_advisories ? pf->advisories : NULL;
  pol->n_allowed_advisories = pf->n_advisories;
  pol->allow_expired_collateral = pf->allow_expired_collateral;
  pol->require_sept_ve_disable = pf->require_sept_ve_disable;
  pol->allow_mr_servicetd = pf->allow_mr_servicetd;
}

int main(int argc, char **argv) {
  cfg c = {.modes = M_TUNNEL | M_PLAIN, .n_concurrent = 100, .n_serial = 50, .n_large = 50,
           .large_size = 1u << 20, .conns = 32, .n_handshake = 500, .hs_conc = 4,
           .warmup_div = 5, .rounds = 5, .duration_s = 5, .format = "table",
           .idle_n = 1000, .idle_conc = 100, .hold_s = 10};
  const char *url = NULL;
  bool any_scen = false;
  policy_flags pf; /* --trust-sim, --root, --mrtd, --rtmr0..3, --report-data, ... */
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_TUNNEL | POLICY_FLAGS_COLLATERAL |
                             POLICY_FLAGS_PCCS);
  pf.max_roots = sizeof c.pol.roots / sizeof *c.pol.roots;
  int pr;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG()                                                   \
  do {                                                               \
    if (!v) {                                                        \
      fprintf(stderr, "ra-bench: %s needs a value\n", a);            \
      return 2;                                                      \
    }                                                                \
    i++;                                                             \
  } while (0)
#define BAD(what)                                                    \
  do {                                                               \
    fprintf(stderr, "ra-bench: bad %s: %s\n", what, v);              \
    return 2;                                                        \
  } while (0)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--scenario")) {
      NEED_ARG();
      bool ok = false;
      for (int s = 0; s < S__COUNT; s++)
        if (!strcmp(v, scenario_names[s]) || (!strcmp(v, "all") && s != S_IDLE))
          c.scen[s] = ok = true;
      if (!ok) BAD("scenario");
      any_scen = true;
    } else if (!strcmp(a, "--tunnel")) {
      c.modes = M_TUNNEL;
    } else if (!strcmp(a, "--plain")) {
      c.modes = M_PLAIN;
    } else if (!strcmp(a, "--both")) {
      c.modes = M_TUNNEL | M_PLAIN;
    } else if (!strcmp(a, "--format")) {
      NEED_ARG();
      if (strcmp(v, "table") && strcmp(v, "csv") && strcmp(v, "json")) BAD("format");
      c.format = v;
    } else if (!strcmp(a, "--chart")) {
      NEED_ARG();
      c.chart = v;
    } else if (!strcmp(a, "--json-out")) {
      NEED_ARG();
      c.json_out = v;
    } else if (!strcmp(a, "--label")) {
      NEED_ARG();
      c.label = v;
    } else if ((pr = policy_flags_parse(&pf, a, v)) != 0) {
      if (pr < 0) return report_flag_error(&pf, a, v);
      i += pr - 1; /* the value, if the flag took one */
    } else if (!strcmp(a, "--concurrent")) {
      NEED_ARG();
      if (!parse_size(v, 1, 100000, &c.n_concurrent)) BAD("--concurrent");
    } else if (!strcmp(a, "--serial")) {
      NEED_ARG();
      if (!parse_size(v, 1, 10000000, &c.n_serial)) BAD("--serial");
    } else if (!strcmp(a, "--large")) {
      NEED_ARG();
      if (!parse_size(v, 1, 1000000, &c.n_large)) BAD("--large");
    } else if (!strcmp(a, "--large-size")) {
      NEED_ARG();
      if (!parse_size(v, 1, 7u << 20, &c.large_size)) BAD("--large-size (1..7340032)");
    } else if (!strcmp(a, "--conns")) {
      NEED_ARG();
      if (!parse_size(v, 1, 10000, &c.conns)) BAD("--conns");
    } else if (!strcmp(a, "--duration")) {
      NEED_ARG();
      char *end;
      c.duration_s = strtod(v, &end);
      if (*end || !(c.duration_s >= 0.01 && c.duration_s <= 3600)) BAD("--duration");
    } else if (!strcmp(a, "--rounds")) {
      NEED_ARG();
      if (!parse_size(v, 1, 1000, &c.rounds)) BAD("--rounds");
    } else if (!strcmp(a, "--handshakes")) {
      NEED_ARG();
      if (!parse_size(v, 1, 10000000, &c.n_handshake)) BAD("--handshakes");
    } else if (!strcmp(a, "--handshake-concurrency")) {
      NEED_ARG();
      if (!parse_size(v, 1, 1000, &c.hs_conc)) BAD("--handshake-concurrency");
    } else if (!strcmp(a, "--vcache")) {
      NEED_ARG();
      if (!parse_size(v, 1, 65536, &c.pol.vcache)) BAD("--vcache (1..65536)");
    } else if (!strcmp(a, "--tunnels")) {
      NEED_ARG();
      if (!parse_size(v, 1, 1000000, &c.idle_n)) BAD("--tunnels");
    } else if (!strcmp(a, "--idle-concurrency")) {
      NEED_ARG();
      if (!parse_size(v, 1, 100000, &c.idle_conc)) BAD("--idle-concurrency");
    } else if (!strcmp(a, "--hold")) {
      NEED_ARG();
      char *end;
      c.hold_s = strtod(v, &end);
      if (*end || !(c.hold_s >= 0 && c.hold_s <= 86400)) BAD("--hold");
    } else if (!strcmp(a, "--pick")) {
      NEED_ARG();
      if (strcmp(v, "pool") && strcmp(v, "best")) BAD("--pick (pool|best)");
      c.pick_best = !strcmp(v, "best");
    } else if (!strcmp(a, "--per-round")) {
      c.per_round = true;
    } else if (!strcmp(a, "--server-pid")) {
      NEED_ARG();
      size_t pid;
      if (!parse_size(v, 1, 1u << 22, &pid)) BAD("--server-pid");
      c.server_pid = (long)pid;
    } else if (!strcmp(a, "--no-floor")) {
      c.no_floor = true;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      c.quiet = true;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "ra-bench: unknown option %s\n", a);
      usage(stderr);
      return 2;
    } else if (!url) {
      url = a;
    } else {
      fprintf(stderr, "ra-bench: more than one URL\n");
      return 2;
    }
  }
  if (!url) {
    usage(stderr);
    return 2;
  }
  const char *cerr = policy_flags_check_collateral(&pf);
  if (cerr) {
    fprintf(stderr, "ra-bench: %s\n", cerr);
    return 2;
  }
  policy_from_flags(&pf, &c.pol);
  if (bench_parse_origin(url, &c.origin)) {
    fprintf(stderr, "ra-bench: bad URL %s (want http://HOST:PORT)\n", url);
    return 2;
  }
  if (!any_scen)
    for (int s = 0; s < S__COUNT; s++) c.scen[s] = s != S_IDLE;
  if (sodium_init() < 0) {
    fprintf(stderr, "ra-bench: libsodium failed to initialise\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  ra_log_set_level(c.quiet ? RA_LOG_ERROR : RA_LOG_WARN);

  ctx x = {.c = &c};
  ra_loop_new(&x.loop);
  if (!x.loop) {
    fprintf(stderr, "ra-bench: cannot create the loop\n");
    return 1;
  }
  snprintf(x.what[S_CONCURRENT], sizeof x.what[0],
           "%zu x GET /hello at once (1 tunnel | <= %zu conns), %zu round%s",
           c.n_concurrent, c.n_concurrent, c.rounds, c.rounds == 1 ? "" : "s");
  snprintf(x.what[S_SERIAL], sizeof x.what[0], "%zu x GET /hello one after the other, %zu round%s",
           c.n_serial, c.rounds, c.rounds == 1 ? "" : "s");
  snprintf(x.what[S_LARGE], sizeof x.what[0], "%zu x POST /echo %zu KiB up+down, verified, %zu round%s",
           c.n_large, c.large_size / 1024, c.rounds, c.rounds == 1 ? "" : "s");
  snprintf(x.what[S_THROUGHPUT], sizeof x.what[0], "%zu tunnels | conns, 1 GET in flight each, %.1f s",
           c.conns, c.duration_s);
  snprintf(x.what[S_HANDSHAKE], sizeof x.what[0],
           "new tunnel (quote verified%s) | TCP conn, + GET, %zu at a time",
           c.pol.vcache ? ", verified-quote cache" : "", c.hs_conc);
  snprintf(x.what[S_IDLE], sizeof x.what[0],
           "open %zu tunnels | conns (+ GET), %zu at a time, hold %.1f s", c.idle_n,
           c.idle_conc, c.hold_s);
  if (c.scen[S_LARGE]) {
    x.payload = malloc(c.large_size);
    if (!x.payload) {
      fprintf(stderr, "ra-bench: out of memory\n");
      return 1;
    }
    /* printable bytes from a PRNG: a valid body whether a transport carries
     * it as text or bytes, and any misplaced byte shows */
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    randombytes_buf(x.payload, c.large_size);
    for (size_t i = 0; i < c.large_size; i++) x.payload[i] = (uint8_t)alpha[x.payload[i] & 63];
  }

  int failed = 0;
  for (int s = 0; s < S__COUNT; s++) {
    if (!c.scen[s]) continue;
    /* plain first, then the tunnel: the order is the same for every scenario */
    if (s == S_IDLE ? run_idle(&x) != 0 : run_scenario(&x, s) != 0) failed++;
    if (run_floors(&x, s)) failed++;
  }

  if (!strcmp(c.format, "json")) bench_print_json(stdout, &x.results);
  else if (!strcmp(c.format, "csv")) bench_print_csv(stdout, &x.results);
  else bench_print_table(stdout, &x.results);
  fflush(stdout);
  if (c.json_out) {
    FILE *jf = fopen(c.json_out, "w");
    if (jf) bench_print_json(jf, &x.results);
    if (!jf || fclose(jf)) {
      fprintf(stderr, "ra-bench: cannot write %s: %s\n", c.json_out, strerror(errno));
      failed++;
    }
  }
  if (c.chart) {
    char sub[400], cpu[160] = "";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
      char line[256];
      while (fgets(line, sizeof line, ci))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
          snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
          cpu[strcspn(cpu, "\n")] = '\0';
          break;
        }
      fclose(ci);
    }
    struct utsname u;
    snprintf(sub, sizeof sub, "%s %s, %s, %ld CPU(s)%s%s", uname(&u) == 0 ? u.sysname : "",
             uname(&u) == 0 ? u.machine : "", cpu[0] ? cpu : "unknown CPU",
             sysconf(_SC_NPROCESSORS_ONLN), c.label ? "; " : "", c.label ? c.label : "");
    int rc = bench_write_svg(c.chart, &x.results, sub);
    if (rc) {
      fprintf(stderr, "ra-bench: cannot write %s: %s\n", c.chart, strerror(-rc));
      failed++;
    }
  }
  bench_results_free(&x.results);
  free(x.payload);
  drain(x.loop, 3000);
  ra_loop_free(x.loop);
  return failed ? 1 : 0;
}
