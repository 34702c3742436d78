/* tests/http/client_test.c: the HTTP client's URL splitter and response
 * parser (Content-Length, chunked, close-delimited, interim 1xx, split
 * input, caps, garbage), and whole GETs against an in-process server on
 * loopback: a chunked answer, a server that never answers (timeout), a
 * cancelled request, a refused connection, other schemes and a missing CA
 * file refused up front; a plain-HTTP server answering a TLS client. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/loop.h"
#include "raloop/http/client.h"
#include "raloop/http/client_internal.h"

static void test_url(void **st) {
  ra_http_url u;
  /* the WebSocket client's schemes, through the same splitter */
  assert_int_equal(ra_http_url_parse("ws://[::1]:3000/echo?x", &u), 0);
  assert_true(u.ws && !u.tls);
  assert_string_equal(u.host, "::1");
  assert_string_equal(u.host_hdr, "[::1]:3000");
  assert_string_equal(u.target, "/echo?x");
  assert_int_equal(ra_http_url_parse("wss://h/", &u), 0);
  assert_true(u.ws && u.tls);
  assert_int_equal(u.port, 443);
  assert_int_equal(ra_http_url_parse("http://example.com", &u), 0);
  assert_false(u.ws);
  assert_string_equal(u.host, "example.com");
  assert_int_equal(u.port, 80);
  assert_string_equal(u.target, "/");
  assert_string_equal(u.host_hdr, "example.com");
  assert_int_equal(ra_http_url_parse("http://127.0.0.1:8081/sgx/certification/v4/tcb?fmspc=00", &u), 0);
  assert_string_equal(u.host, "127.0.0.1");
  assert_int_equal(u.port, 8081);
  assert_string_equal(u.target, "/sgx/certification/v4/tcb?fmspc=00");
  assert_string_equal(u.host_hdr, "127.0.0.1:8081");
  assert_int_equal(ra_http_url_parse("HTTP://[::1]:99/x", &u), 0);
  assert_string_equal(u.host, "::1");
  assert_string_equal(u.host_hdr, "[::1]:99");
  assert_int_equal(ra_http_url_parse("http://h?q=1", &u), 0);
  assert_string_equal(u.target, "?q=1");
  assert_int_equal(ra_http_url_parse("https://api.trustedservices.intel.com/x", &u), 0);
  assert_true(u.tls);
  assert_int_equal(u.port, 443);
  assert_string_equal(u.host_hdr, "api.trustedservices.intel.com");
  assert_int_equal(ra_http_url_parse("https://h:8443/", &u), 0);
  assert_string_equal(u.host_hdr, "h:8443");
  assert_int_equal(ra_http_url_parse("http://h:443/", &u), 0);
  assert_false(u.tls);
  assert_string_equal(u.host_hdr, "h:443");
  assert_int_equal(ra_http_url_parse("ftp://h/x", &u), -EPROTONOSUPPORT);
  const char *bad[] = {"", "http://", "http://:80/", "http://h:0/", "http://h:65536/", "http://h:x/",
                       "http://u@h/", "http://h/a b", "http://h/#f", "http://[::1/", "example.com",
                       "http://hx\r\n/"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (ra_http_url_parse(bad[i], &u) != -EINVAL) fail_msg("accepted: %s", bad[i]);
  }
}

/* Feeds text in pieces of `step` bytes (0: at once); returns the last rc. */
static int feed(ra_http_resp_parser *rp, const char *text, size_t step) {
  size_t n = strlen(text);
  if (!step) step = n ? n : 1;
  int rc = 0;
  for (size_t off = 0; off < n && rc == 0; off += step)
    rc = ra_http_resp_parser_feed(rp, (const uint8_t *)text + off, off + step > n ? n - off : step);
  return rc;
}

static void test_content_length(void **st) {
  const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "TCB-Info-Issuer-Chain: -----BEGIN%20CERT\r\nContent-Length: 11\r\n\r\n"
                     "hello worldEXTRA";
  for (size_t step = 0; step < 4; step++) {
    ra_http_resp_parser *rp = ra_http_resp_parser_new(4096, 1024);
    assert_int_equal(feed(rp, resp, step), 1);
    ra_http_response r;
    ra_http_resp_parser_result(rp, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.nheaders, 3);
    assert_int_equal(r.body.len, 11);
    assert_memory_equal(r.body.ptr, "hello world", 11);
    ra_str h = ra_http_response_header(&r, "tcb-info-issuer-chain");
    assert_non_null(h.ptr);
    assert_int_equal(h.len, strlen("-----BEGIN%20CERT"));
    assert_memory_equal(h.ptr, "-----BEGIN%20CERT", h.len);
    assert_null(ra_http_response_header(&r, "SGX-TCB-Info-Issuer-Chain").ptr);
    /* more input after the end is ignored */
    assert_int_equal(ra_http_resp_parser_feed(rp, (const uint8_t *)"x", 1), 1);
    ra_http_resp_parser_free(rp);
  }
}

static void test_chunked(void **st) {
  const char *resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n";
  for (size_t step = 0; step < 3; step++) {
    ra_http_resp_parser *rp = ra_http_resp_parser_new(4096, 1024);
    assert_int_equal(feed(rp, resp, step), 1);
    ra_http_response r;
    ra_http_resp_parser_result(rp, &r);
    assert_int_equal(r.body.len, 11);
    assert_memory_equal(r.body.ptr, "hello world", 11);
    ra_http_resp_parser_free(rp);
  }
}

static void test_close_delimited_and_truncated(void **st) {
  ra_http_resp_parser *rp = ra_http_resp_parser_new(4096, 1024);
  assert_int_equal(feed(rp, "HTTP/1.1 200 OK\r\n\r\nuntil the end", 0), 0);
  assert_int_equal(ra_http_resp_parser_eof(rp), 1);
  ra_http_response r;
  ra_http_resp_parser_result(rp, &r);
  assert_int_equal(r.body.len, 13);
  ra_http_resp_parser_free(rp);

  const char *cut[] = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "HTTP/1.1 200 OK\r\nCont",
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", ""};
  for (size_t i = 0; i < sizeof cut / sizeof *cut; i++) {
    rp = ra_http_resp_parser_new(4096, 1024);
    assert_int_equal(feed(rp, cut[i], 0), 0);
    assert_int_equal(ra_http_resp_parser_eof(rp), -EPROTO);
    ra_http_resp_parser_free(rp);
  }
}

static void test_interim_404_and_empty(void **st) {
  ra_http_resp_parser *rp = ra_http_resp_parser_new(4096, 1024);
  assert_int_equal(feed(rp, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 1),
                   1);
  ra_http_response r;
  ra_http_resp_parser_result(rp, &r);
  assert_int_equal(r.status, 404);
  assert_int_equal(r.body.len, 0);
  assert_non_null(r.body.ptr);
  ra_http_resp_parser_free(rp);
}

static void test_caps_and_garbage(void **st) {
  ra_http_resp_parser *rp;
  /* a declared body over the cap fails at the head */
  rp = ra_http_resp_parser_new(4096, 10);
  assert_int_equal(feed(rp, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 0), -EMSGSIZE);
  ra_http_resp_parser_free(rp);
  /* chunks adding up over the cap */
  rp = ra_http_resp_parser_new(4096, 10);
  assert_int_equal(feed(rp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n6\r\nworld!\r\n", 0),
                   -EMSGSIZE);
  ra_http_resp_parser_free(rp);
  /* close-delimited over the cap */
  rp = ra_http_resp_parser_new(4096, 10);
  assert_int_equal(feed(rp, "HTTP/1.1 200 OK\r\n\r\n0123456789a", 0), -EMSGSIZE);
  assert_int_equal(ra_http_resp_parser_eof(rp), -EMSGSIZE);
  ra_http_resp_parser_free(rp);
  /* exactly at the cap is fine */
  rp = ra_http_resp_parser_new(4096, 10);
  assert_int_equal(feed(rp, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0), 1);
  ra_http_resp_parser_free(rp);
  /* a head over its cap */
  rp = ra_http_resp_parser_new(64, 10);
  assert_int_equal(feed(rp, "HTTP/1.1 200 OK\r\nX-Long: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n", 7),
                   -EMSGSIZE);
  ra_http_resp_parser_free(rp);
  /* not HTTP */
  const char *junk[] = {"<html>hello</html>\r\n\r\n", "HTTP/1.1 2OO OK\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n",
                        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"};
  for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
    rp = ra_http_resp_parser_new(4096, 1024);
    if (feed(rp, junk[i], 0) != -EPROTO) fail_msg("accepted: %s", junk[i]);
    assert_int_equal(ra_http_resp_parser_feed(rp, (const uint8_t *)"x", 1), -EPROTO); /* stays failed */
    ra_http_resp_parser_free(rp);
  }
}

/* ---- whole GETs against an in-process server ---------------------------------- */

typedef struct srv {
  ra_loop *loop;
  int lfd, cfd;
  uint16_t port;
  const char *answer; /* NULL: never answer */
  char req[2048];
  size_t req_len;
} srv;

static void on_client(ra_loop *loop, int fd, unsigned ev, void *ud) {
  srv *s = ud;
  ssize_t n = read(fd, s->req + s->req_len, sizeof s->req - 1 - s->req_len);
  if (n > 0) {
    s->req_len += (size_t)n;
    s->req[s->req_len] = 0;
    if (strstr(s->req, "\r\n\r\n") && s->answer) {
      assert_int_equal(write(fd, s->answer, strlen(s->answer)), (ssize_t)strlen(s->answer));
      ra_loop_unwatch(loop, fd);
      close(fd);
      s->cfd = -1;
    }
  } else {
    ra_loop_unwatch(loop, fd);
    close(fd);
    s->cfd = -1;
  }
}

static void on_accept(ra_loop *loop, int fd, unsigned ev, void *ud) {
  srv *s = ud;
  int c = accept(fd, NULL, NULL);
  if (c < 0) return;
  s->cfd = c;
  assert_int_equal(ra_loop_watch(loop, c, RA_READABLE, on_client, s), 0);
}

static void srv_start(srv *s, ra_loop *loop, const char *answer) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->answer = answer;
  s->cfd = -1;
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s->lfd, 8), 0);
  socklen_t al = sizeof a;
  getsockname(s->lfd, (struct sockaddr *)&a, &al);
  s->port = ntohs(a.sin_port);
  assert_int_equal(ra_loop_watch(loop, s->lfd, RA_READABLE, on_accept, s), 0);
}

static void srv_stop(srv *s) {
  if (s->cfd >= 0) {
    ra_loop_unwatch(s->loop, s->cfd);
    close(s->cfd);
  }
  ra_loop_unwatch(s->loop, s->lfd);
  close(s->lfd);
}

typedef struct got {
  int calls, err, status;
  char body[256];
  char hdr[64];
  ra_loop *loop;
} got;

static void on_got(int err, const ra_http_response *r, void *ud) {
  got *g = ud;
  g->calls++;
  g->err = err;
  if (r) {
    g->status = r->status;
    snprintf(g->body, sizeof g->body, "%.*s", (int)r->body.len, r->body.ptr);
    ra_str h = ra_http_response_header(r, "X-Test");
    snprintf(g->hdr, sizeof g->hdr, "%.*s", (int)h.len, h.ptr ? h.ptr : "");
  }
  ra_loop_stop(g->loop);
}

static void test_get_chunked(void **st) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  srv s;
  srv_start(&s, loop, "HTTP/1.1 200 OK\r\nX-Test: yes\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n");
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/sgx/certification/v4/qe/identity", s.port);
  got g = {.loop = loop};
  ra_http_get_opts o = {.timeout_ms = 5000, .accept = "application/json"};
  assert_int_equal(ra_http_get_start(loop, url, &o, on_got, &g, NULL), 0);
  assert_int_equal(g.calls, 0); /* never from inside the call */
  ra_loop_run(loop);
  assert_int_equal(g.calls, 1);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 200);
  assert_string_equal(g.body, "abcdef");
  assert_string_equal(g.hdr, "yes");
  assert_non_null(strstr(s.req, "GET /sgx/certification/v4/qe/identity HTTP/1.1\r\n"));
  char host[64];
  snprintf(host, sizeof host, "Host: 127.0.0.1:%u\r\n", s.port);
  assert_non_null(strstr(s.req, host));
  assert_non_null(strstr(s.req, "Connection: close\r\n"));
  assert_non_null(strstr(s.req, "Accept: application/json\r\n"));
  srv_stop(&s);
  ra_loop_free(loop);
}

/* Another method, extra headers and a body (ra-curl --ra-tls sends them);
 * a method or header that would break the request is refused up front. */
static void test_post_with_headers(void **st) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  srv s;
  srv_start(&s, loop, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/items", s.port);
  got g = {.loop = loop};
  ra_http_header h[] = {{RA_STR("Content-Type"), RA_STR("application/json")}};
  ra_http_get_opts o = {.timeout_ms = 5000, .method = "POST", .headers = h, .nheaders = 1,
                        .body = "{\"a\":1}", .body_len = 7};
  assert_int_equal(ra_http_get_start(loop, url, &o, on_got, &g, NULL), 0);
  ra_loop_run(loop);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.status, 201);
  assert_non_null(strstr(s.req, "POST /items HTTP/1.1\r\n"));
  assert_non_null(strstr(s.req, "Content-Type: application/json\r\n"));
  assert_non_null(strstr(s.req, "Content-Length: 7\r\n"));
  srv_stop(&s);
  ra_http_get_opts bad_method = {.method = "GE T"};
  assert_int_equal(ra_http_get_start(loop, url, &bad_method, on_got, &g, NULL), -EINVAL);
  ra_http_header crlf[] = {{RA_STR("X-A"), RA_STR("1\r\nX-B: 2")}};
  ra_http_get_opts bad_hdr = {.headers = crlf, .nheaders = 1};
  assert_int_equal(ra_http_get_start(loop, url, &bad_hdr, on_got, &g, NULL), -EINVAL);
  ra_loop_free(loop);
}

static void test_get_timeout_cancel_refused(void **st) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  srv s;
  srv_start(&s, loop, NULL);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/", s.port);
  got g = {.loop = loop};
  ra_http_get_opts o = {.timeout_ms = 100};
  uint64_t t0 = ra_loop_update_time(loop);
  assert_int_equal(ra_http_get_start(loop, url, &o, on_got, &g, NULL), 0);
  ra_loop_run(loop);
  assert_int_equal(g.calls, 1);
  assert_int_equal(g.err, -ETIMEDOUT);
  uint64_t el = ra_loop_update_time(loop) - t0;
  assert_true(el >= 100 && el < 2000);

  /* cancelled: no callback, nothing leaks (ASan) */
  got g2 = {.loop = loop};
  ra_http_get *h;
  assert_int_equal(ra_http_get_start(loop, url, &o, on_got, &g2, &h), 0);
  ra_http_get_cancel(h);
  ra_loop_run_once(loop, 50);
  ra_loop_run_once(loop, 50);
  assert_int_equal(g2.calls, 0);

  /* refused: the port of a socket that is closed */
  srv_stop(&s);
  got g3 = {.loop = loop};
  assert_int_equal(ra_http_get_start(loop, url, &o, on_got, &g3, NULL), 0);
  ra_loop_run(loop);
  assert_int_equal(g3.calls, 1);
  assert_int_equal(g3.err, -ECONNREFUSED);

  /* refused up front */
  assert_int_equal(ra_http_get_start(loop, "ftp://127.0.0.1/", &o, on_got, &g3, NULL), -EPROTONOSUPPORT);
  ra_http_get_opts bad_ca = {.ca_file = "/nonexistent/ca.pem"};
  assert_int_equal(ra_http_get_start(loop, "https://127.0.0.1/", &bad_ca, on_got, &g3, NULL), -ENOENT);
  assert_int_equal(ra_http_get_start(loop, "nope", &o, on_got, &g3, NULL), -EINVAL);
  assert_int_equal(g3.calls, 1);
  ra_loop_free(loop);
}

static void test_get_garbage_and_cap(void **st) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  const char *answers[] = {"<html>not http</html>", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
                           "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"};
  int want[] = {-EPROTO, -EPROTO, -EMSGSIZE};
  for (int i = 0; i < 3; i++) {
    srv s;
    srv_start(&s, loop, answers[i]);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", s.port);
    got g = {.loop = loop};
    ra_http_get_opts o = {.timeout_ms = 2000, .max_body = 1000};
    assert_int_equal(ra_http_get_start(loop, url, &o, on_got, &g, NULL), 0);
    ra_loop_run(loop);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.err, want[i]);
    srv_stop(&s);
  }
  ra_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url),
      cmocka_unit_test(test_content_length),
      cmocka_unit_test(test_chunked),
      cmocka_unit_test(test_close_delimited_and_truncated),
      cmocka_unit_test(test_interim_404_and_empty),
      cmocka_unit_test(test_caps_and_garbage),
      cmocka_unit_test(test_get_chunked),
      cmocka_unit_test(test_post_with_headers),
      cmocka_unit_test(test_get_timeout_cancel_refused),
      cmocka_unit_test(test_get_garbage_and_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
