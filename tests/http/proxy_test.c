/* tests/http/proxy_test.c: the reverse proxy (http/proxy.c): hop-by-hop
 * header filtering, the per-prefix policy as the router matches it, upstream
 * URLs, and whole exchanges against a scripted upstream on loopback driven
 * through a recording sink: headers both ways (X-Attested stripped/added),
 * keep-alive reuse, the retry of an idempotent request whose pooled
 * connection closed unanswered (and none for POST), 502 on a refused
 * connection, 504 on a stalled upstream, back-pressure (the upstream is not
 * read while the client holds a full window) and its release. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raloop/core/buf.h"
#include "raloop/core/listen.h"
#include "raloop/core/loop.h"
#include "raloop/core/stream.h"
#include "raloop/http/proxy.h"
#include "raloop/http/request.h"
#include "raloop/http/response.h"
#include "raloop/http/router.h"


/* ra_buf_ptr, also for an empty buffer that holds no memory (data NULL). */
static const uint8_t *bufp(const ra_buf *b) { return b->data ? ra_buf_ptr(b) : (const uint8_t *)""; }

static ra_str S(const char *s) { return ra_str_cstr(s); }

static void test_hop_by_hop(void **st) {
  (void)st;
  const char *hop[] = {"Connection", "keep-alive", "TE", "Trailer", "transfer-encoding", "UPGRADE",
                       "Proxy-Authorization", "proxy-authenticate", "Proxy-Connection"};
  for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
    if (!ra_proxy_hop_by_hop(S(hop[i]), S(""))) fail_msg("not hop-by-hop: %s", hop[i]);
  const char *e2e[] = {"Host", "Content-Type", "X-Attested", "Trailers", "Tea", "Proxy", "Cookie"};
  for (size_t i = 0; i < sizeof e2e / sizeof *e2e; i++)
    if (ra_proxy_hop_by_hop(S(e2e[i]), S(""))) fail_msg("hop-by-hop: %s", e2e[i]);
  ra_str conn = S("keep-alive ,  X-Secret,,x-other\t, close");
  assert_true(ra_proxy_hop_by_hop(S("x-secret"), conn));
  assert_true(ra_proxy_hop_by_hop(S("X-OTHER"), conn));
  assert_false(ra_proxy_hop_by_hop(S("X-Secre"), conn));
  assert_false(ra_proxy_hop_by_hop(S("X-Secret2"), conn));
  assert_false(ra_proxy_hop_by_hop(S("Cookie"), conn));
}

static void dummy(ra_req *req, ra_res *res, void *ud) { (void)req; (void)res; (void)ud; }

static unsigned match(ra_router *r, const char *path, ra_route_match *m) {
  int rc = ra_router_match(r, S("GET"), S(path), NULL, m);
  assert_int_equal(rc, 0);
  return m->flags;
}

static void test_policy_routes(void **st) {
  (void)st;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_proxy *px;
  ra_proxy_opts o = {.upstream = "http://127.0.0.1:1"};
  assert_int_equal(ra_proxy_new(loop, &o, &px), 0);
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  assert_int_equal(ra_proxy_route(r, "/", px, RA_PROXY_PASS), 0);
  assert_int_equal(ra_proxy_route(r, "/private", px, RA_PROXY_ATTESTED_ONLY), 0);
  assert_int_equal(ra_proxy_route(r, "/private/health/", px, RA_PROXY_PASS), 0);
  assert_int_equal(ra_proxy_route(r, "/admin", NULL, RA_PROXY_REFUSE), 0);
  assert_int_equal(ra_route(r, "GET", "/own", dummy, NULL), 0);
  /* same prefix twice (trailing slash ignored) */
  assert_int_equal(ra_proxy_route(r, "/private/", px, RA_PROXY_PASS), -EEXIST);
  assert_int_equal(ra_proxy_route(r, "api", px, RA_PROXY_PASS), -EINVAL);
  assert_int_equal(ra_proxy_route(r, "/a/*", px, RA_PROXY_PASS), -EINVAL);
  assert_int_equal(ra_proxy_route(r, "/a/:id", px, RA_PROXY_PASS), -EINVAL);
  assert_int_equal(ra_proxy_route(r, "/b", NULL, RA_PROXY_PASS), -EINVAL);

  ra_route_match m;
  assert_int_equal(match(r, "/", &m), 0);
  assert_ptr_equal(m.handler, ra_proxy_handle);
  assert_ptr_equal(m.ud, px);
  assert_int_equal(match(r, "/anything/deep/x", &m), 0);
  assert_ptr_equal(m.handler, ra_proxy_handle);
  assert_int_equal(match(r, "/private", &m), RA_ROUTE_ATTESTED_ONLY);
  assert_int_equal(match(r, "/private/", &m), RA_ROUTE_ATTESTED_ONLY);
  assert_int_equal(match(r, "/private/a/b", &m), RA_ROUTE_ATTESTED_ONLY);
  assert_int_equal(match(r, "/privateer", &m), 0); /* segment-wise */
  assert_int_equal(match(r, "/private/health", &m), 0); /* longest prefix wins */
  assert_int_equal(match(r, "/private/health/x", &m), 0);
  assert_int_equal(match(r, "/private/healthz", &m), RA_ROUTE_ATTESTED_ONLY);
  match(r, "/admin", &m);
  assert_ptr_not_equal(m.handler, ra_proxy_handle);
  match(r, "/admin/x/y", &m);
  assert_ptr_not_equal(m.handler, ra_proxy_handle);
  match(r, "/administrator", &m);
  assert_ptr_equal(m.handler, ra_proxy_handle);
  match(r, "/own", &m); /* the application's own routes still win */
  assert_ptr_equal(m.handler, dummy);
  /* every method */
  assert_int_equal(ra_router_match(r, S("DELETE"), S("/x"), NULL, &m), 0);
  assert_int_equal(ra_router_match(r, S("PATCH"), S("/private/x"), NULL, &m), 0);
  assert_int_equal(m.flags, RA_ROUTE_ATTESTED_ONLY);
  ra_router_free(r);
  ra_proxy_free(px);
  ra_loop_free(loop);
}

static void test_upstream_urls(void **st) {
  (void)st;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  const char *good[] = {"http://127.0.0.1:8080", "http://localhost", "http://[::1]:99/", "unix:/tmp/x.sock"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    ra_proxy *px;
    ra_proxy_opts o = {.upstream = good[i]};
    if (ra_proxy_new(loop, &o, &px) != 0) fail_msg("refused: %s", good[i]);
    ra_proxy_free(px);
  }
  const char *bad[] = {"", "https://h", "http://", "http://h:0", "http://h:70000", "http://h/prefix",
                       "unix:", "ftp://h", "127.0.0.1:80", "http://[::1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ra_proxy *px = (ra_proxy *)1;
    ra_proxy_opts o = {.upstream = bad[i]};
    if (ra_proxy_new(loop, &o, &px) != -EINVAL) fail_msg("accepted: %s", bad[i]);
    assert_null(px);
  }
  ra_proxy *px;
  ra_proxy_opts o = {.upstream = "http://h:1", .attested_header = "X Bad"};
  assert_int_equal(ra_proxy_new(loop, &o, &px), -EINVAL);
  ra_loop_free(loop);
}

/* ---- a scripted upstream --------------------------------------------------- */

typedef struct up up;
typedef struct upconn {
  up *u;
  ra_stream *s;
  ra_buf in;
  int nreq; /* requests seen on this connection */
  int id;
} upconn;

/* What to do with the nreq-th request (1-based) of connection id: write a
 * reply, or close (return false). */
typedef bool (*up_script)(up *u, upconn *c, const char *req, size_t len);

struct up {
  ra_loop *loop;
  ra_listener *l;
  up_script script;
  int accepts;
  char last[8192]; /* the last request head */
  size_t big;      /* /big: body size */
  upconn *conns[16];
};

static size_t up_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  upconn *c = ud;
  ra_buf_append(&c->in, d, n);
  for (;;) {
    const char *p = (const char *)bufp(&c->in);
    const char *e = memmem(p, c->in.len, "\r\n\r\n", 4);
    if (!e) break;
    size_t head = (size_t)(e + 4 - p), clen = 0;
    const char *cl = memmem(p, head, "Content-Length: ", 16);
    if (cl) clen = strtoul(cl + 16, NULL, 10);
    if (c->in.len < head + clen) break;
    size_t hl = head < sizeof c->u->last - 1 ? head : sizeof c->u->last - 1;
    memcpy(c->u->last, p, hl);
    c->u->last[hl] = '\0';
    c->nreq++;
    bool keep = c->u->script(c->u, c, p, head + clen);
    ra_buf_consume(&c->in, head + clen);
    if (!keep) {
      ra_stream_abort(s, 0);
      break;
    }
  }
  return n;
}

static void up_close(ra_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  upconn *c = ud;
  if (c->id < 16) c->u->conns[c->id] = NULL;
  ra_buf_free(&c->in);
  free(c);
}

static const ra_stream_cbs up_cbs = {up_read, NULL, NULL, up_close};

static void up_accept(ra_listener *l, int fd, const struct sockaddr *p, socklen_t pl, void *ud) {
  (void)l; (void)p; (void)pl;
  up *u = ud;
  upconn *c = calloc(1, sizeof *c);
  c->u = u;
  c->id = u->accepts++;
  assert_int_equal(ra_stream_new(u->loop, fd, &up_cbs, c, &c->s), 0);
  if (c->id < 16) u->conns[c->id] = c;
}

static uint16_t up_start(up *u, ra_loop *loop, up_script script) {
  memset(u, 0, sizeof *u);
  u->loop = loop;
  u->script = script;
  assert_int_equal(ra_listen(loop, "127.0.0.1:0", NULL, up_accept, u, &u->l), 0);
  return ra_listener_port(u->l);
}

static void up_stop(up *u) {
  for (int i = 0; i < 16; i++)
    if (u->conns[i]) ra_stream_abort(u->conns[i]->s, 0);
  ra_listener_close(u->l);
}

/* ---- a recording sink --------------------------------------------------------- */

typedef struct sink {
  int status;
  ra_buf headers; /* "Name: value\n" */
  ra_buf body;
  bool ended;
  size_t fake_pending;
} sink;

static int s_head(void *sk, int status, const ra_header *h, size_t n, int64_t clen) {
  sink *s = sk;
  (void)clen;
  s->status = status;
  for (size_t i = 0; i < n; i++)
    ra_buf_printf(&s->headers, "%.*s: %.*s\n", (int)h[i].name.len, h[i].name.ptr, (int)h[i].value.len,
                  h[i].value.ptr);
  return 0;
}
static int s_body(void *sk, const void *d, size_t n) {
  sink *s = sk;
  return ra_buf_append(&s->body, d, n);
}
static int s_end(void *sk) {
  ((sink *)sk)->ended = true;
  return 0;
}
static size_t s_pending(void *sk) { return ((sink *)sk)->fake_pending; }
static const ra_res_sink_ops sink_ops = {.head = s_head, .body = s_body, .end = s_end, .pending = s_pending};

static ra_res *send_req(ra_loop *loop, ra_proxy *px, sink *sk, const char *method, const char *target,
                        bool attested, const char *const *hdrs, const char *body) {
  memset(sk, 0, sizeof *sk);
  ra_req *req;
  assert_int_equal(ra_req_new(S(method), S(target), 11, attested, &req), 0);
  for (size_t i = 0; hdrs && hdrs[i]; i += 2) ra_req_add_header(req, S(hdrs[i]), S(hdrs[i + 1]));
  if (body) ra_req_append_body(req, body, strlen(body));
  ra_res *res;
  assert_int_equal(ra_res_new(loop, req, &sink_ops, sk, &res), 0);
  ra_proxy_handle(req, res, px);
  return res;
}

static void run_until(ra_loop *loop, bool *flag, int ms) {
  uint64_t end = ra_loop_update_time(loop) + (uint64_t)ms;
  while (!*flag && ra_loop_update_time(loop) < end) ra_loop_run_once(loop, 10);
}

static bool has_line(const sink *s, const char *line) {
  return memmem(bufp(&s->headers), s->headers.len, line, strlen(line)) != NULL;
}

static bool script_hop(up *u, upconn *c, const char *req, size_t len) {
  (void)u; (void)req; (void)len;
  const char *a = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
                  "Proxy-Authenticate: Basic\r\nX-E2E: y\r\nContent-Length: 2\r\n\r\nok";
  ra_stream_write(c->s, a, strlen(a));
  return true;
}

static void test_exchange_headers(void **st) {
  (void)st;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  up u;
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", up_start(&u, loop, script_hop));
  ra_proxy *px;
  ra_proxy_opts o = {.upstream = url};
  assert_int_equal(ra_proxy_new(loop, &o, &px), 0);
  sink sk;
  const char *h[] = {"Host", "example.test", "X-Attested", "1", "x-attested", "yes", "Connection",
                     "X-Secret", "X-Secret", "s", "TE", "trailers", "Content-Length", "999",
                     "X-Keep", "k", "Proxy-Authorization", "Basic x", NULL};
  send_req(loop, px, &sk, "GET", "/a?b=1", false, h, NULL);
  run_until(loop, &sk.ended, 3000);
  assert_true(sk.ended);
  assert_int_equal(sk.status, 200);
  assert_int_equal(sk.body.len, 2);
  assert_memory_equal(bufp(&sk.body), "ok", 2);
  assert_true(has_line(&sk, "X-E2E: y"));
  assert_false(has_line(&sk, "X-Hop"));
  assert_false(has_line(&sk, "Keep-Alive"));
  assert_false(has_line(&sk, "Connection"));
  assert_false(has_line(&sk, "Proxy-Authenticate"));
  assert_non_null(strstr(u.last, "GET /a?b=1 HTTP/1.1\r\n"));
  assert_non_null(strstr(u.last, "Host: example.test\r\n"));
  assert_non_null(strstr(u.last, "X-Keep: k\r\n"));
  assert_null(strcasestr(u.last, "x-attested"));
  assert_null(strcasestr(u.last, "x-secret"));
  assert_null(strcasestr(u.last, "\r\nTE:"));
  assert_null(strcasestr(u.last, "Content-Length"));
  assert_null(strcasestr(u.last, "Proxy-Authorization"));
  assert_non_null(strstr(u.last, "X-Forwarded-For: unknown\r\n"));
  assert_non_null(strstr(u.last, "Forwarded: for=unknown;host=\"example.test\";proto=http\r\n"));
  ra_buf_free(&sk.headers);
  ra_buf_free(&sk.body);

  /* attested: the header is set, on the same (pooled) connection */
  const char *h2[] = {"X-Attested", "0", NULL};
  send_req(loop, px, &sk, "POST", "/p", true, h2, "body!");
  run_until(loop, &sk.ended, 3000);
  assert_int_equal(sk.status, 200);
  assert_non_null(strstr(u.last, "X-Attested: 1\r\n"));
  assert_null(strstr(u.last, "X-Attested: 0"));
  assert_non_null(strstr(u.last, "Content-Length: 5\r\n"));
  assert_non_null(strstr(u.last, "Host: 127.0.0.1:")); /* no Host from the client */
  assert_int_equal(u.accepts, 1);
  ra_buf_free(&sk.headers);
  ra_buf_free(&sk.body);

  /* a target with dot segments is refused before the upstream */
  send_req(loop, px, &sk, "GET", "/a/%2e%2E/b", false, NULL, NULL);
  assert_true(sk.ended);
  assert_int_equal(sk.status, 400);
  ra_buf_free(&sk.headers);
  ra_buf_free(&sk.body);

  ra_proxy_free(px);
  up_stop(&u);
  for (int i = 0; i < 10; i++) ra_loop_run_once(loop, 0);
  ra_loop_free(loop);
}

/* Connection 0 answers its first request and drops the second unanswered
 * (a keep-alive connection the upstream closed as the request went out);
 * every other connection answers. */
static bool script_drop_second(up *u, upconn *c, const char *req, size_t len) {
  (void)u; (void)req; (void)len;
  if (c->id == 0 && c->nreq == 2) return false;
  const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  ra_stream_write(c->s, a, strlen(a));
  return true;
}

static void test_retry(void **st) {
  (void)st;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  for (int post = 0; post < 2; post++) {
    up u;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", up_start(&u, loop, script_drop_second));
    ra_proxy *px;
    ra_proxy_opts o = {.upstream = url};
    assert_int_equal(ra_proxy_new(loop, &o, &px), 0);
    sink sk;
    send_req(loop, px, &sk, "GET", "/1", false, NULL, NULL);
    run_until(loop, &sk.ended, 3000);
    assert_int_equal(sk.status, 200);
    ra_buf_free(&sk.headers);
    ra_buf_free(&sk.body);
    send_req(loop, px, &sk, post ? "POST" : "GET", "/2", false, NULL, post ? "x" : NULL);
    run_until(loop, &sk.ended, 3000);
    assert_true(sk.ended);
    if (post) {
      assert_int_equal(sk.status, 502); /* not idempotent: never retried */
      assert_int_equal(u.accepts, 1);
    } else {
      assert_int_equal(sk.status, 200); /* retried once on a new connection */
      assert_int_equal(u.accepts, 2);
      assert_memory_equal(bufp(&sk.body), "hello", 5);
    }
    ra_buf_free(&sk.headers);
    ra_buf_free(&sk.body);
    ra_proxy_free(px);
    up_stop(&u);
    for (int i = 0; i < 10; i++) ra_loop_run_once(loop, 0);
  }
  ra_loop_free(loop);
}

static bool script_stall(up *u, upconn *c, const char *req, size_t len) {
  (void)u; (void)c; (void)req; (void)len;
  return true;
}

static void test_failures(void **st) {
  (void)st;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  /* refused: a port nothing listens on (the listener was closed) */
  up u;
  uint16_t port = up_start(&u, loop, script_stall);
  ra_listener_close(u.l);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  ra_proxy *px;
  ra_proxy_opts o = {.upstream = url};
  assert_int_equal(ra_proxy_new(loop, &o, &px), 0);
  sink sk;
  send_req(loop, px, &sk, "GET", "/", false, NULL, NULL);
  run_until(loop, &sk.ended, 3000);
  assert_int_equal(sk.status, 502);
  assert_non_null(memmem(bufp(&sk.body), sk.body.len, "cannot connect", 14));
  ra_buf_free(&sk.headers);
  ra_buf_free(&sk.body);
  ra_proxy_free(px);

  /* stalled: 504 after the first-byte timeout */
  snprintf(url, sizeof url, "http://127.0.0.1:%u", up_start(&u, loop, script_stall));
  o.first_byte_timeout_ms = 150;
  assert_int_equal(ra_proxy_new(loop, &o, &px), 0);
  uint64_t t0 = ra_loop_update_time(loop);
  send_req(loop, px, &sk, "GET", "/", false, NULL, NULL);
  run_until(loop, &sk.ended, 3000);
  assert_int_equal(sk.status, 504);
  assert_true(ra_loop_update_time(loop) - t0 >= 140);
  assert_non_null(memmem(bufp(&sk.body), sk.body.len, "did not answer", 14));
  ra_buf_free(&sk.headers);
  ra_buf_free(&sk.body);
  /* a cancelled exchange (client gone) while waiting frees everything */
  ra_res *res = send_req(loop, px, &sk, "GET", "/", false, NULL, NULL);
  for (int i = 0; i < 5; i++) ra_loop_run_once(loop, 10);
  ra_res_cancel(res);
  /* past the first-byte timeout: a leftover timer would answer 504 into the sink */
  run_until(loop, &sk.ended, 300);
  assert_false(sk.ended);
  assert_int_equal(sk.status, 0);
  assert_int_equal(sk.body.len, 0);
  ra_buf_free(&sk.headers);
  ra_buf_free(&sk.body);
  ra_proxy_free(px);
  up_stop(&u);
  for (int i = 0; i < 10; i++) ra_loop_run_once(loop, 0);
  ra_loop_free(loop);
}

#define BIG ((size_t)4 * 1024 * 1024)
static bool script_big(up *u, upconn *c, const char *req, size_t len) {
  (void)u; (void)req; (void)len;
  char head[128];
  int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", BIG);
  ra_stream_set_watermarks(c->s, (size_t)64 << 20, (size_t)32 << 20);
  ra_stream_write(c->s, head, (size_t)n);
  char *b = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) b[i] = (char)(i % 251);
  ra_stream_write_ref(c->s, b, BIG, free, b);
  return true;
}

static void test_backpressure(void **st) {
  (void)st;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  up u;
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", up_start(&u, loop, script_big));
  ra_proxy *px;
  ra_proxy_opts o = {.upstream = url};
  assert_int_equal(ra_proxy_new(loop, &o, &px), 0);
  sink sk;
  ra_res *res = send_req(loop, px, &sk, "GET", "/big", false, NULL, NULL);
  sk.fake_pending = (size_t)1 << 20; /* the client is not reading */
  for (int i = 0; i < 100; i++) ra_loop_run_once(loop, 5);
  assert_int_equal(sk.status, 200);
  assert_false(sk.ended);
  /* at most one read past the window was taken */
  assert_true(sk.body.len < (size_t)1 << 20);
  /* the client reads again */
  sk.fake_pending = 0;
  ra_res_drained(res);
  run_until(loop, &sk.ended, 5000);
  assert_true(sk.ended);
  assert_int_equal(sk.body.len, BIG);
  const uint8_t *b = bufp(&sk.body);
  for (size_t i = 0; i < BIG; i += 4093) assert_int_equal(b[i], (uint8_t)(i % 251));
  ra_buf_free(&sk.headers);
  ra_buf_free(&sk.body);
  ra_proxy_free(px);
  up_stop(&u);
  for (int i = 0; i < 10; i++) ra_loop_run_once(loop, 0);
  ra_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hop_by_hop),        cmocka_unit_test(test_policy_routes),
      cmocka_unit_test(test_upstream_urls),     cmocka_unit_test(test_exchange_headers),
      cmocka_unit_test(test_retry),             cmocka_unit_test(test_failures),
      cmocka_unit_test(test_backpressure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
