/* tunnel-stream-client-check: the C tunnel client's streamed bodies
 * (PROTOCOL.md §11) end to end in one process: our tunnel server (simulated
 * TEE) and our client on loopback.
 *   - negotiation: both sides announced, ra_tunnel_client_body_streams
 *   - a 24 MiB upload pulled from body_read (byte i = i % 251): the handler
 *     sees every byte in order, in pieces no larger than the chunk
 *   - a source that says -EAGAIN, resumed from a timer
 *   - a 24 MiB download to on_data (content checked), paused once and
 *     resumed; the same response collected whole for a caller without
 *     on_data
 *   - ra_tunnel_fetch_cancel mid-download: -ECANCELED, the server's
 *     handler cancelled; a source that fails: its error, handler cancelled
 *   - a client that does not opt in (no_body_streams): the upload is sent
 *     whole; one over max_whole_upload fails -EMSGSIZE (known length: at
 *     once; unknown: when the bound is passed)
 *   - key rotation: a streamed upload in flight at the 1012 close fails
 *     -ECONNRESET (never replayed); a tunnelled WebSocket open at that
 *     moment gets on_close 1012 "tunnel key rotated" and can be reopened
 * With arguments `node ORIGIN SIM_DIR`: against the independent Node server
 * (node_server.js --streams, written from the wire format): a streamed
 * upload (its SHA-256) and download, and servers that break the rules
 * (data past the credit, a piece over the chunk, a piece before the head):
 * each fetch fails -EPROTO, the client sends http_cancel, the tunnel goes
 * on; a cancelled download reaches the server as http_cancel.
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
#include "raloop/http/request.h"
#include "raloop/http/response.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"
#include "raloop/ws/ws.h"

#include <sodium.h>

static int failures;
#define CHECK(cond, ...)                              \
  do {                                                \
    if (cond) printf("ok   " __VA_ARGS__);             \
    else { printf("FAIL " __VA_ARGS__); failures++; } \
    printf("\n");                                     \
  } while (0)

static ra_loop *loop;
static ra_tunnel_server *ts;

/* ---- the server's routes ------------------------------------------------- */

/* PUT /upload: checks the pattern as it arrives, answers "N ok" or "N bad" */
typedef struct upload_st {
  uint64_t n;
  bool bad;
  ra_res *res;
} upload_st;
static size_t up_max_piece;
static int up_cancelled, up_started;
static void up_body(ra_req *req, const uint8_t *data, size_t len, bool last, void *ud) {
  upload_st *u = ud;
  ra_res *res = u->res;
  if (len > up_max_piece) up_max_piece = len;
  for (size_t i = 0; i < len; i++)
    if (data[i] != (uint8_t)((u->n + i) % 251)) u->bad = true;
  u->n += len;
  if (last) {
    uint64_t n = u->n;
    bool bad = u->bad;
    free(u);
    ra_res_sendf(res, 200, "%llu %s", (unsigned long long)n, bad ? "bad" : "ok");
  }
}
static void up_cancel(ra_res *res, void *ud) {
  up_cancelled++;
  free(ud);
  ra_res_end(res);
}
static void h_upload(ra_req *req, ra_res *res, void *ud) {
  upload_st *u = calloc(1, sizeof *u);
  u->res = res;
  up_started++;
  ra_res_on_cancel(res, up_cancel, u);
  ra_req_on_body(req, up_body, u);
}

/* GET /bytes?n=N: N bytes (byte i = i % 251), paced by the client */
typedef struct bytes_out {
  uint64_t sent, n;
} bytes_out;
static uint8_t pattern[251 * 64];
static int dn_cancelled;
static void bytes_more(ra_res *res, void *ud) {
  bytes_out *b = ud;
  while (b->sent < b->n && ra_res_pending(res) < 256 * 1024) {
    uint64_t left = b->n - b->sent;
    size_t len = left < sizeof pattern ? (size_t)left : sizeof pattern;
    if (ra_res_write(res, pattern, len) < 0) break;
    b->sent += len;
  }
  if (b->sent >= b->n) {
    ra_res_end(res);
    free(b);
  }
}
static void bytes_cancel(ra_res *res, void *ud) {
  dn_cancelled++;
  free(ud);
  ra_res_end(res);
}
static void h_bytes(ra_req *req, ra_res *res, void *ud) {
  ra_str v;
  bytes_out *b = calloc(1, sizeof *b);
  if (ra_req_query_get(req, "n", &v)) b->n = strtoull(v.ptr, NULL, 10);
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "Content-Type", "application/octet-stream");
  ra_res_set_content_length(res, b->n);
  ra_res_on_cancel(res, bytes_cancel, b);
  ra_res_on_drain(res, bytes_more, b);
  bytes_more(res, b);
}

static void ws_echo(ra_ws *ws, ra_ws_type t, const uint8_t *d, size_t n, void *ud) { ra_ws_send(ws, t, d, n); }
static const ra_ws_handlers echo_h = {.on_message = ws_echo};

/* ---- the loop -------------------------------------------------------------- */

static void guard_fire(ra_timer *t, void *ud) { *(bool *)ud = true; ra_loop_stop(loop); }
static void tick_fire(ra_timer *t, void *ud) { ra_loop_stop(loop); }
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

/* ---- one fetch ------------------------------------------------------------- */

typedef struct fetch {
  ra_tunnel_client *c;
  uint64_t id;
  bool done;
  int err, status;
  char msg[300], body[128];
  size_t body_len;
  /* the source */
  uint64_t src_n, src_total, src_fail_at, src_stall_at;
  int src_err;
  bool stalled, stall_forever;
  /* the sink */
  uint64_t got, cancel_at;
  bool bad, paused_once, want_pause, heads, pause_always;
  size_t max_piece;
} fetch;

static void on_done(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  fetch *f = ud;
  f->done = true;
  f->err = err;
  f->status = err ? 0 : r->status;
  snprintf(f->msg, sizeof f->msg, "%s", msg ? msg : "");
  if (!err && r->body) {
    f->body_len = r->body_len;
    snprintf(f->body, sizeof f->body, "%.*s", (int)(r->body_len < 100 ? r->body_len : 100), r->body);
    for (size_t i = 0; i < r->body_len; i++)
      if (r->body[i] != (uint8_t)(i % 251)) { f->bad = true; break; }
  }
}

static void resume_fire(ra_timer *t, void *ud) {
  fetch *f = ud;
  ra_tunnel_fetch_resume(f->c, f->id);
}
static ra_timer resume_timer;

static ssize_t src_read(void *ud, uint8_t *buf, size_t cap) {
  fetch *f = ud;
  if (f->src_fail_at && f->src_n >= f->src_fail_at) return f->src_err;
  if (f->src_stall_at && f->src_n >= f->src_stall_at && (f->stall_forever || !f->stalled)) {
    if (!f->stalled) {
      f->stalled = true;
      if (!f->stall_forever) {
        ra_timer_init(loop, &resume_timer, resume_fire, f);
        ra_timer_start(&resume_timer, 50, 0);
      }
    }
    return -EAGAIN;
  }
  uint64_t left = f->src_total - f->src_n;
  size_t n = left < cap ? (size_t)left : cap;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)((f->src_n + i) % 251);
  f->src_n += n;
  return (ssize_t)n;
}

static int sink_head(ra_tunnel_client *c, const struct ra_tunnel_response *r, void *ud) {
  fetch *f = ud;
  f->heads = true;
  f->status = r->status;
  return 0;
}
static int sink_data(ra_tunnel_client *c, const uint8_t *d, size_t n, void *ud) {
  fetch *f = ud;
  if (n > f->max_piece) f->max_piece = n;
  for (size_t i = 0; i < n; i++)
    if (d[i] != (uint8_t)((f->got + i) % 251)) f->bad = true;
  f->got += n;
  if (f->cancel_at && f->got >= f->cancel_at) {
    f->cancel_at = 0;
    ra_tunnel_fetch_cancel(c, f->id, "enough");
  }
  if (f->pause_always) return -EAGAIN; /* takes it, grants no credit */
  if (f->want_pause && f->got > (4u << 20) && !f->paused_once) {
    f->paused_once = true;
    ra_timer_init(loop, &resume_timer, resume_fire, f);
    ra_timer_start(&resume_timer, 50, 0);
    return -EAGAIN;
  }
  return 0;
}

static fetch *cur;
static bool cur_done(void) { return cur->done; }
static int readies;
static void on_ready(ra_tunnel_client *c, int status, const ra_verdict *vd, void *ud) {
  if (!status) readies++;
}
static bool is_ready(void) { return readies > 0; }

static void upload(ra_tunnel_client *c, fetch *f, uint64_t total, uint64_t body_length) {
  memset(f, 0, sizeof *f);
  f->c = c;
  f->src_total = total;
  (void)body_length;
}
static void start_upload(fetch *f, uint64_t body_length) {
  ra_tunnel_request q = {.method = "PUT", .url = "/upload", .body_read = src_read, .body_length = body_length};
  if (ra_tunnel_fetch_start(f->c, &q, on_done, f, &f->id)) f->done = true;
}
static void start_download(fetch *f, uint64_t n, bool to_sink) {
  char url[64];
  snprintf(url, sizeof url, "/bytes?n=%llu", (unsigned long long)n);
  ra_tunnel_request q = {.method = "GET", .url = url};
  if (to_sink) {
    q.on_head = sink_head;
    q.on_data = sink_data;
  }
  if (ra_tunnel_fetch_start(f->c, &q, on_done, f, &f->id)) f->done = true;
}

/* ---- WebSocket at rotation --------------------------------------------------- */
static int ws_opens, ws_closes;
static uint16_t ws_code;
static char ws_reason[100];
static void w_open(ra_ws *ws, void *ud) { ws_opens++; }
static void w_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  ws_closes++;
  ws_code = code;
  snprintf(ws_reason, sizeof ws_reason, "%.*s", (int)reason.len, reason.ptr ? reason.ptr : "");
}
static const ra_ws_handlers wh = {.on_open = w_open, .on_close = w_close};
static bool ws_open1(void) { return ws_opens >= 1; }
static bool ws_open2(void) { return ws_opens >= 2; }
static bool ws_closed(void) { return ws_closes >= 1; }
static fetch *rot_f;
static bool rot_done(void) { return rot_f->done && ws_closes >= 1; }
static int rot_up_before;
static bool rot_stalled(void) { return rot_f->stalled && up_started > rot_up_before; }

/* ---- against the Node server ------------------------------------------------- */

static int node_cancels(ra_tunnel_client *c, fetch *f) {
  memset(f, 0, sizeof *f);
  f->c = c;
  cur = f;
  ra_tunnel_request q = {.method = "GET", .url = "/stats"};
  ra_tunnel_fetch_start(c, &q, on_done, f, &f->id);
  run_until(cur_done, 10000);
  const char *p = strstr(f->body, "\"cancels\":");
  return p ? atoi(p + 10) : -1;
}

static int node_main(const char *origin, const char *simdir) {
  char root[512];
  snprintf(root, sizeof root, "%s/%s", simdir, RA_SIM_ROOT_FILE);
  ra_log_set_level(RA_LOG_ERROR);
  ra_loop_new(&loop);
  ra_verifier *v;
  ra_verifier_new(0, &v);
  if (ra_verifier_add_root_file(v, root) <= 0) return 2;
  ra_policy pol;
  memset(&pol, 0, sizeof pol);
  ra_tunnel_client *cl;
  ra_tunnel_client_opts co = {.verifier = v, .policy = &pol, .on_ready = on_ready};
  if (ra_tunnel_client_new(loop, origin, &co, &cl)) return 2;
  run_until(is_ready, 10000);
  CHECK(readies == 1 && ra_tunnel_client_body_streams(cl), "negotiated with the Node server");

  fetch f;
  const uint64_t n = 8u << 20;
  upload(cl, &f, n, 0);
  cur = &f;
  start_upload(&f, 0);
  run_until(cur_done, 30000);
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  for (uint64_t i = 0; i < n; i += sizeof pattern) {
    uint64_t left = n - i; /* pattern is whole periods: it lines up */
    crypto_hash_sha256_update(&h, pattern, left < sizeof pattern ? (size_t)left : sizeof pattern);
  }
  uint8_t md[32];
  char hex[65], want[160];
  crypto_hash_sha256_final(&h, md);
  sodium_bin2hex(hex, sizeof hex, md, sizeof md);
  snprintf(want, sizeof want, "{\"bytes\":%llu,\"sha256\":\"%s\"}", (unsigned long long)n, hex);
  CHECK(f.done && !f.err && !strncmp(f.body, want, strlen(want)), "8 MiB streamed upload: '%s' %s", f.body, f.msg);

  memset(&f, 0, sizeof f);
  f.c = cl;
  start_download(&f, n, true);
  run_until(cur_done, 30000);
  CHECK(f.done && !f.err && f.got == n && !f.bad, "8 MiB streamed download: %d %llu %s", f.err,
        (unsigned long long)f.got, f.msg);
  memset(&f, 0, sizeof f);
  f.c = cl;
  start_download(&f, 3u << 20, false);
  run_until(cur_done, 30000);
  CHECK(f.done && !f.err && f.status == 200 && f.body_len == (3u << 20) && !f.bad,
        "a streamed response collected whole for a caller without on_data (%zu)", f.body_len);

  static const char *const rules[][2] = {{"/over-credit?n=4194304", "data past the credit"},
                                         {"/big-chunk?n=1048576", "a piece over the chunk"},
                                         {"/early-body", "a piece before the head"}};
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    int before = node_cancels(cl, &f);
    memset(&f, 0, sizeof f);
    f.c = cl;
    f.pause_always = i == 0; /* no credit after the window: the server must stop */
    ra_tunnel_request q = {.method = "GET", .url = rules[i][0], .on_head = sink_head, .on_data = sink_data};
    ra_tunnel_fetch_start(cl, &q, on_done, &f, &f.id);
    run_until(cur_done, 10000);
    CHECK(f.done && f.err == -EPROTO, "%s: -EPROTO (%s)", rules[i][1], f.msg);
    int after = node_cancels(cl, &f);
    CHECK(after == before + 1 && readies == 1, "  http_cancel sent (%d -> %d), the tunnel goes on", before, after);
  }

  memset(&f, 0, sizeof f);
  f.c = cl;
  {
    ra_tunnel_request q = {.method = "GET", .url = "/abandon?n=2097152", .on_head = sink_head, .on_data = sink_data};
    ra_tunnel_fetch_start(cl, &q, on_done, &f, &f.id);
  }
  run_until(cur_done, 10000);
  CHECK(f.done && f.err == -ECONNABORTED && f.got < (2u << 20) && strstr(f.msg, "out of memory"),
        "a streamed response the server abandons (http_cancel): -ECONNABORTED (%s)", f.msg);

  int before = node_cancels(cl, &f);
  memset(&f, 0, sizeof f);
  f.c = cl;
  f.cancel_at = 1u << 20;
  start_download(&f, (uint64_t)1 << 30, true);
  run_until(cur_done, 30000);
  CHECK(f.done && f.err == -ECANCELED, "ra_tunnel_fetch_cancel: %d %s", f.err, f.msg);
  int after = node_cancels(cl, &f);
  CHECK(after == before + 1, "the server got http_cancel (%d -> %d)", before, after);

  ra_tunnel_client_free(cl);
  ra_timer done;
  ra_timer_init(loop, &done, tick_fire, NULL);
  ra_timer_start(&done, 100, 0);
  ra_loop_run(loop);
  ra_verifier_free(v);
  ra_loop_free(loop);
  printf(failures ? "%d failure(s)\n" : "all passed\n", failures);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && !strcmp(argv[1], "node")) {
    for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (uint8_t)(i % 251);
    return node_main(argv[2], argv[3]);
  }
  for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (uint8_t)(i % 251);
  char dir[] = "/tmp/ra-stream-XXXXXX", sim[64], root[128];
  if (!mkdtemp(dir)) return 2;
  snprintf(sim, sizeof sim, "%s/sim", dir);
  snprintf(root, sizeof root, "%s/%s", sim, RA_SIM_ROOT_FILE);
  ra_log_set_level(RA_LOG_ERROR);
  ra_loop_new(&loop);
  ra_router *router;
  ra_router_new(&router);
  ra_route_ex(router, "PUT", "/upload", h_upload, NULL, RA_ROUTE_STREAM_BODY);
  ra_route(router, "GET", "/bytes", h_bytes, NULL);
  ra_ws_route(router, "/ws", &echo_h, NULL);
  ra_quote_provider *p;
  if (ra_quote_provider_sim(sim, &p)) return 2;
  ra_tunnel_server_opts so = {.adopt_provider = true, .key_lifetime_ms = RA_TUNNEL_KEY_FOREVER,
                              .old_key_grace_ms = 100, .drain_timeout_ms = 300};
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

  ra_tunnel_client *cl;
  ra_tunnel_client_opts co = {.verifier = v, .policy = &pol, .on_ready = on_ready};
  ra_tunnel_client_opts bad = co;
  bad.stream_window = 1000; /* below the protocol's range */
  ra_tunnel_client *nope = NULL;
  CHECK(ra_tunnel_client_new(loop, origin, &bad, &nope) == -EINVAL && !nope, "a window out of range: -EINVAL");
  if (ra_tunnel_client_new(loop, origin, &co, &cl)) return 2;
  run_until(is_ready, 10000);
  CHECK(readies == 1 && ra_tunnel_client_body_streams(cl), "negotiated streamed bodies");

  fetch f;
  const uint64_t big = (uint64_t)24 << 20;
  upload(cl, &f, big, 0);
  cur = &f;
  start_upload(&f, 0);
  run_until(cur_done, 60000);
  char want[64];
  snprintf(want, sizeof want, "%llu ok", (unsigned long long)big);
  CHECK(f.done && !f.err && f.status == 200 && !strcmp(f.body, want), "24 MiB streamed upload: %d %d '%s' %s",
        f.err, f.status, f.body, f.msg);
  CHECK(up_max_piece && up_max_piece <= (256u << 10), "the handler got pieces of at most a chunk (%zu)",
        up_max_piece);

  up_max_piece = 0;
  upload(cl, &f, 100000, 0);
  start_upload(&f, 100000);
  run_until(cur_done, 30000);
  CHECK(f.done && !f.err && !strcmp(f.body, "100000 ok") && up_max_piece == 100000,
        "a body known to fit one chunk goes whole (one piece of %zu): '%s'", up_max_piece, f.body);

  upload(cl, &f, 3u << 20, 0);
  f.src_stall_at = 1u << 20;
  start_upload(&f, 0);
  run_until(cur_done, 30000);
  CHECK(f.done && !f.err && f.stalled && !strcmp(f.body, "3145728 ok"),
        "a source that says -EAGAIN, resumed: '%s' %s", f.body, f.msg);

  memset(&f, 0, sizeof f);
  f.c = cl;
  f.want_pause = true;
  start_download(&f, big, true);
  run_until(cur_done, 60000);
  CHECK(f.done && !f.err && f.heads && f.status == 200 && f.got == big && !f.bad && f.paused_once,
        "24 MiB streamed download to on_data, paused once: %d got %llu bad %d %s", f.err,
        (unsigned long long)f.got, f.bad, f.msg);
  CHECK(f.max_piece <= (256u << 10), "pieces of at most our chunk (%zu)", f.max_piece);

  memset(&f, 0, sizeof f);
  f.c = cl;
  start_download(&f, 5u << 20, false);
  run_until(cur_done, 30000);
  CHECK(f.done && !f.err && f.status == 200 && f.body_len == (5u << 20) && !f.bad,
        "a streamed response collected whole for a caller without on_data (%zu)", f.body_len);

  memset(&f, 0, sizeof f);
  f.c = cl;
  f.cancel_at = 2u << 20;
  int dn_before = dn_cancelled;
  start_download(&f, (uint64_t)1 << 34, true);
  run_until(cur_done, 30000);
  CHECK(f.done && f.err == -ECANCELED, "ra_tunnel_fetch_cancel mid-download: %d %s", f.err, f.msg);
  cur = NULL;
  bool t = false;
  ra_timer w;
  ra_timer_init(loop, &w, guard_fire, &t);
  ra_timer_start(&w, 300, 0);
  while (!t && dn_cancelled == dn_before) ra_loop_run(loop);
  ra_timer_stop(&w);
  CHECK(dn_cancelled == dn_before + 1, "the server's handler was cancelled");

  int up_before = up_cancelled;
  upload(cl, &f, 8u << 20, 0);
  cur = &f;
  f.src_fail_at = 2u << 20;
  f.src_err = -EIO;
  start_upload(&f, 0);
  run_until(cur_done, 30000);
  CHECK(f.done && f.err == -EIO, "a source that fails: the fetch fails with its error (%d %s)", f.err, f.msg);
  t = false;
  ra_timer_start(&w, 300, 0);
  while (!t && up_cancelled == up_before) ra_loop_run(loop);
  ra_timer_stop(&w);
  CHECK(up_cancelled == up_before + 1, "and the upload's handler was cancelled");

  /* a client that does not opt in: whole bodies */
  ra_tunnel_client *wl;
  ra_tunnel_client_opts wo = co;
  wo.no_body_streams = true;
  wo.max_whole_upload = 4u << 20;
  readies = 0;
  if (ra_tunnel_client_new(loop, origin, &wo, &wl)) return 2;
  run_until(is_ready, 10000);
  CHECK(readies == 1 && !ra_tunnel_client_body_streams(wl), "no_body_streams: not negotiated");
  upload(wl, &f, 3u << 20, 0);
  start_upload(&f, 0);
  run_until(cur_done, 30000);
  CHECK(f.done && !f.err && !strcmp(f.body, "3145728 ok"), "the body_read upload went whole: '%s' %s", f.body,
        f.msg);
  upload(wl, &f, 5u << 20, 0);
  start_upload(&f, 5u << 20);
  run_until(cur_done, 30000);
  CHECK(f.done && f.err == -EMSGSIZE && f.src_n == 0 && strstr(f.msg, "does not take streamed bodies"),
        "known length over max_whole_upload: -EMSGSIZE at once (%s)", f.msg);
  upload(wl, &f, 5u << 20, 0);
  start_upload(&f, 0);
  run_until(cur_done, 30000);
  CHECK(f.done && f.err == -EMSGSIZE && strstr(f.msg, "does not take streamed bodies"),
        "unknown length passing max_whole_upload: -EMSGSIZE (%s)", f.msg);
  memset(&f, 0, sizeof f);
  f.c = wl;
  start_download(&f, 3u << 20, true);
  run_until(cur_done, 30000);
  CHECK(f.done && !f.err && f.got == (3u << 20) && !f.bad && f.max_piece == (3u << 20),
        "un-negotiated: a whole response reaches on_data in one call");

  /* key rotation: an upload in flight and a WebSocket, on a tunnel of
   * their own */
  ra_tunnel_client_free(cl);
  readies = 0;
  if (ra_tunnel_client_new(loop, origin, &co, &cl)) return 2;
  run_until(is_ready, 10000);
  ra_ws *ws;
  ra_tunnel_ws_connect(cl, "ws://127.0.0.1/ws", NULL, 0, &wh, NULL, &ws);
  run_until(ws_open1, 10000);
  CHECK(ws_opens == 1, "tunnelled WebSocket open");
  up_before = rot_up_before = up_started;
  upload(cl, &f, 8u << 20, 0);
  f.src_stall_at = 1u << 20;
  f.stall_forever = true;
  rot_f = &f;
  start_upload(&f, 0);
  run_until(rot_stalled, 20000); /* in flight: 1 MiB sent, the source stalls */
  CHECK(f.stalled && up_started == up_before + 1, "a streamed upload in flight");
  CHECK(ra_tunnel_server_rotate(ts) == 0, "rotate");
  run_until(rot_done, 10000);
  CHECK(f.done && f.err == -ECONNRESET, "the streamed upload in flight at the 1012 close: -ECONNRESET (%d %s)",
        f.err, f.msg);
  CHECK(up_started == up_before + 1, "its handler ran once (not replayed)");
  CHECK(ws_closes == 1 && ws_code == 1012 && strstr(ws_reason, "tunnel key rotated"),
        "the tunnelled WebSocket: on_close %u '%s'", ws_code, ws_reason);
  ra_tunnel_ws_connect(cl, "ws://127.0.0.1/ws", NULL, 0, &wh, NULL, &ws);
  run_until(ws_open2, 10000);
  CHECK(ws_opens == 2, "and reopens on the new tunnel");
  (void)ws_closed;

  ra_tunnel_client_free(cl);
  ra_tunnel_client_free(wl);
  ra_timer done;
  ra_timer_init(loop, &done, tick_fire, NULL);
  ra_timer_start(&done, 100, 0);
  ra_loop_run(loop);
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
