/* tests/http/proxy_protocol_test.c: ra_http_server with proxy_protocol on:
 * the PROXY header (v2, v1, LOCAL) names the peer a handler sees, in
 * pieces or together with the request; no header, a bad one or a late one
 * closes the connection unanswered; freeing the server with a header still
 * pending leaks nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "raloop/core/loop.h"
#include "raloop/core/proxy_proto.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"

static void h_peer(ra_req *req, ra_res *res, void *ud) {
  ra_str p = ra_req_peer(req);
  ra_res_sendf(res, 200, "peer=%.*s", (int)p.len, p.ptr);
}

typedef struct fx {
  ra_loop *loop;
  ra_router *router;
  ra_http_server *srv;
  uint16_t port;
} fx;

static void fx_up(fx *f, uint64_t header_timeout_ms) {
  assert_int_equal(ra_loop_new(&f->loop), 0);
  assert_int_equal(ra_router_new(&f->router), 0);
  ra_route(f->router, "GET", "/peer", h_peer, NULL);
  ra_http_server_opts o = {0};
  o.proxy_protocol = true;
  o.limits.header_timeout_ms = header_timeout_ms;
  assert_int_equal(ra_http_server_new(f->loop, f->router, &o, &f->srv), 0);
  assert_int_equal(ra_http_server_listen(f->srv, "127.0.0.1:0", NULL), 0);
  f->port = ra_http_server_port(f->srv);
}

static void fx_down(fx *f) {
  ra_http_server_free(f->srv);
  ra_router_free(f->router);
  ra_loop_free(f->loop);
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int dial(fx *f) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(f->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
  return c;
}

/* Sends the pieces (a loop turn between them), then reads to EOF while
 * turning the loop. Returns what came back (NUL-terminated, static). */
static const char *exchange(fx *f, int c, const void *const *piece, const size_t *len, int n, uint64_t wait_ms) {
  static char out[4096];
  size_t got = 0;
  for (int i = 0; i < n; i++) {
    if (send(c, piece[i], len[i], MSG_NOSIGNAL) != (ssize_t)len[i]) break; /* closed on us */
    for (int k = 0; k < 3; k++) ra_loop_run_once(f->loop, 5);
  }
  uint64_t t0 = mono_ms();
  while (mono_ms() - t0 < wait_ms) {
    ra_loop_run_once(f->loop, 10);
    ssize_t r = recv(c, out + got, sizeof out - 1 - got, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN)) break;
    if (r > 0) got += (size_t)r;
  }
  out[got] = '\0';
  close(c);
  return out;
}

static const char REQ[] = "GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

static void test_v2_names_the_peer(void **s) {
  fx f;
  fx_up(&f, 0);
  struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(4711)};
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(443)};
  inet_pton(AF_INET, "203.0.113.9", &src.sin_addr);
  inet_pton(AF_INET, "198.51.100.2", &dst.sin_addr);
  uint8_t h[RA_PROXY_PROTO_V2_MAX + sizeof REQ];
  int n = ra_proxy_proto_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, h, sizeof h);
  assert_int_equal(n, 28);
  /* header and request in one segment */
  memcpy(h + n, REQ, sizeof REQ - 1);
  const void *p1[] = {h};
  size_t l1[] = {(size_t)n + sizeof REQ - 1};
  const char *r = exchange(&f, dial(&f), p1, l1, 1, 2000);
  assert_non_null(strstr(r, "HTTP/1.1 200"));
  assert_non_null(strstr(r, "peer=203.0.113.9"));
  /* header in three pieces, then the request */
  const void *p3[] = {h, h + 7, h + 20, REQ};
  size_t l3[] = {7, 13, (size_t)n - 20, sizeof REQ - 1};
  r = exchange(&f, dial(&f), p3, l3, 4, 2000);
  assert_non_null(strstr(r, "peer=203.0.113.9"));
  fx_down(&f);
}

static void test_v1_and_local(void **s) {
  fx f;
  fx_up(&f, 0);
  char v1[256];
  snprintf(v1, sizeof v1, "PROXY TCP6 2001:db8::7 ::1 1234 443\r\n%s", REQ);
  const void *p[] = {v1};
  size_t l[] = {strlen(v1)};
  const char *r = exchange(&f, dial(&f), p, l, 1, 2000);
  assert_non_null(strstr(r, "peer=2001:db8::7"));
  /* LOCAL: the proxy's own health check; the socket's peer is used */
  uint8_t h[16];
  assert_int_equal(ra_proxy_proto_encode(NULL, NULL, h, sizeof h), 16);
  const void *p2[] = {h, REQ};
  size_t l2[] = {16, sizeof REQ - 1};
  r = exchange(&f, dial(&f), p2, l2, 2, 2000);
  assert_non_null(strstr(r, "peer=127.0.0.1"));
  fx_down(&f);
}

static void test_refused(void **s) {
  fx f;
  fx_up(&f, 300);
  /* a plain request: not a PROXY header, closed unanswered */
  const void *p[] = {REQ};
  size_t l[] = {sizeof REQ - 1};
  assert_string_equal(exchange(&f, dial(&f), p, l, 1, 2000), "");
  /* a broken one */
  const char *bad = "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n";
  const void *pb[] = {bad, REQ};
  size_t lb[] = {strlen(bad), sizeof REQ - 1};
  assert_string_equal(exchange(&f, dial(&f), pb, lb, 2, 2000), "");
  /* half a header, then silence: closed after header_timeout_ms */
  const void *ph[] = {"PROXY TCP4 1.2"};
  size_t lh[] = {14};
  uint64_t t0 = mono_ms();
  assert_string_equal(exchange(&f, dial(&f), ph, lh, 1, 3000), "");
  uint64_t took = mono_ms() - t0;
  assert_true(took >= 250 && took < 2500);
  fx_down(&f);
}

static void test_free_with_pending(void **s) {
  fx f;
  fx_up(&f, 0);
  int c = dial(&f);
  assert_int_equal(send(c, "PROXY ", 6, 0), 6);
  for (int k = 0; k < 5; k++) ra_loop_run_once(f.loop, 5);
  fx_down(&f); /* the pending connection is closed, nothing leaks */
  char b;
  assert_int_equal(recv(c, &b, 1, 0), 0);
  close(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_v2_names_the_peer),
      cmocka_unit_test(test_v1_and_local),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_free_with_pending),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
