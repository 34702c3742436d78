/* tunnel-test-server: a raloop application for the tunnel's integration
 * tests. Plain HTTP and the tunnel on one loopback port (printed as
 * "PORT <n>" on stdout), the routes the tests exercise, stats as JSON.
 *
 *   tunnel-test-server --sim DIR | --quote FILE  [--max-inflight N]
 *       [--max-envelope BYTES] [--heartbeat MS] [--heartbeat-timeout MS]
 *       [--max-tunnels N] [--max-envelopes-per-key N] [--drain-timeout MS]
 *       [--no-body-streams 1] [--bs-window BYTES] [--bs-chunk BYTES]
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/tunnel/server.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/http/server.h"
#include "raloop/ws/ws.h"

static ra_tunnel_server *g_ts;

static void hello(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "world"); }

static void echo(ra_req *req, ra_res *res, void *ud) {
  ra_str ct, body = ra_req_body(req);
  char ctype[256] = "application/octet-stream";
  if (ra_req_header(req, "content-type", &ct) && ct.len < sizeof ctype)
    snprintf(ctype, sizeof ctype, "%.*s", (int)ct.len, ct.ptr);
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "content-type", ctype);
  ra_str x;
  if (ra_req_header(req, "x-test", &x)) {
    ra_res_add_header_n(res, RA_STR("x-test-echo"), x);
    char hex[256]; /* the bytes the application got, whatever the transport */
    size_t n = x.len < sizeof hex / 2 ? x.len : sizeof hex / 2 - 1;
    for (size_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned char)x.ptr[i]);
    hex[2 * n] = 0;
    ra_res_add_header(res, "x-test-hex", hex);
  }
  char m[64];
  snprintf(m, sizeof m, "%.*s", (int)ra_req_method(req).len, ra_req_method(req).ptr);
  ra_res_add_header(res, "x-method", m);
  ra_res_write(res, body.ptr, body.len);
  ra_res_end(res);
}

static void binary(ra_req *req, ra_res *res, void *ud) {
  uint8_t b[256];
  for (int i = 0; i < 256; i++) b[i] = (uint8_t)i;
  ra_res_send(res, 200, "application/octet-stream", b, sizeof b);
}

static void big(ra_req *req, ra_res *res, void *ud) {
  ra_str n;
  size_t len = 1u << 20;
  if (ra_req_query_get(req, "n", &n)) len = strtoul(n.ptr, NULL, 10);
  char *b = malloc(len + 1);
  for (size_t i = 0; i < len; i++) b[i] = (char)('a' + i % 26);
  ra_res_send(res, 200, "text/plain", b, len);
  free(b);
}

static void empty(ra_req *req, ra_res *res, void *ud) { ra_res_send(res, 204, NULL, NULL, 0); }

static void cookies(ra_req *req, ra_res *res, void *ud) {
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "Set-Cookie", "a=1");
  ra_res_add_header(res, "Set-Cookie", "b=2");
  ra_res_add_header(res, "X-Single", "one");
  ra_res_write(res, "ok", 2);
  ra_res_end(res);
}

static void private_(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "secret"); }

/* GET /hdr: header values with bytes >= 0x80 (UTF-8 of U+2713, a raw 0xe9) */
static void hdr(ra_req *req, ra_res *res, void *ud) {
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "X-Check", "\xe2\x9c\x93");
  ra_res_add_header(res, "X-Latin", "caf\xe9");
  ra_res_add_header(res, "X-Multi", "\xe9");
  ra_res_add_header(res, "X-Multi", "\xff");
  ra_res_write(res, "ok", 2);
  ra_res_end(res);
}

/* GET /slow?ms=N: answers "slow N" after N ms (default 20) */
typedef struct later {
  ra_timer t;
  ra_res *res;
  int ms;
  struct later *next, *prev;
} later;
static later *g_laters; /* answered at exit if still pending */
static void later_fire(ra_timer *t, void *ud) {
  later *l = ud;
  if (l->prev) l->prev->next = l->next; else g_laters = l->next;
  if (l->next) l->next->prev = l->prev;
  char b[64];
  snprintf(b, sizeof b, "slow %d", l->ms);
  ra_res_send_text(l->res, 200, b); /* cancelled responses: a safe no-op */
  free(l);
}
static void slow(ra_req *req, ra_res *res, void *ud) {
  later *l = calloc(1, sizeof *l);
  ra_str v;
  l->ms = 20;
  if (ra_req_query_get(req, "ms", &v)) l->ms = atoi(v.ptr);
  l->res = res;
  l->next = g_laters;
  if (g_laters) g_laters->prev = l;
  g_laters = l;
  ra_timer_init(ra_res_loop(res), &l->t, later_fire, l);
  ra_timer_start(&l->t, (uint64_t)l->ms, 0);
}

/* GET /hold: kept until GET /release answers every held response with
 * "released" (those whose tunnel went away are cancelled: a no-op) */
static ra_res **g_held;
static size_t g_nheld, g_capheld;
static void hold(ra_req *req, ra_res *res, void *ud) {
  if (g_nheld == g_capheld) {
    g_capheld = g_capheld ? 2 * g_capheld : 64;
    g_held = realloc(g_held, g_capheld * sizeof *g_held);
  }
  g_held[g_nheld++] = res;
}
static void release(ra_req *req, ra_res *res, void *ud) {
  char b[64];
  snprintf(b, sizeof b, "%zu", g_nheld);
  for (size_t i = 0; i < g_nheld; i++) ra_res_send_text(g_held[i], 200, "released");
  g_nheld = 0;
  ra_res_send_text(res, 200, b);
}

/* PUT|POST /upload (a streamed-body route, PROTOCOL.md §11): answers
 * {"bytes":N,"sha256":"..."} for the body as it arrived. ?pause=1: pauses
 * the body after its first piece until GET /resume; ?early=1: answers
 * "early" at once without reading the body. Stats: g_upload_* */
typedef struct upload {
  crypto_hash_sha256_state sha;
  uint64_t bytes;
  ra_req *req;
  ra_res *res;
  bool pause_once;
  struct upload *next, *prev; /* paused ones */
  bool paused;
} upload;
static upload *g_paused;
static uint64_t g_upload_cancelled, g_upload_pieces;
static void upload_unpause_list(upload *u) {
  if (!u->paused) return;
  if (u->prev) u->prev->next = u->next; else g_paused = u->next;
  if (u->next) u->next->prev = u->prev;
  u->paused = false;
}
static void upload_body(ra_req *req, const uint8_t *data, size_t len, bool last, void *ud) {
  upload *u = ud;
  g_upload_pieces++;
  crypto_hash_sha256_update(&u->sha, data, len);
  u->bytes += len;
  if (!last) {
    if (u->pause_once) {
      u->pause_once = false;
      ra_req_body_pause(req, true);
      u->paused = true;
      u->prev = NULL;
      u->next = g_paused;
      if (g_paused) g_paused->prev = u;
      g_paused = u;
    }
    return;
  }
  uint8_t md[crypto_hash_sha256_BYTES];
  char hex[2 * sizeof md + 1], json[160];
  crypto_hash_sha256_final(&u->sha, md);
  sodium_bin2hex(hex, sizeof hex, md, sizeof md);
  int n = snprintf(json, sizeof json, "{\"bytes\":%" PRIu64 ",\"sha256\":\"%s\",\"streamed\":%s}", u->bytes,
                   hex, ra_req_body_streamed(req) ? "true" : "false");
  ra_res *res = u->res;
  free(u);
  ra_res_send(res, 200, "application/json", json, (size_t)n);
}
static void upload_cancel(ra_res *res, void *ud) {
  upload *u = ud;
  g_upload_cancelled++;
  upload_unpause_list(u);
  free(u);
  ra_res_end(res);
}
static void h_upload(ra_req *req, ra_res *res, void *ud) {
  ra_str v;
  if (ra_req_query_get(req, "early", &v)) {
    ra_res_send_text(res, 200, "early");
    return;
  }
  upload *u = calloc(1, sizeof *u);
  crypto_hash_sha256_init(&u->sha);
  u->req = req;
  u->res = res;
  u->pause_once = ra_req_query_get(req, "pause", &v);
  ra_res_on_cancel(res, upload_cancel, u);
  ra_req_on_body(req, upload_body, u);
}
static void resume(ra_req *req, ra_res *res, void *ud) {
  size_t n = 0;
  while (g_paused) {
    upload *u = g_paused;
    upload_unpause_list(u);
    ra_req_body_pause(u->req, false);
    n++;
  }
  char b[32];
  snprintf(b, sizeof b, "%zu", n);
  ra_res_send_text(res, 200, b);
}

/* GET /bytes?n=N: N bytes (byte i = i % 251), paced on ra_res_pending with
 * a 256 KiB window as ra-hello's; the largest pending seen is in stats. */
typedef struct bytes_out {
  uint64_t sent, n;
} bytes_out;
static size_t g_max_pending;
static void bytes_more(ra_res *res, void *ud) {
  bytes_out *b = ud;
  static uint8_t block[251 * 64];
  for (size_t i = 0; i < sizeof block; i++) block[i] = (uint8_t)(i % 251);
  size_t p;
  while (b->sent < b->n && (p = ra_res_pending(res)) < 256 * 1024) {
    uint64_t left = b->n - b->sent;
    size_t len = left < sizeof block ? (size_t)left : sizeof block;
    if (ra_res_write(res, block, len) < 0) break;
    b->sent += len;
    p = ra_res_pending(res);
    if (p > g_max_pending && p < ((size_t)1 << 40)) g_max_pending = p;
  }
  if (b->sent >= b->n) {
    ra_res_end(res);
    free(b);
  }
}
static void bytes_cancel(ra_res *res, void *ud) {
  g_upload_cancelled++;
  ra_res_end(res);
  free(ud);
}
static void bytes(ra_req *req, ra_res *res, void *ud) {
  ra_str v;
  bytes_out *b = calloc(1, sizeof *b);
  if (ra_req_query_get(req, "n", &v)) b->n = strtoull(v.ptr, NULL, 10);
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "Content-Type", "application/octet-stream");
  if (!ra_req_query_get(req, "nolen", &v)) ra_res_set_content_length(res, b->n);
  ra_res_on_cancel(res, bytes_cancel, b);
  ra_res_on_drain(res, bytes_more, b);
  bytes_more(res, b);
}

static void stats(ra_req *req, ra_res *res, void *ud) {
  ra_tunnel_stats s;
  ra_tunnel_server_stats(g_ts, &s);
  char b[2048];
  snprintf(b, sizeof b,
           "{\"tunnels_open\":%llu,\"tunnels_total\":%llu,\"tunnels_refused\":%llu,\"keyed\":%llu,"
           "\"bad_cbor\":%llu,\"bad_sealed_key\":%llu,\"dropped_before_key\":%llu,"
           "\"dropped_plaintext\":%llu,\"decrypt_failed\":%llu,\"replays\":%llu,\"requests\":%llu,"
           "\"requests_refused\":%llu,\"responses_cancelled\":%llu,\"sockets_opened\":%llu,"
           "\"heartbeat_drops\":%llu,\"kx_timeouts\":%llu,\"unkeyed_refused\":%llu,"
           "\"nested_refused\":%llu,\"responses_too_large\":%llu,\"buffered_refused\":%llu,"
           "\"body_streams_negotiated\":%llu,\"body_streams_in\":%llu,\"body_streams_out\":%llu,"
           "\"body_stream_violations\":%llu,\"body_stream_cancels\":%llu,\"upload_cancelled\":%llu,"
           "\"upload_pieces\":%llu,\"max_pending\":%zu,\"paused\":%d}",
           (unsigned long long)s.tunnels_open, (unsigned long long)s.tunnels_total,
           (unsigned long long)s.tunnels_refused, (unsigned long long)s.keyed,
           (unsigned long long)s.bad_cbor, (unsigned long long)s.bad_sealed_key,
           (unsigned long long)s.dropped_before_key, (unsigned long long)s.dropped_plaintext,
           (unsigned long long)s.decrypt_failed, (unsigned long long)s.replays,
           (unsigned long long)s.requests, (unsigned long long)s.requests_refused,
           (unsigned long long)s.responses_cancelled, (unsigned long long)s.sockets_opened,
           (unsigned long long)s.heartbeat_drops, (unsigned long long)s.kx_timeouts,
           (unsigned long long)s.unkeyed_refused, (unsigned long long)s.nested_refused,
           (unsigned long long)s.responses_too_large, (unsigned long long)s.buffered_refused,
           (unsigned long long)s.body_streams_negotiated, (unsigned long long)s.body_streams_in,
           (unsigned long long)s.body_streams_out, (unsigned long long)s.body_stream_violations,
           (unsigned long long)s.body_stream_cancels, (unsigned long long)g_upload_cancelled,
           (unsigned long long)g_upload_pieces, g_max_pending, g_paused != NULL);
  ra_res_send(res, 200, "application/json", b, strlen(b));
}

/* WebSocket /echo: echoes with the same type; "close" -> close 4000 "bye";
 * "path" -> the path and whether attested */
static void ws_msg(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  if (type == RA_WS_TEXT && len == 5 && !memcmp(data, "close", 5)) {
    ra_ws_close(ws, 4000, "bye");
    return;
  }
  if (type == RA_WS_TEXT && len == 4 && !memcmp(data, "info", 4)) {
    char b[256];
    ra_str p = ra_ws_path(ws), pr = ra_ws_protocol(ws);
    snprintf(b, sizeof b, "path=%.*s attested=%d protocol=%.*s", (int)p.len, p.ptr, ra_ws_attested(ws),
             (int)pr.len, pr.ptr);
    ra_ws_send_text(ws, b);
    return;
  }
  ra_ws_send(ws, type, data, len);
}
static int ws_select(const ra_req *req, const ra_str *offered, size_t n, void *ud) {
  for (size_t i = 0; i < n; i++)
    if (ra_str_eq_cstr(offered[i], "p2")) return (int)i;
  return -1;
}
static const ra_ws_handlers echo_ws = {.on_message = ws_msg, .select_protocol = ws_select};

static ra_http_server *g_srv;
static void on_sig(ra_loop *loop, int signo, void *ud) { ra_loop_stop(loop); }

int main(int argc, char **argv) {
  const char *sim = NULL, *quote = NULL;
  ra_tunnel_server_opts o = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "missing value for %s\n", a); return 2; }
    i++;
    if (!strcmp(a, "--sim")) sim = v;
    else if (!strcmp(a, "--quote")) quote = v;
    else if (!strcmp(a, "--max-inflight")) o.max_inflight = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--max-envelope")) o.max_envelope = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--heartbeat")) o.heartbeat_interval_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--heartbeat-timeout")) o.heartbeat_timeout_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--max-tunnels")) o.max_tunnels = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--max-envelopes-per-key")) o.max_envelopes_per_key = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--drain-timeout")) o.drain_timeout_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--kx-timeout")) o.kx_timeout_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--max-unkeyed")) o.max_unkeyed = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--max-unkeyed-per-addr")) o.max_unkeyed_per_addr = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--max-response")) o.max_response = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--max-buffered-per-tunnel")) o.max_buffered_per_tunnel = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--max-buffered")) o.max_buffered = strtoul(v, NULL, 10);
    else if (!strcmp(a, "--no-body-streams")) o.no_body_streams = atoi(v) != 0;
    else if (!strcmp(a, "--bs-window")) o.body_stream_window = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--bs-chunk")) o.body_stream_chunk = strtoull(v, NULL, 10);
    else { fprintf(stderr, "unknown option %s\n", a); return 2; }
  }
  ra_quote_provider *p = NULL;
  int rc = sim ? ra_quote_provider_sim(sim, &p)
         : quote ? ra_quote_provider_file(quote, &p) : -EINVAL;
  if (rc) { fprintf(stderr, "provider: %s\n", sim || quote ? ra_strerror(rc) : "--sim DIR or --quote FILE"); return 1; }
  ra_loop *loop;
  ra_loop_new(&loop);
  ra_router *r;
  ra_router_new(&r);
  ra_route(r, "GET", "/hello", hello, NULL);
  ra_route(r, "*", "/echo", echo, NULL);
  ra_route(r, "GET", "/bin", binary, NULL);
  ra_route(r, "GET", "/big", big, NULL);
  ra_route(r, "GET", "/empty", empty, NULL);
  ra_route(r, "GET", "/cookies", cookies, NULL);
  ra_route(r, "GET", "/hdr", hdr, NULL);
  ra_route(r, "GET", "/slow", slow, NULL);
  ra_route(r, "GET", "/stats", stats, NULL);
  ra_route(r, "GET", "/hold", hold, NULL);
  ra_route(r, "GET", "/release", release, NULL);
  ra_route_ex(r, "GET", "/private", private_, NULL, RA_ROUTE_ATTESTED_ONLY);
  ra_route_ex(r, "PUT", "/upload", h_upload, NULL, RA_ROUTE_STREAM_BODY);
  ra_route_ex(r, "POST", "/upload", h_upload, NULL, RA_ROUTE_STREAM_BODY);
  ra_route(r, "GET", "/resume", resume, NULL);
  ra_route(r, "GET", "/bytes", bytes, NULL);
  ra_ws_route(r, "/ws/echo", &echo_ws, NULL);
  rc = ra_tunnel_server_new(loop, r, p, &o, &g_ts);
  ra_quote_provider_free(p);
  if (rc) { fprintf(stderr, "tunnel: %s\n", strerror(-rc)); return 1; }
  ra_http_server_new(loop, r, NULL, &g_srv);
  if (!g_srv || ra_http_server_listen(g_srv, "127.0.0.1:0", NULL)) { fprintf(stderr, "listen failed\n"); return 1; }
  ra_loop_on_signal(loop, SIGTERM, on_sig, NULL);
  ra_loop_on_signal(loop, SIGINT, on_sig, NULL);
  printf("PORT %u\n", ra_http_server_port(g_srv));
  fflush(stdout);
  ra_loop_run(loop);
  ra_http_server_free(g_srv);
  ra_tunnel_server_free(g_ts);
  ra_loop_on_signal(loop, SIGTERM, NULL, NULL);
  ra_loop_on_signal(loop, SIGINT, NULL, NULL);
  /* let deferred closes run */
  for (int i = 0; i < 3; i++) ra_loop_run_once(loop, 0);
  for (size_t i = 0; i < g_nheld; i++) ra_res_send_text(g_held[i], 503, "stopping");
  free(g_held);
  while (g_laters) {
    ra_timer_stop(&g_laters->t);
    later_fire(&g_laters->t, g_laters);
  }
  ra_router_free(r);
  ra_loop_free(loop);
  return 0;
}
