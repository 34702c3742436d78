/* In-process tests of the tunnel: our server (attest/tunnel_server) and our
 * client (attest/tunnel_client) on one loop, over loopback, with the
 * simulated TEE. The wire-level and interop tests are in tests/attest/tunnel/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/attest/tunnel/server.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/http/server.h"
#include "raloop/ws/ws.h"

typedef struct fx {
  char dir[64];
  ra_loop *loop;
  ra_router *router;
  ra_http_server *http;
  ra_tunnel_server *ts;
  ra_verifier *v;
  char origin[64];
} fx;

static ra_res *g_held;
static bool g_cancelled;
static void hello(ra_req *req, ra_res *res, void *ud) {
  ra_res_send_text(res, 200, ra_req_attested(req) ? "world (attested)" : "world");
}
static void on_cancel(ra_res *res, void *ud) { g_cancelled = true; }
static void hold(ra_req *req, ra_res *res, void *ud) {
  g_held = res;
  ra_res_on_cancel(res, on_cancel, NULL);
}

/* the access log: the last line, and how many */
static int g_logged, g_log_status;
static char g_log_line[128];
static void access_log(const ra_req *req, int status, uint64_t us, void *ud) {
  ra_str m = ra_req_method(req), t = ra_req_target(req);
  g_logged++;
  g_log_status = status;
  snprintf(g_log_line, sizeof g_log_line, "%.*s %.*s %s", (int)m.len, m.ptr, (int)t.len, t.ptr, (const char *)ud);
}

static void rm_rf(const char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static size_t g_replay_budget; /* 0: the default */

static int setup(void **st) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/ra-tunnel-test-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  char sim[128];
  snprintf(sim, sizeof sim, "%s/sim", f->dir);
  ra_log_set_level(RA_LOG_ERROR);
  assert_int_equal(ra_loop_new(&f->loop), 0);
  assert_int_equal(ra_router_new(&f->router), 0);
  ra_route(f->router, "GET", "/hello", hello, NULL);
  ra_route(f->router, "GET", "/hold", hold, NULL);
  ra_quote_provider *p;
  if (ra_quote_provider_sim(sim, &p)) return -1;
  ra_tunnel_server_opts o = {.access_log = access_log, .access_log_ud = (void *)"tunnel",
                             .max_replay_entries = g_replay_budget};
  g_logged = 0;
  int rc = ra_tunnel_server_new(f->loop, f->router, p, &o, &f->ts);
  ra_quote_provider_free(p);
  if (rc) return -1;
  assert_int_equal(ra_http_server_new(f->loop, f->router, NULL, &f->http), 0);
  if (ra_http_server_listen(f->http, "127.0.0.1:0", NULL)) return -1;
  snprintf(f->origin, sizeof f->origin, "http://127.0.0.1:%u", ra_http_server_port(f->http));
  ra_verifier_new(0, &f->v);
  char root[160];
  snprintf(root, sizeof root, "%s/%s", sim, RA_SIM_ROOT_FILE);
  if (ra_verifier_add_root_file(f->v, root) <= 0) return -1;
  *st = f;
  return 0;
}

static int setup_small_replay_budget(void **st) {
  g_replay_budget = 40;
  int rc = setup(st);
  g_replay_budget = 0;
  return rc;
}

static void spin(fx *f, int turns) {
  for (int i = 0; i < turns; i++) ra_loop_run_once(f->loop, 5);
}

static int teardown(void **st) {
  fx *f = *st;
  ra_http_server_free(f->http);
  ra_tunnel_server_free(f->ts);
  spin(f, 5);
  ra_router_free(f->router);
  ra_loop_free(f->loop);
  ra_verifier_free(f->v);
  rm_rf(f->dir);
  free(f);
  return 0;
}

typedef struct got {
  bool done;
  int err;
  int status;
  char body[64];
  size_t body_len;
  char msg[64];
} got;
static void on_resp(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  got *g = ud;
  g->done = true;
  g->err = err;
  if (msg) snprintf(g->msg, sizeof g->msg, "%s", msg);
  if (!err) {
    g->status = r->status;
    g->body_len = r->body_len;
    snprintf(g->body, sizeof g->body, "%.*s", (int)r->body_len, r->body ? (const char *)r->body : "");
  }
}
static void wait_for(fx *f, bool *flag) {
  for (int i = 0; i < 2000 && !*flag; i++) ra_loop_run_once(f->loop, 5);
}

static ra_tunnel_client *client(fx *f, const ra_policy *pol, bool no_binding) {
  ra_tunnel_client_opts o = {.verifier = f->v, .policy = pol, .no_binding = no_binding};
  ra_tunnel_client *c;
  assert_int_equal(ra_tunnel_client_new(f->loop, f->origin, &o, &c), 0);
  return c;
}

static void test_round_trip_attested(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0};
  ra_tunnel_request q = {.url = "/hello"};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  assert_false(g.done); /* never from inside the call */
  wait_for(f, &g.done);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  assert_string_equal(g.body, "world (attested)");
  assert_true(ra_tunnel_client_ready(c));
  assert_memory_equal(ra_tunnel_client_server_key(c), ra_tunnel_server_public_key(f->ts), 32);
  const ra_verdict *vd = ra_tunnel_client_verdict(c);
  assert_non_null(vd);
  assert_int_equal(vd->err, 0);
  assert_int_equal(vd->checks[RA_CHECK_BINDING], RA_CHECK_PASS);
  ra_tunnel_stats s;
  ra_tunnel_server_stats(f->ts, &s);
  assert_int_equal(s.tunnels_open, 1);
  assert_int_equal(s.keyed, 1);
  assert_int_equal(s.requests, 1);
  /* logged once, as it completed, like the HTTP server's access log */
  assert_int_equal(g_logged, 1);
  assert_int_equal(g_log_status, 200);
  assert_string_equal(g_log_line, "GET /hello tunnel");
  ra_tunnel_client_free(c);
  spin(f, 20);
  ra_tunnel_server_stats(f->ts, &s);
  assert_int_equal(s.tunnels_open, 0);
}

/* No measurements and no binding: the client refuses to open (no strategy). */
static void test_refuses_empty_policy(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f, NULL, true);
  got g = {0};
  ra_tunnel_request q = {.url = "/hello"};
  ra_tunnel_fetch(c, &q, on_resp, &g);
  wait_for(f, &g.done);
  assert_int_equal(g.err, -EACCES);
  assert_int_equal(ra_tunnel_client_verdict(c)->err, RA_ERR_POLICY_EMPTY);
  ra_tunnel_stats s;
  ra_tunnel_server_stats(f->ts, &s);
  assert_int_equal(s.requests, 0); /* nothing left the client */
  ra_tunnel_client_free(c);
  spin(f, 10);
}

/* A response still pending when the client goes away is cancelled; the late
 * answer is a safe no-op. */
static void test_cancel_on_drop(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0};
  g_held = NULL;
  g_cancelled = false;
  ra_tunnel_request q = {.url = "/hold"};
  ra_tunnel_fetch(c, &q, on_resp, &g);
  for (int i = 0; i < 2000 && !g_held; i++) ra_loop_run_once(f->loop, 5);
  assert_non_null(g_held);
  ra_tunnel_client_free(c); /* the fetch callback runs with -ECANCELED */
  assert_true(g.done);
  assert_int_equal(g.err, -ECANCELED);
  for (int i = 0; i < 2000 && !g_cancelled; i++) ra_loop_run_once(f->loop, 5);
  assert_true(g_cancelled);
  assert_true(ra_res_cancelled(g_held));
  assert_int_equal(ra_res_send_text(g_held, 200, "late"), -ECANCELED);
  ra_tunnel_stats s;
  ra_tunnel_server_stats(f->ts, &s);
  assert_int_equal(s.responses_cancelled, 1);
}

/* Freeing the tunnel server with a tunnel open drops it cleanly. */
static void test_free_with_open_tunnel(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0};
  ra_tunnel_request q = {.url = "/hello"};
  ra_tunnel_fetch(c, &q, on_resp, &g);
  wait_for(f, &g.done);
  assert_int_equal(g.status, 200);
  /* the http server first: no new connection can reach the route */
  ra_http_server_free(f->http);
  f->http = NULL;
  ra_tunnel_server_free(f->ts);
  f->ts = NULL;
  got g2 = {0};
  ra_tunnel_fetch(c, &q, on_resp, &g2);
  wait_for(f, &g2.done);
  assert_int_equal(g2.err, -ECONNRESET); /* the channel dropped, not a refusal */
  ra_tunnel_client_free(c);
  spin(f, 10);
  /* teardown frees what is left */
  assert_int_equal(ra_http_server_new(f->loop, f->router, NULL, &f->http), 0);
}

/* A plain HTTP/1.1 request to the fixture's server; returns the status
 * line's code (0 on failure). The loop runs while it waits. */
static int plain_get(fx *f, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ra_http_server_port(f->http))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) return 0;
  char req[256], resp[512] = "";
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
  if (send(fd, req, (size_t)n, 0) != n) return 0;
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t have = 0;
  for (int i = 0; i < 2000 && have < 12; i++) {
    ra_loop_run_once(f->loop, 5);
    ssize_t r = recv(fd, resp + have, sizeof resp - 1 - have, 0);
    if (r > 0) have += (size_t)r;
  }
  close(fd);
  int status = 0;
  return sscanf(resp, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

/* Freeing the tunnel server before the HTTP server removes its route: a
 * request to /__ra__ afterwards gets the router's 404, and nothing is left
 * pointing at the freed tunnel server (ASan). */
static void test_free_tunnel_server_first(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0};
  ra_tunnel_request q = {.url = "/hello"};
  ra_tunnel_fetch(c, &q, on_resp, &g);
  wait_for(f, &g.done);
  assert_int_equal(g.status, 200);
  assert_int_equal(plain_get(f, "/__ra__"), 426); /* the WebSocket route, without an upgrade */
  ra_tunnel_server_free(f->ts);
  f->ts = NULL;
  ra_tunnel_client_free(c);
  spin(f, 10);
  assert_int_equal(plain_get(f, "/__ra__"), 404);
  assert_int_equal(plain_get(f, "/hello"), 200);
  ra_http_server_free(f->http);
  f->http = NULL;
  spin(f, 5);
}

/* ---- tunnelled WebSockets: a drain handler closing another socket ---------- */

static ra_ws *g_sws[2];
static int g_nws, g_drained, g_sclosed;
static size_t g_sent, g_recv;
static void sws_open(ra_ws *ws, void *ud) {
  if (g_nws < 2) g_sws[g_nws++] = ws;
}
static void sws_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  if (len != 3 || memcmp(data, "big", 3)) return;
  /* past the control channel's high-water mark: back-pressure, then drain */
  size_t n = 1u << 20;
  uint8_t *b = calloc(1, n);
  assert_non_null(b);
  int rc = 0;
  for (int i = 0; i < 32 && rc != RA_WS_BACKPRESSURE; i++) {
    rc = ra_ws_send(ws, RA_WS_BINARY, b, n);
    g_sent += n;
  }
  free(b);
  assert_int_equal(rc, RA_WS_BACKPRESSURE);
}
static void sws_drain(ra_ws *ws, void *ud) {
  g_drained++;
  for (int i = 0; i < 2; i++)
    if (g_sws[i] && g_sws[i] != ws) ra_ws_close(g_sws[i], 1000, "");
}
static void sws_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  for (int i = 0; i < 2; i++)
    if (g_sws[i] == ws) g_sws[i] = NULL;
  g_sclosed++;
}

static int g_copen;
static void cws_open(ra_ws *ws, void *ud) { g_copen++; }
static void cws_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  g_recv += len;
}

/* The control channel drains while its sockets are iterated: the first
 * socket's on_drain closes the one after it (freed at once). */
static void test_drain_closes_other_socket(void **st) {
  fx *f = *st;
  static const ra_ws_handlers sh = {
    .on_open = sws_open, .on_message = sws_message, .on_drain = sws_drain, .on_close = sws_close,
  };
  assert_int_equal(ra_ws_route(f->router, "/w", &sh, NULL), 0);
  g_nws = g_drained = g_sclosed = g_copen = 0;
  g_sws[0] = g_sws[1] = NULL;
  g_sent = g_recv = 0;
  ra_tunnel_client *c = client(f, NULL, false);
  static const ra_ws_handlers ch = {.on_open = cws_open, .on_message = cws_message};
  ra_ws *a, *b;
  assert_int_equal(ra_tunnel_ws_connect(c, "ws://x/w", NULL, 0, &ch, NULL, &a), 0);
  for (int i = 0; i < 2000 && g_copen < 1; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(ra_tunnel_ws_connect(c, "ws://x/w", NULL, 0, &ch, NULL, &b), 0);
  for (int i = 0; i < 2000 && g_copen < 2; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_nws, 2);
  /* the socket opened last is iterated first: it asks for the big message */
  assert_int_equal(ra_ws_send_text(b, "big"), 0);
  for (int i = 0; i < 4000 && !g_drained; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_drained, 1);
  assert_int_equal(g_sclosed, 1);
  assert_null(g_sws[0]);
  assert_non_null(g_sws[1]);
  /* all of it arrives (and nothing is left in flight at the end) */
  for (int i = 0; i < 4000 && g_recv < g_sent; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_recv, g_sent);
  ra_tunnel_client_free(c);
  spin(f, 20);
  assert_int_equal(g_sclosed, 2);
}

/* The same on the client: the first tunnelled socket's on_drain closes the
 * one after it while the client's control channel drains. */
static ra_ws *g_cws[2];
static int g_cdrained, g_cclosed;
static size_t g_srecv;
static void sws_count(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  g_srecv += len;
}
static void cws2_open(ra_ws *ws, void *ud) { g_copen++; }
static void cws2_drain(ra_ws *ws, void *ud) {
  g_cdrained++;
  for (int i = 0; i < 2; i++)
    if (g_cws[i] && g_cws[i] != ws) ra_ws_close(g_cws[i], 1000, "");
}
static void cws2_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  for (int i = 0; i < 2; i++)
    if (g_cws[i] == ws) g_cws[i] = NULL;
  g_cclosed++;
}

static void test_client_drain_closes_other_socket(void **st) {
  fx *f = *st;
  static const ra_ws_handlers sh = {.on_message = sws_count};
  assert_int_equal(ra_ws_route(f->router, "/w", &sh, NULL), 0);
  g_copen = g_cdrained = g_cclosed = 0;
  g_srecv = 0;
  ra_tunnel_client *c = client(f, NULL, false);
  static const ra_ws_handlers ch = {.on_open = cws2_open, .on_drain = cws2_drain, .on_close = cws2_close};
  assert_int_equal(ra_tunnel_ws_connect(c, "ws://x/w", NULL, 0, &ch, NULL, &g_cws[0]), 0);
  for (int i = 0; i < 2000 && g_copen < 1; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(ra_tunnel_ws_connect(c, "ws://x/w", NULL, 0, &ch, NULL, &g_cws[1]), 0);
  for (int i = 0; i < 2000 && g_copen < 2; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_copen, 2);
  /* the socket opened last is iterated first: it fills the control channel */
  size_t n = 1u << 20, sent = 0;
  uint8_t *b = calloc(1, n);
  assert_non_null(b);
  int rc = 0;
  for (int i = 0; i < 32 && rc != RA_WS_BACKPRESSURE; i++) {
    rc = ra_ws_send(g_cws[1], RA_WS_BINARY, b, n);
    sent += n;
  }
  free(b);
  assert_int_equal(rc, RA_WS_BACKPRESSURE);
  for (int i = 0; i < 4000 && !g_cdrained; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_cdrained, 1);
  assert_int_equal(g_cclosed, 1);
  assert_null(g_cws[0]);
  assert_non_null(g_cws[1]);
  for (int i = 0; i < 4000 && g_srecv < sent; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_srecv, sent);
  ra_tunnel_client_free(c);
  spin(f, 20);
  assert_int_equal(g_cclosed, 2);
}

/* A request that HTTP/1.1 could not carry is refused through the tunnel too:
 * CR/LF in a header value, a header name that is not a token, a method that
 * is not one. Well-formed requests on the same tunnel still get through. */
static void test_malformed_request_refused(void **st) {
  fx *f = *st;
  ra_tunnel_client *c = client(f, NULL, false);
  static const ra_header crlf[] = {{RA_STR("x-a"), RA_STR("a\r\nx-injected: 1")}};
  static const ra_header space[] = {{RA_STR("bad name"), RA_STR("v")}};
  static const ra_header ok[] = {{RA_STR("X-Ok"), RA_STR("caf\xc3\xa9 \t!")}};
  struct {
    const char *method;
    const ra_header *h;
    int status;
  } cases[] = {
    {"GET", crlf, 400}, {"GET", space, 400}, {"GE T", ok, 400}, {"GET", ok, 200},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    got g = {0};
    ra_tunnel_request q = {.method = cases[i].method, .url = "/hello", .headers = cases[i].h, .n_headers = 1};
    assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
    wait_for(f, &g.done);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, cases[i].status);
  }
  ra_tunnel_stats s;
  ra_tunnel_server_stats(f->ts, &s);
  assert_int_equal(s.requests, 1);
  ra_tunnel_client_free(c);
  spin(f, 10);
}

/* A handler paced by ra_res_pending / on_drain (like ra-hello's /stream)
 * while the control channel is backed up by other traffic (a tunnelled
 * socket's large message): the response still completes. */
static ra_ws *g_bulk;
static void bulk_open(ra_ws *ws, void *ud) { g_bulk = ws; }
static void bulk_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) { g_bulk = NULL; }
static void paced_more(ra_res *res, void *ud) {
  if (ra_res_pending(res) >= 64 * 1024) return; /* on_drain calls again */
  ra_res_send_text(res, 200, "paced");
}
static void paced(ra_req *req, ra_res *res, void *ud) {
  size_t n = 1u << 20;
  uint8_t *b = calloc(1, n);
  assert_non_null(b);
  int rc = 0;
  for (int i = 0; g_bulk && i < 32 && rc != RA_WS_BACKPRESSURE; i++) rc = ra_ws_send(g_bulk, RA_WS_BINARY, b, n);
  free(b);
  assert_int_equal(rc, RA_WS_BACKPRESSURE);
  ra_res_on_drain(res, paced_more, NULL);
  paced_more(res, NULL);
}

static void test_paced_response_completes(void **st) {
  fx *f = *st;
  static const ra_ws_handlers sh = {.on_open = bulk_open, .on_close = bulk_close};
  assert_int_equal(ra_ws_route(f->router, "/bulk", &sh, NULL), 0);
  ra_route(f->router, "GET", "/paced", paced, NULL);
  g_bulk = NULL;
  g_copen = 0;
  ra_tunnel_client *c = client(f, NULL, false);
  static const ra_ws_handlers ch = {.on_open = cws_open};
  ra_ws *w;
  assert_int_equal(ra_tunnel_ws_connect(c, "ws://x/bulk", NULL, 0, &ch, NULL, &w), 0);
  for (int i = 0; i < 2000 && g_copen < 1; i++) ra_loop_run_once(f->loop, 5);
  assert_non_null(g_bulk);
  got g = {0};
  ra_tunnel_request q = {.url = "/paced", .timeout_ms = 3000};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  wait_for(f, &g.done);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  assert_string_equal(g.body, "paced");
  ra_tunnel_client_free(c);
  spin(f, 20);
}

/* Pacing as over HTTP/1.1 (issue 10): a handler writing while
 * ra_res_pending is small sees what it wrote count as pending, and gets
 * on_drain from the loop in later turns, so it yields to other clients
 * instead of building its whole answer in one turn. */
typedef struct pacer {
  size_t left;
  int drains;
  bool saw_pending;
} pacer;
static pacer g_pacer;
static void pace_more(ra_res *res, void *ud) {
  pacer *p = ud;
  static char chunk[4096];
  while (p->left && ra_res_pending(res) < 64 * 1024) {
    size_t n = p->left < sizeof chunk ? p->left : sizeof chunk;
    assert_int_equal(ra_res_write(res, chunk, n), 0);
    p->left -= n;
  }
  if (p->left) {
    p->saw_pending = true; /* stopped on pending: waits for on_drain */
    return;
  }
  ra_res_end(res);
}
static void pace_drain(ra_res *res, void *ud) {
  ((pacer *)ud)->drains++;
  pace_more(res, ud);
}
static void pace_handler(ra_req *req, ra_res *res, void *ud) {
  g_pacer.left = 1u << 20;
  ra_res_set_status(res, 200);
  ra_res_on_drain(res, pace_drain, &g_pacer);
  pace_more(res, &g_pacer);
}

static void test_tunnel_response_is_paced(void **st) {
  fx *f = *st;
  ra_route(f->router, "GET", "/paced1m", pace_handler, NULL);
  memset(&g_pacer, 0, sizeof g_pacer);
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0};
  ra_tunnel_request q = {.url = "/paced1m", .timeout_ms = 5000};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  wait_for(f, &g.done);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.body_len, 1u << 20);
  assert_true(g_pacer.saw_pending);
  assert_true(g_pacer.drains >= 15); /* 1 MiB in windows of 64 KiB */
  ra_tunnel_client_free(c);
  spin(f, 20);
}

/* ra_tunnel_server_shutdown: a request in flight is answered, a new one
 * is refused (503 with `error`), then the channel closes and done runs;
 * past the deadline what is still pending is cancelled. */
static int g_stopped;
static void on_stopped(ra_tunnel_server *ts, void *ud) {
  (void)ts;
  (void)ud;
  g_stopped++;
}

static void test_shutdown_answers_in_flight(void **st) {
  fx *f = *st;
  g_held = NULL;
  g_stopped = 0;
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0}, g2 = {0};
  ra_tunnel_request q = {.url = "/hold", .timeout_ms = 5000};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  for (int i = 0; i < 2000 && !g_held; i++) ra_loop_run_once(f->loop, 5);
  assert_non_null(g_held);
  ra_tunnel_server_shutdown(f->ts, 5000, on_stopped, NULL);
  ra_tunnel_server_shutdown(f->ts, 5000, on_stopped, NULL); /* a second call changes nothing */
  ra_tunnel_request q2 = {.url = "/hello", .timeout_ms = 5000};
  assert_int_equal(ra_tunnel_fetch(c, &q2, on_resp, &g2), 0);
  wait_for(f, &g2.done);
  /* refused: the 503's `error` fails the fetch with the server's reason */
  assert_int_equal(g2.err, -EPROTO);
  assert_string_equal(g2.msg, "server shutting down");
  assert_false(g.done);
  assert_int_equal(g_stopped, 0);
  ra_res_send_text(g_held, 200, "late");
  g_held = NULL;
  wait_for(f, &g.done);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  assert_string_equal(g.body, "late");
  for (int i = 0; i < 2000 && !g_stopped; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_stopped, 1);
  ra_tunnel_client_free(c);
  spin(f, 20);
}

/* A program that stops only its HTTP server: the control channels are
 * WebSockets of that server, and its shutdown reaching them starts the
 * tunnel's drain instead of cutting them, so a tunnelled request in flight
 * is still answered; a later ra_tunnel_server_shutdown still reports. */
static int g_http_stopped;
static void on_http_stopped(ra_http_server *srv, void *ud) { g_http_stopped++; }
static void test_http_shutdown_drains_tunnel(void **st) {
  fx *f = *st;
  g_held = NULL;
  g_stopped = 0;
  g_http_stopped = 0;
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0};
  ra_tunnel_request q = {.url = "/hold", .timeout_ms = 5000};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  for (int i = 0; i < 2000 && !g_held; i++) ra_loop_run_once(f->loop, 5);
  assert_non_null(g_held);
  ra_http_server_shutdown(f->http, 5000, on_http_stopped, NULL);
  spin(f, 20);
  assert_false(g.done); /* not cut */
  ra_res_send_text(g_held, 200, "late");
  g_held = NULL;
  wait_for(f, &g.done);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  ra_tunnel_server_shutdown(f->ts, 5000, on_stopped, NULL); /* already draining */
  for (int i = 0; i < 2000 && !(g_stopped && g_http_stopped); i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_stopped, 1);
  assert_int_equal(g_http_stopped, 1);
  ra_tunnel_client_free(c);
  spin(f, 20);
}

static void test_shutdown_deadline_cancels(void **st) {
  fx *f = *st;
  g_held = NULL;
  g_stopped = 0;
  g_cancelled = false;
  ra_tunnel_client *c = client(f, NULL, false);
  got g = {0};
  ra_tunnel_request q = {.url = "/hold", .timeout_ms = 5000};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  for (int i = 0; i < 2000 && !g_held; i++) ra_loop_run_once(f->loop, 5);
  assert_non_null(g_held);
  ra_tunnel_server_shutdown(f->ts, 100, on_stopped, NULL);
  for (int i = 0; i < 2000 && !g_stopped; i++) ra_loop_run_once(f->loop, 5);
  assert_int_equal(g_stopped, 1);
  assert_true(g_cancelled);
  ra_res_send_text(g_held, 200, "too late"); /* cancelled: a no-op */
  g_held = NULL;
  wait_for(f, &g.done);
  assert_true(g.done);
  /* cut by the channel's close at the deadline, with the server's reason */
  assert_int_equal(g.err, -ECONNRESET);
  assert_string_equal(g.msg, "tunnel disconnected (1001 server shutting down)");
  ra_tunnel_client_free(c);
  spin(f, 20);
}

/* A large request body is lent to the request from the tunnel's buffer
 * pool: the request may outlive the tunnel (an async handler answering
 * after the client left) and its body stays readable until it is freed. */
static void hold_body(ra_req *req, ra_res *res, void *ud) {
  g_held = res;
  ra_res_on_cancel(res, on_cancel, NULL);
}
static void test_body_outlives_tunnel(void **st) {
  fx *f = *st;
  ra_route(f->router, "POST", "/holdbody", hold_body, NULL);
  ra_tunnel_client *c = client(f, NULL, false);
  size_t n = 100000;
  uint8_t *body = malloc(n);
  assert_non_null(body);
  for (size_t i = 0; i < n; i++) body[i] = (uint8_t)('a' + i % 26);
  got g = {0};
  g_held = NULL;
  g_cancelled = false;
  ra_tunnel_request q = {.method = "POST", .url = "/holdbody", .has_body = true, .body = body, .body_len = n};
  assert_int_equal(ra_tunnel_fetch(c, &q, on_resp, &g), 0);
  for (int i = 0; i < 2000 && !g_held; i++) ra_loop_run_once(f->loop, 5);
  assert_non_null(g_held);
  ra_tunnel_client_free(c);
  for (int i = 0; i < 2000 && !g_cancelled; i++) ra_loop_run_once(f->loop, 5);
  assert_true(g_cancelled);
  spin(f, 10);
  ra_tunnel_stats s;
  ra_tunnel_server_stats(f->ts, &s);
  assert_int_equal(s.tunnels_open, 0); /* the tunnel and its pool are gone */
  ra_str b = ra_req_body(ra_res_req(g_held));
  assert_int_equal(b.len, n);
  assert_memory_equal(b.ptr, body, n);
  assert_int_equal(ra_res_send_text(g_held, 200, "late"), -ECANCELED); /* frees it, and the body */
  free(body);
}

/* The replay sets' memory is bounded server-wide: once the budget is spent,
 * the tunnel holding at least its fair share is recycled (503, then close
 * and rekey), while a light tunnel keeps being served. */
static int fetch_status(fx *f, ra_tunnel_client *c) {
  got g = {0};
  ra_tunnel_request q = {.url = "/hello"};
  if (ra_tunnel_fetch(c, &q, on_resp, &g) != 0) return -1;
  wait_for(f, &g.done);
  return g.err ? g.err : g.status;
}

static void test_replay_budget_recycles_heavy_tunnel(void **st) {
  fx *f = *st;
  ra_tunnel_client *heavy = client(f, NULL, false), *light = client(f, NULL, false);
  for (int i = 0; i < 5; i++) assert_int_equal(fetch_status(f, light), 200);
  int first_refused = 0;
  for (int i = 1; i <= 60 && !first_refused; i++) {
    int status = fetch_status(f, heavy);
    if (status != 200) {
      /* the 503 carries `error`: the client rejects the fetch with it */
      assert_int_equal(status, -EPROTO);
      first_refused = i;
    }
  }
  /* 40 nonces in all, 5 of them the light tunnel's: the heavy one's 36th */
  assert_int_equal(first_refused, 36);
  ra_tunnel_stats s;
  ra_tunnel_server_stats(f->ts, &s);
  assert_true(s.requests_refused >= 1);
  /* the light tunnel (5 of 40, under its share of 20) is untouched */
  for (int i = 0; i < 5; i++) assert_int_equal(fetch_status(f, light), 200);
  ra_tunnel_client_free(heavy);
  ra_tunnel_client_free(light);
  spin(f, 20);
}

/* PROTOCOL.md §11: the window and chunk a server announces are checked at
 * creation; switched off, they are not looked at. */
static void test_body_stream_opts_checked(void **st) {
  fx *f = *st;
  char sim[160];
  snprintf(sim, sizeof sim, "%s/sim", f->dir);
  ra_quote_provider *p;
  assert_int_equal(ra_quote_provider_sim(sim, &p), 0);
  ra_tunnel_server *ts = NULL;
  ra_tunnel_server_opts o = {.path = "/__ra2__", .body_stream_window = 1000};
  assert_int_equal(ra_tunnel_server_new(f->loop, f->router, p, &o, &ts), -EINVAL);
  assert_null(ts);
  o.body_stream_window = 65536;
  o.body_stream_chunk = 65537; /* above the window */
  assert_int_equal(ra_tunnel_server_new(f->loop, f->router, p, &o, &ts), -EINVAL);
  o.body_stream_chunk = 16384;
  assert_int_equal(ra_tunnel_server_new(f->loop, f->router, p, &o, &ts), 0);
  ra_tunnel_server_free(ts);
  ra_tunnel_server_opts off = {.path = "/__ra3__", .no_body_streams = true, .body_stream_window = 1};
  assert_int_equal(ra_tunnel_server_new(f->loop, f->router, p, &off, &ts), 0);
  ra_tunnel_server_free(ts);
  ra_quote_provider_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_round_trip_attested, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuses_empty_policy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cancel_on_drop, setup, teardown),
    cmocka_unit_test_setup_teardown(test_free_with_open_tunnel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_free_tunnel_server_first, setup, teardown),
    cmocka_unit_test_setup_teardown(test_drain_closes_other_socket, setup, teardown),
    cmocka_unit_test_setup_teardown(test_client_drain_closes_other_socket, setup, teardown),
    cmocka_unit_test_setup_teardown(test_malformed_request_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_paced_response_completes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_tunnel_response_is_paced, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shutdown_answers_in_flight, setup, teardown),
    cmocka_unit_test_setup_teardown(test_http_shutdown_drains_tunnel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shutdown_deadline_cancels, setup, teardown),
    cmocka_unit_test_setup_teardown(test_body_outlives_tunnel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_replay_budget_recycles_heavy_tunnel, setup_small_replay_budget, teardown),
    cmocka_unit_test_setup_teardown(test_body_stream_opts_checked, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
