/* tests/fuzz/http_fuzz.c: arbitrary bytes through the HTTP/1.1 connection
 * state machine and the router, over the memory seam (no sockets).
 *
 * Input: byte 0..3 choose how the rest is split into reads (and bit 7 of
 * byte 0 whether the client half-closes after sending); the rest is what a
 * client sends. Each input runs twice, fed whole and fed in those splits;
 * the answers (Date values blanked) must be identical, must start with a
 * status line, and everything must be freed (ASan/LSan). Async handlers are
 * answered after the bytes are in, or cancelled when the connection drops.
 * Streamed-body routes (RA_ROUTE_STREAM_BODY) take their bodies as they are
 * parsed: POST /up answers the byte count and a hash at the end, PUT /up
 * pauses after its first piece and resumes from the loop, /up/early answers
 * 413 at once (the rest is dropped or the connection closes), /up/after
 * answers 413 once 8 bytes arrived; all split-independent answers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"
#include "../http/mem_io.h"

static ra_loop *loop;
static ra_router *router;
static ra_http_server *srv;
static ra_res *held[256];
static int nheld;

static void h_text(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, ud); }

static void h_echo(ra_req *req, ra_res *res, void *ud) {
  ra_str b = ra_req_body(req), ct;
  char type[128] = "application/octet-stream";
  if (ra_req_header(req, "content-type", &ct) && ct.len < sizeof type) {
    memcpy(type, ct.ptr, ct.len);
    type[ct.len] = '\0';
  }
  /* A Content-Type with control characters is refused; ra_res_send still
   * ends the response. */
  ra_res_send(res, 200, type, b.ptr, b.len);
}

static void h_params(ra_req *req, ra_res *res, void *ud) {
  ra_str id = RA_STR(""), rest = RA_STR(""), q = RA_STR("");
  ra_req_param(req, "id", &id);
  ra_req_param(req, "*", &rest);
  ra_req_query_get(req, "q", &q);
  ra_res_set_status(res, 200);
  ra_res_write(res, id.ptr, id.len);
  ra_res_write(res, "|", 1);
  ra_res_write(res, rest.ptr, rest.len);
  ra_res_write(res, "|", 1);
  ra_res_write(res, q.ptr, q.len);
  ra_res_end(res);
}

static void on_cancel(ra_res *res, void *ud) {
  for (int i = 0; i < nheld; i++)
    if (held[i] == res) held[i] = NULL;
  ra_res_end(res);
}

static void h_async(ra_req *req, ra_res *res, void *ud) {
  if (nheld == (int)(sizeof held / sizeof held[0])) {
    ra_res_send_text(res, 503, "busy");
    return;
  }
  held[nheld++] = res;
  ra_res_on_cancel(res, on_cancel, NULL);
}

/* ---- streamed bodies -------------------------------------------------------- */

typedef struct up {
  uint64_t bytes;
  uint32_t hash; /* FNV-1a */
  ra_res *res;
  ra_defer resume;
  ra_req *req;
  bool pause_once, early;
} up;

static void up_free(up *u) {
  ra_defer_cancel(loop, &u->resume);
  free(u);
}

static void up_resume(ra_defer *d, void *ud) {
  (void)d;
  up *u = ud;
  ra_req_body_pause(u->req, false);
}

static void up_body(ra_req *req, const uint8_t *data, size_t len, bool last, void *ud) {
  up *u = ud;
  if (len && !data) abort();
  for (size_t i = 0; i < len; i++) u->hash = (u->hash ^ data[i]) * 16777619u;
  u->bytes += len;
  ra_res *res = u->res;
  if (last) {
    char txt[64];
    snprintf(txt, sizeof txt, "%llu %08x", (unsigned long long)u->bytes, u->hash);
    up_free(u);
    ra_res_send_text(res, 200, txt);
    return;
  }
  if (u->early && u->bytes >= 8) {
    up_free(u);
    ra_res_send_text(res, 413, "enough");
    return;
  }
  if (u->pause_once) {
    u->pause_once = false;
    ra_req_body_pause(req, true);
    ra_loop_defer(loop, &u->resume);
  }
}

static void up_cancel(ra_res *res, void *ud) {
  up_free(ud); /* no body call follows */
  ra_res_end(res);
}

static void h_up(ra_req *req, ra_res *res, void *ud) {
  up *u = calloc(1, sizeof *u);
  if (!u) abort();
  u->hash = 2166136261u;
  u->res = res;
  u->req = req;
  u->pause_once = ud == (void *)1;
  u->early = ud == (void *)2;
  ra_defer_init(&u->resume, up_resume, u);
  ra_res_on_cancel(res, up_cancel, u);
  ra_req_on_body(req, up_body, u);
}

static void h_up_early(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 413, "no"); }

static void setup(void) {
  ra_log_set_level(RA_LOG_OFF);
  ra_loop_new(&loop);
  ra_router_new(&router);
  ra_route(router, "GET", "/hello", h_text, "world");
  ra_route(router, "POST", "/echo", h_echo, NULL);
  ra_route(router, "PUT", "/echo", h_echo, NULL);
  ra_route(router, "GET", "/u/:id", h_params, NULL);
  ra_route(router, "GET", "/u/:id/x", h_params, NULL);
  ra_route(router, "GET", "/s/*", h_params, NULL);
  ra_route(router, "*", "/any", h_params, NULL);
  ra_route(router, "GET", "/async", h_async, NULL);
  ra_route_ex(router, "GET", "/secret", h_text, "secret", RA_ROUTE_ATTESTED_ONLY);
  ra_route_ex(router, "POST", "/up", h_up, NULL, RA_ROUTE_STREAM_BODY);
  ra_route_ex(router, "PUT", "/up", h_up, (void *)1, RA_ROUTE_STREAM_BODY);
  ra_route_ex(router, "POST", "/up/after", h_up, (void *)2, RA_ROUTE_STREAM_BODY);
  ra_route_ex(router, "*", "/up/early", h_up_early, NULL, RA_ROUTE_STREAM_BODY);
  ra_route_ex(router, "POST", "/up/secret", h_up, NULL, RA_ROUTE_STREAM_BODY | RA_ROUTE_ATTESTED_ONLY);
  ra_http_server_opts o = {0};
  o.limits.max_body = 4096;
  o.limits.max_header_bytes = 2048;
  o.limits.max_request_line = 512;
  o.limits.max_headers = 20;
  o.limits.max_pipelined = 4;
  ra_http_server_new(loop, router, &o, &srv);
  if (!loop || !router || !srv) abort();
}

static void turns(void) {
  for (int i = 0; i < 3; i++) ra_loop_run_once(loop, 0);
}

/* Output with every Date value blanked (it may tick between the runs). */
static void normalize(const ra_buf *in, ra_buf *out) {
  if (in->len == 0) return;
  const char *p = (const char *)in->data + in->off, *end = p + in->len;
  while (p < end) {
    const char *d = memmem(p, (size_t)(end - p), "\r\nDate: ", 8);
    if (!d) {
      ra_buf_append(out, p, (size_t)(end - p));
      break;
    }
    ra_buf_append(out, p, (size_t)(d - p) + 8);
    p = d + 8;
    while (p < end && *p != '\r') p++;
  }
}

static void run(const uint8_t *d, size_t n, const uint8_t *splits, size_t ns, bool eof, ra_buf *out) {
  mem_io m;
  mem_io_open(&m, srv);
  if (!m.conn) abort();
  nheld = 0;
  size_t pos = 0, si = 0;
  while (pos < n) {
    size_t chunk = n - pos;
    if (ns) {
      chunk = (size_t)(splits[si++ % ns] % 64) + 1;
      if (chunk > n - pos) chunk = n - pos;
    }
    mem_io_feed(&m, d + pos, chunk);
    pos += chunk;
  }
  if (eof && m.conn && !m.gone) ra_http_conn_eof(m.conn); /* client half-closes */
  /* Answer the async ones in order; answering frees pipeline slots, which
   * lets more requests through (from a deferred call), so go round. */
  for (int round = 0; round < 16; round++) {
    turns();
    int answered = 0;
    for (int i = 0; i < nheld; i++) {
      if (held[i]) {
        ra_res *r = held[i];
        held[i] = NULL;
        ra_res_send_text(r, 200, "late");
        answered++;
      }
    }
    if (!answered) break;
  }
  normalize(&m.out, out);
  if (out->len && (out->len < 9 || memcmp(out->data + out->off, "HTTP/1.1 ", 9) != 0)) abort();
  mem_io_drop(&m); /* cancels what is still pending */
  turns();
}

/* Length of the output before its final answer when that answer is an
 * error that closes the connection (else the whole length). Which error a
 * request that breaks several rules gets first can depend on where reads
 * end (an over-long, malformed URL is 414 or 400): only the fact that it is
 * an error must agree. */
static size_t before_final_error(const ra_buf *b, bool *is_err) {
  *is_err = false;
  if (b->len == 0) return 0;
  const char *s = (const char *)b->data + b->off, *last = NULL;
  for (const char *p = s; (p = memmem(p, b->len - (size_t)(p - s), "HTTP/1.1 ", 9)) != NULL; p += 9)
    last = p;
  if (!last || (size_t)(last - s) + 12 > b->len) return b->len;
  size_t rest = b->len - (size_t)(last - s);
  if (last[9] >= '4' && memmem(last, rest, "\r\nConnection: close\r\n", 21)) {
    *is_err = true;
    return (size_t)(last - s);
  }
  return b->len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) setup();
  if (size < 4) return 0;
  ra_buf whole = {0}, split = {0};
  bool eof = data[0] & 0x80;
  run(data + 4, size - 4, NULL, 0, eof, &whole);
  run(data + 4, size - 4, data, 4, eof, &split);
  bool we, se;
  size_t wl = before_final_error(&whole, &we), sl = before_final_error(&split, &se);
  if (we != se || wl != sl || (wl && memcmp(whole.data + whole.off, split.data + split.off, wl))) {
    fprintf(stderr, "whole and split feeding answered differently:\n--- whole\n%.*s\n--- split\n%.*s\n",
            (int)whole.len, whole.data ? (char *)whole.data + whole.off : "", (int)split.len,
            split.data ? (char *)split.data + split.off : "");
    abort();
  }
  ra_buf_free(&whole);
  ra_buf_free(&split);
  return 0;
}
