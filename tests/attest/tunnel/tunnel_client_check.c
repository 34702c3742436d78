/* tunnel-client-check: our C tunnel client (attest/tunnel_client.h) against
 * a tunnel server given by origin, usually the independent Node.js server of
 * node_server.js, sometimes our own (tunnel-test-server).
 *
 *   tunnel-client-check MODE ORIGIN SIM_DIR
 *     ok              the feature suite (needs node_server.js routes)
 *     ok-ours         the feature suite's common part against tunnel-test-server
 *     refuse-untrusted / refuse-mrtd / refuse-binding
 *                     the handshake must be refused with that reason, and no
 *                     request may leave
 *     reconnect       /drop kills the control channel; a later fetch works
 *                     over a fresh handshake (new key)
 * Prints one line per check; exits 0 only if all passed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/core/loop.h"

static int failures;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) printf("ok   " __VA_ARGS__);                  \
    else { printf("FAIL " __VA_ARGS__); failures++; }      \
    printf("\n");                                          \
  } while (0)

typedef struct result {
  bool done;
  int err;
  int status;
  char status_text[64];
  char msg[300];
  uint8_t *body;
  size_t body_len;
  bool has_body, body_is_text;
  char headers[2048]; /* "name: value\n"... */
} result;

static ra_loop *loop;

static void on_resp(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  result *res = ud;
  res->done = true;
  res->err = err;
  if (msg) snprintf(res->msg, sizeof res->msg, "%s", msg);
  if (!err) {
    res->status = r->status;
    snprintf(res->status_text, sizeof res->status_text, "%.*s", (int)r->status_text.len, r->status_text.ptr);
    res->has_body = r->body != NULL;
    res->body_is_text = r->body_is_text;
    res->body = malloc(r->body_len + 1);
    memcpy(res->body, r->body ? r->body : (const uint8_t *)"", r->body_len);
    res->body[r->body_len] = 0;
    res->body_len = r->body_len;
    size_t n = 0;
    for (size_t i = 0; i < r->n_headers && n < sizeof res->headers - 1; i++) {
      ra_str k = r->headers[i].name, v = r->headers[i].value;
      n += (size_t)snprintf(res->headers + n, sizeof res->headers - n, "%.*s: %.*s\n", (int)k.len, k.ptr,
                            (int)v.len, v.ptr);
    }
  }
  ra_loop_stop(loop);
}

static void guard_fire(ra_timer *t, void *ud) { *(bool *)ud = true; ra_loop_stop(loop); }

/* Runs the loop until *flag or ms passed. */
static void run_until(bool *flag, uint64_t ms) {
  bool timeout = false;
  ra_timer g;
  ra_timer_init(loop, &g, guard_fire, &timeout);
  ra_timer_start(&g, ms, 0);
  while (!*flag && !timeout) ra_loop_run(loop);
  ra_timer_stop(&g);
}

static result fetch(ra_tunnel_client *c, const char *method, const char *url, const ra_header *h, size_t nh,
                    const char *body, size_t body_len, bool text) {
  result r;
  memset(&r, 0, sizeof r);
  ra_tunnel_request q = {.method = method, .url = url, .headers = h, .n_headers = nh,
                         .has_body = body != NULL, .body_is_text = text, .body = body, .body_len = body_len};
  if (ra_tunnel_fetch(c, &q, on_resp, &r)) { r.err = -ENOMEM; return r; }
  run_until(&r.done, 10000);
  return r;
}

static int ready_status = 1;
static int ready_err;
static bool ready_done;
static void on_ready(ra_tunnel_client *c, int status, const ra_verdict *vd, void *ud) {
  ready_status = status;
  ready_err = vd ? vd->err : 0;
  ready_done = true;
  ra_loop_stop(loop);
}

/* tunnelled WebSocket */
typedef struct wsr {
  bool open, closed;
  int opens;           /* on_open calls */
  bool open_at_msg[8]; /* on_open had run when message i came */
  int n;
  ra_ws_type type[8];
  char data[8][128];
  size_t len[8];
  uint16_t code;
  char reason[64];
  bool flag;
} wsr;
static void w_open(ra_ws *ws, void *ud) {
  wsr *w = ud;
  w->open = w->flag = true;
  w->opens++;
  ra_loop_stop(loop);
}
static void w_msg(ra_ws *ws, ra_ws_type t, const uint8_t *d, size_t n, void *ud) {
  wsr *w = ud;
  if (w->n < 8) {
    w->open_at_msg[w->n] = w->open;
    w->type[w->n] = t;
    memcpy(w->data[w->n], d, n < 127 ? n : 127);
    w->len[w->n] = n;
    w->n++;
  }
  w->flag = true;
  ra_loop_stop(loop);
}
static void w_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  wsr *w = ud;
  w->closed = w->flag = true;
  w->code = code;
  snprintf(w->reason, sizeof w->reason, "%.*s", (int)reason.len, reason.ptr);
  ra_loop_stop(loop);
}
static const ra_ws_handlers wh = {.on_open = w_open, .on_message = w_msg, .on_close = w_close};

static void free_result(result *r) { free(r->body); }

static void suite(ra_tunnel_client *c, const char *origin, bool node) {
  result r = fetch(c, NULL, "/hello", NULL, 0, NULL, 0, false);
  CHECK(r.err == 0 && r.status == 200 && !strcmp((char *)r.body, "world") && !strcmp(r.status_text, "OK"),
        "GET /hello -> 200 world (err %d status %d)", r.err, r.status);
  free_result(&r);

  ra_header h[] = {{RA_STR("Content-Type"), RA_STR("application/json")}, {RA_STR("X-A"), RA_STR("1")}};
  r = fetch(c, "POST", "/echo", h, 2, "{\"a\":1}", 7, true);
  CHECK(r.err == 0 && r.status == 200 && !strcmp((char *)r.body, "{\"a\":1}") &&
            strstr(r.headers, "content-type: application/json") && strstr(r.headers, "x-method: POST"),
        "POST JSON echoed with its content-type");
  free_result(&r);

  r = fetch(c, NULL, "/bin", NULL, 0, NULL, 0, false);
  bool bin_ok = r.err == 0 && r.body_len == 256;
  for (size_t i = 0; bin_ok && i < 256; i++) bin_ok = r.body[i] == i;
  CHECK(bin_ok && !r.body_is_text, "binary response (256 bytes, byte string)");
  free_result(&r);

  r = fetch(c, NULL, "/missing", NULL, 0, NULL, 0, false);
  CHECK(r.err == 0 && r.status == 404, "404 (status %d)", r.status);
  free_result(&r);

  r = fetch(c, NULL, "/empty", NULL, 0, NULL, 0, false);
  CHECK(r.err == 0 && r.status == 204 && r.body_len == 0, "204 without body");
  free_result(&r);

  r = fetch(c, NULL, "/cookies", NULL, 0, NULL, 0, false);
  CHECK(r.err == 0 && strstr(r.headers, "set-cookie: a=1\nset-cookie: b=2\n") && strstr(r.headers, "x-single: one"),
        "multi-valued headers: %s", r.headers);
  free_result(&r);

  /* many in flight, async, out of order */
  enum { N = 100 };
  result rs[N];
  char urls[N][32];
  memset(rs, 0, sizeof rs);
  for (int i = 0; i < N; i++) {
    snprintf(urls[i], sizeof urls[i], "/slow?ms=%d", (N - i) % 13 * 5);
    ra_tunnel_request q = {.url = urls[i]};
    ra_tunnel_fetch(c, &q, on_resp, &rs[i]);
  }
  bool all = false;
  for (int spins = 0; spins < 200 && !all; spins++) {
    bool dummy = false;
    run_until(&dummy, 20);
    all = true;
    for (int i = 0; i < N; i++) all = all && rs[i].done;
  }
  int good = 0;
  for (int i = 0; i < N; i++) {
    char want[32];
    snprintf(want, sizeof want, "slow %d", (N - i) % 13 * 5);
    if (rs[i].done && rs[i].err == 0 && rs[i].body && !strcmp((char *)rs[i].body, want)) good++;
    free_result(&rs[i]);
  }
  CHECK(good == N, "%d async requests multiplexed, each matched to its answer (%d ok)", N, good);

  if (node) {
    r = fetch(c, NULL, "/error", NULL, 0, NULL, 0, false);
    CHECK(r.err == -EPROTO && strstr(r.msg, "handler exploded"), "an http_response with `error` fails the fetch: %s", r.msg);
    free_result(&r);
    r = fetch(c, "PUT", "/echo", NULL, 0, "\x00\x01\xff", 3, false);
    CHECK(r.err == 0 && r.body_len == 3 && r.body[2] == 0xff, "binary request body");
    free_result(&r);
    /* names go out lowercased, as a browser's Headers sends them: the
     * reference's Express server parses JSON only under "content-type" */
    ra_header jh[] = {{RA_STR("Content-Type"), RA_STR("application/json")}};
    r = fetch(c, "POST", "/json", jh, 1, "{\"a\":1}", 7, true);
    CHECK(r.err == 0 && r.status == 200 && r.body && !strcmp((char *)r.body, "{\"parsed\":{\"a\":1}}"),
          "JSON body parsed by a server that looks up \"content-type\" exactly (status %d: %s)", r.status,
          r.body ? (char *)r.body : "");
    free_result(&r);
    /* header text of code points 0x80..0xff comes back as those bytes */
    r = fetch(c, NULL, "/latin", NULL, 0, NULL, 0, false);
    CHECK(r.err == 0 && strstr(r.headers, "x-check: \xe2\x9c\x93\n") &&
              strstr(r.headers, "x-latin: caf\xe9\nx-latin: \xff\n"),
          "response header values as bytes (ISO-8859-1), as over plain HTTP: %s", r.headers);
    free_result(&r);
    r = fetch(c, NULL, "/wide", NULL, 0, NULL, 0, false);
    CHECK(r.err == -EPROTO && strstr(r.msg, "U+00FF"),
          "a response header above U+00FF fails the fetch (as fetch's Headers would): %d %s", r.err, r.msg);
    free_result(&r);
  }

  /* tunnelled WebSocket */
  wsr w;
  memset(&w, 0, sizeof w);
  char wsurl[256];
  snprintf(wsurl, sizeof wsurl, "ws://%s/ws/echo", origin + 7);
  const char *protos[] = {"p1", "p2"};
  ra_ws *ws;
  ra_tunnel_ws_connect(c, wsurl, protos, 2, &wh, &w, &ws);
  run_until(&w.flag, 5000);
  CHECK(w.open, "tunnelled WebSocket opens");
  w.flag = false;
  ra_ws_send_text(ws, "hi");
  run_until(&w.flag, 5000);
  CHECK(w.n == 1 && w.type[0] == RA_WS_TEXT && w.len[0] == 2 && !memcmp(w.data[0], "hi", 2), "text message echoed");
  w.flag = false;
  ra_ws_send(ws, RA_WS_BINARY, "\x01\x02\x03", 3);
  run_until(&w.flag, 5000);
  CHECK(w.n == 2 && w.type[1] == RA_WS_BINARY && w.len[1] == 3 && !memcmp(w.data[1], "\x01\x02\x03", 3),
        "binary message echoed as binary");
  w.flag = false;
  ra_ws_send_text(ws, "close");
  run_until(&w.flag, 5000);
  CHECK(w.closed && w.code == 4000 && !strcmp(w.reason, "bye"), "server-side close 4000 bye (got %u %s)", w.code, w.reason);

  /* client-side close */
  memset(&w, 0, sizeof w);
  ra_tunnel_ws_connect(c, wsurl, NULL, 0, &wh, &w, &ws);
  run_until(&w.flag, 5000);
  w.flag = false;
  ra_ws_close(ws, 1000, "done");
  CHECK(w.closed && w.code == 1000, "client-side close delivers on_close 1000");
  if (node) {
    r = fetch(c, NULL, "/stats", NULL, 0, NULL, 0, false);
    CHECK(r.err == 0 && strstr((char *)r.body, "\"lastClose\":{\"code\":1000,\"reason\":\"done\"}"),
          "the server saw ws_close 1000 done: %s", r.body ? (char *)r.body : "");
    free_result(&r);
  }
  if (node) {
    /* the server's greeting comes before its ws_event open (the reference
     * does that): on_open first all the same, once */
    memset(&w, 0, sizeof w);
    char greet[256];
    snprintf(greet, sizeof greet, "ws://%s/ws/greet", origin + 7);
    ra_tunnel_ws_connect(c, greet, NULL, 0, &wh, &w, &ws);
    for (int i = 0; i < 20 && w.n < 1 && !w.closed; i++) {
      w.flag = false;
      run_until(&w.flag, 500);
    }
    CHECK(w.opens == 1 && w.n == 1 && w.open_at_msg[0] && w.len[0] == 7 && !memcmp(w.data[0], "welcome", 7),
          "a message before ws_event open: on_open first (opens %d, messages %d, open before it %d)", w.opens,
          w.n, w.open_at_msg[0]);
    w.flag = false;
    ra_ws_send_text(ws, "hi");
    for (int i = 0; i < 20 && w.n < 2 && !w.closed; i++) {
      w.flag = false;
      run_until(&w.flag, 500);
    }
    CHECK(w.opens == 1 && w.n == 2 && !memcmp(w.data[1], "hi", 2) && !w.closed,
          "the later ws_event open is ignored; the socket works (opens %d)", w.opens);
    ra_ws_close(ws, 1000, "");
    run_until(&w.closed, 2000);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: tunnel-client-check MODE ORIGIN SIM_DIR\n");
    return 2;
  }
  const char *mode = argv[1], *origin = argv[2], *sim = argv[3];
  ra_loop_new(&loop);
  ra_verifier *v;
  ra_verifier_new(0, &v);
  char root[4096];
  snprintf(root, sizeof root, "%s/%s", sim, RA_SIM_ROOT_FILE);
  if (strcmp(mode, "refuse-untrusted") && ra_verifier_add_root_file(v, root) <= 0) {
    fprintf(stderr, "cannot load %s\n", root);
    return 2;
  }
  ra_tdx_expect ex;
  memset(&ex, 0, sizeof ex);
  ra_policy pol;
  memset(&pol, 0, sizeof pol);
  if (!strcmp(mode, "refuse-mrtd")) {
    memset(ex.mrtd, 0x11, 48);
    ex.has = RA_TDX_MRTD;
    pol.tdx = &ex;
    pol.n_tdx = 1;
  } else {
    memset(ex.mrtd, 0x5d, 48); /* the sim's default TD */
    ex.has = RA_TDX_MRTD;
    pol.tdx = &ex;
    pol.n_tdx = 1;
  }
  ra_tunnel_client_opts o = {.verifier = v, .policy = &pol, .on_ready = on_ready,
                             .reconnect = !strcmp(mode, "reconnect"), .reconnect_delay_ms = 50};
  ra_tunnel_client *c;
  if (ra_tunnel_client_new(loop, origin, &o, &c)) return 2;

  if (!strcmp(mode, "ok") || !strcmp(mode, "ok-ours")) {
    run_until(&ready_done, 10000);
    CHECK(ready_status == 0, "handshake: quote verified, key sealed (status %d)", ready_status);
    suite(c, origin, !strcmp(mode, "ok"));
  } else if (!strncmp(mode, "refuse-", 7)) {
    result r = fetch(c, NULL, "/hello", NULL, 0, NULL, 0, false);
    int want = !strcmp(mode, "refuse-untrusted") ? RA_ERR_ROOT_UNTRUSTED
                       : !strcmp(mode, "refuse-mrtd") ? RA_ERR_MEASUREMENT : RA_ERR_BINDING;
    CHECK(ready_done && ready_status == -EACCES && ready_err == want, "handshake refused with %s (got %d %s)",
          ra_err_name(want), ready_status, ra_err_name(ready_err));
    CHECK(r.err == -EACCES, "the fetch fails with -EACCES, nothing sent (err %d: %s)", r.err, r.msg);
    free_result(&r);
    CHECK(!ra_tunnel_client_ready(c), "the client is not ready");
  } else if (!strcmp(mode, "reconnect")) {
    result r = fetch(c, NULL, "/stats", NULL, 0, NULL, 0, false);
    CHECK(r.err == 0 && r.status == 200, "first fetch");
    const char *tn = r.body ? strstr((char *)r.body, "\"tunnels\":") : NULL;
    int tunnels_before = tn ? atoi(tn + 10) : -1;
    free_result(&r);
    const uint8_t *k1 = ra_tunnel_client_server_key(c);
    CHECK(k1 != NULL, "server key known");
    r = fetch(c, NULL, "/drop", NULL, 0, NULL, 0, false);
    CHECK(r.err == -ECONNRESET, "a request pending when the tunnel drops fails with -ECONNRESET (%d)", r.err);
    free_result(&r);
    ready_done = false;
    run_until(&ready_done, 5000);
    CHECK(ready_done && ready_status == 0, "reconnected with a fresh handshake");
    r = fetch(c, NULL, "/stats", NULL, 0, NULL, 0, false);
    tn = r.body ? strstr((char *)r.body, "\"tunnels\":") : NULL;
    CHECK(tn && atoi(tn + 10) == tunnels_before + 1, "the server saw one more tunnel (%d before): %s",
          tunnels_before, r.body ? (char *)r.body : "");
    free_result(&r);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  ra_tunnel_client_free(c);
  bool never = false;
  run_until(&never, 100); /* the control channel's close */
  ra_loop_free(loop);
  ra_verifier_free(v);
  printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
